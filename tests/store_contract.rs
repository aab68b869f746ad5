//! The store contract: every store operation behaves the same on SQLite and
//! Postgres. Each behaviour is written once as `async fn name(backend)` and
//! run against both real databases by `both_backends!`; operator actions go
//! through `hookline::ops::Ops`, the validation every interface uses.
//!
//! Deliveries are put into a given state only through the real operations
//! (publish -> claim -> record_outcomes), never by writing rows directly.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::{Backend, TestDb, outcome, test_config, test_ops};
use hookline::config::Config;
use hookline::model::{
    Actor, AuditEntry, Delivery, DeliveryState, Endpoint, EndpointState, ErrorKind, IdKind, Source,
    Tenant, new_id, now_millis,
};
use hookline::ops::{BulkRetry, EndpointChanges, EndpointInput, EventInput, Ops, OpsError};
use hookline::store::{
    AttemptSlots, ClaimRequest, Claimed, ClaimedDelivery, Cursor, DeliveryFilter, HandOffRequest,
    NewEvent, NextStep, OpenMode, Outcome, Published, RecordSummary, Rollups, Store, StoreError,
};

/// A valid 24-byte Standard Webhooks secret.
const SECRET_A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Another valid 32-byte secret.
const SECRET_B: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// Owner id of the helper that drives deliveries into a state.
const DRIVER: &str = "dsp_driver";
/// One hour, for retries that must not come due during a test.
const HOUR_MS: i64 = 3_600_000;

// --- harness ------------------------------------------------------------

/// A migrated database with the store and the test operator's actions on it.
struct Env {
    db: TestDb,
    store: Store,
    config: Config,
    ops: Ops,
}

async fn env(backend: Backend) -> Env {
    let db = TestDb::new(backend);
    let store = db.store().await;
    let config = test_config(&db.url);
    let ops = test_ops(&store, &config);
    Env {
        db,
        store,
        config,
        ops,
    }
}

/// The actor `test_ops` records.
fn operator() -> Actor {
    Actor {
        name: "test-operator".to_string(),
        client_addr: Some("10.0.0.7".to_string()),
        source: Source::Cli,
    }
}

fn request(owner: &str, limit: usize) -> ClaimRequest<'_> {
    ClaimRequest {
        owner,
        limit,
        lease_ms: 60_000,
        default_max_in_flight: 8,
        default_timeout_ms: 1_000,
        reap_expired: true,
        slots: None,
    }
}

fn ids(deliveries: &[ClaimedDelivery]) -> Vec<String> {
    deliveries.iter().map(|d| d.id.clone()).collect()
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items
}

fn field_of(err: &OpsError) -> &'static str {
    match err.field() {
        Some(field) => field,
        None => panic!("expected a refusal of bad input, got {err:?}"),
    }
}

#[track_caller]
/// A duplicate name reaches operators as a conflict in `field`: well
/// formed, but taken.
fn assert_conflict<T: std::fmt::Debug>(result: Result<T, OpsError>, field: &str) -> String {
    match result {
        Err(OpsError::Conflict { field: got, reason }) if got == field => reason,
        other => panic!("expected a conflict naming {field}, got {other:?}"),
    }
}

#[track_caller]
/// An ambiguous name reaches operators as bad input in `field`.
fn assert_invalid<T: std::fmt::Debug>(result: Result<T, OpsError>, field: &str) -> String {
    match result {
        Err(OpsError::Invalid { field: got, reason }) if got == field => reason,
        other => panic!("expected a refusal naming {field}, got {other:?}"),
    }
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    assert!(
        matches!(result, Err(StoreError::NotFound { .. })),
        "expected NotFound, got {result:?}"
    );
}

/// One number from the database, for facts no store operation reads back.
async fn scalar(db: &TestDb, query: &'static str, bind: &str) -> i64 {
    use sqlx::Connection;
    match db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url)
                .await
                .expect("connect to SQLite");
            sqlx::query_scalar(query)
                .bind(bind.to_string())
                .fetch_one(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{query}: {e}"))
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url)
                .await
                .expect("connect to Postgres");
            sqlx::query_scalar(query)
                .bind(bind.to_string())
                .fetch_one(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{query}: {e}"))
        }
    }
}

async fn consecutive_failures(db: &TestDb, endpoint_id: &str) -> i64 {
    let store = db.store().await;
    let health = store.endpoint_health(None).await.expect("endpoint health");
    health
        .get(endpoint_id)
        .map_or(0, |h| h.consecutive_failures)
}

impl Env {
    async fn tenant(&self, name: &str) -> Tenant {
        self.ops.add_tenant(name).await.expect("add tenant")
    }

    /// An endpoint of `tenant` named `name`, subscribed to each of `patterns`.
    async fn endpoint(&self, tenant: &str, name: &str, patterns: &[&str]) -> Endpoint {
        let endpoint = self
            .ops
            .add_endpoint(&EndpointInput {
                tenant: tenant.to_string(),
                name: name.to_string(),
                url: format!("http://127.0.0.1:9/{name}"),
                ..EndpointInput::default()
            })
            .await
            .expect("add endpoint");
        for pattern in patterns {
            self.ops
                .add_subscription(&endpoint.id, pattern, None)
                .await
                .expect("add subscription");
        }
        endpoint
    }

    async fn publish(&self, tenant: &str, topic: &str) -> Published {
        self.ops
            .publish(EventInput {
                tenant: Some(tenant.to_string()),
                topic: topic.to_string(),
                payload: r#"{"n":1}"#.into(),
                ..EventInput::default()
            })
            .await
            .expect("publish")
    }

    /// Publishes one event that must reach exactly one endpoint; returns its delivery id.
    async fn publish_one(&self, tenant: &str, topic: &str) -> String {
        let published = self.publish(tenant, topic).await;
        assert_eq!(published.deliveries, 1, "{topic} should reach one endpoint");
        let mut deliveries = self.deliveries_of(&published.event_id).await;
        deliveries.remove(0).id
    }

    async fn deliveries_of(&self, event_id: &str) -> Vec<Delivery> {
        self.list(&DeliveryFilter {
            event_id: Some(event_id.to_string()),
            ..DeliveryFilter::default()
        })
        .await
    }

    /// Endpoint ids an event was fanned out to, sorted.
    async fn reached(&self, event_id: &str) -> Vec<String> {
        sorted(
            self.deliveries_of(event_id)
                .await
                .into_iter()
                .map(|d| d.endpoint_id)
                .collect(),
        )
    }

    /// Every delivery matching `filter`, newest first, walking all pages.
    async fn list(&self, filter: &DeliveryFilter) -> Vec<Delivery> {
        let mut all = Vec::new();
        let mut cursor: Option<Cursor> = None;
        loop {
            let page = self
                .store
                .list_deliveries(filter, cursor.as_ref(), 1_000)
                .await
                .expect("list deliveries");
            all.extend(page.items);
            match page.next {
                Some(next) => cursor = Some(next),
                None => return all,
            }
        }
    }

    async fn delivery(&self, id: &str) -> Delivery {
        self.store
            .get_delivery(id)
            .await
            .expect("get delivery")
            .delivery
    }

    async fn state(&self, id: &str) -> DeliveryState {
        self.delivery(id).await.state
    }

    async fn claim(&self, owner: &str, limit: usize) -> Claimed {
        self.store
            .claim(&request(owner, limit))
            .await
            .expect("claim")
    }

    /// A claim of up to `limit` for `owner` that takes its slots from `slots`.
    async fn claim_with_slots(&self, owner: &str, limit: usize, slots: &TestSlots) -> Claimed {
        self.store
            .claim(&ClaimRequest {
                slots: Some(slots),
                ..request(owner, limit)
            })
            .await
            .expect("claim")
    }

    /// Endpoint "hooks" of tenant "acme" and `count` of its deliveries
    /// claimed by "dsp_a", ready for outcomes.
    async fn hooks_with_claimed(&self, count: usize) -> (Endpoint, Vec<ClaimedDelivery>) {
        self.tenant("acme").await;
        let hooks = self.endpoint("acme", "hooks", &["*"]).await;
        for _ in 0..count {
            self.publish("acme", "order.created").await;
        }
        let claimed = self.claim("dsp_a", count).await.deliveries;
        assert_eq!(claimed.len(), count);
        (hooks, claimed)
    }

    /// Claims `id` as `owner`, releasing whatever else came along. Claims
    /// repeatedly: one claim need not reach every endpoint with due work.
    async fn claim_one(&self, owner: &str, id: &str) -> ClaimedDelivery {
        let mut others: Vec<String> = Vec::new();
        let mut found = None;
        for _ in 0..100 {
            let claimed = self
                .store
                .claim(&ClaimRequest {
                    owner,
                    limit: 10_000,
                    lease_ms: 60_000,
                    default_max_in_flight: 10_000,
                    default_timeout_ms: 1_000,
                    reap_expired: true,
                    slots: None,
                })
                .await
                .expect("claim");
            if claimed.deliveries.is_empty() {
                break;
            }
            for delivery in claimed.deliveries {
                if delivery.id == id {
                    found = Some(delivery);
                } else {
                    others.push(delivery.id);
                }
            }
            if found.is_some() {
                break;
            }
        }
        self.store.release(owner, &others).await.expect("release");
        match found {
            Some(delivery) => delivery,
            None => panic!(
                "{id} was not claimable: it is {:?}",
                self.store.get_delivery(id).await.map(|d| d.delivery)
            ),
        }
    }

    /// Attempts `id` once with the consequence `next`, as a dispatcher would.
    async fn drive(&self, id: &str, next: NextStep) {
        let claimed = self.claim_one(DRIVER, id).await;
        let summary = self
            .store
            .record_outcomes(DRIVER, &[outcome(&claimed, next)])
            .await
            .expect("record outcome");
        assert_eq!(summary.applied, 1);
    }

    /// One delivery of `endpoint` (subscribed to `topic`) in each state.
    async fn one_of_each(&self, tenant: &str, topic: &str) -> States {
        let succeeded = self.publish_one(tenant, topic).await;
        let dead = self.publish_one(tenant, topic).await;
        let scheduled = self.publish_one(tenant, topic).await;
        let in_flight = self.publish_one(tenant, topic).await;
        let pending = self.publish_one(tenant, topic).await;
        self.drive(&succeeded, NextStep::Succeeded).await;
        self.drive(&dead, NextStep::Dead).await;
        self.drive(&scheduled, NextStep::RetryIn(HOUR_MS)).await;
        self.claim_one(DRIVER, &in_flight).await;
        let states = States {
            pending,
            in_flight,
            scheduled,
            succeeded,
            dead,
        };
        for (id, state) in states.expected() {
            assert_eq!(self.state(&id).await, state, "setting up {id}");
        }
        states
    }

    async fn audit(&self) -> Vec<AuditEntry> {
        let mut all = Vec::new();
        let mut cursor: Option<Cursor> = None;
        loop {
            let page = self
                .store
                .list_audit(cursor.as_ref(), 1_000)
                .await
                .expect("list audit");
            all.extend(page.items);
            match page.next {
                Some(next) => cursor = Some(next),
                None => return all,
            }
        }
    }

    async fn audit_ids(&self) -> HashSet<String> {
        self.audit().await.into_iter().map(|a| a.id).collect()
    }

    /// Audit rows written since `before` was taken.
    async fn audit_after(&self, before: &HashSet<String>) -> Vec<AuditEntry> {
        self.audit()
            .await
            .into_iter()
            .filter(|a| !before.contains(&a.id))
            .collect()
    }
}

/// Delivery ids, one per state, all of one endpoint.
struct States {
    pending: String,
    in_flight: String,
    scheduled: String,
    succeeded: String,
    dead: String,
}

impl States {
    fn expected(&self) -> [(String, DeliveryState); 5] {
        [
            (self.pending.clone(), DeliveryState::Pending),
            (self.in_flight.clone(), DeliveryState::InFlight),
            (self.scheduled.clone(), DeliveryState::Retrying),
            (self.succeeded.clone(), DeliveryState::Delivered),
            (self.dead.clone(), DeliveryState::Dead),
        ]
    }
}

// --- tenants ------------------------------------------------------------

async fn tenants_are_created_and_listed(backend: Backend) {
    let db = TestDb::new(backend);
    let store = db.store().await;
    let ops = test_ops(&store, &test_config(&db.url));
    let acme = ops.add_tenant("acme").await.expect("add acme");
    let listed = store.list_tenants().await.expect("list");
    assert_eq!(listed, vec![acme]);
}

async fn a_duplicate_tenant_name_is_refused_and_writes_nothing(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let before = env.db.dump().await;
    let message = assert_conflict(env.ops.add_tenant("acme").await, "name");
    assert!(message.contains("acme"), "{message}");
    assert_eq!(env.db.dump().await, before);
}

async fn tenants_are_found_by_id_and_by_name(backend: Backend) {
    let env = env(backend).await;
    let acme = env.tenant("acme").await;
    env.tenant("globex").await;
    assert_eq!(env.store.find_tenant(&acme.id).await.unwrap(), acme);
    assert_eq!(env.store.find_tenant("acme").await.unwrap(), acme);
    assert_not_found(env.store.find_tenant("initech").await);
    assert_not_found(env.store.find_tenant(&new_id(IdKind::Tenant)).await);
}

async fn deleting_a_tenant_cascades_to_endpoints_subscriptions_and_unfinished_deliveries(
    backend: Backend,
) {
    let env = env(backend).await;
    let acme = env.tenant("acme").await;
    let globex = env.tenant("globex").await;
    let hooks = env.endpoint("acme", "hooks", &["order.created"]).await;
    env.endpoint("acme", "audit", &["user.*", "order.paid"])
        .await;
    let other = env.endpoint("globex", "hooks", &["order.created"]).await;
    let states = env.one_of_each("acme", "order.paid").await;
    // `order.paid` reaches only acme/audit; give acme/hooks and globex a pending one too.
    let acme_pending = env.publish_one("acme", "order.created").await;
    let globex_pending = env.publish_one("globex", "order.created").await;
    assert_eq!(env.delivery(&acme_pending).await.endpoint_id, hooks.id);

    let (deleted, cancelled) = env.ops.delete_tenant("acme").await.expect("delete");
    assert_eq!(deleted, acme);
    assert_eq!(
        cancelled, 4,
        "pending, in flight, scheduled, and hooks' pending"
    );

    assert_not_found(env.store.find_tenant("acme").await);
    assert_eq!(
        env.store.list_tenants().await.unwrap(),
        vec![globex.clone()]
    );
    assert_not_found(env.store.find_endpoint("acme/hooks", None).await);
    let live: Vec<String> = env
        .store
        .list_endpoints(None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(live, vec![other.id.clone()]);
    let soft_deleted = scalar(
        &env.db,
        "SELECT COUNT(*) FROM endpoints WHERE tenant_id = $1 AND deleted_at IS NOT NULL",
        &acme.id,
    )
    .await;
    assert_eq!(soft_deleted, 2, "both endpoints kept as soft-deleted rows");
    let subscriptions = scalar(
        &env.db,
        "SELECT COUNT(*) FROM subscriptions WHERE tenant_id = $1",
        &acme.id,
    )
    .await;
    assert_eq!(subscriptions, 0);

    for id in [
        &states.pending,
        &states.in_flight,
        &states.scheduled,
        &acme_pending,
    ] {
        assert_eq!(env.state(id).await, DeliveryState::Cancelled, "{id}");
    }
    assert_eq!(env.state(&states.succeeded).await, DeliveryState::Delivered);
    assert_eq!(env.state(&states.dead).await, DeliveryState::Dead);
    assert_eq!(env.state(&globex_pending).await, DeliveryState::Pending);
    assert_eq!(
        env.store
            .list_subscriptions(None, None)
            .await
            .unwrap()
            .len(),
        1,
        "globex keeps its subscription"
    );
    // The name is free again.
    env.tenant("acme").await;
}

// --- endpoints ----------------------------------------------------------

/// The console's first screenful: the head of the whole list, in its
/// order, scoped like it; asking for more than there are gives them all.
async fn the_first_endpoints_and_subscriptions_are_the_head_of_the_lists(backend: Backend) {
    let env = env(backend).await;
    let acme = env.tenant("acme").await;
    env.tenant("globex").await;
    for name in ["d", "b", "a", "c"] {
        env.endpoint("acme", name, &["order.*", "user.*"]).await;
    }
    env.endpoint("globex", "z", &["*"]).await;

    let whole = env.store.list_endpoints(None).await.unwrap();
    assert_eq!(
        env.store.first_endpoints(None, 3).await.unwrap(),
        whole[..3]
    );
    assert_eq!(env.store.first_endpoints(None, 50).await.unwrap(), whole);
    let of_acme = env.store.list_endpoints(Some(&acme.id)).await.unwrap();
    let names: Vec<&str> = of_acme.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "d"]);
    assert_eq!(
        env.store.first_endpoints(Some(&acme.id), 2).await.unwrap(),
        of_acme[..2]
    );

    let subs = env.store.list_subscriptions(None, None).await.unwrap();
    assert_eq!(subs.len(), 9);
    assert_eq!(
        env.store.first_subscriptions(None, 4).await.unwrap(),
        subs[..4]
    );
    let acme_subs = env
        .store
        .list_subscriptions(None, Some(&acme.id))
        .await
        .unwrap();
    assert_eq!(acme_subs.len(), 8);
    assert_eq!(
        env.store
            .first_subscriptions(Some(&acme.id), 100)
            .await
            .unwrap(),
        acme_subs
    );
}

async fn endpoints_are_created_with_defaults(backend: Backend) {
    let env = env(backend).await;
    let acme = env.tenant("acme").await;
    let endpoint = env
        .ops
        .add_endpoint(&EndpointInput {
            tenant: "acme".to_string(),
            name: "hooks".to_string(),
            url: "https://example.com/hooks".to_string(),
            ..EndpointInput::default()
        })
        .await
        .expect("add endpoint");
    assert!(endpoint.id.starts_with("ep_"), "{}", endpoint.id);
    assert_eq!(endpoint.tenant_id, acme.id);
    assert_eq!(endpoint.tenant_name, "acme");
    assert_eq!(endpoint.name, "hooks");
    assert_eq!(endpoint.url, "https://example.com/hooks");
    assert!(
        endpoint.secret.starts_with("whsec_"),
        "a secret is generated"
    );
    assert_eq!(endpoint.previous_secret, None);
    assert_eq!(endpoint.state, EndpointState::Active);
    assert_eq!(endpoint.timeout_ms, None);
    assert_eq!(endpoint.max_in_flight, None);
    assert!(endpoint.headers.is_empty());
    assert_eq!(endpoint.description, None);
    assert_eq!(
        env.store.get_endpoint(&endpoint.id).await.unwrap(),
        endpoint
    );
    let other = env.endpoint("acme", "other", &[]).await;
    assert_ne!(
        other.secret, endpoint.secret,
        "each endpoint gets its own secret"
    );
}

