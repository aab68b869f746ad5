//! The benchmark harness runs and reports coherent figures (correctness of
//! the harness at tiny sizes, not speed: speed lives in BENCHMARKS.md).

mod common;

use common::{Backend, TestDb, hookline_command, ok};

/// The real binary for a bench on `db`: on SQLite without `--db` (the
/// harness makes its own temp files), on Postgres with the empty database.
fn bench_command(db: &TestDb) -> std::process::Command {
    match db.backend {
        Backend::Sqlite => {
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hookline"));
            command.env("HOOKLINE_LOG", "warn");
            command
        }
        Backend::Postgres => hookline_command(&db.url, &[]),
    }
}

async fn pipeline_bench_reports_every_figure(backend: Backend) {
    let db = TestDb::new(backend);
    let args = [
        "bench",
        "pipeline",
        "--events",
        "30",
        "--endpoints",
        "2",
        "--runs",
        "2",
        "--mode",
        "concurrent",
        "--json",
    ];
    let mut command = bench_command(&db);
    let output = command.args(args).output().expect("run the bench");
    let report: serde_json::Value =
        serde_json::from_str(&ok(output)).expect("bench --json prints one JSON object");
    assert_eq!(report["benchmark"], "pipeline");
    assert_eq!(report["deliveries"], 60);
    assert_eq!(report["mode"], "concurrent");
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2);
    for run in runs.iter().chain([&report["median"]]) {
        assert_eq!(run["deliveries"], 60, "{run}");
        for figure in [
            "deliveries_per_sec",
            "bare_posts_per_sec",
            "ratio",
            "seconds",
        ] {
            let value = run[figure].as_f64().unwrap_or(-1.0);
            assert!(value > 0.0, "{figure} must be positive: {run}");
        }
        let p50 = run["latency_p50_ms"].as_f64().unwrap_or(-1.0);
        let p99 = run["latency_p99_ms"].as_f64().unwrap_or(-1.0);
        assert!(p50 >= 0.0 && p99 >= p50, "latencies {p50} / {p99}");
    }
    let database = report["database"].as_str().unwrap_or_default();
    let expected = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert!(database.starts_with(expected), "{database}");
    // A run this small may fit within one clock tick of CPU time.
    assert_cpu_reported(&report["median"], backend, 0.0);
}

/// CPU per 1,000 deliveries: always hookline's (above `at_least`); the
/// database's only when it is a Postgres server on this host (the test
/// cluster is).
fn assert_cpu_reported(run: &serde_json::Value, backend: Backend, at_least: f64) {
    let hookline = run["cpu"]["hookline_ms"].as_f64().unwrap_or(-1.0);
    assert!(
        hookline >= at_least && hookline >= 0.0,
        "hookline CPU: {run}"
    );
    match backend {
        Backend::Sqlite => assert!(run["cpu"]["postgres_ms"].is_null(), "{run}"),
        Backend::Postgres => {
            let postgres = run["cpu"]["postgres_ms"].as_f64().unwrap_or(-1.0);
            assert!(postgres >= 0.0, "Postgres CPU: {run}");
        }
    }
}

/// Separate dispatcher processes deliver the whole backlog to slow sinks.
async fn pipeline_bench_runs_dispatcher_processes(backend: Backend) {
    let db = TestDb::new(backend);
    let args = [
        "bench",
        "pipeline",
        "--events",
        "40",
        "--endpoints",
        "3",
        "--runs",
        "1",
        "--dispatcher-processes",
        "2",
        "--sink-latency",
        "20ms",
        "--json",
    ];
    let mut command = bench_command(&db);
    let output = command
        .env("HOOKLINE_DISPATCH_CONCURRENCY", "4")
        .args(args)
        .output()
        .expect("run the bench");
    let report: serde_json::Value =
        serde_json::from_str(&ok(output)).expect("bench --json prints one JSON object");
    assert_eq!(report["dispatcher_processes"], 2);
    assert_eq!(report["sink_latency_ms"], 20);
    // Two processes of four slots each.
    assert_eq!(report["concurrency"], 8);
    let run = &report["median"];
    assert_eq!(run["deliveries"], 120, "{run}");
    // 120 answers of at least 20 ms through 8 slots take at least 0.3 s.
    assert!(run["seconds"].as_f64().unwrap_or(0.0) >= 0.3, "{run}");
    // The children's CPU (their start-up alone is tens of ms) counts as hookline's.
    assert_cpu_reported(run, backend, 1.0);
}

