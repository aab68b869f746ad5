//! Per-endpoint rate limits, on both backends with real receivers: set,
//! shown and removed with its field named on bad input; the claim takes no
//! more than the bucket holds and says what holds the rest; three
//! `hookline dispatch` processes share one bucket.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Backend, TestDb, test_config, test_ops, wait_until};
use hookline::bench::most_in_any;
use hookline::held::Hold;
use hookline::model::{DeliveryState, RateLimit, now_millis};
use hookline::ops::{EndpointChanges, EndpointInput, Ops, OpsError};
use hookline::store::{ClaimRequest, Store};

/// A receiver that answers 200 at once and notes when each request came
/// (unix ms).
struct Receiver {
    arrivals: Arc<Mutex<Vec<i64>>>,
    url: String,
    _server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let noted = arrivals.clone();
        let app = axum::Router::new().fallback(move || {
            let noted = noted.clone();
            async move {
                if let Ok(mut list) = noted.lock() {
                    list.push(now_millis());
                }
                axum::http::StatusCode::OK
            }
        });
        let (url, server) = common::serve_receiver(app).await;
        Receiver {
            arrivals,
            url,
            _server: server,
        }
    }

    fn arrivals(&self) -> Vec<i64> {
        let mut list = self.arrivals.lock().map(|l| l.clone()).unwrap_or_default();
        list.sort();
        list
    }
}

async fn open(backend: Backend) -> (TestDb, hookline::config::Config, Store) {
    let db = TestDb::new(backend);
    let config = test_config(&db.url);
    let store = db.store_with(&config).await;
    (db, config, store)
}

fn claim_request() -> ClaimRequest<'static> {
    ClaimRequest {
        owner: "dsp_test",
        limit: 100,
        lease_ms: 60_000,
        default_max_in_flight: 100,
        default_timeout_ms: 1_000,
        reap_expired: false,
        slots: None,
    }
}

/// Set with the endpoint or later, shown on it, its burst changed alone,
/// refused naming the field, removed; the claim takes what the bucket
/// holds and the rest is shown held by the limit.
async fn a_rate_limit_is_set_enforced_at_the_claim_and_removed(backend: Backend) {
    let (_db, config, store) = open(backend).await;
    let ops = test_ops(&store, &config);
    ops.add_tenant("acme").await.expect("tenant");
    let endpoint = ops
        .add_endpoint(&EndpointInput {
            tenant: "acme".into(),
            name: "hooks".into(),
            url: "http://127.0.0.1:9/hook".into(),
            rate_limit: Some(50),
            ..EndpointInput::default()
        })
        .await
        .expect("endpoint");
    assert_eq!(endpoint.rate_limit, Some(RateLimit::new(50, Some(5))));

    let burst_only = EndpointChanges {
        rate_limit_burst: Some(3),
        ..EndpointChanges::default()
    };
    let changed = ops
        .update_endpoint(&endpoint.id, &burst_only)
        .await
        .expect("burst");
    assert_eq!(changed.rate_limit, Some(RateLimit::new(50, Some(3))));

    let zero = EndpointChanges {
        rate_limit: Some(Some(0)),
        ..EndpointChanges::default()
    };
    match ops.update_endpoint(&endpoint.id, &zero).await {
        Err(OpsError::Invalid { field, reason }) => {
            assert_eq!(field, "rate_limit");
            assert!(reason.contains("between 1 and"), "{reason}");
        }
        other => panic!("a rate of 0 was not refused: {other:?}"),
    }
    let burst_without = EndpointChanges {
        rate_limit: Some(None),
        rate_limit_burst: Some(4),
        ..EndpointChanges::default()
    };
    assert!(matches!(
        ops.update_endpoint(&endpoint.id, &burst_without).await,
        Err(OpsError::Invalid {
            field: "rate_limit_burst",
            ..
        })
    ));
    let unchanged = ops.endpoint(&endpoint.id).await.expect("endpoint");
    assert_eq!(
        unchanged.rate_limit, changed.rate_limit,
        "refused: nothing changed"
    );

    // 1 a second, burst 2: a claim over 5 due deliveries takes 2.
    let slow = EndpointChanges {
        rate_limit: Some(Some(1)),
        rate_limit_burst: Some(2),
        ..EndpointChanges::default()
    };
    ops.update_endpoint(&endpoint.id, &slow)
        .await
        .expect("slow");
    ops.add_subscription(&endpoint.id, "order.*", None)
        .await
        .expect("subscription");
    let events = common::numbered_events(&ops, "acme", "order.created", 5).await;
    store.publish(&events, 0).await.expect("publish");
    let claimed = store.claim(&claim_request()).await.expect("claim");
    assert_eq!(claimed.deliveries.len(), 2, "the burst, and no more");
    let again = store.claim(&claim_request()).await.expect("claim");
    assert!(again.deliveries.len() <= 1, "at most what came in since");
    let gauges = store.metric_gauges().await.expect("gauges");
    assert!(
        gauges.held_rate_limited >= 2,
        "the due rest counts as held by the limit: {}",
        gauges.held_rate_limited
    );
    let held = store.held_endpoints().await.expect("held");
    assert_eq!(
        held.get(&endpoint.id),
        Some(&Hold::RateLimited { per_second: 1 }),
        "the rest is shown held by the limit"
    );

    let off = EndpointChanges {
        rate_limit: Some(None),
        ..EndpointChanges::default()
    };
    let removed = ops.update_endpoint(&endpoint.id, &off).await.expect("off");
    assert_eq!(removed.rate_limit, None);
    let rest = store.claim(&claim_request()).await.expect("claim");
    assert_eq!(
        claimed.deliveries.len() + again.deliveries.len() + rest.deliveries.len(),
        5,
        "without the limit the rest goes at once"
    );
    let audit = store.list_audit(None, 100).await.expect("audit").items;
    assert!(
        audit
            .iter()
            .any(|entry| entry.action == "endpoint.update" && entry.detail.contains("rate_limit")),
        "the change is audited"
    );
}