async fn endpoint_settings_can_be_overridden_at_creation(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let endpoint = env
        .ops
        .add_endpoint(&EndpointInput {
            tenant: "acme".to_string(),
            name: "hooks".to_string(),
            url: "http://127.0.0.1:9/hooks".to_string(),
            secret: Some(SECRET_A.to_string()),
            timeout: Some(Duration::from_secs(3)),
            max_in_flight: Some(2),
            headers: vec!["X-Team: payments".to_string(), "x-env:prod".to_string()],
            description: Some("billing".to_string()),
            rate_limit: None,
            rate_limit_burst: None,
        })
        .await
        .expect("add endpoint");
    assert_eq!(endpoint.secret, SECRET_A);
    assert_eq!(endpoint.timeout_ms, Some(3_000));
    assert_eq!(endpoint.max_in_flight, Some(2));
    assert_eq!(
        endpoint.headers,
        vec![
            ("x-team".to_string(), "payments".to_string()),
            ("x-env".to_string(), "prod".to_string())
        ]
    );
    assert_eq!(endpoint.description.as_deref(), Some("billing"));
    assert_eq!(
        env.store.get_endpoint(&endpoint.id).await.unwrap(),
        endpoint
    );
}

async fn endpoint_names_are_unique_per_tenant_but_shared_across_tenants(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.tenant("globex").await;
    let first = env.endpoint("acme", "hooks", &[]).await;
    let before = env.db.dump().await;
    let message = assert_conflict(
        env.ops
            .add_endpoint(&EndpointInput {
                tenant: "acme".to_string(),
                name: "hooks".to_string(),
                url: "http://127.0.0.1:9/again".to_string(),
                ..EndpointInput::default()
            })
            .await,
        "name",
    );
    assert!(message.contains("hooks"), "{message}");
    assert_eq!(
        env.db.dump().await,
        before,
        "a refused endpoint writes nothing"
    );
    let second = env.endpoint("globex", "hooks", &[]).await;
    assert_ne!(first.id, second.id);
}

async fn endpoints_are_found_by_id_tenant_and_name_or_a_unique_name(backend: Backend) {
    let env = env(backend).await;
    let acme = env.tenant("acme").await;
    env.tenant("globex").await;
    let hooks = env.endpoint("acme", "hooks", &[]).await;
    let shared_acme = env.endpoint("acme", "shared", &[]).await;
    let shared_globex = env.endpoint("globex", "shared", &[]).await;
    let find = |key: String| {
        let store = env.store.clone();
        async move { store.find_endpoint(&key, None).await }
    };
    assert_eq!(find(hooks.id.clone()).await.unwrap(), hooks);
    assert_eq!(find("hooks".into()).await.unwrap(), hooks);
    assert_eq!(find("acme/hooks".into()).await.unwrap(), hooks);
    assert_eq!(find(format!("{}/hooks", acme.id)).await.unwrap(), hooks);
    assert_eq!(find("acme/shared".into()).await.unwrap(), shared_acme);
    assert_eq!(find("globex/shared".into()).await.unwrap(), shared_globex);
    assert_eq!(
        env.store
            .find_endpoint("shared", Some(acme.id.as_str()))
            .await
            .unwrap(),
        shared_acme,
        "a tenant scope disambiguates"
    );
    assert_not_found(find("globex/hooks".into()).await);
    assert_not_found(find("nope".into()).await);
    assert_not_found(find(new_id(IdKind::Endpoint)).await);
}

async fn an_ambiguous_endpoint_name_is_a_conflict_naming_both_tenants(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.tenant("globex").await;
    env.endpoint("acme", "shared", &[]).await;
    env.endpoint("globex", "shared", &[]).await;
    match env.store.find_endpoint("shared", None).await {
        Err(StoreError::Conflict(message)) => {
            assert!(message.contains("acme"), "{message}");
            assert!(message.contains("globex"), "{message}");
        }
        other => panic!("expected a Conflict, got {other:?}"),
    }
    assert_invalid(
        env.ops.pause_endpoint("shared", None, None).await,
        "endpoint",
    );
}