async fn pipeline_bench_refuses_a_database_in_use(backend: Backend) {
    let db = TestDb::new(backend);
    ok(db.hookline(&["migrate"]));
    ok(db.hookline(&["tenant", "add", "acme"]));
    let output = db.hookline(&["bench", "pipeline", "--events", "5", "--endpoints", "1"]);
    assert!(!output.status.success());
    let stderr = common::stderr(&output);
    assert!(stderr.contains("empty"), "{stderr}");
    let tenants = ok(db.hookline(&["tenant", "list", "--json"]));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&tenants).expect("json")[0]["name"],
        "acme",
        "the refused bench must not touch the database"
    );
}

/// Every screen `bench console` measures, as its report names them.
const CONSOLE_SCREENS: [&str; 12] = [
    "header (queue totals, dispatchers)",
    "overview",
    "deliveries: live queue",
    "deliveries: failed (dead)",
    "deliveries: by tenant",
    "deliveries: by endpoint",
    "deliveries: by topic",
    "deliveries: pending",
    "delivery detail",
    "endpoints",
    "subscriptions",
    "audit",
];

fn console_bench_command(db: &TestDb, extra: &[&str]) -> std::process::Command {
    let args = [
        "bench",
        "console",
        "--deliveries",
        "2000",
        "--endpoints",
        "10",
        "--runs",
        "2",
    ];
    let mut command = bench_command(db);
    command.args(args).args(extra);
    command
}

#[track_caller]
fn assert_figure(view: &serde_json::Value, name: &str) {
    let median = view[name]["median_ms"].as_f64().unwrap_or(-1.0);
    let p95 = view[name]["p95_ms"].as_f64().unwrap_or(-1.0);
    assert!(
        median > 0.0 && p95 >= median && p95.is_finite(),
        "{name} of {view}"
    );
}

async fn console_bench_reports_every_screen(backend: Backend) {
    let db = TestDb::new(backend);
    let output = console_bench_command(&db, &["--json"])
        .output()
        .expect("run the bench");
    let report: serde_json::Value =
        serde_json::from_str(&ok(output)).expect("bench --json prints one JSON object");
    assert_eq!(report["benchmark"], "console");
    assert_eq!(report["runs"], 2);
    assert_eq!(report["terminal"], "120x40");
    let seed = &report["seed"];
    assert_eq!(seed["deliveries"], 2000);
    assert_eq!(seed["endpoints"], 10);
    let by_state: u64 = seed["by_state"]
        .as_object()
        .expect("deliveries per state")
        .values()
        .map(|n| n.as_u64().unwrap_or(0))
        .sum();
    assert_eq!(by_state, 2000, "{seed}");
    for state in ["delivered", "pending", "dead"] {
        assert!(
            seed["by_state"][state].as_u64().unwrap_or(0) > 0,
            "{state}: {seed}"
        );
    }
    let views = report["views"].as_array().expect("views");
    for screen in CONSOLE_SCREENS {
        let view = views
            .iter()
            .find(|v| v["view"] == screen)
            .unwrap_or_else(|| panic!("{screen} missing from {views:?}"));
        assert_figure(view, "refresh");
        assert_figure(view, "render");
        for verdict in ["refresh_verdict", "render_verdict"] {
            let verdict = view[verdict].as_str().unwrap_or_default();
            assert!(["ok", "median", "MISS"].contains(&verdict), "{view}");
        }
        assert!(view["rows"].as_u64().is_some(), "{view}");
    }
    let rows = |screen: &str| {
        views
            .iter()
            .find(|v| v["view"] == screen)
            .and_then(|v| v["rows"].as_u64())
            .unwrap_or(0)
    };
    assert_eq!(rows("endpoints"), 10, "every seeded endpoint is listed");
    assert_eq!(rows("deliveries: live queue"), 100, "a full first page");
    assert!(rows("delivery detail") > 0, "the dead delivery's attempts");
    let search = &report["search"];
    assert_figure(search, "first_result");
    assert_figure(search, "full_scan");
    assert_eq!(
        search["events_scanned"], seed["events"],
        "a search that matches nothing examines every event"
    );
    let within = report["all_within_targets"].as_bool();
    assert!(within.is_some(), "the verdict over all screens");
    let database = report["database"].as_str().unwrap_or_default();
    let expected = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert!(database.starts_with(expected), "{database}");
}

