//! Retention on both backends: every rule at its horizon (just younger,
//! just older), unfinished work never removed, held work ending dead, the
//! scans finding what finished after they passed, a dry run that changes
//! nothing, one pruner at a time, and `hookline prune` as a user runs it.

mod common;

use std::time::Duration;

use common::{Backend, TestDb, ok, test_config, test_ops};
use hookline::config::{Config, RetentionConfig};
use hookline::model::{DeliveryState, IdKind, PayloadRemovedBy, new_id, now_millis};
use hookline::ops::{EndpointInput, EventInput, Ops};
use hookline::store::{ClaimRequest, ClaimedDelivery, HELD_REASON, NextStep, PruneReport, Store};

const DAY_MS: i64 = 86_400_000;
const OWNER: &str = "pruner-under-test";

/// A database with tenant "acme" and endpoint "hooks" subscribed to `order.*`.
struct Env {
    db: TestDb,
    store: Store,
    ops: Ops,
    config: Config,
    endpoint_id: String,
}

async fn env(backend: Backend) -> Env {
    let db = TestDb::new(backend);
    let mut config = test_config(&db.url);
    // Tests here fail deliveries many times over on purpose: a breaker
    // would hold them.
    config.protection.breaker = false;
    let store = db.store_with(&config).await;
    let ops = test_ops(&store, &config);
    ops.add_tenant("acme").await.expect("tenant");
    let endpoint = ops
        .add_endpoint(&EndpointInput {
            tenant: "acme".into(),
            name: "hooks".into(),
            url: "http://127.0.0.1:9/hooks".into(),
            ..EndpointInput::default()
        })
        .await
        .expect("endpoint");
    ops.add_subscription(&endpoint.id, "order.*", None)
        .await
        .expect("subscription");
    Env {
        db,
        store,
        ops,
        config,
        endpoint_id: endpoint.id,
    }
}

/// A bound value of [`Env::exec`] and [`Env::number`].
enum Arg<'a> {
    Int(i64),
    Text(&'a str),
}

macro_rules! bind_all {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                Arg::Int(value) => query.bind(*value),
                Arg::Text(text) => query.bind(text.to_string()),
            };
        }
        query
    }};
}

impl Env {
    /// Publishes one event of `topic` and returns its id.
    async fn publish(&self, topic: &str, key: Option<&str>) -> String {
        let input = EventInput {
            tenant: Some("acme".into()),
            topic: topic.into(),
            payload: r#"{"order":42}"#.into(),
            idempotency_key: key.map(str::to_string),
            ..EventInput::default()
        };
        let event = self.ops.validate_event(input).await.expect("valid event");
        let published = self.store.publish(&[event], 0).await.expect("publish");
        published[0].event_id.clone()
    }

    /// Claims the event's delivery and records an attempt leading to `next`.
    async fn finish(&self, event_id: &str, next: NextStep) {
        let delivery = self.claim(event_id).await;
        let outcome = common::outcome(&delivery, next);
        self.store
            .record_outcomes("dsp_test", &[outcome])
            .await
            .expect("record");
    }

    /// Leases the delivery of `event_id` to "dsp_test".
    async fn claim(&self, event_id: &str) -> ClaimedDelivery {
        let claimed = self
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
        let mut mine = None;
        let mut others = Vec::new();
        for delivery in claimed.deliveries {
            if delivery.event_id == event_id {
                mine = Some(delivery);
            } else {
                others.push(delivery.id);
            }
        }
        self.store
            .release("dsp_test", &others)
            .await
            .expect("release");
        mine.unwrap_or_else(|| panic!("no delivery of {event_id} was due"))
    }

    /// Moves the event (and its deliveries) `days` into the past.
    async fn age(&self, event_id: &str, days: f64) {
        let by = (days * DAY_MS as f64) as i64;
        for table in [
            "UPDATE events SET created_at = created_at - $1 WHERE id = $2",
            "UPDATE deliveries SET created_at = created_at - $1 WHERE event_id = $2",
        ] {
            self.exec(table, &[Arg::Int(by), Arg::Text(event_id)]).await;
        }
    }

