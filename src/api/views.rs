//! What the API answers with: the model's records as JSON, times as RFC
//! 3339, payloads as the exact JSON text published.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::health::percentile;
use crate::held::{Hold, Stopped};
use crate::model::{
    Attempt, Delivery, DeliveryState, Endpoint, ErrorKind, Event, Millis, Subscription, Tenant,
    format_rfc3339,
};
use crate::ops::BLOCKED_DESTINATION;
use crate::store::{Breaker, BreakerTransition, DeliveryDetail, EndpointStats};

fn time(ms: Millis) -> String {
    format_rfc3339(ms)
}

fn time_opt(ms: Option<Millis>) -> Option<String> {
    ms.map(format_rfc3339)
}

/// The schema of a delivery's `state`: a string enum of
/// [`DeliveryState::WORDS`], so the document lists exactly the words the
/// API writes.
pub struct DeliveryStateWord;

impl utoipa::PartialSchema for DeliveryStateWord {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .enum_values(Some(DeliveryState::WORDS.iter().copied()))
            .description(Some(
                "`pending` (due), `in_flight` (being attempted), `retrying` (failed, next \
                 attempt scheduled), `delivered` (a 2xx was received), `dead` (no attempts \
                 left) or `cancelled` (its endpoint or tenant was deleted).",
            ))
            .into()
    }
}

impl ToSchema for DeliveryStateWord {}

/// A customer of the producer platform.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    /// `ten_…`
    pub id: String,
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
}

impl From<Tenant> for TenantView {
    fn from(tenant: Tenant) -> TenantView {
        TenantView {
            id: tenant.id,
            name: tenant.name,
            created_at: time(tenant.created_at),
        }
    }
}

/// A URL that receives a tenant's events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointView {
    /// `ep_…`
    pub id: String,
    pub tenant_id: String,
    pub tenant_name: String,
    pub name: String,
    /// The URL, its password (if any) masked: `https://bob:****@host/`.
    pub url: String,
    /// The signing secret (`whsec_…`) receivers verify signatures with: in
    /// full only in the answers to create and rotate-secret; elsewhere a
    /// hint (`whsec_MfKQ…aSw`). `GET /v1/endpoints/{id}/secret` reveals it.
    pub secret: String,
    /// Until then the secret before the last rotation signs too.
    pub previous_secret_expires_at: Option<String>,
    /// `active`, `paused` or `disabled`.
    pub state: String,
    pub state_reason: Option<String>,
    pub state_changed_at: Option<String>,
    /// When a pause ends by itself (a dispatcher resumes the endpoint);
    /// `null` unless paused with an end.
    pub paused_until: Option<String>,
    /// Per-attempt timeout; `null` uses the server's default.
    pub timeout_ms: Option<i64>,
    /// Cap on concurrent attempts; `null` uses the server's default.
    pub max_in_flight: Option<i64>,
    /// Requests a second across every dispatcher; `null`: unlimited.
    pub rate_limit: Option<i64>,
    /// Requests at once after a quiet spell; `null` without a rate limit.
    pub rate_limit_burst: Option<i64>,
    /// Its circuit breaker now (`GET /v1/endpoints/{id}/breaker` adds the
    /// transitions).
    pub breaker: BreakerStateView,
    /// Extra headers sent with every attempt; the values of sensitive ones
    /// (`Authorization`, `Cookie`, names containing `token`, `secret`,
    /// `key`, `password` or `auth`) masked as `****`.
    pub headers: BTreeMap<String, String>,
    pub description: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Endpoint> for EndpointView {
    /// The endpoint as lists and GETs show it: every secret masked.
    fn from(e: Endpoint) -> EndpointView {
        EndpointView::shown(e.masked())
    }
}

impl EndpointView {
    /// The view with the endpoint's breaker as it is now.
    pub fn with_breaker(self, breaker: Breaker) -> EndpointView {
        EndpointView {
            breaker: breaker.into(),
            ..self
        }
    }

    /// The answer to create and rotate-secret: the signing secret in full
    /// (its owner needs it to verify), the URL's password and header values
    /// masked as everywhere.
    pub fn with_secret(e: Endpoint) -> EndpointView {
        let secret = e.secret.clone();
        EndpointView {
            secret,
            ..EndpointView::shown(e.masked())
        }
    }

    /// The endpoint with every secret in plain: what `--show-secret`
    /// prints (after an audited reveal).
    pub fn revealed(e: Endpoint) -> EndpointView {
        EndpointView::shown(e)
    }

