//! The console's state and its one entry point for change, [`App::update`]:
//! a message (a key, loaded data, an action's result) goes in, the state
//! changes, and commands (loads and actions for `io.rs` to run in the
//! background) come out. No I/O happens here, so every key can be tested.

use std::collections::HashMap;

use crossterm::event::{KeyCode, KeyEvent};

use super::filter::parse_filter;
use super::format::{endpoint_label, group_digits};
use super::input::LineInput;
use super::keymap::{self, Action, ViewKind};
// What `App::update` takes, so also named from here (as the snapshot tests do).
pub use super::msg::Msg;
use super::msg::{Act, Acted, Command, ListLoad, Load, Loaded};
use super::screens::*;
use crate::model::{Delivery, EndpointState, IdKind, now_millis};
use crate::store::QueueSummary;

/// Rows fetched per page of a list.
pub const PAGE: usize = 100;
/// How many endpoints around the selection get their health loaded.
pub const HEALTH_WINDOW: usize = 60;
/// How long a flash message stays.
const FLASH_MS: i64 = 6_000;

/// A line under the body saying what just happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Flash {
    pub text: String,
    pub error: bool,
    pub at: i64,
}

/// A question before a bulk or destructive action; Cancel has the focus
/// until the operator moves it.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirm {
    pub question: String,
    pub confirm_label: &'static str,
    pub act: Act,
    pub confirm_focused: bool,
}

/// What a form edits.
#[derive(Debug, Clone, PartialEq)]
pub enum FormKind {
    NewSubscription,
    EditSubscription { id: String },
    EditEndpoint { id: String },
}

/// One field of a form, with its inline error.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub input: LineInput,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Form {
    pub title: String,
    pub kind: FormKind,
    pub fields: Vec<Field>,
    pub focus: usize,
    /// Sent, waiting for the result.
    pub submitting: bool,
}

