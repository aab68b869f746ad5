//! `bench protection`: what the circuit breaker spares a receiver that is
//! down (attempts, deaths, time back to flowing, and the healthy endpoints
//! beside it), and what a rate limit lets through when several
//! `hookline dispatch` processes feed one endpoint.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{
    BenchError, RunningDispatcher, bench_ops, database_url, describe, open_database_with,
    percentile, publish_steadily, sink_endpoints, wait_for_accepted,
};
use crate::config::{DispatchConfig, ProtectionConfig};
use crate::model::{DeliveryState, Source, now_millis};
use crate::ops::{EndpointInput, EventInput};
use crate::sink::{SinkHandle, SinkOptions};
use crate::store::{DeliveryFilter, NewEvent, Store, StoreOptions};

/// Healthy endpoints beside the one that goes down.
const HEALTHY: usize = 9;
/// How often the steady stream publishes a batch.
const PUBLISH_TICK: Duration = Duration::from_millis(50);
/// A run fails when no healthy delivery arrived for this long.
const STALL: Duration = Duration::from_secs(60);
/// How long the down endpoint's deliveries may take to settle once the
/// stream ends, beyond its longest retry.
const SETTLE: Duration = Duration::from_secs(120);

/// What `bench protection` runs.
#[derive(Debug, Clone)]
pub struct ProtectionOptions {
    /// Events a second, each to every endpoint.
    pub rate: f64,
    /// How long the down endpoint refuses connections.
    pub down: Duration,
    /// How long the stream goes on after it comes back.
    pub after: Duration,
    /// `[protection]` for the runs with the breaker (its `breaker` is
    /// turned off for the run without).
    pub protection: ProtectionConfig,
    /// The rate limit's requests a second.
    pub limit: u32,
    /// Events queued for the limited endpoint (a backlog of this many
    /// seconds at the limit, and more).
    pub limit_events: usize,
    /// `hookline dispatch` processes feeding the limited endpoint.
    pub dispatchers: usize,
    /// Which parts to run.
    pub breaker: bool,
    pub rate_limit: bool,
    /// Database URL; a fresh SQLite file when absent.
    pub db: Option<String>,
    /// The compressed retry ladder and the rest of the dispatcher's settings.
    pub dispatch: DispatchConfig,
}

/// One run of the breaker part.
#[derive(Debug, Clone, Serialize)]
pub struct DownRun {
    pub name: &'static str,
    /// Healthy endpoints' publish -> delivered latency.
    pub healthy_p50_ms: f64,
    pub healthy_p99_ms: f64,
    pub healthy_deliveries: u64,
    /// The down endpoint (absent in the run alone).
    pub down: Option<DownFigures>,
}

/// What happened to the endpoint that was down.
#[derive(Debug, Clone, Serialize)]
pub struct DownFigures {
    pub deliveries: u64,
    /// Attempts made against it while it refused connections.
    pub attempts_while_down: u64,
    pub died: u64,
    pub delivered: u64,
    /// Breaker transitions recorded.
    pub transitions: usize,
    /// From its receiver coming back to its first delivery.
    pub first_after_back_ms: Option<i64>,
    /// From its receiver coming back to the last of the deliveries
    /// published while it was down arriving (none if some died).
    pub backlog_drained_ms: Option<i64>,
}

/// The rate limit part's figures.
#[derive(Debug, Clone, Serialize)]
pub struct RateLimitRun {
    pub per_second: u32,
    pub burst: i64,
    pub dispatchers: usize,
    pub events: usize,
    pub delivered: usize,
    /// Most requests at the receiver in any 30 s, and the bound.
    pub most_in_30s: usize,
    pub bound_30s: usize,
    /// Most requests in any one second.
    pub most_in_1s: usize,
    /// First to last request, and the rate that makes.
    pub seconds: f64,
    pub mean_per_second: f64,
}