    fn shown(e: Endpoint) -> EndpointView {
        EndpointView {
            breaker: Breaker::pristine(&e.id).into(),
            id: e.id,
            tenant_id: e.tenant_id,
            tenant_name: e.tenant_name,
            name: e.name,
            url: e.url,
            secret: e.secret,
            previous_secret_expires_at: time_opt(
                e.previous_secret.and(e.previous_secret_expires_at),
            ),
            state: e.state.to_string(),
            state_reason: e.state_reason,
            state_changed_at: time_opt(e.state_changed_at),
            paused_until: time_opt(e.paused_until),
            timeout_ms: e.timeout_ms,
            max_in_flight: e.max_in_flight,
            rate_limit: e.rate_limit.map(|l| l.per_second),
            rate_limit_burst: e.rate_limit.map(|l| l.burst),
            headers: e.headers.into_iter().collect(),
            description: e.description,
            created_at: time(e.created_at),
            updated_at: time(e.updated_at),
        }
    }
}

/// An endpoint's circuit breaker as it is now.
#[derive(Debug, Serialize, ToSchema)]
pub struct BreakerStateView {
    /// `ep_…`
    pub endpoint_id: String,
    /// `closed` (deliveries flow), `open` (held) or `half_open` (one
    /// delivery out as a probe).
    pub state: String,
    /// `auto` (its outcomes decide), or the state an operator forced:
    /// `open`, `closed`.
    pub mode: String,
    /// When it last opened.
    pub opened_at: Option<String>,
    /// Open: when the next probe may go; `null` otherwise, and while
    /// forced open.
    pub next_probe_at: Option<String>,
    /// The current cool-down in ms (doubled on each re-open); 0 while closed.
    pub cooldown_ms: i64,
    /// Failures in a row, across every dispatcher.
    pub consecutive_failures: i64,
    /// Attempts and failures over `protection.window`.
    pub window_attempts: i64,
    pub window_failures: i64,
    /// When the receiver last answered.
    pub last_answered_at: Option<String>,
    /// The receiver answered 429 or 503 with `Retry-After`: nothing is sent
    /// to the endpoint before this time; `null` once it has passed.
    pub wait_until: Option<String>,
}

impl From<Breaker> for BreakerStateView {
    fn from(b: Breaker) -> BreakerStateView {
        BreakerStateView {
            endpoint_id: b.endpoint_id,
            state: b.state.to_string(),
            mode: b.mode.to_string(),
            opened_at: time_opt(b.opened_at),
            next_probe_at: time_opt(b.next_probe_at),
            cooldown_ms: b.cooldown_ms,
            consecutive_failures: b.consecutive_failures,
            window_attempts: b.window_attempts,
            window_failures: b.window_failures,
            last_answered_at: time_opt(b.last_answered_at),
            wait_until: time_opt(b.wait_until),
        }
    }
}

/// An endpoint's circuit breaker with its history.
#[derive(Debug, Serialize, ToSchema)]
pub struct BreakerView {
    #[serde(flatten)]
    pub breaker: BreakerStateView,
    /// The latest changes of state, newest first.
    pub transitions: Vec<BreakerTransitionView>,
}

/// One change of a breaker's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct BreakerTransitionView {
    /// `brk_…`
    pub id: String,
    pub from: String,
    pub to: String,
    /// Why: "20 failures in a row", "the probe got an answer", "set to open by ana".
    pub reason: String,
    /// The figures that decided it (window attempts and failures, failures
    /// in a row, cool-down).
    #[schema(value_type = Object)]
    pub figures: serde_json::Value,
    /// Who forced it; `null` when the rules did.
    pub actor: Option<String>,
    pub at: String,
}

impl BreakerView {
    pub fn new(b: Breaker, transitions: Vec<BreakerTransition>) -> BreakerView {
        BreakerView {
            breaker: b.into(),
            transitions: transitions
                .into_iter()
                .map(|t| BreakerTransitionView {
                    id: t.id,
                    from: t.from.to_string(),
                    to: t.to.to_string(),
                    reason: t.reason,
                    figures: t.figures,
                    actor: t.actor,
                    at: time(t.at),
                })
                .collect(),
        }
    }
}

/// An endpoint's signing secrets, in full.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointSecretView {
    /// `ep_…`
    pub endpoint_id: String,
    /// The current signing secret (`whsec_…`).
    pub secret: String,
    /// The secret before the last rotation, while it still signs; `null` otherwise.
    pub previous_secret: Option<String>,
    /// When the previous secret stops signing (RFC 3339).
    pub previous_secret_expires_at: Option<String>,
}

