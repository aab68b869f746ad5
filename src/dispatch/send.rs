//! One HTTP attempt: POST the payload signed per Standard Webhooks, read at
//! most a bounded answer, and classify what happened.
//!
//! The client is hyper's pooled client with rustls, not reqwest: reqwest's
//! per-request layers (a redirect policy that re-parses the URL even when
//! redirects are off, the response URL parsed again) cost the dispatcher
//! ~11 % of its CPU when delivering flat out.

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::{Instant as Deadline, timeout_at};

use super::guard::{ConnectError, Guard, GuardedConnector};
use super::retry::parse_retry_after;
use crate::model::{ErrorKind, Millis, now_millis};
use crate::sign::{Secret, signature_header};
use crate::store::EndpointTarget;

/// How much of an answer's body is kept in the attempt's history.
pub const KEPT_BODY_BYTES: usize = 4 * 1024;

/// The `user-agent` every attempt sends.
pub const USER_AGENT: &str = concat!("hookline/", env!("CARGO_PKG_VERSION"));

/// What a timed-out attempt records.
const TIMEOUT_MESSAGE: &str = "no complete answer before the timeout";

/// Failure to set up the HTTP client.
#[derive(Debug, thiserror::Error)]
#[error("could not set up TLS for the HTTP client: {0}")]
pub struct ClientError(#[from] std::io::Error);

/// An endpoint made ready to send to: URL parsed, secrets decoded, headers
/// checked. Built once per claim, shared by that endpoint's attempts.
#[derive(Debug, Clone)]
pub struct PreparedTarget {
    pub id: String,
    uri: Result<http::Uri, String>,
    secrets: Result<Vec<Secret>, String>,
    timeout: Duration,
    /// The endpoint's own headers, then `authorization` from the URL's
    /// `user:password@`, if it has one and the endpoint sets none itself.
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl PreparedTarget {
    /// Prepares `target`; a broken URL or secret (which validation should
    /// have refused) turns each attempt into a recorded failure, not a panic.
    pub fn new(target: &EndpointTarget) -> PreparedTarget {
        let url = reqwest::Url::parse(&target.url).map_err(|e| format!("bad URL: {e}"));
        let secrets = target
            .secrets
            .iter()
            .map(|s| Secret::parse(s).map_err(|e| format!("unusable secret: {e}")))
            .collect();
        let mut headers: Vec<(HeaderName, HeaderValue)> = target
            .headers
            .iter()
            .filter_map(|(name, value)| {
                Some((
                    HeaderName::from_bytes(name.as_bytes()).ok()?,
                    HeaderValue::from_str(value).ok()?,
                ))
            })
            .collect();
        let basic_auth = url.as_ref().ok().and_then(basic_auth);
        if let Some(credentials) = basic_auth
            && !headers.iter().any(|(name, _)| name == AUTHORIZATION)
        {
            headers.push((AUTHORIZATION, credentials));
        }
        PreparedTarget {
            id: target.id.clone(),
            uri: url.and_then(|url| request_uri(&url)),
            secrets,
            timeout: Duration::from_millis(target.timeout_ms.max(1) as u64),
            headers,
        }
    }
}

/// The URI a request is sent to: the URL without credentials or fragment,
/// neither of which goes on the wire.
fn request_uri(url: &reqwest::Url) -> Result<http::Uri, String> {
    let mut bare = url.clone();
    // Both only fail for URLs that cannot have credentials, which then have none.
    let _ = bare.set_username("");
    let _ = bare.set_password(None);
    bare.set_fragment(None);
    bare.as_str().parse().map_err(|e| format!("bad URL: {e}"))
}

/// `Basic …` from a URL's `user:password@`, as browsers and curl send it.
fn basic_auth(url: &reqwest::Url) -> Option<HeaderValue> {
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let decode = |part: &str| {
        percent_encoding::percent_decode_str(part)
            .decode_utf8_lossy()
            .into_owned()
    };
    let user = decode(url.username());
    let password = url.password().map(decode).unwrap_or_default();
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Most endpoints whose prepared targets are kept; past this the cache
/// starts over (deleted endpoints' entries go with it).
const PREPARED_TARGETS_KEPT: usize = 4096;

/// Prepared targets by endpoint, reused while the endpoint's target is
/// unchanged: a hand-off brings the targets of every publish, and parsing
/// the URL and decoding the secrets again for each one was measurable.
#[derive(Debug, Default)]
pub struct PreparedTargets {
    by_endpoint: HashMap<String, (EndpointTarget, Arc<PreparedTarget>)>,
}

impl PreparedTargets {
    /// `target` prepared: the kept one if the endpoint's target is unchanged
    /// (a rotated secret or an edited URL makes it prepare again).
    pub fn get(&mut self, target: &EndpointTarget) -> Arc<PreparedTarget> {
        if let Some((kept, prepared)) = self.by_endpoint.get(&target.id)
            && kept == target
        {
            return Arc::clone(prepared);
        }
        if self.by_endpoint.len() >= PREPARED_TARGETS_KEPT {
            self.by_endpoint.clear();
        }
        let prepared = Arc::new(PreparedTarget::new(target));
        self.by_endpoint
            .insert(target.id.clone(), (target.clone(), Arc::clone(&prepared)));
        prepared
    }
}

/// What one attempt did.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptResult {
    pub started_at: Millis,
    pub duration_ms: i64,
    pub status: Option<u16>,
    /// `None` on a 2xx answer.
    pub error_kind: Option<ErrorKind>,
    pub error_message: Option<String>,
    /// Headers sent, signature masked.
    pub request_headers: Vec<(String, String)>,
    /// The first [`KEPT_BODY_BYTES`] of the answer, lossy UTF-8.
    pub response_body: Option<String>,
    /// The receiver's `Retry-After`, when it answered 429 or 503 with one.
    pub retry_after: Option<Duration>,
    /// When the answer's status and headers had arrived (ms from the start).
    pub first_byte_ms: Option<i64>,
}

/// The pooled client attempts go out on: plain HTTP or rustls, over
/// connections the outbound guard opened.
type HttpClient = Client<hyper_rustls::HttpsConnector<GuardedConnector>, Full<Bytes>>;

/// The header naming the event's topic, beside the Standard Webhooks ones
/// (the signed content is unchanged: id, timestamp and body).
pub const TOPIC_HEADER: &str = "webhook-topic";

/// Sends attempts over one shared connection pool.
#[derive(Debug, Clone)]
pub struct Sender {
    client: HttpClient,
    max_response_body: u64,
}

/// Makes rustls use the `ring` provider (lighter to build than aws-lc-rs);
/// harmless when already installed.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Sender {
    /// A sender whose attempts refuse answers larger than `max_response_body`
    /// and connect only where `guard` allows.
    ///
    /// It follows no redirects (one could point a signed payload anywhere;
    /// receivers must answer directly) and uses no proxy from the
    /// environment (that would silently reroute deliveries; `[network]
    /// proxy` is the way to send through one).
    pub fn new(max_response_body: u64, guard: Guard) -> Result<Sender, ClientError> {
        install_crypto_provider();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_platform_verifier(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .wrap_connector(GuardedConnector::new(guard));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(Sender {
            client,
            max_response_body,
        })
    }

    /// POSTs `payload` as event `msg_id` of `topic` to `target` and
    /// reports the outcome.
    pub async fn attempt(
        &self,
        target: &PreparedTarget,
        msg_id: &str,
        topic: &str,
        payload: String,
    ) -> AttemptResult {
        let started_at = now_millis();
        let clock = Instant::now();
        let deadline = Deadline::now() + target.timeout;
        let timestamp = started_at / 1000;
        let (uri, secrets) = match (&target.uri, &target.secrets) {
            (Ok(uri), Ok(secrets)) => (uri, secrets),
            (Err(problem), _) | (_, Err(problem)) => {
                return AttemptResult::failed(started_at, 0, ErrorKind::Network, problem.clone());
            }
        };
        let secret_refs: Vec<&Secret> = secrets.iter().collect();
        let signature = signature_header(&secret_refs, msg_id, timestamp, payload.as_bytes());
        let stamp = Stamp {
            msg_id,
            topic,
            timestamp,
            signature: &signature,
        };
        let request_headers = recorded_headers(target, &stamp);
        let mut result = match signed_request(target, uri, &stamp, payload) {
            Err(err) => AttemptResult::failed(
                started_at,
                0,
                ErrorKind::Network,
                format!("could not build the request: {err}"),
            ),
            Ok(request) => match timeout_at(deadline, self.client.request(request)).await {
                Err(_) => AttemptResult::failed(
                    started_at,
                    0,
                    ErrorKind::Timeout,
                    TIMEOUT_MESSAGE.to_string(),
                ),
                Ok(Err(err)) => {
                    let (kind, message) = classify(&err);
                    AttemptResult::failed(started_at, 0, kind, message)
                }
                Ok(Ok(response)) => {
                    let first_byte = i64::try_from(clock.elapsed().as_millis()).unwrap_or(i64::MAX);
                    let mut answer = self.read_answer(response, started_at, deadline).await;
                    answer.first_byte_ms = Some(first_byte);
                    answer
                }
            },
        };
        result.duration_ms = i64::try_from(clock.elapsed().as_millis()).unwrap_or(i64::MAX);
        result.request_headers = request_headers;
        result
    }

    /// Reads the answer's body until it ends, grows past the limit, fails or
    /// runs past `deadline`; the status counts only if the body arrived whole.
    async fn read_answer(
        &self,
        response: http::Response<hyper::body::Incoming>,
        started_at: Millis,
        deadline: Deadline,
    ) -> AttemptResult {
        let status = response.status();
        let retry_after = if matches!(status.as_u16(), 429 | 503) {
            response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()))
        } else {
            None
        };
        let mut body = response.into_body();
        let mut kept: Vec<u8> = Vec::new();
        let mut total: u64 = 0;
        let mut failure: Option<(ErrorKind, String)> = None;
        loop {
            let frame = match timeout_at(deadline, body.frame()).await {
                Err(_) => {
                    failure = Some((ErrorKind::Timeout, TIMEOUT_MESSAGE.to_string()));
                    break;
                }
                Ok(None) => break,
                Ok(Some(Err(err))) => {
                    failure = Some((ErrorKind::Network, chain_detail(&err)));
                    break;
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(chunk) = frame.into_data() else {
                continue; // trailers
            };
            total += chunk.len() as u64;
            let room = KEPT_BODY_BYTES.saturating_sub(kept.len());
            kept.extend_from_slice(&chunk[..room.min(chunk.len())]);
            if total > self.max_response_body {
                failure = Some((
                    ErrorKind::TooLargeResponse,
                    format!("answer body exceeds {} bytes", self.max_response_body),
                ));
                break;
            }
        }
        let failure = failure.or_else(|| {
            (!status.is_success()).then(|| (ErrorKind::HttpStatus, status.to_string()))
        });
        AttemptResult {
            started_at,
            duration_ms: 0,
            status: Some(status.as_u16()),
            error_kind: failure.as_ref().map(|(kind, _)| *kind),
            error_message: failure.map(|(_, message)| message),
            request_headers: Vec::new(),
            response_body: (!kept.is_empty()).then(|| String::from_utf8_lossy(&kept).into_owned()),
            retry_after,
            first_byte_ms: None,
        }
    }
}

/// The POST of one attempt: JSON, the endpoint's headers, the signature.
/// What identifies one attempt's request: the Standard Webhooks headers
/// and the topic.
struct Stamp<'a> {
    msg_id: &'a str,
    topic: &'a str,
    timestamp: i64,
    signature: &'a str,
}

fn signed_request(
    target: &PreparedTarget,
    uri: &http::Uri,
    stamp: &Stamp<'_>,
    payload: String,
) -> Result<http::Request<Full<Bytes>>, http::Error> {
    let mut request = http::Request::post(uri.clone())
        .header(CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, USER_AGENT);
    for (name, value) in &target.headers {
        request = request.header(name, value);
    }
    request
        .header("webhook-id", stamp.msg_id)
        .header("webhook-timestamp", stamp.timestamp)
        .header("webhook-signature", stamp.signature)
        .header(TOPIC_HEADER, stamp.topic)
        .body(Full::new(Bytes::from(payload)))
}

impl AttemptResult {
    fn failed(
        started_at: Millis,
        duration_ms: i64,
        kind: ErrorKind,
        message: String,
    ) -> AttemptResult {
        AttemptResult {
            started_at,
            duration_ms,
            status: None,
            error_kind: Some(kind),
            error_message: Some(message),
            request_headers: Vec::new(),
            response_body: None,
            retry_after: None,
            first_byte_ms: None,
        }
    }
}

/// The headers as kept in history: everything sent, but no usable signature.
fn recorded_headers(target: &PreparedTarget, stamp: &Stamp<'_>) -> Vec<(String, String)> {
    let mut headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("user-agent".to_string(), USER_AGENT.to_string()),
    ];
    for (name, value) in &target.headers {
        let value = value.to_str().unwrap_or_default();
        // History is read by people and kept for weeks: a credential the
        // endpoint sends (its own header, or Basic auth from the URL) is
        // kept masked, like the signature.
        let value = if crate::redact::is_sensitive_header(name.as_str()) {
            crate::redact::mask_header_value(value)
        } else {
            value.to_string()
        };
        headers.push((name.as_str().to_string(), value));
    }
    headers.push(("webhook-id".to_string(), stamp.msg_id.to_string()));
    headers.push(("webhook-timestamp".to_string(), stamp.timestamp.to_string()));
    headers.push((
        "webhook-signature".to_string(),
        mask_signature(stamp.signature),
    ));
    headers.push((TOPIC_HEADER.to_string(), stamp.topic.to_string()));
    headers
}

