//! Moving around: the selection and paging within a screen (loading more
//! rows near either end), drilling in and backing out, marks and follow.

use super::{App, Slot, health_window};
use crate::console::format::endpoint_label;
use crate::console::keymap::ViewKind;
use crate::console::msg::{Command, ListLoad, Load};
use crate::console::screens::{
    AuditScreen, DeliveriesScreen, DetailScreen, EndpointDetailScreen, EndpointsScreen,
    EventScreen, HelpScreen, OverviewScreen, Screen, SubscriptionsScreen,
};
use crate::model::IdKind;

impl App {
    pub(super) fn move_selection(&mut self, delta: isize) -> Vec<Command> {
        let height = self.body_rows();
        match self.top_mut() {
            Screen::Deliveries(_) => return self.move_in_deliveries(delta),
            Screen::Endpoints(_) => return self.move_in_endpoints(delta),
            Screen::Subscriptions(s) => {
                s.rows.move_by(delta);
                s.rows.scroll_into_view(height);
            }
            Screen::Audit(s) => {
                s.rows.move_by(delta);
                s.rows.scroll_into_view(height);
                if s.rows.wants_older(height) {
                    let after = s.rows.older.clone();
                    return vec![self.load_top(Load::Audit { after })];
                }
            }
            Screen::Overview(s) => {
                let last = s.worst.len().saturating_sub(1);
                s.selected = s.selected.saturating_add_signed(delta).min(last);
            }
            Screen::Detail(_) => self.scroll_detail(delta),
            Screen::Event(_) => self.move_in_event(delta),
            Screen::EndpointDetail(s) => {
                let causes = s.detail.as_ref().map_or(0, |d| d.causes(s.day).len());
                s.selected = s
                    .selected
                    .saturating_add_signed(delta)
                    .min(causes.saturating_sub(1));
            }
            Screen::Help(_) => self.scroll_help(delta),
        }
        Vec::new()
    }

    /// The body's height on a screen without a table header: the header,
    /// breadcrumbs, status and hint lines, the banner if shown and the
    /// detail strip if the view has one taken off.
    fn page_height(&self) -> u16 {
        let strip = if super::has_strip(self.view()) {
            super::STRIP_LINES
        } else {
            0
        };
        self.size
            .1
            .saturating_sub(4 + strip + u16::from(self.no_dispatcher()))
            .max(1)
    }

    /// On an event the selection walks its fan-out; past the last endpoint
    /// the view scrolls on into the payload, and back up the same way.
    fn move_in_event(&mut self, delta: isize) {
        let width = self.size.0;
        let height = self.page_height();
        let Screen::Event(s) = self.top_mut() else {
            return;
        };
        let rows = s.fanout.as_ref().map_or(0, |f| f.deliveries.len());
        let limit = crate::console::views::event_scroll_limit(s, width, height);
        let visible_from = |selected: usize| {
            let line = crate::console::views::event_row_line(selected);
            line.saturating_sub(usize::from(height).saturating_sub(1))
        };
        for _ in 0..delta.unsigned_abs() {
            let moved = if delta > 0 && s.selected + 1 < rows {
                s.selected += 1;
                true
            } else if delta > 0 {
                s.scroll = s.scroll.saturating_add(1).min(limit);
                false
            } else if usize::from(s.scroll) > visible_from(s.selected) {
                s.scroll -= 1;
                false
            } else {
                s.selected = s.selected.saturating_sub(1);
                true
            };
            if moved {
                // A row the selection moves to is on screen.
                let line = crate::console::views::event_row_line(s.selected);
                let scroll = usize::from(s.scroll).clamp(visible_from(s.selected), line);
                s.scroll = u16::try_from(scroll).unwrap_or(u16::MAX).min(limit);
            }
        }
    }

