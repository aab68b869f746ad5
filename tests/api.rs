//! The HTTP API end to end, on SQLite and Postgres: the real server on a free
//! 127.0.0.1 port, driven with reqwest; real sinks receive what a real
//! dispatcher delivers; the database is compared row by row (`dump`) to
//! prove that refused requests wrote nothing.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use serde_json::{Value, json};

use common::{Backend, RunningDispatcher, TestDb, install_crypto, ok, test_config, test_ops};
use hookline::api::{ApiOptions, RunningApi};
use hookline::config::Config;
use hookline::model::IdKind;
use hookline::ops::Ops;
use hookline::sink::{SinkHandle, SinkOptions};
use hookline::store::Store;

const WAIT: Duration = Duration::from_secs(10);

// --- the world a test runs in --------------------------------------------

/// A fresh database, the API serving it, an admin key and an HTTP client.
struct Server {
    db: TestDb,
    store: Store,
    config: Config,
    ops: Ops,
    api: Option<RunningApi>,
    base: String,
    client: reqwest::Client,
    admin: String,
}

/// An answer: status, content type and body.
struct Reply {
    status: u16,
    content_type: String,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a problem document with this status (and, if given, this field at fault).
    #[track_caller]
    fn assert_problem(&self, status: u16, field: Option<&str>) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(
            self.content_type,
            "application/problem+json",
            "{}",
            self.text()
        );
        let problem = self.json();
        assert_eq!(problem["status"], status, "{problem}");
        assert!(
            problem["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("urn:hookline:problem:")),
            "{problem}"
        );
        assert!(problem["title"].is_string(), "{problem}");
        assert!(problem["detail"].is_string(), "{problem}");
        if let Some(field) = field {
            assert_eq!(problem["errors"][0]["field"], field, "{problem}");
            assert!(problem["errors"][0]["reason"].is_string(), "{problem}");
        }
        problem
    }
}

/// A request body.
enum Body {
    None,
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

impl Server {
    async fn start(backend: Backend) -> Server {
        Server::start_with(backend, |_| {}).await
    }

    async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Server {
        install_crypto();
        let db = TestDb::new(backend);
        let mut config = test_config(&db.url);
        tweak(&mut config);
        let store = hookline::store::Store::open_with(
            &db.url,
            hookline::store::OpenMode::CreateAndMigrate,
            hookline::store::StoreOptions::from_config(&config),
        )
        .await
        .expect("open the store");
        let ops = test_ops(&store, &config);
        let (_, admin) = ops
            .create_api_key("admin-key", None, None)
            .await
            .expect("create the admin key");
        let api = hookline::api::start(
            ops.clone(),
            &ApiOptions {
                listen: "127.0.0.1:0".parse().expect("address"),
                open_health_metrics: config.api.open_health_metrics,
                alive_within: std::time::Duration::from_secs(5),
            },
        )
        .await
        .expect("start the API");
        Server {
            base: api.url(),
            api: Some(api),
            db,
            store,
            config,
            ops,
            client: reqwest::Client::new(),
            admin,
        }
    }

    /// A key limited to `tenant`.
    async fn tenant_key(&self, name: &str, tenant: &str) -> String {
        self.ops
            .create_api_key(name, Some(tenant), None)
            .await
            .expect("create a tenant key")
            .1
    }

    async fn send(&self, method: &str, path: &str, key: Option<&str>, body: Body) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        request = match body {
            Body::None => request,
            Body::Json(value) => request
                .header("content-type", "application/json")
                .body(value.to_string()),
            Body::Raw(content_type, bytes) => {
                request.header("content-type", content_type).body(bytes)
            }
        };
        let response = request.send().await.expect("send the request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = response.bytes().await.expect("read the body").to_vec();
        Reply {
            status,
            content_type,
            headers,
            body,
        }
    }

    /// As the admin.
    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let body = body.map_or(Body::None, Body::Json);
        self.send(method, path, Some(&self.admin.clone()), body)
            .await
    }

    /// As the admin, asserting the status; returns the JSON body.
    async fn admin_ok(&self, method: &str, path: &str, body: Option<Value>, status: u16) -> Value {
        let reply = self.admin(method, path, body).await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.text());
        reply.json()
    }

    async fn tenant(&self, name: &str) -> Value {
        self.admin_ok("POST", "/v1/tenants", Some(json!({ "name": name })), 201)
            .await
    }

    /// An endpoint of `tenant` at `url` subscribed to `pattern`.
    async fn endpoint(&self, tenant: &str, name: &str, url: &str, pattern: &str) -> Value {
        let endpoint = self
            .admin_ok(
                "POST",
                "/v1/endpoints",
                Some(json!({ "tenant": tenant, "name": name, "url": url })),
                201,
            )
            .await;
        self.admin_ok(
            "POST",
            "/v1/subscriptions",
            Some(json!({ "endpoint": endpoint["id"], "topic": pattern })),
            201,
        )
        .await;
        endpoint
    }

    async fn publish(&self, tenant: &str, topic: &str, payload: Value) -> Value {
        self.admin_ok(
            "POST",
            "/v1/events",
            Some(json!({ "tenant": tenant, "topic": topic, "payload": payload })),
            202,
        )
        .await
    }

    async fn stop(mut self) {
        if let Some(api) = self.api.take() {
            api.stop().await.expect("stop the API");
        }
    }
}

async fn sink() -> SinkHandle {
    hookline::sink::start(SinkOptions {
        keep: true,
        ..SinkOptions::default()
    })
    .await
    .expect("start a sink")
}

fn id_of(value: &Value) -> String {
    value["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {value}"))
        .to_string()
}

/// An id of the right shape that names nothing.
fn unknown(kind: IdKind) -> String {
    hookline::model::new_id(kind)
}

// --- 1. the whole flow ----------------------------------------------------

async fn full_flow_delivers_to_a_real_sink(backend: Backend) {
    let server = Server::start(backend).await;
    let sink = sink().await;
    let dispatcher = RunningDispatcher::start(&server.store, &server.config);
    let tenant = server.tenant("acme").await;
    assert!(id_of(&tenant).starts_with("ten_"));
    let endpoint = server
        .admin_ok(
            "POST",
            "/v1/endpoints",
            Some(json!({
                "tenant": "acme",
                "name": "orders",
                "url": sink.url(),
                "headers": { "X-Team": "payments" },
                "timeout_ms": 2000,
                "description": "order events",
            })),
            201,
        )
        .await;
    assert_eq!(endpoint["tenant_id"], tenant["id"]);
    assert_eq!(endpoint["headers"]["x-team"], "payments");
    assert_eq!(endpoint["timeout_ms"], 2000);
    assert_eq!(endpoint["state"], "active");
    assert!(
        endpoint["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_"))
    );
    let subscription = server
        .admin_ok(
            "POST",
            "/v1/subscriptions",
            Some(json!({ "endpoint": endpoint["id"], "topic": "order.*" })),
            201,
        )
        .await;
    assert_eq!(subscription["topic"], "order.*");
    assert_eq!(subscription["endpoint_id"], endpoint["id"]);

    let published = server
        .publish("acme", "order.created", json!({ "order": 42 }))
        .await;
    assert_eq!(published["deliveries"], 1);
    assert_eq!(published["duplicate"], false);
    let event_id = id_of(&published);
    assert!(event_id.starts_with("msg_"), "{event_id}");

    assert!(sink.wait_for(1, WAIT).await, "the sink got nothing");
    let request = &sink.requests()[0];
    assert_eq!(request.body, br#"{"order":42}"#);
    assert_eq!(request.header("webhook-id"), Some(event_id.as_str()));
    assert_eq!(request.header("x-team"), Some("payments"));

    // The delivery's history over the API.
    let delivered = common::wait_until(WAIT, || async {
        let page = server
            .admin_ok(
                "GET",
                &format!("/v1/deliveries?event={event_id}"),
                None,
                200,
            )
            .await;
        page["data"][0]["state"] == "delivered"
    })
    .await;
    assert!(delivered, "the delivery never showed as delivered");
    let page = server
        .admin_ok(
            "GET",
            &format!("/v1/deliveries?event={event_id}"),
            None,
            200,
        )
        .await;
    let delivery_id = id_of(&page["data"][0]);
    let detail = server
        .admin_ok("GET", &format!("/v1/deliveries/{delivery_id}"), None, 200)
        .await;
    assert_eq!(detail["delivery"]["endpoint_id"], endpoint["id"]);
    assert_eq!(detail["event"]["payload"], json!({ "order": 42 }));
    assert_eq!(detail["attempts"][0]["status_code"], 200);
    assert_eq!(detail["attempts"][0]["attempt_number"], 1);

    // A manual retry delivers it again.
    let retried = server
        .admin_ok(
            "POST",
            &format!("/v1/deliveries/{delivery_id}/retry"),
            None,
            202,
        )
        .await;
    assert_eq!(retried["id"], delivery_id.as_str());
    assert!(sink.wait_for(2, WAIT).await, "the retry never arrived");

    // Pause holds, resume releases.
    let endpoint_path = format!("/v1/endpoints/{}", id_of(&endpoint));
    let paused = server
        .admin_ok(
            "POST",
            &format!("{endpoint_path}/pause"),
            Some(json!({ "reason": "maintenance" })),
            200,
        )
        .await;
    assert_eq!(paused["state"], "paused");
    assert_eq!(paused["state_reason"], "maintenance");
    assert_eq!(paused["paused_until"], Value::Null, "paused until resumed");
    let held_event = server
        .publish("acme", "order.created", json!({ "order": 43 }))
        .await;
    // Held work says what holds it, in the list and the detail.
    let event_id = id_of(&held_event);
    let held = server
        .admin_ok(
            "GET",
            &format!("/v1/deliveries?event={event_id}"),
            None,
            200,
        )
        .await;
    assert_eq!(held["data"][0]["state"], "pending", "{held}");
    assert_eq!(held["data"][0]["held"], "endpoint_paused", "{held}");
    let held_id = held["data"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let detail = server
        .admin_ok("GET", &format!("/v1/deliveries/{held_id}"), None, 200)
        .await;
    assert_eq!(detail["delivery"]["held"], "endpoint_paused");
    let earlier = server
        .admin_ok("GET", &format!("/v1/deliveries/{delivery_id}"), None, 200)
        .await;
    assert_eq!(
        earlier["delivery"]["held"],
        Value::Null,
        "delivered work is not held"
    );
    let resumed = server
        .admin_ok("POST", &format!("{endpoint_path}/resume"), None, 200)
        .await;
    assert_eq!(resumed["state"], "active");
    assert!(
        sink.wait_for(3, WAIT).await,
        "the held delivery never arrived"
    );

    // A pause with an end keeps it, shows it, and a resume by hand clears it.
    let until = hookline::model::format_rfc3339(hookline::model::now_millis() + 3_600_000);
    let paused = server
        .admin_ok(
            "POST",
            &format!("{endpoint_path}/pause"),
            Some(json!({ "reason": "deploy window", "until": until })),
            200,
        )
        .await;
    assert_eq!(paused["state"], "paused");
    assert_eq!(paused["state_reason"], "deploy window");
    let shown_until = paused["paused_until"].as_str().unwrap_or_default();
    assert_eq!(
        hookline::model::parse_rfc3339(shown_until),
        hookline::model::parse_rfc3339(&until),
        "{paused}"
    );
    let shown = server.admin_ok("GET", &endpoint_path, None, 200).await;
    assert_eq!(shown["paused_until"], paused["paused_until"]);
    let resumed = server
        .admin_ok("POST", &format!("{endpoint_path}/resume"), None, 200)
        .await;
    assert_eq!(resumed["state"], "active");
    assert_eq!(resumed["paused_until"], Value::Null);

    // Patch, rotate, recover (nothing dead: zero queued), delete.
    let patched = server
        .admin_ok(
            "PATCH",
            &endpoint_path,
            Some(json!({ "timeout_ms": null, "description": "renamed", "name": "orders-v2" })),
            200,
        )
        .await;
    assert_eq!(patched["timeout_ms"], Value::Null);
    assert_eq!(patched["name"], "orders-v2");
    let rotated = server
        .admin_ok("POST", &format!("{endpoint_path}/rotate-secret"), None, 200)
        .await;
    assert_ne!(rotated["secret"], endpoint["secret"]);
    assert!(
        rotated["previous_secret_expires_at"].is_string(),
        "{rotated}"
    );
    // Rotation answers with the new secret in full; the secret route shows
    // it and the old one, which still signs.
    let secrets = server
        .admin_ok("GET", &format!("{endpoint_path}/secret"), None, 200)
        .await;
    assert_eq!(secrets["secret"], rotated["secret"]);
    assert_eq!(secrets["previous_secret"], endpoint["secret"]);
    assert_eq!(
        secrets["previous_secret_expires_at"],
        rotated["previous_secret_expires_at"]
    );
    let recovered = server
        .admin_ok(
            "POST",
            &format!("{endpoint_path}/recover"),
            Some(json!({ "since": "1h" })),
            202,
        )
        .await;
    assert_eq!(recovered["queued"], 0);
    let sub_path = format!("/v1/subscriptions/{}", id_of(&subscription));
    let changed = server
        .admin_ok(
            "PATCH",
            &sub_path,
            Some(json!({ "topic": "order.**" })),
            200,
        )
        .await;
    assert_eq!(changed["topic"], "order.**");

    // Health and metrics see it all.
    let health = server.admin_ok("GET", "/healthz", None, 200).await;
    assert_eq!(health["status"], "ok");
    let metrics = server.admin("GET", "/metrics", None).await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.content_type.starts_with("text/plain"),
        "{}",
        metrics.content_type
    );
    // Counters are the process's (shared by every test in this binary, so
    // at least what this test did); tests/metrics.rs checks them exactly.
    let succeeded = |text: &str| -> Option<i64> {
        text.lines()
            .find(|l| {
                l.starts_with("hookline_attempts_total{outcome=\"succeeded\",error_kind=\"none\"}")
            })?
            .rsplit(' ')
            .next()?
            .parse()
            .ok()
    };
    let counted = common::wait_until(WAIT, || async {
        let text = server.admin("GET", "/metrics", None).await.text();
        succeeded(&text).is_some_and(|n| n >= 3)
    })
    .await;
    let text = server.admin("GET", "/metrics", None).await.text();
    assert!(
        counted,
        "fewer than 3 succeeded attempts counted in\n{text}"
    );
    assert!(text.contains("hookline_database_up 1"), "{text}");
    assert!(
        text.contains("hookline_endpoints{state=\"active\"}"),
        "{text}"
    );
    assert!(
        text.contains("hookline_api_requests_total{route=\"/v1/endpoints/{id}\""),
        "{text}"
    );
    assert!(text.contains("hookline_attempt_duration_seconds_bucket{le=\"+Inf\"}"));

    let deleted = server.admin_ok("DELETE", &sub_path, None, 200).await;
    assert_eq!(deleted["id"], subscription["id"]);
    let deleted = server.admin_ok("DELETE", &endpoint_path, None, 200).await;
    assert_eq!(deleted["id"], endpoint["id"]);
    server
        .admin("GET", &endpoint_path, None)
        .await
        .assert_problem(404, None);

    // Every change is in the audit log under the key's name, from the API.
    let audit = server.store.list_audit(None, 100).await.expect("audit");
    let api_actions: Vec<&str> = audit
        .items
        .iter()
        .filter(|a| a.actor == "admin-key")
        .map(|a| {
            assert_eq!(a.source, hookline::model::Source::Api);
            assert_eq!(a.client_addr.as_deref(), Some("127.0.0.1"));
            a.action.as_str()
        })
        .collect();
    for action in [
        "tenant.create",
        "endpoint.create",
        "subscription.create",
        "delivery.retry",
        "endpoint.pause",
        "endpoint.resume",
        "endpoint.update",
        "endpoint.rotate_secret",
        "endpoint.reveal_secrets",
        "subscription.update",
        "subscription.delete",
        "endpoint.delete",
    ] {
        assert!(
            api_actions.contains(&action),
            "{action} missing from the audit log: {api_actions:?}"
        );
    }
    dispatcher.stop().await;
    server.stop().await;
}

