//! Erasure on both backends, as an operator runs it: `hookline event
//! expunge` and `hookline tenant expunge` remove payloads and the response
//! bodies that echoed them from every row (and, on SQLite, from the file and
//! its write-ahead log), cancel unfinished deliveries, refuse retries,
//! are audited, and change nothing when given an unknown id.

mod common;

use common::{Backend, TestDb, ok, stderr, test_config, test_ops};
use hookline::model::{DeliveryState, IdKind, PayloadRemovedBy, new_id};
use hookline::ops::{EndpointInput, EventInput, Ops};
use hookline::store::{ClaimRequest, ClaimedDelivery, DeliveryFilter, NextStep, Store};

const DAY_MS: i64 = 86_400_000;

/// Tenants "acme" and "globex", each with an endpoint subscribed to `order.*`.
struct Env {
    db: TestDb,
    store: Store,
    ops: Ops,
}

async fn env(backend: Backend) -> Env {
    let db = TestDb::new(backend);
    let config = test_config(&db.url);
    let store = db.store_with(&config).await;
    let ops = test_ops(&store, &config);
    for tenant in ["acme", "globex"] {
        ops.add_tenant(tenant).await.expect("tenant");
        let endpoint = ops
            .add_endpoint(&EndpointInput {
                tenant: tenant.into(),
                name: "hooks".into(),
                url: "http://127.0.0.1:9/hooks".into(),
                ..EndpointInput::default()
            })
            .await
            .expect("endpoint");
        ops.add_subscription(&endpoint.id, "order.*", None)
            .await
            .expect("subscription");
    }
    Env { db, store, ops }
}

impl Env {
    /// Publishes an event for `tenant` (`None`: a broadcast) whose payload
    /// ends with `marker`, past a padding that puts it on SQLite's overflow
    /// pages (which a removal frees); returns its id.
    async fn publish(&self, tenant: Option<&str>, marker: &str) -> String {
        self.publish_payload(tenant, "order.created", payload_of(marker))
            .await
    }

    /// Publishes an event for `tenant` with exactly `payload`.
    async fn publish_payload(&self, tenant: Option<&str>, topic: &str, payload: String) -> String {
        let input = EventInput {
            tenant: tenant.map(str::to_string),
            broadcast: tenant.is_none(),
            topic: topic.into(),
            payload: payload.into(),
            ..EventInput::default()
        };
        let event = self.ops.validate_event(input).await.expect("valid event");
        let published = self.store.publish(&[event], 0).await.expect("publish");
        published[0].event_id.clone()
    }

    /// Sends the event's deliveries once: the receiver echoes the payload
    /// back in its answer, which is stored; the outcome leads to `next`.
    async fn attempt(&self, event_id: &str, echo: &str, next: NextStep) {
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
        let (mine, others): (Vec<ClaimedDelivery>, Vec<ClaimedDelivery>) = claimed
            .deliveries
            .into_iter()
            .partition(|d| d.event_id == event_id);
        let others: Vec<String> = others.into_iter().map(|d| d.id).collect();
        self.store
            .release("dsp_test", &others)
            .await
            .expect("release");
        assert!(!mine.is_empty(), "no delivery of {event_id} was due");
        let outcomes: Vec<_> = mine
            .iter()
            .map(|delivery| {
                let mut outcome = common::outcome(delivery, next);
                outcome.attempt.response_body = Some(format!("you sent: {echo}"));
                outcome
            })
            .collect();
        self.store
            .record_outcomes("dsp_test", &outcomes)
            .await
            .expect("record");
    }

    async fn deliveries_of(&self, event_id: &str) -> Vec<hookline::model::Delivery> {
        let filter = DeliveryFilter {
            event_id: Some(event_id.to_string()),
            ..Default::default()
        };
        self.store
            .list_deliveries(&filter, None, 10)
            .await
            .expect("list")
            .items
    }

