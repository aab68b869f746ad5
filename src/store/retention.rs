//! Retention: removing what has outlived `[retention]`, in small
//! transactions, by one pruner at a time across every process.
//!
//! Events go with their deliveries and attempts once every delivery has
//! finished and the event is older than its horizon: `dead` when one of its
//! deliveries is dead, `succeeded` otherwise. Two scans walk the events in
//! `(created_at, id)` order up to their horizon and keep their place in
//! `retention_state`, so a pass reads only the events that crossed a
//! horizon since the last one; an event that was unfinished when the
//! shorter scan passed it is removed by the longer one. Held deliveries
//! older than `held` end dead; health rollups, stopped dispatchers, audit
//! rows and idempotency keys go by age.

use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use super::audit::AuditRecord;
use super::erasure::strip_payloads;
use super::read::health::StatsRow;
use super::sql::dialect::Dialect;
use super::sql::plan_text;
use super::tx::{db_now, write_audit};
use super::{Reads, Result, Store, json_list, on_db};
use crate::config::RetentionConfig;
use crate::model::{Actor, PayloadRemovedBy, Source};

/// Events examined per transaction. With ten endpoints a batch removes
/// about a thousand rows: on SQLite, where it holds the one writer, 200
/// events a batch stalled deliveries for a p99 near a second in `bench
/// soak`.
const EVENTS_PER_BATCH: i64 = 50;
/// Rows of the other tables removed per transaction.
const ROWS_PER_BATCH: i64 = 1_000;
/// How long a pruner's lease lasts unless renewed (each batch renews it).
const LEASE_MS: i64 = 60_000;
/// Endpoints whose stale stats one transaction folds.
const STATS_ENDPOINTS_PER_BATCH: i64 = 500;
/// The `endpoint_stats.dispatcher_id` of the rows folded from dispatchers
/// long gone (real ids are prefixed ULIDs).
pub const RETIRED_DISPATCHER: &str = "retired";
/// Why a held delivery ended dead.
pub const HELD_REASON: &str = "held longer than retention.held";

/// Deliveries that are not finished: their event is never removed.
const UNFINISHED: &str = "('pending', 'scheduled', 'in_flight')";

/// Ends dead (reason `$1`, at `$2`) up to `$4` deliveries created before
/// `$3` and held by a paused or disabled endpoint, found per endpoint in
/// the queue index (which holds only queued work, however long the
/// endpoint's history); returns their endpoints.
fn end_held_sql(sql: &Dialect) -> String {
    format!(
        "UPDATE deliveries SET state = 'dead', last_error = $1, updated_at = $2,
                lease_owner = NULL, lease_expires_at = NULL
          WHERE state IN ('pending', 'scheduled') AND id IN (
                SELECT d.id FROM deliveries d{queue}
                 WHERE d.state IN ('pending', 'scheduled') AND d.created_at < $3
                   AND d.endpoint_id IN (SELECT id FROM endpoints WHERE state IN ('paused', 'disabled'))
                 LIMIT $4)
          RETURNING endpoint_id",
        queue = sql.index_hint("deliveries_queue")
    )
}

/// What one pass removed, or with `dry_run` would remove, by table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Counted only: nothing was changed.
    pub dry_run: bool,
    pub events: u64,
    pub deliveries: u64,
    pub attempts: u64,
    /// Events whose payload was removed (`retention.payload`).
    pub payloads: u64,
    /// Held deliveries that ended dead (`retention.held`).
    pub held_ended_dead: u64,
    /// Per-minute health rollups (per endpoint, and the totals).
    pub health_rows: u64,
    /// Per-dispatcher endpoint stats of dispatchers that stopped attempting
    /// an endpoint longer than `health` ago, folded into one row per endpoint.
    pub endpoint_stats: u64,
    pub dispatchers: u64,
    pub audit_rows: u64,
    pub idempotency_keys: u64,
    /// Circuit breaker transitions (`retention.breaker`).
    pub breaker_transitions: u64,
    /// Per-minute failures by cause (`retention.failure_causes`).
    pub failure_causes: u64,
    /// Bytes of free pages handed back to the file system (SQLite).
    pub space_released_bytes: u64,
}

impl PruneReport {
    /// Rows removed (or ended dead) in all.
    pub fn total(&self) -> u64 {
        self.events
            + self.deliveries
            + self.attempts
            + self.payloads
            + self.held_ended_dead
            + self.health_rows
            + self.endpoint_stats
            + self.dispatchers
            + self.audit_rows
            + self.idempotency_keys
            + self.breaker_transitions
            + self.failure_causes
    }

