//! The outbound guard end to end, as a stranger with a tenant key would try
//! it: over the real HTTP API, with a real listener on 127.0.0.1 that
//! records whether anything ever connected to it.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use common::{
    Backend, RunningDispatcher, TestDb, install_crypto, test_config, test_ops, wait_until,
};
use hookline::api::ApiOptions;
use hookline::config::Config;
use hookline::model::{Actor, DeliveryState, Source};
use hookline::ops::Ops;
use hookline::store::{DeliveryFilter, NewEndpoint, NewSubscription, Store};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A listener that counts connections and never answers.
async fn watched_listener() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            counted.fetch_add(1, SeqCst);
        }
    });
    (addr, connections)
}

/// The API on `db` under `config`, with an admin key and a tenant key for acme.
struct Api {
    base: String,
    admin: String,
    tenant: String,
    ops: Ops,
    store: Store,
    config: Config,
    client: reqwest::Client,
    _api: hookline::api::RunningApi,
}

impl Api {
    async fn start(db: &TestDb, allow: &[&str]) -> Api {
        install_crypto();
        let store = db.store().await;
        let mut config = test_config(&db.url);
        config.network.allow = allow.iter().map(|n| n.parse().expect("network")).collect();
        let ops = test_ops(&store, &config);
        ops.add_tenant("acme").await.expect("tenant");
        let (_, admin) = ops
            .create_api_key("admin", None, None)
            .await
            .expect("admin key");
        let (_, tenant) = ops
            .create_api_key("acme-key", Some("acme"), None)
            .await
            .expect("tenant key");
        let api = hookline::api::start(
            ops.clone(),
            &ApiOptions {
                listen: "127.0.0.1:0".parse().expect("address"),
                open_health_metrics: false,
                alive_within: std::time::Duration::from_secs(5),
            },
        )
        .await
        .expect("start the API");
        Api {
            base: api.url(),
            admin,
            tenant,
            ops,
            store,
            config,
            client: reqwest::Client::new(),
            _api: api,
        }
    }

