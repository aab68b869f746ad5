//! The delivery engine end to end, on SQLite and Postgres: tenants,
//! endpoints and subscriptions created through `Ops`, events published
//! through `Ops::publish`, a real dispatcher in this process, and real HTTP
//! receivers (`hookline::sink`) on 127.0.0.1. Every test checks both what
//! the receiver got and what the database says.
//!
//! Signatures are checked here by an HMAC computed in the test itself (the
//! `hmac`/`sha2`/`base64` crates directly), never by hookline's own signing
//! code, so a bug there cannot hide behind a matching bug in the check.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use sqlx::Connection;

use common::{
    Backend, RunningDispatcher, TestDb, failing_sink, install_crypto, test_config, test_ops,
};
use hookline::config::Config;
use hookline::model::{Delivery, DeliveryState, Endpoint, EndpointState, ErrorKind, Source};
use hookline::ops::{BulkRetry, EndpointChanges, EndpointInput, EventInput, Ops};
use hookline::sink::{ReceivedRequest, SinkHandle, SinkOptions, Verdict};
use hookline::store::{DeliveryDetail, DeliveryFilter, Published, Store};

// --- the world a test runs in --------------------------------------------

/// A fresh database with its store, settings and operator actions.
struct World {
    db: TestDb,
    store: Store,
    config: Config,
    ops: Ops,
}

impl World {
    /// A fresh database with [`test_config`].
    async fn new(backend: Backend) -> World {
        World::with_config(backend, |_| {}).await
    }

    /// A fresh database with [`test_config`] changed by `tweak` (revalidated).
    async fn with_config(backend: Backend, tweak: impl FnOnce(&mut Config)) -> World {
        install_crypto();
        let db = TestDb::new(backend);
        let mut config = test_config(&db.url);
        tweak(&mut config);
        config
            .validate()
            .unwrap_or_else(|e| panic!("tweaked test config invalid: {e}"));
        // The store applies the breaker's rules: it takes the tweaked ones.
        let store = hookline::store::Store::open_with(
            &db.url,
            hookline::store::OpenMode::CreateAndMigrate,
            hookline::store::StoreOptions::from_config(&config),
        )
        .await
        .unwrap_or_else(|e| panic!("open {}: {e}", db.url));
        let ops = test_ops(&store, &config);
        World {
            db,
            store,
            config,
            ops,
        }
    }

    async fn tenant(&self, name: &str) {
        self.ops
            .add_tenant(name)
            .await
            .unwrap_or_else(|e| panic!("add tenant {name}: {e}"));
    }

    /// An endpoint of `tenant` at `url`, subscribed to `pattern`; `tweak`
    /// sets the optional fields.
    async fn endpoint(
        &self,
        tenant: &str,
        name: &str,
        url: &str,
        pattern: &str,
        tweak: impl FnOnce(&mut EndpointInput),
    ) -> Endpoint {
        let mut input = EndpointInput {
            tenant: tenant.to_string(),
            name: name.to_string(),
            url: url.to_string(),
            ..EndpointInput::default()
        };
        tweak(&mut input);
        let endpoint = self
            .ops
            .add_endpoint(&input)
            .await
            .unwrap_or_else(|e| panic!("add endpoint {name}: {e}"));
        self.ops
            .add_subscription(&endpoint.id, pattern, None)
            .await
            .unwrap_or_else(|e| panic!("subscribe {name} to {pattern}: {e}"));
        endpoint
    }

    async fn publish(&self, tenant: &str, topic: &str, payload: &str) -> Published {
        self.publish_input(&EventInput {
            tenant: Some(tenant.to_string()),
            topic: topic.to_string(),
            payload: payload.into(),
            ..EventInput::default()
        })
        .await
    }

    async fn publish_input(&self, input: &EventInput) -> Published {
        self.ops
            .publish(input.clone())
            .await
            .unwrap_or_else(|e| panic!("publish {input:?}: {e}"))
    }

    /// Every delivery matching `filter`, newest first.
    async fn deliveries(&self, filter: DeliveryFilter) -> Vec<Delivery> {
        self.store
            .list_deliveries(&filter, None, 1_000)
            .await
            .expect("list deliveries")
            .items
    }

    /// The deliveries of one event.
    async fn deliveries_of(&self, event_id: &str) -> Vec<Delivery> {
        self.deliveries(DeliveryFilter {
            event_id: Some(event_id.to_string()),
            ..DeliveryFilter::default()
        })
        .await
    }

    /// The only delivery of one event.
    async fn only_delivery_of(&self, event_id: &str) -> Delivery {
        let mut deliveries = self.deliveries_of(event_id).await;
        assert_eq!(
            deliveries.len(),
            1,
            "deliveries of {event_id}: {deliveries:#?}"
        );
        deliveries.remove(0)
    }

    async fn detail(&self, delivery_id: &str) -> DeliveryDetail {
        self.store
            .get_delivery(delivery_id)
            .await
            .unwrap_or_else(|e| panic!("get delivery {delivery_id}: {e}"))
    }

    /// Waits until the delivery is in `state`; panics with its detail if not.
    async fn wait_state(
        &self,
        delivery_id: &str,
        state: DeliveryState,
        timeout: Duration,
    ) -> DeliveryDetail {
        let reached = common::wait_until(timeout, || async {
            self.detail(delivery_id).await.delivery.state == state
        })
        .await;
        let detail = self.detail(delivery_id).await;
        assert!(
            reached,
            "delivery {delivery_id} not {state} after {timeout:?}: {detail:#?}"
        );
        detail
    }

    /// Waits until every delivery matching `filter` is in `state` (and there are `count`).
    async fn wait_all(
        &self,
        filter: DeliveryFilter,
        count: usize,
        state: DeliveryState,
        timeout: Duration,
    ) -> Vec<Delivery> {
        let reached = common::wait_until(timeout, || async {
            let all = self.deliveries(filter.clone()).await;
            all.len() == count && all.iter().all(|d| d.state == state)
        })
        .await;
        let all = self.deliveries(filter.clone()).await;
        assert!(
            reached,
            "expected {count} deliveries {state} after {timeout:?}: {all:#?}"
        );
        all
    }

    async fn endpoint_now(&self, id: &str) -> Endpoint {
        self.ops
            .endpoint(id)
            .await
            .unwrap_or_else(|e| panic!("endpoint {id}: {e}"))
    }

    fn dispatcher(&self) -> RunningDispatcher {
        RunningDispatcher::start(&self.store, &self.config)
    }

    /// `(state, lease_owner, lease_expires_at)` read straight from the table:
    /// the model does not expose leases.
    async fn lease_of(&self, delivery_id: &str) -> (String, Option<String>, Option<i64>) {
        const QUERY: &str =
            "SELECT state, lease_owner, lease_expires_at FROM deliveries WHERE id = $1";
        match self.db.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.db.url)
                    .await
                    .expect("connect to SQLite");
                sqlx::query_as(QUERY)
                    .bind(delivery_id)
                    .fetch_one(&mut conn)
                    .await
                    .expect("read lease")
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.db.url)
                    .await
                    .expect("connect to Postgres");
                sqlx::query_as(QUERY)
                    .bind(delivery_id)
                    .fetch_one(&mut conn)
                    .await
                    .expect("read lease")
            }
        }
    }
}

/// A sink on a free port that keeps every request, with `opts` otherwise.
async fn sink(opts: SinkOptions) -> SinkHandle {
    hookline::sink::start(SinkOptions { keep: true, ..opts })
        .await
        .expect("start a sink")
}

async fn healthy_sink() -> SinkHandle {
    sink(SinkOptions::default()).await
}

