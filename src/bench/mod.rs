//! `hookline bench`: the harness behind every speed claim hookline makes.
//!
//! `pipeline` measures delivery end to end against the bare HTTP ceiling;
//! `console` measures how long each console screen takes to refresh and to
//! draw on a database of realistic size. Runs print a table or one JSON
//! object, so results can be compared run to run.

/// `bench api`: publishing over HTTP to `serve`, delivered to local sinks.
pub mod api;
mod console;
mod isolation;
mod pipeline;
mod seed;

use std::time::Duration;

pub use console::{
    ConsoleBenchOptions, ConsoleReport, Figure, SearchFigures, ViewFigures, console, render_console,
};
pub use isolation::{IsolationOptions, IsolationReport, Scenario, isolation, render_isolation};
pub use pipeline::{
    PipelineOptions, PipelineReport, PipelineRun, PublishMode, pipeline, render_pipeline,
};
pub use seed::{SeedPlan, SeedSummary};

// Shared by the benchmarks beside the pipeline.
use pipeline::{RunningDispatcher, median, payload, wait_for_successes};

use crate::store::{Backend, Store, StoreError};

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ops(#[from] crate::ops::OpsError),
    #[error(transparent)]
    Dispatch(#[from] crate::dispatch::DispatchError),
    #[error(transparent)]
    Sink(#[from] crate::sink::SinkError),
    #[error(transparent)]
    Client(#[from] crate::dispatch::send::ClientError),
    #[error("could not create a temporary directory: {0}")]
    TempDir(#[from] std::io::Error),
    #[error("{0}")]
    Setup(String),
    #[error("the pipeline stalled: {done} of {total} deliveries succeeded after {waited:?}")]
    Stalled {
        done: u64,
        total: u64,
        waited: Duration,
    },
}

/// The database a report is about, for its first lines.
fn describe(store: &Store) -> String {
    match store.backend() {
        Backend::Sqlite => format!("sqlite ({})", store.location()),
        Backend::Postgres => format!("postgres ({})", store.location()),
    }
}

/// The `q` quantile of `samples` (nearest rank), 0 when there are none.
fn percentile(samples: &[f64], q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Peak resident memory of this process, from `/proc/self/status` (Linux).
pub fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
