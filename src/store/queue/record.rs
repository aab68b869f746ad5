//! Preparing a batch of attempt outcomes for recording: the rows the
//! set-based statements bind (or read as JSON, on Postgres), and the
//! rollups (per-endpoint running stats folded in attempt order, per-minute
//! health counts) that a dispatcher may gather over several batches and
//! write less often. Pure data; the statements live in the dialect and run
//! in `queue/mod.rs`.

use std::collections::HashMap;

use serde::Serialize;

use super::{NewAttempt, NextStep, Outcome};
use crate::health::{BUCKETS, OutcomeClass, bucket_of};
use crate::model::{DeliveryState, ErrorKind};
use crate::store::to_json;

/// One outcome batch, prepared before its transaction starts.
pub(crate) struct PreparedBatch<'a> {
    /// Attempts and delivery transitions, one row per outcome.
    pub rows: Vec<OutcomeRow<'a>>,
    /// The rollups to write with them, if any.
    pub rollups: Option<RollupRows>,
}

/// [`Rollups`] as the upserts read them.
pub(crate) struct RollupRows {
    /// Per-endpoint running stats, as JSON rows in endpoint order.
    pub stats: String,
    /// Per-endpoint-minute health rollups, as JSON rows in key order.
    pub health: String,
    /// Per-endpoint-minute failures by cause, as JSON rows in key order.
    pub causes: String,
}

impl Default for RollupRows {
    /// No rollups: empty lists.
    fn default() -> RollupRows {
        RollupRows {
            stats: "[]".to_string(),
            health: "[]".to_string(),
            causes: "[]".to_string(),
        }
    }
}

impl<'a> PreparedBatch<'a> {
    pub fn new(
        owner: &'a str,
        outcomes: &'a [Outcome],
        rollups: Option<&Rollups>,
    ) -> PreparedBatch<'a> {
        PreparedBatch {
            rows: outcomes.iter().map(|o| outcome_row(o, owner)).collect(),
            rollups: rollups.filter(|r| !r.is_empty()).map(|r| RollupRows {
                stats: r.stats_json(),
                health: r.health_json(),
                causes: r.causes_json(),
            }),
        }
    }

    /// The deliveries whose outcome here was a retry's (attempt 2 on):
    /// those whose history may outgrow `retention.attempts_per_delivery`.
    pub fn retried_deliveries(&self) -> Vec<&'a str> {
        self.rows
            .iter()
            .filter(|row| row.attempt_number > 1)
            .map(|row| row.delivery_id)
            .collect()
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.rollups.is_none()
    }
}

/// Endpoint stats and health counts folded from outcomes, not yet written.
///
/// Recording writes them with the outcomes they come from, or, for a busy
/// dispatcher, gathered over several cycles: rewriting a few rows per cycle
/// cost it ~13 % of each cycle when delivering flat out.
#[derive(Debug, Clone, Default)]
pub struct Rollups {
    stats: HashMap<String, StatsJson>,
    health: HashMap<(String, i64), HealthJson>,
    causes: HashMap<(String, i64, String), CauseJson>,
}

impl Rollups {
    /// The rollups of `outcomes` alone.
    pub fn of(owner: &str, outcomes: &[Outcome]) -> Rollups {
        let mut rollups = Rollups::default();
        rollups.add(owner, outcomes);
        rollups
    }

    /// Folds `outcomes` (attempts by dispatcher `owner`) in, in attempt order.
    pub fn add(&mut self, owner: &str, outcomes: &[Outcome]) {
        let mut ordered: Vec<&Outcome> = outcomes.iter().collect();
        ordered.sort_by_key(|o| o.attempt.started_at);
        for outcome in ordered {
            fold_stats(&mut self.stats, owner, &outcome.attempt);
            fold_health(&mut self.health, owner, &outcome.attempt);
            fold_cause(&mut self.causes, owner, &outcome.attempt);
        }
    }

    /// Whether no outcome has been folded in.
    pub fn is_empty(&self) -> bool {
        self.stats.is_empty()
    }

    fn stats_json(&self) -> String {
        let mut stats: Vec<&StatsJson> = self.stats.values().collect();
        // One lock order for every dispatcher, so concurrent upserts never deadlock.
        stats.sort_by(|a, b| a.endpoint_id.cmp(&b.endpoint_id));
        to_json(&stats)
    }

    fn causes_json(&self) -> String {
        let mut causes: Vec<&CauseJson> = self.causes.values().collect();
        // One lock order for every dispatcher, so concurrent upserts never deadlock.
        causes.sort_by(|a, b| {
            (&a.endpoint_id, a.minute, &a.cause).cmp(&(&b.endpoint_id, b.minute, &b.cause))
        });
        to_json(&causes)
    }

