//! The `hookline` command line, run as the real binary against a real
//! database (SQLite and Postgres): the happy path of every command, human and
//! `--json` output, masked secrets, addressing by id or name, refusing a
//! database that does not exist, configuration errors, and `hookline sink`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{
    Backend, RunningDispatcher, TestDb, hookline_command, ok, stderr, stdout, test_config,
    wait_until,
};
use hmac::{Hmac, KeyInit, Mac};
use hookline::model::{DeliveryState, IdKind};
use hookline::sink::{SinkOptions, Verdict};
use hookline::store::{DeliveryFilter, Store};
use serde_json::Value;
use sha2::Sha256;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OTHER_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

// --- helpers ---------------------------------------------------------------

/// Parses command output as JSON, failing with the text when it is not.
#[track_caller]
fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// Runs a command expected to succeed with `--json` and parses its output.
#[track_caller]
fn ok_json(db: &TestDb, args: &[&str]) -> Value {
    let mut with_json = args.to_vec();
    with_json.push("--json");
    json(&ok(db.hookline(&with_json)))
}

/// Asserts that `delivery show ID --json` of an event prints its payload
/// byte for byte: the API's shape writes it as the raw JSON published
/// (whitespace around the value is not part of it, but is counted in
/// `payload_size`, and receivers get it).
#[track_caller]
fn assert_payload_shown(db: &TestDb, event: &str, payload: &str) {
    let printed = ok(db.hookline(&["delivery", "show", event, "--json"]));
    assert!(
        printed.contains(&format!("\"payload\": {},", payload.trim())),
        "payload {payload:?} not printed exactly in {printed}"
    );
    let shown = json(&printed);
    assert_eq!(shown["payload_size"], payload.len(), "{shown}");
    rfc3339(&shown, "created_at");
}

/// A JSON array of objects, as every `--json` listing prints.
#[track_caller]
fn objects(value: &Value) -> &Vec<Value> {
    let array = value
        .as_array()
        .unwrap_or_else(|| panic!("expected a JSON array, got {value}"));
    for item in array {
        assert!(
            item.is_object(),
            "expected objects in the array, got {item}"
        );
    }
    array
}

/// A string field of a JSON object.
#[track_caller]
fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key:?} is not a string in {value}"))
}

/// Asserts that `value[key]` is an RFC 3339 time and returns it.
#[track_caller]
fn rfc3339(value: &Value, key: &str) -> chrono::DateTime<chrono::FixedOffset> {
    let raw = text(value, key);
    chrono::DateTime::parse_from_rfc3339(raw)
        .unwrap_or_else(|e| panic!("{key} = {raw:?} is not RFC 3339: {e}"))
}

/// Asserts the command failed and returns its stderr.
#[track_caller]
fn fails(output: std::process::Output) -> String {
    assert!(
        !output.status.success(),
        "command should have failed:\nstdout: {}\nstderr: {}",
        stdout(&output),
        stderr(&output)
    );
    let err = stderr(&output);
    assert!(!err.contains("panicked"), "the binary panicked: {err}");
    err
}

/// Migrates the database and adds tenant `acme`; returns acme's id.
fn migrated_with_acme(db: &TestDb) -> String {
    ok(db.hookline(&["migrate"]));
    let tenant = ok_json(db, &["tenant", "add", "acme"]);
    text(&tenant, "id").to_string()
}

/// Adds endpoint `acme/prod` with [`SECRET`] at `url`; returns its id.
fn add_prod(db: &TestDb, url: &str) -> String {
    let endpoint = ok_json(
        db,
        &[
            "endpoint", "add", "--tenant", "acme", "--name", "prod", "--url", url, "--secret",
            SECRET,
        ],
    );
    text(&endpoint, "id").to_string()
}

/// `v1,<base64 HMAC-SHA256(key, "id.ts.body")>`, computed here independently
/// of hookline's own signing code.
fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = BASE64
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 secret");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A child process killed (SIGKILL) and reaped when the guard is dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port on 127.0.0.1")
}

// --- tenants ---------------------------------------------------------------

async fn tenant_commands(backend: Backend) {
    let db = TestDb::new(backend);

    let migrated = ok(db.hookline(&["migrate"]));
    assert!(migrated.contains("migrated"), "{migrated}");
    let again = ok_json(&db, &["migrate"]);
    assert!(
        again["schema_version"].as_i64().unwrap_or(0) >= 1,
        "{again}"
    );
    assert!(
        ok(db.hookline(&["migrate"])).contains("up to date"),
        "a second migrate says the database is up to date"
    );

    let human = ok(db.hookline(&["tenant", "add", "acme"]));
    assert!(human.contains("acme") && human.contains("ten_"), "{human}");
    let beta = ok_json(&db, &["tenant", "add", "beta"]);
    assert_eq!(text(&beta, "name"), "beta");
    assert!(text(&beta, "id").starts_with("ten_"), "{beta}");
    rfc3339(&beta, "created_at");
    ok(db.hookline(&["tenant", "add", "gamma"]));

    let table = ok(db.hookline(&["tenant", "list"]));
    assert!(table.contains("NAME"), "a table with a header: {table}");
    for name in ["acme", "beta", "gamma"] {
        assert!(table.contains(name), "{name} listed: {table}");
    }
    let listed = ok_json(&db, &["tenant", "list"]);
    let tenants = objects(&listed);
    assert_eq!(tenants.len(), 3, "{listed}");
    for tenant in tenants {
        rfc3339(tenant, "created_at");
        assert!(text(tenant, "id").starts_with("ten_"));
    }

    // Delete by id, by name, and with --json.
    let by_id = ok(db.hookline(&["tenant", "delete", text(&beta, "id")]));
    assert!(by_id.contains("deleted tenant beta"), "{by_id}");
    let by_name = ok_json(&db, &["tenant", "delete", "gamma"]);
    assert!(text(&by_name, "deleted").starts_with("ten_"), "{by_name}");
    assert_eq!(by_name["cancelled_deliveries"], 0);
    let left = ok_json(&db, &["tenant", "list"]);
    let names: Vec<&str> = objects(&left).iter().map(|t| text(t, "name")).collect();
    assert_eq!(names, ["acme"]);

    // A tenant is addressable by id as well as by name everywhere.
    let acme_id = text(&objects(&left)[0], "id").to_string();
    ok(db.hookline(&[
        "endpoint",
        "add",
        "--tenant",
        &acme_id,
        "--name",
        "prod",
        "--url",
        "https://example.com/hook",
    ]));
    for key in [acme_id.as_str(), "acme"] {
        let endpoints = ok_json(&db, &["endpoint", "list", "--tenant", key]);
        assert_eq!(objects(&endpoints).len(), 1, "endpoints of {key}");
        let subscriptions = ok_json(&db, &["subscription", "list", "--tenant", key]);
        assert_eq!(objects(&subscriptions).len(), 0);
        let deliveries = ok_json(&db, &["delivery", "list", "--tenant", key]);
        assert_eq!(objects(&deliveries).len(), 0);
    }
    let empty = ok(db.hookline(&["delivery", "list", "--tenant", "acme"]));
    assert!(empty.contains("no deliveries"), "{empty}");

    // A bare endpoint name is refused once two tenants use it; TENANT/NAME
    // and the id still address each one.
    ok(db.hookline(&["tenant", "add", "beta"]));
    ok(db.hookline(&[
        "endpoint",
        "add",
        "--tenant",
        "beta",
        "--name",
        "prod",
        "--url",
        "https://beta.example.com/hook",
    ]));
    let err = fails(db.hookline(&["endpoint", "show", "prod"]));
    assert!(
        err.contains("ambiguous") && err.contains("TENANT/prod"),
        "{err}"
    );
    let beta_prod = ok_json(&db, &["endpoint", "show", "beta/prod"]);
    assert_eq!(text(&beta_prod, "url"), "https://beta.example.com/hook");
    let by_id = ok_json(&db, &["endpoint", "show", text(&beta_prod, "id")]);
    assert_eq!(by_id["tenant_name"], "beta");
}

// --- endpoints -------------------------------------------------------------

