//! The circuit breaker, on both backends with real receivers: it opens on
//! failures in a row and on the failure ratio, holds the endpoint's work
//! without spending attempts, sends one probe per cool-down, re-opens for
//! twice as long, closes on an answer; answers about content and the
//! guard's refusals do not count; forced states hold; a publish's hand-off
//! honours an open breaker; dispatcher processes count together.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use common::{Backend, RunningDispatcher, TestDb, ok, test_config, test_ops, wait_until};
use hookline::config::Config;
use hookline::model::{BreakerMode, BreakerState, DeliveryState, ErrorKind};
use hookline::ops::{EndpointInput, Ops};
use hookline::store::{ClaimRequest, NextStep, OpenMode, Store, StoreOptions};

const WAIT: Duration = Duration::from_secs(20);

/// A receiver whose answer can be changed while it runs; counts requests.
struct Receiver {
    status: Arc<AtomicU16>,
    /// `Retry-After` seconds sent with a 429 or 503; 0: none.
    retry_after: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    url: String,
    _server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(status: u16) -> Receiver {
        Receiver::slow(status, Duration::ZERO).await
    }

    /// A receiver that takes `latency` over every answer.
    async fn slow(status: u16, latency: Duration) -> Receiver {
        let status_now = Arc::new(AtomicU16::new(status));
        let retry_after = Arc::new(AtomicU64::new(0));
        let requests = Arc::new(AtomicU64::new(0));
        let (answer, wait, count) = (status_now.clone(), retry_after.clone(), requests.clone());
        let app = axum::Router::new().fallback(move || {
            let (answer, wait, count) = (answer.clone(), wait.clone(), count.clone());
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(latency).await;
                let status = axum::http::StatusCode::from_u16(answer.load(Ordering::SeqCst))
                    .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
                let mut headers = axum::http::HeaderMap::new();
                let seconds = wait.load(Ordering::SeqCst);
                if seconds > 0 && matches!(status.as_u16(), 429 | 503) {
                    headers.insert(
                        axum::http::header::RETRY_AFTER,
                        axum::http::HeaderValue::from(seconds),
                    );
                }
                (status, headers)
            }
        });
        let (url, server) = common::serve_receiver(app).await;
        Receiver {
            status: status_now,
            retry_after,
            requests,
            url,
            _server: server,
        }
    }

    fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Sends `Retry-After: seconds` with its 429 and 503 answers.
    fn ask_to_wait(&self, seconds: u64) {
        self.retry_after.store(seconds, Ordering::SeqCst);
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

struct Env {
    db: TestDb,
    config: Config,
    store: Store,
    ops: Ops,
    endpoint_id: String,
}

/// A tenant with one endpoint at `url` subscribed to `order.*`; breaker
/// settings compressed for a test: 5 failures in a row open it, the first
/// cool-down is `cooldown`; retries every 100 ms, long enough never to die.
async fn env(backend: Backend, url: &str, cooldown: Duration) -> Env {
    env_with(backend, url, |c| {
        c.protection.cooldown = cooldown;
        c.protection.max_cooldown = cooldown * 8;
    })
    .await
}

/// [`env`] with settings of its own, changed by `tweak`.
async fn env_with(backend: Backend, url: &str, tweak: impl FnOnce(&mut Config)) -> Env {
    let db = TestDb::new(backend);
    let mut config = test_config(&db.url);
    config.dispatch.retry_schedule = vec![Duration::from_millis(100); 40];
    config.dispatch.retry_schedule[0] = Duration::ZERO;
    config.dispatch.concurrency = 4;
    config.protection.consecutive_failures = 5;
    tweak(&mut config);
    let store = db.store_with(&config).await;
    let ops = test_ops(&store, &config);
    ops.add_tenant("acme").await.expect("tenant");
    let endpoint = ops
        .add_endpoint(&EndpointInput {
            tenant: "acme".into(),
            name: "hooks".into(),
            url: url.into(),
            ..EndpointInput::default()
        })
        .await
        .expect("endpoint");
    ops.add_subscription(&endpoint.id, "order.*", None)
        .await
        .expect("subscription");
    Env {
        db,
        config,
        store,
        ops,
        endpoint_id: endpoint.id,
    }
}

impl Env {
    async fn publish(&self, count: usize) {
        let events = common::numbered_events(&self.ops, "acme", "order.created", count).await;
        self.store.publish(&events, 0).await.expect("publish");
    }

    async fn state(&self) -> BreakerState {
        self.store
            .breaker(&self.endpoint_id)
            .await
            .expect("breaker")
            .state
    }

    async fn wait_for(&self, state: BreakerState) {
        let reached = wait_until(WAIT, || async { self.state().await == state }).await;
        assert!(reached, "the breaker never became {state}");
    }

    async fn deliveries(&self) -> Vec<hookline::model::Delivery> {
        self.store
            .list_deliveries(&Default::default(), None, 1000)
            .await
            .expect("list")
            .items
    }

    /// Waits until every delivery is delivered; whether they all were.
    async fn all_delivered(&self) -> bool {
        wait_until(WAIT, || async {
            self.deliveries()
                .await
                .iter()
                .all(|d| d.state == DeliveryState::Delivered)
        })
        .await
    }

    async fn attempts_made(&self) -> i64 {
        self.deliveries().await.iter().map(|d| d.attempts).sum()
    }

    async fn transitions(&self) -> Vec<(BreakerState, BreakerState, String, serde_json::Value)> {
        let mut list = self
            .store
            .breaker_transitions(&self.endpoint_id, 100)
            .await
            .expect("transitions");
        list.reverse();
        list.into_iter()
            .map(|t| (t.from, t.to, t.reason, t.figures))
            .collect()
    }
}

async fn a_failing_receiver_is_spared_probed_and_let_back_in(backend: Backend) {
    let receiver = Receiver::start(503).await;
    let env = env(backend, &receiver.url, Duration::from_millis(1500)).await;
    let dispatcher = RunningDispatcher::start(&env.store, &env.config);
    env.publish(8).await;
    env.wait_for(BreakerState::Open).await;

    // Held, not failed: no request, no attempt spent, nothing dies.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (requests, attempts) = (receiver.requests(), env.attempts_made().await);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(receiver.requests(), requests, "nothing is sent while open");
    assert_eq!(env.attempts_made().await, attempts, "no attempt is spent");
    assert!(
        env.deliveries()
            .await
            .iter()
            .all(|d| d.state != DeliveryState::Dead),
        "nothing dies"
    );

    // After the cool-down one probe goes; it fails and the breaker
    // re-opens for twice as long.
    let reopened = wait_until(WAIT, || async {
        env.transitions()
            .await
            .iter()
            .any(|(from, to, _, _)| *from == BreakerState::HalfOpen && *to == BreakerState::Open)
    })
    .await;
    assert!(reopened, "{:#?}", env.transitions().await);
    assert_eq!(receiver.requests(), requests + 1, "exactly one probe");
    let breaker = env.store.breaker(&env.endpoint_id).await.expect("breaker");
    assert_eq!(breaker.cooldown_ms, 3000, "the cool-down doubled");

    // The receiver recovers: the next probe closes it and the backlog flows.
    receiver.answer(200);
    env.wait_for(BreakerState::Closed).await;
    let delivered = env.all_delivered().await;
    assert!(delivered, "{:#?}", env.deliveries().await);
    dispatcher.stop().await;

    let steps: Vec<(BreakerState, BreakerState)> = env
        .transitions()
        .await
        .iter()
        .map(|(from, to, _, _)| (*from, *to))
        .collect();
    use BreakerState::{Closed, HalfOpen, Open};
    assert_eq!(
        steps,
        [
            (Closed, Open),
            (Open, HalfOpen),
            (HalfOpen, Open),
            (Open, HalfOpen),
            (HalfOpen, Closed)
        ]
    );
    let (_, _, reason, figures) = &env.transitions().await[0];
    // One cycle may record several failures at once: at least the five.
    assert!(reason.ends_with("failures in a row"), "{reason}");
    assert!(
        figures["consecutive_failures"].as_i64() >= Some(5),
        "{figures}"
    );
}

/// Records one outcome per due delivery, each with `status`/`error`.
async fn record_outcomes(env: &Env, status: Option<i64>, error: Option<ErrorKind>) {
    let claimed = env
        .store
        .claim(&ClaimRequest {
            owner: "dsp_test",
            limit: 100,
            lease_ms: 60_000,
            default_max_in_flight: 100,
            default_timeout_ms: 1_000,
            reap_expired: false,
            slots: None,
        })
        .await
        .expect("claim");
    let outcomes: Vec<_> = claimed
        .deliveries
        .iter()
        .map(|delivery| {
            let mut outcome = common::outcome(delivery, NextStep::RetryIn(0));
            outcome.attempt.status_code = status;
            outcome.attempt.error_kind = error;
            outcome
        })
        .collect();
    assert!(!outcomes.is_empty(), "work was due");
    env.store
        .record_outcomes("dsp_test", &outcomes)
        .await
        .expect("record");
}

async fn answers_about_content_and_refusals_do_not_open_it(backend: Backend) {
    let env = env(backend, "http://127.0.0.1:9/hooks", Duration::from_secs(60)).await;
    env.publish(30).await;
    let http = Some(ErrorKind::HttpStatus);
    record_outcomes(&env, Some(404), http).await;
    record_outcomes(&env, None, Some(ErrorKind::BlockedDestination)).await;
    record_outcomes(&env, Some(501), http).await;
    assert_eq!(env.state().await, BreakerState::Closed);
    assert!(env.transitions().await.is_empty());
    let breaker = env.store.breaker(&env.endpoint_id).await.expect("breaker");
    assert_eq!(breaker.consecutive_failures, 0);

    // Refused connections are the receiver's failure: 30 in a row.
    record_outcomes(&env, None, Some(ErrorKind::Connect)).await;
    let (from, to, reason, _) = env.transitions().await.remove(0);
    assert_eq!((from, to), (BreakerState::Closed, BreakerState::Open));
    assert_eq!(reason, "30 failures in a row");
}

async fn the_ratio_opens_it_when_failures_in_a_row_are_off(backend: Backend) {
    let env = env(backend, "http://127.0.0.1:9/hooks", Duration::from_secs(60)).await;
    assert_eq!(env.config.protection.min_attempts, 10);
    env.publish(9).await;
    let store = Store::open_with(
        &env.db.url,
        OpenMode::Existing,
        StoreOptions {
            // Failures in a row off; a window of a day, so the test never
            // straddles two of its buckets.
            protection: Some(hookline::config::ProtectionConfig {
                consecutive_failures: 0,
                window: Duration::from_secs(86_400),
                ..env.config.protection.clone()
            }),
            ..StoreOptions::from_config(&env.config)
        },
    )
    .await
    .expect("open");
    let env = Env { store, ..env };
    let http = Some(ErrorKind::HttpStatus);
    record_outcomes(&env, Some(500), http).await;
    assert_eq!(env.state().await, BreakerState::Closed, "8 attempts < 10");
    // The window counts from after the failure that gave the endpoint its
    // breaker row: 8 of 8, then 8 of 17 (under half), then 17 of 26.
    record_outcomes(&env, Some(200), None).await;
    assert_eq!(env.state().await, BreakerState::Closed, "8 of 17 failed");
    record_outcomes(&env, Some(500), http).await;
    let (_, to, reason, figures) = env.transitions().await.remove(0);
    assert_eq!(to, BreakerState::Open);
    assert_eq!(reason, "17 of 26 attempts failed in the last 1d");
    assert_eq!(figures["window_attempts"], 26, "{figures}");
}

async fn forced_states_hold_until_set_back_to_auto(backend: Backend) {
    let receiver = Receiver::start(200).await;
    let env = env(backend, &receiver.url, Duration::from_secs(60)).await;
    let out = ok(env
        .db
        .hookline(&["endpoint", "breaker", &env.endpoint_id, "open"]));
    assert!(out.contains("forced open"), "{out}");
    let dispatcher = RunningDispatcher::start(&env.store, &env.config);
    // Handed off straight to the dispatcher, and claimed: neither sends.
    let handing_off = env.ops.clone().handing_off_to(dispatcher.hand_off.clone());
    let events = common::numbered_events(&env.ops, "acme", "order.created", 3).await;
    handing_off.publish_batch(&events).await.expect("publish");
    env.publish(2).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.requests(), 0, "an open breaker holds everything");
    let shown = ok(env
        .db
        .hookline(&["--json", "endpoint", "breaker", &env.endpoint_id]));
    let shown: serde_json::Value = serde_json::from_str(&shown).expect("JSON");
    assert_eq!(shown["breaker"]["state"], "open", "{shown}");
    assert_eq!(shown["breaker"]["mode"], "open", "{shown}");
    assert_eq!(shown["transitions"][0]["actor"], "test-operator", "{shown}");
    let gauges = env.store.metric_gauges().await.expect("gauges");
    assert_eq!(gauges.held_breaker, 5, "the metrics count what it holds");
    let summary = env.store.queue_summary().await.expect("summary");
    assert_eq!(
        (summary.pending_held, summary.retrying_held),
        (5, 0),
        "the console's queue counts say so too"
    );
    assert_eq!(
        gauges.breakers,
        [(
            env.endpoint_id.clone(),
            BreakerState::Open,
            BreakerMode::Open
        )]
    );
    let listed = ok(env.db.hookline(&["--json", "delivery", "list"]));
    assert!(listed.contains("\"held\": \"breaker_open\""), "{listed}");
    let endpoints = ok(env.db.hookline(&["endpoint", "list"]));
    assert!(endpoints.contains("active, breaker open"), "{endpoints}");
    let endpoints = ok(env.db.hookline(&["--json", "endpoint", "list"]));
    let endpoints: serde_json::Value = serde_json::from_str(&endpoints).expect("JSON");
    assert_eq!(endpoints[0]["breaker"]["state"], "open", "{endpoints}");
    assert_eq!(endpoints[0]["breaker"]["mode"], "open", "{endpoints}");

    // Back to auto: a probe goes at once, gets its answer, and all flows.
    ok(env
        .db
        .hookline(&["endpoint", "breaker", &env.endpoint_id, "auto"]));
    let delivered = wait_until(WAIT, || async { receiver.requests() == 5 }).await;
    assert!(delivered, "{} requests", receiver.requests());
    env.wait_for(BreakerState::Closed).await;
    let mut exposed = String::new();
    hookline::metrics::metrics()
        .encode(&mut exposed)
        .expect("encode");
    assert!(
        exposed
            .contains(r#"hookline_breaker_transitions_total{to="closed",cause="probe_answered"}"#),
        "the probe's close is counted by its rule"
    );

    // Forced closed: failures are counted, never acted on.
    env.ops
        .set_breaker(&env.endpoint_id, BreakerMode::Closed)
        .await
        .expect("force closed");
    receiver.answer(503);
    env.publish(2).await;
    let failed_on = wait_until(WAIT, || async { receiver.requests() >= 5 + 12 }).await;
    assert!(failed_on, "{} requests", receiver.requests());
    assert_eq!(env.state().await, BreakerState::Closed);
    dispatcher.stop().await;
    let audit = ok(env.db.hookline(&["--json", "audit"]));
    assert!(audit.contains("endpoint.breaker"), "{audit}");
}

async fn an_endpoint_failing_past_disable_after_is_disabled_until_resumed(backend: Backend) {
    let receiver = Receiver::start(503).await;
    let env = env_with(backend, &receiver.url, |c| {
        c.protection.cooldown = Duration::from_secs(1);
        c.protection.disable_after = Duration::from_secs(1);
    })
    .await;
    let dispatcher = RunningDispatcher::start(&env.store, &env.config);
    env.publish(3).await;
    let endpoint = || async {
        env.store
            .get_endpoint(&env.endpoint_id)
            .await
            .expect("endpoint")
    };
    let disabled = wait_until(WAIT, || async {
        endpoint().await.state == hookline::model::EndpointState::Disabled
    })
    .await;
    assert!(disabled, "{:?}", endpoint().await);
    let reason = endpoint().await.state_reason.unwrap_or_default();
    assert!(
        reason.starts_with("every attempt failed since ")
            && reason.ends_with("last error: status 503"),
        "{reason}"
    );
    assert!(
        env.deliveries()
            .await
            .iter()
            .all(|d| d.state != DeliveryState::Dead),
        "held, not dead"
    );
    let audit = ok(env.db.hookline(&["--json", "audit"]));
    assert!(audit.contains("every attempt failed since"), "{audit}");

    // The receiver is back; resuming enables the endpoint, closes its
    // breaker, and its deliveries flow.
    receiver.answer(200);
    ok(env.db.hookline(&["endpoint", "resume", &env.endpoint_id]));
    assert_eq!(env.state().await, BreakerState::Closed);
    let delivered = env.all_delivered().await;
    dispatcher.stop().await;
    assert!(delivered, "{:#?}", env.deliveries().await);
}

async fn a_receiver_asking_to_wait_holds_its_whole_endpoint(backend: Backend) {
    let receiver = Receiver::start(429).await;
    receiver.ask_to_wait(2);
    let env = env(backend, &receiver.url, Duration::from_secs(60)).await;
    let dispatcher = RunningDispatcher::start(&env.store, &env.config);
    env.publish(3).await;
    let waiting = wait_until(WAIT, || async {
        let breaker = env.store.breaker(&env.endpoint_id).await.expect("breaker");
        breaker.wait_until.is_some()
    })
    .await;
    assert!(waiting, "the endpoint never waited");
    // Each delivery's own retry is due in 100 ms (the schedule's longest
    // step caps its Retry-After); the endpoint waits the full 2 s.
    receiver.answer(200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = receiver.requests();
    let listed = ok(env.db.hookline(&["--json", "delivery", "list"]));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        receiver.requests(),
        asked,
        "nothing before the time it named"
    );
    assert!(listed.contains("receiver_asked_to_wait"), "{listed}");
    let delivered = env.all_delivered().await;
    dispatcher.stop().await;
    assert!(delivered, "{:#?}", env.deliveries().await);
    assert_eq!(
        env.state().await,
        BreakerState::Closed,
        "3 failures open nothing"
    );
}

/// Two `hookline dispatch` processes deliver to one failing receiver: the
/// failures both record open one breaker, and while it is open neither
/// sends anything but the probe.
async fn dispatcher_processes_share_one_breaker(backend: Backend) {
    // Slow enough that one dispatcher's four attempts leave room for the
    // other's claim.
    let receiver = Receiver::slow(503, Duration::from_millis(50)).await;
    let env = env(backend, &receiver.url, Duration::from_secs(60)).await;
    // Retries every 100 ms for 4 s: without the breaker, requests go on.
    let schedule = format!("0s{}", ",100ms".repeat(40));
    let mut processes = common::dispatch_processes(
        &env.db.url,
        2,
        &[
            ("HOOKLINE_DISPATCH_RETRY_SCHEDULE", &schedule),
            ("HOOKLINE_DISPATCH_POLL_INTERVAL", "100ms"),
            // Four at a time each: neither can take all the work.
            ("HOOKLINE_DISPATCH_CONCURRENCY", "4"),
            ("HOOKLINE_PROTECTION_CONSECUTIVE_FAILURES", "0"),
            ("HOOKLINE_PROTECTION_MIN_ATTEMPTS", "30"),
            ("HOOKLINE_PROTECTION_COOLDOWN", "60s"),
        ],
    );
    // Both are up and waiting before there is work, so both take some.
    let both_up = wait_until(WAIT, || async {
        common::scalar(
            &env.db.url,
            "SELECT COUNT(*) FROM dispatchers WHERE stopped_at IS NULL",
        )
        .await
            == 2
    })
    .await;
    env.publish(20).await;
    let opened = wait_until(WAIT, || async { env.state().await == BreakerState::Open }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let at_open = receiver.requests();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let later = receiver.requests();
    for process in &mut processes {
        let _ = process.kill();
        let _ = process.wait();
    }
    assert!(both_up, "two dispatchers started");
    assert!(opened, "the breaker never opened");
    assert_eq!(later, at_open, "nothing is sent while it is open");
    let (_, _, reason, figures) = env.transitions().await.remove(0);
    assert!(reason.contains("attempts failed"), "{reason}");
    assert!(figures["window_attempts"].as_i64() >= Some(30), "{figures}");
    // Each dispatcher keeps its own stats row per endpoint.
    let attempted = common::scalar(
        &env.db.url,
        "SELECT COUNT(DISTINCT dispatcher_id) FROM endpoint_stats",
    )
    .await;
    assert_eq!(attempted, 2, "both dispatchers attempted");
}

both_backends!(
    a_failing_receiver_is_spared_probed_and_let_back_in,
    answers_about_content_and_refusals_do_not_open_it,
    the_ratio_opens_it_when_failures_in_a_row_are_off,
    forced_states_hold_until_set_back_to_auto,
    dispatcher_processes_share_one_breaker,
    an_endpoint_failing_past_disable_after_is_disabled_until_resumed,
    a_receiver_asking_to_wait_holds_its_whole_endpoint,
);