    fn health_json(&self) -> String {
        let mut rollups: Vec<&HealthJson> = self.health.values().collect();
        // One lock order for every dispatcher, so concurrent upserts never deadlock.
        rollups.sort_by(|a, b| (&a.endpoint_id, a.minute).cmp(&(&b.endpoint_id, b.minute)));
        to_json(&rollups)
    }
}

/// An outcome as the recording statements bind it (or read it from JSON):
/// the attempt's columns and the delivery's transition.
#[derive(Serialize)]
pub(crate) struct OutcomeRow<'a> {
    pub(super) id: &'a str,
    pub(super) delivery_id: &'a str,
    pub(super) endpoint_id: &'a str,
    pub(super) attempt_number: i64,
    pub(super) started_at: i64,
    pub(super) duration_ms: i64,
    pub(super) status_code: Option<i64>,
    pub(super) error_kind: Option<&'static str>,
    pub(super) error_message: Option<&'a str>,
    pub(super) request_headers: String,
    pub(super) response_body: Option<&'a str>,
    pub(super) dispatcher_id: &'a str,
    pub(super) state: &'static str,
    pub(super) retry_in: i64,
    pub(super) error: Option<String>,
}

/// Binds the attempt columns of `insert_attempts` for one
/// `Option<&OutcomeRow>` (`None`: a pad row, all NULL). A macro: it binds
/// onto either backend's query type, for `execute_rows!`.
macro_rules! bind_attempt {
    ($query:expr, $row:expr) => {{
        let row: Option<&$crate::store::queue::record::OutcomeRow<'_>> = $row;
        $query
            .bind(row.map(|r| r.id))
            .bind(row.map(|r| r.delivery_id))
            .bind(row.map(|r| r.endpoint_id))
            .bind(row.map(|r| r.attempt_number))
            .bind(row.map(|r| r.started_at))
            .bind(row.map(|r| r.duration_ms))
            .bind(row.and_then(|r| r.status_code))
            .bind(row.and_then(|r| r.error_kind))
            .bind(row.and_then(|r| r.error_message))
            .bind(row.map(|r| r.request_headers.as_str()))
            .bind(row.and_then(|r| r.response_body))
            .bind(row.map(|r| r.dispatcher_id))
    }};
}
pub(super) use bind_attempt;

/// Binds the columns of `apply_outcomes` for one `Option<&OutcomeRow>`
/// (`None`: a pad row, whose NULL id matches no delivery). A macro: it
/// binds onto either backend's query type, for `execute_rows!`.
macro_rules! bind_outcome {
    ($query:expr, $row:expr) => {{
        let row: Option<&$crate::store::queue::record::OutcomeRow<'_>> = $row;
        $query
            .bind(row.map(|r| r.delivery_id))
            .bind(row.map(|r| r.state))
            .bind(row.map(|r| r.attempt_number))
            .bind(row.map(|r| r.retry_in))
            .bind(row.map(|r| r.started_at))
            .bind(row.and_then(|r| r.status_code))
            .bind(row.and_then(|r| r.error.as_deref()))
    }};
}
pub(super) use bind_outcome;

/// The short "last error" shown on a delivery: the kind and its message.
fn summarise_error(attempt: &NewAttempt) -> Option<String> {
    let kind = attempt.error_kind?;
    Some(match (&attempt.error_message, attempt.status_code) {
        (_, Some(status)) if kind == ErrorKind::HttpStatus => format!("http_status {status}"),
        (Some(message), _) => format!("{kind}: {message}"),
        (None, _) => kind.to_string(),
    })
}

fn outcome_row<'a>(outcome: &'a Outcome, owner: &'a str) -> OutcomeRow<'a> {
    let attempt = &outcome.attempt;
    let (state, retry_in) = match outcome.next {
        NextStep::Succeeded => (DeliveryState::Delivered.as_db(), 0),
        NextStep::RetryIn(ms) => (DeliveryState::Retrying.as_db(), ms.max(0)),
        NextStep::Dead => (DeliveryState::Dead.as_db(), 0),
    };
    OutcomeRow {
        id: &attempt.id,
        delivery_id: &attempt.delivery_id,
        endpoint_id: &attempt.endpoint_id,
        attempt_number: attempt.attempt_number,
        started_at: attempt.started_at,
        duration_ms: attempt.duration_ms,
        status_code: attempt.status_code,
        error_kind: attempt.error_kind.map(ErrorKind::as_db),
        error_message: attempt.error_message.as_deref(),
        request_headers: serde_json::to_string(&attempt.request_headers)
            .unwrap_or_else(|_| "[]".to_string()), // ok: strings always serialise
        response_body: attempt.response_body.as_deref(),
        dispatcher_id: owner,
        state,
        retry_in,
        error: summarise_error(attempt),
    }
}