impl EndpointSecretView {
    /// The endpoint's secrets as of `now` (a previous secret past its
    /// grace no longer signs, so it is not shown).
    pub fn new(e: Endpoint, now: Millis) -> EndpointSecretView {
        let previous = match (e.previous_secret, e.previous_secret_expires_at) {
            (Some(secret), Some(expires)) if expires > now => Some((secret, expires)),
            _ => None,
        };
        EndpointSecretView {
            endpoint_id: e.id,
            secret: e.secret,
            previous_secret_expires_at: previous.as_ref().map(|(_, at)| time(*at)),
            previous_secret: previous.map(|(secret, _)| secret),
        }
    }
}

/// An endpoint's interest in the topics matching a pattern.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    /// `sub_…`
    pub id: String,
    pub endpoint_id: String,
    pub endpoint_name: String,
    pub tenant_id: String,
    /// The topic pattern: `resident.update`, `resident.*`, `resident.**` or `*`.
    pub topic: String,
    pub description: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Subscription> for SubscriptionView {
    fn from(s: Subscription) -> SubscriptionView {
        SubscriptionView {
            id: s.id,
            endpoint_id: s.endpoint_id,
            endpoint_name: s.endpoint_name,
            tenant_id: s.tenant_id,
            topic: s.pattern,
            description: s.description,
            created_at: time(s.created_at),
            updated_at: time(s.updated_at),
        }
    }
}

/// One event on its way to one endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// `dlv_…`
    pub id: String,
    /// `msg_…`, also the `webhook-id` header the receiver gets.
    pub event_id: String,
    pub endpoint_id: String,
    pub endpoint_name: String,
    pub tenant_id: String,
    pub tenant_name: String,
    pub topic: String,
    // No doc comment: the schema describes the words, and a description
    // here would wrap the enum in an `allOf` with an object type.
    #[schema(value_type = DeliveryStateWord, inline)]
    pub state: String,
    /// Attempts made in the current schedule.
    pub attempts: i64,
    /// When a pending or retrying delivery is due.
    pub next_attempt_at: String,
    pub last_attempt_at: Option<String>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    /// What holds pending or retrying work back, if anything:
    /// `endpoint_paused` or `endpoint_disabled` (nothing is sent until the
    /// endpoint is resumed or enabled again).
    pub held: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl DeliveryView {
    /// The view of `d`, saying what holds it given the `stopped` endpoints.
    pub fn new(d: Delivery, stopped: &Stopped) -> DeliveryView {
        let held = Hold::of(&d, stopped).map(|h| h.code().to_string());
        DeliveryView {
            id: d.id,
            event_id: d.event_id,
            endpoint_id: d.endpoint_id,
            endpoint_name: d.endpoint_name,
            tenant_id: d.tenant_id,
            tenant_name: d.tenant_name,
            topic: d.topic,
            state: d.state.to_string(),
            attempts: d.attempts,
            next_attempt_at: time(d.next_attempt_at),
            last_attempt_at: time_opt(d.last_attempt_at),
            last_status: d.last_status,
            last_error: d.last_error,
            held,
            created_at: time(d.created_at),
            updated_at: time(d.updated_at),
        }
    }
}

/// An event as published.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// `msg_…`
    pub id: String,
    /// `null` for a broadcast.
    pub tenant_id: Option<String>,
    pub topic: String,
    /// The payload exactly as published (byte for byte); `null` once
    /// removed (see `payload_removed`).
    #[schema(value_type = Option<serde_json::Value>)]
    pub payload: Option<Box<RawValue>>,
    /// Bytes published (kept when the payload is removed).
    pub payload_size: i64,
    /// Set when the payload was removed, by `retention.payload` or on
    /// request: the event's deliveries can no longer be retried.
    pub payload_removed: Option<PayloadRemovedView>,
    pub idempotency_key: Option<String>,
    pub created_at: String,
}

/// When and why an event's payload was removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct PayloadRemovedView {
    pub at: String,
    /// `retention` (`retention.payload`) or `expunged` (on request).
    pub by: String,
}

impl From<Event> for EventView {
    fn from(e: Event) -> EventView {
        // The payload was checked to be JSON when published; should a row
        // hold anything else, show it as a JSON string rather than fail.
        let payload = e.payload_removed.is_none().then(|| {
            RawValue::from_string(e.payload.clone()).unwrap_or_else(|_| {
                RawValue::from_string(serde_json::Value::from(e.payload).to_string())
                    .unwrap_or_default()
            })
        });
        EventView {
            id: e.id,
            tenant_id: e.tenant_id,
            topic: e.topic,
            payload,
            payload_size: e.payload_size,
            payload_removed: e.payload_removed.map(|removal| PayloadRemovedView {
                at: time(removal.at),
                by: removal.by.as_str().to_string(),
            }),
            idempotency_key: e.idempotency_key,
            created_at: time(e.created_at),
        }
    }
}