async fn endpoint_commands(backend: Backend) {
    let db = TestDb::new(backend);
    migrated_with_acme(&db);

    // add: the human output masks the secret given.
    let human = ok(db.hookline(&[
        "endpoint",
        "add",
        "--tenant",
        "acme",
        "--name",
        "prod",
        "--url",
        "https://example.com/hook",
        "--secret",
        SECRET,
        "--timeout",
        "5s",
        "--max-in-flight",
        "3",
        "--header",
        "X-Team: payments",
        "--description",
        "production receiver",
    ]));
    assert!(human.contains("prod") && human.contains("ep_"), "{human}");
    assert!(
        human.contains("whsec_"),
        "a masked secret is shown: {human}"
    );
    assert!(
        !human.contains(SECRET),
        "endpoint add leaked the secret: {human}"
    );
    assert!(human.contains("x-team: payments"), "{human}");

    // add --json masks too; --show-secret reveals a generated secret.
    let staging = ok_json(
        &db,
        &[
            "endpoint",
            "add",
            "--tenant",
            "acme",
            "--name",
            "staging",
            "--url",
            "http://127.0.0.1:9/hook",
        ],
    );
    let masked = text(&staging, "secret");
    assert!(
        masked.starts_with("whsec_") && masked.contains('…'),
        "{staging}"
    );
    rfc3339(&staging, "created_at");
    let shown = ok_json(&db, &["endpoint", "show", "staging", "--show-secret"]);
    let generated = text(&shown, "secret");
    let key = BASE64
        .decode(generated.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("a generated secret is base64");
    assert_eq!(key.len(), 32, "a generated secret has 32 random bytes");
    let (head, tail) = masked.split_once('…').expect("a mask with an ellipsis");
    assert!(
        generated.starts_with(head) && generated.ends_with(tail),
        "the mask {masked} shows the ends of {generated}"
    );
    let revealed_on_add = ok_json(
        &db,
        &[
            "endpoint",
            "add",
            "--tenant",
            "acme",
            "--name",
            "canary",
            "--url",
            "http://127.0.0.1:9/canary",
            "--secret",
            OTHER_SECRET,
            "--show-secret",
        ],
    );
    assert_eq!(text(&revealed_on_add, "secret"), OTHER_SECRET);

    // list: human table without secrets; JSON array of objects, masked.
    let table = ok(db.hookline(&["endpoint", "list"]));
    for needle in [
        "NAME",
        "prod",
        "staging",
        "canary",
        "https://example.com/hook",
    ] {
        assert!(table.contains(needle), "{needle} in {table}");
    }
    assert!(
        !table.contains(SECRET) && !table.contains(generated),
        "{table}"
    );
    let listed = ok_json(&db, &["endpoint", "list"]);
    let endpoints = objects(&listed);
    assert_eq!(endpoints.len(), 3);
    for endpoint in endpoints {
        let secret = text(endpoint, "secret");
        assert!(
            secret.starts_with("whsec_") && secret.contains('…'),
            "{endpoint}"
        );
        rfc3339(endpoint, "created_at");
    }
    let listed_text = listed.to_string();
    assert!(!listed_text.contains(SECRET) && !listed_text.contains(generated));
    let revealed = ok_json(&db, &["endpoint", "list", "--show-secret"]);
    let prod = objects(&revealed)
        .iter()
        .find(|e| e["name"] == "prod")
        .expect("prod listed");
    assert_eq!(text(prod, "secret"), SECRET);

    // show: by TENANT/NAME, by unique name and by id give the same endpoint.
    let by_path = ok_json(&db, &["endpoint", "show", "acme/prod"]);
    let id = text(&by_path, "id").to_string();
    assert!(id.starts_with("ep_"));
    for key in ["prod", id.as_str()] {
        let again = ok_json(&db, &["endpoint", "show", key]);
        assert_eq!(text(&again, "id"), id, "endpoint show {key}");
    }
    assert_eq!(by_path["timeout_ms"], 5000);
    assert_eq!(by_path["max_in_flight"], 3);
    assert_eq!(by_path["description"], "production receiver");
    rfc3339(&by_path, "created_at");
    rfc3339(&by_path, "updated_at");
    assert!(!by_path.to_string().contains(SECRET), "{by_path}");
    let detail = ok(db.hookline(&["endpoint", "show", "acme/prod"]));
    assert!(detail.contains(&id) && detail.contains("https://example.com/hook"));
    assert!(
        !detail.contains(SECRET),
        "endpoint show leaked the secret: {detail}"
    );
    let detail = ok(db.hookline(&["endpoint", "show", "acme/prod", "--show-secret"]));
    assert!(detail.contains(SECRET), "{detail}");

    // update by TENANT/NAME.
    let updated = ok_json(
        &db,
        &[
            "endpoint",
            "update",
            "acme/prod",
            "--url",
            "https://example.com/v2",
            "--timeout",
            "7s",
            "--header",
            "X-Env: prod",
        ],
    );
    assert_eq!(text(&updated, "url"), "https://example.com/v2");
    assert_eq!(updated["timeout_ms"], 7000);
    assert_eq!(updated["headers"], serde_json::json!({ "x-env": "prod" }));
    let human = ok(db.hookline(&["endpoint", "update", &id, "--default-timeout"]));
    assert!(human.contains("https://example.com/v2"), "{human}");
    assert!(!human.contains(SECRET));
    assert_eq!(
        ok_json(&db, &["endpoint", "show", "prod"])["timeout_ms"],
        Value::Null
    );

    // pause / resume.
    let paused = ok(db.hookline(&["endpoint", "pause", "prod", "--reason", "maintenance"]));
    assert!(paused.contains("paused endpoint prod"), "{paused}");
    let again = ok(db.hookline(&["endpoint", "pause", "acme/prod"]));
    assert!(again.contains("already paused"), "{again}");
    let shown = ok_json(&db, &["endpoint", "show", "prod"]);
    assert_eq!(text(&shown, "state"), "paused");
    assert_eq!(text(&shown, "state_reason"), "maintenance");
    rfc3339(&shown, "state_changed_at");
    let resumed = ok_json(&db, &["endpoint", "resume", &id]);
    assert_eq!(text(&resumed, "state"), "active");
    assert!(!resumed.to_string().contains(SECRET), "{resumed}");
    let human = ok(db.hookline(&["endpoint", "pause", "prod"]));
    assert!(human.contains("paused"));
    let human = ok(db.hookline(&["endpoint", "resume", "prod"]));
    assert!(
        human.contains("active") && human.contains("was paused"),
        "{human}"
    );

    // --until: kept and shown (JSON and table), cleared by a resume.
    let before = hookline::model::now_millis();
    let paused = ok_json(
        &db,
        &[
            "endpoint", "pause", "prod", "--reason", "deploy", "--until", "30m",
        ],
    );
    assert_eq!(text(&paused, "state"), "paused");
    let until = rfc3339(&paused, "paused_until").timestamp_millis();
    let ahead = until - before;
    assert!(
        (29 * 60_000..=31 * 60_000).contains(&ahead),
        "30m from now: {ahead} ms"
    );
    let shown = ok_json(&db, &["endpoint", "show", "prod"]);
    assert_eq!(shown["paused_until"], paused["paused_until"]);
    assert_eq!(text(&shown, "state_reason"), "deploy");
    let human = ok(db.hookline(&["endpoint", "show", "prod"]));
    assert!(human.contains("paused_until"), "{human}");
    let listed = ok(db.hookline(&["endpoint", "list"]));
    assert!(listed.contains("paused until "), "{listed}");
    let resumed = ok_json(&db, &["endpoint", "resume", "prod"]);
    assert_eq!(resumed["paused_until"], Value::Null, "{resumed}");
    let human = ok(db.hookline(&["endpoint", "pause", "prod", "--until", "2h"]));
    assert!(
        human.contains("until ") && human.contains("(in 2h)"),
        "{human}"
    );
    ok(db.hookline(&["endpoint", "resume", "prod"]));

    // rotate-secret: masked output; the old secret stays for the grace period.
    let rotated = ok(db.hookline(&[
        "endpoint",
        "rotate-secret",
        "prod",
        "--secret",
        OTHER_SECRET,
    ]));
    assert!(
        !rotated.contains(OTHER_SECRET) && !rotated.contains(SECRET),
        "{rotated}"
    );
    assert!(rotated.contains("previous_secret_expires_at"), "{rotated}");
    let shown = ok_json(&db, &["endpoint", "show", "acme/prod", "--show-secret"]);
    assert_eq!(text(&shown, "secret"), OTHER_SECRET);
    let human = ok(db.hookline(&["endpoint", "show", "acme/prod", "--show-secret"]));
    assert!(
        human.contains(SECRET),
        "the previous secret, shown: {human}"
    );
    let expires = rfc3339(&shown, "previous_secret_expires_at");
    let ahead =
        expires.to_utc() - chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
    assert!(
        ahead > chrono::TimeDelta::hours(23) && ahead <= chrono::TimeDelta::hours(24),
        "the old secret keeps signing for 24 h, expires in {ahead}"
    );
    let masked = ok_json(&db, &["endpoint", "show", "acme/prod"]);
    assert!(!masked.to_string().contains(SECRET) && !masked.to_string().contains(OTHER_SECRET));
    let generated_rotation = ok_json(&db, &["endpoint", "rotate-secret", "staging"]);
    assert!(text(&generated_rotation, "secret").contains('…'));

    // delete by name and by id.
    let deleted = ok(db.hookline(&["endpoint", "delete", "acme/canary"]));
    assert!(deleted.contains("deleted endpoint canary"), "{deleted}");
    let deleted = ok_json(&db, &["endpoint", "delete", &id]);
    assert_eq!(text(&deleted, "deleted"), id);
    let left = ok_json(&db, &["endpoint", "list"]);
    let names: Vec<&str> = objects(&left).iter().map(|e| text(e, "name")).collect();
    assert_eq!(names, ["staging"]);
}

// --- subscriptions ---------------------------------------------------------

async fn subscription_commands(backend: Backend) {
    let db = TestDb::new(backend);
    migrated_with_acme(&db);
    let endpoint_id = add_prod(&db, "https://example.com/hook");

    let human = ok(db.hookline(&[
        "subscription",
        "add",
        "--endpoint",
        "acme/prod",
        "--topic",
        "resident.*",
        "--description",
        "residents",
    ]));
    assert!(
        human.contains("sub_") && human.contains("resident.*"),
        "{human}"
    );
    let by_id = ok_json(
        &db,
        &[
            "subscription",
            "add",
            "--endpoint",
            &endpoint_id,
            "--topic",
            "invoice.**",
        ],
    );
    let sub_id = text(&by_id, "id").to_string();
    assert!(sub_id.starts_with("sub_"));
    assert_eq!(text(&by_id, "endpoint_id"), endpoint_id);
    ok(db.hookline(&["subscription", "add", "--endpoint", "prod", "--topic", "*"]));

    let table = ok(db.hookline(&["subscription", "list"]));
    for needle in ["TOPIC", "resident.*", "invoice.**", "prod"] {
        assert!(table.contains(needle), "{needle} in {table}");
    }
    for filter in [
        ["--endpoint", "prod"],
        ["--endpoint", "acme/prod"],
        ["--endpoint", endpoint_id.as_str()],
        ["--tenant", "acme"],
    ] {
        let listed = ok_json(&db, &["subscription", "list", filter[0], filter[1]]);
        assert_eq!(objects(&listed).len(), 3, "subscription list {filter:?}");
    }

    let updated = ok_json(
        &db,
        &[
            "subscription",
            "update",
            &sub_id,
            "--topic",
            "invoice.paid",
            "--description",
            "paid invoices",
        ],
    );
    assert_eq!(text(&updated, "topic"), "invoice.paid");
    assert_eq!(text(&updated, "description"), "paid invoices");
    let human = ok(db.hookline(&["subscription", "update", &sub_id, "--topic", "invoice.*"]));
    assert!(human.contains("invoice.*"), "{human}");

    let deleted = ok(db.hookline(&["subscription", "delete", &sub_id]));
    assert!(deleted.contains("deleted subscription") && deleted.contains(&sub_id));
    let listed = ok_json(&db, &["subscription", "list"]);
    let topics: Vec<&str> = objects(&listed).iter().map(|s| text(s, "topic")).collect();
    assert_eq!(topics.len(), 2);
    assert!(!topics.contains(&"invoice.*"), "{topics:?}");

    // The endpoint detail lists its patterns.
    let shown = ok(db.hookline(&["endpoint", "show", "prod"]));
    let patterns = shown.lines().find(|l| l.starts_with("subscriptions:"));
    let patterns = patterns.unwrap_or_else(|| panic!("no subscriptions line in {shown}"));
    assert_eq!(patterns.matches('"').count(), 4, "two patterns: {patterns}");
}

// --- publish and deliveries ------------------------------------------------

async fn publish_and_inspect(backend: Backend) {
    let db = TestDb::new(backend);
    migrated_with_acme(&db);
    ok(db.hookline(&["tenant", "add", "beta"]));
    add_prod(&db, "http://127.0.0.1:9/acme");
    ok(db.hookline(&[
        "endpoint",
        "add",
        "--tenant",
        "beta",
        "--name",
        "main",
        "--url",
        "http://127.0.0.1:9/beta",
    ]));
    for endpoint in ["acme/prod", "beta/main"] {
        ok(db.hookline(&[
            "subscription",
            "add",
            "--endpoint",
            endpoint,
            "--topic",
            "resident.*",
        ]));
    }

    // JSON argument, human output.
    let human = ok(db.hookline(&[
        "publish",
        "--tenant",
        "acme",
        "--topic",
        "resident.update",
        "--payload",
        r#"{"id": 1}"#,
    ]));
    assert!(
        human.contains("published msg_") && human.contains("1 deliveries"),
        "{human}"
    );

    // --json output; then the event is shown with its payload byte for byte.
    let payload = r#"{ "b":1,  "a":1.0e2, "n":123456789012345678901234567890 }"#;
    let published = ok_json(
        &db,
        &[
            "publish",
            "--tenant",
            "acme",
            "--topic",
            "resident.update",
            "--payload",
            payload,
        ],
    );
    let event_id = text(&published, "id").to_string();
    assert!(event_id.starts_with("msg_"), "{published}");
    assert_eq!(published["deliveries"], 1);
    assert_eq!(published["duplicate"], false);
    assert_payload_shown(&db, &event_id, payload);

    // @FILE, byte for byte (a trailing newline included).
    let file = db.path("payload.json");
    let file_payload = "{\"from\":\"file\",\t\"e\":\"\\u00e9\"}\n";
    std::fs::write(&file, file_payload).expect("write the payload file");
    let from_file = ok_json(
        &db,
        &[
            "publish",
            "--tenant",
            "beta",
            "--topic",
            "resident.create",
            "--payload",
            &format!("@{}", file.display()),
        ],
    );
    let file_event = text(&from_file, "id").to_string();
    assert_payload_shown(&db, &file_event, file_payload);

    // - reads stdin.
    let stdin_payload = r#"["from", "stdin"]"#;
    let mut child = hookline_command(
        &db.url,
        &[
            "publish",
            "--tenant",
            "acme",
            "--topic",
            "resident.delete",
            "--payload",
            "-",
            "--json",
        ],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn publish");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin_payload.as_bytes())
        .expect("write stdin");
    let from_stdin = json(&ok(child.wait_with_output().expect("publish finishes")));
    let stdin_event = text(&from_stdin, "id").to_string();
    assert_payload_shown(&db, &stdin_event, stdin_payload);

    // --broadcast reaches both tenants.
    let broadcast = ok_json(
        &db,
        &[
            "publish",
            "--broadcast",
            "--topic",
            "resident.update",
            "--payload",
            "{}",
        ],
    );
    assert_eq!(broadcast["deliveries"], 2, "{broadcast}");
    let broadcast_id = text(&broadcast, "id").to_string();

    // An idempotency key: the repeat creates nothing and names the original.
    let args = [
        "publish",
        "--tenant",
        "acme",
        "--topic",
        "resident.update",
        "--payload",
        "{\"k\":1}",
        "--idempotency-key",
        "order-42",
    ];
    let first = ok_json(&db, &args);
    let repeat = ok_json(&db, &args);
    assert_eq!(repeat["id"], first["id"]);
    assert_eq!(repeat["duplicate"], true);
    let human = ok(db.hookline(&args));
    assert!(human.contains("duplicate"), "{human}");
    // The key with another payload: refused (exit 2), naming the original.
    let mut other = args;
    other[6] = "{\"k\":2}";
    let output = db.hookline(&other);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains("was first used for a different request"),
        "{err}"
    );
    assert!(err.contains(text(&first, "id")), "{err}");

    // delivery list: human and JSON, then each filter.
    let table = ok(db.hookline(&["delivery", "list"]));
    for needle in [
        "STATE",
        "dlv_",
        "pending",
        "resident.update",
        "prod",
        "main",
    ] {
        assert!(table.contains(needle), "{needle} in {table}");
    }
    let all = ok_json(&db, &["delivery", "list"]);
    let deliveries = objects(&all);
    // acme: 1 + 1 + 1 (stdin) + 1 (broadcast) + 1 (idempotent); beta: 1 (file) + 1 (broadcast)
    assert_eq!(deliveries.len(), 7, "{all}");
    for delivery in deliveries {
        rfc3339(delivery, "created_at");
        rfc3339(delivery, "next_attempt_at");
        assert_eq!(text(delivery, "state"), "pending");
    }
    let count = |filter: &[&str]| -> usize {
        let mut args = vec!["delivery", "list"];
        args.extend_from_slice(filter);
        objects(&ok_json(&db, &args)).len()
    };
    assert_eq!(count(&["--tenant", "beta"]), 2);
    assert_eq!(count(&["--tenant", "acme"]), 5);
    assert_eq!(count(&["--endpoint", "acme/prod"]), 5);
    assert_eq!(count(&["--endpoint", "main"]), 2);
    assert_eq!(count(&["--topic", "resident.create"]), 1);
    assert_eq!(count(&["--event", &broadcast_id]), 2);
    assert_eq!(count(&["--state", "pending"]), 7);
    assert_eq!(count(&["--state", "dead", "--state", "delivered"]), 0);
    assert_eq!(count(&["--since", "1h"]), 7);
    assert_eq!(
        count(&["--tenant", "acme", "--topic", "resident.delete"]),
        1
    );

    // Paging: --limit, then the printed cursor continues.
    let page = ok(db.hookline(&["delivery", "list", "--limit", "4"]));
    let cursor = page
        .lines()
        .find_map(|line| line.strip_prefix("next page: --cursor "))
        .unwrap_or_else(|| panic!("a full page prints the next cursor: {page}"))
        .trim()
        .to_string();
    let rest = ok_json(
        &db,
        &["delivery", "list", "--limit", "4", "--cursor", &cursor],
    );
    assert_eq!(objects(&rest).len(), 3);

    // delivery show dlv_…: human with payload and attempts, JSON with both.
    let dlv = deliveries
        .iter()
        .find(|d| d["event_id"] == event_id.as_str())
        .expect("the --json event's delivery");
    let dlv_id = text(dlv, "id");
    let human = ok(db.hookline(&["delivery", "show", dlv_id]));
    for needle in [
        dlv_id,
        event_id.as_str(),
        "payload:",
        "attempts:",
        "none yet",
    ] {
        assert!(human.contains(needle), "{needle} in {human}");
    }
    // The API's shape: the delivery, its event (payload as JSON) and attempts.
    let detail = ok_json(&db, &["delivery", "show", dlv_id]);
    let published: Value = serde_json::from_str(payload).expect("the payload is JSON");
    assert_eq!(detail["event"]["payload"], published);
    assert_eq!(detail["attempts"], serde_json::json!([]));
    assert_eq!(text(&detail["delivery"], "endpoint_name"), "prod");
    rfc3339(&detail["delivery"], "created_at");
    rfc3339(&detail["delivery"], "updated_at");

    // delivery show msg_…: the event and its deliveries.
    let human = ok(db.hookline(&["delivery", "show", &broadcast_id]));
    assert!(
        human.contains(&broadcast_id) && human.contains("(broadcast)"),
        "{human}"
    );
    assert_eq!(human.matches("dlv_").count(), 2, "{human}");
    let event = ok_json(&db, &["delivery", "show", &broadcast_id]);
    assert_eq!(objects(&event["deliveries"]).len(), 2);
    assert_eq!(event["tenant_id"], Value::Null);
    assert!(
        objects(&event["deliveries"])
            .iter()
            .all(|d| d["held"] == Value::Null),
        "nothing holds work of active endpoints: {event}"
    );

    // A paused endpoint's due work says what holds it; others' does not.
    ok(db.hookline(&["endpoint", "pause", "main"]));
    let listed = ok_json(&db, &["delivery", "list", "--endpoint", "main"]);
    for delivery in objects(&listed) {
        assert_eq!(text(delivery, "held"), "endpoint_paused", "{listed}");
    }
    let prod = ok_json(&db, &["delivery", "list", "--endpoint", "acme/prod"]);
    assert!(objects(&prod).iter().all(|d| d["held"] == Value::Null));
    let table = ok(db.hookline(&["delivery", "list", "--endpoint", "main"]));
    assert!(table.contains("pending · held: endpoint paused"), "{table}");
    let held_id = text(&objects(&listed)[0], "id").to_string();
    let human = ok(db.hookline(&["delivery", "show", &held_id]));
    assert!(
        human.contains("held: endpoint paused: nothing is sent until it is resumed"),
        "{human}"
    );
}

// --- retry, dispatchers, audit ---------------------------------------------

async fn retry_dispatchers_and_audit(backend: Backend) {
    let db = TestDb::new(backend);
    migrated_with_acme(&db);
    // A receiver that always fails, so deliveries go dead on the short schedule.
    let failing = common::failing_sink(500).await;
    let added = ok_json(
        &db,
        &[
            "endpoint",
            "add",
            "--tenant",
            "acme",
            "--name",
            "prod",
            "--url",
            &failing.url(),
        ],
    );
    let endpoint_id = text(&added, "id").to_string();
    ok(db.hookline(&[
        "subscription",
        "add",
        "--endpoint",
        "prod",
        "--topic",
        "order.*",
    ]));
    let mut events = Vec::new();
    for n in 0..3 {
        let published = ok_json(
            &db,
            &[
                "publish",
                "--tenant",
                "acme",
                "--topic",
                "order.created",
                "--payload",
                &format!("{{\"n\":{n}}}"),
            ],
        );
        events.push(text(&published, "id").to_string());
    }

    let store = db.store().await;
    let config = test_config(&db.url);
    let dispatcher = RunningDispatcher::start(&store, &config);
    let dispatcher_id = dispatcher.id.clone();
    let all_dead = wait_until(Duration::from_secs(20), || async {
        stored_in_state(&store, DeliveryState::Dead).await == 3
    })
    .await;
    assert!(all_dead, "every delivery dead after the last attempt");

    // dispatchers: the running one is alive, then stopped.
    let alive = ok(db.hookline(&["dispatchers"]));
    assert!(
        alive.contains(&dispatcher_id) && alive.contains("alive"),
        "{alive}"
    );
    dispatcher.stop().await;
    let listed = ok_json(&db, &["dispatchers"]);
    let dispatchers = objects(&listed);
    assert_eq!(dispatchers.len(), 1);
    assert_eq!(text(&dispatchers[0], "id"), dispatcher_id);
    assert_eq!(text(&dispatchers[0], "state"), "stopped");
    assert!(
        dispatchers[0]["deliveries_per_sec"].is_number(),
        "a rate is a number: {}",
        dispatchers[0]
    );
    rfc3339(&dispatchers[0], "started_at");
    rfc3339(&dispatchers[0], "last_seen_at");

    let dead = ok_json(&db, &["delivery", "list", "--state", "dead"]);
    let dead_ids: Vec<String> = objects(&dead)
        .iter()
        .map(|d| text(d, "id").to_string())
        .collect();
    let detail = ok_json(&db, &["delivery", "show", &dead_ids[0]]);
    let attempts = objects(&detail["attempts"]);
    assert_eq!(
        attempts.len(),
        3,
        "three attempts on the test schedule: {detail}"
    );
    for attempt in attempts {
        assert_eq!(attempt["status_code"], 500, "{attempt}");
        rfc3339(attempt, "started_at");
    }
    let human = ok(db.hookline(&["delivery", "show", &dead_ids[0]]));
    assert!(human.contains("#3") && human.contains("500"), "{human}");

    // Bulk dry run: counts, changes nothing.
    let dry = ok(db.hookline(&[
        "retry",
        "--endpoint",
        "acme/prod",
        "--state",
        "dead",
        "--since",
        "2h",
        "--dry-run",
    ]));
    assert!(dry.contains("would retry 3 deliveries"), "{dry}");
    let dry = ok_json(
        &db,
        &[
            "retry",
            "--endpoint",
            &endpoint_id,
            "--state",
            "dead",
            "--since",
            "2h",
            "--dry-run",
        ],
    );
    assert_eq!(dry["count"], 3);
    assert_eq!(dry["dry_run"], true);
    // The preview: the oldest and newest of the three, and nothing held.
    let listed = ok_json(&db, &["delivery", "list", "--state", "dead"]);
    let dead = objects(&listed);
    // By time, not by text: "…39.1Z" is later than "…39.05Z".
    let mut created: Vec<String> = dead
        .iter()
        .map(|d| d["created_at"].as_str().unwrap_or_default().to_string())
        .collect();
    created.sort_by_key(|at| hookline::model::parse_rfc3339(at));
    assert_eq!(
        dry["oldest"].as_str(),
        created.first().map(String::as_str),
        "{dry}"
    );
    assert_eq!(
        dry["newest"].as_str(),
        created.last().map(String::as_str),
        "{dry}"
    );
    assert_eq!(
        (dry["held"].as_u64(), dry["held_reason"].is_null()),
        (Some(0), true),
        "{dry}"
    );
    assert_eq!(
        objects(&ok_json(&db, &["delivery", "list", "--state", "dead"])).len(),
        3,
        "a dry run revives nothing"
    );

    // Retry one by id, then the rest in bulk.
    let retried = ok(db.hookline(&["retry", &dead_ids[0]]));
    assert!(retried.contains("retried 1 deliveries"), "{retried}");
    let revived = ok_json(&db, &["delivery", "show", &dead_ids[0]]);
    assert_eq!(text(&revived["delivery"], "state"), "pending");
    assert_eq!(revived["attempts"].as_array().map(Vec::len), Some(3));
    let bulk = ok_json(&db, &["retry", "--endpoint", "prod", "--since", "2h"]);
    assert_eq!(bulk["count"], 2, "{bulk}");
    assert_eq!(count_state(&db, "pending"), 3);

    // Point the endpoint at a healthy receiver that checks the secret the
    // CLI reveals; the revived deliveries succeed with valid signatures.
    let shown = ok_json(&db, &["endpoint", "show", "prod", "--show-secret"]);
    let secret = text(&shown, "secret").to_string();
    let healthy = hookline::sink::start(SinkOptions {
        secrets: vec![hookline::sign::Secret::parse(&secret).expect("a valid secret")],
        keep: true,
        ..SinkOptions::default()
    })
    .await
    .expect("start the healthy sink");
    ok(db.hookline(&["endpoint", "update", "prod", "--url", &healthy.url()]));
    let dispatcher = RunningDispatcher::start(&store, &config);
    let delivered = wait_until(Duration::from_secs(20), || async {
        stored_in_state(&store, DeliveryState::Delivered).await == 3
    })
    .await;
    dispatcher.stop().await;
    assert!(
        delivered,
        "revived deliveries succeed; healthy sink {}, failing sink {}, deliveries:\n{}",
        healthy.stats(),
        failing.stats(),
        ok(db.hookline(&["delivery", "list"]))
    );
    let stats = healthy.stats();
    assert_eq!((stats.accepted, stats.bad_signature), (3, 0), "{stats}");
    let mut seen: Vec<String> = healthy
        .requests()
        .iter()
        .filter(|r| r.verdict == Verdict::Ok)
        .filter_map(|r| r.header("webhook-id").map(str::to_string))
        .collect();
    seen.sort();
    events.sort();
    assert_eq!(
        seen, events,
        "each event arrived once, signed with the revealed secret"
    );
    let detail = ok_json(&db, &["delivery", "show", &dead_ids[0]]);
    let statuses: Vec<&Value> = objects(&detail["attempts"])
        .iter()
        .map(|a| &a["status_code"])
        .collect();
    assert_eq!(
        statuses.len(),
        4,
        "earlier attempts stay in the history: {detail}"
    );
    assert!(statuses.contains(&&Value::from(200)), "{detail}");

    // audit: every operator action, newest first, as the test operator.
    let table = ok(db.hookline(&["audit"]));
    for needle in [
        "ACTION",
        "test-operator",
        "cli",
        "endpoint.create",
        &dead_ids[0],
    ] {
        assert!(table.contains(needle), "{needle} in {table}");
    }
    let audit = ok_json(&db, &["audit"]);
    let entries = objects(&audit);
    assert!(entries.len() >= 5, "{audit}");
    for entry in entries {
        rfc3339(entry, "at");
        assert_eq!(text(entry, "actor"), "test-operator");
        assert_eq!(text(entry, "source"), "cli");
    }
    let times: Vec<chrono::DateTime<chrono::FixedOffset>> =
        entries.iter().map(|e| rfc3339(e, "at")).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let actions: Vec<&str> = entries.iter().map(|e| text(e, "action")).collect();
    assert_eq!(actions.last(), Some(&"tenant.create"), "{actions:?}");
    assert!(
        actions.iter().filter(|a| a.contains("retry")).count() >= 2,
        "manual and bulk retries are audited (the dry run may be too): {actions:?}"
    );
    let limited = ok_json(&db, &["audit", "--limit", "2"]);
    assert_eq!(objects(&limited).len(), 2);
}

/// The sorted ids of `delivery list --json` with `args`, and the state words it shows.
fn listed(db: &TestDb, args: &[&str]) -> (Vec<String>, Vec<String>) {
    let mut all = vec!["delivery", "list"];
    all.extend_from_slice(args);
    let list = ok_json(db, &all);
    let mut ids: Vec<String> = objects(&list)
        .iter()
        .map(|d| text(d, "id").to_string())
        .collect();
    ids.sort();
    let mut states: Vec<String> = objects(&list)
        .iter()
        .map(|d| text(d, "state").to_string())
        .collect();
    states.dedup();
    (ids, states)
}

async fn state_words_and_their_aliases(backend: Backend) {
    let db = TestDb::new(backend);
    migrated_with_acme(&db);
    let healthy = hookline::sink::start(SinkOptions::default())
        .await
        .expect("start the healthy sink");
    let failing = common::failing_sink(500).await;
    for (name, url) in [("good", healthy.url()), ("bad", failing.url())] {
        ok(db.hookline(&[
            "endpoint", "add", "--tenant", "acme", "--name", name, "--url", &url,
        ]));
        ok(db.hookline(&["subscription", "add", "--endpoint", name, "--topic", "*"]));
    }
    for n in 0..2 {
        ok(db.hookline(&[
            "publish",
            "--tenant",
            "acme",
            "--topic",
            "order.created",
            "--payload",
            &format!("{{\"n\":{n}}}"),
        ]));
    }
    // A failed attempt waits an hour for the next: it stays `retrying`.
    let store = db.store().await;
    let mut config = test_config(&db.url);
    config.dispatch.retry_schedule = vec![Duration::ZERO, Duration::from_secs(3600)];
    let dispatcher = RunningDispatcher::start(&store, &config);
    let settled = wait_until(Duration::from_secs(20), || async {
        stored_in_state(&store, DeliveryState::Retrying).await == 2
            && stored_in_state(&store, DeliveryState::Delivered).await == 2
    })
    .await;
    dispatcher.stop().await;
    assert!(settled, "two retrying and two delivered");

    for (word, alias) in [("retrying", "scheduled"), ("delivered", "succeeded")] {
        let (ids, states) = listed(&db, &["--state", word]);
        let (alias_ids, alias_states) = listed(&db, &["--state", alias]);
        assert_eq!(ids.len(), 2, "{word}");
        assert_eq!(ids, alias_ids, "--state {alias} is --state {word}");
        assert_eq!(states, [word], "--json says {word}");
        assert_eq!(alias_states, [word], "--state {alias} rows say {word}");
        let shown = ok_json(&db, &["delivery", "show", &ids[0]]);
        assert_eq!(text(&shown["delivery"], "state"), word);
    }
    let (mixed, _) = listed(&db, &["--state", "scheduled", "--state", "delivered"]);
    assert_eq!(mixed.len(), 4, "a word and an alias together");

    // The table speaks the same words.
    let table = ok(db.hookline(&["delivery", "list"]));
    assert!(
        table.contains("retrying") && table.contains("delivered"),
        "{table}"
    );
    assert!(
        !table.contains("scheduled") && !table.contains("succeeded"),
        "{table}"
    );

    // An unknown word is refused with the valid ones on one line of 80 columns.
    let err = fails(db.hookline(&["delivery", "list", "--state", "done"]));
    let line = "\"done\" is not a state: pending, in_flight, retrying, delivered, dead, cancelled";
    assert!(err.contains(line), "{err}");
    assert!(line.chars().count() <= 80);

    // A bulk retry takes the alias too.
    let dry = ok_json(
        &db,
        &[
            "retry",
            "--endpoint",
            "bad",
            "--state",
            "scheduled",
            "--since",
            "2h",
            "--dry-run",
        ],
    );
    assert_eq!(dry["count"], 2, "{dry}");
    let refused = fails(db.hookline(&[
        "retry",
        "--endpoint",
        "bad",
        "--state",
        "pending",
        "--since",
        "2h",
    ]));
    assert!(
        refused.contains("only dead, retrying, delivered"),
        "{refused}"
    );
}

fn count_state(db: &TestDb, state: &str) -> usize {
    objects(&ok_json(db, &["delivery", "list", "--state", state])).len()
}

/// How many deliveries are in `state`, asked of the store (no child process,
/// so it is cheap to poll from async code).
async fn stored_in_state(store: &Store, state: DeliveryState) -> usize {
    let filter = DeliveryFilter {
        states: vec![state],
        ..DeliveryFilter::default()
    };
    store
        .list_deliveries(&filter, None, 10_000)
        .await
        .map(|page| page.items.len())
        .unwrap_or(0)
}

// --- which database --------------------------------------------------------

/// Commands other than migrate/dispatch/serve refuse a database that does not
/// exist (or is not migrated), say where they looked, and create nothing.
async fn missing_database_is_refused(backend: Backend) {
    let db = TestDb::new(backend);
    let (url, looked_at) = match backend {
        Backend::Sqlite => {
            let path = db.path("typo.db");
            (
                format!("sqlite://{}", path.display()),
                path.display().to_string(),
            )
        }
        // A fresh Postgres database exists but was never migrated.
        Backend::Postgres => {
            let location = db.url.rsplit('/').next().expect("a db name").to_string();
            (db.url.clone(), location)
        }
    };
    // (A SQLite file that does not exist cannot be dumped; its absence is checked.)
    let before = match backend {
        Backend::Sqlite => String::new(),
        Backend::Postgres => db.dump().await,
    };
    let commands: &[&[&str]] = &[
        &["tenant", "list"],
        &["tenant", "add", "acme"],
        &["tenant", "delete", "acme"],
        &["endpoint", "list"],
        &[
            "endpoint",
            "add",
            "--tenant",
            "acme",
            "--name",
            "p",
            "--url",
            "http://a/",
        ],
        &["endpoint", "show", "prod"],
        &["endpoint", "pause", "prod"],
        &["subscription", "list"],
        &[
            "subscription",
            "add",
            "--endpoint",
            "prod",
            "--topic",
            "a.b",
        ],
        &[
            "publish",
            "--tenant",
            "acme",
            "--topic",
            "a.b",
            "--payload",
            "{}",
        ],
        &["delivery", "list"],
        &["delivery", "show", "msg_01ARZ3NDEKTSV4RRFFQ69G5FAV"],
        &["retry", "dlv_01ARZ3NDEKTSV4RRFFQ69G5FAV"],
        &["retry", "--endpoint", "prod", "--dry-run"],
        &["dispatchers"],
        &["audit"],
    ];
    for args in commands {
        let err = fails(hookline_command(&url, args).output().expect("run hookline"));
        assert!(
            err.contains(&looked_at),
            "`hookline {}` should say it looked at {looked_at}: {err}",
            args.join(" ")
        );
        match backend {
            Backend::Sqlite => {
                assert!(err.contains("no hookline database"), "{err}");
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let file = format!("{looked_at}{suffix}");
                    assert!(
                        !std::path::Path::new(&file).exists(),
                        "`hookline {}` created {file}",
                        args.join(" ")
                    );
                }
            }
            Backend::Postgres => assert!(err.contains("not migrated"), "{err}"),
        }
    }
    if backend == Backend::Postgres {
        assert_eq!(db.dump().await, before, "nothing was created");
    }

    // migrate creates it; then the same commands work.
    ok(hookline_command(&url, &["migrate"])
        .output()
        .expect("run migrate"));
    if backend == Backend::Sqlite {
        assert!(
            std::path::Path::new(&looked_at).exists(),
            "migrate created the file"
        );
    }
    let listed = json(&ok(hookline_command(&url, &["tenant", "list", "--json"])
        .output()
        .expect("run tenant list")));
    assert_eq!(listed, serde_json::json!([]));
}

