//! `hookline demo`: the whole system on one machine — demo tenants, local
//! receivers that succeed, crawl, fail and vanish, a dispatcher with a
//! compressed retry schedule and a producer publishing a steady stream —
//! and, at the end, a summary whose counts are checked three ways: what the
//! producer published, what the database recorded, what the receivers saw.

mod cast;
mod generator;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use cast::Behaviour;
use cast::Player;

use crate::config::{Config, IpNet, format_duration};
use crate::dispatch::guard::Guard;
use crate::dispatch::{DispatchError, Dispatcher};
use crate::model::{Actor, Source};
use crate::ops::{Ops, OpsError};
use crate::sink::SinkError;
use crate::store::{OpenMode, Store, StoreError, StoreOptions, Tally};

/// The retry schedule the demo runs with: seconds instead of hours, so
/// deliveries visibly retry and die while someone watches.
const DEMO_SCHEDULE_SECONDS: &[u64] = &[0, 1, 3, 6];
/// Per-attempt timeout: longer than the slow receiver, short enough to watch.
const DEMO_TIMEOUT: Duration = Duration::from_secs(5);
/// The demo's first breaker cool-down (the real default is 30 s).
const DEMO_BREAKER_COOLDOWN: Duration = Duration::from_secs(5);
/// Fastest event rate the demo accepts; it is a demo, not a load test.
const MAX_RATE: f64 = 1_000.0;

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Ops(#[from] OpsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
    #[error("demo set-up failed: {0}")]
    Setup(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("a demo task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// A database to fill (it must hold no tenants yet); a temp SQLite file when absent.
    pub db: Option<String>,
    /// Events published per second.
    pub rate: f64,
    /// Keep the temp database when the demo ends.
    pub keep: bool,
    /// Settings to start from; the demo compresses the retry schedule.
    pub config: Config,
}

/// The demo while it runs.
pub struct Demo {
    store: Store,
    config: Config,
    players: Vec<Player>,
    /// The temp directory holding the SQLite file, unless `--db` was given.
    dir: Option<tempfile::TempDir>,
    keep: bool,
    rate: f64,
    started: Instant,
    stop_generator: watch::Sender<bool>,
    generator: JoinHandle<u64>,
    stop_dispatcher: watch::Sender<bool>,
    dispatcher: JoinHandle<Result<crate::dispatch::StatsSnapshot, DispatchError>>,
}

/// Checks the options: a rate that is a positive number of events a second.
pub fn validate(options: &DemoOptions) -> Result<(), OpsError> {
    if !(options.rate > 0.0 && options.rate <= MAX_RATE) {
        return Err(OpsError::Invalid {
            field: "rate",
            reason: format!(
                "must be more than 0 and at most {MAX_RATE} events a second, got {}",
                options.rate
            ),
        });
    }
    Ok(())
}

/// Sets everything up and starts the dispatcher and the producer.
pub async fn start(options: &DemoOptions) -> Result<Demo, DemoError> {
    validate(options)?;
    let mut config = options.config.clone();
    config.dispatch.retry_schedule = DEMO_SCHEDULE_SECONDS
        .iter()
        .map(|s| Duration::from_secs(*s))
        .collect();
    config.dispatch.timeout = DEMO_TIMEOUT;
    // Probes of an open breaker come seconds apart, not half a minute.
    config.protection.cooldown = DEMO_BREAKER_COOLDOWN;
    config.protection.max_cooldown = DEMO_BREAKER_COOLDOWN * 8;
    // The demo's receivers listen on 127.0.0.1: exactly that, nothing more.
    config.network.allow = vec![IpNet::from(IpAddr::V4(Ipv4Addr::LOCALHOST))];
    let store_options = StoreOptions::from_config(&config);
    let (store, dir) = open_database(options.db.as_deref(), store_options).await?;
    let actor = Actor {
        name: "demo".to_string(),
        client_addr: None,
        source: Source::Cli,
    };
    let ops = Ops::new(store.clone(), &config, actor);
    let players = cast::assemble(&ops).await?;

    let (stop_dispatcher, mut dispatcher_stop) = watch::channel(false);
    let dispatcher = Dispatcher::new(store.clone(), &config.dispatch, Guard::new(&config.network))?;
    let dispatcher = tokio::spawn(dispatcher.run(async move {
        let _ = dispatcher_stop.wait_for(|stop| *stop).await;
    }));
    let (stop_generator, generator_stop) = watch::channel(false);
    let generator = tokio::spawn(generator::run(ops, options.rate, generator_stop));
    Ok(Demo {
        store,
        config,
        players,
        dir,
        keep: options.keep,
        rate: options.rate,
        started: Instant::now(),
        stop_generator,
        generator,
        stop_dispatcher,
        dispatcher,
    })
}

/// A temp SQLite file, or the given database if it holds no tenants yet
/// (the demo never mixes its data into a database in use).
async fn open_database(
    url: Option<&str>,
    store_options: StoreOptions,
) -> Result<(Store, Option<tempfile::TempDir>), DemoError> {
    match url {
        None => {
            let dir = tempfile::Builder::new()
                .prefix("hookline-demo-")
                .tempdir()?;
            let url = format!("sqlite://{}", dir.path().join("demo.db").display());
            let store = Store::open_with(&url, OpenMode::CreateAndMigrate, store_options).await?;
            Ok((store, Some(dir)))
        }
        Some(url) => {
            let store = Store::open_with(url, OpenMode::CreateAndMigrate, store_options).await?;
            let tenants = store.list_tenants().await?;
            if !tenants.is_empty() {
                return Err(OpsError::Invalid {
                    field: "db",
                    reason: format!(
                        "{} already has {} tenants; the demo fills an empty database (omit --db for a temporary one)",
                        store.location(),
                        tenants.len()
                    ),
                }
                .into());
            }
            Ok((store, None))
        }
    }
}

impl Demo {
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The settings the demo runs with (compressed retry schedule).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where the demo's log file belongs: beside its temp database, if any.
    pub fn log_path(&self) -> Option<std::path::PathBuf> {
        self.dir.as_ref().map(|dir| dir.path().join("demo.log"))
    }

    /// One line saying this is a demo and what is unusual about it, short
    /// enough for an 80-column status line (a longer one would take the
    /// console's detail strip for as long as the demo runs).
    pub fn notice(&self) -> String {
        let schedule: Vec<String> = self
            .config
            .dispatch
            .retry_schedule
            .iter()
            .map(|d| format_duration(*d))
            .collect();
        format!(
            "DEMO: {} events/s, retries {} (real: hours); q quits",
            self.rate,
            schedule.join("→")
        )
    }

    /// Stops the producer, then the dispatcher (which finishes its attempts
    /// and releases its leases), counts everything and checks the counts agree.
    pub async fn stop(self) -> Result<DemoSummary, DemoError> {
        let _ = self.stop_generator.send(true);
        let published = self.generator.await?;
        let _ = self.stop_dispatcher.send(true);
        self.dispatcher.await??;
        let seconds = self.started.elapsed().as_secs_f64();
        let tally = self.store.tally().await?;
        let mut endpoints = Vec::new();
        for player in self.players {
            let sink = match player.sink {
                Some(sink) => Some(sink.shutdown().await?),
                None => None,
            };
            let counts = tally
                .endpoints
                .get(&player.endpoint_id)
                .cloned()
                .unwrap_or_default();
            let endpoint = self.store.get_endpoint(&player.endpoint_id).await?;
            let breaker = self.store.breaker(&player.endpoint_id).await?;
            let breaker_reason = self
                .store
                .breaker_transitions(&player.endpoint_id, 1)
                .await?
                .pop()
                .map(|t| t.reason);
            endpoints.push(EndpointSummary {
                tenant: player.tenant,
                name: player.name,
                behaviour: player.behaviour,
                state: endpoint.state,
                state_reason: endpoint.state_reason,
                breaker: breaker.state,
                breaker_reason,
                counts,
                sink,
            });
        }
        let disagreements = disagreements(published, &tally, &endpoints);
        let database = self.store.location().to_string();
        self.store.close().await;
        let kept = match self.dir {
            Some(dir) if self.keep => Some(dir.keep().display().to_string()),
            _ => None,
        };
        Ok(DemoSummary {
            seconds,
            database,
            kept,
            published,
            events_stored: tally.events,
            endpoints,
            disagreements,
        })
    }
}

/// What became of one endpoint's deliveries, by the database and by its receiver.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointSummary {
    pub tenant: &'static str,
    pub name: &'static str,
    pub behaviour: Behaviour,
    /// The endpoint's state at the end (the 410 one is usually disabled).
    pub state: crate::model::EndpointState,
    pub state_reason: Option<String>,
    /// Its circuit breaker at the end (the down one's is open).
    pub breaker: crate::model::BreakerState,
    /// Why the breaker last changed, if it ever did.
    pub breaker_reason: Option<String>,
    /// The database's counts.
    pub counts: crate::store::EndpointTally,
    /// The receiver's own counts (none for the endpoint nobody listens on).
    pub sink: Option<crate::sink::StatsSnapshot>,
}

/// The demo's result: counts from the producer, the database and the receivers.
#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    pub seconds: f64,
    pub database: String,
    /// Where the database was kept (`--keep`).
    pub kept: Option<String>,
    /// Events the producer published (acknowledged by `publish`).
    pub published: u64,
    /// Events in the database.
    pub events_stored: i64,
    pub endpoints: Vec<EndpointSummary>,
    /// Every way the three sources of counts disagree; empty when they agree.
    pub disagreements: Vec<String>,
}

