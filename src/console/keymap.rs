//! The console's keys, as data: one table drives key dispatch, the hint bar
//! and the help screen, so what the help says is always what the keys do.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Which screen a binding belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViewKind {
    Overview,
    Deliveries,
    Detail,
    Event,
    Endpoints,
    EndpointDetail,
    Subscriptions,
    Audit,
    Help,
}

impl ViewKind {
    /// The name shown in breadcrumbs and accepted by `:`.
    pub fn title(self) -> &'static str {
        match self {
            ViewKind::Overview => "Overview",
            ViewKind::Deliveries => "Deliveries",
            ViewKind::Detail => "Delivery",
            ViewKind::Event => "Event",
            ViewKind::Endpoints => "Endpoints",
            ViewKind::EndpointDetail => "Endpoint",
            ViewKind::Subscriptions => "Subscriptions",
            ViewKind::Audit => "Audit",
            ViewKind::Help => "Help",
        }
    }
}

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Up,
    Down,
    Top,
    Bottom,
    PageUp,
    PageDown,
    Open,
    Back,
    Filter,
    Command,
    Help,
    Quit,
    /// Jump to a top-level view.
    Go(ViewKind),
    Mark,
    Retry,
    RetryAllDead,
    PauseResume,
    RotateSecret,
    RevealSecrets,
    Breaker,
    Edit,
    New,
    Delete,
    Follow,
    Subscriptions,
    /// Show a payload's exact bytes, or re-indented again.
    ExactBytes,
    /// The endpoint's deliveries.
    EndpointDeliveries,
    /// Failures by cause over the last hour or the last day.
    CauseWindow,
    /// Send an endpoint's retrying deliveries now.
    RetryNow,
    /// Check an endpoint from this host, step by step.
    Probe,
    /// Retry everything the deliveries filter shows, after a preview.
    RetryFiltered,
    /// Copy the selected row's id to the clipboard.
    CopyId,
    /// Copy the selected delivery as a `curl` command.
    CopyCurl,
}

/// How a binding's key is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Code(KeyCode),
    Ctrl(char),
}

impl Key {
    fn matches(self, event: &KeyEvent) -> bool {
        let ctrl = event.modifiers.contains(KeyModifiers::CONTROL);
        match self {
            Key::Char(c) => !ctrl && event.code == KeyCode::Char(c),
            Key::Code(code) => event.code == code,
            Key::Ctrl(c) => ctrl && event.code == KeyCode::Char(c),
        }
    }

    /// How the key is written in hints and help.
    pub fn label(self) -> String {
        match self {
            Key::Char(' ') => "space".to_string(),
            Key::Char(c) => c.to_string(),
            Key::Ctrl(c) => format!("ctrl-{c}"),
            Key::Code(KeyCode::Enter) => "enter".to_string(),
            Key::Code(KeyCode::Esc) => "esc".to_string(),
            Key::Code(KeyCode::Up) => "↑".to_string(),
            Key::Code(KeyCode::Down) => "↓".to_string(),
            Key::Code(KeyCode::PageUp) => "pgup".to_string(),
            Key::Code(KeyCode::PageDown) => "pgdn".to_string(),
            Key::Code(KeyCode::Home) => "home".to_string(),
            Key::Code(KeyCode::End) => "end".to_string(),
            Key::Code(KeyCode::Tab) => "tab".to_string(),
            Key::Code(other) => format!("{other:?}").to_lowercase(),
        }
    }
}

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everywhere (unless a view binds the same key).
    Global,
    /// In these views only.
    Views(&'static [ViewKind]),
}

/// One row of the keymap.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub keys: &'static [Key],
    pub action: Action,
    /// One line for the help screen.
    pub help: &'static str,
    /// A word or two for the hint bar; `None` keeps it out of the bar.
    pub hint: Option<&'static str>,
    pub scope: Scope,
    /// Changes something: hidden and refused under `--read-only`.
    pub mutating: bool,
}

use ViewKind::{Deliveries, Detail, EndpointDetail, Endpoints, Event, Overview, Subscriptions};

const LISTS: &[ViewKind] = &[
    Overview,
    Deliveries,
    Endpoints,
    Subscriptions,
    ViewKind::Audit,
];