/// `HOOKLINE_DATABASE_URL` selects the database when `--db` is absent, and
/// `--db` wins over it.
async fn database_url_from_the_environment(backend: Backend) {
    let db = TestDb::new(backend);
    migrated_with_acme(&db);
    let bin = env!("CARGO_BIN_EXE_hookline");
    let cwd = db.path("cwd");
    std::fs::create_dir(&cwd).expect("create a working directory");
    let env_command = |url: &str, args: &[&str]| {
        let mut command = Command::new(bin);
        for (key, _) in std::env::vars() {
            if key.starts_with("HOOKLINE_") {
                command.env_remove(key);
            }
        }
        command
            .env("HOOKLINE_LOG", "warn")
            .env("USER", "test-operator")
            .env("HOOKLINE_DATABASE_URL", url)
            .current_dir(&cwd)
            .args(args);
        command
    };

    let listed = ok(env_command(&db.url, &["tenant", "list", "--json"])
        .output()
        .expect("run hookline"));
    let tenants = json(&listed);
    assert_eq!(text(&objects(&tenants)[0], "name"), "acme");
    ok(env_command(&db.url, &["tenant", "add", "from-env"])
        .output()
        .expect("run hookline"));
    let names: Vec<String> = objects(&ok_json(&db, &["tenant", "list"]))
        .iter()
        .map(|t| text(t, "name").to_string())
        .collect();
    assert!(names.contains(&"from-env".to_string()), "{names:?}");

    // The variable is really read: pointing it at a missing file fails there.
    let missing = db.path("elsewhere.db");
    let missing_url = format!("sqlite://{}", missing.display());
    let err = fails(
        env_command(&missing_url, &["tenant", "list"])
            .output()
            .expect("run hookline"),
    );
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(
        !missing.exists(),
        "tenant list created {}",
        missing.display()
    );

    // --db overrides the variable.
    let mut both = env_command(&missing_url, &[]);
    both.args(["--db", &db.url, "tenant", "list", "--json"]);
    let listed = json(&ok(both.output().expect("run hookline")));
    assert_eq!(objects(&listed).len(), 2);
    assert!(!missing.exists());

    // Neither given: the default sqlite://hookline.db in the working directory,
    // which a read-only command refuses to create.
    let mut neither = env_command("", &["tenant", "list"]);
    neither.env_remove("HOOKLINE_DATABASE_URL");
    let err = fails(neither.output().expect("run hookline"));
    let default = cwd.join("hookline.db");
    assert!(err.contains(&default.display().to_string()), "{err}");
    assert!(
        !default.exists(),
        "tenant list created {}",
        default.display()
    );
}