async fn endpoint_updates_patch_only_given_fields_and_some_none_clears(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let before = env
        .ops
        .add_endpoint(&EndpointInput {
            tenant: "acme".to_string(),
            name: "hooks".to_string(),
            url: "http://127.0.0.1:9/hooks".to_string(),
            timeout: Some(Duration::from_secs(3)),
            max_in_flight: Some(2),
            headers: vec!["x-team: payments".to_string()],
            description: Some("billing".to_string()),
            ..EndpointInput::default()
        })
        .await
        .unwrap();
    let after = env
        .ops
        .update_endpoint(
            "acme/hooks",
            &EndpointChanges {
                url: Some("https://example.com/new".to_string()),
                max_in_flight: Some(Some(5)),
                ..EndpointChanges::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(after.url, "https://example.com/new");
    assert_eq!(after.max_in_flight, Some(5));
    assert_eq!(after.timeout_ms, Some(3_000), "untouched");
    assert_eq!(after.headers, before.headers, "untouched");
    assert_eq!(after.description, before.description, "untouched");
    assert_eq!(after.secret, before.secret, "untouched");
    assert_eq!(after.name, "hooks", "untouched");

    let cleared = env
        .ops
        .update_endpoint(
            &before.id,
            &EndpointChanges {
                name: Some("hooks-v2".to_string()),
                timeout: Some(None),
                max_in_flight: Some(None),
                headers: Some(vec![]),
                description: Some(None),
                ..EndpointChanges::default()
            },
        )
        .await
        .expect("clear");
    assert_eq!(cleared.name, "hooks-v2");
    assert_eq!(cleared.timeout_ms, None);
    assert_eq!(cleared.max_in_flight, None);
    assert!(cleared.headers.is_empty());
    assert_eq!(cleared.description, None);
    assert_eq!(cleared.url, "https://example.com/new");
    assert_eq!(env.store.get_endpoint(&before.id).await.unwrap(), cleared);
    assert_eq!(
        env.ops.endpoint("acme/hooks-v2").await.unwrap().id,
        before.id
    );
}

async fn renaming_an_endpoint_onto_a_taken_name_is_refused_and_writes_nothing(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.endpoint("acme", "hooks", &[]).await;
    let other = env.endpoint("acme", "other", &[]).await;
    let before = env.db.dump().await;
    assert_conflict(
        env.ops
            .update_endpoint(
                &other.id,
                &EndpointChanges {
                    name: Some("hooks".to_string()),
                    description: Some(Some("x".to_string())),
                    ..EndpointChanges::default()
                },
            )
            .await,
        "name",
    );
    assert_eq!(env.db.dump().await, before);
}

async fn pause_and_resume_report_the_previous_state_and_pausing_twice_audits_once(
    backend: Backend,
) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let endpoint = env.endpoint("acme", "hooks", &[]).await;
    let before = env.audit_ids().await;

    let (paused, was_paused) = env
        .ops
        .pause_endpoint("acme/hooks", Some("maintenance"), None)
        .await
        .unwrap();
    assert!(!was_paused);
    assert_eq!(paused.state, EndpointState::Paused);
    assert_eq!(paused.state_reason.as_deref(), Some("maintenance"));
    assert!(paused.state_changed_at.is_some());

    let dump = env.db.dump().await;
    let (again, was_paused) = env
        .ops
        .pause_endpoint(&endpoint.id, None, None)
        .await
        .unwrap();
    assert!(was_paused, "the second pause reports it was already paused");
    assert_eq!(again.state, EndpointState::Paused);
    assert_eq!(env.db.dump().await, dump, "pausing twice writes nothing");

    let (resumed, left) = env.ops.resume_endpoint("hooks").await.unwrap();
    assert_eq!(left, EndpointState::Paused);
    assert_eq!(resumed.state, EndpointState::Active);
    assert_eq!(resumed.state_reason, None);
    let (_, left) = env.ops.resume_endpoint("hooks").await.unwrap();
    assert_eq!(left, EndpointState::Active);

    let mut actions: Vec<String> = env
        .audit_after(&before)
        .await
        .into_iter()
        .map(|a| a.action)
        .collect();
    actions.sort();
    assert_eq!(actions, ["endpoint.pause", "endpoint.resume"]);
}

async fn resume_makes_a_disabled_endpoint_active(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let endpoint = env.endpoint("acme", "hooks", &[]).await;
    let (disabled, before) = env
        .store
        .set_endpoint_state(
            &endpoint.id,
            EndpointState::Disabled,
            Some("410 Gone"),
            &operator(),
        )
        .await
        .unwrap();
    assert_eq!(before, EndpointState::Active);
    assert_eq!(disabled.state, EndpointState::Disabled);
    assert_eq!(disabled.state_reason.as_deref(), Some("410 Gone"));
    let (resumed, left) = env.ops.resume_endpoint(&endpoint.id).await.unwrap();
    assert_eq!(left, EndpointState::Disabled);
    assert_eq!(resumed.state, EndpointState::Active);
}

/// A pause with an end keeps it, holds the endpoint's deliveries until
/// then, and ends on a claim that reaps (a dispatcher's once-a-second
/// step) once due, audited as hookline's automatic resume; claims that do
/// not reap leave it alone. An end in the past is refused, naming `until`.
async fn a_pause_until_a_time_ends_on_the_reap_and_is_audited_as_hookline(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let hooks = env.endpoint("acme", "hooks", &["*"]).await;
    let held = env.publish_one("acme", "order.created").await;

    let dump = env.db.dump().await;
    let past = env
        .ops
        .pause_endpoint(&hooks.id, None, Some(now_millis() - 1_000))
        .await
        .unwrap_err();
    assert_eq!(field_of(&past), "until", "{past}");
    assert!(past.to_string().contains("not in the future"), "{past}");
    assert_eq!(env.db.dump().await, dump, "a refused pause wrote");

    let before = env.audit_ids().await;
    let until = now_millis() + 700;
    let (paused, was_paused) = env
        .ops
        .pause_endpoint(&hooks.id, Some("maintenance"), Some(until))
        .await
        .unwrap();
    assert!(!was_paused);
    assert_eq!(paused.state, EndpointState::Paused);
    assert_eq!(paused.paused_until, Some(until));
    assert_eq!(paused.state_reason.as_deref(), Some("maintenance"));
    let pause = env.audit_after(&before).await;
    assert_eq!(pause.len(), 1, "{pause:?}");
    assert_eq!(pause[0].action, "endpoint.pause");
    assert!(
        pause[0]
            .detail
            .contains(&hookline::model::format_rfc3339(until)),
        "the pause's audit row names its end: {:?}",
        pause[0]
    );

    // Not yet due: a reaping claim takes nothing and the pause stands.
    assert!(env.claim("dsp_a", 10).await.deliveries.is_empty());
    assert_eq!(
        env.ops.endpoint(&hooks.id).await.unwrap().state,
        EndpointState::Paused
    );

    let wait = u64::try_from(until - now_millis() + 50).unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let quiet = env
        .store
        .claim(&ClaimRequest {
            reap_expired: false,
            ..request("dsp_a", 10)
        })
        .await
        .unwrap();
    assert!(
        quiet.deliveries.is_empty(),
        "a claim that does not reap resumes nothing"
    );
    assert_eq!(
        env.ops.endpoint(&hooks.id).await.unwrap().state,
        EndpointState::Paused
    );

    let before = env.audit_ids().await;
    let claimed = env.claim("dsp_a", 10).await;
    assert_eq!(
        ids(&claimed.deliveries),
        vec![held],
        "the held delivery goes in the cycle that resumed its endpoint"
    );
    let resumed = env.ops.endpoint(&hooks.id).await.unwrap();
    assert_eq!(resumed.state, EndpointState::Active);
    assert_eq!(resumed.paused_until, None);
    assert_eq!(resumed.state_reason, None);
    let audit = env.audit_after(&before).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    let entry = &audit[0];
    assert_eq!(entry.action, "endpoint.resume");
    assert_eq!(entry.actor, "hookline");
    assert_eq!(entry.source, Source::System);
    assert_eq!(entry.target_ids, vec![hooks.id.clone()]);
    let automatic = format!(
        "automatic: paused until {}",
        hookline::model::format_rfc3339(until)
    );
    assert!(entry.detail.contains(&automatic), "{entry:?}");

    // Resumed by hand before its end: the end is gone with the pause.
    let (paused, _) = env
        .ops
        .pause_endpoint(&hooks.id, None, Some(now_millis() + HOUR_MS))
        .await
        .unwrap();
    assert!(paused.paused_until.is_some());
    let (resumed, _) = env.ops.resume_endpoint(&hooks.id).await.unwrap();
    assert_eq!(resumed.paused_until, None);
    // A new pause of a paused endpoint replaces what it gives, keeps the
    // rest, and is audited once; one that gives nothing new writes nothing.
    let until = now_millis() + HOUR_MS;
    env.ops
        .pause_endpoint(&hooks.id, Some("first"), Some(until))
        .await
        .unwrap();
    let before = env.audit_ids().await;
    let (again, was_paused) = env
        .ops
        .pause_endpoint(&hooks.id, Some("second"), None)
        .await
        .unwrap();
    assert!(was_paused);
    assert_eq!(again.state, EndpointState::Paused);
    assert_eq!(again.paused_until, Some(until), "the end is kept");
    assert_eq!(again.state_reason.as_deref(), Some("second"));
    let later = until + HOUR_MS;
    let (again, _) = env
        .ops
        .pause_endpoint(&hooks.id, None, Some(later))
        .await
        .unwrap();
    assert_eq!(again.paused_until, Some(later), "the end is replaced");
    assert_eq!(again.state_reason.as_deref(), Some("second"));
    let audit = env.audit_after(&before).await;
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(
        audit.iter().all(|a| a.action == "endpoint.pause"),
        "{audit:?}"
    );
    let dump = env.db.dump().await;
    env.ops
        .pause_endpoint(&hooks.id, Some("second"), Some(later))
        .await
        .unwrap();
    env.ops.pause_endpoint(&hooks.id, None, None).await.unwrap();
    assert_eq!(env.db.dump().await, dump, "nothing new: nothing written");
}

/// Several dispatchers (separate stores, as separate processes) reaping at
/// the same moment after a pause ended: it is resumed once, with one
/// audit row, whoever wins.
async fn several_dispatchers_end_a_due_pause_once(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let hooks = env.endpoint("acme", "hooks", &["*"]).await;
    for _ in 0..3 {
        env.publish("acme", "order.created").await;
    }
    let stores = [
        env.db.store().await,
        env.db.store().await,
        env.db.store().await,
    ];
    for round in 0..4 {
        let until = now_millis() + 300;
        env.ops
            .pause_endpoint(&hooks.id, None, Some(until))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let before = env.audit_ids().await;
        let barrier = Arc::new(tokio::sync::Barrier::new(6));
        let mut tasks = Vec::new();
        for i in 0..6 {
            let store = stores[i % 3].clone();
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                let owner = format!("dsp_{i}");
                barrier.wait().await;
                // Limit 0 would skip the claim (and the reap) altogether.
                let claimed = store.claim(&request(&owner, 1)).await.expect("claim");
                // Give back what was taken, so the next round finds it queued.
                store
                    .release(&owner, &ids(&claimed.deliveries))
                    .await
                    .expect("release");
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let endpoint = env.ops.endpoint(&hooks.id).await.unwrap();
        assert_eq!(endpoint.state, EndpointState::Active, "round {round}");
        let resumes: Vec<AuditEntry> = env
            .audit_after(&before)
            .await
            .into_iter()
            .filter(|a| a.action == "endpoint.resume")
            .collect();
        assert_eq!(resumes.len(), 1, "round {round}: {resumes:?}");
        assert_eq!(resumes[0].actor, "hookline");
    }
}

async fn rotating_a_secret_keeps_the_previous_one_signing_during_its_grace(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let endpoint = env.endpoint("acme", "hooks", &["*"]).await;
    let start = now_millis();
    let rotated = env
        .ops
        .rotate_secret("acme/hooks", Some(SECRET_B))
        .await
        .unwrap();
    assert_eq!(rotated.secret, SECRET_B);
    assert_eq!(rotated.previous_secret.as_deref(), Some(&*endpoint.secret));
    let grace = i64::try_from(env.config.dispatch.secret_rotation_grace.as_millis()).unwrap();
    let expires = rotated.previous_secret_expires_at.expect("an expiry");
    assert!(
        (start + grace - 1_000..=now_millis() + grace + 1_000).contains(&expires),
        "expires {expires}, grace {grace}"
    );

    env.publish("acme", "order.created").await;
    let claimed = env.claim("dsp_a", 10).await;
    assert_eq!(
        claimed.endpoints[&endpoint.id].secrets,
        vec![SECRET_B.to_string(), endpoint.secret.clone()],
        "current first, previous while its grace lasts"
    );
    env.store
        .release("dsp_a", &ids(&claimed.deliveries))
        .await
        .unwrap();

    // A rotation with a grace that is already over: only the new secret signs.
    let newest = env
        .store
        .rotate_secret(&endpoint.id, SECRET_A, 1, &operator())
        .await
        .unwrap();
    assert_eq!(newest.previous_secret.as_deref(), Some(SECRET_B));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let claimed = env.claim("dsp_a", 10).await;
    assert_eq!(claimed.deliveries.len(), 1);
    assert_eq!(
        claimed.endpoints[&endpoint.id].secrets,
        vec![SECRET_A.to_string()]
    );
}

async fn deleting_an_endpoint_cancels_its_unfinished_deliveries(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let hooks = env.endpoint("acme", "hooks", &["order.*"]).await;
    let keep = env.endpoint("acme", "keep", &["user.*"]).await;
    let states = env.one_of_each("acme", "order.paid").await;
    let kept = env.publish_one("acme", "user.created").await;

    let (deleted, cancelled) = env.ops.delete_endpoint("acme/hooks").await.unwrap();
    assert_eq!(deleted.id, hooks.id);
    assert_eq!(cancelled, 3);
    for id in [&states.pending, &states.in_flight, &states.scheduled] {
        let delivery = env.delivery(id).await;
        assert_eq!(delivery.state, DeliveryState::Cancelled, "{id}");
    }
    assert_eq!(env.state(&states.succeeded).await, DeliveryState::Delivered);
    assert_eq!(env.state(&states.dead).await, DeliveryState::Dead);
    assert_eq!(env.state(&kept).await, DeliveryState::Pending);
    assert_not_found(env.store.get_endpoint(&hooks.id).await);
    assert!(
        env.store
            .list_subscriptions(Some(&hooks.id), None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        scalar(
            &env.db,
            "SELECT COUNT(*) FROM subscriptions WHERE endpoint_id = $1",
            &hooks.id
        )
        .await,
        0
    );
    // Its old events no longer reach it; the name is free again.
    let published = env.publish("acme", "order.paid").await;
    assert_eq!(published.deliveries, 0);
    env.endpoint("acme", "hooks", &[]).await;
    assert_eq!(env.store.list_endpoints(None).await.unwrap().len(), 2);
    assert!(env.store.get_endpoint(&keep.id).await.is_ok());
}

// --- subscriptions ------------------------------------------------------

async fn subscriptions_are_created_listed_updated_and_deleted(backend: Backend) {
    let env = env(backend).await;
    let acme = env.tenant("acme").await;
    env.tenant("globex").await;
    let hooks = env.endpoint("acme", "hooks", &[]).await;
    env.endpoint("globex", "other", &["*"]).await;
    let sub = env
        .ops
        .add_subscription("acme/hooks", "order.*", Some("orders"))
        .await
        .unwrap();
    assert!(sub.id.starts_with("sub_"));
    assert_eq!(sub.endpoint_id, hooks.id);
    assert_eq!(sub.endpoint_name, "hooks");
    assert_eq!(sub.tenant_id, acme.id);
    assert_eq!(sub.tenant_name, "acme");
    assert_eq!(sub.pattern, "order.*");
    assert_eq!(sub.description.as_deref(), Some("orders"));
    let second = env
        .ops
        .add_subscription(&hooks.id, "user.**", None)
        .await
        .unwrap();

    let of_endpoint = env
        .store
        .list_subscriptions(Some(&hooks.id), None)
        .await
        .unwrap();
    assert_eq!(of_endpoint, vec![sub.clone(), second.clone()]);
    let of_tenant = env
        .store
        .list_subscriptions(None, Some(&acme.id))
        .await
        .unwrap();
    assert_eq!(of_tenant.len(), 2);
    assert_eq!(
        env.store
            .list_subscriptions(None, None)
            .await
            .unwrap()
            .len(),
        3
    );

    let updated = env
        .ops
        .update_subscription(&sub.id, Some("order.created"), None)
        .await
        .unwrap();
    assert_eq!(updated.pattern, "order.created");
    assert_eq!(updated.description.as_deref(), Some("orders"), "untouched");
    let updated = env
        .ops
        .update_subscription(&sub.id, None, Some(None))
        .await
        .unwrap();
    assert_eq!(updated.pattern, "order.created");
    assert_eq!(updated.description, None);
    assert_eq!(env.store.get_subscription(&sub.id).await.unwrap(), updated);
    assert_eq!(env.publish("acme", "order.created").await.deliveries, 1);
    assert_eq!(env.publish("acme", "order.paid").await.deliveries, 0);

    let deleted = env.ops.delete_subscription(&sub.id).await.unwrap();
    assert_eq!(deleted.id, sub.id);
    assert_not_found(env.store.get_subscription(&sub.id).await);
    assert_eq!(
        env.store
            .list_subscriptions(Some(&hooks.id), None)
            .await
            .unwrap(),
        vec![second]
    );
    assert_eq!(env.publish("acme", "order.created").await.deliveries, 0);
    assert!(matches!(
        env.ops.delete_subscription(&sub.id).await,
        Err(OpsError::Store(StoreError::NotFound { .. }))
    ));
}

async fn a_duplicate_subscription_pattern_is_refused(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let hooks = env.endpoint("acme", "hooks", &["order.*"]).await;
    let before = env.db.dump().await;
    let message = assert_conflict(
        env.ops.add_subscription(&hooks.id, "order.*", None).await,
        "topic",
    );
    assert!(message.contains("order.*"), "{message}");
    assert_eq!(env.db.dump().await, before);

    let other = env
        .ops
        .add_subscription(&hooks.id, "user.*", None)
        .await
        .unwrap();
    let before = env.db.dump().await;
    assert_conflict(
        env.ops
            .update_subscription(&other.id, Some("order.*"), None)
            .await,
        "topic",
    );
    assert_eq!(
        env.db.dump().await,
        before,
        "a refused update writes nothing"
    );
    // Another endpoint may subscribe to the same pattern.
    env.endpoint("acme", "second", &["order.*"]).await;
}

// --- publish and fan-out ------------------------------------------------

async fn fan_out_follows_patterns_within_the_events_tenant(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.tenant("globex").await;
    let exact = env.endpoint("acme", "exact", &["order.created"]).await;
    let star = env.endpoint("acme", "star", &["order.*"]).await;
    let double = env.endpoint("acme", "double", &["order.**"]).await;
    let all = env.endpoint("acme", "all", &["*"]).await;
    let users = env.endpoint("acme", "users", &["user.*"]).await;
    env.endpoint("globex", "all", &["*"]).await;
    env.endpoint("globex", "exact", &["order.created"]).await;

    let expect = |mut endpoints: Vec<&Endpoint>| {
        endpoints.sort_by(|a, b| a.id.cmp(&b.id));
        endpoints
            .into_iter()
            .map(|e| e.id.clone())
            .collect::<Vec<_>>()
    };
    let cases: [(&str, Vec<&Endpoint>); 5] = [
        ("order.created", vec![&exact, &star, &double, &all]),
        ("order.item.added", vec![&double, &all]),
        ("order", vec![&all]),
        ("user.created", vec![&users, &all]),
        ("invoice.paid.late", vec![&all]),
    ];
    for (topic, endpoints) in cases {
        let published = env.publish("acme", topic).await;
        assert_eq!(published.deliveries as usize, endpoints.len(), "{topic}");
        assert!(!published.duplicate);
        assert_eq!(
            env.reached(&published.event_id).await,
            expect(endpoints),
            "{topic}"
        );
        for delivery in env.deliveries_of(&published.event_id).await {
            assert_eq!(delivery.tenant_name, "acme");
            assert_eq!(delivery.topic, topic);
            assert_eq!(delivery.state, DeliveryState::Pending);
            assert_eq!(delivery.attempts, 0);
        }
    }
}

async fn two_matching_subscriptions_make_one_delivery(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let hooks = env
        .endpoint("acme", "hooks", &["order.*", "order.created", "*"])
        .await;
    let other = env.endpoint("acme", "other", &["order.**", "*"]).await;
    let published = env.publish("acme", "order.created").await;
    assert_eq!(published.deliveries, 2);
    assert_eq!(
        env.reached(&published.event_id).await,
        sorted(vec![hooks.id, other.id])
    );
}

async fn a_broadcast_reaches_every_tenant(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.tenant("globex").await;
    env.tenant("initech").await;
    let acme = env.endpoint("acme", "hooks", &["catalog.*"]).await;
    let globex = env.endpoint("globex", "hooks", &["*"]).await;
    env.endpoint("initech", "hooks", &["order.*"]).await;
    let published = env
        .ops
        .publish(EventInput {
            broadcast: true,
            topic: "catalog.updated".to_string(),
            payload: "{}".into(),
            ..EventInput::default()
        })
        .await
        .unwrap();
    assert_eq!(published.deliveries, 2);
    assert_eq!(
        env.reached(&published.event_id).await,
        sorted(vec![acme.id, globex.id])
    );
    let event = env.store.get_event(&published.event_id).await.unwrap();
    assert_eq!(event.tenant_id, None);
    let tenants: HashSet<String> = env
        .deliveries_of(&published.event_id)
        .await
        .into_iter()
        .map(|d| d.tenant_name)
        .collect();
    assert_eq!(tenants, HashSet::from(["acme".into(), "globex".into()]));
}

async fn paused_and_disabled_endpoints_get_held_deliveries_but_deleted_ones_none(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let paused = env.endpoint("acme", "paused", &["*"]).await;
    let disabled = env.endpoint("acme", "disabled", &["*"]).await;
    let deleted = env.endpoint("acme", "deleted", &["*"]).await;
    env.ops
        .pause_endpoint(&paused.id, None, None)
        .await
        .unwrap();
    env.store
        .set_endpoint_state(
            &disabled.id,
            EndpointState::Disabled,
            Some("410"),
            &operator(),
        )
        .await
        .unwrap();
    env.ops.delete_endpoint(&deleted.id).await.unwrap();
    let published = env.publish("acme", "order.created").await;
    assert_eq!(published.deliveries, 2);
    assert_eq!(
        env.reached(&published.event_id).await,
        sorted(vec![paused.id, disabled.id])
    );
    for delivery in env.deliveries_of(&published.event_id).await {
        assert_eq!(
            delivery.state,
            DeliveryState::Pending,
            "held, not discarded"
        );
    }
}

async fn a_repeated_idempotency_key_returns_the_original_and_creates_nothing(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.endpoint("acme", "a", &["*"]).await;
    env.endpoint("acme", "b", &["order.*"]).await;
    let input = EventInput {
        tenant: Some("acme".to_string()),
        topic: "order.created".to_string(),
        payload: r#"{"order":1}"#.into(),
        idempotency_key: Some("order-1".to_string()),
        ..EventInput::default()
    };
    let first = env.ops.publish(input.clone()).await.unwrap();
    assert_eq!(first.deliveries, 2);
    assert!(!first.duplicate);
    let before = env.db.dump().await;
    // The same request again: the original, nothing new.
    let again = env.ops.publish(input.clone()).await.unwrap();
    assert_eq!(again.event_id, first.event_id);
    assert_eq!(again.deliveries, 2);
    assert!(again.duplicate);
    assert_eq!(env.db.dump().await, before, "a duplicate creates nothing");
    // The key with another topic, or other payload bytes (even the same
    // JSON spelt differently): refused as a conflict naming the original.
    for (topic, payload) in [
        ("user.created", r#"{"order":1}"#),
        ("order.created", r#"{"order":2}"#),
        ("order.created", r#"{"order": 1}"#),
    ] {
        let refused = env
            .ops
            .publish(EventInput {
                topic: topic.to_string(),
                payload: payload.into(),
                ..input.clone()
            })
            .await
            .expect_err("a different request with the key is a conflict");
        assert!(refused.is_refusal(), "{refused}");
        let message = refused.to_string();
        assert!(message.contains(&first.event_id), "{message}");
        assert!(message.contains("\"order-1\""), "{message}");
    }
    assert_eq!(env.db.dump().await, before, "a conflict creates nothing");
    assert_eq!(
        env.store.get_event(&first.event_id).await.unwrap().payload,
        r#"{"order":1}"#
    );
}

async fn idempotency_keys_are_scoped_per_tenant(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.tenant("globex").await;
    env.endpoint("acme", "hooks", &["*"]).await;
    env.endpoint("globex", "hooks", &["*"]).await;
    let with_key = |tenant: Option<&str>| EventInput {
        tenant: tenant.map(str::to_string),
        broadcast: tenant.is_none(),
        topic: "order.created".to_string(),
        payload: "{}".into(),
        idempotency_key: Some("k".to_string()),
    };
    let acme = env.ops.publish(with_key(Some("acme"))).await.unwrap();
    let globex = env.ops.publish(with_key(Some("globex"))).await.unwrap();
    let broadcast = env.ops.publish(with_key(None)).await.unwrap();
    assert!(!acme.duplicate && !globex.duplicate && !broadcast.duplicate);
    assert_ne!(acme.event_id, globex.event_id);
    assert_ne!(acme.event_id, broadcast.event_id);
    assert_eq!(broadcast.deliveries, 2);
    let acme_again = env.ops.publish(with_key(Some("acme"))).await.unwrap();
    assert!(acme_again.duplicate);
    assert_eq!(acme_again.event_id, acme.event_id);
    let broadcast_again = env.ops.publish(with_key(None)).await.unwrap();
    assert!(broadcast_again.duplicate);
    assert_eq!(broadcast_again.event_id, broadcast.event_id);
}

async fn a_batch_of_events_is_published_in_one_call(backend: Backend) {
    let env = env(backend).await;
    let acme = env.tenant("acme").await;
    let globex = env.tenant("globex").await;
    env.endpoint("acme", "hooks", &["order.*"]).await;
    env.endpoint("globex", "hooks", &["*"]).await;
    let event = |tenant: Option<&str>, topic: &str, key: Option<&str>| NewEvent {
        tenant_id: tenant.map(str::to_string),
        topic: topic.to_string(),
        payload: format!(r#"{{"topic":"{topic}"}}"#),
        idempotency_key: key.map(str::to_string),
    };
    let published = env
        .store
        .publish(
            &[
                event(Some(acme.id.as_str()), "order.created", Some("k1")),
                event(Some(globex.id.as_str()), "order.created", None),
                event(None, "user.created", None),
                event(Some(acme.id.as_str()), "user.created", None),
                event(Some(acme.id.as_str()), "order.paid", Some("k1")),
            ],
            0,
        )
        .await
        .unwrap();
    let counts: Vec<(i64, bool)> = published
        .iter()
        .map(|p| (p.deliveries, p.duplicate))
        .collect();
    assert_eq!(
        counts,
        [(1, false), (1, false), (1, false), (0, false), (1, true)]
    );
    assert_eq!(
        published[4].event_id, published[0].event_id,
        "same key in one batch"
    );
    let distinct: HashSet<&str> = published[..4].iter().map(|p| p.event_id.as_str()).collect();
    assert_eq!(distinct.len(), 4);
    assert_eq!(env.list(&DeliveryFilter::default()).await.len(), 3);
    for p in &published[..4] {
        assert!(env.store.get_event(&p.event_id).await.is_ok());
    }
}

async fn payloads_round_trip_byte_for_byte(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.endpoint("acme", "hooks", &["*"]).await;
    let payload = "{\"b\":1.0, \"a\":1e2,\r\n\t\"big\":123456789012345678901234567890,\
                   \"s\":\"\\u00e9 caf\u{e9} \u{1F600} \\\"q\\\" \\u0000\",\"a\":[ ],\"z\":null }";
    let published = env
        .ops
        .publish(EventInput {
            tenant: Some("acme".to_string()),
            topic: "order.created".to_string(),
            payload: payload.into(),
            idempotency_key: Some("ключ-🔑".to_string()),
            ..EventInput::default()
        })
        .await
        .unwrap();
    let event = env.store.get_event(&published.event_id).await.unwrap();
    assert_eq!(event.payload, payload);
    assert_eq!(event.payload.as_bytes(), payload.as_bytes());
    assert_eq!(event.idempotency_key.as_deref(), Some("ключ-🔑"));
    assert_eq!(event.topic, "order.created");
    let claimed = env.claim("dsp_a", 10).await;
    assert_eq!(
        claimed.deliveries[0].payload, payload,
        "claims carry the same bytes"
    );
    let detail = env
        .store
        .get_delivery(&claimed.deliveries[0].id)
        .await
        .unwrap();
    assert_eq!(detail.event.payload, payload);
}

async fn bad_input_is_refused_naming_the_field_and_writes_nothing(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let hooks = env.endpoint("acme", "hooks", &["*"]).await;
    let before = env.db.dump().await;
    let ops = &env.ops;
    let endpoint = |f: &dyn Fn(&mut EndpointInput)| {
        let mut input = EndpointInput {
            tenant: "acme".to_string(),
            name: "new".to_string(),
            url: "http://127.0.0.1:9/new".to_string(),
            ..EndpointInput::default()
        };
        f(&mut input);
        input
    };
    let event = |f: &dyn Fn(&mut EventInput)| {
        let mut input = EventInput {
            tenant: Some("acme".to_string()),
            topic: "order.created".to_string(),
            payload: "{}".into(),
            ..EventInput::default()
        };
        f(&mut input);
        input
    };
    let mut refused: Vec<(&str, OpsError)> = Vec::new();
    let mut expect = |what: &'static str, result: Result<(), OpsError>| match result {
        Err(err) => refused.push((what, err)),
        Ok(()) => panic!("{what} was accepted"),
    };
    let add = |input: EndpointInput| async move { ops.add_endpoint(&input).await.map(|_| ()) };
    let publish = |input: EventInput| async move { ops.publish(input).await.map(|_| ()) };

    expect("name", ops.add_tenant("").await.map(|_| ()));
    expect("name", ops.add_tenant("a/b").await.map(|_| ()));
    expect(
        "url",
        add(endpoint(&|i| i.url = "ftp://example.com/".into())).await,
    );
    expect("url", add(endpoint(&|i| i.url = "not a url".into())).await);
    expect(
        "secret",
        add(endpoint(&|i| i.secret = Some("nope".into()))).await,
    );
    expect(
        "secret",
        add(endpoint(&|i| i.secret = Some("whsec_AAAA".into()))).await,
    );
    expect(
        "tenant",
        add(endpoint(&|i| i.tenant = "initech".into())).await,
    );
    expect("name", add(endpoint(&|i| i.name = "a b".into())).await);
    expect(
        "name",
        add(endpoint(&|i| i.name = new_id(IdKind::Endpoint))).await,
    );
    expect(
        "header",
        add(endpoint(&|i| i.headers = vec!["webhook-id: x".into()])).await,
    );
    expect(
        "header",
        add(endpoint(&|i| i.headers = vec!["nocolon".into()])).await,
    );
    expect(
        "timeout",
        add(endpoint(&|i| i.timeout = Some(Duration::from_millis(1)))).await,
    );
    expect(
        "max_in_flight",
        add(endpoint(&|i| i.max_in_flight = Some(0))).await,
    );
    expect(
        "topic",
        ops.add_subscription(&hooks.id, "Order.*", None)
            .await
            .map(|_| ()),
    );
    expect(
        "topic",
        ops.add_subscription(&hooks.id, "order.**.x", None)
            .await
            .map(|_| ()),
    );
    expect(
        "changes",
        ops.update_endpoint(&hooks.id, &EndpointChanges::default())
            .await
            .map(|_| ()),
    );
    expect(
        "url",
        ops.update_endpoint(
            &hooks.id,
            &EndpointChanges {
                url: Some("mailto:x@example.com".into()),
                ..EndpointChanges::default()
            },
        )
        .await
        .map(|_| ()),
    );
    expect(
        "payload",
        publish(event(&|i| i.payload = "{nope".into())).await,
    );
    expect(
        "payload",
        publish(event(&|i| i.payload = "{} {}".into())).await,
    );
    let too_big = format!(
        "\"{}\"",
        "x".repeat(env.config.limits.max_payload.0 as usize)
    );
    expect(
        "payload",
        publish(event(&|i| i.payload = too_big.clone().into())).await,
    );
    expect("tenant", publish(event(&|i| i.tenant = None)).await);
    expect("tenant", publish(event(&|i| i.broadcast = true)).await);
    expect(
        "tenant",
        publish(event(&|i| i.tenant = Some("initech".into()))).await,
    );
    expect(
        "topic",
        publish(event(&|i| i.topic = "order..created".into())).await,
    );
    expect(
        "topic",
        publish(event(&|i| i.topic = "order.*".into())).await,
    );
    expect(
        "idempotency_key",
        publish(event(&|i| i.idempotency_key = Some(String::new()))).await,
    );
    expect("ids", ops.retry(&[]).await.map(|_| ()));
    expect("ids", ops.retry(&[new_id(IdKind::Event)]).await.map(|_| ()));
    let bulk = |states: Vec<DeliveryState>, since: Option<i64>, until: Option<i64>| BulkRetry {
        endpoint: hooks.id.clone(),
        states,
        since,
        until,
        dry_run: false,
    };
    expect(
        "state",
        ops.retry_bulk(&bulk(vec![DeliveryState::Pending], None, None))
            .await
            .map(|_| ()),
    );
    expect(
        "until",
        ops.retry_bulk(&bulk(vec![], Some(10), Some(5)))
            .await
            .map(|_| ()),
    );

    for (what, err) in &refused {
        assert_eq!(field_of(err), *what, "{err}");
        assert!(err.to_string().starts_with(&format!("{what}: ")), "{err}");
    }
    assert_eq!(refused.len(), 30);
    assert_eq!(env.db.dump().await, before, "refused input writes nothing");
}

// --- claim --------------------------------------------------------------

/// A dispatcher's free attempt slots, for publishes that hand off.
#[derive(Debug)]
struct TestSlots(std::sync::atomic::AtomicUsize);

impl AttemptSlots for TestSlots {
    fn take(&self, wanted: usize) -> usize {
        use std::sync::atomic::Ordering::SeqCst;
        let free = self.0.load(SeqCst);
        let taken = free.min(wanted);
        self.0.store(free - taken, SeqCst);
        taken
    }

    fn give_back(&self, count: usize) {
        self.0.fetch_add(count, std::sync::atomic::Ordering::SeqCst);
    }
}

impl TestSlots {
    fn new(free: usize) -> TestSlots {
        TestSlots(std::sync::atomic::AtomicUsize::new(free))
    }

    fn free(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Env {
    /// Publishes `count` events of `topic` for `tenant` in one transaction,
    /// handing off to `owner` what `slots` and the caps (3 by default) allow.
    async fn publish_handing_off(
        &self,
        tenant: &str,
        topic: &str,
        count: usize,
        owner: &str,
        slots: &TestSlots,
    ) -> (Vec<Published>, Claimed) {
        let events = common::numbered_events(&self.ops, tenant, topic, count).await;
        let request = HandOffRequest {
            owner,
            lease_ms: 60_000,
            default_max_in_flight: 3,
            default_timeout_ms: 1_000,
            slots,
        };
        self.store
            .publish_handing_off(&events, 0, Some(&request))
            .await
            .expect("publish handing off")
    }
}

async fn a_publish_hands_off_only_what_caps_queues_and_slots_allow(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let open = env.endpoint("acme", "open", &["order.*"]).await;
    let paused = env.endpoint("acme", "paused", &["order.*"]).await;
    env.ops
        .pause_endpoint(&paused.id, None, None)
        .await
        .unwrap();
    let busy = env
        .ops
        .add_endpoint(&EndpointInput {
            tenant: "acme".into(),
            name: "busy".into(),
            url: "http://127.0.0.1:9/busy".into(),
            max_in_flight: Some(1),
            ..EndpointInput::default()
        })
        .await
        .unwrap();
    for pattern in ["order.*", "busy.*"] {
        env.ops
            .add_subscription(&busy.id, pattern, None)
            .await
            .unwrap();
    }
    // `busy` has its one slot taken by another dispatcher.
    env.publish_one("acme", "busy.setup").await;
    assert_eq!(env.claim("dsp_other", 10).await.deliveries.len(), 1);

    let slots = TestSlots::new(10);
    let (published, handed) = env
        .publish_handing_off("acme", "order.created", 5, "dsp_a", &slots)
        .await;
    assert_eq!(published.iter().map(|p| p.deliveries).sum::<i64>(), 15);
    assert!(
        handed.deliveries.iter().all(|d| d.endpoint_id == open.id),
        "not the paused endpoint, nor the one at its cap: {:?}",
        handed.deliveries
    );
    let payloads: Vec<&str> = handed
        .deliveries
        .iter()
        .map(|d| d.payload.as_str())
        .collect();
    assert_eq!(
        payloads,
        [r#"{"n":0}"#, r#"{"n":1}"#, r#"{"n":2}"#],
        "up to the cap, in publish order"
    );
    assert_eq!(slots.free(), 7, "one slot per delivery handed off");
    assert_eq!(
        handed.endpoints.keys().collect::<Vec<_>>(),
        [&open.id],
        "with the target to send them to"
    );
    assert_eq!(handed.endpoints[&open.id].url, open.url);
    for delivery in &handed.deliveries {
        assert_eq!(delivery.attempts, 0);
        assert_eq!(env.state(&delivery.id).await, DeliveryState::InFlight);
    }
    let queued = env
        .list(&DeliveryFilter {
            states: vec![DeliveryState::Pending],
            ..DeliveryFilter::default()
        })
        .await;
    assert_eq!(queued.len(), 12, "the rest wait in the queue: {queued:?}");

    // The leases are dsp_a's: another owner's outcome is stale, its own applies.
    let first = &handed.deliveries[0];
    let summary = env
        .store
        .record_outcomes("dsp_intruder", &[outcome(first, NextStep::Succeeded)])
        .await
        .unwrap();
    assert_eq!(summary.stale, 1);
    let outcomes: Vec<Outcome> = handed
        .deliveries
        .iter()
        .map(|d| outcome(d, NextStep::Succeeded))
        .collect();
    let summary = env.store.record_outcomes("dsp_a", &outcomes).await.unwrap();
    assert_eq!(summary.applied, 3);

    // `open` has free slots again, but two of its deliveries still queue:
    // they go first, so a new one is not handed off ahead of them.
    let (_, handed) = env
        .publish_handing_off("acme", "order.created", 1, "dsp_a", &slots)
        .await;
    assert!(handed.deliveries.is_empty(), "{:?}", handed.deliveries);
    assert_eq!(slots.free(), 7);

    // Once its queue is drained, the dispatcher's free slots bound the hand-off.
    let drained = env.claim("dsp_b", 100).await;
    assert_eq!(
        drained.deliveries.len(),
        3,
        "open's queue; the others are held or capped"
    );
    let outcomes: Vec<Outcome> = drained
        .deliveries
        .iter()
        .map(|d| outcome(d, NextStep::Succeeded))
        .collect();
    env.store.record_outcomes("dsp_b", &outcomes).await.unwrap();
    let two_slots = TestSlots::new(2);
    let (_, handed) = env
        .publish_handing_off("acme", "order.created", 3, "dsp_a", &two_slots)
        .await;
    assert_eq!(handed.deliveries.len(), 2);
    assert_eq!(two_slots.free(), 0);

    // Released (the dispatcher stopped before starting them): back in the queue.
    let released = env
        .store
        .release("dsp_a", &ids(&handed.deliveries))
        .await
        .unwrap();
    assert_eq!(released, 2);
    for delivery in &handed.deliveries {
        assert_eq!(env.state(&delivery.id).await, DeliveryState::Pending);
    }
}

async fn a_claim_takes_only_the_slots_it_fills(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.endpoint("acme", "a", &["order.*"]).await;
    env.endpoint("acme", "b", &["order.*"]).await;
    env.publish("acme", "order.created").await;
    let slots = TestSlots::new(10);
    let claimed = env.claim_with_slots("dsp_a", 10, &slots).await;
    assert_eq!(claimed.deliveries.len(), 2);
    assert_eq!(slots.free(), 8, "two due deliveries, two slots");
    env.publish("acme", "order.created").await;
    env.publish("acme", "order.created").await;
    let one_slot = TestSlots::new(1);
    let claimed = env.claim_with_slots("dsp_a", 10, &one_slot).await;
    assert_eq!(claimed.deliveries.len(), 1, "no more than the slots free");
    assert_eq!(one_slot.free(), 0);
}

/// A cycle of dispatcher "dsp_a" (limit 10, default cap `cap`) that records
/// `outcomes`: no reap this time, so Postgres records them in the statement
/// that reads the queue heads.
async fn run_cycle(
    env: &Env,
    outcomes: &[Outcome],
    rollups: Option<&Rollups>,
    cap: i64,
) -> (RecordSummary, Claimed) {
    let request = ClaimRequest {
        default_max_in_flight: cap,
        reap_expired: false,
        ..request("dsp_a", 10)
    };
    env.store
        .record_and_claim("dsp_a", outcomes, rollups, Some(&request))
        .await
        .expect("cycle")
}

async fn one_cycle_records_outcomes_and_claims_the_slots_they_free(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let hooks = env.endpoint("acme", "hooks", &["*"]).await;
    for _ in 0..4 {
        env.publish("acme", "order.created").await;
    }
    let (_, first) = run_cycle(&env, &[], None, 2).await;
    assert_eq!(first.deliveries.len(), 2, "the cap of 2");
    let mut succeeded = outcome(&first.deliveries[0], NextStep::Succeeded);
    let mut failed = outcome(&first.deliveries[1], NextStep::RetryIn(HOUR_MS));
    succeeded.attempt.started_at -= 10;
    failed.attempt.started_at = succeeded.attempt.started_at + 5;
    let outcomes = [succeeded, failed];
    let rollups = Rollups::of("dsp_a", &outcomes);
    let (summary, second) = run_cycle(&env, &outcomes, Some(&rollups), 2).await;
    assert_eq!(summary.applied, 2);
    assert_eq!(summary.stale, 0);
    assert_eq!(
        second.deliveries.len(),
        2,
        "the two slots the outcomes freed are claimed in the same cycle"
    );
    assert!(second.endpoints.contains_key(&hooks.id));
    let again: HashSet<String> = ids(&second.deliveries).into_iter().collect();
    assert!(!again.contains(&first.deliveries[0].id) && !again.contains(&first.deliveries[1].id));
    assert_eq!(
        env.state(&first.deliveries[0].id).await,
        DeliveryState::Delivered
    );
    assert_eq!(
        env.state(&first.deliveries[1].id).await,
        DeliveryState::Retrying
    );
    let attempts = scalar(
        &env.db,
        "SELECT COUNT(*) FROM attempts WHERE endpoint_id = $1",
        &hooks.id,
    )
    .await;
    assert_eq!(attempts, 2, "both attempts are in history");
    assert_eq!(
        consecutive_failures(&env.db, &hooks.id).await,
        1,
        "the rollups were written: a success, then a failure"
    );
}

async fn a_retry_a_cycle_schedules_sets_the_wait(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.endpoint("acme", "hooks", &["*"]).await;
    env.publish("acme", "order.created").await;
    let (_, first) = run_cycle(&env, &[], None, 2).await;
    assert_eq!(first.deliveries.len(), 1);
    let retry = [outcome(&first.deliveries[0], NextStep::RetryIn(60_000))];
    let (summary, second) = run_cycle(&env, &retry, None, 2).await;
    assert_eq!(summary.applied, 1);
    assert!(second.deliveries.is_empty(), "the retry is not due yet");
    let wait = second.next_due_in_ms.expect("a wait for the retry");
    assert!(
        (55_000..=60_000).contains(&wait),
        "next look in {wait} ms, not in a minute"
    );
}

async fn a_claim_sends_to_the_endpoint_as_it_is_now(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let hooks = env.endpoint("acme", "hooks", &["*"]).await;
    env.publish("acme", "order.created").await;
    let (_, first) = run_cycle(&env, &[], None, 8).await;
    assert_eq!(first.endpoints[&hooks.id].url, hooks.url);
    env.store
        .release("dsp_a", &ids(&first.deliveries))
        .await
        .unwrap();
    env.ops
        .update_endpoint(
            &hooks.id,
            &EndpointChanges {
                url: Some("http://127.0.0.1:9/moved".to_string()),
                timeout: Some(Some(Duration::from_secs(2))),
                ..EndpointChanges::default()
            },
        )
        .await
        .expect("update");
    let (_, second) = run_cycle(&env, &[], None, 8).await;
    assert_eq!(second.deliveries.len(), 1);
    let target = &second.endpoints[&hooks.id];
    assert_eq!(target.url, "http://127.0.0.1:9/moved");
    assert_eq!(target.timeout_ms, 2_000);
}

async fn a_publish_that_delays_first_attempts_hands_off_nothing(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.endpoint("acme", "open", &["order.*"]).await;
    let input = EventInput {
        tenant: Some("acme".into()),
        topic: "order.created".into(),
        payload: "{}".into(),
        ..EventInput::default()
    };
    let event = env.ops.validate_event(input).await.unwrap();
    let slots = TestSlots::new(10);
    let request = HandOffRequest {
        owner: "dsp_a",
        lease_ms: 60_000,
        default_max_in_flight: 3,
        default_timeout_ms: 1_000,
        slots: &slots,
    };
    let (published, handed) = env
        .store
        .publish_handing_off(&[event], 60_000, Some(&request))
        .await
        .unwrap();
    assert_eq!(published[0].deliveries, 1);
    assert!(handed.deliveries.is_empty());
    assert_eq!(slots.free(), 10);
}

async fn claim_respects_the_default_and_per_endpoint_in_flight_caps(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let default = env.endpoint("acme", "default", &["*"]).await;
    let capped = env
        .ops
        .add_endpoint(&EndpointInput {
            tenant: "acme".into(),
            name: "capped".into(),
            url: "http://127.0.0.1:9/capped".into(),
            max_in_flight: Some(2),
            ..EndpointInput::default()
        })
        .await
        .unwrap();
    env.ops
        .add_subscription(&capped.id, "*", None)
        .await
        .unwrap();
    for _ in 0..5 {
        env.publish("acme", "order.created").await;
    }
    let claimed = env
        .store
        .claim(&ClaimRequest {
            default_max_in_flight: 3,
            ..request("dsp_a", 100)
        })
        .await
        .unwrap();
    let mut per_endpoint: HashMap<String, usize> = HashMap::new();
    for d in &claimed.deliveries {
        *per_endpoint.entry(d.endpoint_id.clone()).or_default() += 1;
    }
    assert_eq!(per_endpoint[&default.id], 3, "the default cap");
    assert_eq!(per_endpoint[&capped.id], 2, "the endpoint's own cap");
    // Both endpoints are saturated: nothing more, and no wait is promised.
    let more = env
        .store
        .claim(&ClaimRequest {
            default_max_in_flight: 3,
            ..request("dsp_a", 100)
        })
        .await
        .unwrap();
    assert!(more.deliveries.is_empty());
    assert_eq!(more.next_due_in_ms, None);
}

async fn in_flight_caps_count_leases_held_by_other_owners(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let capped = env
        .ops
        .add_endpoint(&EndpointInput {
            tenant: "acme".into(),
            name: "capped".into(),
            url: "http://127.0.0.1:9/capped".into(),
            max_in_flight: Some(3),
            ..EndpointInput::default()
        })
        .await
        .unwrap();
    env.ops
        .add_subscription(&capped.id, "*", None)
        .await
        .unwrap();
    for _ in 0..6 {
        env.publish("acme", "order.created").await;
    }
    let first = env.claim("dsp_a", 2).await;
    assert_eq!(first.deliveries.len(), 2);
    let second = env.claim("dsp_b", 10).await;
    assert_eq!(second.deliveries.len(), 1, "only one slot left of three");
    assert!(env.claim("dsp_c", 10).await.deliveries.is_empty());
    // A finished attempt frees a slot for anyone.
    env.store
        .record_outcomes(
            "dsp_a",
            &[outcome(&first.deliveries[0], NextStep::Succeeded)],
        )
        .await
        .unwrap();
    assert_eq!(env.claim("dsp_c", 10).await.deliveries.len(), 1);
}

async fn concurrent_claims_from_separate_stores_never_exceed_a_cap(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let capped = env
        .ops
        .add_endpoint(&EndpointInput {
            tenant: "acme".into(),
            name: "capped".into(),
            url: "http://127.0.0.1:9/capped".into(),
            max_in_flight: Some(3),
            ..EndpointInput::default()
        })
        .await
        .unwrap();
    env.ops
        .add_subscription(&capped.id, "*", None)
        .await
        .unwrap();
    for _ in 0..20 {
        env.publish("acme", "order.created").await;
    }
    // Separate pools behave like separate dispatcher processes.
    let stores = [
        env.db.store().await,
        env.db.store().await,
        env.db.store().await,
    ];
    let barrier = Arc::new(tokio::sync::Barrier::new(6));
    let mut tasks = Vec::new();
    for i in 0..6 {
        let store = stores[i % 3].clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let owner = format!("dsp_{i}");
            barrier.wait().await;
            store
                .claim(&request(&owner, 10))
                .await
                .expect("claim")
                .deliveries
                .len()
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    assert_eq!(total, 3);
    let in_flight = env
        .list(&DeliveryFilter {
            states: vec![DeliveryState::InFlight],
            ..DeliveryFilter::default()
        })
        .await;
    assert_eq!(in_flight.len(), 3);
}

async fn the_claim_limit_caps_the_total(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.endpoint("acme", "a", &["*"]).await;
    env.endpoint("acme", "b", &["*"]).await;
    for _ in 0..5 {
        env.publish("acme", "order.created").await;
    }
    let claimed = env.claim("dsp_a", 4).await;
    assert_eq!(claimed.deliveries.len(), 4);
    assert_eq!(claimed.next_due_in_ms, Some(0), "more is due now");
    assert_eq!(env.claim("dsp_a", 100).await.deliveries.len(), 6);
    assert!(env.claim("dsp_a", 0).await.deliveries.is_empty());
}

/// A claim's limit is shared among the endpoints that have due work: one
/// endpoint's unused capacity must not use up the limit.
async fn a_claim_reaches_every_endpoint_with_due_work_within_the_limit(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    for name in ["a", "b", "c"] {
        env.endpoint("acme", name, &[&format!("{name}.*")]).await;
    }
    for topic in ["a.x", "b.x", "c.x"] {
        env.publish_one("acme", topic).await;
    }
    let claimed = env.claim("dsp_a", 8).await;
    assert_eq!(
        claimed.deliveries.len(),
        3,
        "three deliveries due on three endpoints, eight slots asked for"
    );
}

async fn the_oldest_due_delivery_is_claimed_first(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    // `second` is created first, so its id sorts first: only age may decide.
    let second = env.endpoint("acme", "second", &["b.*"]).await;
    let first = env.endpoint("acme", "first", &["a.*"]).await;
    let mut published = Vec::new();
    for topic in ["a.one", "b.one", "a.two", "a.three"] {
        published.push(env.publish_one("acme", topic).await);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let one = env.claim("dsp_a", 1).await;
    assert_eq!(ids(&one.deliveries), [published[0].clone()]);
    assert_eq!(one.deliveries[0].endpoint_id, first.id);
    let capped = |owner| ClaimRequest {
        default_max_in_flight: 1,
        ..request(owner, 10)
    };
    // `first` is now at its cap of one: `second`'s delivery is next.
    let two = env.store.claim(&capped("dsp_b")).await.unwrap();
    assert_eq!(ids(&two.deliveries), [published[1].clone()]);
    assert_eq!(two.deliveries[0].endpoint_id, second.id);
    env.store
        .record_outcomes("dsp_a", &[outcome(&one.deliveries[0], NextStep::Succeeded)])
        .await
        .unwrap();
    let three = env.store.claim(&capped("dsp_c")).await.unwrap();
    assert_eq!(
        ids(&three.deliveries),
        [published[2].clone()],
        "in order of age"
    );
}

/// A stricter reading of "oldest due first": across endpoints, by each
/// delivery's age rather than by each endpoint's oldest delivery.
async fn a_small_claim_takes_the_globally_oldest_deliveries(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.endpoint("acme", "first", &["a.*"]).await;
    env.endpoint("acme", "second", &["b.*"]).await;
    let mut published = Vec::new();
    for topic in ["a.one", "b.one", "a.two"] {
        published.push(env.publish_one("acme", topic).await);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let claimed = env.claim("dsp_a", 2).await;
    assert_eq!(
        sorted(ids(&claimed.deliveries)),
        sorted(vec![published[0].clone(), published[1].clone()]),
        "the two oldest due deliveries, whichever endpoint they belong to"
    );
}

async fn held_and_deleted_endpoints_are_never_claimed(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let active = env.endpoint("acme", "active", &["*"]).await;
    let paused = env.endpoint("acme", "paused", &["*"]).await;
    let disabled = env.endpoint("acme", "disabled", &["*"]).await;
    let deleted = env.endpoint("acme", "deleted", &["*"]).await;
    env.publish("acme", "order.created").await;
    env.publish("acme", "order.created").await;
    env.ops
        .pause_endpoint(&paused.id, None, None)
        .await
        .unwrap();
    env.store
        .set_endpoint_state(&disabled.id, EndpointState::Disabled, None, &operator())
        .await
        .unwrap();
    env.ops.delete_endpoint(&deleted.id).await.unwrap();

    let claimed = env.claim("dsp_a", 100).await;
    let endpoints: HashSet<&str> = claimed
        .deliveries
        .iter()
        .map(|d| d.endpoint_id.as_str())
        .collect();
    assert_eq!(endpoints, HashSet::from([active.id.as_str()]));
    assert_eq!(claimed.deliveries.len(), 2);
    assert!(env.claim("dsp_a", 100).await.deliveries.is_empty());
    let held = env
        .list(&DeliveryFilter {
            states: vec![DeliveryState::Pending],
            ..DeliveryFilter::default()
        })
        .await;
    assert_eq!(held.len(), 4, "held, not attempted, not discarded");
    assert!(held.iter().all(|d| d.attempts == 0));

    env.ops.resume_endpoint(&paused.id).await.unwrap();
    env.ops.resume_endpoint(&disabled.id).await.unwrap();
    let released = env.claim("dsp_a", 100).await;
    assert_eq!(released.deliveries.len(), 4, "resume lets them flow");
}

async fn deliveries_not_yet_due_are_not_claimed_and_the_wait_is_reported(backend: Backend) {
    let env = env(backend).await;
    let acme = env.tenant("acme").await;
    env.endpoint("acme", "hooks", &["*"]).await;
    assert_eq!(
        env.claim("dsp_a", 10).await.next_due_in_ms,
        None,
        "empty queue"
    );
    env.store
        .publish(
            &[NewEvent {
                tenant_id: Some(acme.id.clone()),
                topic: "order.created".into(),
                payload: "{}".into(),
                idempotency_key: None,
            }],
            60_000,
        )
        .await
        .unwrap();
    let claimed = env.claim("dsp_a", 10).await;
    assert!(claimed.deliveries.is_empty());
    let wait = claimed.next_due_in_ms.expect("a wait");
    assert!((55_000..=60_000).contains(&wait), "waits {wait} ms");
}

async fn an_expired_lease_is_taken_back_and_its_late_outcome_is_stale(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.endpoint("acme", "hooks", &["*"]).await;
    let id = env.publish_one("acme", "order.created").await;
    // The shortest lease the store grants: lease_ms and timeout tiny (it still
    // adds a fixed margin over the endpoint's timeout).
    let short = |owner| ClaimRequest {
        owner,
        limit: 10,
        lease_ms: 1,
        default_max_in_flight: 8,
        default_timeout_ms: 1,
        reap_expired: true,
        slots: None,
    };
    let lost = env.store.claim(&short("dsp_dead")).await.unwrap();
    assert_eq!(ids(&lost.deliveries), vec![id.clone()]);
    assert!(
        env.claim("dsp_live", 10).await.deliveries.is_empty(),
        "a live lease is respected"
    );
    let started = std::time::Instant::now();
    let mut retaken = Vec::new();
    while started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let claimed = env.claim("dsp_live", 10).await;
        if !claimed.deliveries.is_empty() {
            retaken = claimed.deliveries;
            break;
        }
    }
    assert_eq!(ids(&retaken), vec![id.clone()], "taken back after expiry");
    assert_eq!(retaken[0].attempts, 0);

    let late = env
        .store
        .record_outcomes(
            "dsp_dead",
            &[outcome(&lost.deliveries[0], NextStep::Succeeded)],
        )
        .await
        .unwrap();
    assert_eq!((late.applied, late.stale), (0, 1));
    let detail = env.store.get_delivery(&id).await.unwrap();
    assert_eq!(detail.delivery.state, DeliveryState::InFlight, "unchanged");
    assert_eq!(
        detail.attempts.len(),
        1,
        "the late attempt is kept in history"
    );
    assert_eq!(
        detail.attempts[0].dispatcher_id.as_deref(),
        Some("dsp_dead")
    );

    let live = env
        .store
        .record_outcomes("dsp_live", &[outcome(&retaken[0], NextStep::Succeeded)])
        .await
        .unwrap();
    assert_eq!((live.applied, live.stale), (1, 0));
    assert_eq!(env.state(&id).await, DeliveryState::Delivered);
}

async fn claimed_deliveries_carry_payload_and_endpoint_targets(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let plain = env.endpoint("acme", "plain", &["*"]).await;
    let custom = env
        .ops
        .add_endpoint(&EndpointInput {
            tenant: "acme".into(),
            name: "custom".into(),
            url: "https://example.com/in".into(),
            timeout: Some(Duration::from_millis(2_500)),
            headers: vec!["x-team: payments".into()],
            ..EndpointInput::default()
        })
        .await
        .unwrap();
    env.ops
        .add_subscription(&custom.id, "order.*", None)
        .await
        .unwrap();
    env.endpoint("acme", "idle", &["user.*"]).await;
    let published = env.publish("acme", "order.created").await;

    let claimed = env.claim("dsp_a", 10).await;
    assert_eq!(claimed.deliveries.len(), 2);
    for d in &claimed.deliveries {
        assert_eq!(d.event_id, published.event_id);
        assert_eq!(d.topic, "order.created");
        assert_eq!(d.payload, r#"{"n":1}"#);
        assert_eq!(d.attempts, 0);
    }
    assert_eq!(
        sorted(claimed.endpoints.keys().cloned().collect()),
        sorted(vec![plain.id.clone(), custom.id.clone()]),
        "targets of the claimed deliveries only"
    );
    let target = &claimed.endpoints[&custom.id];
    assert_eq!(target.url, "https://example.com/in");
    assert_eq!(target.timeout_ms, 2_500);
    assert_eq!(target.secrets, vec![custom.secret.clone()]);
    assert_eq!(
        target.headers,
        vec![("x-team".to_string(), "payments".to_string())]
    );
    let target = &claimed.endpoints[&plain.id];
    assert_eq!(target.timeout_ms, 1_000, "the request's default timeout");
    assert!(target.headers.is_empty());
    for d in &claimed.deliveries {
        assert_eq!(env.state(&d.id).await, DeliveryState::InFlight);
    }
}

// --- record_outcomes ----------------------------------------------------

async fn a_success_marks_the_delivery_succeeded(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.endpoint("acme", "hooks", &["*"]).await;
    let id = env.publish_one("acme", "order.created").await;
    let claimed = env.claim("dsp_a", 10).await;
    let result = outcome(&claimed.deliveries[0], NextStep::Succeeded);
    let summary = env
        .store
        .record_outcomes("dsp_a", std::slice::from_ref(&result))
        .await
        .unwrap();
    assert_eq!((summary.applied, summary.stale), (1, 0));
    let delivery = env.delivery(&id).await;
    assert_eq!(delivery.state, DeliveryState::Delivered);
    assert_eq!(delivery.attempts, 1);
    assert_eq!(delivery.last_status, Some(200));
    assert_eq!(delivery.last_error, None);
    assert_eq!(delivery.last_attempt_at, Some(result.attempt.started_at));
    assert!(env.claim("dsp_a", 10).await.deliveries.is_empty());
}

async fn a_retry_schedules_the_delivery_and_it_is_claimable_only_when_due(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.endpoint("acme", "hooks", &["*"]).await;
    let id = env.publish_one("acme", "order.created").await;
    let claimed = env.claim("dsp_a", 10).await;
    let recorded_at = now_millis();
    env.store
        .record_outcomes(
            "dsp_a",
            &[outcome(&claimed.deliveries[0], NextStep::RetryIn(600))],
        )
        .await
        .unwrap();
    let delivery = env.delivery(&id).await;
    assert_eq!(delivery.state, DeliveryState::Retrying);
    assert_eq!(delivery.attempts, 1);
    assert_eq!(delivery.last_status, Some(500));
    assert_eq!(delivery.last_error.as_deref(), Some("http_status 500"));
    let due_in = delivery.next_attempt_at - recorded_at;
    assert!((500..=1_100).contains(&due_in), "due in {due_in} ms");

    let early = env.claim("dsp_b", 10).await;
    assert!(early.deliveries.is_empty(), "not before it is due");
    let wait = early.next_due_in_ms.expect("a wait");
    assert!((1..=600).contains(&wait), "waits {wait} ms");
    tokio::time::sleep(Duration::from_millis(wait as u64 + 50)).await;
    let due = env.claim("dsp_b", 10).await;
    assert_eq!(ids(&due.deliveries), [id]);
    assert_eq!(due.deliveries[0].attempts, 1);
}

async fn dead_marks_the_delivery_dead(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.endpoint("acme", "hooks", &["*"]).await;
    let id = env.publish_one("acme", "order.created").await;
    env.drive(&id, NextStep::Dead).await;
    let delivery = env.delivery(&id).await;
    assert_eq!(delivery.state, DeliveryState::Dead);
    assert_eq!(delivery.last_status, Some(500));
    assert!(env.claim("dsp_a", 10).await.deliveries.is_empty());
    assert_eq!(env.claim("dsp_a", 10).await.next_due_in_ms, None);
}

async fn attempts_are_kept_in_history_as_given(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let hooks = env.endpoint("acme", "hooks", &["*"]).await;
    let id = env.publish_one("acme", "order.created").await;
    let claimed = env.claim("dsp_a", 10).await;
    let mut first = outcome(&claimed.deliveries[0], NextStep::RetryIn(0));
    first.attempt.status_code = None;
    first.attempt.error_kind = Some(ErrorKind::Timeout);
    first.attempt.error_message = Some("no answer within 1s".into());
    first.attempt.response_body = None;
    first.attempt.duration_ms = 1_000;
    first.attempt.request_headers = vec![
        ("content-type".into(), "application/json".into()),
        ("webhook-id".into(), claimed.deliveries[0].event_id.clone()),
        ("webhook-signature".into(), "v1,abcd…(masked)".into()),
        ("x-team".into(), "payments".into()),
    ];
    env.store
        .record_outcomes("dsp_a", std::slice::from_ref(&first))
        .await
        .unwrap();
    assert_eq!(
        env.delivery(&id).await.last_error.as_deref(),
        Some("timeout: no answer within 1s")
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = env.claim("dsp_a", 10).await;
    let second = outcome(&again.deliveries[0], NextStep::Succeeded);
    env.store
        .record_outcomes("dsp_a", std::slice::from_ref(&second))
        .await
        .unwrap();

    let detail = env.store.get_delivery(&id).await.unwrap();
    assert_eq!(detail.attempts.len(), 2);
    let [a, b] = [&detail.attempts[0], &detail.attempts[1]];
    assert_eq!(a.id, first.attempt.id);
    assert_eq!(a.delivery_id, id);
    assert_eq!(a.endpoint_id, hooks.id);
    assert_eq!(a.attempt_number, 1);
    assert_eq!(a.started_at, first.attempt.started_at);
    assert_eq!(a.duration_ms, 1_000);
    assert_eq!(a.status_code, None);
    assert_eq!(a.error_kind, Some(ErrorKind::Timeout));
    assert_eq!(a.error_message.as_deref(), Some("no answer within 1s"));
    assert_eq!(a.request_headers, first.attempt.request_headers);
    assert_eq!(a.response_body, None);
    assert_eq!(a.dispatcher_id.as_deref(), Some("dsp_a"));
    assert!(!a.succeeded());
    assert_eq!(b.attempt_number, 2);
    assert_eq!(b.status_code, Some(200));
    assert_eq!(b.response_body.as_deref(), Some("ok"));
    assert!(b.succeeded());
    assert_eq!(detail.delivery.attempts, 2);
}

async fn an_outcome_from_a_non_owner_is_stale(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let hooks = env.endpoint("acme", "hooks", &["*"]).await;
    let id = env.publish_one("acme", "order.created").await;
    let claimed = env.claim("dsp_a", 10).await;
    let summary = env
        .store
        .record_outcomes(
            "dsp_intruder",
            &[outcome(&claimed.deliveries[0], NextStep::Dead)],
        )
        .await
        .unwrap();
    assert_eq!((summary.applied, summary.stale), (0, 1));
    let detail = env.store.get_delivery(&id).await.unwrap();
    assert_eq!(detail.delivery.state, DeliveryState::InFlight);
    assert_eq!(detail.delivery.attempts, 0);
    assert_eq!(detail.attempts.len(), 1);
    assert_eq!(
        detail.attempts[0].dispatcher_id.as_deref(),
        Some("dsp_intruder")
    );

    // The endpoint is deleted while an attempt runs: its outcome is stale too.
    env.ops.delete_endpoint(&hooks.id).await.unwrap();
    let summary = env
        .store
        .record_outcomes(
            "dsp_a",
            &[outcome(&claimed.deliveries[0], NextStep::Succeeded)],
        )
        .await
        .unwrap();
    assert_eq!((summary.applied, summary.stale), (0, 1));
    assert_eq!(env.state(&id).await, DeliveryState::Cancelled);
}

async fn a_gone_answer_disables_the_endpoint_and_audits_as_the_system(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let hooks = env.endpoint("acme", "hooks", &["*"]).await;
    let first = env.publish_one("acme", "order.created").await;
    let second = env.publish_one("acme", "order.created").await;
    let claimed = env.claim_one("dsp_a", &first).await;
    let before = env.audit_ids().await;
    let mut gone = outcome(&claimed, NextStep::Dead);
    gone.attempt.status_code = Some(410);
    gone.disable_endpoint = Some("410 Gone".to_string());
    env.store.record_outcomes("dsp_a", &[gone]).await.unwrap();

    let endpoint = env.store.get_endpoint(&hooks.id).await.unwrap();
    assert_eq!(endpoint.state, EndpointState::Disabled);
    assert_eq!(endpoint.state_reason.as_deref(), Some("410 Gone"));
    assert!(endpoint.state_changed_at.is_some());
    let audit = env.audit_after(&before).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].action, "endpoint.disable");
    assert_eq!(audit[0].source, Source::System);
    assert_eq!(audit[0].actor, "hookline");
    assert_eq!(audit[0].client_addr, None);
    assert_eq!(audit[0].target_ids, vec![hooks.id.clone()]);
    assert!(audit[0].detail.contains("410 Gone"), "{}", audit[0].detail);
    assert_eq!(env.state(&first).await, DeliveryState::Dead);
    // The rest is held, not attempted.
    assert!(env.claim("dsp_a", 10).await.deliveries.is_empty());
    assert_eq!(env.state(&second).await, DeliveryState::Pending);
}

async fn consecutive_failures_count_up_and_reset_on_success(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let hooks = env.endpoint("acme", "hooks", &["*"]).await;
    for _ in 0..5 {
        env.publish("acme", "order.created").await;
    }
    assert_eq!(consecutive_failures(&env.db, &hooks.id).await, 0);
    let claimed = env.claim("dsp_a", 10).await.deliveries;
    assert_eq!(claimed.len(), 5);
    let record = |d: &ClaimedDelivery, next| {
        let o = outcome(d, next);
        let store = env.store.clone();
        async move { store.record_outcomes("dsp_a", &[o]).await.unwrap() }
    };
    // Two failures in one batch, then one more.
    env.store
        .record_outcomes(
            "dsp_a",
            &[
                outcome(&claimed[0], NextStep::RetryIn(HOUR_MS)),
                outcome(&claimed[1], NextStep::Dead),
            ],
        )
        .await
        .unwrap();
    assert_eq!(consecutive_failures(&env.db, &hooks.id).await, 2);
    record(&claimed[2], NextStep::RetryIn(HOUR_MS)).await;
    assert_eq!(consecutive_failures(&env.db, &hooks.id).await, 3);
    record(&claimed[3], NextStep::Succeeded).await;
    assert_eq!(consecutive_failures(&env.db, &hooks.id).await, 0);
    record(&claimed[4], NextStep::Dead).await;
    assert_eq!(consecutive_failures(&env.db, &hooks.id).await, 1);
}

async fn health_merges_every_dispatchers_rollups(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let hooks = env.endpoint("acme", "hooks", &["*"]).await;
    for _ in 0..4 {
        env.publish("acme", "order.created").await;
    }
    let first = env.claim("dsp_a", 2).await.deliveries;
    let second = env.claim("dsp_b", 2).await.deliveries;
    assert_eq!((first.len(), second.len()), (2, 2));
    // One dispatcher succeeds twice (12 ms); the other fails twice later.
    env.store
        .record_outcomes(
            "dsp_a",
            &[
                outcome(&first[0], NextStep::Succeeded),
                outcome(&first[1], NextStep::Succeeded),
            ],
        )
        .await
        .expect("record a");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let mut slow = outcome(&second[0], NextStep::RetryIn(HOUR_MS));
    slow.attempt.duration_ms = 3_000;
    env.store
        .record_outcomes("dsp_b", &[slow, outcome(&second[1], NextStep::Dead)])
        .await
        .expect("record b");
    let health = env.store.endpoint_health(None).await.expect("health");
    let hooks_health = health.get(&hooks.id).expect("the endpoint has health");
    for window in [&hooks_health.last_5m, &hooks_health.last_1h] {
        assert_eq!(window.attempts(), 4, "{window:?}");
        assert_eq!((window.succeeded, window.status_5xx), (2, 2));
        assert_eq!(window.success_rate(), Some(0.5));
        assert_eq!(window.p50_ms(), Some(25), "two of four took 12 ms");
        assert_eq!(window.p95_ms(), Some(5_000), "the slowest took 3 s");
    }
    assert_eq!(hooks_health.consecutive_failures, 2);
    assert_eq!(hooks_health.last_error.as_deref(), Some("http_status 500"));
    assert_eq!(hooks_health.last_status, Some(500));
    assert!(hooks_health.last_success_at < hooks_health.last_failure_at);
}

async fn rollups_gathered_over_cycles_are_written_once_and_count_every_attempt(backend: Backend) {
    let env = env(backend).await;
    let (hooks, claimed) = env.hooks_with_claimed(3).await;
    let attempts_of = |health: &HashMap<String, hookline::store::EndpointHealth>| {
        health.get(&hooks.id).map_or(0, |h| h.last_5m.attempts())
    };
    // A busy dispatcher records an outcome and holds its rollups back.
    let first = outcome(&claimed[0], NextStep::RetryIn(HOUR_MS));
    let (summary, _) = env
        .store
        .record_and_claim("dsp_a", std::slice::from_ref(&first), None, None)
        .await
        .unwrap();
    assert_eq!(
        summary.applied, 1,
        "the attempt and its delivery are recorded"
    );
    let health = env.store.endpoint_health(None).await.unwrap();
    assert_eq!(attempts_of(&health), 0, "no rollups written yet");

    // The next cycle writes what it gathered together with its own outcome.
    let second = outcome(&claimed[1], NextStep::Dead);
    let mut rollups = Rollups::of("dsp_a", std::slice::from_ref(&first));
    rollups.add("dsp_a", std::slice::from_ref(&second));
    env.store
        .record_and_claim("dsp_a", &[second], Some(&rollups), None)
        .await
        .unwrap();
    let health = env.store.endpoint_health(None).await.unwrap();
    assert_eq!(attempts_of(&health), 2);
    assert_eq!(health[&hooks.id].consecutive_failures, 2);

    // Rollups alone, with no outcome, are written too; a success resets the run.
    let third = outcome(&claimed[2], NextStep::Succeeded);
    env.store
        .record_and_claim("dsp_a", std::slice::from_ref(&third), None, None)
        .await
        .unwrap();
    env.store
        .record_and_claim("dsp_a", &[], Some(&Rollups::of("dsp_a", &[third])), None)
        .await
        .unwrap();
    let health = env.store.endpoint_health(None).await.unwrap();
    assert_eq!(attempts_of(&health), 3, "each attempt counted once");
    assert_eq!(health[&hooks.id].consecutive_failures, 0);
    assert_eq!(health[&hooks.id].last_5m.succeeded, 1);
}

// --- release ------------------------------------------------------------

async fn released_deliveries_go_back_to_pending_or_scheduled_due_at_once(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.endpoint("acme", "hooks", &["*"]).await;
    let fresh = env.publish_one("acme", "order.created").await;
    let tried = env.publish_one("acme", "order.created").await;
    env.drive(&tried, NextStep::RetryIn(0)).await;

    let claimed = env.claim("dsp_a", 10).await;
    assert_eq!(
        sorted(ids(&claimed.deliveries)),
        sorted(vec![fresh.clone(), tried.clone()])
    );
    assert_eq!(
        env.store
            .release("dsp_other", &ids(&claimed.deliveries))
            .await
            .unwrap(),
        0,
        "only the owner can release"
    );
    assert_eq!(env.state(&fresh).await, DeliveryState::InFlight);
    let released = env
        .store
        .release("dsp_a", &ids(&claimed.deliveries))
        .await
        .unwrap();
    assert_eq!(released, 2);
    assert_eq!(env.state(&fresh).await, DeliveryState::Pending);
    let tried_now = env.delivery(&tried).await;
    assert_eq!(tried_now.state, DeliveryState::Retrying);
    assert_eq!(tried_now.attempts, 1, "no attempt is counted");
    assert!(tried_now.next_attempt_at <= now_millis());

    let again = env.claim("dsp_b", 10).await;
    assert_eq!(again.deliveries.len(), 2, "due at once for anyone");
    assert_eq!(again.next_due_in_ms, Some(0));
}

// --- retry --------------------------------------------------------------

async fn retry_by_id_revives_finished_deliveries_and_explains_skips(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.endpoint("acme", "hooks", &["order.*"]).await;
    let gone = env.endpoint("acme", "gone", &["user.*"]).await;
    let orphan = env.publish_one("acme", "user.created").await;
    env.drive(&orphan, NextStep::Dead).await;
    env.ops.delete_endpoint(&gone.id).await.unwrap();
    let states = env.one_of_each("acme", "order.paid").await;
    let unknown = new_id(IdKind::Delivery);
    let before = env.audit_ids().await;

    let requested = vec![
        states.dead.clone(),
        states.scheduled.clone(),
        states.succeeded.clone(),
        states.pending.clone(),
        states.in_flight.clone(),
        unknown.clone(),
        orphan.clone(),
    ];
    let report = env.ops.retry(&requested).await.unwrap();
    assert_eq!(
        sorted(report.retried.clone()),
        sorted(vec![
            states.dead.clone(),
            states.scheduled.clone(),
            states.succeeded.clone()
        ])
    );
    let skipped: HashMap<String, String> = report.skipped.into_iter().collect();
    assert_eq!(skipped.len(), 4, "{skipped:?}");
    assert!(skipped[&states.pending].contains("pending"), "{skipped:?}");
    assert!(
        skipped[&states.in_flight].contains("attempted"),
        "{skipped:?}"
    );
    assert!(skipped[&unknown].contains("no such"), "{skipped:?}");
    assert!(skipped[&orphan].contains("deleted"), "{skipped:?}");

    for id in [&states.dead, &states.scheduled, &states.succeeded] {
        let detail = env.store.get_delivery(id).await.unwrap();
        assert_eq!(detail.delivery.state, DeliveryState::Pending, "{id}");
        assert_eq!(detail.delivery.attempts, 0, "a fresh schedule");
        assert!(
            detail.delivery.next_attempt_at <= now_millis(),
            "due at once"
        );
        assert_eq!(detail.attempts.len(), 1, "history kept");
    }
    assert_eq!(env.state(&states.in_flight).await, DeliveryState::InFlight);
    assert_eq!(env.state(&orphan).await, DeliveryState::Dead);
    let audit = env.audit_after(&before).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, "delivery.retry");
    assert_eq!(sorted(audit[0].target_ids.clone()), sorted(report.retried));

    // Nothing retryable: nothing written, not even an audit row.
    let dump = env.db.dump().await;
    let report = env
        .ops
        .retry(std::slice::from_ref(&states.pending))
        .await
        .unwrap();
    assert!(report.retried.is_empty());
    assert_eq!(env.db.dump().await, dump);
}

/// Dead deliveries of `endpoint` (subscribed to `topic`), created now.
async fn dead_deliveries(env: &Env, topic: &str, count: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..count {
        let id = env.publish_one("acme", topic).await;
        env.drive(&id, NextStep::Dead).await;
        out.push(id);
    }
    out
}

async fn bulk_retry_dry_run_counts_without_writing(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.endpoint("acme", "hooks", &["order.*"]).await;
    env.endpoint("acme", "other", &["user.*"]).await;
    dead_deliveries(&env, "order.paid", 3).await;
    dead_deliveries(&env, "user.created", 2).await;
    let ok = env.publish_one("acme", "order.paid").await;
    env.drive(&ok, NextStep::Succeeded).await;
    let before = env.db.dump().await;
    let dry = |states: Vec<DeliveryState>| BulkRetry {
        endpoint: "acme/hooks".into(),
        states,
        since: None,
        until: None,
        dry_run: true,
    };
    let (endpoint, count) = env.ops.retry_bulk(&dry(vec![])).await.unwrap();
    assert_eq!(endpoint.name, "hooks");
    assert_eq!(count, 3, "dead by default, this endpoint only");
    let (_, count) = env
        .ops
        .retry_bulk(&dry(vec![DeliveryState::Dead, DeliveryState::Delivered]))
        .await
        .unwrap();
    assert_eq!(count, 4);
    assert_eq!(env.db.dump().await, before, "a dry run writes nothing");
}

async fn bulk_retry_revives_only_the_matching_states_window_and_endpoint(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.endpoint("acme", "hooks", &["order.*"]).await;
    env.endpoint("acme", "other", &["user.*"]).await;
    let old_dead = dead_deliveries(&env, "order.paid", 2).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let new_dead = dead_deliveries(&env, "order.paid", 1).await;
    let new_ok = env.publish_one("acme", "order.paid").await;
    env.drive(&new_ok, NextStep::Succeeded).await;
    let new_scheduled = env.publish_one("acme", "order.paid").await;
    env.drive(&new_scheduled, NextStep::RetryIn(HOUR_MS)).await;
    let other_dead = dead_deliveries(&env, "user.created", 1).await;
    let since = env.delivery(&new_dead[0]).await.created_at;
    assert!(env.delivery(&old_dead[1]).await.created_at < since);
    let before = env.audit_ids().await;

    let (_, count) = env
        .ops
        .retry_bulk(&BulkRetry {
            endpoint: "acme/hooks".into(),
            states: vec![DeliveryState::Dead, DeliveryState::Delivered],
            since: Some(since),
            until: None,
            dry_run: false,
        })
        .await
        .unwrap();
    assert_eq!(count, 2);
    for id in [&new_dead[0], &new_ok] {
        let delivery = env.delivery(id).await;
        assert_eq!(delivery.state, DeliveryState::Pending, "{id}");
        assert_eq!(delivery.attempts, 0);
    }
    for id in &old_dead {
        assert_eq!(
            env.state(id).await,
            DeliveryState::Dead,
            "before the window"
        );
    }
    assert_eq!(
        env.state(&new_scheduled).await,
        DeliveryState::Retrying,
        "not asked for"
    );
    assert_eq!(
        env.state(&other_dead[0]).await,
        DeliveryState::Dead,
        "another endpoint"
    );
    let audit = env.audit_after(&before).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, "delivery.retry_bulk");
    assert!(
        audit[0].detail.contains("\"count\":2"),
        "{}",
        audit[0].detail
    );

    // `until` closes the window: only the old ones remain to revive.
    let (_, count) = env
        .ops
        .retry_bulk(&BulkRetry {
            endpoint: "acme/hooks".into(),
            states: vec![DeliveryState::Dead],
            since: None,
            until: Some(since),
            dry_run: false,
        })
        .await
        .unwrap();
    assert_eq!(count, 2);
    for id in &old_dead {
        assert_eq!(env.state(id).await, DeliveryState::Pending);
    }
}

// --- listing ------------------------------------------------------------

async fn delivery_listings_filter_by_state_tenant_endpoint_topic_event_and_since(backend: Backend) {
    let env = env(backend).await;
    let acme = env.tenant("acme").await;
    let globex = env.tenant("globex").await;
    let all = env.endpoint("acme", "all", &["*"]).await;
    let orders = env.endpoint("acme", "orders", &["order.*"]).await;
    env.endpoint("globex", "all", &["*"]).await;
    let created = env.publish("acme", "order.created").await; // all, orders
    env.publish("acme", "user.created").await; // all
    env.publish("globex", "order.created").await; // globex
    tokio::time::sleep(Duration::from_millis(5)).await;
    let paid = env.publish("acme", "order.paid").await; // all, orders
    let done = env.deliveries_of(&created.event_id).await;
    let done = done.iter().find(|d| d.endpoint_id == orders.id).unwrap();
    env.drive(&done.id, NextStep::Succeeded).await;

    let count = |filter: DeliveryFilter| {
        let env = &env;
        async move { env.list(&filter).await.len() }
    };
    assert_eq!(count(DeliveryFilter::default()).await, 6);
    let by_state = |states| DeliveryFilter {
        states,
        ..DeliveryFilter::default()
    };
    assert_eq!(count(by_state(vec![DeliveryState::Delivered])).await, 1);
    assert_eq!(count(by_state(vec![DeliveryState::Pending])).await, 5);
    assert_eq!(
        count(by_state(vec![
            DeliveryState::Pending,
            DeliveryState::Delivered
        ]))
        .await,
        6
    );
    assert_eq!(count(by_state(vec![DeliveryState::Dead])).await, 0);
    let tenant = |id: &str| DeliveryFilter {
        tenant_id: Some(id.to_string()),
        ..DeliveryFilter::default()
    };
    assert_eq!(count(tenant(&acme.id)).await, 5);
    assert_eq!(count(tenant(&globex.id)).await, 1);
    let endpoint = |id: &str| DeliveryFilter {
        endpoint_id: Some(id.to_string()),
        ..DeliveryFilter::default()
    };
    assert_eq!(count(endpoint(&all.id)).await, 3);
    assert_eq!(count(endpoint(&orders.id)).await, 2);
    let topic = DeliveryFilter {
        topic: Some("order.created".into()),
        ..DeliveryFilter::default()
    };
    assert_eq!(count(topic.clone()).await, 3);
    assert_eq!(
        count(DeliveryFilter {
            tenant_id: Some(acme.id.clone()),
            ..topic
        })
        .await,
        2
    );
    assert_eq!(env.deliveries_of(&paid.event_id).await.len(), 2);
    let since = env.deliveries_of(&paid.event_id).await[0].created_at;
    let recent = env
        .list(&DeliveryFilter {
            since: Some(since),
            ..DeliveryFilter::default()
        })
        .await;
    assert_eq!(recent.len(), 2);
    assert!(recent.iter().all(|d| d.event_id == paid.event_id));
    assert_eq!(
        count(DeliveryFilter {
            until: Some(since),
            ..DeliveryFilter::default()
        })
        .await,
        4
    );
    let both = env
        .list(&DeliveryFilter {
            states: vec![DeliveryState::Pending],
            endpoint_id: Some(orders.id.clone()),
            topic: Some("order.paid".into()),
            ..DeliveryFilter::default()
        })
        .await;
    assert_eq!(both.len(), 1);
    assert_eq!(both[0].endpoint_name, "orders");
    assert_eq!(both[0].tenant_name, "acme");
}

async fn keyset_pages_visit_every_delivery_once_newest_first(backend: Backend) {
    let env = env(backend).await;
    let acme = env.tenant("acme").await;
    for i in 0..12 {
        env.endpoint("acme", &format!("ep{i}"), &["*"]).await;
    }
    // Batches share one `created_at` across all their deliveries.
    let batch = |n: usize| {
        (0..n)
            .map(|_| NewEvent {
                tenant_id: Some(acme.id.clone()),
                topic: "order.created".into(),
                payload: "{}".into(),
                idempotency_key: None,
            })
            .collect::<Vec<_>>()
    };
    env.store.publish(&batch(5), 0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3)).await;
    env.store.publish(&batch(1), 0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3)).await;
    env.store.publish(&batch(3), 0).await.unwrap();
    let total = 12 * 9;

    let everything = env
        .store
        .list_deliveries(&DeliveryFilter::default(), None, 10_000)
        .await
        .unwrap();
    assert_eq!(everything.items.len(), total);
    assert!(everything.next.is_none());
    for page_size in [7, 12, 25] {
        let mut walked = Vec::new();
        let mut cursor: Option<Cursor> = None;
        let mut pages = 0;
        loop {
            let page = env
                .store
                .list_deliveries(&DeliveryFilter::default(), cursor.as_ref(), page_size)
                .await
                .unwrap();
            assert!(page.items.len() <= page_size);
            pages += 1;
            assert!(pages <= total + 1, "pagination does not end");
            walked.extend(page.items.into_iter().map(|d| (d.created_at, d.id)));
            // The cursor survives its text form, as clients hand it back.
            match page.next {
                Some(next) => cursor = Some(Cursor::decode(&next.encode()).unwrap()),
                None => break,
            }
        }
        let unique: HashSet<&String> = walked.iter().map(|(_, id)| id).collect();
        assert_eq!(unique.len(), total, "page size {page_size}: every row once");
        assert_eq!(walked.len(), total, "page size {page_size}: no repeats");
        assert!(
            walked.windows(2).all(|w| w[0] > w[1]),
            "page size {page_size}: newest first, strictly ordered by (created_at, id)"
        );
        let expected: Vec<(i64, String)> = everything
            .items
            .iter()
            .map(|d| (d.created_at, d.id.clone()))
            .collect();
        assert_eq!(walked, expected);
    }
    let created: HashSet<i64> = everything.items.iter().map(|d| d.created_at).collect();
    assert_eq!(created.len(), 3, "three publish times, many rows each");
}

// --- audit --------------------------------------------------------------

/// Asserts exactly one audit row appeared since `seen`, by the test operator.
async fn expect_audit(env: &Env, seen: &mut HashSet<String>, action: &str, target: &str) {
    let new = env.audit_after(seen).await;
    assert_eq!(new.len(), 1, "{action}: {new:?}");
    let entry = &new[0];
    assert_eq!(entry.action, action);
    assert_eq!(entry.actor, "test-operator", "{action}");
    assert_eq!(entry.client_addr.as_deref(), Some("10.0.0.7"), "{action}");
    assert_eq!(entry.source, Source::Cli, "{action}");
    assert_eq!(entry.target_ids, vec![target.to_string()], "{action}");
    assert!(
        (now_millis() - 60_000..=now_millis() + 1_000).contains(&entry.at),
        "{action}"
    );
    seen.insert(entry.id.clone());
}

async fn every_operator_mutation_writes_one_audit_row_with_the_actor(backend: Backend) {
    let env = env(backend).await;
    let mut seen = env.audit_ids().await;
    assert!(seen.is_empty());
    let tenant = env.tenant("acme").await;
    expect_audit(&env, &mut seen, "tenant.create", &tenant.id).await;
    let endpoint = env.endpoint("acme", "hooks", &[]).await;
    expect_audit(&env, &mut seen, "endpoint.create", &endpoint.id).await;
    let sub = env
        .ops
        .add_subscription(&endpoint.id, "order.*", None)
        .await
        .unwrap();
    expect_audit(&env, &mut seen, "subscription.create", &sub.id).await;
    env.ops
        .update_subscription(&sub.id, Some("*"), None)
        .await
        .unwrap();
    expect_audit(&env, &mut seen, "subscription.update", &sub.id).await;
    env.ops
        .update_endpoint(
            &endpoint.id,
            &EndpointChanges {
                url: Some("https://example.com/x".into()),
                ..EndpointChanges::default()
            },
        )
        .await
        .unwrap();
    expect_audit(&env, &mut seen, "endpoint.update", &endpoint.id).await;
    env.ops
        .pause_endpoint(&endpoint.id, None, None)
        .await
        .unwrap();
    expect_audit(&env, &mut seen, "endpoint.pause", &endpoint.id).await;
    env.ops.resume_endpoint(&endpoint.id).await.unwrap();
    expect_audit(&env, &mut seen, "endpoint.resume", &endpoint.id).await;
    env.ops.rotate_secret(&endpoint.id, None).await.unwrap();
    expect_audit(&env, &mut seen, "endpoint.rotate_secret", &endpoint.id).await;

    // Producers and dispatchers are not operators: no audit rows.
    let id = env.publish_one("acme", "order.created").await;
    let dead = env.publish_one("acme", "order.created").await;
    env.drive(&id, NextStep::Dead).await;
    env.drive(&dead, NextStep::Dead).await;
    assert!(env.audit_after(&seen).await.is_empty());

    env.ops.retry(std::slice::from_ref(&id)).await.unwrap();
    expect_audit(&env, &mut seen, "delivery.retry", &id).await;
    env.ops
        .retry_bulk(&BulkRetry {
            endpoint: endpoint.id.clone(),
            states: vec![],
            since: None,
            until: None,
            dry_run: false,
        })
        .await
        .unwrap();
    expect_audit(&env, &mut seen, "delivery.retry_bulk", &endpoint.id).await;
    env.ops.delete_subscription(&sub.id).await.unwrap();
    expect_audit(&env, &mut seen, "subscription.delete", &sub.id).await;
    env.ops.delete_endpoint(&endpoint.id).await.unwrap();
    expect_audit(&env, &mut seen, "endpoint.delete", &endpoint.id).await;
    env.ops.delete_tenant(&tenant.id).await.unwrap();
    expect_audit(&env, &mut seen, "tenant.delete", &tenant.id).await;
}

async fn audit_rows_record_the_actors_name_source_and_address(backend: Backend) {
    let env = env(backend).await;
    let console = Ops::new(
        env.store.clone(),
        &env.config,
        Actor {
            name: "alice".into(),
            client_addr: None,
            source: Source::Console,
        },
    );
    let api = Ops::new(
        env.store.clone(),
        &env.config,
        Actor {
            name: "ci-key".into(),
            client_addr: Some("192.0.2.1".into()),
            source: Source::Api,
        },
    );
    console.add_tenant("acme").await.unwrap();
    api.add_tenant("globex").await.unwrap();
    let mut rows: Vec<(String, Option<String>, Source, String)> = env
        .audit()
        .await
        .into_iter()
        .map(|a| (a.actor, a.client_addr, a.source, a.detail))
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].0, "alice");
    assert_eq!(rows[0].1, None);
    assert_eq!(rows[0].2, Source::Console);
    assert!(rows[0].3.contains("acme"), "{}", rows[0].3);
    assert_eq!(rows[1].0, "ci-key");
    assert_eq!(rows[1].1.as_deref(), Some("192.0.2.1"));
    assert_eq!(rows[1].2, Source::Api);
}

async fn the_audit_log_pages_newest_first(backend: Backend) {
    let env = env(backend).await;
    for i in 0..7 {
        env.tenant(&format!("t{i}")).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut walked = Vec::new();
    let mut cursor = None;
    loop {
        let page = env.store.list_audit(cursor.as_ref(), 3).await.unwrap();
        walked.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let names: Vec<String> = walked
        .iter()
        .map(|a| {
            let detail: serde_json::Value = serde_json::from_str(&a.detail).unwrap();
            detail["name"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(names, ["t6", "t5", "t4", "t3", "t2", "t1", "t0"]);
}

// --- migrations ---------------------------------------------------------

async fn existing_mode_refuses_an_unmigrated_database(backend: Backend) {
    let db = TestDb::new(backend);
    if backend == Backend::Sqlite {
        // An empty file: it exists, but holds no schema.
        std::fs::write(db.path("hookline.db"), b"").unwrap();
    }
    match Store::open(&db.url, OpenMode::Existing).await {
        Err(StoreError::NotMigrated { found, needed, .. }) => {
            assert_eq!(found, 0);
            assert!(needed >= 1);
        }
        other => panic!("expected NotMigrated, got {other:?}"),
    }
    assert_eq!(db.dump().await, "", "no tables were created");
}

async fn migrating_twice_is_a_no_op_the_second_time(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let version = env.store.schema_version().await.unwrap();
    assert!(version >= 1);
    let before = env.db.dump().await;
    assert_eq!(env.store.migrate().await.unwrap(), 0);
    assert_eq!(env.store.schema_version().await.unwrap(), version);
    assert_eq!(env.db.dump().await, before);
    let reopened = Store::open(&env.db.url, OpenMode::Existing)
        .await
        .expect("a migrated database opens");
    assert_eq!(reopened.list_tenants().await.unwrap().len(), 1);
}

async fn a_database_from_a_newer_hookline_is_refused(backend: Backend) {
    let env = env(backend).await;
    let stamp = "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, $1, 0)";
    {
        use sqlx::Connection;
        match backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&env.db.url).await.unwrap();
                sqlx::query(stamp)
                    .bind("future")
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&env.db.url).await.unwrap();
                sqlx::query(stamp)
                    .bind("future")
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }
    assert!(matches!(
        Store::open(&env.db.url, OpenMode::Existing).await,
        Err(StoreError::TooNew { found: 999, .. })
    ));
    assert!(matches!(
        env.store.migrate().await,
        Err(StoreError::TooNew { found: 999, .. })
    ));
}

/// SQLite only: a path that names no file.
async fn existing_mode_refuses_a_missing_sqlite_file_and_creates_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.db");
    let url = format!("sqlite://{}", path.display());
    match Store::open(&url, OpenMode::Existing).await {
        Err(StoreError::Missing { location, .. }) => {
            assert!(location.contains("typo.db"), "{location}");
        }
        other => panic!("expected Missing, got {other:?}"),
    }
    assert!(!path.exists(), "no database file was created");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

// --- concurrency --------------------------------------------------------

async fn concurrent_publishes_with_one_idempotency_key_make_one_event(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.endpoint("acme", "hooks", &["*"]).await;
    for round in 0..5 {
        let key = format!("order-{round}");
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let mut tasks = Vec::new();
        // One request sent eight times at once (a producer's retries).
        for _ in 0..8 {
            let ops = env.ops.clone();
            let barrier = barrier.clone();
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                ops.publish(EventInput {
                    tenant: Some("acme".into()),
                    topic: "order.created".into(),
                    payload: format!(r#"{{"order":{round}}}"#).into(),
                    idempotency_key: Some(key),
                    ..EventInput::default()
                })
                .await
            }));
        }
        let mut published = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(p) => published.push(p),
                Err(err) => {
                    panic!("round {round}: a repeated key must be answered, not fail: {err}")
                }
            }
        }
        let event_ids: HashSet<&str> = published.iter().map(|p| p.event_id.as_str()).collect();
        assert_eq!(event_ids.len(), 1, "round {round}: {published:?}");
        assert_eq!(published.iter().filter(|p| !p.duplicate).count(), 1);
    }
    assert_eq!(
        scalar(
            &env.db,
            "SELECT COUNT(*) FROM events WHERE topic = $1",
            "order.created"
        )
        .await,
        5
    );
}

async fn concurrent_pauses_report_and_audit_one_change(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let endpoint = env.endpoint("acme", "hooks", &[]).await;
    for round in 0..5 {
        let before = env.audit_ids().await;
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let ops = env.ops.clone();
            let barrier = barrier.clone();
            let id = endpoint.id.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                ops.pause_endpoint(&id, None, None).await.expect("pause").1
            }));
        }
        let mut changed = 0;
        for task in tasks {
            if !task.await.unwrap() {
                changed += 1;
            }
        }
        let audit = env.audit_after(&before).await;
        assert_eq!(
            (changed, audit.len()),
            (1, 1),
            "round {round}: pauses that found it active, endpoint.pause audit rows"
        );
        env.ops.resume_endpoint(&endpoint.id).await.unwrap();
    }
}

