//! `hookline bench soak`: hookline running for a while at a steady rate with
//! a tiny retention, to show that the database stays the size of its
//! retention window and that pruning costs delivery little. A publisher in
//! this process publishes `--rate` events/s (each to every sink endpoint,
//! handed to the dispatcher as `serve` does), the dispatcher delivers them,
//! and a pruner removes what has outlived the policy. Every `--every` it
//! prints the live size, the rows of the three growing tables, rows pruned
//! and created per second, and publish->delivered latency of the events
//! published in that interval. `--compare` runs without and with pruning,
//! interleaved, three pairs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{
    BenchError, RunningDispatcher, bench_ops, describe, median, open_database, payload,
    peak_memory, percentile, sink_endpoints,
};
use crate::config::{DispatchConfig, RetentionConfig};
use crate::model::{Source, now_millis};
use crate::ops::{EventInput, Ops};
use crate::sink::SinkHandle;
use crate::store::Store;

/// Intervals at the start of a run left out of its summary: the tables
/// fill up to the retention window first.
const WARM_UP: usize = 2;
/// How often the publisher publishes what has come due (one batch each).
const PUBLISH_EVERY: Duration = Duration::from_millis(20);

/// What `bench soak` runs.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub duration: Duration,
    /// Events/s, each to every endpoint.
    pub rate: f64,
    pub endpoints: usize,
    /// How often a line of figures is taken.
    pub every: Duration,
    /// Without and with pruning, interleaved, three pairs.
    pub compare: bool,
    /// Database URL; `None` uses a fresh SQLite file per run.
    pub db: Option<String>,
    pub dispatch: DispatchConfig,
}

impl SoakOptions {
    /// The tiny retention a soak prunes by: a minute for delivered events,
    /// two for dead ones, looked at every five seconds.
    pub fn retention() -> RetentionConfig {
        RetentionConfig {
            succeeded: Duration::from_secs(60),
            dead: Duration::from_secs(120),
            health: Duration::from_secs(120),
            interval: Duration::from_secs(5),
            ..RetentionConfig::default()
        }
    }
}

/// One line of a run.
#[derive(Debug, Clone, Serialize)]
pub struct SoakInterval {
    /// Seconds since the run started, at the end of the interval.
    pub at_s: f64,
    pub live_bytes: i64,
    /// SQLite: the write-ahead log's size at the end of the interval.
    pub wal_bytes: Option<i64>,
    pub events: i64,
    pub deliveries: i64,
    pub attempts: i64,
    /// Rows removed per second in the interval (events, deliveries, attempts).
    pub pruned_per_sec: f64,
    /// Rows written per second in the interval (the same three tables).
    pub created_per_sec: f64,
    /// Publish acknowledged -> first accepted at the sink, for the events
    /// published in the interval.
    pub delivered_p50_ms: f64,
    pub delivered_p99_ms: f64,
}

/// One run, with or without pruning.
#[derive(Debug, Clone, Serialize)]
pub struct SoakRun {
    pub pruning: bool,
    pub intervals: Vec<SoakInterval>,
    /// After the warm-up: the live size's median, and how far the
    /// smallest and largest interval were from it (fractions).
    pub size_median_bytes: i64,
    pub size_below: f64,
    pub size_above: f64,
    /// After the warm-up: rows pruned and created per second, in all.
    pub pruned_per_sec: f64,
    pub created_per_sec: f64,
    /// After the warm-up, over every delivery.
    pub delivered_p50_ms: f64,
    pub delivered_p99_ms: f64,
}

/// What `bench soak` found.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub benchmark: &'static str,
    pub database: String,
    pub rate: f64,
    pub endpoints: usize,
    pub duration_s: f64,
    pub runs: Vec<SoakRun>,
    /// With `--compare`: the median over the pairs of (with pruning) /
    /// (without) for p50 and p99.
    pub p50_ratio: Option<f64>,
    pub p99_ratio: Option<f64>,
    pub peak_memory_bytes: Option<u64>,
}

