//! The delivery engine (`hookline dispatch`): claim due deliveries under a
//! lease, attempt them concurrently, record outcomes in batches, keep a
//! heartbeat, and on shutdown let in-flight attempts finish (up to a
//! deadline) and hand back the rest.
//!
//! Shape: one loop owns the attempt tasks. Each finished attempt sends its
//! outcome back; each cycle of the loop is one transaction that records
//! every outcome that arrived since the last cycle and leases new work for
//! the free slots ([`Store::record_and_claim`](crate::store::Store::record_and_claim)). While a cycle's transaction
//! runs, outcomes pile up, so batches grow with load on their own. The
//! endpoint stats and health counts derived from outcomes are gathered and
//! written every `ROLLUPS_EVERY` (a quiet dispatcher wakes to write them).
//!
//! Deliveries published in the same process arrive already leased over a
//! channel ([`hand_off`](crate::dispatch::hand_off)) and start at once, without waiting for a claim.

mod cert;
pub mod guard;
pub mod hand_off;
pub mod probe;
pub mod retry;
pub mod send;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::config::DispatchConfig;
use crate::metrics::metrics;
use crate::model::{ErrorKind, IdKind, id_time_ms, new_id, now_millis};
use crate::store::{
    ClaimRequest, Claimed, ClaimedDelivery, NewAttempt, NextStep, Outcome, Reads, Rollups, Store,
    StoreError,
};
use guard::Guard;
use hand_off::{HandOff, Slots, Taken};
use retry::RetryPolicy;
use send::{PreparedTarget, PreparedTargets, Sender};

/// How often a dispatcher takes back leases that expired (a dead
/// dispatcher's) and resumes the endpoints whose pause has ended.
const REAP_EVERY: Duration = Duration::from_secs(1);

/// How soon to claim again when due work was held by another dispatcher.
const CONTENDED_RETRY: Duration = Duration::from_millis(10);
/// How long a dispatcher gathers endpoint stats and health counts before
/// writing them: how far the console's health figures may trail the attempts.
const ROLLUPS_EVERY: Duration = Duration::from_millis(250);

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
    /// Successes committed to the database.
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
    pub dead: AtomicU64,
    /// Outcomes whose lease had been lost before they were recorded.
    pub stale: AtomicU64,
    /// Deliveries a publish in this process handed straight over (the
    /// others were claimed from the queue).
    pub handed_off: AtomicU64,
}

/// A snapshot of [`DispatchStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    pub attempted: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub dead: u64,
    pub stale: u64,
    pub handed_off: u64,
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
            handed_off: self.handed_off.load(Ordering::Relaxed),
        }
    }
}

/// One dispatcher process's engine.
pub struct Dispatcher {
    store: Store,
    /// Where attempts may connect; also judges the endpoints at start.
    guard: Guard,
    config: DispatchConfig,
    id: String,
    sender: Sender,
    policy: Arc<RetryPolicy>,
    stats: Arc<DispatchStats>,
    /// Attempt slots, shared with publishers handing off deliveries.
    slots: Arc<Slots>,
    hand_off_sender: mpsc::UnboundedSender<Claimed>,
    hand_offs: Option<mpsc::UnboundedReceiver<Claimed>>,
}

/// The loop's working state between cycles.
struct Cycle {
    /// Attempts in progress, and the delivery each one holds.
    running: Running,
    /// Deliveries handed off by publishes in this process.
    hand_offs: mpsc::UnboundedReceiver<Claimed>,
    /// Handed-off deliveries that arrived while stopping: released, not started.
    to_release: Vec<String>,
    /// Finished attempts not yet recorded.
    pending: Vec<Outcome>,
    /// Since when the oldest pending outcome has failed to record.
    failing_since: Option<Instant>,
    /// Consecutive failed cycles, for backoff.
    failures: u32,
    /// When to try claiming again; `None` waits for a signal.
    claim_at: Option<Instant>,
    /// Set on shutdown: no more claims; finish by this time.
    stopping_by: Option<tokio::time::Instant>,
    /// When expired leases were last taken back.
    last_reap: Option<Instant>,
    /// Stats and health of recorded outcomes, not yet written.
    rollups: Rollups,
    /// When `rollups` were last written.
    rollups_written_at: Instant,
}

