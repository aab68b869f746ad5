//! Read models for screens and metrics: queue summaries, endpoint health,
//! Prometheus gauges and whole-database tallies, built from the queue's
//! indexes and the per-minute rollups rather than from scanning history.

mod causes;
pub(crate) mod health;
mod metrics;
mod stats;
mod summary;
mod tally;

pub use causes::FailureCause;
pub use health::{EndpointHealth, HealthWindow};
pub use metrics::{
    Backlog, GaugeReading, Heartbeat, METRIC_BACKLOG_TOP, METRIC_DISPATCHERS_WITHIN_MS, SqliteFiles,
};
pub use stats::EndpointStats;
pub use summary::{
    EndpointQueue, EndpointStanding, MinuteTotals, QueueSummary, SUMMARY_COUNT_LIMIT, SearchPage,
};
pub use tally::{EndpointTally, Tally};