pub async fn run(options: &SoakOptions) -> Result<SoakReport, BenchError> {
    if !(options.rate > 0.0 && options.rate.is_finite()) || options.endpoints == 0 {
        return Err(BenchError::Setup(
            "rate must be a positive number and endpoints at least 1".to_string(),
        ));
    }
    if options.every.is_zero() || options.duration < options.every {
        return Err(BenchError::Setup(
            "every must be at least 1s and duration at least one interval".to_string(),
        ));
    }
    crate::dispatch::send::install_crypto_provider();
    let plan: Vec<bool> = if options.compare {
        [false, true].repeat(3)
    } else {
        vec![true]
    };
    let mut runs = Vec::new();
    let mut database = String::new();
    for (n, pruning) in plan.into_iter().enumerate() {
        let (store, _dir) = open_database(options.db.as_deref(), n == 0).await?;
        database = describe(&store);
        runs.push(one_run(options, &store, n, pruning).await?);
        store.close().await;
    }
    let ratio = |figure: fn(&SoakRun) -> f64| {
        options.compare.then(|| {
            median(
                runs.chunks(2)
                    .map(|pair| figure(&pair[1]) / figure(&pair[0]).max(0.001)),
            )
        })
    };
    Ok(SoakReport {
        benchmark: "soak",
        database,
        rate: options.rate,
        endpoints: options.endpoints,
        duration_s: options.duration.as_secs_f64(),
        p50_ratio: ratio(|r| r.delivered_p50_ms),
        p99_ratio: ratio(|r| r.delivered_p99_ms),
        runs,
        peak_memory_bytes: peak_memory(),
    })
}

/// Events published in one interval: id and when the publish was acknowledged.
type Published = Vec<(String, i64)>;

async fn one_run(
    options: &SoakOptions,
    store: &Store,
    n: usize,
    pruning: bool,
) -> Result<SoakRun, BenchError> {
    let policy = SoakOptions::retention();
    let owner = format!("bench-soak-{n}");
    if pruning {
        // What an earlier run in this database left is not this run's work.
        crate::prune::prune_once(store, &policy, false)
            .await
            .map_err(|e| BenchError::Setup(e.to_string()))?;
    }
    let ops = bench_ops(store, &options.dispatch, Source::Api);
    let tenant = format!("bench-soak-{}", n + 1);
    ops.add_tenant(&tenant).await?;
    let sinks: Vec<SinkHandle> = sink_endpoints(
        &ops,
        &tenant,
        "sink",
        options.endpoints,
        "bench.*",
        Duration::ZERO,
    )
    .await?
    .into_iter()
    .map(|(sink, _)| sink)
    .collect();
    let dispatcher = RunningDispatcher::start(store, &options.dispatch)?;
    let ops = ops.handing_off_to(dispatcher.hand_off.clone());
    let pruned = Arc::new(AtomicU64::new(0));
    let pruner = pruning.then(|| spawn_pruner(store.clone(), policy, owner, Arc::clone(&pruned)));

    let started = Instant::now();
    let mut intervals: Vec<SoakInterval> = Vec::new();
    let mut waiting: Option<Published> = None;
    let mut last_rows = table_rows(store).await?;
    let mut last_pruned = 0;
    let mut sent = 0usize;
    let mut latencies_all = Vec::new();
    while started.elapsed() < options.duration {
        let interval_start = Instant::now();
        let mut published = Published::new();
        while interval_start.elapsed() < options.every {
            let due = (options.rate * started.elapsed().as_secs_f64()) as usize;
            if due > sent {
                published.extend(publish(&ops, &tenant, sent, due - sent).await?);
                sent = due;
            }
            tokio::time::sleep(PUBLISH_EVERY).await;
        }
        // The interval before this one has had a whole interval to arrive:
        // its figures go on its own line.
        if let (Some(earlier), Some(line)) = (waiting.take(), intervals.last_mut()) {
            let samples = latencies(&sinks, &earlier);
            line.delivered_p50_ms = percentile(&samples, 0.50);
            line.delivered_p99_ms = percentile(&samples, 0.99);
            if intervals.len() > WARM_UP {
                latencies_all.extend_from_slice(&samples);
            }
        }
        waiting = Some(published);
        let rows = table_rows(store).await?;
        let pruned_now = pruned.load(Ordering::Relaxed);
        let seconds = interval_start.elapsed().as_secs_f64();
        let removed = (pruned_now - last_pruned) as f64;
        let grown = (rows.iter().sum::<i64>() - last_rows.iter().sum::<i64>()) as f64;
        intervals.push(SoakInterval {
            at_s: started.elapsed().as_secs_f64(),
            live_bytes: store.live_size().await?,
            wal_bytes: store.wal_bytes(),
            events: rows[0],
            deliveries: rows[1],
            attempts: rows[2],
            pruned_per_sec: removed / seconds,
            created_per_sec: (grown + removed) / seconds,
            delivered_p50_ms: 0.0,
            delivered_p99_ms: 0.0,
        });
        last_rows = rows;
        last_pruned = pruned_now;
    }
    // The last interval's deliveries get as long as any other's to arrive.
    tokio::time::sleep(options.every.min(Duration::from_secs(10))).await;
    if let (Some(last), Some(line)) = (waiting.take(), intervals.last_mut()) {
        let samples = latencies(&sinks, &last);
        line.delivered_p50_ms = percentile(&samples, 0.50);
        line.delivered_p99_ms = percentile(&samples, 0.99);
        latencies_all.extend_from_slice(&samples);
    }
    if let Some(pruner) = pruner {
        pruner.abort();
    }
    dispatcher.stop().await;
    for sink in sinks {
        let _ = sink.shutdown().await;
    }
    Ok(summarise(pruning, intervals, &latencies_all))
}