impl Cycle {
    /// A finished attempt's outcome, recorded by the next cycle.
    fn outcome_arrived(&mut self, outcome: Outcome) {
        self.pending.push(outcome);
        // Its slot (and its endpoint's cap) may let queued work go, and the
        // last claim cannot know when work behind the heads it took comes
        // due: claim in the same cycle that records it.
        self.claim_at = Some(Instant::now());
    }

    /// Whether this cycle writes the gathered rollups: when stopping, or
    /// once they are `ROLLUPS_EVERY` old. Not merely because nothing is
    /// running: under a steady stream of hand-offs the dispatcher goes idle
    /// between every publish, and writing then cost more than the outcomes.
    fn writes_rollups(&self) -> bool {
        self.stopping_by.is_some() || self.rollups_written_at.elapsed() >= ROLLUPS_EVERY
    }

    /// Gathered rollups that are due to be written without waiting for an outcome.
    fn rollups_due(&self) -> bool {
        !self.rollups.is_empty() && self.writes_rollups()
    }

    /// The rollups a cycle recording `pending` writes, if it writes them.
    fn rollups_to_write(&self, owner: &str) -> Option<Rollups> {
        if !self.writes_rollups() {
            return None;
        }
        let mut rollups = self.rollups.clone();
        rollups.add(owner, &self.pending);
        Some(rollups)
    }

    /// After a cycle committed `pending`: its rollups are written or gathered.
    fn rollups_recorded(&mut self, owner: &str, written: bool) {
        if written {
            self.rollups = Rollups::default();
            self.rollups_written_at = Instant::now();
        } else {
            self.rollups.add(owner, &self.pending);
        }
    }
}

