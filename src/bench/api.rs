//! `hookline bench api`: the producer's view of hookline. `serve` runs in
//! this process (the HTTP API with its group commit, and a dispatcher) on a
//! free 127.0.0.1 port; concurrent publishers POST events over real HTTP,
//! each waiting for its `202` (the event durably committed) before sending
//! the next; local sinks receive the deliveries. It reports deliveries/s
//! end to end, publish round trips, and publish->delivered latency: from
//! the moment a publisher sent its request to the moment a sink accepted
//! the delivery.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{
    BenchError, RunningDispatcher, bench_ops, describe, median, open_database, payload,
    peak_memory, percentile, sink_endpoints,
};
use crate::api::{ApiOptions, RunningApi};
use crate::config::DispatchConfig;
use crate::model::{Source, now_millis};
use crate::ops::Ops;
use crate::sink::SinkHandle;
use crate::store::Store;

/// What `bench api` runs.
#[derive(Debug, Clone)]
pub struct ApiBenchOptions {
    /// Concurrent HTTP publishers, each with one request in flight.
    pub publishers: usize,
    pub events: usize,
    /// Sink endpoints; every event fans out to all of them.
    pub endpoints: usize,
    pub runs: usize,
    /// Database URL; `None` uses a fresh SQLite file per run in a temp dir.
    pub db: Option<String>,
    /// Events/s all publishers together keep to (open loop); `None`: as fast
    /// as answers come back.
    pub rate: Option<f64>,
    pub dispatch: DispatchConfig,
}

/// One run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ApiRun {
    pub deliveries: u64,
    /// First request sent -> last delivery committed as delivered.
    pub seconds: f64,
    pub deliveries_per_sec: f64,
    /// Events accepted (202) per second while publishing.
    pub events_per_sec: f64,
    /// One publish's HTTP round trip (request sent -> 202 read).
    pub publish_p50_ms: f64,
    pub publish_p99_ms: f64,
    /// Request sent -> first accepted at the sink, over every delivery.
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    /// Events per group-commit transaction, on average.
    pub events_per_commit: f64,
    /// Share of deliveries handed straight to the dispatcher at publish, in
    /// percent (the rest were queued and claimed).
    pub handed_off_pct: f64,
}

/// Everything `bench api` reports.
#[derive(Debug, Clone, Serialize)]
pub struct ApiReport {
    pub benchmark: &'static str,
    pub database: String,
    pub publishers: usize,
    pub events: usize,
    pub endpoints: usize,
    pub deliveries: u64,
    pub rate: Option<f64>,
    pub runs: Vec<ApiRun>,
    /// Per-figure medians over the runs.
    pub median: ApiRun,
    /// Peak resident memory of this process (API, dispatcher, sinks, publishers).
    pub peak_memory_bytes: Option<u64>,
}

/// Runs the API benchmark.
pub async fn run(options: &ApiBenchOptions) -> Result<ApiReport, BenchError> {
    if options.publishers == 0 || options.events == 0 || options.endpoints == 0 || options.runs == 0
    {
        return Err(BenchError::Setup(
            "publishers, events, endpoints and runs must all be at least 1".to_string(),
        ));
    }
    if options.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err(BenchError::Setup(
            "rate must be a positive number".to_string(),
        ));
    }
    crate::dispatch::send::install_crypto_provider();
    let mut runs = Vec::new();
    let mut database = String::new();
    for run in 0..options.runs {
        let (store, _dir) = open_database(options.db.as_deref(), run == 0).await?;
        database = describe(&store);
        let figures = one_run(options, &store, run).await?;
        store.close().await;
        runs.push(figures);
    }
    Ok(ApiReport {
        benchmark: "api",
        database,
        publishers: options.publishers,
        events: options.events,
        endpoints: options.endpoints,
        deliveries: (options.events * options.endpoints) as u64,
        rate: options.rate,
        median: median_run(&runs),
        runs,
        peak_memory_bytes: peak_memory(),
    })
}

/// The sinks and endpoints of one run, and an admin key for the publishers.
struct Fixture {
    tenant: String,
    key: String,
    sinks: Vec<SinkHandle>,
}

async fn fixture(ops: &Ops, endpoints: usize, run: usize) -> Result<Fixture, BenchError> {
    let tenant = format!("bench-api-{}", run + 1);
    ops.add_tenant(&tenant).await?;
    let sinks = sink_endpoints(ops, &tenant, "sink", endpoints, "bench.*", Duration::ZERO)
        .await?
        .into_iter()
        .map(|(sink, _)| sink)
        .collect();
    let (_, key) = ops
        .create_api_key(&format!("bench-publisher-{}", run + 1), None, None)
        .await?;
    Ok(Fixture { tenant, key, sinks })
}