/// Everything `bench protection` reports.
#[derive(Debug, Clone, Serialize)]
pub struct ProtectionReport {
    pub benchmark: &'static str,
    pub database: String,
    pub rate: f64,
    pub down_ms: u64,
    pub after_ms: u64,
    pub cooldown_ms: u64,
    pub max_cooldown_ms: u64,
    pub retry_schedule: String,
    pub runs: Vec<DownRun>,
    pub rate_limit: Option<RateLimitRun>,
}

/// Runs the parts asked for.
pub async fn protection(options: &ProtectionOptions) -> Result<ProtectionReport, BenchError> {
    if options.rate.is_nan() || options.rate <= 0.0 || options.limit == 0 {
        return Err(BenchError::Setup(
            "rate and limit must be more than 0".to_string(),
        ));
    }
    let mut runs = Vec::new();
    let mut database = String::new();
    let mut first = true;
    if options.breaker {
        for (name, with_down, breaker) in [
            ("alone", false, true),
            ("down, breaker off", true, false),
            ("down, breaker on", true, true),
        ] {
            let protection = ProtectionConfig {
                breaker,
                ..options.protection.clone()
            };
            let (store, _dir) = open(options, first, protection).await?;
            first = false;
            database = describe(&store);
            runs.push(down_run(options, &store, name, with_down).await?);
            store.close().await;
        }
    }
    let rate_limit = if options.rate_limit {
        let (store, dir) = open(options, first, options.protection.clone()).await?;
        database = describe(&store);
        let url = database_url(options.db.as_deref(), dir.as_ref());
        let run = rate_limit_run(options, &store, &url).await;
        store.close().await;
        Some(run?)
    } else {
        None
    };
    Ok(ProtectionReport {
        benchmark: "protection",
        database,
        rate: options.rate,
        down_ms: options.down.as_millis() as u64,
        after_ms: options.after.as_millis() as u64,
        cooldown_ms: options.protection.cooldown.as_millis() as u64,
        max_cooldown_ms: options.protection.max_cooldown.as_millis() as u64,
        retry_schedule: options
            .dispatch
            .retry_schedule
            .iter()
            .map(|d| crate::config::format_duration(*d))
            .collect::<Vec<_>>()
            .join(","),
        runs,
        rate_limit,
    })
}

async fn open(
    options: &ProtectionOptions,
    first: bool,
    protection: ProtectionConfig,
) -> Result<(Store, Option<tempfile::TempDir>), BenchError> {
    let store_options = StoreOptions {
        protection: Some(protection),
        ..StoreOptions::default()
    };
    open_database_with(options.db.as_deref(), first, store_options).await
}

/// A local address nothing listens on: connections to it are refused
/// until a sink is started there.
async fn refused_address() -> Result<SocketAddr, BenchError> {
    let sink = crate::sink::start(SinkOptions::default()).await?;
    let addr = sink.addr();
    sink.shutdown().await?;
    Ok(addr)
}

