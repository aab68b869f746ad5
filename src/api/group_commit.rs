//! Group commit for publishing: concurrent publish requests are queued to a
//! few committer tasks, and each commits everything waiting in one
//! transaction. A request is answered only after the transaction holding
//! its event has committed, yet a burst of requests shares one commit
//! instead of each paying for its own.
//!
//! Requests are validated before they are queued, so a bad request fails
//! alone. Should a whole batch still fail in the store, its events are
//! retried one by one, so one event the database refuses cannot fail its
//! neighbours. Idempotency holds across batches and inside one: the store
//! treats a key repeated within a batch as a duplicate of its first use.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinSet;

use super::problem::Problem;
use crate::dispatch::hand_off::HandOff;
use crate::ops::{Ops, OpsError};
use crate::store::{NewEvent, Published, StoreError};

/// Most events committed in one transaction.
const MAX_BATCH: usize = 512;

/// Requests waiting for a committer; beyond this, publishers wait to queue.
const QUEUE_DEPTH: usize = 4096;

/// Under load, how long a committer waits for more events before it commits
/// a batch. A transaction's cost is mostly fixed (and on SQLite it holds the
/// one writer the dispatcher needs too), so a little company saves more than
/// it costs.
const LINGER: Duration = Duration::from_millis(2);

/// "Under load": the previous commit carried at least `BUSY_BATCH` events
/// (that many arrived while one committed) and ended less than
/// `BUSY_WITHIN` ago. Below that, publishes already find company without
/// waiting for it, and a linger would only add its wait to every publish:
/// at 400 events/s it doubled p50 publish->delivered (BENCHMARKS.md).
const BUSY_BATCH: usize = 8;

/// How recent that busy commit must be for the load to count as current.
const BUSY_WITHIN: Duration = Duration::from_millis(20);

/// One queued publish and where its answer goes.
struct Pending {
    event: NewEvent,
    reply: oneshot::Sender<Result<Published, OpsError>>,
}

/// The front of the group commit: hand it an event, get the committed result.
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::Sender<Pending>,
}

/// The committer tasks; finish when every [`GroupCommit`] handle is dropped.
pub struct Committers {
    tasks: JoinSet<()>,
}

impl Committers {
    /// Waits until every queued event is committed and the committers ended.
    pub async fn finish(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Counters of the group commit, for benchmarks and tests.
#[derive(Debug, Default)]
pub struct GroupStats {
    /// Transactions committed.
    pub batches: std::sync::atomic::AtomicU64,
    /// Events in those transactions.
    pub events: std::sync::atomic::AtomicU64,
}

impl GroupCommit {
    /// Starts `committers` tasks publishing through `ops` (at least one).
    /// More than one lets a batch be collected and prepared while another
    /// commits; on SQLite, whose one writer serialises commits anyway, one is enough.
    /// With `hand_off`, fresh deliveries the dispatcher has room for go
    /// straight to it.
    pub fn start(
        ops: Ops,
        committers: usize,
        hand_off: Option<HandOff>,
        stats: Arc<GroupStats>,
    ) -> (GroupCommit, Committers) {
        let (queue, receiver) = mpsc::channel(QUEUE_DEPTH);
        let receiver = Arc::new(Mutex::new(receiver));
        let mut tasks = JoinSet::new();
        for _ in 0..committers.max(1) {
            let committer = Committer {
                hand_off: hand_off.clone(),
                ops: ops.clone(),
                stats: Arc::clone(&stats),
            };
            let receiver = Arc::clone(&receiver);
            tasks.spawn(async move { committer.run(receiver).await });
        }
        (GroupCommit { queue }, Committers { tasks })
    }

    /// Publishes a validated event; returns once it is committed.
    pub async fn publish(&self, event: NewEvent) -> Result<Published, Problem> {
        let (reply, answer) = oneshot::channel();
        let stopped = || Problem::unavailable("the server is shutting down; publish again");
        self.queue
            .send(Pending { event, reply })
            .await
            .map_err(|_| stopped())?;
        Ok(answer.await.map_err(|_| stopped())??)
    }
}

/// One committer task's means.
struct Committer {
    ops: Ops,
    /// The dispatcher in this process, if one runs.
    hand_off: Option<HandOff>,
    stats: Arc<GroupStats>,
}

impl Committer {
    /// Takes whatever is queued (waiting for at least one), commits it, answers.
    async fn run(&self, receiver: Arc<Mutex<mpsc::Receiver<Pending>>>) {
        // When the last commit of a busy-sized batch ended.
        let mut last_busy_commit: Option<tokio::time::Instant> = None;
        loop {
            let mut batch = Vec::new();
            {
                // Holding the lock while waiting makes the other committers queue
                // behind this one, so each batch takes everything that arrived
                // while the previous one was committing.
                let mut receiver = receiver.lock().await;
                if receiver.recv_many(&mut batch, MAX_BATCH).await == 0 {
                    return;
                }
                if last_busy_commit.is_some_and(|at| at.elapsed() < BUSY_WITHIN) {
                    let deadline = tokio::time::Instant::now() + LINGER;
                    while batch.len() < MAX_BATCH {
                        let room = MAX_BATCH - batch.len();
                        let more = receiver.recv_many(&mut batch, room);
                        match tokio::time::timeout_at(deadline, more).await {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                    }
                }
            }
            let busy = batch.len() >= BUSY_BATCH;
            self.commit(batch).await;
            if busy {
                last_busy_commit = Some(tokio::time::Instant::now());
            }
        }
    }

    async fn commit(&self, batch: Vec<Pending>) {
        use std::sync::atomic::Ordering::Relaxed;
        let (ops, stats) = (&self.ops, &self.stats);
        let hand_off = self.hand_off.as_ref();
        let (events, replies): (Vec<NewEvent>, Vec<_>) =
            batch.into_iter().map(|p| (p.event, p.reply)).unzip();
        match ops.publish_validated(&events, hand_off).await {
            Ok(results) if results.len() == events.len() => {
                stats.batches.fetch_add(1, Relaxed);
                stats.events.fetch_add(events.len() as u64, Relaxed);
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(result));
                }
            }
            outcome if events.len() > 1 => {
                let error = outcome.err().map(|e| e.to_string()).unwrap_or_default();
                tracing::warn!(
                    events = events.len(),
                    %error,
                    "a publish batch failed; committing its events one by one"
                );
                for (event, reply) in events.into_iter().zip(replies) {
                    let result = ops
                        .publish_validated(std::slice::from_ref(&event), hand_off)
                        .await
                        .and_then(|mut results| results.pop().ok_or_else(nothing_published));
                    if result.is_ok() {
                        stats.batches.fetch_add(1, Relaxed);
                        stats.events.fetch_add(1, Relaxed);
                    }
                    let _ = reply.send(result);
                }
            }
            // A batch of one: its own result is the answer.
            Ok(_) => {
                for reply in replies {
                    let _ = reply.send(Err(nothing_published()));
                }
            }
            Err(err) => {
                if let Some(reply) = replies.into_iter().next() {
                    let _ = reply.send(Err(err));
                }
            }
        }
    }
}

fn nothing_published() -> OpsError {
    OpsError::Store(StoreError::Conflict("publish returned nothing".to_string()))
}