impl Dispatcher {
    /// A dispatcher for `store`, configured by `[dispatch]`, that connects
    /// only where `guard` allows (see [`guard`]).
    pub fn new(
        store: Store,
        config: &DispatchConfig,
        guard: Guard,
    ) -> Result<Dispatcher, DispatchError> {
        let (hand_off_sender, hand_offs) = mpsc::unbounded_channel();
        Ok(Dispatcher {
            slots: Arc::new(Slots::new(config.concurrency)),
            hand_off_sender,
            hand_offs: Some(hand_offs),
            sender: Sender::new(config.max_response_body.0, guard.clone())?,
            guard,
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

    /// A handle for publishers in this process to hand deliveries straight
    /// to this dispatcher (see [`hand_off`]).
    pub fn hand_off(&self) -> HandOff {
        HandOff::new(
            self.id.clone(),
            Arc::clone(&self.slots),
            self.hand_off_sender.clone(),
            &self.config,
        )
    }

    /// Counters that stay readable while [`Dispatcher::run`] runs.
    pub fn stats(&self) -> Arc<DispatchStats> {
        Arc::clone(&self.stats)
    }

    /// Runs until `shutdown` completes, then stops claiming, gives in-flight
    /// attempts `shutdown_grace` to finish (recording them), releases the
    /// leases of any that did not, and marks itself stopped.
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<StatsSnapshot, DispatchError> {
        // Always there: `run` takes the dispatcher, so it runs once.
        let hand_offs = self
            .hand_offs
            .take()
            .unwrap_or_else(|| mpsc::unbounded_channel().1);
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
        if let Err(err) = self.store.checkpoint_in_background().await {
            tracing::warn!(error = %err, "could not move checkpoints off the commit path");
        }
        tracing::info!(dispatcher = %self.id, host = %host, database = %self.store.location(), "dispatcher started");
        // Off the start path: resolving every endpoint's host may take a while.
        let judging = tokio::spawn(warn_of_blocked_endpoints(
            self.store.reads(),
            self.guard.clone(),
        ));
        let heartbeat = tokio::spawn(heartbeat_loop(
            self.store.clone(),
            self.id.clone(),
            Arc::clone(&self.stats),
            self.config.heartbeat_interval,
        ));
        let mut cycle = Cycle {
            running: Running::new(Arc::clone(&self.slots)),
            hand_offs,
            to_release: Vec::new(),
            pending: Vec::new(),
            failing_since: None,
            failures: 0,
            claim_at: Some(Instant::now()),
            stopping_by: None,
            last_reap: None,
            rollups: Rollups::default(),
            rollups_written_at: Instant::now(),
        };
        self.drive(&mut cycle, shutdown).await;
        self.finish(&mut cycle).await;
        heartbeat.abort();
        judging.abort();
        if let Err(err) = self.store.dispatcher_stopped(&self.id).await {
            tracing::warn!(error = %err, "could not mark the dispatcher stopped");
        }
        let summary = self.stats.snapshot();
        tracing::info!(dispatcher = %self.id, ?summary, "dispatcher stopped");
        Ok(summary)
    }

    /// The loop: run a cycle whenever there are outcomes to record or slots
    /// to fill; otherwise wait for an outcome, a change, a due time or shutdown.
    async fn drive(&self, cycle: &mut Cycle, shutdown: impl Future<Output = ()>) {
        let (outcome_sender, mut outcomes) = mpsc::unbounded_channel::<Outcome>();
        let mut changes = self.store.subscribe_changes();
        tokio::pin!(shutdown);
        loop {
            while let Ok(outcome) = outcomes.try_recv() {
                cycle.outcome_arrived(outcome);
            }
            while let Ok(claimed) = cycle.hand_offs.try_recv() {
                self.handed_off(cycle, claimed, &outcome_sender);
            }
            while let Some(done) = cycle.running.tasks.try_join_next_with_id() {
                cycle.running.finished(done);
            }
            let free = self.free_slots();
            let claim_due = cycle.stopping_by.is_none()
                && free > 0
                && cycle.claim_at.is_some_and(|at| at <= Instant::now());
            if !cycle.pending.is_empty() || claim_due || cycle.rollups_due() {
                let limit = if claim_due { free } else { 0 };
                if let Err(wait) = self.run_cycle(cycle, limit, &outcome_sender).await {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = &mut shutdown, if cycle.stopping_by.is_none() => self.begin_stopping(cycle),
                    }
                }
                continue;
            }
            if cycle.stopping_by.is_some() && cycle.running.tasks.is_empty() {
                return;
            }
            let mut wake_at = match (cycle.stopping_by, cycle.claim_at) {
                (Some(deadline), _) => deadline,
                (None, Some(at)) if free > 0 => tokio::time::Instant::from_std(at),
                // Nothing to claim for until a slot frees or something changes.
                _ => tokio::time::Instant::now() + self.config.poll_interval,
            };
            if !cycle.rollups.is_empty() {
                let rollups_at =
                    tokio::time::Instant::from_std(cycle.rollups_written_at + ROLLUPS_EVERY);
                wake_at = wake_at.min(rollups_at);
            }
            tokio::select! {
                () = &mut shutdown, if cycle.stopping_by.is_none() => self.begin_stopping(cycle),
                Some(outcome) = outcomes.recv() => cycle.outcome_arrived(outcome),
                Some(claimed) = cycle.hand_offs.recv() => {
                    self.handed_off(cycle, claimed, &outcome_sender);
                }
                Some(done) = cycle.running.tasks.join_next_with_id(), if !cycle.running.tasks.is_empty() => {
                    cycle.running.finished(done);
                }
                // A publish held the slots a due claim waits for, and gave some back.
                () = self.slots.returned(), if free == 0 && cycle.claim_at.is_some() => {}
                _ = changes.changed(), if cycle.stopping_by.is_none() => {
                    cycle.claim_at = Some(Instant::now());
                }
                () = tokio::time::sleep_until(wake_at) => {
                    if cycle.stopping_by.is_some() {
                        return;
                    }
                    // The poll fallback: look again even without a signal.
                    cycle.claim_at = Some(Instant::now());
                }
            }
        }
    }

    /// Slots a claim may fill now.
    fn free_slots(&self) -> usize {
        self.slots.free().min(self.config.batch_size)
    }

    /// Starts deliveries a publish in this process leased to us (their
    /// slots are already taken), or keeps them for release when stopping.
    fn handed_off(
        &self,
        cycle: &mut Cycle,
        claimed: Claimed,
        outcome_sender: &mpsc::UnboundedSender<Outcome>,
    ) {
        if cycle.stopping_by.is_some() {
            self.slots.give_back(claimed.deliveries.len());
            cycle
                .to_release
                .extend(claimed.deliveries.into_iter().map(|d| d.id));
            return;
        }
        let count = claimed.deliveries.len();
        self.stats
            .handed_off
            .fetch_add(count as u64, Ordering::Relaxed);
        metrics().handed_off(count);
        self.start_attempts(claimed, &mut cycle.running, outcome_sender);
    }

    fn begin_stopping(&self, cycle: &mut Cycle) {
        self.slots.close();
        if !cycle.running.tasks.is_empty() {
            tracing::info!(in_flight = cycle.running.tasks.len(), grace = ?self.config.shutdown_grace, "finishing in-flight attempts");
        }
        cycle.stopping_by = Some(tokio::time::Instant::now() + self.config.shutdown_grace);
    }

    /// One transaction: record pending outcomes, lease up to `limit` more
    /// and start them. On failure, returns how long to back off; pending
    /// outcomes are kept and tried again, until their leases would have
    /// expired anyway — then they are dropped and the deliveries will be
    /// attempted again, never marked done without a record.
    async fn run_cycle(
        &self,
        cycle: &mut Cycle,
        limit: usize,
        outcome_sender: &mpsc::UnboundedSender<Outcome>,
    ) -> Result<(), Duration> {
        // The claim takes the slots it fills inside its transaction.
        let taken = Taken::new(&self.slots);
        let reap_expired = limit > 0 && cycle.last_reap.is_none_or(|at| at.elapsed() >= REAP_EVERY);
        let request = ClaimRequest {
            owner: &self.id,
            limit,
            lease_ms: duration_ms(self.config.lease),
            default_max_in_flight: i64::from(self.config.max_in_flight_per_endpoint),
            default_timeout_ms: duration_ms(self.config.timeout),
            reap_expired,
            slots: Some(&taken),
        };
        let rollups = cycle.rollups_to_write(&self.id);
        let clock = Instant::now();
        let result = self
            .store
            .record_and_claim(
                &self.id,
                &cycle.pending,
                rollups.as_ref(),
                (limit > 0).then_some(&request),
            )
            .await;
        match result {
            Ok((summary, claimed)) => {
                metrics().cycle(
                    clock.elapsed(),
                    (limit > 0).then_some(claimed.deliveries.len()),
                );
                metrics().rate_limited(claimed.rate_limited);
                tracing::debug!(
                    recorded = cycle.pending.len(),
                    asked = limit,
                    claimed = claimed.deliveries.len(),
                    took_us = clock.elapsed().as_micros() as u64,
                    "cycle"
                );
                count_outcomes(&self.stats, &cycle.pending, summary.stale);
                cycle.rollups_recorded(&self.id, rollups.is_some());
                cycle.pending.clear();
                cycle.failing_since = None;
                cycle.failures = 0;
                if reap_expired {
                    cycle.last_reap = Some(Instant::now());
                }
                if limit > 0 {
                    cycle.claim_at = self.next_claim(&claimed, limit);
                    taken.keep(claimed.deliveries.len());
                    self.start_attempts(claimed, &mut cycle.running, outcome_sender);
                }
                Ok(())
            }
            Err(err) => {
                cycle.failures += 1;
                let since = *cycle.failing_since.get_or_insert_with(Instant::now);
                if !cycle.pending.is_empty() && since.elapsed() >= self.config.lease {
                    tracing::error!(error = %err, outcomes = cycle.pending.len(), "gave up recording outcomes; their leases have expired and the deliveries will be attempted again");
                    cycle.pending.clear();
                    cycle.failing_since = None;
                }
                let wait = backoff(cycle.failures);
                tracing::warn!(error = %err, retry_in = ?wait, "database cycle failed; retrying");
                Err(wait)
            }
        }
    }

    /// When to claim next after a claim that returned `claimed` of `asked`.
    fn next_claim(&self, claimed: &Claimed, asked: usize) -> Option<Instant> {
        let count = claimed.deliveries.len();
        let now = Instant::now();
        if count == asked {
            // Every slot filled: there may be more, claim as soon as slots free.
            return Some(now);
        }
        match claimed.next_due_in_ms {
            // Future work: look again when it is due (or at the poll).
            Some(ms) if ms > 0 => {
                Some(now + Duration::from_millis(ms as u64).min(self.config.poll_interval))
            }
            // Due work we could not take (another dispatcher holds it right now).
            Some(_) if count == 0 => Some(now + CONTENDED_RETRY),
            // Nothing due beyond the caps: a freed slot or a change wakes us.
            _ => None,
        }
    }

    fn start_attempts(
        &self,
        claimed: Claimed,
        running: &mut Running,
        outcome_sender: &mpsc::UnboundedSender<Outcome>,
    ) {
        let targets: HashMap<&str, Arc<PreparedTarget>> = claimed
            .endpoints
            .iter()
            .map(|(id, target)| (id.as_str(), running.targets.get(target)))
            .collect();
        for delivery in claimed.deliveries {
            // A target is always returned with its deliveries; if one were
            // missing the lease would simply expire and the work return.
            let Some(target) = targets.get(delivery.endpoint_id.as_str()).cloned() else {
                self.slots.give_back(1);
                continue;
            };
            let delivery_id = delivery.id.clone();
            let task = attempt_task(
                self.sender.clone(),
                Arc::clone(&self.policy),
                delivery,
                target,
                outcome_sender.clone(),
                Arc::clone(&self.stats),
            );
            let handle = running.tasks.spawn(task);
            running.leased.insert(handle.id(), delivery_id);
        }
    }

    /// After the grace period: abort what still runs, release its leases so
    /// another dispatcher takes it at once, and record what finished.
    async fn finish(&self, cycle: &mut Cycle) {
        cycle.running.tasks.abort_all();
        while let Some(done) = cycle.running.tasks.join_next_with_id().await {
            cycle.running.finished(done);
        }
        // Publishes handing off from now on get their deliveries back to release.
        cycle.hand_offs.close();
        while let Ok(claimed) = cycle.hand_offs.try_recv() {
            cycle
                .to_release
                .extend(claimed.deliveries.into_iter().map(|d| d.id));
        }
        let mut unfinished: Vec<String> = cycle.running.leased.drain().map(|(_, id)| id).collect();
        unfinished.append(&mut cycle.to_release);
        if !unfinished.is_empty() {
            match self.store.release(&self.id, &unfinished).await {
                Ok(released) => tracing::info!(released, "released leases of unfinished attempts"),
                Err(err) => {
                    tracing::warn!(error = %err, "could not release leases; they will expire")
                }
            }
        }
        for attempt in 1..=3 {
            if cycle.pending.is_empty() && cycle.rollups.is_empty() {
                break;
            }
            // Stopping: the cycle writes every rollup it gathered.
            let rollups = cycle.rollups_to_write(&self.id);
            let recorded = self
                .store
                .record_and_claim(&self.id, &cycle.pending, rollups.as_ref(), None)
                .await;
            match recorded {
                Ok((summary, _)) => {
                    count_outcomes(&self.stats, &cycle.pending, summary.stale);
                    cycle.rollups_recorded(&self.id, rollups.is_some());
                    cycle.pending.clear();
                }
                Err(err) => {
                    tracing::warn!(error = %err, attempt, "could not record the last outcomes");
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        }
    }
}

/// Attempt tasks in progress and the delivery each one holds.
struct Running {
    tasks: JoinSet<()>,
    leased: HashMap<tokio::task::Id, String>,
    /// Each task holds one slot, given back when it ends.
    slots: Arc<Slots>,
    /// The endpoints' targets as attempts use them, kept across claims.
    targets: PreparedTargets,
}

impl Running {
    fn new(slots: Arc<Slots>) -> Running {
        Running {
            tasks: JoinSet::new(),
            leased: HashMap::new(),
            slots,
            targets: PreparedTargets::default(),
        }
    }

    fn finished(&mut self, done: Result<(tokio::task::Id, ()), tokio::task::JoinError>) {
        self.slots.give_back(1);
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

/// Attempts one delivery and sends the outcome back to the loop.
async fn attempt_task(
    sender: Sender,
    policy: Arc<RetryPolicy>,
    delivery: ClaimedDelivery,
    target: Arc<PreparedTarget>,
    outcomes: mpsc::UnboundedSender<Outcome>,
    stats: Arc<DispatchStats>,
) {
    let attempt_number = delivery.attempts + 1;
    let result = sender
        .attempt(
            &target,
            &delivery.event_id,
            &delivery.topic,
            delivery.payload,
        )
        .await;
    stats.attempted.fetch_add(1, Ordering::Relaxed);
    let next = match result.error_kind {
        None => NextStep::Succeeded,
        // Nothing was sent, and retrying cannot help until the policy or DNS
        // changes; a manual retry then starts a fresh schedule.
        Some(ErrorKind::BlockedDestination) => NextStep::Dead,
        Some(_) => policy.after_failure(attempt_number, result.retry_after),
    };
    let disable_endpoint = (result.status == Some(410)).then(|| {
        format!(
            "answered 410 Gone to delivery {} (attempt {attempt_number})",
            delivery.id
        )
    });
    let published_at = id_time_ms(&delivery.event_id);
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
        published_at,
        retry_after_ms: result
            .retry_after
            .map(|wait| i64::try_from(wait.as_millis()).unwrap_or(i64::MAX)),
    };
    // The loop keeps the receiver until every attempt task has ended.
    let _ = outcomes.send(outcome);
}

/// Counts outcomes once they are committed, in the dispatcher's stats and
/// the process's metrics.
fn count_outcomes(stats: &DispatchStats, outcomes: &[Outcome], stale: u64) {
    warn_of_blocked_outcomes(outcomes);
    let metrics = metrics();
    let now = now_millis();
    for outcome in outcomes {
        let attempt = &outcome.attempt;
        metrics.attempt_recorded(
            &attempt.endpoint_id,
            attempt.error_kind,
            attempt.status_code,
            attempt.duration_ms,
        );
        let counter = match outcome.next {
            NextStep::Succeeded => {
                let latency = outcome
                    .published_at
                    .map(|at| Duration::from_millis(u64::try_from(now - at).unwrap_or(0)));
                metrics.delivery_succeeded(latency);
                &stats.succeeded
            }
            NextStep::RetryIn(_) => &stats.failed,
            NextStep::Dead => {
                metrics.delivery_dead();
                &stats.dead
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    stats.stale.fetch_add(stale, Ordering::Relaxed);
}

/// Logs each endpoint the guard would now refuse, so that an upgrade or a
/// `[network]` change that starts blocking an internal receiver is never
/// silent: its deliveries will end dead with `blocked_destination`.
async fn warn_of_blocked_endpoints(reads: Reads, guard: Guard) {
    let endpoints = match reads.list_endpoints(None).await {
        Ok(endpoints) => endpoints,
        Err(err) => {
            tracing::warn!(error = %err, "could not list endpoints to check them against the outbound guard");
            return;
        }
    };
    for endpoint in endpoints {
        if let Err(blocked) = guard.check_url(&endpoint.url).await {
            tracing::warn!(
                endpoint = %endpoint.id,
                tenant = %endpoint.tenant_name,
                name = %endpoint.name,
                reason = %blocked,
                "the outbound guard blocks this endpoint: its deliveries will end dead (allow it with network.allow)"
            );
        }
    }
}

/// Logs the deliveries the outbound guard refused, once per endpoint per
/// batch, with the address and the rule (operators only ever read logs).
fn warn_of_blocked_outcomes(outcomes: &[Outcome]) {
    let mut blocked: HashMap<&str, (usize, &str)> = HashMap::new();
    for outcome in outcomes {
        let attempt = &outcome.attempt;
        if attempt.error_kind == Some(ErrorKind::BlockedDestination) {
            let entry = blocked
                .entry(attempt.endpoint_id.as_str())
                .or_insert((0, attempt.error_message.as_deref().unwrap_or_default()));
            entry.0 += 1;
        }
    }
    for (endpoint, (deliveries, reason)) in blocked {
        tracing::warn!(
            endpoint,
            deliveries,
            reason,
            "the outbound guard refused deliveries; they end dead (network.allow lifts the block)"
        );
    }
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
