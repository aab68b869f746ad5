//! Reading deliveries (filtered, keyset-paginated lists and details) and
//! reviving them with manual and bulk retries.

use serde_json::json;

use super::audit::AuditRecord;
use super::queue::trim_attempts_of;
use super::sql::conditions::{Conditions, Direction, Param, bind_params};
use super::sql::dialect::{Dialect, payload_kept};
use super::sql::rows::{
    AttemptRow, DeliveryRow, EventRow, convert_all, delivery_columns, event_columns,
};
use super::tx::{db_now, notify_change, write_audit};
use super::{Backend, Cursor, Page, Reads, Result, Store, json_list, on_db};
use crate::model::{Actor, Attempt, Delivery, DeliveryState, Event, PayloadRemovedBy};

/// Which deliveries a listing shows; empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryFilter {
    /// Any of these states (empty: all).
    pub states: Vec<DeliveryState>,
    pub tenant_id: Option<String>,
    pub endpoint_id: Option<String>,
    /// Exact topic.
    pub topic: Option<String>,
    pub event_id: Option<String>,
    /// Created at or after (unix ms).
    pub since: Option<i64>,
    /// Created before (unix ms).
    pub until: Option<i64>,
}

/// Which deliveries a bulk retry revives.
#[derive(Debug, Clone)]
pub struct RetryFilter {
    pub endpoint_id: String,
    /// States to revive: each must be retryable (dead, retrying, delivered).
    pub states: Vec<DeliveryState>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Only this exact topic.
    pub topic: Option<String>,
    /// Only deliveries of this event.
    pub event_id: Option<String>,
}

/// What a bulk retry would touch at one endpoint: how many, and the
/// oldest and newest of them (unix ms, by creation).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct RetryPreviewRow {
    pub endpoint_id: String,
    pub tenant_name: String,
    pub endpoint_name: String,
    pub count: i64,
    pub oldest: i64,
    pub newest: i64,
}

/// A delivery with its event and every attempt, oldest first.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeliveryDetail {
    pub delivery: Delivery,
    pub event: Event,
    pub attempts: Vec<Attempt>,
}

/// What a retry by ids did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RetryReport {
    pub retried: Vec<String>,
    /// Ids not retried, each with the reason.
    pub skipped: Vec<(String, String)>,
}

/// The states of the partial indexes `deliveries_failed` and `deliveries_failed_endpoint`.
const FAILED_STATES: [DeliveryState; 2] = [DeliveryState::Dead, DeliveryState::Retrying];

/// The delivery-state clause, which only delivery listings need.
impl Conditions {
    /// `backend` decides the spelling: SQLite uses a partial index only when
    /// the query repeats its condition word for word, so failures get it
    /// spelled out; Postgres proves that on its own, and the repeated
    /// condition would only skew its row estimates.
    fn push_states(&mut self, states: &[DeliveryState], backend: Backend) {
        if states.is_empty() {
            return;
        }
        if backend == Backend::Sqlite && is_failed_only(states) {
            self.clauses
                .push("d.state IN ('dead', 'scheduled')".to_string());
        }
        let literals: Vec<String> = states
            .iter()
            .map(|state| format!("'{}'", state.as_db()))
            .collect();
        self.clauses.push(match literals.as_slice() {
            [one] => format!("d.state = {one}"),
            many => format!("d.state IN ({})", many.join(", ")),
        });
    }
}

fn delivery_conditions(filter: &DeliveryFilter, backend: Backend) -> Conditions {
    let mut conditions = Conditions::default();
    conditions.push_states(&filter.states, backend);
    if let Some(tenant_id) = &filter.tenant_id {
        conditions.push("d.tenant_id = ?", Param::Text(tenant_id.clone()));
    }
    if let Some(endpoint_id) = &filter.endpoint_id {
        conditions.push("d.endpoint_id = ?", Param::Text(endpoint_id.clone()));
    }
    if let Some(topic) = &filter.topic {
        conditions.push("d.topic = ?", Param::Text(topic.clone()));
    }
    if let Some(event_id) = &filter.event_id {
        conditions.push("d.event_id = ?", Param::Text(event_id.clone()));
    }
    if let Some(since) = filter.since {
        conditions.push("d.created_at >= ?", Param::Int(since));
    }
    if let Some(until) = filter.until {
        conditions.push("d.created_at < ?", Param::Int(until));
    }
    conditions
}

