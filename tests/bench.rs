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

both_backends!(
    pipeline_bench_reports_every_figure,
    pipeline_bench_refuses_a_database_in_use
);
