//! The operator's actions (retry, retry all dead, pause/resume, rotate the
//! secret, edit, new, delete): what each asks before it acts, and how its
//! result shows.

use super::confirm::Confirm;
use super::forms::Form;
use super::{App, Mode, Slot};
use crate::console::format::{endpoint_label, group_digits};
use crate::console::msg::{Act, Acted, Command, Load};
use crate::console::screens::Screen;
use crate::console::theme::state_label;
use crate::model::{Delivery, Endpoint, EndpointState, Millis, now_millis};
use crate::ops::{from_now, local_time_short};

impl App {
    /// `r`: asks first, naming the deliveries' endpoint and how many, since
    /// a retry sends the webhook to the customer again.
    pub(super) fn retry(&mut self) -> Vec<Command> {
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
        self.mode = Mode::Confirm(Confirm::ask(question, "Retry", Act::Retry(ids)));
        Vec::new()
    }

    fn selected_endpoint(&self) -> Option<&Endpoint> {
        match self.top() {
            Screen::Endpoints(s) => s.rows.selected_item().map(|row| &row.endpoint),
            _ => None,
        }
    }

    /// `R`: the question needs the count of dead deliveries, which only the
    /// database knows; [`App::ask_to_retry_all_dead`] asks once it arrives.
    pub(super) fn retry_all_dead(&mut self) -> Vec<Command> {
        let Some(endpoint) = self.selected_endpoint() else {
            return Vec::new();
        };
        let load = Load::DeadCount {
            endpoint_id: endpoint.id.clone(),
            label: endpoint_label(endpoint),
        };
        // No slot: the count is wanted whatever the screen shows meanwhile.
        let token = self.next_token;
        self.next_token += 1;
        self.flash("counting dead deliveries…", false);
        vec![Command::Load { token, load }]
    }

    pub(super) fn ask_to_retry_all_dead(
        &mut self,
        endpoint_id: String,
        label: String,
        count: u64,
    ) -> Vec<Command> {
        if count == 0 {
            self.flash(format!("{label} has no dead deliveries"), false);
            return Vec::new();
        }
        self.mode = Mode::Confirm(Confirm::ask(
            format!("Retry {} dead deliveries to {label}?", group_digits(count)),
            "Retry",
            Act::RetryAllDead {
                endpoint_id,
                label,
                count,
            },
        ));
        self.dirty = true;
        Vec::new()
    }

    /// `p`: never acts at once. Pausing asks why and for how long, then to
    /// confirm; resuming first counts what it would send (only the
    /// database knows), and [`App::ask_to_resume`] asks once that arrives.
    pub(super) fn pause_resume(&mut self) -> Vec<Command> {
        let Some(endpoint) = self.selected_endpoint() else {
            return Vec::new();
        };
        match endpoint.state {
            EndpointState::Active => {
                self.mode = Mode::Form(Form::pause_endpoint(endpoint));
                Vec::new()
            }
            EndpointState::Paused | EndpointState::Disabled => {
                let load = Load::ResumeCheck {
                    endpoint_id: endpoint.id.clone(),
                };
                // No slot: the answer is wanted whatever the screen shows meanwhile.
                let token = self.next_token;
                self.next_token += 1;
                self.flash("counting held deliveries…", false);
                vec![Command::Load { token, load }]
            }
        }
    }

    /// The pause form was filled in: asks to confirm, saying what pausing
    /// holds, until when and why.
    pub(super) fn confirm_pause(&mut self, label: &str, act: Act) -> Vec<Command> {
        let Act::Pause { reason, until, .. } = &act else {
            return Vec::new();
        };
        let question = pause_question(label, reason.as_deref(), *until, now_millis());
        self.mode = Mode::Confirm(Confirm::ask(question, "Pause", act));
        self.dirty = true;
        Vec::new()
    }

    /// Asks before resuming `endpoint`, naming how many held deliveries
    /// go out at once and, for one hookline disabled, why and when.
    pub(super) fn ask_to_resume(
        &mut self,
        endpoint: &Endpoint,
        held: u64,
        retrying: u64,
    ) -> Vec<Command> {
        if endpoint.state == EndpointState::Active {
            self.flash(
                format!("{} is already active", endpoint_label(endpoint)),
                false,
            );
            return Vec::new();
        }
        self.mode = Mode::Confirm(Confirm::ask(
            resume_question(endpoint, held, retrying, now_millis()),
            "Resume",
            Act::Resume(endpoint.id.clone()),
        ));
        self.dirty = true;
        Vec::new()
    }

    pub(super) fn rotate_secret(&mut self) -> Vec<Command> {
        let Some(endpoint) = self.selected_endpoint() else {
            return Vec::new();
        };
        self.mode = Mode::Confirm(Confirm::ask(
            format!(
                "Rotate the signing secret of {}? The old secret keeps signing for the grace period.",
                endpoint_label(endpoint)
            ),
            "Rotate",
            Act::RotateSecret(endpoint.id.clone()),
        ));
        Vec::new()
    }

    /// `v`: asks `ops` for the selected endpoint's secrets, which records
    /// the reveal; they show in a dialog until the next key.
    pub(super) fn reveal_secrets(&mut self) -> Vec<Command> {
        let Some(endpoint) = self.selected_endpoint() else {
            return Vec::new();
        };
        let act = Act::RevealSecrets(endpoint.id.clone());
        self.flash("revealing secrets (recorded in the audit log)…", false);
        vec![Command::Act(act)]
    }

    pub(super) fn edit(&mut self) -> Vec<Command> {
        let form = match self.top() {
            Screen::Endpoints(s) => s
                .rows
                .selected_item()
                .map(|row| Form::edit_endpoint(&row.endpoint)),
            Screen::Subscriptions(s) => s.rows.selected_item().map(Form::edit_subscription),
            _ => None,
        };
        if let Some(form) = form {
            self.mode = Mode::Form(form);
        }
        Vec::new()
    }