/// What keys go to.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Normal,
    Filter(LineInput),
    Command(LineInput),
    Confirm(Confirm),
    Form(Form),
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
    pub progress: Option<Progress>,
    pub size: (u16, u16),
    pub quit: bool,
    /// Something on screen changed since the last draw.
    pub dirty: bool,
    /// Shown in the status bar when nothing more urgent is.
    pub notice: Option<String>,
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
            progress: None,
            size,
            quit: false,
            dirty: true,
            notice: None,
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

    /// Rows the body can show (header, breadcrumbs, table header, flash and
    /// hint lines taken off).
    pub fn body_rows(&self) -> usize {
        usize::from(self.size.1).saturating_sub(6).max(1)
    }

    fn token(&mut self, slot: Slot) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        self.pending.insert(slot, token);
        token
    }

    fn load_top(&mut self, load: Load) -> Command {
        let token = self.token(Slot::Top);
        if let Some(rows_loading) = self.top_loading_mut() {
            *rows_loading = Some(token);
        }
        Command::Load { token, load }
    }

    /// After a list's first rows arrived (`changed`: the screen shows
    /// them): the refresh that reads the whole list.
    fn load_the_rest(&mut self, changed: bool) -> Vec<Command> {
        self.dirty |= changed;
        self.top_refresh(true)
            .map(|load| self.load_top(load))
            .into_iter()
            .collect()
    }

    fn top_loading_mut(&mut self) -> Option<&mut Option<u64>> {
        match self.top_mut() {
            Screen::Deliveries(s) => Some(&mut s.rows.loading),
            Screen::Endpoints(s) => Some(&mut s.rows.loading),
            Screen::Subscriptions(s) => Some(&mut s.rows.loading),
            Screen::Audit(s) => Some(&mut s.rows.loading),
            _ => None,
        }
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
                self.dirty |= expired;
                self.refresh_commands(false)
            }
        }
    }

    fn expire_flash(&mut self) -> bool {
        let stale = self
            .flash
            .as_ref()
            .is_some_and(|f| now_millis() - f.at > FLASH_MS);
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

    // --- keys -------------------------------------------------------------

    fn on_key(&mut self, key: KeyEvent) -> Vec<Command> {
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Normal => self.on_normal_key(key),
            Mode::Filter(mut input) => match key.code {
                KeyCode::Esc => Vec::new(),
                KeyCode::Enter => self.apply_filter(input.text().trim()),
                _ => {
                    input.handle(&key);
                    self.mode = Mode::Filter(input);
                    Vec::new()
                }
            },
            Mode::Command(mut input) => match key.code {
                KeyCode::Esc => Vec::new(),
                KeyCode::Enter => self.run_command(input.text().trim()),
                _ => {
                    input.handle(&key);
                    self.mode = Mode::Command(input);
                    Vec::new()
                }
            },
            Mode::Confirm(mut confirm) => match key.code {
                KeyCode::Esc | KeyCode::Char('n') | KeyCode::Char('q') => {
                    self.flash("cancelled: nothing was changed", false);
                    Vec::new()
                }
                KeyCode::Tab
                | KeyCode::BackTab
                | KeyCode::Left
                | KeyCode::Right
                | KeyCode::Char('h')
                | KeyCode::Char('l') => {
                    confirm.confirm_focused = !confirm.confirm_focused;
                    self.mode = Mode::Confirm(confirm);
                    Vec::new()
                }
                KeyCode::Enter if confirm.confirm_focused => vec![Command::Act(confirm.act)],
                KeyCode::Enter => {
                    self.flash("cancelled: nothing was changed", false);
                    Vec::new()
                }
                _ => {
                    self.mode = Mode::Confirm(confirm);
                    Vec::new()
                }
            },
            Mode::Form(form) => self.on_form_key(form, key),
        }
    }

    fn on_normal_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let view = self.view();
        let binding = match keymap::lookup(view, &key, self.read_only) {
            None => return Vec::new(),
            Some(Err(refused)) => {
                self.flash(
                    format!(
                        "read-only: {} ({}) is disabled",
                        refused.key_labels(),
                        refused.hint.unwrap_or("change")
                    ),
                    true,
                );
                return Vec::new();
            }
            Some(Ok(binding)) => binding,
        };
        let page = self.body_rows() as isize;
        match binding.action {
            Action::Quit => {
                self.quit = true;
                Vec::new()
            }
            Action::Up => self.move_selection(-1),
            Action::Down => self.move_selection(1),
            Action::PageUp => self.move_selection(-page),
            Action::PageDown => self.move_selection(page),
            Action::Top => self.jump(true),
            Action::Bottom => self.jump(false),
            Action::Back => self.back(),
            Action::Filter => {
                let current = match self.top() {
                    Screen::Deliveries(s) => s.query.label.clone(),
                    Screen::Endpoints(s) => s.filter.clone().unwrap_or_default(),
                    _ => String::new(),
                };
                self.mode = Mode::Filter(LineInput::with_text(&current));
                Vec::new()
            }
            Action::Command => {
                self.mode = Mode::Command(LineInput::default());
                Vec::new()
            }
            Action::Help => {
                if view != ViewKind::Help {
                    self.stack
                        .push(Screen::Help(HelpScreen { view, scroll: 0 }));
                }
                Vec::new()
            }
            Action::Go(kind) => self.go(kind),
            Action::Open => self.open(),
            Action::Mark => {
                if let Screen::Deliveries(s) = self.top_mut()
                    && let Some(id) = s.rows.selected_item().map(|d| d.id.clone())
                {
                    if !s.marked.remove(&id) {
                        s.marked.insert(id);
                    }
                    s.rows.move_by(1);
                }
                Vec::new()
            }
            Action::Follow => {
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
            Action::Retry => self.retry(),
            Action::RetryAllDead => self.retry_all_dead(),
            Action::PauseResume => self.pause_resume(),
            Action::RotateSecret => self.rotate_secret(),
            Action::Edit => self.edit(),
            Action::New => self.new_subscription(),
            Action::Delete => self.delete(),
            Action::Subscriptions => {
                if let Screen::Endpoints(s) = self.top()
                    && let Some(row) = s.rows.selected_item()
                {
                    let endpoint = (row.endpoint.id.clone(), endpoint_label(&row.endpoint));
                    return self.push(Screen::Subscriptions(SubscriptionsScreen {
                        endpoint: Some(endpoint),
                        ..SubscriptionsScreen::default()
                    }));
                }
                Vec::new()
            }
        }
    }

    fn move_selection(&mut self, delta: isize) -> Vec<Command> {
        let height = self.body_rows();
        let mut commands = Vec::new();
        let mut load_older = None;
        let mut load_newer = None;
        match self.top_mut() {
            Screen::Deliveries(s) => {
                s.rows.move_by(delta);
                s.rows.scroll_into_view(height);
                if s.rows.wants_older(height) && s.query.text.is_none() {
                    load_older = Some((s.query.clone(), s.rows.older.clone()));
                } else if delta < 0 && s.rows.wants_newer() {
                    load_newer = Some((s.query.clone(), s.rows.newer.clone()));
                }
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
            }
            Screen::Endpoints(s) => {
                let before = health_window(&s.rows);
                s.rows.move_by(delta);
                s.rows.scroll_into_view(height);
                let after = health_window(&s.rows);
                if before != after {
                    let filter = s.filter.clone();
                    let tenant = self.tenant.clone();
                    commands.push(self.load_top(Load::Endpoints {
                        tenant,
                        filter,
                        health_for: after,
                    }));
                }
            }
            Screen::Subscriptions(s) => {
                s.rows.move_by(delta);
                s.rows.scroll_into_view(height);
            }
            Screen::Audit(s) => {
                s.rows.move_by(delta);
                s.rows.scroll_into_view(height);
                if s.rows.wants_older(height) {
                    let after = s.rows.older.clone();
                    commands.push(self.load_top(Load::Audit { after }));
                }
            }
            Screen::Overview(s) => {
                let last = s.worst.len().saturating_sub(1);
                s.selected = s.selected.saturating_add_signed(delta).min(last);
            }
            Screen::Detail(s) => {
                s.scroll = s
                    .scroll
                    .saturating_add_signed(delta.clamp(-1000, 1000) as i16);
            }
            Screen::Help(s) => {
                s.scroll = s
                    .scroll
                    .saturating_add_signed(delta.clamp(-1000, 1000) as i16);
            }
        }
        if let Some((query, cursor)) = load_older {
            let query = self.scoped(&query);
            commands.push(self.load_top(Load::Deliveries {
                query,
                cursor,
                how: ListLoad::Older,
            }));
        }
        if let Some((query, cursor)) = load_newer {
            let query = self.scoped(&query);
            commands.push(self.load_top(Load::Deliveries {
                query,
                cursor,
                how: ListLoad::Newer,
            }));
        }
        commands
    }

    /// `g` (top) and `G` (bottom): on a paged list the far end is loaded.
    fn jump(&mut self, top: bool) -> Vec<Command> {
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
            Screen::Detail(s) => {
                s.scroll = if top { 0 } else { u16::MAX / 2 };
                None
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

    /// `Esc`: back one level; it never changes data.
    fn back(&mut self) -> Vec<Command> {
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

    /// Replaces the whole stack with a top-level view.
    fn go(&mut self, kind: ViewKind) -> Vec<Command> {
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
            ViewKind::Detail => return Vec::new(),
        };
        self.stack = vec![screen];
        self.pending.remove(&Slot::Top);
        self.refresh_commands(false)
    }

    /// `Enter`: drill into the selected row.
    fn open(&mut self) -> Vec<Command> {
        let next = match self.top() {
            Screen::Deliveries(s) => s.rows.selected_item().map(|d| {
                Screen::Detail(DetailScreen {
                    delivery_id: d.id.clone(),
                    ..DetailScreen::default()
                })
            }),
            Screen::Endpoints(s) => s.rows.selected_item().map(|row| {
                deliveries_of_endpoint(&row.endpoint.id, &endpoint_label(&row.endpoint))
            }),
            Screen::Overview(s) => s
                .worst
                .get(s.selected)
                .map(|w| deliveries_of_endpoint(&w.endpoint_id, &w.label)),
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
                    Some(IdKind::Endpoint) => Some(deliveries_of_endpoint(id, id)),
                    _ => None,
                }
            }),
            Screen::Detail(_) | Screen::Help(_) => None,
        };
        match next {
            Some(screen) => self.push(screen),
            None => Vec::new(),
        }
    }

    // --- filter and command mode -------------------------------------------

    fn apply_filter(&mut self, text: &str) -> Vec<Command> {
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
                self.stack = vec![deliveries];
                self.apply_filter(text)
            }
        }
    }

    fn run_command(&mut self, line: &str) -> Vec<Command> {
        let mut words = line.split_whitespace();
        let verb = words.next().unwrap_or_default().trim_start_matches(':');
        let argument = words.collect::<Vec<_>>().join(" ");
        match verb {
            "" => Vec::new(),
            "q" | "quit" | "q!" => {
                self.quit = true;
                Vec::new()
            }
            "o" | "overview" => self.go(ViewKind::Overview),
            "d" | "dlv" | "deliveries" => self.go(ViewKind::Deliveries),
            "failed" | "dead" => {
                self.stack = vec![Screen::Deliveries(DeliveriesScreen::default())];
                self.apply_filter("state:dead")
            }
            "ep" | "endpoint" | "endpoints" if argument.is_empty() => self.go(ViewKind::Endpoints),
            "ep" | "endpoint" => {
                self.stack = vec![Screen::Deliveries(DeliveriesScreen::default())];
                self.apply_filter(&format!("endpoint:{argument}"))
            }
            "s" | "subs" | "subscriptions" => self.go(ViewKind::Subscriptions),
            "a" | "audit" => self.go(ViewKind::Audit),
            "h" | "help" => self.go(ViewKind::Help),
            "id" => self.jump_to_id(&argument),
            "tenant" | "t" => {
                self.tenant = (!argument.is_empty() && argument != "all").then(|| argument.clone());
                let text = match &self.tenant {
                    Some(name) => {
                        format!("showing tenant {name} only (:tenant all to show every tenant)")
                    }
                    None => "showing every tenant".to_string(),
                };
                self.flash(text, false);
                self.pending.remove(&Slot::Top);
                if let Screen::Deliveries(s) = self.top_mut() {
                    s.rows = Rows::default();
                }
                self.refresh_commands(true)
            }
            other if IdKind::of(other).is_some() => self.jump_to_id(other),
            other => {
                self.flash(
                    format!("unknown command :{other} (try :deliveries :failed :endpoints :ep NAME :subs :audit :id ID :tenant NAME :q)"),
                    true,
                );
                Vec::new()
            }
        }
    }

    /// `:id msg_…` shows an event's deliveries; `:id dlv_…` one delivery.
    fn jump_to_id(&mut self, id: &str) -> Vec<Command> {
        match IdKind::of(id) {
            Some(IdKind::Delivery) => {
                self.stack = vec![
                    Screen::Deliveries(DeliveriesScreen::default()),
                    Screen::Detail(DetailScreen {
                        delivery_id: id.to_string(),
                        ..DetailScreen::default()
                    }),
                ];
                self.pending.remove(&Slot::Top);
                self.refresh_commands(false)
            }
            Some(IdKind::Event) => {
                let mut screen = DeliveriesScreen {
                    context: Some(format!("event {id}")),
                    ..DeliveriesScreen::default()
                };
                screen.query.filter.event_id = Some(id.to_string());
                self.stack = vec![Screen::Deliveries(screen)];
                self.pending.remove(&Slot::Top);
                self.refresh_commands(false)
            }
            Some(IdKind::Endpoint) => {
                self.stack = vec![deliveries_of_endpoint(id, id)];
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

    // --- actions ------------------------------------------------------------

    /// `r`: asks first, naming the deliveries' endpoint and how many, since
    /// a retry sends the webhook to the customer again.
    fn retry(&mut self) -> Vec<Command> {
        let (ids, targets): (Vec<String>, Vec<&Delivery>) = match self.top() {
            Screen::Deliveries(s) if !s.marked.is_empty() => (
                s.marked.iter().cloned().collect(),
                s.rows
                    .items
                    .iter()
                    .filter(|d| s.marked.contains(&d.id))
                    .collect(),
            ),
            Screen::Deliveries(s) => match s.rows.selected_item() {
                Some(d) => (vec![d.id.clone()], vec![d]),
                None => return Vec::new(),
            },
            Screen::Detail(s) => (
                vec![s.delivery_id.clone()],
                s.detail.iter().map(|d| &d.delivery).collect(),
            ),
            _ => return Vec::new(),
        };
        let question = retry_question(ids.len(), &targets);
        self.mode = Mode::Confirm(Confirm {
            question,
            confirm_label: "Retry",
            act: Act::Retry(ids),
            confirm_focused: false,
        });
        Vec::new()
    }

    fn selected_endpoint(&self) -> Option<&crate::model::Endpoint> {
        match self.top() {
            Screen::Endpoints(s) => s.rows.selected_item().map(|row| &row.endpoint),
            _ => None,
        }
    }

    fn retry_all_dead(&mut self) -> Vec<Command> {
        let Some(endpoint) = self.selected_endpoint() else {
            return Vec::new();
        };
        let load = Load::DeadCount {
            endpoint_id: endpoint.id.clone(),
            label: endpoint_label(endpoint),
        };
        let token = self.next_token;
        self.next_token += 1;
        self.flash("counting dead deliveries…", false);
        vec![Command::Load { token, load }]
    }

    fn pause_resume(&mut self) -> Vec<Command> {
        let Some(endpoint) = self.selected_endpoint() else {
            return Vec::new();
        };
        let act = match endpoint.state {
            EndpointState::Active => Act::Pause(endpoint.id.clone()),
            EndpointState::Paused | EndpointState::Disabled => Act::Resume(endpoint.id.clone()),
        };
        vec![Command::Act(act)]
    }

    fn rotate_secret(&mut self) -> Vec<Command> {
        let Some(endpoint) = self.selected_endpoint() else {
            return Vec::new();
        };
        self.mode = Mode::Confirm(Confirm {
            question: format!(
                "Rotate the signing secret of {}? The old secret keeps signing for the grace period.",
                endpoint_label(endpoint)
            ),
            confirm_label: "Rotate",
            act: Act::RotateSecret(endpoint.id.clone()),
            confirm_focused: false,
        });
        Vec::new()
    }

    fn edit(&mut self) -> Vec<Command> {
        let form = match self.top() {
            Screen::Endpoints(s) => s.rows.selected_item().map(|row| {
                let e = &row.endpoint;
                let headers: Vec<String> =
                    e.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                Form {
                    title: format!("Edit endpoint {}", endpoint_label(e)),
                    kind: FormKind::EditEndpoint { id: e.id.clone() },
                    fields: vec![
                        field("url", "URL", &e.url),
                        field(
                            "timeout",
                            "Timeout (e.g. 15s; empty: default)",
                            &e.timeout_ms
                                .map(|ms| {
                                    crate::config::format_duration(
                                        std::time::Duration::from_millis(ms.max(0) as u64),
                                    )
                                })
                                .unwrap_or_default(),
                        ),
                        field(
                            "max_in_flight",
                            "Max in flight (empty: default)",
                            &e.max_in_flight.map(|n| n.to_string()).unwrap_or_default(),
                        ),
                        field(
                            "header",
                            "Headers (Name: value; Name: value)",
                            &headers.join("; "),
                        ),
                    ],
                    focus: 0,
                    submitting: false,
                }
            }),
            Screen::Subscriptions(s) => s.rows.selected_item().map(|sub| Form {
                title: format!(
                    "Edit subscription of {}/{}",
                    sub.tenant_name, sub.endpoint_name
                ),
                kind: FormKind::EditSubscription { id: sub.id.clone() },
                fields: vec![
                    field("topic", "Topic pattern", &sub.pattern),
                    field(
                        "description",
                        "Description",
                        sub.description.as_deref().unwrap_or_default(),
                    ),
                ],
                focus: 0,
                submitting: false,
            }),
            _ => None,
        };
        if let Some(form) = form {
            self.mode = Mode::Form(form);
        }
        Vec::new()
    }

    fn new_subscription(&mut self) -> Vec<Command> {
        let endpoint = match self.top() {
            Screen::Subscriptions(s) => s
                .endpoint
                .as_ref()
                .map(|(id, _)| id.clone())
                .or_else(|| s.rows.selected_item().map(|sub| sub.endpoint_id.clone()))
                .unwrap_or_default(),
            _ => return Vec::new(),
        };
        self.mode = Mode::Form(Form {
            title: "New subscription".to_string(),
            kind: FormKind::NewSubscription,
            fields: vec![
                field("endpoint", "Endpoint (id, TENANT/NAME or name)", &endpoint),
                field(
                    "topic",
                    "Topic pattern (resident.update, resident.*, resident.**, *)",
                    "",
                ),
                field("description", "Description", ""),
            ],
            focus: if endpoint.is_empty() { 0 } else { 1 },
            submitting: false,
        });
        Vec::new()
    }

    fn delete(&mut self) -> Vec<Command> {
        let confirm = match self.top() {
            Screen::Subscriptions(s) => s.rows.selected_item().map(|sub| Confirm {
                question: format!(
                    "Delete the subscription of {}/{} to {}?",
                    sub.tenant_name, sub.endpoint_name, sub.pattern
                ),
                confirm_label: "Delete",
                act: Act::DeleteSubscription(sub.id.clone()),
                confirm_focused: false,
            }),
            Screen::Endpoints(s) => s.rows.selected_item().map(|row| Confirm {
                question: format!(
                    "Delete endpoint {} and its subscriptions? Its {}unfinished deliveries are cancelled.",
                    endpoint_label(&row.endpoint),
                    // Counted for the rows around the selection (not yet after a long jump).
                    row.queue.map_or_else(String::new, |q| format!(
                        "{} ",
                        group_digits((q.backlog() + q.in_flight).max(0) as u64)
                    ))
                ),
                confirm_label: "Delete",
                act: Act::DeleteEndpoint(row.endpoint.id.clone()),
                confirm_focused: false,
            }),
            _ => None,
        };
        if let Some(confirm) = confirm {
            self.mode = Mode::Confirm(confirm);
        }
        Vec::new()
    }

    fn on_form_key(&mut self, mut form: Form, key: KeyEvent) -> Vec<Command> {
        if form.submitting {
            self.mode = Mode::Form(form);
            return Vec::new();
        }
        let count = form.fields.len();
        match key.code {
            KeyCode::Esc => {
                self.flash("cancelled: nothing was saved", false);
                return Vec::new();
            }
            KeyCode::Tab | KeyCode::Down => form.focus = (form.focus + 1) % count,
            KeyCode::BackTab | KeyCode::Up => form.focus = (form.focus + count - 1) % count,
            KeyCode::Enter => {
                if validate_form(&mut form) {
                    let act = form_act(&form);
                    form.submitting = true;
                    self.mode = Mode::Form(form);
                    return vec![Command::Act(act)];
                }
            }
            _ => {
                if let Some(field) = form.fields.get_mut(form.focus)
                    && field.input.handle(&key)
                {
                    field.error = None;
                }
            }
        }
        self.mode = Mode::Form(form);
        Vec::new()
    }

    // --- results ----------------------------------------------------------------

    fn on_acted(&mut self, acted: Acted) -> Vec<Command> {
        self.progress = None;
        match acted {
            Acted::Refused { field, reason } => {
                if let Mode::Form(form) = &mut self.mode {
                    form.submitting = false;
                    match form.fields.iter_mut().find(|f| f.name == field) {
                        Some(f) => f.error = Some(reason),
                        None => {
                            if let Some(f) = form.fields.first_mut() {
                                f.error = Some(format!("{field}: {reason}"));
                            }
                        }
                    }
                    self.dirty = true;
                    return Vec::new();
                }
                self.flash(format!("{field}: {reason}"), true);
                Vec::new()
            }
            Acted::Failed(reason) => {
                if let Mode::Form(form) = &mut self.mode {
                    form.submitting = false;
                    if let Some(f) = form.fields.get_mut(form.focus) {
                        f.error = Some(reason.clone());
                    }
                }
                self.flash(reason, true);
                Vec::new()
            }
            Acted::Done(text) => {
                if matches!(self.mode, Mode::Form(_)) {
                    self.mode = Mode::Normal;
                }
                if let Screen::Deliveries(s) = self.top_mut() {
                    s.marked.clear();
                }
                self.flash(text, false);
                self.pending.remove(&Slot::Top);
                self.refresh_commands(true)
            }
        }
    }

    fn on_loaded(&mut self, token: u64, result: Result<Loaded, String>) -> Vec<Command> {
        let slot = self
            .pending
            .iter()
            .find(|(_, t)| **t == token)
            .map(|(slot, _)| *slot);
        if let Some(slot) = slot {
            self.pending.remove(&slot);
        }
        let loaded = match result {
            Ok(loaded) => {
                if self.db_error.take().is_some() {
                    self.dirty = true;
                }
                loaded
            }
            Err(reason) => {
                if let Some(loading) = self.top_loading_mut() {
                    *loading = None;
                }
                if self.db_error.as_ref() != Some(&reason) {
                    self.db_error = Some(reason);
                    self.dirty = true;
                }
                return Vec::new();
            }
        };
        // A count for a confirmation is answered whatever screen is on top.
        if let Loaded::DeadCount {
            endpoint_id,
            label,
            count,
        } = loaded
        {
            if count == 0 {
                self.flash(format!("{label} has no dead deliveries"), false);
            } else {
                self.mode = Mode::Confirm(Confirm {
                    question: format!("Retry {} dead deliveries to {label}?", group_digits(count)),
                    confirm_label: "Retry",
                    act: Act::RetryAllDead {
                        endpoint_id,
                        label,
                        count,
                    },
                    confirm_focused: false,
                });
                self.dirty = true;
            }
            return Vec::new();
        }
        if slot.is_none() {
            // A stale answer: the screen it was for is gone.
            return Vec::new();
        }
        let height = self.body_rows();
        let changed = match (loaded, self.top_mut()) {
            (
                Loaded::Header {
                    summary,
                    dispatchers_alive,
                },
                _,
            ) => {
                let mut compare = summary.clone();
                compare.now = self.summary.as_ref().map_or(0, |s| s.now);
                let changed = self.summary.as_ref() != Some(&compare)
                    || self.dispatchers_alive != dispatchers_alive;
                self.summary = Some(summary);
                self.dispatchers_alive = dispatchers_alive;
                changed
            }
            (Loaded::Overview { throughput, worst }, Screen::Overview(s)) => {
                let changed = !s.loaded || s.throughput != throughput || s.worst != worst;
                s.throughput = throughput;
                s.worst = worst;
                s.loaded = true;
                s.selected = s.selected.min(s.worst.len().saturating_sub(1));
                changed
            }
            (
                Loaded::Deliveries {
                    rows,
                    older,
                    newer,
                    how,
                },
                Screen::Deliveries(s),
            ) => {
                s.rows.loading = None;
                let before = (s.rows.items.clone(), s.rows.selected);
                match how {
                    ListLoad::Replace => {
                        s.rows.replace(rows, |d| &d.id);
                        s.rows.older = older;
                        s.rows.newer = None;
                    }
                    ListLoad::Tail => {
                        s.rows.items = rows;
                        s.rows.selected = s.rows.items.len().saturating_sub(1);
                        s.rows.older = None;
                        s.rows.newer = newer;
                        s.rows.loaded = true;
                    }
                    ListLoad::Older => {
                        s.rows.items.extend(rows);
                        s.rows.older = older;
                    }
                    ListLoad::Newer => {
                        let added = rows.len();
                        let mut items = rows;
                        items.append(&mut s.rows.items);
                        s.rows.items = items;
                        s.rows.selected += added;
                        s.rows.offset += added;
                        s.rows.newer = newer;
                    }
                }
                s.rows.scroll_into_view(height);
                before != (s.rows.items.clone(), s.rows.selected) || !s.rows.loaded
            }
            (Loaded::Search { rows, progress }, Screen::Deliveries(s)) => {
                s.rows.loading = None;
                s.rows.loaded = true;
                s.rows.items.extend(rows);
                let done = progress.done;
                let total = s.search.as_ref().map_or(0, |p| p.scanned) + progress.scanned;
                s.search = Some(SearchProgress {
                    scanned: total,
                    next: progress.next.clone(),
                    done,
                });
                // Keep streaming until the screen is full; then on demand.
                if !done && s.rows.items.len() < height {
                    let query = s.query.clone();
                    let after = progress.next;
                    self.dirty = true;
                    return vec![self.load_top(Load::Search { query, after })];
                }
                true
            }
            (Loaded::Detail(detail), Screen::Detail(s)) => {
                let changed = s.detail.as_ref() != Some(&*detail);
                s.detail = Some(*detail);
                changed
            }
            (Loaded::Endpoints { rows, complete }, Screen::Endpoints(s)) => {
                s.rows.loading = None;
                let changed = !s.rows.loaded || s.rows.items != rows;
                s.rows.replace(rows, |r| &r.endpoint.id);
                if !complete {
                    return self.load_the_rest(changed);
                }
                changed
            }
            (Loaded::Subscriptions { rows, complete }, Screen::Subscriptions(s)) => {
                s.rows.loading = None;
                let changed = !s.rows.loaded || s.rows.items != rows;
                s.rows.replace(rows, |r| &r.id);
                if !complete {
                    return self.load_the_rest(changed);
                }
                changed
            }
            (
                Loaded::Audit {
                    rows,
                    older,
                    append,
                },
                Screen::Audit(s),
            ) => {
                s.rows.loading = None;
                let changed = append || !s.rows.loaded || s.rows.items != rows;
                if append {
                    s.rows.items.extend(rows);
                    s.rows.loaded = true;
                } else {
                    s.rows.replace(rows, |r| &r.id);
                }
                s.rows.older = older;
                changed
            }
            _ => false,
        };
        self.dirty |= changed;
        Vec::new()
    }
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

fn deliveries_of_endpoint(endpoint_id: &str, label: &str) -> Screen {
    let mut screen = DeliveriesScreen {
        follow: true,
        context: Some(label.to_string()),
        ..DeliveriesScreen::default()
    };
    screen.query.filter.endpoint_id = Some(endpoint_id.to_string());
    Screen::Deliveries(screen)
}

fn field(name: &'static str, label: &'static str, value: &str) -> Field {
    Field {
        name,
        label,
        input: LineInput::with_text(value),
        error: None,
    }
}

/// Checks what can be checked without the database, inline; returns
/// whether the form may be sent.
fn validate_form(form: &mut Form) -> bool {
    let mut ok = true;
    for field in &mut form.fields {
        let value = field.input.text().trim();
        let error = match field.name {
            "topic" => crate::topic::TopicPattern::parse(value)
                .err()
                .map(|e| e.to_string()),
            "url" => crate::ops::validate_url(value).err().map(|e| match e {
                crate::ops::OpsError::Invalid { reason, .. } => reason,
                other => other.to_string(),
            }),
            "endpoint" if value.is_empty() => {
                Some("which endpoint? give its id or TENANT/NAME".to_string())
            }
            "timeout" if !value.is_empty() => crate::config::parse_duration(value).err(),
            "max_in_flight" if !value.is_empty() => value
                .parse::<u32>()
                .err()
                .map(|_| format!("{value:?} is not a whole number")),
            _ => None,
        };
        if error.is_some() {
            ok = false;
        }
        field.error = error;
    }
    ok
}

fn form_value(form: &Form, name: &str) -> String {
    form.fields
        .iter()
        .find(|f| f.name == name)
        .map(|f| f.input.text().trim().to_string())
        .unwrap_or_default()
}

fn form_act(form: &Form) -> Act {
    match &form.kind {
        FormKind::NewSubscription => Act::NewSubscription {
            endpoint: form_value(form, "endpoint"),
            pattern: form_value(form, "topic"),
            description: form_value(form, "description"),
        },
        FormKind::EditSubscription { id } => Act::EditSubscription {
            id: id.clone(),
            pattern: form_value(form, "topic"),
            description: form_value(form, "description"),
        },
        FormKind::EditEndpoint { id } => Act::EditEndpoint {
            id: id.clone(),
            url: form_value(form, "url"),
            timeout: form_value(form, "timeout"),
            max_in_flight: form_value(form, "max_in_flight"),
            headers: form_value(form, "header"),
        },
    }
}

/// The question before retrying `count` deliveries, of which `known` are
/// loaded: "Retry 1 delivery (order.created, ✗ dead after 3 attempts) to
/// globex/orders?" or "Retry 3 marked deliveries to 2 endpoints (…)?".
fn retry_question(count: usize, known: &[&Delivery]) -> String {
    let mut endpoints: Vec<String> = known
        .iter()
        .map(|d| format!("{}/{}", d.tenant_name, d.endpoint_name))
        .collect();
    endpoints.sort();
    endpoints.dedup();
    let to = match endpoints.as_slice() {
        [] => String::new(),
        [one] => format!(" to {one}"),
        many => format!(" to {} endpoints ({})", many.len(), many.join(", ")),
    };
    match (count, known) {
        (1, [d]) => format!(
            "Retry 1 delivery ({}, {} after {} attempt{}){to}? It starts a fresh schedule.",
            d.topic,
            super::theme::state_label(d.state),
            d.attempts,
            if d.attempts == 1 { "" } else { "s" }
        ),
        (1, _) => format!("Retry 1 delivery{to}? It starts a fresh schedule."),
        (n, _) => format!(
            "Retry {} marked deliveries{to}? Each starts a fresh schedule.",
            group_digits(n as u64)
        ),
    }
}

#[cfg(test)]
#[path = "app_tests.rs"]
mod tests;