    /// A delivery's detail scrolls only as far as its last row reaching the
    /// bottom, so `G` then `k` moves at once.
    fn scroll_detail(&mut self, delta: isize) {
        let width = self.size.0;
        let height = self.page_height();
        let Screen::Detail(s) = self.top_mut() else {
            return;
        };
        let last = usize::from(crate::console::views::detail_scroll_limit(s, width, height));
        let scroll = usize::from(s.scroll).saturating_add_signed(delta).min(last);
        s.scroll = u16::try_from(scroll).unwrap_or(u16::MAX);
    }

    /// Help scrolls only as far as its last line reaching the bottom, so
    /// `G` never shows a blank page.
    fn scroll_help(&mut self, delta: isize) {
        let (width, height) = self.size;
        let read_only = self.read_only;
        let Screen::Help(s) = self.top_mut() else {
            return;
        };
        let lines = crate::console::views::help_line_count(s.view, read_only, width);
        // Header, breadcrumbs, status and hint lines take four.
        let shown = usize::from(height).saturating_sub(4).max(1);
        let last = lines.saturating_sub(shown);
        let scroll = usize::from(s.scroll).saturating_add_signed(delta).min(last);
        s.scroll = u16::try_from(scroll).unwrap_or(u16::MAX);
    }

    /// Near either end of the loaded rows the next page is loaded; a payload
    /// search instead scans on once the selection nears what it has found.
    fn move_in_deliveries(&mut self, delta: isize) -> Vec<Command> {
        let height = self.body_rows();
        let Screen::Deliveries(s) = self.top_mut() else {
            return Vec::new();
        };
        s.rows.move_by(delta);
        s.rows.scroll_into_view(height);
        let page = if s.rows.wants_older(height) && s.query.text.is_none() {
            Some((s.query.clone(), s.rows.older.clone(), ListLoad::Older))
        } else if delta < 0 && s.rows.wants_newer() {
            Some((s.query.clone(), s.rows.newer.clone(), ListLoad::Newer))
        } else {
            None
        };
        let mut commands = Vec::new();
        if s.query.text.is_some()
            && s.rows.selected + height >= s.rows.items.len()
            && s.rows.loading.is_none()
            && let Some(progress) = &s.search
            && !progress.done
        {
            let after = progress.next.clone();
            let query = s.query.clone();
            commands.push(self.load_top(Load::Search { query, after }));
        }
        if let Some((query, cursor, how)) = page {
            let query = self.scoped(&query);
            commands.push(self.load_top(Load::Deliveries { query, cursor, how }));
        }
        commands
    }

    /// Health is loaded only around the selection, so moving far enough
    /// asks for the endpoints now near it.
    fn move_in_endpoints(&mut self, delta: isize) -> Vec<Command> {
        let height = self.body_rows();
        let tenant = self.tenant.clone();
        let Screen::Endpoints(s) = self.top_mut() else {
            return Vec::new();
        };
        let before = health_window(&s.rows);
        s.rows.move_by(delta);
        s.rows.scroll_into_view(height);
        let after = health_window(&s.rows);
        if before == after {
            return Vec::new();
        }
        let filter = s.filter.clone();
        vec![self.load_top(Load::Endpoints {
            tenant,
            filter,
            health_for: after,
        })]
    }

    /// `g` (top) and `G` (bottom): on a paged list the far end is loaded.
    pub(super) fn jump(&mut self, top: bool) -> Vec<Command> {
        let query = match self.top_mut() {
            Screen::Deliveries(s) if s.query.text.is_none() => {
                let far_end_loaded = if top {
                    s.rows.newer.is_none()
                } else {
                    s.rows.older.is_none()
                };
                if far_end_loaded {
                    s.rows.selected = if top {
                        0
                    } else {
                        s.rows.items.len().saturating_sub(1)
                    };
                    s.follow &= top;
                    None
                } else {
                    s.follow = top;
                    Some(s.query.clone())
                }
            }
            Screen::Detail(_) => {
                self.scroll_detail(if top { isize::MIN / 2 } else { isize::MAX / 2 });
                return Vec::new();
            }
            Screen::Event(s) => {
                if top {
                    s.selected = 0;
                    s.scroll = 0;
                } else {
                    s.selected = s
                        .fanout
                        .as_ref()
                        .map_or(0, |f| f.deliveries.len())
                        .saturating_sub(1);
                    s.scroll = u16::MAX;
                    // Clamped to the view's end.
                    self.move_in_event(1);
                }
                return Vec::new();
            }
            _ => {
                let delta = if top { isize::MIN / 2 } else { isize::MAX / 2 };
                return self.move_selection(delta);
            }
        };
        let height = self.body_rows();
        if let Screen::Deliveries(s) = self.top_mut() {
            s.rows.scroll_into_view(height);
        }
        match query {
            Some(query) => {
                let query = self.scoped(&query);
                vec![self.load_top(Load::Deliveries {
                    query,
                    cursor: None,
                    how: if top {
                        ListLoad::Replace
                    } else {
                        ListLoad::Tail
                    },
                })]
            }
            None => Vec::new(),
        }
    }

