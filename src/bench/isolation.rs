//! `bench isolation`: does one endpoint that times out, with a huge backlog,
//! slow down everyone else? Healthy endpoints' publish->delivered latency is
//! measured twice — alone, then beside the bad endpoint — and compared.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{
    BenchError, RunningDispatcher, bench_ops, describe, open_database, percentile,
    publish_steadily, sink_endpoints, wait_for_accepted,
};
use crate::config::DispatchConfig;
use crate::model::Source;
use crate::ops::{EndpointInput, EventInput, Ops};
use crate::sink::{SinkHandle, SinkOptions};
use crate::store::{NewEvent, Store};

/// Healthy endpoints, as the issue sets the scene.
const HEALTHY: usize = 9;
/// How often the steady stream publishes a batch.
const PUBLISH_TICK: Duration = Duration::from_millis(20);
/// A run fails when no healthy delivery arrived for this long.
const STALL: Duration = Duration::from_secs(30);
/// Most the p99 may grow beside the bad endpoint, per the target.
const TARGET_RATIO: f64 = 2.0;

/// What `bench isolation` runs.
#[derive(Debug, Clone)]
pub struct IsolationOptions {
    /// Events in the steady stream; each goes to every healthy endpoint.
    pub events: usize,
    /// Events a second in the steady stream.
    pub rate: f64,
    /// Deliveries waiting for the bad endpoint before the stream starts.
    pub backlog: usize,
    /// How long the bad endpoint's receiver takes to answer.
    pub bad_latency: Duration,
    /// The bad endpoint's attempt timeout (shorter than its latency: it times out).
    pub bad_timeout: Duration,
    /// Database URL (must be empty); a fresh SQLite file per scenario when absent.
    pub db: Option<String>,
    pub dispatch: DispatchConfig,
}

/// One scenario's figures for the healthy endpoints.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub name: &'static str,
    pub healthy_deliveries: u64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub seconds: f64,
    /// Attempts made to the bad endpoint meanwhile (0 without it).
    pub bad_attempts: u64,
}

/// Everything `bench isolation` reports.
#[derive(Debug, Clone, Serialize)]
pub struct IsolationReport {
    pub benchmark: &'static str,
    pub database: String,
    pub events: usize,
    pub rate: f64,
    pub backlog: usize,
    pub bad_latency_ms: u64,
    pub bad_timeout_ms: u64,
    pub alone: Scenario,
    pub beside_bad: Scenario,
    /// `beside_bad.latency_p99_ms / alone.latency_p99_ms`.
    pub p99_ratio: f64,
    /// Whether the ratio is within the target (2x).
    pub within_target: bool,
}

/// Runs both scenarios and compares them.
pub async fn isolation(options: &IsolationOptions) -> Result<IsolationReport, BenchError> {
    if options.events == 0 || options.rate.is_nan() || options.rate <= 0.0 {
        return Err(BenchError::Setup(
            "events and rate must be more than 0".to_string(),
        ));
    }
    let (store, _dir) = open_database(options.db.as_deref(), true).await?;
    let database = describe(&store);
    let alone = scenario(options, &store, "alone", false).await?;
    store.close().await;
    let (store, _dir2) = open_database(options.db.as_deref(), false).await?;
    let beside_bad = scenario(options, &store, "beside_bad", true).await?;
    store.close().await;
    let p99_ratio = if alone.latency_p99_ms > 0.0 {
        beside_bad.latency_p99_ms / alone.latency_p99_ms
    } else {
        0.0
    };
    Ok(IsolationReport {
        benchmark: "isolation",
        database,
        events: options.events,
        rate: options.rate,
        backlog: options.backlog,
        bad_latency_ms: options.bad_latency.as_millis() as u64,
        bad_timeout_ms: options.bad_timeout.as_millis() as u64,
        alone,
        beside_bad,
        p99_ratio,
        within_target: p99_ratio <= TARGET_RATIO,
    })
}

/// The healthy endpoints' sinks, and the bad one's if present.
struct Stage {
    ops: Ops,
    tenant: String,
    healthy: Vec<SinkHandle>,
    bad: Option<SinkHandle>,
}

