//! The forms that create and edit subscriptions and endpoints, and the one
//! that asks why and how long to pause an endpoint: their fields, the
//! checks made before sending, and the keys that fill them in.

use std::time::Duration;

use chrono::{FixedOffset, Local, Offset};
use crossterm::event::{KeyCode, KeyEvent};

use super::{App, Mode};
use crate::config::{format_duration, parse_duration};
use crate::console::format::endpoint_label;
use crate::console::input::LineInput;
use crate::console::msg::{Act, Command};
use crate::model::{Endpoint, Subscription};
use crate::ops::{OpsError, parse_until, validate_reason, validate_url};
use crate::topic::TopicPattern;

/// What a form edits.
#[derive(Debug, Clone, PartialEq)]
pub enum FormKind {
    NewSubscription,
    EditSubscription {
        id: String,
    },
    EditEndpoint {
        id: String,
    },
    /// Why and how long; Enter asks to confirm rather than acting.
    PauseEndpoint {
        id: String,
        label: String,
    },
}

/// One field of a form, with its inline error.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: &'static str,
    pub label: String,
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
    /// A subscription form's preview: the topics of the tenant's latest
    /// events, newest first, once loaded.
    pub recent_topics: Option<Vec<String>>,
}

/// Events a subscription pattern is previewed against.
pub const PREVIEW_EVENTS: usize = 1_000;
/// Example topics the preview names.
const PREVIEW_EXAMPLES: usize = 5;

/// What a pattern would match among the recent topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternPreview {
    /// Still loading the topics.
    Loading,
    /// The pattern is not valid: why.
    Invalid(String),
    /// `matched` of `of` recent events; up to five distinct topics among them.
    Matches {
        matched: usize,
        of: usize,
        examples: Vec<String>,
    },
}

impl Form {
    /// The preview of the pattern being typed, for a subscription form
    /// (`None` for any other form); matched here, as typed, against the
    /// topics loaded once when the form opened.
    pub fn pattern_preview(&self) -> Option<PatternPreview> {
        if !matches!(
            self.kind,
            FormKind::NewSubscription | FormKind::EditSubscription { .. }
        ) {
            return None;
        }
        let pattern = form_value(self, "topic");
        if pattern.is_empty() {
            return None;
        }
        let pattern = match TopicPattern::parse(&pattern) {
            Ok(pattern) => pattern,
            Err(err) => return Some(PatternPreview::Invalid(err.to_string())),
        };
        let Some(topics) = &self.recent_topics else {
            return Some(PatternPreview::Loading);
        };
        let mut examples: Vec<String> = Vec::new();
        let mut matched = 0;
        for topic in topics {
            if crate::topic::pattern_matches(pattern.as_str(), topic) {
                matched += 1;
                if examples.len() < PREVIEW_EXAMPLES && !examples.contains(topic) {
                    examples.push(topic.clone());
                }
            }
        }
        Some(PatternPreview::Matches {
            matched,
            of: topics.len(),
            examples,
        })
    }
}

impl Form {
    /// An endpoint's delivery settings as they are now, to be changed.
    pub(super) fn edit_endpoint(e: &Endpoint) -> Form {
        // Shown masked; a masked value saved unchanged keeps the current
        // one (`Ops::update_endpoint`), so editing never needs the secrets.
        let shown = e.masked();
        let headers: Vec<String> = shown
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let timeout = e
            .timeout_ms
            .map(|ms| format_duration(Duration::from_millis(ms.max(0) as u64)))
            .unwrap_or_default();
        Form {
            title: format!("Edit endpoint {}", endpoint_label(e)),
            kind: FormKind::EditEndpoint { id: e.id.clone() },
            fields: vec![
                field(
                    "url",
                    "URL (a **** password keeps the current one)",
                    &shown.url,
                ),
                field("timeout", "Timeout (e.g. 15s; empty: default)", &timeout),
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
                field(
                    "rate_limit",
                    "Rate limit (e.g. 50/s or 50/s burst 5; empty: none)",
                    &e.rate_limit.map(|l| l.to_string()).unwrap_or_default(),
                ),
            ],
            focus: 0,
            submitting: false,
            recent_topics: None,
        }
    }

    /// Why to pause an endpoint and for how long, both optional.
    pub(super) fn pause_endpoint(e: &Endpoint) -> Form {
        let offset = Local::now().offset().fix();
        Form {
            title: format!("Pause {}", endpoint_label(e)),
            kind: FormKind::PauseEndpoint {
                id: e.id.clone(),
                label: endpoint_label(e),
            },
            fields: vec![
                field(
                    "reason",
                    "Reason (optional; kept with the endpoint, shown and audited)",
                    "",
                ),
                field("until", until_label(offset), ""),
            ],
            focus: 0,
            submitting: false,
            recent_topics: None,
        }
    }