// --- secrets kept secret ------------------------------------------------------

/// A URL with a password and `Authorization`/`X-Api-Key` headers: every
/// answer shows them masked, the receiver gets them in plain, the history
/// keeps them masked, the signing secret is shown only on create, rotate
/// and the audited secret route, and an edit of what was shown keeps them.
async fn secrets_are_masked_in_every_answer(backend: Backend) {
    use common::{API_KEY, BEARER_TOKEN, URL_PASSWORD, assert_no_plain_secret, dump_of_table};
    let server = Server::start(backend).await;
    let sink = sink().await;
    let dispatcher = RunningDispatcher::start(&server.store, &server.config);
    server.tenant("acme").await;
    let mut answers = String::new();
    let created = server
        .admin_ok(
            "POST",
            "/v1/endpoints",
            Some(json!({
                "tenant": "acme",
                "name": "vault",
                "url": common::with_userinfo(&sink.url()),
                "headers": {
                    "Authorization": format!("Bearer {BEARER_TOKEN}"),
                    "X-Api-Key": API_KEY,
                    "X-Team": "payments",
                },
            })),
            201,
        )
        .await;
    answers.push_str(&created.to_string());
    let secret = created["secret"].as_str().expect("a secret").to_string();
    assert!(
        secret.starts_with("whsec_") && !secret.contains('…'),
        "create shows it in full"
    );
    assert_eq!(
        created["url"],
        common::with_userinfo(&sink.url()).replace(URL_PASSWORD, "****")
    );
    assert_eq!(created["headers"]["authorization"], "Bearer ****");
    assert_eq!(created["headers"]["x-api-key"], "****");
    assert_eq!(created["headers"]["x-team"], "payments");
    let path = format!("/v1/endpoints/{}", id_of(&created));

    // GET and the list show a hint of the signing secret (breaking change).
    let got = server.admin_ok("GET", &path, None, 200).await;
    let listed = server.admin_ok("GET", "/v1/endpoints", None, 200).await;
    for shown in [&got, &listed["data"][0]] {
        let hint = shown["secret"].as_str().expect("a hint");
        assert!(hint.starts_with("whsec_") && hint.contains('…'), "{hint}");
        assert!(!listed.to_string().contains(&secret[6..]), "{listed}");
        assert_eq!(shown["url"], created["url"]);
        assert_eq!(shown["headers"], created["headers"]);
    }
    answers.push_str(&got.to_string());
    answers.push_str(&listed.to_string());

    // The receiver gets the real values; the history keeps them masked.
    server
        .admin_ok(
            "POST",
            "/v1/subscriptions",
            Some(json!({ "endpoint": created["id"], "topic": "*" })),
            201,
        )
        .await;
    server
        .publish("acme", "order.created", json!({ "n": 1 }))
        .await;
    assert!(sink.wait_for(1, WAIT).await, "the sink got nothing");
    let received = &sink.requests()[0];
    let bearer = format!("Bearer {BEARER_TOKEN}");
    assert_eq!(received.header("authorization"), Some(bearer.as_str()));
    assert_eq!(received.header("x-api-key"), Some(API_KEY));
    let recorded = common::wait_until(WAIT, || async {
        let page = server.admin_ok("GET", "/v1/deliveries", None, 200).await;
        page["data"][0]["state"] == "delivered"
    })
    .await;
    assert!(recorded, "the delivery never showed as delivered");
    let page = server.admin_ok("GET", "/v1/deliveries", None, 200).await;
    let detail = server
        .admin_ok(
            "GET",
            &format!("/v1/deliveries/{}", id_of(&page["data"][0])),
            None,
            200,
        )
        .await;
    let headers = detail["attempts"][0]["request_headers"].to_string();
    assert!(
        headers.contains("Bearer ****") && headers.contains("payments"),
        "{headers}"
    );
    answers.push_str(&detail.to_string());

    // An edit that sends back what was shown keeps every secret.
    let patched = server
        .admin_ok(
            "PATCH",
            &path,
            Some(json!({ "url": got["url"], "headers": got["headers"], "description": "kept" })),
            200,
        )
        .await;
    answers.push_str(&patched.to_string());
    server
        .publish("acme", "order.created", json!({ "n": 2 }))
        .await;
    assert!(
        sink.wait_for(2, WAIT).await,
        "the second delivery never arrived"
    );
    let received = &sink.requests()[1];
    assert_eq!(received.header("authorization"), Some(bearer.as_str()));
    assert_eq!(received.header("x-api-key"), Some(API_KEY));
    // A mask with nothing behind it conflicts with the endpoint as it is,
    // naming the field.
    server
        .admin(
            "PATCH",
            &path,
            Some(json!({ "headers": { "X-Other-Token": "****" } })),
        )
        .await
        .assert_problem(409, Some("headers"));

    // The secret route shows it in full, and says who looked.
    let revealed = server
        .admin_ok("GET", &format!("{path}/secret"), None, 200)
        .await;
    assert_eq!(revealed["secret"], secret.as_str());
    assert_eq!(revealed["previous_secret"], Value::Null);
    let audit = server.store.list_audit(None, 100).await.expect("audit");
    let reveal = audit
        .items
        .iter()
        .find(|a| a.action == "endpoint.reveal_secrets")
        .expect("the reveal is audited");
    assert_eq!(reveal.actor, "admin-key");
    assert_eq!(reveal.target_ids, [id_of(&created)]);

    assert_no_plain_secret(&answers, "an API answer");
    let dump = server.db.dump().await;
    assert_no_plain_secret(&dump_of_table(&dump, "audit_log"), "the audit log");
    assert_no_plain_secret(&dump_of_table(&dump, "attempts"), "the attempts table");
    dispatcher.stop().await;
    server.stop().await;
}

// --- 2. the payload, byte for byte -----------------------------------------

/// The payload of the engine's byte-for-byte test: unsorted keys, odd
/// whitespace, `1.0`, `1e2`, a 30-digit integer, escapes next to raw
/// characters, `-0.0` and a duplicate key. Inside a request body its
/// surrounding whitespace is the envelope's, so the value is what is kept.
const ODD_PAYLOAD: &str = " \n{ \"zeta\" :1.0,\"alpha\":  1e2,\n\t\"big\": 123456789012345678901234567890 ,\r\n  \"name\":\"caf\\u00e9\", \"raw\": \"caf\u{e9}\", \"alpha\" : \"again\", \"nested\":{\"b\":[ ],\"a\":-0.0}   }\n";

