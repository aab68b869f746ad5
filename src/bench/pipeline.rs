//! `bench pipeline`: publishes events to real local sinks through the whole
//! system (database, claim, signed POST, outcome recording) and, in the same
//! run, measures the bare ceiling: the same number of signed POSTs from the
//! same client to the same sinks at the same concurrency, with no database.
//! The ratio says how much the delivery machinery costs.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The topic the raw sending benchmark's requests carry.
const BENCH_TOPIC: &str = "bench.send";

use serde::Serialize;
use tokio::task::JoinSet;

use super::cpu::{CpuPerThousand, CpuReading, server_of};
use super::{
    BenchError, bench_ops, database_url, describe, open_database, peak_memory, percentile,
    sink_endpoints,
};
use crate::config::{DispatchConfig, format_duration};
use crate::dispatch::hand_off::HandOff;
use crate::dispatch::send::{PreparedTarget, Sender};
use crate::dispatch::{DispatchStats, Dispatcher};
use crate::model::{Source, now_millis};
use crate::ops::{EventInput, Ops};
use crate::sink::SinkHandle;
use crate::store::{EndpointTarget, NewEvent, Store};

/// When events are published relative to the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PublishMode {
    /// The whole backlog is published before the clock starts.
    Backlog,
    /// Events are published while the dispatchers run.
    Concurrent,
}

/// What `bench pipeline` runs.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    pub events: usize,
    pub endpoints: usize,
    /// Database URL; `None` uses a fresh SQLite file per run in a temp dir.
    pub db: Option<String>,
    pub runs: usize,
    pub mode: PublishMode,
    /// Dispatchers in this process, sharing the database.
    pub dispatchers: usize,
    /// Separate `hookline dispatch` processes instead (0: none), each with
    /// `dispatch.concurrency` slots: scale-out as it runs across hosts.
    pub dispatcher_processes: usize,
    /// How long each sink takes to answer.
    pub sink_latency: Duration,
    pub dispatch: DispatchConfig,
}

/// One run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineRun {
    pub deliveries: u64,
    pub seconds: f64,
    /// Deliveries committed as `delivered` per second.
    pub deliveries_per_sec: f64,
    /// Publish acknowledged -> first accepted at the sink.
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    /// The same POSTs without hookline's machinery.
    pub bare_posts_per_sec: f64,
    /// `deliveries_per_sec / bare_posts_per_sec`.
    pub ratio: f64,
    /// CPU spent per 1,000 deliveries while delivering (not publishing).
    pub cpu: CpuPerThousand,
}

/// Everything `bench pipeline` reports.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineReport {
    pub benchmark: &'static str,
    pub database: String,
    pub mode: PublishMode,
    pub events: usize,
    pub endpoints: usize,
    pub deliveries: u64,
    pub dispatchers: usize,
    /// Dispatchers running as processes of their own (0: in this process).
    pub dispatcher_processes: usize,
    pub sink_latency_ms: u64,
    /// Attempts in flight at once, for the pipeline and the bare ceiling alike.
    pub concurrency: usize,
    pub runs: Vec<PipelineRun>,
    /// Per-figure medians over the runs.
    pub median: PipelineRun,
    /// Peak resident memory of this process (dispatchers, sinks and all).
    pub peak_memory_bytes: Option<u64>,
}

/// Runs the pipeline benchmark.
pub async fn pipeline(options: &PipelineOptions) -> Result<PipelineReport, BenchError> {
    if options.events == 0
        || options.endpoints == 0
        || options.runs == 0
        || options.dispatchers == 0
    {
        return Err(BenchError::Setup(
            "events, endpoints, runs and dispatchers must all be at least 1".to_string(),
        ));
    }
    let concurrency = (options.dispatch.concurrency * options.dispatchers_in_all())
        .min(options.endpoints * options.dispatch.max_in_flight_per_endpoint as usize);
    let mut runs = Vec::new();
    let mut database = String::new();
    for run in 0..options.runs {
        let (store, dir) = open_database(options.db.as_deref(), run == 0).await?;
        database = describe(&store);
        let url = database_url(options.db.as_deref(), dir.as_ref());
        let figures = pipeline_run(options, &store, &url, run, concurrency).await?;
        store.close().await;
        runs.push(figures);
    }
    Ok(PipelineReport {
        benchmark: "pipeline",
        database,
        mode: options.mode,
        events: options.events,
        endpoints: options.endpoints,
        deliveries: (options.events * options.endpoints) as u64,
        dispatchers: options.dispatchers,
        dispatcher_processes: options.dispatcher_processes,
        sink_latency_ms: u64::try_from(options.sink_latency.as_millis()).unwrap_or(u64::MAX),
        concurrency,
        median: median_run(&runs),
        runs,
        peak_memory_bytes: peak_memory(),
    })
}

