//! Publishing: an event is validated once, then committed with all its
//! deliveries, and what the dispatcher in this process has room for is
//! handed straight to it.
//!
//! [`Publisher`] is the group commit the API publishes through: concurrent
//! publishes are queued to a few committer tasks, and each commits
//! everything waiting in one transaction. A publish is answered only after
//! the transaction holding its event has committed, yet a burst of them
//! shares one commit instead of each paying for its own.
//!
//! Events are validated before they are queued, so a bad one fails alone.
//! Should a whole batch still fail in the store, its events are retried one
//! by one, so one event the database refuses cannot fail its neighbours.
//! Idempotency holds across batches and inside one: the store treats a key
//! repeated within a batch as a duplicate of its first use.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinSet;

use super::validate::validate_idempotency_key;
use super::{Ops, OpsError, Result, validate_payload};
use crate::metrics::{EventKind, metrics};
use crate::store::{Backend, NewEvent, Published, StoreError};
use crate::topic::Topic;

/// An event as a producer gives it.
#[derive(Debug, Clone, Default)]
pub struct EventInput {
    /// Tenant id or name; exclusive with `broadcast`. A tenant-limited
    /// actor may leave it out to mean its own tenant.
    pub tenant: Option<String>,
    pub broadcast: bool,
    pub topic: String,
    pub payload: Payload,
    pub idempotency_key: Option<String>,
}

/// An event's payload: JSON text, delivered byte for byte as given.
#[derive(Debug, Clone)]
pub enum Payload {
    /// Text not yet known to be JSON (from the command line or a file).
    Text(String),
    /// JSON its reader has already parsed (an API request body), so it is
    /// not parsed again.
    Json(Box<RawValue>),
}

impl Payload {
    /// The payload's text.
    pub fn as_str(&self) -> &str {
        match self {
            Payload::Text(text) => text,
            Payload::Json(json) => json.get(),
        }
    }

    /// The text, without copying it.
    pub(super) fn into_string(self) -> String {
        match self {
            Payload::Text(text) => text,
            Payload::Json(json) => String::from(Box::<str>::from(json)),
        }
    }
}

impl Default for Payload {
    fn default() -> Payload {
        Payload::Text(String::new())
    }
}

impl From<String> for Payload {
    fn from(text: String) -> Payload {
        Payload::Text(text)
    }
}

impl From<&str> for Payload {
    fn from(text: &str) -> Payload {
        Payload::Text(text.to_string())
    }
}

impl Ops {
    /// Validates one event for publishing: its topic, payload (JSON, within
    /// the size limit), idempotency key, and its audience: a tenant the
    /// actor may act for, or a broadcast. What can be checked without the
    /// database is checked first.
    pub async fn validate_event(&self, input: EventInput) -> Result<NewEvent> {
        let topic =
            Topic::parse(&input.topic).map_err(|e| OpsError::invalid("topic", e.to_string()))?;
        if let Some(reason) = crate::topic::reserved_reason(&topic) {
            return Err(OpsError::invalid("topic", reason));
        }
        validate_payload(&input.payload, self.max_payload)?;
        if let Some(key) = &input.idempotency_key {
            validate_idempotency_key(key)?;
        }
        let tenant_id = self.audience(input.tenant, input.broadcast).await?;
        Ok(NewEvent {
            tenant_id,
            topic: topic.as_str().to_string(),
            payload: input.payload.into_string(),
            idempotency_key: input.idempotency_key,
        })
    }

    /// The tenant an event is for (`None`: broadcast to every tenant).
    async fn audience(&self, tenant: Option<String>, broadcast: bool) -> Result<Option<String>> {
        match (tenant, broadcast) {
            (_, true) if self.scope.is_some() => Err(OpsError::Forbidden(
                "a tenant key cannot broadcast: broadcasts reach every tenant".to_string(),
            )),
            (Some(_), true) => Err(OpsError::invalid(
                "tenant",
                "give a tenant or broadcast, not both",
            )),
            (None, true) => Ok(None),
            (Some(key), false) => Ok(Some(self.tenant(&key).await?.id)),
            (None, false) => match &self.scope {
                Some(own) => Ok(Some(self.tenant(own).await?.id)),
                None => Err(OpsError::invalid(
                    "tenant",
                    "missing: an event is for one tenant, or broadcast to every tenant",
                )),
            },
        }
    }

