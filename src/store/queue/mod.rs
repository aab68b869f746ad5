//! The delivery queue: leasing due deliveries with per-endpoint in-flight
//! limits, recording attempt outcomes in batches, and releasing leases on
//! shutdown.
//!
//! A dispatcher's whole cycle is one transaction ([`Store::record_and_claim`]):
//! write the outcomes that finished since the last cycle, then lease new
//! work for the slots they freed. On SQLite, where writes take turns, half
//! the transactions and bigger batches are what make the queue fast.
//!
//! The claim works endpoint by endpoint: it finds the endpoints that have
//! queued work (a skip scan over the partial `deliveries_queue` index), keeps
//! the active ones under their in-flight cap, and merges their queues to take
//! the globally oldest due deliveries. A paused or saturated endpoint's
//! backlog is never scanned, so one slow endpoint with 50,000 queued
//! deliveries costs the others nothing.

mod claim;
mod record;
mod targets;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::json;

use super::audit::AuditRecord;
use super::sql::dialect::{Dialect, trim_attempts};
use super::sql::plan_text;
use super::sql::values::{RowsStatement, execute_rows, padded_rows};
use super::{AttemptSlots, Reads, Result, Store, json_list, on_db, to_json};
use crate::model::{Actor, DeliveryState, ErrorKind, Source};
use crate::store::breakers::{
    NOTE_PROBE, count_outcomes as count_breaker_outcomes, hold_for_retry_after, start_probes,
};
use crate::store::endpoints::end_due_pauses;
use crate::store::tx::{db_now, notify_change, write_audit};
pub(crate) use claim::LEASE_MARGIN_MS;
use claim::{ENDPOINTS_PER_STATEMENT, Head, claim_sql, eligible_endpoints};
pub use record::Rollups;
use record::{PreparedBatch, RollupRows, bind_attempt, bind_outcome};
pub(crate) use targets::{TargetCache, TargetRow};

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
    /// First take back leases that expired (their dispatcher died) and
    /// resume the endpoints whose pause has ended. Cheap, but not free:
    /// dispatchers ask about once a second, not every cycle.
    pub reap_expired: bool,
    /// The dispatcher's free slots, shared with publishes handing off: the
    /// claim takes what it can fill just before leasing (never more than
    /// `limit`), inside its transaction, so it holds none while it waits
    /// for the writer. `None`: `limit` alone bounds the claim.
    pub slots: Option<&'a dyn AttemptSlots>,
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
    /// Endpoints whose due work waited for their rate limit this claim.
    pub rate_limited: usize,
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
    /// When the delivery's event was published (unix ms), for the publish →
    /// delivered latency the dispatcher reports; not stored.
    pub published_at: Option<i64>,
    /// The receiver's `Retry-After` on a 429 or 503, in ms: the whole
    /// endpoint waits that long (up to `protection.max_retry_after`).
    pub retry_after_ms: Option<i64>,
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

pub(crate) const DISABLE_ENDPOINT: &str = "UPDATE endpoints
    SET state = 'disabled', state_reason = $2, state_changed_at = $3, updated_at = $3,
        state_changed_by = 'hookline'
    WHERE id = $1 AND state = 'active' AND deleted_at IS NULL";

/// A representative parameter for [`Store::explain_queue`].
#[derive(Clone, Copy)]
enum Param {
    Now,
    Int(i64),
    Text(&'static str),
}

impl Param {
    /// The parameter's type where a statement is prepared by name.
    fn sql_type(self) -> &'static str {
        match self {
            Param::Now | Param::Int(_) => "BIGINT",
            Param::Text(_) => "TEXT",
        }
    }

    /// The value as an SQL literal (the texts are this module's constants).
    fn literal(self) -> String {
        match self {
            Param::Now => crate::model::now_millis().to_string(),
            Param::Int(value) => value.to_string(),
            Param::Text(text) => format!("'{}'", text.replace('\'', "''")),
        }
    }
}

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: String,
    event_id: String,
    endpoint_id: String,
    attempts: i64,
    topic: String,
    next_attempt_at: i64,
    payload: String,
}

