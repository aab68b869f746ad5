//! The delivery queue: claiming due deliveries under a lease with
//! per-endpoint in-flight limits, recording attempt outcomes in batches,
//! and releasing leases on shutdown.
//!
//! The claim works endpoint by endpoint: it finds the endpoints that have
//! queued work (a skip scan over the partial `deliveries_queue` index), keeps
//! the active ones with free capacity, and takes each one's oldest due
//! deliveries. A paused or saturated endpoint's backlog is never scanned, so
//! one slow endpoint with 50,000 queued deliveries costs the others nothing.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::json;

use super::audit::{AuditRecord, write_audit};
use super::rows::parse_json;
use super::{Result, Store, db_now, json_list, notify_change, on_db};
use crate::model::{Actor, ErrorKind, Source};

/// What a dispatcher asks of [`Store::claim`].
#[derive(Debug, Clone)]
pub struct ClaimRequest<'a> {
    /// The dispatcher's id; leases carry it.
    pub owner: &'a str,
    /// Most deliveries to claim.
    pub limit: usize,
    /// How long the lease lasts unless the endpoint's timeout needs longer.
    pub lease_ms: i64,
    /// In-flight cap for endpoints without their own.
    pub default_max_in_flight: i64,
    /// Attempt timeout for endpoints without their own.
    pub default_timeout_ms: i64,
}

/// A leased delivery with everything needed to attempt it.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: String,
    pub event_id: String,
    pub endpoint_id: String,
    /// Attempts already made in the current schedule.
    pub attempts: i64,
    pub topic: String,
    pub payload: String,
}

/// Where and how to send an endpoint's deliveries.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointTarget {
    pub id: String,
    pub url: String,
    /// The current secret first, then the previous one while its grace lasts.
    pub secrets: Vec<String>,
    pub timeout_ms: i64,
    pub headers: Vec<(String, String)>,
}

/// The result of one claim.
#[derive(Debug, Clone, Default)]
pub struct Claimed {
    pub deliveries: Vec<ClaimedDelivery>,
    /// The endpoints the claimed deliveries go to, by id.
    pub endpoints: HashMap<String, EndpointTarget>,
    /// How long until more work may be due for an endpoint with free
    /// capacity (`Some(0)`: some is due now); `None` when nothing is queued.
    pub next_due_in_ms: Option<i64>,
}

/// One attempt as the dispatcher made it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewAttempt {
    pub id: String,
    pub delivery_id: String,
    pub endpoint_id: String,
    pub attempt_number: i64,
    pub started_at: i64,
    pub duration_ms: i64,
    pub status_code: Option<i64>,
    pub error_kind: Option<ErrorKind>,
    pub error_message: Option<String>,
    /// Headers sent, signature masked.
    pub request_headers: Vec<(String, String)>,
    pub response_body: Option<String>,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    Succeeded,
    /// Try again this many milliseconds from now (database clock).
    RetryIn(i64),
    /// The schedule is exhausted.
    Dead,
}

/// An attempt and its consequence for the delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub attempt: NewAttempt,
    pub next: NextStep,
    /// Set when the answer was 410 Gone: the endpoint is disabled with this reason.
    pub disable_endpoint: Option<String>,
}

/// What [`Store::record_outcomes`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordSummary {
    /// Deliveries whose state changed.
    pub applied: u64,
    /// Outcomes whose lease had been lost (expired and taken, or the endpoint
    /// deleted): the attempt is kept in history, the delivery is not touched.
    pub stale: u64,
}

/// Milliseconds a lease outlives the endpoint's timeout, so an attempt that
/// runs its full timeout still records its outcome under its own lease.
const LEASE_MARGIN_MS: i64 = 5_000;

const DISABLE_ENDPOINT: &str = "UPDATE endpoints
    SET state = 'disabled', state_reason = $2, state_changed_at = $3, updated_at = $3
    WHERE id = $1 AND state = 'active' AND deleted_at IS NULL";

