//! One endpoint's failures grouped by cause over a window, and its
//! attempts per minute: what the console's endpoint detail shows, read
//! from the per-minute rollups the outcomes write (never from `attempts`).

use serde::Serialize;

use super::summary::{MINUTE_MS, MinuteTotals, fill_minutes};
use crate::store::tx::db_now;
use crate::store::{Reads, Result, on_db};

/// One cause of an endpoint's failures within a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct FailureCause {
    /// `http_status 503`, or the error kind and its first line, normalised
    /// (see [`crate::cause`]).
    pub cause: String,
    pub failures: i64,
    /// The first and the latest failure with this cause in the window.
    pub first_at: i64,
    pub last_at: i64,
    /// The latest failure's delivery and its error as it read.
    pub example_delivery_id: String,
    pub example_error: String,
}

/// Per cause: the window's sum, first and last, and the example of its
/// latest minute row; most failures first.
const CAUSES: &str = "SELECT cause, failures, first_at, last_at, example_delivery_id, example_error
    FROM (SELECT cause,
                 CAST(SUM(failures) OVER by_cause AS BIGINT) AS failures,
                 MIN(first_at) OVER by_cause AS first_at,
                 MAX(last_at) OVER by_cause AS last_at,
                 example_delivery_id, example_error,
                 ROW_NUMBER() OVER (PARTITION BY cause ORDER BY last_at DESC) AS latest
            FROM failure_causes WHERE endpoint_id = $1 AND minute >= $2
          WINDOW by_cause AS (PARTITION BY cause)) AS ranked
    WHERE latest = 1 ORDER BY failures DESC, cause";

const ENDPOINT_THROUGHPUT: &str = "SELECT minute, CAST(SUM(succeeded) AS BIGINT),
            CAST(SUM(status_4xx + status_5xx + timeout + network + other) AS BIGINT)
    FROM endpoint_health WHERE endpoint_id = $1 AND minute >= $2 GROUP BY minute ORDER BY minute";

impl Reads {
    /// Endpoint `endpoint_id`'s failures by cause over the last `minutes`
    /// minutes (this one included), most frequent first.
    pub async fn failure_causes(
        &self,
        endpoint_id: &str,
        minutes: i64,
    ) -> Result<Vec<FailureCause>> {
        let minutes = minutes.clamp(1, 7 * 24 * 60);
        Ok(on_db!(self, |pools, sql| {
            let mut conn = pools.read.acquire().await?;
            let now = db_now(sql, &mut *conn).await?;
            let first = now - now.rem_euclid(MINUTE_MS) - (minutes - 1) * MINUTE_MS;
            sqlx::query_as(CAUSES)
                .bind(endpoint_id)
                .bind(first)
                .fetch_all(&mut *conn)
                .await?
        }))
    }

    /// Endpoint `endpoint_id`'s attempts per minute over the last
    /// `minutes` minutes, oldest first, minutes without any as zeros.
    pub async fn endpoint_throughput(
        &self,
        endpoint_id: &str,
        minutes: i64,
    ) -> Result<Vec<MinuteTotals>> {
        let minutes = minutes.clamp(1, 24 * 60);
        let (first, rows) = on_db!(self, |pools, sql| {
            let mut conn = pools.read.acquire().await?;
            let now = db_now(sql, &mut *conn).await?;
            let first = now - now.rem_euclid(MINUTE_MS) - (minutes - 1) * MINUTE_MS;
            let rows: Vec<(i64, i64, i64)> = sqlx::query_as(ENDPOINT_THROUGHPUT)
                .bind(endpoint_id)
                .bind(first)
                .fetch_all(&mut *conn)
                .await?;
            (first, rows)
        });
        Ok(fill_minutes(first, minutes, rows))
    }
}