/// One HTTP try of a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    /// `att_…`
    pub id: String,
    /// `dlv_…`
    pub delivery_id: String,
    /// `ep_…`
    pub endpoint_id: String,
    /// 1-based position in the schedule it belonged to.
    pub attempt_number: i64,
    pub started_at: String,
    pub duration_ms: i64,
    pub status_code: Option<i64>,
    /// `null` when the attempt succeeded; otherwise `timeout`, `connect`,
    /// `dns`, `tls`, `http_status`, `too_large_response` or `network`.
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    /// Headers sent, by name, with the signature and sensitive values masked.
    pub request_headers: BTreeMap<String, String>,
    /// The first bytes of the answer's body (`null` when none was stored,
    /// or it was removed with the event's payload).
    pub response_body: Option<String>,
}

impl From<Attempt> for AttemptView {
    fn from(a: Attempt) -> AttemptView {
        AttemptView {
            id: a.id,
            delivery_id: a.delivery_id,
            endpoint_id: a.endpoint_id,
            attempt_number: a.attempt_number,
            started_at: time(a.started_at),
            duration_ms: a.duration_ms,
            status_code: a.status_code,
            error_kind: a.error_kind.map(|k| k.to_string()),
            error_message: a.error_message,
            request_headers: a.request_headers.into_iter().collect(),
            response_body: a.response_body,
        }
    }
}

/// A delivery with its event and every attempt, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDetailView {
    pub delivery: DeliveryView,
    pub event: EventView,
    pub attempts: Vec<AttemptView>,
}

/// An event and every delivery it fanned out to: "where did event X go".
#[derive(Debug, Serialize, ToSchema)]
pub struct EventDetailView {
    #[serde(flatten)]
    pub event: EventView,
    /// The tenant's name; `null` for a broadcast.
    pub tenant_name: Option<String>,
    /// Each endpoint's delivery (state, what holds it, attempts, last
    /// status), by tenant and endpoint name; empty when it matched no
    /// subscription. A tenant key sees its own tenant's deliveries only.
    pub deliveries: Vec<DeliveryView>,
    /// More deliveries exist than listed (at most 1,000 are): list them
    /// with `GET /v1/deliveries?event=…`.
    pub more_deliveries: bool,
}

impl EventDetailView {
    /// The view of `fanout`, saying what holds each delivery.
    pub fn new(fanout: crate::store::EventFanout, stopped: &Stopped) -> EventDetailView {
        EventDetailView {
            event: fanout.event.into(),
            tenant_name: fanout.tenant_name,
            deliveries: fanout
                .deliveries
                .into_iter()
                .map(|d| DeliveryView::new(d, stopped))
                .collect(),
            more_deliveries: fanout.more,
        }
    }
}

impl ForTenant for EventDetailView {
    fn for_tenant(mut self) -> EventDetailView {
        self.deliveries = self
            .deliveries
            .into_iter()
            .map(ForTenant::for_tenant)
            .collect();
        self
    }
}

/// A view as a tenant key may see it: where hookline refused to deliver is
/// said, but not the address or the rule that refused it (that would map
/// the operator's network); admin keys see those.
pub trait ForTenant {
    fn for_tenant(self) -> Self;
}

impl ForTenant for DeliveryView {
    fn for_tenant(mut self) -> DeliveryView {
        let blocked = ErrorKind::BlockedDestination.as_str();
        if self
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with(blocked))
        {
            self.last_error = Some(format!("{blocked}: {BLOCKED_DESTINATION}"));
        }
        self
    }
}

impl ForTenant for AttemptView {
    fn for_tenant(mut self) -> AttemptView {
        if self.error_kind.as_deref() == Some(ErrorKind::BlockedDestination.as_str()) {
            self.error_message = Some(BLOCKED_DESTINATION.to_string());
        }
        self
    }
}

impl ForTenant for DeliveryDetailView {
    fn for_tenant(self) -> DeliveryDetailView {
        DeliveryDetailView {
            delivery: self.delivery.for_tenant(),
            event: self.event,
            attempts: self
                .attempts
                .into_iter()
                .map(ForTenant::for_tenant)
                .collect(),
        }
    }
}

