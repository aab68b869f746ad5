//! `hookline bench`: the harness behind every speed claim hookline makes.
//!
//! `pipeline` measures delivery end to end against the bare HTTP ceiling;
//! `console` measures how long each console screen takes to refresh and to
//! draw on a database of realistic size. Runs print a table or one JSON
//! object, so results can be compared run to run.

/// `bench api`: publishing over HTTP to `serve`, delivered to local sinks.
pub mod api;
mod console;
mod cpu;
mod isolation;
mod pipeline;
mod protection;
mod seed;
/// `bench soak`: a steady rate for minutes with a tiny retention.
pub mod soak;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

pub use console::{
    ConsoleBenchOptions, ConsoleReport, Figure, SearchFigures, ViewFigures, console, render_console,
};
pub use cpu::CpuPerThousand;
pub use isolation::{IsolationOptions, IsolationReport, Scenario, isolation, render_isolation};
pub use pipeline::{
    PipelineOptions, PipelineReport, PipelineRun, PublishMode, pipeline, render_pipeline,
};
pub use protection::{
    DownFigures, DownRun, ProtectionOptions, ProtectionReport, RateLimitRun, most_in_any,
    protection, render_protection,
};
pub use seed::{SeedPlan, SeedSummary};

// Shared by the benchmarks beside the pipeline.
use pipeline::{RunningDispatcher, median, payload, wait_for_successes};

use crate::config::{Config, DispatchConfig, IpNet, NetworkConfig};
use crate::dispatch::guard::Guard;
use crate::model::{Actor, Endpoint, Source};
use crate::ops::{EndpointInput, Ops};
use crate::sink::{SinkHandle, SinkOptions};
use crate::store::{Backend, OpenMode, Store, StoreError, StoreOptions};

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
    #[error("the pipeline stalled: {done} of {total} deliveries delivered after {waited:?}")]
    Stalled {
        done: u64,
        total: u64,
        waited: Duration,
    },
}

/// A fresh SQLite file in a temporary directory (kept as long as the
/// returned handle), or the database `db` names. Benchmarks fill what they
/// are given, so on the `first` run it must hold no tenants yet; later runs
/// find the earlier runs' tenants and add their own.
async fn open_database(
    db: Option<&str>,
    first: bool,
) -> Result<(Store, Option<tempfile::TempDir>), BenchError> {
    open_database_with(db, first, StoreOptions::default()).await
}

/// [`open_database`] with the store's options (its breaker rules).
async fn open_database_with(
    db: Option<&str>,
    first: bool,
    options: StoreOptions,
) -> Result<(Store, Option<tempfile::TempDir>), BenchError> {
    let Some(url) = db else {
        let dir = tempfile::tempdir()?;
        let url = database_url(None, Some(&dir));
        let store = Store::open_with(&url, OpenMode::CreateAndMigrate, options).await?;
        return Ok((store, Some(dir)));
    };
    let store = Store::open_with(url, OpenMode::CreateAndMigrate, options).await?;
    let tenants = store.list_tenants().await?;
    if first && !tenants.is_empty() {
        return Err(BenchError::Setup(format!(
            "bench fills the database it is given; {} already has {} tenants: point --db at an empty one",
            store.location(),
            tenants.len()
        )));
    }
    Ok((store, None))
}

/// The URL of the database [`open_database`] opened: `db`, or the SQLite
/// file in its temporary directory.
fn database_url(db: Option<&str>, dir: Option<&tempfile::TempDir>) -> String {
    match (db, dir) {
        (Some(url), _) => url.to_string(),
        (None, Some(dir)) => format!("sqlite://{}", dir.path().join("bench.db").display()),
        (None, None) => String::new(),
    }
}

/// What a benchmark's run may reach: its own sinks on 127.0.0.1, nothing else.
fn bench_network() -> NetworkConfig {
    NetworkConfig {
        allow: vec![IpNet::from(IpAddr::V4(Ipv4Addr::LOCALHOST))],
        ..NetworkConfig::default()
    }
}

/// The outbound guard of a benchmark's run (see [`bench_network`]).
pub(crate) fn bench_guard() -> Guard {
    Guard::new(&bench_network())
}

/// The operations a benchmark sets itself up through, acting as "bench"
/// from `source`, with the benchmark's dispatch settings.
fn bench_ops(store: &Store, dispatch: &DispatchConfig, source: Source) -> Ops {
    let config = Config {
        dispatch: dispatch.clone(),
        network: bench_network(),
        ..Config::default()
    };
    let actor = Actor {
        name: "bench".to_string(),
        client_addr: None,
        source,
    };
    Ops::new(store.clone(), &config, actor)
}

/// Starts `count` healthy sinks that answer after `latency`, each with an
/// endpoint of `tenant` named `{prefix}-{n}` and subscribed to `pattern`.
async fn sink_endpoints(
    ops: &Ops,
    tenant: &str,
    prefix: &str,
    count: usize,
    pattern: &str,
    latency: Duration,
) -> Result<Vec<(SinkHandle, Endpoint)>, BenchError> {
    let mut sinks = Vec::with_capacity(count);
    for n in 0..count {
        let sink = crate::sink::start(SinkOptions {
            latency,
            ..SinkOptions::default()
        })
        .await?;
        let endpoint = ops
            .add_endpoint(&EndpointInput {
                tenant: tenant.to_string(),
                name: format!("{prefix}-{n}"),
                url: sink.url(),
                ..EndpointInput::default()
            })
            .await?;
        ops.add_subscription(&endpoint.id, pattern, None).await?;
        sinks.push((sink, endpoint));
    }
    Ok(sinks)
}

/// Publishes `events` copies of `template` (each its own payload) at
/// `rate` a second, a batch every `tick`, recording when each was
/// acknowledged (unix ms).
async fn publish_steadily(
    ops: &Ops,
    template: &crate::store::NewEvent,
    rate: f64,
    events: usize,
    tick: Duration,
) -> Result<Vec<(String, i64)>, BenchError> {
    let per_tick = rate * tick.as_secs_f64();
    let mut ticks = tokio::time::interval(tick);
    let mut owed = 0.0;
    let mut acked = Vec::with_capacity(events);
    while acked.len() < events {
        ticks.tick().await;
        owed += per_tick;
        let count = (owed.floor() as usize).min(events - acked.len());
        if count == 0 {
            continue;
        }
        owed -= count as f64;
        let batch: Vec<crate::store::NewEvent> = (0..count)
            .map(|n| crate::store::NewEvent {
                payload: payload(acked.len() + n),
                ..template.clone()
            })
            .collect();
        let published = ops.publish_batch(&batch).await?;
        let at = crate::model::now_millis();
        acked.extend(published.into_iter().map(|p| (p.event_id, at)));
    }
    Ok(acked)
}

/// Waits until `sinks` accepted `expected` requests in all, failing when
/// nothing arrived for `stall`.
async fn wait_for_accepted(
    sinks: &[SinkHandle],
    expected: u64,
    started: std::time::Instant,
    stall: Duration,
) -> Result<(), BenchError> {
    let mut last = (0, std::time::Instant::now());
    loop {
        let done: u64 = sinks.iter().map(|s| s.stats().accepted).sum();
        if done >= expected {
            return Ok(());
        }
        if done != last.0 {
            last = (done, std::time::Instant::now());
        } else if last.1.elapsed() > stall {
            return Err(BenchError::Stalled {
                done,
                total: expected,
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