impl Reads {
    /// The query plan of each statement that claims deliveries or records
    /// outcomes, by name, as the database reports it (`EXPLAIN QUERY PLAN`
    /// on SQLite, `EXPLAIN` on Postgres): for tests that guard the queue's
    /// index use, and for operators diagnosing a slow queue.
    pub async fn explain_queue(&self) -> Result<Vec<(&'static str, String)>> {
        on_db!(self, |pools, sql| {
            let (apply_sql, apply_params) = match &sql.apply_outcomes {
                RowsStatement::Json(text) => (
                    text.to_string(),
                    vec![
                        Param::Text(r#"[{"delivery_id":"dlv_explain"}]"#),
                        Param::Now,
                        Param::Text("dsp_explain"),
                    ],
                ),
                RowsStatement::Values(statement) => {
                    let rows = padded_rows(1);
                    let row = [
                        Param::Text("dlv_explain"),
                        Param::Text(DeliveryState::Delivered.as_db()),
                        Param::Int(1),
                        Param::Int(0),
                        Param::Now,
                        Param::Int(200),
                        Param::Text(""),
                    ];
                    let params = [Param::Now, Param::Text("dsp_explain")]
                        .into_iter()
                        .chain((0..rows).flat_map(|_| row))
                        .collect();
                    (statement.sql(rows).to_string(), params)
                }
            };
            // Each statement with representative values for its parameters.
            let statements: [(&'static str, String, Vec<Param>); 4] = [
                (
                    "reap_expired",
                    sql.reap_expired.to_string(),
                    vec![Param::Now],
                ),
                (
                    "queue_heads",
                    sql.queue_heads.to_string(),
                    vec![Param::Int(8)],
                ),
                (
                    "claim",
                    claim_sql(sql, 1, false),
                    vec![
                        Param::Now,
                        Param::Text("dsp_explain"),
                        Param::Int(60_000),
                        Param::Int(15_000),
                        Param::Int(LEASE_MARGIN_MS),
                        Param::Int(64),
                        Param::Text("ep_explain"),
                        Param::Int(8),
                    ],
                ),
                ("apply_outcomes", apply_sql, apply_params),
            ];
            let mut plans = Vec::new();
            for (name, statement, params) in statements {
                // On the writers' connections: their plans are the ones the
                // dispatcher runs.
                let mut conn = pools.write.acquire().await?;
                let rows = if sql.plan_with_values.is_some() {
                    // These connections plan each statement once, generically
                    // (not knowing the values); EXPLAIN with values bound
                    // would show a plan for those values instead, so prepare
                    // the statement and explain its execution.
                    let types: Vec<&str> = params.iter().map(|p| p.sql_type()).collect();
                    let values: Vec<String> = params.iter().map(|p| p.literal()).collect();
                    let prepare = format!(
                        "PREPARE hookline_explain ({}) AS {statement}",
                        types.join(", ")
                    );
                    sqlx::query(sqlx::AssertSqlSafe(prepare))
                        .execute(&mut *conn)
                        .await?;
                    let explain = format!(
                        "{}EXECUTE hookline_explain ({})",
                        sql.explain,
                        values.join(", ")
                    );
                    let rows = sqlx::query(sqlx::AssertSqlSafe(explain))
                        .fetch_all(&mut *conn)
                        .await;
                    sqlx::query("DEALLOCATE hookline_explain")
                        .execute(&mut *conn)
                        .await?;
                    rows?
                } else {
                    let text = format!("{}{statement}", sql.explain);
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(text));
                    for param in params {
                        query = match param {
                            Param::Now => query.bind(crate::model::now_millis()),
                            Param::Int(value) => query.bind(value),
                            Param::Text(text) => query.bind(text),
                        };
                    }
                    query.fetch_all(&mut *conn).await?
                };
                plans.push((name, plan_text(&rows, sql.explain_column)));
            }
            Ok(plans)
        })
    }
}

impl Store {
    /// Leases up to `request.limit` due deliveries, respecting every
    /// endpoint's in-flight cap as counted in the database (so caps hold
    /// across dispatcher processes). Expired leases are taken back first.
    pub async fn claim(&self, request: &ClaimRequest<'_>) -> Result<Claimed> {
        Ok(self
            .record_and_claim(request.owner, &[], None, Some(request))
            .await?
            .1)
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
        let rollups = Rollups::of(owner, outcomes);
        Ok(self
            .record_and_claim(owner, outcomes, Some(&rollups), None)
            .await?
            .0)
    }