/// An endpoint's deliveries still waiting or in flight.
async fn unfinished_deliveries_of(env: &Env, endpoint_id: &str) -> Vec<Delivery> {
    env.list(&DeliveryFilter {
        endpoint_id: Some(endpoint_id.to_string()),
        states: vec![
            DeliveryState::Pending,
            DeliveryState::Retrying,
            DeliveryState::InFlight,
        ],
        ..DeliveryFilter::default()
    })
    .await
}

/// Starts `a` and `b` at the same moment, each on a task of its own, and
/// waits for both.
async fn race<A, B>(a: A, b: B)
where
    A: std::future::Future<Output = ()> + Send + 'static,
    B: std::future::Future<Output = ()> + Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let (for_a, for_b) = (barrier.clone(), barrier);
    let a = tokio::spawn(async move {
        for_a.wait().await;
        a.await
    });
    let b = tokio::spawn(async move {
        for_b.wait().await;
        b.await
    });
    a.await.unwrap();
    b.await.unwrap();
}

/// Deleting an endpoint while an event for it is being published must not
/// leave deliveries queued for the deleted endpoint.
async fn publishing_while_an_endpoint_is_deleted_leaves_nothing_queued_for_it(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let mut orphans = Vec::new();
    for round in 0..20 {
        let endpoint = env.endpoint("acme", &format!("ep{round}"), &["*"]).await;
        let (publisher, deleter, id) = (env.ops.clone(), env.ops.clone(), endpoint.id.clone());
        race(
            async move {
                publisher
                    .publish(EventInput {
                        tenant: Some("acme".into()),
                        topic: "order.created".into(),
                        payload: "{}".into(),
                        ..EventInput::default()
                    })
                    .await
                    .expect("publish");
            },
            async move {
                deleter.delete_endpoint(&id).await.expect("delete");
            },
        )
        .await;
        let queued = unfinished_deliveries_of(&env, &endpoint.id).await;
        orphans.extend(queued.into_iter().map(|d| (round, d.id)));
    }
    assert!(
        orphans.is_empty(),
        "deliveries queued for deleted endpoints (never attempted, never cancelled): {orphans:?}"
    );
}

