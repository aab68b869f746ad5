//! Crashes, with real processes: a `hookline dispatch` killed with SIGKILL in
//! the middle of its work leaves leased deliveries that a second dispatcher
//! finishes once the leases expire, so every event reaches the receiver at
//! least once; and a loop of `hookline publish` killed mid-run loses no event
//! it had acknowledged.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Backend, TestDb, hookline_command, ok, test_config, test_ops, wait_until};
use hookline::ops::{EndpointInput, EventInput};
use hookline::sign::Secret;
use hookline::sink::{SinkOptions, Verdict};
use hookline::store::{DeliveryFilter, Store};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const EVENTS: usize = 300;

/// A child process (or, with `group`, its whole process group) killed with
/// SIGKILL and reaped when dropped, whatever the test did.
struct Reaped {
    child: Child,
    group: bool,
}

impl Reaped {
    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("a pid fits in i32")
    }

    /// SIGKILL, then reap.
    fn kill(&mut self) {
        let target = if self.group { -self.pid() } else { self.pid() };
        // SAFETY: kill(2) with a pid we spawned (or its group) and a valid signal.
        unsafe {
            libc::kill(target, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits up to `timeout` for a clean exit; returns whether it exited 0.
    fn terminate(&mut self, timeout: Duration) -> bool {
        // SAFETY: as above.
        unsafe {
            libc::kill(self.pid(), libc::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// `hookline dispatch` with a short lease, quick polls and its log in `log`.
fn spawn_dispatcher(db: &TestDb, log: &Path) -> Reaped {
    let log = File::options()
        .create(true)
        .append(true)
        .open(log)
        .expect("open the dispatcher log");
    let mut command = hookline_command(&db.url, &["dispatch"]);
    command
        .env("HOOKLINE_LOG", "info")
        .env("HOOKLINE_DISPATCH_LEASE", "3s")
        .env("HOOKLINE_DISPATCH_TIMEOUT", "1s")
        .env("HOOKLINE_DISPATCH_POLL_INTERVAL", "100ms")
        .env("HOOKLINE_DISPATCH_HEARTBEAT_INTERVAL", "200ms")
        .env("HOOKLINE_DISPATCH_SHUTDOWN_GRACE", "2s")
        .env(
            "HOOKLINE_DISPATCH_RETRY_SCHEDULE",
            "0s,200ms,500ms,1s,1s,1s",
        )
        .env("HOOKLINE_DISPATCH_JITTER", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    Reaped {
        child: command.spawn().expect("spawn hookline dispatch"),
        group: false,
    }
}

/// Deliveries per state, straight from the table.
async fn states(db: &TestDb) -> BTreeMap<String, i64> {
    const SQL: &str = "SELECT state, COUNT(*) FROM deliveries GROUP BY state";
    let rows: Vec<(String, i64)> = match db.backend {
        Backend::Sqlite => {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&db.url)
                .await
                .expect("connect");
            sqlx::query_as(SQL).fetch_all(&mut conn).await
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
            sqlx::query_as(SQL).fetch_all(&mut conn).await
        }
    }
    .expect("count deliveries by state");
    rows.into_iter().collect()
}

/// A leased delivery: id, event id, lease owner, lease expiry (unix ms).
type Lease = (String, String, Option<String>, Option<i64>);

/// The in-flight deliveries with their leases.
async fn in_flight(db: &TestDb) -> Vec<Lease> {
    const SQL: &str = "SELECT id, event_id, lease_owner, lease_expires_at FROM deliveries
                       WHERE state = 'in_flight' ORDER BY id";
    match db.backend {
        Backend::Sqlite => {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&db.url)
                .await
                .expect("connect");
            sqlx::query_as(SQL).fetch_all(&mut conn).await
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
            sqlx::query_as(SQL).fetch_all(&mut conn).await
        }
    }
    .expect("list in-flight deliveries")
}

fn count(states: &BTreeMap<String, i64>, state: &str) -> i64 {
    states.get(state).copied().unwrap_or(0)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

async fn killed_dispatcher_loses_nothing(backend: Backend) {
    let db = TestDb::new(backend);
    let store = db.store().await;
    let ops = test_ops(&store, &test_config(&db.url));
    let secret = Secret::parse(SECRET).expect("the test secret");
    // A receiver slow enough that attempts are in flight when the kill comes.
    let sink = hookline::sink::start(SinkOptions {
        secrets: vec![secret],
        latency: Duration::from_millis(80),
        keep: true,
        ..SinkOptions::default()
    })
    .await
    .expect("start the sink");
    ops.add_tenant("acme").await.expect("add tenant");
    ops.add_endpoint(&EndpointInput {
        tenant: "acme".into(),
        name: "prod".into(),
        url: sink.url(),
        secret: Some(SECRET.into()),
        max_in_flight: Some(8),
        ..EndpointInput::default()
    })
    .await
    .expect("add endpoint");
    ops.add_subscription("prod", "order.*", None)
        .await
        .expect("subscribe");
    let mut events = Vec::with_capacity(EVENTS);
    for n in 0..EVENTS {
        let published = ops
            .publish(EventInput {
                tenant: Some("acme".into()),
                topic: "order.created".into(),
                payload: format!("{{\"n\":{n}}}").into(),
                ..EventInput::default()
            })
            .await
            .expect("publish");
        assert_eq!(published.deliveries, 1);
        events.push(published.event_id);
    }

    // First dispatcher: let it deliver some, then SIGKILL it mid-run.
    let log1 = db.path("dispatch-1.log");
    let mut first = spawn_dispatcher(&db, &log1);
    let first_pid = i64::from(first.child.id());
    let started = wait_until(Duration::from_secs(60), || async {
        sink.stats().accepted >= 60
    })
    .await;
    assert!(
        started,
        "the first dispatcher delivered too little in 60 s: sink {}; log:\n{}",
        sink.stats(),
        read_log(&log1)
    );
    first.kill();
    let killed_at = now_ms();

    let after_kill = states(&db).await;
    let leased = in_flight(&db).await;
    let succeeded = count(&after_kill, "succeeded");
    assert!(
        succeeded > 0 && succeeded < EVENTS as i64,
        "killed mid-run: some but not all delivered: {after_kill:?}"
    );
    assert!(
        !leased.is_empty(),
        "the kill left deliveries in flight: {after_kill:?}"
    );
    let first_id = dispatcher_with_pid(&db, first_pid);
    for (id, _, owner, expires) in &leased {
        assert_eq!(
            owner.as_deref(),
            Some(first_id.as_str()),
            "{id} is leased by the killed dispatcher"
        );
        let expires = expires.unwrap_or_else(|| panic!("{id} is in flight without a lease expiry"));
        assert!(
            expires > killed_at - 1_000,
            "{id}'s lease was current when the dispatcher died"
        );
    }

    // Second dispatcher: finishes everything, the stuck ones after their lease.
    let log2 = db.path("dispatch-2.log");
    let mut second = spawn_dispatcher(&db, &log2);
    let finished = wait_until(Duration::from_secs(90), || async {
        count(&states(&db).await, "succeeded") == EVENTS as i64
    })
    .await;
    let final_states = states(&db).await;
    assert!(
        finished,
        "the second dispatcher did not finish: {final_states:?}; sink {}; log:\n{}",
        sink.stats(),
        read_log(&log2)
    );
    assert!(
        second.terminate(Duration::from_secs(20)),
        "the second dispatcher shuts down cleanly on SIGTERM; log:\n{}",
        read_log(&log2)
    );
    assert_eq!(
        final_states,
        BTreeMap::from([("succeeded".to_string(), EVENTS as i64)]),
        "every delivery succeeded"
    );

    // The receiver saw every event at least once, every signature valid.
    let requests = sink.requests();
    let stats = sink.stats();
    assert_eq!(stats.bad_signature, 0, "{stats}");
    let mut accepted: HashMap<String, usize> = HashMap::new();
    for request in requests.iter().filter(|r| r.verdict == Verdict::Ok) {
        let id = request.header("webhook-id").unwrap_or_default().to_string();
        *accepted.entry(id).or_default() += 1;
    }
    let duplicates: usize = accepted.values().map(|n| n - 1).sum();
    let missing: Vec<&String> = events
        .iter()
        .filter(|id| !accepted.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {EVENTS} events never reached the sink ({duplicates} duplicates, {} in flight at the kill): {:?}",
        missing.len(),
        leased.len(),
        &missing[..missing.len().min(10)]
    );
    let extra: Vec<&String> = accepted.keys().filter(|id| !events.contains(id)).collect();
    assert!(extra.is_empty(), "the sink got unknown ids: {extra:?}");

    // A stuck delivery went out again only after its lease expired.
    for (id, event_id, _, expires) in &leased {
        let expires = expires.unwrap_or(0);
        let early: Vec<u64> = requests
            .iter()
            .filter(|r| r.header("webhook-id") == Some(event_id.as_str()))
            .map(|r| r.time_ms)
            .filter(|t| (*t as i64) > killed_at + 100 && (*t as i64) < expires - 100)
            .collect();
        assert!(
            early.is_empty(),
            "{id} was sent again at {early:?}, before its lease expired at {expires}"
        );
    }
    eprintln!(
        "crash ({backend:?}): {} in flight at the kill, {succeeded} delivered before it, \
         {duplicates} duplicates over {EVENTS} events",
        leased.len()
    );
}

/// The id of the dispatcher whose heartbeat row has this pid.
fn dispatcher_with_pid(db: &TestDb, pid: i64) -> String {
    let listed: serde_json::Value =
        serde_json::from_str(&ok(db.hookline(&["dispatchers", "--json"])))
            .expect("dispatchers --json");
    listed
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["pid"] == pid)
        .and_then(|d| d["id"].as_str())
        .unwrap_or_else(|| panic!("no dispatcher with pid {pid} in {listed}"))
        .to_string()
}

async fn killed_publish_loop_loses_no_acknowledged_event(backend: Backend) {
    let db = TestDb::new(backend);
    let store = db.store().await;
    let ops = test_ops(&store, &test_config(&db.url));
    ops.add_tenant("acme").await.expect("add tenant");
    ops.add_endpoint(&EndpointInput {
        tenant: "acme".into(),
        name: "prod".into(),
        url: "http://127.0.0.1:9/never-dispatched".into(),
        ..EndpointInput::default()
    })
    .await
    .expect("add endpoint");
    ops.add_subscription("prod", "t.*", None)
        .await
        .expect("subscribe");

    let script = r#"for i in $(seq 1 100000); do
        "$HL_BIN" --db "$HL_DB" publish --tenant acme --topic t.x --payload "{\"n\":$i}" --json || exit 1
    done"#;
    let mut command = Command::new("bash");
    for (key, _) in std::env::vars() {
        if key.starts_with("HOOKLINE_") {
            command.env_remove(key);
        }
    }
    let errors = db.path("loop.stderr");
    command
        .args(["-c", script])
        .env("HL_BIN", env!("CARGO_BIN_EXE_hookline"))
        .env("HL_DB", &db.url)
        .env("HOOKLINE_LOG", "warn")
        .env("USER", "test-operator")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(File::create(&errors).expect("create the loop's stderr file"))
        .process_group(0);
    let mut publishing = Reaped {
        child: command.spawn().expect("spawn the publish loop"),
        group: true,
    };
    let out = publishing.child.stdout.take().expect("the loop's stdout");
    let (lines, received) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });

    // Read acknowledgements for about two seconds (at least a few), then
    // SIGKILL the loop and whatever publish it is running.
    let mut acknowledged = Acknowledged::default();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2)
        || (acknowledged.ids.len() < 3 && start.elapsed() < Duration::from_secs(60))
    {
        if let Ok(line) = received.recv_timeout(Duration::from_millis(50)) {
            acknowledged.line(&line);
        }
    }
    assert!(
        matches!(publishing.child.try_wait(), Ok(None)),
        "the loop was still running when killed; its stderr:\n{}",
        read_log(&errors)
    );
    publishing.kill();
    // The pipe closes once every process of the group is gone.
    let drain_deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < drain_deadline {
        match received.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => acknowledged.line(&line),
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = reader.join();
    let acked = acknowledged.ids;
    assert!(
        acked.len() >= 3,
        "too few publishes acknowledged to mean anything: {}; stderr:\n{}",
        acked.len(),
        read_log(&errors)
    );

    // Every acknowledged event is stored with its delivery.
    let mut lost = Vec::new();
    for id in &acked {
        match deliveries_of(&store, id).await {
            Ok(1) => {}
            Ok(n) => lost.push(format!("{id}: {n} deliveries")),
            Err(err) => lost.push(format!("{id}: {err}")),
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged events are missing or incomplete: {lost:?}",
        lost.len(),
        acked.len()
    );
    // The CLI sees the last acknowledged one too, and the database is usable.
    let last = acked.last().expect("at least one");
    let shown: serde_json::Value =
        serde_json::from_str(&ok(db.hookline(&["delivery", "show", last, "--json"])))
            .expect("delivery show --json");
    assert_eq!(
        shown["deliveries"].as_array().map(Vec::len),
        Some(1),
        "{shown}"
    );
    let all = store
        .list_deliveries(&DeliveryFilter::default(), None, 1_000_000)
        .await
        .expect("list deliveries");
    let stored: HashSet<&str> = all.items.iter().map(|d| d.event_id.as_str()).collect();
    assert!(
        stored.len() >= acked.len() && stored.len() <= acked.len() + 1,
        "stored {} events for {} acknowledged (at most one published but not yet printed)",
        stored.len(),
        acked.len()
    );
    eprintln!(
        "publish loop ({backend:?}): {} acknowledged before the kill, {} stored",
        acked.len(),
        stored.len()
    );
}

/// How many deliveries an event has; an error if the event is not stored.
async fn deliveries_of(store: &Store, event_id: &str) -> Result<usize, String> {
    store.get_event(event_id).await.map_err(|e| e.to_string())?;
    let filter = DeliveryFilter {
        event_id: Some(event_id.to_string()),
        ..DeliveryFilter::default()
    };
    store
        .list_deliveries(&filter, None, 100)
        .await
        .map(|page| page.items.len())
        .map_err(|e| e.to_string())
}

/// Event ids of complete `publish --json` objects read so far: an event
/// counts as acknowledged only once its whole answer was printed.
#[derive(Default)]
struct Acknowledged {
    ids: Vec<String>,
    partial: String,
}

impl Acknowledged {
    fn line(&mut self, line: &str) {
        self.partial.push_str(line);
        self.partial.push('\n');
        if line.trim_end() != "}" {
            return;
        }
        let object = std::mem::take(&mut self.partial);
        let value: serde_json::Value = serde_json::from_str(&object)
            .unwrap_or_else(|e| panic!("publish --json printed something else ({e}):\n{object}"));
        let id = value["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {value}"));
        assert_eq!(value["deliveries"], 1, "{value}");
        assert_eq!(value["duplicate"], false, "{value}");
        self.ids.push(id.to_string());
    }
}

both_backends!(
    killed_dispatcher_loses_nothing,
    killed_publish_loop_loses_no_acknowledged_event,
);