    /// One dispatcher cycle in one transaction: records `outcomes` (as
    /// [`Store::record_outcomes`], but writing `rollups` for endpoint stats
    /// and health, which the caller may have gathered over earlier cycles
    /// or hold back for later ones) and then, when `request` is given,
    /// leases new work (as [`Store::claim`]) for the slots they freed.
    pub async fn record_and_claim(
        &self,
        owner: &str,
        outcomes: &[Outcome],
        rollups: Option<&Rollups>,
        request: Option<&ClaimRequest<'_>>,
    ) -> Result<(RecordSummary, Claimed)> {
        let request = request.filter(|r| r.limit > 0);
        let batch = PreparedBatch::new(owner, outcomes, rollups);
        if batch.is_empty() && request.is_none() {
            return Ok((RecordSummary::default(), Claimed::default()));
        }
        self.rewind_wal_if_due().await;
        let system = Actor {
            name: "hookline".to_string(),
            client_addr: None,
            source: Source::System,
        };
        // Postgres records the outcomes in the statement that reads the
        // queue heads, unless something must happen between the two: a 410
        // disables its endpoint, or expired leases and ended pauses are due.
        let (applied, claimed, resumed) = on_db!(self, |pools, sql| {
            let fold_outcomes = sql.cycle_heads.is_some()
                && request.is_some_and(|r| !r.reap_expired)
                && outcomes.iter().all(|o| o.disable_endpoint.is_none());
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = self.clock.now(sql, &mut *tx).await?;
            let mut applied = 0;
            let mut resumed = 0;
            if !batch.rows.is_empty() && !fold_outcomes {
                applied = match sql.record_outcomes {
                    Some(both) => sqlx::query(both)
                        .bind(to_json(&batch.rows))
                        .bind(now)
                        .bind(owner)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected(),
                    None => {
                        execute_rows!(tx, sql.insert_attempts, batch.rows, [], bind_attempt);
                        execute_rows!(
                            tx,
                            sql.apply_outcomes,
                            batch.rows,
                            [now, owner],
                            bind_outcome
                        )
                    }
                };
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
                        write_audit(
                            &mut *tx,
                            now,
                            AuditRecord {
                                actor: &system,
                                action: "endpoint.disable",
                                target_ids: vec![endpoint_id.clone()],
                                detail: json!({ "reason": reason, "delivery_id": outcome.attempt.delivery_id }),
                            }
                        ).await?;
                    }
                }
            }
            if let Some(rollups) = batch.rollups.as_ref().filter(|_| !fold_outcomes) {
                sqlx::query(sql.upsert_endpoint_stats)
                    .bind(&rollups.stats)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(sql.upsert_health)
                    .bind(&rollups.health)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(sql.upsert_causes)
                    .bind(&rollups.causes)
                    .execute(&mut *tx)
                    .await?;
            }
            for (endpoint_id, (deliveries, reason)) in blocked_by_endpoint(outcomes) {
                write_audit(
                    &mut *tx,
                    now,
                    AuditRecord {
                        actor: &system,
                        action: "delivery.blocked",
                        detail: json!({ "endpoint_id": endpoint_id, "reason": reason, "deliveries": deliveries.len() }),
                        target_ids: deliveries,
                    },
                )
                .await?;
            }
            // Before the queue is read: the one wait for a breaker row
            // comes while this transaction holds no other.
            let counted =
                count_breaker_outcomes(&mut *tx, sql, &self.protection, outcomes, &system, now)
                    .await?;
            hold_for_retry_after(&mut *tx, &self.protection, outcomes, now).await?;
            let mut claimed = Claimed::default();
            if let Some(request) = request {
                if request.reap_expired {
                    sqlx::query(sql.reap_expired)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    // On the same cadence, pauses whose time is up end, before
                    // the claim: their held deliveries may go in this cycle.
                    resumed = end_due_pauses(sql, &mut *tx, now, &system).await?;
                }
                let folded = fold_outcomes.then_some(&batch);
                let mut heads = read_heads(sql, &mut *tx, folded, request, now).await?;
                if let Some(recorded) = heads.applied {
                    applied = recorded;
                }
                let (mut eligible, mut next_due_in_ms) = eligible_endpoints(&heads.heads, now);
                claimed.rate_limited = heads
                    .heads
                    .iter()
                    .filter(|h| h.waits_for_tokens(now))
                    .count();
                let probing = win_probes(sql, &mut *tx, &mut eligible, request, now).await?;
                if let Some(retry_due) = heads.retry_due {
                    // Retries this cycle scheduled: in no head yet.
                    let wait = (retry_due - now).max(0);
                    next_due_in_ms = Some(next_due_in_ms.map_or(wait, |w| w.min(wait)));
                }
                claimed.next_due_in_ms = next_due_in_ms;
                let limit = match request.slots {
                    Some(slots) => {
                        let room: i64 = eligible.iter().map(|e| e.free).sum();
                        slots.take(request.limit.min(usize::try_from(room).unwrap_or(0)))
                    }
                    None => request.limit,
                };
                let mut rows: Vec<ClaimedRow> = Vec::new();
                for chunk in eligible.chunks(ENDPOINTS_PER_STATEMENT) {
                    let remaining = limit.saturating_sub(rows.len());
                    if remaining == 0 {
                        break;
                    }
                    let rate_limited = chunk.iter().any(|e| e.rate_limited);
                    let text = claim_sql(sql, chunk.len(), rate_limited);
                    let mut query = sqlx::query_as::<_, ClaimedRow>(sqlx::AssertSqlSafe(text))
                        .bind(now)
                        .bind(request.owner)
                        .bind(request.lease_ms)
                        .bind(request.default_timeout_ms)
                        .bind(LEASE_MARGIN_MS)
                        .bind(remaining as i64);
                    for endpoint in chunk {
                        let slots = if sql.claim_counts_leases {
                            endpoint.cap
                        } else {
                            endpoint.free.min(remaining as i64)
                        };
                        query = query.bind(&endpoint.endpoint_id).bind(slots);
                    }
                    rows.extend(query.fetch_all(&mut *tx).await?);
                }
                if let Some(slots) = request.slots {
                    // Endpoints may have had fewer due deliveries than free slots.
                    slots.give_back(limit.saturating_sub(rows.len()));
                }
                take_tokens(sql, &mut *tx, &eligible, &rows, now).await?;
                for endpoint_id in &probing {
                    let Some(probe) = rows.iter().find(|r| &r.endpoint_id == endpoint_id) else {
                        continue;
                    };
                    sqlx::query(NOTE_PROBE)
                        .bind(endpoint_id)
                        .bind(&probe.id)
                        .execute(&mut *tx)
                        .await?;
                }
                if !rows.is_empty() {
                    rows.sort_by(|a, b| {
                        (a.next_attempt_at, &a.id).cmp(&(b.next_attempt_at, &b.id))
                    });
                    let mut endpoint_ids: Vec<&str> =
                        rows.iter().map(|r| r.endpoint_id.as_str()).collect();
                    endpoint_ids.sort_unstable();
                    endpoint_ids.dedup();
                    let (mut targets, stale) = self.targets.split(&endpoint_ids, &heads.versions);
                    if !stale.is_empty() {
                        let read: Vec<TargetRow> = sqlx::query_as(sql.endpoint_targets)
                            .bind(json_list(&stale))
                            .fetch_all(&mut *tx)
                            .await?;
                        for row in &read {
                            if let Some(version) = heads.versions.remove(row.id()) {
                                self.targets.keep(row, &version);
                            }
                        }
                        targets.extend(read);
                    }
                    for row in targets {
                        let target =
                            row.into_target(now, request.default_timeout_ms, self.secrets_key())?;
                        claimed.endpoints.insert(target.id.clone(), target);
                    }
                    claimed.deliveries = rows
                        .into_iter()
                        .map(|row| ClaimedDelivery {
                            id: row.id,
                            event_id: row.event_id,
                            endpoint_id: row.endpoint_id,
                            attempts: row.attempts,
                            topic: row.topic,
                            payload: row.payload,
                        })
                        .collect();
                }
            }
            let retried = batch.retried_deliveries();
            if self.attempts_kept > 0 && !retried.is_empty() {
                trim_attempts_of(sql, &mut *tx, &retried, self.attempts_kept).await?;
            }
            tx.commit().await?;
            for &(to, cause) in &counted.moves {
                crate::metrics::metrics().breaker_moved(to.as_str(), cause.label());
            }
            (
                applied,
                claimed,
                resumed + counted.transitions + counted.disabled,
            )
        });
        if resumed > 0 {
            self.note_change();
        }
        let summary = RecordSummary {
            applied,
            stale: (outcomes.len() as u64).saturating_sub(applied),
        };
        Ok((summary, claimed))
    }

    /// Gives back leases `owner` holds on `delivery_ids` without counting an
    /// attempt (shutdown): they are due again at once for any dispatcher.
    pub async fn release(&self, owner: &str, delivery_ids: &[String]) -> Result<u64> {
        if delivery_ids.is_empty() {
            return Ok(0);
        }
        let released = on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now(sql, &mut *tx).await?;
            let released = sqlx::query(sql.release_leases)
                .bind(owner)
                .bind(now)
                .bind(json_list(delivery_ids))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            notify_change(sql, &mut *tx).await?;
            tx.commit().await?;
            released
        });
        self.note_change();
        Ok(released)
    }
}

