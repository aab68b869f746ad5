//! Publishing: events and their fan-out of deliveries, committed together.
//!
//! A batch of events costs a fixed handful of statements however large it is
//! (events, deliveries and idempotency keys each go in as one set), so
//! callers that group concurrent publishes into one call share one commit.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use sqlx::{Connection, Database, Encode, Executor, FromRow, IntoArguments, Type};

use super::on_db;
use super::queue::{LEASE_MARGIN_MS, TargetRow};
use super::sql::dialect::Dialect;
use super::sql::values::execute_rows;
use super::tx::notify_change;
use super::{Claimed, ClaimedDelivery, Result, Store, json_list, to_json};
use crate::model::{IdKind, new_id};
use crate::topic::pattern_matches;

/// A validated event to publish.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// `None` broadcasts to every tenant.
    pub tenant_id: Option<String>,
    pub topic: String,
    /// The payload exactly as published.
    pub payload: String,
    pub idempotency_key: Option<String>,
}

/// What publishing one event did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Published {
    pub event_id: String,
    /// Deliveries created (for a duplicate: created by the original).
    pub deliveries: i64,
    /// The idempotency key was seen before; nothing new was created.
    pub duplicate: bool,
    /// The key was first used for a different request (another topic or
    /// payload): nothing was created, and `event_id` is that request's
    /// event. Callers refuse it as a conflict.
    #[serde(skip)]
    pub conflict: bool,
}

/// The idempotency scope of broadcasts, which have no tenant.
const BROADCAST_SCOPE: &str = "*";

/// One subscription as fan-out needs it: (endpoint id, its tenant, pattern).
type Target = (String, String, String);

/// An event row as the insert statement binds it (`bind_event!`) or
/// reads it from JSON.
#[derive(Serialize)]
struct EventRow<'a> {
    id: &'a str,
    tenant_id: Option<&'a str>,
    topic: &'a str,
    payload: &'a str,
    idempotency_key: Option<&'a str>,
}

/// A delivery row as the insert statement binds it (`bind_delivery!`) or
/// reads it from JSON.
#[derive(Serialize)]
struct DeliveryRow<'a> {
    id: String,
    event_id: &'a str,
    endpoint_id: &'a str,
    tenant_id: &'a str,
    topic: &'a str,
    /// Set with the lease when the delivery is handed off (else pending).
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lease_owner: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lease_expires_at: Option<i64>,
    #[serde(skip)]
    payload: &'a str,
}

/// Binds the columns of `insert_events` for one `Option<&EventRow>`
/// (`None`: a pad row, all NULL). A macro: it binds onto either backend's
/// query type, for [`execute_rows!`].
macro_rules! bind_event {
    ($query:expr, $row:expr) => {{
        let row: Option<&EventRow<'_>> = $row;
        $query
            .bind(row.map(|r| r.id))
            .bind(row.and_then(|r| r.tenant_id))
            .bind(row.map(|r| r.topic))
            .bind(row.map(|r| r.payload))
            .bind(row.and_then(|r| r.idempotency_key))
    }};
}

/// Binds the columns of `insert_deliveries` for one `Option<&DeliveryRow>`
/// (`None`: a pad row, all NULL). A macro: it binds onto either backend's
/// query type, for [`execute_rows!`].
macro_rules! bind_delivery {
    ($query:expr, $row:expr) => {{
        let row: Option<&DeliveryRow<'_>> = $row;
        $query
            .bind(row.map(|r| r.id.as_str()))
            .bind(row.map(|r| r.event_id))
            .bind(row.map(|r| r.endpoint_id))
            .bind(row.map(|r| r.tenant_id))
            .bind(row.map(|r| r.topic))
            .bind(row.and_then(|r| r.state))
            .bind(row.and_then(|r| r.lease_owner))
            .bind(row.and_then(|r| r.lease_expires_at))
    }};
}