/// Whether every state is one of the failure indexes' states.
fn is_failed_only(states: &[DeliveryState]) -> bool {
    !states.is_empty() && states.iter().all(|s| FAILED_STATES.contains(s))
}

/// The index a filtered listing walks, newest first: the narrowest one the
/// filter allows. SQLite is told (`INDEXED BY`), because without statistics
/// it guesses, and a wrong guess reads a million rows to find a few;
/// Postgres chooses well from its statistics.
fn listing_index(filter: &DeliveryFilter) -> &'static str {
    let only = |state: DeliveryState| filter.states == [state];
    if filter.event_id.is_some() {
        "deliveries_event"
    } else if filter.endpoint_id.is_some() && is_failed_only(&filter.states) {
        "deliveries_failed_endpoint"
    } else if only(DeliveryState::InFlight) {
        // At most the dispatchers' concurrency: sorted in memory.
        "deliveries_in_flight"
    } else if filter.endpoint_id.is_some() {
        "deliveries_endpoint"
    } else if is_failed_only(&filter.states) {
        "deliveries_failed"
    } else if only(DeliveryState::Pending) {
        "deliveries_pending"
    } else if filter.topic.is_some() {
        "deliveries_topic"
    } else if filter.tenant_id.is_some() {
        "deliveries_tenant"
    } else {
        "deliveries_created"
    }
}

fn retry_conditions(filter: &RetryFilter, backend: Backend) -> Conditions {
    let mut conditions = Conditions::default();
    conditions.push("d.endpoint_id = ?", Param::Text(filter.endpoint_id.clone()));
    conditions.push_states(&filter.states, backend);
    if let Some(since) = filter.since {
        conditions.push("d.created_at >= ?", Param::Int(since));
    }
    if let Some(until) = filter.until {
        conditions.push("d.created_at < ?", Param::Int(until));
    }
    if let Some(topic) = &filter.topic {
        conditions.push("d.topic = ?", Param::Text(topic.clone()));
    }
    if let Some(event_id) = &filter.event_id {
        conditions.push("d.event_id = ?", Param::Text(event_id.clone()));
    }
    conditions
}

const EVENT_BY_ID: &str = concat!("SELECT ", event_columns!(), " FROM events WHERE id = $1");
const DELIVERY_BY_ID: &str = concat!(
    "SELECT ",
    delivery_columns!(),
    " FROM deliveries d JOIN endpoints e ON e.id = d.endpoint_id JOIN tenants t ON t.id = d.tenant_id
      WHERE d.id = $1"
);
const ATTEMPTS_OF: &str =
    "SELECT id, delivery_id, endpoint_id, attempt_number, started_at, duration_ms,
    status_code, error_kind, error_message, request_headers, response_body, dispatcher_id
    FROM attempts WHERE delivery_id = $1 ORDER BY started_at, id";

/// Retrying deliveries of endpoint `$1` not yet due at `$2` become due
/// then: through the queue index (its condition spelled out for SQLite).
const RETRY_NOW: &str = "UPDATE deliveries SET next_attempt_at = $2, updated_at = $2
    WHERE endpoint_id = $1 AND state IN ('pending', 'scheduled') AND state = 'scheduled'
      AND next_attempt_at > $2";

