//! Every bad input the delivery-engine issue lists, given to the real
//! `hookline` binary: it must be refused with a non-zero exit, a message that
//! names the field and the reason, and no change to any row of any table.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::{Backend, TestDb, hookline_command, ok, stderr, stdout};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One refused command.
struct Case {
    /// What is wrong, for failure messages.
    what: &'static str,
    args: Vec<String>,
    /// Extra environment for the child.
    env: Vec<(&'static str, &'static str)>,
    /// Bytes fed to stdin (for `--payload -`).
    stdin: Option<Vec<u8>>,
    /// Each must appear in stderr: the field, then words of the reason.
    expect: Vec<&'static str>,
}

fn case(what: &'static str, args: &[&str], expect: &[&'static str]) -> Case {
    Case {
        what,
        args: args.iter().map(|a| a.to_string()).collect(),
        env: Vec::new(),
        stdin: None,
        expect: expect.to_vec(),
    }
}

/// A database with a tenant `acme`, an endpoint `acme/prod` subscribed to
/// `resident.*`, one published event and its delivery: so a bad input has
/// rows it could wrongly touch in every table.
fn seeded(backend: Backend) -> TestDb {
    let db = TestDb::new(backend);
    ok(db.hookline(&["migrate"]));
    ok(db.hookline(&["tenant", "add", "acme"]));
    ok(db.hookline(&[
        "endpoint",
        "add",
        "--tenant",
        "acme",
        "--name",
        "prod",
        "--url",
        "http://127.0.0.1:9/hook",
        "--secret",
        SECRET,
    ]));
    ok(db.hookline(&[
        "subscription",
        "add",
        "--endpoint",
        "prod",
        "--topic",
        "resident.*",
    ]));
    ok(db.hookline(&[
        "publish",
        "--tenant",
        "acme",
        "--topic",
        "resident.update",
        "--payload",
        r#"{"id":1}"#,
    ]));
    db
}

