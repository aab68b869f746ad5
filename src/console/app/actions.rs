//! The operator's actions (retry, retry all dead, pause/resume, rotate the
//! secret, edit, new, delete): what each asks before it acts, and how its
//! result shows.

use super::confirm::Confirm;
use super::forms::Form;
use super::{App, Mode, Slot};
use crate::console::format::{endpoint_label, group_digits};
use crate::console::msg::{Act, Acted, Command, Holds, Load};
use crate::console::screens::Screen;
use crate::console::theme::state_label;
use crate::held::Hold;
use crate::model::{Delivery, DeliveryState, Endpoint, EndpointState, Millis, now_millis};
use crate::ops::{from_now, local_time_short};

impl App {
    /// `r`: asks first, naming the deliveries' endpoint and how many, since
    /// a retry sends the webhook to the customer again. Marked rows are
    /// re-read first ([`App::ask_to_retry_marked`] asks once they arrive):
    /// the list may show them as they were.
    pub(super) fn retry(&mut self) -> Vec<Command> {
        let (delivery, hold) = match self.top() {
            Screen::Deliveries(s) if !s.marked.is_empty() => {
                let ids: Vec<String> = s.marked.iter().cloned().collect();
                return self.reread_marked(ids);
            }
            Screen::Deliveries(s) => match s.rows.selected_item() {
                Some(d) => (d, s.hold(d)),
                None => return Vec::new(),
            },
            Screen::Detail(s) => match &s.detail {
                Some(detail) => (&detail.delivery, s.hold),
                None => return Vec::new(),
            },
            Screen::Event(s) => match s.selected_delivery() {
                Some(d) => (d, s.hold(d)),
                None => return Vec::new(),
            },
            _ => return Vec::new(),
        };
        let mut question = retry_question(1, &[delivery]);
        question.push_str(&hold_sentence(&[(endpoint_of(delivery), hold)]));
        // Only a delivery chosen as delivered is sent again; one that
        // failed and is delivered by the time this runs is left alone.
        let act = if delivery.state == DeliveryState::Delivered {
            Act::Retry(vec![delivery.id.clone()])
        } else {
            Act::RetryUndelivered(vec![delivery.id.clone()])
        };
        self.mode = Mode::Confirm(Confirm::ask(question, "Retry", act));
        Vec::new()
    }

    /// Reads the marked deliveries again before asking about them.
    fn reread_marked(&mut self, ids: Vec<String>) -> Vec<Command> {
        // No slot: the answer is wanted whatever the screen shows meanwhile.
        let token = self.next_token;
        self.next_token += 1;
        self.flash(
            format!(
                "checking the {} marked deliveries…",
                group_digits(ids.len() as u64)
            ),
            false,
        );
        vec![Command::Load {
            token,
            load: Load::Marked { ids },
        }]
    }

    /// The question about the marked deliveries as they are now: those
    /// delivered since they were marked are left out, and it says so; if
    /// nothing is left to retry it says that and asks nothing.
    pub(super) fn ask_to_retry_marked(
        &mut self,
        asked: usize,
        rows: Vec<Delivery>,
        holds: &Holds,
    ) -> Vec<Command> {
        let delivered = rows
            .iter()
            .filter(|d| d.state == DeliveryState::Delivered)
            .count();
        let retryable: Vec<&Delivery> = rows
            .iter()
            .filter(|d| matches!(d.state, DeliveryState::Dead | DeliveryState::Retrying))
            .collect();
        let gone = asked - delivered - retryable.len();
        if retryable.is_empty() {
            self.flash(nothing_to_retry(asked, delivered), false);
            return Vec::new();
        }
        let mut question = String::new();
        if delivered > 0 {
            question.push_str(&format!(
                "{} of the {} marked {} since been delivered; ",
                group_digits(delivered as u64),
                group_digits(asked as u64),
                if delivered == 1 { "has" } else { "have" },
            ));
        }
        if gone > 0 {
            question.push_str(&format!(
                "{} {} already waiting or being attempted; ",
                group_digits(gone as u64),
                if gone == 1 { "is" } else { "are" },
            ));
        }
        let ask = retry_question(retryable.len(), &retryable);
        if question.is_empty() {
            question = ask;
        } else {
            question.push_str(&retry_the_other(retryable.len(), &ask));
        }
        let held: Vec<(String, Option<Hold>)> = retryable
            .iter()
            .map(|d| (endpoint_of(d), holds.get(&d.endpoint_id).copied()))
            .collect();
        question.push_str(&hold_sentence(&held));
        let ids = retryable.iter().map(|d| d.id.clone()).collect();
        self.mode = Mode::Confirm(Confirm::ask(question, "Retry", Act::RetryUndelivered(ids)));
        self.dirty = true;
        Vec::new()
    }