/// The queue heads a claim starts from, as [`read_heads`] found them.
struct CycleHeads {
    /// Endpoints with queued work; those this claim may not serve (another
    /// dispatcher's, or beyond its limit) count as full.
    heads: Vec<Head>,
    /// Outcomes recorded by the same statement, when it recorded them.
    applied: Option<u64>,
    /// The earliest retry those outcomes scheduled.
    retry_due: Option<i64>,
    /// The row version of each endpoint the claim locked.
    versions: HashMap<String, String>,
}

/// Keeps, of each of `deliveries`, its first attempt and its latest ones,
/// `kept` in all (`retention.attempts_per_delivery`), inside the caller's
/// transaction. Run where a delivery's history grows: a retry's outcome,
/// and a manual retry.
pub(crate) async fn trim_attempts_of<C>(
    sql: &Dialect,
    conn: &mut C,
    deliveries: &[&str],
    kept: i64,
) -> std::result::Result<u64, sqlx::Error>
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
    <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
    for<'q> String: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> i64: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    <C::Database as sqlx::Database>::QueryResult: crate::store::tx::RowsAffected,
{
    use crate::store::tx::RowsAffected;
    Ok(sqlx::query(sqlx::AssertSqlSafe(trim_attempts(sql)))
        .bind(json_list(deliveries))
        .bind(kept - 1)
        .execute(conn)
        .await?
        .rows_affected())
}

