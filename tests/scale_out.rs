//! Scale-out: several real `hookline dispatch` processes sharing one
//! Postgres database deliver everything exactly once in the database, keep
//! going when one of them is SIGKILLed or Postgres restarts, and wake within
//! milliseconds of a publish instead of waiting for their poll.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::postgres::TestPostgres;
use common::{Backend, TestDb, hookline_command, test_config, test_ops, wait_until};
use hookline::model::DeliveryState;
use hookline::ops::{EndpointInput, EventInput};
use hookline::sink::{SinkHandle, SinkOptions};
use hookline::store::{NewEvent, Store};

/// Kills every dispatcher child when the test ends, however it ends.
struct Dispatchers(Vec<Child>);

impl Dispatchers {
    /// Starts `count` `hookline dispatch` processes on `url` with extra settings.
    fn start(url: &str, count: usize, env: &[(&str, &str)]) -> Dispatchers {
        let children = (0..count)
            .map(|_| {
                let mut command = hookline_command(url, &["dispatch"]);
                command
                    .envs(env.iter().copied())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                command.spawn().expect("start hookline dispatch")
            })
            .collect();
        Dispatchers(children)
    }
}

impl Drop for Dispatchers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `n` healthy sinks and an endpoint subscribed to everything on each.
async fn sinks_and_endpoints(
    store: &Store,
    url: &str,
    n: usize,
    latency: Duration,
) -> Vec<SinkHandle> {
    let ops = test_ops(store, &test_config(url));
    ops.add_tenant("acme").await.expect("tenant");
    let mut sinks = Vec::new();
    for i in 0..n {
        let sink = hookline::sink::start(SinkOptions {
            latency,
            ..SinkOptions::default()
        })
        .await
        .expect("start a sink");
        let endpoint = ops
            .add_endpoint(&EndpointInput {
                tenant: "acme".into(),
                name: format!("sink{i}"),
                url: sink.url(),
                ..EndpointInput::default()
            })
            .await
            .expect("endpoint");
        ops.add_subscription(&endpoint.id, "*", None)
            .await
            .expect("subscription");
        sinks.push(sink);
    }
    sinks
}

/// Publishes `events` events (each fans out to every endpoint) in batches.
async fn publish(store: &Store, url: &str, events: usize) -> Vec<String> {
    let ops = test_ops(store, &test_config(url));
    let template = ops
        .validate_event(EventInput {
            tenant: Some("acme".into()),
            topic: "load.test".into(),
            payload: r#"{"n":0}"#.into(),
            ..EventInput::default()
        })
        .await
        .expect("event");
    let mut ids = Vec::new();
    for start in (0..events).step_by(500) {
        let batch: Vec<NewEvent> = (start..(start + 500).min(events))
            .map(|n| NewEvent {
                payload: format!(r#"{{"n":{n}}}"#),
                ..template.clone()
            })
            .collect();
        let published = store.publish(&batch, 0).await.expect("publish");
        ids.extend(published.into_iter().map(|p| p.event_id));
    }
    ids
}

async fn count(url: &str, state: DeliveryState) -> i64 {
    common::count_by_state(url)
        .await
        .expect("count")
        .into_iter()
        .find(|(s, _)| *s == state)
        .map_or(0, |(_, n)| n)
}

/// Deliveries with more than one successful attempt recorded.
async fn doubly_succeeded(url: &str) -> i64 {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT delivery_id FROM attempts WHERE error_kind IS NULL
         GROUP BY delivery_id HAVING COUNT(*) > 1) AS twice",
    )
    .fetch_one(&mut conn)
    .await
    .expect("count double successes")
}

/// Checks every sink saw every event, and returns the duplicates they saw.
fn sink_duplicates(sinks: &[SinkHandle], events: usize) -> u64 {
    let mut duplicates = 0;
    for (i, sink) in sinks.iter().enumerate() {
        let stats = sink.stats();
        assert_eq!(
            stats.unique_ids, events as u64,
            "sink {i} saw {} distinct webhook-ids of {events}: {stats:?}",
            stats.unique_ids
        );
        assert_eq!(stats.bad_signature, 0, "sink {i}: {stats:?}");
        duplicates += stats.duplicates;
    }
    duplicates
}