    async fn exec(&self, statement: &str, args: &[Arg<'_>]) {
        use sqlx::Connection;
        let statement = sqlx::AssertSqlSafe(statement.to_string());
        match self.db.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.db.url).await.unwrap();
                bind_all!(sqlx::query(statement), args)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.db.url).await.unwrap();
                bind_all!(sqlx::query(statement), args)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }

    async fn number(&self, statement: &str, args: &[Arg<'_>]) -> i64 {
        use sqlx::Connection;
        let statement = sqlx::AssertSqlSafe(statement.to_string());
        match self.db.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.db.url).await.unwrap();
                bind_all!(sqlx::query_scalar(statement), args)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap()
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.db.url).await.unwrap();
                bind_all!(sqlx::query_scalar(statement), args)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap()
            }
        }
    }

    /// Whether the event is still stored.
    async fn kept(&self, event_id: &str) -> bool {
        self.number(
            "SELECT COUNT(*) FROM events WHERE id = $1",
            &[Arg::Text(event_id)],
        )
        .await
            == 1
    }

    /// The event's one delivery.
    async fn the_delivery(&self, event_id: &str) -> hookline::model::Delivery {
        let filter = hookline::store::DeliveryFilter {
            event_id: Some(event_id.to_string()),
            ..Default::default()
        };
        let mut found = self
            .store
            .list_deliveries(&filter, None, 10)
            .await
            .expect("list deliveries");
        assert_eq!(found.items.len(), 1, "one delivery of {event_id}");
        found.items.remove(0)
    }

    /// The id of the event's one delivery.
    async fn delivery_of(&self, event_id: &str) -> String {
        self.the_delivery(event_id).await.id
    }

    /// The state of the event's one delivery.
    async fn state(&self, event_id: &str) -> DeliveryState {
        self.the_delivery(event_id).await.state
    }

    /// One pass by `policy` (the defaults unless changed), holding the lease.
    async fn prune_by(&self, policy: &RetentionConfig) -> PruneReport {
        assert!(self.store.take_pruner_lease(OWNER).await.expect("lease"));
        let report = self.store.prune(policy, OWNER, false).await.expect("prune");
        self.store
            .release_pruner_lease(OWNER)
            .await
            .expect("release");
        report
    }

    async fn prune(&self) -> PruneReport {
        self.prune_by(&self.config.retention).await
    }
}

async fn succeeded_events_go_at_their_horizon_with_their_deliveries_and_attempts(backend: Backend) {
    let env = env(backend).await;
    let old = env.publish("order.created", None).await;
    let young = env.publish("order.created", None).await;
    let unmatched = env.publish("invoice.paid", None).await;
    env.finish(&old, NextStep::Succeeded).await;
    env.finish(&young, NextStep::Succeeded).await;
    env.age(&old, 14.01).await;
    env.age(&young, 13.99).await;
    env.age(&unmatched, 14.01).await;
    let report = env.prune().await;
    assert!(!env.kept(&old).await, "older than 14d: removed");
    assert!(
        !env.kept(&unmatched).await,
        "matched nothing, older than 14d: removed"
    );
    assert!(env.kept(&young).await, "younger than 14d: kept");
    assert_eq!(
        (report.events, report.deliveries, report.attempts),
        (2, 1, 1),
        "{report:?}"
    );
    assert_eq!(
        env.number(
            "SELECT COUNT(*) FROM attempts WHERE delivery_id NOT IN (SELECT id FROM deliveries)",
            &[]
        )
        .await,
        0,
        "no attempt outlives its delivery"
    );
    assert_eq!(env.prune().await.total(), 0, "a second pass finds nothing");
}