fn cases(db: &TestDb, subscription_id: &str) -> Vec<Case> {
    let not_json_file = db.path("not-json.txt");
    std::fs::write(&not_json_file, "this is { not json").expect("write a payload file");
    let not_json_file = format!("@{}", not_json_file.display());
    let big = format!("{{\"data\":\"{}\"}}", "x".repeat(2000));
    let publish = |topic: &str, payload: &str| -> Vec<String> {
        [
            "publish",
            "--tenant",
            "acme",
            "--topic",
            topic,
            "--payload",
            payload,
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    };
    let endpoint_add = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "endpoint",
            "add",
            "--tenant",
            "acme",
            "--name",
            "other",
            "--url",
            "https://example.com/h",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let with_args = |what, args: Vec<String>, expect: &[&'static str]| Case {
        what,
        args,
        env: Vec::new(),
        stdin: None,
        expect: expect.to_vec(),
    };
    vec![
        // URLs
        case(
            "an ftp URL",
            &[
                "endpoint",
                "add",
                "--tenant",
                "acme",
                "--name",
                "x",
                "--url",
                "ftp://example.com/hook",
            ],
            &["url:", "HTTP(S)"],
        ),
        case(
            "not a URL at all",
            &[
                "endpoint",
                "add",
                "--tenant",
                "acme",
                "--name",
                "x",
                "--url",
                "not a url",
            ],
            &["url:", "not a URL"],
        ),
        case(
            "a URL without a host",
            &[
                "endpoint", "add", "--tenant", "acme", "--name", "x", "--url", "http://",
            ],
            &["url:"],
        ),
        case(
            "an update to an ftp URL",
            &["endpoint", "update", "prod", "--url", "ftp://example.com/"],
            &["url:", "HTTP(S)"],
        ),
        // Topics and patterns
        with_args(
            "an uppercase topic",
            publish("Resident.Update", "{}"),
            &["topic:", "lowercase"],
        ),
        with_args(
            "a topic with an empty segment",
            publish("a..b", "{}"),
            &["topic:", "empty segment"],
        ),
        with_args(
            "a wildcard in a published topic",
            publish("resident.*", "{}"),
            &["topic:"],
        ),
        with_args(
            "a topic under hookline's reserved segment",
            publish("hookline.endpoint.disabled", "{}"),
            &["topic:", "reserved for hookline's own events"],
        ),
        case(
            "an uppercase pattern",
            &[
                "subscription",
                "add",
                "--endpoint",
                "prod",
                "--topic",
                "Resident.Update",
            ],
            &["topic:", "lowercase"],
        ),
        case(
            "a pattern with an empty segment",
            &[
                "subscription",
                "add",
                "--endpoint",
                "prod",
                "--topic",
                "a..b",
            ],
            &["topic:", "empty segment"],
        ),
        case(
            "** in the middle of a pattern",
            &[
                "subscription",
                "add",
                "--endpoint",
                "prod",
                "--topic",
                "a.**.b",
            ],
            &["topic:", "last segment"],
        ),
        case(
            "an update to a malformed pattern",
            &[
                "subscription",
                "update",
                subscription_id,
                "--topic",
                "a.**.b",
            ],
            &["topic:", "last segment"],
        ),
        // Payloads
        with_args(
            "a payload that is not JSON",
            publish("resident.update", "{nope"),
            &["payload:", "not valid JSON"],
        ),
        with_args(
            "JSON followed by trailing text",
            publish("resident.update", "{} trailing"),
            &["payload:", "not valid JSON"],
        ),
        with_args(
            "an empty payload",
            publish("resident.update", ""),
            &["payload:", "not valid JSON"],
        ),
        with_args(
            "a payload file that is not JSON",
            publish("resident.update", &not_json_file),
            &["payload:", "not valid JSON"],
        ),
        Case {
            what: "stdin that is not JSON",
            stdin: Some(b"<xml/>".to_vec()),
            ..with_args(
                "",
                publish("resident.update", "-"),
                &["payload:", "not valid JSON"],
            )
        },
        Case {
            what: "stdin that is not UTF-8",
            stdin: Some(vec![0xff, 0xfe, b'{', b'}']),
            ..with_args("", publish("resident.update", "-"), &["payload:", "UTF-8"])
        },
        with_args(
            "a payload file that does not exist",
            publish("resident.update", "@/nonexistent/payload.json"),
            &["payload:", "could not read"],
        ),
        Case {
            what: "a payload over limits.max_payload",
            env: vec![("HOOKLINE_LIMITS_MAX_PAYLOAD", "1KiB")],
            ..with_args(
                "",
                publish("resident.update", &big),
                &["payload:", "over the limit", "1KiB"],
            )
        },
        // Tenants and endpoints that do not exist
        case(
            "publish for an unknown tenant",
            &[
                "publish",
                "--tenant",
                "nobody",
                "--topic",
                "a.b",
                "--payload",
                "{}",
            ],
            &["tenant:", "nobody"],
        ),
        case(
            "an endpoint for an unknown tenant",
            &[
                "endpoint",
                "add",
                "--tenant",
                "nobody",
                "--name",
                "x",
                "--url",
                "https://example.com/",
            ],
            &["tenant:", "nobody"],
        ),
        case(
            "a subscription for an unknown endpoint",
            &[
                "subscription",
                "add",
                "--endpoint",
                "nope",
                "--topic",
                "a.b",
            ],
            &["endpoint", "nope"],
        ),
        case(
            "a subscription for an endpoint of an unknown tenant",
            &[
                "subscription",
                "add",
                "--endpoint",
                "nobody/prod",
                "--topic",
                "a.b",
            ],
            &["endpoint", "nobody/prod"],
        ),
        case(
            "pausing an unknown endpoint",
            &["endpoint", "pause", "nope"],
            &["endpoint", "nope"],
        ),
        case(
            "updating an unknown endpoint",
            &[
                "endpoint",
                "update",
                "nope",
                "--url",
                "https://example.com/",
            ],
            &["endpoint", "nope"],
        ),
        case(
            "deleting an unknown endpoint",
            &["endpoint", "delete", "nope"],
            &["endpoint", "nope"],
        ),
        case(
            "rotating an unknown endpoint's secret",
            &["endpoint", "rotate-secret", "nope"],
            &["endpoint", "nope"],
        ),
        case(
            "a bulk retry of an unknown endpoint",
            &["retry", "--endpoint", "nope"],
            &["endpoint", "nope"],
        ),
        case(
            "deleting an unknown tenant",
            &["tenant", "delete", "nobody"],
            &["tenant", "nobody"],
        ),
        // Secrets
        with_args(
            "a secret without whsec_",
            endpoint_add(&["--secret", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]),
            &["secret:", "whsec_"],
        ),
        with_args(
            "a secret that is not base64",
            endpoint_add(&["--secret", "whsec_!!!not*base64!!!"]),
            &["secret:", "base64"],
        ),
        with_args(
            "a secret too short to be safe",
            endpoint_add(&["--secret", "whsec_AAAA"]),
            &["secret:", "at least"],
        ),
        case(
            "rotating to a bad secret",
            &["endpoint", "rotate-secret", "prod", "--secret", "hunter2"],
            &["secret:", "whsec_"],
        ),
        // Tenant or broadcast
        case(
            "a publish with neither --tenant nor --broadcast",
            &["publish", "--topic", "a.b", "--payload", "{}"],
            &["tenant", "--broadcast"],
        ),
        case(
            "a publish with both --tenant and --broadcast",
            &[
                "publish",
                "--tenant",
                "acme",
                "--broadcast",
                "--topic",
                "a.b",
                "--payload",
                "{}",
            ],
            &["--tenant", "--broadcast"],
        ),
        // Endpoint settings
        with_args(
            "a header hookline sets itself",
            endpoint_add(&["--header", "webhook-id: x"]),
            &["header:", "set by hookline"],
        ),
        with_args(
            "a header without a colon",
            endpoint_add(&["--header", "no-colon"]),
            &["header:", "NAME:VALUE"],
        ),
        with_args(
            "a header name with a space",
            endpoint_add(&["--header", "bad name: x"]),
            &["header:", "not a valid header name"],
        ),
        with_args(
            "a timeout that is not a duration",
            endpoint_add(&["--timeout", "5x"]),
            &["--timeout", "not a duration"],
        ),
        with_args(
            "a timeout without a unit",
            endpoint_add(&["--timeout", "15"]),
            &["--timeout", "no unit"],
        ),
        with_args(
            "a timeout out of range",
            endpoint_add(&["--timeout", "1h"]),
            &["timeout:", "between"],
        ),
        with_args(
            "a zero in-flight cap",
            endpoint_add(&["--max-in-flight", "0"]),
            &["max_in_flight:", "between"],
        ),
        case(
            "an update to a zero in-flight cap",
            &["endpoint", "update", "prod", "--max-in-flight", "0"],
            &["max_in_flight:", "between"],
        ),
        with_args(
            "a negative in-flight cap",
            endpoint_add(&["--max-in-flight=-1"]),
            &["--max-in-flight", "-1"],
        ),
        with_args(
            "an in-flight cap over the maximum",
            endpoint_add(&["--max-in-flight", "5000"]),
            &["max_in_flight:", "between"],
        ),
        case(
            "a duplicate endpoint name",
            &[
                "endpoint",
                "add",
                "--tenant",
                "acme",
                "--name",
                "prod",
                "--url",
                "https://example.com/",
            ],
            &["name", "prod", "unique"],
        ),
        case(
            "a duplicate tenant name",
            &["tenant", "add", "acme"],
            &["acme", "already exists"],
        ),
        case(
            "a tenant name with a slash",
            &["tenant", "add", "a/b"],
            &["name:", "'/'"],
        ),
        case(
            "an endpoint name shaped like an id",
            &[
                "endpoint",
                "add",
                "--tenant",
                "acme",
                "--name",
                "ep_01ARZ3NDEKTSV4RRFFQ69G5FAV",
                "--url",
                "https://example.com/",
            ],
            &["name:", "looks like an id"],
        ),
        case(
            "an update mixing a good URL with a bad cap",
            &[
                "endpoint",
                "update",
                "prod",
                "--url",
                "https://new.example.com/",
                "--max-in-flight",
                "0",
            ],
            &["max_in_flight:", "between"],
        ),
        with_args(
            "an overlong pause reason",
            vec![
                "endpoint".into(),
                "pause".into(),
                "prod".into(),
                "--reason".into(),
                "r".repeat(501),
            ],
            &["reason:", "longer than"],
        ),
        case(
            "a pause that would end in the past",
            &[
                "endpoint",
                "pause",
                "prod",
                "--until",
                "2020-01-01T00:00:00Z",
            ],
            &["until:", "not in the future"],
        ),
        case(
            "a pause end that is neither a duration nor a time",
            &["endpoint", "pause", "prod", "--until", "soon"],
            &["until:", "neither a duration nor a time"],
        ),
        case(
            "a broadcast with a payload that is not JSON",
            &[
                "publish",
                "--broadcast",
                "--topic",
                "resident.update",
                "--payload",
                "[1,",
            ],
            &["payload:", "not valid JSON"],
        ),
        case(
            "an update with nothing to change",
            &["endpoint", "update", "prod"],
            &["changes:", "nothing to change"],
        ),
        // Other flags
        with_args(
            "an idempotency key with a control character",
            {
                let mut args = publish("resident.update", "{}");
                args.extend(["--idempotency-key".to_string(), "a\u{7}b".to_string()]);
                args
            },
            &["idempotency_key:", "control"],
        ),
        case(
            "retrying something that is not a delivery id",
            &["retry", "msg_01ARZ3NDEKTSV4RRFFQ69G5FAV"],
            &["ids:", "not a delivery id"],
        ),
        case(
            "a bulk retry of pending deliveries",
            &["retry", "--endpoint", "prod", "--state", "pending"],
            &["state:", "cannot be retried"],
        ),
        case(
            "a bulk retry with a bad --since",
            &["retry", "--endpoint", "prod", "--since", "yesterday"],
            &["since:", "RFC 3339"],
        ),
        case(
            "a delivery list with an unknown state",
            &["delivery", "list", "--state", "lost"],
            &["--state", "lost"],
        ),
        case(
            "a delivery list with a bad cursor",
            &["delivery", "list", "--cursor", "garbage"],
            &["cursor:", "garbage"],
        ),
    ]
}

async fn every_bad_input_is_refused_and_changes_nothing(backend: Backend) {
    let db = seeded(backend);
    let subscriptions: serde_json::Value =
        serde_json::from_str(&ok(db.hookline(&["subscription", "list", "--json"])))
            .expect("subscription list --json");
    let subscription_id = subscriptions[0]["id"]
        .as_str()
        .expect("a subscription id")
        .to_string();
    let cases = cases(&db, &subscription_id);
    let before = db.dump().await;
    assert!(
        before.contains("acme") && before.contains("resident.update"),
        "the dump holds the seeded rows:\n{before}"
    );

    let mut problems = Vec::new();
    for case in &cases {
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let mut command = hookline_command(&db.url, &args);
        for (key, value) in &case.env {
            command.env(key, value);
        }
        command
            .stdin(if case.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn hookline");
        if let Some(bytes) = &case.stdin {
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(bytes).expect("write stdin");
        }
        let output = child.wait_with_output().expect("hookline finishes");
        let err = stderr(&output);
        let shown = format!(
            "{}: `hookline {}` exited {} with\n  stdout: {}\n  stderr: {}",
            case.what,
            case.args.join(" "),
            output.status,
            stdout(&output).trim(),
            err.trim()
        );
        if output.status.success() {
            problems.push(format!("accepted {shown}"));
        } else if err.contains("panicked") {
            problems.push(format!("panicked on {shown}"));
        } else if let Some(missing) = case.expect.iter().find(|want| !err.contains(**want)) {
            problems.push(format!("message lacks {missing:?} for {shown}"));
        }
        let after = db.dump().await;
        if after != before {
            problems.push(format!(
                "changed the database: {shown}\n{}",
                diff(&before, &after)
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} bad inputs were mishandled:\n\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n\n")
    );
}

/// The lines only in one of two dumps.
fn diff(before: &str, after: &str) -> String {
    let old: Vec<&str> = before.lines().collect();
    let new: Vec<&str> = after.lines().collect();
    let mut out = String::new();
    for line in &old {
        if !new.contains(line) {
            out.push_str(&format!("- {line}\n"));
        }
    }
    for line in &new {
        if !old.contains(line) {
            out.push_str(&format!("+ {line}\n"));
        }
    }
    out
}

/// The field-naming messages exit with the "refused input" code 2, so
/// scripts can tell bad input from a failure of the system.
async fn refused_input_exits_with_code_2(backend: Backend) {
    let db = seeded(backend);
    for args in [
        &[
            "endpoint", "add", "--tenant", "acme", "--name", "x", "--url", "ftp://x/",
        ][..],
        &[
            "publish",
            "--tenant",
            "acme",
            "--topic",
            "A.b",
            "--payload",
            "{}",
        ],
        &[
            "publish",
            "--tenant",
            "acme",
            "--topic",
            "a.b",
            "--payload",
            "{",
        ],
        &["publish", "--topic", "a.b", "--payload", "{}"],
        &[
            "publish",
            "--tenant",
            "nobody",
            "--topic",
            "a.b",
            "--payload",
            "{}",
        ],
        &[
            "endpoint",
            "add",
            "--tenant",
            "acme",
            "--name",
            "x",
            "--url",
            "http://x/",
            "--secret",
            "nope",
        ],
    ] {
        let output = db.hookline(args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "`hookline {}`: {}",
            args.join(" "),
            stderr(&output)
        );
        assert!(
            stderr(&output).starts_with("error: "),
            "{}",
            stderr(&output)
        );
    }
}

/// The strict form of the rule for the two refusals that do not follow it
/// yet: an unknown endpoint and a duplicate endpoint name say
/// `endpoint not found: nope` / `the tenant already has an endpoint named …`
/// and exit 1 (like a failure of the system), while every other refused
/// input, an unknown tenant included, says `FIELD: reason` and exits 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_endpoint_and_duplicate_name_name_their_field() {
    let db = seeded(Backend::Sqlite);
    let before = db.dump().await;
    for (args, field) in [
        (
            &[
                "subscription",
                "add",
                "--endpoint",
                "nope",
                "--topic",
                "a.b",
            ][..],
            "endpoint: ",
        ),
        (&["endpoint", "pause", "nope"], "endpoint: "),
        (&["retry", "--endpoint", "nope"], "endpoint: "),
        (
            &[
                "endpoint",
                "add",
                "--tenant",
                "acme",
                "--name",
                "prod",
                "--url",
                "https://example.com/",
            ],
            "name: ",
        ),
    ] {
        let output = db.hookline(args);
        let err = stderr(&output);
        assert!(
            output.status.code() == Some(2) && err.starts_with(&format!("error: {field}")),
            "`hookline {}`: {} {err}",
            args.join(" "),
            output.status
        );
    }
    assert_eq!(db.dump().await, before);
}

both_backends!(
    every_bad_input_is_refused_and_changes_nothing,
    refused_input_exits_with_code_2,
);
