//! The claim must stay fast as the queue grows: on a database of 50,000+
//! deliveries, the statements a claim runs use the intended indexes and
//! never sort through a temporary B-tree (RECIPES: a plain status index
//! makes SQLite sort every pending row, 6x slower).

mod common;

use common::{Backend, TestDb, test_config, test_ops};
use hookline::model::{IdKind, new_id};
use hookline::ops::{EndpointInput, EventInput};
use hookline::store::{ClaimRequest, NewAttempt, NewEvent, NextStep, Outcome, Store};

const ENDPOINTS: usize = 10;
const EVENTS_PER_ENDPOINT: usize = 5_200;

/// 52,000 deliveries over 10 endpoints: most pending, some leased, some done.
async fn seed(db: &TestDb) -> Store {
    let store = db.store().await;
    let config = test_config(&db.url);
    let ops = test_ops(&store, &config);
    let tenant = ops.add_tenant("acme").await.expect("tenant");
    for n in 0..ENDPOINTS {
        let endpoint = ops
            .add_endpoint(&EndpointInput {
                tenant: tenant.name.clone(),
                name: format!("ep{n}"),
                url: format!("http://127.0.0.1:9/{n}"),
                ..EndpointInput::default()
            })
            .await
            .expect("endpoint");
        ops.add_subscription(&endpoint.id, &format!("topic.e{n}"), None)
            .await
            .expect("subscription");
    }
    let template = ops
        .validate_event(EventInput {
            tenant: Some("acme".into()),
            topic: "topic.e0".into(),
            payload: r#"{"n":1}"#.into(),
            ..EventInput::default()
        })
        .await
        .expect("event");
    for batch in 0..(EVENTS_PER_ENDPOINT / 200) {
        let events: Vec<NewEvent> = (0..200 * ENDPOINTS)
            .map(|i| NewEvent {
                topic: format!("topic.e{}", (i + batch) % ENDPOINTS),
                ..template.clone()
            })
            .collect();
        store.publish(&events, 0).await.expect("publish");
    }
    // Finish some, fail some, leave some leased: a realistic mix of states.
    for round in 0..20 {
        let owner = format!("dsp_seed{round}");
        let claimed = store
            .claim(&ClaimRequest {
                owner: &owner,
                limit: 500,
                lease_ms: 60_000,
                default_max_in_flight: 100,
                default_timeout_ms: 1_000,
                reap_expired: true,
                slots: None,
            })
            .await
            .expect("claim");
        if round % 5 == 4 {
            continue;
        }
        let outcomes: Vec<Outcome> = claimed
            .deliveries
            .iter()
            .enumerate()
            .map(|(i, d)| Outcome {
                attempt: NewAttempt {
                    id: new_id(IdKind::Attempt),
                    delivery_id: d.id.clone(),
                    endpoint_id: d.endpoint_id.clone(),
                    attempt_number: 1,
                    started_at: hookline::model::now_millis(),
                    duration_ms: 3,
                    status_code: Some(if i % 3 == 0 { 500 } else { 200 }),
                    error_kind: (i % 3 == 0).then_some(hookline::model::ErrorKind::HttpStatus),
                    error_message: None,
                    request_headers: vec![],
                    response_body: None,
                },
                next: if i % 3 == 0 {
                    NextStep::RetryIn(3_600_000)
                } else {
                    NextStep::Succeeded
                },
                disable_endpoint: None,
                published_at: None,
                retry_after_ms: None,
            })
            .collect();
        store
            .record_outcomes(&owner, &outcomes)
            .await
            .expect("record");
    }
    store
}

