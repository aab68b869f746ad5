//! API keys over HTTP, on SQLite and Postgres: made, listed, paged and
//! revoked through the real server on a free 127.0.0.1 port; expiry as
//! clients see it; the audit rows; the CLI's `--expires`. Refused requests
//! are proved to write nothing by comparing the database row by row.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use common::{Backend, TestDb, install_crypto, ok, stderr, test_config, test_ops};
use hookline::api::{ApiOptions, RunningApi};
use hookline::model::{Source, format_rfc3339, now_millis, parse_rfc3339};
use hookline::ops::Ops;
use hookline::store::Store;

/// The longest a test waits for a key to expire.
const EXPIRY_WAIT: Duration = Duration::from_secs(15);

/// A fresh database, the API serving it, an admin key and an HTTP client.
struct Server {
    db: TestDb,
    store: Store,
    ops: Ops,
    api: Option<RunningApi>,
    base: String,
    client: reqwest::Client,
    admin: String,
}

/// An answer: status, content type and body as JSON (`Null` if it is not).
struct Reply {
    status: u16,
    content_type: String,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// Asserts a problem document with this status and, if given, this
    /// field at fault; returns it.
    #[track_caller]
    fn problem(&self, status: u16, field: Option<&str>) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.content_type, "application/problem+json",
            "{}",
            self.text
        );
        let problem = self.json();
        assert_eq!(problem["status"], status, "{problem}");
        if let Some(field) = field {
            assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        }
        problem
    }
}

impl Server {
    async fn start(backend: Backend) -> Server {
        install_crypto();
        let db = TestDb::new(backend);
        let config = test_config(&db.url);
        let store = db.store_with(&config).await;
        let ops = test_ops(&store, &config);
        let (_, admin) = ops
            .create_api_key("admin-key", None, None)
            .await
            .expect("create the admin key");
        let api = hookline::api::start(
            ops.clone(),
            &ApiOptions {
                listen: "127.0.0.1:0".parse().expect("address"),
                open_health_metrics: false,
                alive_within: Duration::from_secs(5),
            },
        )
        .await
        .expect("start the API");
        Server {
            base: api.url(),
            api: Some(api),
            db,
            store,
            ops,
            client: reqwest::Client::new(),
            admin,
        }
    }

    async fn send(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {key}"));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("send the request");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text = response.text().await.expect("read the body");
        Reply {
            status,
            content_type,
            text,
        }
    }

    /// As the admin, asserting the status; returns the JSON body.
    async fn admin_ok(&self, method: &str, path: &str, body: Option<Value>, status: u16) -> Value {
        let reply = self.send(method, path, &self.admin, body).await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.text);
        reply.json()
    }

    /// A key made over HTTP by the admin; returns the answer (with `key`).
    async fn create_key(&self, body: Value) -> Value {
        self.admin_ok("POST", "/v1/api-keys", Some(body), 201).await
    }

    async fn stop(mut self) {
        if let Some(api) = self.api.take() {
            api.stop().await.expect("stop the API");
        }
    }
}

fn text_of(value: &Value, field: &str) -> String {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {value}"))
        .to_string()
}

/// Every page of `GET /v1/api-keys?limit=N` (and `extra` query), in order.
async fn pages(server: &Server, limit: usize, extra: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/api-keys?limit={limit}{extra}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page = server.admin_ok("GET", &path, None, 200).await;
        cursor = page["next_cursor"].as_str().map(str::to_string);
        pages.push(page);
        assert!(pages.len() <= 20, "paging does not end");
        if cursor.is_none() {
            return pages;
        }
    }
}

/// The names on a list of pages, in order.
fn names(pages: &[Value]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|p| p["data"].as_array().cloned().unwrap_or_default())
        .map(|k| text_of(&k, "name"))
        .collect()
}

// --- the life of a key --------------------------------------------------------