/// Deleting a tenant while an event for it is being published must not leave
/// deliveries queued for its (deleted) endpoints. The publish may lose the
/// race and be refused (the tenant is gone); either way nothing waits.
async fn publishing_while_a_tenant_is_deleted_leaves_nothing_queued(backend: Backend) {
    let env = env(backend).await;
    let mut orphans = Vec::new();
    for round in 0..20 {
        let tenant = format!("t{round}");
        env.tenant(&tenant).await;
        let endpoint = env.endpoint(&tenant, "hooks", &["*"]).await;
        let (publisher, deleter, name) = (env.ops.clone(), env.ops.clone(), tenant.clone());
        race(
            async move {
                // Refused when the delete commits first: that is fine.
                let _ = publisher
                    .publish(EventInput {
                        tenant: Some(tenant),
                        topic: "order.created".into(),
                        payload: "{}".into(),
                        ..EventInput::default()
                    })
                    .await;
            },
            async move {
                deleter.delete_tenant(&name).await.expect("delete");
            },
        )
        .await;
        let queued = unfinished_deliveries_of(&env, &endpoint.id).await;
        orphans.extend(queued.into_iter().map(|d| (round, d.id)));
    }
    assert!(
        orphans.is_empty(),
        "deliveries queued for a deleted tenant's endpoints: {orphans:?}"
    );
}