// --- configuration ---------------------------------------------------------

#[test]
fn config_file_with_an_unknown_key_fails_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("h.db").display());
    ok(hookline_command(&url, &["migrate"])
        .output()
        .expect("migrate"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[dispatch]\nconcurency = 3\n").expect("write config");
    let output = hookline_command(
        &url,
        &["--config", bad.to_str().expect("utf-8"), "tenant", "list"],
    )
    .output()
    .expect("run hookline");
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains("dispatch.concurency") && err.contains("unknown key"),
        "{err}"
    );

    let bad_value = dir.path().join("bad-value.toml");
    std::fs::write(&bad_value, "[dispatch]\ntimeout = \"soon\"\n").expect("write config");
    let output = hookline_command(
        &url,
        &[
            "--config",
            bad_value.to_str().expect("utf-8"),
            "tenant",
            "list",
        ],
    )
    .output()
    .expect("run hookline");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("dispatch.timeout"),
        "{}",
        stderr(&output)
    );

    // A good file is read: its payload limit applies.
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[limits]\nmax_payload = \"16\"\n").expect("write config");
    let good = good.to_str().expect("utf-8");
    ok(hookline_command(&url, &["tenant", "add", "acme"])
        .output()
        .expect("tenant add"));
    let err = fails(
        hookline_command(
            &url,
            &[
                "--config",
                good,
                "publish",
                "--tenant",
                "acme",
                "--topic",
                "a.b",
                "--payload",
                r#"{"longer":"than sixteen bytes"}"#,
            ],
        )
        .output()
        .expect("run publish"),
    );
    assert!(
        err.contains("payload:") && err.contains("over the limit"),
        "{err}"
    );
    // And HOOKLINE_CONFIG names the file too.
    let err = fails(
        hookline_command(
            &url,
            &[
                "publish",
                "--tenant",
                "acme",
                "--topic",
                "a.b",
                "--payload",
                r#"{"longer":"than sixteen bytes"}"#,
            ],
        )
        .env("HOOKLINE_CONFIG", good)
        .output()
        .expect("run publish"),
    );
    assert!(err.contains("over the limit"), "{err}");
}

