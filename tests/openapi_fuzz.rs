//! The HTTP API against its own OpenAPI document, judged by an independent
//! fuzzer: schemathesis (`--checks all`) drives a real server on 127.0.0.1
//! over a seeded SQLite database and must find nothing: no undocumented
//! status, no schema-valid request refused, no invalid one accepted, no
//! answer that breaks its schema. `.ci/run` installs schemathesis.

mod common;

use std::path::Path;
use std::process::Output;

use common::{Backend, TestDb, install_crypto};
use hookline::api::{ApiOptions, RunningApi};
use hookline::config::Config;
use hookline::model::{Actor, Source};
use hookline::ops::{EndpointInput, EventInput, Ops};

/// The version `.ci/run` installs; another one may judge differently.
const SCHEMATHESIS_VERSION: &str = "4.32.5";
/// Test cases per operation and phase: enough to reach every rule, few
/// enough for about half a minute on a 2-core machine.
const MAX_EXAMPLES: &str = "50";
/// A fixed seed, so a failure can be replayed.
const SEED: &str = "1";

/// What the fuzzer is told exists: each operation's path id, and the
/// tenant and endpoint request fields may name.
struct Seeded {
    endpoint: String,
    endpoint_to_delete: String,
    subscription: String,
    subscription_to_delete: String,
    event: String,
    event_to_expunge: String,
    delivery: String,
}