    /// `(table, rows)` in a fixed order, for reports.
    pub fn rows(&self) -> [(&'static str, u64); 12] {
        [
            ("events", self.events),
            ("deliveries", self.deliveries),
            ("attempts", self.attempts),
            ("payloads", self.payloads),
            ("held_ended_dead", self.held_ended_dead),
            ("health_rows", self.health_rows),
            ("endpoint_stats", self.endpoint_stats),
            ("dispatchers", self.dispatchers),
            ("audit_rows", self.audit_rows),
            ("idempotency_keys", self.idempotency_keys),
            ("breaker_transitions", self.breaker_transitions),
            ("failure_causes", self.failure_causes),
        ]
    }
}

/// The last pass, as `retention_state` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct LastPrune {
    /// When it ended (unix ms).
    pub at: i64,
    /// How long it took.
    pub took_ms: i64,
    /// Rows it removed.
    pub removed: i64,
}

/// Horizons as unix ms cut-offs at one moment: rows older than a cut-off
/// expire; a rule that is off has none.
#[derive(Debug, Clone, Copy)]
struct Cutoffs {
    succeeded: Option<i64>,
    dead: Option<i64>,
    held: Option<i64>,
    health: Option<i64>,
    dispatchers: Option<i64>,
    audit: Option<i64>,
    idempotency: Option<i64>,
    payload: Option<i64>,
    breaker: Option<i64>,
    failure_causes: Option<i64>,
}

impl Cutoffs {
    fn at(now: i64, policy: &RetentionConfig) -> Cutoffs {
        let cut = |horizon: Duration| {
            (!horizon.is_zero())
                .then(|| now.saturating_sub(i64::try_from(horizon.as_millis()).unwrap_or(i64::MAX)))
        };
        Cutoffs {
            succeeded: cut(policy.succeeded),
            dead: cut(policy.dead),
            held: cut(policy.held),
            health: cut(policy.health),
            dispatchers: cut(policy.dispatchers),
            audit: cut(policy.audit),
            idempotency: cut(policy.idempotency),
            payload: cut(policy.payload),
            breaker: cut(policy.breaker),
            failure_causes: cut(policy.failure_causes),
        }
    }
}

/// Which of the event scans: each walks up to its own horizon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Removes events (`retention.succeeded`).
    Succeeded,
    /// Removes events (`retention.dead`).
    Dead,
    /// Removes payloads (`retention.payload`).
    Payload,
}

impl Scan {
    /// The `retention_state` columns holding this scan's place.
    fn columns(self) -> (&'static str, &'static str) {
        match self {
            Scan::Succeeded => ("succeeded_at", "succeeded_id"),
            Scan::Dead => ("dead_at", "dead_id"),
            Scan::Payload => ("payload_at", "payload_id"),
        }
    }

    /// The page this scan reads ([`event_page_sql`]).
    fn page_sql(self) -> String {
        match self {
            Scan::Succeeded | Scan::Dead => event_page_sql(&removable_sql("e", 5, 6)),
            Scan::Payload => event_page_sql(&payload_removable_sql("e")),
        }
    }
}

/// A page of events one scan examined.
struct EventPage {
    /// The removable ones.
    removable: Vec<String>,
    /// Where the page ended, `None` when it was empty (the scan is done).
    last: Option<(i64, String)>,
}

/// `(created_at, id)` and whether `judge` (SQL on event `e`, 1 or 0) lets
/// it go, for events after `($2, $3)` and before `$1`, in order, `$4` of
/// them. The event scans judge with [`removable_sql`] (`$5`/`$6`: the dead
/// and succeeded cut-offs), the payload scan with [`payload_removable_sql`].
fn event_page_sql(judge: &str) -> String {
    format!(
        "SELECT e.created_at, e.id, CAST({judge} AS BIGINT) AS removable FROM events e
          WHERE e.created_at < $1 AND e.created_at >= $2
            AND (e.created_at > $2 OR e.id > $3)
          ORDER BY e.created_at, e.id LIMIT $4"
    )
}

/// Whether the payload of event `alias` may be removed: it still has one,
/// and every delivery of it has finished.
fn payload_removable_sql(alias: &str) -> String {
    format!(
        "(CASE WHEN {alias}.payload_removed_at IS NULL
                AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = {alias}.id AND d.state IN {UNFINISHED})
               THEN 1 ELSE 0 END)"
    )
}

/// Whether event `alias` may be removed, given the dead and succeeded
/// cut-offs at parameters `dead` and `succeeded`: no delivery unfinished,
/// and older than the horizon that applies to it.
fn removable_sql(alias: &str, dead: u8, succeeded: u8) -> String {
    format!(
        "(CASE WHEN EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = {alias}.id AND d.state IN {UNFINISHED}) THEN 0
               WHEN {alias}.created_at < (CASE WHEN EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = {alias}.id AND d.state = 'dead')
                                          THEN ${dead} ELSE ${succeeded} END) THEN 1
               ELSE 0 END)"
    )
}

/// The actor the pruner's audit rows name.
fn pruner() -> Actor {
    Actor {
        name: "hookline".to_string(),
        client_addr: None,
        source: Source::System,
    }
}