    pub(super) fn edit_subscription(sub: &Subscription) -> Form {
        Form {
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
            recent_topics: None,
        }
    }

    /// A new subscription of `endpoint` (id or name; empty: not known yet).
    pub(super) fn new_subscription(endpoint: &str) -> Form {
        Form {
            title: "New subscription".to_string(),
            kind: FormKind::NewSubscription,
            fields: vec![
                field("endpoint", "Endpoint (id, TENANT/NAME or name)", endpoint),
                field(
                    "topic",
                    "Topic pattern (resident.update, resident.*, resident.**, *)",
                    "",
                ),
                field("description", "Description", ""),
            ],
            // With the endpoint known, the operator starts where typing is needed.
            focus: if endpoint.is_empty() { 0 } else { 1 },
            submitting: false,
            recent_topics: None,
        }
    }

    /// The store refused `field`: its reason goes next to it (or, for a
    /// field the form lacks, on the first one, naming the field).
    pub(super) fn refused(&mut self, field: &str, reason: String) {
        self.submitting = false;
        match self.fields.iter_mut().find(|f| f.name == field) {
            Some(f) => f.error = Some(reason),
            None => {
                if let Some(f) = self.fields.first_mut() {
                    f.error = Some(format!("{field}: {reason}"));
                }
            }
        }
    }

    /// The action failed for a reason no field caused; the form stays open
    /// so nothing typed is lost.
    pub(super) fn failed(&mut self, reason: String) {
        self.submitting = false;
        if let Some(f) = self.fields.get_mut(self.focus) {
            f.error = Some(reason);
        }
    }
}

impl App {
    pub(super) fn on_form_key(&mut self, mut form: Form, key: KeyEvent) -> Vec<Command> {
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
                    let pausing = match &form.kind {
                        FormKind::PauseEndpoint { label, .. } => Some(label.clone()),
                        _ => None,
                    };
                    match form_act(&form) {
                        Err((field, reason)) => form.refused(field, reason),
                        Ok(act) => {
                            if let Some(label) = pausing {
                                // Nothing changes until the operator confirms.
                                return self.confirm_pause(&label, act);
                            }
                            form.submitting = true;
                            self.mode = Mode::Form(form);
                            return vec![Command::Act(act)];
                        }
                    }
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
}

/// The pause form's label for its end, naming the local zone's offset.
fn until_label(offset: FixedOffset) -> String {
    format!("For or until (optional): 30m, 2h, 04:00 local time ({offset}), or RFC 3339")
}

fn field(name: &'static str, label: impl Into<String>, value: &str) -> Field {
    Field {
        name,
        label: label.into(),
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
            "topic" => TopicPattern::parse(value).err().map(|e| e.to_string()),
            "url" => refusal(validate_url(value).err()),
            "endpoint" if value.is_empty() => {
                Some("which endpoint? give its id or TENANT/NAME".to_string())
            }
            "timeout" if !value.is_empty() => parse_duration(value).err(),
            "max_in_flight" if !value.is_empty() => value
                .parse::<u32>()
                .err()
                .map(|_| format!("{value:?} is not a whole number")),
            "reason" => refusal(validate_reason(value).err()),
            "until" if !value.is_empty() => refusal(parse_until(value).err()),
            _ => None,
        };
        if error.is_some() {
            ok = false;
        }
        field.error = error;
    }
    ok
}

/// What a refusal says, without the field it names (the form shows it
/// under that field).
fn refusal(err: Option<OpsError>) -> Option<String> {
    err.map(|e| match e.refusal() {
        Some((_, reason)) => reason,
        None => e.to_string(),
    })
}

fn form_value(form: &Form, name: &str) -> String {
    form.fields
        .iter()
        .find(|f| f.name == name)
        .map(|f| f.input.text().trim().to_string())
        .unwrap_or_default()
}

/// The action a valid form asks for, or the field whose value turned
/// out bad after all (a time of day that passed since it was checked).
fn form_act(form: &Form) -> Result<Act, (&'static str, String)> {
    Ok(match &form.kind {
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
        FormKind::PauseEndpoint { id, .. } => {
            let reason = form_value(form, "reason");
            let until = match form_value(form, "until").as_str() {
                "" => None,
                text => Some(
                    parse_until(text)
                        .map_err(|e| ("until", refusal(Some(e)).unwrap_or_default()))?,
                ),
            };
            Act::Pause {
                id: id.clone(),
                reason: (!reason.is_empty()).then_some(reason),
                until,
            }
        }
        FormKind::EditEndpoint { id } => Act::EditEndpoint {
            id: id.clone(),
            url: form_value(form, "url"),
            timeout: form_value(form, "timeout"),
            max_in_flight: form_value(form, "max_in_flight"),
            headers: form_value(form, "header"),
            rate_limit: form_value(form, "rate_limit"),
        },
    })
}