async fn gnarly_payload_arrives_byte_identical(backend: Backend) {
    let server = Server::start(backend).await;
    let sink = sink().await;
    let dispatcher = RunningDispatcher::start(&server.store, &server.config);
    server.tenant("acme").await;
    server
        .endpoint("acme", "orders", &sink.url(), "order.*")
        .await;
    let body =
        format!("{{\"tenant\":\"acme\",\"topic\":\"order.created\",\"payload\":{ODD_PAYLOAD}}}");
    let admin = server.admin.clone();
    let reply = server
        .send(
            "POST",
            "/v1/events",
            Some(&admin),
            Body::Raw("application/json", body.into_bytes()),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let expected = ODD_PAYLOAD.trim();
    assert!(sink.wait_for(1, WAIT).await, "nothing delivered");
    let received = &sink.requests()[0];
    assert_eq!(
        received.body,
        expected.as_bytes(),
        "body changed in transit:\n got  {}\n sent {expected}",
        String::from_utf8_lossy(&received.body)
    );
    // And the API shows it back exactly as published.
    let event_id = id_of(&reply.json());
    let page = server
        .admin_ok(
            "GET",
            &format!("/v1/deliveries?event={event_id}"),
            None,
            200,
        )
        .await;
    let detail = server
        .admin(
            "GET",
            &format!("/v1/deliveries/{}", id_of(&page["data"][0])),
            None,
        )
        .await;
    assert!(
        detail.text().contains(&format!("\"payload\":{expected},")),
        "{}",
        detail.text()
    );
    dispatcher.stop().await;
    server.stop().await;
}

// --- 3. bad input: a problem naming the field, nothing written -------------

async fn every_error_answers_a_problem_and_changes_nothing(backend: Backend) {
    let server = Server::start(backend).await;
    server.tenant("acme").await;
    let endpoint = server
        .endpoint("acme", "orders", "http://127.0.0.1:9/", "order.*")
        .await;
    let ep = id_of(&endpoint);
    let published = server
        .publish("acme", "order.created", json!({ "n": 1 }))
        .await;
    let page = server
        .admin_ok(
            "GET",
            &format!("/v1/deliveries?event={}", id_of(&published)),
            None,
            200,
        )
        .await;
    // No dispatcher runs: this delivery stays pending, so a retry conflicts.
    let pending = id_of(&page["data"][0]);
    let before = server.db.dump().await;

    let json_body = |v: Value| Body::Json(v);
    let big = "x".repeat(300 * 1024);
    let huge = "x".repeat(400 * 1024);
    #[rustfmt::skip]
    let cases: Vec<(&str, String, Body, u16, Option<&str>)> = vec![
        // Malformed JSON, wrong media type, unknown and missing fields, wrong types.
        ("POST", "/v1/events".into(), Body::Raw("application/json", b"{\"tenant\": ".to_vec()), 400, Some("body")),
        ("POST", "/v1/events".into(), Body::Raw("application/json", br#"{"tenant":"acme","topic":"a.b","payload":{}} {}"#.to_vec()), 400, Some("body")),
        ("POST", "/v1/events".into(), Body::Raw("text/plain", b"{}".to_vec()), 415, None),
        ("POST", "/v1/tenants".into(), Body::None, 415, None),
        ("POST", "/v1/endpoints".into(), json_body(json!({ "tenant": "acme", "name": "x", "url": "http://a.example/", "colour": "red" })), 422, Some("colour")),
        ("POST", "/v1/endpoints".into(), json_body(json!({ "tenant": "acme", "name": 5, "url": "http://a.example/" })), 422, Some("name")),
        ("POST", "/v1/endpoints".into(), json_body(json!({ "tenant": "acme", "url": "http://a.example/" })), 422, Some("name")),
        ("POST", "/v1/events".into(), json_body(json!({ "tenant": "acme", "topic": "order.created" })), 422, Some("payload")),
        // Field validation.
        ("POST", "/v1/endpoints".into(), json_body(json!({ "tenant": "acme", "name": "x", "url": "ftp://a.example/" })), 422, Some("url")),
        ("POST", "/v1/endpoints".into(), json_body(json!({ "tenant": "acme", "name": "x", "url": "http://a.example/", "timeout_ms": 5 })), 422, Some("timeout_ms")),
        ("POST", "/v1/endpoints".into(), json_body(json!({ "tenant": "acme", "name": "x", "url": "http://a.example/", "headers": { "webhook-id": "x" } })), 422, Some("headers.webhook-id")),
        ("POST", "/v1/endpoints".into(), json_body(json!({ "tenant": "acme", "name": "orders", "url": "http://a.example/" })), 409, Some("name")),
        ("POST", "/v1/endpoints".into(), json_body(json!({ "tenant": "acme", "name": "x", "url": "http://a.example/", "secret": "nope" })), 422, Some("secret")),
        ("POST", "/v1/tenants".into(), json_body(json!({ "name": "acme" })), 409, Some("name")),
        ("POST", "/v1/tenants".into(), json_body(json!({ "name": "has space" })), 422, Some("name")),
        ("POST", "/v1/subscriptions".into(), json_body(json!({ "endpoint": ep, "topic": "Order.*" })), 422, Some("topic")),
        ("POST", "/v1/subscriptions".into(), json_body(json!({ "endpoint": ep, "topic": "order.*" })), 409, Some("topic")),
        ("POST", "/v1/events".into(), json_body(json!({ "tenant": "acme", "topic": "Order Created", "payload": {} })), 422, Some("topic")),
        // hookline's own topics: subscribed to, never published by producers.
        ("POST", "/v1/events".into(), json_body(json!({ "tenant": "acme", "topic": "hookline.endpoint.disabled", "payload": {} })), 422, Some("topic")),
        ("POST", "/v1/events".into(), json_body(json!({ "broadcast": true, "topic": "hookline", "payload": {} })), 422, Some("topic")),
        ("POST", "/v1/events".into(), json_body(json!({ "topic": "order.created", "payload": {} })), 403, Some("tenant")),
        ("POST", "/v1/events".into(), json_body(json!({ "tenant": "acme", "broadcast": true, "topic": "order.created", "payload": {} })), 422, Some("tenant")),
        ("POST", "/v1/events".into(), json_body(json!({ "tenant": "acme", "topic": "order.created", "payload": {}, "idempotency_key": "" })), 422, Some("idempotency_key")),
        ("PATCH", format!("/v1/endpoints/{ep}"), json_body(json!({})), 422, Some("body")),
        ("PATCH", format!("/v1/endpoints/{ep}"), json_body(json!({ "url": "mailto:x@example.com" })), 422, Some("url")),
        ("POST", format!("/v1/endpoints/{ep}/pause"), json_body(json!({ "why": "x" })), 422, Some("why")),
        ("POST", format!("/v1/endpoints/{ep}/pause"), json_body(json!({ "until": "2020-01-01T00:00:00Z" })), 409, Some("until")),
        ("POST", format!("/v1/endpoints/{ep}/pause"), json_body(json!({ "until": "in a bit" })), 422, Some("until")),
        ("POST", format!("/v1/endpoints/{ep}/pause"), json_body(json!({ "reason": "x", "until": "04:00" })), 422, Some("until")),
        ("POST", format!("/v1/endpoints/{ep}/rotate-secret"), json_body(json!({ "secret": "whsec_!!" })), 422, Some("secret")),
        ("POST", format!("/v1/endpoints/{ep}/recover"), json_body(json!({ "since": "yesterday" })), 422, Some("since")),
        ("POST", format!("/v1/endpoints/{ep}/recover"), json_body(json!({ "since": "1h", "state": "pending" })), 422, Some("state")),
        ("POST", format!("/v1/endpoints/{ep}/recover"), json_body(json!({ "since": "1h", "state": "gone" })), 422, Some("state")),
        // Sizes.
        ("POST", "/v1/events".into(), json_body(json!({ "tenant": "acme", "topic": "order.created", "payload": big })), 413, Some("payload")),
        ("POST", "/v1/events".into(), json_body(json!({ "tenant": "acme", "topic": "order.created", "payload": huge })), 413, Some("body")),
        // Unknown ids: in the path, in a body, in a query.
        ("GET", format!("/v1/endpoints/{}", unknown(IdKind::Endpoint)), Body::None, 404, None),
        ("GET", "/v1/endpoints/not-an-id".into(), Body::None, 404, None),
        ("GET", format!("/v1/tenants/{}", unknown(IdKind::Tenant)), Body::None, 404, None),
        ("DELETE", "/v1/tenants/nobody".into(), Body::None, 404, None),
        ("GET", format!("/v1/subscriptions/{}", unknown(IdKind::Subscription)), Body::None, 404, None),
        ("DELETE", format!("/v1/subscriptions/{ep}"), Body::None, 404, None),
        ("GET", format!("/v1/deliveries/{}", unknown(IdKind::Delivery)), Body::None, 404, None),
        ("POST", format!("/v1/deliveries/{}/retry", unknown(IdKind::Delivery)), Body::None, 404, None),
        ("POST", format!("/v1/endpoints/{}/pause", unknown(IdKind::Endpoint)), Body::None, 404, None),
        ("POST", "/v1/subscriptions".into(), json_body(json!({ "endpoint": unknown(IdKind::Endpoint), "topic": "a.b" })), 404, Some("endpoint")),
        ("POST", "/v1/events".into(), json_body(json!({ "tenant": "globex", "topic": "a.b", "payload": {} })), 404, Some("tenant")),
        ("POST", "/v1/endpoints".into(), json_body(json!({ "tenant": "globex", "name": "x", "url": "http://a.example/" })), 404, Some("tenant")),
        ("GET", format!("/v1/deliveries?endpoint={}", unknown(IdKind::Endpoint)), Body::None, 404, Some("endpoint")),
        // Query parameters.
        ("GET", "/v1/deliveries?limit=0".into(), Body::None, 400, Some("limit")),
        ("GET", "/v1/deliveries?limit=lots".into(), Body::None, 400, Some("limit")),
        ("GET", "/v1/deliveries?state=done".into(), Body::None, 400, Some("state")),
        ("GET", "/v1/deliveries?cursor=garbage".into(), Body::None, 400, Some("cursor")),
        ("GET", "/v1/deliveries?since=later".into(), Body::None, 400, Some("since")),
        ("GET", "/v1/deliveries?event=dlv_x".into(), Body::None, 400, Some("event")),
        ("GET", "/v1/deliveries?colour=red".into(), Body::None, 400, Some("colour")),
        // State conflicts, unknown routes and methods.
        ("POST", format!("/v1/deliveries/{pending}/retry"), Body::None, 409, None),
        ("GET", "/v1/nothing-here".into(), Body::None, 404, None),
        ("PUT", "/v1/events".into(), Body::None, 405, None),
    ];
    let admin = server.admin.clone();
    for (method, path, body, status, field) in cases {
        let reply = server.send(method, &path, Some(&admin), body).await;
        let problem = reply.assert_problem(status, field);
        assert!(
            !problem["detail"].as_str().unwrap_or_default().is_empty(),
            "{method} {path}: {problem}"
        );
    }
    // The idempotency key in the header and the body must agree.
    let reply = server
        .client
        .post(format!("{}/v1/events", server.base))
        .header("authorization", format!("Bearer {admin}"))
        .header("content-type", "application/json")
        .header("idempotency-key", "one")
        .body(
            json!({ "tenant": "acme", "topic": "a.b", "payload": {}, "idempotency_key": "two" })
                .to_string(),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(reply.status().as_u16(), 409);
    assert_eq!(
        before,
        server.db.dump().await,
        "a refused request changed the database"
    );
    // A key reused with a different event: 409 naming the original, and
    // nothing new; the identical request again is the duplicate it was.
    let keyed = |payload: Value| json!({ "tenant": "acme", "topic": "a.b", "payload": payload, "idempotency_key": "k-409" });
    let original = server
        .admin_ok("POST", "/v1/events", Some(keyed(json!({ "n": 1 }))), 202)
        .await;
    let original_id = original["id"].as_str().unwrap_or_default().to_string();
    let after_original = server.db.dump().await;
    let conflict = server
        .admin("POST", "/v1/events", Some(keyed(json!({ "n": 2 }))))
        .await;
    let problem = conflict.assert_problem(409, None);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains(&original_id),
        "{problem}"
    );
    assert_eq!(
        after_original,
        server.db.dump().await,
        "a conflict created something"
    );
    let repeat = server
        .admin_ok("POST", "/v1/events", Some(keyed(json!({ "n": 1 }))), 202)
        .await;
    assert_eq!(
        (repeat["id"].as_str(), repeat["duplicate"].as_bool()),
        (Some(original_id.as_str()), Some(true))
    );
    server.stop().await;
}

/// One answer names every field at fault, as the client sent it: wrong
/// types, unknown and missing fields and broken rules together; nothing
/// is written.
async fn a_problem_names_every_bad_field(backend: Backend) {
    let server = Server::start(backend).await;
    server.tenant("acme").await;
    let endpoint = server
        .endpoint("acme", "orders", "http://127.0.0.1:9/", "order.*")
        .await;
    let ep = id_of(&endpoint);
    let before = server.db.dump().await;
    let cases = [
        (
            "POST",
            "/v1/endpoints".to_string(),
            json!({ "tenant": "acme", "name": 5, "url": "ftp://x.example/", "timeout_ms": 5,
                    "colour": "red", "headers": { "webhook-id": "x", "X-Ok": "fine" } }),
            vec!["colour", "headers.webhook-id", "name", "timeout_ms", "url"],
        ),
        (
            "POST",
            "/v1/endpoints".to_string(),
            json!({ "url": "mailto:x@example.com", "max_in_flight": 0, "rate_limit_burst": 5 }),
            vec!["max_in_flight", "name", "rate_limit_burst", "url"],
        ),
        (
            "PATCH",
            format!("/v1/endpoints/{ep}"),
            json!({ "name": "a b", "description": "d".repeat(501), "rate_limit": null,
                    "rate_limit_burst": 5 }),
            vec!["description", "name", "rate_limit_burst"],
        ),
        (
            "POST",
            "/v1/events".to_string(),
            json!({ "tenant": "acme", "broadcast": true, "topic": "Not A Topic",
                    "idempotency_key": "" }),
            vec!["idempotency_key", "payload", "tenant", "topic"],
        ),
    ];
    for (method, path, body, fields) in cases {
        let reply = server.admin(method, &path, Some(body.clone())).await;
        let problem = reply.assert_problem(422, None);
        let mut named: Vec<&str> = problem["errors"]
            .as_array()
            .map(|errors| errors.iter().filter_map(|e| e["field"].as_str()).collect())
            .unwrap_or_default();
        named.sort_unstable();
        assert_eq!(named, fields, "{method} {path} {body}: {problem}");
        for field in &fields {
            assert!(
                problem["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(field),
                "the detail names {field}: {problem}"
            );
        }
    }
    assert_eq!(before, server.db.dump().await, "a refused request wrote");
    server.stop().await;
}

/// What the document calls valid is taken: a `null` body where the body
/// may be left out, query parameters sent empty (as if left out), whole
/// numbers written with a fraction; and what it calls invalid is refused:
/// `null` for a field that cannot be reset, an array for an object.
async fn the_server_takes_what_the_document_allows(backend: Backend) {
    let server = Server::start(backend).await;
    server.tenant("acme").await;
    let endpoint = server
        .endpoint("acme", "orders", "http://127.0.0.1:9/", "order.*")
        .await;
    let ep = id_of(&endpoint);
    let admin = server.admin.clone();
    for action in ["pause", "rotate-secret"] {
        let path = format!("/v1/endpoints/{ep}/{action}");
        let null = Body::Raw("application/json", b"null".to_vec());
        let reply = server.send("POST", &path, Some(&admin), null).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    }
    let page = server
        .admin_ok(
            "GET",
            "/v1/deliveries?state=&tenant=&endpoint=&topic=&event=&since=&until=&cursor=&limit=",
            None,
            200,
        )
        .await;
    assert!(page["data"].is_array(), "{page}");
    let changed = server
        .admin_ok(
            "PATCH",
            &format!("/v1/endpoints/{ep}"),
            Some(json!({ "rate_limit": 50.0, "timeout_ms": 1500.0 })),
            200,
        )
        .await;
    assert_eq!(
        (changed["rate_limit"].clone(), changed["timeout_ms"].clone()),
        (json!(50), json!(1500)),
        "{changed}"
    );
    let before = server.db.dump().await;
    for (method, path, body, field) in [
        (
            "PATCH",
            format!("/v1/endpoints/{ep}"),
            json!({ "name": null }),
            "name",
        ),
        (
            "PATCH",
            format!("/v1/endpoints/{ep}"),
            json!({ "rate_limit": 50.5 }),
            "rate_limit",
        ),
        (
            "POST",
            format!("/v1/endpoints/{ep}/pause"),
            json!([null, null]),
            "body",
        ),
        ("POST", "/v1/tenants".to_string(), json!(["globex"]), "body"),
    ] {
        server
            .admin(method, &path, Some(body))
            .await
            .assert_problem(422, Some(field));
    }
    assert_eq!(before, server.db.dump().await, "a refused request wrote");
    server.stop().await;
}

// --- 4. authentication -------------------------------------------------------

async fn auth_refusals(backend: Backend) {
    let server = Server::start(backend).await;
    server.tenant("acme").await;
    let before = server.db.dump().await;
    let body = || Body::Json(json!({ "name": "globex" }));
    for (key, why) in [
        (None, "no header"),
        (Some("hlk_nottherightkeyatall"), "unknown key"),
        (Some("not even a key"), "malformed key"),
    ] {
        let reply = server.send("POST", "/v1/tenants", key, body()).await;
        reply.assert_problem(401, None);
        assert!(
            reply.headers.contains_key("www-authenticate"),
            "{why}: no WWW-Authenticate"
        );
        server
            .send("GET", "/v1/tenants", key, Body::None)
            .await
            .assert_problem(401, None);
        server
            .send("GET", "/healthz", key, Body::None)
            .await
            .assert_problem(401, None);
        server
            .send("GET", "/metrics", key, Body::None)
            .await
            .assert_problem(401, None);
    }
    // Another scheme is refused too.
    let reply = server
        .client
        .get(format!("{}/v1/tenants", server.base))
        .header("authorization", format!("Basic {}", server.admin))
        .send()
        .await
        .expect("send");
    assert_eq!(reply.status().as_u16(), 401);
    assert_eq!(before, server.db.dump().await, "a refused request wrote");

    // The OpenAPI document needs no key.
    let reply = server
        .send("GET", "/v1/openapi.json", None, Body::None)
        .await;
    assert_eq!(reply.status, 200);

    // A key created with the CLI works until it is revoked with the CLI.
    let created = ok(server.db.hookline(&[
        "apikey", "create", "--name", "ci-bot", "--tenant", "acme", "--json",
    ]));
    let created: Value = serde_json::from_str(&created).expect("JSON");
    let key = created["key"]
        .as_str()
        .expect("the key is printed")
        .to_string();
    assert!(key.starts_with("hlk_"), "{key}");
    assert_eq!(created["tenant_name"], "acme");
    let listed = ok(server.db.hookline(&["apikey", "list", "--json"]));
    assert!(listed.contains("ci-bot"), "{listed}");
    let dump = server.db.dump().await;
    assert!(!dump.contains(&key), "a key was stored in clear");
    assert!(!dump.contains(&server.admin), "a key was stored in clear");
    assert!(
        !listed.contains(&key),
        "apikey list must never show a key: {listed}"
    );
    let reply = server
        .send("GET", "/v1/tenants", Some(&key), Body::None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["data"][0]["name"], "acme");
    ok(server.db.hookline(&["apikey", "revoke", "ci-bot"]));
    server
        .send("GET", "/v1/tenants", Some(&key), Body::None)
        .await
        .assert_problem(401, None);
    let listed = ok(server.db.hookline(&["apikey", "list", "--json"]));
    assert!(!listed.contains("ci-bot"), "{listed}");
    let all = ok(server.db.hookline(&["apikey", "list", "--all", "--json"]));
    assert!(all.contains("ci-bot"), "{all}");
    // Both CLI actions are audited.
    let audit = server.store.list_audit(None, 50).await.expect("audit");
    let actions: Vec<&str> = audit.items.iter().map(|a| a.action.as_str()).collect();
    assert!(
        actions.contains(&"apikey.create") && actions.contains(&"apikey.revoke"),
        "{actions:?}"
    );

    // Bad CLI input: neither --admin nor --tenant, an unknown tenant.
    let output = server.db.hookline(&["apikey", "create", "--name", "x"]);
    assert!(!output.status.success());
    let output = server
        .db
        .hookline(&["apikey", "create", "--name", "x", "--tenant", "nobody"]);
    assert_eq!(output.status.code(), Some(2), "{}", common::stderr(&output));

    // Deleting a tenant ends its keys.
    let key = server.tenant_key("acme-key", "acme").await;
    server
        .send("GET", "/v1/tenants", Some(&key), Body::None)
        .await;
    server
        .admin_ok("DELETE", "/v1/tenants/acme", None, 200)
        .await;
    server
        .send("GET", "/v1/tenants", Some(&key), Body::None)
        .await
        .assert_problem(401, None);
    server.stop().await;
}

async fn health_and_metrics_may_be_open(backend: Backend) {
    let server = Server::start_with(backend, |c| c.api.open_health_metrics = true).await;
    let health = server.send("GET", "/healthz", None, Body::None).await;
    assert_eq!(health.status, 200, "{}", health.text());
    assert_eq!(health.json()["schema_version"], 14);
    let metrics = server.send("GET", "/metrics", None, Body::None).await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .text()
            .contains("# TYPE hookline_deliveries_succeeded_total counter")
    );
    // Everything else still needs a key.
    server
        .send("GET", "/v1/tenants", None, Body::None)
        .await
        .assert_problem(401, None);
    server.stop().await;
}

// --- 5. tenant isolation ------------------------------------------------------

/// Every route the API serves, as (method, path template).
const ROUTES: [(&str, &str); 41] = [
    ("POST", "/v1/events"),
    ("GET", "/v1/tenants"),
    ("POST", "/v1/tenants"),
    ("GET", "/v1/tenants/{id}"),
    ("DELETE", "/v1/tenants/{id}"),
    ("GET", "/v1/endpoints"),
    ("POST", "/v1/endpoints"),
    ("GET", "/v1/endpoints/{id}"),
    ("PATCH", "/v1/endpoints/{id}"),
    ("DELETE", "/v1/endpoints/{id}"),
    ("POST", "/v1/endpoints/{id}/pause"),
    ("POST", "/v1/endpoints/{id}/resume"),
    ("POST", "/v1/endpoints/{id}/rotate-secret"),
    ("POST", "/v1/endpoints/{id}/recover"),
    ("GET", "/v1/subscriptions"),
    ("POST", "/v1/subscriptions"),
    ("GET", "/v1/subscriptions/{id}"),
    ("PATCH", "/v1/subscriptions/{id}"),
    ("DELETE", "/v1/subscriptions/{id}"),
    ("GET", "/v1/deliveries"),
    ("GET", "/v1/deliveries/{id}"),
    ("POST", "/v1/deliveries/{id}/retry"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/v1/openapi.json"),
    // Query forms of the list routes that name another tenant's things.
    ("GET", "/v1/deliveries?endpoint"),
    ("GET", "/v1/subscriptions?endpoint"),
    ("GET", "/v1/endpoints/{id}/secret"),
    ("DELETE", "/v1/events/{id}/payload"),
    ("GET", "/v1/endpoints/{id}/breaker"),
    ("POST", "/v1/endpoints/{id}/breaker"),
    ("GET", "/v1/events/{id}"),
    ("GET", "/v1/events"),
    ("GET", "/v1/deliveries/{id}/attempts"),
    ("GET", "/v1/endpoints/{id}/attempts"),
    ("GET", "/v1/endpoints/{id}/stats"),
    ("GET", "/v1/events?tenant"),
    ("GET", "/v1/events?topic"),
    ("GET", "/v1/api-keys"),
    ("POST", "/v1/api-keys"),
    ("DELETE", "/v1/api-keys/{id}"),
];

/// Two tenants with an endpoint, a subscription and a delivery each.
struct TwoTenants {
    acme_key: String,
    acme_endpoint: String,
    acme_delivery: String,
    globex_endpoint: String,
    globex_subscription: String,
    globex_delivery: String,
    /// The event of `globex_delivery`.
    globex_event: String,
}

async fn two_tenants(server: &Server) -> TwoTenants {
    server.tenant("acme").await;
    server.tenant("globex").await;
    let acme_endpoint = id_of(
        &server
            .endpoint("acme", "hooks", "http://127.0.0.1:9/", "order.*")
            .await,
    );
    let globex_endpoint = id_of(
        &server
            .endpoint("globex", "hooks", "http://127.0.0.1:9/", "order.*")
            .await,
    );
    let subs = server
        .admin_ok(
            "GET",
            &format!("/v1/subscriptions?endpoint={globex_endpoint}"),
            None,
            200,
        )
        .await;
    let globex_subscription = id_of(&subs["data"][0]);
    let delivery_of = |tenant: &'static str, topic: &'static str| async move {
        let event = server.publish(tenant, topic, json!({})).await;
        let page = server
            .admin_ok(
                "GET",
                &format!("/v1/deliveries?event={}", id_of(&event)),
                None,
                200,
            )
            .await;
        (id_of(&event), id_of(&page["data"][0]))
    };
    let (_, acme_delivery) = delivery_of("acme", "order.created").await;
    let (globex_event, globex_delivery) = delivery_of("globex", "order.shipped").await;
    TwoTenants {
        acme_key: server.tenant_key("acme-key", "acme").await,
        acme_endpoint,
        acme_delivery,
        globex_endpoint,
        globex_subscription,
        globex_delivery,
        globex_event,
    }
}

/// `GET /v1/events/{id}`: the event (payload as published) and where it
/// went, one delivery per endpoint; a tenant key sees its own events only
/// and, of a broadcast, its own tenant's deliveries; unknown ids are 404
/// and ids older than retention 410.
async fn an_event_says_where_it_went(backend: Backend) {
    let server = Server::start(backend).await;
    let t = two_tenants(&server).await;
    server
        .endpoint("acme", "ledger", "http://127.0.0.1:9/", "order.*")
        .await;
    let event = server
        .publish(
            "acme",
            "order.created",
            json!({ "order": 42, "total": "9.99" }),
        )
        .await;
    let id = id_of(&event);
    let path = format!("/v1/events/{id}");
    let shown = server.admin_ok("GET", &path, None, 200).await;
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["topic"], "order.created");
    assert_eq!(shown["tenant_name"], "acme");
    assert_eq!(shown["payload"], json!({ "order": 42, "total": "9.99" }));
    assert_eq!(shown["more_deliveries"], false);
    let deliveries = shown["deliveries"].as_array().cloned().unwrap_or_default();
    let endpoints: Vec<&str> = deliveries
        .iter()
        .filter_map(|d| d["endpoint_name"].as_str())
        .collect();
    assert_eq!(endpoints, ["hooks", "ledger"], "{shown}");
    for delivery in &deliveries {
        assert_eq!(delivery["event_id"], id.as_str());
        assert_eq!(delivery["state"], "pending");
        assert_eq!(delivery["attempts"], 0);
    }
    // The tenant's own key sees it; the other tenant's event is not there.
    let own = server
        .send("GET", &path, Some(&t.acme_key), Body::None)
        .await;
    assert_eq!(own.status, 200, "{}", own.text());
    let globex_event = &t.globex_event;
    server
        .send(
            "GET",
            &format!("/v1/events/{globex_event}"),
            Some(&t.acme_key),
            Body::None,
        )
        .await
        .assert_problem(404, None);
    // An event that matched nothing says so by its empty fan-out.
    let unmatched = server.publish("acme", "invoice.paid", json!({})).await;
    let shown = server
        .admin_ok(
            "GET",
            &format!("/v1/events/{}", id_of(&unmatched)),
            None,
            200,
        )
        .await;
    assert_eq!(shown["deliveries"], json!([]), "{shown}");
    server
        .admin(
            "GET",
            &format!("/v1/events/{}", made_days_ago(IdKind::Event, 13)),
            None,
        )
        .await
        .assert_problem(404, None);
    server
        .admin(
            "GET",
            &format!("/v1/events/{}", made_days_ago(IdKind::Event, 15)),
            None,
        )
        .await
        .assert_problem(410, None);
    server
        .admin("GET", "/v1/events/dlv_nope", None)
        .await
        .assert_problem(404, None);
}

async fn a_tenant_forces_its_endpoints_breaker_and_sees_why(backend: Backend) {
    let server = Server::start(backend).await;
    let t = two_tenants(&server).await;
    let breaker = format!("/v1/endpoints/{}/breaker", t.acme_endpoint);
    let shown = server
        .send("GET", &breaker, Some(&t.acme_key), Body::None)
        .await;
    assert_eq!(shown.status, 200, "{}", shown.text());
    assert_eq!(shown.json()["state"], "closed");
    assert_eq!(shown.json()["mode"], "auto");

    let bad = server
        .send(
            "POST",
            &breaker,
            Some(&t.acme_key),
            Body::Json(json!({ "mode": "shut" })),
        )
        .await;
    bad.assert_problem(422, Some("mode"));
    let forced = server
        .send(
            "POST",
            &breaker,
            Some(&t.acme_key),
            Body::Json(json!({ "mode": "open" })),
        )
        .await;
    assert_eq!(forced.status, 200, "{}", forced.text());
    let forced = forced.json();
    assert_eq!(
        (forced["state"].clone(), forced["mode"].clone()),
        (json!("open"), json!("open"))
    );
    assert_eq!(forced["transitions"][0]["from"], "closed", "{forced}");
    assert_eq!(forced["transitions"][0]["to"], "open", "{forced}");
    assert!(
        forced["next_probe_at"].is_null(),
        "forced open never probes"
    );
    let held = server
        .send(
            "GET",
            &format!("/v1/deliveries/{}", t.acme_delivery),
            Some(&t.acme_key),
            Body::None,
        )
        .await
        .json();
    assert_eq!(held["delivery"]["held"], "breaker_open", "{held}");
    // The endpoint resource carries it, alone and in the list.
    let endpoint = format!("/v1/endpoints/{}", t.acme_endpoint);
    let one = server.admin_ok("GET", &endpoint, None, 200).await;
    assert_eq!(one["breaker"]["state"], "open", "{one}");
    assert_eq!(one["breaker"]["mode"], "open", "{one}");
    let listed = server.admin_ok("GET", "/v1/endpoints", None, 200).await;
    let states: Vec<(String, String)> = listed["data"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| {
                    let id = e["id"].as_str().unwrap_or_default().to_string();
                    let state = e["breaker"]["state"].as_str().unwrap_or_default();
                    (id, state.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(
        states.contains(&(t.acme_endpoint.clone(), "open".to_string())),
        "{states:?}"
    );
    assert!(
        states.iter().any(|(_, state)| state == "closed"),
        "the other tenant's endpoint is closed: {states:?}"
    );
    // A rate limit is set with the endpoint, named when refused.
    let limited = server
        .admin_ok(
            "PATCH",
            &endpoint,
            Some(json!({ "rate_limit": 50, "rate_limit_burst": 5 })),
            200,
        )
        .await;
    assert_eq!(
        (
            limited["rate_limit"].clone(),
            limited["rate_limit_burst"].clone()
        ),
        (json!(50), json!(5)),
        "{limited}"
    );
    let refused = server
        .send(
            "PATCH",
            &endpoint,
            Some(&t.acme_key),
            Body::Json(json!({ "rate_limit": 0 })),
        )
        .await;
    refused.assert_problem(422, Some("rate_limit"));
    let back = server
        .admin_ok("POST", &breaker, Some(json!({ "mode": "auto" })), 200)
        .await;
    assert_eq!(back["mode"], "auto", "{back}");
    assert!(
        back["next_probe_at"].is_string(),
        "a probe goes at once: {back}"
    );
}

async fn a_tenant_erases_its_own_events_payload(backend: Backend) {
    let server = Server::start(backend).await;
    let t = two_tenants(&server).await;
    let delivery = format!("/v1/deliveries/{}", t.acme_delivery);
    let detail = server.admin_ok("GET", &delivery, None, 200).await;
    let event = detail["event"]["id"]
        .as_str()
        .expect("event id")
        .to_string();
    assert!(detail["event"]["payload"].is_object(), "{detail}");
    let erase = format!("/v1/events/{event}/payload");
    let reply = server
        .send("DELETE", &erase, Some(&t.acme_key), Body::None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["id"], event.as_str());
    let shown = server
        .send("GET", &delivery, Some(&t.acme_key), Body::None)
        .await
        .json();
    assert!(shown["event"]["payload"].is_null(), "{shown}");
    assert_eq!(
        shown["event"]["payload_removed"]["by"], "expunged",
        "{shown}"
    );
    assert_eq!(shown["event"]["payload_size"], 2, "{shown}");
    assert_eq!(shown["event"]["topic"], "order.created", "{shown}");
    let retry = server
        .send(
            "POST",
            &format!("{delivery}/retry"),
            Some(&t.acme_key),
            Body::None,
        )
        .await;
    retry.assert_problem(409, None);
    assert!(
        retry.text().contains("cannot be retried"),
        "{}",
        retry.text()
    );
    // Erasing again is answered the same; an unknown event is not found.
    let again = server
        .send("DELETE", &erase, Some(&t.acme_key), Body::None)
        .await;
    assert_eq!(again.status, 200, "{}", again.text());
    let missing = server
        .admin(
            "DELETE",
            &format!("/v1/events/{}/payload", unknown(IdKind::Event)),
            None,
        )
        .await;
    missing.assert_problem(404, None);
    server.stop().await;
}

async fn a_tenant_key_never_sees_another_tenant(backend: Backend) {
    let server = Server::start(backend).await;
    let t = two_tenants(&server).await;
    let globex_tenant = id_of(
        &server
            .admin_ok("GET", "/v1/tenants/globex", None, 200)
            .await,
    );
    let admin_key = server
        .store
        .find_api_key("admin-key")
        .await
        .expect("the admin key")
        .id;
    let before = server.db.dump().await;
    let key = t.acme_key.clone();
    let json_body = |v: Value| Body::Json(v);

    // Each route, aimed at globex: refused as unknown (404), or as admin-only
    // (403) where the route is not about one tenant's things.
    let mut tried = BTreeSet::new();
    let mut attempt =
        |route: (&'static str, &'static str), path: String, body: Body, status: u16| {
            tried.insert(route);
            (route.0, path, body, status)
        };
    let ep = &t.globex_endpoint;
    let globex_event = &t.globex_event;
    #[rustfmt::skip]
    let cases = vec![
        attempt(ROUTES[0], "/v1/events".into(), json_body(json!({ "tenant": "globex", "topic": "order.created", "payload": {} })), 404),
        attempt(ROUTES[2], "/v1/tenants".into(), json_body(json!({ "name": "initech" })), 403),
        attempt(ROUTES[3], format!("/v1/tenants/{globex_tenant}"), Body::None, 404),
        attempt(ROUTES[3], "/v1/tenants/globex".into(), Body::None, 404),
        attempt(ROUTES[4], format!("/v1/tenants/{globex_tenant}"), Body::None, 404),
        attempt(ROUTES[5], "/v1/endpoints?tenant=globex".into(), Body::None, 404),
        attempt(ROUTES[6], "/v1/endpoints".into(), json_body(json!({ "tenant": "globex", "name": "x", "url": "http://a.example/" })), 404),
        attempt(ROUTES[7], format!("/v1/endpoints/{ep}"), Body::None, 404),
        attempt(ROUTES[8], format!("/v1/endpoints/{ep}"), json_body(json!({ "name": "mine" })), 404),
        attempt(ROUTES[9], format!("/v1/endpoints/{ep}"), Body::None, 404),
        attempt(ROUTES[10], format!("/v1/endpoints/{ep}/pause"), Body::None, 404),
        attempt(ROUTES[11], format!("/v1/endpoints/{ep}/resume"), Body::None, 404),
        attempt(ROUTES[12], format!("/v1/endpoints/{ep}/rotate-secret"), Body::None, 404),
        attempt(ROUTES[13], format!("/v1/endpoints/{ep}/recover"), json_body(json!({ "since": "1h" })), 404),
        attempt(ROUTES[14], "/v1/subscriptions?tenant=globex".into(), Body::None, 404),
        attempt(ROUTES[15], "/v1/subscriptions".into(), json_body(json!({ "endpoint": ep, "topic": "a.b" })), 404),
        attempt(ROUTES[16], format!("/v1/subscriptions/{}", t.globex_subscription), Body::None, 404),
        attempt(ROUTES[17], format!("/v1/subscriptions/{}", t.globex_subscription), json_body(json!({ "topic": "a.b" })), 404),
        attempt(ROUTES[18], format!("/v1/subscriptions/{}", t.globex_subscription), Body::None, 404),
        attempt(ROUTES[19], "/v1/deliveries?tenant=globex".into(), Body::None, 404),
        attempt(ROUTES[20], format!("/v1/deliveries/{}", t.globex_delivery), Body::None, 404),
        attempt(ROUTES[21], format!("/v1/deliveries/{}/retry", t.globex_delivery), Body::None, 404),
        attempt(ROUTES[23], "/metrics".into(), Body::None, 403),
        attempt(ROUTES[25], format!("/v1/deliveries?endpoint={ep}"), Body::None, 404),
        attempt(ROUTES[26], format!("/v1/subscriptions?endpoint={ep}"), Body::None, 404),
        attempt(ROUTES[27], format!("/v1/endpoints/{ep}/secret"), Body::None, 404),
        attempt(ROUTES[28], format!("/v1/events/{globex_event}/payload"), Body::None, 404),
        attempt(ROUTES[29], format!("/v1/endpoints/{ep}/breaker"), Body::None, 404),
        attempt(ROUTES[30], format!("/v1/endpoints/{ep}/breaker"), json_body(json!({ "mode": "open" })), 404),
        attempt(ROUTES[31], format!("/v1/events/{globex_event}"), Body::None, 404),
        attempt(ROUTES[33], format!("/v1/deliveries/{}/attempts", t.globex_delivery), Body::None, 404),
        attempt(ROUTES[34], format!("/v1/endpoints/{ep}/attempts"), Body::None, 404),
        attempt(ROUTES[35], format!("/v1/endpoints/{ep}/stats"), Body::None, 404),
        attempt(ROUTES[36], "/v1/events?tenant=globex".into(), Body::None, 404),
        // Keys are managed with admin keys only, whoever they are for.
        attempt(ROUTES[38], "/v1/api-keys".into(), Body::None, 403),
        attempt(ROUTES[39], "/v1/api-keys".into(), json_body(json!({ "name": "mine", "tenant": "globex" })), 403),
        attempt(ROUTES[40], format!("/v1/api-keys/{admin_key}"), Body::None, 403),
        // Broadcasts reach every tenant: not for a tenant key.
        attempt(ROUTES[0], "/v1/events".into(), json_body(json!({ "broadcast": true, "topic": "order.created", "payload": {} })), 403),
        // Its own tenant may not be deleted with its own key.
        attempt(ROUTES[4], "/v1/tenants/acme".into(), Body::None, 403),
    ];
    for (method, path, body, status) in cases {
        let reply = server.send(method, &path, Some(&key), body).await;
        reply.assert_problem(status, None);
    }
    // Another tenant's id is answered exactly like an id that names nothing.
    let nothing = unknown(IdKind::Endpoint);
    let theirs = server
        .send(
            "GET",
            &format!("/v1/endpoints/{ep}"),
            Some(&key),
            Body::None,
        )
        .await
        .text()
        .replace(ep.as_str(), "ID");
    let unknown_one = server
        .send(
            "GET",
            &format!("/v1/endpoints/{nothing}"),
            Some(&key),
            Body::None,
        )
        .await
        .text()
        .replace(&nothing, "ID");
    assert_eq!(theirs, unknown_one);
    assert_eq!(
        before,
        server.db.dump().await,
        "a refused tenant-key request changed the database"
    );

    // The listings show only acme's things.
    let list = |path: &'static str| {
        let key = key.clone();
        let server = &server;
        async move {
            let reply = server.send("GET", path, Some(&key), Body::None).await;
            assert_eq!(reply.status, 200, "{path}: {}", reply.text());
            reply.json()["data"].as_array().cloned().unwrap_or_default()
        }
    };
    tried.insert(ROUTES[1]);
    let tenants = list("/v1/tenants").await;
    assert_eq!(tenants.len(), 1);
    assert_eq!(tenants[0]["name"], "acme");
    tried.insert(ROUTES[5]);
    let endpoints = list("/v1/endpoints").await;
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["id"], t.acme_endpoint.as_str());
    tried.insert(ROUTES[14]);
    let subscriptions = list("/v1/subscriptions").await;
    assert_eq!(subscriptions.len(), 1);
    assert_eq!(subscriptions[0]["endpoint_id"], t.acme_endpoint.as_str());
    tried.insert(ROUTES[19]);
    let deliveries = list("/v1/deliveries").await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0]["id"], t.acme_delivery.as_str());
    tried.insert(ROUTES[32]);
    let events = list("/v1/events").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["tenant_id"], deliveries[0]["tenant_id"]);
    // The topic only globex published finds nothing for acme's key
    // (and globex's event for the admin's).
    tried.insert(ROUTES[37]);
    let path = "/v1/events?topic=order.shipped";
    let reply = server.send("GET", path, Some(&key), Body::None).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["data"], json!([]));
    let theirs = server.admin_ok("GET", path, None, 200).await;
    assert_eq!(theirs["data"][0]["id"], globex_event.as_str());
    // Health and the document are not about any tenant.
    tried.insert(ROUTES[22]);
    assert_eq!(
        server
            .send("GET", "/healthz", Some(&key), Body::None)
            .await
            .status,
        200
    );
    tried.insert(ROUTES[24]);
    assert_eq!(
        server
            .send("GET", "/v1/openapi.json", Some(&key), Body::None)
            .await
            .status,
        200
    );
    let every: BTreeSet<_> = ROUTES.iter().copied().collect();
    assert_eq!(tried, every, "routes never tried with another tenant's ids");

    // Its own things it may manage, with its tenant implied.
    let created = server
        .send(
            "POST",
            "/v1/endpoints",
            Some(&key),
            json_body(json!({ "name": "second", "url": "http://127.0.0.1:9/" })),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.json()["tenant_name"], "acme");
    let published = server
        .send(
            "POST",
            "/v1/events",
            Some(&key),
            json_body(json!({ "topic": "order.created", "payload": { "mine": true } })),
        )
        .await;
    assert_eq!(published.status, 202, "{}", published.text());
    assert_eq!(published.json()["deliveries"], 1);
    let audit = server.store.list_audit(None, 10).await.expect("audit");
    assert_eq!(audit.items[0].actor, "acme-key");
    assert_eq!(audit.items[0].action, "endpoint.create");
    server.stop().await;
}