    async fn send(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut request = match method {
            "POST" => self.client.post(url),
            _ => self.client.get(url),
        }
        .bearer_auth(key);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Registers an endpoint for acme through the store itself, as an
    /// endpoint registered before the guard (or under another policy) is.
    async fn forced_endpoint(&self, url: &str) -> String {
        let tenant = self.ops.tenant("acme").await.expect("acme");
        let system = Actor {
            name: "test".to_string(),
            client_addr: None,
            source: Source::Cli,
        };
        let endpoint = self
            .store
            .create_endpoint(
                &NewEndpoint {
                    tenant_id: tenant.id,
                    name: "forced".to_string(),
                    url: url.to_string(),
                    secret: SECRET.to_string(),
                    timeout_ms: None,
                    max_in_flight: None,
                    headers: Vec::new(),
                    description: None,
                    rate_limit: None,
                },
                &system,
            )
            .await
            .expect("endpoint");
        self.store
            .create_subscription(
                &NewSubscription {
                    endpoint_id: endpoint.id.clone(),
                    pattern: "*".to_string(),
                    description: None,
                },
                &system,
            )
            .await
            .expect("subscription");
        endpoint.id
    }
}

/// A tenant key cannot register a loopback URL, and is not told why in
/// terms of addresses; an admin key is; nothing is written either way.
/// A well-formed URL the policy blocks is forbidden (403); a host written
/// as a bare number or an IPv4-mapped IPv6 address is not a URL the API
/// takes at all (422), so it never reaches the policy.
async fn registering_a_blocked_url_is_refused(backend: Backend) {
    let db = TestDb::new(backend);
    let api = Api::start(&db, &[]).await;
    let (addr, connections) = watched_listener().await;
    let before = db.dump().await;
    for (url, refused_with) in [
        (format!("http://{addr}/admin"), 403),
        ("http://169.254.169.254/latest/meta-data/".to_string(), 403),
        ("http://2130706433/".to_string(), 422),
        ("http://[::ffff:127.0.0.1]/".to_string(), 422),
    ] {
        let body = json!({ "name": "sneaky", "url": url });
        let (status, problem) = api
            .send("POST", "/v1/endpoints", &api.tenant, Some(body.clone()))
            .await;
        assert_eq!(status, refused_with, "{url}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "url", "{problem}");
        let text = problem.to_string();
        if refused_with == 403 {
            assert!(text.contains("not allowed"), "{text}");
        }
        for secret in ["127.0.0.1", "169.254", "loopback", "link-local", "::ffff"] {
            assert!(!text.contains(secret), "a tenant learns {secret:?}: {text}");
        }
        let admin_body = json!({ "tenant": "acme", "name": "sneaky", "url": url });
        let (status, problem) = api
            .send("POST", "/v1/endpoints", &api.admin, Some(admin_body))
            .await;
        assert_eq!(status, refused_with, "{problem}");
        if refused_with == 403 {
            assert!(
                problem.to_string().contains("network.allow"),
                "an operator is told how: {problem}"
            );
        }
    }
    assert_eq!(db.dump().await, before, "nothing was written");
    assert_eq!(connections.load(SeqCst), 0);
}

/// An endpoint that got in before the guard fails `blocked_destination` at
/// once, ends dead, and nothing connects; the tenant's view of the error
/// names no address, the admin's and the audit log's do, and the
/// endpoint's health does not count it against the receiver.
async fn a_blocked_endpoint_ends_dead_without_a_connection(backend: Backend) {
    let db = TestDb::new(backend);
    let api = Api::start(&db, &[]).await;
    let (addr, connections) = watched_listener().await;
    let endpoint_id = api.forced_endpoint(&format!("http://{addr}/hook")).await;
    let mut config = api.config.clone();
    config.network.allow.clear();
    let dispatcher = RunningDispatcher::start(&api.store, &config);
    let (status, published) = api
        .send(
            "POST",
            "/v1/events",
            &api.tenant,
            Some(json!({ "topic": "order.created", "payload": { "n": 1 } })),
        )
        .await;
    assert_eq!(status, 202, "{published}");
    let filter = DeliveryFilter {
        endpoint_id: Some(endpoint_id.clone()),
        ..DeliveryFilter::default()
    };
    let dead = wait_until(Duration::from_secs(10), || async {
        let page = api
            .store
            .list_deliveries(&filter, None, 10)
            .await
            .expect("list");
        page.items
            .first()
            .is_some_and(|d| d.state == DeliveryState::Dead)
    })
    .await;
    dispatcher.stop().await;
    assert!(dead, "the delivery should end dead at once");
    let page = api
        .store
        .list_deliveries(&filter, None, 10)
        .await
        .expect("list");
    let delivery = &page.items[0];
    assert_eq!(delivery.attempts, 1, "no retries: retrying cannot help");
    assert_eq!(
        connections.load(SeqCst),
        0,
        "nothing connected to the listener"
    );

    let path = format!("/v1/deliveries/{}", delivery.id);
    let (status, tenant_view) = api.send("GET", &path, &api.tenant, None).await;
    assert_eq!(status, 200, "{tenant_view}");
    assert_eq!(
        tenant_view["attempts"][0]["error_kind"],
        "blocked_destination"
    );
    assert_eq!(
        tenant_view["attempts"][0]["error_message"],
        "the URL's host resolves to an address that is not allowed"
    );
    let text = tenant_view.to_string();
    assert!(!text.contains("loopback"), "{text}");
    assert!(!text.contains("127.0.0.0/8"), "{text}");
    let (_, listing) = api.send("GET", "/v1/deliveries", &api.tenant, None).await;
    assert!(!listing.to_string().contains("loopback"), "{listing}");
    let (_, admin_view) = api.send("GET", &path, &api.admin, None).await;
    assert!(
        admin_view
            .to_string()
            .contains("127.0.0.1 (loopback 127.0.0.0/8)"),
        "{admin_view}"
    );

    let audit = api.store.list_audit(None, 50).await.expect("audit");
    let blocked = audit
        .items
        .iter()
        .find(|entry| entry.action == "delivery.blocked")
        .expect("an audit row for the refusal");
    assert!(
        blocked.detail.to_string().contains("loopback"),
        "{:?}",
        blocked.detail
    );
    assert_eq!(blocked.target_ids, std::slice::from_ref(&delivery.id));

    let health = api.store.endpoint_health(None).await.expect("health");
    let health = health.get(&endpoint_id).expect("the endpoint's health");
    assert_eq!(health.consecutive_failures, 0, "not the receiver's failure");
    assert_eq!(
        health.last_5m.attempts(),
        0,
        "nothing was attempted against it"
    );
    assert!(
        health
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("blocked_destination")),
        "{:?}",
        health.last_error
    );
}

/// With `network.allow = ["127.0.0.1/32"]` the same receiver is fine.
async fn an_allowed_network_is_reachable(backend: Backend) {
    let db = TestDb::new(backend);
    let api = Api::start(&db, &["127.0.0.1/32"]).await;
    let sink = hookline::sink::start(hookline::sink::SinkOptions::default())
        .await
        .expect("sink");
    let (status, endpoint) = api
        .send(
            "POST",
            "/v1/endpoints",
            &api.tenant,
            Some(json!({ "name": "local", "url": format!("{}hook", sink.url()) })),
        )
        .await;
    assert_eq!(status, 201, "{endpoint}");
    let id = endpoint["id"].as_str().expect("id").to_string();
    let (status, subscription) = api
        .send(
            "POST",
            "/v1/subscriptions",
            &api.tenant,
            Some(json!({ "endpoint": id, "topic": "*" })),
        )
        .await;
    assert_eq!(status, 201, "{subscription}");
    let dispatcher = RunningDispatcher::start(&api.store, &api.config);
    let (status, _) = api
        .send(
            "POST",
            "/v1/events",
            &api.tenant,
            Some(json!({ "topic": "order.created", "payload": {} })),
        )
        .await;
    assert_eq!(status, 202);
    let arrived = sink.wait_for(1, Duration::from_secs(10)).await;
    dispatcher.stop().await;
    assert!(arrived, "the allowed receiver got the delivery");
}

/// `hookline dispatch` names, at start, an existing endpoint the guard now
/// refuses, so a policy change never blocks an internal receiver silently.
async fn dispatch_warns_of_blocked_endpoints_at_start(backend: Backend) {
    use std::io::{BufRead, BufReader};
    let db = TestDb::new(backend);
    let api = Api::start(&db, &[]).await;
    let (addr, _) = watched_listener().await;
    let endpoint_id = api
        .forced_endpoint(&format!("http://{addr}/internal"))
        .await;
    let mut command = common::hookline_command(&db.url, &["dispatch"]);
    command
        // This process's own policy: nothing allowed.
        .env("HOOKLINE_NETWORK_ALLOW", "")
        .env("HOOKLINE_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("spawn hookline dispatch");
    let stderr = child.stderr.take().expect("stderr");
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut warning = None;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match seen.recv_timeout(left) {
            Ok(line) if line.contains(&endpoint_id) => {
                warning = Some(line);
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let warning = warning.expect("a warning naming the endpoint");
    assert!(
        warning.contains("outbound guard blocks this endpoint"),
        "{warning}"
    );
    assert!(warning.contains("loopback"), "{warning}");
}

both_backends!(
    dispatch_warns_of_blocked_endpoints_at_start,
    registering_a_blocked_url_is_refused,
    a_blocked_endpoint_ends_dead_without_a_connection,
    an_allowed_network_is_reachable,
);
