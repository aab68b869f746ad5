//! What the console tests share: a realistic seeded database (tenants,
//! endpoints, subscriptions, events, and deliveries that succeeded, are
//! retrying, died or wait behind a paused endpoint), written through the
//! real `Ops` and store, with attempts recorded through the store exactly
//! as a dispatcher records them; and helpers that turn a rendered screen
//! into stable text (ids and clock times masked).
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use hookline::config::Config;
use hookline::model::{ErrorKind, IdKind, new_id, now_millis};
use hookline::ops::{EndpointInput, EventInput, Ops};
use hookline::store::{ClaimRequest, NewAttempt, NextStep, Outcome, Store};

use crate::common::{Backend, TestDb, test_config, test_ops};

const MINUTE: i64 = 60_000;
/// The retrying delivery's next attempt: far enough that "30m" stays
/// what the screen says for the whole test.
pub const RETRY_IN_MS: i64 = 30 * MINUTE + 30_000;

/// A seeded database and what a test needs to find its way in it.
pub struct Seeded {
    pub db: TestDb,
    pub store: Store,
    pub config: Config,
    pub ops: Ops,
    /// The start of the minute the seeding began in. Every attempt is
    /// recorded at a whole number of minutes before it, so "3m ago", the
    /// sparklines and the 5-minute windows read the same on every run
    /// rendered within this minute.
    pub minute: i64,
    /// globex/orders deliveries that died after three HTTP 500s, newest first.
    pub dead: Vec<String>,
    /// The globex/orders delivery waiting for its retry (a timeout).
    pub retrying: String,
    /// The event of the newest dead delivery.
    pub dead_event: String,
    /// globex/orders's subscription to `order.*`.
    pub orders_subscription: String,
}

/// Endpoints as `(tenant, name, url, pattern, description)`.
const ENDPOINTS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "acme",
        "billing-prod",
        "https://billing.acme.example/webhooks",
        "invoice.*",
        "invoices for the ledger",
    ),
    (
        "acme",
        "crm-sync",
        "https://crm.acme.example/hooks/hookline",
        "resident.**",
        "resident changes to the CRM",
    ),
    (
        "globex",
        "orders",
        "https://erp.globex.example/api/orders/webhook",
        "order.*",
        "",
    ),
    (
        "initech",
        "audit-trail",
        "https://audit.initech.example/in",
        "*",
        "everything, for compliance",
    ),
];