async fn unfinished_work_is_never_removed_and_dead_events_wait_for_their_rule(backend: Backend) {
    let env = env(backend).await;
    let pending = env.publish("order.created", None).await;
    let retrying = env.publish("order.created", None).await;
    let in_flight = env.publish("order.created", None).await;
    let dead = env.publish("order.created", None).await;
    env.finish(&retrying, NextStep::RetryIn(DAY_MS)).await;
    env.finish(&dead, NextStep::Dead).await;
    env.claim(&in_flight).await;
    for event in [&pending, &retrying, &in_flight] {
        env.age(event, 400.0).await;
    }
    env.age(&dead, 29.99).await;
    let report = env.prune().await;
    assert_eq!(report.events, 0, "{report:?}");
    for event in [&pending, &retrying, &in_flight, &dead] {
        assert!(env.kept(event).await, "{event} kept");
    }
    env.age(&dead, 0.02).await;
    let report = env.prune().await;
    assert!(!env.kept(&dead).await, "a dead event older than 30d goes");
    assert_eq!(report.events, 1, "{report:?}");
    assert_eq!(env.state(&pending).await, DeliveryState::Pending);
    assert_eq!(env.state(&retrying).await, DeliveryState::Retrying);
    assert_eq!(env.state(&in_flight).await, DeliveryState::InFlight);
}

async fn an_event_that_finishes_after_the_scan_passed_it_goes_with_the_longer_rule(
    backend: Backend,
) {
    let env = env(backend).await;
    let late = env.publish("order.created", None).await;
    env.age(&late, 20.0).await;
    assert_eq!(env.prune().await.events, 0, "unfinished: kept");
    env.finish(&late, NextStep::Succeeded).await;
    let dry = env
        .store
        .prune(&env.config.retention, OWNER, true)
        .await
        .expect("dry run");
    assert_eq!(dry.events, 0, "the dry run counts what a pass reaches");
    assert_eq!(env.prune().await.events, 0);
    // The 14d scan has passed it; the 30d scan reaches it later.
    env.age(&late, 10.01).await;
    let report = env.prune().await;
    assert!(!env.kept(&late).await, "{report:?}");
}

async fn held_work_ends_dead_after_its_horizon_and_is_audited(backend: Backend) {
    let env = env(backend).await;
    let young = env.publish("order.created", None).await;
    let old = env.publish("order.created", None).await;
    env.ops
        .pause_endpoint(&env.endpoint_id, None, None)
        .await
        .expect("pause");
    env.age(&young, 29.99).await;
    env.age(&old, 30.01).await;
    let policy = RetentionConfig {
        dead: Duration::ZERO,
        ..RetentionConfig::default()
    };
    let report = env.prune_by(&policy).await;
    assert_eq!(report.held_ended_dead, 1, "{report:?}");
    assert_eq!(env.state(&young).await, DeliveryState::Pending);
    assert_eq!(env.state(&old).await, DeliveryState::Dead);
    let reason = env
        .number(
            "SELECT COUNT(*) FROM deliveries WHERE event_id = $1 AND last_error = $2",
            &[Arg::Text(&old), Arg::Text(HELD_REASON)],
        )
        .await;
    assert_eq!(reason, 1, "the reason is on the delivery");
    let audited = env
        .number(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'delivery.held_expired' AND actor = 'hookline'",
            &[],
        )
        .await;
    assert_eq!(audited, 1);
    assert!(
        env.kept(&old).await,
        "the dead rule is off: the event stays"
    );
}