/// An endpoint of a publish batch as the hand-off sees it.
#[derive(sqlx::FromRow)]
struct HandOffHead {
    cap: i64,
    in_flight: i64,
    /// Due work already waits in its queue: it goes first, so no hand-off.
    queued: bool,
    #[sqlx(flatten)]
    target: TargetRow,
}

impl HandOffHead {
    /// How many fresh deliveries the endpoint may take now: none while due
    /// work waits in its queue, else its room under the cap.
    fn room(&self) -> i64 {
        if self.queued {
            0
        } else {
            (self.cap - self.in_flight).max(0)
        }
    }
}

/// Reads the [`HandOffHead`]s of the endpoints in `ids` on `conn`.
async fn hand_off_heads<C>(
    sql: &Dialect,
    conn: &mut C,
    ids: &[String],
    request: &HandOffRequest<'_>,
    now: i64,
) -> Result<Vec<HandOffHead>, sqlx::Error>
where
    C: Connection,
    for<'c> &'c mut C: Executor<'c, Database = C::Database>,
    <C::Database as Database>::Arguments: IntoArguments<C::Database>,
    for<'q> String: Encode<'q, C::Database> + Type<C::Database>,
    for<'q> i64: Encode<'q, C::Database> + Type<C::Database>,
    HandOffHead: for<'r> FromRow<'r, <C::Database as Database>::Row>,
{
    sqlx::query_as(sql.hand_off_heads)
        .bind(json_list(ids))
        .bind(request.default_max_in_flight)
        .bind(now)
        .fetch_all(conn)
        .await
}

/// What a publish needs to hand fresh deliveries straight to a dispatcher
/// in its own process (see [`Store::publish_handing_off`]).
pub struct HandOffRequest<'a> {
    /// The dispatcher's id; leases carry it.
    pub owner: &'a str,
    /// How long the lease lasts unless the endpoint's timeout needs longer.
    pub lease_ms: i64,
    /// In-flight cap for endpoints without their own.
    pub default_max_in_flight: i64,
    /// Attempt timeout for endpoints without their own.
    pub default_timeout_ms: i64,
    /// The dispatcher's free attempt slots: one is taken per delivery handed off.
    pub slots: &'a dyn AttemptSlots,
}

/// A dispatcher's free attempt slots, taken by the transaction that leases
/// deliveries for them (a publish handing off, or a claim).
pub trait AttemptSlots: Sync + std::fmt::Debug {
    /// Takes up to `wanted` free slots; returns how many it got.
    fn take(&self, wanted: usize) -> usize;

    /// Returns `count` slots taken but not filled after all.
    fn give_back(&self, count: usize);
}

/// An idempotency key row (also the lookup key for duplicates).
#[derive(Serialize)]
struct KeyRow<'a> {
    scope: &'a str,
    key: &'a str,
    event_id: &'a str,
    delivery_count: i64,
    request_hash: &'a str,
}

/// One event of the batch as planned before anything is written.
struct Planned<'a> {
    event: &'a NewEvent,
    scope: &'a str,
    event_id: String,
    endpoints: Vec<(&'a str, &'a str)>,
    /// Index of an earlier event in the batch with the same key.
    repeat_of: Option<usize>,
    /// What request the event is, for an idempotency key to be compared by.
    request_hash: String,
}

impl Store {
    /// Publishes events in one transaction. When this returns, every event
    /// and all its deliveries are durable. Fan-out only reaches endpoints of
    /// the event's tenant, or of every tenant for a broadcast. Deliveries
    /// are due `first_delay_ms` after publishing (the schedule's first step).
    pub async fn publish(
        &self,
        events: &[NewEvent],
        first_delay_ms: i64,
    ) -> Result<Vec<Published>> {
        Ok(self
            .publish_handing_off(events, first_delay_ms, None)
            .await?
            .0)
    }