fn assert_plans(plans: &[(&str, String)]) {
    let plan = |name: &str| {
        plans
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| panic!("no plan for {name}"))
    };
    for (name, text) in plans {
        assert!(
            !text.contains("TEMP B-TREE"),
            "{name} sorts through a temp B-tree:\n{text}"
        );
        assert!(!text.is_empty(), "{name} has no plan");
    }
    let claim = plan("claim");
    assert!(
        claim.contains("INDEX deliveries_queue (endpoint_id=? AND next_attempt_at<?)"),
        "an endpoint's due work must be a range scan of the queue index:\n{claim}"
    );
    assert!(
        claim.contains("INDEX sqlite_autoindex_deliveries_1 (id=?)"),
        "the picked rows must be leased by primary key:\n{claim}"
    );
    let record = plan("apply_outcomes");
    assert!(
        !record.contains("SCAN deliveries") && record.contains("deliveries"),
        "recording outcomes must not scan the deliveries table:\n{record}"
    );
    let heads = plan("queue_heads");
    assert!(
        heads.contains("deliveries_queue"),
        "finding endpoints with queued work must skip through the queue index:\n{heads}"
    );
    assert!(
        !heads.contains("SCAN q\n") && !heads.contains("SCAN deliveries\n"),
        "queue heads must not scan the deliveries table:\n{heads}"
    );
    let reap = plan("reap_expired");
    assert!(
        reap.contains("deliveries_in_flight"),
        "lease sweep must use the in-flight index:\n{reap}"
    );
    assert!(
        heads.contains("deliveries_in_flight"),
        "in-flight counts must read only the in-flight index:\n{heads}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_uses_the_queue_indexes_without_sorting_on_sqlite() {
    let db = TestDb::new(Backend::Sqlite);
    let store = seed(&db).await;
    let page = store
        .list_deliveries(&Default::default(), None, 10)
        .await
        .expect("list");
    assert_eq!(page.items.len(), 10);
    let before = store.explain_queue().await.expect("explain");
    assert_plans(&before);
    // The planner must keep choosing well once it has statistics too.
    {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&db.url)
            .await
            .expect("connect");
        sqlx::query("ANALYZE")
            .execute(&mut conn)
            .await
            .expect("analyze");
    }
    let fresh = Store::open(&db.url, hookline::store::OpenMode::Existing)
        .await
        .expect("reopen");
    let after = fresh.explain_queue().await.expect("explain after analyze");
    assert_plans(&after);
}

/// The claim's plan as the dispatcher runs it, from a fresh connection.
async fn claim_plan(url: &str) -> String {
    let store = Store::open(url, hookline::store::OpenMode::Existing)
        .await
        .expect("reopen");
    let plans = store.explain_queue().await.expect("explain");
    store.close().await;
    plans
        .into_iter()
        .find(|(name, _)| *name == "claim")
        .map(|(_, plan)| plan)
        .expect("a claim plan")
}

/// A seeded Postgres database and a connection of its own to it.
async fn seeded_postgres() -> (TestDb, sqlx::PgConnection) {
    use sqlx::Connection;
    let db = TestDb::new(Backend::Postgres);
    seed(&db).await.close().await;
    let conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    (db, conn)
}

/// Postgres plans each statement once per connection, generically (not
/// knowing which endpoint it claims for), and a generic claim could choose
/// `deliveries_due` (every endpoint's due work in time order), walking the
/// other endpoints' backlogs to find one endpoint's work. So the claim must
/// read its endpoint's range of the queue index, and no other index may
/// stand in for that one: even without it, the planner must not be able to
/// pick `deliveries_due`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_index_but_the_queue_can_serve_the_claim_on_postgres() {
    let (db, mut conn) = seeded_postgres().await;
    sqlx::query("ANALYZE")
        .execute(&mut conn)
        .await
        .expect("analyze");
    let claim = claim_plan(&db.url).await;
    assert!(
        claim.contains("Index Scan using deliveries_queue") && claim.contains("endpoint_id = $"),
        "the claim must be planned generically and read its endpoint's range of the queue index:\n{claim}"
    );
    sqlx::query("DROP INDEX deliveries_queue")
        .execute(&mut conn)
        .await
        .expect("drop the queue index");
    let without_queue = claim_plan(&db.url).await;
    assert!(
        !without_queue.contains("deliveries_due"),
        "the earliest-due index must not be usable by the claim:\n{without_queue}"
    );
}

/// Postgres keeps a connection's plan until the table's statistics change,
/// so a plan made while the queue was empty meets the backlog that follows.
/// The claim once reached the rows it leases by scanning the whole queue
/// index (estimated empty) and matching each entry against the picked ids:
/// half a second per claim beside 50,000 waiting deliveries. It must reach
/// them by primary key whatever the statistics say about the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_planned_on_an_empty_queue_leases_by_primary_key_on_postgres() {
    let (db, mut conn) = seeded_postgres().await;
    for statement in [
        "ALTER TABLE deliveries SET (autovacuum_enabled = false)",
        "UPDATE deliveries SET state = 'succeeded', lease_owner = NULL, lease_expires_at = NULL",
        "VACUUM ANALYZE deliveries",
        // The backlog arrives after the statistics were taken.
        "UPDATE deliveries SET state = 'pending'",
    ] {
        sqlx::query(statement)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    let claim = claim_plan(&db.url).await;
    assert!(
        claim.contains("Index Scan using deliveries_pkey on deliveries ")
            && !claim.contains("Seq Scan on deliveries"),
        "the claim must lease the rows it picked by primary key:\n{claim}"
    );
}