/// Every key the console knows, most specific first (a view's binding wins
/// over a global one for the same key).
pub const KEYMAP: &[Binding] = &[
    Binding {
        keys: &[Key::Code(KeyCode::Enter)],
        action: Action::Open,
        help: "open the deliveries that failed with the selected cause (dead or retrying)",
        hint: Some("cause"),
        scope: Scope::Views(&[EndpointDetail]),
        mutating: false,
    },
    Binding {
        keys: &[Key::Char('l')],
        action: Action::EndpointDeliveries,
        help: "list the endpoint's deliveries",
        hint: Some("deliveries"),
        scope: Scope::Views(&[Endpoints, EndpointDetail]),
        mutating: false,
    },
    Binding {
        keys: &[Key::Code(KeyCode::Tab)],
        action: Action::CauseWindow,
        help: "failures by cause over the last day (tab again: the last hour)",
        hint: Some("hour/day"),
        scope: Scope::Views(&[EndpointDetail]),
        mutating: false,
    },
    Binding {
        keys: &[Key::Char('r')],
        action: Action::Retry,
        help: "retry the selected (or marked) deliveries; redeliver a delivered one",
        hint: Some("retry"),
        scope: Scope::Views(&[Deliveries, Detail, Event]),
        mutating: true,
    },
    Binding {
        keys: &[Key::Char(' ')],
        action: Action::Mark,
        help: "mark or unmark the row for a bulk action",
        hint: Some("mark"),
        scope: Scope::Views(&[Deliveries]),
        mutating: false,
    },
    Binding {
        keys: &[Key::Char('f')],
        action: Action::Follow,
        help: "follow new deliveries as they arrive (f again freezes the list)",
        hint: Some("follow"),
        scope: Scope::Views(&[Deliveries]),
        mutating: false,
    },
    Binding {
        keys: &[Key::Char('p')],
        action: Action::PauseResume,
        help: "pause the endpoint (asks why and until when) or resume it (asks first)",
        hint: Some("pause/resume"),
        scope: Scope::Views(&[Endpoints, EndpointDetail]),
        mutating: true,
    },
    Binding {
        keys: &[Key::Char('R')],
        action: Action::RetryAllDead,
        help: "retry every dead delivery of the endpoint",
        hint: Some("retry dead"),
        scope: Scope::Views(&[Endpoints, EndpointDetail]),
        mutating: true,
    },
    Binding {
        keys: &[Key::Char('R')],
        action: Action::RetryFiltered,
        help: "retry all the filter shows (failed ones), after a preview of what it touches",
        hint: Some("retry all"),
        scope: Scope::Views(&[Deliveries]),
        mutating: true,
    },
    Binding {
        keys: &[Key::Char('P')],
        action: Action::Probe,
        help: "probe: check the endpoint from this host (DNS, connect, TLS, a signed test POST)",
        hint: Some("probe"),
        scope: Scope::Views(&[Endpoints, EndpointDetail]),
        // It sends a request and writes an audit row.
        mutating: true,
    },
    Binding {
        keys: &[Key::Char('N')],
        action: Action::RetryNow,
        help: "retry now: send its retrying deliveries at once, attempt counts kept (asks first)",
        // The bar is full on the endpoints view: help lists it.
        hint: None,
        scope: Scope::Views(&[Endpoints, EndpointDetail]),
        mutating: true,
    },
    Binding {
        keys: &[Key::Char('S')],
        action: Action::RotateSecret,
        help: "rotate the endpoint's signing secret (the old one signs for the grace period)",
        hint: None,
        scope: Scope::Views(&[Endpoints, EndpointDetail]),
        mutating: true,
    },
    Binding {
        keys: &[Key::Char('v')],
        action: Action::RevealSecrets,
        help: "reveal the endpoint's secrets: signing secret, URL password, headers (audited)",
        hint: None,
        scope: Scope::Views(&[Endpoints, EndpointDetail]),
        // Changes no data, but writes an audit row, and --read-only promises
        // that nothing is written (and is what one hands to people who
        // should not see credentials): hidden there.
        mutating: true,
    },
    Binding {
        keys: &[Key::Char('b')],
        action: Action::Breaker,
        help: "the endpoint's circuit breaker: state, figures and transitions; o/c/a force it open, closed or back to auto (asks first)",
        hint: Some("breaker"),
        scope: Scope::Views(&[Endpoints, EndpointDetail]),
        // Reading it changes nothing; forcing it is refused under --read-only.
        mutating: false,
    },
    Binding {
        keys: &[Key::Char('s')],
        action: Action::Subscriptions,
        help: "show the endpoint's subscriptions",
        hint: Some("subs"),
        scope: Scope::Views(&[Endpoints, EndpointDetail]),
        mutating: false,
    },
    Binding {
        keys: &[Key::Char('e')],
        action: Action::Edit,
        help: "edit: the subscription's pattern, or the endpoint's URL, timeout, cap and headers",
        hint: Some("edit"),
        scope: Scope::Views(&[Endpoints, EndpointDetail, Subscriptions]),
        mutating: true,
    },
    Binding {
        keys: &[Key::Char('n')],
        action: Action::New,
        help: "add a subscription",
        hint: Some("new"),
        scope: Scope::Views(&[Subscriptions]),
        mutating: true,
    },
    Binding {
        keys: &[Key::Char('d')],
        action: Action::Delete,
        help: "delete the subscription (or endpoint), after a confirmation",
        hint: Some("delete"),
        scope: Scope::Views(&[Endpoints, Subscriptions]),
        mutating: true,
    },
    Binding {
        keys: &[Key::Code(KeyCode::Enter)],
        action: Action::Open,
        help: "open the delivery's event: its payload and every endpoint it fanned out to",
        hint: Some("event"),
        scope: Scope::Views(&[Detail]),
        mutating: false,
    },
    Binding {
        keys: &[Key::Code(KeyCode::Enter)],
        action: Action::Open,
        help: "open the selected endpoint's delivery",
        hint: Some("open"),
        scope: Scope::Views(&[Event]),
        mutating: false,
    },
    Binding {
        keys: &[Key::Char('y')],
        action: Action::CopyId,
        help: "copy the selected id to the clipboard (OSC 52; the status line shows it too)",
        hint: None,
        scope: Scope::Views(&[
            Overview,
            Deliveries,
            Detail,
            Event,
            Endpoints,
            EndpointDetail,
            Subscriptions,
            ViewKind::Audit,
        ]),
        mutating: false,
    },
    Binding {
        keys: &[Key::Char('Y')],
        action: Action::CopyCurl,
        help: "copy the selected delivery as a curl command with its headers (secrets masked), and show it",
        hint: None,
        scope: Scope::Views(&[Deliveries, Detail, Event]),
        mutating: false,
    },
    Binding {
        keys: &[Key::Char('x')],
        action: Action::ExactBytes,
        help: "the payload's exact bytes, as published (x again: re-indented)",
        // The payload's title names the key, where it applies.
        hint: None,
        scope: Scope::Views(&[Event]),
        mutating: false,
    },
    Binding {
        keys: &[Key::Code(KeyCode::Enter)],
        action: Action::Open,
        help: "open the selected row",
        hint: Some("open"),
        scope: Scope::Views(LISTS),
        mutating: false,
    },
    Binding {
        keys: &[Key::Char('j'), Key::Code(KeyCode::Down)],
        action: Action::Down,
        help: "move down",
        hint: None,
        scope: Scope::Global,
        mutating: false,
    },
    Binding {
        keys: &[Key::Char('k'), Key::Code(KeyCode::Up)],
        action: Action::Up,
        help: "move up",
        hint: None,
        scope: Scope::Global,
        mutating: false,
    },
    Binding {
        keys: &[Key::Char('g'), Key::Code(KeyCode::Home)],
        action: Action::Top,
        help: "go to the first row",
        hint: None,
        scope: Scope::Global,
        mutating: false,
    },
    Binding {
        keys: &[Key::Char('G'), Key::Code(KeyCode::End)],
        action: Action::Bottom,
        help: "go to the last row",
        hint: None,
        scope: Scope::Global,
        mutating: false,
    },
    Binding {
        keys: &[Key::Code(KeyCode::PageUp), Key::Ctrl('b')],
        action: Action::PageUp,
        help: "page up",
        hint: None,
        scope: Scope::Global,
        mutating: false,
    },
    Binding {
        keys: &[Key::Code(KeyCode::PageDown), Key::Ctrl('f')],
        action: Action::PageDown,
        help: "page down",
        hint: None,
        scope: Scope::Global,
        mutating: false,
    },
    Binding {
        keys: &[Key::Code(KeyCode::Esc)],
        action: Action::Back,
        help: "back (or cancel); never changes anything",
        hint: Some("back"),
        scope: Scope::Global,
        mutating: false,
    },
    Binding {
        keys: &[Key::Char('/')],
        action: Action::Filter,
        help: "filter: state:dead,retrying tenant:acme endpoint:prod topic:x event:msg_…; other words search payloads",
        hint: Some("filter"),
        scope: Scope::Global,
        mutating: false,
    },
    Binding {
        keys: &[Key::Char(':')],
        action: Action::Command,
        help: "command: :deliveries :failed :retrying :endpoints :ep NAME :subs :audit :id msg_… :tenant NAME :q",
        hint: Some("cmd"),
        scope: Scope::Global,
        mutating: false,
    },
    Binding {
        keys: &[Key::Char('1')],
        action: Action::Go(Overview),
        help: "overview",
        hint: None,
        scope: Scope::Global,
        mutating: false,
    },
    Binding {
        keys: &[Key::Char('2')],
        action: Action::Go(Deliveries),
        help: "deliveries",
        hint: None,
        scope: Scope::Global,
        mutating: false,
    },
    Binding {
        keys: &[Key::Char('3')],
        action: Action::Go(Endpoints),
        help: "endpoints",
        hint: None,
        scope: Scope::Global,
        mutating: false,
    },
    Binding {
        keys: &[Key::Char('4')],
        action: Action::Go(Subscriptions),
        help: "subscriptions",
        hint: None,
        scope: Scope::Global,
        mutating: false,
    },
    Binding {
        keys: &[Key::Char('5')],
        action: Action::Go(ViewKind::Audit),
        help: "audit log",
        hint: None,
        scope: Scope::Global,
        mutating: false,
    },
    Binding {
        keys: &[Key::Char('?')],
        action: Action::Help,
        help: "help: every key of this view",
        hint: Some("help"),
        scope: Scope::Global,
        mutating: false,
    },
    Binding {
        keys: &[Key::Char('q'), Key::Ctrl('c')],
        action: Action::Quit,
        help: "quit",
        hint: Some("quit"),
        scope: Scope::Global,
        mutating: false,
    },
];