/// An endpoint with queued work, as the claim sees it.
#[derive(sqlx::FromRow)]
struct Head {
    id: String,
    due: Option<i64>,
    max_in_flight: Option<i64>,
    timeout_ms: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: String,
    event_id: String,
    endpoint_id: String,
    attempts: i64,
    topic: String,
    next_attempt_at: i64,
}

#[derive(sqlx::FromRow)]
struct TargetRow {
    id: String,
    url: String,
    secret: String,
    previous_secret: Option<String>,
    previous_secret_expires_at: Option<i64>,
    timeout_ms: Option<i64>,
    headers: String,
}

/// An endpoint this claim may take deliveries from.
struct Eligible {
    endpoint_id: String,
    /// Its oldest due time.
    due: i64,
    /// Free in-flight slots.
    free: i64,
    lease_ms: i64,
}

/// The active endpoints with due work and free capacity, oldest head first,
/// and how long until work that is not yet due becomes due.
fn eligible_endpoints(
    heads: &[Head],
    in_flight: &HashMap<String, i64>,
    request: &ClaimRequest<'_>,
    now: i64,
) -> (Vec<Eligible>, Option<i64>) {
    let mut eligible = Vec::new();
    let mut next_due_in: Option<i64> = None;
    for head in heads {
        let Some(due) = head.due else { continue };
        let cap = head.max_in_flight.unwrap_or(request.default_max_in_flight);
        let free = cap - in_flight.get(&head.id).copied().unwrap_or(0);
        if free <= 0 {
            continue;
        }
        let wait = (due - now).max(0);
        next_due_in = Some(next_due_in.map_or(wait, |w| w.min(wait)));
        if due <= now {
            let timeout = head.timeout_ms.unwrap_or(request.default_timeout_ms);
            eligible.push(Eligible {
                endpoint_id: head.id.clone(),
                due,
                free,
                lease_ms: request.lease_ms.max(timeout + LEASE_MARGIN_MS),
            });
        }
    }
    eligible.sort_by(|a, b| (a.due, &a.endpoint_id).cmp(&(b.due, &b.endpoint_id)));
    (eligible, next_due_in)
}

/// A due delivery the claim may lease.
#[derive(Serialize)]
struct Candidate {
    id: String,
    due: i64,
    lease_expires_at: i64,
}

/// The `limit` oldest due candidates seen so far, across endpoints: a k-way
/// merge of the endpoints' queues, each already in due order.
struct OldestDue {
    limit: usize,
    picked: Vec<Candidate>,
}

impl OldestDue {
    fn new(limit: usize) -> OldestDue {
        OldestDue {
            limit,
            picked: Vec::new(),
        }
    }

    /// Whether an endpoint whose oldest work is due at `due` can no longer
    /// contribute: the pick is full and everything in it is older.
    fn settled_before(&self, due: i64) -> bool {
        self.picked.len() >= self.limit && self.picked.last().is_some_and(|last| last.due < due)
    }

    fn offer(&mut self, candidates: impl IntoIterator<Item = Candidate>) {
        self.picked.extend(candidates);
        self.picked
            .sort_by(|a, b| (a.due, &a.id).cmp(&(b.due, &b.id)));
        self.picked.truncate(self.limit);
    }
}