    pub(super) fn selected_endpoint(&self) -> Option<&Endpoint> {
        match self.top() {
            Screen::Endpoints(s) => s.rows.selected_item().map(|row| &row.endpoint),
            Screen::EndpointDetail(s) => s.detail.as_ref().map(|d| &d.endpoint),
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
        let hold = self.endpoint_hold(&endpoint_id);
        self.mode = Mode::Confirm(Confirm::ask(
            format!(
                "Retry {} dead deliveries to {label}?{}",
                group_digits(count),
                hold_sentence(&[(label.clone(), hold)])
            ),
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

    /// `R` on the deliveries list: what retrying everything the filter
    /// shows would touch is read first; [`App::ask_to_retry_filtered`]
    /// shows it and asks.
    pub(super) fn preview_retry_filtered(&mut self) -> Vec<Command> {
        let Screen::Deliveries(s) = self.top() else {
            return Vec::new();
        };
        if s.query.text.is_some() || s.query.cause.is_some() {
            self.flash(
                "R retries by filter: a payload search or a cause cannot be retried in bulk (mark rows with space, then r)",
                true,
            );
            return Vec::new();
        }
        let query = self.scoped(&s.query);
        let token = self.next_token;
        self.next_token += 1;
        self.flash("counting what the filter would retry…", false);
        vec![Command::Load {
            token,
            load: Load::RetryPreview { query },
        }]
    }

    /// The blast radius, then the question: how many per endpoint, the
    /// oldest and newest, and how many wait behind a hold.
    pub(super) fn ask_to_retry_filtered(
        &mut self,
        query: crate::console::screens::DeliveryQuery,
        preview: &crate::ops::RetryPreview,
    ) -> Vec<Command> {
        let total = preview.total();
        let what = if query.label.is_empty() {
            "every failed delivery".to_string()
        } else {
            format!("the deliveries matching {}", query.label)
        };
        let Some((oldest, newest)) = preview.span().filter(|_| total > 0) else {
            self.flash(
                format!("nothing to retry: {what} has none that can be"),
                false,
            );
            return Vec::new();
        };
        // The question answers "counting…": that line has said its piece.
        self.flash = None;
        self.mode = Mode::Confirm(Confirm::ask(
            retry_filtered_question(&what, preview, oldest, newest),
            "Retry",
            Act::RetryFiltered {
                query: Box::new(query),
                endpoints: preview
                    .endpoints
                    .iter()
                    .map(|e| (e.endpoint_id.clone(), format!("{}/{}", e.tenant, e.name)))
                    .collect(),
                total,
            },
        ));
        self.dirty = true;
        Vec::new()
    }

    /// `P`: probes the endpoint from this host at once (a read, as far as
    /// the endpoint's data goes; audited); the dialog shows each step.
    pub(super) fn probe(&mut self) -> Vec<Command> {
        let Some(endpoint) = self.selected_endpoint() else {
            return Vec::new();
        };
        let id = endpoint.id.clone();
        self.flash(
            format!("probing {} from this host…", endpoint_label(endpoint)),
            false,
        );
        vec![Command::Act(Act::Probe { id })]
    }

    /// `N`: asks before sending the endpoint's retrying deliveries now,
    /// naming how many (as last counted) and what still limits them.
    pub(super) fn retry_now(&mut self) -> Vec<Command> {
        let retrying = match self.top() {
            Screen::Endpoints(s) => s
                .rows
                .selected_item()
                .and_then(|r| r.queue)
                .map(|q| q.retrying),
            Screen::EndpointDetail(s) => s.detail.as_ref().map(|d| d.queue.retrying),
            _ => None,
        };
        let Some(endpoint) = self.selected_endpoint() else {
            return Vec::new();
        };
        let label = endpoint_label(endpoint);
        let endpoint_id = endpoint.id.clone();
        let hold = self.endpoint_hold(&endpoint_id);
        let count = match retrying {
            Some(0) => {
                self.flash(format!("{label} has no retrying deliveries"), false);
                return Vec::new();
            }
            Some(1) => "its retrying delivery".to_string(),
            Some(n) => format!("its {} retrying deliveries", group_digits(n.max(0) as u64)),
            None => "its retrying deliveries".to_string(),
        };
        self.mode = Mode::Confirm(Confirm::ask(
            format!(
                "Send {count} to {label} now instead of on their schedule? Each keeps its attempt count; the endpoint's cap and rate limit still apply.{}",
                hold_sentence(&[(label.clone(), hold)])
            ),
            "Retry now",
            Act::RetryNow { endpoint_id, label },
        ));
        self.dirty = true;
        Vec::new()
    }

    /// What holds the work of the endpoint `id`, as the endpoints list shows it.
    fn endpoint_hold(&self, id: &str) -> Option<Hold> {
        if let Screen::EndpointDetail(s) = self.top() {
            let endpoint = &s.detail.as_ref()?.endpoint;
            return Hold::of_endpoint(endpoint.state).filter(|_| endpoint.id == id);
        }
        let Screen::Endpoints(s) = self.top() else {
            return None;
        };
        let row = s.rows.items.iter().find(|row| row.endpoint.id == id)?;
        Hold::of_endpoint(row.endpoint.state)
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
            Screen::EndpointDetail(s) => {
                s.detail.as_ref().map(|d| Form::edit_endpoint(&d.endpoint))
            }
            Screen::Subscriptions(s) => s.rows.selected_item().map(Form::edit_subscription),
            _ => None,
        };
        let preview_for = match self.top() {
            Screen::Subscriptions(s) => s.rows.selected_item().map(|sub| sub.endpoint_id.clone()),
            _ => None,
        };
        if let Some(form) = form {
            self.mode = Mode::Form(form);
        }
        preview_for
            .map(|endpoint| self.load_recent_topics(endpoint))
            .into_iter()
            .collect()
    }

    /// Loads what a subscription form previews its pattern against.
    fn load_recent_topics(&mut self, endpoint: String) -> Command {
        // No slot: the answer goes to the form, whatever screen is under it.
        let token = self.next_token;
        self.next_token += 1;
        Command::Load {
            token,
            load: Load::RecentTopics { endpoint },
        }
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
        if endpoint.is_empty() {
            return Vec::new();
        }
        vec![self.load_recent_topics(endpoint)]
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
            Acted::Probed(report) => {
                let text = match report.steps.iter().find(|s| !s.ok) {
                    None => format!("probe from {}: every step passed", report.from_host),
                    Some(step) => {
                        format!("probe from {}: failed at {}", report.from_host, step.step)
                    }
                };
                self.flash(text, !report.ok());
                self.mode = Mode::Probe(report);
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

/// `tenant/name` of a delivery's endpoint.
fn endpoint_of(delivery: &Delivery) -> String {
    format!("{}/{}", delivery.tenant_name, delivery.endpoint_name)
}

/// " Endpoint acme/crm-sync is paused: the retry will wait until it is
/// resumed." for each held endpoint among `targets` (`tenant/name`, hold);
/// empty when none is held.
fn hold_sentence(targets: &[(String, Option<Hold>)]) -> String {
    let mut held: Vec<(&str, Hold)> = targets
        .iter()
        .filter_map(|(label, hold)| hold.map(|hold| (label.as_str(), hold)))
        .collect();
    held.sort_by(|a, b| a.0.cmp(b.0));
    held.dedup();
    held.iter()
        .map(|(label, hold)| {
            format!(
                " Endpoint {label} is {}: the retry will wait until {}.",
                hold.endpoint_word(),
                hold.until()
            )
        })
        .collect()
}

/// "Retry 1 delivery …?" as the end of a sentence about the others:
/// "retry the other 1 delivery …?".
fn retry_the_other(count: usize, ask: &str) -> String {
    let rest = ask.strip_prefix("Retry ").unwrap_or(ask);
    let rest = rest
        .strip_prefix(&format!("{} ", group_digits(count as u64)))
        .unwrap_or(rest);
    format!("retry the other {} {rest}", group_digits(count as u64))
}

/// Why a marked retry asks nothing: none of the marked can be retried.
fn nothing_to_retry(asked: usize, delivered: usize) -> String {
    let asked_text = group_digits(asked as u64);
    if delivered == asked {
        let all = if asked == 1 {
            "the marked delivery has"
        } else {
            "all {n} marked have"
        };
        return format!(
            "{} since been delivered: nothing to retry",
            all.replace("{n}", &asked_text)
        );
    }
    format!(
        "none of the {asked_text} marked can be retried now ({} delivered, the others waiting or being attempted): nothing was changed",
        group_digits(delivered as u64)
    )
}

/// Endpoints a bulk retry's question names one by one; the rest are summed.
const PREVIEW_ENDPOINTS: usize = 5;

/// "Retry 1,204 deliveries (…), created 02:00:12 to 02:59:58? acme/prod
/// 1,000 (held: endpoint paused), globex/orders 204. 1,000 of them wait
/// until their endpoint takes work again. Each starts a fresh schedule."
fn retry_filtered_question(
    what: &str,
    preview: &crate::ops::RetryPreview,
    oldest: i64,
    newest: i64,
) -> String {
    use crate::console::views::short_time;
    let total = preview.total();
    let mut parts: Vec<String> = preview
        .endpoints
        .iter()
        .take(PREVIEW_ENDPOINTS)
        .map(|e| {
            let held = e
                .held
                .map(|hold| format!(" ({})", hold.short_label()))
                .unwrap_or_default();
            format!("{}/{} {}{held}", e.tenant, e.name, group_digits(e.count))
        })
        .collect();
    let rest = &preview.endpoints[preview.endpoints.len().min(PREVIEW_ENDPOINTS)..];
    if !rest.is_empty() {
        let count: u64 = rest.iter().map(|e| e.count).sum();
        parts.push(format!(
            "and {} at {} more endpoints",
            group_digits(count),
            rest.len()
        ));
    }
    let held = match preview.held() {
        0 => String::new(),
        n if n == total => " All of them wait until their endpoint takes work again.".to_string(),
        n => format!(
            " {} of them wait until their endpoint takes work again.",
            group_digits(n)
        ),
    };
    format!(
        "Retry {} ({what}), created {} to {}? {}.{held} Each starts a fresh schedule.",
        if total == 1 {
            "1 delivery".to_string()
        } else {
            format!("{} deliveries", group_digits(total))
        },
        short_time(oldest),
        short_time(newest),
        parts.join(", ")
    )
}
