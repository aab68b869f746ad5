//! Support code shared by the integration tests. Each test binary compiles
//! its own copy and uses only part of it, hence the `dead_code` allowance.
//!
//! Everything here is real: a SQLite file in a temp dir or a database in a
//! throwaway Postgres cluster, the real `hookline` binary, real sinks on
//! 127.0.0.1. Tests that should hold on both backends are written once as
//! `async fn name(backend: Backend)` and instantiated with [`both_backends!`].
#![allow(dead_code)]

pub mod postgres;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hookline::config::Config;
use hookline::dispatch::Dispatcher;
use hookline::dispatch::guard::Guard;
use hookline::model::{Actor, DeliveryState, Source};
use hookline::ops::Ops;
use hookline::store::{OpenMode, Store};
use postgres::TestPostgres;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One Postgres cluster per test binary; each test gets its own database in it.
fn shared_cluster() -> &'static TestPostgres {
    static CLUSTER: OnceLock<TestPostgres> = OnceLock::new();
    CLUSTER.get_or_init(TestPostgres::start)
}

/// A fresh, empty database of one backend, removed when dropped (SQLite) or
/// left in the throwaway cluster (Postgres).
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    /// Holds the SQLite file (and anything else a test writes next to it).
    pub dir: tempfile::TempDir,
}

impl TestDb {
    /// A fresh database, not yet migrated.
    pub fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().expect("create a temp dir for the test database");
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("hookline.db").display()),
            Backend::Postgres => shared_cluster().create_database(),
        };
        TestDb { backend, url, dir }
    }

    /// The store, created and migrated.
    pub async fn store(&self) -> Store {
        Store::open(&self.url, OpenMode::CreateAndMigrate)
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", self.url))
    }

    /// The store, created and migrated, with the rules `config` gives it
    /// (its breaker's, retention's).
    pub async fn store_with(&self, config: &Config) -> Store {
        Store::open_with(
            &self.url,
            OpenMode::CreateAndMigrate,
            hookline::store::StoreOptions::from_config(config),
        )
        .await
        .unwrap_or_else(|e| panic!("open {}: {e}", self.url))
    }

    /// A path inside the test's temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs the real `hookline` binary against this database.
    pub fn hookline(&self, args: &[&str]) -> Output {
        hookline_command(&self.url, args)
            .output()
            .expect("run the hookline binary")
    }

    /// Every row of every hookline table, as text, in a stable order: two
    /// dumps are equal exactly when nothing was written in between.
    pub async fn dump(&self) -> String {
        match self.backend {
            Backend::Sqlite => dump_sqlite(&self.url).await,
            Backend::Postgres => dump_postgres(&self.url).await,
        }
    }
}

/// How many deliveries are in each state (states with none are absent): a
/// scan of the whole table, which the product never needs but tests can afford.
#[allow(dead_code)] // not every test binary counts states
pub async fn count_by_state(url: &str) -> Result<Vec<(DeliveryState, i64)>, sqlx::Error> {
    use sqlx::Connection;
    const COUNT: &str = "SELECT state, COUNT(*) FROM deliveries GROUP BY state";
    let rows: Vec<(String, i64)> = if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await?;
        sqlx::query_as(COUNT).fetch_all(&mut conn).await?
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        sqlx::query_as(COUNT).fetch_all(&mut conn).await?
    };
    Ok(rows
        .into_iter()
        .map(|(state, count)| {
            let state =
                DeliveryState::from_db(&state).unwrap_or_else(|e| panic!("deliveries.state: {e}"));
            (state, count)
        })
        .collect())
}

/// A `hookline` command with `--db url`, quiet logs and no inherited
/// `HOOKLINE_*` settings.
pub fn hookline_command(url: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hookline"));
    for (key, _) in std::env::vars() {
        if key.starts_with("HOOKLINE_") {
            command.env_remove(key);
        }
    }
    command
        .env("HOOKLINE_LOG", "warn")
        // The tests' receivers listen on 127.0.0.1; nothing else is allowed.
        .env("HOOKLINE_NETWORK_ALLOW", "127.0.0.1/32")
        .env("USER", "test-operator")
        .arg("--db")
        .arg(url)
        .args(args);
    command
}

/// stdout of a finished command as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stderr of a finished command as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the command succeeded and returns its stdout.
#[track_caller]
pub fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "command failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