/// A tenant `acme` with an endpoint subscribed twice and two events
/// delivered to it (pending: no dispatcher runs), plus a tenant, an
/// endpoint, a subscription and an event kept for the fuzzer to delete.
async fn seed(ops: &Ops) -> Seeded {
    ops.add_tenant("acme").await.expect("tenant acme");
    ops.add_tenant("doomed").await.expect("tenant doomed");
    // `.example` never resolves, so the outbound guard (left on: loopback
    // stays blocked) takes these without a lookup answer.
    let endpoint = |name: &str| EndpointInput {
        tenant: "acme".to_string(),
        name: name.to_string(),
        url: format!("https://receiver.example/{name}"),
        ..EndpointInput::default()
    };
    let prod = ops
        .add_endpoint(&endpoint("prod"))
        .await
        .expect("endpoint prod");
    let gone = ops
        .add_endpoint(&endpoint("gone"))
        .await
        .expect("endpoint gone");
    let orders = ops
        .add_subscription(&prod.id, "order.*", None)
        .await
        .expect("subscription");
    let others = ops
        .add_subscription(&prod.id, "other.*", None)
        .await
        .expect("subscription");
    let mut events = Vec::new();
    for n in 0..2 {
        let input = EventInput {
            tenant: Some("acme".to_string()),
            topic: "order.created".to_string(),
            payload: format!(r#"{{"n":{n}}}"#).into(),
            ..EventInput::default()
        };
        events.push(ops.publish(input).await.expect("publish"));
    }
    let deliveries = ops
        .reads()
        .event_fanout(&events[0].event_id, 10)
        .await
        .expect("the first event's deliveries")
        .deliveries;
    Seeded {
        endpoint: prod.id,
        endpoint_to_delete: gone.id,
        subscription: orders.id,
        subscription_to_delete: others.id,
        event: events[0].event_id.clone(),
        event_to_expunge: events[1].event_id.clone(),
        delivery: deliveries
            .first()
            .map(|d| d.id.clone())
            .expect("a delivery of the first event"),
    }
}

/// The schemathesis configuration: the seeded ids as dictionaries the
/// fuzzer draws from most of the time (the rest stays random), each
/// operation deleting only what was kept for it.
fn schemathesis_config(seeded: &Seeded) -> String {
    let path_ids = [
        ("get_endpoint", &seeded.endpoint),
        ("update_endpoint", &seeded.endpoint),
        ("get_endpoint_breaker", &seeded.endpoint),
        ("set_endpoint_breaker", &seeded.endpoint),
        ("pause_endpoint", &seeded.endpoint),
        ("resume_endpoint", &seeded.endpoint),
        ("rotate_endpoint_secret", &seeded.endpoint),
        ("get_endpoint_secret", &seeded.endpoint),
        ("recover_endpoint", &seeded.endpoint),
        ("delete_endpoint", &seeded.endpoint_to_delete),
        ("get_subscription", &seeded.subscription),
        ("update_subscription", &seeded.subscription),
        ("delete_subscription", &seeded.subscription_to_delete),
        ("get_event", &seeded.event),
        ("expunge_event_payload", &seeded.event_to_expunge),
        ("get_delivery", &seeded.delivery),
        ("retry_delivery", &seeded.delivery),
    ];
    let tenant_ids = [("get_tenant", "acme"), ("delete_tenant", "doomed")];
    let mut toml = String::from("[dictionaries]\n");
    let all = path_ids
        .iter()
        .map(|(op, id)| (*op, id.as_str()))
        .chain(tenant_ids);
    for (operation, id) in all.clone() {
        toml.push_str(&format!("{operation} = {{ values = [\"{id}\"] }}\n"));
    }
    toml.push_str(&format!(
        "tenant = {{ values = [\"acme\"] }}\nendpoint = {{ values = [\"{}\"] }}\n\n",
        seeded.endpoint
    ));
    toml.push_str(
        "[parameters]\n\
         \"query.tenant\" = { dictionary = \"tenant\", probability = 0.5 }\n\
         \"query.endpoint\" = { dictionary = \"endpoint\", probability = 0.5 }\n\n",
    );
    let mut bind = |operation: &str, parameter: &str, dictionary: &str| {
        toml.push_str(&format!(
            "[[operations]]\ninclude-operation-id = \"{operation}\"\n\
             parameters = {{ \"{parameter}\" = {{ dictionary = \"{dictionary}\", probability = 0.8 }} }}\n\n"
        ));
    };
    for (operation, _) in all {
        bind(operation, "path.id", operation);
    }
    // Not for publishing: a tenant drawn into a broadcast would break the
    // rule that they never go together, and the fuzzer would blame us.
    bind("create_endpoint", "body.tenant", "tenant");
    bind("create_subscription", "body.endpoint", "endpoint");
    // Ids seen in answers are not reused outside the stateful phase: they
    // would let the fuzzer delete the seeded endpoint early and answer
    // 404 to the rest of the run.
    for phase in ["examples", "coverage", "fuzzing"] {
        toml.push_str(&format!(
            "[phases.{phase}.extra-data-sources]\nresponses = false\n\n"
        ));
    }
    toml
}

/// Runs schemathesis from `dir` (where it leaves its `.schemathesis` and
/// `.hypothesis` directories) against `api`.
async fn schemathesis(dir: &Path, api: &RunningApi, key: &str) -> Output {
    let config = dir.join("schemathesis.toml");
    let schema = format!("{}/v1/openapi.json", api.url());
    let authorization = format!("Authorization: Bearer {key}");
    tokio::process::Command::new("python3")
        .arg("-c")
        // The entry point the `schemathesis` script calls, so a user
        // install off PATH works too.
        .arg("import sys; from schemathesis.cli import schemathesis; sys.argv[0] = 'schemathesis'; sys.exit(schemathesis())")
        .arg("--config-file")
        .arg(&config)
        .args(["run", &schema, "--checks", "all", "-H", &authorization])
        .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED])
        .args(["--request-timeout", "30", "--no-color"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .await
        .expect("run python3")
}

/// The installed schemathesis version, or why there is none.
async fn installed_version() -> Result<String, String> {
    let output = tokio::process::Command::new("python3")
        .args(["-c", "import schemathesis; print(schemathesis.__version__)"])
        .output()
        .await
        .map_err(|e| format!("cannot run python3: {e}"))?;
    match output.status.success() {
        true => Ok(String::from_utf8_lossy(&output.stdout).trim().to_string()),
        false => Err(String::from_utf8_lossy(&output.stderr).trim().to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_contract_break() {
    let version = match installed_version().await {
        Ok(version) => version,
        Err(why) => panic!(
            "schemathesis is not installed ({why}): `bash .ci/run` installs it \
             (pip install schemathesis=={SCHEMATHESIS_VERSION})"
        ),
    };
    install_crypto();
    let db = TestDb::new(Backend::Sqlite);
    // The default network policy: the fuzzer's endpoint URLs may not
    // reach this host, and no dispatcher runs to try any of them.
    let mut config = Config::default();
    config.database.url = db.url.clone();
    let store = db.store_with(&config).await;
    let ops = Ops::new(
        store,
        &config,
        Actor {
            name: "fuzz-setup".to_string(),
            client_addr: None,
            source: Source::Cli,
        },
    );
    let seeded = seed(&ops).await;
    let (_, key) = ops
        .create_api_key("fuzzer", None, None)
        .await
        .expect("an admin key");
    let api = hookline::api::start(
        ops,
        &ApiOptions {
            listen: "127.0.0.1:0".parse().expect("address"),
            open_health_metrics: false,
            alive_within: config.dispatch.alive_within(),
        },
    )
    .await
    .expect("start the API");

    let dir = tempfile::tempdir().expect("a directory for schemathesis");
    std::fs::write(
        dir.path().join("schemathesis.toml"),
        schemathesis_config(&seeded),
    )
    .expect("write the schemathesis configuration");
    let output = schemathesis(dir.path(), &api, &key).await;
    api.stop().await.expect("stop the API");

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis {version} found contract breaks ({}); reproduce with the curl lines below\n\
         --- stdout\n{}\n--- stderr\n{}",
        output.status,
        stdout,
        String::from_utf8_lossy(&output.stderr),
    );
    // A pass means something only if every operation was tried.
    let selected = figure(&stdout, "Selected: ");
    assert!(
        selected.is_some() && selected == figure(&stdout, "Tested: "),
        "schemathesis did not test every operation it selected:\n{stdout}"
    );
}

/// The number after `label` in schemathesis's summary.
fn figure(summary: &str, label: &str) -> Option<u32> {
    let at = summary.find(label)? + label.len();
    let digits: String = summary[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}