impl DemoSummary {
    /// The sum of every endpoint's database counts.
    pub fn totals(&self) -> crate::store::EndpointTally {
        let mut total = crate::store::EndpointTally::default();
        for e in &self.endpoints {
            let c = &e.counts;
            total.pending += c.pending;
            total.in_flight += c.in_flight;
            total.retrying += c.retrying;
            total.delivered += c.delivered;
            total.dead += c.dead;
            total.cancelled += c.cancelled;
            total.retried += c.retried;
            total.attempts += c.attempts;
            total.attempts_ok += c.attempts_ok;
        }
        total
    }

    /// The summary as a table for people.
    pub fn render(&self) -> String {
        let total = self.totals();
        let mut out = format!(
            "hookline demo ran {:.0}s on {}\n\
             published {} events, {} deliveries: {} delivered, {} retried, {} dead, {} waiting, {} in flight\n\n",
            self.seconds,
            self.database,
            self.published,
            total.deliveries(),
            total.delivered,
            total.retried,
            total.dead,
            total.pending + total.retrying,
            total.in_flight,
        );
        out.push_str(&format!(
            "{:<34} {:<13} {:>5} {:>9} {:>7} {:>5} {:>5} {:>6} {:>5} {:>7} {:>8}\n",
            "endpoint",
            "behaviour",
            "total",
            "delivered",
            "retried",
            "dead",
            "wait",
            "tries",
            "fail",
            "sink ok",
            "sink err"
        ));
        for e in &self.endpoints {
            let c = &e.counts;
            let (sink_ok, sink_failed) = match &e.sink {
                Some(s) => (
                    s.accepted.to_string(),
                    (s.failed_on_purpose + s.bad_signature).to_string(),
                ),
                None => ("-".to_string(), "-".to_string()),
            };
            out.push_str(&format!(
                "{:<34} {:<13} {:>5} {:>9} {:>7} {:>5} {:>5} {:>6} {:>5} {:>7} {:>8}\n",
                format!("{}/{}", e.tenant, e.name),
                e.behaviour.describe(),
                c.deliveries(),
                c.delivered,
                c.retried,
                c.dead,
                c.pending + c.retrying,
                c.attempts,
                c.attempts_failed(),
                sink_ok,
                sink_failed
            ));
        }
        for e in &self.endpoints {
            if e.breaker != crate::model::BreakerState::Closed {
                out.push_str(&format!(
                    "{}/{} ended with its circuit breaker {}: {}; its deliveries wait for a probe to get an answer\n",
                    e.tenant,
                    e.name,
                    e.breaker.as_str().replace('_', "-"),
                    e.breaker_reason.as_deref().unwrap_or("forced")
                ));
            }
            if e.state != crate::model::EndpointState::Active {
                out.push_str(&format!(
                    "{}/{} ended {}: {}\n",
                    e.tenant,
                    e.name,
                    e.state,
                    e.state_reason.as_deref().unwrap_or("no reason given")
                ));
            }
        }
        if self.disagreements.is_empty() {
            out.push_str("\ncounts agree: producer = database events; database attempts = what each receiver saw\n");
        } else {
            out.push_str("\nCOUNTS DISAGREE:\n");
            for line in &self.disagreements {
                out.push_str(&format!("  {line}\n"));
            }
        }
        if let Some(path) = &self.kept {
            out.push_str(&format!("database kept at {path}\n"));
        }
        out
    }
}