    /// Validates and publishes one event in a transaction of its own.
    pub async fn publish(&self, input: EventInput) -> Result<Published> {
        let event = self.validate_event(input).await?;
        let published = self
            .publish_batch(std::slice::from_ref(&event))
            .await?
            .pop()
            .ok_or_else(nothing_published)?;
        refuse_conflict(&event, published)
    }

    /// Publishes events already checked by [`Ops::validate_event`] in one
    /// transaction; results are in input order. With a dispatcher in this
    /// process ([`Ops::handing_off_to`]), what it has room for of the new
    /// deliveries is handed straight to it.
    pub async fn publish_batch(&self, events: &[NewEvent]) -> Result<Vec<Published>> {
        let first_delay_ms = self.retry_policy.first_delay_ms();
        let Some(hand_off) = &self.hand_off else {
            let published = self.store.publish(events, first_delay_ms).await?;
            count_published(events, &published);
            return Ok(published);
        };
        let reservation = hand_off.reserve();
        let (published, claimed) = self
            .store
            .publish_handing_off(events, first_delay_ms, Some(&reservation.request()))
            .await?;
        count_published(events, &published);
        if let Err(returned) = reservation.deliver(claimed) {
            // The dispatcher stopped after the reservation: the deliveries
            // are committed but leased to it, so give them back to the queue.
            let ids: Vec<String> = returned.deliveries.into_iter().map(|d| d.id).collect();
            if let Err(err) = self.store.release(hand_off.owner(), &ids).await {
                // Not lost: their leases expire and any dispatcher reaps them.
                tracing::warn!(%err, deliveries = ids.len(), "could not release handed-off deliveries");
            }
        }
        Ok(published)
    }
}

/// A publish whose idempotency key was first used for a different request
/// (another topic or payload) is refused as a conflict naming that
/// request's event: answering it as a duplicate would drop the new event
/// without a word.
fn refuse_conflict(event: &NewEvent, published: Published) -> Result<Published> {
    if !published.conflict {
        return Ok(published);
    }
    Err(OpsError::Store(StoreError::Conflict(format!(
        "idempotency_key {:?} was first used for a different request (event {}): a key repeats one request; use a new key for a new event",
        event.idempotency_key.as_deref().unwrap_or_default(),
        published.event_id
    ))))
}

/// Counts a committed publish transaction in the process's metrics; a
/// repeated idempotency key created nothing and counts for nothing.
fn count_published(events: &[NewEvent], published: &[Published]) {
    let metrics = metrics();
    metrics.publish_batch(events.len());
    let (mut tenant, mut broadcast, mut deliveries) = (0, 0, 0);
    for (event, result) in events.iter().zip(published) {
        if result.duplicate {
            continue;
        }
        match event.tenant_id {
            Some(_) => tenant += 1,
            None => broadcast += 1,
        }
        deliveries += u64::try_from(result.deliveries).unwrap_or(0);
    }
    metrics.events_published(EventKind::Tenant, tenant);
    metrics.events_published(EventKind::Broadcast, broadcast);
    metrics.deliveries_created(deliveries);
}

/// Most events committed in one transaction.
const MAX_BATCH: usize = 512;

/// Publishes waiting for a committer; beyond this, publishers wait to queue.
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
/// at a steady 400 events/s it doubled the median time from publish to
/// delivery.
const BUSY_BATCH: usize = 8;

/// How recent that busy commit must be for the load to count as current.
const BUSY_WITHIN: Duration = Duration::from_millis(20);

/// One queued publish and where its answer goes.
struct Pending {
    event: NewEvent,
    reply: oneshot::Sender<Result<Published>>,
}

/// The front of the group commit: hand it an event, get the committed result.
#[derive(Clone)]
pub struct Publisher {
    queue: mpsc::Sender<Pending>,
    stats: Arc<PublishStats>,
}

/// The committer tasks; finish when every [`Publisher`] handle is dropped.
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
pub struct PublishStats {
    /// Transactions committed.
    pub batches: AtomicU64,
    /// Events in those transactions.
    pub events: AtomicU64,
}

impl PublishStats {
    fn committed(&self, events: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(events as u64, Ordering::Relaxed);
    }
}