#[test]
fn bad_environment_override_fails_naming_the_variable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("h.db").display());
    ok(hookline_command(&url, &["migrate"])
        .output()
        .expect("migrate"));
    for (var, value) in [
        ("HOOKLINE_DISPATCH_CONCURRENCY", "abc"),
        ("HOOKLINE_DISPATCH_TIMEOUT", "soon"),
        ("HOOKLINE_DISPATCH_CONCURENCY", "3"),
    ] {
        let output = hookline_command(&url, &["tenant", "list"])
            .env(var, value)
            .output()
            .expect("run hookline");
        assert_eq!(
            output.status.code(),
            Some(2),
            "{var}={value}: {}",
            stderr(&output)
        );
        assert!(stderr(&output).contains(var), "{var}: {}", stderr(&output));
    }
}

// --- hookline sink ---------------------------------------------------------

#[test]
fn sink_verifies_signatures_and_records_requests() {
    common::install_crypto();
    let dir = tempfile::tempdir().expect("temp dir");
    let record = dir.path().join("record.jsonl");
    let (mut guard, base) = spawn_sink(&record);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client");
    let body = br#"{"hello":"world"}"#;
    // `signed_with`: None sends no signature header.
    let post = |id: &str, signed_with: Option<&str>| {
        let timestamp = unix_now();
        let mut request = client
            .post(format!("{base}/hooks/{id}"))
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .body(body.to_vec());
        if let Some(secret) = signed_with {
            request = request.header("webhook-signature", sign(secret, id, timestamp, body));
        }
        runtime
            .block_on(request.send())
            .expect("the sink answers")
            .status()
            .as_u16()
    };

    assert_eq!(
        post("msg_bad", Some(OTHER_SECRET)),
        401,
        "a wrong signature is refused"
    );
    assert_eq!(
        post("msg_unsigned", None),
        401,
        "a missing signature is refused"
    );
    assert_eq!(
        post("msg_good", Some(SECRET)),
        200,
        "a good signature is accepted"
    );

    // Killed (SIGKILL): every answered request is already on disk.
    let _ = guard.0.kill();
    let _ = guard.0.wait();
    let recorded = std::fs::read_to_string(&record).expect("read the record file");
    let lines: Vec<Value> = recorded.lines().map(json).collect();
    assert_eq!(lines.len(), 3, "one line per request:\n{recorded}");
    let verdicts: Vec<(&str, &str, i64)> = lines
        .iter()
        .map(|l| {
            (
                text(&l["headers"], "webhook-id"),
                text(l, "verdict"),
                l["status"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("msg_bad", "bad_signature", 401),
            ("msg_unsigned", "bad_signature", 401),
            ("msg_good", "ok", 200),
        ]
    );
    for line in &lines {
        assert_eq!(
            text(line, "body"),
            std::str::from_utf8(body).expect("utf-8")
        );
        assert!(text(line, "path").starts_with("/hooks/"), "{line}");
        rfc3339(line, "time");
    }
}

/// Spawns `hookline sink` on a free port with `--record` and [`SECRET`];
/// returns the guard and `http://127.0.0.1:PORT`.
fn spawn_sink(record: &std::path::Path) -> (ChildGuard, String) {
    let mut last_error = String::new();
    for _ in 0..3 {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut command = hookline_command("sqlite://unused.db", &[]);
        command
            .args(["sink", "--listen", &listen, "--secret", SECRET, "--record"])
            .arg(record)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut guard = ChildGuard(command.spawn().expect("spawn hookline sink"));
        let out = guard.0.stdout.take().expect("sink stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line.contains("sink listening on") => {
                return (guard, format!("http://{listen}"));
            }
            other => {
                let _ = guard.0.kill();
                let output = guard.0.wait().ok();
                let mut err = String::new();
                if let Some(mut stderr) = guard.0.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
                }
                last_error = format!("{other:?} {output:?} {err}");
            }
        }
    }
    panic!("hookline sink did not start: {last_error}");
}