    /// [`Store::publish`], leasing what it can of the new deliveries to the
    /// dispatcher `hand_off.owner` in the same transaction, and returning
    /// them to be attempted at once instead of waiting for a claim. A
    /// delivery is handed off only when it is due at once, its endpoint is
    /// active with a free slot under its cap (counted in the database, so
    /// caps hold across dispatchers), nothing due waits ahead of it in that
    /// endpoint's queue, and the dispatcher has a free slot for it.
    pub async fn publish_handing_off(
        &self,
        events: &[NewEvent],
        first_delay_ms: i64,
        hand_off: Option<&HandOffRequest<'_>>,
    ) -> Result<(Vec<Published>, Claimed)> {
        let hand_off = hand_off.filter(|_| first_delay_ms <= 0);
        let (published, handed_off, queued) = on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = self.clock.now(sql, &mut *tx).await?;
            // Subscriptions per scope, read once per transaction however many events share it.
            let mut targets: HashMap<&str, Vec<Target>> = HashMap::new();
            for event in events {
                let scope = scope_of(event);
                if targets.contains_key(scope) {
                    continue;
                }
                let found: Vec<Target> = match &event.tenant_id {
                    Some(tenant_id) => {
                        sqlx::query_as(sql.tenant_subscriptions)
                            .bind(tenant_id)
                            .fetch_all(&mut *tx)
                            .await?
                    }
                    None => {
                        sqlx::query_as(sql.all_subscriptions)
                            .fetch_all(&mut *tx)
                            .await?
                    }
                };
                targets.insert(scope, found);
            }
            let planned = plan(events, &targets);
            // Claim the keys first: a key another transaction already holds
            // makes its event a duplicate (on Postgres a concurrent holder
            // is waited for, so the same key never creates two events).
            let mut keys: Vec<KeyRow> = planned
                .iter()
                .filter(|p| p.repeat_of.is_none())
                .filter_map(|p| {
                    Some(KeyRow {
                        scope: p.scope,
                        key: p.event.idempotency_key.as_deref()?,
                        event_id: &p.event_id,
                        delivery_count: p.endpoints.len() as i64,
                        request_hash: &p.request_hash,
                    })
                })
                .collect();
            // Concurrent batches (the API's group commit) claim keys in one
            // order, so two of them never wait on each other's keys in a cycle.
            keys.sort_unstable_by(|a, b| (a.scope, a.key).cmp(&(b.scope, b.key)));
            let mut originals: HashMap<(String, String), (String, i64, Option<String>)> =
                HashMap::new();
            if !keys.is_empty() {
                let claimed: Vec<(String, String)> = sqlx::query_as(sql.insert_idempotency_keys)
                    .bind(to_json(&keys))
                    .bind(now)
                    .bind(self.idempotency_expired_before(now))
                    .fetch_all(&mut *tx)
                    .await?;
                let claimed: HashSet<(String, String)> = claimed.into_iter().collect();
                let taken: Vec<&KeyRow> = keys
                    .iter()
                    .filter(|k| !claimed.contains(&(k.scope.to_string(), k.key.to_string())))
                    .collect();
                if !taken.is_empty() {
                    let found: Vec<(String, String, String, i64, Option<String>)> =
                        sqlx::query_as(sql.find_idempotency_keys)
                            .bind(to_json(&taken))
                            .fetch_all(&mut *tx)
                            .await?;
                    for (scope, key, event_id, count, hash) in found {
                        originals.insert((scope, key), (event_id, count, hash));
                    }
                }
            }
            let mut results: Vec<Published> = Vec::with_capacity(planned.len());
            let mut event_rows = Vec::new();
            let mut delivery_rows = Vec::new();
            for p in &planned {
                let original =
                    p.event.idempotency_key.as_ref().and_then(|key| {
                        originals.get(&(p.scope.to_string(), key.clone())).cloned()
                    });
                let result = match (p.repeat_of, original) {
                    (Some(first), _) => Published {
                        duplicate: true,
                        conflict: results[first].conflict
                            || planned[first].request_hash != p.request_hash,
                        ..results[first].clone()
                    },
                    (None, Some((event_id, deliveries, hash))) => Published {
                        event_id,
                        deliveries,
                        duplicate: true,
                        // A key from before hashes were kept answers as a duplicate.
                        conflict: hash.is_some_and(|hash| hash != p.request_hash),
                    },
                    (None, None) => {
                        event_rows.push(EventRow {
                            id: &p.event_id,
                            tenant_id: p.event.tenant_id.as_deref(),
                            topic: &p.event.topic,
                            payload: &p.event.payload,
                            idempotency_key: p.event.idempotency_key.as_deref(),
                        });
                        for (endpoint_id, tenant_id) in &p.endpoints {
                            delivery_rows.push(DeliveryRow {
                                id: new_id(IdKind::Delivery),
                                event_id: &p.event_id,
                                endpoint_id,
                                tenant_id,
                                topic: &p.event.topic,
                                state: None,
                                lease_owner: None,
                                lease_expires_at: None,
                                payload: &p.event.payload,
                            });
                        }
                        Published {
                            event_id: p.event_id.clone(),
                            deliveries: p.endpoints.len() as i64,
                            duplicate: false,
                            conflict: false,
                        }
                    }
                };
                results.push(result);
            }
            execute_rows!(tx, sql.insert_events, event_rows, [now], bind_event);
            let mut handed_off = Claimed::default();
            if let Some(request) = hand_off
                && !delivery_rows.is_empty()
            {
                let mut endpoint_ids: Vec<String> = delivery_rows
                    .iter()
                    .map(|row| row.endpoint_id.to_string())
                    .collect();
                endpoint_ids.sort_unstable();
                endpoint_ids.dedup();
                let mut heads = hand_off_heads(sql, &mut *tx, &endpoint_ids, request, now).await?;
                if let Some(lock) = sql.lock_endpoints {
                    // Several dispatchers (Postgres): lock, as a claim does, the
                    // endpoints that could take some (none under a backlog, so
                    // claims are not kept waiting), skipping any a claim or
                    // another publish holds; then count their leases again in
                    // a statement that starts after the locks.
                    let open: Vec<&str> = heads
                        .iter()
                        .filter(|head| head.room() > 0)
                        .map(|head| head.target.id())
                        .collect();
                    let locked: Vec<String> = if open.is_empty() {
                        Vec::new()
                    } else {
                        sqlx::query_scalar(lock)
                            .bind(json_list(&open))
                            .fetch_all(&mut *tx)
                            .await?
                    };
                    heads = if locked.is_empty() {
                        Vec::new()
                    } else {
                        hand_off_heads(sql, &mut *tx, &locked, request, now).await?
                    };
                }
                handed_off =
                    lease_fresh(&mut delivery_rows, heads, request, now, self.secrets_key())?;
            }
            let queued = delivery_rows.len() - handed_off.deliveries.len();
            if !delivery_rows.is_empty() {
                let due = now + first_delay_ms;
                execute_rows!(
                    tx,
                    sql.insert_deliveries,
                    delivery_rows,
                    [now, due],
                    bind_delivery
                );
                if queued > 0 {
                    notify_change(sql, &mut *tx).await?;
                }
            }
            tx.commit().await?;
            (results, handed_off, queued)
        });
        if queued > 0 {
            // Handed-off deliveries need no claim; the others wake dispatchers.
            self.note_change();
        }
        Ok((published, handed_off))
    }
}