impl Publisher {
    /// Starts the committer tasks, which publish through `ops` (and so hand
    /// off to its dispatcher, if it has one). SQLite has one writer, so one
    /// committer; on Postgres a second one prepares its batch while the
    /// first waits for its commit.
    pub fn start(ops: Ops) -> (Publisher, Committers) {
        let committers = match ops.store.backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => 2,
        };
        let stats = Arc::new(PublishStats::default());
        let (queue, receiver) = mpsc::channel(QUEUE_DEPTH);
        let receiver = Arc::new(Mutex::new(receiver));
        let mut tasks = JoinSet::new();
        for _ in 0..committers {
            let committer = Committer {
                ops: ops.clone(),
                stats: Arc::clone(&stats),
            };
            let receiver = Arc::clone(&receiver);
            tasks.spawn(async move { committer.run(receiver).await });
        }
        (Publisher { queue, stats }, Committers { tasks })
    }

    /// Validates `input` as `ops`'s actor may publish it, and returns once
    /// it is committed.
    pub async fn publish(&self, ops: &Ops, input: EventInput) -> Result<Published> {
        let event = ops.validate_event(input).await?;
        let (reply, answer) = oneshot::channel();
        let stopped =
            || OpsError::Unavailable("the server is shutting down; publish again".to_string());
        self.queue
            .send(Pending { event, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Transactions and events committed so far.
    pub fn stats(&self) -> Arc<PublishStats> {
        Arc::clone(&self.stats)
    }
}

/// One committer task's means.
struct Committer {
    ops: Ops,
    stats: Arc<PublishStats>,
}

impl Committer {
    /// Takes whatever is queued (waiting for at least one), commits it, answers.
    async fn run(&self, receiver: Arc<Mutex<mpsc::Receiver<Pending>>>) {
        // When the last commit of a busy-sized batch ended.
        let mut last_busy_commit: Option<tokio::time::Instant> = None;
        loop {
            let lingers = last_busy_commit.is_some_and(|at| at.elapsed() < BUSY_WITHIN);
            let batch = next_batch(&receiver, lingers).await;
            if batch.is_empty() {
                return;
            }
            let busy = batch.len() >= BUSY_BATCH;
            self.commit(batch).await;
            if busy {
                last_busy_commit = Some(tokio::time::Instant::now());
            }
        }
    }

    async fn commit(&self, batch: Vec<Pending>) {
        let (events, replies): (Vec<NewEvent>, Vec<_>) =
            batch.into_iter().map(|p| (p.event, p.reply)).unzip();
        match self.ops.publish_batch(&events).await {
            Ok(results) if results.len() == events.len() => {
                self.stats.committed(events.len());
                for ((reply, result), event) in replies.into_iter().zip(results).zip(&events) {
                    let _ = reply.send(refuse_conflict(event, result));
                }
            }
            outcome if events.len() > 1 => {
                let error = outcome.err().map(|e| e.to_string()).unwrap_or_default();
                tracing::warn!(
                    events = events.len(),
                    %error,
                    "a publish batch failed; committing its events one by one"
                );
                self.commit_one_by_one(events, replies).await;
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

    async fn commit_one_by_one(
        &self,
        events: Vec<NewEvent>,
        replies: Vec<oneshot::Sender<Result<Published>>>,
    ) {
        for (event, reply) in events.into_iter().zip(replies) {
            let result = self
                .ops
                .publish_batch(std::slice::from_ref(&event))
                .await
                .and_then(|mut results| results.pop().ok_or_else(nothing_published))
                .and_then(|published| refuse_conflict(&event, published));
            if result.is_ok() {
                self.stats.committed(1);
            }
            let _ = reply.send(result);
        }
    }
}

/// Everything queued (waiting for at least one publish), and under load
/// what arrives within [`LINGER`] too; empty once every [`Publisher`] is gone.
async fn next_batch(receiver: &Mutex<mpsc::Receiver<Pending>>, lingers: bool) -> Vec<Pending> {
    let mut batch = Vec::new();
    // Holding the lock while waiting makes the other committers queue behind
    // this one, so each batch takes everything that arrived while the
    // previous one was committing.
    let mut receiver = receiver.lock().await;
    if receiver.recv_many(&mut batch, MAX_BATCH).await == 0 || !lingers {
        return batch;
    }
    let deadline = tokio::time::Instant::now() + LINGER;
    while batch.len() < MAX_BATCH {
        let room = MAX_BATCH - batch.len();
        let more = receiver.recv_many(&mut batch, room);
        match tokio::time::timeout_at(deadline, more).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    batch
}

fn nothing_published() -> OpsError {
    OpsError::Store(StoreError::Conflict("publish returned nothing".to_string()))
}