/// `hookline tenant add acme | head -1` or `| true`: stdout closes before the
/// command prints. The command must not panic (exit 101 with a backtrace)
/// after it has already committed its change.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("h.db").display());
    ok(hookline_command(&url, &["migrate"])
        .output()
        .expect("migrate"));
    for args in [
        &["tenant", "add", "acme"][..],
        &["tenant", "add", "beta", "--json"],
        &["endpoint", "show", "nobody"],
        &[
            "publish",
            "--tenant",
            "acme",
            "--topic",
            "a.b",
            "--payload",
            "{}",
        ],
    ] {
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let child = hookline_command(&url, args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hookline");
        let output = child.wait_with_output().expect("hookline finishes");
        let err = stderr(&output);
        assert!(
            !err.contains("panicked") && output.status.code() != Some(101),
            "`hookline {}` with a closed stdout: {} {err}",
            args.join(" "),
            output.status
        );
    }
}

#[test]
fn sink_with_a_bad_secret_is_refused() {
    let started = Instant::now();
    let output = hookline_command("sqlite://unused.db", &[])
        .args([
            "sink",
            "--listen",
            "127.0.0.1:0",
            "--secret",
            "not-a-secret",
        ])
        .output()
        .expect("run hookline sink");
    assert!(!output.status.success());
    assert!(stderr(&output).contains("secret:"), "{}", stderr(&output));
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// A URL password and `Authorization`/`X-Api-Key` headers never show in
/// plain in tables or `--json`, nor in the audit log; `--show-secret` shows
/// them and is itself audited; an update that gives the mask back keeps them.
async fn secrets_are_masked_unless_shown_and_showing_is_audited(backend: Backend) {
    use common::{API_KEY, BEARER_TOKEN, URL_PASSWORD, assert_no_plain_secret, dump_of_table};
    let db = TestDb::new(backend);
    migrated_with_acme(&db);
    let url = common::with_userinfo("http://127.0.0.1:9/hook");
    let bearer = format!("Authorization: Bearer {BEARER_TOKEN}");
    let api_key = format!("X-Api-Key: {API_KEY}");
    let add = [
        "endpoint",
        "add",
        "--tenant",
        "acme",
        "--name",
        "vault",
        "--url",
        &url,
        "--header",
        &bearer,
        "--header",
        &api_key,
        "--header",
        "X-Team: payments",
    ];
    let mut printed = ok(db.hookline(&add));
    let shown = ok_json(&db, &["endpoint", "show", "vault"]);
    assert_eq!(
        text(&shown, "url"),
        "http://bob:****@127.0.0.1:9/hook",
        "{shown}"
    );
    assert_eq!(
        shown["headers"],
        serde_json::json!({
            "authorization": "Bearer ****",
            "x-api-key": "****",
            "x-team": "payments",
        }),
        "{shown}"
    );
    printed.push_str(&shown.to_string());
    for args in [
        &["endpoint", "list"][..],
        &["endpoint", "list", "--json"],
        &["endpoint", "show", "vault"],
        &[
            "endpoint",
            "update",
            "vault",
            "--description",
            "kept",
            "--json",
        ],
        &["endpoint", "pause", "vault"],
        &["endpoint", "resume", "vault", "--json"],
        &["endpoint", "rotate-secret", "vault"],
        &["audit"],
        &["audit", "--json"],
    ] {
        printed.push_str(&ok(db.hookline(args)));
    }
    assert_no_plain_secret(&printed, "the CLI's output");

    // An update that passes the masks back keeps the values behind them.
    ok(db.hookline(&[
        "endpoint",
        "update",
        "vault",
        "--url",
        "http://bob:****@127.0.0.1:9/v2",
        "--header",
        "Authorization: Bearer ****",
        "--header",
        "X-Api-Key: ****",
    ]));
    let audits_before = objects(&ok_json(&db, &["audit", "--limit", "10000"])).len();
    let revealed = ok_json(&db, &["endpoint", "show", "vault", "--show-secret"]);
    assert_eq!(
        text(&revealed, "url"),
        format!("http://bob:{URL_PASSWORD}@127.0.0.1:9/v2")
    );
    let headers = revealed["headers"].to_string();
    assert!(
        headers.contains(&format!("Bearer {BEARER_TOKEN}")) && headers.contains(API_KEY),
        "{headers}"
    );
    assert!(!text(&revealed, "secret").contains('…'), "{revealed}");

    // Seeing them is in the audit log: who, which endpoint, which fields.
    let audit = ok_json(&db, &["audit", "--limit", "10000"]);
    assert_eq!(objects(&audit).len(), audits_before + 1);
    let reveal = &audit[0];
    assert_eq!(text(reveal, "action"), "endpoint.reveal_secrets");
    assert_eq!(text(reveal, "source"), "cli");
    assert!(!text(reveal, "actor").is_empty(), "{reveal}");
    assert_eq!(text(reveal, "targets"), text(&revealed, "id"));
    let fields = reveal["detail"].to_string();
    assert!(
        fields.contains("url") && fields.contains("header:authorization"),
        "{fields}"
    );
    let dump = db.dump().await;
    assert_no_plain_secret(&dump_of_table(&dump, "audit_log"), "the audit log");
}

// --- exit codes ------------------------------------------------------------

/// The exit status of `hookline ARGS` against `url`.
fn exit_status(url: &str, args: &[&str]) -> Option<i32> {
    let output = hookline_command(url, args)
        .output()
        .expect("run the hookline binary");
    let err = stderr(&output);
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    output.status.code()
}

/// Every command ends with a code of the one table in the README: 0 done,
/// 1 failed (the database down), 2 refused (bad input, unknown or taken
/// names, removed ids), 3 a check found a problem.
async fn exit_codes_follow_one_table(backend: Backend) {
    let db = TestDb::new(backend);
    migrated_with_acme(&db);
    let closed = format!("http://{}/hook", closed_port_addr());
    let endpoint = add_prod(&db, &closed);
    ok(db.hookline(&[
        "subscription",
        "add",
        "--endpoint",
        &endpoint,
        "--topic",
        "*",
    ]));
    let unknown = |kind: IdKind| hookline::model::new_id(kind);
    let (dlv, msg, ep, sub) = (
        unknown(IdKind::Delivery),
        unknown(IdKind::Event),
        unknown(IdKind::Endpoint),
        unknown(IdKind::Subscription),
    );
    let cases: Vec<(Vec<&str>, i32)> = vec![
        (vec!["tenant", "list"], 0),
        (vec!["delivery", "list"], 0),
        // Unknown ids and names, whichever command reads them.
        (vec!["delivery", "show", &dlv], 2),
        (vec!["delivery", "show", &msg], 2),
        (vec!["endpoint", "show", &ep], 2),
        (vec!["endpoint", "show", "acme/nothing"], 2),
        (vec!["endpoint", "pause", &ep], 2),
        (vec!["subscription", "delete", &sub], 2),
        (vec!["tenant", "delete", "nobody"], 2),
        (vec!["event", "expunge", &msg], 2),
        (vec!["retry", &dlv], 2),
        // Bad values and taken names.
        (vec!["tenant", "add", "acme"], 2),
        (
            vec![
                "publish",
                "--tenant",
                "acme",
                "--topic",
                "Bad",
                "--payload",
                "{}",
            ],
            2,
        ),
        (
            vec![
                "publish",
                "--tenant",
                "acme",
                "--topic",
                "a.b",
                "--payload",
                "{",
            ],
            2,
        ),
        (vec!["delivery", "list", "--state", "done"], 2),
        (vec!["delivery", "list", "--cursor", "nonsense"], 2),
        (vec!["no-such-command"], 2),
        // A probe that reaches hookline's end but not the receiver.
        (vec!["endpoint", "probe", &endpoint], 3),
    ];
    for (args, code) in &cases {
        assert_eq!(exit_status(&db.url, args), Some(*code), "hookline {args:?}");
    }
    // The database down is a failure, not a refusal.
    let down = match backend {
        Backend::Sqlite => format!("sqlite://{}", db.path("missing-dir").join("x.db").display()),
        Backend::Postgres => format!("postgres://postgres@{}/hookline", closed_port_addr()),
    };
    assert_eq!(exit_status(&down, &["tenant", "list"]), Some(1), "{down}");
}

/// An address on 127.0.0.1 where nothing listens.
fn closed_port_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("an address");
    drop(listener);
    addr
}