// --- 6. pagination ------------------------------------------------------------

/// Every page of `path` (which has a query, `limit` among it), each
/// asserted to hold 1 to `limit` rows (none only when the list is empty)
/// and the last to end with `next_cursor: null`. Returns the ids in order
/// and the size of each page.
async fn walk_pages(server: &Server, path: &str, limit: usize) -> (Vec<String>, Vec<usize>) {
    let mut seen: Vec<String> = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..200 {
        let page_path = match &cursor {
            None => path.to_string(),
            Some(c) => format!("{path}&cursor={c}"),
        };
        let page = server.admin_ok("GET", &page_path, None, 200).await;
        let rows = page["data"].as_array().cloned().unwrap_or_default();
        assert!(rows.len() <= limit, "{page_path}: {page}");
        assert!(
            !rows.is_empty() || (cursor.is_none() && page["next_cursor"].is_null()),
            "{page_path}: an empty page in a list that is not empty: {page}"
        );
        seen.extend(rows.iter().map(id_of));
        sizes.push(rows.len());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => {
                assert!(page["next_cursor"].is_null(), "{page}");
                return (seen, sizes);
            }
        }
    }
    panic!("{path}: pagination never ended");
}

async fn pagination_walks_every_row_once(backend: Backend) {
    let server = Server::start(backend).await;
    server.tenant("acme").await;
    server.tenant("bravo").await;
    server.tenant("charlie").await;
    let first = id_of(
        &server
            .endpoint("acme", "one", "http://127.0.0.1:9/", "*")
            .await,
    );
    server
        .endpoint("acme", "two", "http://127.0.0.1:9/", "*")
        .await;
    for n in 0..23 {
        server
            .publish("acme", "order.created", json!({ "n": n }))
            .await;
    }
    let (all, sizes) = walk_pages(&server, "/v1/deliveries?limit=5", 5).await;
    assert_eq!(sizes, [5, 5, 5, 5, 5, 5, 5, 5, 5, 1]);
    assert_eq!(all.len(), 46, "{all:?}");
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), 46, "a row was shown twice");
    let mut newest_first = all.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(all, newest_first, "not newest first");
    let stored = server
        .store
        .list_deliveries(&Default::default(), None, 1000)
        .await
        .expect("list");
    let stored: HashSet<String> = stored.items.into_iter().map(|d| d.id).collect();
    assert_eq!(stored, all.iter().cloned().collect::<HashSet<_>>());
    let (filtered, _) = walk_pages(
        &server,
        &format!("/v1/deliveries?limit=5&endpoint={first}&state=pending"),
        5,
    )
    .await;
    assert_eq!(filtered.len(), 23);

    // An exact multiple of the limit ends on a full page, not an empty one.
    let (_, sizes) = walk_pages(&server, "/v1/deliveries?limit=23", 23).await;
    assert_eq!(sizes, [23, 23]);
    let (events, sizes) = walk_pages(&server, "/v1/events?limit=5", 5).await;
    assert_eq!(sizes, [5, 5, 5, 5, 3]);
    let mut newest_first = events.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(events, newest_first, "events not newest first");
    let (_, sizes) = walk_pages(&server, "/v1/events?limit=23", 23).await;
    assert_eq!(sizes, [23]);
    // The other lists, oldest first.
    for (path, count) in [
        ("/v1/tenants", 3),
        ("/v1/endpoints", 2),
        ("/v1/subscriptions", 2),
    ] {
        let (one_by_one, sizes) = walk_pages(&server, &format!("{path}?limit=1"), 1).await;
        assert_eq!(sizes, vec![1; count], "{path}");
        let (whole, sizes) = walk_pages(&server, &format!("{path}?limit={count}"), count).await;
        assert_eq!(sizes, [count], "{path}");
        assert_eq!(one_by_one, whole, "{path}");
        let (default, _) = walk_pages(&server, &format!("{path}?"), 50).await;
        assert_eq!(default, whole, "{path} without a limit");
    }
    let (tenants, _) = walk_pages(&server, "/v1/tenants?limit=1", 1).await;
    let names: Vec<String> = {
        let mut names = Vec::new();
        for id in &tenants {
            let tenant = server
                .admin_ok("GET", &format!("/v1/tenants/{id}"), None, 200)
                .await;
            names.push(tenant["name"].as_str().unwrap_or_default().to_string());
        }
        names
    };
    assert_eq!(names, ["acme", "bravo", "charlie"], "oldest first");

    // An empty list is one empty page.
    for path in [
        "/v1/events?topic=nothing.here",
        "/v1/endpoints?tenant=bravo",
        "/v1/subscriptions?tenant=charlie",
        "/v1/deliveries?state=dead",
    ] {
        let page = server.admin_ok("GET", path, None, 200).await;
        assert_eq!(page, json!({ "data": [], "next_cursor": null }), "{path}");
    }
    // A time window: everything is younger than an hour, nothing older.
    let (recent, _) = walk_pages(&server, "/v1/events?limit=50&since=1h", 50).await;
    assert_eq!(recent.len(), 23);
    let (old, _) = walk_pages(&server, "/v1/events?limit=50&until=1h", 50).await;
    assert!(old.is_empty(), "{old:?}");

    // Bad paging is refused alike on every list, naming the parameter.
    for list in [
        "/v1/tenants",
        "/v1/endpoints",
        "/v1/subscriptions",
        "/v1/deliveries",
        "/v1/events",
        &format!("/v1/endpoints/{first}/attempts"),
    ] {
        for (query, field) in [
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=many", "limit"),
            ("cursor=not-a-cursor", "cursor"),
        ] {
            server
                .admin("GET", &format!("{list}?{query}"), None)
                .await
                .assert_problem(400, Some(field));
        }
    }
    server.stop().await;
}

