//! What a line typed at the `/` filter or `:` command prompt does once
//! Enter sends it.

use super::navigate::{endpoint_screen, event_screen};
use super::{App, Slot};
use crate::console::filter::parse_filter;
use crate::console::keymap::ViewKind;
use crate::console::msg::Command;
use crate::console::screens::{
    DeliveriesScreen, DetailScreen, EndpointsScreen, Rows, Screen, SearchProgress,
};
use crate::model::{DeliveryState, IdKind};

impl App {
    /// Filters the list on top; anywhere else the filter is for deliveries.
    pub(super) fn apply_filter(&mut self, text: &str) -> Vec<Command> {
        match self.top_mut() {
            Screen::Deliveries(s) => {
                match parse_filter(text) {
                    Ok(query) => {
                        s.query = query;
                        s.rows = Rows::default();
                        s.marked.clear();
                        s.search = s.query.text.as_ref().map(|_| SearchProgress::default());
                        s.follow = s.query.text.is_none();
                    }
                    Err(reason) => {
                        self.flash(reason, true);
                        return Vec::new();
                    }
                }
                self.pending.remove(&Slot::Top);
                self.refresh_commands(false)
            }
            Screen::Endpoints(s) => {
                s.filter = (!text.is_empty()).then(|| text.to_lowercase());
                s.rows = Rows::default();
                self.pending.remove(&Slot::Top);
                self.refresh_commands(false)
            }
            _ => {
                let deliveries = Screen::Deliveries(DeliveriesScreen::default());
                self.set_stack(vec![deliveries]);
                self.apply_filter(text)
            }
        }
    }

    pub(super) fn run_command(&mut self, line: &str) -> Vec<Command> {
        let mut words = line.split_whitespace();
        let verb = words.next().unwrap_or_default().trim_start_matches(':');
        let argument = words.collect::<Vec<_>>().join(" ");
        match verb {
            "" => Vec::new(),
            "q" | "quit" | "q!" => {
                self.quit = true;
                Vec::new()
            }
            "o" | "overview" => self.go_fresh(ViewKind::Overview),
            "d" | "dlv" | "deliveries" => self.go_fresh(ViewKind::Deliveries),
            "failed" | "dead" => {
                self.set_stack(vec![Screen::Deliveries(DeliveriesScreen::default())]);
                self.apply_filter("state:dead")
            }
            "ep" | "endpoint" | "endpoints" if argument.is_empty() => {
                self.go_fresh(ViewKind::Endpoints)
            }
            "ep" | "endpoint" => {
                self.set_stack(vec![Screen::Deliveries(DeliveriesScreen::default())]);
                self.apply_filter(&format!("endpoint:{argument}"))
            }
            "s" | "subs" | "subscriptions" => self.go_fresh(ViewKind::Subscriptions),
            "a" | "audit" => self.go_fresh(ViewKind::Audit),
            "h" | "help" => self.go_fresh(ViewKind::Help),
            "id" => self.jump_to_id(&argument),
            "tenant" | "t" => self.set_tenant(&argument),
            other if IdKind::of(other).is_some() => self.jump_to_id(other),
            // `:retrying`, `:delivered`, `:pending`… (the old words too, as aliases).
            other if other.parse::<DeliveryState>().is_ok() => {
                self.stack = vec![Screen::Deliveries(DeliveriesScreen::default())];
                self.apply_filter(&format!("state:{other}"))
            }
            other => {
                self.flash(
                    format!("unknown command :{other} (try :deliveries :failed :retrying :endpoints :ep NAME :subs :audit :id ID :tenant NAME :q)"),
                    true,
                );
                Vec::new()
            }
        }
    }

    /// `:tenant NAME` scopes every list to one tenant; `:tenant all` (or
    /// no name) shows them all again.
    fn set_tenant(&mut self, argument: &str) -> Vec<Command> {
        self.tenant = (!argument.is_empty() && argument != "all").then(|| argument.to_string());
        let text = match &self.tenant {
            Some(name) => {
                format!("showing tenant {name} only (:tenant all to show every tenant)")
            }
            None => "showing every tenant".to_string(),
        };
        self.flash(text, false);
        // Screens kept from before hold the other scope's rows.
        self.saved.clear();
        self.pending.remove(&Slot::Top);
        if let Screen::Deliveries(s) = self.top_mut() {
            s.rows = Rows::default();
        }
        self.refresh_commands(true)
    }

    /// `:id msg_…` shows an event and its fan-out; `:id dlv_…` one delivery;
    /// `:id ep_…` one endpoint.
    fn jump_to_id(&mut self, id: &str) -> Vec<Command> {
        match IdKind::of(id) {
            Some(IdKind::Delivery) => {
                self.set_stack(vec![
                    Screen::Deliveries(DeliveriesScreen::default()),
                    Screen::Detail(DetailScreen {
                        delivery_id: id.to_string(),
                        ..DetailScreen::default()
                    }),
                ]);
                self.pending.remove(&Slot::Top);
                self.refresh_commands(false)
            }
            Some(IdKind::Event) => {
                self.set_stack(vec![
                    Screen::Deliveries(DeliveriesScreen::default()),
                    event_screen(id),
                ]);
                self.pending.remove(&Slot::Top);
                self.refresh_commands(false)
            }
            Some(IdKind::Endpoint) => {
                self.set_stack(vec![
                    Screen::Endpoints(EndpointsScreen::default()),
                    endpoint_screen(id, id),
                ]);
                self.pending.remove(&Slot::Top);
                self.refresh_commands(false)
            }
            _ => {
                self.flash(
                    format!(
                        "{id:?} is not an event (msg_…), delivery (dlv_…) or endpoint (ep_…) id"
                    ),
                    true,
                );
                Vec::new()
            }
        }
    }
}