impl Reads {
    /// What retrying the deliveries matching `filter` in `states` (each
    /// retryable) would touch, per endpoint, most first: the preview a
    /// bulk retry shows before it asks. Deliveries whose payload is gone
    /// cannot be retried and are left out, as the retry leaves them.
    pub async fn retry_preview(&self, filter: &DeliveryFilter) -> Result<Vec<RetryPreviewRow>> {
        let mut conditions = delivery_conditions(filter, self.backend());
        conditions.clauses.push(payload_kept("d"));
        let index = listing_index(filter);
        let rows: Vec<RetryPreviewRow> = on_db!(self, |pools, sql| {
            let text = format!(
                "SELECT d.endpoint_id, t.name AS tenant_name, e.name AS endpoint_name,
                        CAST(COUNT(*) AS BIGINT) AS count,
                        MIN(d.created_at) AS oldest, MAX(d.created_at) AS newest
                 FROM deliveries d{} JOIN endpoints e ON e.id = d.endpoint_id AND e.deleted_at IS NULL
                 JOIN tenants t ON t.id = d.tenant_id
                 WHERE {} GROUP BY d.endpoint_id, t.name, e.name
                 ORDER BY count DESC, t.name, e.name",
                sql.index_hint(index),
                conditions.sql()
            );
            let query = sqlx::query_as(sqlx::AssertSqlSafe(text)).persistent(false);
            bind_params!(query, &conditions.params)
                .fetch_all(&pools.read)
                .await?
        });
        Ok(rows)
    }

    /// One page of deliveries matching `filter`, newest first.
    pub async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<Delivery>> {
        self.list_deliveries_toward(filter, after, limit, false)
            .await
    }

    /// The page of deliveries matching `filter` just newer than `before`
    /// (or the oldest page, without a cursor), still newest first; its
    /// `next` continues toward the newest. For paging back up a list, and
    /// for jumping to its end.
    pub async fn list_deliveries_newer(
        &self,
        filter: &DeliveryFilter,
        before: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<Delivery>> {
        self.list_deliveries_toward(filter, before, limit, true)
            .await
    }

    /// A delivery with its event and attempts.
    pub async fn get_delivery(&self, id: &str) -> Result<DeliveryDetail> {
        let delivery = self.find_delivery(id).await?;
        let attempts: Vec<AttemptRow> = on_db!(self, |pools, sql| {
            sqlx::query_as(ATTEMPTS_OF)
                .bind(id)
                .fetch_all(&pools.read)
                .await?
        });
        let event = self.get_event(&delivery.event_id).await?;
        Ok(DeliveryDetail {
            delivery,
            event,
            attempts: convert_all(attempts)?,
        })
    }

    /// A delivery alone, without its event or attempts: what a caller's
    /// right to see it is decided on.
    pub async fn find_delivery(&self, id: &str) -> Result<Delivery> {
        let row: Option<DeliveryRow> = on_db!(self, |pools, sql| {
            sqlx::query_as(DELIVERY_BY_ID)
                .bind(id)
                .fetch_optional(&pools.read)
                .await?
        });
        row.ok_or_else(|| self.missing("delivery", id))?.try_into()
    }

    /// The deliveries among `ids` as they are now (in no particular
    /// order; unknown ids are absent): what a confirmation re-reads before
    /// it asks.
    pub async fn deliveries_by_ids(&self, ids: &[String]) -> Result<Vec<Delivery>> {
        let rows: Vec<DeliveryRow> = on_db!(self, |pools, sql| {
            sqlx::query_as(sql.deliveries_of)
                .bind(json_list(ids))
                .fetch_all(&pools.read)
                .await?
        });
        convert_all(rows)
    }

    /// An event by id (`msg_…`).
    pub async fn get_event(&self, id: &str) -> Result<Event> {
        let row: Option<EventRow> = on_db!(self, |pools, sql| {
            sqlx::query_as(EVENT_BY_ID)
                .bind(id)
                .fetch_optional(&pools.read)
                .await?
        });
        row.ok_or_else(|| self.missing("event", id))?.try_into()
    }

    async fn list_deliveries_toward(
        &self,
        filter: &DeliveryFilter,
        cursor: Option<&Cursor>,
        limit: usize,
        newer: bool,
    ) -> Result<Page<Delivery>> {
        let limit = limit.clamp(1, 10_000);
        let direction = if newer {
            Direction::OldestFirst
        } else {
            Direction::NewestFirst
        };
        let order = direction.order();
        let mut conditions = delivery_conditions(filter, self.backend());
        if let Some(cursor) = cursor {
            conditions.push_after("d", "created_at", cursor, direction);
        }
        let limit_param = conditions.push_limit(Page::<Delivery>::fetch_limit(limit));
        let index = listing_index(filter);
        let rows: Vec<DeliveryRow> = on_db!(self, |pools, sql| {
            let text = format!(
                "SELECT {} FROM deliveries d{} JOIN endpoints e ON e.id = d.endpoint_id
                 JOIN tenants t ON t.id = d.tenant_id
                 WHERE {} ORDER BY d.created_at {order}, d.id {order} LIMIT {limit_param}",
                delivery_columns!(),
                sql.index_hint(index),
                conditions.sql(),
            );
            let query = sqlx::query_as(sqlx::AssertSqlSafe(text)).persistent(false);
            let query = bind_params!(query, &conditions.params);
            match sql.plan_with_values {
                // Planned with the values bound: a generic plan guesses a
                // topic matches a seventh of the table, and walks 55,000
                // rows to find 100 of a rare one (20 ms instead of 1).
                Some(plan_with_values) => {
                    let mut tx = pools.read.begin().await?;
                    sqlx::query(plan_with_values).execute(&mut *tx).await?;
                    let rows = query.fetch_all(&mut *tx).await?;
                    tx.commit().await?;
                    rows
                }
                None => query.fetch_all(&pools.read).await?,
            }
        });
        let items: Vec<Delivery> = convert_all(rows)?;
        let mut page = Page::from_rows(items, limit, |d: &Delivery| Cursor {
            created_at: d.created_at,
            id: d.id.clone(),
        });
        if newer {
            // Fetched oldest first so the window starts right after the cursor.
            page.items.reverse();
        }
        Ok(page)
    }
}

impl Store {
    /// Starts a fresh schedule for each retryable delivery among `ids` (dead,
    /// retrying or delivered, of a live endpoint): due after
    /// `first_delay_ms`, attempt count back to zero, history kept.
    pub async fn retry_deliveries(
        &self,
        ids: &[String],
        first_delay_ms: i64,
        actor: &Actor,
    ) -> Result<RetryReport> {
        self.retry_by_ids(ids, first_delay_ms, actor, true).await
    }