async fn a_key_made_over_http_works_lists_pages_and_is_revoked(backend: Backend) {
    let server = Server::start(backend).await;
    for tenant in ["acme", "globex"] {
        server
            .admin_ok("POST", "/v1/tenants", Some(json!({ "name": tenant })), 201)
            .await;
    }
    let created = server
        .create_key(json!({ "name": "acme-bot", "tenant": "acme" }))
        .await;
    let secret = text_of(&created, "key");
    let id = text_of(&created, "id");
    assert!(secret.starts_with("hlk_"), "{created}");
    assert!(id.starts_with("key_"), "{created}");
    assert!(
        secret.starts_with(&text_of(&created, "prefix")),
        "{created}"
    );
    assert_eq!(created["name"], "acme-bot");
    assert_eq!(created["tenant_name"], "acme");
    assert!(
        created["tenant_id"]
            .as_str()
            .is_some_and(|t| t.starts_with("ten_"))
    );
    assert_eq!(created["expires_at"], Value::Null);
    assert_eq!(created["revoked_at"], Value::Null);
    assert_eq!(created["expired"], false);
    assert!(
        parse_rfc3339(&text_of(&created, "created_at")).is_some(),
        "{created}"
    );

    // The new key works, and sees only its tenant.
    let tenants = server.send("GET", "/v1/tenants", &secret, None).await;
    assert_eq!(tenants.status, 200, "{}", tenants.text);
    let seen: Vec<String> = tenants.json()["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|t| text_of(t, "name"))
        .collect();
    assert_eq!(seen, ["acme"]);

    // Listed without the key or its hash.
    server.create_key(json!({ "name": "deploy" })).await;
    let listed = server
        .send("GET", "/v1/api-keys", &server.admin, None)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert!(
        !listed.text.contains(&secret),
        "the list shows a key: {}",
        listed.text
    );
    assert!(!listed.text.contains(&server.admin), "the list shows a key");
    let all = listed.json();
    let keys = all["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        keys.iter().map(|k| text_of(k, "name")).collect::<Vec<_>>(),
        ["admin-key", "acme-bot", "deploy"],
        "oldest first"
    );
    assert_eq!(all["next_cursor"], Value::Null);
    let shown = &keys[1];
    let fields: BTreeSet<&str> = shown
        .as_object()
        .expect("a record")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from([
            "id",
            "name",
            "tenant_id",
            "tenant_name",
            "prefix",
            "created_at",
            "expires_at",
            "revoked_at",
            "expired"
        ])
    );
    let hash = hookline::api_key::hash_presented(&secret).expect("a key's hash");
    assert!(!listed.text.contains(&hash), "the list shows a hash");

    // A page at a time: every key once, no empty page, the last says so.
    let one_by_one = pages(&server, 1, "").await;
    assert_eq!(one_by_one.len(), 3, "three keys, three pages");
    for page in &one_by_one {
        assert_eq!(page["data"].as_array().map(Vec::len), Some(1), "{page}");
    }
    assert_eq!(names(&one_by_one), ["admin-key", "acme-bot", "deploy"]);
    let exact = pages(&server, 3, "").await;
    assert_eq!(exact.len(), 1, "a full last page points at no further page");
    let two = pages(&server, 2, "").await;
    assert_eq!(two.len(), 2);
    assert_eq!(names(&two), ["admin-key", "acme-bot", "deploy"]);

    // Revoked: answered with the revoked record, then refused.
    let revoked = server
        .admin_ok("DELETE", &format!("/v1/api-keys/{id}"), None, 200)
        .await;
    assert_eq!(revoked["id"], id.as_str());
    assert!(revoked.get("key").is_none(), "{revoked}");
    let revoked_at = text_of(&revoked, "revoked_at");
    assert!(parse_rfc3339(&revoked_at).is_some(), "{revoked}");
    let refused = server.send("GET", "/v1/tenants", &secret, None).await;
    let problem = refused.problem(401, None);
    assert_eq!(problem["detail"], "the API key is unknown or revoked");
    server
        .send("DELETE", &format!("/v1/api-keys/{id}"), &server.admin, None)
        .await
        .problem(404, None);
    let live = pages(&server, 50, "").await;
    assert_eq!(names(&live), ["admin-key", "deploy"]);
    let with_revoked = pages(&server, 1, "&include_revoked=true").await;
    assert_eq!(names(&with_revoked), ["admin-key", "acme-bot", "deploy"]);
    assert_eq!(
        with_revoked[1]["data"][0]["revoked_at"],
        revoked_at.as_str()
    );
    // Its name is free again.
    server
        .create_key(json!({ "name": "acme-bot", "tenant": "acme" }))
        .await;
    server.stop().await;
}

async fn a_key_may_revoke_itself(backend: Backend) {
    let server = Server::start(backend).await;
    let created = server.create_key(json!({ "name": "short-lived" })).await;
    let secret = text_of(&created, "key");
    let path = format!("/v1/api-keys/{}", text_of(&created, "id"));
    let own = server.send("DELETE", &path, &secret, None).await;
    assert_eq!(own.status, 200, "{}", own.text);
    server
        .send("GET", "/v1/api-keys", &secret, None)
        .await
        .problem(401, None);
    server.stop().await;
}

