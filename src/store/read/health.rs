//! Reading endpoint health: running facts (last success, last error,
//! consecutive failures) and success rates and latency percentiles over the
//! last 5 minutes and hour, from the per-minute rollups the dispatchers
//! write with their outcomes — never from scanning attempts.
//!
//! Both tables hold one row per dispatcher, so dispatchers never contend on
//! them; this module merges those rows per endpoint.

use std::collections::HashMap;

use serde::Serialize;

use crate::health::{BUCKETS, percentile};
use crate::store::tx::db_now;
use crate::store::{Reads, Result, json_list, on_db};

/// Attempts of one endpoint over a time window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HealthWindow {
    pub succeeded: i64,
    pub status_4xx: i64,
    pub status_5xx: i64,
    pub timeout: i64,
    pub network: i64,
    pub other: i64,
    pub latency_sum_ms: i64,
    /// Attempt counts per latency bucket (`health::LATENCY_BOUNDS_MS`).
    pub buckets: [i64; BUCKETS],
}

impl HealthWindow {
    /// Attempts of every outcome.
    pub fn attempts(&self) -> i64 {
        self.succeeded + self.failed()
    }

    /// Failed attempts of every kind.
    pub fn failed(&self) -> i64 {
        self.status_4xx + self.status_5xx + self.timeout + self.network + self.other
    }

    /// Share of attempts that succeeded, `None` without attempts.
    pub fn success_rate(&self) -> Option<f64> {
        let attempts = self.attempts();
        (attempts > 0).then(|| self.succeeded as f64 / attempts as f64)
    }

    /// Median attempt latency (ms, bucket bound).
    pub fn p50_ms(&self) -> Option<i64> {
        percentile(&self.buckets, 0.50)
    }

    /// 95th percentile attempt latency (ms, bucket bound).
    pub fn p95_ms(&self) -> Option<i64> {
        percentile(&self.buckets, 0.95)
    }

    pub(crate) fn add(&mut self, other: &HealthWindow) {
        self.succeeded += other.succeeded;
        self.status_4xx += other.status_4xx;
        self.status_5xx += other.status_5xx;
        self.timeout += other.timeout;
        self.network += other.network;
        self.other += other.other;
        self.latency_sum_ms += other.latency_sum_ms;
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
    }
}

/// One endpoint's health.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EndpointHealth {
    pub endpoint_id: String,
    /// Failed attempts since the last success. Exact with one dispatcher;
    /// with several interleaving on one endpoint it may overcount slightly.
    pub consecutive_failures: i64,
    pub last_attempt_at: Option<i64>,
    pub last_success_at: Option<i64>,
    pub last_failure_at: Option<i64>,
    /// Status of the most recent attempt (none for transport errors).
    pub last_status: Option<i64>,
    /// The most recent failure's error.
    pub last_error: Option<String>,
    pub last_5m: HealthWindow,
    pub last_1h: HealthWindow,
}

/// `endpoint_stats` rows of every endpoint.
const STATS: &str = "SELECT endpoint_id, consecutive_failures, last_attempt_at, last_success_at,
                last_failure_at, last_status, last_error FROM endpoint_stats WHERE TRUE";

/// `endpoint_stats` rows, with `filter` appended to the WHERE clause.
pub(crate) fn stats_sql(filter: &str) -> String {
    format!("{STATS}{filter}")
}

/// Sums per endpoint of the rollups since `$1`, split at `$2` into the recent
/// part (`recent = 1`) and the rest; `filter` is appended to the WHERE
/// clause, and `hint` (an index hint, or nothing) to the table.
pub(crate) fn rollups_sql(hint: &str, filter: &str) -> String {
    format!(
        "SELECT endpoint_id, CASE WHEN minute >= $2 THEN 1 ELSE 0 END AS recent,
            CAST(SUM(succeeded) AS BIGINT), CAST(SUM(status_4xx) AS BIGINT), CAST(SUM(status_5xx) AS BIGINT),
            CAST(SUM(timeout) AS BIGINT), CAST(SUM(network) AS BIGINT), CAST(SUM(other) AS BIGINT),
            CAST(SUM(latency_sum_ms) AS BIGINT),
            CAST(SUM(b0) AS BIGINT), CAST(SUM(b1) AS BIGINT), CAST(SUM(b2) AS BIGINT),
            CAST(SUM(b3) AS BIGINT), CAST(SUM(b4) AS BIGINT), CAST(SUM(b5) AS BIGINT),
            CAST(SUM(b6) AS BIGINT), CAST(SUM(b7) AS BIGINT), CAST(SUM(b8) AS BIGINT),
            CAST(SUM(b9) AS BIGINT), CAST(SUM(b10) AS BIGINT), CAST(SUM(b11) AS BIGINT)
            FROM endpoint_health{hint} WHERE minute >= $1{filter} GROUP BY endpoint_id, CASE WHEN minute >= $2 THEN 1 ELSE 0 END"
    )
}

/// One `endpoint_stats` row (one endpoint, one dispatcher).
#[derive(sqlx::FromRow, Debug, Clone, Default)]
pub(crate) struct StatsRow {
    pub endpoint_id: String,
    pub consecutive_failures: i64,
    pub last_attempt_at: Option<i64>,
    pub last_success_at: Option<i64>,
    pub last_failure_at: Option<i64>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
}