    /// Makes every retrying delivery of endpoint `endpoint_id` due now
    /// instead of at its scheduled time, keeping its attempt count (the
    /// retry schedule goes on from there); the claim still keeps to the
    /// endpoint's cap and rate limit. Returns how many; audited.
    pub async fn retry_now(&self, endpoint_id: &str, actor: &Actor) -> Result<u64> {
        let moved = on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now(sql, &mut *tx).await?;
            let moved = sqlx::query(RETRY_NOW)
                .bind(endpoint_id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if moved > 0 {
                notify_change(sql, &mut *tx).await?;
                write_audit(
                    &mut *tx,
                    now,
                    AuditRecord {
                        actor,
                        action: "endpoint.retry_now",
                        target_ids: vec![endpoint_id.to_string()],
                        detail: json!({ "count": moved }),
                    },
                )
                .await?;
            }
            tx.commit().await?;
            moved
        });
        Ok(moved)
    }

    /// [`Store::retry_deliveries`] for those among `ids` not delivered:
    /// dead or scheduled when the retry runs. One delivered since it was
    /// chosen (by a dispatcher, meanwhile) is skipped, never sent again.
    pub async fn retry_undelivered(
        &self,
        ids: &[String],
        first_delay_ms: i64,
        actor: &Actor,
    ) -> Result<RetryReport> {
        self.retry_by_ids(ids, first_delay_ms, actor, false).await
    }