async fn down_run(
    options: &ProtectionOptions,
    store: &Store,
    name: &'static str,
    with_down: bool,
) -> Result<DownRun, BenchError> {
    let ops = bench_ops(store, &options.dispatch, Source::Cli);
    let tenant = format!("protection-{}", name.replace([',', ' '], "-"));
    ops.add_tenant(&tenant).await?;
    let healthy: Vec<SinkHandle> =
        sink_endpoints(&ops, &tenant, "healthy", HEALTHY, "tick.*", Duration::ZERO)
            .await?
            .into_iter()
            .map(|(sink, _)| sink)
            .collect();
    let down = if with_down {
        let addr = refused_address().await?;
        let endpoint = ops
            .add_endpoint(&EndpointInput {
                tenant: tenant.clone(),
                name: "down".to_string(),
                url: format!("http://{addr}/"),
                ..EndpointInput::default()
            })
            .await?;
        ops.add_subscription(&endpoint.id, "tick.*", None).await?;
        Some((addr, endpoint.id))
    } else {
        None
    };
    let dispatcher = RunningDispatcher::start(store, &options.dispatch)?;
    let started = Instant::now();
    let comes_back = down.as_ref().map(|(addr, _)| {
        let (addr, wait) = (*addr, options.down);
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let sink = crate::sink::start(SinkOptions {
                listen: addr,
                ..SinkOptions::default()
            })
            .await;
            (sink, now_millis())
        })
    });
    let events = (options.rate * (options.down + options.after).as_secs_f64()).ceil() as usize;
    let template = ops
        .validate_event(EventInput {
            tenant: Some(tenant.clone()),
            topic: "tick.now".to_string(),
            payload: super::payload(0).into(),
            ..EventInput::default()
        })
        .await?;
    let acked =
        publish_steadily(&ops, &template, options.rate, events.max(1), PUBLISH_TICK).await?;
    let expected = (acked.len() * HEALTHY) as u64;
    let waited = wait_for_accepted(&healthy, expected, started, STALL).await;
    let back = match comes_back {
        Some(task) => match task.await {
            Ok((Ok(sink), at)) => Some((sink, at)),
            Ok((Err(err), _)) => return Err(err.into()),
            Err(err) => {
                return Err(BenchError::Setup(format!(
                    "the receiver never came back: {err}"
                )));
            }
        },
        None => None,
    };
    let figures = match (&down, &back) {
        (Some((_, endpoint_id)), Some((sink, back_at))) => {
            settle(store, endpoint_id, options).await?;
            Some(down_figures(store, endpoint_id, sink, *back_at, &acked).await?)
        }
        _ => None,
    };
    dispatcher.stop().await;
    waited?;
    let mut samples = Vec::with_capacity(acked.len() * HEALTHY);
    for (event_id, at) in &acked {
        for sink in &healthy {
            if let Some(arrived) = sink.first_accepted_at(event_id) {
                samples.push((arrived - at).max(0) as f64);
            }
        }
    }
    for sink in healthy.into_iter().chain(back.map(|(sink, _)| sink)) {
        let _ = sink.shutdown().await;
    }
    Ok(DownRun {
        name,
        healthy_p50_ms: percentile(&samples, 0.50),
        healthy_p99_ms: percentile(&samples, 0.99),
        healthy_deliveries: samples.len() as u64,
        down: figures,
    })
}

