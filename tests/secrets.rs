//! Secrets kept secret, on both backends: migration 0005 scrubs attempts
//! and audit rows written in plain before it; with `[secrets] key` the
//! endpoints table holds no secret in plain (dumped and searched) while
//! deliveries still arrive signed (a real sink verifies them, claimed and
//! handed off); a sealed row read without its key, or with another, is an
//! error naming the endpoint, never sent; and a key set later seals what
//! was stored plain.

mod common;

use std::time::Duration;

use common::{
    API_KEY, BEARER_TOKEN, Backend, RunningDispatcher, TestDb, URL_PASSWORD,
    assert_no_plain_secret, dump_of_table, install_crypto, test_config, test_ops, with_userinfo,
};
use hookline::model::{IdKind, new_id, now_millis};
use hookline::ops::{EndpointInput, EventInput};
use hookline::seal::{SealError, SecretsKey};
use hookline::sign::Secret;
use hookline::sink::{SinkHandle, SinkOptions};
use hookline::store::{
    ClaimRequest, NewAttempt, NextStep, OpenMode, Outcome, Store, StoreError, StoreOptions,
};

const WAIT: Duration = Duration::from_secs(10);
/// Two keys as `[secrets] key` takes them (base64 of 32 bytes).
const KEY: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
const OTHER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn key(text: &str) -> SecretsKey {
    SecretsKey::parse(text).expect("a valid test key")
}

async fn open(db: &TestDb, secrets_key: Option<&str>) -> Store {
    let options = StoreOptions {
        secrets_key: secrets_key.map(key),
        ..StoreOptions::default()
    };
    Store::open_with(&db.url, OpenMode::CreateAndMigrate, options)
        .await
        .unwrap_or_else(|e| panic!("open {}: {e}", db.url))
}

/// An endpoint of tenant `acme` at `url` (with `bob:URL_PASSWORD@` added)
/// sending `Authorization` and `X-Api-Key`, subscribed to everything.
async fn vault(ops: &hookline::ops::Ops, url: &str) -> hookline::model::Endpoint {
    ops.add_tenant("acme").await.expect("add tenant");
    let endpoint = ops
        .add_endpoint(&EndpointInput {
            tenant: "acme".into(),
            name: "vault".into(),
            url: with_userinfo(url),
            headers: vec![
                format!("Authorization: Bearer {BEARER_TOKEN}"),
                format!("X-Api-Key: {API_KEY}"),
                "X-Team: payments".into(),
            ],
            ..EndpointInput::default()
        })
        .await
        .expect("add endpoint");
    ops.add_subscription(&endpoint.id, "*", None)
        .await
        .expect("subscribe");
    endpoint
}

fn event(n: u32) -> EventInput {
    EventInput {
        tenant: Some("acme".into()),
        topic: "order.created".into(),
        payload: format!("{{\"n\":{n}}}").into(),
        ..EventInput::default()
    }
}

/// A sink that answers 401 to anything not signed with one of `secrets`.
async fn verifying_sink(secrets: &[&str]) -> SinkHandle {
    hookline::sink::start(SinkOptions {
        secrets: secrets
            .iter()
            .map(|s| Secret::parse(s).expect("a secret"))
            .collect(),
        keep: true,
        ..SinkOptions::default()
    })
    .await
    .expect("start a sink")
}

/// The signing secret's key material: what must not be in the table.
fn key_material(secret: &str) -> &str {
    secret.trim_start_matches("whsec_")
}

// --- migration 0005 -------------------------------------------------------------