    /// Revives `ids`; delivered ones only with `redeliver`.
    async fn retry_by_ids(
        &self,
        ids: &[String],
        first_delay_ms: i64,
        actor: &Actor,
        redeliver: bool,
    ) -> Result<RetryReport> {
        let report = on_db!(self, |pools, sql| {
            let statement = if redeliver {
                sql.retry_ids
            } else {
                sql.retry_undelivered_ids
            };
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now(sql, &mut *tx).await?;
            let list = json_list(ids);
            if let Some(lock) = sql.lock_events_of(&format!("ld.id{}", sql.any_of_json(1))) {
                sqlx::query(sqlx::AssertSqlSafe(lock))
                    .bind(&list)
                    .execute(&mut *tx)
                    .await?;
            }
            let states: Vec<DeliveryStanding> = sqlx::query_as(sql.delivery_states)
                .bind(&list)
                .fetch_all(&mut *tx)
                .await?;
            let retried: Vec<String> = sqlx::query_scalar(statement)
                .bind(&list)
                .bind(now + first_delay_ms)
                .bind(now)
                .fetch_all(&mut *tx)
                .await?;
            self.trim_revived(sql, &mut *tx, &retried).await?;
            let report = retry_report(ids, &states, retried);
            if !report.retried.is_empty() {
                notify_change(sql, &mut *tx).await?;
                write_audit(
                    &mut *tx,
                    now,
                    AuditRecord {
                        actor,
                        action: "delivery.retry",
                        target_ids: report.retried.clone(),
                        detail: json!({ "count": report.retried.len(), "skipped": report.skipped.len() }),
                    }
                ).await?;
            }
            tx.commit().await?;
            report
        });
        if !report.retried.is_empty() {
            self.note_change();
        }
        Ok(report)
    }

    /// Counts (with `dry_run`) or revives every delivery matching `filter`,
    /// starting each on a fresh schedule. Returns how many. Only retryable
    /// states are ever revived; no states given means dead ones.
    pub async fn retry_matching(
        &self,
        filter: &RetryFilter,
        dry_run: bool,
        first_delay_ms: i64,
        actor: &Actor,
    ) -> Result<u64> {
        self.retry_matching_limited(filter, dry_run, first_delay_ms, actor, None)
            .await
    }

    /// [`Store::retry_matching`] for at most `limit` deliveries, oldest
    /// first: a long bulk retry runs as a series of short transactions and
    /// can report progress. Revived deliveries no longer match, so calling
    /// again continues where the last call stopped.
    pub async fn retry_matching_limited(
        &self,
        filter: &RetryFilter,
        dry_run: bool,
        first_delay_ms: i64,
        actor: &Actor,
        limit: Option<u64>,
    ) -> Result<u64> {
        let mut filter = filter.clone();
        if filter.states.is_empty() {
            filter.states.push(DeliveryState::Dead);
        }
        filter.states.retain(|state| state.is_retryable());
        if filter.states.is_empty() {
            return Ok(0);
        }
        let filter = &filter;
        let mut conditions = retry_conditions(filter, self.backend());
        conditions.clauses.push(payload_kept("d"));
        let where_sql = conditions.sql();
        // An endpoint's failures come from its failure index; anything else
        // (succeeded ones) from all of its deliveries.
        let index = if is_failed_only(&filter.states) {
            "deliveries_failed_endpoint"
        } else {
            "deliveries_endpoint"
        };
        if dry_run {
            let count: i64 = on_db!(self, |pools, sql| {
                let text = format!(
                    "SELECT COUNT(*) FROM deliveries d{}
                     JOIN endpoints e ON e.id = d.endpoint_id AND e.deleted_at IS NULL WHERE {where_sql}",
                    sql.index_hint(index)
                );
                let query = sqlx::query_scalar(sqlx::AssertSqlSafe(text));
                bind_params!(query, &conditions.params)
                    .fetch_one(&pools.read)
                    .await?
            });
            return Ok(count.max(0) as u64);
        }
        conditions.params.push(Param::Int(0)); // due time, filled in below
        conditions.params.push(Param::Int(0)); // now
        let n = conditions.params.len();
        let limit_sql = match limit {
            Some(limit) => format!(" ORDER BY d.created_at, d.id LIMIT {}", limit.max(1)),
            None => String::new(),
        };
        let count = on_db!(self, |pools, sql| {
            let chosen = format!(
                "SELECT d.id FROM deliveries d{}
                 JOIN endpoints e ON e.id = d.endpoint_id AND e.deleted_at IS NULL
                 WHERE {where_sql}{limit_sql}",
                sql.index_hint(index)
            );
            let text = format!(
                "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ${}, \
                 lease_owner = NULL, lease_expires_at = NULL, updated_at = ${n}
                 WHERE id IN ({chosen}) RETURNING id",
                n - 1,
            );
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now(sql, &mut *tx).await?;
            conditions.params[n - 2] = Param::Int(now + first_delay_ms);
            conditions.params[n - 1] = Param::Int(now);
            if let Some(lock) = sql.lock_events_of(&format!("ld.id IN ({chosen})")) {
                let query = sqlx::query(sqlx::AssertSqlSafe(lock));
                bind_params!(query, &conditions.params[..n - 2])
                    .execute(&mut *tx)
                    .await?;
            }
            let query = sqlx::query_scalar(sqlx::AssertSqlSafe(text));
            let revived: Vec<String> = bind_params!(query, &conditions.params)
                .fetch_all(&mut *tx)
                .await?;
            self.trim_revived(sql, &mut *tx, &revived).await?;
            let count = revived.len() as u64;
            if count > 0 {
                notify_change(sql, &mut *tx).await?;
                write_audit(
                    &mut *tx,
                    now,
                    AuditRecord {
                        actor,
                        action: "delivery.retry_bulk",
                        target_ids: vec![filter.endpoint_id.clone()],
                        detail: json!({
                            "count": count,
                            "endpoint_id": filter.endpoint_id,
                            "states": filter.states,
                            "since": filter.since,
                            "until": filter.until,
                        }),
                    },
                )
                .await?;
            }
            tx.commit().await?;
            count
        });
        if count > 0 {
            self.note_change();
        }
        Ok(count)
    }