both_backends!(
    secrets_are_masked_unless_shown_and_showing_is_audited,
    tenant_commands,
    endpoint_commands,
    subscription_commands,
    publish_and_inspect,
    retry_dispatchers_and_audit,
    state_words_and_their_aliases,
    missing_database_is_refused,
    database_url_from_the_environment,
    exit_codes_follow_one_table,
);

#[test]
fn the_console_and_the_demo_without_a_terminal_say_so_and_start_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo_db = dir.path().join("demo.db");
    let demo_url = format!("sqlite://{}", demo_db.display());
    // `output()` pipes stdout: no terminal to draw on.
    let err = fails(
        hookline_command(&demo_url, &["demo"])
            .output()
            .expect("run hookline demo"),
    );
    assert!(
        err.contains("needs a terminal") && err.contains("demo --headless"),
        "the demo should name the headless way: {err}"
    );
    assert!(!demo_db.exists(), "the demo started before refusing");

    let url = format!("sqlite://{}", dir.path().join("h.db").display());
    ok(hookline_command(&url, &["migrate"])
        .output()
        .expect("migrate"));
    let err = fails(
        hookline_command(&url, &["console"])
            .output()
            .expect("run hookline console"),
    );
    assert!(
        err.contains("the console needs a terminal"),
        "the console should say why it cannot open: {err}"
    );
}