// --- 6a. attempts and endpoint figures -------------------------------------

async fn attempts_and_stats_show_what_the_receiver_answered(backend: Backend) {
    let server = Server::start(backend).await;
    let healthy = sink().await;
    let failing = common::failing_sink(503).await;
    server.tenant("acme").await;
    let good = id_of(&server.endpoint("acme", "good", &healthy.url(), "*").await);
    let bad = id_of(&server.endpoint("acme", "bad", &failing.url(), "*").await);
    let mut events = Vec::new();
    for n in 0..2 {
        let event = server
            .publish("acme", "order.created", json!({ "n": n }))
            .await;
        events.push(id_of(&event));
    }
    // Three attempts each at the failing endpoint (the test schedule), then dead.
    let dispatcher = RunningDispatcher::start(&server.store, &server.config);
    let settled = common::wait_until(WAIT, || async {
        ids_and_states(&server, "state=dead").await.0.len() == 2
            && ids_and_states(&server, "state=delivered").await.0.len() == 2
    })
    .await;
    dispatcher.stop().await;
    assert!(settled, "two dead and two delivered");

    // One delivery's attempts, newest first, in pages.
    let (dead, _) = ids_and_states(&server, &format!("state=dead&event={}", events[0])).await;
    let path = format!("/v1/deliveries/{}/attempts?limit=2", dead[0]);
    let (attempt_ids, sizes) = walk_pages(&server, &path, 2).await;
    assert_eq!(sizes, [2, 1]);
    let attempts = server
        .admin_ok(
            "GET",
            &format!("/v1/deliveries/{}/attempts", dead[0]),
            None,
            200,
        )
        .await;
    let rows = attempts["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.iter().map(id_of).collect::<Vec<_>>(), attempt_ids);
    let numbers: Vec<i64> = rows
        .iter()
        .map(|a| a["attempt_number"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(numbers, [3, 2, 1], "newest first");
    for attempt in &rows {
        assert_eq!(attempt["delivery_id"], dead[0].as_str());
        assert_eq!(attempt["endpoint_id"], bad.as_str());
        assert_eq!(attempt["status_code"], 503);
        assert_eq!(attempt["error_kind"], "http_status");
        let headers = &attempt["request_headers"];
        assert_eq!(headers["webhook-id"], events[0].as_str(), "{attempt}");
        assert_eq!(headers["webhook-topic"], "order.created", "{attempt}");
        let signature = headers["webhook-signature"].as_str().unwrap_or_default();
        assert!(
            signature.contains("****"),
            "signature not masked: {signature}"
        );
    }

    // An endpoint's attempts across its deliveries, filtered by outcome.
    let count = |path: String| {
        let server = &server;
        async move { walk_pages(server, &path, 1000).await.0.len() }
    };
    assert_eq!(
        count(format!("/v1/endpoints/{bad}/attempts?limit=1000")).await,
        6
    );
    assert_eq!(
        count(format!(
            "/v1/endpoints/{bad}/attempts?limit=1000&outcome=failed"
        ))
        .await,
        6
    );
    assert_eq!(
        count(format!(
            "/v1/endpoints/{bad}/attempts?limit=1000&outcome=succeeded"
        ))
        .await,
        0
    );
    assert_eq!(
        count(format!(
            "/v1/endpoints/{good}/attempts?limit=1000&outcome=succeeded"
        ))
        .await,
        2
    );
    assert_eq!(
        count(format!(
            "/v1/endpoints/{good}/attempts?limit=1000&outcome=failed"
        ))
        .await,
        0
    );
    server
        .admin(
            "GET",
            &format!("/v1/endpoints/{bad}/attempts?outcome=maybe"),
            None,
        )
        .await
        .assert_problem(400, Some("outcome"));

    // Its figures over a window.
    for window in ["1h", "24h", "7d"] {
        let stats = server
            .admin_ok(
                "GET",
                &format!("/v1/endpoints/{bad}/stats?window={window}"),
                None,
                200,
            )
            .await;
        assert_eq!(stats["window"], window);
        assert_eq!(stats["attempts"], 6, "{stats}");
        assert_eq!(stats["succeeded"], 0, "{stats}");
        assert_eq!(stats["failed"], 6, "{stats}");
        assert_eq!(stats["success_ratio"], 0.0, "{stats}");
        assert_eq!(stats["failures_by_kind"]["status_5xx"], 6, "{stats}");
        assert_eq!(
            stats["failures_by_cause"][0]["cause"], "http_status 503",
            "{stats}"
        );
        assert_eq!(stats["failures_by_cause"][0]["failures"], 6, "{stats}");
        assert_eq!(stats["deliveries_by_state"]["dead"], 2, "{stats}");
        assert_eq!(stats["deliveries_by_state"]["delivered"], 0, "{stats}");
        assert_eq!(stats["backlog"], 0, "{stats}");
        assert!(stats["oldest_due_at"].is_null(), "{stats}");
        assert!(stats["latency_ms"]["p99"].is_i64(), "{stats}");
    }
    // A healthy endpoint, then one event waiting for it (no dispatcher runs).
    let waiting = server
        .publish("acme", "order.created", json!({ "n": 2 }))
        .await;
    let stats = server
        .admin_ok("GET", &format!("/v1/endpoints/{good}/stats"), None, 200)
        .await;
    assert_eq!(stats["window"], "1h", "the default window");
    assert_eq!(stats["attempts"], 2, "{stats}");
    assert_eq!(stats["success_ratio"], 1.0, "{stats}");
    assert_eq!(stats["failures_by_cause"], json!([]), "{stats}");
    assert_eq!(stats["deliveries_by_state"]["delivered"], 2, "{stats}");
    assert_eq!(stats["deliveries_by_state"]["pending"], 1, "{stats}");
    assert_eq!(stats["backlog"], 1, "{stats}");
    let due = stats["oldest_due_at"].as_str().unwrap_or_default();
    let waiting = server
        .admin_ok("GET", &format!("/v1/events/{}", id_of(&waiting)), None, 200)
        .await;
    let created = waiting["created_at"].as_str().unwrap_or_default();
    assert_eq!(
        hookline::model::parse_rfc3339(due),
        hookline::model::parse_rfc3339(created),
        "due when published: {stats}"
    );
    server
        .admin(
            "GET",
            &format!("/v1/endpoints/{good}/stats?window=2h"),
            None,
        )
        .await
        .assert_problem(400, Some("window"));
    server.stop().await;
}

// --- 6c. one shape in the API and the CLI ----------------------------------

/// What `hookline ARGS --json` printed, as JSON.
fn cli_json(server: &Server, args: &[&str]) -> Value {
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let printed = ok(server.db.hookline(&with_json));
    serde_json::from_str(&printed).unwrap_or_else(|e| panic!("not JSON ({e}): {printed}"))
}

async fn the_cli_and_the_api_print_the_same_json(backend: Backend) {
    let server = Server::start(backend).await;
    let receiver = sink().await;
    server.tenant("acme").await;
    let endpoint = id_of(
        &server
            .endpoint("acme", "prod", &receiver.url(), "order.*")
            .await,
    );
    // One delivered attempt, so attempts and the breaker have something to say.
    let published = server
        .publish("acme", "order.created", json!({ "n": 1, "s": "x" }))
        .await;
    let event = id_of(&published);
    let dispatcher = RunningDispatcher::start(&server.store, &server.config);
    let delivered = common::wait_until(WAIT, || async {
        ids_and_states(&server, "state=delivered").await.0.len() == 1
    })
    .await;
    dispatcher.stop().await;
    assert!(delivered, "the delivery went out");
    let (deliveries, _) = ids_and_states(&server, "state=delivered").await;
    let delivery = &deliveries[0];

    let pairs: Vec<(String, Vec<&str>)> = vec![
        (
            format!("/v1/endpoints/{endpoint}"),
            vec!["endpoint", "show", &endpoint],
        ),
        (
            format!("/v1/deliveries/{delivery}"),
            vec!["delivery", "show", delivery],
        ),
        (
            format!("/v1/events/{event}"),
            vec!["delivery", "show", &event],
        ),
        (
            "/v1/tenants/acme".to_string(),
            vec!["tenant", "add", "bravo"],
        ),
    ];
    for (path, args) in &pairs[..3] {
        let api = server.admin_ok("GET", path, None, 200).await;
        let cli = cli_json(&server, args);
        assert_eq!(cli, api, "{args:?} and GET {path} differ");
    }
    // Lists: the CLI prints the API page's records.
    for (path, args) in [
        ("/v1/endpoints", vec!["endpoint", "list"]),
        ("/v1/subscriptions", vec!["subscription", "list"]),
        ("/v1/tenants", vec!["tenant", "list"]),
        ("/v1/deliveries", vec!["delivery", "list"]),
        ("/v1/api-keys", vec!["apikey", "list"]),
    ] {
        let api = server.admin_ok("GET", path, None, 200).await;
        let cli = cli_json(&server, &args);
        assert_eq!(cli, api["data"], "{args:?} and GET {path} differ");
    }
    // What a command creates reads back the same way over the API.
    let (path, args) = &pairs[3];
    let added = cli_json(&server, args);
    let path = path.replace("acme", "bravo");
    assert_eq!(added, server.admin_ok("GET", &path, None, 200).await);
    // A publish answers alike: the event's id (not `event_id`), numbers as numbers.
    let cli = cli_json(
        &server,
        &[
            "publish",
            "--tenant",
            "acme",
            "--topic",
            "order.created",
            "--payload",
            "{}",
        ],
    );
    let keys: BTreeSet<&String> = cli
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    let api_keys: BTreeSet<&String> = published
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys, api_keys, "{cli} vs {published}");
    assert!(cli["deliveries"].is_i64(), "{cli}");
    server.stop().await;
}

// --- 6b. one vocabulary of delivery states ---------------------------------

/// The ids of a delivery list, sorted, and every state word it shows.
async fn ids_and_states(server: &Server, query: &str) -> (Vec<String>, BTreeSet<String>) {
    let page = server
        .admin_ok("GET", &format!("/v1/deliveries?{query}"), None, 200)
        .await;
    let rows = page["data"].as_array().cloned().unwrap_or_default();
    let mut ids: Vec<String> = rows.iter().map(id_of).collect();
    ids.sort();
    let states = rows
        .iter()
        .map(|r| r["state"].as_str().unwrap_or_default().to_string())
        .collect();
    (ids, states)
}

async fn state_words_and_their_aliases(backend: Backend) {
    // A failed attempt waits an hour for the next: it stays `retrying`.
    let server = Server::start_with(backend, |config| {
        config.dispatch.retry_schedule = vec![Duration::ZERO, Duration::from_secs(3600)];
    })
    .await;
    let healthy = sink().await;
    let failing = common::failing_sink(500).await;
    server.tenant("acme").await;
    let good = id_of(&server.endpoint("acme", "good", &healthy.url(), "*").await);
    let bad = id_of(&server.endpoint("acme", "bad", &failing.url(), "*").await);
    for n in 0..2 {
        server
            .publish("acme", "order.created", json!({ "n": n }))
            .await;
    }
    let dispatcher = RunningDispatcher::start(&server.store, &server.config);
    let settled = common::wait_until(WAIT, || async {
        ids_and_states(&server, "state=retrying").await.0.len() == 2
            && ids_and_states(&server, "state=delivered").await.0.len() == 2
    })
    .await;
    dispatcher.stop().await;
    assert!(settled, "two retrying and two delivered");

    // Today's words and the old ones select the same rows; rows say today's.
    for (word, alias, endpoint) in [
        ("retrying", "scheduled", &bad),
        ("delivered", "succeeded", &good),
    ] {
        let (ids, states) = ids_and_states(&server, &format!("state={word}")).await;
        let (alias_ids, alias_states) = ids_and_states(&server, &format!("state={alias}")).await;
        assert_eq!(ids.len(), 2, "{word}");
        assert_eq!(ids, alias_ids, "?state={alias} is ?state={word}");
        assert_eq!(states, BTreeSet::from([word.to_string()]), "{word}");
        assert_eq!(alias_states, states, "{alias} rows say {word}");
        let (of_endpoint, _) =
            ids_and_states(&server, &format!("state={alias}&endpoint={endpoint}")).await;
        assert_eq!(of_endpoint, ids, "{word} rows are {endpoint}'s");
    }
    let (mixed, states) = ids_and_states(&server, "state=retrying,succeeded").await;
    assert_eq!(mixed.len(), 4, "a word and an alias together");
    assert_eq!(
        states,
        BTreeSet::from(["delivered".to_string(), "retrying".to_string()])
    );
    let detail = server
        .admin_ok("GET", &format!("/v1/deliveries/{}", mixed[0]), None, 200)
        .await;
    let shown = detail.to_string();
    assert!(
        !shown.contains("\"scheduled\"") && !shown.contains("\"succeeded\""),
        "{shown}"
    );

    // An unknown word is refused with the valid ones, on one line of 80 columns.
    let problem = server
        .admin("GET", "/v1/deliveries?state=done", None)
        .await
        .assert_problem(400, Some("state"));
    let reason = problem["errors"][0]["reason"].as_str().unwrap_or_default();
    assert_eq!(
        reason,
        "\"done\" is not a state: pending, in_flight, retrying, delivered, dead, cancelled"
    );
    assert!(reason.chars().count() <= 80, "{reason}");

    // The recover request takes the alias too.
    let recovered = server
        .admin_ok(
            "POST",
            &format!("/v1/endpoints/{bad}/recover"),
            Some(json!({ "since": "1h", "state": "scheduled", "dry_run": true })),
            202,
        )
        .await;
    assert_eq!(recovered["queued"], 2, "{recovered}");
    // A dry run previews them: the oldest and newest, and nothing held.
    assert!(
        recovered["oldest"].is_string() && recovered["newest"].is_string(),
        "{recovered}"
    );
    assert_eq!(recovered["held"], 0, "{recovered}");

    // The queue gauge is labelled with today's words.
    let metrics = server.admin("GET", "/metrics", None).await.text();
    assert!(
        metrics
            .lines()
            .any(|l| l == "hookline_deliveries{state=\"retrying\"} 2"),
        "{metrics}"
    );
    let labels: BTreeSet<&str> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("hookline_deliveries{state=\""))
        .filter_map(|l| l.split('"').next())
        .collect();
    assert_eq!(
        labels,
        BTreeSet::from(["dead", "in_flight", "pending", "retrying"])
    );

    // The OpenAPI document lists exactly the words as the state's enum.
    let document = server
        .send("GET", "/v1/openapi.json", None, Body::None)
        .await
        .json();
    let state = &document["components"]["schemas"]["DeliveryView"]["properties"]["state"];
    assert_eq!(
        state["enum"],
        json!([
            "pending",
            "in_flight",
            "retrying",
            "delivered",
            "dead",
            "cancelled"
        ]),
        "{state}"
    );
    server.stop().await;
}

// --- 7. the OpenAPI document ------------------------------------------------

async fn openapi_document_lists_every_route_served(backend: Backend) {
    let server = Server::start(backend).await;
    let reply = server
        .send("GET", "/v1/openapi.json", None, Body::None)
        .await;
    assert_eq!(reply.status, 200);
    assert!(reply.content_type.starts_with("application/json"));
    let document = reply.json();
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")),
        "{}",
        document["openapi"]
    );
    assert_eq!(document["info"]["title"], "hookline");
    assert!(document["components"]["securitySchemes"]["api_key"].is_object());
    let pause = &document["components"]["schemas"]["PauseEndpoint"]["properties"];
    assert_eq!(
        pause["until"]["format"], "date-time",
        "the pause call documents until: {pause}"
    );
    assert!(pause["reason"].is_object(), "{pause}");
    let view = &document["components"]["schemas"]["EndpointView"]["properties"];
    assert!(view["paused_until"].is_object(), "{view}");
    let mut documented = BTreeSet::new();
    let mut operation_ids = HashSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            documented.insert((method.to_uppercase(), path.clone()));
            assert!(operation["responses"].is_object(), "{method} {path}");
            // What every operation can answer is listed, as a problem.
            let takes_key = operation["security"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|r| r.as_object().is_some_and(|r| !r.is_empty()))
            });
            let mut expected = Vec::new();
            if takes_key {
                expected.extend(["401", "503"]);
            }
            if operation["requestBody"].is_object() {
                expected.extend(["400", "413", "415", "422"]);
            }
            for status in expected {
                assert!(
                    operation["responses"][status]["content"]["application/problem+json"]
                        .is_object(),
                    "{method} {path} does not list {status}"
                );
            }
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            assert!(!id.is_empty(), "{method} {path} has no operationId");
            assert!(
                operation_ids.insert(id.clone()),
                "operationId {id} used twice"
            );
        }
    }
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .filter(|(_, path)| !path.contains('?'))
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, served, "the document and the routes disagree");
    // Every documented operation is answered by a route (not the fallbacks).
    let admin = server.admin.clone();
    for (method, path) in &documented {
        let concrete = path.replace("{id}", "unknown");
        let reply = server
            .send(method, &concrete, Some(&admin), Body::None)
            .await;
        assert_ne!(reply.status, 405, "{method} {path}: {}", reply.text());
        let text = reply.text();
        assert!(!text.contains("no route"), "{method} {path}: {text}");
    }
    // And a route not in the document is not served.
    server
        .send("PUT", "/v1/events", Some(&admin), Body::None)
        .await
        .assert_problem(405, None);
    // The library's copy of the document is the one served.
    let from_code = serde_json::to_value(hookline::api::openapi_document()).expect("JSON");
    assert_eq!(from_code, document);
    server.stop().await;
}