    /// Makes room for the new schedule's first attempt in the history of
    /// each of `revived`, within `retention.attempts_per_delivery`.
    async fn trim_revived<C>(
        &self,
        sql: &Dialect,
        conn: &mut C,
        revived: &[String],
    ) -> std::result::Result<(), sqlx::Error>
    where
        C: sqlx::Connection,
        for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
        <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
        for<'q> String: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
        for<'q> i64: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
        <C::Database as sqlx::Database>::QueryResult: super::tx::RowsAffected,
    {
        if self.attempts_kept == 0 {
            return Ok(());
        }
        for chunk in revived.chunks(1_000) {
            let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
            trim_attempts_of(sql, &mut *conn, &ids, self.attempts_kept - 1).await?;
        }
        Ok(())
    }
}

/// A delivery's state, its endpoint's deletion time and its event's payload
/// removal, as a retry finds them.
type DeliveryStanding = (String, String, Option<i64>, Option<String>);

/// Explains, for each requested id, whether it was retried and if not why.
fn retry_report(ids: &[String], states: &[DeliveryStanding], retried: Vec<String>) -> RetryReport {
    let mut skipped = Vec::new();
    for id in ids {
        if retried.contains(id) {
            continue;
        }
        let reason = match states.iter().find(|(found, ..)| found == id) {
            None => "no such delivery".to_string(),
            Some((_, _, Some(_deleted_at), _)) => "its endpoint was deleted".to_string(),
            Some((_, _, None, Some(removed_by))) => match PayloadRemovedBy::from_db(removed_by) {
                Ok(by) => format!("its payload was {}; it cannot be retried", by.describe()),
                Err(err) => err.to_string(),
            },
            Some((_, state, None, None)) => match DeliveryState::from_db(state) {
                Ok(DeliveryState::Pending) => "already pending".to_string(),
                Ok(DeliveryState::InFlight) => "being attempted right now".to_string(),
                Ok(DeliveryState::Cancelled) => "cancelled (its endpoint was deleted)".to_string(),
                Ok(DeliveryState::Delivered) => "already delivered".to_string(),
                Ok(other) => format!("state {other} changed concurrently"),
                Err(err) => err.to_string(),
            },
        };
        skipped.push((id.clone(), reason));
    }
    RetryReport { retried, skipped }
}