// --- who may ------------------------------------------------------------------

async fn a_tenant_key_manages_no_keys(backend: Backend) {
    let server = Server::start(backend).await;
    server
        .admin_ok("POST", "/v1/tenants", Some(json!({ "name": "acme" })), 201)
        .await;
    let created = server
        .create_key(json!({ "name": "acme-bot", "tenant": "acme" }))
        .await;
    let tenant_key = text_of(&created, "key");
    let own_id = text_of(&created, "id");
    let admin_id = server
        .store
        .find_api_key("admin-key")
        .await
        .expect("the admin key")
        .id;
    let before = server.db.dump().await;
    for (method, path, body) in [
        ("GET", "/v1/api-keys".to_string(), None),
        ("GET", "/v1/api-keys?include_revoked=true".to_string(), None),
        (
            "POST",
            "/v1/api-keys".to_string(),
            Some(json!({ "name": "mine", "tenant": "acme" })),
        ),
        (
            "POST",
            "/v1/api-keys".to_string(),
            Some(json!({ "name": "root" })),
        ),
        ("DELETE", format!("/v1/api-keys/{admin_id}"), None),
        ("DELETE", format!("/v1/api-keys/{own_id}"), None),
    ] {
        let reply = server.send(method, &path, &tenant_key, body).await;
        let problem = reply.problem(403, None);
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("admin key")),
            "{method} {path}: {problem}"
        );
    }
    assert_eq!(before, server.db.dump().await, "a refused request wrote");
    // Below the API too: actions limited to a tenant make and revoke no keys.
    let scoped = server
        .ops
        .clone()
        .limited_to(Some(text_of(&created, "tenant_id")));
    let refused = scoped.create_api_key("sneaky", None, None).await;
    assert!(
        matches!(refused, Err(hookline::ops::OpsError::Forbidden(_))),
        "{refused:?}"
    );
    let refused = scoped.revoke_api_key(&admin_id).await;
    assert!(
        matches!(refused, Err(hookline::ops::OpsError::Forbidden(_))),
        "{refused:?}"
    );
    assert_eq!(before, server.db.dump().await, "a refused action wrote");
    server.stop().await;
}

// --- expiry -------------------------------------------------------------------

async fn an_expired_key_is_refused_saying_when(backend: Backend) {
    let server = Server::start(backend).await;
    let expires_at = format_rfc3339(now_millis() + 3_000);
    let created = server
        .create_key(json!({ "name": "brief", "expires_at": expires_at }))
        .await;
    assert_eq!(created["expires_at"], expires_at.as_str(), "{created}");
    assert_eq!(created["expired"], false);
    let secret = text_of(&created, "key");
    let works = server.send("GET", "/v1/api-keys", &secret, None).await;
    assert_eq!(
        works.status, 200,
        "before its expiry the key works: {}",
        works.text
    );

    let started = std::time::Instant::now();
    let refused = loop {
        let reply = server.send("GET", "/v1/api-keys", &secret, None).await;
        if reply.status != 200 || started.elapsed() > EXPIRY_WAIT {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        now_millis() >= parse_rfc3339(&expires_at).unwrap_or(i64::MAX),
        "refused before its expiry"
    );
    let problem = refused.problem(401, None);
    assert_eq!(
        problem["detail"],
        format!("this API key expired at {expires_at}"),
        "{problem}"
    );
    // An expired key is still listed, as expired, until revoked.
    let listed = server.admin_ok("GET", "/v1/api-keys", None, 200).await;
    let brief = listed["data"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["name"] == "brief").cloned())
        .unwrap_or_else(|| panic!("brief is not listed: {listed}"));
    assert_eq!(brief["expired"], true, "{brief}");
    assert_eq!(brief["revoked_at"], Value::Null);
    // A revoked expired key says no more than any unknown key.
    server
        .admin_ok(
            "DELETE",
            &format!("/v1/api-keys/{}", text_of(&brief, "id")),
            None,
            200,
        )
        .await;
    let problem = server
        .send("GET", "/v1/api-keys", &secret, None)
        .await
        .problem(401, None);
    assert_eq!(problem["detail"], "the API key is unknown or revoked");
    server.stop().await;
}

