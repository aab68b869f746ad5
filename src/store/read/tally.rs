//! Whole-database tallies per endpoint: deliveries by state and attempts by
//! outcome. They scan every row, so they are for small databases and final
//! reports (the demo's summary, tests), never for a refresh loop.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::DeliveryState;
use crate::store::{Reads, Result, on_db};

const DELIVERIES_BY_ENDPOINT: &str = "SELECT endpoint_id, state, COUNT(*),
        CAST(SUM(CASE WHEN attempts > 1 THEN 1 ELSE 0 END) AS BIGINT)
    FROM deliveries GROUP BY endpoint_id, state";
const ATTEMPTS_BY_ENDPOINT: &str = "SELECT endpoint_id, COUNT(*),
        CAST(SUM(CASE WHEN status_code BETWEEN 200 AND 299 THEN 1 ELSE 0 END) AS BIGINT)
    FROM attempts GROUP BY endpoint_id";
const EVENTS: &str = "SELECT COUNT(*) FROM events";

/// Endpoint, state, deliveries, of which retried.
type StateRow = (String, String, i64, i64);
/// Endpoint, attempts, of which answered 2xx.
type AttemptRow = (String, i64, i64);

/// One endpoint's deliveries by state and attempts by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EndpointTally {
    pub pending: i64,
    pub in_flight: i64,
    pub retrying: i64,
    pub delivered: i64,
    pub dead: i64,
    pub cancelled: i64,
    /// Deliveries that took more than one attempt (whatever became of them).
    pub retried: i64,
    /// Every attempt made.
    pub attempts: i64,
    /// Attempts answered 2xx.
    pub attempts_ok: i64,
}

impl EndpointTally {
    /// Attempts that failed: error, timeout or a non-2xx answer.
    pub fn attempts_failed(&self) -> i64 {
        self.attempts - self.attempts_ok
    }

    /// Every delivery, whatever its state.
    pub fn deliveries(&self) -> i64 {
        self.pending + self.in_flight + self.retrying + self.delivered + self.dead + self.cancelled
    }
}

/// Events stored, and per endpoint id what became of its deliveries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub events: i64,
    pub endpoints: BTreeMap<String, EndpointTally>,
}

impl Reads {
    /// Counts every event, delivery and attempt (a full scan; see the module docs).
    pub async fn tally(&self) -> Result<Tally> {
        let (events, deliveries, attempts): (i64, Vec<StateRow>, Vec<AttemptRow>) =
            on_db!(self, |pools, sql| {
                let events = sqlx::query_scalar(EVENTS).fetch_one(&pools.read).await?;
                let deliveries = sqlx::query_as(DELIVERIES_BY_ENDPOINT)
                    .fetch_all(&pools.read)
                    .await?;
                let attempts = sqlx::query_as(ATTEMPTS_BY_ENDPOINT)
                    .fetch_all(&pools.read)
                    .await?;
                (events, deliveries, attempts)
            });
        let mut tally = Tally {
            events,
            endpoints: BTreeMap::new(),
        };
        for (endpoint, state, count, retried) in deliveries {
            let entry = tally.endpoints.entry(endpoint).or_default();
            entry.retried += retried;
            let state: DeliveryState =
                crate::store::sql::rows::parse_column("deliveries", "state", &state)?;
            let slot = match state {
                DeliveryState::Pending => &mut entry.pending,
                DeliveryState::InFlight => &mut entry.in_flight,
                DeliveryState::Retrying => &mut entry.retrying,
                DeliveryState::Delivered => &mut entry.delivered,
                DeliveryState::Dead => &mut entry.dead,
                DeliveryState::Cancelled => &mut entry.cancelled,
            };
            *slot += count;
        }
        for (endpoint, attempts, ok) in attempts {
            let entry = tally.endpoints.entry(endpoint).or_default();
            entry.attempts = attempts;
            entry.attempts_ok = ok;
        }
        Ok(tally)
    }
}
