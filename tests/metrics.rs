//! Prometheus metrics end to end, on SQLite and Postgres: a real `hookline
//! serve` and a real `hookline dispatch` (scraped on `[metrics] listen`)
//! deliver to a real receiver that fails some requests and to a port where
//! nothing listens, while the test scrapes both. What the counters say must
//! match what the database recorded, never go down between scrapes, and
//! name API routes by template; the database gauges must be read at most
//! once a second however many scrape.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::{Backend, TestDb, install_crypto, ok};
use hookline::sink::{SinkHandle, SinkOptions};

const WAIT: Duration = Duration::from_secs(30);

/// One scrape: every sample by its series (name with labels, as written).
#[derive(Debug, Clone, Default)]
struct Scrape {
    samples: BTreeMap<String, f64>,
    text: String,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                Some((series.to_string(), value.parse::<f64>().ok()?))
            })
            .collect();
        Scrape {
            samples,
            text: text.to_string(),
        }
    }

    /// The sum of every series of `name` whose labels contain all of `labels`
    /// (`key="value"` pieces).
    fn sum(&self, name: &str, labels: &[&str]) -> f64 {
        self.samples
            .iter()
            .filter(|(series, _)| {
                let family = series.split('{').next().unwrap_or_default();
                family == name && labels.iter().all(|l| series.contains(l))
            })
            .map(|(_, value)| value)
            .sum()
    }

    fn has_family(&self, name: &str) -> bool {
        self.samples
            .keys()
            .any(|series| series.split('{').next() == Some(name))
    }

    /// Series that only ever increase within a process.
    fn monotonic(&self) -> impl Iterator<Item = (&String, &f64)> {
        self.samples.iter().filter(|(series, _)| {
            let family = series.split('{').next().unwrap_or_default();
            family.starts_with("hookline_")
                && (family.ends_with("_total")
                    || family.ends_with("_count")
                    || family.ends_with("_sum")
                    || family.ends_with("_bucket"))
        })
    }
}

/// A running `hookline serve` or `dispatch`, stopped with SIGTERM when dropped.
struct Process {
    child: Child,
    lines: mpsc::Receiver<String>,
    name: &'static str,
}

impl Process {
    fn start(db: &TestDb, command: &'static str, env: &[(&str, &str)]) -> Process {
        let mut cmd = common::hookline_command(&db.url, &[command]);
        cmd.env("HOOKLINE_METRICS_LISTEN", "127.0.0.1:0")
            .env("HOOKLINE_API_LISTEN", "127.0.0.1:0")
            .env("HOOKLINE_DISPATCH_RETRY_SCHEDULE", "0s,100ms,200ms")
            .env("HOOKLINE_DISPATCH_JITTER", "0")
            .env("HOOKLINE_DISPATCH_TIMEOUT", "2s")
            .env("HOOKLINE_DISPATCH_POLL_INTERVAL", "100ms")
            .env("HOOKLINE_DISPATCH_HEARTBEAT_INTERVAL", "200ms")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            cmd.env(key, value);
        }
        let mut child = cmd.spawn().expect("start hookline");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Process {
            child,
            lines,
            name: command,
        }
    }

    /// The URL printed after `prefix` on stdout (`API listening on `, …).
    fn url_after(&self, prefix: &str) -> String {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100))
                && let Some(url) = line.strip_prefix(prefix)
            {
                return url.trim().to_string();
            }
        }
        panic!("{} never printed {prefix:?}", self.name);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the child we started; no memory is involved.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn scrape(client: &reqwest::Client, url: &str) -> Scrape {
    let response = client.get(url).send().await.expect("scrape");
    assert_eq!(response.status().as_u16(), 200, "scraping {url}");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    Scrape::parse(&response.text().await.expect("metrics text"))
}

/// Asserts no monotonic series of `now` is below its value in `before`.
fn assert_never_decreased(before: &Scrape, now: &Scrape, process: &str) {
    for (series, value) in before.monotonic() {
        if let Some(later) = now.samples.get(series) {
            assert!(
                later >= value,
                "{process}: {series} went down from {value} to {later}"
            );
        }
    }
}