async fn rollups_dispatchers_audit_and_idempotency_keys_go_by_age(backend: Backend) {
    let env = env(backend).await;
    let now = now_millis();
    let minute = |ago: i64| (now - ago) - (now - ago).rem_euclid(60_000);
    for (ago, dispatcher) in [(8 * DAY_MS, "dsp_old"), (6 * DAY_MS, "dsp_recent")] {
        env.exec(
            "INSERT INTO endpoint_health (endpoint_id, minute, dispatcher_id, succeeded) VALUES ($1, $2, $3, 1)",
            &[Arg::Text(&env.endpoint_id), Arg::Int(minute(ago)), Arg::Text(dispatcher)],
        )
        .await;
    }
    for (id, stopped_ago, seen_ago) in [
        ("dsp_stopped_long_ago", Some(2 * DAY_MS), 2 * DAY_MS),
        ("dsp_stopped_lately", Some(DAY_MS / 2), DAY_MS / 2),
        ("dsp_silent_long", None, 2 * DAY_MS),
        ("dsp_running", None, 0),
    ] {
        let stopped = stopped_ago.map(|ago| now - ago);
        let statement = match stopped {
            Some(_) => {
                "INSERT INTO dispatchers (id, host, pid, version, started_at, last_seen_at, stopped_at) VALUES ($1, 'h', 1, 'v', $2, $2, $3)"
            }
            None => {
                "INSERT INTO dispatchers (id, host, pid, version, started_at, last_seen_at) VALUES ($1, 'h', 1, 'v', $2, $2)"
            }
        };
        let mut args = vec![Arg::Text(id), Arg::Int(now - seen_ago)];
        if let Some(stopped) = stopped {
            args.push(Arg::Int(stopped));
        }
        env.exec(statement, &args).await;
    }
    env.exec(
        "UPDATE audit_log SET at = at - $1",
        &[Arg::Int(401 * DAY_MS)],
    )
    .await;
    let first = env.publish("order.created", Some("order-42")).await;
    let repeat = env.publish("order.created", Some("order-42")).await;
    assert_eq!(first, repeat, "a fresh key deduplicates");
    env.exec(
        "UPDATE idempotency_keys SET created_at = created_at - $1",
        &[Arg::Int(DAY_MS + 1_000)],
    )
    .await;
    let after_expiry = env.publish("order.created", Some("order-42")).await;
    assert_ne!(first, after_expiry, "an expired key no longer deduplicates");
    env.exec(
        "UPDATE idempotency_keys SET created_at = created_at - $1",
        &[Arg::Int(DAY_MS + 1_000)],
    )
    .await;
    // The ones to remove: since nothing else here is older than the rules.
    let audit_before = env.number("SELECT COUNT(*) FROM audit_log", &[]).await;
    let report = env.prune().await;
    assert_eq!(
        report.health_rows, 2,
        "the old rollup and its total: {report:?}"
    );
    assert_eq!(report.dispatchers, 2, "{report:?}");
    assert_eq!(report.audit_rows as i64, audit_before, "{report:?}");
    assert_eq!(report.idempotency_keys, 1, "{report:?}");
    let dispatchers = env
        .number(
            "SELECT COUNT(*) FROM dispatchers WHERE id IN ('dsp_stopped_lately', 'dsp_running')",
            &[],
        )
        .await;
    assert_eq!(dispatchers, 2, "recent and running dispatchers stay");
    let rollups = env
        .number(
            "SELECT COUNT(*) FROM endpoint_health WHERE dispatcher_id = 'dsp_recent'",
            &[],
        )
        .await;
    assert_eq!(rollups, 1, "a rollup younger than 7d stays");
}

async fn a_dry_run_counts_what_a_pass_removes_and_changes_nothing(backend: Backend) {
    let env = env(backend).await;
    let mut events = Vec::new();
    for _ in 0..3 {
        events.push(env.publish("order.created", None).await);
    }
    env.finish(&events[0], NextStep::Succeeded).await;
    env.finish(&events[1], NextStep::Dead).await;
    for event in &events {
        env.age(event, 31.0).await;
    }
    env.exec(
        "UPDATE audit_log SET at = at - $1",
        &[Arg::Int(401 * DAY_MS)],
    )
    .await;
    let before = env.db.dump().await;
    let dry = env
        .store
        .prune(&env.config.retention, "someone-else", true)
        .await
        .expect("dry run");
    assert!(dry.dry_run);
    assert_eq!(env.db.dump().await, before, "a dry run writes nothing");
    let done = env.prune().await;
    assert!(!done.dry_run);
    assert_eq!(
        PruneReport {
            dry_run: false,
            space_released_bytes: done.space_released_bytes,
            ..dry.clone()
        },
        done,
        "the dry run counted what the pass removed"
    );
    assert_eq!((dry.events, dry.deliveries, dry.attempts), (2, 2, 2));
}

