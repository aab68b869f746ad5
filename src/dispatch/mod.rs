//! The delivery engine (`hookline dispatch`): claim due deliveries under a
//! lease, attempt them concurrently, record outcomes in batches, keep a
//! heartbeat, and on shutdown let in-flight attempts finish (up to a
//! deadline) and hand back the rest.
//!
//! Shape: the main loop owns claiming and the attempt tasks; each attempt
//! sends its outcome to one recorder task, which writes whatever has
//! accumulated in one transaction (group commit) and only then frees the
//! attempt's concurrency slot, so the database's in-flight counts and ours
//! agree.

pub mod health;
pub mod retry;
pub mod send;
/// Standard Webhooks signatures and secrets.
pub mod sign;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::config::DispatchConfig;
use crate::model::{IdKind, new_id};
use crate::store::{
    ClaimRequest, ClaimedDelivery, NewAttempt, NextStep, Outcome, Store, StoreError,
};
use retry::RetryPolicy;
use send::{PreparedTarget, Sender};

/// How soon to claim again when due work was held by another dispatcher.
const CONTENDED_RETRY: Duration = Duration::from_millis(10);

/// Most outcomes written in one transaction.
const MAX_RECORD_BATCH: usize = 1024;

/// Why a dispatcher could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Client(#[from] send::ClientError),
    #[error("could not register the dispatcher: {0}")]
    Register(#[source] StoreError),
}

/// Live counters of one dispatcher, readable while it runs (demo, bench).
#[derive(Debug, Default)]
pub struct DispatchStats {
    pub attempted: AtomicU64,
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
    pub dead: AtomicU64,
    /// Outcomes whose lease had been lost before they were recorded.
    pub stale: AtomicU64,
}

/// A snapshot of [`DispatchStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    pub attempted: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub dead: u64,
    pub stale: u64,
}

impl DispatchStats {
    /// The counters right now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            attempted: self.attempted.load(Ordering::Relaxed),
            succeeded: self.succeeded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dead: self.dead.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
        }
    }
}

/// One dispatcher process's engine.
pub struct Dispatcher {
    store: Store,
    config: DispatchConfig,
    id: String,
    sender: Sender,
    policy: Arc<RetryPolicy>,
    stats: Arc<DispatchStats>,
}

/// An outcome on its way to the recorder, holding its concurrency slot.
struct Recorded {
    outcome: Outcome,
    _slot: OwnedSemaphorePermit,
}

impl Dispatcher {
    /// A dispatcher for `store`, configured by `[dispatch]`.
    pub fn new(store: Store, config: &DispatchConfig) -> Result<Dispatcher, DispatchError> {
        Ok(Dispatcher {
            sender: Sender::new(config.max_response_body.0)?,
            policy: Arc::new(RetryPolicy::from_config(config)),
            store,
            config: config.clone(),
            id: new_id(IdKind::Dispatcher),
            stats: Arc::new(DispatchStats::default()),
        })
    }

    /// This dispatcher's id (`dsp_…`), the owner on its leases.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Counters that stay readable while [`Dispatcher::run`] runs.
    pub fn stats(&self) -> Arc<DispatchStats> {
        Arc::clone(&self.stats)
    }