/// Attempts and audit rows as hookline wrote them before v5 (headers and
/// URLs in plain) are masked by the migration, and nothing else changes.
async fn migration_5_scrubs_what_was_kept_in_plain(backend: Backend) {
    let db = TestDb::new(backend);
    let store = db.store().await;
    let config = test_config(&db.url);
    let ops = test_ops(&store, &config);
    let endpoint = vault(&ops, "http://127.0.0.1:9/").await;
    ops.publish(event(1)).await.expect("publish");
    let claimed = store
        .claim(&ClaimRequest {
            owner: "dsp_old",
            limit: 10,
            lease_ms: 60_000,
            default_max_in_flight: 8,
            default_timeout_ms: 1_000,
            reap_expired: true,
            slots: None,
        })
        .await
        .expect("claim");
    let delivery = &claimed.deliveries[0];
    // What the dispatcher recorded before masking existed.
    let plain_headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        (
            "authorization".to_string(),
            format!("Bearer {BEARER_TOKEN}"),
        ),
        ("x-api-key".to_string(), API_KEY.to_string()),
        ("x-team".to_string(), "payments".to_string()),
        ("webhook-signature".to_string(), "v1,****".to_string()),
    ];
    let outcome = Outcome {
        attempt: NewAttempt {
            id: new_id(IdKind::Attempt),
            delivery_id: delivery.id.clone(),
            endpoint_id: endpoint.id.clone(),
            attempt_number: 1,
            started_at: now_millis(),
            duration_ms: 5,
            status_code: Some(200),
            error_kind: None,
            error_message: None,
            request_headers: plain_headers,
            response_body: Some("ok".into()),
        },
        next: NextStep::Succeeded,
        disable_endpoint: None,
        published_at: None,
        retry_after_ms: None,
    };
    store
        .record_outcomes("dsp_old", std::slice::from_ref(&outcome))
        .await
        .expect("record");
    // The audit rows the old endpoint.create and endpoint.update wrote.
    let old_create = serde_json::json!({
        "tenant_id": endpoint.tenant_id, "name": "vault",
        "url": with_userinfo("http://127.0.0.1:9/"),
    });
    let old_update = serde_json::json!({
        "url": {"from": with_userinfo("http://a.example/"), "to": with_userinfo("http://b.example/")},
        "headers": {"from": [["authorization", format!("Bearer {BEARER_TOKEN}")]],
                    "to": [["x-api-key", API_KEY], ["x-team", "payments"]]},
    });
    for (action, detail) in [
        ("endpoint.create", old_create),
        ("endpoint.update", old_update),
    ] {
        execute(
            &db,
            &format!(
                "INSERT INTO audit_log (id, at, actor, client_addr, source, action, target_ids, detail)
                 VALUES ('{}', 1, 'old-operator', NULL, 'cli', '{action}', '[]', '{}')",
                new_id(IdKind::Audit),
                detail.to_string().replace('\'', "''")
            ),
        )
        .await;
    }
    let dump = db.dump().await;
    assert!(
        dump_of_table(&dump, "attempts").contains(BEARER_TOKEN),
        "set up"
    );
    assert!(
        dump_of_table(&dump, "audit_log").contains(URL_PASSWORD),
        "set up"
    );

    // Back to v4 (undoing v14's index, v13's and v12's columns, v11's table
    // and columns, v10's and v9's tables, v8's columns and index, v7's table
    // and index and v6's column first), then forward: the v5 step runs on
    // these rows.
    execute(&db, "DROP INDEX attempts_endpoint").await;
    execute(&db, "ALTER TABLE api_keys DROP COLUMN expires_at").await;
    execute(&db, "ALTER TABLE idempotency_keys DROP COLUMN request_hash").await;
    execute(&db, "DROP TABLE failure_causes").await;
    for column in ["state_changed_by", "secret_rotated_at"] {
        execute(&db, &format!("ALTER TABLE endpoints DROP COLUMN {column}")).await;
    }
    execute(&db, "DROP TABLE endpoint_rate_limits").await;
    execute(&db, "DROP TABLE breaker_transitions").await;
    execute(&db, "DROP TABLE endpoint_breakers").await;
    execute(&db, "DROP INDEX events_tenant").await;
    for column in ["payload_size", "payload_removed_at", "payload_removed_by"] {
        execute(&db, &format!("ALTER TABLE events DROP COLUMN {column}")).await;
    }
    execute(&db, "DROP INDEX idempotency_keys_created").await;
    execute(&db, "DROP TABLE retention_state").await;
    execute(&db, "DROP INDEX endpoints_paused_until").await;
    execute(&db, "ALTER TABLE endpoints DROP COLUMN paused_until").await;
    execute(&db, "DELETE FROM schema_migrations WHERE version >= 5").await;
    assert_eq!(store.migrate().await.expect("migrate"), 10);
    let after = db.dump().await;
    assert_no_plain_secret(&dump_of_table(&after, "attempts"), "the attempts table");
    assert_no_plain_secret(&dump_of_table(&after, "audit_log"), "the audit log");
    let detail = store.get_delivery(&delivery.id).await.expect("delivery");
    let kept: Vec<(String, String)> = detail.attempts[0].request_headers.clone();
    assert_eq!(
        kept,
        [
            ("content-type".to_string(), "application/json".to_string()),
            ("authorization".to_string(), "Bearer ****".to_string()),
            ("x-api-key".to_string(), "****".to_string()),
            ("x-team".to_string(), "payments".to_string()),
            ("webhook-signature".to_string(), "v1,****".to_string()),
        ],
        "secrets masked, everything else as it was"
    );
    assert!(
        dump_of_table(&after, "audit_log").contains("http://bob:****@a.example/"),
        "URLs are masked, not dropped"
    );
    // Everything but the scrubbed values is untouched; the endpoints table
    // keeps the values it sends (no key here).
    assert_eq!(
        dump_of_table(&dump, "endpoints"),
        dump_of_table(&after, "endpoints")
    );
    for table in ["attempts", "audit_log", "deliveries", "events"] {
        let masked_before = dump_of_table(&dump, table)
            .replace(&format!("Bearer {BEARER_TOKEN}"), "Bearer ****")
            .replace(API_KEY, "****")
            .replace(URL_PASSWORD, "****");
        assert_eq!(masked_before, dump_of_table(&after, table), "{table}");
    }
    // The endpoint itself still holds the values it sends (no key here).
    assert_eq!(
        store
            .get_endpoint(&endpoint.id)
            .await
            .expect("endpoint")
            .url,
        with_userinfo("http://127.0.0.1:9/")
    );
}