// --- 8. group commit ----------------------------------------------------------

async fn concurrent_publishes_are_all_committed(backend: Backend) {
    let server = Server::start(backend).await;
    server.tenant("acme").await;
    server
        .endpoint("acme", "one", "http://127.0.0.1:9/", "*")
        .await;
    server
        .endpoint("acme", "two", "http://127.0.0.1:9/", "order.*")
        .await;
    let admin = server.admin.clone();
    let url = format!("{}/v1/events", server.base);
    let post = |body: Value| {
        let (client, url, admin) = (server.client.clone(), url.clone(), admin.clone());
        tokio::spawn(async move {
            let response = client
                .post(url)
                .header("authorization", format!("Bearer {admin}"))
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .expect("send");
            let status = response.status().as_u16();
            let body: Value =
                serde_json::from_slice(&response.bytes().await.expect("body")).expect("JSON");
            (status, body)
        })
    };
    // 120 good events, 40 bad ones mixed in, 60 repeats of 6 idempotency keys.
    let mut tasks = Vec::new();
    for n in 0..120 {
        tasks.push((
            "good",
            post(json!({ "tenant": "acme", "topic": "order.created", "payload": { "n": n } })),
        ));
        if n % 3 == 0 {
            tasks.push((
                "bad",
                post(json!({ "tenant": "acme", "topic": "Not A Topic", "payload": {} })),
            ));
        }
        if n % 2 == 0 {
            let key = format!("key-{}", (n / 2) % 6);
            // Each key always with its own one request (the same key with
            // another request would be a 409).
            tasks.push(("keyed", post(json!({ "tenant": "acme", "topic": "misc.thing", "payload": { "key": key }, "idempotency_key": key }))));
        }
    }
    let mut good_ids = HashSet::new();
    let mut keyed: std::collections::HashMap<String, Vec<(String, bool)>> = Default::default();
    for (kind, task) in tasks {
        let (status, body) = task.await.expect("task");
        match kind {
            "good" => {
                assert_eq!(status, 202, "{body}");
                assert_eq!(body["deliveries"], 2, "{body}");
                assert!(good_ids.insert(id_of(&body)), "an id was handed out twice");
            }
            "bad" => {
                assert_eq!(status, 422, "{body}");
                assert_eq!(body["errors"][0]["field"], "topic");
            }
            _ => {
                assert_eq!(status, 202, "{body}");
                assert_eq!(body["deliveries"], 1, "{body}");
                let n = body["duplicate"].as_bool().expect("duplicate flag");
                keyed
                    .entry(id_of(&body))
                    .or_default()
                    .push((id_of(&body), n));
            }
        }
    }
    assert_eq!(good_ids.len(), 120);
    // Each key made exactly one event, whatever the interleaving.
    assert_eq!(keyed.len(), 6, "{keyed:?}");
    for (event, uses) in &keyed {
        assert_eq!(uses.len(), 10, "{event}");
        let originals = uses.iter().filter(|(_, duplicate)| !duplicate).count();
        assert_eq!(originals, 1, "{event}: {uses:?}");
    }
    // Exactly that is in the database.
    let deliveries = server
        .store
        .list_deliveries(&Default::default(), None, 10_000)
        .await
        .expect("list")
        .items;
    assert_eq!(deliveries.len(), 120 * 2 + 6);
    let stats = &server.api.as_ref().expect("running").stats;
    let events = stats.events.load(std::sync::atomic::Ordering::Relaxed);
    let batches = stats.batches.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        events,
        120 + 60,
        "every valid publish went through the group commit"
    );
    assert!(batches >= 1 && batches <= events);
    server.stop().await;
}