/// Compares the producer's, the database's and each receiver's counts.
fn disagreements(published: u64, tally: &Tally, endpoints: &[EndpointSummary]) -> Vec<String> {
    let mut found = Vec::new();
    if i64::try_from(published).ok() != Some(tally.events) {
        found.push(format!(
            "producer published {published} events, the database holds {}",
            tally.events
        ));
    }
    for e in endpoints {
        let c = &e.counts;
        let who = format!("{}/{}", e.tenant, e.name);
        let Some(sink) = &e.sink else {
            if c.attempts_ok > 0 {
                found.push(format!(
                    "{who}: nothing listens, yet {} attempts succeeded",
                    c.attempts_ok
                ));
            }
            continue;
        };
        let accepted = i64::try_from(sink.accepted).unwrap_or(i64::MAX);
        let unique_accepted = i64::try_from(sink.accepted - sink.duplicates).unwrap_or(i64::MAX);
        let failed = i64::try_from(sink.failed_on_purpose + sink.bad_signature).unwrap_or(i64::MAX);
        if c.attempts_ok != accepted {
            found.push(format!(
                "{who}: database has {} successful attempts, the receiver answered 2xx {accepted} times",
                c.attempts_ok
            ));
        }
        if c.delivered != unique_accepted {
            found.push(format!(
                "{who}: database has {} delivered, the receiver accepted {unique_accepted} distinct ids",
                c.delivered
            ));
        }
        if c.attempts_failed() != failed {
            found.push(format!(
                "{who}: database has {} failed attempts, the receiver failed {failed} requests",
                c.attempts_failed()
            ));
        }
        if sink.bad_signature > 0 {
            found.push(format!(
                "{who}: the receiver rejected {} signatures",
                sink.bad_signature
            ));
        }
    }
    found
}