/// Tenant `acme` with endpoint `hooks` at `url`, limited to `rate` a
/// second with `burst`, subscribed to `order.*`.
async fn limited_endpoint(ops: &Ops, url: &str, rate: u32, burst: u32) {
    ops.add_tenant("acme").await.expect("tenant");
    let endpoint = ops
        .add_endpoint(&EndpointInput {
            tenant: "acme".into(),
            name: "hooks".into(),
            url: url.to_string(),
            rate_limit: Some(rate),
            rate_limit_burst: Some(burst),
            ..EndpointInput::default()
        })
        .await
        .expect("endpoint");
    ops.add_subscription(&endpoint.id, "order.*", None)
        .await
        .expect("subscription");
}

/// A dispatcher meters a backlog at the limit and counts the claims that
/// waited for it in its metrics.
async fn a_dispatcher_meters_a_backlog_and_counts_the_waits(backend: Backend) {
    let receiver = Receiver::start().await;
    let (_db, config, store) = open(backend).await;
    let ops = test_ops(&store, &config);
    limited_endpoint(&ops, &receiver.url, 10, 1).await;
    let waits_before = rate_limited_waits();
    let events = common::numbered_events(&ops, "acme", "order.created", 12).await;
    store.publish(&events, 0).await.expect("publish");
    let dispatcher = common::RunningDispatcher::start(&store, &config);
    let all = wait_until(Duration::from_secs(30), || async {
        receiver.arrivals().len() == 12
    })
    .await;
    dispatcher.stop().await;
    assert!(all, "{} of 12 arrived", receiver.arrivals().len());
    let arrivals = receiver.arrivals();
    let took = arrivals[11] - arrivals[0];
    assert!(
        took >= 1_000,
        "12 requests at 10/s, burst 1, took {took} ms"
    );
    assert!(rate_limited_waits() > waits_before, "the waits are counted");
}