impl Store {
    /// Takes (or renews) the pruner's lease for `owner`; `false` when
    /// another process holds it.
    pub async fn take_pruner_lease(&self, owner: &str) -> Result<bool> {
        Ok(on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now(sql, &mut *tx).await?;
            let taken = sqlx::query(
                "UPDATE retention_state SET owner = $1, lease_expires_at = $2
                  WHERE id = 1 AND (owner IS NULL OR owner = $1 OR lease_expires_at <= $3)",
            )
            .bind(owner)
            .bind(now + LEASE_MS)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            taken > 0
        }))
    }

    /// Gives the pruner's lease back, if `owner` holds it.
    pub async fn release_pruner_lease(&self, owner: &str) -> Result<()> {
        on_db!(self, |pools, _sql| {
            sqlx::query("UPDATE retention_state SET owner = NULL, lease_expires_at = NULL WHERE id = 1 AND owner = $1")
                .bind(owner)
                .execute(&pools.write)
                .await?;
        });
        Ok(())
    }

    /// One pass of every rule of `policy`, by `owner`, who must hold the
    /// pruner's lease ([`Store::take_pruner_lease`]); it stops early if the
    /// lease is lost. Each batch is its own short transaction, followed by
    /// a pause as long as the batch took, so publishing and delivery never
    /// wait long behind it. With `dry_run`, counts what a pass would remove
    /// and changes nothing.
    pub async fn prune(
        &self,
        policy: &RetentionConfig,
        owner: &str,
        dry_run: bool,
    ) -> Result<PruneReport> {
        let started = std::time::Instant::now();
        let now = on_db!(self, |pools, sql| {
            let mut conn = pools.read.acquire().await?;
            db_now(sql, &mut *conn).await?
        });
        let cutoffs = Cutoffs::at(now, policy);
        let mut report = PruneReport {
            dry_run,
            ..PruneReport::default()
        };
        if dry_run {
            self.count_expired(&cutoffs, &mut report).await?;
            return Ok(report);
        }
        let pass = async {
            if let Some(cutoff) = cutoffs.held {
                while self.end_held_batch(cutoff, now, owner, &mut report).await? {}
            }
            for (scan, horizon) in [
                (Scan::Succeeded, cutoffs.succeeded),
                (Scan::Dead, cutoffs.dead),
                (Scan::Payload, cutoffs.payload),
            ] {
                let Some(horizon) = horizon else { continue };
                while self
                    .prune_event_batch(scan, horizon, &cutoffs, owner, &mut report)
                    .await?
                {}
            }
            for table in AgedTable::ALL {
                let Some(cutoff) = table.cutoff(&cutoffs) else {
                    continue;
                };
                while self
                    .prune_aged_batch(table, cutoff, owner, &mut report)
                    .await?
                {}
            }
            if let Some(cutoff) = cutoffs.health {
                while self
                    .fold_stale_stats_batch(cutoff, owner, &mut report)
                    .await?
                {}
            }
            Ok::<(), super::StoreError>(())
        };
        pass.await?;
        report.space_released_bytes = self.release_free_pages().await?;
        let took_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let removed = i64::try_from(report.total()).unwrap_or(i64::MAX);
        on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let at = db_now(sql, &mut *tx).await?;
            sqlx::query(
                "UPDATE retention_state SET last_pass_at = $1, last_pass_ms = $2, last_pass_removed = $3
                  WHERE id = 1",
            )
            .bind(at)
            .bind(took_ms)
            .bind(removed)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(report)
    }

    /// Ends dead up to a batch of deliveries held longer than `cutoff`
    /// allows; `true` while there may be more (and the lease holds).
    async fn end_held_batch(
        &self,
        cutoff: i64,
        now: i64,
        owner: &str,
        report: &mut PruneReport,
    ) -> Result<bool> {
        let started = std::time::Instant::now();
        let ended: Vec<(String,)> = on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            if !renew_lease(&mut *tx, owner, now).await? {
                return Ok(false);
            }
            // The state is checked again on the row itself: a delivery a
            // dispatcher leased meanwhile (its endpoint resumed) is skipped.
            let ended: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(end_held_sql(sql)))
                .bind(HELD_REASON)
                .bind(now)
                .bind(cutoff)
                .bind(ROWS_PER_BATCH)
                .fetch_all(&mut *tx)
                .await?;
            if !ended.is_empty() {
                let mut endpoints: Vec<String> = ended.iter().map(|(id,)| id.clone()).collect();
                endpoints.sort_unstable();
                endpoints.dedup();
                write_audit(
                    &mut *tx,
                    now,
                    AuditRecord {
                        actor: &pruner(),
                        action: "delivery.held_expired",
                        detail: json!({ "deliveries": ended.len(), "reason": HELD_REASON }),
                        target_ids: endpoints,
                    },
                )
                .await?;
            }
            tx.commit().await?;
            ended
        });
        report.held_ended_dead += ended.len() as u64;
        if !ended.is_empty() {
            self.note_change();
        }
        self.pace(started).await;
        Ok(ended.len() as i64 == ROWS_PER_BATCH)
    }

    /// Examines the next page of `scan` (events older than `horizon`) and
    /// removes the removable ones with their deliveries and attempts;
    /// `true` while the scan has further to go (and the lease holds).
    async fn prune_event_batch(
        &self,
        scan: Scan,
        horizon: i64,
        cutoffs: &Cutoffs,
        owner: &str,
        report: &mut PruneReport,
    ) -> Result<bool> {
        let started = std::time::Instant::now();
        let (at_column, id_column) = scan.columns();
        let (dead, succeeded) = (
            cutoffs.dead.unwrap_or(i64::MIN),
            cutoffs.succeeded.unwrap_or(i64::MIN),
        );
        let removed = on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now(sql, &mut *tx).await?;
            if !renew_lease(&mut *tx, owner, now).await? {
                return Ok(false);
            }
            let (after_at, after_id): (i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {at_column}, {id_column} FROM retention_state WHERE id = 1"
            )))
            .fetch_one(&mut *tx)
            .await?;
            let page_sql = scan.page_sql();
            let mut page = sqlx::query_as(sqlx::AssertSqlSafe(page_sql.as_str()))
                .bind(horizon)
                .bind(after_at)
                .bind(&after_id)
                .bind(EVENTS_PER_BATCH);
            if scan != Scan::Payload {
                page = page.bind(dead).bind(succeeded);
            }
            let rows: Vec<(i64, String, i64)> = page.fetch_all(&mut *tx).await?;
            let page = EventPage {
                last: rows.last().map(|(at, id, _)| (*at, id.clone())),
                removable: rows
                    .into_iter()
                    .filter(|(_, _, removable)| *removable == 1)
                    .map(|(_, id, _)| id)
                    .collect(),
            };
            let Some((last_at, last_id)) = page.last else {
                tx.commit().await?;
                return Ok(false);
            };
            let mut removed = Removed::default();
            if !page.removable.is_empty() {
                let list = json_list(&page.removable);
                // Postgres: hold the events, then their deliveries, then
                // judge again, so a delivery retried since the page was read
                // keeps its event (a retry takes the events' rows first too).
                let lock = sql.row_lock("FOR UPDATE");
                if !lock.is_empty() {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT id FROM events WHERE id{}{lock}",
                        sql.any_of_json(1)
                    )))
                    .bind(&list)
                    .execute(&mut *tx)
                    .await?;
                }
                if scan == Scan::Payload {
                    let still: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT e.id FROM events e WHERE e.id{} AND {} = 1",
                        sql.any_of_json(1),
                        payload_removable_sql("e")
                    )))
                    .bind(&list)
                    .fetch_all(&mut *tx)
                    .await?;
                    let stripped = strip_payloads(
                        &mut *tx,
                        sql,
                        &json_list(&still),
                        PayloadRemovedBy::Retention,
                        now,
                    )
                    .await?;
                    removed.payloads = stripped.events;
                } else {
                    let deliveries: Vec<(String, String)> =
                        sqlx::query_as(sqlx::AssertSqlSafe(format!(
                            "SELECT id, event_id FROM deliveries WHERE event_id{}{}",
                            sql.any_of_json(1),
                            sql.row_lock("FOR UPDATE")
                        )))
                        .bind(&list)
                        .fetch_all(&mut *tx)
                        .await?;
                    let still: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT e.id FROM events e WHERE e.id{} AND {} = 1",
                        sql.any_of_json(1),
                        removable_sql("e", 2, 3)
                    )))
                    .bind(&list)
                    .bind(dead)
                    .bind(succeeded)
                    .fetch_all(&mut *tx)
                    .await?;
                    let still: Vec<String> = still.into_iter().map(|(id,)| id).collect();
                    let going: Vec<&str> = deliveries
                        .iter()
                        .filter(|(_, event)| still.contains(event))
                        .map(|(id, _)| id.as_str())
                        .collect();
                    // By id lists each database probes its indexes with.
                    let by_id = |statement: &str| {
                        sqlx::AssertSqlSafe(statement.replace("{any}", &sql.any_of_json(1)))
                    };
                    removed.attempts =
                        sqlx::query(by_id("DELETE FROM attempts WHERE delivery_id{any}"))
                            .bind(json_list(&going))
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                    removed.deliveries = sqlx::query(by_id("DELETE FROM deliveries WHERE id{any}"))
                        .bind(json_list(&going))
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    removed.events = sqlx::query(by_id("DELETE FROM events WHERE id{any}"))
                        .bind(json_list(&still))
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
            }
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE retention_state SET {at_column} = $1, {id_column} = $2 WHERE id = 1"
            )))
            .bind(last_at)
            .bind(&last_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            removed
        });
        report.events += removed.events;
        report.deliveries += removed.deliveries;
        report.attempts += removed.attempts;
        report.payloads += removed.payloads;
        self.pace(started).await;
        Ok(true)
    }

    /// Removes up to a batch of `table`'s rows older than `cutoff`; `true`
    /// while there may be more (and the lease holds).
    async fn prune_aged_batch(
        &self,
        table: AgedTable,
        cutoff: i64,
        owner: &str,
        report: &mut PruneReport,
    ) -> Result<bool> {
        let started = std::time::Instant::now();
        let mut removed = 0;
        let mut more = false;
        for statement in table.deletes() {
            let count: Option<u64> = on_db!(self, |pools, sql| {
                let mut tx = pools.write.begin_with(sql.begin_write).await?;
                let now = db_now(sql, &mut *tx).await?;
                if renew_lease(&mut *tx, owner, now).await? {
                    let count = sqlx::query(*statement)
                        .bind(cutoff)
                        .bind(ROWS_PER_BATCH)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    tx.commit().await?;
                    Some(count)
                } else {
                    None
                }
            });
            // The lease was taken over: stop, keeping what was removed.
            let Some(count) = count else {
                more = false;
                break;
            };
            more |= count as i64 == ROWS_PER_BATCH;
            removed += count;
        }
        *table.counter(report) += removed;
        self.pace(started).await;
        Ok(more)
    }

    /// Folds the `endpoint_stats` rows of up to a batch of endpoints whose
    /// last attempt by some dispatcher is older than `cutoff` (that
    /// dispatcher has stopped, or stopped sending there) into one row per
    /// endpoint under [`RETIRED_DISPATCHER`], so dispatchers that come and
    /// go do not leave a row each behind; `true` while there may be more.
    async fn fold_stale_stats_batch(
        &self,
        cutoff: i64,
        owner: &str,
        report: &mut PruneReport,
    ) -> Result<bool> {
        let started = std::time::Instant::now();
        let folded: Option<(u64, usize)> = on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now(sql, &mut *tx).await?;
            if !renew_lease(&mut *tx, owner, now).await? {
                return Ok(false);
            }
            let endpoints: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT endpoint_id FROM endpoint_stats
                  WHERE COALESCE(last_attempt_at, 0) < $1 AND dispatcher_id <> $2
                  ORDER BY endpoint_id LIMIT $3",
            )
            .bind(cutoff)
            .bind(RETIRED_DISPATCHER)
            .bind(STATS_ENDPOINTS_PER_BATCH)
            .fetch_all(&mut *tx)
            .await?;
            if endpoints.is_empty() {
                tx.commit().await?;
                None
            } else {
                let list = json_list(&endpoints);
                // The stale rows and the earlier fold of each endpoint.
                let old_rows: Vec<StatsRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT endpoint_id, consecutive_failures, last_attempt_at, last_success_at,
                            last_failure_at, last_status, last_error FROM endpoint_stats
                      WHERE endpoint_id{} AND (dispatcher_id = $2 OR COALESCE(last_attempt_at, 0) < $3){}",
                    sql.any_of_json(1),
                    sql.row_lock("FOR UPDATE")
                )))
                .bind(&list)
                .bind(RETIRED_DISPATCHER)
                .bind(cutoff)
                .fetch_all(&mut *tx)
                .await?;
                let removed = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM endpoint_stats
                      WHERE endpoint_id{} AND (dispatcher_id = $2 OR COALESCE(last_attempt_at, 0) < $3)",
                    sql.any_of_json(1)
                )))
                .bind(&list)
                .bind(RETIRED_DISPATCHER)
                .bind(cutoff)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let folded: Vec<serde_json::Value> = endpoints
                    .iter()
                    .map(|endpoint| {
                        let rows: Vec<StatsRow> = old_rows
                            .iter()
                            .filter(|r| &r.endpoint_id == endpoint)
                            .cloned()
                            .collect();
                        let row = StatsRow::fold(endpoint, &rows);
                        json!({
                            "endpoint_id": row.endpoint_id,
                            "dispatcher_id": RETIRED_DISPATCHER,
                            "failures": row.consecutive_failures,
                            "last_attempt_at": row.last_attempt_at,
                            "last_success_at": row.last_success_at,
                            "last_failure_at": row.last_failure_at,
                            "last_status": row.last_status,
                            "last_error": row.last_error,
                        })
                    })
                    .collect();
                sqlx::query(sql.upsert_endpoint_stats)
                    .bind(serde_json::Value::from(folded).to_string())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Some((
                    removed.saturating_sub(endpoints.len() as u64),
                    endpoints.len(),
                ))
            }
        });
        let Some((removed, endpoints)) = folded else {
            return Ok(false);
        };
        report.endpoint_stats += removed;
        self.pace(started).await;
        Ok(endpoints as i64 == STATS_ENDPOINTS_PER_BATCH)
    }

    /// Fills `report` with what a pass at `cutoffs` would remove.
    async fn count_expired(&self, cutoffs: &Cutoffs, report: &mut PruneReport) -> Result<()> {
        let (dead, succeeded) = (
            cutoffs.dead.unwrap_or(i64::MIN),
            cutoffs.succeeded.unwrap_or(i64::MIN),
        );
        on_db!(self, |pools, _sql| {
            let mut conn = pools.read.acquire().await?;
            if cutoffs.dead.is_some() || cutoffs.succeeded.is_some() || cutoffs.payload.is_some() {
                // What the scans would reach: the events past each one's
                // place and older than its horizon (payloads: of events the
                // other two leave).
                let (events, deliveries, attempts, payloads): (i64, i64, i64, i64) =
                    sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "WITH s AS (SELECT * FROM retention_state WHERE id = 1),
                              gone AS (SELECT e.id FROM events e, s
                                        WHERE {} = 1
                                          AND ((e.created_at < $2 AND (e.created_at > s.dead_at
                                                OR (e.created_at = s.dead_at AND e.id > s.dead_id)))
                                            OR (e.created_at < $1 AND (e.created_at > s.succeeded_at
                                                OR (e.created_at = s.succeeded_at AND e.id > s.succeeded_id)))))
                         SELECT (SELECT COUNT(*) FROM gone),
                                (SELECT COUNT(*) FROM deliveries WHERE event_id IN (SELECT id FROM gone)),
                                (SELECT COUNT(*) FROM attempts WHERE delivery_id IN
                                    (SELECT id FROM deliveries WHERE event_id IN (SELECT id FROM gone))),
                                (SELECT COUNT(*) FROM events e, s
                                  WHERE e.created_at < $3 AND {} = 1
                                    AND (e.created_at > s.payload_at
                                         OR (e.created_at = s.payload_at AND e.id > s.payload_id))
                                    AND e.id NOT IN (SELECT id FROM gone))",
                        removable_sql("e", 2, 1),
                        payload_removable_sql("e")
                    )))
                    .bind(succeeded)
                    .bind(dead)
                    .bind(cutoffs.payload.unwrap_or(i64::MIN))
                    .fetch_one(&mut *conn)
                    .await?;
                report.events = events as u64;
                report.deliveries = deliveries as u64;
                report.attempts = attempts as u64;
                report.payloads = payloads as u64;
            }
            if let Some(cutoff) = cutoffs.held {
                let held: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM deliveries d
                      WHERE d.state IN ('pending', 'scheduled') AND d.created_at < $1
                        AND d.endpoint_id IN (SELECT id FROM endpoints WHERE state IN ('paused', 'disabled'))",
                )
                .bind(cutoff)
                .fetch_one(&mut *conn)
                .await?;
                report.held_ended_dead = held as u64;
            }
            if let Some(cutoff) = cutoffs.health {
                // A fold replaces an endpoint's stale rows and earlier fold
                // with one row.
                let net: i64 = sqlx::query_scalar(
                    "WITH stale AS (SELECT endpoint_id FROM endpoint_stats
                                     WHERE COALESCE(last_attempt_at, 0) < $1 AND dispatcher_id <> $2)
                     SELECT (SELECT COUNT(*) FROM stale)
                          + (SELECT COUNT(*) FROM endpoint_stats
                              WHERE dispatcher_id = $2 AND endpoint_id IN (SELECT endpoint_id FROM stale))
                          - (SELECT COUNT(DISTINCT endpoint_id) FROM stale)",
                )
                .bind(cutoff)
                .bind(RETIRED_DISPATCHER)
                .fetch_one(&mut *conn)
                .await?;
                report.endpoint_stats = net.max(0) as u64;
            }
            for table in AgedTable::ALL {
                let Some(cutoff) = table.cutoff(cutoffs) else {
                    continue;
                };
                for statement in table.counts() {
                    let count: i64 = sqlx::query_scalar(*statement)
                        .bind(cutoff)
                        .fetch_one(&mut *conn)
                        .await?;
                    *table.counter(report) += count as u64;
                }
            }
        });
        Ok(())
    }
}