// --- 9. the real binary --------------------------------------------------------

async fn serve_runs_the_api_and_a_dispatcher(backend: Backend) {
    install_crypto();
    let db = TestDb::new(backend);
    ok(db.hookline(&["migrate"]));
    ok(db.hookline(&["tenant", "add", "acme"]));
    let created = ok(db.hookline(&["apikey", "create", "--name", "deploy", "--admin", "--json"]));
    let key = serde_json::from_str::<Value>(&created).expect("JSON")["key"]
        .as_str()
        .expect("key")
        .to_string();
    let sink = sink().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut child = common::hookline_command(&db.url, &["serve"])
        .env("HOOKLINE_API_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start hookline serve");
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let auth = format!("Bearer {key}");
    let up = common::wait_until(WAIT, || async {
        client
            .get(format!("{base}/healthz"))
            .header("authorization", &auth)
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() == 200)
    })
    .await;
    assert!(up, "hookline serve never answered /healthz");
    let post = |path: &str, body: Value| {
        client
            .post(format!("{base}{path}"))
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let endpoint: Value = serde_json::from_slice(
        &post(
            "/v1/endpoints",
            json!({ "tenant": "acme", "name": "hooks", "url": sink.url() }),
        )
        .await
        .expect("send")
        .bytes()
        .await
        .expect("body"),
    )
    .expect("JSON");
    let status = post(
        "/v1/subscriptions",
        json!({ "endpoint": endpoint["id"], "topic": "*" }),
    )
    .await
    .expect("send")
    .status();
    assert_eq!(status.as_u16(), 201);
    let status = post(
        "/v1/events",
        json!({ "tenant": "acme", "topic": "a.b", "payload": [1, 2] }),
    )
    .await
    .expect("send")
    .status();
    assert_eq!(status.as_u16(), 202);
    assert!(sink.wait_for(1, WAIT).await, "serve did not deliver");
    assert_eq!(sink.requests()[0].body, b"[1,2]");
    // SIGTERM: a clean exit.
    // SAFETY: kill(2) on the child we started; no memory is involved.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "serve did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "serve exited with {status}");
}

