//! Cross-checks of the signature format: the Standard Webhooks test vector
//! through hookline's signer and through an HMAC computed here, and real
//! attempts captured at a sink checked by the OFFICIAL verifier, the Python
//! package `standardwebhooks` (installed by `.ci/run`).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use common::{Backend, RunningDispatcher, TestDb, install_crypto, test_config, test_ops};
use hookline::ops::{EndpointInput, EventInput};
use hookline::sign::{self, Secret};
use hookline::sink::{ReceivedRequest, SinkOptions};

// The test vector from the Standard Webhooks spec (see RECIPES.md).
const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const VECTOR_TS: i64 = 1614265330;
const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

/// HMAC-SHA256 over `"{id}.{ts}.{body}"` keyed by the base64 after `whsec_`,
/// computed without any hookline code.
fn independent_signature(secret: &str, id: &str, ts: &str, body: &[u8]) -> String {
    let key = BASE64
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 key");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

#[test]
fn spec_vector_through_hookline_signer() {
    let secret = Secret::parse(VECTOR_SECRET).expect("the spec's secret parses");
    assert_eq!(
        sign::sign(&secret, VECTOR_ID, VECTOR_TS, VECTOR_BODY),
        VECTOR_SIGNATURE
    );
    // The header form with a single secret is exactly that signature.
    assert_eq!(
        sign::signature_header(&[&secret], VECTOR_ID, VECTOR_TS, VECTOR_BODY),
        VECTOR_SIGNATURE
    );
    // And hookline's verifier accepts it (at the time it was made).
    assert_eq!(
        sign::verify(
            &[&secret],
            VECTOR_ID,
            &VECTOR_TS.to_string(),
            VECTOR_BODY,
            VECTOR_SIGNATURE,
            VECTOR_TS,
            sign::DEFAULT_TOLERANCE_SECS,
        ),
        Ok(())
    );
}

#[test]
fn spec_vector_through_independent_hmac() {
    assert_eq!(
        independent_signature(
            VECTOR_SECRET,
            VECTOR_ID,
            &VECTOR_TS.to_string(),
            VECTOR_BODY
        ),
        VECTOR_SIGNATURE
    );
}

#[test]
fn hookline_and_independent_hmac_agree_on_other_inputs() {
    let secret = Secret::generate().expect("generate");
    let text = secret.to_string();
    let bodies: [&[u8]; 4] = [
        b"{}",
        "{\"name\": \"caf\u{e9}\"}".as_bytes(),
        b"{\"a\":1e2,\n\t\"a\":123456789012345678901234567890}",
        b"",
    ];
    for body in bodies {
        assert_eq!(
            sign::sign(&secret, "msg_x", 1_700_000_000, body),
            independent_signature(&text, "msg_x", "1700000000", body),
            "body {:?}",
            String::from_utf8_lossy(body)
        );
    }
}

// --- the official verifier ---------------------------------------------------

/// Verifies with `standardwebhooks`; exit 0 verified, 3 rejected, anything
/// else a broken environment. Inputs come from environment variables and a
/// file, never through shell quoting.
const VERIFY_PY: &str = r#"
import json, os, sys
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
with open(os.environ["SW_BODY_FILE"], "rb") as f:
    body = f.read()
headers = json.loads(os.environ["SW_HEADERS"])
try:
    Webhook(os.environ["SW_SECRET"]).verify(body, headers)
except WebhookVerificationError as e:
    print("rejected:", e)
    sys.exit(3)
print("verified")
"#;

/// Fails (never skips) when the official verifier is not installed.
fn require_standardwebhooks() {
    let probe = Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "the official Standard Webhooks verifier is missing: `python3 -c 'import standardwebhooks'` failed ({}): {}\n\
             run `.ci/run` (it installs it) or `pip install standardwebhooks`",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!(
            "cannot run python3 ({e}); the signature cross-check needs python3 with the \
             standardwebhooks package: run `.ci/run` or `pip install standardwebhooks`"
        ),
    }
}

/// Runs the official verifier on `body` and `headers` with `secret`.
fn official_verify(
    dir: &Path,
    secret: &str,
    headers: &BTreeMap<String, String>,
    body: &[u8],
) -> Output {
    let body_file = dir.join(format!("body-{}.bin", next_file_number()));
    std::fs::write(&body_file, body).expect("write the body file");
    let output = Command::new("python3")
        .args(["-c", VERIFY_PY])
        .env("SW_BODY_FILE", &body_file)
        .env(
            "SW_HEADERS",
            serde_json::to_string(headers).expect("headers as JSON"),
        )
        .env("SW_SECRET", secret)
        .output()
        .expect("run python3");
    let _ = std::fs::remove_file(&body_file);
    output
}