/// A process's `/metrics`, scraped again and again: each scrape must not
/// show a monotonic series lower than the scrape before it.
struct Watched {
    url: String,
    process: &'static str,
    last: Scrape,
}

impl Watched {
    async fn start(client: &reqwest::Client, url: String, process: &'static str) -> Watched {
        let last = scrape(client, &url).await;
        Watched { url, process, last }
    }

    /// Scrapes again, checks it against the last scrape and returns it.
    async fn again(&mut self, client: &reqwest::Client) -> Scrape {
        let now = scrape(client, &self.url).await;
        assert_never_decreased(&self.last, &now, self.process);
        self.last = now.clone();
        now
    }
}

/// One number from the database, by a query the product never needs.
async fn db_count(url: &str, query: &'static str) -> f64 {
    use sqlx::Connection;
    let count: i64 = if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.expect("sqlite");
        sqlx::query_scalar(query)
            .fetch_one(&mut conn)
            .await
            .expect(query)
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.expect("postgres");
        sqlx::query_scalar(query)
            .fetch_one(&mut conn)
            .await
            .expect(query)
    };
    count as f64
}

/// A free port with nothing listening on it: connections are refused.
fn refusing_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}/hooks")
}

async fn flaky_sink() -> SinkHandle {
    hookline::sink::start(SinkOptions {
        fail_rate: 0.3,
        status: 503,
        ..SinkOptions::default()
    })
    .await
    .expect("start a sink")
}

/// The API of a running serve, with an admin key.
struct Api {
    client: reqwest::Client,
    base: String,
    auth: String,
}

impl Api {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("authorization", &self.auth);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("send");
        serde_json::from_slice(&response.bytes().await.expect("body")).unwrap_or(Value::Null)
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
}

fn admin_key(db: &TestDb) -> String {
    let created = ok(db.hookline(&["apikey", "create", "--name", "ops", "--admin", "--json"]));
    serde_json::from_str::<Value>(&created).expect("JSON")["key"]
        .as_str()
        .expect("key")
        .to_string()
}

/// Whether no delivery is waiting or being attempted.
async fn all_finished(url: &str) -> bool {
    db_count(
        url,
        "SELECT COUNT(*) FROM deliveries WHERE state IN ('pending', 'scheduled', 'in_flight')",
    )
    .await
        == 0.0
}