/// Publishes `count` events numbered from `first` in one batch.
async fn publish(
    ops: &Ops,
    tenant: &str,
    first: usize,
    count: usize,
) -> Result<Published, BenchError> {
    let mut events = Vec::with_capacity(count);
    for n in first..first + count {
        let input = EventInput {
            tenant: Some(tenant.to_string()),
            topic: "bench.price_changed".to_string(),
            payload: payload(n).into(),
            ..EventInput::default()
        };
        events.push(ops.validate_event(input).await?);
    }
    let published = ops.publish_batch(&events).await?;
    let at = now_millis();
    Ok(published.into_iter().map(|p| (p.event_id, at)).collect())
}

/// Runs a pruner as `dispatch` does, every `policy.interval`, counting the
/// rows of the three growing tables it removes.
fn spawn_pruner(
    store: Store,
    policy: RetentionConfig,
    owner: String,
    pruned: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(policy.interval).await;
            match store.take_pruner_lease(&owner).await {
                Ok(true) => match store.prune(&policy, &owner, false).await {
                    Ok(report) => {
                        let rows = report.events + report.deliveries + report.attempts;
                        pruned.fetch_add(rows, Ordering::Relaxed);
                    }
                    Err(err) => tracing::warn!(error = %err, "soak: prune failed"),
                },
                Ok(false) => {}
                Err(err) => tracing::warn!(error = %err, "soak: lease failed"),
            }
        }
    })
}

/// Rows of events, deliveries and attempts.
async fn table_rows(store: &Store) -> Result<[i64; 3], BenchError> {
    Ok(store.growing_table_rows().await?)
}

/// Publish acknowledged -> first accepted, for every event at every sink.
fn latencies(sinks: &[SinkHandle], published: &Published) -> Vec<f64> {
    let mut samples = Vec::with_capacity(published.len() * sinks.len());
    for (event_id, at) in published {
        for sink in sinks {
            if let Some(arrived) = sink.first_accepted_at(event_id) {
                samples.push((arrived - at).max(0) as f64);
            }
        }
    }
    samples
}