/// Runs one statement on the test database, as an old hookline would have.
async fn execute(db: &TestDb, statement: &str) {
    use sqlx::Connection;
    let statement = sqlx::AssertSqlSafe(statement.to_string());
    match db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url)
                .await
                .expect("connect");
            sqlx::query(statement)
                .execute(&mut conn)
                .await
                .expect("execute");
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
            sqlx::query(statement)
                .execute(&mut conn)
                .await
                .expect("execute");
        }
    }
}

// --- encryption at rest ---------------------------------------------------------

/// With a key, the endpoints table holds no secret in plain; deliveries,
/// claimed or handed off, arrive with the real credentials and a signature
/// the sink verifies, before and after a rotation.
async fn with_a_key_the_table_holds_no_secret_and_deliveries_verify(backend: Backend) {
    install_crypto();
    let db = TestDb::new(backend);
    let store = open(&db, Some(KEY)).await;
    let config = test_config(&db.url);
    let dispatcher = RunningDispatcher::start(&store, &config);
    let ops = test_ops(&store, &config);
    let handing_off = ops.clone().handing_off_to(dispatcher.hand_off.clone());
    let first_sink = verifying_sink(&[]).await;
    let endpoint = vault(&ops, &first_sink.url()).await;
    let secret = endpoint.secret.clone();
    let sink = verifying_sink(&[&secret]).await;
    // Pointed at the verifying sink through an edit (sealing on update too),
    // keeping the password by giving its mask back.
    let url = with_userinfo(&sink.url()).replace(URL_PASSWORD, "****");
    ops.update_endpoint(
        &endpoint.id,
        &hookline::ops::EndpointChanges {
            url: Some(url),
            ..Default::default()
        },
    )
    .await
    .expect("point at the sink");

    let dump = dump_of_table(&db.dump().await, "endpoints");
    assert_no_plain_secret(&dump, "the endpoints table");
    assert!(
        !dump.contains(key_material(&secret)),
        "the signing secret is in plain:\n{dump}"
    );
    assert!(
        dump.contains("enc:v1:") && dump.contains("payments"),
        "{dump}"
    );

    ops.publish(event(1)).await.expect("publish (claimed)");
    handing_off
        .publish(event(2))
        .await
        .expect("publish (handed off)");
    assert!(sink.wait_for(2, WAIT).await, "deliveries never arrived");
    let stats = sink.stats();
    assert_eq!((stats.accepted, stats.bad_signature), (2, 0), "{stats:?}");
    for request in sink.requests() {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {BEARER_TOKEN}").as_str())
        );
        assert_eq!(request.header("x-api-key"), Some(API_KEY));
    }

    // Rotation seals the new secret; both sign during the grace period.
    let rotated = ops.rotate_secret(&endpoint.id, None).await.expect("rotate");
    let new_sink_secrets = [rotated.secret.as_str()];
    let dump = dump_of_table(&db.dump().await, "endpoints");
    assert!(!dump.contains(key_material(&rotated.secret)), "{dump}");
    assert!(!dump.contains(key_material(&secret)), "{dump}");
    let only_new = verifying_sink(&new_sink_secrets).await;
    ops.update_endpoint(
        &endpoint.id,
        &hookline::ops::EndpointChanges {
            url: Some(with_userinfo(&only_new.url())),
            ..Default::default()
        },
    )
    .await
    .expect("point at the new sink");
    ops.publish(event(3)).await.expect("publish after rotation");
    assert!(only_new.wait_for(1, WAIT).await, "nothing after rotation");
    assert_eq!(only_new.stats().bad_signature, 0);
    dispatcher.stop().await;
}