impl DeliveryDetailView {
    /// The view of `d`, saying what holds it given the `stopped` endpoints.
    pub fn new(d: DeliveryDetail, stopped: &Stopped) -> DeliveryDetailView {
        DeliveryDetailView {
            delivery: DeliveryView::new(d.delivery, stopped),
            event: d.event.into(),
            attempts: d.attempts.into_iter().map(AttemptView::from).collect(),
        }
    }
}

/// What a deletion did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub id: String,
    /// Unfinished deliveries cancelled by the deletion.
    pub cancelled_deliveries: u64,
}

/// An endpoint's figures over a window.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointStatsView {
    /// `ep_…`
    pub endpoint_id: String,
    /// `1h`, `24h` or `7d`, as asked.
    pub window: String,
    /// The window: from the start of its first minute up to now.
    pub from: String,
    pub to: String,
    /// Attempts in the window.
    pub attempts: i64,
    pub succeeded: i64,
    pub failed: i64,
    /// `succeeded / attempts`; `null` without attempts.
    pub success_ratio: Option<f64>,
    /// Failed attempts by kind.
    pub failures_by_kind: FailureKindsView,
    /// Attempt latency: percentiles as the upper bound of the histogram
    /// bucket they fall in; all `null` without attempts.
    pub latency_ms: LatencyView,
    /// Failed attempts by cause (`http_status 503`, or the error kind and
    /// its first line normalised), most first.
    pub failures_by_cause: Vec<FailureCauseView>,
    /// Deliveries created in the window, by the state each is in now.
    pub deliveries_by_state: BTreeMap<String, i64>,
    /// Deliveries waiting now (`pending` and `retrying`), whenever created.
    pub backlog: i64,
    /// Deliveries being attempted now.
    pub in_flight: i64,
    /// When the longest-waiting delivery was (or is) due; `null` without
    /// a backlog.
    pub oldest_due_at: Option<String>,
}

/// Failed attempts by kind.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailureKindsView {
    pub status_4xx: i64,
    pub status_5xx: i64,
    pub timeout: i64,
    pub network: i64,
    pub other: i64,
}

/// Attempt latency over a window.
#[derive(Debug, Serialize, ToSchema)]
pub struct LatencyView {
    pub mean: Option<i64>,
    pub p50: Option<i64>,
    pub p95: Option<i64>,
    pub p99: Option<i64>,
}

/// One cause of an endpoint's failures within a window.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailureCauseView {
    pub cause: String,
    pub failures: i64,
    pub first_at: String,
    pub last_at: String,
    /// The latest failure's delivery (`dlv_…`) and its error as it read.
    pub example_delivery_id: String,
    pub example_error: String,
}

impl EndpointStatsView {
    /// The view of `stats` over the window named `window`.
    pub fn new(stats: EndpointStats, window: &str) -> EndpointStatsView {
        let a = &stats.attempts;
        let attempts = a.attempts();
        let mut deliveries_by_state: BTreeMap<String, i64> = DeliveryState::WORDS
            .iter()
            .map(|word| ((*word).to_string(), 0))
            .collect();
        for (state, count) in &stats.by_state {
            *deliveries_by_state.entry(state.to_string()).or_default() += count;
        }
        EndpointStatsView {
            endpoint_id: stats.endpoint_id,
            window: window.to_string(),
            from: time(stats.from),
            to: time(stats.to),
            attempts,
            succeeded: a.succeeded,
            failed: a.failed(),
            success_ratio: a.success_rate(),
            failures_by_kind: FailureKindsView {
                status_4xx: a.status_4xx,
                status_5xx: a.status_5xx,
                timeout: a.timeout,
                network: a.network,
                other: a.other,
            },
            latency_ms: LatencyView {
                mean: (attempts > 0).then(|| a.latency_sum_ms / attempts),
                p50: percentile(&a.buckets, 0.50),
                p95: percentile(&a.buckets, 0.95),
                p99: percentile(&a.buckets, 0.99),
            },
            failures_by_cause: stats
                .causes
                .into_iter()
                .map(|c| FailureCauseView {
                    cause: c.cause,
                    failures: c.failures,
                    first_at: time(c.first_at),
                    last_at: time(c.last_at),
                    example_delivery_id: c.example_delivery_id,
                    example_error: c.example_error,
                })
                .collect(),
            deliveries_by_state,
            backlog: stats.queue.backlog(),
            in_flight: stats.queue.in_flight,
            oldest_due_at: time_opt(stats.oldest_due),
        }
    }
}