/// `v1,abc… v1,def…` becomes `v1,**** v1,****`: the version tags stay visible.
pub fn mask_signature(header: &str) -> String {
    header
        .split(' ')
        .map(|sig| match sig.split_once(',') {
            Some((version, _)) => format!("{version},****"),
            None => "****".to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Names a transport failure: a destination the guard refused, DNS, TLS,
/// connect, or another network error.
/// (Timeouts never get here: the deadline around the request catches them.)
fn classify(err: &hyper_util::client::legacy::Error) -> (ErrorKind, String) {
    let mut tls = false;
    let mut chain = Vec::new();
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(ConnectError::Blocked(blocked)) = cause.downcast_ref::<ConnectError>() {
            return (ErrorKind::BlockedDestination, blocked.to_string());
        }
        tls |= is_tls_error(cause);
        chain.push(cause.to_string());
        source = cause.source();
    }
    let joined = chain.join(": ").to_lowercase();
    let kind = if tls || joined.contains("certificate") {
        ErrorKind::Tls
    } else if joined.contains("dns error") || joined.contains("failed to lookup address") {
        ErrorKind::Dns
    } else if err.is_connect() {
        ErrorKind::Connect
    } else {
        ErrorKind::Network
    };
    (kind, chain_detail(err))
}

/// A rustls error, bare or inside the I/O errors the TLS stream and its
/// connector wrap it in (`io::Error::source` skips the error it wraps, so
/// the chain alone never shows it).
fn is_tls_error(cause: &(dyn std::error::Error + 'static)) -> bool {
    let mut error = cause;
    loop {
        if error.is::<rustls::Error>() {
            return true;
        }
        match error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => error = inner,
            None => return false,
        }
    }
}

/// The innermost cause of `err` (the one that names what went wrong), at
/// most 300 characters.
fn chain_detail(err: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        innermost = cause.to_string();
        source = cause.source();
    }
    innermost.chars().take(300).collect()
}

#[cfg(test)]
#[path = "send_tests.rs"]
mod transport_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_masked_but_versions_stay() {
        assert_eq!(mask_signature("v1,abc= v1,def="), "v1,**** v1,****");
        assert_eq!(mask_signature("garbage"), "****");
    }

    #[test]
    fn a_prepared_target_is_reused_until_the_endpoint_changes() {
        let mut target = EndpointTarget {
            id: "ep_1".to_string(),
            url: "http://127.0.0.1:9/hook".to_string(),
            secrets: vec!["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string()],
            timeout_ms: 1_000,
            headers: Vec::new(),
        };
        let mut prepared = PreparedTargets::default();
        let first = prepared.get(&target);
        assert!(
            Arc::ptr_eq(&first, &prepared.get(&target)),
            "unchanged: kept"
        );
        target
            .secrets
            .push("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".to_string());
        let rotated = prepared.get(&target);
        assert!(
            !Arc::ptr_eq(&first, &rotated),
            "a new secret prepares again"
        );
        assert_eq!(rotated.secrets.as_ref().map(Vec::len).ok(), Some(2));
    }
}