/// Waits until `sink` has received `n` requests; panics with what it has if not.
async fn expect_requests(sink: &SinkHandle, n: u64, timeout: Duration) -> Vec<ReceivedRequest> {
    let arrived = sink.wait_for(n, timeout).await;
    let requests = sink.requests();
    assert!(
        arrived,
        "sink {} got {} of {n} requests within {timeout:?}: {:?}",
        sink.url(),
        requests.len(),
        ids(&requests)
    );
    requests
}

fn ids(requests: &[ReceivedRequest]) -> Vec<String> {
    requests
        .iter()
        .map(|r| r.header("webhook-id").unwrap_or("<none>").to_string())
        .collect()
}

fn header<'a>(request: &'a ReceivedRequest, name: &str) -> &'a str {
    request
        .header(name)
        .unwrap_or_else(|| panic!("no {name} header in {:?}", request.headers))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// `whsec_` + base64 of 32 bytes of `fill`: a secret whose key the test knows.
fn known_secret(fill: u8) -> (String, Vec<u8>) {
    let key: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(7) ^ fill).collect();
    (format!("whsec_{}", BASE64.encode(&key)), key)
}

/// The key behind a `whsec_` secret, decoded here rather than by hookline.
fn key_of(secret: &str) -> Vec<u8> {
    let encoded = secret
        .strip_prefix("whsec_")
        .unwrap_or_else(|| panic!("secret {secret:?} lacks whsec_"));
    BASE64
        .decode(encoded)
        .unwrap_or_else(|e| panic!("secret {secret:?} is not base64: {e}"))
}

