//! Totals for the Prometheus endpoint: attempts by outcome and latency
//! bucket since the beginning (from the per-minute rollups) and how late
//! each endpoint's queue runs (from the queue's partial index).

use crate::health::BUCKETS;
use crate::store::tx::db_now;
use crate::store::{Reads, Result, on_db};

/// Every attempt ever recorded, by outcome, with the latency histogram.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptTotals {
    pub succeeded: i64,
    pub status_4xx: i64,
    pub status_5xx: i64,
    pub timeout: i64,
    pub network: i64,
    pub other: i64,
    pub latency_sum_ms: i64,
    /// Counts per bucket of `health::LATENCY_BOUNDS_MS` (not cumulative).
    pub buckets: [i64; BUCKETS],
}

const TOTALS: &str = "SELECT
    CAST(COALESCE(SUM(succeeded), 0) AS BIGINT), CAST(COALESCE(SUM(status_4xx), 0) AS BIGINT),
    CAST(COALESCE(SUM(status_5xx), 0) AS BIGINT), CAST(COALESCE(SUM(timeout), 0) AS BIGINT),
    CAST(COALESCE(SUM(network), 0) AS BIGINT), CAST(COALESCE(SUM(other), 0) AS BIGINT),
    CAST(COALESCE(SUM(latency_sum_ms), 0) AS BIGINT),
    CAST(COALESCE(SUM(b0), 0) AS BIGINT), CAST(COALESCE(SUM(b1), 0) AS BIGINT),
    CAST(COALESCE(SUM(b2), 0) AS BIGINT), CAST(COALESCE(SUM(b3), 0) AS BIGINT),
    CAST(COALESCE(SUM(b4), 0) AS BIGINT), CAST(COALESCE(SUM(b5), 0) AS BIGINT),
    CAST(COALESCE(SUM(b6), 0) AS BIGINT), CAST(COALESCE(SUM(b7), 0) AS BIGINT),
    CAST(COALESCE(SUM(b8), 0) AS BIGINT), CAST(COALESCE(SUM(b9), 0) AS BIGINT),
    CAST(COALESCE(SUM(b10), 0) AS BIGINT), CAST(COALESCE(SUM(b11), 0) AS BIGINT)
    FROM endpoint_health";

/// Per endpoint, the earliest due time among its due deliveries. The
/// condition matches the partial index `deliveries_queue`, which serves it.
const OLDEST_DUE: &str = "SELECT endpoint_id, MIN(next_attempt_at) FROM deliveries
    WHERE state IN ('pending', 'scheduled') AND next_attempt_at <= $1 GROUP BY endpoint_id";

impl Reads {
    /// Attempts by outcome and latency bucket, over all recorded history.
    pub async fn attempt_totals(&self) -> Result<AttemptTotals> {
        on_db!(self, |pools, sql| {
            use sqlx::Row;
            let row = sqlx::query(TOTALS).fetch_one(&pools.read).await?;
            let mut totals = AttemptTotals {
                succeeded: row.try_get(0)?,
                status_4xx: row.try_get(1)?,
                status_5xx: row.try_get(2)?,
                timeout: row.try_get(3)?,
                network: row.try_get(4)?,
                other: row.try_get(5)?,
                latency_sum_ms: row.try_get(6)?,
                buckets: [0; BUCKETS],
            };
            for (i, bucket) in totals.buckets.iter_mut().enumerate() {
                *bucket = row.try_get(7 + i)?;
            }
            Ok(totals)
        })
    }

    /// For each endpoint with due deliveries: how long (ms) the
    /// longest-waiting one has waited past its due time, by the database clock.
    pub async fn oldest_due_waits(&self) -> Result<Vec<(String, i64)>> {
        on_db!(self, |pools, sql| {
            let mut conn = pools.read.acquire().await?;
            let now = db_now(sql, &mut *conn).await?;
            let rows: Vec<(String, i64)> = sqlx::query_as(OLDEST_DUE)
                .bind(now)
                .fetch_all(&mut *conn)
                .await?;
            Ok(rows
                .into_iter()
                .map(|(endpoint, due)| (endpoint, (now - due).max(0)))
                .collect())
        })
    }
}
