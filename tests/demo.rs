//! `hookline demo --headless`: the whole system runs, the bad receivers
//! produce retries and dead deliveries, nothing is left in flight, and the
//! summary's counts match the database's (checked here independently) and
//! the receivers' (checked by the demo, reported as disagreements).

mod common;

use std::collections::HashMap;
use std::process::Command;

use common::{Backend, TestDb, ok, stderr};
use hookline::model::DeliveryState;
use hookline::store::{OpenMode, Store};
use serde_json::Value;

/// The demo binary with quiet logs and no inherited settings; `--db` only
/// when given (otherwise the demo makes its own temp SQLite database).
fn demo_command(db: Option<&str>, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hookline"));
    for (key, _) in std::env::vars() {
        if key.starts_with("HOOKLINE_") {
            command.env_remove(key);
        }
    }
    command.env("HOOKLINE_LOG", "warn");
    if let Some(url) = db {
        command.arg("--db").arg(url);
    }
    command.arg("demo").args(args);
    command
}

fn endpoint<'a>(summary: &'a Value, name: &str) -> &'a Value {
    summary["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("endpoint {name} in the summary: {summary:#}"))
}

fn count(value: &Value) -> i64 {
    value
        .as_i64()
        .unwrap_or_else(|| panic!("a count, got {value}"))
}

/// Sums a database count over every endpoint of the summary.
fn total(summary: &Value, field: &str) -> i64 {
    summary["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .map(|e| count(&e["counts"][field]))
        .sum()
}

async fn headless_demo_delivers_retries_dies_and_agrees(backend: Backend) {
    let db = TestDb::new(backend);
    let url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(db.url.as_str()),
    };
    let output = demo_command(
        url,
        &["--headless", "--duration", "20s", "--keep", "--json"],
    )
    .output()
    .expect("run the demo");
    let summary: Value = serde_json::from_str(&ok(output)).expect("one JSON summary");

    assert_eq!(
        summary["disagreements"],
        serde_json::json!([]),
        "{summary:#}"
    );
    let published = count(&summary["published"]);
    assert!(
        published >= 20,
        "a few events a second for 20s: {published}"
    );
    assert_eq!(count(&summary["events_stored"]), published);

    for healthy in ["storefront-sync", "resident-portal"] {
        let e = endpoint(&summary, healthy);
        assert!(count(&e["counts"]["delivered"]) > 0, "{healthy}: {e:#}");
        for old in ["succeeded", "scheduled"] {
            assert!(e["counts"].get(old).is_none(), "old word {old}: {e:#}");
        }
        assert_eq!(count(&e["counts"]["dead"]), 0, "{healthy}: {e:#}");
        assert_eq!(
            count(&e["counts"]["delivered"]),
            count(&e["sink"]["accepted"]),
            "{healthy}"
        );
    }
    let down = endpoint(&summary, "legacy-crm");
    assert_eq!(count(&down["counts"]["delivered"]), 0, "{down:#}");
    assert!(count(&down["counts"]["retried"]) > 0, "{down:#}");
    // Refused connections open its breaker: its deliveries wait, held,
    // instead of spending their retries and dying.
    assert_ne!(down["breaker"], "closed", "{down:#}");
    assert!(down["breaker_reason"].is_string(), "{down:#}");
    assert!(
        down["sink"].is_null(),
        "nobody listens on the down endpoint"
    );
    let flaky = endpoint(&summary, "billing");
    assert!(
        count(&flaky["sink"]["failed_on_purpose"]) > 0 && count(&flaky["counts"]["delivered"]) > 0,
        "{flaky:#}"
    );
    assert_eq!(total(&summary, "in_flight"), 0, "nothing left in flight");

    // The database, read independently, holds what the summary says.
    let database_url = match backend {
        Backend::Sqlite => {
            let kept = summary["kept"]
                .as_str()
                .expect("--keep names the kept directory");
            format!("sqlite://{kept}/demo.db")
        }
        Backend::Postgres => db.url.clone(),
    };
    let store = Store::open(&database_url, OpenMode::Existing)
        .await
        .expect("open the demo's database");
    let by_state: HashMap<DeliveryState, i64> = common::count_by_state(&database_url)
        .await
        .expect("count")
        .into_iter()
        .collect();
    for (state, field) in [
        (DeliveryState::Delivered, "delivered"),
        (DeliveryState::Dead, "dead"),
        (DeliveryState::Pending, "pending"),
        (DeliveryState::Retrying, "retrying"),
        (DeliveryState::InFlight, "in_flight"),
    ] {
        assert_eq!(
            by_state.get(&state).copied().unwrap_or(0),
            total(&summary, field),
            "{field}"
        );
    }
    store.close().await;
    if let Some(kept) = summary["kept"].as_str() {
        std::fs::remove_dir_all(kept).expect("remove the kept demo directory");
    }
}

both_backends!(headless_demo_delivers_retries_dies_and_agrees);

#[test]
fn the_temporary_database_is_removed_without_keep() {
    let output = demo_command(None, &["--headless", "--duration", "2s", "--json"])
        .output()
        .expect("run the demo");
    let summary: Value = serde_json::from_str(&ok(output)).expect("one JSON summary");
    let database = summary["database"].as_str().expect("database path");
    assert!(summary["kept"].is_null());
    assert!(
        !std::path::Path::new(database).exists(),
        "{database} should be gone"
    );
}

#[tokio::test]
async fn a_database_in_use_or_a_bad_rate_is_refused_and_left_alone() {
    let db = TestDb::new(Backend::Sqlite);
    db.store().await.close().await;
    ok(db.hookline(&["tenant", "add", "acme"]));
    let before = db.dump().await;

    let output = demo_command(Some(&db.url), &["--headless", "--duration", "1s"])
        .output()
        .expect("run the demo");
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("db"), "{}", stderr(&output));
    assert!(stderr(&output).contains("1 tenants"), "{}", stderr(&output));

    let output = demo_command(Some(&db.url), &["--headless", "--rate", "0"])
        .output()
        .expect("run the demo");
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("rate"), "{}", stderr(&output));

    assert_eq!(db.dump().await, before, "a refused demo writes nothing");
}