/// A row of [`Dialect::cycle_heads`].
#[derive(sqlx::FromRow)]
struct CycleHeadRow {
    applied: i64,
    retry_due: Option<i64>,
    id: Option<String>,
    due: Option<i64>,
    cap: Option<i64>,
    in_flight: Option<i64>,
    breaker: Option<String>,
    probe_due: Option<i64>,
    wait_until: Option<i64>,
    rate_per_second: Option<i64>,
    rate_burst: Option<i64>,
    tokens_milli: Option<i64>,
    refilled_at: Option<i64>,
    locked: bool,
    version: Option<String>,
}

/// Takes from the rate-limited `eligible` endpoints a request's worth of
/// tokens for each of the `claimed` rows that goes to them.
async fn take_tokens<C>(
    sql: &Dialect,
    conn: &mut C,
    eligible: &[claim::Eligible],
    claimed: &[ClaimedRow],
    now: i64,
) -> std::result::Result<(), sqlx::Error>
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
    <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
    for<'q> String: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> i64: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
{
    let taken: Vec<serde_json::Value> = eligible
        .iter()
        .filter(|e| e.rate_limited)
        .filter_map(|e| {
            let count = claimed
                .iter()
                .filter(|row| row.endpoint_id == e.endpoint_id)
                .count();
            (count > 0).then(|| json!({ "endpoint_id": e.endpoint_id, "taken": count }))
        })
        .collect();
    if taken.is_empty() {
        return Ok(());
    }
    sqlx::query(sql.take_tokens)
        .bind(now)
        .bind(to_json(&taken))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Takes the probes of the `eligible` endpoints whose breaker would send
/// one, and drops those another claim took; returns the endpoints this
/// claim probes. The probe is lost (and another may go) if no outcome
/// comes within the lease.
async fn win_probes<C>(
    sql: &Dialect,
    conn: &mut C,
    eligible: &mut Vec<claim::Eligible>,
    request: &ClaimRequest<'_>,
    now: i64,
) -> std::result::Result<Vec<String>, sqlx::Error>
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
    <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
    (String,): for<'r> sqlx::FromRow<'r, <C::Database as sqlx::Database>::Row>,
    for<'q> &'static str: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> String: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> Option<String>: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> i64: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
{
    let candidates: Vec<(&str, crate::model::BreakerState)> = eligible
        .iter()
        .filter_map(|e| e.probe.map(|before| (e.endpoint_id.as_str(), before)))
        .collect();
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let probe_ms = request
        .lease_ms
        .max(request.default_timeout_ms + LEASE_MARGIN_MS);
    let won = start_probes(&mut *conn, sql, &candidates, probe_ms, now).await?;
    eligible.retain(|e| e.probe.is_none() || won.contains(&e.endpoint_id));
    Ok(won)
}

/// Reads the queue heads for a claim of `request`. On Postgres the same
/// statement locks the endpoints the claim will serve and, when `folded`
/// is given, records that batch first; on SQLite the single writer needs
/// no locks and the batch was recorded before.
async fn read_heads<C>(
    sql: &Dialect,
    conn: &mut C,
    folded: Option<&PreparedBatch<'_>>,
    request: &ClaimRequest<'_>,
    now: i64,
) -> std::result::Result<CycleHeads, sqlx::Error>
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
    <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
    Head: for<'r> sqlx::FromRow<'r, <C::Database as sqlx::Database>::Row>,
    CycleHeadRow: for<'r> sqlx::FromRow<'r, <C::Database as sqlx::Database>::Row>,
    for<'q> String: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> &'q str: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> i64: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
{
    let Some(statement) = sql.cycle_heads else {
        let heads = sqlx::query_as(sql.queue_heads)
            .bind(request.default_max_in_flight)
            .fetch_all(&mut *conn)
            .await?;
        return Ok(CycleHeads {
            heads,
            applied: None,
            retry_due: None,
            versions: HashMap::new(),
        });
    };
    let no_rollups = RollupRows::default();
    let rollups = folded
        .and_then(|b| b.rollups.as_ref())
        .unwrap_or(&no_rollups);
    let rows: Vec<CycleHeadRow> = sqlx::query_as(statement)
        .bind(folded.map_or_else(|| "[]".to_string(), |b| to_json(&b.rows)))
        .bind(now)
        .bind(request.owner)
        .bind(rollups.stats.as_str())
        .bind(rollups.health.as_str())
        .bind(request.default_max_in_flight)
        .bind(i64::try_from(request.limit).unwrap_or(i64::MAX))
        .bind(rollups.causes.as_str())
        .fetch_all(&mut *conn)
        .await?;
    let mut read = CycleHeads {
        heads: Vec::with_capacity(rows.len()),
        applied: None,
        retry_due: None,
        versions: HashMap::new(),
    };
    for row in rows {
        if folded.is_some() {
            read.applied = Some(u64::try_from(row.applied).unwrap_or(0));
        }
        read.retry_due = row.retry_due;
        let (Some(id), Some(cap), Some(in_flight)) = (row.id, row.cap, row.in_flight) else {
            continue;
        };
        let due_now = row.due.is_some_and(|due| due <= now);
        // Due but not locked by this claim (another dispatcher is claiming
        // for it, or it was beyond the limit): not ours to claim from this
        // time. Work not yet due is kept: it only says when to look again.
        let in_flight = if due_now && !row.locked {
            cap.max(in_flight)
        } else {
            in_flight
        };
        if let Some(version) = row.version {
            read.versions.insert(id.clone(), version);
        }
        read.heads.push(Head {
            id,
            due: row.due,
            cap,
            in_flight,
            breaker: row.breaker,
            probe_due: row.probe_due,
            wait_until: row.wait_until,
            rate_per_second: row.rate_per_second,
            rate_burst: row.rate_burst,
            tokens_milli: row.tokens_milli,
            refilled_at: row.refilled_at,
        });
    }
    Ok(read)
}

/// The deliveries the outbound guard refused in `outcomes`, by endpoint,
/// with the reason (the address and the rule): operators read it in the
/// audit log; tenants are never shown it.
fn blocked_by_endpoint(outcomes: &[Outcome]) -> BTreeMap<&str, (Vec<String>, &str)> {
    let mut blocked: BTreeMap<&str, (Vec<String>, &str)> = BTreeMap::new();
    for outcome in outcomes {
        let attempt = &outcome.attempt;
        if attempt.error_kind != Some(ErrorKind::BlockedDestination) {
            continue;
        }
        let reason = attempt.error_message.as_deref().unwrap_or_default();
        let entry = blocked
            .entry(attempt.endpoint_id.as_str())
            .or_insert_with(|| (Vec::new(), reason));
        entry.0.push(attempt.delivery_id.clone());
    }
    blocked
}