fn summarise(pruning: bool, intervals: Vec<SoakInterval>, latencies: &[f64]) -> SoakRun {
    let steady: Vec<&SoakInterval> = intervals.iter().skip(WARM_UP).collect();
    let steady = if steady.is_empty() {
        intervals.iter().collect()
    } else {
        steady
    };
    let sizes: Vec<f64> = steady.iter().map(|i| i.live_bytes as f64).collect();
    let size_median = median(sizes.iter().copied());
    let spread = |pick: fn(f64, f64) -> f64| {
        sizes
            .iter()
            .copied()
            .reduce(pick)
            .map_or(0.0, |s| (s - size_median) / size_median.max(1.0))
    };
    let mean = |figure: fn(&SoakInterval) -> f64| {
        steady.iter().map(|i| figure(i)).sum::<f64>() / steady.len().max(1) as f64
    };
    SoakRun {
        pruning,
        size_median_bytes: size_median as i64,
        size_below: spread(f64::min),
        size_above: spread(f64::max),
        pruned_per_sec: mean(|i| i.pruned_per_sec),
        created_per_sec: mean(|i| i.created_per_sec),
        delivered_p50_ms: percentile(latencies, 0.50),
        delivered_p99_ms: percentile(latencies, 0.99),
        intervals,
    }
}

/// The report as people read it: each run's lines, then its summary.
pub fn render(report: &SoakReport) -> String {
    let mut out = format!(
        "bench soak: {} events/s to {} endpoints for {:.0}s, {}\n\
         retention: delivered 1m, dead 2m, pruned every 5s\n",
        report.rate, report.endpoints, report.duration_s, report.database
    );
    for run in &report.runs {
        let wal = run.intervals.iter().any(|i| i.wal_bytes.is_some());
        out.push_str(&format!(
            "\npruning {}\n{:>7} {:>10}{} {:>9} {:>11} {:>10} {:>9} {:>10} {:>16}\n",
            if run.pruning { "on" } else { "off" },
            "at s",
            "live MiB",
            if wal {
                format!(" {:>8}", "wal MiB")
            } else {
                String::new()
            },
            "events",
            "deliveries",
            "attempts",
            "pruned/s",
            "created/s",
            "p50 / p99 ms"
        ));
        for i in &run.intervals {
            out.push_str(&format!(
                "{:>7.0} {:>10.1}{} {:>9} {:>11} {:>10} {:>9.0} {:>10.0} {:>16}\n",
                i.at_s,
                i.live_bytes as f64 / 1_048_576.0,
                i.wal_bytes
                    .map(|b| format!(" {:>8.1}", b as f64 / 1_048_576.0))
                    .unwrap_or_default(),
                i.events,
                i.deliveries,
                i.attempts,
                i.pruned_per_sec,
                i.created_per_sec,
                format!("{:.0} / {:.0}", i.delivered_p50_ms, i.delivered_p99_ms)
            ));
        }
        out.push_str(&format!(
            "after the first {WARM_UP} intervals: live size median {:.1} MiB ({:+.0} % / {:+.0} %), pruned {:.0} rows/s against {:.0} created, delivered p50 {:.0} ms, p99 {:.0} ms\n",
            run.size_median_bytes as f64 / 1_048_576.0,
            run.size_below * 100.0,
            run.size_above * 100.0,
            run.pruned_per_sec,
            run.created_per_sec,
            run.delivered_p50_ms,
            run.delivered_p99_ms
        ));
    }
    if let (Some(p50), Some(p99)) = (report.p50_ratio, report.p99_ratio) {
        out.push_str(&format!(
            "\nwith pruning / without (median of 3 pairs): p50 {p50:.2}x, p99 {p99:.2}x\n"
        ));
    }
    out
}