// --- log filters -----------------------------------------------------------

/// A misspelt log level stops the command before it does anything (exit 2),
/// naming where it came from and the valid levels: tracing alone would take
/// the word for a target name and quietly log nothing.
#[test]
fn a_misspelt_log_level_is_refused_naming_the_key_and_the_levels() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("h.db").display());
    ok(hookline_command(&url, &["migrate"])
        .output()
        .expect("migrate"));
    let levels = "trace, debug, info, warn, error, off";

    let output = hookline_command(&url, &["tenant", "list"])
        .env("HOOKLINE_LOG", "nonsense")
        .output()
        .expect("run hookline");
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("error: HOOKLINE_LOG: \"nonsense\"") && err.contains(levels),
        "{err}"
    );

    let file = dir.path().join("verbose.toml");
    std::fs::write(&file, "[log]\nlevel = \"verbose\"\n").expect("write config");
    let output = hookline_command(
        &url,
        &["--config", file.to_str().expect("utf-8"), "tenant", "list"],
    )
    .env_remove("HOOKLINE_LOG")
    .output()
    .expect("run hookline");
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("error: log.level: \"verbose\"") && err.contains(levels),
        "{err}"
    );

    // Targets, with `::`, still filter.
    ok(hookline_command(&url, &["tenant", "list"])
        .env("HOOKLINE_LOG", "warn,hookline::dispatch=debug")
        .output()
        .expect("run hookline"));
}