const SHORT_LEASE: &[(&str, &str)] = &[
    ("HOOKLINE_DISPATCH_LEASE", "3s"),
    ("HOOKLINE_DISPATCH_TIMEOUT", "2s"),
    ("HOOKLINE_DISPATCH_POLL_INTERVAL", "200ms"),
    ("HOOKLINE_DISPATCH_SHUTDOWN_GRACE", "1s"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_dispatchers_deliver_20000_exactly_once_in_the_database() {
    let db = TestDb::new(Backend::Postgres);
    let store = db.store().await;
    let sinks = sinks_and_endpoints(&store, &db.url, 10, Duration::ZERO).await;
    publish(&store, &db.url, 2_000).await;
    assert_eq!(count(&db.url, DeliveryState::Pending).await, 20_000);
    let started = Instant::now();
    let _dispatchers = Dispatchers::start(&db.url, 3, &[]);
    let done = wait_until(Duration::from_secs(180), || async {
        count(&db.url, DeliveryState::Delivered).await == 20_000
    })
    .await;
    let counts = common::count_by_state(&db.url).await.expect("count");
    assert!(done, "not every delivery succeeded: {counts:?}");
    let elapsed = started.elapsed();
    let duplicates = sink_duplicates(&sinks, 2_000);
    let twice = doubly_succeeded(&db.url).await;
    eprintln!(
        "3 dispatchers, 20000 deliveries: {elapsed:?} ({:.0}/s), sink duplicates {duplicates}, deliveries succeeded twice {twice}",
        20_000.0 / elapsed.as_secs_f64()
    );
    assert_eq!(twice, 0, "a delivery was attempted successfully twice");
    assert_eq!(
        duplicates, 0,
        "with no crash and long leases, SKIP LOCKED claims must never hand one delivery to two dispatchers"
    );
    let (dispatchers, _) = store.list_dispatchers(60_000).await.expect("dispatchers");
    let alive = dispatchers
        .iter()
        .filter(|d| d.stopped_at.is_none())
        .count();
    assert_eq!(alive, 3, "three dispatchers registered: {dispatchers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_dispatcher_loses_nothing() {
    let db = TestDb::new(Backend::Postgres);
    let store = db.store().await;
    // Slow enough answers that the killed dispatcher dies holding leases.
    let sinks = sinks_and_endpoints(&store, &db.url, 4, Duration::from_millis(40)).await;
    publish(&store, &db.url, 1_000).await;
    let mut dispatchers = Dispatchers::start(&db.url, 3, SHORT_LEASE);
    let some_done = wait_until(Duration::from_secs(60), || async {
        count(&db.url, DeliveryState::Delivered).await >= 600
    })
    .await;
    assert!(some_done, "dispatchers made no progress");
    let victim = &mut dispatchers.0[0];
    let pid = i64::from(victim.id());
    victim.kill().expect("SIGKILL a dispatcher");
    let _ = victim.wait();
    let killed_at = Instant::now();
    let done = wait_until(Duration::from_secs(120), || async {
        count(&db.url, DeliveryState::Delivered).await == 4_000
    })
    .await;
    let counts = common::count_by_state(&db.url).await.expect("count");
    assert!(done, "the survivors did not finish: {counts:?}");
    let duplicates = sink_duplicates(&sinks, 1_000);
    eprintln!(
        "killed dispatcher pid {pid}; survivors finished {:?} later; duplicates seen by sinks: {duplicates}",
        killed_at.elapsed()
    );
    let (seen, _) = store.list_dispatchers(60_000).await.expect("dispatchers");
    let victim_row = seen
        .iter()
        .find(|d| d.pid == pid)
        .expect("the killed dispatcher's row");
    assert!(
        victim_row.stopped_at.is_none(),
        "a SIGKILLed dispatcher cannot mark itself stopped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_survives_a_postgres_restart() {
    let cluster = std::sync::Arc::new(
        tokio::task::spawn_blocking(TestPostgres::start)
            .await
            .expect("start"),
    );
    let url = {
        let cluster = std::sync::Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || cluster.create_database())
            .await
            .expect("create database")
    };
    let store = Store::open(&url, hookline::store::OpenMode::CreateAndMigrate)
        .await
        .expect("open");
    let sinks = sinks_and_endpoints(&store, &url, 2, Duration::from_millis(20)).await;
    publish(&store, &url, 600).await;
    let _dispatcher = Dispatchers::start(&url, 1, SHORT_LEASE);
    let some_done = wait_until(Duration::from_secs(60), || async {
        count(&url, DeliveryState::Delivered).await >= 100
    })
    .await;
    assert!(
        some_done,
        "the dispatcher made no progress before the restart"
    );
    {
        let cluster = std::sync::Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || {
            cluster.stop();
            std::thread::sleep(Duration::from_secs(3));
            cluster.start_again();
        })
        .await
        .expect("restart Postgres");
    }
    let done = wait_until(Duration::from_secs(120), || async {
        matches!(common::count_by_state(&url).await, Ok(counts)
            if counts.iter().any(|(s, n)| *s == DeliveryState::Delivered && *n == 1_200))
    })
    .await;
    let counts = common::count_by_state(&url).await;
    assert!(
        done,
        "the dispatcher did not finish after Postgres restarted: {counts:?}"
    );
    let duplicates = sink_duplicates(&sinks, 600);
    eprintln!(
        "after a Postgres restart: all 1200 delivered, duplicates seen by sinks: {duplicates}"
    );
}

/// An idle dispatcher with a 30 s poll still attempts a new event at once:
/// Postgres NOTIFY (or SQLite's data_version) wakes it.
async fn a_publish_wakes_an_idle_dispatcher_at_once(backend: Backend) {
    let db = TestDb::new(backend);
    let store = db.store().await;
    let sinks = sinks_and_endpoints(&store, &db.url, 1, Duration::ZERO).await;
    let _dispatcher = Dispatchers::start(&db.url, 1, &[("HOOKLINE_DISPATCH_POLL_INTERVAL", "30s")]);
    let registered = wait_until(Duration::from_secs(30), || async {
        store
            .list_dispatchers(60_000)
            .await
            .is_ok_and(|(d, _)| !d.is_empty())
    })
    .await;
    assert!(registered, "the dispatcher never started");
    // Let it settle into its idle wait.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut worst = Duration::ZERO;
    for round in 1..=3u64 {
        let published = Instant::now();
        publish(&store, &db.url, 1).await;
        let arrived = sinks[0].wait_for(round, Duration::from_secs(10)).await;
        let latency = published.elapsed();
        assert!(
            arrived,
            "round {round}: nothing arrived within 10 s (poll is 30 s)"
        );
        worst = worst.max(latency);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    eprintln!("{backend:?}: publish -> delivered on an idle dispatcher, worst of 3: {worst:?}");
    assert!(
        worst < Duration::from_secs(2),
        "an idle dispatcher took {worst:?} to notice a publish"
    );
}

both_backends!(a_publish_wakes_an_idle_dispatcher_at_once);

/// Pids of the connections named `hookline` on `url`'s database.
async fn hookline_connections(url: &str) -> Vec<i32> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity
          WHERE application_name = 'hookline' AND datname = current_database()",
    )
    .fetch_all(&mut conn)
    .await
    .expect("list connections")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_opens_no_more_connections_than_configured() {
    let db = TestDb::new(Backend::Postgres);
    let store = db.store().await;
    let sinks = sinks_and_endpoints(&store, &db.url, 8, Duration::from_millis(20)).await;
    publish(&store, &db.url, 300).await;
    let ours = hookline_connections(&db.url).await;
    let _dispatcher = Dispatchers::start(&db.url, 1, &[("HOOKLINE_DATABASE_MAX_CONNECTIONS", "2")]);
    let most = std::sync::atomic::AtomicUsize::new(0);
    let done = wait_until(Duration::from_secs(120), || async {
        let theirs = hookline_connections(&db.url)
            .await
            .into_iter()
            .filter(|pid| !ours.contains(pid))
            .count();
        most.fetch_max(theirs, std::sync::atomic::Ordering::Relaxed);
        count(&db.url, DeliveryState::Delivered).await == 2_400
    })
    .await;
    let most = most.into_inner();
    assert!(
        done,
        "not delivered: {:?}",
        common::count_by_state(&db.url).await
    );
    sink_duplicates(&sinks, 300);
    // The pool's two, and the connection that listens for wake-ups.
    assert!(most <= 3, "the dispatcher opened {most} connections");
    assert!(
        most >= 2,
        "the sampling saw the dispatcher's connections: {most}"
    );
}