async fn stage(
    options: &IsolationOptions,
    store: &Store,
    name: &str,
    with_bad: bool,
) -> Result<Stage, BenchError> {
    let ops = bench_ops(store, &options.dispatch, Source::Cli);
    let tenant = format!("isolation-{name}");
    ops.add_tenant(&tenant).await?;
    let healthy = sink_endpoints(&ops, &tenant, "healthy", HEALTHY, "good.*", Duration::ZERO)
        .await?
        .into_iter()
        .map(|(sink, _)| sink)
        .collect();
    let bad = if with_bad {
        let sink = crate::sink::start(SinkOptions {
            latency: options.bad_latency,
            ..SinkOptions::default()
        })
        .await?;
        let endpoint = ops
            .add_endpoint(&EndpointInput {
                tenant: tenant.clone(),
                name: "timing-out".to_string(),
                url: sink.url(),
                timeout: Some(options.bad_timeout),
                ..EndpointInput::default()
            })
            .await?;
        ops.add_subscription(&endpoint.id, "bad.*", None).await?;
        Some(sink)
    } else {
        None
    };
    Ok(Stage {
        ops,
        tenant,
        healthy,
        bad,
    })
}

/// A template event for `topic`, validated once; copies differ in payload.
async fn template(stage: &Stage, topic: &str) -> Result<NewEvent, BenchError> {
    Ok(stage
        .ops
        .validate_event(EventInput {
            tenant: Some(stage.tenant.clone()),
            topic: topic.to_string(),
            payload: super::payload(0).into(),
            ..EventInput::default()
        })
        .await?)
}

async fn scenario(
    options: &IsolationOptions,
    store: &Store,
    name: &'static str,
    with_bad: bool,
) -> Result<Scenario, BenchError> {
    let stage = stage(options, store, name, with_bad).await?;
    if with_bad {
        let bad = template(&stage, "bad.backlog").await?;
        for start in (0..options.backlog).step_by(1000) {
            let batch: Vec<NewEvent> = (start..(start + 1000).min(options.backlog))
                .map(|n| NewEvent {
                    payload: super::payload(n),
                    ..bad.clone()
                })
                .collect();
            store.publish(&batch, 0).await?;
        }
    }
    let dispatcher = RunningDispatcher::start(store, &options.dispatch)?;
    let started = Instant::now();
    let good = template(&stage, "good.tick").await?;
    let acked = publish_steadily(
        &stage.ops,
        &good,
        options.rate,
        options.events,
        PUBLISH_TICK,
    )
    .await?;
    let expected = (options.events * HEALTHY) as u64;
    let waited = wait_for_accepted(&stage.healthy, expected, started, STALL).await;
    let seconds = started.elapsed().as_secs_f64();
    dispatcher.stop().await;
    waited?;
    let mut samples = Vec::with_capacity(acked.len() * HEALTHY);
    for (event_id, at) in &acked {
        for sink in &stage.healthy {
            if let Some(arrived) = sink.first_accepted_at(event_id) {
                samples.push((arrived - at).max(0) as f64);
            }
        }
    }
    let bad_attempts = stage.bad.as_ref().map_or(0, |s| s.stats().received);
    for sink in stage.healthy.into_iter().chain(stage.bad) {
        let _ = sink.shutdown().await;
    }
    Ok(Scenario {
        name,
        healthy_deliveries: samples.len() as u64,
        latency_p50_ms: percentile(&samples, 0.50),
        latency_p99_ms: percentile(&samples, 0.99),
        seconds,
        bad_attempts,
    })
}

/// Renders a report as the table people read.
pub fn render_isolation(report: &IsolationReport) -> String {
    let mut out = format!(
        "bench isolation: {} events at {}/s to {HEALTHY} healthy endpoints; beside them one endpoint \
         with {} deliveries waiting whose receiver answers after {} ms (timeout {} ms)\n",
        report.events, report.rate, report.backlog, report.bad_latency_ms, report.bad_timeout_ms
    );
    out.push_str(&format!("database: {}\n\n", report.database));
    out.push_str("scenario     healthy deliveries   p50 ms   p99 ms   seconds   bad attempts\n");
    for s in [&report.alone, &report.beside_bad] {
        out.push_str(&format!(
            "{:<12} {:>18}  {:>7.1}  {:>7.1}  {:>8.2}  {:>13}\n",
            s.name,
            s.healthy_deliveries,
            s.latency_p50_ms,
            s.latency_p99_ms,
            s.seconds,
            s.bad_attempts
        ));
    }
    out.push_str(&format!(
        "\np99 beside the bad endpoint / alone: {:.2}x (target <= {TARGET_RATIO}x): {}\n",
        report.p99_ratio,
        if report.within_target {
            "met"
        } else {
            "MISSED"
        }
    ));
    out
}