async fn one_run(
    options: &ApiBenchOptions,
    store: &Store,
    run: usize,
) -> Result<ApiRun, BenchError> {
    let ops = bench_ops(store, &options.dispatch, Source::Api);
    let fixture = fixture(&ops, options.endpoints, run).await?;
    let dispatcher = RunningDispatcher::start(store, &options.dispatch)?;
    let api = crate::api::start(
        ops.handing_off_to(dispatcher.hand_off.clone()),
        &ApiOptions {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            open_health_metrics: false,
            alive_within: std::time::Duration::from_secs(5),
        },
    )
    .await
    .map_err(|e| BenchError::Setup(e.to_string()))?;
    let total = (options.events * options.endpoints) as u64;

    let started = Instant::now();
    let published = publish_all(options, &api, &fixture).await;
    let publish_seconds = started.elapsed().as_secs_f64();
    let finished = match &published {
        Ok(_) => super::wait_for_successes(std::slice::from_ref(&dispatcher), total, started).await,
        Err(_) => Ok(()),
    };
    let seconds = started.elapsed().as_secs_f64();
    let batches = api.stats.batches.load(Ordering::Relaxed);
    let committed = api.stats.events.load(Ordering::Relaxed);
    let handed_off = dispatcher.stats.handed_off.load(Ordering::Relaxed);
    dispatcher.stop().await;
    let _ = api.stop().await;
    let published = published?;
    finished?;

    let round_trips: Vec<f64> = published.iter().map(|p| p.round_trip_ms).collect();
    let latencies = latencies(&fixture.sinks, &published);
    for sink in fixture.sinks {
        let _ = sink.shutdown().await;
    }
    Ok(ApiRun {
        deliveries: total,
        seconds,
        deliveries_per_sec: total as f64 / seconds,
        events_per_sec: published.len() as f64 / publish_seconds,
        publish_p50_ms: percentile(&round_trips, 0.50),
        publish_p99_ms: percentile(&round_trips, 0.99),
        latency_p50_ms: percentile(&latencies, 0.50),
        latency_p99_ms: percentile(&latencies, 0.99),
        events_per_commit: committed as f64 / batches.max(1) as f64,
        handed_off_pct: 100.0 * handed_off as f64 / total.max(1) as f64,
    })
}

/// One acknowledged publish.
struct Sent {
    event_id: String,
    /// Unix ms when the request was sent.
    sent_at: i64,
    round_trip_ms: f64,
}

/// Runs the publishers until `options.events` events are acknowledged.
async fn publish_all(
    options: &ApiBenchOptions,
    api: &RunningApi,
    fixture: &Fixture,
) -> Result<Vec<Sent>, BenchError> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.publishers)
        .build()
        .map_err(|e| BenchError::Setup(format!("HTTP client: {e}")))?;
    let shared = Arc::new(Publishing {
        client,
        url: format!("{}/v1/events", api.url()),
        auth: format!("Bearer {}", fixture.key),
        tenant: fixture.tenant.clone(),
        next: AtomicUsize::new(0),
        events: options.events,
        rate: options.rate,
        start: Instant::now(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..options.publishers {
        let shared = Arc::clone(&shared);
        tasks.spawn(async move { shared.publish_until_done().await });
    }
    let mut sent = Vec::with_capacity(options.events);
    let mut failure = None;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(records)) => sent.extend(records),
            Ok(Err(err)) => failure = Some(err),
            Err(join) => failure = Some(BenchError::Setup(format!("publisher task: {join}"))),
        }
    }
    match failure {
        Some(err) => Err(err),
        None => Ok(sent),
    }
}

/// What the publishers share.
struct Publishing {
    client: reqwest::Client,
    url: String,
    auth: String,
    tenant: String,
    next: AtomicUsize,
    events: usize,
    rate: Option<f64>,
    start: Instant,
}