/// Seeds a fresh database of `backend`. No dispatcher runs: the attempts
/// are recorded through the store, so the database is quiet afterwards.
pub async fn seed(backend: Backend) -> Seeded {
    crate::common::install_crypto();
    let db = TestDb::new(backend);
    let store = db.store().await;
    let config = test_config(&db.url);
    let ops = test_ops(&store, &config);
    let minute = now_millis() - now_millis().rem_euclid(MINUTE);
    let mut orders_subscription = String::new();
    for tenant in ["acme", "globex", "initech"] {
        ops.add_tenant(tenant)
            .await
            .unwrap_or_else(|e| panic!("add tenant {tenant}: {e}"));
    }
    for (tenant, name, url, pattern, description) in ENDPOINTS {
        let input = EndpointInput {
            tenant: tenant.to_string(),
            name: name.to_string(),
            url: url.to_string(),
            secret: None,
            timeout: Some(Duration::from_secs(10)),
            max_in_flight: None,
            headers: Vec::new(),
            description: None,
            rate_limit: None,
            rate_limit_burst: None,
        };
        let endpoint = ops
            .add_endpoint(&input)
            .await
            .unwrap_or_else(|e| panic!("add endpoint {name}: {e}"));
        let description = (!description.is_empty()).then_some(*description);
        let subscription = ops
            .add_subscription(&endpoint.id, pattern, description)
            .await
            .unwrap_or_else(|e| panic!("subscribe {name}: {e}"));
        if *name == "orders" {
            orders_subscription = subscription.id;
        }
    }
    for (i, amount) in [1200, 4999, 15000, 860].iter().enumerate() {
        publish(
            &ops,
            "acme",
            "invoice.paid",
            &format!(
                r#"{{"invoice":"inv_{:04}","amount_cents":{amount},"currency":"EUR"}}"#,
                1041 + i
            ),
        )
        .await;
    }
    for unit in ["4B", "12A"] {
        publish(
            &ops,
            "acme",
            "resident.update",
            &format!(r#"{{"resident":"res_88{unit}","unit":"{unit}","changes":["phone"]}}"#),
        )
        .await;
    }
    for order in 7001..=7004 {
        publish(
            &ops,
            "globex",
            "order.created",
            &format!(r#"{{"order":"ord_{order}","lines":3,"total":{{"value":"129.90","currency":"USD"}}}}"#),
        )
        .await;
    }
    let owner = new_id(IdKind::Dispatcher);
    // First attempts: acme's all succeed (ten and three minutes ago), the
    // orders fail with 500s, one with a timeout that retries in half an hour.
    let claimed = claim(&store, &owner, 10).await;
    assert_eq!(claimed.len(), 10, "every first delivery is due");
    let mut outcomes = Vec::new();
    let mut dead: Vec<(String, String)> = Vec::new();
    let mut retrying = String::new();
    let mut successes: HashMap<String, usize> = HashMap::new();
    for (delivery, endpoint_name, event) in &claimed {
        let endpoint = claimed_endpoint(&store, delivery).await;
        let outcome = if endpoint_name == "orders" {
            if dead.len() == 3 {
                retrying = delivery.clone();
                timeout(delivery, &endpoint, minute)
            } else {
                dead.push((delivery.clone(), event.clone()));
                server_error(
                    delivery,
                    &endpoint,
                    1,
                    minute - 2 * MINUTE,
                    NextStep::RetryIn(0),
                )
            }
        } else {
            // Each endpoint's last success falls exactly on a minute
            // ("3m ago" for billing-prod, "10m ago" for crm-sync whenever
            // it is read within the seeding minute); the others a second apart.
            let n = successes.entry(endpoint_name.clone()).or_default();
            *n += 1;
            let (last_ok, count) = match endpoint_name.as_str() {
                "billing-prod" => (minute - 3 * MINUTE, 4),
                _ => (minute - 10 * MINUTE, 2),
            };
            let at = last_ok - 1_000 * (count - *n as i64);
            success(delivery, &endpoint, at, [38, 41, 45, 160][(*n - 1) % 4])
        };
        outcomes.push(outcome);
    }
    record(&store, &owner, &outcomes).await;
    // Two more 500s for each dying order, a minute apart; the third is the last.
    for (number, next) in [(2, NextStep::RetryIn(0)), (3, NextStep::Dead)] {
        let again = claim(&store, &owner, 3).await;
        assert_eq!(again.len(), 3, "the three failing orders are due again");
        let mut outcomes = Vec::new();
        for (delivery, _, _) in &again {
            let endpoint = claimed_endpoint(&store, delivery).await;
            let at = minute - (3 - number) * MINUTE;
            outcomes.push(server_error(delivery, &endpoint, number, at, next));
        }
        record(&store, &owner, &outcomes).await;
    }
    // Newest first, as the console lists them (ids grow with time).
    dead.sort();
    dead.reverse();
    let dead_event = dead[0].1.clone();
    let dead: Vec<String> = dead.into_iter().map(|(delivery, _)| delivery).collect();
    // What an operator did since: paused the CRM for its maintenance and
    // described the orders subscription; then more events arrived.
    ops.pause_endpoint(
        "acme/crm-sync",
        Some("vendor maintenance until 14:00 UTC"),
        None,
    )
    .await
    .unwrap_or_else(|e| panic!("pause crm-sync: {e}"));
    ops.update_subscription(
        &orders_subscription,
        None,
        Some(Some("order lifecycle for the ERP")),
    )
    .await
    .unwrap_or_else(|e| panic!("describe the orders subscription: {e}"));
    publish(
        &ops,
        "acme",
        "resident.update",
        r#"{"resident":"res_8831","unit":"7C","changes":["email"]}"#,
    )
    .await;
    for user in ["usr_310", "usr_311"] {
        publish(
            &ops,
            "initech",
            "user.signup",
            &format!(r#"{{"user":"{user}","plan":"team"}}"#),
        )
        .await;
    }
    Seeded {
        db,
        store,
        config,
        ops,
        minute,
        dead,
        retrying,
        dead_event,
        orders_subscription,
    }
}

async fn publish(ops: &Ops, tenant: &str, topic: &str, payload: &str) {
    ops.publish(EventInput {
        tenant: Some(tenant.to_string()),
        broadcast: false,
        topic: topic.to_string(),
        payload: payload.into(),
        idempotency_key: None,
    })
    .await
    .unwrap_or_else(|e| panic!("publish {topic}: {e}"));
}

/// Leases up to `limit` due deliveries: `(delivery id, endpoint name, event id)`.
async fn claim(store: &Store, owner: &str, limit: usize) -> Vec<(String, String, String)> {
    let claimed = store
        .claim(&ClaimRequest {
            owner,
            limit,
            lease_ms: 60_000,
            default_max_in_flight: 100,
            default_timeout_ms: 10_000,
            reap_expired: false,
            slots: None,
        })
        .await
        .unwrap_or_else(|e| panic!("claim: {e}"));
    let mut rows = Vec::new();
    for d in claimed.deliveries {
        let endpoint = store
            .get_endpoint(&d.endpoint_id)
            .await
            .unwrap_or_else(|e| panic!("endpoint of {}: {e}", d.id));
        rows.push((d.id, endpoint.name, d.event_id));
    }
    rows
}

/// `(endpoint id, event id)` of a delivery.
async fn claimed_endpoint(store: &Store, delivery: &str) -> (String, String) {
    let detail = store
        .get_delivery(delivery)
        .await
        .unwrap_or_else(|e| panic!("get {delivery}: {e}"));
    (detail.delivery.endpoint_id, detail.delivery.event_id)
}

async fn record(store: &Store, owner: &str, outcomes: &[Outcome]) {
    let summary = store
        .record_outcomes(owner, outcomes)
        .await
        .unwrap_or_else(|e| panic!("record outcomes: {e}"));
    assert_eq!(
        summary.applied,
        outcomes.len() as u64,
        "every outcome applied"
    );
}

/// The headers a dispatcher records (signature masked, as it stores them).
fn headers(event: &str) -> Vec<(String, String)> {
    vec![
        ("content-type".into(), "application/json".into()),
        ("user-agent".into(), "hookline".into()),
        ("webhook-id".into(), event.to_string()),
        ("webhook-timestamp".into(), "1795416141".into()),
        ("webhook-signature".into(), "v1,****".into()),
    ]
}

fn attempt(delivery: &str, endpoint: &(String, String), number: i64, at: i64) -> NewAttempt {
    NewAttempt {
        id: new_id(IdKind::Attempt),
        delivery_id: delivery.to_string(),
        endpoint_id: endpoint.0.clone(),
        attempt_number: number,
        started_at: at,
        duration_ms: 0,
        status_code: None,
        error_kind: None,
        error_message: None,
        request_headers: headers(&endpoint.1),
        response_body: None,
    }
}

fn success(delivery: &str, endpoint: &(String, String), at: i64, ms: i64) -> Outcome {
    Outcome {
        attempt: NewAttempt {
            duration_ms: ms,
            status_code: Some(200),
            response_body: Some(r#"{"ok":true}"#.to_string()),
            ..attempt(delivery, endpoint, 1, at)
        },
        next: NextStep::Succeeded,
        disable_endpoint: None,
        published_at: None,
        retry_after_ms: None,
    }
}

fn server_error(
    delivery: &str,
    endpoint: &(String, String),
    number: i64,
    at: i64,
    next: NextStep,
) -> Outcome {
    Outcome {
        attempt: NewAttempt {
            duration_ms: [120, 95, 210][(number as usize - 1) % 3],
            status_code: Some(500),
            error_kind: Some(ErrorKind::HttpStatus),
            error_message: Some("HTTP 500 Internal Server Error".to_string()),
            response_body: Some(r#"{"error":"database is locked"}"#.to_string()),
            ..attempt(delivery, endpoint, number, at)
        },
        next,
        disable_endpoint: None,
        published_at: None,
        retry_after_ms: None,
    }
}

fn timeout(delivery: &str, endpoint: &(String, String), at: i64) -> Outcome {
    Outcome {
        attempt: NewAttempt {
            duration_ms: 10_000,
            error_kind: Some(ErrorKind::Timeout),
            error_message: Some("no answer within 10s".to_string()),
            ..attempt(delivery, endpoint, 1, at)
        },
        next: NextStep::RetryIn(RETRY_IN_MS),
        disable_endpoint: None,
        published_at: None,
        retry_after_ms: None,
    }
}

/// Adds the endpoint `tenant/name` (subscribed to `catalog.*`) and one
/// delivery to it whose first attempt could not connect, with `message`
/// as the error: a name and an error too long for an 80-column list.
/// Returns the delivery's event id.
pub async fn add_failing_endpoint(
    seeded: &Seeded,
    tenant: &str,
    name: &str,
    message: &str,
) -> String {
    let ops = &seeded.ops;
    ops.add_tenant(tenant)
        .await
        .unwrap_or_else(|e| panic!("add tenant {tenant}: {e}"));
    let endpoint = ops
        .add_endpoint(&EndpointInput {
            tenant: tenant.to_string(),
            name: name.to_string(),
            url: format!("https://{name}.{tenant}.example/hooks"),
            secret: None,
            timeout: Some(Duration::from_secs(10)),
            max_in_flight: None,
            headers: Vec::new(),
            description: None,
            rate_limit: None,
            rate_limit_burst: None,
        })
        .await
        .unwrap_or_else(|e| panic!("add endpoint {name}: {e}"));
    ops.add_subscription(&endpoint.id, "catalog.*", None)
        .await
        .unwrap_or_else(|e| panic!("subscribe {name}: {e}"));
    publish(
        ops,
        tenant,
        "catalog.price_changed",
        r#"{"sku":"sku_1","price":"9.90"}"#,
    )
    .await;
    let owner = new_id(IdKind::Dispatcher);
    let claimed = claim(&seeded.store, &owner, 20).await;
    let (delivery, _, event) = claimed
        .into_iter()
        .find(|(_, endpoint_name, _)| endpoint_name == name)
        .unwrap_or_else(|| panic!("the delivery to {name} is due"));
    let target = claimed_endpoint(&seeded.store, &delivery).await;
    let outcome = Outcome {
        attempt: NewAttempt {
            duration_ms: 3,
            error_kind: Some(ErrorKind::Connect),
            error_message: Some(message.to_string()),
            ..attempt(&delivery, &target, 1, now_millis())
        },
        next: NextStep::RetryIn(RETRY_IN_MS),
        disable_endpoint: None,
        published_at: None,
        retry_after_ms: None,
    };
    record(&seeded.store, &owner, &[outcome]).await;
    event
}

// --- hostile text ---------------------------------------------------------

/// A terminal's clipboard write (OSC 52), as ESC sequences and in C1 form.
pub const OSC52: &str = "\x1b]52;c;aGVsbG8=\x07";
pub const OSC52_C1: &str = "\u{9d}52;c;aGVsbG8=\u{9c}";
/// Clear the screen, as an ESC sequence and in C1 form.
pub const CLEAR: &str = "\x1b[2J";
pub const CLEAR_C1: &str = "\u{9b}2J";
/// Right-to-left override: the rest of the line reads backwards.
pub const RLO: &str = "\u{202e}";
/// How each of them is shown: the visible escapes.
pub const OSC52_SHOWN: &str = r"\x1b]52;c;aGVsbG8=\x07";
pub const CLEAR_SHOWN: &str = r"\x1b[2J";
pub const RLO_SHOWN: &str = r"\u202e";

/// Whether `text` holds a character a terminal acts on or that reorders
/// the line (line breaks aside): what must never reach the screen raw.
pub fn has_raw_controls(text: &str) -> bool {
    text.chars()
        .any(|c| c != '\n' && hookline::text::needs_escape(c, hookline::text::Breaks::Keep))
}

/// A database where everything outside text can reach carries the three
/// hostile strings: what the console must show escaped.
pub struct Hostile {
    pub db: TestDb,
    pub store: Store,
    pub ops: Ops,
    pub delivery: String,
    pub event: String,
    /// The start of the minute the seeding began in (see [`Seeded::minute`]).
    pub minute: i64,
}

/// One tenant `hostile` with endpoint `receiver`. Where a field takes any
/// text, it holds OSC 52, a clear screen and U+202E: the endpoint's URL,
/// description and pause reason, its subscription's description, the
/// operator's name and address in the audit log, an attempt's error
/// message and the receiver's answer. A header value takes no C0 control,
/// so it carries U+202E and the C1 clear screen; the payload (JSON, whose
/// strings escape C0) carries them and the C1 clipboard write raw. Names
/// and topics refuse all of it.
pub async fn seed_hostile(backend: Backend) -> Hostile {
    crate::common::install_crypto();
    let db = TestDb::new(backend);
    let store = db.store().await;
    let config = test_config(&db.url);
    let ops = Ops::new(
        store.clone(),
        &config,
        hookline::model::Actor {
            name: format!("ana{RLO}{CLEAR}"),
            client_addr: Some(format!("203.0.113.9{OSC52}")),
            source: hookline::model::Source::Cli,
        },
    );
    ops.add_tenant("hostile")
        .await
        .unwrap_or_else(|e| panic!("add tenant: {e}"));
    let endpoint = ops
        .add_endpoint(&EndpointInput {
            tenant: "hostile".to_string(),
            name: "receiver".to_string(),
            url: format!("https://example.com/h/{OSC52}?q={CLEAR}{RLO}gpj.exe"),
            secret: None,
            timeout: None,
            max_in_flight: None,
            headers: vec![format!("X-Note: v{RLO}{CLEAR_C1}")],
            description: Some(format!("desc {OSC52} {CLEAR} {RLO}")),
            rate_limit: None,
            rate_limit_burst: None,
        })
        .await
        .unwrap_or_else(|e| panic!("add endpoint: {e}"));
    ops.add_subscription(&endpoint.id, "*", Some(&format!("sub {OSC52}{CLEAR}{RLO}")))
        .await
        .unwrap_or_else(|e| panic!("subscribe: {e}"));
    let payload = format!(
        r#"{{"osc":"\u001b]52;c;aGVsbG8=\u0007","c1":"{OSC52_C1}","clear":"{CLEAR_C1}","bidi":"{RLO}gpj.exe"}}"#
    );
    publish(&ops, "hostile", "order.created", &payload).await;
    let owner = new_id(IdKind::Dispatcher);
    let minute = now_millis() - now_millis().rem_euclid(MINUTE);
    let claimed = claim(&store, &owner, 10).await;
    assert_eq!(claimed.len(), 1, "the one delivery is due");
    let (delivery, _, event) = claimed[0].clone();
    let target = claimed_endpoint(&store, &delivery).await;
    let sent = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("x-note".to_string(), format!("v{RLO}{CLEAR_C1}")),
        ("webhook-signature".to_string(), "v1,****".to_string()),
    ];
    let answer = Outcome {
        attempt: NewAttempt {
            duration_ms: 80,
            status_code: Some(500),
            error_kind: Some(ErrorKind::HttpStatus),
            error_message: Some("500 Internal Server Error".to_string()),
            response_body: Some(format!("{OSC52}{CLEAR}{RLO}gpj.exe")),
            request_headers: sent.clone(),
            ..attempt(&delivery, &target, 1, minute - 2 * MINUTE)
        },
        next: NextStep::RetryIn(0),
        disable_endpoint: None,
        published_at: None,
        retry_after_ms: None,
    };
    record(&store, &owner, &[answer]).await;
    let again = claim(&store, &owner, 10).await;
    assert_eq!(again.len(), 1, "due again");
    let reset = Outcome {
        attempt: NewAttempt {
            duration_ms: 12,
            error_kind: Some(ErrorKind::Network),
            error_message: Some(format!("reset {OSC52} {CLEAR} {RLO}gpj.exe")),
            request_headers: sent,
            ..attempt(&delivery, &target, 2, minute - MINUTE)
        },
        next: NextStep::Dead,
        disable_endpoint: None,
        published_at: None,
        retry_after_ms: None,
    };
    record(&store, &owner, &[reset]).await;
    ops.pause_endpoint(
        &endpoint.id,
        Some(&format!("paused {OSC52} {CLEAR} {RLO}")),
        None,
    )
    .await
    .unwrap_or_else(|e| panic!("pause: {e}"));
    Hostile {
        db,
        store,
        ops,
        delivery,
        event,
        minute,
    }
}

// --- screens as text ------------------------------------------------------

/// Id prefixes whose ULIDs are masked.
const ID_PREFIXES: &[&str] = &[
    "ten_", "ep_", "sub_", "msg_", "dlv_", "att_", "aud_", "dsp_",
];

/// Makes screen text stable: each distinct full id becomes a numbered
/// stand-in of the same width (first seen, first numbered, so "the same
/// id in two places" still shows), a cut-off id is x'd out, clock times keep
/// their shape with letters for digits, and RFC 3339 timestamps (whose
/// length varies with the milliseconds) all read `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn mask(text: &str) -> String {
    let mut seen: Vec<String> = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let boundary = i == 0 || !chars[i - 1].is_ascii_alphanumeric();
        let prefix = ID_PREFIXES
            .iter()
            .find(|p| boundary && starts_with(&chars[i..], p));
        if let Some(prefix) = prefix {
            let start = i + prefix.len();
            let mut end = start;
            while end < chars.len() && end - start < 26 && is_ulid_char(chars[end]) {
                end += 1;
            }
            if end - start >= 4 {
                let ulid: String = chars[start..end].iter().collect();
                out.push_str(prefix);
                if ulid.len() == 26 {
                    let n = match seen.iter().position(|u| *u == ulid) {
                        Some(n) => n + 1,
                        None => {
                            seen.push(ulid);
                            seen.len()
                        }
                    };
                    out.push_str(&format!("{n:0>26}"));
                } else {
                    out.push_str(&"x".repeat(end - start));
                }
                i = end;
                continue;
            }
        }
        if let Some(len) = timestamp_len(&chars[i..]) {
            out.push_str("YYYY-MM-DDTHH:MM:SS.mmmZ");
            i += len;
            continue;
        }
        if boundary && is_clock(&chars[i..]) {
            out.push_str("HH:MM:SS");
            i += 8;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

fn starts_with(chars: &[char], prefix: &str) -> bool {
    prefix.chars().count() <= chars.len() && prefix.chars().zip(chars).all(|(a, b)| a == *b)
}

fn is_ulid_char(c: char) -> bool {
    c.is_ascii_digit() || (c.is_ascii_uppercase() && !"ILOU".contains(c))
}

/// `12:34:56`.
fn is_clock(chars: &[char]) -> bool {
    let shape = "dd:dd:dd";
    chars.len() >= shape.len()
        && shape.chars().zip(chars).all(|(s, c)| match s {
            'd' => c.is_ascii_digit(),
            other => other == *c,
        })
        && chars.get(8).is_none_or(|c| !c.is_ascii_digit())
}

/// `2026-11-23T06:42:18.604Z`, `…18.6Z` or `…18Z` (RFC 3339 drops trailing
/// zeros of the fraction): its length in characters.
fn timestamp_len(chars: &[char]) -> Option<usize> {
    let shape = "dddd-dd-ddTdd:dd:dd";
    let matches = chars.len() >= shape.len()
        && shape.chars().zip(chars).all(|(s, c)| match s {
            'd' => c.is_ascii_digit(),
            other => other == *c,
        });
    if !matches {
        return None;
    }
    let mut end = shape.len();
    if chars.get(end) == Some(&'.') {
        end += 1;
        while chars.get(end).is_some_and(|c| c.is_ascii_digit()) {
            end += 1;
        }
    }
    (chars.get(end) == Some(&'Z')).then_some(end + 1)
}

/// Replaces the value after `label` on its line (up to a panel border)
/// with `[age]`, right-aligned in the same width: for ages that grow while
/// a test runs.
pub fn mask_value_after(text: &str, label: &str) -> String {
    text.lines()
        .map(|line| match line.find(label) {
            Some(at) => {
                let start = at + label.len();
                let rest = &line[start..];
                let end = rest.find('│').unwrap_or(rest.len());
                let width = rest[..end].chars().count();
                format!("{}{:>width$}{}", &line[..start], "[age]", &rest[end..])
            }
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_ids_times_and_keeps_widths() {
        let text = "dlv_01M83J88VCXN0XJAC6MYBWXRH7 06:42:18 dlv_01M83J88VCXN0XJAC6MYBWXRH7 msg_01M83J88VC \
                    2026-11-23T06:42:18.604Z (2026-11-23T06:42:18.6Z) oldest";
        let masked = mask(text);
        assert_eq!(
            masked,
            "dlv_00000000000000000000000001 HH:MM:SS dlv_00000000000000000000000001 msg_xxxxxxxxxx \
             YYYY-MM-DDTHH:MM:SS.mmmZ (YYYY-MM-DDTHH:MM:SS.mmmZ) oldest"
        );
    }
}
