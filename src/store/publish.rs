//! Publishing: an event and its fan-out of deliveries, committed together.

use std::collections::HashMap;

use super::{Result, Store, db_now, on_db};
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Published {
    pub event_id: String,
    /// Deliveries created (for a duplicate: created by the original).
    pub deliveries: i64,
    /// The idempotency key was seen before; nothing new was created.
    pub duplicate: bool,
}

/// The idempotency scope of broadcasts, which have no tenant.
const BROADCAST_SCOPE: &str = "*";

const FIND_KEY: &str =
    "SELECT event_id, delivery_count FROM idempotency_keys WHERE scope = $1 AND key = $2";
const INSERT_KEY: &str =
    "INSERT INTO idempotency_keys (scope, key, event_id, delivery_count, created_at)
    VALUES ($1, $2, $3, $4, $5)";
const TENANT_SUBSCRIPTIONS: &str = "SELECT s.endpoint_id, e.tenant_id, s.pattern
    FROM subscriptions s JOIN endpoints e ON e.id = s.endpoint_id
    WHERE s.tenant_id = $1 AND e.deleted_at IS NULL ORDER BY s.endpoint_id";
const ALL_SUBSCRIPTIONS: &str = "SELECT s.endpoint_id, e.tenant_id, s.pattern
    FROM subscriptions s JOIN endpoints e ON e.id = s.endpoint_id
    WHERE e.deleted_at IS NULL ORDER BY s.endpoint_id";
const INSERT_EVENT: &str =
    "INSERT INTO events (id, tenant_id, topic, payload, idempotency_key, created_at)
    VALUES ($1, $2, $3, $4, $5, $6)";

/// One subscription as fan-out needs it: (endpoint id, its tenant, pattern).
type Target = (String, String, String);

/// A delivery row to insert, serialised into the statement's JSON parameter.
#[derive(serde::Serialize)]
struct DeliveryInsert<'a> {
    id: String,
    endpoint_id: &'a str,
    tenant_id: &'a str,
}

impl Store {
    /// Publishes events in one transaction (callers group concurrent
    /// publishes so they share a commit). When this returns, every event and
    /// all its deliveries are durable. Fan-out only reaches endpoints of the
    /// event's tenant, or of every tenant for a broadcast. Deliveries are due
    /// `first_delay_ms` after publishing (the schedule's first step).
    pub async fn publish(
        &self,
        events: &[NewEvent],
        first_delay_ms: i64,
    ) -> Result<Vec<Published>> {
        let published = on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now!(sql, &mut *tx)?;
            // Subscriptions per scope, read once per transaction however many events share it.
            let mut targets_by_scope: HashMap<String, Vec<Target>> = HashMap::new();
            let mut results = Vec::with_capacity(events.len());
            for event in events {
                let scope = event.tenant_id.as_deref().unwrap_or(BROADCAST_SCOPE);
                if let Some(key) = &event.idempotency_key {
                    let seen: Option<(String, i64)> = sqlx::query_as(FIND_KEY)
                        .bind(scope)
                        .bind(key)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if let Some((event_id, deliveries)) = seen {
                        results.push(Published {
                            event_id,
                            deliveries,
                            duplicate: true,
                        });
                        continue;
                    }
                }
                if !targets_by_scope.contains_key(scope) {
                    let targets: Vec<Target> = match &event.tenant_id {
                        Some(tenant_id) => {
                            sqlx::query_as(TENANT_SUBSCRIPTIONS)
                                .bind(tenant_id)
                                .fetch_all(&mut *tx)
                                .await?
                        }
                        None => {
                            sqlx::query_as(ALL_SUBSCRIPTIONS)
                                .fetch_all(&mut *tx)
                                .await?
                        }
                    };
                    targets_by_scope.insert(scope.to_string(), targets);
                }
                let targets = targets_by_scope
                    .get(scope)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                let deliveries = fan_out(targets, &event.topic);
                let event_id = new_id(IdKind::Event);
                sqlx::query(INSERT_EVENT)
                    .bind(&event_id)
                    .bind(&event.tenant_id)
                    .bind(&event.topic)
                    .bind(&event.payload)
                    .bind(&event.idempotency_key)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                if !deliveries.is_empty() {
                    sqlx::query(sql.insert_deliveries)
                        .bind(serde_json::to_string(&deliveries).unwrap_or_default()) // ok: plain strings
                        .bind(&event_id)
                        .bind(&event.topic)
                        .bind(now)
                        .bind(now + first_delay_ms)
                        .execute(&mut *tx)
                        .await?;
                }
                let count = deliveries.len() as i64;
                if let Some(key) = &event.idempotency_key {
                    sqlx::query(INSERT_KEY)
                        .bind(scope)
                        .bind(key)
                        .bind(&event_id)
                        .bind(count)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                results.push(Published {
                    event_id,
                    deliveries: count,
                    duplicate: false,
                });
            }
            tx.commit().await?;
            results
        });
        if published.iter().any(|p| p.deliveries > 0 && !p.duplicate) {
            self.note_change();
        }
        Ok(published)
    }
}

/// One delivery per distinct endpoint with a subscription matching `topic`.
fn fan_out<'a>(targets: &'a [Target], topic: &str) -> Vec<DeliveryInsert<'a>> {
    let mut deliveries: Vec<DeliveryInsert<'a>> = Vec::new();
    for (endpoint_id, tenant_id, pattern) in targets {
        // Targets are sorted by endpoint, so a repeat is always the previous one.
        let already = deliveries
            .last()
            .is_some_and(|last| last.endpoint_id == endpoint_id);
        if !already && pattern_matches(pattern, topic) {
            deliveries.push(DeliveryInsert {
                id: new_id(IdKind::Delivery),
                endpoint_id,
                tenant_id,
            });
        }
    }
    deliveries
}