async fn console_bench_prints_a_table_of_every_screen(backend: Backend) {
    let db = TestDb::new(backend);
    let output = console_bench_command(&db, &[])
        .output()
        .expect("run the bench");
    let table = ok(output);
    for screen in CONSOLE_SCREENS {
        let line = table
            .lines()
            .find(|line| line.starts_with(screen))
            .unwrap_or_else(|| panic!("no line for {screen} in\n{table}"));
        assert_eq!(
            line.matches(" ms").count(),
            4,
            "median and p95 twice: {line}"
        );
    }
    assert!(table.contains("first result for"), "{table}");
    assert!(
        table.contains("targets: refresh < 20 ms, frame < 2 ms"),
        "{table}"
    );
}

async fn console_bench_refuses_a_database_in_use(backend: Backend) {
    let db = TestDb::new(backend);
    ok(db.hookline(&["migrate"]));
    ok(db.hookline(&["tenant", "add", "acme"]));
    let before = db.dump().await;
    let output = db.hookline(&["bench", "console", "--deliveries", "10", "--endpoints", "1"]);
    assert!(!output.status.success());
    let stderr = common::stderr(&output);
    assert!(stderr.contains("empty"), "{stderr}");
    assert_eq!(
        db.dump().await,
        before,
        "the refused bench must not touch the database"
    );
}

async fn isolation_bench_reports_both_scenarios(backend: Backend) {
    let db = TestDb::new(backend);
    let args = [
        "bench",
        "isolation",
        "--events",
        "40",
        "--rate",
        "200",
        "--backlog",
        "300",
        "--bad-latency",
        "2s",
        "--bad-timeout",
        "300ms",
        "--json",
    ];
    let mut command = bench_command(&db);
    let output = command.args(args).output().expect("run the bench");
    let report: serde_json::Value =
        serde_json::from_str(&ok(output)).expect("bench --json prints one JSON object");
    assert_eq!(report["benchmark"], "isolation");
    assert_eq!(report["backlog"], 300);
    for (scenario, bad) in [("alone", false), ("beside_bad", true)] {
        let s = &report[scenario];
        assert_eq!(
            s["healthy_deliveries"],
            40 * 9,
            "every healthy delivery measured: {s}"
        );
        let p50 = s["latency_p50_ms"].as_f64().unwrap_or(-1.0);
        let p99 = s["latency_p99_ms"].as_f64().unwrap_or(-1.0);
        assert!(
            p50 >= 0.0 && p99 >= p50,
            "{scenario} latencies {p50} / {p99}"
        );
        let attempts = s["bad_attempts"].as_u64().unwrap_or(u64::MAX);
        assert_eq!(
            attempts > 0,
            bad,
            "{scenario}: bad endpoint attempts {attempts}"
        );
    }
    let ratio = report["p99_ratio"].as_f64().unwrap_or(-1.0);
    assert!(ratio >= 0.0, "{ratio}");
    assert_eq!(report["within_target"].as_bool(), Some(ratio <= 2.0));
}