    /// Runs until `shutdown` completes, then stops claiming, gives in-flight
    /// attempts `shutdown_grace` to finish, releases the leases of any that
    /// did not, and records everything that finished.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<StatsSnapshot, DispatchError> {
        let host = hostname();
        self.store
            .register_dispatcher(
                &self.id,
                &host,
                i64::from(std::process::id()),
                env!("CARGO_PKG_VERSION"),
            )
            .await
            .map_err(DispatchError::Register)?;
        tracing::info!(dispatcher = %self.id, host = %host, database = %self.store.location(), "dispatcher started");
        let slots = Arc::new(Semaphore::new(self.config.concurrency));
        let freed = Arc::new(Notify::new());
        let (outcomes, outcome_queue) = mpsc::unbounded_channel::<Recorded>();
        let recorder = tokio::spawn(record_loop(
            self.store.clone(),
            self.id.clone(),
            outcome_queue,
            Arc::clone(&freed),
            Arc::clone(&self.stats),
            self.config.lease,
        ));
        let heartbeat = tokio::spawn(heartbeat_loop(
            self.store.clone(),
            self.id.clone(),
            Arc::clone(&self.stats),
            self.config.heartbeat_interval,
        ));
        let mut running = Running::default();
        self.claim_loop(&slots, &freed, &outcomes, &mut running, shutdown)
            .await;
        self.drain(&mut running).await;
        drop(outcomes);
        if let Err(err) = recorder.await {
            tracing::error!(error = %err, "outcome recorder failed");
        }
        heartbeat.abort();
        if let Err(err) = self.store.dispatcher_stopped(&self.id).await {
            tracing::warn!(error = %err, "could not mark the dispatcher stopped");
        }
        let summary = self.stats.snapshot();
        tracing::info!(dispatcher = %self.id, ?summary, "dispatcher stopped");
        Ok(summary)
    }

    async fn claim_loop(
        &self,
        slots: &Arc<Semaphore>,
        freed: &Notify,
        outcomes: &mpsc::UnboundedSender<Recorded>,
        running: &mut Running,
        shutdown: impl Future<Output = ()>,
    ) {
        let mut changes = self.store.subscribe_changes();
        let mut failures: u32 = 0;
        tokio::pin!(shutdown);
        loop {
            let free = slots.available_permits().min(self.config.batch_size);
            let wait = if free == 0 {
                None
            } else {
                match self.claim_and_start(free, slots, outcomes, running).await {
                    Ok(ClaimTurn::Full) => {
                        failures = 0;
                        continue;
                    }
                    Ok(ClaimTurn::Wait(due_in)) => {
                        failures = 0;
                        Some(due_in.map_or(self.config.poll_interval, |d| {
                            d.min(self.config.poll_interval)
                        }))
                    }
                    Err(err) => {
                        failures += 1;
                        let backoff = backoff(failures);
                        tracing::warn!(error = %err, retry_in = ?backoff, "claim failed");
                        Some(backoff)
                    }
                }
            };
            let sleep = tokio::time::sleep(wait.unwrap_or(self.config.poll_interval));
            tokio::select! {
                () = &mut shutdown => return,
                () = freed.notified() => {}
                _ = changes.changed(), if wait.is_some() => {}
                () = sleep, if wait.is_some() => {}
                Some(done) = running.tasks.join_next_with_id(), if !running.tasks.is_empty() => {
                    running.finished(done);
                }
            }
        }
    }

    /// Claims up to `free` deliveries and starts an attempt for each.
    async fn claim_and_start(
        &self,
        free: usize,
        slots: &Arc<Semaphore>,
        outcomes: &mpsc::UnboundedSender<Recorded>,
        running: &mut Running,
    ) -> Result<ClaimTurn, StoreError> {
        while let Some(done) = running.tasks.try_join_next_with_id() {
            running.finished(done);
        }
        let claimed = self
            .store
            .claim(&ClaimRequest {
                owner: &self.id,
                limit: free,
                lease_ms: duration_ms(self.config.lease),
                default_max_in_flight: i64::from(self.config.max_in_flight_per_endpoint),
                default_timeout_ms: duration_ms(self.config.timeout),
            })
            .await?;
        let count = claimed.deliveries.len();
        let targets: HashMap<String, Arc<PreparedTarget>> = claimed
            .endpoints
            .iter()
            .map(|(id, target)| (id.clone(), Arc::new(PreparedTarget::new(target))))
            .collect();
        for delivery in claimed.deliveries {
            let Ok(slot) = Arc::clone(slots).try_acquire_owned() else {
                // Cannot happen (we claimed no more than the free slots);
                // if it did, the lease simply expires and the work returns.
                break;
            };
            let Some(target) = targets.get(&delivery.endpoint_id).cloned() else {
                continue;
            };
            let delivery_id = delivery.id.clone();
            let task = attempt_task(
                self.sender.clone(),
                Arc::clone(&self.policy),
                delivery,
                target,
                outcomes.clone(),
                slot,
                Arc::clone(&self.stats),
            );
            let handle = running.tasks.spawn(task);
            running.leased.insert(handle.id(), delivery_id);
        }
        if count == free {
            return Ok(ClaimTurn::Full);
        }
        let wait = match claimed.next_due_in_ms {
            // Future work: sleep until it is due.
            Some(ms) if ms > 0 => Some(Duration::from_millis(ms as u64)),
            // Due work we could not take (another dispatcher holds it right
            // now): look again shortly rather than spin.
            Some(_) if count == 0 => Some(CONTENDED_RETRY),
            // Due work beyond the endpoints' caps: a freed slot wakes us.
            _ => None,
        };
        Ok(ClaimTurn::Wait(wait))
    }

    /// Waits up to `shutdown_grace` for running attempts, then aborts the
    /// rest and releases their leases so another dispatcher takes them now.
    async fn drain(&self, running: &mut Running) {
        let deadline = tokio::time::Instant::now() + self.config.shutdown_grace;
        if !running.tasks.is_empty() {
            tracing::info!(in_flight = running.tasks.len(), grace = ?self.config.shutdown_grace, "finishing in-flight attempts");
        }
        while !running.tasks.is_empty() {
            tokio::select! {
                Some(done) = running.tasks.join_next_with_id() => running.finished(done),
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        running.tasks.abort_all();
        while let Some(done) = running.tasks.join_next_with_id().await {
            running.finished(done);
        }
        let unfinished: Vec<String> = running.leased.drain().map(|(_, id)| id).collect();
        if unfinished.is_empty() {
            return;
        }
        match self.store.release(&self.id, &unfinished).await {
            Ok(released) => tracing::info!(released, "released leases of unfinished attempts"),
            Err(err) => tracing::warn!(error = %err, "could not release leases; they will expire"),
        }
    }
}

/// What a claim turn says about the next one.
enum ClaimTurn {
    /// Every free slot was filled: claim again at once.
    Full,
    /// Wait for a change, a freed slot, or this long (when known).
    Wait(Option<Duration>),
}

/// Attempt tasks in progress and the delivery each one holds.
#[derive(Default)]
struct Running {
    tasks: JoinSet<()>,
    leased: HashMap<tokio::task::Id, String>,
}

impl Running {
    fn finished(&mut self, done: Result<(tokio::task::Id, ()), tokio::task::JoinError>) {
        match done {
            Ok((id, ())) => {
                self.leased.remove(&id);
            }
            Err(err) if err.is_cancelled() => {
                // Aborted at shutdown: keep its id so the lease is released.
            }
            Err(err) => {
                // A panicking attempt keeps its lease; it expires and the delivery returns.
                tracing::error!(error = %err, "attempt task failed");
                self.leased.remove(&err.id());
            }
        }
    }
}

/// Attempts one delivery and sends the outcome to the recorder.
async fn attempt_task(
    sender: Sender,
    policy: Arc<RetryPolicy>,
    delivery: ClaimedDelivery,
    target: Arc<PreparedTarget>,
    outcomes: mpsc::UnboundedSender<Recorded>,
    slot: OwnedSemaphorePermit,
    stats: Arc<DispatchStats>,
) {
    let attempt_number = delivery.attempts + 1;
    let result = sender
        .attempt(&target, &delivery.event_id, delivery.payload)
        .await;
    stats.attempted.fetch_add(1, Ordering::Relaxed);
    let next = if result.error_kind.is_none() {
        NextStep::Succeeded
    } else {
        policy.after_failure(attempt_number, result.retry_after)
    };
    let disable_endpoint = (result.status == Some(410)).then(|| {
        format!(
            "answered 410 Gone to delivery {} (attempt {attempt_number})",
            delivery.id
        )
    });
    let outcome = Outcome {
        attempt: NewAttempt {
            id: new_id(IdKind::Attempt),
            delivery_id: delivery.id,
            endpoint_id: delivery.endpoint_id,
            attempt_number,
            started_at: result.started_at,
            duration_ms: result.duration_ms,
            status_code: result.status.map(i64::from),
            error_kind: result.error_kind,
            error_message: result.error_message,
            request_headers: result.request_headers,
            response_body: result.response_body,
        },
        next,
        disable_endpoint,
    };
    // The recorder only goes away after every attempt task has ended.
    let _ = outcomes.send(Recorded {
        outcome,
        _slot: slot,
    });
}

/// Writes outcomes as they arrive, batching whatever accumulated during the
/// previous write. A failed write is retried until the leases would have
/// expired anyway; after that the deliveries are attempted again later —
/// never marked done without a record.
async fn record_loop(
    store: Store,
    owner: String,
    mut queue: mpsc::UnboundedReceiver<Recorded>,
    freed: Arc<Notify>,
    stats: Arc<DispatchStats>,
    lease: Duration,
) {
    let mut batch: Vec<Recorded> = Vec::new();
    while queue.recv_many(&mut batch, MAX_RECORD_BATCH).await > 0 {
        let outcomes: Vec<Outcome> = batch.iter().map(|r| r.outcome.clone()).collect();
        let started = Instant::now();
        let mut failures = 0;
        loop {
            match store.record_outcomes(&owner, &outcomes).await {
                Ok(summary) => {
                    count_outcomes(&stats, &outcomes, summary.stale);
                    break;
                }
                Err(err) if started.elapsed() < lease => {
                    failures += 1;
                    let wait = backoff(failures);
                    tracing::warn!(error = %err, outcomes = outcomes.len(), retry_in = ?wait, "could not record outcomes; retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(err) => {
                    tracing::error!(error = %err, outcomes = outcomes.len(), "gave up recording outcomes; their leases will expire and the deliveries will be attempted again");
                    break;
                }
            }
        }
        batch.clear(); // frees the slots
        freed.notify_one();
    }
}

fn count_outcomes(stats: &DispatchStats, outcomes: &[Outcome], stale: u64) {
    for outcome in outcomes {
        let counter = match outcome.next {
            NextStep::Succeeded => &stats.succeeded,
            NextStep::RetryIn(_) => &stats.failed,
            NextStep::Dead => &stats.dead,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    stats.stale.fetch_add(stale, Ordering::Relaxed);
}

/// Beats every `interval` with the recent delivery rate.
async fn heartbeat_loop(store: Store, id: String, stats: Arc<DispatchStats>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = (Instant::now(), 0u64);
    loop {
        ticker.tick().await;
        let attempted = stats.attempted.load(Ordering::Relaxed);
        let elapsed = last.0.elapsed().as_secs_f64().max(0.001);
        let rate = (attempted - last.1) as f64 / elapsed;
        last = (Instant::now(), attempted);
        if let Err(err) = store.heartbeat(&id, rate).await {
            tracing::warn!(error = %err, "heartbeat failed");
        }
    }
}

/// 100 ms, 200 ms, … capped at 5 s: for retrying the database, not deliveries.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << failures.min(6)).min(5_000))
}

fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// This host's name, for the heartbeat row.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}