/// This process's `hookline_rate_limited_waits_total`.
fn rate_limited_waits() -> f64 {
    let mut exposed = String::new();
    hookline::metrics::metrics()
        .encode(&mut exposed)
        .expect("encode");
    exposed
        .lines()
        .find_map(|line| line.strip_prefix("hookline_rate_limited_waits_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The CLI sets a limit with the endpoint's other settings, shows it with
/// the breaker, refuses a bad one naming it and changing nothing.
async fn the_cli_sets_shows_and_refuses_a_rate_limit(backend: Backend) {
    let (db, config, store) = open(backend).await;
    let ops = test_ops(&store, &config);
    ops.add_tenant("acme").await.expect("tenant");
    common::ok(db.hookline(&[
        "endpoint",
        "add",
        "--tenant",
        "acme",
        "--name",
        "hooks",
        "--url",
        "http://127.0.0.1:9/hook",
        "--rate-limit",
        "7",
        "--burst",
        "2",
    ]));
    let shown = common::ok(db.hookline(&["--json", "endpoint", "show", "acme/hooks"]));
    let shown: serde_json::Value = serde_json::from_str(&shown).expect("JSON");
    assert_eq!(shown["rate_limit"], 7, "{shown}");
    assert_eq!(shown["rate_limit_burst"], 2, "{shown}");
    assert_eq!(shown["breaker"]["state"], "closed", "{shown}");
    assert_eq!(shown["breaker"]["consecutive_failures"], 0, "{shown}");

    let before = db.dump().await;
    let refused = db.hookline(&["endpoint", "update", "acme/hooks", "--rate-limit", "0"]);
    assert!(!refused.status.success());
    let said = common::stderr(&refused);
    assert!(said.contains("rate_limit: must be between 1 and"), "{said}");
    assert_eq!(db.dump().await, before, "a refused limit changed nothing");

    common::ok(db.hookline(&["endpoint", "update", "acme/hooks", "--no-rate-limit"]));
    let shown = common::ok(db.hookline(&["--json", "endpoint", "show", "acme/hooks"]));
    let shown: serde_json::Value = serde_json::from_str(&shown).expect("JSON");
    assert!(shown["rate_limit"].is_null(), "{shown}");
}

/// Three `hookline dispatch` processes against one endpoint limited to
/// 20 a second (burst 2): together they keep to it.
async fn three_dispatchers_share_one_bucket(backend: Backend) {
    const RATE: usize = 20;
    const BURST: usize = 2;
    const EVENTS: usize = 100;
    let receiver = Receiver::start().await;
    let (db, config, store) = open(backend).await;
    let ops = test_ops(&store, &config);
    limited_endpoint(&ops, &receiver.url, RATE as u32, BURST as u32).await;
    let mut processes = common::dispatch_processes(
        &db.url,
        3,
        &[
            ("HOOKLINE_DISPATCH_POLL_INTERVAL", "50ms"),
            ("HOOKLINE_DISPATCH_CONCURRENCY", "16"),
        ],
    );
    let events = common::numbered_events(&ops, "acme", "order.created", EVENTS).await;
    store.publish(&events, 0).await.expect("publish");
    let delivered = wait_until(Duration::from_secs(90), || async {
        let page = store
            .list_deliveries(&Default::default(), None, 1000)
            .await
            .expect("list");
        page.items
            .iter()
            .filter(|d| d.state == DeliveryState::Delivered)
            .count()
            == EVENTS
    })
    .await;
    let dispatchers: i64 = common::scalar(
        &db.url,
        "SELECT COUNT(DISTINCT dispatcher_id) FROM endpoint_stats",
    )
    .await;
    for process in &mut processes {
        let _ = process.kill();
        let _ = process.wait();
    }
    assert!(delivered, "everything is delivered, at the limit's pace");
    let arrivals = receiver.arrivals();
    assert_eq!(arrivals.len(), EVENTS, "each sent once");
    // A token is taken when a delivery is leased, and the request leaves a
    // little later: a window a few times longer than a second, with half
    // a second's worth of slack for that, still fails if each process kept
    // a bucket of its own (three times the rate).
    let most = most_in_any(&arrivals, 3_000);
    assert!(
        most <= RATE * 3 + BURST + RATE / 2,
        "{most} requests in 3 s at {RATE}/s"
    );
    let took = arrivals[EVENTS - 1] - arrivals[0];
    let least = ((EVENTS - BURST) * 1000 / RATE) as i64 * 9 / 10;
    assert!(took >= least, "{EVENTS} requests in {took} ms at {RATE}/s");
    assert!(
        dispatchers >= 2,
        "the dispatchers shared the work ({dispatchers})"
    );
}

both_backends!(
    a_rate_limit_is_set_enforced_at_the_claim_and_removed,
    a_dispatcher_meters_a_backlog_and_counts_the_waits,
    the_cli_sets_shows_and_refuses_a_rate_limit,
    three_dispatchers_share_one_bucket,
);