impl Binding {
    fn applies(&self, view: ViewKind, read_only: bool) -> bool {
        if read_only && self.mutating {
            return false;
        }
        match self.scope {
            Scope::Global => true,
            Scope::Views(views) => views.contains(&view),
        }
    }

    /// The binding's keys as shown to people, e.g. `j/↓`.
    pub fn key_labels(&self) -> String {
        self.keys
            .iter()
            .map(|k| k.label())
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// The binding a key press triggers in `view`, if any. Under `--read-only`
/// a mutating key resolves to `Err(binding)` so the caller can say why.
pub fn lookup(
    view: ViewKind,
    event: &KeyEvent,
    read_only: bool,
) -> Option<Result<&'static Binding, &'static Binding>> {
    let hit = KEYMAP.iter().find(|b| {
        b.keys.iter().any(|k| k.matches(event))
            && match b.scope {
                Scope::Global => true,
                Scope::Views(views) => views.contains(&view),
            }
    })?;
    Some(if read_only && hit.mutating {
        Err(hit)
    } else {
        Ok(hit)
    })
}

/// The hint bar's entries for `view`: `(key, word)`.
pub fn hints(view: ViewKind, read_only: bool) -> Vec<(String, &'static str)> {
    KEYMAP
        .iter()
        .filter(|b| b.applies(view, read_only))
        .filter_map(|b| b.hint.map(|hint| (b.keys[0].label(), hint)))
        .collect()
}

/// Every binding that applies in `view`, for the help screen.
pub fn help(view: ViewKind, read_only: bool) -> Vec<&'static Binding> {
    KEYMAP
        .iter()
        .filter(|b| b.applies(view, read_only))
        .collect()
}

#[cfg(test)]
mod tests {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    use super::{Action, ViewKind, help, hints, lookup};

