//! A one-shot check of an endpoint from this host: each step of reaching
//! it with its time (DNS with what the outbound guard says of every
//! address, TCP connect, TLS handshake and certificate), then a signed
//! `POST` of a `hookline.ping` test event through the dispatcher's own
//! client and guard, and the answer. A probe is not a delivery: nothing of
//! it is stored as an attempt or counted in health or the breaker.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::cert;
use super::guard::Guard;
use super::send::{PreparedTarget, Sender};
use crate::model::{IdKind, format_rfc3339, new_id, now_millis};
use crate::redact::mask_url_password;
use crate::store::EndpointTarget;

/// The topic of the test event a probe sends.
pub const PING_TOPIC: &str = "hookline.ping";
/// Lines of the answer's body a probe shows.
const ANSWER_LINES: usize = 5;

/// One step of a probe.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeStep {
    /// `url`, `proxy`, `dns`, `connect`, `tls` or `answer`.
    pub step: &'static str,
    pub ok: bool,
    /// How long it took, when it ran.
    pub ms: Option<i64>,
    /// What it found, in a sentence.
    pub detail: String,
    /// More lines: each address and the guard's word on it, the answer's
    /// first lines.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
}

/// What a probe found, step by step, and from where.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeReport {
    /// The host the probe ran on (its network is what was checked).
    pub from_host: String,
    pub endpoint_id: String,
    /// The URL probed, a password in it masked.
    pub url: String,
    pub at: String,
    pub steps: Vec<ProbeStep>,
}

impl ProbeReport {
    /// Whether every step succeeded: the receiver answered 2xx.
    pub fn ok(&self) -> bool {
        !self.steps.is_empty() && self.steps.iter().all(|s| s.ok)
    }
}

/// Probes `target` from this host through `guard`, sending the ping with
/// `sender`; each network step gives up after `limit`.
pub async fn probe(
    guard: &Guard,
    sender: &Sender,
    target: &EndpointTarget,
    limit: Duration,
) -> ProbeReport {
    let mut report = ProbeReport {
        from_host: this_host(),
        endpoint_id: target.id.clone(),
        url: mask_url_password(&target.url),
        at: format_rfc3339(now_millis()),
        steps: Vec::new(),
    };
    let url = match reqwest::Url::parse(&target.url) {
        Ok(url) => url,
        Err(err) => {
            report
                .steps
                .push(failed("url", None, format!("not a usable URL: {err}")));
            return report;
        }
    };
    let host = url.host_str().unwrap_or_default().to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    match guard.proxy() {
        Some(proxy) => report.steps.push(ProbeStep {
            step: "proxy",
            ok: true,
            ms: None,
            detail: format!(
                "through the egress proxy {proxy}: DNS, connect and TLS are the proxy's to make"
            ),
            lines: Vec::new(),
        }),
        None => {
            if !reach(
                guard,
                &host,
                port,
                url.scheme() == "https",
                limit,
                &mut report,
            )
            .await
            {
                return report;
            }
        }
    }
    report.steps.push(answer(sender, target).await);
    report
}

/// DNS, connect and TLS; whether every one succeeded.
async fn reach(
    guard: &Guard,
    host: &str,
    port: u16,
    tls: bool,
    limit: Duration,
    report: &mut ProbeReport,
) -> bool {
    let (dns, allowed) = resolve(guard, host, limit).await;
    report.steps.push(dns);
    let Some(address) = allowed else {
        return false;
    };
    let started = Instant::now();
    let stream = match timeout(limit, TcpStream::connect(SocketAddr::new(address, port))).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            report.steps.push(failed(
                "connect",
                since(started),
                format!("{address} port {port}: {err}"),
            ));
            return false;
        }
        Err(_) => {
            report.steps.push(failed(
                "connect",
                since(started),
                format!(
                    "{address} port {port}: no answer within {}s",
                    limit.as_secs()
                ),
            ));
            return false;
        }
    };
    report.steps.push(ProbeStep {
        step: "connect",
        ok: true,
        ms: since(started),
        detail: format!("connected to {address} port {port}"),
        lines: Vec::new(),
    });
    if !tls {
        return true;
    }
    let step = handshake(stream, host, limit).await;
    let ok = step.ok;
    report.steps.push(step);
    ok
}