async fn one_pruner_at_a_time(backend: Backend) {
    let env = env(backend).await;
    assert!(env.store.take_pruner_lease("a").await.unwrap());
    assert!(env.store.take_pruner_lease("a").await.unwrap(), "renewed");
    assert!(
        !env.store.take_pruner_lease("b").await.unwrap(),
        "held by a"
    );
    let busy = hookline::prune::prune_once(&env.store, &env.config.retention, false).await;
    assert!(
        matches!(busy, Err(hookline::prune::PruneError::Busy)),
        "{busy:?}"
    );
    // A pass whose lease was taken over stops at its next batch.
    let old = env.publish("order.created", None).await;
    env.finish(&old, NextStep::Succeeded).await;
    env.age(&old, 20.0).await;
    let report = env
        .store
        .prune(&env.config.retention, "b", false)
        .await
        .unwrap();
    assert_eq!(report.events, 0, "b does not hold the lease: {report:?}");
    assert!(env.kept(&old).await);
    env.store.release_pruner_lease("a").await.unwrap();
    assert!(env.store.take_pruner_lease("b").await.unwrap());
    env.store.release_pruner_lease("b").await.unwrap();
    let report = hookline::prune::prune_once(&env.store, &env.config.retention, false)
        .await
        .unwrap();
    assert_eq!(report.events, 1, "{report:?}");
}

async fn hookline_prune_prints_each_table(backend: Backend) {
    let env = env(backend).await;
    let old = env.publish("order.created", None).await;
    env.finish(&old, NextStep::Succeeded).await;
    env.age(&old, 15.0).await;
    let dry = ok(env.db.hookline(&["prune", "--dry-run"]));
    assert!(
        dry.contains("events") && dry.contains("would remove 3 rows in all"),
        "{dry}"
    );
    assert!(env.kept(&old).await);
    let json = ok(env.db.hookline(&["--json", "prune"]));
    let report: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(report["events"], 1, "{json}");
    assert_eq!(report["attempts"], 1, "{json}");
    assert_eq!(report["total"], 3, "{json}");
    assert_eq!(report["dry_run"], false, "{json}");
    assert!(!env.kept(&old).await);
}