fn next_file_number() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn describe(output: &Output) -> String {
    format!(
        "exit {}; stdout: {}; stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout).trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    )
}

#[track_caller]
fn assert_verified(output: &Output) {
    assert!(
        output.status.success(),
        "the official verifier rejected a real attempt: {}",
        describe(output)
    );
}

#[track_caller]
fn assert_rejected(output: &Output) {
    assert_eq!(
        output.status.code(),
        Some(3),
        "the official verifier should reject this (as a verification error): {}",
        describe(output)
    );
}

/// The three Standard Webhooks headers of a captured request.
fn webhook_headers(request: &ReceivedRequest) -> BTreeMap<String, String> {
    ["webhook-id", "webhook-timestamp", "webhook-signature"]
        .into_iter()
        .map(|name| {
            let value = request
                .header(name)
                .unwrap_or_else(|| panic!("captured request lacks {name}"));
            (name.to_string(), value.to_string())
        })
        .collect()
}

/// A real attempt (dispatcher → sink) captured with its secret; after
/// `rotate_to` (if given) the endpoint signs with the new secret and the old.
struct Captured {
    db: TestDb,
    request: ReceivedRequest,
}

async fn capture_real_attempt(secret: &str, rotate_to: Option<&str>, payload: &str) -> Captured {
    install_crypto();
    let db = TestDb::new(Backend::Sqlite);
    let store = db.store().await;
    let config = test_config(&db.url);
    let ops = test_ops(&store, &config);
    let sink = hookline::sink::start(SinkOptions {
        keep: true,
        ..SinkOptions::default()
    })
    .await
    .expect("start the sink");
    ops.add_tenant("acme").await.expect("tenant");
    let endpoint = ops
        .add_endpoint(&EndpointInput {
            tenant: "acme".to_string(),
            name: "hooks".to_string(),
            url: sink.url(),
            secret: Some(secret.to_string()),
            ..EndpointInput::default()
        })
        .await
        .expect("endpoint");
    ops.add_subscription(&endpoint.id, "*", None)
        .await
        .expect("subscription");
    if let Some(new_secret) = rotate_to {
        ops.rotate_secret(&endpoint.id, Some(new_secret))
            .await
            .expect("rotate");
    }
    let dispatcher = RunningDispatcher::start(&store, &config);
    let published = ops
        .publish(EventInput {
            tenant: Some("acme".to_string()),
            topic: "resident.update".to_string(),
            payload: payload.into(),
            ..EventInput::default()
        })
        .await
        .expect("publish");
    assert!(
        sink.wait_for(1, Duration::from_secs(10)).await,
        "no attempt reached the sink"
    );
    dispatcher.stop().await;
    let request = sink.requests().remove(0);
    assert_eq!(
        request.header("webhook-id"),
        Some(published.event_id.as_str())
    );
    assert_eq!(request.body, payload.as_bytes());
    Captured { db, request }
}

const PAYLOAD: &str = "{\"resident\": {\"id\": 7, \"name\": \"Zo\u{eb} M\\u00fcller\"},\n  \"score\": 1.0e2, \"big\": 123456789012345678901234567890}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_verifier_accepts_a_real_attempt_and_rejects_tampering() {
    require_standardwebhooks();
    let secret = Secret::generate().expect("generate").to_string();
    let captured = capture_real_attempt(&secret, None, PAYLOAD).await;
    let dir = captured.db.dir.path();
    let headers = webhook_headers(&captured.request);
    let body = &captured.request.body;

    assert_verified(&official_verify(dir, &secret, &headers, body));

    let mut tampered = body.clone();
    let at = tampered
        .iter()
        .position(|&b| b == b'7')
        .expect("the payload has a 7");
    tampered[at] = b'8';
    assert_rejected(&official_verify(dir, &secret, &headers, &tampered));

    let mut trailing = body.clone();
    trailing.push(b' ');
    assert_rejected(&official_verify(dir, &secret, &headers, &trailing));

    let mut other_id = headers.clone();
    other_id.insert("webhook-id".to_string(), "msg_someoneelse".to_string());
    assert_rejected(&official_verify(dir, &secret, &other_id, body));

    let stranger = Secret::generate().expect("generate").to_string();
    assert_rejected(&official_verify(dir, &stranger, &headers, body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_verifier_accepts_either_secret_during_rotation() {
    require_standardwebhooks();
    let old = Secret::generate().expect("generate").to_string();
    let new = Secret::generate().expect("generate").to_string();
    let captured = capture_real_attempt(&old, Some(&new), PAYLOAD).await;
    let dir = captured.db.dir.path();
    let headers = webhook_headers(&captured.request);
    let body = &captured.request.body;
    let signature = &headers["webhook-signature"];
    assert_eq!(signature.split(' ').count(), 2, "{signature}");

    assert_verified(&official_verify(dir, &new, &headers, body));
    assert_verified(&official_verify(dir, &old, &headers, body));
    let stranger = Secret::generate().expect("generate").to_string();
    assert_rejected(&official_verify(dir, &stranger, &headers, body));
}