/// Sealed rows read without their key, or with another, are errors that
/// name the endpoint: never a panic, never a value sent.
async fn a_sealed_row_without_its_key_is_an_error_never_sent(backend: Backend) {
    let db = TestDb::new(backend);
    let sealed_by = open(&db, Some(KEY)).await;
    let config = test_config(&db.url);
    let endpoint = vault(&test_ops(&sealed_by, &config), "http://127.0.0.1:9/").await;
    test_ops(&sealed_by, &config)
        .publish(event(1))
        .await
        .expect("publish");
    sealed_by.close().await;

    for (secrets_key, reason) in [
        (None, SealError::NoKey),
        (Some(OTHER_KEY), SealError::WrongKey),
    ] {
        let store = open(&db, secrets_key).await;
        match store.get_endpoint(&endpoint.id).await {
            Err(StoreError::Sealed {
                endpoint_id,
                reason: got,
                ..
            }) => {
                assert_eq!(endpoint_id, endpoint.id);
                assert_eq!(got, reason);
            }
            other => panic!("expected a sealed-secret error, got {other:?}"),
        }
        let err = store.check_secrets().await.expect_err("check refuses");
        assert!(err.to_string().contains(&endpoint.id), "{err}");
        let claim = store
            .claim(&ClaimRequest {
                owner: "dsp_nokey",
                limit: 10,
                lease_ms: 60_000,
                default_max_in_flight: 8,
                default_timeout_ms: 1_000,
                reap_expired: true,
                slots: None,
            })
            .await;
        assert!(
            matches!(claim, Err(StoreError::Sealed { .. })),
            "a claim that cannot open the target sends nothing: {claim:?}"
        );
        store.close().await;
    }

    // The binary refuses to start a dispatcher, naming the setting.
    let output = common::hookline_command(&db.url, &["dispatch"])
        .output()
        .expect("run hookline dispatch");
    assert!(!output.status.success());
    let err = common::stderr(&output);
    assert!(
        err.contains("[secrets] key") && err.contains(&endpoint.id),
        "{err}"
    );
    // With the key it reads again, in full.
    let store = open(&db, Some(KEY)).await;
    let read = store
        .get_endpoint(&endpoint.id)
        .await
        .expect("read with the key");
    assert_eq!(read.url, with_userinfo("http://127.0.0.1:9/"));
    assert_eq!(read.secret, endpoint.secret);
}

/// Endpoints written before a key was set read as they are, and
/// `hookline migrate` with the key seals them (once).
async fn a_key_set_later_seals_what_was_plain(backend: Backend) {
    let db = TestDb::new(backend);
    let plain = open(&db, None).await;
    let config = test_config(&db.url);
    let endpoint = vault(&test_ops(&plain, &config), "http://127.0.0.1:9/").await;
    plain.close().await;
    let before = dump_of_table(&db.dump().await, "endpoints");
    assert!(before.contains(URL_PASSWORD), "stored plain without a key");

    let keyed = open(&db, Some(KEY)).await;
    assert_eq!(
        keyed
            .get_endpoint(&endpoint.id)
            .await
            .expect("plain rows read")
            .secret,
        endpoint.secret
    );
    keyed.close().await;
    let output = common::hookline_command(&db.url, &["migrate"])
        .env("HOOKLINE_SECRETS_KEY", KEY)
        .output()
        .expect("run hookline migrate");
    assert!(output.status.success(), "{}", common::stderr(&output));
    assert!(
        common::stderr(&output).contains("encrypted the secrets of 1 endpoints")
            || common::stdout(&output).contains("encrypted the secrets of 1 endpoints"),
        "{}",
        common::stderr(&output)
    );
    let after = dump_of_table(&db.dump().await, "endpoints");
    assert_no_plain_secret(&after, "the endpoints table");
    assert!(!after.contains(key_material(&endpoint.secret)), "{after}");
    let keyed = open(&db, Some(KEY)).await;
    assert_eq!(keyed.seal_plain_secrets().await.expect("again"), 0);
    let read = keyed.get_endpoint(&endpoint.id).await.expect("read");
    assert_eq!(read.headers, endpoint.headers);
    assert_eq!(read.url, endpoint.url);
    // The CLI with the key shows it masked, and with --show-secret in full.
    let shown = common::hookline_command(&db.url, &["endpoint", "show", "vault", "--json"])
        .env("HOOKLINE_SECRETS_KEY", KEY)
        .output()
        .expect("run hookline endpoint show");
    let text = common::ok(shown);
    assert_no_plain_secret(&text, "endpoint show");
    assert!(text.contains("bob:****@"), "{text}");
}

both_backends!(
    migration_5_scrubs_what_was_kept_in_plain,
    with_a_key_the_table_holds_no_secret_and_deliveries_verify,
    a_sealed_row_without_its_key_is_an_error_never_sent,
    a_key_set_later_seals_what_was_plain,
);
