//! Preparing a batch of attempt outcomes for recording: the JSON rows the
//! set-based statements read, and the rollups (per-endpoint running stats
//! folded in attempt order, per-minute health counts) that a dispatcher may
//! gather over several batches and write less often. Pure data; the
//! statements live in the dialect and run in `queue/mod.rs`.

use std::collections::HashMap;

use serde::Serialize;

use super::{NewAttempt, NextStep, Outcome};
use crate::model::ErrorKind;
use crate::store::publish::to_json;

/// One outcome batch, serialised once before its transaction starts.
pub(crate) struct PreparedBatch {
    /// Attempts and delivery transitions, as JSON rows (`None`: no outcomes).
    pub rows: Option<String>,
    /// The rollups to write with them, if any.
    pub rollups: Option<RollupRows>,
}

/// [`Rollups`] as the upserts read them.
pub(crate) struct RollupRows {
    /// Per-endpoint running stats, as JSON rows in endpoint order.
    pub stats: String,
    /// Per-endpoint-minute health rollups, as JSON rows in key order.
    pub health: String,
}

impl PreparedBatch {
    pub fn new(owner: &str, outcomes: &[Outcome], rollups: Option<&Rollups>) -> PreparedBatch {
        let rows: Vec<OutcomeJson<'_>> = outcomes.iter().map(|o| outcome_json(o, owner)).collect();
        PreparedBatch {
            rows: (!rows.is_empty()).then(|| to_json(&rows)),
            rollups: rollups.filter(|r| !r.is_empty()).map(|r| RollupRows {
                stats: r.stats_json(),
                health: r.health_json(),
            }),
        }
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.rows.is_none() && self.rollups.is_none()
    }
}

/// Endpoint stats and health counts folded from outcomes, not yet written.
///
/// Recording writes them with the outcomes they come from, or, for a busy
/// dispatcher, gathered over several cycles: rewriting a few rows per cycle
/// cost it ~13 % of each cycle when flat out (see BENCHMARKS.md).
#[derive(Debug, Clone, Default)]
pub struct Rollups {
    stats: HashMap<String, StatsJson>,
    health: HashMap<(String, i64), HealthJson>,
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

    fn health_json(&self) -> String {
        let mut rollups: Vec<&HealthJson> = self.health.values().collect();
        // One lock order for every dispatcher, so concurrent upserts never deadlock.
        rollups.sort_by(|a, b| (&a.endpoint_id, a.minute).cmp(&(&b.endpoint_id, b.minute)));
        to_json(&rollups)
    }
}

/// An outcome as the recording statements read it from their JSON parameter.
#[derive(Serialize)]
struct OutcomeJson<'a> {
    id: &'a str,
    delivery_id: &'a str,
    endpoint_id: &'a str,
    attempt_number: i64,
    started_at: i64,
    duration_ms: i64,
    status_code: Option<i64>,
    error_kind: Option<&'static str>,
    error_message: Option<&'a str>,
    request_headers: String,
    response_body: Option<&'a str>,
    dispatcher_id: &'a str,
    state: &'static str,
    retry_in: i64,
    error: Option<String>,
}

/// The short "last error" shown on a delivery: the kind and its message.
fn summarise_error(attempt: &NewAttempt) -> Option<String> {
    let kind = attempt.error_kind?;
    Some(match (&attempt.error_message, attempt.status_code) {
        (_, Some(status)) if kind == ErrorKind::HttpStatus => format!("http_status {status}"),
        (Some(message), _) => format!("{kind}: {message}"),
        (None, _) => kind.to_string(),
    })
}

fn outcome_json<'a>(outcome: &'a Outcome, owner: &'a str) -> OutcomeJson<'a> {
    let attempt = &outcome.attempt;
    let (state, retry_in) = match outcome.next {
        NextStep::Succeeded => ("succeeded", 0),
        NextStep::RetryIn(ms) => ("scheduled", ms.max(0)),
        NextStep::Dead => ("dead", 0),
    };
    OutcomeJson {
        id: &attempt.id,
        delivery_id: &attempt.delivery_id,
        endpoint_id: &attempt.endpoint_id,
        attempt_number: attempt.attempt_number,
        started_at: attempt.started_at,
        duration_ms: attempt.duration_ms,
        status_code: attempt.status_code,
        error_kind: attempt.error_kind.map(ErrorKind::as_str),
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
    if attempt.error_kind.is_none() {
        stats.failures = 0;
        stats.last_success_at = Some(attempt.started_at);
    } else {
        stats.failures += 1;
        stats.last_failure_at = Some(attempt.started_at);
        stats.last_error = summarise_error(attempt);
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
    buckets: [i64; crate::dispatch::health::BUCKETS],
}

/// Counts one attempt in its endpoint-minute.
fn fold_health(
    rollups: &mut HashMap<(String, i64), HealthJson>,
    owner: &str,
    attempt: &NewAttempt,
) {
    let minute = attempt.started_at - attempt.started_at.rem_euclid(60_000);
    let rollup = rollups
        .entry((attempt.endpoint_id.clone(), minute))
        .or_insert_with(|| HealthJson {
            endpoint_id: attempt.endpoint_id.clone(),
            minute,
            dispatcher_id: owner.to_string(),
            ..HealthJson::default()
        });
    match (attempt.error_kind, attempt.status_code) {
        (None, _) => rollup.succeeded += 1,
        (Some(ErrorKind::HttpStatus), Some(status)) if (400..500).contains(&status) => {
            rollup.status_4xx += 1
        }
        (Some(ErrorKind::HttpStatus), _) => rollup.status_5xx += 1,
        (Some(ErrorKind::Timeout), _) => rollup.timeout += 1,
        (Some(ErrorKind::Connect | ErrorKind::Dns | ErrorKind::Tls | ErrorKind::Network), _) => {
            rollup.network += 1
        }
        (Some(ErrorKind::TooLargeResponse), _) => rollup.other += 1,
    }
    rollup.latency_sum_ms += attempt.duration_ms;
    rollup.buckets[crate::dispatch::health::bucket_of(attempt.duration_ms)] += 1;
}