impl StatsRow {
    /// The rows of one endpoint folded into one, as readers see them
    /// merged: the latest of each time, the status of the latest attempt,
    /// the error of the latest failure, and the failures since the latest
    /// success.
    pub(crate) fn fold(endpoint_id: &str, rows: &[StatsRow]) -> StatsRow {
        let last_success_at = rows.iter().filter_map(|r| r.last_success_at).max();
        let latest_attempt = rows.iter().max_by_key(|r| r.last_attempt_at);
        let since = last_success_at.unwrap_or(i64::MIN);
        StatsRow {
            endpoint_id: endpoint_id.to_string(),
            consecutive_failures: rows
                .iter()
                .filter(|r| r.last_failure_at.is_some_and(|at| at > since))
                .map(|r| r.consecutive_failures)
                .sum(),
            last_attempt_at: latest_attempt.and_then(|r| r.last_attempt_at),
            last_success_at,
            last_failure_at: rows.iter().filter_map(|r| r.last_failure_at).max(),
            last_status: latest_attempt.and_then(|r| r.last_status),
            last_error: rows
                .iter()
                .filter(|r| r.last_error.is_some())
                .max_by_key(|r| r.last_failure_at)
                .and_then(|r| r.last_error.clone()),
        }
    }
}

const MINUTE_MS: i64 = 60_000;

/// Rollup sums as [`rollups_sql`] returns them: `(endpoint, recent, window)`.
pub(super) fn windows_of<R: sqlx::Row>(
    rows: &[R],
) -> Result<Vec<(String, bool, HealthWindow)>, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i32: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let mut windows = Vec::with_capacity(rows.len());
    for row in rows {
        let mut window = HealthWindow {
            succeeded: row.try_get(2)?,
            status_4xx: row.try_get(3)?,
            status_5xx: row.try_get(4)?,
            timeout: row.try_get(5)?,
            network: row.try_get(6)?,
            other: row.try_get(7)?,
            latency_sum_ms: row.try_get(8)?,
            buckets: [0; BUCKETS],
        };
        for (i, bucket) in window.buckets.iter_mut().enumerate() {
            *bucket = row.try_get(9 + i)?;
        }
        let recent: i32 = row.try_get(1)?;
        windows.push((row.try_get(0)?, recent == 1, window));
    }
    Ok(windows)
}

/// Folds per-dispatcher rows into one health record per endpoint.
fn merge(
    stats: Vec<StatsRow>,
    windows: Vec<(String, bool, HealthWindow)>,
) -> HashMap<String, EndpointHealth> {
    let mut health: HashMap<String, EndpointHealth> = HashMap::new();
    let mut rows_by_endpoint: HashMap<String, Vec<StatsRow>> = HashMap::new();
    for row in stats {
        rows_by_endpoint
            .entry(row.endpoint_id.clone())
            .or_default()
            .push(row);
    }
    for (endpoint_id, rows) in rows_by_endpoint {
        let entry = health
            .entry(endpoint_id.clone())
            .or_insert_with(|| EndpointHealth {
                endpoint_id,
                ..EndpointHealth::default()
            });
        let folded = StatsRow::fold(&entry.endpoint_id, &rows);
        entry.consecutive_failures = folded.consecutive_failures;
        entry.last_attempt_at = folded.last_attempt_at;
        entry.last_success_at = folded.last_success_at;
        entry.last_failure_at = folded.last_failure_at;
        entry.last_status = folded.last_status;
        entry.last_error = folded.last_error;
    }
    for (endpoint_id, recent, window) in windows {
        let entry = health
            .entry(endpoint_id.clone())
            .or_insert_with(|| EndpointHealth {
                endpoint_id,
                ..EndpointHealth::default()
            });
        entry.last_1h.add(&window);
        if recent {
            entry.last_5m.add(&window);
        }
    }
    health
}

impl Reads {
    /// Health of the given endpoints, or of every endpoint that has been
    /// attempted, by endpoint id (endpoints never attempted are absent).
    pub async fn endpoint_health(
        &self,
        endpoint_ids: Option<&[String]>,
    ) -> Result<HashMap<String, EndpointHealth>> {
        let list = endpoint_ids.map(json_list);
        let (stats, windows) = on_db!(self, |pools, sql| {
            let mut conn = pools.read.acquire().await?;
            let now = db_now(sql, &mut *conn).await?;
            let this_minute = now - now.rem_euclid(MINUTE_MS);
            let since = this_minute - 59 * MINUTE_MS;
            let recent = this_minute - 4 * MINUTE_MS;
            let (stats, rows): (Vec<StatsRow>, _) = match &list {
                Some(list) => (
                    sqlx::query_as(sql.health_stats_of)
                        .bind(list)
                        .fetch_all(&mut *conn)
                        .await?,
                    sqlx::query(sql.health_rollups_of)
                        .bind(since)
                        .bind(recent)
                        .bind(list)
                        .fetch_all(&mut *conn)
                        .await?,
                ),
                None => (
                    sqlx::query_as(STATS).fetch_all(&mut *conn).await?,
                    sqlx::query(sql.health_rollups_all)
                        .bind(since)
                        .bind(recent)
                        .fetch_all(&mut *conn)
                        .await?,
                ),
            };
            (stats, windows_of(&rows)?)
        });
        Ok(merge(stats, windows))
    }
}