/// A receiver down for 4 s (retries give up after 1.5 s): the breaker
/// spares it most attempts and none of its deliveries is lost to retries
/// running out; a limit of 20/s fed by two dispatch processes holds.
async fn protection_bench_reports_the_breaker_and_the_limit(backend: Backend) {
    let db = TestDb::new(backend);
    let args = [
        "bench",
        "protection",
        "--rate",
        "10",
        "--down",
        "4s",
        "--after",
        "1s",
        "--cooldown",
        "1s",
        "--max-cooldown",
        "2s",
        "--retry-schedule",
        "0s,500ms,1s",
        "--limit",
        "20",
        "--limit-events",
        "60",
        "--dispatchers",
        "2",
        "--json",
    ];
    let mut command = bench_command(&db);
    let output = command.args(args).output().expect("run the bench");
    let report: serde_json::Value =
        serde_json::from_str(&ok(output)).expect("bench --json prints one JSON object");
    assert_eq!(report["benchmark"], "protection");
    let runs = report["runs"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = runs.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["alone", "down, breaker off", "down, breaker on"]);
    for run in &runs {
        let p50 = run["healthy_p50_ms"].as_f64().unwrap_or(-1.0);
        let p99 = run["healthy_p99_ms"].as_f64().unwrap_or(-1.0);
        assert!(p50 >= 0.0 && p99 >= p50, "{run}");
        assert_eq!(run["healthy_deliveries"], 50 * 9, "{run}");
    }
    assert!(runs[0]["down"].is_null());
    let (off, on) = (&runs[1]["down"], &runs[2]["down"]);
    let attempts = |d: &serde_json::Value| d["attempts_while_down"].as_u64().unwrap_or(0);
    assert!(
        off["died"].as_u64() > Some(0),
        "without the breaker, retries run out while it is down: {off}"
    );
    assert!(
        attempts(on) < attempts(off),
        "the breaker spares it attempts: {on} against {off}"
    );
    assert!(
        on["transitions"].as_u64() >= Some(2),
        "opened and closed: {on}"
    );
    assert!(
        on["first_after_back_ms"].as_i64().is_some(),
        "its work flows again: {on}"
    );
    let limit = &report["rate_limit"];
    assert_eq!(limit["delivered"], 60, "{limit}");
    let most = limit["most_in_30s"].as_u64().unwrap_or(u64::MAX);
    assert!(most <= limit["bound_30s"].as_u64().unwrap_or(0), "{limit}");
    assert!(
        limit["seconds"].as_f64() >= Some((60.0 - 2.0) / 20.0 * 0.9),
        "at the limit's pace: {limit}"
    );
}

async fn soak_bench_reports_each_interval(backend: Backend) {
    let db = TestDb::new(backend);
    let args = [
        "bench",
        "soak",
        "--duration",
        "6s",
        "--every",
        "2s",
        "--rate",
        "40",
        "--endpoints",
        "2",
        "--json",
    ];
    let output = bench_command(&db)
        .args(args)
        .output()
        .expect("run the bench");
    let report: serde_json::Value =
        serde_json::from_str(&ok(output)).expect("bench --json prints one JSON object");
    assert_eq!(report["benchmark"], "soak");
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1, "one run with pruning unless --compare");
    assert_eq!(runs[0]["pruning"], true);
    let intervals = runs[0]["intervals"].as_array().expect("intervals");
    assert_eq!(intervals.len(), 3, "{report}");
    let mut last_events = 0;
    for interval in intervals {
        let events = interval["events"].as_i64().unwrap_or(-1);
        // Nothing is a minute old yet: every event published is still kept,
        // with one delivery per endpoint.
        assert!(events > last_events, "the events grow: {interval}");
        assert_eq!(
            interval["deliveries"].as_i64(),
            Some(events * 2),
            "{interval}"
        );
        assert!(
            interval["live_bytes"].as_i64().unwrap_or(0) > 0,
            "{interval}"
        );
        assert!(
            interval["created_per_sec"].as_f64().unwrap_or(0.0) > 0.0,
            "{interval}"
        );
        last_events = events;
    }
    let published = 40.0 * 6.0;
    assert!(
        (last_events as f64 - published).abs() <= published * 0.2,
        "{last_events} events in 6 s at 40/s"
    );
    // A rate that is not a number is refused before anything runs.
    let refused = bench_command(&db)
        .args(["bench", "soak", "--rate", "0"])
        .output()
        .expect("run the bench");
    assert!(!refused.status.success());
    assert!(
        common::stderr(&refused).contains("rate"),
        "{}",
        common::stderr(&refused)
    );
}

both_backends!(
    protection_bench_reports_the_breaker_and_the_limit,
    soak_bench_reports_each_interval,
    isolation_bench_reports_both_scenarios,
    pipeline_bench_reports_every_figure,
    pipeline_bench_refuses_a_database_in_use,
    pipeline_bench_runs_dispatcher_processes,
    console_bench_reports_every_screen,
    console_bench_prints_a_table_of_every_screen,
    console_bench_refuses_a_database_in_use
);