    fn key(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    #[test]
    fn a_views_binding_wins_and_others_do_not_leak() {
        let hit = lookup(ViewKind::Endpoints, &key('p'), false);
        assert_eq!(
            hit.map(|b| b.map(|b| b.action).map_err(|b| b.action)),
            Some(Ok(Action::PauseResume))
        );
        assert!(lookup(ViewKind::Audit, &key('p'), false).is_none());
    }

    #[test]
    fn read_only_refuses_and_hides_mutating_keys() {
        let hit = lookup(ViewKind::Deliveries, &key('r'), true);
        assert!(matches!(hit, Some(Err(b)) if b.action == Action::Retry));
        assert!(
            !hints(ViewKind::Deliveries, true)
                .iter()
                .any(|(_, h)| *h == "retry")
        );
        assert!(help(ViewKind::Endpoints, true).iter().all(|b| !b.mutating));
    }

    #[test]
    fn every_view_has_quit_help_and_back_in_its_help() {
        for view in [
            ViewKind::Overview,
            ViewKind::Deliveries,
            ViewKind::Detail,
            ViewKind::Event,
            ViewKind::Endpoints,
            ViewKind::EndpointDetail,
            ViewKind::Subscriptions,
            ViewKind::Audit,
            ViewKind::Help,
        ] {
            let actions: Vec<Action> = help(view, false).iter().map(|b| b.action).collect();
            for needed in [Action::Quit, Action::Help, Action::Back] {
                assert!(actions.contains(&needed), "{view:?} lacks {needed:?}");
            }
        }
    }

    #[test]
    fn no_key_means_two_things_in_one_view() {
        for view in [
            ViewKind::Overview,
            ViewKind::Deliveries,
            ViewKind::Detail,
            ViewKind::Event,
            ViewKind::Endpoints,
            ViewKind::EndpointDetail,
            ViewKind::Subscriptions,
            ViewKind::Audit,
        ] {
            let bindings = help(view, false);
            for (i, a) in bindings.iter().enumerate() {
                for b in &bindings[i + 1..] {
                    for k in a.keys {
                        assert!(
                            !b.keys.contains(k),
                            "{view:?}: {k:?} bound to {:?} and {:?}",
                            a.action,
                            b.action
                        );
                    }
                }
            }
        }
    }
}