/// Resolves `host` and judges every address; the step, and the first
/// address the guard allows.
async fn resolve(guard: &Guard, host: &str, limit: Duration) -> (ProbeStep, Option<IpAddr>) {
    let started = Instant::now();
    let found = match timeout(limit, guard.resolve_all(host)).await {
        Ok(Ok(found)) if !found.is_empty() => found,
        Ok(Ok(_)) => {
            return (
                failed("dns", since(started), format!("{host}: no address")),
                None,
            );
        }
        Ok(Err(err)) => {
            return (
                failed("dns", since(started), format!("{host}: {err}")),
                None,
            );
        }
        Err(_) => {
            return (
                failed(
                    "dns",
                    since(started),
                    format!("{host}: no answer within {}s", limit.as_secs()),
                ),
                None,
            );
        }
    };
    let mut lines = Vec::new();
    let mut allowed = None;
    for address in &found {
        match guard.policy().judge(*address) {
            Ok(()) => {
                lines.push(format!("{address}: allowed"));
                allowed = allowed.or(Some(*address));
            }
            Err(refusal) => lines.push(format!("{address}: blocked, {refusal}")),
        }
    }
    let literal = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok();
    let detail = match allowed {
        Some(_) if literal => format!("{host} is an address: nothing to look up"),
        Some(_) if found.len() == 1 => format!("{host}: 1 address"),
        Some(_) => format!("{host}: {} addresses", found.len()),
        None => format!(
            "{host}: the outbound guard allows none of its addresses, so nothing is sent ([network] allow)"
        ),
    };
    let step = ProbeStep {
        step: "dns",
        ok: allowed.is_some(),
        ms: since(started),
        detail,
        lines,
    };
    (step, allowed)
}

/// The TLS handshake on `stream` as the dispatcher verifies it, and the
/// certificate it was shown.
async fn handshake(stream: TcpStream, host: &str, limit: Duration) -> ProbeStep {
    use hyper_rustls::ConfigBuilderExt;
    let started = Instant::now();
    let config = match rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .and_then(|builder| builder.try_with_platform_verifier())
    {
        Ok(builder) => builder.with_no_client_auth(),
        Err(err) => return failed("tls", None, format!("no TLS set-up on this host: {err}")),
    };
    let Ok(name) = rustls::pki_types::ServerName::try_from(host.to_string()) else {
        return failed(
            "tls",
            None,
            format!("{host:?} is not a name TLS can verify"),
        );
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls = match timeout(limit, connector.connect(name, stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(err)) => return failed("tls", since(started), err.to_string()),
        Err(_) => {
            return failed(
                "tls",
                since(started),
                format!("no handshake within {}s", limit.as_secs()),
            );
        }
    };
    let ms = since(started);
    let (_, session) = tls.get_ref();
    let version = session
        .protocol_version()
        .map(|v| format!("{v:?}"))
        .unwrap_or_default();
    let facts = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| cert::facts(leaf.as_ref()));
    let lines = match facts {
        Some(facts) => {
            let days = (facts.not_after_ms - now_millis()).div_euclid(86_400_000);
            vec![
                format!("subject {}", facts.subject),
                format!("issuer {}", facts.issuer),
                format!(
                    "expires {} (in {days} days)",
                    format_rfc3339(facts.not_after_ms)
                ),
            ]
        }
        None => vec!["certificate: could not be read".to_string()],
    };
    ProbeStep {
        step: "tls",
        ok: true,
        ms,
        detail: format!("{version} handshake, certificate verified for {host}"),
        lines,
    }
}

/// The signed `POST` of a test event, through the dispatcher's client.
async fn answer(sender: &Sender, target: &EndpointTarget) -> ProbeStep {
    let id = new_id(IdKind::Event);
    let payload = serde_json::json!({
        "type": PING_TOPIC,
        "probe": true,
        "endpoint_id": target.id,
        "sent_at": format_rfc3339(now_millis()),
        "note": "a probe from hookline: not an event, nothing to process",
    })
    .to_string();
    let result = sender
        .attempt(&PreparedTarget::new(target), &id, PING_TOPIC, payload)
        .await;
    let lines: Vec<String> = result
        .response_body
        .as_deref()
        .unwrap_or_default()
        .lines()
        .take(ANSWER_LINES)
        .map(str::to_string)
        .collect();
    let first_byte = result
        .first_byte_ms
        .map(|ms| format!(", first byte after {ms} ms"))
        .unwrap_or_default();
    let detail = match (&result.error_kind, result.status) {
        (None, Some(status)) => {
            format!("answered {status}{first_byte} to a signed POST of {PING_TOPIC}")
        }
        (Some(kind), Some(status)) => format!(
            "answered {status}{first_byte} ({kind}: {})",
            result.error_message.clone().unwrap_or_default()
        ),
        (Some(kind), None) => format!(
            "{kind}: {}",
            result.error_message.clone().unwrap_or_default()
        ),
        (None, None) => "no answer".to_string(),
    };
    ProbeStep {
        step: "answer",
        ok: result.error_kind.is_none(),
        ms: Some(result.duration_ms),
        detail,
        lines,
    }
}

fn failed(step: &'static str, ms: Option<i64>, detail: String) -> ProbeStep {
    ProbeStep {
        step,
        ok: false,
        ms,
        detail,
        lines: Vec::new(),
    }
}

fn since(started: Instant) -> Option<i64> {
    Some(i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX))
}

/// This machine's host name (the probe's vantage point).
pub fn this_host() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that.
    let rc = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if rc != 0 {
        return "this host".to_string();
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}