    async fn exec(&self, statement: &str, by: i64, id: &str) {
        use sqlx::Connection;
        let statement = sqlx::AssertSqlSafe(statement.to_string());
        match self.db.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.db.url).await.unwrap();
                sqlx::query(statement)
                    .bind(by)
                    .bind(id)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.db.url).await.unwrap();
                sqlx::query(statement)
                    .bind(by)
                    .bind(id)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }

    /// Moves the event and its deliveries `days` into the past.
    async fn age(&self, event_id: &str, days: i64) {
        self.exec(
            "UPDATE events SET created_at = created_at - $1 WHERE id = $2",
            days * DAY_MS,
            event_id,
        )
        .await;
        self.exec(
            "UPDATE deliveries SET created_at = created_at - $1 WHERE event_id = $2",
            days * DAY_MS,
            event_id,
        )
        .await;
    }

    /// The database file and its write-ahead log, as bytes (SQLite).
    fn raw_files(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        for name in ["hookline.db", "hookline.db-wal"] {
            if let Ok(mut file) = std::fs::read(self.db.path(name)) {
                bytes.append(&mut file);
            }
        }
        bytes
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

fn payload_of(marker: &str) -> String {
    format!(
        r#"{{"notes":"{}","customer":"{marker}"}}"#,
        "n".repeat(9_000)
    )
}

/// A marker no other test data contains.
fn marker(name: &str) -> String {
    format!("{name}-{}", new_id(IdKind::Event))
}

async fn an_expunged_payload_is_gone_from_every_row_and_file(backend: Backend) {
    let env = env(backend).await;
    let (finished, unfinished, kept) = (marker("finished"), marker("unfinished"), marker("kept"));
    let finished_event = env.publish(Some("acme"), &finished).await;
    let unfinished_event = env.publish(Some("acme"), &unfinished).await;
    // A short payload lives in the row's own page (not on overflow pages),
    // which later rows fill around it before it is erased.
    let small = marker("small");
    let small_event = env
        .publish_payload(
            Some("acme"),
            "order.created",
            format!(r#"{{"customer":"{small}"}}"#),
        )
        .await;
    for n in 0..200 {
        env.publish_payload(
            Some("globex"),
            "invoice.sent",
            format!(r#"{{"order":{n}}}"#),
        )
        .await;
    }
    let kept_event = env.publish(Some("acme"), &kept).await;
    env.attempt(&finished_event, &finished, NextStep::Dead)
        .await;
    env.attempt(&kept_event, &kept, NextStep::Succeeded).await;
    let dump = env.db.dump().await;
    assert!(dump.contains(&finished) && dump.contains(&unfinished) && dump.contains(&kept));

    let out = ok(env.db.hookline(&[
        "event",
        "expunge",
        &finished_event,
        &unfinished_event,
        &small_event,
    ]));
    assert!(
        out.contains(
            "expunged 3 event payloads and 1 response bodies; 2 unfinished deliveries cancelled"
        ),
        "{out}"
    );

    let dump = env.db.dump().await;
    assert!(
        !dump.contains(&finished),
        "the payload and its echo are gone"
    );
    assert!(!dump.contains(&unfinished) && !dump.contains(&small));
    assert!(dump.contains(&kept), "another event keeps its payload");
    if backend == Backend::Sqlite {
        let raw = env.raw_files();
        assert!(contains(&raw, &kept), "the search reads the file");
        assert!(
            !contains(&raw, &finished) && !contains(&raw, &unfinished) && !contains(&raw, &small),
            "no copy lingers in free pages or the write-ahead log"
        );
    }

    let event = env.store.get_event(&finished_event).await.expect("event");
    assert_eq!(event.topic, "order.created", "the event keeps its topic");
    assert_eq!(event.payload_size, payload_of(&finished).len() as i64);
    assert_eq!(
        event.payload_removed.map(|r| r.by),
        Some(PayloadRemovedBy::Expunged)
    );
    let cancelled = env.deliveries_of(&unfinished_event).await;
    assert_eq!(cancelled[0].state, DeliveryState::Cancelled);
    assert_eq!(cancelled[0].last_error.as_deref(), Some("payload expunged"));

    let dead = env.deliveries_of(&finished_event).await[0].id.clone();
    let retried = env
        .ops
        .retry(std::slice::from_ref(&dead))
        .await
        .expect("retry");
    assert!(
        retried.retried.is_empty()
            && retried.skipped[0]
                .1
                .contains("expunged; it cannot be retried"),
        "{retried:?}"
    );
    let shown = ok(env.db.hookline(&["--json", "delivery", "show", &dead]));
    let shown: serde_json::Value = serde_json::from_str(&shown).expect("JSON");
    assert!(shown["event"]["payload"].is_null(), "{shown}");
    assert_eq!(
        shown["event"]["payload_removed"]["by"], "expunged",
        "{shown}"
    );

    let audit = ok(env.db.hookline(&["--json", "audit"]));
    assert!(audit.contains("event.expunge"), "{audit}");
}

async fn an_unknown_id_changes_nothing(backend: Backend) {
    let env = env(backend).await;
    let event = env.publish(Some("acme"), &marker("real")).await;
    let before = env.db.dump().await;
    let unknown = new_id(IdKind::Event);
    let out = env.db.hookline(&["event", "expunge", &event, &unknown]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&unknown), "{}", stderr(&out));
    let out = env.db.hookline(&["event", "expunge", "dlv_not_an_event"]);
    assert!(
        stderr(&out).contains("ids: \"dlv_not_an_event\" is not an event id"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.db.dump().await, before, "nothing was expunged");
}

async fn a_tenant_expunge_takes_its_events_before_a_date_and_leaves_broadcasts(backend: Backend) {
    let env = env(backend).await;
    let (old_a, old_b, young, theirs, broadcast) = (
        marker("old-a"),
        marker("old-b"),
        marker("young"),
        marker("theirs"),
        marker("broadcast"),
    );
    for (tenant, text, days) in [
        (Some("acme"), &old_a, 10),
        (Some("acme"), &old_b, 10),
        (Some("acme"), &young, 1),
        (Some("globex"), &theirs, 10),
        (None, &broadcast, 10),
    ] {
        let event = env.publish(tenant, text).await;
        env.age(&event, days).await;
    }
    let out = ok(env
        .db
        .hookline(&["tenant", "expunge", "acme", "--before", "5d"]));
    assert!(out.contains("expunged 2 event payloads"), "{out}");
    assert!(
        out.contains("1 broadcast events delivered to it were left"),
        "{out}"
    );
    let dump = env.db.dump().await;
    assert!(
        !dump.contains(&old_a) && !dump.contains(&old_b),
        "acme's old events"
    );
    for kept in [&young, &theirs, &broadcast] {
        assert!(dump.contains(kept.as_str()), "{kept} stays");
    }
    let bad = env
        .db
        .hookline(&["tenant", "expunge", "acme", "--before", "last tuesday"]);
    assert!(
        stderr(&bad).contains("before: expected an RFC 3339 time"),
        "{}",
        stderr(&bad)
    );
}

both_backends!(
    an_expunged_payload_is_gone_from_every_row_and_file,
    an_unknown_id_changes_nothing,
    a_tenant_expunge_takes_its_events_before_a_date_and_leaves_broadcasts,
);