async fn a_bad_expiry_is_refused_naming_it_and_writes_nothing(backend: Backend) {
    let server = Server::start(backend).await;
    let before = server.db.dump().await;
    // Well formed but already past: a conflict with the clock (409);
    // malformed: invalid (422).
    for (expires_at, status, says) in [
        (json!("2020-01-01T00:00:00Z"), 409, "not in the future"),
        (
            json!(format_rfc3339(now_millis() - 1_000)),
            409,
            "not in the future",
        ),
        (json!("tomorrow"), 422, "RFC 3339"),
        (json!("90d"), 422, "RFC 3339"),
        (json!(1_900_000_000_000_i64), 422, "invalid type"),
    ] {
        let reply = server
            .send(
                "POST",
                "/v1/api-keys",
                &server.admin,
                Some(json!({ "name": "late", "expires_at": expires_at })),
            )
            .await;
        let problem = reply.problem(status, Some("expires_at"));
        assert!(
            problem["detail"].as_str().is_some_and(|d| d.contains(says)),
            "{expires_at}: {problem}"
        );
    }
    assert_eq!(before, server.db.dump().await, "a refused create wrote");
    server.stop().await;
}

// --- bad requests -------------------------------------------------------------

async fn bad_requests_are_refused_naming_the_field(backend: Backend) {
    let server = Server::start(backend).await;
    server.create_key(json!({ "name": "taken" })).await;
    let before = server.db.dump().await;
    let post = |body: Value| server.send("POST", "/v1/api-keys", &server.admin, Some(body));
    let taken = post(json!({ "name": "taken" }))
        .await
        .problem(409, Some("name"));
    assert!(
        taken["detail"]
            .as_str()
            .is_some_and(|d| d.contains("already exists")),
        "{taken}"
    );
    post(json!({ "name": "x", "tenant": "nobody" }))
        .await
        .problem(404, Some("tenant"));
    post(json!({ "name": "has space" }))
        .await
        .problem(422, Some("name"));
    post(json!({ "name": "" })).await.problem(422, Some("name"));
    post(json!({ "name": "a".repeat(65) }))
        .await
        .problem(422, Some("name"));
    post(json!({ "tenant": "acme" }))
        .await
        .problem(422, Some("name"));
    post(json!({ "name": "x", "admin": true }))
        .await
        .problem(422, Some("admin"));
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("cursor=nonsense", "cursor"),
        ("include_revoked=maybe", "include_revoked"),
        ("colour=red", "colour"),
    ] {
        server
            .send("GET", &format!("/v1/api-keys?{query}"), &server.admin, None)
            .await
            .problem(400, Some(field));
    }
    for id in ["key_01nothing", "taken", "ep_01abc"] {
        server
            .send("DELETE", &format!("/v1/api-keys/{id}"), &server.admin, None)
            .await
            .problem(404, None);
    }
    assert_eq!(before, server.db.dump().await, "a refused request wrote");
    server.stop().await;
}

// --- audit --------------------------------------------------------------------

async fn create_and_revoke_are_audited(backend: Backend) {
    let server = Server::start(backend).await;
    let expires_at = format_rfc3339(now_millis() + 86_400_000);
    let created = server
        .create_key(json!({ "name": "audited", "expires_at": expires_at }))
        .await;
    let id = text_of(&created, "id");
    server
        .admin_ok("DELETE", &format!("/v1/api-keys/{id}"), None, 200)
        .await;
    let audit = server
        .store
        .list_audit(None, 50)
        .await
        .expect("the audit log");
    let row = |action: &str| {
        audit
            .items
            .iter()
            .find(|a| a.action == action && a.target_ids == [id.clone()])
            .cloned()
            .unwrap_or_else(|| panic!("no {action} row for {id}: {:?}", audit.items))
    };
    let create = row("apikey.create");
    assert_eq!(create.actor, "admin-key");
    assert_eq!(create.source, Source::Api);
    assert_eq!(create.client_addr.as_deref(), Some("127.0.0.1"));
    let detail: Value = serde_json::from_str(&create.detail).expect("JSON detail");
    assert_eq!(detail["name"], "audited");
    assert_eq!(detail["tenant_id"], Value::Null);
    assert_eq!(detail["expires_at"], expires_at.as_str(), "{detail}");
    let revoke = row("apikey.revoke");
    assert_eq!(revoke.actor, "admin-key");
    assert_eq!(revoke.source, Source::Api);
    server.stop().await;
}

// --- the CLI ------------------------------------------------------------------

