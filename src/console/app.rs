//! The console's state and its one entry point for change, [`App::update`]:
//! a message (a key, loaded data, an action's result) goes in, the state
//! changes, and commands (loads and actions for `io.rs` to run in the
//! background) come out. No I/O happens here, so every key can be tested.
//!
//! Each child module adds one part of `App`'s behaviour: key routing,
//! navigation, the `/` and `:` prompts, actions and their confirmations,
//! forms, and applying loaded data.

mod actions;
mod breaker;
pub mod confirm;
pub mod forms;
mod keys;
mod loaded;
mod navigate;
mod prompts;

use std::collections::HashMap;

use self::confirm::Confirm;
use self::forms::Form;
use super::input::LineInput;
use super::keymap::ViewKind;
// What `App::update` takes, so also named from here (as the snapshot tests do).
pub use super::msg::Msg;
use super::msg::{Command, ListLoad, Load};
use super::screens::{DeliveryQuery, EndpointRow, ListLoading, OverviewScreen, Rows, Screen};
use super::views::human_duration;
use crate::model::now_millis;
use crate::store::QueueSummary;

/// Rows fetched per page of a list.
pub const PAGE: usize = 100;
/// How many endpoints around the selection get their health loaded.
pub const HEALTH_WINDOW: usize = 60;
/// Lines of the detail strip, on the screens that list rows.
pub const STRIP_LINES: u16 = 2;
/// How long a flash message stays.
const FLASH_MS: i64 = 6_000;
/// A load on its way longer than this says what it waits for.
pub const SLOW_MS: i64 = 1_000;

/// A line under the body saying what just happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Flash {
    pub text: String,
    pub error: bool,
    pub at: i64,
}

/// What keys go to.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Normal,
    Filter(LineInput),
    Command(LineInput),
    Confirm(Confirm),
    Form(Form),
    /// An endpoint's secrets in plain, until any key hides them.
    Reveal(Box<crate::model::Endpoint>),
    /// An endpoint's circuit breaker, with the keys that force it.
    Breaker(Box<super::screens::BreakerPanel>),
    /// Text just copied (a `curl` command), shown whole for a manual copy
    /// until any key.
    Copied(String),
    /// What a probe found, until any key.
    Probe(Box<crate::ops::ProbeReport>),
}

/// A long action's progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub label: String,
    pub done: u64,
    pub total: u64,
}

/// The whole console state.
#[derive(Debug)]
pub struct App {
    pub read_only: bool,
    /// Where the database is, for the header.
    pub location: String,
    /// Only this tenant (name), or every tenant.
    pub tenant: Option<String>,
    pub stack: Vec<Screen>,
    pub mode: Mode,
    pub flash: Option<Flash>,
    /// The database is unreachable: why, shown until a load succeeds.
    pub db_error: Option<String>,
    pub summary: Option<QueueSummary>,
    pub dispatchers_alive: usize,
    /// How long ago a dispatcher was last seen (ms); `None`: never.
    pub dispatcher_last_seen_ago: Option<i64>,
    /// The top list's load was slow at the last draw (so the moment it
    /// turns slow is drawn once, not every tick).
    slow_shown: bool,
    pub progress: Option<Progress>,
    pub size: (u16, u16),
    pub quit: bool,
    /// Something on screen changed since the last draw.
    pub dirty: bool,
    /// Shown in the status bar when nothing more urgent is.
    pub notice: Option<String>,
    /// Text to put on the operator's clipboard: the terminal loop sends it
    /// as an OSC 52 sequence and clears it.
    pub clipboard: Option<String>,
    /// Each top-level view as it was left, to return to (cursor, scroll,
    /// filter, marks); the screen on the stack is not in here.
    saved: HashMap<ViewKind, Screen>,
    next_token: u64,
    /// The token of the load each screen or the header is waiting for.
    pending: HashMap<Slot, u64>,
}

/// Which part of the state a load fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Slot {
    Header,
    Top,
}

impl App {
    pub fn new(location: String, read_only: bool, size: (u16, u16)) -> App {
        App {
            read_only,
            location,
            tenant: None,
            stack: vec![Screen::Overview(OverviewScreen::default())],
            mode: Mode::Normal,
            flash: None,
            db_error: None,
            summary: None,
            dispatchers_alive: 0,
            dispatcher_last_seen_ago: None,
            slow_shown: false,
            progress: None,
            size,
            quit: false,
            dirty: true,
            notice: None,
            clipboard: None,
            saved: HashMap::new(),
            next_token: 1,
            pending: HashMap::new(),
        }
    }