/// `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), computed independently.
fn expected_signature(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

fn by_endpoint(endpoint_id: &str) -> DeliveryFilter {
    DeliveryFilter {
        endpoint_id: Some(endpoint_id.to_string()),
        ..DeliveryFilter::default()
    }
}

const WAIT: Duration = Duration::from_secs(10);

// --- 1. the payload arrives byte for byte ---------------------------------

/// Unsorted keys, odd whitespace (around the value too: tabs, CRLF, spaces before colons),
/// `1.0`, `1e2`, a 30-digit integer, a `\u00e9` escape next to a raw `é`,
/// `-0.0`, and a duplicate key: anything that parses and re-serialises would
/// change at least one of these bytes.
const ODD_PAYLOAD: &str = " \n{ \"zeta\" :1.0,\"alpha\":  1e2,\n\t\"big\": 123456789012345678901234567890 ,\r\n  \"name\":\"caf\\u00e9\", \"raw\": \"caf\u{e9}\", \"alpha\" : \"again\", \"nested\":{\"b\":[ ],\"a\":-0.0}   }\n";

async fn payload_arrives_byte_identical(backend: Backend) {
    let world = World::new(backend).await;
    let sink = healthy_sink().await;
    world.tenant("acme").await;
    let endpoint = world
        .endpoint("acme", "orders", &sink.url(), "order.*", |e| {
            e.headers = vec!["X-Team: payments".to_string()];
        })
        .await;
    let dispatcher = world.dispatcher();
    let published = world.publish("acme", "order.created", ODD_PAYLOAD).await;
    assert!(!published.duplicate);
    assert_eq!(published.deliveries, 1);

    let requests = expect_requests(&sink, 1, WAIT).await;
    let request = &requests[0];
    assert_eq!(
        request.body,
        ODD_PAYLOAD.as_bytes(),
        "body changed in transit:\n got  {}\n sent {ODD_PAYLOAD}",
        String::from_utf8_lossy(&request.body)
    );
    assert_eq!(header(request, "content-type"), "application/json");
    let content_types = request
        .headers
        .iter()
        .filter(|(n, _)| n == "content-type")
        .count();
    assert_eq!(content_types, 1, "{:?}", request.headers);
    assert_eq!(
        header(request, "user-agent"),
        concat!("hookline/", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(header(request, "x-team"), "payments");
    assert_eq!(request.path, "/");

    let delivery = world.only_delivery_of(&published.event_id).await;
    assert_eq!(delivery.endpoint_id, endpoint.id);
    let detail = world
        .wait_state(&delivery.id, DeliveryState::Delivered, WAIT)
        .await;
    assert_eq!(detail.event.payload, ODD_PAYLOAD, "stored payload changed");
    assert_eq!(detail.delivery.attempts, 1);
    assert_eq!(detail.delivery.last_status, Some(200));
    assert_eq!(detail.attempts.len(), 1);
    let attempt = &detail.attempts[0];
    assert_eq!(attempt.status_code, Some(200));
    assert_eq!(attempt.error_kind, None);
    assert_eq!(attempt.response_body.as_deref(), Some("ok"));
    // The history keeps the headers sent, but never a usable signature.
    let recorded = |name: &str| {
        attempt
            .request_headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(recorded("x-team"), Some("payments"));
    assert_eq!(recorded("webhook-id"), Some(published.event_id.as_str()));
    assert_eq!(recorded("webhook-signature"), Some("v1,****"));
    assert_eq!(recorded("webhook-topic"), Some("order.created"));
    dispatcher.stop().await;
}

// --- 2. Standard Webhooks headers, checked independently -----------------

async fn standard_webhooks_headers_verify_independently(backend: Backend) {
    let world = World::new(backend).await;
    let sink = healthy_sink().await;
    world.tenant("acme").await;
    let (secret, key) = known_secret(0x5a);
    let endpoint = world
        .endpoint("acme", "orders", &sink.url(), "order.created", |e| {
            e.secret = Some(secret.clone());
        })
        .await;
    assert_eq!(endpoint.secret, secret);
    let dispatcher = world.dispatcher();
    let payload = r#"{"order": 42, "total": "9.99"}"#;
    let published = world.publish("acme", "order.created", payload).await;

    let requests = expect_requests(&sink, 1, WAIT).await;
    let request = &requests[0];
    let id = header(request, "webhook-id");
    assert_eq!(id, published.event_id);
    assert!(id.starts_with("msg_"), "{id}");
    // The topic rides beside the signed headers; the signature (checked
    // below) covers id, timestamp and body as the spec says, not it.
    assert_eq!(header(request, "webhook-topic"), "order.created");
    let timestamp = header(request, "webhook-timestamp");
    let ts: i64 = timestamp
        .parse()
        .unwrap_or_else(|_| panic!("webhook-timestamp {timestamp:?} is not unix seconds"));
    let now = unix_now();
    assert!(
        (now - 5..=now + 1).contains(&ts),
        "webhook-timestamp {ts} is not within seconds of now ({now})"
    );
    let signature = header(request, "webhook-signature");
    assert!(
        !signature.contains(' '),
        "one secret, one signature: {signature}"
    );
    assert_eq!(
        signature,
        expected_signature(&key, id, timestamp, &request.body)
    );
    // And the key is really the one after whsec_: another key does not match.
    let (_, other_key) = known_secret(0x5b);
    assert_ne!(
        signature,
        expected_signature(&other_key, id, timestamp, &request.body)
    );
    // A generated secret works the same way: its key is the base64 after whsec_.
    let generated = world
        .endpoint("acme", "audit", &sink.url(), "order.created", |_| {})
        .await;
    assert!(generated.secret.starts_with("whsec_"));
    let generated_key = key_of(&generated.secret);
    assert_eq!(generated_key.len(), 32, "generated keys are 32 bytes");
    let second = world.publish("acme", "order.created", payload).await;
    assert_eq!(second.deliveries, 2);
    let requests = expect_requests(&sink, 3, WAIT).await;
    let verified: Vec<&ReceivedRequest> = requests[1..]
        .iter()
        .filter(|r| {
            let (id, ts) = (header(r, "webhook-id"), header(r, "webhook-timestamp"));
            header(r, "webhook-signature") == expected_signature(&generated_key, id, ts, &r.body)
        })
        .collect();
    assert_eq!(
        verified.len(),
        1,
        "exactly one of the two requests is for the generated-secret endpoint"
    );
    assert_eq!(header(verified[0], "webhook-id"), second.event_id);
    dispatcher.stop().await;
}

// --- 3. tenant isolation ---------------------------------------------------

async fn tenants_only_receive_their_own_events(backend: Backend) {
    let world = World::new(backend).await;
    let (sink_a, sink_b, sink_c) = (
        healthy_sink().await,
        healthy_sink().await,
        healthy_sink().await,
    );
    for tenant in ["acme", "globex", "initech"] {
        world.tenant(tenant).await;
    }
    let ep_a = world
        .endpoint("acme", "hooks", &sink_a.url(), "resident.update", |_| {})
        .await;
    let ep_b = world
        .endpoint("globex", "hooks", &sink_b.url(), "resident.*", |_| {})
        .await;
    // A third tenant subscribed to something else gets nothing, not even the broadcast.
    world
        .endpoint("initech", "hooks", &sink_c.url(), "invoice.**", |_| {})
        .await;
    let dispatcher = world.dispatcher();

    let for_a = world
        .publish("acme", "resident.update", r#"{"for":"acme"}"#)
        .await;
    let for_b = world
        .publish("globex", "resident.update", r#"{"for":"globex"}"#)
        .await;
    let everyone = world
        .publish_input(&EventInput {
            broadcast: true,
            topic: "resident.update".to_string(),
            payload: r#"{"for":"everyone"}"#.into(),
            ..EventInput::default()
        })
        .await;
    assert_eq!(
        (for_a.deliveries, for_b.deliveries, everyone.deliveries),
        (1, 1, 2)
    );

    // Every delivery that exists must finish; then the sinks' logs are complete.
    let all = world
        .wait_all(DeliveryFilter::default(), 4, DeliveryState::Delivered, WAIT)
        .await;
    let to = |event: &str| -> Vec<String> {
        let mut endpoints: Vec<String> = all
            .iter()
            .filter(|d| d.event_id == event)
            .map(|d| d.endpoint_id.clone())
            .collect();
        endpoints.sort();
        endpoints
    };
    assert_eq!(to(&for_a.event_id), std::slice::from_ref(&ep_a.id));
    assert_eq!(to(&for_b.event_id), std::slice::from_ref(&ep_b.id));
    let mut both = vec![ep_a.id.clone(), ep_b.id.clone()];
    both.sort();
    assert_eq!(to(&everyone.event_id), both);

    let mut got_a = ids(&sink_a.requests());
    let mut got_b = ids(&sink_b.requests());
    got_a.sort();
    got_b.sort();
    let mut want_a = vec![for_a.event_id.clone(), everyone.event_id.clone()];
    let mut want_b = vec![for_b.event_id.clone(), everyone.event_id.clone()];
    want_a.sort();
    want_b.sort();
    assert_eq!(got_a, want_a, "acme's sink");
    assert_eq!(got_b, want_b, "globex's sink");
    assert!(
        sink_c.requests().is_empty(),
        "initech got {:?}",
        ids(&sink_c.requests())
    );
    for request in sink_a.requests() {
        assert_ne!(
            request.body, br#"{"for":"globex"}"#,
            "acme got globex's payload"
        );
    }
    for request in sink_b.requests() {
        assert_ne!(
            request.body, br#"{"for":"acme"}"#,
            "globex got acme's payload"
        );
    }
    dispatcher.stop().await;
}

// --- 4. retry timing, dead letter, stats ------------------------------------

async fn failing_delivery_retries_on_schedule_then_dies(backend: Backend) {
    let world = World::new(backend).await;
    let sink = failing_sink(500).await;
    world.tenant("acme").await;
    world
        .endpoint("acme", "broken", &sink.url(), "order.created", |_| {})
        .await;
    let dispatcher = world.dispatcher();
    let dispatcher_id = dispatcher.id.clone();
    let published = world.publish("acme", "order.created", r#"{"n":1}"#).await;
    let delivery = world.only_delivery_of(&published.event_id).await;

    let detail = world
        .wait_state(&delivery.id, DeliveryState::Dead, WAIT)
        .await;
    // Dead is final: no fourth attempt, even well after the last step.
    assert!(
        !sink.wait_for(4, Duration::from_millis(800)).await,
        "a dead delivery was attempted again: {:?}",
        sink.requests()
    );
    let stats = dispatcher.stop().await;

    let requests = sink.requests();
    assert_eq!(requests.len(), 3, "three attempts: {requests:?}");
    assert!(
        requests
            .iter()
            .all(|r| r.verdict == Verdict::FailedOnPurpose && r.status == 500)
    );
    assert!(
        requests
            .iter()
            .all(|r| header(r, "webhook-id") == published.event_id),
        "webhook-id must be stable across retries"
    );
    let gaps: Vec<u64> = requests
        .windows(2)
        .map(|w| w[1].time_ms - w[0].time_ms)
        .collect();
    // The next attempt is due a full step after the previous one was recorded,
    // which is after it arrived, so the steps are hard lower bounds.
    assert!(
        (300..1_300).contains(&gaps[0]),
        "gap 1→2 should be ~300ms: {gaps:?}"
    );
    assert!(
        (600..1_600).contains(&gaps[1]),
        "gap 2→3 should be ~600ms: {gaps:?}"
    );

    assert_eq!(detail.delivery.attempts, 3);
    assert_eq!(detail.delivery.last_status, Some(500));
    assert!(
        detail
            .delivery
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("500")),
        "{:?}",
        detail.delivery.last_error
    );
    let numbers: Vec<i64> = detail.attempts.iter().map(|a| a.attempt_number).collect();
    assert_eq!(numbers, [1, 2, 3]);
    for attempt in &detail.attempts {
        assert_eq!(attempt.status_code, Some(500));
        assert_eq!(attempt.error_kind, Some(ErrorKind::HttpStatus));
        assert_eq!(
            attempt.response_body.as_deref(),
            Some("failed on purpose\n")
        );
        assert_eq!(
            attempt.dispatcher_id.as_deref(),
            Some(dispatcher_id.as_str())
        );
    }
    assert_eq!(
        (
            stats.attempted,
            stats.succeeded,
            stats.failed,
            stats.dead,
            stats.stale
        ),
        (3, 0, 2, 1, 0),
        "dispatcher stats {stats:?}"
    );
    let sink_stats = sink.stats();
    assert_eq!((sink_stats.failed_on_purpose, sink_stats.accepted), (3, 0));
}

// --- 5. manual and bulk retry -------------------------------------------------

async fn manual_retry_revives_a_dead_delivery(backend: Backend) {
    let world = World::new(backend).await;
    let broken = failing_sink(500).await;
    let healthy = healthy_sink().await;
    world.tenant("acme").await;
    let endpoint = world
        .endpoint("acme", "orders", &broken.url(), "order.created", |_| {})
        .await;
    let dispatcher = world.dispatcher();
    let published = world.publish("acme", "order.created", r#"{"n":1}"#).await;
    let delivery = world.only_delivery_of(&published.event_id).await;
    world
        .wait_state(&delivery.id, DeliveryState::Dead, WAIT)
        .await;

    // The receiver is fixed: the endpoint now points at a healthy sink.
    world
        .ops
        .update_endpoint(
            &endpoint.id,
            &EndpointChanges {
                url: Some(healthy.url()),
                ..EndpointChanges::default()
            },
        )
        .await
        .expect("update the URL");
    let report = world
        .ops
        .retry(std::slice::from_ref(&delivery.id))
        .await
        .expect("retry");
    assert_eq!(report.retried, std::slice::from_ref(&delivery.id));
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);

    let detail = world
        .wait_state(&delivery.id, DeliveryState::Delivered, WAIT)
        .await;
    assert_eq!(
        detail.delivery.attempts, 1,
        "a manual retry starts a fresh schedule"
    );
    let history: Vec<(i64, Option<i64>)> = detail
        .attempts
        .iter()
        .map(|a| (a.attempt_number, a.status_code))
        .collect();
    assert_eq!(
        history,
        [
            (1, Some(500)),
            (2, Some(500)),
            (3, Some(500)),
            (1, Some(200))
        ],
        "earlier attempts stay in the history"
    );
    let requests = expect_requests(&healthy, 1, WAIT).await;
    assert_eq!(ids(&requests), std::slice::from_ref(&published.event_id));
    assert_eq!(broken.stats().received, 3);

    // A succeeded delivery may be retried too; an unknown id is skipped with a reason.
    let unknown = hookline::model::new_id(hookline::model::IdKind::Delivery);
    let again = world
        .ops
        .retry(&[delivery.id.clone(), unknown])
        .await
        .expect("retry");
    assert_eq!(
        again.retried,
        std::slice::from_ref(&delivery.id),
        "succeeded is retryable"
    );
    assert_eq!(again.skipped.len(), 1, "{:?}", again.skipped);
    assert!(
        again.skipped[0].1.contains("no such"),
        "{:?}",
        again.skipped
    );

    let audit = world.store.list_audit(None, 50).await.expect("audit");
    let retries: Vec<_> = audit
        .items
        .iter()
        .filter(|a| a.action == "delivery.retry")
        .collect();
    assert_eq!(retries.len(), 2, "{audit:#?}");
    assert!(retries.iter().all(|a| a.actor == "test-operator"
        && a.source == Source::Cli
        && a.target_ids == [delivery.id.clone()]));
    world
        .wait_state(&delivery.id, DeliveryState::Delivered, WAIT)
        .await;
    expect_requests(&healthy, 2, WAIT).await;
    dispatcher.stop().await;
}

async fn bulk_retry_revives_an_endpoints_dead_deliveries(backend: Backend) {
    let world = World::new(backend).await;
    let broken = failing_sink(500).await;
    let healthy = healthy_sink().await;
    world.tenant("acme").await;
    let flaky = world
        .endpoint("acme", "flaky", &broken.url(), "order.created", |_| {})
        .await;
    let other = world
        .endpoint("acme", "other", &broken.url(), "order.created", |_| {})
        .await;
    let dispatcher = world.dispatcher();
    let mut events = Vec::new();
    for n in 0..3 {
        let payload = format!(r#"{{"n":{n}}}"#);
        events.push(
            world
                .publish("acme", "order.created", &payload)
                .await
                .event_id,
        );
    }
    world
        .wait_all(by_endpoint(&flaky.id), 3, DeliveryState::Dead, WAIT)
        .await;
    world
        .wait_all(by_endpoint(&other.id), 3, DeliveryState::Dead, WAIT)
        .await;

    world
        .ops
        .update_endpoint(
            &flaky.id,
            &EndpointChanges {
                url: Some(healthy.url()),
                ..EndpointChanges::default()
            },
        )
        .await
        .expect("update the URL");
    let request = |dry_run| BulkRetry {
        endpoint: "acme/flaky".to_string(),
        states: vec![DeliveryState::Dead],
        since: None,
        until: None,
        dry_run,
    };
    let (_, counted) = world.ops.retry_bulk(&request(true)).await.expect("dry run");
    assert_eq!(counted, 3);
    assert!(
        !healthy.wait_for(1, Duration::from_millis(400)).await,
        "a dry run revived something"
    );
    for delivery in world.deliveries(by_endpoint(&flaky.id)).await {
        assert_eq!(
            delivery.state,
            DeliveryState::Dead,
            "dry run changed {delivery:?}"
        );
    }

    let (endpoint, revived) = world
        .ops
        .retry_bulk(&request(false))
        .await
        .expect("bulk retry");
    assert_eq!((endpoint.id.as_str(), revived), (flaky.id.as_str(), 3));
    let done = world
        .wait_all(by_endpoint(&flaky.id), 3, DeliveryState::Delivered, WAIT)
        .await;
    for delivery in &done {
        assert_eq!(delivery.attempts, 1, "fresh schedule: {delivery:?}");
        assert_eq!(world.detail(&delivery.id).await.attempts.len(), 4);
    }
    let mut got = ids(&expect_requests(&healthy, 3, WAIT).await);
    got.sort();
    let mut want = events.clone();
    want.sort();
    assert_eq!(got, want);

    // The other endpoint's dead deliveries were not touched.
    for delivery in world.deliveries(by_endpoint(&other.id)).await {
        assert_eq!(delivery.state, DeliveryState::Dead, "{delivery:?}");
        assert_eq!(delivery.attempts, 3);
    }
    let audit = world.store.list_audit(None, 50).await.expect("audit");
    let bulk: Vec<_> = audit
        .items
        .iter()
        .filter(|a| a.action == "delivery.retry_bulk")
        .collect();
    assert_eq!(
        bulk.len(),
        1,
        "one audit row for the real run, none for the dry run"
    );
    assert!(bulk[0].detail.contains("\"count\":3"), "{}", bulk[0].detail);
    dispatcher.stop().await;
}

// --- 6. pause holds, resume releases in order -----------------------------------

async fn pause_holds_and_resume_releases_in_order(backend: Backend) {
    let world = World::new(backend).await;
    let paused_sink = healthy_sink().await;
    let control_sink = healthy_sink().await;
    world.tenant("acme").await;
    // One at a time, so arrival order at the sink is the dispatch order.
    let endpoint = world
        .endpoint("acme", "held", &paused_sink.url(), "order.created", |e| {
            e.max_in_flight = Some(1);
        })
        .await;
    // Same tenant and topic, never paused: proves the dispatcher is running.
    world
        .endpoint(
            "acme",
            "control",
            &control_sink.url(),
            "order.created",
            |_| {},
        )
        .await;
    let (paused, already) = world
        .ops
        .pause_endpoint(&endpoint.id, Some("receiver maintenance"), None)
        .await
        .expect("pause");
    assert!(!already);
    assert_eq!(paused.state, EndpointState::Paused);
    assert_eq!(paused.state_reason.as_deref(), Some("receiver maintenance"));

    let dispatcher = world.dispatcher();
    let mut published = Vec::new();
    for n in 0..5 {
        let payload = format!(r#"{{"seq":{n}}}"#);
        published.push(
            world
                .publish("acme", "order.created", &payload)
                .await
                .event_id,
        );
    }
    expect_requests(&control_sink, 5, WAIT).await;
    // Several poll intervals (100ms) after the control endpoint got everything.
    assert!(
        !paused_sink.wait_for(1, Duration::from_millis(600)).await,
        "a paused endpoint received {:?}",
        ids(&paused_sink.requests())
    );
    let held = world.deliveries(by_endpoint(&endpoint.id)).await;
    assert_eq!(held.len(), 5);
    for delivery in &held {
        assert_eq!(delivery.state, DeliveryState::Pending, "{delivery:?}");
        assert_eq!(delivery.attempts, 0, "{delivery:?}");
        assert!(world.detail(&delivery.id).await.attempts.is_empty());
    }

    let (resumed, before) = world
        .ops
        .resume_endpoint(&endpoint.id)
        .await
        .expect("resume");
    assert_eq!(before, EndpointState::Paused);
    assert_eq!(resumed.state, EndpointState::Active);
    let requests = expect_requests(&paused_sink, 5, WAIT).await;
    assert_eq!(
        ids(&requests),
        published,
        "held deliveries flow oldest first"
    );
    world
        .wait_all(by_endpoint(&endpoint.id), 5, DeliveryState::Delivered, WAIT)
        .await;
    let audit = world.store.list_audit(None, 50).await.expect("audit");
    let actions: Vec<&str> = audit.items.iter().map(|a| a.action.as_str()).collect();
    assert!(actions.contains(&"endpoint.pause"), "{actions:?}");
    assert!(actions.contains(&"endpoint.resume"), "{actions:?}");
    dispatcher.stop().await;
}

// --- 7. 410 Gone disables the endpoint ---------------------------------------

async fn gone_disables_the_endpoint_until_resumed(backend: Backend) {
    let world = World::new(backend).await;
    let gone = failing_sink(410).await;
    let healthy = healthy_sink().await;
    world.tenant("acme").await;
    let endpoint = world
        .endpoint("acme", "retired", &gone.url(), "order.created", |_| {})
        .await;
    let dispatcher = world.dispatcher();
    let first = world.publish("acme", "order.created", r#"{"n":1}"#).await;
    let first_delivery = world.only_delivery_of(&first.event_id).await;

    let disabled = common::wait_until(WAIT, || async {
        world.endpoint_now(&endpoint.id).await.state == EndpointState::Disabled
    })
    .await;
    let now_disabled = world.endpoint_now(&endpoint.id).await;
    assert!(disabled, "410 did not disable: {now_disabled:#?}");
    let reason = now_disabled.state_reason.clone().unwrap_or_default();
    assert!(
        reason.contains("410"),
        "reason should mention 410: {reason:?}"
    );
    assert!(now_disabled.state_changed_at.is_some());

    let second = world.publish("acme", "order.created", r#"{"n":2}"#).await;
    let second_delivery = world.only_delivery_of(&second.event_id).await;
    // Well past the first retry step (300ms) and several polls: nothing is attempted.
    assert!(
        !gone.wait_for(2, Duration::from_millis(800)).await,
        "a disabled endpoint was attempted: {:?}",
        ids(&gone.requests())
    );
    let first_now = world.detail(&first_delivery.id).await;
    assert_eq!(first_now.delivery.attempts, 1);
    assert_eq!(first_now.delivery.last_status, Some(410));
    assert!(
        matches!(
            first_now.delivery.state,
            DeliveryState::Retrying | DeliveryState::Pending
        ),
        "held, not dead or discarded: {:?}",
        first_now.delivery
    );
    let second_now = world.detail(&second_delivery.id).await;
    assert_eq!(second_now.delivery.state, DeliveryState::Pending);
    assert_eq!(second_now.delivery.attempts, 0);

    let audit = world.store.list_audit(None, 50).await.expect("audit");
    let disables: Vec<_> = audit
        .items
        .iter()
        .filter(|a| a.action == "endpoint.disable")
        .collect();
    assert_eq!(disables.len(), 1, "{audit:#?}");
    assert_eq!(disables[0].target_ids, std::slice::from_ref(&endpoint.id));
    assert_eq!(disables[0].source, Source::System);
    assert!(disables[0].detail.contains("410"), "{}", disables[0].detail);

    world
        .ops
        .update_endpoint(
            &endpoint.id,
            &EndpointChanges {
                url: Some(healthy.url()),
                ..EndpointChanges::default()
            },
        )
        .await
        .expect("update the URL");
    let (resumed, before) = world
        .ops
        .resume_endpoint(&endpoint.id)
        .await
        .expect("resume");
    assert_eq!(before, EndpointState::Disabled);
    assert_eq!(resumed.state, EndpointState::Active);
    assert_eq!(resumed.state_reason, None, "resume clears the reason");

    let a = world
        .wait_state(&first_delivery.id, DeliveryState::Delivered, WAIT)
        .await;
    let b = world
        .wait_state(&second_delivery.id, DeliveryState::Delivered, WAIT)
        .await;
    assert_eq!(a.delivery.attempts, 2, "the 410 attempt still counts");
    assert_eq!(b.delivery.attempts, 1);
    let mut got = ids(&expect_requests(&healthy, 2, WAIT).await);
    got.sort();
    let mut want = vec![first.event_id.clone(), second.event_id.clone()];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(gone.stats().received, 1);
    dispatcher.stop().await;
}

// --- 8. Retry-After ------------------------------------------------------------

async fn retry_after_is_honoured_and_capped(backend: Backend) {
    // Short steps, then one long one; a Retry-After holds the whole
    // endpoint, at most protection.max_retry_after (2s here).
    let world = World::with_config(backend, |c| {
        c.dispatch.retry_schedule = vec![
            Duration::ZERO,
            Duration::from_millis(50),
            Duration::from_millis(50),
            Duration::from_secs(2),
        ];
        c.protection.max_retry_after = Duration::from_secs(2);
    })
    .await;
    let asks_1s = sink(SinkOptions {
        fail_rate: 1.0,
        status: 503,
        retry_after: Some(1),
        ..SinkOptions::default()
    })
    .await;
    let asks_5s = sink(SinkOptions {
        fail_rate: 1.0,
        status: 503,
        retry_after: Some(5),
        ..SinkOptions::default()
    })
    .await;
    let asks_nothing = failing_sink(503).await;
    world.tenant("acme").await;
    world
        .endpoint("acme", "one", &asks_1s.url(), "order.created", |_| {})
        .await;
    world
        .endpoint("acme", "five", &asks_5s.url(), "order.created", |_| {})
        .await;
    world
        .endpoint("acme", "none", &asks_nothing.url(), "order.created", |_| {})
        .await;
    let dispatcher = world.dispatcher();
    let published = world.publish("acme", "order.created", r#"{"n":1}"#).await;
    assert_eq!(published.deliveries, 3);

    let gap = |requests: &[ReceivedRequest]| requests[1].time_ms - requests[0].time_ms;
    let none = expect_requests(&asks_nothing, 2, WAIT).await;
    assert!(
        (50..600).contains(&gap(&none)),
        "without Retry-After the 50ms step applies: {}ms",
        gap(&none)
    );
    let one = expect_requests(&asks_1s, 2, WAIT).await;
    assert!(
        (1_000..1_900).contains(&gap(&one)),
        "Retry-After: 1 should put the retry ~1s later, got {}ms",
        gap(&one)
    );
    let five = expect_requests(&asks_5s, 2, WAIT).await;
    assert!(
        (2_000..3_500).contains(&gap(&five)),
        "Retry-After: 5 should be capped at protection.max_retry_after (2s), got {}ms",
        gap(&five)
    );
    // The attempts made under Retry-After still count (the second answer is
    // recorded a moment after the sink logged the request).
    for delivery in world.deliveries_of(&published.event_id).await {
        let counted = common::wait_until(WAIT, || async {
            world.detail(&delivery.id).await.delivery.attempts >= 2
        })
        .await;
        let detail = world.detail(&delivery.id).await;
        assert!(counted, "attempts must count: {:?}", detail.delivery);
        assert!(detail.attempts.iter().all(|a| a.status_code == Some(503)));
    }
    dispatcher.stop().await;
}

// --- 9. idempotency ------------------------------------------------------------

async fn idempotency_key_delivers_once(backend: Backend) {
    let world = World::new(backend).await;
    let sink_a = healthy_sink().await;
    let sink_b = healthy_sink().await;
    world.tenant("acme").await;
    world.tenant("globex").await;
    world
        .endpoint("acme", "hooks", &sink_a.url(), "order.created", |_| {})
        .await;
    world
        .endpoint("globex", "hooks", &sink_b.url(), "order.created", |_| {})
        .await;
    let dispatcher = world.dispatcher();
    let keyed = |tenant: &str, payload: &str| EventInput {
        tenant: Some(tenant.to_string()),
        topic: "order.created".to_string(),
        payload: payload.into(),
        idempotency_key: Some("order-42".to_string()),
        ..EventInput::default()
    };
    let first = world.publish_input(&keyed("acme", r#"{"try":1}"#)).await;
    // A producer's retry: the same request, answered with the original.
    let second = world.publish_input(&keyed("acme", r#"{"try":1}"#)).await;
    assert!(!first.duplicate);
    assert!(second.duplicate, "{second:?}");
    assert_eq!(second.event_id, first.event_id);
    assert_eq!(second.deliveries, first.deliveries);
    assert_eq!(first.deliveries, 1);
    // The key is unique per tenant: another tenant may use the same one.
    let other = world.publish_input(&keyed("globex", r#"{"try":1}"#)).await;
    assert!(!other.duplicate);
    assert_ne!(other.event_id, first.event_id);

    let acme_id = world
        .ops
        .reads()
        .find_tenant("acme")
        .await
        .expect("acme")
        .id;
    world
        .wait_all(
            DeliveryFilter {
                tenant_id: Some(acme_id),
                ..DeliveryFilter::default()
            },
            1,
            DeliveryState::Delivered,
            WAIT,
        )
        .await;
    expect_requests(&sink_b, 1, WAIT).await;
    assert!(
        !sink_a.wait_for(2, Duration::from_millis(500)).await,
        "delivered twice: {:?}",
        ids(&sink_a.requests())
    );
    let requests = sink_a.requests();
    assert_eq!(ids(&requests), std::slice::from_ref(&first.event_id));
    assert_eq!(
        requests[0].body, br#"{"try":1}"#,
        "the original payload is kept"
    );
    dispatcher.stop().await;
}

/// A producer that times out and retries may publish the same key twice at
/// once: both calls must succeed, one creating the event and the other
/// reporting a duplicate of it, and the receiver gets it once.
async fn concurrent_publishes_with_one_key_deliver_once(backend: Backend) {
    const PUBLISHERS: usize = 6;
    let world = World::new(backend).await;
    let sink = healthy_sink().await;
    world.tenant("acme").await;
    world
        .endpoint("acme", "hooks", &sink.url(), "order.created", |_| {})
        .await;
    let dispatcher = world.dispatcher();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(PUBLISHERS));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..PUBLISHERS {
        let ops = world.ops.clone();
        let barrier = std::sync::Arc::clone(&barrier);
        tasks.spawn(async move {
            barrier.wait().await;
            ops.publish(EventInput {
                tenant: Some("acme".to_string()),
                topic: "order.created".to_string(),
                payload: r#"{"try":1}"#.into(),
                idempotency_key: Some("order-42".to_string()),
                ..EventInput::default()
            })
            .await
            .map_err(|e| e.to_string())
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        results.push(joined.expect("publish task"));
    }
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "a repeated idempotency key must answer duplicate, never fail: {failures:?}"
    );
    let published: Vec<&Published> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let originals: Vec<&&Published> = published.iter().filter(|p| !p.duplicate).collect();
    assert_eq!(originals.len(), 1, "exactly one original: {published:?}");
    let event_id = &originals[0].event_id;
    assert!(
        published.iter().all(|p| &p.event_id == event_id),
        "{published:?}"
    );

    let all = world
        .wait_all(DeliveryFilter::default(), 1, DeliveryState::Delivered, WAIT)
        .await;
    assert_eq!(&all[0].event_id, event_id);
    assert!(
        !sink.wait_for(2, Duration::from_millis(300)).await,
        "delivered more than once: {:?}",
        ids(&sink.requests())
    );
    dispatcher.stop().await;
}

// --- 10. secret rotation ---------------------------------------------------------

async fn rotation_sends_new_and_old_signatures(backend: Backend) {
    // A short grace so the test also sees the old secret stop signing.
    const GRACE: Duration = Duration::from_secs(2);
    let world = World::with_config(backend, |c| c.dispatch.secret_rotation_grace = GRACE).await;
    let sink = healthy_sink().await;
    world.tenant("acme").await;
    let (old_secret, old_key) = known_secret(0x11);
    let (new_secret, new_key) = known_secret(0x22);
    let endpoint = world
        .endpoint("acme", "orders", &sink.url(), "order.created", |e| {
            e.secret = Some(old_secret.clone());
        })
        .await;
    let dispatcher = world.dispatcher();
    world.publish("acme", "order.created", r#"{"n":1}"#).await;
    let before = expect_requests(&sink, 1, WAIT).await;
    let (id, ts) = (
        header(&before[0], "webhook-id"),
        header(&before[0], "webhook-timestamp"),
    );
    assert_eq!(
        header(&before[0], "webhook-signature"),
        expected_signature(&old_key, id, ts, &before[0].body)
    );

    let rotated = world
        .ops
        .rotate_secret(&endpoint.id, Some(&new_secret))
        .await
        .expect("rotate");
    assert_eq!(rotated.secret, new_secret);
    assert_eq!(
        rotated.previous_secret.as_deref(),
        Some(old_secret.as_str())
    );
    let expires_at = rotated
        .previous_secret_expires_at
        .expect("the old secret has an expiry");
    let grace_left = expires_at - hookline::model::now_millis();
    assert!(
        (1_000..=2_000).contains(&grace_left),
        "the old secret should sign for the configured 2s, expires in {grace_left}ms"
    );

    let published = world.publish("acme", "order.created", r#"{"n":2}"#).await;
    let requests = expect_requests(&sink, 2, WAIT).await;
    let after = &requests[1];
    let (id, ts) = (
        header(after, "webhook-id"),
        header(after, "webhook-timestamp"),
    );
    assert_eq!(id, published.event_id);
    let header_value = header(after, "webhook-signature");
    let signatures: Vec<&str> = header_value.split(' ').collect();
    assert_eq!(
        signatures.len(),
        2,
        "two signatures separated by one space: {header_value:?}"
    );
    assert_eq!(
        signatures[0],
        expected_signature(&new_key, id, ts, &after.body),
        "the first signature is the new secret's"
    );
    assert_eq!(
        signatures[1],
        expected_signature(&old_key, id, ts, &after.body),
        "the second signature is the old secret's"
    );
    let detail = world
        .wait_state(
            &world.only_delivery_of(&published.event_id).await.id,
            DeliveryState::Delivered,
            WAIT,
        )
        .await;
    let recorded = detail.attempts[0]
        .request_headers
        .iter()
        .find(|(n, _)| n == "webhook-signature")
        .map(|(_, v)| v.clone());
    assert_eq!(recorded.as_deref(), Some("v1,**** v1,****"));

    // Once the grace is over, only the new secret signs.
    let until_expired = expires_at + 100 - hookline::model::now_millis();
    tokio::time::sleep(Duration::from_millis(until_expired.max(0) as u64)).await;
    let late = world.publish("acme", "order.created", r#"{"n":3}"#).await;
    let requests = expect_requests(&sink, 3, WAIT).await;
    let last = &requests[2];
    let (id, ts) = (
        header(last, "webhook-id"),
        header(last, "webhook-timestamp"),
    );
    assert_eq!(id, late.event_id);
    assert_eq!(
        header(last, "webhook-signature"),
        expected_signature(&new_key, id, ts, &last.body),
        "after the grace only the new secret's signature is sent"
    );
    dispatcher.stop().await;
}

// --- 11. per-endpoint concurrency cap ------------------------------------------

/// How long the slow sink of the cap tests holds each request.
const SLOW_LATENCY_MS: u64 = 300;

/// A sink answering after [`SLOW_LATENCY_MS`] and an endpoint of tenant
/// `acme` at it, capped at 2 in flight, subscribed to `order.created`.
async fn slow_endpoint_capped_at_two(world: &World) -> (SinkHandle, Endpoint) {
    let slow = sink(SinkOptions {
        latency: Duration::from_millis(SLOW_LATENCY_MS),
        ..SinkOptions::default()
    })
    .await;
    world.tenant("acme").await;
    let endpoint = world
        .endpoint("acme", "slow", &slow.url(), "order.created", |e| {
            e.max_in_flight = Some(2);
        })
        .await;
    (slow, endpoint)
}

/// The most requests the slow sink held at once: request i occupies
/// `[t_i, t_i + SLOW_LATENCY_MS)` there.
fn peak_at_slow_sink(requests: &[ReceivedRequest]) -> usize {
    let times: Vec<u64> = requests.iter().map(|r| r.time_ms).collect();
    let concurrent_at = |t: u64| {
        times
            .iter()
            .filter(|&&s| s <= t && t < s + SLOW_LATENCY_MS)
            .count()
    };
    times.iter().map(|&t| concurrent_at(t)).max().unwrap_or(0)
}

/// Waits until the slow sink has had `count` requests and the endpoint's
/// `count` deliveries have all succeeded; returns the requests.
async fn all_arrive_and_succeed(
    world: &World,
    slow: &SinkHandle,
    endpoint: &Endpoint,
    count: usize,
) -> Vec<ReceivedRequest> {
    let requests = expect_requests(slow, count as u64, Duration::from_secs(20)).await;
    world
        .wait_all(
            by_endpoint(&endpoint.id),
            count,
            DeliveryState::Delivered,
            WAIT,
        )
        .await;
    requests
}

async fn in_flight_cap_holds_at_the_receiver(backend: Backend) {
    const EVENTS: usize = 20;
    let world = World::new(backend).await;
    let (slow, endpoint) = slow_endpoint_capped_at_two(&world).await;
    let mut published = Vec::new();
    for n in 0..EVENTS {
        let payload = format!(r#"{{"n":{n}}}"#);
        published.push(
            world
                .publish("acme", "order.created", &payload)
                .await
                .event_id,
        );
    }
    // Everything is due before the dispatchers start: the cap alone limits
    // them, and it is counted in the database, so it holds across two.
    let dispatchers = [world.dispatcher(), world.dispatcher()];
    let requests = all_arrive_and_succeed(&world, &slow, &endpoint, EVENTS).await;
    let [first, second] = dispatchers;
    let (a, b) = (first.stop().await, second.stop().await);

    // A delivery stays in_flight (counted against the cap) until its answer
    // is recorded, so the receiver never holds more than the cap.
    let peak = peak_at_slow_sink(&requests);
    assert_eq!(
        peak,
        2,
        "the receiver should see at most (and, with 20 queued, exactly) 2 at once; arrivals: {:?}",
        requests.iter().map(|r| r.time_ms).collect::<Vec<_>>()
    );
    let mut got = ids(&requests);
    got.sort();
    got.dedup();
    assert_eq!(got.len(), EVENTS, "every event once");
    assert_eq!(slow.stats().duplicates, 0);
    assert_eq!(
        (a.attempted + b.attempted, a.succeeded + b.succeeded),
        (EVENTS as u64, EVENTS as u64),
        "{a:?} {b:?}"
    );
}

/// Publishes `count` events of `topic` for `tenant` in one transaction (as
/// the publisher's group commit does), handing what it can to `dispatcher`.
async fn publish_batch_handing_off(
    world: &World,
    tenant: &str,
    topic: &str,
    count: usize,
    dispatcher: &RunningDispatcher,
) -> Vec<Published> {
    let events = common::numbered_events(&world.ops, tenant, topic, count).await;
    world
        .ops
        .clone()
        .handing_off_to(dispatcher.hand_off.clone())
        .publish_batch(&events)
        .await
        .expect("publish handing off")
}

/// Deliveries handed straight to the dispatcher at publish arrive like any
/// other, and the endpoint's in-flight cap still holds: a batch of 20 to an
/// endpoint capped at 2 hands off 2, and the other 18 queue behind them.
async fn handed_off_deliveries_arrive_and_caps_still_hold(backend: Backend) {
    const EVENTS: usize = 20;
    let world = World::new(backend).await;
    let (slow, endpoint) = slow_endpoint_capped_at_two(&world).await;
    let dispatcher = world.dispatcher();
    let published =
        publish_batch_handing_off(&world, "acme", "order.created", EVENTS, &dispatcher).await;
    assert_eq!(published.len(), EVENTS);
    let requests = all_arrive_and_succeed(&world, &slow, &endpoint, EVENTS).await;
    let stats = dispatcher.stop().await;
    assert_eq!(stats.handed_off, 2, "the cap's worth: {stats:?}");
    assert_eq!(stats.succeeded, EVENTS as u64, "{stats:?}");
    let peak = peak_at_slow_sink(&requests);
    assert_eq!(peak, 2, "at most 2 at once at the receiver");
    let mut got = ids(&requests);
    got.sort();
    got.dedup();
    assert_eq!(got.len(), EVENTS, "every event once");
    let mut bodies: Vec<String> = requests
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    bodies.sort();
    let mut expected: Vec<String> = (0..EVENTS).map(|n| format!(r#"{{"n":{n}}}"#)).collect();
    expected.sort();
    assert_eq!(bodies, expected);
}

/// A publish through the handle of a dispatcher that has stopped leases
/// nothing to it: its deliveries wait in the queue for the next dispatcher.
async fn a_stopped_dispatcher_is_handed_nothing(backend: Backend) {
    let world = World::new(backend).await;
    let healthy = healthy_sink().await;
    world.tenant("acme").await;
    let endpoint = world
        .endpoint("acme", "hooks", &healthy.url(), "order.created", |_| {})
        .await;
    let stopped = world.dispatcher();
    let hand_off = stopped.hand_off.clone();
    let stats = stopped.stop().await;
    assert_eq!(stats.attempted, 0);
    let events = common::numbered_events(&world.ops, "acme", "order.created", 1).await;
    let published = world
        .ops
        .clone()
        .handing_off_to(hand_off)
        .publish_batch(&events)
        .await
        .expect("publish");
    assert_eq!(published[0].deliveries, 1);
    let delivery = world.only_delivery_of(&published[0].event_id).await;
    assert_eq!(
        world.lease_of(&delivery.id).await,
        ("pending".to_string(), None, None),
        "queued, not leased to the stopped dispatcher"
    );
    let next = world.dispatcher();
    world
        .wait_all(by_endpoint(&endpoint.id), 1, DeliveryState::Delivered, WAIT)
        .await;
    assert_eq!(next.stop().await.succeeded, 1);
}

/// A busy dispatcher gathers endpoint stats and health counts over several
/// cycles; once it goes quiet they are written, each attempt counted once,
/// and stopping it adds nothing more.
async fn health_counts_every_attempt_once_the_dispatcher_is_quiet(backend: Backend) {
    let world = World::with_config(backend, |c| {
        c.dispatch.retry_schedule = vec![Duration::ZERO];
        // Every attempt to the failing endpoint is counted here, not held.
        c.protection.breaker = false;
    })
    .await;
    let healthy = healthy_sink().await;
    let failing = failing_sink(503).await;
    world.tenant("acme").await;
    let good = world
        .endpoint("acme", "good", &healthy.url(), "order.created", |_| {})
        .await;
    let bad = world
        .endpoint("acme", "bad", &failing.url(), "order.created", |_| {})
        .await;
    let dispatcher = world.dispatcher();
    let events = common::numbered_events(&world.ops, "acme", "order.created", 60).await;
    world.ops.publish_batch(&events).await.expect("publish");
    world
        .wait_all(by_endpoint(&good.id), 60, DeliveryState::Delivered, WAIT)
        .await;
    world
        .wait_all(by_endpoint(&bad.id), 60, DeliveryState::Dead, WAIT)
        .await;
    let counts = || async {
        let health = world.store.endpoint_health(None).await.expect("health");
        let of = |id: &str| {
            health.get(id).map(|h| {
                (
                    h.last_5m.succeeded,
                    h.last_5m.attempts(),
                    h.consecutive_failures,
                )
            })
        };
        (of(&good.id), of(&bad.id))
    };
    let expected = (Some((60, 60, 0)), Some((0, 60, 60)));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut seen = counts().await;
    while seen != expected && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        seen = counts().await;
    }
    assert_eq!(
        seen, expected,
        "(succeeded, attempts, consecutive failures) per endpoint"
    );
    assert_eq!(dispatcher.stop().await.attempted, 120);
    assert_eq!(counts().await, expected, "stopping writes nothing twice");
}

// --- 12. clean shutdown -----------------------------------------------------------

async fn shutdown_releases_unfinished_attempts(backend: Backend) {
    let world = World::with_config(backend, |c| {
        c.dispatch.shutdown_grace = Duration::from_secs(1);
    })
    .await;
    let slow = sink(SinkOptions {
        latency: Duration::from_secs(3),
        ..SinkOptions::default()
    })
    .await;
    let healthy = healthy_sink().await;
    world.tenant("acme").await;
    // A long timeout, so only the shutdown grace can end the attempts early
    // (and the lease, timeout + 10s, is far longer than this test).
    let endpoint = world
        .endpoint("acme", "slow", &slow.url(), "order.created", |e| {
            e.timeout = Some(Duration::from_secs(10));
        })
        .await;
    let first = world.dispatcher();
    let mut events = Vec::new();
    for n in 0..3 {
        let payload = format!(r#"{{"n":{n}}}"#);
        events.push(
            world
                .publish("acme", "order.created", &payload)
                .await
                .event_id,
        );
    }
    expect_requests(&slow, 3, WAIT).await;
    for delivery in world.deliveries(by_endpoint(&endpoint.id)).await {
        let (state, owner, expires) = world.lease_of(&delivery.id).await;
        assert_eq!(state, "in_flight");
        assert_eq!(owner.as_deref(), Some(first.id.as_str()));
        assert!(expires.is_some());
    }

    let first_id = first.id.clone();
    let stopping = Instant::now();
    let stats = first.stop().await;
    let took = stopping.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2_500),
        "stop should wait out the 1s grace, not the 3s answers: {took:?}"
    );
    assert_eq!(stats.succeeded, 0, "{stats:?}");
    for delivery in world.deliveries(by_endpoint(&endpoint.id)).await {
        let (state, owner, expires) = world.lease_of(&delivery.id).await;
        assert!(
            state == "pending" || state == "scheduled",
            "{} is {state} after shutdown",
            delivery.id
        );
        assert_eq!(
            (owner, expires),
            (None, None),
            "lease of {} kept",
            delivery.id
        );
        assert_eq!(delivery.attempts, 0, "an aborted attempt is not counted");
        assert!(world.detail(&delivery.id).await.attempts.is_empty());
    }
    let (dispatchers, _) = world
        .store
        .list_dispatchers(60_000)
        .await
        .expect("dispatchers");
    let row = dispatchers
        .iter()
        .find(|d| d.id == first_id)
        .expect("the stopped dispatcher's heartbeat row");
    assert!(
        row.stopped_at.is_some(),
        "a clean stop is recorded: {row:?}"
    );

    // The receiver comes back fast; a new dispatcher takes the work at once
    // (not after the lease would have expired).
    world
        .ops
        .update_endpoint(
            &endpoint.id,
            &EndpointChanges {
                url: Some(healthy.url()),
                ..EndpointChanges::default()
            },
        )
        .await
        .expect("update the URL");
    let restarted = Instant::now();
    let second = world.dispatcher();
    world
        .wait_all(
            by_endpoint(&endpoint.id),
            3,
            DeliveryState::Delivered,
            Duration::from_secs(5),
        )
        .await;
    assert!(restarted.elapsed() < Duration::from_secs(5));
    let mut got = ids(&healthy.requests());
    got.sort();
    events.sort();
    assert_eq!(got, events);
    let stats = second.stop().await;
    assert_eq!(stats.succeeded, 3);
}

/// A receiver answering 307 to another address: the attempt fails with the
/// redirect status and the signed payload never reaches the other address.
async fn redirects_are_not_followed(backend: Backend) {
    let world = World::new(backend).await;
    let elsewhere = healthy_sink().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the redirecting receiver");
    let redirect_to = elsewhere.url();
    let app = axum::Router::new().fallback(move || {
        let location = redirect_to.clone();
        async move {
            (
                axum::http::StatusCode::TEMPORARY_REDIRECT,
                [(axum::http::header::LOCATION, location)],
            )
        }
    });
    let address = listener.local_addr().expect("local address");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    world.tenant("acme").await;
    world
        .endpoint(
            "acme",
            "moved",
            &format!("http://{address}/hook"),
            "order.*",
            |_| {},
        )
        .await;
    let dispatcher = world.dispatcher();
    let published = world.publish("acme", "order.created", r#"{"n":1}"#).await;
    let delivery = world.only_delivery_of(&published.event_id).await;
    let detail = world
        .wait_state(&delivery.id, DeliveryState::Retrying, WAIT)
        .await;
    let first = &detail.attempts[0];
    assert_eq!(first.status_code, Some(307), "{first:#?}");
    assert_eq!(first.error_kind, Some(ErrorKind::HttpStatus));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        elsewhere.stats().received,
        0,
        "the redirect target must never see the payload"
    );
    dispatcher.stop().await;
    server.abort();
}

both_backends!(
    payload_arrives_byte_identical,
    standard_webhooks_headers_verify_independently,
    tenants_only_receive_their_own_events,
    failing_delivery_retries_on_schedule_then_dies,
    manual_retry_revives_a_dead_delivery,
    bulk_retry_revives_an_endpoints_dead_deliveries,
    pause_holds_and_resume_releases_in_order,
    gone_disables_the_endpoint_until_resumed,
    retry_after_is_honoured_and_capped,
    idempotency_key_delivers_once,
    rotation_sends_new_and_old_signatures,
    in_flight_cap_holds_at_the_receiver,
    handed_off_deliveries_arrive_and_caps_still_hold,
    a_stopped_dispatcher_is_handed_nothing,
    health_counts_every_attempt_once_the_dispatcher_is_quiet,
    shutdown_releases_unfinished_attempts,
    concurrent_publishes_with_one_key_deliver_once,
    redirects_are_not_followed,
);
