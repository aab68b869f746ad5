//! Read models for screens and metrics: queue summaries, endpoint health,
//! Prometheus totals and whole-database tallies, built from the queue's
//! indexes and the per-minute rollups rather than from scanning history.

pub(crate) mod health;
mod metrics;
mod summary;
mod tally;

pub use health::{EndpointHealth, HealthWindow};
pub use metrics::AttemptTotals;
pub use summary::{
    EndpointQueue, EndpointStanding, MinuteTotals, QueueSummary, SUMMARY_COUNT_LIMIT, SearchPage,
};
pub use tally::{EndpointTally, Tally};