/// The secrets that sign right now: current, then previous during its grace.
fn signing_secrets(row: &TargetRow, now: i64) -> Vec<String> {
    let mut secrets = vec![row.secret.clone()];
    if let (Some(previous), Some(expires)) = (&row.previous_secret, row.previous_secret_expires_at)
        && expires > now
    {
        secrets.push(previous.clone());
    }
    secrets
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

/// Per-endpoint running facts from one batch, folded in attempt order.
#[derive(Serialize, Default)]
struct StatsJson {
    endpoint_id: String,
    /// Failures since the batch's last success (or all, if none succeeded).
    failures: i64,
    last_attempt_at: Option<i64>,
    last_success_at: Option<i64>,
    last_failure_at: Option<i64>,
    last_status: Option<i64>,
    last_error: Option<String>,
}

fn endpoint_stats(outcomes: &[Outcome]) -> Vec<StatsJson> {
    let mut by_endpoint: HashMap<&str, StatsJson> = HashMap::new();
    let mut ordered: Vec<&Outcome> = outcomes.iter().collect();
    ordered.sort_by_key(|o| o.attempt.started_at);
    for outcome in ordered {
        let attempt = &outcome.attempt;
        let stats = by_endpoint
            .entry(&attempt.endpoint_id)
            .or_insert_with(|| StatsJson {
                endpoint_id: attempt.endpoint_id.clone(),
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
    let mut stats: Vec<StatsJson> = by_endpoint.into_values().collect();
    // One lock order for every dispatcher, so concurrent upserts never deadlock.
    stats.sort_by(|a, b| a.endpoint_id.cmp(&b.endpoint_id));
    stats
}

/// One endpoint-minute of attempt counts and latency histogram.
#[derive(Serialize, Default)]
struct HealthJson {
    endpoint_id: String,
    minute: i64,
    succeeded: i64,
    status_4xx: i64,
    status_5xx: i64,
    timeout: i64,
    network: i64,
    other: i64,
    latency_sum_ms: i64,
    buckets: [i64; crate::dispatch::health::BUCKETS],
}

fn health_rollups(outcomes: &[Outcome]) -> Vec<HealthJson> {
    let mut rollups: HashMap<(&str, i64), HealthJson> = HashMap::new();
    for outcome in outcomes {
        let attempt = &outcome.attempt;
        let minute = attempt.started_at - attempt.started_at.rem_euclid(60_000);
        let rollup = rollups
            .entry((&attempt.endpoint_id, minute))
            .or_insert_with(|| HealthJson {
                endpoint_id: attempt.endpoint_id.clone(),
                minute,
                ..HealthJson::default()
            });
        match (attempt.error_kind, attempt.status_code) {
            (None, _) => rollup.succeeded += 1,
            (Some(ErrorKind::HttpStatus), Some(status)) if (400..500).contains(&status) => {
                rollup.status_4xx += 1
            }
            (Some(ErrorKind::HttpStatus), _) => rollup.status_5xx += 1,
            (Some(ErrorKind::Timeout), _) => rollup.timeout += 1,
            (
                Some(ErrorKind::Connect | ErrorKind::Dns | ErrorKind::Tls | ErrorKind::Network),
                _,
            ) => rollup.network += 1,
            (Some(ErrorKind::TooLargeResponse), _) => rollup.other += 1,
        }
        rollup.latency_sum_ms += attempt.duration_ms;
        rollup.buckets[crate::dispatch::health::bucket_of(attempt.duration_ms)] += 1;
    }
    let mut rollups: Vec<HealthJson> = rollups.into_values().collect();
    // One lock order for every dispatcher, so concurrent upserts never deadlock.
    rollups.sort_by(|a, b| (&a.endpoint_id, a.minute).cmp(&(&b.endpoint_id, b.minute)));
    rollups
}

impl Store {
    /// The query plan of each statement that claims deliveries or records
    /// outcomes, by name, as the database reports it (`EXPLAIN QUERY PLAN`
    /// on SQLite, `EXPLAIN` on Postgres): for tests that guard the queue's
    /// index use, and for operators diagnosing a slow queue.
    pub async fn explain_queue(&self) -> Result<Vec<(&'static str, String)>> {
        on_db!(self, |pools, sql| {
            let statements: [(&'static str, &'static str, usize); 6] = [
                ("reap_expired", sql.reap_expired, 1),
                ("queue_heads", sql.queue_heads, 0),
                ("in_flight", sql.in_flight, 0),
                ("queue_candidates", sql.queue_candidates, 3),
                ("claim_rows", sql.claim_rows, 3),
                ("apply_outcomes", sql.apply_outcomes, 3),
            ];
            let mut plans = Vec::new();
            for (name, statement, params) in statements {
                let text = format!("{}{statement}", sql.explain);
                let mut query = sqlx::query(sqlx::AssertSqlSafe(text));
                // Representative values for each statement's parameters.
                for position in 0..params {
                    query = match (name, position) {
                        ("queue_candidates", 0) => query.bind("ep_explain"),
                        ("claim_rows", 0) => query.bind(r#"[{"id":"dlv_x","lease_expires_at":1}]"#),
                        ("claim_rows", 1) => query.bind("dsp_explain"),
                        ("apply_outcomes", 0) => query.bind(r#"[{"delivery_id":"dlv_x"}]"#),
                        ("apply_outcomes", 2) => query.bind("dsp_explain"),
                        _ => query.bind(crate::model::now_millis()),
                    };
                }
                let rows = query.fetch_all(&pools.read).await?;
                let lines: Vec<String> = rows
                    .iter()
                    .filter_map(|row| {
                        use sqlx::Row;
                        row.try_get::<String, _>(sql.explain_column).ok()
                    })
                    .collect();
                plans.push((name, lines.join("\n")));
            }
            Ok(plans)
        })
    }

    /// Leases up to `request.limit` due deliveries, respecting every
    /// endpoint's in-flight cap as counted in the database (so caps hold
    /// across dispatcher processes). Expired leases are taken back first.
    pub async fn claim(&self, request: &ClaimRequest<'_>) -> Result<Claimed> {
        if request.limit == 0 {
            return Ok(Claimed::default());
        }
        on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now!(sql, &mut *tx)?;
            sqlx::query(sql.reap_expired)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let mut heads: Vec<Head> = sqlx::query_as(sql.queue_heads).fetch_all(&mut *tx).await?;
            if let Some(lock) = sql.lock_endpoints {
                // Several dispatchers: hold the candidate endpoints' rows so that
                // in-flight counts read below cannot change under us, and skip
                // endpoints another dispatcher is claiming for right now.
                let candidates: Vec<&str> = heads.iter().map(|h| h.id.as_str()).collect();
                let locked: Vec<String> = sqlx::query_scalar(lock)
                    .bind(json_list(&candidates))
                    .fetch_all(&mut *tx)
                    .await?;
                heads.retain(|h| locked.contains(&h.id));
            }
            let leased: Vec<String> = sqlx::query_scalar(sql.in_flight)
                .fetch_all(&mut *tx)
                .await?;
            let mut in_flight: HashMap<String, i64> = HashMap::new();
            for endpoint_id in leased {
                *in_flight.entry(endpoint_id).or_default() += 1;
            }
            let (eligible, next_due_in_ms) = eligible_endpoints(&heads, &in_flight, request, now);
            let mut oldest = OldestDue::new(request.limit);
            for endpoint in &eligible {
                if oldest.settled_before(endpoint.due) {
                    break;
                }
                let due: Vec<(String, i64)> = sqlx::query_as(sql.queue_candidates)
                    .bind(&endpoint.endpoint_id)
                    .bind(now)
                    .bind(endpoint.free.min(request.limit as i64))
                    .fetch_all(&mut *tx)
                    .await?;
                oldest.offer(due.into_iter().map(|(id, due)| Candidate {
                    id,
                    due,
                    lease_expires_at: now + endpoint.lease_ms,
                }));
            }
            if oldest.picked.is_empty() {
                tx.commit().await?;
                return Ok(Claimed {
                    next_due_in_ms,
                    ..Claimed::default()
                });
            }
            let picked = serde_json::to_string(&oldest.picked).unwrap_or_default(); // ok: plain data
            let mut rows: Vec<ClaimedRow> = sqlx::query_as(sql.claim_rows)
                .bind(picked)
                .bind(request.owner)
                .bind(now)
                .fetch_all(&mut *tx)
                .await?;
            rows.sort_by(|a, b| (a.next_attempt_at, &a.id).cmp(&(b.next_attempt_at, &b.id)));
            let event_ids: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
            let payloads: HashMap<String, String> = sqlx::query_as(sql.event_payloads)
                .bind(json_list(&event_ids))
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
            let mut endpoint_ids: Vec<&str> = rows.iter().map(|r| r.endpoint_id.as_str()).collect();
            endpoint_ids.sort_unstable();
            endpoint_ids.dedup();
            let targets: Vec<TargetRow> = sqlx::query_as(sql.endpoint_targets)
                .bind(json_list(&endpoint_ids))
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            let mut endpoints = HashMap::new();
            for row in targets {
                let target = EndpointTarget {
                    secrets: signing_secrets(&row, now),
                    headers: parse_json("endpoints", "headers", &row.headers)?,
                    timeout_ms: row.timeout_ms.unwrap_or(request.default_timeout_ms),
                    url: row.url,
                    id: row.id.clone(),
                };
                endpoints.insert(row.id, target);
            }
            let deliveries = rows
                .into_iter()
                .map(|row| ClaimedDelivery {
                    payload: payloads.get(&row.event_id).cloned().unwrap_or_default(),
                    id: row.id,
                    event_id: row.event_id,
                    endpoint_id: row.endpoint_id,
                    attempts: row.attempts,
                    topic: row.topic,
                })
                .collect();
            Ok(Claimed {
                deliveries,
                endpoints,
                next_due_in_ms,
            })
        })
    }

    /// Records a batch of attempts and their consequences in one transaction:
    /// attempt history, delivery states, endpoint stats, per-minute health
    /// rollups, and 410 disables. A delivery whose lease `owner` no longer
    /// holds keeps its state; its attempt is still recorded.
    pub async fn record_outcomes(
        &self,
        owner: &str,
        outcomes: &[Outcome],
    ) -> Result<RecordSummary> {
        if outcomes.is_empty() {
            return Ok(RecordSummary::default());
        }
        let rows: Vec<OutcomeJson<'_>> = outcomes.iter().map(|o| outcome_json(o, owner)).collect();
        let rows = serde_json::to_string(&rows).unwrap_or_default(); // ok: plain data
        let stats = serde_json::to_string(&endpoint_stats(outcomes)).unwrap_or_default(); // ok: plain data
        let health = serde_json::to_string(&health_rollups(outcomes)).unwrap_or_default(); // ok: plain data
        let system = Actor {
            name: "hookline".to_string(),
            client_addr: None,
            source: Source::System,
        };
        let applied = on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now!(sql, &mut *tx)?;
            sqlx::query(sql.insert_attempts)
                .bind(&rows)
                .execute(&mut *tx)
                .await?;
            let applied = sqlx::query(sql.apply_outcomes)
                .bind(&rows)
                .bind(now)
                .bind(owner)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query(sql.upsert_endpoint_stats)
                .bind(&stats)
                .execute(&mut *tx)
                .await?;
            sqlx::query(sql.upsert_health)
                .bind(&health)
                .execute(&mut *tx)
                .await?;
            for outcome in outcomes {
                let Some(reason) = &outcome.disable_endpoint else {
                    continue;
                };
                let endpoint_id = &outcome.attempt.endpoint_id;
                let disabled = sqlx::query(DISABLE_ENDPOINT)
                    .bind(endpoint_id)
                    .bind(reason)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                if disabled.rows_affected() > 0 {
                    write_audit!(
                        &mut *tx,
                        now,
                        AuditRecord {
                            actor: &system,
                            action: "endpoint.disable",
                            target_ids: vec![endpoint_id.clone()],
                            detail: json!({ "reason": reason, "delivery_id": outcome.attempt.delivery_id }),
                        }
                    )?;
                }
            }
            tx.commit().await?;
            applied
        });
        Ok(RecordSummary {
            applied,
            stale: (outcomes.len() as u64).saturating_sub(applied),
        })
    }

    /// Gives back leases `owner` holds on `delivery_ids` without counting an
    /// attempt (shutdown): they are due again at once for any dispatcher.
    pub async fn release(&self, owner: &str, delivery_ids: &[String]) -> Result<u64> {
        if delivery_ids.is_empty() {
            return Ok(0);
        }
        let released = on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now!(sql, &mut *tx)?;
            let released = sqlx::query(sql.release_leases)
                .bind(owner)
                .bind(now)
                .bind(json_list(delivery_ids))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            notify_change!(sql, &mut *tx);
            tx.commit().await?;
            released
        });
        self.note_change();
        Ok(released)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(id: &str, due: i64, cap: Option<i64>) -> Head {
        Head {
            id: id.to_string(),
            due: Some(due),
            max_in_flight: cap,
            timeout_ms: None,
        }
    }

    fn request(limit: usize) -> ClaimRequest<'static> {
        ClaimRequest {
            owner: "dsp_test",
            limit,
            lease_ms: 60_000,
            default_max_in_flight: 8,
            default_timeout_ms: 15_000,
        }
    }

    #[test]
    fn eligible_endpoints_have_capacity_and_come_oldest_first() {
        let heads = [
            head("ep_a", 50, None),
            head("ep_b", 10, Some(2)),
            head("ep_c", 500, None),
            head("ep_d", 20, Some(1)),
        ];
        let in_flight = HashMap::from([("ep_a".to_string(), 5), ("ep_d".to_string(), 1)]);
        let (eligible, next_due) = eligible_endpoints(&heads, &in_flight, &request(100), 100);
        let got: Vec<(&str, i64)> = eligible
            .iter()
            .map(|e| (e.endpoint_id.as_str(), e.free))
            .collect();
        assert_eq!(got, [("ep_b", 2), ("ep_a", 3)]);
        assert_eq!(next_due, Some(0));
    }

    #[test]
    fn saturated_endpoints_are_skipped_and_future_work_sets_the_wait() {
        let heads = [head("ep_a", 50, Some(1)), head("ep_c", 700, None)];
        let in_flight = HashMap::from([("ep_a".to_string(), 1)]);
        let (eligible, next_due) = eligible_endpoints(&heads, &in_flight, &request(10), 100);
        assert!(eligible.is_empty());
        assert_eq!(next_due, Some(600));
    }

    #[test]
    fn lease_outlives_a_long_endpoint_timeout() {
        let mut slow = head("ep_a", 1, None);
        slow.timeout_ms = Some(120_000);
        let (eligible, _) = eligible_endpoints(&[slow], &HashMap::new(), &request(1), 100);
        assert_eq!(eligible[0].lease_ms, 125_000);
    }

    fn candidate(id: &str, due: i64) -> Candidate {
        Candidate {
            id: id.to_string(),
            due,
            lease_expires_at: 0,
        }
    }

    #[test]
    fn the_merge_keeps_the_globally_oldest_and_knows_when_to_stop() {
        let mut oldest = OldestDue::new(2);
        assert!(!oldest.settled_before(1));
        oldest.offer([candidate("dlv_a1", 1), candidate("dlv_a3", 3)]);
        assert!(
            !oldest.settled_before(2),
            "an endpoint due at 2 may still beat a3"
        );
        oldest.offer([candidate("dlv_b2", 2), candidate("dlv_b4", 4)]);
        let ids: Vec<&str> = oldest.picked.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["dlv_a1", "dlv_b2"]);
        assert!(oldest.settled_before(3));
        assert!(!oldest.settled_before(2), "a tie may still win on id");
    }
}