/// Settings for fast tests: a compressed retry schedule without jitter, a
/// short lease and quick polls.
pub fn test_config(url: &str) -> Config {
    let mut config = Config::default();
    config.database.url = url.to_string();
    config.dispatch.retry_schedule = vec![
        Duration::ZERO,
        Duration::from_millis(300),
        Duration::from_millis(600),
    ];
    config.dispatch.jitter = 0.0;
    config.dispatch.timeout = Duration::from_secs(2);
    config.dispatch.lease = Duration::from_secs(5);
    config.dispatch.poll_interval = Duration::from_millis(100);
    config.dispatch.heartbeat_interval = Duration::from_millis(200);
    config.dispatch.shutdown_grace = Duration::from_secs(2);
    // The tests' receivers listen on 127.0.0.1; nothing else is allowed.
    config.network.allow = vec!["127.0.0.1/32".parse().expect("a network")];
    config
        .validate()
        .unwrap_or_else(|e| panic!("test config invalid: {e}"));
    config
}

/// `count` validated events of `topic` for `tenant`, with payloads
/// `{"n":0}`, `{"n":1}`, …, ready for [`Ops::publish_batch`].
pub async fn numbered_events(
    ops: &Ops,
    tenant: &str,
    topic: &str,
    count: usize,
) -> Vec<hookline::store::NewEvent> {
    let mut events = Vec::new();
    for n in 0..count {
        let input = hookline::ops::EventInput {
            tenant: Some(tenant.to_string()),
            topic: topic.to_string(),
            payload: format!(r#"{{"n":{n}}}"#).into(),
            ..hookline::ops::EventInput::default()
        };
        events.push(ops.validate_event(input).await.expect("valid event"));
    }
    events
}

/// Operator actions as the test operator, through the CLI source.
pub fn test_ops(store: &Store, config: &Config) -> Ops {
    Ops::new(
        store.clone(),
        config,
        Actor {
            name: "test-operator".to_string(),
            client_addr: Some("10.0.0.7".to_string()),
            source: Source::Cli,
        },
    )
}

/// A dispatcher running in this process until [`RunningDispatcher::stop`].
pub struct RunningDispatcher {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<hookline::dispatch::StatsSnapshot>,
    pub stats: Arc<hookline::dispatch::DispatchStats>,
    pub id: String,
    /// For publishes in the test to hand deliveries straight to it.
    pub hand_off: hookline::dispatch::hand_off::HandOff,
}

impl RunningDispatcher {
    /// Starts a dispatcher on `store` with `config.dispatch`.
    pub fn start(store: &Store, config: &Config) -> RunningDispatcher {
        let dispatcher =
            Dispatcher::new(store.clone(), &config.dispatch, Guard::new(&config.network))
                .expect("build the dispatcher");
        let stats = dispatcher.stats();
        let id = dispatcher.id().to_string();
        let hand_off = dispatcher.hand_off();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            dispatcher
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .expect("dispatcher run")
        });
        RunningDispatcher {
            stop: Some(stop),
            handle,
            stats,
            id,
            hand_off,
        }
    }

    /// Asks it to shut down and waits until it has.
    pub async fn stop(mut self) -> hookline::dispatch::StatsSnapshot {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.handle).await.expect("dispatcher task")
    }
}

/// Polls `check` until it returns true or `timeout` passes; returns whether it did.
pub async fn wait_until<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Makes rustls usable (reqwest panics without a provider) — call before building a client.
pub fn install_crypto() {
    hookline::dispatch::send::install_crypto_provider();
}

async fn dump_sqlite(url: &str) -> String {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::SqliteConnection::connect(url)
        .await
        .expect("connect to the SQLite file for a dump");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .expect("list tables");
    let mut dump = String::new();
    for table in tables {
        let columns: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
        )))
        .fetch_all(&mut conn)
        .await
        .expect("list columns")
        .iter()
        .map(|row| row.get::<String, _>(0))
        .collect();
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT json_array({}) FROM \"{table}\" ORDER BY 1",
            columns.join(", ")
        )))
        .fetch_all(&mut conn)
        .await
        .expect("dump rows");
        dump.push_str(&format!("## {table}\n"));
        for row in rows {
            dump.push_str(&row);
            dump.push('\n');
        }
    }
    dump
}

async fn dump_postgres(url: &str) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to Postgres for a dump");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = current_schema() ORDER BY table_name",
    )
    .fetch_all(&mut conn)
    .await
    .expect("list tables");
    let mut dump = String::new();
    for table in tables {
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT row_to_json(t)::text FROM \"{table}\" t ORDER BY 1"
        )))
        .fetch_all(&mut conn)
        .await
        .expect("dump rows");
        dump.push_str(&format!("## {table}\n"));
        for row in rows {
            dump.push_str(&row);
            dump.push('\n');
        }
    }
    dump
}