async fn concurrent_patches_to_different_fields_both_survive(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let endpoint = env.endpoint("acme", "hooks", &[]).await;
    for round in 0..10 {
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let url = format!("https://example.com/round-{round}");
        let description = format!("round {round}");
        let tasks = [
            EndpointChanges {
                url: Some(url.clone()),
                ..EndpointChanges::default()
            },
            EndpointChanges {
                description: Some(Some(description.clone())),
                ..EndpointChanges::default()
            },
        ]
        .map(|changes| {
            let ops = env.ops.clone();
            let barrier = barrier.clone();
            let id = endpoint.id.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                ops.update_endpoint(&id, &changes).await.expect("update");
            })
        });
        for task in tasks {
            task.await.unwrap();
        }
        let now = env.store.get_endpoint(&endpoint.id).await.unwrap();
        assert_eq!(
            (now.url.as_str(), now.description.as_deref()),
            (url.as_str(), Some(description.as_str())),
            "round {round}: one patch overwrote the other's field"
        );
    }
}

// --- console summaries --------------------------------------------------

/// Outcome of `delivery` attempted at `started_at` (instead of now).
fn outcome_at(delivery: &ClaimedDelivery, next: NextStep, started_at: i64) -> Outcome {
    let mut outcome = outcome(delivery, next);
    outcome.attempt.started_at = started_at;
    outcome
}