    /// The loads to start with.
    pub fn start(&mut self) -> Vec<Command> {
        self.refresh_commands(true)
    }

    /// The screen on top of the stack.
    pub fn top(&self) -> &Screen {
        // The stack is never empty: `back` keeps its bottom.
        &self.stack[self.stack.len() - 1]
    }

    fn top_mut(&mut self) -> &mut Screen {
        let last = self.stack.len() - 1;
        &mut self.stack[last]
    }

    pub fn view(&self) -> ViewKind {
        self.top().kind()
    }

    /// Rows the body can show (header, breadcrumbs, table header, the
    /// detail strip, status and hint lines taken off).
    pub fn body_rows(&self) -> usize {
        let strip = if has_strip(self.view()) {
            STRIP_LINES
        } else {
            0
        };
        let banner = u16::from(self.no_dispatcher());
        usize::from(self.size.1)
            .saturating_sub(6 + usize::from(strip + banner))
            .max(1)
    }

    fn token(&mut self, slot: Slot) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        self.pending.insert(slot, token);
        token
    }

    fn load_top(&mut self, load: Load) -> Command {
        let token = self.token(Slot::Top);
        if let Some(rows) = self.top_list_mut() {
            rows.start(token, now_millis());
        }
        Command::Load { token, load }
    }

    /// The loading of the list on top, if the top screen is a list.
    fn top_list_mut(&mut self) -> Option<&mut dyn ListLoading> {
        match self.top_mut() {
            Screen::Deliveries(s) => Some(&mut s.rows),
            Screen::Endpoints(s) => Some(&mut s.rows),
            Screen::Subscriptions(s) => Some(&mut s.rows),
            Screen::Audit(s) => Some(&mut s.rows),
            _ => None,
        }
    }

    /// Whether the list on top has waited longer than [`SLOW_MS`] for a
    /// load (and so says what it waits for).
    pub fn top_load_is_slow(&self) -> bool {
        let list: Option<&dyn ListLoading> = match self.top() {
            Screen::Deliveries(s) => Some(&s.rows),
            Screen::Endpoints(s) => Some(&s.rows),
            Screen::Subscriptions(s) => Some(&s.rows),
            Screen::Audit(s) => Some(&s.rows),
            _ => None,
        };
        list.and_then(|rows| rows.waiting_since())
            .is_some_and(|at| now_millis() - at > SLOW_MS)
    }

    /// No dispatcher is alive (known once the header has loaded): nothing
    /// is being delivered, which the banner says.
    pub fn no_dispatcher(&self) -> bool {
        self.summary.is_some() && self.dispatchers_alive == 0
    }

    /// The banner when no dispatcher is alive: since when, and what it means.
    pub fn dispatcher_banner(&self) -> Option<String> {
        if !self.no_dispatcher() {
            return None;
        }
        let seen = match self.dispatcher_last_seen_ago {
            Some(ago) => format!("last seen {} ago", human_duration(ago)),
            None => "never seen".to_string(),
        };
        Some(format!(
            "no dispatcher alive ({seen}): nothing is being delivered"
        ))
    }

    pub fn flash(&mut self, text: impl Into<String>, error: bool) {
        self.flash = Some(Flash {
            text: text.into(),
            error,
            at: now_millis(),
        });
        self.dirty = true;
    }

    /// Handles one message; returns the commands it calls for.
    pub fn update(&mut self, msg: Msg) -> Vec<Command> {
        match msg {
            Msg::Key(key) => {
                self.dirty = true;
                // An error stays until the operator has seen it and moved on.
                if self.flash.as_ref().is_some_and(|f| f.error) {
                    self.flash = None;
                }
                self.expire_flash();
                self.on_key(key)
            }
            Msg::Paste(text) => {
                match &mut self.mode {
                    Mode::Filter(input) | Mode::Command(input) => input.paste(&text),
                    Mode::Form(form) => {
                        if let Some(field) = form.fields.get_mut(form.focus) {
                            field.input.paste(&text);
                        }
                    }
                    _ => {}
                }
                self.dirty = true;
                Vec::new()
            }
            Msg::Resize(width, height) => {
                self.size = (width, height);
                self.dirty = true;
                Vec::new()
            }
            Msg::Loaded { token, result } => self.on_loaded(token, result),
            Msg::Acted(acted) => self.on_acted(acted),
            Msg::Progress { label, done, total } => {
                self.progress = Some(Progress { label, done, total });
                self.dirty = true;
                Vec::new()
            }
            Msg::Refresh => {
                let expired = self.expire_flash();
                let slow = self.top_load_is_slow();
                self.dirty |= expired || slow != self.slow_shown;
                self.slow_shown = slow;
                self.refresh_commands(false)
            }
        }
    }

    /// Drops an information message once it is old; errors wait for a key.
    fn expire_flash(&mut self) -> bool {
        let stale = self
            .flash
            .as_ref()
            .is_some_and(|f| !f.error && now_millis() - f.at > FLASH_MS);
        if stale {
            self.flash = None;
        }
        stale
    }

    /// Loads that bring what is on screen up to date. With `all`, even
    /// lists that are frozen or already loaded.
    fn refresh_commands(&mut self, all: bool) -> Vec<Command> {
        let mut commands = Vec::new();
        if !self.pending.contains_key(&Slot::Header) || all {
            let token = self.token(Slot::Header);
            commands.push(Command::Load {
                token,
                load: Load::Header,
            });
        }
        if let Some(load) = self.top_refresh(all) {
            commands.push(self.load_top(load));
        }
        commands
    }

    fn top_refresh(&self, all: bool) -> Option<Load> {
        let busy = self.pending.contains_key(&Slot::Top) && !all;
        if busy {
            return None;
        }
        let tenant = self.tenant.clone();
        match self.top() {
            Screen::Overview(_) => Some(Load::Overview),
            Screen::Deliveries(s) => {
                if s.query.text.is_some() {
                    // A search streams on its own; a refresh would restart it.
                    return (!s.rows.loaded).then(|| Load::Search {
                        query: s.query.clone(),
                        after: None,
                    });
                }
                (all || s.follow || !s.rows.loaded).then(|| Load::Deliveries {
                    query: self.scoped(&s.query),
                    cursor: None,
                    how: ListLoad::Replace,
                })
            }
            Screen::Detail(s) => Some(Load::Detail {
                id: s.delivery_id.clone(),
            }),
            Screen::Event(s) => Some(Load::Event {
                id: s.event_id.clone(),
            }),
            Screen::EndpointDetail(s) => Some(Load::EndpointDetail {
                id: s.endpoint_id.clone(),
            }),
            Screen::Endpoints(s) => Some(Load::Endpoints {
                tenant,
                filter: s.filter.clone(),
                health_for: health_window(&s.rows),
            }),
            Screen::Subscriptions(s) => Some(Load::Subscriptions {
                endpoint_id: s.endpoint.as_ref().map(|(id, _)| id.clone()),
                tenant,
                first_page: !s.rows.loaded,
            }),
            Screen::Audit(s) => {
                (all || s.rows.selected < self.body_rows()).then_some(Load::Audit { after: None })
            }
            Screen::Help(_) => None,
        }
    }

    /// `query` with the console's tenant filter applied.
    fn scoped(&self, query: &DeliveryQuery) -> DeliveryQuery {
        let mut query = query.clone();
        if query.tenant_name.is_none() {
            query.tenant_name = self.tenant.clone();
        }
        query
    }
}

/// Whether `view` lists rows, and so has a detail strip for the selected one.
pub fn has_strip(view: ViewKind) -> bool {
    matches!(
        view,
        ViewKind::Overview
            | ViewKind::Deliveries
            | ViewKind::Event
            | ViewKind::Endpoints
            | ViewKind::EndpointDetail
            | ViewKind::Subscriptions
            | ViewKind::Audit
    )
}

/// The endpoints near the selection whose health is worth loading.
fn health_window(rows: &Rows<EndpointRow>) -> Vec<String> {
    let start = rows.selected.saturating_sub(HEALTH_WINDOW / 2);
    rows.items
        .iter()
        .skip(start)
        .take(HEALTH_WINDOW)
        .map(|r| r.endpoint.id.clone())
        .collect()
}

#[cfg(test)]
#[path = "app_tests.rs"]
mod tests;