async fn the_cli_sets_and_shows_an_expiry(backend: Backend) {
    let server = Server::start(backend).await;
    let db = &server.db;
    let before = now_millis();
    let created = ok(db.hookline(&[
        "apikey",
        "create",
        "--name",
        "ci",
        "--admin",
        "--expires",
        "1h",
        "--json",
    ]));
    let after = now_millis();
    let created: Value = serde_json::from_str(&created).expect("JSON");
    let at = parse_rfc3339(&text_of(&created, "expires_at")).expect("an RFC 3339 expiry");
    let hour = 3_600_000;
    assert!(
        (before + hour..=after + hour).contains(&at),
        "--expires 1h set {at}, not an hour from {before}..{after}"
    );
    assert_eq!(created["expired"], false);
    let secret = text_of(&created, "key");
    let works = server.send("GET", "/v1/api-keys", &secret, None).await;
    assert_eq!(works.status, 200, "{}", works.text);

    // `list` shows the expiry, and marks a key whose expiry has passed.
    let soon = now_millis() + 500;
    server
        .ops
        .create_api_key("fleeting", None, Some(soon))
        .await
        .expect("a key expiring soon");
    assert!(
        common::wait_until(EXPIRY_WAIT, move || async move { now_millis() > soon }).await,
        "the clock stood still"
    );
    let listed: Value =
        serde_json::from_str(&ok(db.hookline(&["apikey", "list", "--json"]))).expect("JSON");
    let find = |name: &str| {
        listed
            .as_array()
            .and_then(|keys| keys.iter().find(|k| k["name"] == name).cloned())
            .unwrap_or_else(|| panic!("{name} is not listed: {listed}"))
    };
    assert_eq!(find("ci")["expires_at"], created["expires_at"]);
    assert_eq!(find("ci")["expired"], false);
    assert_eq!(
        find("fleeting")["expires_at"],
        format_rfc3339(soon).as_str()
    );
    assert_eq!(find("fleeting")["expired"], true);
    assert_eq!(find("admin-key")["expires_at"], Value::Null);
    let table = ok(db.hookline(&["apikey", "list"]));
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.contains("EXPIRES_AT") && header.contains("EXPIRED"),
        "{table}"
    );

    // A bad --expires is refused naming the flag, and writes nothing.
    let unchanged = db.dump().await;
    for (when, says) in [
        ("yesterday", "neither a duration nor a time"),
        ("2020-01-01T00:00:00Z", "not in the future"),
    ] {
        let output = db.hookline(&[
            "apikey",
            "create",
            "--name",
            "late",
            "--admin",
            "--expires",
            when,
        ]);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{when}: {message}");
        assert!(message.contains("--expires"), "{when}: {message}");
        assert!(message.contains(says), "{when}: {message}");
    }
    assert_eq!(unchanged, db.dump().await, "a refused create wrote");
    server.stop().await;
}

// --- the document ---------------------------------------------------------------

#[test]
fn the_document_states_every_answer_and_the_constraints() {
    let document = serde_json::to_value(hookline::api::openapi_document()).expect("JSON");
    let statuses = |path: &str, method: &str| -> BTreeSet<String> {
        document["paths"][path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} is not documented"))
            .keys()
            .cloned()
            .collect()
    };
    let set = |codes: &[&str]| codes.iter().map(|c| c.to_string()).collect::<BTreeSet<_>>();
    let create = statuses("/v1/api-keys", "post");
    assert!(
        create.is_superset(&set(&["201", "400", "401", "403", "404", "409", "422"])),
        "{create:?}"
    );
    let list = statuses("/v1/api-keys", "get");
    assert!(
        list.is_superset(&set(&["200", "400", "401", "403"])),
        "{list:?}"
    );
    let delete = statuses("/v1/api-keys/{id}", "delete");
    assert!(
        delete.is_superset(&set(&["200", "401", "403", "404"])),
        "{delete:?}"
    );
    let problem = &document["paths"]["/v1/api-keys"]["post"]["responses"]["409"]["content"];
    assert!(problem["application/problem+json"].is_object(), "{problem}");

    let request = &document["components"]["schemas"]["CreateApiKey"];
    assert_eq!(request["properties"]["name"]["maxLength"], 64, "{request}");
    assert!(
        request["properties"]["name"]["pattern"].is_string(),
        "{request}"
    );
    assert_eq!(
        request["properties"]["expires_at"]["format"], "date-time",
        "{request}"
    );
    assert_eq!(request["required"], json!(["name"]), "{request}");
}

both_backends!(
    a_key_made_over_http_works_lists_pages_and_is_revoked,
    a_key_may_revoke_itself,
    a_tenant_key_manages_no_keys,
    an_expired_key_is_refused_saying_when,
    a_bad_expiry_is_refused_naming_it_and_writes_nothing,
    bad_requests_are_refused_naming_the_field,
    create_and_revoke_are_audited,
    the_cli_sets_and_shows_an_expiry,
);