/// Start of the minute `minutes_ago` minutes before now, plus 30 s: safely
/// inside that minute.
fn mid_minute(minutes_ago: i64) -> i64 {
    let now = now_millis();
    now - now.rem_euclid(60_000) - minutes_ago * 60_000 + 30_000
}

async fn queue_summary_counts_each_state_and_how_late_the_queue_runs(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.endpoint("acme", "hooks", &["order.*"]).await;
    let empty = env.store.queue_summary().await.unwrap();
    assert_eq!(
        (empty.pending, empty.retrying, empty.in_flight, empty.dead),
        (0, 0, 0, 0)
    );
    assert_eq!(empty.oldest_due_at, None, "nothing is waiting");
    let states = env.one_of_each("acme", "order.paid").await;
    let second_dead = env.publish_one("acme", "order.paid").await;
    env.drive(&second_dead, NextStep::Dead).await;
    let summary = env.store.queue_summary().await.unwrap();
    assert_eq!(
        (
            summary.pending,
            summary.retrying,
            summary.in_flight,
            summary.dead
        ),
        (1, 1, 1, 2)
    );
    // The scheduled one is due in an hour: only the pending one is late.
    let pending = env.delivery(&states.pending).await;
    assert_eq!(summary.oldest_due_at, Some(pending.next_attempt_at));
    assert_eq!(
        summary.oldest_wait_ms(),
        Some(summary.now - pending.next_attempt_at)
    );
    // Retrying the dead ones makes them pending (due now) and not dead.
    env.ops
        .retry(&[states.dead.clone(), second_dead])
        .await
        .unwrap();
    let summary = env.store.queue_summary().await.unwrap();
    assert_eq!((summary.pending, summary.dead), (3, 0));
}

async fn held_work_is_counted_by_state_and_stopped_endpoints_are_listed(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let held = env.endpoint("acme", "hooks", &["order.*"]).await;
    let other = env.endpoint("acme", "other", &["user.*"]).await;
    env.one_of_each("acme", "order.paid").await;
    env.publish_one("acme", "user.created").await;
    let before = env.store.queue_summary().await.unwrap();
    assert_eq!((before.pending_held, before.retrying_held), (0, 0));
    assert!(env.store.stopped_endpoints().await.unwrap().is_empty());

    env.ops
        .pause_endpoint(&held.id, Some("maintenance"), None)
        .await
        .unwrap();
    let summary = env.store.queue_summary().await.unwrap();
    assert_eq!(summary.pending, 2, "one of each endpoint");
    assert_eq!(
        (summary.pending_held, summary.retrying_held),
        (1, 1),
        "only the paused endpoint's pending and scheduled work is held"
    );
    let stopped = env.store.stopped_endpoints().await.unwrap();
    assert_eq!(stopped.get(&held.id), Some(&EndpointState::Paused));
    assert!(!stopped.contains_key(&other.id));

    env.store
        .set_endpoint_state(
            &other.id,
            EndpointState::Disabled,
            Some("gone"),
            &operator(),
        )
        .await
        .unwrap();
    let summary = env.store.queue_summary().await.unwrap();
    assert_eq!((summary.pending_held, summary.retrying_held), (2, 1));
    let stopped = env.store.stopped_endpoints().await.unwrap();
    assert_eq!(stopped.get(&other.id), Some(&EndpointState::Disabled));

    env.ops.resume_endpoint(&held.id).await.unwrap();
    env.ops.resume_endpoint(&other.id).await.unwrap();
    let summary = env.store.queue_summary().await.unwrap();
    assert_eq!((summary.pending_held, summary.retrying_held), (0, 0));
}

async fn retrying_undelivered_skips_what_was_delivered_meanwhile(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.endpoint("acme", "hooks", &["order.*"]).await;
    let states = env.one_of_each("acme", "order.paid").await;
    let asked = vec![
        states.dead.clone(),
        states.scheduled.clone(),
        states.succeeded.clone(),
    ];
    // The re-read shows each as it is now.
    let now = env.store.deliveries_by_ids(&asked).await.unwrap();
    let seen: HashMap<String, DeliveryState> = now.into_iter().map(|d| (d.id, d.state)).collect();
    let expected = HashMap::from([
        (states.dead.clone(), DeliveryState::Dead),
        (states.scheduled.clone(), DeliveryState::Retrying),
        (states.succeeded.clone(), DeliveryState::Delivered),
    ]);
    assert_eq!(seen, expected);

    let report = env.ops.retry_undelivered(&asked).await.unwrap();
    assert_eq!(
        sorted(report.retried),
        sorted(vec![states.dead.clone(), states.scheduled.clone()])
    );
    assert_eq!(
        report.skipped,
        vec![(states.succeeded.clone(), "already delivered".to_string())]
    );
    assert_eq!(
        env.state(&states.succeeded).await,
        DeliveryState::Delivered,
        "a delivered one is never queued again"
    );
    assert_eq!(env.state(&states.dead).await, DeliveryState::Pending);
}

async fn the_last_dispatcher_seen_is_known_or_never(backend: Backend) {
    let env = env(backend).await;
    let (never, _) = env.store.dispatcher_last_seen().await.unwrap();
    assert_eq!(never, None);
    env.store
        .register_dispatcher("dsp_one", "host", 1, "test")
        .await
        .unwrap();
    env.store.dispatcher_stopped("dsp_one").await.unwrap();
    let (last, now) = env.store.dispatcher_last_seen().await.unwrap();
    let last = last.expect("seen once");
    assert!(last <= now && now - last < 60_000, "{last} vs {now}");
}

async fn queue_summary_stops_counting_at_its_limit(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.endpoint("acme", "hooks", &["order.*"]).await;
    let template = env
        .ops
        .validate_event(EventInput {
            tenant: Some("acme".into()),
            topic: "order.paid".into(),
            payload: r#"{"n":1}"#.into(),
            ..EventInput::default()
        })
        .await
        .unwrap();
    let total = hookline::store::SUMMARY_COUNT_LIMIT as usize + 5;
    for start in (0..total).step_by(2_500) {
        let events = vec![template.clone(); 2_500.min(total - start)];
        env.store.publish(&events, 0).await.unwrap();
    }
    let summary = env.store.queue_summary().await.unwrap();
    assert_eq!(
        summary.pending,
        hookline::store::SUMMARY_COUNT_LIMIT + 1,
        "one more than the limit means more than the limit"
    );
    assert!(summary.oldest_due_at.is_some());
}

async fn throughput_counts_attempts_per_minute_with_quiet_minutes_as_zeros(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.endpoint("acme", "hooks", &["*"]).await;
    for _ in 0..4 {
        env.publish("acme", "order.created").await;
    }
    let a = env.claim("dsp_a", 2).await.deliveries;
    let b = env.claim("dsp_b", 2).await.deliveries;
    assert_eq!((a.len(), b.len()), (2, 2));
    let (earlier, later) = (mid_minute(3), mid_minute(1));
    env.store
        .record_outcomes(
            "dsp_a",
            &[
                outcome_at(&a[0], NextStep::Succeeded, later),
                outcome_at(&a[1], NextStep::Succeeded, later),
            ],
        )
        .await
        .unwrap();
    env.store
        .record_outcomes(
            "dsp_b",
            &[
                outcome_at(&b[0], NextStep::RetryIn(HOUR_MS), earlier),
                outcome_at(&b[1], NextStep::Dead, later),
            ],
        )
        .await
        .unwrap();
    let minutes = env.store.throughput(10).await.unwrap();
    assert_eq!(minutes.len(), 10);
    for pair in minutes.windows(2) {
        assert_eq!(
            pair[1].minute - pair[0].minute,
            60_000,
            "oldest first, no gaps"
        );
    }
    let now = now_millis();
    let last = minutes.last().unwrap();
    assert!(
        last.minute <= now && now - last.minute < 2 * 60_000,
        "ends now"
    );
    let at = |t: i64| {
        minutes
            .iter()
            .find(|m| m.minute == t - t.rem_euclid(60_000))
            .copied()
            .unwrap_or_else(|| panic!("minute of {t} missing from {minutes:?}"))
    };
    let later_minute = at(later);
    assert_eq!(
        (later_minute.succeeded, later_minute.failed),
        (2, 1),
        "both dispatchers' attempts in that minute"
    );
    let earlier_minute = at(earlier);
    assert_eq!((earlier_minute.succeeded, earlier_minute.failed), (0, 1));
    let quiet: i64 = minutes
        .iter()
        .filter(|m| m.minute != later_minute.minute && m.minute != earlier_minute.minute)
        .map(|m| m.succeeded + m.failed)
        .sum();
    assert_eq!(quiet, 0, "{minutes:?}");
    assert_eq!(env.store.throughput(3).await.unwrap().len(), 3);
}

async fn health_windows_count_the_last_five_minutes_and_the_last_hour(backend: Backend) {
    let env = env(backend).await;
    let (hooks, claimed) = env.hooks_with_claimed(3).await;
    env.store
        .record_outcomes(
            "dsp_a",
            &[
                outcome_at(&claimed[0], NextStep::RetryIn(HOUR_MS), mid_minute(120)),
                outcome_at(&claimed[1], NextStep::RetryIn(HOUR_MS), mid_minute(20)),
                outcome_at(&claimed[2], NextStep::Succeeded, mid_minute(2)),
            ],
        )
        .await
        .unwrap();
    let health = env.store.endpoint_health(None).await.unwrap();
    let hooks_health = health.get(&hooks.id).expect("attempted, so present");
    assert_eq!(
        (
            hooks_health.last_5m.succeeded,
            hooks_health.last_5m.failed()
        ),
        (1, 0),
        "two minutes ago is recent; twenty is not"
    );
    assert_eq!(
        (
            hooks_health.last_1h.succeeded,
            hooks_health.last_1h.failed()
        ),
        (1, 1),
        "two hours ago is outside the hour"
    );
    assert_eq!(hooks_health.last_5m.success_rate(), Some(1.0));
    assert_eq!(hooks_health.last_1h.success_rate(), Some(0.5));
    let only = env
        .store
        .endpoint_health(Some(std::slice::from_ref(&hooks.id)))
        .await
        .unwrap();
    assert_eq!(only.get(&hooks.id), Some(hooks_health), "by id, the same");
}