/// Leases to `request.owner` the fresh deliveries (in publish order) of
/// endpoints in `heads` with free slots and no due work queued, as many as
/// the dispatcher has slots for; marks their rows leased and returns them
/// with their endpoints' targets.
fn lease_fresh<'a>(
    rows: &mut [DeliveryRow<'a>],
    heads: Vec<HandOffHead>,
    request: &HandOffRequest<'a>,
    now: i64,
    key: Option<&crate::seal::SecretsKey>,
) -> Result<Claimed> {
    // Free slots and lease expiry per endpoint that may take deliveries.
    let mut open: HashMap<String, (i64, i64)> = HashMap::new();
    let mut targets = HashMap::new();
    for head in heads {
        let free = head.room();
        if free == 0 {
            continue;
        }
        let timeout_ms = head.target.timeout_ms(request.default_timeout_ms);
        let expires_at = now + request.lease_ms.max(timeout_ms + LEASE_MARGIN_MS);
        let target = head
            .target
            .into_target(now, request.default_timeout_ms, key)?;
        open.insert(target.id.clone(), (free, expires_at));
        targets.insert(target.id.clone(), target);
    }
    // The rows the endpoints have room for, then as many as the dispatcher has.
    let mut fits = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        if let Some((free, expires_at)) = open.get_mut(row.endpoint_id)
            && *free > 0
        {
            *free -= 1;
            fits.push((index, *expires_at));
        }
    }
    fits.truncate(request.slots.take(fits.len()));
    let mut claimed = Claimed::default();
    for (index, expires_at) in fits {
        let row = &mut rows[index];
        row.state = Some("in_flight");
        row.lease_owner = Some(request.owner);
        row.lease_expires_at = Some(expires_at);
        claimed.deliveries.push(ClaimedDelivery {
            id: row.id.clone(),
            event_id: row.event_id.to_string(),
            endpoint_id: row.endpoint_id.to_string(),
            attempts: 0,
            topic: row.topic.to_string(),
            payload: row.payload.to_string(),
        });
    }
    targets.retain(|id, _| claimed.deliveries.iter().any(|d| &d.endpoint_id == id));
    claimed.endpoints = targets;
    Ok(claimed)
}