/// Declares `#[tokio::test]`s `sqlite::NAME` and `postgres::NAME` for each
/// `async fn NAME(backend: Backend)` listed.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )+
        }
    };
}

/// The rows of one table in a [`TestDb::dump`], as text.
pub fn dump_of_table(dump: &str, table: &str) -> String {
    let header = format!("## {table}\n");
    let Some(start) = dump.find(&header).map(|at| at + header.len()) else {
        panic!("no table {table} in the dump");
    };
    let end = dump[start..]
        .find("## ")
        .map_or(dump.len(), |at| start + at);
    dump[start..end].to_string()
}

/// Credentials the secrets tests give endpoints, none of which may be
/// found in plain where hookline shows or keeps them.
pub const URL_PASSWORD: &str = "hunter2-url-pw";
pub const BEARER_TOKEN: &str = "tok-7f3a9c-bearer";
pub const API_KEY: &str = "key-51d2e8-apikey";

/// `url` (`http://host/…`) with `bob:URL_PASSWORD@` in front of the host.
pub fn with_userinfo(url: &str) -> String {
    url.replacen("://", &format!("://bob:{URL_PASSWORD}@"), 1)
}

/// Asserts that `text` holds none of the test credentials.
#[track_caller]
pub fn assert_no_plain_secret(text: &str, where_: &str) {
    for secret in [URL_PASSWORD, BEARER_TOKEN, API_KEY] {
        assert!(
            !text.contains(secret),
            "{where_} shows {secret:?} in plain:\n{text}"
        );
    }
}

/// An attempt at `delivery` whose consequence is `next` (2xx for success, 500 otherwise).
#[allow(dead_code)] // not every test binary records outcomes
pub fn outcome(
    delivery: &hookline::store::ClaimedDelivery,
    next: hookline::store::NextStep,
) -> hookline::store::Outcome {
    use hookline::model::{ErrorKind, IdKind, new_id, now_millis};
    use hookline::store::{NewAttempt, NextStep, Outcome};
    let succeeded = next == NextStep::Succeeded;
    Outcome {
        attempt: NewAttempt {
            id: new_id(IdKind::Attempt),
            delivery_id: delivery.id.clone(),
            endpoint_id: delivery.endpoint_id.clone(),
            attempt_number: delivery.attempts + 1,
            started_at: now_millis(),
            duration_ms: 12,
            status_code: Some(if succeeded { 200 } else { 500 }),
            error_kind: (!succeeded).then_some(ErrorKind::HttpStatus),
            error_message: None,
            request_headers: vec![("webhook-signature".to_string(), "v1,****".to_string())],
            response_body: Some(if succeeded { "ok" } else { "boom" }.to_string()),
        },
        next,
        disable_endpoint: None,
        published_at: None,
        retry_after_ms: None,
    }
}

/// One number the database answers `query` with.
pub async fn scalar(url: &str, query: &str) -> i64 {
    use sqlx::Connection;
    let query = sqlx::AssertSqlSafe(query.to_string());
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.expect("connect");
        sqlx::query_scalar(query)
            .fetch_one(&mut conn)
            .await
            .expect("query")
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
        sqlx::query_scalar(query)
            .fetch_one(&mut conn)
            .await
            .expect("query")
    }
}

/// Serves `app` on a free port of 127.0.0.1 until dropped with the
/// handle; the URL of its `/hook`.
pub async fn serve_receiver(app: axum::Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the receiver");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, server)
}

/// `count` `hookline dispatch` processes of the real binary on `url`, with
/// the settings `env` gives them, their output dropped. Kill them when done.
pub fn dispatch_processes(
    url: &str,
    count: usize,
    env: &[(&str, &str)],
) -> Vec<std::process::Child> {
    (0..count)
        .map(|_| {
            hookline_command(url, &["dispatch"])
                .envs(env.iter().copied())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("start a dispatcher")
        })
        .collect()
}

/// A receiver on 127.0.0.1 that answers every request with `status`,
/// keeping what it got.
pub async fn failing_sink(status: u16) -> hookline::sink::SinkHandle {
    hookline::sink::start(hookline::sink::SinkOptions {
        fail_rate: 1.0,
        status,
        keep: true,
        ..hookline::sink::SinkOptions::default()
    })
    .await
    .expect("start a failing sink")
}