async fn worst_endpoints_rank_by_failure_rate_then_backlog(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let flaky = env.endpoint("acme", "flaky", &["flaky.*"]).await;
    let down = env.endpoint("acme", "down", &["down.*"]).await;
    let backlogged = env.endpoint("acme", "backlogged", &["backlog.*"]).await;
    env.endpoint("acme", "healthy", &["healthy.*"]).await;
    let ok = env.publish_one("acme", "flaky.x").await;
    env.drive(&ok, NextStep::Succeeded).await;
    let failed = env.publish_one("acme", "flaky.x").await;
    env.drive(&failed, NextStep::Dead).await;
    for _ in 0..2 {
        let id = env.publish_one("acme", "down.x").await;
        env.drive(&id, NextStep::Dead).await;
    }
    for _ in 0..3 {
        env.publish_one("acme", "backlog.x").await;
    }
    let fine = env.publish_one("acme", "healthy.x").await;
    env.drive(&fine, NextStep::Succeeded).await;
    env.ops
        .pause_endpoint(&backlogged.id, Some("maintenance"), None)
        .await
        .unwrap();

    let worst = env.store.worst_endpoints(5, 10).await.unwrap();
    let ranked: Vec<(&str, Option<f64>, i64)> = worst
        .iter()
        .map(|w| (w.label.as_str(), w.failure_rate(), w.backlog))
        .collect();
    assert_eq!(
        ranked,
        vec![
            ("acme/down", Some(1.0), 0),
            ("acme/flaky", Some(0.5), 0),
            ("acme/backlogged", None, 3),
        ],
        "the healthy endpoint, with neither failures nor backlog, is not ranked"
    );
    assert_eq!(worst[0].endpoint_id, down.id);
    assert_eq!((worst[1].succeeded, worst[1].failed), (1, 1));
    assert_eq!(worst[1].endpoint_id, flaky.id);
    assert_eq!(worst[2].state, EndpointState::Paused);
    let health = env
        .store
        .endpoint_health(Some(&[down.id.clone(), flaky.id.clone()]))
        .await
        .unwrap();
    assert!(worst[0].last_error.is_some());
    assert_eq!(
        (worst[0].last_error.as_ref(), worst[1].last_error.as_ref()),
        (
            health[&down.id].last_error.as_ref(),
            health[&flaky.id].last_error.as_ref()
        ),
        "the last error is the one the health view shows"
    );
    assert_eq!(worst[2].last_error, None, "never failed");
    let top = env.store.worst_endpoints(5, 2).await.unwrap();
    assert_eq!(top, worst[..2].to_vec(), "the limit keeps the worst");
}

async fn endpoint_queues_count_pending_scheduled_and_in_flight_per_endpoint(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    let mixed = env.endpoint("acme", "mixed", &["order.*"]).await;
    let waiting = env.endpoint("acme", "waiting", &["user.*"]).await;
    let done = env.endpoint("acme", "done", &["invoice.*"]).await;
    env.one_of_each("acme", "order.paid").await;
    env.publish_one("acme", "user.created").await;
    env.publish_one("acme", "user.created").await;
    let finished = env.publish_one("acme", "invoice.paid").await;
    env.drive(&finished, NextStep::Succeeded).await;

    let all = env.store.endpoint_queues(None).await.unwrap();
    assert_eq!(
        sorted(all.keys().cloned().collect()),
        sorted(vec![mixed.id.clone(), waiting.id.clone()]),
        "endpoints with nothing queued or in flight are absent"
    );
    let queue = all[&mixed.id];
    assert_eq!((queue.pending, queue.retrying, queue.in_flight), (1, 1, 1));
    assert_eq!(queue.backlog(), 2);
    let queue = all[&waiting.id];
    assert_eq!((queue.pending, queue.retrying, queue.in_flight), (2, 0, 0));

    let some = env
        .store
        .endpoint_queues(Some(&[waiting.id.clone(), done.id.clone()]))
        .await
        .unwrap();
    assert_eq!(some.len(), 1, "only the asked-for endpoints with a queue");
    assert_eq!(some[&waiting.id], all[&waiting.id]);
}

/// Publishes an event for `acme` with `payload`; returns its id.
async fn publish_payload(env: &Env, payload: &str) -> String {
    env.ops
        .publish(EventInput {
            tenant: Some("acme".into()),
            topic: "order.paid".into(),
            payload: payload.into(),
            ..EventInput::default()
        })
        .await
        .unwrap()
        .event_id
}

async fn payload_search_streams_in_pages_newest_first_and_keeps_no_state(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.endpoint("acme", "hooks", &["order.*"]).await;
    env.endpoint("acme", "audit", &["order.*"]).await;
    let mut needles = Vec::new();
    for n in 0..7 {
        let text = if [1, 4, 5].contains(&n) {
            format!(r#"{{"n":{n},"note":"find the needle"}}"#)
        } else {
            format!(r#"{{"n":{n},"note":"hay"}}"#)
        };
        let event = publish_payload(&env, &text).await;
        if text.contains("needle") {
            needles.push(event);
        }
    }
    // Three events a page: 3 + 3 + 1, every event examined once.
    let mut pages = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = env
            .store
            .search_payloads("needle", cursor.as_ref(), 3)
            .await
            .unwrap();
        let next = page.next.clone();
        pages.push(page);
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages.len() < 10, "the search must end");
    }
    let scanned: Vec<i64> = pages.iter().map(|p| p.scanned).collect();
    assert_eq!(scanned, vec![3, 3, 1]);
    let found: Vec<Delivery> = pages.into_iter().flat_map(|p| p.matches).collect();
    assert_eq!(found.len(), 6, "two deliveries for each of three events");
    let events: Vec<String> = found.iter().map(|d| d.event_id.clone()).collect();
    let mut newest_first = needles.clone();
    newest_first.reverse();
    let mut seen: Vec<String> = events.clone();
    seen.dedup();
    assert_eq!(seen, newest_first, "newest event first");
    for pair in found.windows(2) {
        assert!(
            (pair[0].created_at, &pair[0].id) > (pair[1].created_at, &pair[1].id),
            "deliveries newest first"
        );
    }

    // Abandoning a search costs nothing: the store holds no state, so
    // another search runs on its own and the first can resume from its
    // cursor later.
    let first = env.store.search_payloads("needle", None, 2).await.unwrap();
    let other = env.store.search_payloads("hay", None, 100).await.unwrap();
    assert_eq!(
        other.matches.len(),
        8,
        "four hay events, two deliveries each"
    );
    assert_eq!((other.scanned, other.next.is_none()), (7, true));
    let resumed = env
        .store
        .search_payloads("needle", first.next.as_ref(), 100)
        .await
        .unwrap();
    let mut both: Vec<String> = first
        .matches
        .iter()
        .chain(&resumed.matches)
        .map(|d| d.event_id.clone())
        .collect();
    both.dedup();
    assert_eq!(both, newest_first, "resuming finds the rest, nothing twice");
    assert_eq!(first.scanned + resumed.scanned, 7);
    let nothing = env
        .store
        .search_payloads("absent", None, 100)
        .await
        .unwrap();
    assert!(nothing.matches.is_empty() && nothing.next.is_none());
}

async fn newer_pages_walk_toward_the_newest_and_agree_with_older_pages(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.endpoint("acme", "hooks", &["order.*"]).await;
    let mut oldest_first = Vec::new();
    for _ in 0..5 {
        oldest_first.push(env.publish_one("acme", "order.paid").await);
    }
    let all = DeliveryFilter::default();
    let page_ids = |page: &hookline::store::Page<Delivery>| -> Vec<String> {
        page.items.iter().map(|d| d.id.clone()).collect()
    };
    let first = env
        .store
        .list_deliveries_newer(&all, None, 2)
        .await
        .unwrap();
    assert_eq!(
        page_ids(&first),
        vec![oldest_first[1].clone(), oldest_first[0].clone()],
        "without a cursor: the oldest page, newest first within it"
    );
    let second = env
        .store
        .list_deliveries_newer(&all, first.next.as_ref(), 2)
        .await
        .unwrap();
    assert_eq!(
        page_ids(&second),
        vec![oldest_first[3].clone(), oldest_first[2].clone()]
    );
    let third = env
        .store
        .list_deliveries_newer(&all, second.next.as_ref(), 2)
        .await
        .unwrap();
    assert_eq!(page_ids(&third), vec![oldest_first[4].clone()]);
    assert!(third.next.is_none(), "the newest is reached");

    // Paging back up from an older page lands on the rows just above it.
    let newest = env.store.list_deliveries(&all, None, 2).await.unwrap();
    let below = env
        .store
        .list_deliveries(&all, newest.next.as_ref(), 2)
        .await
        .unwrap();
    let above = env
        .store
        .list_deliveries_newer(
            &all,
            Some(&Cursor {
                created_at: below.items[0].created_at,
                id: below.items[0].id.clone(),
            }),
            2,
        )
        .await
        .unwrap();
    assert_eq!(page_ids(&above), page_ids(&newest));

    // Filters apply the same way.
    let states = env.one_of_each("acme", "order.paid").await;
    let dead = env
        .store
        .list_deliveries_newer(
            &DeliveryFilter {
                states: vec![DeliveryState::Dead],
                ..DeliveryFilter::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(page_ids(&dead), vec![states.dead]);
}

async fn chunked_bulk_retry_revives_oldest_first_and_only_what_matches(backend: Backend) {
    let env = env(backend).await;
    env.tenant("acme").await;
    env.endpoint("acme", "hooks", &["order.*"]).await;
    env.endpoint("acme", "other", &["user.*"]).await;
    let dead = dead_deliveries(&env, "order.paid", 5).await;
    let others_dead = dead_deliveries(&env, "user.created", 2).await;
    let states = env.one_of_each("acme", "order.paid").await;
    let before = env.audit_ids().await;
    let request = BulkRetry {
        endpoint: "acme/hooks".into(),
        states: vec![DeliveryState::Dead],
        since: None,
        until: None,
        dry_run: false,
    };
    let (_, pending) = env
        .ops
        .retry_bulk(&BulkRetry {
            dry_run: true,
            ..request.clone()
        })
        .await
        .unwrap();
    assert_eq!(pending, 6, "five dead, and one from one_of_each");
    let mut counts = Vec::new();
    let mut revived_after_first = Vec::new();
    loop {
        let (_, count) = env.ops.retry_bulk_chunk(&request, Some(2)).await.unwrap();
        counts.push(count);
        if revived_after_first.is_empty() {
            for id in &dead {
                revived_after_first.push(env.state(id).await == DeliveryState::Pending);
            }
        }
        if count < 2 {
            break;
        }
        assert!(counts.len() < 10, "chunks must end");
    }
    assert_eq!(counts, vec![2, 2, 2, 0]);
    assert_eq!(
        revived_after_first,
        vec![true, true, false, false, false],
        "the first chunk takes the oldest"
    );
    for id in dead.iter().chain([&states.dead]) {
        assert_eq!(env.state(id).await, DeliveryState::Pending, "{id}");
    }
    for id in &others_dead {
        assert_eq!(
            env.state(id).await,
            DeliveryState::Dead,
            "another endpoint's"
        );
    }
    for (id, state) in states.expected() {
        if state != DeliveryState::Dead {
            assert_eq!(env.state(&id).await, state, "{state} is not retried");
        }
    }
    let audit = env.audit_after(&before).await;
    let mut chunks: Vec<u64> = audit
        .iter()
        .filter(|a| a.action == "delivery.retry_bulk")
        .map(|a| {
            let detail: serde_json::Value = serde_json::from_str(&a.detail).unwrap();
            detail["count"].as_u64().unwrap()
        })
        .collect();
    chunks.sort();
    assert_eq!(
        chunks,
        vec![2, 2, 2],
        "one audit row per chunk that revived any"
    );
    assert_eq!(audit.len(), 3, "the empty chunk and the dry run write none");

    // States that cannot be retried are ignored, not revived.
    let snapshot = env.db.dump().await;
    let count = env
        .store
        .retry_matching_limited(
            &hookline::store::RetryFilter {
                endpoint_id: env.ops.endpoint("acme/hooks").await.unwrap().id,
                states: vec![DeliveryState::Pending, DeliveryState::InFlight],
                since: None,
                until: None,
                topic: None,
                event_id: None,
            },
            false,
            0,
            &operator(),
            Some(100),
        )
        .await
        .unwrap();
    assert_eq!(count, 0);
    assert_eq!(env.db.dump().await, snapshot, "nothing written");
}

async fn the_config_version_moves_with_configuration_only(backend: Backend) {
    let env = env(backend).await;
    let start = env.store.config_version().await.unwrap();
    env.tenant("acme").await;
    let after_tenant = env.store.config_version().await.unwrap();
    assert!(after_tenant > start, "a new tenant");
    let hooks = env.endpoint("acme", "hooks", &["order.*"]).await;
    let after_endpoint = env.store.config_version().await.unwrap();
    assert!(
        after_endpoint > after_tenant,
        "a new endpoint and subscription"
    );
    let id = env.publish_one("acme", "order.paid").await;
    env.drive(&id, NextStep::Dead).await;
    env.ops.retry(&[id]).await.unwrap();
    assert_eq!(
        env.store.config_version().await.unwrap(),
        after_endpoint,
        "deliveries are not configuration"
    );
    env.ops.pause_endpoint(&hooks.id, None, None).await.unwrap();
    let after_pause = env.store.config_version().await.unwrap();
    assert!(after_pause > after_endpoint, "a paused endpoint");
    let subscription = env
        .ops
        .add_subscription(&hooks.id, "user.*", None)
        .await
        .unwrap();
    let after_subscription = env.store.config_version().await.unwrap();
    assert!(after_subscription > after_pause);
    env.ops.delete_subscription(&subscription.id).await.unwrap();
    assert!(env.store.config_version().await.unwrap() > after_subscription);
}

both_backends!(
    tenants_are_created_and_listed,
    the_first_endpoints_and_subscriptions_are_the_head_of_the_lists,
    a_duplicate_tenant_name_is_refused_and_writes_nothing,
    tenants_are_found_by_id_and_by_name,
    deleting_a_tenant_cascades_to_endpoints_subscriptions_and_unfinished_deliveries,
    endpoints_are_created_with_defaults,
    endpoint_settings_can_be_overridden_at_creation,
    endpoint_names_are_unique_per_tenant_but_shared_across_tenants,
    endpoints_are_found_by_id_tenant_and_name_or_a_unique_name,
    an_ambiguous_endpoint_name_is_a_conflict_naming_both_tenants,
    endpoint_updates_patch_only_given_fields_and_some_none_clears,
    renaming_an_endpoint_onto_a_taken_name_is_refused_and_writes_nothing,
    pause_and_resume_report_the_previous_state_and_pausing_twice_audits_once,
    resume_makes_a_disabled_endpoint_active,
    a_pause_until_a_time_ends_on_the_reap_and_is_audited_as_hookline,
    several_dispatchers_end_a_due_pause_once,
    rotating_a_secret_keeps_the_previous_one_signing_during_its_grace,
    deleting_an_endpoint_cancels_its_unfinished_deliveries,
    subscriptions_are_created_listed_updated_and_deleted,
    a_duplicate_subscription_pattern_is_refused,
    fan_out_follows_patterns_within_the_events_tenant,
    two_matching_subscriptions_make_one_delivery,
    a_broadcast_reaches_every_tenant,
    paused_and_disabled_endpoints_get_held_deliveries_but_deleted_ones_none,
    a_repeated_idempotency_key_returns_the_original_and_creates_nothing,
    idempotency_keys_are_scoped_per_tenant,
    a_batch_of_events_is_published_in_one_call,
    payloads_round_trip_byte_for_byte,
    bad_input_is_refused_naming_the_field_and_writes_nothing,
    claim_respects_the_default_and_per_endpoint_in_flight_caps,
    a_publish_hands_off_only_what_caps_queues_and_slots_allow,
    a_publish_that_delays_first_attempts_hands_off_nothing,
    a_claim_takes_only_the_slots_it_fills,
    one_cycle_records_outcomes_and_claims_the_slots_they_free,
    a_retry_a_cycle_schedules_sets_the_wait,
    a_claim_sends_to_the_endpoint_as_it_is_now,
    in_flight_caps_count_leases_held_by_other_owners,
    concurrent_claims_from_separate_stores_never_exceed_a_cap,
    the_claim_limit_caps_the_total,
    the_oldest_due_delivery_is_claimed_first,
    held_and_deleted_endpoints_are_never_claimed,
    deliveries_not_yet_due_are_not_claimed_and_the_wait_is_reported,
    an_expired_lease_is_taken_back_and_its_late_outcome_is_stale,
    claimed_deliveries_carry_payload_and_endpoint_targets,
    a_success_marks_the_delivery_succeeded,
    a_retry_schedules_the_delivery_and_it_is_claimable_only_when_due,
    dead_marks_the_delivery_dead,
    attempts_are_kept_in_history_as_given,
    an_outcome_from_a_non_owner_is_stale,
    a_gone_answer_disables_the_endpoint_and_audits_as_the_system,
    consecutive_failures_count_up_and_reset_on_success,
    health_merges_every_dispatchers_rollups,
    rollups_gathered_over_cycles_are_written_once_and_count_every_attempt,
    released_deliveries_go_back_to_pending_or_scheduled_due_at_once,
    retry_by_id_revives_finished_deliveries_and_explains_skips,
    bulk_retry_dry_run_counts_without_writing,
    bulk_retry_revives_only_the_matching_states_window_and_endpoint,
    delivery_listings_filter_by_state_tenant_endpoint_topic_event_and_since,
    keyset_pages_visit_every_delivery_once_newest_first,
    every_operator_mutation_writes_one_audit_row_with_the_actor,
    audit_rows_record_the_actors_name_source_and_address,
    the_audit_log_pages_newest_first,
    existing_mode_refuses_an_unmigrated_database,
    migrating_twice_is_a_no_op_the_second_time,
    a_database_from_a_newer_hookline_is_refused,
    a_claim_reaches_every_endpoint_with_due_work_within_the_limit,
    a_small_claim_takes_the_globally_oldest_deliveries,
    concurrent_publishes_with_one_idempotency_key_make_one_event,
    concurrent_pauses_report_and_audit_one_change,
    concurrent_patches_to_different_fields_both_survive,
    publishing_while_an_endpoint_is_deleted_leaves_nothing_queued_for_it,
    publishing_while_a_tenant_is_deleted_leaves_nothing_queued,
    queue_summary_counts_each_state_and_how_late_the_queue_runs,
    queue_summary_stops_counting_at_its_limit,
    held_work_is_counted_by_state_and_stopped_endpoints_are_listed,
    retrying_undelivered_skips_what_was_delivered_meanwhile,
    the_last_dispatcher_seen_is_known_or_never,
    throughput_counts_attempts_per_minute_with_quiet_minutes_as_zeros,
    health_windows_count_the_last_five_minutes_and_the_last_hour,
    worst_endpoints_rank_by_failure_rate_then_backlog,
    endpoint_queues_count_pending_scheduled_and_in_flight_per_endpoint,
    payload_search_streams_in_pages_newest_first_and_keeps_no_state,
    newer_pages_walk_toward_the_newest_and_agree_with_older_pages,
    chunked_bulk_retry_revives_oldest_first_and_only_what_matches,
    the_config_version_moves_with_configuration_only,
);

/// Behaviours only one backend has.
mod sqlite_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn existing_mode_refuses_a_missing_sqlite_file_and_creates_none() {
        super::existing_mode_refuses_a_missing_sqlite_file_and_creates_none().await
    }
}