    /// `n`: for the endpoint whose subscriptions are listed, else the
    /// selected subscription's endpoint.
    pub(super) fn new_subscription(&mut self) -> Vec<Command> {
        let endpoint = match self.top() {
            Screen::Subscriptions(s) => s
                .endpoint
                .as_ref()
                .map(|(id, _)| id.clone())
                .or_else(|| s.rows.selected_item().map(|sub| sub.endpoint_id.clone()))
                .unwrap_or_default(),
            _ => return Vec::new(),
        };
        self.mode = Mode::Form(Form::new_subscription(&endpoint));
        Vec::new()
    }

    pub(super) fn delete(&mut self) -> Vec<Command> {
        let confirm = match self.top() {
            Screen::Subscriptions(s) => s.rows.selected_item().map(|sub| {
                Confirm::ask(
                    format!(
                        "Delete the subscription of {}/{} to {}?",
                        sub.tenant_name, sub.endpoint_name, sub.pattern
                    ),
                    "Delete",
                    Act::DeleteSubscription(sub.id.clone()),
                )
            }),
            Screen::Endpoints(s) => s.rows.selected_item().map(|row| {
                Confirm::ask(
                    format!(
                        "Delete endpoint {} and its subscriptions? Its {}unfinished deliveries are cancelled.",
                        endpoint_label(&row.endpoint),
                        // Counted for the rows around the selection (not yet after a long jump).
                        row.queue.map_or_else(String::new, |q| format!(
                            "{} ",
                            group_digits((q.backlog() + q.in_flight).max(0) as u64)
                        ))
                    ),
                    "Delete",
                    Act::DeleteEndpoint(row.endpoint.id.clone()),
                )
            }),
            _ => None,
        };
        if let Some(confirm) = confirm {
            self.mode = Mode::Confirm(confirm);
        }
        Vec::new()
    }

    pub(super) fn on_acted(&mut self, acted: Acted) -> Vec<Command> {
        self.progress = None;
        match acted {
            Acted::Refused { field, reason } => {
                if let Mode::Form(form) = &mut self.mode {
                    form.refused(&field, reason);
                    self.dirty = true;
                    return Vec::new();
                }
                self.flash(format!("{field}: {reason}"), true);
                Vec::new()
            }
            Acted::Failed(reason) => {
                if let Mode::Form(form) = &mut self.mode {
                    form.failed(reason.clone());
                }
                self.flash(reason, true);
                Vec::new()
            }
            Acted::Revealed(endpoint) => {
                self.flash(
                    format!(
                        "secrets of {} shown; your view is in the audit log",
                        endpoint_label(&endpoint)
                    ),
                    false,
                );
                self.mode = Mode::Reveal(endpoint);
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
}

/// The question before pausing `label`: "Pause globex/orders until 04:00
/// +01:00 (in 4h50m)? Its deliveries are held …".
fn pause_question(label: &str, reason: Option<&str>, until: Option<Millis>, now: Millis) -> String {
    let held = match until {
        Some(at) => format!(
            "Pause {label} until {} ({})? Its deliveries are held, none sent or dropped, until a running dispatcher resumes it then.",
            local_time_short(at),
            from_now(at, now)
        ),
        None => format!(
            "Pause {label}? Its deliveries are held, none sent or dropped, until someone resumes it."
        ),
    };
    match reason {
        Some(reason) => format!("{held} Reason: {reason}"),
        None => format!("{held} No reason given."),
    }
}

/// The question before resuming an endpoint that holds `held` pending and
/// `retrying` deliveries: "Resume acme/storefront-sync? 32 held deliveries
/// will be sent now.", then for a disabled endpoint that resuming
/// re-enables it, why and when hookline disabled it; for a paused one,
/// since when and why. Retrying ones are named apart: they go when their
/// next attempt is due, which may be later.
fn resume_question(endpoint: &Endpoint, held: u64, retrying: u64, now: Millis) -> String {
    let label = endpoint_label(endpoint);
    let now_sent = match held {
        1 => "1 held delivery will be sent now".to_string(),
        n => format!(
            "{} held deliveries will be sent now, oldest first",
            group_digits(n)
        ),
    };
    let later = match retrying {
        1 => "1 retrying delivery keeps its schedule.".to_string(),
        n => format!(
            "{} retrying deliveries keep their schedule.",
            group_digits(n)
        ),
    };
    let sent = match (held, retrying) {
        (0, 0) => "No deliveries are held; new ones will be sent as they come.".to_string(),
        (0, _) => later,
        (_, 0) => format!("{now_sent}."),
        _ => format!("{now_sent}; {later}"),
    };
    let when = endpoint
        .state_changed_at
        .map(|at| format!(" at {}", local_time_short(at)))
        .unwrap_or_default();
    let why = match endpoint.state {
        EndpointState::Disabled => format!(
            "This re-enables an endpoint that hookline disabled{when}: {}.",
            endpoint
                .state_reason
                .as_deref()
                .unwrap_or("no reason was recorded")
        ),
        _ => {
            let mut why = format!("Paused{when}");
            if let Some(reason) = &endpoint.state_reason {
                why.push_str(&format!(": {reason}"));
            }
            if let Some(at) = endpoint.paused_until {
                why.push_str(&format!(
                    "; it would resume by itself at {} ({})",
                    local_time_short(at),
                    from_now(at, now)
                ));
            }
            why.push('.');
            why
        }
    };
    format!("Resume {label}? {sent} {why}")
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
            state_label(d.state),
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
