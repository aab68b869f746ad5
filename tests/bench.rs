//! The benchmark harness runs and reports coherent figures (correctness of
//! the harness at tiny sizes, not speed: speed lives in BENCHMARKS.md).

mod common;

use common::{Backend, TestDb, hookline_command, ok};

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
    // SQLite: no --db, the harness makes its own temp files; Postgres: an empty database.
    let mut command = match backend {
        Backend::Sqlite => {
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hookline"));
            command.env("HOOKLINE_LOG", "warn");
            command
        }
        Backend::Postgres => hookline_command(&db.url, &[]),
    };
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
    let mut command = match backend {
        Backend::Sqlite => {
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hookline"));
            command.env("HOOKLINE_LOG", "warn");
            command
        }
        Backend::Postgres => hookline_command(&db.url, &[]),
    };
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

both_backends!(
    pipeline_bench_reports_every_figure,
    pipeline_bench_refuses_a_database_in_use,
    isolation_bench_reports_both_scenarios
);
