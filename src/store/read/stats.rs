//! One endpoint's figures over a window (attempts, outcomes, latency,
//! failures by cause, deliveries by state, backlog): what
//! `GET /v1/endpoints/{id}/stats` answers, from the same rollups and queue
//! indexes the console's endpoint detail reads.

use serde::Serialize;

use super::causes::FailureCause;
use super::health::{HealthWindow, windows_of};
use super::summary::{EndpointQueue, MINUTE_MS};
use crate::model::DeliveryState;
use crate::store::sql::rows::parse_column;
use crate::store::tx::db_now;
use crate::store::{Reads, Result, json_list, on_db};

/// One endpoint's figures over the last `minutes` minutes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointStats {
    pub endpoint_id: String,
    /// The window: from the start of its first minute up to now (unix ms).
    pub from: i64,
    pub to: i64,
    /// Attempts in the window by outcome, with their latency histogram.
    pub attempts: HealthWindow,
    /// Failures in the window by cause, most first.
    pub causes: Vec<FailureCause>,
    /// Deliveries created in the window, by the state each is in now.
    pub by_state: Vec<(DeliveryState, i64)>,
    /// Waiting and in-flight deliveries now, whenever created.
    pub queue: EndpointQueue,
    /// When the longest-waiting of them was (or is) due.
    pub oldest_due: Option<i64>,
}

/// Deliveries created since `$2` by state, through the endpoint's listing index.
const BY_STATE: &str = "SELECT state, COUNT(*) FROM deliveries
    WHERE endpoint_id = $1 AND created_at >= $2 GROUP BY state";
/// Spelled as the claim index's condition, so SQLite reads it from that index.
const OLDEST_DUE: &str = "SELECT MIN(next_attempt_at) FROM deliveries
    WHERE endpoint_id = $1 AND state IN ('pending', 'scheduled')";

impl Reads {
    /// Endpoint `endpoint_id`'s figures over the last `minutes` minutes
    /// (this one included).
    pub async fn endpoint_stats(&self, endpoint_id: &str, minutes: i64) -> Result<EndpointStats> {
        let minutes = minutes.clamp(1, 7 * 24 * 60);
        let list = json_list(&[endpoint_id]);
        let (now, from, windows, by_state, oldest_due) = on_db!(self, |pools, sql| {
            let mut conn = pools.read.acquire().await?;
            let now = db_now(sql, &mut *conn).await?;
            let from = now - now.rem_euclid(MINUTE_MS) - (minutes - 1) * MINUTE_MS;
            let rows = sqlx::query(sql.health_rollups_of)
                .bind(from)
                .bind(from)
                .bind(&list)
                .fetch_all(&mut *conn)
                .await?;
            let by_state: Vec<(String, i64)> = sqlx::query_as(BY_STATE)
                .bind(endpoint_id)
                .bind(from)
                .fetch_all(&mut *conn)
                .await?;
            let oldest_due: Option<i64> = sqlx::query_scalar(OLDEST_DUE)
                .bind(endpoint_id)
                .fetch_one(&mut *conn)
                .await?;
            (now, from, windows_of(&rows)?, by_state, oldest_due)
        });
        let mut attempts = HealthWindow::default();
        for (_, _, window) in &windows {
            attempts.add(window);
        }
        let by_state = by_state
            .into_iter()
            .map(|(state, count)| {
                parse_column::<DeliveryState>("deliveries", "state", &state).map(|s| (s, count))
            })
            .collect::<Result<Vec<_>>>()?;
        let queue = self
            .endpoint_queues(Some(&[endpoint_id.to_string()]))
            .await?
            .remove(endpoint_id)
            .unwrap_or_default();
        Ok(EndpointStats {
            endpoint_id: endpoint_id.to_string(),
            from,
            to: now,
            attempts,
            causes: self.failure_causes(endpoint_id, minutes).await?,
            by_state,
            queue,
            oldest_due,
        })
    }
}