impl PipelineOptions {
    /// How many dispatchers deliver, in this process or as processes.
    fn dispatchers_in_all(&self) -> usize {
        if self.dispatcher_processes > 0 {
            self.dispatcher_processes
        } else {
            self.dispatchers
        }
    }
}

/// The sinks, their endpoints and the operator actions of one run.
struct Fixture {
    ops: Ops,
    tenant: String,
    sinks: Vec<SinkHandle>,
    targets: Vec<PreparedTarget>,
}

async fn fixture(
    store: &Store,
    options: &PipelineOptions,
    run: usize,
) -> Result<Fixture, BenchError> {
    let ops = bench_ops(store, &options.dispatch, Source::Cli);
    let tenant = format!("bench-run-{}", run + 1);
    ops.add_tenant(&tenant).await?;
    let mut sinks = Vec::new();
    let mut targets = Vec::new();
    for (sink, endpoint) in sink_endpoints(
        &ops,
        &tenant,
        "sink",
        options.endpoints,
        "bench.*",
        options.sink_latency,
    )
    .await?
    {
        targets.push(PreparedTarget::new(&EndpointTarget {
            id: endpoint.id.clone(),
            url: endpoint.url.clone(),
            secrets: vec![endpoint.secret.clone()],
            timeout_ms: duration_ms(options.dispatch.timeout),
            headers: Vec::new(),
        }));
        sinks.push(sink);
    }
    Ok(Fixture {
        ops,
        tenant,
        sinks,
        targets,
    })
}

/// A small, realistic payload: an appliance catalogue price change.
pub(crate) fn payload(n: usize) -> String {
    format!(
        r#"{{"sku":"WM-{n:06}","brand":"Bosch","price":{{"amount":{}.99,"currency":"EUR"}},"changed_at":"2026-11-23T08:00:00Z"}}"#,
        400 + n % 500
    )
}

/// Publishes `count` events in batches, recording when each was acknowledged.
async fn publish_all(
    fixture: &Fixture,
    count: usize,
    batch: usize,
) -> Result<Vec<(String, i64)>, BenchError> {
    let template = fixture
        .ops
        .validate_event(EventInput {
            tenant: Some(fixture.tenant.clone()),
            topic: "bench.price_changed".to_string(),
            payload: payload(0).into(),
            ..EventInput::default()
        })
        .await?;
    let mut acked = Vec::with_capacity(count);
    for start in (0..count).step_by(batch) {
        let events: Vec<NewEvent> = (start..(start + batch).min(count))
            .map(|n| NewEvent {
                payload: payload(n),
                ..template.clone()
            })
            .collect();
        let published = fixture.ops.publish_batch(&events).await?;
        let at = now_millis();
        acked.extend(published.into_iter().map(|p| (p.event_id, at)));
    }
    Ok(acked)
}

async fn pipeline_run(
    options: &PipelineOptions,
    store: &Store,
    url: &str,
    run: usize,
    concurrency: usize,
) -> Result<PipelineRun, BenchError> {
    let fixture = fixture(store, options, run).await?;
    let total = (options.events * options.endpoints) as u64;
    let mut acked = Vec::new();
    if options.mode == PublishMode::Backlog {
        acked = publish_all(&fixture, options.events, 1000).await?;
    }
    let (seconds, cpu) = if options.dispatcher_processes > 0 {
        deliver_with_processes(options, store, url, &fixture, total).await?
    } else {
        deliver_in_process(options, store, &fixture, total, &mut acked).await?
    };
    let latencies = latencies(&fixture.sinks, &acked);
    let bare = bare_ceiling(
        &fixture,
        &acked,
        concurrency,
        options.dispatch.max_response_body.0,
    )
    .await?;
    for sink in fixture.sinks {
        let _ = sink.shutdown().await;
    }
    let deliveries_per_sec = total as f64 / seconds;
    Ok(PipelineRun {
        deliveries: total,
        seconds,
        deliveries_per_sec,
        latency_p50_ms: percentile(&latencies, 0.50),
        latency_p99_ms: percentile(&latencies, 0.99),
        bare_posts_per_sec: bare,
        ratio: deliveries_per_sec / bare,
        cpu,
    })
}