/// Waits until none of the endpoint's deliveries is unfinished, at most
/// the longest retry plus [`SETTLE`].
async fn settle(
    store: &Store,
    endpoint_id: &str,
    options: &ProtectionOptions,
) -> Result<(), BenchError> {
    let longest = options.dispatch.retry_schedule.iter().copied().max();
    let deadline =
        Instant::now() + longest.unwrap_or_default() + options.protection.max_cooldown + SETTLE;
    let unfinished = DeliveryFilter {
        endpoint_id: Some(endpoint_id.to_string()),
        states: vec![
            DeliveryState::Pending,
            DeliveryState::Retrying,
            DeliveryState::InFlight,
        ],
        ..DeliveryFilter::default()
    };
    while Instant::now() < deadline {
        if store
            .list_deliveries(&unfinished, None, 1)
            .await?
            .items
            .is_empty()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(BenchError::Setup(format!(
        "the down endpoint's deliveries were still unfinished after {:?}",
        longest.unwrap_or_default() + SETTLE
    )))
}

async fn down_figures(
    store: &Store,
    endpoint_id: &str,
    sink: &SinkHandle,
    back_at: i64,
    acked: &[(String, i64)],
) -> Result<DownFigures, BenchError> {
    let filter = DeliveryFilter {
        endpoint_id: Some(endpoint_id.to_string()),
        ..DeliveryFilter::default()
    };
    let (mut deliveries, mut attempts, mut died, mut delivered) = (0, 0, 0, 0);
    let mut cursor = None;
    loop {
        let page = store
            .list_deliveries(&filter, cursor.as_ref(), 1000)
            .await?;
        for d in &page.items {
            deliveries += 1;
            attempts += u64::try_from(d.attempts).unwrap_or(0);
            match d.state {
                DeliveryState::Dead => died += 1,
                DeliveryState::Delivered => delivered += 1,
                _ => {}
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let transitions = store.breaker_transitions(endpoint_id, 10_000).await?.len();
    let arrivals: Vec<i64> = acked
        .iter()
        .filter_map(|(id, _)| sink.first_accepted_at(id))
        .collect();
    let first_after_back_ms = arrivals.iter().min().map(|at| at - back_at);
    let published_while_down: Vec<Option<i64>> = acked
        .iter()
        .filter(|(_, at)| *at < back_at)
        .map(|(id, _)| sink.first_accepted_at(id))
        .collect();
    let backlog_drained_ms = published_while_down
        .iter()
        .copied()
        .collect::<Option<Vec<i64>>>()
        .and_then(|all| all.into_iter().max())
        .map(|at| at - back_at);
    Ok(DownFigures {
        deliveries,
        // Once it is back every attempt succeeds: one per delivered.
        attempts_while_down: attempts.saturating_sub(delivered),
        died,
        delivered,
        transitions,
        first_after_back_ms,
        backlog_drained_ms,
    })
}

/// Kills the dispatcher processes when dropped, however the run ends.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One endpoint limited to `options.limit` a second with a backlog, fed
/// by `options.dispatchers` `hookline dispatch` processes.
async fn rate_limit_run(
    options: &ProtectionOptions,
    store: &Store,
    url: &str,
) -> Result<RateLimitRun, BenchError> {
    let ops = bench_ops(store, &options.dispatch, Source::Cli);
    let tenant = "protection-rate-limit";
    ops.add_tenant(tenant).await?;
    let sink = crate::sink::start(SinkOptions::default()).await?;
    let endpoint = ops
        .add_endpoint(&EndpointInput {
            tenant: tenant.to_string(),
            name: "limited".to_string(),
            url: sink.url(),
            rate_limit: Some(options.limit),
            ..EndpointInput::default()
        })
        .await?;
    ops.add_subscription(&endpoint.id, "limited.*", None)
        .await?;
    let template = ops
        .validate_event(EventInput {
            tenant: Some(tenant.to_string()),
            topic: "limited.now".to_string(),
            payload: super::payload(0).into(),
            ..EventInput::default()
        })
        .await?;
    let mut ids = Vec::with_capacity(options.limit_events);
    for start in (0..options.limit_events).step_by(500) {
        let batch: Vec<NewEvent> = (start..(start + 500).min(options.limit_events))
            .map(|n| NewEvent {
                payload: super::payload(n),
                ..template.clone()
            })
            .collect();
        ids.extend(
            store
                .publish(&batch, 0)
                .await?
                .into_iter()
                .map(|p| p.event_id),
        );
    }
    let exe = std::env::current_exe()?;
    let processes = Processes(
        (0..options.dispatchers.max(1))
            .map(|_| {
                Command::new(&exe)
                    .args(["--db", url, "dispatch"])
                    .env("HOOKLINE_NETWORK_ALLOW", "127.0.0.1/32")
                    .env("HOOKLINE_LOG", "warn")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
            })
            .collect::<Result<Vec<_>, _>>()?,
    );
    let expected = options.limit_events as u64;
    let allowed = Duration::from_secs_f64(expected as f64 / f64::from(options.limit) * 2.0)
        + Duration::from_secs(60);
    let started = Instant::now();
    while sink.stats().accepted < expected && started.elapsed() < allowed {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(processes);
    let mut arrivals: Vec<i64> = ids
        .iter()
        .filter_map(|id| sink.first_accepted_at(id))
        .collect();
    arrivals.sort_unstable();
    let _ = sink.shutdown().await;
    let burst = endpoint.rate_limit.map_or(1, |l| l.burst);
    let seconds = match (arrivals.first(), arrivals.last()) {
        (Some(first), Some(last)) => (last - first) as f64 / 1000.0,
        _ => 0.0,
    };
    Ok(RateLimitRun {
        per_second: options.limit,
        burst,
        dispatchers: options.dispatchers.max(1),
        events: options.limit_events,
        delivered: arrivals.len(),
        most_in_30s: most_in_any(&arrivals, 30_000),
        bound_30s: options.limit as usize * 30 + usize::try_from(burst).unwrap_or(0),
        most_in_1s: most_in_any(&arrivals, 1_000),
        seconds,
        mean_per_second: if seconds > 0.0 {
            (arrivals.len().saturating_sub(1)) as f64 / seconds
        } else {
            0.0
        },
    })
}

/// The most of the sorted `arrivals` (unix ms) in any window of `window_ms`.
pub fn most_in_any(arrivals: &[i64], window_ms: i64) -> usize {
    let mut most = 0;
    let mut start = 0;
    for (end, at) in arrivals.iter().enumerate() {
        while at - arrivals[start] >= window_ms {
            start += 1;
        }
        most = most.max(end + 1 - start);
    }
    most
}

/// Renders a report as the tables people read.
pub fn render_protection(report: &ProtectionReport) -> String {
    let mut out = format!(
        "bench protection: {}/s events to {HEALTHY} healthy endpoints and one whose receiver refuses \
         connections for {} s, then answers for {} s more; retries {}; cool-down {} s doubling to {} s\n",
        report.rate,
        report.down_ms / 1000,
        report.after_ms / 1000,
        report.retry_schedule,
        report.cooldown_ms / 1000,
        report.max_cooldown_ms / 1000,
    );
    out.push_str(&format!("database: {}\n", report.database));
    if !report.runs.is_empty() {
        out.push_str(
            "\nrun                  healthy p50/p99 ms  down: attempts while down  died  transitions  first after back  backlog drained\n",
        );
        for run in &report.runs {
            let down = match &run.down {
                Some(d) => format!(
                    "{:>25}  {:>4}  {:>11}  {:>16}  {:>15}",
                    d.attempts_while_down,
                    d.died,
                    d.transitions,
                    ms(d.first_after_back_ms),
                    ms(d.backlog_drained_ms),
                ),
                None => format!("{:>25}", "-"),
            };
            out.push_str(&format!(
                "{:<20} {:>9.1} / {:>7.1}  {down}\n",
                run.name, run.healthy_p50_ms, run.healthy_p99_ms
            ));
        }
    }
    if let Some(r) = &report.rate_limit {
        out.push_str(&format!(
            "\nrate limit {}/s (burst {}), {} events, {} dispatch processes: {} delivered in {:.1} s ({:.1}/s)\n\
             most in any 30 s: {} (bound {}: {}); most in any 1 s: {}\n",
            r.per_second,
            r.burst,
            r.events,
            r.dispatchers,
            r.delivered,
            r.seconds,
            r.mean_per_second,
            r.most_in_30s,
            r.bound_30s,
            if r.most_in_30s <= r.bound_30s { "met" } else { "MISSED" },
            r.most_in_1s,
        ));
    }
    out
}

fn ms(value: Option<i64>) -> String {
    value.map_or_else(
        || "-".to_string(),
        |ms| format!("{:.1} s", ms as f64 / 1000.0),
    )
}

#[cfg(test)]
mod tests {
    use super::most_in_any;

    #[test]
    fn the_window_counts_what_it_holds() {
        let arrivals = [0, 100, 900, 1_000, 1_050, 2_500];
        assert_eq!(most_in_any(&arrivals, 1_000), 4);
        assert_eq!(most_in_any(&arrivals, 100), 2);
        assert_eq!(most_in_any(&[], 1_000), 0);
    }
}