async fn counters_match_what_the_database_recorded(backend: Backend) {
    install_crypto();
    let db = TestDb::new(backend);
    ok(db.hookline(&["migrate"]));
    ok(db.hookline(&["tenant", "add", "acme"]));
    ok(db.hookline(&["tenant", "add", "globex"]));
    let key = admin_key(&db);
    let sink = flaky_sink().await;

    // The down endpoint's deliveries run their whole schedule and die
    // (with the breaker on they would be held once it opens).
    let no_breaker = ("HOOKLINE_PROTECTION_BREAKER", "false");
    let serve = Process::start(&db, "serve", &[no_breaker]);
    let api = Api {
        client: reqwest::Client::new(),
        base: serve.url_after("API listening on "),
        auth: format!("Bearer {key}"),
    };
    let serve_metrics = serve.url_after("metrics listening on ");
    let dispatch = Process::start(
        &db,
        "dispatch",
        &[("HOOKLINE_METRICS_PER_ENDPOINT", "true"), no_breaker],
    );
    let dispatch_metrics = dispatch.url_after("metrics listening on ");

    let mut endpoint_ids = Vec::new();
    for (tenant, name, url) in [
        ("acme", "flaky", sink.url()),
        ("acme", "down", refusing_url()),
        ("globex", "flaky", sink.url()),
    ] {
        let endpoint = api
            .post(
                "/v1/endpoints",
                json!({ "tenant": tenant, "name": name, "url": url }),
            )
            .await;
        let id = endpoint["id"].as_str().expect("endpoint id").to_string();
        api.post("/v1/subscriptions", json!({ "endpoint": id, "topic": "*" }))
            .await;
        endpoint_ids.push(id);
    }

    let client = reqwest::Client::new();
    let mut serve_scrapes = Watched::start(&client, serve_metrics, "serve").await;
    let mut dispatch_scrapes = Watched::start(&client, dispatch_metrics, "dispatch").await;
    for n in 0..30 {
        let event = if n % 10 == 9 {
            json!({ "broadcast": true, "topic": "price.changed", "payload": { "n": n } })
        } else {
            json!({ "tenant": "acme", "topic": "order.created", "payload": { "n": n } })
        };
        let published = api.post("/v1/events", event).await;
        assert!(published["id"].is_string(), "{published}");
        if n % 5 == 0 {
            serve_scrapes.again(&client).await;
            dispatch_scrapes.again(&client).await;
        }
    }
    // Requests whose raw paths must never become labels.
    api.send(reqwest::Method::GET, "/v1/endpoints/ep_not_there_42", None)
        .await;
    api.send(reqwest::Method::GET, "/no/such/route/77", None)
        .await;

    let deadline = Instant::now() + WAIT;
    while !all_finished(&db.url).await {
        assert!(Instant::now() < deadline, "deliveries never finished");
        serve_scrapes.again(&client).await;
        dispatch_scrapes.again(&client).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    let count = |query: &'static str| db_count(&db.url, query);
    let attempts = count("SELECT COUNT(*) FROM attempts").await;
    let succeeded_attempts = count("SELECT COUNT(*) FROM attempts WHERE error_kind IS NULL").await;
    let refused = count("SELECT COUNT(*) FROM attempts WHERE error_kind = 'connect'").await;
    let delivered = count("SELECT COUNT(*) FROM deliveries WHERE state = 'succeeded'").await;
    let dead = count("SELECT COUNT(*) FROM deliveries WHERE state = 'dead'").await;
    let deliveries = count("SELECT COUNT(*) FROM deliveries").await;
    assert!(
        dead >= 27.0,
        "every event to the refusing endpoint dies: {dead}"
    );
    assert!(
        delivered > 0.0 && attempts > deliveries,
        "{delivered} {attempts}"
    );

    // A gauge reading is kept for a second: wait for one taken after the end.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let serve_now = serve_scrapes.again(&client).await;
    let dispatch_now = dispatch_scrapes.again(&client).await;
    let both =
        |name: &str, labels: &[&str]| serve_now.sum(name, labels) + dispatch_now.sum(name, labels);

    // Publishing happened in serve alone.
    assert_eq!(
        serve_now.sum("hookline_events_published_total", &["kind=\"tenant\""]),
        27.0
    );
    assert_eq!(
        serve_now.sum("hookline_events_published_total", &["kind=\"broadcast\""]),
        3.0
    );
    assert_eq!(
        dispatch_now.sum("hookline_events_published_total", &[]),
        0.0
    );
    assert_eq!(
        serve_now.sum("hookline_deliveries_created_total", &[]),
        deliveries
    );
    // Delivering happened in both; together they did what the database holds.
    assert_eq!(both("hookline_attempts_total", &[]), attempts);
    assert_eq!(
        both("hookline_attempts_total", &["outcome=\"succeeded\""]),
        succeeded_attempts
    );
    assert_eq!(
        both(
            "hookline_attempts_total",
            &["outcome=\"network\"", "error_kind=\"connect\""]
        ),
        refused
    );
    assert_eq!(both("hookline_deliveries_succeeded_total", &[]), delivered);
    assert_eq!(both("hookline_deliveries_dead_total", &[]), dead);
    assert_eq!(
        both("hookline_delivery_latency_seconds_count", &[]),
        delivered
    );
    assert_eq!(
        both("hookline_attempt_duration_seconds_count", &[]),
        attempts
    );
    assert!(both("hookline_dispatch_claims_total", &[]) > 0.0);

    // Histograms come whole in every process: buckets up to +Inf, a sum and
    // a count. Which process delivered what depends on who claimed first,
    // so the observations are counted over both.
    for name in [
        "hookline_api_request_duration_seconds",
        "hookline_publish_batch_size",
        "hookline_attempt_duration_seconds",
        "hookline_delivery_latency_seconds",
        "hookline_dispatch_cycle_duration_seconds",
    ] {
        // (The dispatch process serves no API, so has no API series.)
        for scrape in [&serve_now, &dispatch_now]
            .into_iter()
            .filter(|scrape| scrape.has_family(&format!("{name}_count")))
        {
            let count = scrape.sum(&format!("{name}_count"), &[]);
            assert!(scrape.has_family(&format!("{name}_sum")), "{name}_sum");
            assert_eq!(
                scrape.sum(&format!("{name}_bucket"), &["le=\"+Inf\""]),
                count,
                "{name}: the +Inf bucket holds every observation"
            );
        }
        let count = both(&format!("{name}_count"), &[]);
        assert!(count > 0.0, "{name}_count is {count}");
    }

    // Routes are templates; unknown paths collapse into one value.
    assert!(
        serve_now.sum(
            "hookline_api_requests_total",
            &[
                "route=\"/v1/endpoints/{id}\"",
                "method=\"GET\"",
                "status=\"404\""
            ]
        ) >= 1.0,
        "{}",
        serve_now.text
    );
    assert_eq!(
        serve_now.sum(
            "hookline_api_requests_total",
            &["route=\"/v1/events\"", "method=\"POST\"", "status=\"202\""]
        ),
        30.0
    );
    assert!(serve_now.sum("hookline_api_requests_total", &["route=\"unmatched\""]) >= 1.0);
    for raw in ["ep_not_there_42", "/no/such/route"] {
        assert!(!serve_now.text.contains(raw), "{raw} became a label");
    }

    // Per-endpoint series only where metrics.per_endpoint is on.
    assert!(!serve_now.text.contains("hookline_endpoint_attempts_total{"));
    // Which endpoints the dispatch process attempted depends on who claimed
    // first; together, its per-endpoint series account for all it attempted.
    let named = endpoint_ids
        .iter()
        .filter(|id| dispatch_now.text.contains(&format!("endpoint_id=\"{id}\"")))
        .count();
    assert_eq!(
        named > 0,
        dispatch_now.sum("hookline_attempts_total", &[]) > 0.0,
        "{}",
        dispatch_now.text
    );
    assert_eq!(
        dispatch_now.sum("hookline_endpoint_attempts_total", &[]),
        dispatch_now.sum("hookline_attempts_total", &[])
    );

    // The database gauges are the same from every process.
    for scrape in [&serve_now, &dispatch_now] {
        assert_eq!(scrape.sum("hookline_database_up", &[]), 1.0);
        assert_eq!(scrape.sum("hookline_deliveries", &["state=\"dead\""]), dead);
        assert_eq!(
            scrape.sum("hookline_deliveries", &["state=\"pending\""]),
            0.0
        );
        assert_eq!(scrape.sum("hookline_endpoints", &["state=\"active\""]), 3.0);
        assert_eq!(scrape.sum("hookline_dispatchers_alive", &[]), 2.0);
        let beats: Vec<f64> = scrape
            .samples
            .iter()
            .filter(|(series, _)| series.starts_with("hookline_dispatcher_heartbeat_age_seconds{"))
            .map(|(_, age)| *age)
            .collect();
        assert_eq!(beats.len(), 2, "{}", scrape.text);
        assert!(beats.iter().all(|age| *age < 5.0), "{beats:?}");
        assert!(scrape.sum("hookline_database_size_bytes", &[]) > 0.0);
        // SQLite reports its free pages and its log apart from live data.
        let sqlite = backend == Backend::Sqlite;
        for family in [
            "hookline_database_free_bytes",
            "hookline_database_wal_bytes",
        ] {
            assert_eq!(scrape.has_family(family), sqlite, "{family}");
        }
        if sqlite {
            assert!(
                scrape.sum("hookline_database_wal_bytes", &[]) > 0.0,
                "a running writer keeps a log"
            );
        }
        assert!(scrape.sum("process_resident_memory_bytes", &[]) > 0.0);
        assert!(scrape.has_family("process_cpu_seconds_total"));
    }
    drop(dispatch);
    drop(serve);
}

async fn held_work_and_backlogs_are_gauged(backend: Backend) {
    install_crypto();
    let db = TestDb::new(backend);
    ok(db.hookline(&["migrate"]));
    ok(db.hookline(&["tenant", "add", "acme"]));
    let sink = flaky_sink().await;
    for name in ["paused-one", "busy"] {
        ok(db.hookline(&[
            "endpoint",
            "add",
            "--tenant",
            "acme",
            "--name",
            name,
            "--url",
            &sink.url(),
        ]));
        ok(db.hookline(&[
            "subscription",
            "add",
            "--endpoint",
            &format!("acme/{name}"),
            "--topic",
            "*",
        ]));
    }
    ok(db.hookline(&[
        "endpoint",
        "pause",
        "acme/paused-one",
        "--reason",
        "maintenance",
    ]));
    for n in 0..4 {
        ok(db.hookline(&[
            "publish",
            "--tenant",
            "acme",
            "--topic",
            "a.b",
            "--payload",
            &format!("{{\"n\":{n}}}"),
        ]));
    }
    // The paused endpoint's four are held, whatever the dispatcher does.
    let dispatch = Process::start(&db, "dispatch", &[("HOOKLINE_DISPATCH_CONCURRENCY", "1")]);
    let url = dispatch.url_after("metrics listening on ");
    let client = reqwest::Client::new();
    let now = scrape(&client, &url).await;
    assert_eq!(
        now.sum("hookline_deliveries_held", &["reason=\"endpoint_paused\""]),
        4.0,
        "{}",
        now.text
    );
    assert_eq!(
        now.sum(
            "hookline_deliveries_held",
            &["reason=\"endpoint_disabled\""]
        ),
        0.0
    );
    assert_eq!(now.sum("hookline_endpoints", &["state=\"paused\""]), 1.0);
    assert!(
        now.sum(
            "hookline_endpoint_backlog",
            &["endpoint=\"paused-one\"", "tenant=\"acme\""]
        ) == 4.0,
        "{}",
        now.text
    );
    drop(dispatch);
}

async fn gauges_are_read_once_a_second_however_many_scrape(backend: Backend) {
    install_crypto();
    let db = TestDb::new(backend);
    ok(db.hookline(&["migrate"]));
    let dispatch = Process::start(&db, "dispatch", &[]);
    let url = dispatch.url_after("metrics listening on ");
    let client = reqwest::Client::new();
    let reads = |scrape: &Scrape| scrape.sum("hookline_metrics_database_reads_total", &[]);
    let before = reads(&scrape(&client, &url).await);
    let started = Instant::now();
    let run_for = Duration::from_secs(3);
    let mut scrapers = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let client = client.clone();
        let url = url.clone();
        scrapers.spawn(async move {
            let mut scrapes = 0u32;
            while started.elapsed() < run_for {
                let scraped = scrape(&client, &url).await;
                assert_eq!(scraped.sum("hookline_database_up", &[]), 1.0);
                scrapes += 1;
            }
            scrapes
        });
    }
    let mut scrapes = 0;
    while let Some(done) = scrapers.join_next().await {
        scrapes += done.expect("a scraper");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = reads(&scrape(&client, &url).await);
    let read = after - before;
    assert!(
        scrapes >= 40,
        "only {scrapes} scrapes: the limit was never tested"
    );
    // One reading a second, plus the one that may straddle each end.
    assert!(
        read <= elapsed.ceil() + 2.0,
        "{read} database reads in {elapsed:.1}s for {scrapes} scrapes"
    );
    assert!(read >= 2.0, "the reading was never renewed: {read}");
    drop(dispatch);
}

both_backends!(
    counters_match_what_the_database_recorded,
    held_work_and_backlogs_are_gauged,
    gauges_are_read_once_a_second_however_many_scrape,
);