    /// `space`: marks the selected delivery for a bulk action (or unmarks
    /// it). The cursor stays on the row, so the key the operator presses
    /// next (`r`, `p`) acts on the row they were looking at.
    pub(super) fn toggle_mark(&mut self) -> Vec<Command> {
        if let Screen::Deliveries(s) = self.top_mut()
            && let Some(id) = s.rows.selected_item().map(|d| d.id.clone())
            && !s.marked.remove(&id)
        {
            s.marked.insert(id);
        }
        Vec::new()
    }

    /// `f`: a frozen list holds still to be read while deliveries pour in.
    pub(super) fn toggle_follow(&mut self) -> Vec<Command> {
        if let Screen::Deliveries(s) = self.top_mut() {
            s.follow = !s.follow;
            let text = if s.follow {
                "following: new deliveries appear at the top"
            } else {
                "frozen: the list stays as it is (f to follow again)"
            };
            self.flash(text, false);
        }
        self.refresh_commands(false)
    }

    /// `Esc`: back one level; it never changes data.
    pub(super) fn back(&mut self) -> Vec<Command> {
        if self.stack.len() > 1 {
            self.stack.pop();
            self.pending.remove(&Slot::Top);
            return self.refresh_commands(false);
        }
        match self.top_mut() {
            Screen::Deliveries(s) if !s.marked.is_empty() => {
                s.marked.clear();
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn push(&mut self, screen: Screen) -> Vec<Command> {
        self.stack.push(screen);
        self.pending.remove(&Slot::Top);
        self.refresh_commands(false)
    }

    /// `1`–`5`: replaces the whole stack with a top-level view as it was
    /// left (cursor, scroll, filter and marks), or new the first time.
    pub(super) fn go(&mut self, kind: ViewKind) -> Vec<Command> {
        self.save_bottom();
        if let Some(screen) = self.saved.remove(&kind) {
            self.stack = vec![screen];
            self.pending.remove(&Slot::Top);
            return self.refresh_commands(false);
        }
        self.go_fresh(kind)
    }

    /// `:deliveries`, `:endpoints`, …: the view afresh, as a typed command
    /// (or a script) means it: the whole list, no filter, the first row.
    pub(super) fn go_fresh(&mut self, kind: ViewKind) -> Vec<Command> {
        self.save_bottom();
        self.saved.remove(&kind);
        let screen = match kind {
            ViewKind::Overview => Screen::Overview(OverviewScreen::default()),
            ViewKind::Deliveries => Screen::Deliveries(DeliveriesScreen {
                follow: true,
                ..DeliveriesScreen::default()
            }),
            ViewKind::Endpoints => Screen::Endpoints(EndpointsScreen::default()),
            ViewKind::Subscriptions => Screen::Subscriptions(SubscriptionsScreen::default()),
            ViewKind::Audit => Screen::Audit(AuditScreen::default()),
            ViewKind::Help => Screen::Help(HelpScreen {
                view: self.view(),
                scroll: 0,
            }),
            ViewKind::Detail | ViewKind::Event | ViewKind::EndpointDetail => return Vec::new(),
        };
        self.stack = vec![screen];
        self.pending.remove(&Slot::Top);
        self.refresh_commands(false)
    }

    /// Replaces the whole stack, keeping the screen at its bottom for a return.
    pub(super) fn set_stack(&mut self, stack: Vec<Screen>) {
        self.save_bottom();
        self.stack = stack;
    }

    /// Keeps the top-level screen at the bottom of the stack, so going back
    /// to its view finds the cursor where it was. A load it was waiting for
    /// will not be applied to it, so it waits no more.
    fn save_bottom(&mut self) {
        let Some(mut screen) = self.stack.first().cloned() else {
            return;
        };
        let kind = screen.kind();
        if matches!(
            kind,
            ViewKind::Help | ViewKind::Detail | ViewKind::Event | ViewKind::EndpointDetail
        ) {
            return;
        }
        match &mut screen {
            Screen::Deliveries(s) => s.rows.loading = None,
            Screen::Endpoints(s) => s.rows.loading = None,
            Screen::Subscriptions(s) => s.rows.loading = None,
            Screen::Audit(s) => s.rows.loading = None,
            Screen::Overview(_)
            | Screen::Detail(_)
            | Screen::Event(_)
            | Screen::EndpointDetail(_)
            | Screen::Help(_) => {}
        }
        self.saved.insert(kind, screen);
    }

    /// `?`: the keys of the view on top, over it, so `Esc` returns to it.
    pub(super) fn open_help(&mut self) -> Vec<Command> {
        let view = self.view();
        if view != ViewKind::Help {
            self.stack
                .push(Screen::Help(HelpScreen { view, scroll: 0 }));
        }
        Vec::new()
    }

    /// `Enter`: drill into the selected row.
    pub(super) fn open(&mut self) -> Vec<Command> {
        let next = match self.top() {
            Screen::Deliveries(s) => s.rows.selected_item().map(|d| {
                Screen::Detail(DetailScreen {
                    delivery_id: d.id.clone(),
                    ..DetailScreen::default()
                })
            }),
            Screen::Endpoints(s) => s
                .rows
                .selected_item()
                .map(|row| endpoint_screen(&row.endpoint.id, &endpoint_label(&row.endpoint))),
            Screen::Overview(s) => s
                .worst
                .get(s.selected)
                .map(|w| endpoint_screen(&w.endpoint_id, &w.label)),
            Screen::EndpointDetail(s) => s.selected_cause().map(|cause| {
                let mut screen = DeliveriesScreen {
                    follow: true,
                    context: Some(format!("{}, failed with {}", s.label, cause.cause)),
                    ..DeliveriesScreen::default()
                };
                screen.query.filter.endpoint_id = Some(s.endpoint_id.clone());
                screen.query.cause = Some(cause.cause.clone());
                Screen::Deliveries(screen)
            }),
            Screen::Subscriptions(s) => s
                .rows
                .selected_item()
                .map(|sub| deliveries_of_endpoint(&sub.endpoint_id, &sub.endpoint_name)),
            Screen::Audit(s) => s.rows.selected_item().and_then(|entry| {
                let id = entry.target_ids.first()?;
                match IdKind::of(id) {
                    Some(IdKind::Delivery) => Some(Screen::Detail(DetailScreen {
                        delivery_id: id.clone(),
                        ..DetailScreen::default()
                    })),
                    Some(IdKind::Endpoint) => Some(endpoint_screen(id, id)),
                    Some(IdKind::Event) => Some(event_screen(id)),
                    _ => None,
                }
            }),
            Screen::Detail(s) => s
                .detail
                .as_ref()
                .map(|detail| event_screen(&detail.delivery.event_id)),
            Screen::Event(s) => s.selected_delivery().map(|d| {
                Screen::Detail(DetailScreen {
                    delivery_id: d.id.clone(),
                    ..DetailScreen::default()
                })
            }),
            Screen::Help(_) => None,
        };
        match next {
            Some(screen) => self.push(screen),
            None => Vec::new(),
        }
    }

    /// `y`: the selected id to the clipboard, and on the status line for
    /// a terminal that ignores OSC 52.
    pub(super) fn copy_id(&mut self) -> Vec<Command> {
        if let Some(id) = selected_id(self.top()) {
            self.flash(format!("copied {id}"), false);
            self.clipboard = Some(id);
        }
        Vec::new()
    }

    /// `Y`: the selected delivery as a `curl` command; its URL and headers
    /// are read first, and [`Loaded::Curl`](crate::console::msg::Loaded)
    /// copies it.
    pub(super) fn copy_curl(&mut self) -> Vec<Command> {
        let delivery_id = match self.top() {
            Screen::Deliveries(s) => s.rows.selected_item().map(|d| d.id.clone()),
            Screen::Detail(s) => Some(s.delivery_id.clone()),
            Screen::Event(s) => s.selected_delivery().map(|d| d.id.clone()),
            _ => None,
        };
        let Some(delivery_id) = delivery_id else {
            return Vec::new();
        };
        // No slot: the answer is wanted whatever the screen shows meanwhile.
        let token = self.next_token;
        self.next_token += 1;
        vec![Command::Load {
            token,
            load: Load::Curl { delivery_id },
        }]
    }

    /// `l` on an endpoint (the list's or the detail's): its deliveries.
    pub(super) fn open_endpoint_deliveries(&mut self) -> Vec<Command> {
        match self.selected_endpoint() {
            Some(endpoint) => {
                let screen = deliveries_of_endpoint(&endpoint.id, &endpoint_label(endpoint));
                self.push(screen)
            }
            None => Vec::new(),
        }
    }

    /// `s` on an endpoint (the list's or the detail's): its subscriptions,
    /// to edit there.
    pub(super) fn open_subscriptions(&mut self) -> Vec<Command> {
        if let Some(endpoint) = self.selected_endpoint() {
            let endpoint = (endpoint.id.clone(), endpoint_label(endpoint));
            return self.push(Screen::Subscriptions(SubscriptionsScreen {
                endpoint: Some(endpoint),
                ..SubscriptionsScreen::default()
            }));
        }
        Vec::new()
    }
}

/// The id of what the cursor is on, for `y`.
fn selected_id(screen: &Screen) -> Option<String> {
    match screen {
        Screen::Overview(s) => s.worst.get(s.selected).map(|w| w.endpoint_id.clone()),
        Screen::Deliveries(s) => s.rows.selected_item().map(|d| d.id.clone()),
        Screen::Detail(s) => Some(s.delivery_id.clone()),
        Screen::Event(s) => Some(
            s.selected_delivery()
                .map_or_else(|| s.event_id.clone(), |d| d.id.clone()),
        ),
        Screen::Endpoints(s) => s.rows.selected_item().map(|r| r.endpoint.id.clone()),
        Screen::EndpointDetail(s) => Some(s.endpoint_id.clone()),
        Screen::Subscriptions(s) => s.rows.selected_item().map(|sub| sub.id.clone()),
        Screen::Audit(s) => s.rows.selected_item().map(|entry| {
            entry
                .target_ids
                .first()
                .cloned()
                .unwrap_or_else(|| entry.id.clone())
        }),
        Screen::Help(_) => None,
    }
}

/// An endpoint's detail, to be loaded.
pub(super) fn endpoint_screen(endpoint_id: &str, label: &str) -> Screen {
    Screen::EndpointDetail(EndpointDetailScreen {
        endpoint_id: endpoint_id.to_string(),
        label: label.to_string(),
        ..EndpointDetailScreen::default()
    })
}

/// An event's view, to be loaded.
pub(super) fn event_screen(event_id: &str) -> Screen {
    Screen::Event(EventScreen {
        event_id: event_id.to_string(),
        ..EventScreen::default()
    })
}

pub(super) fn deliveries_of_endpoint(endpoint_id: &str, label: &str) -> Screen {
    let mut screen = DeliveriesScreen {
        follow: true,
        context: Some(label.to_string()),
        ..DeliveriesScreen::default()
    };
    screen.query.filter.endpoint_id = Some(endpoint_id.to_string());
    Screen::Deliveries(screen)
}