/// Per-endpoint running facts of the outcomes folded in, in attempt order.
#[derive(Debug, Clone, Serialize, Default)]
struct StatsJson {
    endpoint_id: String,
    dispatcher_id: String,
    /// Failures since the batch's last success (or all, if none succeeded).
    failures: i64,
    last_attempt_at: Option<i64>,
    last_success_at: Option<i64>,
    last_failure_at: Option<i64>,
    last_status: Option<i64>,
    last_error: Option<String>,
}

/// Folds one attempt into its endpoint's running facts.
fn fold_stats(stats: &mut HashMap<String, StatsJson>, owner: &str, attempt: &NewAttempt) {
    let stats = stats
        .entry(attempt.endpoint_id.clone())
        .or_insert_with(|| StatsJson {
            endpoint_id: attempt.endpoint_id.clone(),
            dispatcher_id: owner.to_string(),
            ..StatsJson::default()
        });
    stats.last_attempt_at = Some(attempt.started_at);
    stats.last_status = attempt.status_code;
    match OutcomeClass::of(attempt.error_kind, attempt.status_code) {
        OutcomeClass::Succeeded => {
            stats.failures = 0;
            stats.last_success_at = Some(attempt.started_at);
        }
        // Shown as the last error, so the operator sees why nothing moves,
        // but not a failure of the receiver's.
        OutcomeClass::Blocked => {
            stats.last_failure_at = Some(attempt.started_at);
            stats.last_error = summarise_error(attempt);
        }
        _ => {
            stats.failures += 1;
            stats.last_failure_at = Some(attempt.started_at);
            stats.last_error = summarise_error(attempt);
        }
    }
}

/// One endpoint-minute of attempt counts and latency histogram.
#[derive(Debug, Clone, Serialize, Default)]
struct HealthJson {
    endpoint_id: String,
    minute: i64,
    dispatcher_id: String,
    succeeded: i64,
    status_4xx: i64,
    status_5xx: i64,
    timeout: i64,
    network: i64,
    other: i64,
    latency_sum_ms: i64,
    buckets: [i64; BUCKETS],
}

/// Counts one attempt in its endpoint-minute.
fn fold_health(
    rollups: &mut HashMap<(String, i64), HealthJson>,
    owner: &str,
    attempt: &NewAttempt,
) {
    let class = OutcomeClass::of(attempt.error_kind, attempt.status_code);
    if class == OutcomeClass::Blocked {
        // Nothing reached the receiver: no attempt to count or time.
        return;
    }
    let minute = attempt.started_at - attempt.started_at.rem_euclid(60_000);
    let rollup = rollups
        .entry((attempt.endpoint_id.clone(), minute))
        .or_insert_with(|| HealthJson {
            endpoint_id: attempt.endpoint_id.clone(),
            minute,
            dispatcher_id: owner.to_string(),
            ..HealthJson::default()
        });
    let count = match class {
        OutcomeClass::Succeeded => &mut rollup.succeeded,
        OutcomeClass::Status4xx => &mut rollup.status_4xx,
        OutcomeClass::Status5xx => &mut rollup.status_5xx,
        OutcomeClass::Timeout => &mut rollup.timeout,
        OutcomeClass::Network => &mut rollup.network,
        OutcomeClass::Other | OutcomeClass::Blocked => &mut rollup.other,
    };
    *count += 1;
    rollup.latency_sum_ms += attempt.duration_ms;
    rollup.buckets[bucket_of(attempt.duration_ms)] += 1;
}

/// One endpoint-minute's failures with one cause.
#[derive(Debug, Clone, Serialize)]
struct CauseJson {
    endpoint_id: String,
    minute: i64,
    dispatcher_id: String,
    cause: String,
    failures: i64,
    first_at: i64,
    last_at: i64,
    example_delivery_id: String,
    example_error: String,
}

/// Counts one failed attempt under its cause (a success counts nowhere).
fn fold_cause(
    causes: &mut HashMap<(String, i64, String), CauseJson>,
    owner: &str,
    attempt: &NewAttempt,
) {
    let Some(example_error) = summarise_error(attempt) else {
        return;
    };
    let cause = crate::cause::cause_of(&example_error);
    let minute = attempt.started_at - attempt.started_at.rem_euclid(60_000);
    let key = (attempt.endpoint_id.clone(), minute, cause);
    let row = causes.entry(key.clone()).or_insert_with(|| CauseJson {
        endpoint_id: key.0,
        minute,
        dispatcher_id: owner.to_string(),
        cause: key.2,
        failures: 0,
        first_at: attempt.started_at,
        last_at: attempt.started_at,
        example_delivery_id: attempt.delivery_id.clone(),
        example_error: example_error.clone(),
    });
    row.failures += 1;
    row.first_at = row.first_at.min(attempt.started_at);
    if attempt.started_at >= row.last_at {
        row.last_at = attempt.started_at;
        row.example_delivery_id = attempt.delivery_id.clone();
        row.example_error = example_error;
    }
}