/// Rows one event batch removed.
#[derive(Default)]
struct Removed {
    events: u64,
    deliveries: u64,
    attempts: u64,
    payloads: u64,
}

/// The tables whose rows go by age alone.
#[derive(Debug, Clone, Copy)]
enum AgedTable {
    Health,
    Dispatchers,
    Audit,
    Idempotency,
    BreakerTransitions,
    FailureCauses,
}

impl AgedTable {
    const ALL: [AgedTable; 6] = [
        AgedTable::Health,
        AgedTable::Dispatchers,
        AgedTable::Audit,
        AgedTable::Idempotency,
        AgedTable::BreakerTransitions,
        AgedTable::FailureCauses,
    ];

    fn cutoff(self, cutoffs: &Cutoffs) -> Option<i64> {
        match self {
            AgedTable::Health => cutoffs.health,
            AgedTable::Dispatchers => cutoffs.dispatchers,
            AgedTable::Audit => cutoffs.audit,
            AgedTable::Idempotency => cutoffs.idempotency,
            AgedTable::BreakerTransitions => cutoffs.breaker,
            AgedTable::FailureCauses => cutoffs.failure_causes,
        }
    }

    fn counter(self, report: &mut PruneReport) -> &mut u64 {
        match self {
            AgedTable::Health => &mut report.health_rows,
            AgedTable::Dispatchers => &mut report.dispatchers,
            AgedTable::Audit => &mut report.audit_rows,
            AgedTable::Idempotency => &mut report.idempotency_keys,
            AgedTable::BreakerTransitions => &mut report.breaker_transitions,
            AgedTable::FailureCauses => &mut report.failure_causes,
        }
    }