// --- 10. the benchmark harness, tiny --------------------------------------

async fn api_bench_reports_every_figure(backend: Backend) {
    let db = TestDb::new(backend);
    let args = [
        "bench",
        "api",
        "--publishers",
        "4",
        "--events",
        "40",
        "--endpoints",
        "2",
        "--runs",
        "2",
        "--json",
    ];
    // SQLite: the harness makes its own temp files; Postgres: an empty database.
    let mut command = match backend {
        Backend::Sqlite => {
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hookline"));
            command.env("HOOKLINE_LOG", "warn");
            command
        }
        Backend::Postgres => common::hookline_command(&db.url, &[]),
    };
    let output = command.args(args).output().expect("run the bench");
    let report: Value = serde_json::from_str(&ok(output)).expect("one JSON object");
    assert_eq!(report["benchmark"], "api");
    assert_eq!(report["publishers"], 4);
    assert_eq!(report["deliveries"], 80);
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2);
    for run in runs.iter().chain([&report["median"]]) {
        assert_eq!(run["deliveries"], 80, "{run}");
        for figure in [
            "deliveries_per_sec",
            "events_per_sec",
            "seconds",
            "events_per_commit",
        ] {
            let value = run[figure].as_f64().unwrap_or(-1.0);
            assert!(value > 0.0, "{figure} must be positive: {run}");
        }
        let (p50, p99) = (
            run["latency_p50_ms"].as_f64(),
            run["latency_p99_ms"].as_f64(),
        );
        assert!(
            p50.zip(p99).is_some_and(|(a, b)| a >= 0.0 && b >= a),
            "{run}"
        );
        let (p50, p99) = (
            run["publish_p50_ms"].as_f64(),
            run["publish_p99_ms"].as_f64(),
        );
        assert!(
            p50.zip(p99).is_some_and(|(a, b)| a > 0.0 && b >= a),
            "{run}"
        );
    }
    let expected = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert!(
        report["database"]
            .as_str()
            .unwrap_or_default()
            .starts_with(expected)
    );
    // Bad sizes are refused before anything runs.
    let output = common::hookline_command(&db.url, &["bench", "api", "--publishers", "0"])
        .output()
        .expect("run the bench");
    assert!(!output.status.success());
    assert!(
        common::stderr(&output).contains("at least 1"),
        "{}",
        common::stderr(&output)
    );
}

/// An id of `kind` made `days` ago, naming nothing.
fn made_days_ago(kind: IdKind, days: u64) -> String {
    let now = u64::try_from(hookline::model::now_millis()).expect("a time after 1970");
    let at = now - days * 86_400_000;
    let ulid = ulid::Ulid::from_parts(at, 42);
    format!("{}{ulid}", kind.prefix())
}

async fn an_id_older_than_retention_is_gone_for_every_caller(backend: Backend) {
    let server = Server::start(backend).await;
    let t = two_tenants(&server).await;
    let old = made_days_ago(IdKind::Delivery, 15);
    let path = format!("/v1/deliveries/{old}");
    let problem = server
        .admin("GET", &path, None)
        .await
        .assert_problem(410, None);
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("removed by retention (older than 14d)")),
        "{problem}"
    );
    server
        .send("GET", &path, Some(&t.acme_key), Body::None)
        .await
        .assert_problem(410, None);
    // Younger than the horizon: unknown, as ever (nothing about other
    // tenants is revealed).
    let young = made_days_ago(IdKind::Delivery, 13);
    server
        .admin("GET", &format!("/v1/deliveries/{young}"), None)
        .await
        .assert_problem(404, None);
    let cli = server.db.hookline(&["delivery", "show", &old]);
    assert!(!cli.status.success());
    let said = common::stderr(&cli);
    assert!(
        said.contains("was removed by retention (older than 14d)"),
        "{said}"
    );
}

both_backends!(
    a_problem_names_every_bad_field,
    the_server_takes_what_the_document_allows,
    an_event_says_where_it_went,
    an_id_older_than_retention_is_gone_for_every_caller,
    full_flow_delivers_to_a_real_sink,
    secrets_are_masked_in_every_answer,
    gnarly_payload_arrives_byte_identical,
    every_error_answers_a_problem_and_changes_nothing,
    auth_refusals,
    health_and_metrics_may_be_open,
    a_tenant_key_never_sees_another_tenant,
    a_tenant_erases_its_own_events_payload,
    a_tenant_forces_its_endpoints_breaker_and_sees_why,
    pagination_walks_every_row_once,
    attempts_and_stats_show_what_the_receiver_answered,
    the_cli_and_the_api_print_the_same_json,
    state_words_and_their_aliases,
    openapi_document_lists_every_route_served,
    concurrent_publishes_are_all_committed,
    serve_runs_the_api_and_a_dispatcher,
    api_bench_reports_every_figure,
);