/// Delivers `total` with dispatchers in this process (publishing meanwhile
/// in `Concurrent` mode); returns the seconds it took and the CPU it cost.
async fn deliver_in_process(
    options: &PipelineOptions,
    store: &Store,
    fixture: &Fixture,
    total: u64,
    acked: &mut Vec<(String, i64)>,
) -> Result<(f64, CpuPerThousand), BenchError> {
    let postgres = server_of(store.database_backend_pid().await?);
    let cpu_before = CpuReading::now(&[], postgres);
    let started = Instant::now();
    let mut dispatchers = Vec::new();
    for _ in 0..options.dispatchers {
        dispatchers.push(RunningDispatcher::start(store, &options.dispatch)?);
    }
    if options.mode == PublishMode::Concurrent {
        // Small batches, as concurrent producers would send them.
        *acked = publish_all(fixture, options.events, 50).await?;
    }
    let finished = wait_for_successes(&dispatchers, total, started).await;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_before.per_thousand(&CpuReading::now(&[], postgres), total);
    for dispatcher in dispatchers {
        dispatcher.stop().await;
    }
    finished?;
    Ok((seconds, cpu))
}

/// Delivers the published backlog with `hookline dispatch` processes of
/// this binary on `url`; the clock runs from their start to the sinks
/// having accepted `total`.
async fn deliver_with_processes(
    options: &PipelineOptions,
    store: &Store,
    url: &str,
    fixture: &Fixture,
    total: u64,
) -> Result<(f64, CpuPerThousand), BenchError> {
    if options.mode == PublishMode::Concurrent {
        return Err(BenchError::Setup(
            "--dispatcher-processes delivers a published backlog: use --mode backlog".to_string(),
        ));
    }
    let postgres = server_of(store.database_backend_pid().await?);
    let cpu_before = CpuReading::now(&[], postgres);
    let started = Instant::now();
    let mut children = DispatcherProcesses::start(options, url)?;
    let accepted = || -> u64 { fixture.sinks.iter().map(|s| s.stats().accepted).sum() };
    let mut progress = Progress::new(total, started);
    let finished = loop {
        let done = accepted();
        if done >= total {
            break Ok(());
        }
        if let Err(stalled) = progress.check(done) {
            break Err(stalled);
        }
        if let Some(exited) = children.exited() {
            break Err(BenchError::Setup(format!(
                "a dispatcher process exited: {exited}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_before.per_thousand(&CpuReading::now(&children.pids(), postgres), total);
    children.stop().await;
    finished?;
    Ok((seconds, cpu))
}

/// `hookline dispatch` processes of this binary, stopped with SIGTERM.
struct DispatcherProcesses {
    children: Vec<tokio::process::Child>,
}

impl DispatcherProcesses {
    fn start(options: &PipelineOptions, url: &str) -> Result<DispatcherProcesses, BenchError> {
        let exe = std::env::current_exe()?;
        let d = &options.dispatch;
        let mut children = Vec::new();
        for _ in 0..options.dispatcher_processes {
            let mut command = tokio::process::Command::new(&exe);
            for (key, _) in std::env::vars() {
                if key.starts_with("HOOKLINE_") {
                    command.env_remove(key);
                }
            }
            let child = command
                .args(["--db", url, "dispatch"])
                .env("HOOKLINE_LOG", "warn")
                .env("HOOKLINE_NETWORK_ALLOW", "127.0.0.1/32")
                .env("HOOKLINE_DISPATCH_CONCURRENCY", d.concurrency.to_string())
                .env(
                    "HOOKLINE_DISPATCH_MAX_IN_FLIGHT_PER_ENDPOINT",
                    d.max_in_flight_per_endpoint.to_string(),
                )
                .env("HOOKLINE_DISPATCH_BATCH_SIZE", d.batch_size.to_string())
                .env("HOOKLINE_DISPATCH_TIMEOUT", format_duration(d.timeout))
                .env("HOOKLINE_DISPATCH_LEASE", format_duration(d.lease))
                .env(
                    "HOOKLINE_DISPATCH_POLL_INTERVAL",
                    format_duration(d.poll_interval),
                )
                .stdout(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()?;
            children.push(child);
        }
        Ok(DispatcherProcesses { children })
    }

    fn pids(&self) -> Vec<u32> {
        self.children.iter().filter_map(|c| c.id()).collect()
    }

    /// How a process that ended early ended, if one did.
    fn exited(&mut self) -> Option<String> {
        self.children
            .iter_mut()
            .find_map(|c| c.try_wait().ok().flatten())
            .map(|status| status.to_string())
    }

    async fn stop(mut self) {
        for pid in self.pids() {
            // SAFETY: kill(2) on a child we started and have not reaped; no memory is involved.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        for child in &mut self.children {
            if tokio::time::timeout(Duration::from_secs(15), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
}

/// A dispatcher running in this process.
pub(crate) struct RunningDispatcher {
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<()>,
    pub(crate) stats: Arc<DispatchStats>,
    /// For publishes in the same process to hand deliveries to it.
    pub(crate) hand_off: HandOff,
}

impl RunningDispatcher {
    pub(crate) fn start(
        store: &Store,
        config: &DispatchConfig,
    ) -> Result<RunningDispatcher, BenchError> {
        let dispatcher = Dispatcher::new(store.clone(), config, super::bench_guard())?;
        let stats = dispatcher.stats();
        let hand_off = dispatcher.hand_off();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(err) = dispatcher.run(shutdown).await {
                tracing::error!(error = %err, "bench dispatcher failed");
            }
        });
        Ok(RunningDispatcher {
            stop,
            handle,
            stats,
            hand_off,
        })
    }

    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.handle.await;
    }
}

/// Waits until the dispatchers have committed `total` successes, or fails
/// when nothing moved for half a minute.
pub(crate) async fn wait_for_successes(
    dispatchers: &[RunningDispatcher],
    total: u64,
    started: Instant,
) -> Result<(), BenchError> {
    let mut progress = Progress::new(total, started);
    loop {
        let done: u64 = dispatchers
            .iter()
            .map(|d| d.stats.succeeded.load(Ordering::Relaxed))
            .sum();
        if done >= total {
            return Ok(());
        }
        progress.check(done)?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Watches a count of deliveries that should keep rising towards `total`.
struct Progress {
    total: u64,
    started: Instant,
    last: u64,
    last_moved: Instant,
}

impl Progress {
    fn new(total: u64, started: Instant) -> Progress {
        Progress {
            total,
            started,
            last: 0,
            last_moved: Instant::now(),
        }
    }

    /// Fails when `done` has not moved for half a minute.
    fn check(&mut self, done: u64) -> Result<(), BenchError> {
        if done != self.last {
            self.last = done;
            self.last_moved = Instant::now();
        } else if self.last_moved.elapsed() > Duration::from_secs(30) {
            return Err(BenchError::Stalled {
                done,
                total: self.total,
                waited: self.started.elapsed(),
            });
        }
        Ok(())
    }
}

/// Publish acknowledged -> first accepted, for every event at every sink.
fn latencies(sinks: &[SinkHandle], acked: &[(String, i64)]) -> Vec<f64> {
    let mut samples = Vec::with_capacity(acked.len() * sinks.len());
    for (event_id, at) in acked {
        for sink in sinks {
            if let Some(arrived) = sink.first_accepted_at(event_id) {
                samples.push((arrived - at).max(0) as f64);
            }
        }
    }
    samples
}

/// POSTs/s for the same requests (same ids, payloads, signatures, client
/// and concurrency) sent straight to the sinks.
async fn bare_ceiling(
    fixture: &Fixture,
    acked: &[(String, i64)],
    concurrency: usize,
    max_response_body: u64,
) -> Result<f64, BenchError> {
    let sender = Sender::new(max_response_body, super::bench_guard())?;
    let targets: Vec<Arc<PreparedTarget>> = fixture.targets.iter().cloned().map(Arc::new).collect();
    let mut requests: Vec<(Arc<PreparedTarget>, String, String)> = Vec::new();
    for (n, (event_id, _)) in acked.iter().enumerate() {
        for target in &targets {
            requests.push((Arc::clone(target), event_id.clone(), payload(n)));
        }
    }
    let total = requests.len();
    let started = Instant::now();
    let mut in_flight = JoinSet::new();
    let mut queue = requests.into_iter();
    let mut failed = 0usize;
    for (target, id, body) in queue.by_ref().take(concurrency) {
        let sender = sender.clone();
        in_flight.spawn(async move {
            sender
                .attempt(&target, &id, BENCH_TOPIC, body)
                .await
                .error_kind
                .is_some()
        });
    }
    while let Some(done) = in_flight.join_next().await {
        failed += usize::from(done.unwrap_or(true));
        if let Some((target, id, body)) = queue.next() {
            let sender = sender.clone();
            in_flight.spawn(async move {
                sender
                    .attempt(&target, &id, BENCH_TOPIC, body)
                    .await
                    .error_kind
                    .is_some()
            });
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    if failed > 0 {
        return Err(BenchError::Setup(format!(
            "{failed} of {total} bare POSTs failed; the sinks are not healthy"
        )));
    }
    Ok(total as f64 / seconds)
}

pub(crate) fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn median_run(runs: &[PipelineRun]) -> PipelineRun {
    PipelineRun {
        deliveries: runs.first().map_or(0, |r| r.deliveries),
        seconds: median(runs.iter().map(|r| r.seconds)),
        deliveries_per_sec: median(runs.iter().map(|r| r.deliveries_per_sec)),
        latency_p50_ms: median(runs.iter().map(|r| r.latency_p50_ms)),
        latency_p99_ms: median(runs.iter().map(|r| r.latency_p99_ms)),
        bare_posts_per_sec: median(runs.iter().map(|r| r.bare_posts_per_sec)),
        ratio: median(runs.iter().map(|r| r.ratio)),
        cpu: CpuPerThousand {
            hookline_ms: median(runs.iter().map(|r| r.cpu.hookline_ms)),
            postgres_ms: runs
                .iter()
                .all(|r| r.cpu.postgres_ms.is_some())
                .then(|| median(runs.iter().filter_map(|r| r.cpu.postgres_ms))),
        },
    }
}

fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Renders a report as the table people read.
pub fn render_pipeline(report: &PipelineReport) -> String {
    let mut out = String::new();
    let dispatchers = match report.dispatcher_processes {
        0 => format!("{} dispatcher(s)", report.dispatchers),
        n => format!("{n} dispatcher processes"),
    };
    out.push_str(&format!(
        "bench pipeline: {} events x {} endpoints = {} deliveries; {:?} publishing; {dispatchers}; {} in flight; sinks answer after {} ms\n",
        report.events, report.endpoints, report.deliveries, report.mode, report.concurrency, report.sink_latency_ms
    ));
    out.push_str(&format!("database: {}\n\n", report.database));
    out.push_str("run     deliveries/s  bare POST/s   ratio   p50 ms   p99 ms   seconds   CPU ms/1k: hookline  database\n");
    let row = |label: &str, r: &PipelineRun| {
        let database = r
            .cpu
            .postgres_ms
            .map_or_else(|| "-".to_string(), |ms| format!("{ms:.0}"));
        format!(
            "{label:<7} {:>12.0}  {:>11.0}  {:>6.1}%  {:>7.1}  {:>7.1}  {:>8.2}  {:>19.0}  {:>8}\n",
            r.deliveries_per_sec,
            r.bare_posts_per_sec,
            r.ratio * 100.0,
            r.latency_p50_ms,
            r.latency_p99_ms,
            r.seconds,
            r.cpu.hookline_ms,
            database,
        )
    };
    for (i, run) in report.runs.iter().enumerate() {
        out.push_str(&row(&format!("{}", i + 1), run));
    }
    out.push_str(&row("median", &report.median));
    if let Some(bytes) = report.peak_memory_bytes {
        out.push_str(&format!(
            "\npeak memory: {:.1} MiB\n",
            bytes as f64 / 1_048_576.0
        ));
    }
    out
}