impl Publishing {
    /// Takes event numbers until none are left; one request in flight at a time.
    async fn publish_until_done(&self) -> Result<Vec<Sent>, BenchError> {
        let mut sent = Vec::new();
        loop {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            if n >= self.events {
                return Ok(sent);
            }
            if let Some(rate) = self.rate {
                let due = self.start + Duration::from_secs_f64(n as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
            }
            let body = format!(
                r#"{{"tenant":"{}","topic":"bench.price_changed","payload":{}}}"#,
                self.tenant,
                payload(n)
            );
            let sent_at = now_millis();
            let clock = Instant::now();
            let response = self
                .client
                .post(&self.url)
                .header("authorization", &self.auth)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map_err(|e| BenchError::Setup(format!("publish: {e}")))?;
            let status = response.status();
            let bytes = response
                .bytes()
                .await
                .map_err(|e| BenchError::Setup(format!("publish answer: {e}")))?;
            let round_trip_ms = clock.elapsed().as_secs_f64() * 1000.0;
            if status.as_u16() != 202 {
                return Err(BenchError::Setup(format!(
                    "publish answered {status}: {}",
                    String::from_utf8_lossy(&bytes)
                )));
            }
            let answer: crate::api::PublishResponse = serde_json::from_slice(&bytes)
                .map_err(|e| BenchError::Setup(format!("publish answer: {e}")))?;
            sent.push(Sent {
                event_id: answer.id,
                sent_at,
                round_trip_ms,
            });
        }
    }
}

/// Request sent -> first accepted, for every event at every sink.
fn latencies(sinks: &[SinkHandle], sent: &[Sent]) -> Vec<f64> {
    let mut samples = Vec::with_capacity(sent.len() * sinks.len());
    for publish in sent {
        for sink in sinks {
            if let Some(arrived) = sink.first_accepted_at(&publish.event_id) {
                samples.push((arrived - publish.sent_at).max(0) as f64);
            }
        }
    }
    samples
}

fn median_run(runs: &[ApiRun]) -> ApiRun {
    ApiRun {
        deliveries: runs.first().map_or(0, |r| r.deliveries),
        seconds: median(runs.iter().map(|r| r.seconds)),
        deliveries_per_sec: median(runs.iter().map(|r| r.deliveries_per_sec)),
        events_per_sec: median(runs.iter().map(|r| r.events_per_sec)),
        publish_p50_ms: median(runs.iter().map(|r| r.publish_p50_ms)),
        publish_p99_ms: median(runs.iter().map(|r| r.publish_p99_ms)),
        latency_p50_ms: median(runs.iter().map(|r| r.latency_p50_ms)),
        latency_p99_ms: median(runs.iter().map(|r| r.latency_p99_ms)),
        events_per_commit: median(runs.iter().map(|r| r.events_per_commit)),
        handed_off_pct: median(runs.iter().map(|r| r.handed_off_pct)),
    }
}

/// Renders a report as the table people read.
pub fn render(report: &ApiReport) -> String {
    let mut out = String::new();
    let rate = report.rate.map_or("as fast as answered".to_string(), |r| {
        format!("{r:.0} events/s")
    });
    out.push_str(&format!(
        "bench api: {} events x {} endpoints = {} deliveries; {} publishers over HTTP ({rate})\n",
        report.events, report.endpoints, report.deliveries, report.publishers
    ));
    out.push_str(&format!("database: {}\n\n", report.database));
    out.push_str(
        "run     deliveries/s  events/s  publish p50/p99 ms  delivered p50/p99 ms  events/commit  handed off  seconds\n",
    );
    let row = |label: &str, r: &ApiRun| {
        format!(
            "{label:<7} {:>12.0}  {:>8.0}  {:>8.1} / {:<8.1}  {:>9.1} / {:<9.1}  {:>13.1}  {:>9.0} %  {:>7.2}\n",
            r.deliveries_per_sec,
            r.events_per_sec,
            r.publish_p50_ms,
            r.publish_p99_ms,
            r.latency_p50_ms,
            r.latency_p99_ms,
            r.events_per_commit,
            r.handed_off_pct,
            r.seconds
        )
    };
    for (i, run) in report.runs.iter().enumerate() {
        out.push_str(&row(&format!("{}", i + 1), run));
    }
    out.push_str(&row("median", &report.median));
    if let Some(note) = queueing_note(report) {
        out.push_str(&note);
    }
    if let Some(bytes) = report.peak_memory_bytes {
        out.push_str(&format!(
            "\npeak memory: {:.1} MiB\n",
            bytes as f64 / 1_048_576.0
        ));
    }
    out
}

/// When the publishers offered more than was delivered, the delivered
/// latency is mostly time spent queued, not the pipeline's: says so, and
/// which steady rate would measure the latter.
fn queueing_note(report: &ApiReport) -> Option<String> {
    let median = &report.median;
    let offered = median.events_per_sec * report.endpoints as f64;
    if offered <= median.deliveries_per_sec * 1.05 {
        return None;
    }
    let steady_events = (median.deliveries_per_sec * 0.8 / report.endpoints as f64 / 100.0)
        .floor()
        .max(1.0)
        * 100.0;
    Some(format!(
        "\nnote: publishing offered {offered:.0} deliveries/s and {:.0}/s were delivered, so \
         the delivered latency above is mostly time queued; `--rate {steady_events:.0}` \
         measures it at a steady rate the dispatcher keeps up with\n",
        median.deliveries_per_sec
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(events_per_sec: f64, deliveries_per_sec: f64) -> ApiReport {
        let run = ApiRun {
            deliveries: 200_000,
            seconds: 12.0,
            deliveries_per_sec,
            events_per_sec,
            publish_p50_ms: 11.0,
            publish_p99_ms: 25.0,
            latency_p50_ms: 3_500.0,
            latency_p99_ms: 3_800.0,
            events_per_commit: 30.0,
            handed_off_pct: 0.0,
        };
        ApiReport {
            benchmark: "api",
            database: "sqlite (bench.db)".to_string(),
            publishers: 32,
            events: 20_000,
            endpoints: 10,
            deliveries: 200_000,
            rate: None,
            runs: vec![run.clone()],
            median: run,
            peak_memory_bytes: None,
        }
    }

    #[test]
    fn a_run_whose_publishers_outran_delivery_says_its_latency_is_queueing() {
        let rendered = render(&report(2_400.0, 16_000.0));
        assert!(
            rendered.contains("offered 24000 deliveries/s and 16000/s were delivered"),
            "{rendered}"
        );
        assert!(rendered.contains("`--rate 1200`"), "{rendered}");
    }

    #[test]
    fn a_run_that_kept_up_has_no_queueing_note() {
        let rendered = render(&report(1_000.0, 9_994.0));
        assert!(!rendered.contains("note:"), "{rendered}");
    }
}