/// What an idempotency key compares: the topic and the payload's exact
/// bytes (the scope, tenant or broadcast, is part of the key already), as
/// hex SHA-256. Length-prefixed, so no two requests hash the same text.
fn request_hash(event: &NewEvent) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(event.topic.len().to_le_bytes());
    hasher.update(event.topic.as_bytes());
    hasher.update(event.payload.as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn scope_of(event: &NewEvent) -> &str {
    event.tenant_id.as_deref().unwrap_or(BROADCAST_SCOPE)
}

/// Gives each event its id and its endpoints, and marks repeats of a key
/// earlier in the same batch.
fn plan<'a>(events: &'a [NewEvent], targets: &'a HashMap<&str, Vec<Target>>) -> Vec<Planned<'a>> {
    let mut first_with_key: HashMap<(&str, &str), usize> = HashMap::new();
    let mut planned = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        let scope = scope_of(event);
        let repeat_of = event.idempotency_key.as_deref().and_then(|key| {
            match first_with_key.get(&(scope, key)) {
                Some(first) => Some(*first),
                None => {
                    first_with_key.insert((scope, key), i);
                    None
                }
            }
        });
        let endpoints = match repeat_of {
            Some(_) => Vec::new(),
            None => fan_out(
                targets.get(scope).map(Vec::as_slice).unwrap_or(&[]),
                &event.topic,
            ),
        };
        planned.push(Planned {
            event,
            scope,
            event_id: new_id(IdKind::Event),
            endpoints,
            repeat_of,
            request_hash: request_hash(event),
        });
    }
    planned
}

/// One delivery per distinct endpoint with a subscription matching `topic`,
/// as (endpoint id, tenant id).
fn fan_out<'a>(targets: &'a [Target], topic: &str) -> Vec<(&'a str, &'a str)> {
    let mut endpoints: Vec<(&'a str, &'a str)> = Vec::new();
    for (endpoint_id, tenant_id, pattern) in targets {
        // Targets are sorted by endpoint, so a repeat is always the previous one.
        let already = endpoints
            .last()
            .is_some_and(|(last, _)| *last == endpoint_id.as_str());
        if !already && pattern_matches(pattern, topic) {
            endpoints.push((endpoint_id, tenant_id));
        }
    }
    endpoints
}