    /// Statements removing up to `$2` rows older than `$1`, each through
    /// the index on its age.
    fn deletes(self) -> &'static [&'static str] {
        match self {
            AgedTable::Health => &[
                "DELETE FROM endpoint_health WHERE (endpoint_id, minute, dispatcher_id) IN
                   (SELECT endpoint_id, minute, dispatcher_id FROM endpoint_health
                     WHERE minute < $1 ORDER BY minute LIMIT $2)",
                "DELETE FROM health_totals WHERE (minute, dispatcher_id) IN
                   (SELECT minute, dispatcher_id FROM health_totals
                     WHERE minute < $1 ORDER BY minute LIMIT $2)",
            ],
            AgedTable::Dispatchers => &["DELETE FROM dispatchers WHERE id IN
                   (SELECT id FROM dispatchers
                     WHERE COALESCE(stopped_at, last_seen_at) < $1 LIMIT $2)"],
            AgedTable::Audit => &["DELETE FROM audit_log WHERE id IN
                   (SELECT id FROM audit_log WHERE at < $1 ORDER BY at LIMIT $2)"],
            AgedTable::Idempotency => &["DELETE FROM idempotency_keys WHERE (scope, key) IN
                   (SELECT scope, key FROM idempotency_keys WHERE created_at < $1 LIMIT $2)"],
            AgedTable::BreakerTransitions => &["DELETE FROM breaker_transitions WHERE id IN
                   (SELECT id FROM breaker_transitions WHERE at < $1 ORDER BY at LIMIT $2)"],
            AgedTable::FailureCauses => &[
                "DELETE FROM failure_causes WHERE (endpoint_id, minute, dispatcher_id, cause) IN
                   (SELECT endpoint_id, minute, dispatcher_id, cause FROM failure_causes
                     WHERE minute < $1 ORDER BY minute LIMIT $2)",
            ],
        }
    }

    /// Statements counting the rows older than `$1`.
    fn counts(self) -> &'static [&'static str] {
        match self {
            AgedTable::Health => &[
                "SELECT COUNT(*) FROM endpoint_health WHERE minute < $1",
                "SELECT COUNT(*) FROM health_totals WHERE minute < $1",
            ],
            AgedTable::Dispatchers => {
                &["SELECT COUNT(*) FROM dispatchers WHERE COALESCE(stopped_at, last_seen_at) < $1"]
            }
            AgedTable::Audit => &["SELECT COUNT(*) FROM audit_log WHERE at < $1"],
            AgedTable::Idempotency => {
                &["SELECT COUNT(*) FROM idempotency_keys WHERE created_at < $1"]
            }
            AgedTable::BreakerTransitions => {
                &["SELECT COUNT(*) FROM breaker_transitions WHERE at < $1"]
            }
            AgedTable::FailureCauses => &["SELECT COUNT(*) FROM failure_causes WHERE minute < $1"],
        }
    }
}

/// A representative value for a statement [`Reads::explain_retention`] plans.
#[derive(Clone, Copy)]
enum Sample {
    Int(i64),
    Text(&'static str),
}

impl Reads {
    /// Rows of events, deliveries and attempts: the tables that grow with
    /// traffic (counted, so for benchmarks and tests, not screens).
    pub async fn growing_table_rows(&self) -> Result<[i64; 3]> {
        let (events, deliveries, attempts): (i64, i64, i64) = on_db!(self, |pools, _sql| {
            sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM deliveries),
                        (SELECT COUNT(*) FROM attempts)",
            )
            .fetch_one(&pools.read)
            .await?
        });
        Ok([events, deliveries, attempts])
    }

    /// Bytes of live data: what retention keeps bounded (SQLite: pages in
    /// use, free pages and the WAL left out; Postgres: hookline's tables
    /// with their indexes and TOAST).
    pub async fn live_size(&self) -> Result<i64> {
        Ok(on_db!(self, |pools, sql| {
            sqlx::query_scalar(sql.live_size)
                .fetch_one(&pools.read)
                .await?
        }))
    }

    /// The query plan of each statement a pass runs, by name, as the
    /// database reports it (`EXPLAIN QUERY PLAN` on SQLite; `EXPLAIN` on
    /// Postgres with sequential scans priced out, so the plan shows whether
    /// an index can serve the statement however small the tables are): for
    /// the test that guards the pruner's index use.
    pub async fn explain_retention(&self) -> Result<Vec<(&'static str, String)>> {
        let now = crate::model::now_millis();
        let page = Scan::Succeeded.page_sql();
        let list = r#"["msg_explain"]"#;
        on_db!(self, |pools, sql| {
            let by_id = |statement: &str| statement.replace("{any}", &sql.any_of_json(1));
            let statements: Vec<(&'static str, String, Vec<Sample>)> = vec![
                (
                    "event_page",
                    page.clone(),
                    vec![
                        Sample::Int(now),
                        Sample::Int(0),
                        Sample::Text(""),
                        Sample::Int(EVENTS_PER_BATCH),
                        Sample::Int(now),
                        Sample::Int(now),
                    ],
                ),
                (
                    "payload_page",
                    Scan::Payload.page_sql(),
                    vec![
                        Sample::Int(now),
                        Sample::Int(0),
                        Sample::Text(""),
                        Sample::Int(EVENTS_PER_BATCH),
                    ],
                ),
                (
                    "event_lock",
                    by_id("SELECT id, event_id FROM deliveries WHERE event_id{any}"),
                    vec![Sample::Text(list)],
                ),
                (
                    "event_attempts",
                    by_id("DELETE FROM attempts WHERE delivery_id{any}"),
                    vec![Sample::Text(list)],
                ),
                (
                    "event_deliveries",
                    by_id("DELETE FROM deliveries WHERE id{any}"),
                    vec![Sample::Text(list)],
                ),
                (
                    "end_held",
                    end_held_sql(sql),
                    vec![
                        Sample::Text(HELD_REASON),
                        Sample::Int(now),
                        Sample::Int(now),
                        Sample::Int(ROWS_PER_BATCH),
                    ],
                ),
                (
                    "health",
                    AgedTable::Health.deletes()[0].to_string(),
                    vec![Sample::Int(now), Sample::Int(ROWS_PER_BATCH)],
                ),
                (
                    "health_totals",
                    AgedTable::Health.deletes()[1].to_string(),
                    vec![Sample::Int(now), Sample::Int(ROWS_PER_BATCH)],
                ),
                (
                    "audit",
                    AgedTable::Audit.deletes()[0].to_string(),
                    vec![Sample::Int(now), Sample::Int(ROWS_PER_BATCH)],
                ),
                (
                    "idempotency",
                    AgedTable::Idempotency.deletes()[0].to_string(),
                    vec![Sample::Int(now), Sample::Int(ROWS_PER_BATCH)],
                ),
                (
                    "breaker_transitions",
                    AgedTable::BreakerTransitions.deletes()[0].to_string(),
                    vec![Sample::Int(now), Sample::Int(ROWS_PER_BATCH)],
                ),
                (
                    "failure_causes",
                    AgedTable::FailureCauses.deletes()[0].to_string(),
                    vec![Sample::Int(now), Sample::Int(ROWS_PER_BATCH)],
                ),
            ];
            let mut plans = Vec::new();
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            if sql.plan_with_values.is_some() {
                sqlx::query("SET LOCAL enable_seqscan = off")
                    .execute(&mut *tx)
                    .await?;
            }
            for (name, statement, samples) in statements {
                let mut query =
                    sqlx::query(sqlx::AssertSqlSafe(format!("{}{statement}", sql.explain)));
                for sample in samples {
                    query = match sample {
                        Sample::Int(value) => query.bind(value),
                        Sample::Text(text) => query.bind(text),
                    };
                }
                let rows = query.fetch_all(&mut *tx).await?;
                plans.push((name, plan_text(&rows, sql.explain_column)));
            }
            tx.rollback().await?;
            Ok(plans)
        })
    }
    /// The last pass any pruner finished, if one has.
    pub async fn last_prune(&self) -> Result<Option<LastPrune>> {
        Ok(on_db!(self, |pools, _sql| {
            sqlx::query_as(
                "SELECT last_pass_at AS at, COALESCE(last_pass_ms, 0) AS took_ms,
                        COALESCE(last_pass_removed, 0) AS removed
                   FROM retention_state WHERE id = 1 AND last_pass_at IS NOT NULL",
            )
            .fetch_optional(&pools.read)
            .await?
        }))
    }
}

/// Renews `owner`'s pruner lease inside a batch's transaction; `false` when
/// another process has taken it.
async fn renew_lease<C>(
    conn: &mut C,
    owner: &str,
    now: i64,
) -> std::result::Result<bool, sqlx::Error>
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
    <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
    for<'q> &'q str: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> i64: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    (String,): for<'r> sqlx::FromRow<'r, <C::Database as sqlx::Database>::Row>,
{
    let renewed: Vec<(String,)> = sqlx::query_as(
        "UPDATE retention_state SET lease_expires_at = $1 WHERE id = 1 AND owner = $2
         RETURNING owner",
    )
    .bind(now + LEASE_MS)
    .bind(owner)
    .fetch_all(&mut *conn)
    .await?;
    Ok(!renewed.is_empty())
}

impl Store {
    /// Waits as long as a batch took, so the pruner holds the writer at most
    /// about half the time; on SQLite, also while the background checkpoint
    /// is behind the writes (up to `LAGGING_WAIT`), so that pruning never
    /// grows the WAL past what the checkpoint can copy.
    async fn pace(&self, batch_started: std::time::Instant) {
        tokio::time::sleep(batch_started.elapsed().min(Duration::from_millis(500))).await;
        let waited = std::time::Instant::now();
        while self.checkpoint_lagging() && waited.elapsed() < LAGGING_WAIT {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The longest a pruning batch waits for a lagging checkpoint.
const LAGGING_WAIT: Duration = Duration::from_secs(5);