async fn pruning_beside_publishing_and_delivering_loses_nothing(backend: Backend) {
    let env = env(backend).await;
    let sink = hookline::sink::start(hookline::sink::SinkOptions::default())
        .await
        .expect("sink");
    env.ops
        .update_endpoint(
            &env.endpoint_id,
            &hookline::ops::EndpointChanges {
                url: Some(sink.url()),
                ..Default::default()
            },
        )
        .await
        .expect("point the endpoint at the sink");
    // Everything finished is expired at once: the pruner races every
    // delivery from the moment it succeeds.
    let policy = RetentionConfig {
        succeeded: Duration::from_millis(1),
        dead: Duration::from_millis(1),
        ..RetentionConfig::default()
    };
    let dispatcher = common::RunningDispatcher::start(&env.store, &env.config);
    let pruning = {
        let store = env.store.clone();
        let policy = policy.clone();
        tokio::spawn(async move {
            let mut removed = 0;
            // Ends when everything is delivered and pruned; the bound only
            // stops a pruner that never catches up (a loaded CI host takes
            // a few seconds, not minutes).
            let stop_at = std::time::Instant::now() + Duration::from_secs(120);
            while std::time::Instant::now() < stop_at {
                if store.take_pruner_lease(OWNER).await.expect("lease") {
                    removed += store
                        .prune(&policy, OWNER, false)
                        .await
                        .expect("prune")
                        .events;
                }
                if store
                    .list_deliveries(&Default::default(), None, 1)
                    .await
                    .expect("list")
                    .items
                    .is_empty()
                    && removed >= 600
                {
                    break;
                }
            }
            removed
        })
    };
    let mut published = std::collections::HashSet::new();
    for _ in 0..60 {
        let batch = common::numbered_events(&env.ops, "acme", "order.created", 10).await;
        for event in env.store.publish(&batch, 0).await.expect("publish") {
            published.insert(event.event_id);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let removed = pruning.await.expect("pruner");
    dispatcher.stop().await;
    let stats = sink.stats();
    assert_eq!(
        stats.unique_ids,
        published.len() as u64,
        "every event published reached the receiver: {stats:?}"
    );
    assert_eq!(removed, 600, "and every one was pruned once delivered");
    assert_eq!(env.number("SELECT COUNT(*) FROM events", &[]).await, 0);
    assert_eq!(env.number("SELECT COUNT(*) FROM attempts", &[]).await, 0);
}

async fn the_pruner_reads_through_its_indexes(backend: Backend) {
    let env = env(backend).await;
    for _ in 0..20 {
        let event = env
            .publish("order.created", Some(&new_id(IdKind::Event)))
            .await;
        env.finish(&event, NextStep::Succeeded).await;
    }
    let plans = env.store.explain_retention().await.expect("explain");
    let plan = |name: &str| {
        plans
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| panic!("no plan for {name}"))
    };
    for (name, index) in [
        ("event_page", "events_created"),
        ("payload_page", "events_created"),
        ("event_lock", "deliveries_event"),
        ("event_attempts", "attempts_delivery"),
        ("end_held", "deliveries_queue"),
        ("health", "endpoint_health_recent"),
        ("audit", "audit_log_at"),
        ("idempotency", "idempotency_keys_created"),
    ] {
        let text = plan(name);
        assert!(text.contains(index), "{name} must use {index}:\n{text}");
    }
    for (name, text) in &plans {
        assert!(!text.contains("TEMP B-TREE"), "{name} sorts:\n{text}");
    }
}

async fn payloads_go_at_their_horizon_and_their_deliveries_cannot_be_retried(backend: Backend) {
    let env = env(backend).await;
    let old = env.publish("order.created", None).await;
    let young = env.publish("order.created", None).await;
    let unfinished = env.publish("order.created", None).await;
    env.finish(&old, NextStep::Dead).await;
    env.finish(&young, NextStep::Succeeded).await;
    env.finish(&unfinished, NextStep::RetryIn(DAY_MS)).await;
    env.age(&old, 2.01).await;
    env.age(&young, 1.99).await;
    env.age(&unfinished, 2.01).await;
    let policy = RetentionConfig {
        payload: Duration::from_secs(2 * 86_400),
        ..RetentionConfig::default()
    };
    let dry = env
        .store
        .prune(&policy, OWNER, true)
        .await
        .expect("dry run");
    assert_eq!(dry.payloads, 1, "the dry run counts it: {dry:?}");
    let report = env.prune_by(&policy).await;
    assert_eq!(report.payloads, 1, "{report:?}");
    assert_eq!(report.events, 0, "the events stay: {report:?}");

    let gone = env.store.get_event(&old).await.expect("the event stays");
    assert_eq!(gone.payload, "");
    assert_eq!(gone.payload_size, r#"{"order":42}"#.len() as i64);
    assert_eq!(
        gone.payload_removed.map(|r| r.by),
        Some(PayloadRemovedBy::Retention)
    );
    for kept in [&young, &unfinished] {
        let event = env.store.get_event(kept).await.expect("event");
        assert_eq!(event.payload, r#"{"order":42}"#, "{kept} keeps its payload");
        assert!(event.payload_removed.is_none());
    }
    let bodies = |event: &str| {
        let event = event.to_string();
        let env = &env;
        async move {
            env.number(
                "SELECT COUNT(*) FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
                  WHERE d.event_id = $1 AND a.response_body IS NOT NULL",
                &[Arg::Text(&event)],
            )
            .await
        }
    };
    assert_eq!(bodies(&old).await, 0, "its response bodies go with it");
    assert_eq!(bodies(&young).await, 1);

    let delivery = env.delivery_of(&old).await;
    let retried = env
        .ops
        .retry(std::slice::from_ref(&delivery))
        .await
        .expect("retry");
    assert!(retried.retried.is_empty(), "{retried:?}");
    assert!(
        retried.skipped[0]
            .1
            .contains("removed by retention.payload; it cannot be retried"),
        "{retried:?}"
    );
    let bulk = env
        .ops
        .retry_bulk(&hookline::ops::BulkRetry {
            endpoint: env.endpoint_id.clone(),
            states: Vec::new(),
            since: None,
            until: None,
            dry_run: false,
        })
        .await
        .expect("bulk retry");
    assert_eq!(bulk.1, 0, "a bulk retry leaves it too");
    assert_eq!(env.state(&old).await, DeliveryState::Dead);
    let shown = ok(env.db.hookline(&["delivery", "show", &delivery]));
    assert!(
        shown.contains("removed by retention.payload at") && shown.contains("cannot be retried"),
        "{shown}"
    );
    assert_eq!(env.prune_by(&policy).await.payloads, 0, "once only");
}

async fn a_delivery_keeps_its_first_and_latest_attempts(backend: Backend) {
    let env = env(backend).await;
    let event = env.publish("order.created", None).await;
    for _ in 0..25 {
        env.finish(&event, NextStep::RetryIn(0)).await;
    }
    let delivery = env.delivery_of(&event).await;
    let attempts = |sql: &'static str| {
        let delivery = delivery.clone();
        let env = &env;
        async move { env.number(sql, &[Arg::Text(&delivery)]).await }
    };
    assert_eq!(
        attempts("SELECT COUNT(*) FROM attempts WHERE delivery_id = $1").await,
        20,
        "retention.attempts_per_delivery"
    );
    assert_eq!(
        attempts("SELECT MIN(attempt_number) FROM attempts WHERE delivery_id = $1").await,
        1,
        "the first stays"
    );
    assert_eq!(
        attempts("SELECT MAX(attempt_number) FROM attempts WHERE delivery_id = $1").await,
        25
    );
    assert_eq!(
        attempts(
            "SELECT COUNT(*) FROM attempts WHERE delivery_id = $1 AND attempt_number BETWEEN 2 AND 6"
        )
        .await,
        0,
        "the oldest after the first go"
    );
    // A manual retry makes room for its schedule's first attempt.
    let retried = env
        .ops
        .retry(std::slice::from_ref(&delivery))
        .await
        .expect("retry");
    assert_eq!(retried.retried, vec![delivery.clone()]);
    assert_eq!(
        attempts("SELECT COUNT(*) FROM attempts WHERE delivery_id = $1").await,
        19
    );
    env.finish(&event, NextStep::RetryIn(0)).await;
    env.finish(&event, NextStep::RetryIn(0)).await;
    assert_eq!(
        attempts("SELECT COUNT(*) FROM attempts WHERE delivery_id = $1").await,
        20
    );
    assert_eq!(
        attempts(
            "SELECT MIN(started_at) FROM attempts WHERE delivery_id = $1 AND attempt_number = 1"
        )
        .await,
        attempts("SELECT MIN(started_at) FROM attempts WHERE delivery_id = $1").await,
        "the very first attempt is still there"
    );
}

async fn stats_of_dispatchers_long_gone_fold_into_one_row(backend: Backend) {
    let env = env(backend).await;
    let now = now_millis();
    for (dispatcher, failures, attempt_ago, success_ago, error) in [
        ("dsp_gone_a", 3, 8 * DAY_MS, Some(9 * DAY_MS), "boom a"),
        ("dsp_gone_b", 0, 10 * DAY_MS, Some(10 * DAY_MS), "boom b"),
        ("dsp_live", 1, 3_600_000, None, "boom live"),
    ] {
        env.exec(
            "INSERT INTO endpoint_stats (endpoint_id, dispatcher_id, consecutive_failures,
                 last_attempt_at, last_success_at, last_failure_at, last_status, last_error)
             VALUES ($1, $2, $3, $4, $5, $6, 500, $7)",
            &[
                Arg::Text(&env.endpoint_id),
                Arg::Text(dispatcher),
                Arg::Int(failures),
                Arg::Int(now - attempt_ago),
                Arg::Int(success_ago.map_or(0, |ago| now - ago)),
                Arg::Int(now - attempt_ago),
                Arg::Text(error),
            ],
        )
        .await;
    }
    let dry = env
        .store
        .prune(&env.config.retention, OWNER, true)
        .await
        .expect("dry run");
    let report = env.prune().await;
    assert_eq!(report.endpoint_stats, 1, "two rows became one: {report:?}");
    assert_eq!(dry.endpoint_stats, 1, "{dry:?}");
    let count = |sql: &'static str| {
        let env = &env;
        async move { env.number(sql, &[Arg::Text(&env.endpoint_id)]).await }
    };
    assert_eq!(
        count("SELECT COUNT(*) FROM endpoint_stats WHERE endpoint_id = $1").await,
        2
    );
    assert_eq!(
        count("SELECT consecutive_failures FROM endpoint_stats WHERE endpoint_id = $1 AND dispatcher_id = 'retired'").await,
        3,
        "the failures since the last success carry over"
    );
    assert_eq!(
        count("SELECT last_success_at FROM endpoint_stats WHERE endpoint_id = $1 AND dispatcher_id = 'retired'").await,
        now - 9 * DAY_MS,
        "so does the last success"
    );
    assert_eq!(env.prune().await.endpoint_stats, 0, "folded once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_hands_free_pages_back() {
    let env = env(Backend::Sqlite).await;
    assert_eq!(
        env.number("SELECT auto_vacuum FROM pragma_auto_vacuum()", &[])
            .await,
        2,
        "a new file vacuums incrementally"
    );
    let padding = "x".repeat(2_000);
    let mut batch = Vec::new();
    for n in 0..2_000 {
        let input = EventInput {
            tenant: Some("acme".into()),
            topic: "order.created".into(),
            payload: format!(r#"{{"n":{n},"pad":"{padding}"}}"#).into(),
            ..EventInput::default()
        };
        batch.push(env.ops.validate_event(input).await.expect("valid event"));
    }
    env.store.publish(&batch, 0).await.expect("publish");
    env.exec(
        "UPDATE deliveries SET state = 'succeeded', created_at = created_at - $1",
        &[Arg::Int(15 * DAY_MS)],
    )
    .await;
    env.exec(
        "UPDATE events SET created_at = created_at - $1",
        &[Arg::Int(15 * DAY_MS)],
    )
    .await;
    let pages_before = env
        .number("SELECT page_count FROM pragma_page_count()", &[])
        .await;
    let report = env.prune().await;
    assert_eq!(report.events, 2_000, "{report:?}");
    assert!(report.space_released_bytes > 4_000_000, "{report:?}");
    let pages_after = env
        .number("SELECT page_count FROM pragma_page_count()", &[])
        .await;
    assert!(
        pages_after * 2 < pages_before,
        "the file shrank: {pages_before} pages, then {pages_after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_vacuum_converts_a_file_made_without_incremental_vacuum() {
    use sqlx::Connection;
    let db = TestDb::new(Backend::Sqlite);
    {
        // A file as hookline made it before incremental vacuum: NONE, fixed
        // once a table exists.
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(db.path("hookline.db"))
            .create_if_missing(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE legacy (x INTEGER)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    ok(db.hookline(&["migrate"]));
    let mode = || async {
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        let mode: i64 = sqlx::query_scalar("SELECT auto_vacuum FROM pragma_auto_vacuum()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        mode
    };
    assert_eq!(mode().await, 0, "the old file keeps NONE");
    let out = ok(db.hookline(&["prune", "--vacuum"]));
    assert!(out.contains("vacuumed:"), "{out}");
    assert_eq!(mode().await, 2, "converted");
}

both_backends!(
    succeeded_events_go_at_their_horizon_with_their_deliveries_and_attempts,
    unfinished_work_is_never_removed_and_dead_events_wait_for_their_rule,
    an_event_that_finishes_after_the_scan_passed_it_goes_with_the_longer_rule,
    held_work_ends_dead_after_its_horizon_and_is_audited,
    rollups_dispatchers_audit_and_idempotency_keys_go_by_age,
    a_dry_run_counts_what_a_pass_removes_and_changes_nothing,
    one_pruner_at_a_time,
    hookline_prune_prints_each_table,
    pruning_beside_publishing_and_delivering_loses_nothing,
    the_pruner_reads_through_its_indexes,
    payloads_go_at_their_horizon_and_their_deliveries_cannot_be_retried,
    a_delivery_keeps_its_first_and_latest_attempts,
    stats_of_dispatchers_long_gone_fold_into_one_row,
);
