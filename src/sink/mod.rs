//! `hookline sink`: a local webhook receiver that verifies Standard Webhooks
//! signatures and can misbehave on purpose.
//!
//! People use it to try hookline; the integration tests use it as the real
//! HTTP receiver; the demo runs healthy, slow, flaky and gone (410) copies of
//! it; the benchmark points the dispatcher at it. That last use keeps the
//! happy path cheap: counters are atomics, and the only locks taken per
//! request are a sharded id set (for duplicate counting) and, when asked
//! for, the in-memory list and the record file.

mod record;
mod stats;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{ALLOW, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::sign::{self, Secret};
use record::{open_record, record_line, write_line};
pub use stats::StatsSnapshot;
use stats::{SinkStats, lock};

/// Largest body the sink reads. Far above any sane webhook, so a payload-size
/// test exercises hookline rather than tripping axum's 2 MiB default.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// How long `shutdown` lets in-flight requests finish before cutting them off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How often `wait_for` looks at the counter.
const WAIT_POLL: Duration = Duration::from_millis(5);

/// How the sink behaves. `Default` is a healthy sink on a random local port
/// that checks no signature.
#[derive(Debug, Clone)]
pub struct SinkOptions {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Secrets to verify `webhook-signature` with; empty accepts unsigned requests.
    pub secrets: Vec<Secret>,
    /// Fraction (0..=1) of correctly signed requests answered with `status`.
    pub fail_rate: f64,
    /// Status of the deliberate failures (500, 503, 410, …).
    pub status: u16,
    /// Delay before every answer.
    pub latency: Duration,
    /// File to append one JSON line per request to.
    pub record: Option<PathBuf>,
    /// Keep every request in memory, for [`SinkHandle::requests`].
    pub keep: bool,
    /// If set, deliberate failures carry `Retry-After: N` (seconds).
    pub retry_after: Option<u64>,
}

impl Default for SinkOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            secrets: Vec::new(),
            fail_rate: 0.0,
            status: 500,
            latency: Duration::ZERO,
            record: None,
            keep: false,
            retry_after: None,
        }
    }
}

/// Why the sink could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The record file could not be opened for appending.
    #[error("cannot open record file {}: {source}", path.display())]
    Record {
        /// The file asked for.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `fail_rate` is outside 0..=1.
    #[error("fail rate must be between 0 and 1, got {0}")]
    FailRate(f64),
    /// `status` is not an HTTP status code.
    #[error("{0} is not an HTTP status code (100-999)")]
    Status(u16),
    /// The server stopped with an I/O error.
    #[error("sink server failed: {0}")]
    Serve(#[source] io::Error),
    /// The server task panicked or was cancelled.
    #[error("sink server task ended abnormally: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// What the sink made of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Signature fine (or not checked); answered 200.
    Ok,
    /// Picked by `fail_rate`; answered with the configured status.
    FailedOnPurpose,
    /// Signature missing or wrong; answered 401.
    BadSignature,
}

/// One request as the sink saw it (kept only with `keep`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedRequest {
    /// Arrival time, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Path and query string.
    pub path: String,
    /// Headers in arrival order; names lowercase, values lossily UTF-8.
    pub headers: Vec<(String, String)>,
    /// The body exactly as received.
    pub body: Vec<u8>,
    /// What the sink decided.
    pub verdict: Verdict,
    /// The status the sink answered with.
    pub status: u16,
}

impl ReceivedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Configuration and shared state seen by every request.
struct Shared {
    secrets: Vec<Secret>,
    fail_rate: f64,
    status: StatusCode,
    latency: Duration,
    retry_after: Option<HeaderValue>,
    stats: Arc<SinkStats>,
    record: Option<tokio::sync::Mutex<tokio::fs::File>>,
    stopping: watch::Receiver<bool>,
}

/// A running sink. Dropping it stops the server.
pub struct SinkHandle {
    /// The address actually bound (with the real port when 0 was asked for).
    pub addr: SocketAddr,
    stats: Arc<SinkStats>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl SinkHandle {
    /// When a request with this `webhook-id` was first accepted (unix ms):
    /// the receiving end of a publish->delivered latency.
    pub fn first_accepted_at(&self, webhook_id: &str) -> Option<i64> {
        self.stats.ids.first_accepted(webhook_id.as_bytes())
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/`, the URL to register as an endpoint.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The counters now.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Every request so far, in arrival order; empty unless `keep` was set.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.stats
            .kept
            .as_ref()
            .map(|kept| lock(kept).clone())
            .unwrap_or_default()
    }

    /// Waits until at least `n` requests have been received; false on timeout.
    /// A request counts once it is recorded and kept, before its answer.
    pub async fn wait_for(&self, n: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.stats.received.load(Ordering::Acquire) >= n {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }

    /// Stops accepting, lets in-flight requests answer (cutting short any
    /// configured latency), and returns the final counters.
    pub async fn shutdown(mut self) -> Result<StatsSnapshot, SinkError> {
        self.stop.send_replace(true);
        if let Some(mut task) = self.task.take() {
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
                Ok(joined) => joined.map_err(SinkError::Task)?.map_err(SinkError::Serve)?,
                Err(_elapsed) => task.abort(),
            }
        }
        Ok(self.stats.snapshot())
    }
}

impl Drop for SinkHandle {
    fn drop(&mut self) {
        // The signal makes open connections finish gracefully; the abort
        // drops the listener at once so the port is free again.
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Binds, starts serving on a background task and returns at once.
pub async fn start(opts: SinkOptions) -> Result<SinkHandle, SinkError> {
    if !(0.0..=1.0).contains(&opts.fail_rate) {
        return Err(SinkError::FailRate(opts.fail_rate));
    }
    let status = StatusCode::from_u16(opts.status).map_err(|_| SinkError::Status(opts.status))?;
    let record = match &opts.record {
        Some(path) => Some(tokio::sync::Mutex::new(open_record(path).await?)),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|source| SinkError::Bind {
            addr: opts.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SinkError::Bind {
        addr: opts.listen,
        source,
    })?;
    let (stop, stopping) = watch::channel(false);
    let stats = Arc::new(SinkStats::new(opts.keep));
    let shared = Arc::new(Shared {
        secrets: opts.secrets,
        fail_rate: opts.fail_rate,
        status,
        latency: opts.latency,
        retry_after: opts.retry_after.map(HeaderValue::from),
        stats: Arc::clone(&stats),
        record,
        stopping: stopping.clone(),
    });
    let app = Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared);
    let signal = stopped(stopping);
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(signal)
            .await
    });
    Ok(SinkHandle {
        addr,
        stats,
        stop,
        task: Some(task),
    })
}

/// The CLI entry: starts, prints `sink listening on URL`, serves until
/// `shutdown` completes, then prints the counters on one line.
pub async fn run(
    opts: SinkOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<StatsSnapshot, SinkError> {
    let handle = start(opts).await?;
    println!("sink listening on {}", handle.url());
    shutdown.await;
    let stats = handle.shutdown().await?;
    println!("sink stopped: {stats}");
    Ok(stats)
}

/// Resolves once the handle asks to stop (or is gone).
async fn stopped(mut stopping: watch::Receiver<bool>) {
    // An error means the sender was dropped, which also means stop.
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// The single handler behind every path.
async fn handle(
    State(sink): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(ALLOW, "POST")],
            "only POST is accepted\n",
        )
            .into_response();
    }
    let observing = sink.stats.kept.is_some() || sink.record.is_some();
    let time_ms = if observing { unix_ms() } else { 0 };
    let outcome = sink.judge(&headers, &body);
    if observing {
        let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
        sink.observe(time_ms, path, &headers, &body, &outcome).await;
    }
    let id = headers.get(sign::HEADER_ID).map(HeaderValue::as_bytes);
    sink.stats.count(outcome.verdict, id);
    // Counted last, so `wait_for` never sees a request not yet kept/recorded;
    // and before the delay, so a client that gives up still left a trace.
    sink.stats.received.fetch_add(1, Ordering::Release);
    sink.delay().await;
    sink.respond(outcome)
}

/// The decision for one request, made before any delay.
struct Outcome {
    verdict: Verdict,
    status: StatusCode,
    /// Why a signature was refused, for the 401 body.
    reason: Option<String>,
}

impl Shared {
    fn judge(&self, headers: &HeaderMap, body: &[u8]) -> Outcome {
        if let Err(reason) = self.check_signature(headers, body) {
            return Outcome {
                verdict: Verdict::BadSignature,
                status: StatusCode::UNAUTHORIZED,
                reason: Some(reason),
            };
        }
        if self.fail_rate > 0.0 && fastrand::f64() < self.fail_rate {
            return Outcome {
                verdict: Verdict::FailedOnPurpose,
                status: self.status,
                reason: None,
            };
        }
        Outcome {
            verdict: Verdict::Ok,
            status: StatusCode::OK,
            reason: None,
        }
    }

    fn check_signature(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
        if self.secrets.is_empty() {
            return Ok(());
        }
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        let signature = text(sign::HEADER_SIGNATURE);
        if signature.is_empty() {
            return Err(format!("missing {} header", sign::HEADER_SIGNATURE));
        }
        let secrets: Vec<&Secret> = self.secrets.iter().collect();
        sign::verify(
            &secrets,
            text(sign::HEADER_ID),
            text(sign::HEADER_TIMESTAMP),
            body,
            signature,
            unix_secs(),
            sign::DEFAULT_TOLERANCE_SECS,
        )
        .map_err(|e| e.to_string())
    }

    /// Keeps and/or records the request.
    async fn observe(
        &self,
        time_ms: u64,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
        outcome: &Outcome,
    ) {
        if let Some(kept) = &self.stats.kept {
            let request = ReceivedRequest {
                time_ms,
                path: path.to_owned(),
                headers: header_pairs(headers),
                body: body.to_vec(),
                verdict: outcome.verdict,
                status: outcome.status.as_u16(),
            };
            lock(kept).push(request);
        }
        if let Some(file) = &self.record {
            let line = record_line(time_ms, path, headers, body, outcome);
            write_line(file, &line).await;
        }
    }

    /// Waits out the configured latency, but not past a shutdown request.
    async fn delay(&self) {
        if self.latency.is_zero() {
            return;
        }
        let mut stopping = self.stopping.clone();
        tokio::select! {
            () = tokio::time::sleep(self.latency) => {}
            () = async { let _ = stopping.wait_for(|stop| *stop).await; } => {}
        }
    }

    fn respond(&self, outcome: Outcome) -> Response {
        match outcome.verdict {
            Verdict::Ok => (StatusCode::OK, "ok").into_response(),
            Verdict::BadSignature => {
                let reason = outcome.reason.unwrap_or_default();
                (outcome.status, format!("{reason}\n")).into_response()
            }
            Verdict::FailedOnPurpose => {
                let mut response = (outcome.status, "failed on purpose\n").into_response();
                if let Some(seconds) = &self.retry_after {
                    response.headers_mut().insert(RETRY_AFTER, seconds.clone());
                }
                response
            }
        }
    }
}

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), value)
        })
        .collect()
}

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn unix_ms() -> u64 {
    u64::try_from(since_epoch().as_millis()).unwrap_or(u64::MAX)
}

fn unix_secs() -> i64 {
    i64::try_from(since_epoch().as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as BASE64;

    use super::record::rfc3339;
    use super::*;
    use std::time::Instant;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn client() -> reqwest::Client {
        // reqwest with `rustls-no-provider` refuses to build any client, even
        // a plain-http one, until a provider is installed. Err = already done.
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    fn secret() -> Secret {
        Secret::parse(SECRET).unwrap()
    }

    /// The record's `time` field, byte for byte; a time RFC 3339 cannot
    /// write (past year 9999) is left empty.
    #[test]
    fn record_times_are_pinned() {
        assert_eq!(rfc3339(1_795_420_800_123), "2026-11-23T08:00:00.123Z");
        assert_eq!(rfc3339(1_795_420_800_120), "2026-11-23T08:00:00.120Z");
        assert_eq!(rfc3339(1_795_420_800_000), "2026-11-23T08:00:00.000Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(253_402_300_800_000), "");
        assert_eq!(rfc3339(u64::MAX), "");
    }

    async fn post_signed(url: &str, id: &str, body: &[u8], secret: &Secret) -> reqwest::Response {
        let ts = unix_secs();
        client()
            .post(url)
            .header(sign::HEADER_ID, id)
            .header(sign::HEADER_TIMESTAMP, ts.to_string())
            .header(
                sign::HEADER_SIGNATURE,
                sign::signature_header(&[secret], id, ts, body),
            )
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn signed_request_is_accepted_and_kept_byte_exact() {
        let sink = start(SinkOptions {
            secrets: vec![secret()],
            keep: true,
            ..SinkOptions::default()
        })
        .await
        .unwrap();
        let body = b"{\"name\": \"Zo\xc3\xab\"}\r\n  \t".to_vec();
        let url = format!("{}hooks/a?x=1", sink.url());
        let response = post_signed(&url, "msg_1", &body, &secret()).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "ok");

        let requests = sink.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].body, body);
        assert_eq!(requests[0].path, "/hooks/a?x=1");
        assert_eq!(requests[0].verdict, Verdict::Ok);
        assert_eq!(requests[0].header("Webhook-Id"), Some("msg_1"));
        let stats = sink.shutdown().await.unwrap();
        assert_eq!(
            (stats.received, stats.accepted, stats.unique_ids),
            (1, 1, 1)
        );
    }

    #[tokio::test]
    async fn bad_or_missing_signature_gets_401() {
        let sink = start(SinkOptions {
            secrets: vec![secret()],
            ..SinkOptions::default()
        })
        .await
        .unwrap();
        let wrong = Secret::generate().unwrap();
        let response = post_signed(&sink.url(), "msg_1", b"{}", &wrong).await;
        assert_eq!(response.status(), 401);
        assert_eq!(response.text().await.unwrap(), "no signature matched\n");

        let unsigned = client().post(sink.url()).body("{}").send().await.unwrap();
        assert_eq!(unsigned.status(), 401);
        assert!(unsigned.text().await.unwrap().contains("missing"));
        let stats = sink.stats();
        assert_eq!((stats.bad_signature, stats.accepted), (2, 0));
    }

    #[tokio::test]
    async fn fail_rate_one_answers_configured_status_with_retry_after() {
        let sink = start(SinkOptions {
            fail_rate: 1.0,
            status: 503,
            retry_after: Some(7),
            ..SinkOptions::default()
        })
        .await
        .unwrap();
        for _ in 0..3 {
            let response = client().post(sink.url()).body("{}").send().await.unwrap();
            assert_eq!(response.status(), 503);
            assert_eq!(response.headers()[RETRY_AFTER], "7");
        }
        assert_eq!(sink.stats().failed_on_purpose, 3);
    }

    #[tokio::test]
    async fn latency_is_applied() {
        let sink = start(SinkOptions {
            latency: Duration::from_millis(300),
            ..SinkOptions::default()
        })
        .await
        .unwrap();
        let started = Instant::now();
        let response = client().post(sink.url()).body("{}").send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn record_file_has_one_json_line_per_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("requests.jsonl");
        let sink = start(SinkOptions {
            record: Some(path.clone()),
            ..SinkOptions::default()
        })
        .await
        .unwrap();
        let bodies: [&[u8]; 3] = [b"{\"a\":1}", b"line\nbreak \"quoted\"", b"\xff\xfe binary"];
        for body in bodies {
            let response = client()
                .post(sink.url())
                .header(sign::HEADER_ID, "msg_same")
                .body(body.to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["body"], "{\"a\":1}");
        assert_eq!(lines[1]["body"], "line\nbreak \"quoted\"");
        assert_eq!(lines[2]["body_base64"], BASE64.encode(bodies[2]));
        assert_eq!(lines[0]["verdict"], "ok");
        assert_eq!(lines[0]["status"], 200);
        assert_eq!(lines[0]["headers"]["webhook-id"], "msg_same");
        assert!(crate::model::parse_rfc3339(lines[0]["time"].as_str().unwrap()).is_some());
        let stats = sink.stats();
        assert_eq!((stats.unique_ids, stats.duplicates), (1, 2));
    }

    #[tokio::test]
    async fn retry_after_failure_is_not_a_duplicate() {
        let stats = SinkStats::new(false);
        stats.count(Verdict::FailedOnPurpose, Some(b"msg_1"));
        stats.count(Verdict::Ok, Some(b"msg_1"));
        stats.count(Verdict::Ok, Some(b"msg_2"));
        let snap = stats.snapshot();
        assert_eq!((snap.unique_ids, snap.duplicates), (2, 0));
        stats.count(Verdict::Ok, Some(b"msg_1"));
        assert_eq!(stats.snapshot().duplicates, 1);
    }

    #[tokio::test]
    async fn wait_for_and_shutdown_cut_latency_short() {
        let sink = start(SinkOptions {
            latency: Duration::from_secs(30),
            ..SinkOptions::default()
        })
        .await
        .unwrap();
        let url = sink.url();
        let request = tokio::spawn(async move { client().post(url).body("{}").send().await });
        assert!(sink.wait_for(1, Duration::from_secs(5)).await);
        assert!(!sink.wait_for(2, Duration::from_millis(20)).await);
        let started = Instant::now();
        sink.shutdown().await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(request.await.unwrap().unwrap().status(), 200);
    }

    #[tokio::test]
    async fn dropping_the_handle_stops_the_server() {
        let sink = start(SinkOptions::default()).await.unwrap();
        let addr = sink.addr;
        drop(sink);
        let deadline = Instant::now() + Duration::from_secs(2);
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            assert!(Instant::now() < deadline, "still listening after drop");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn bad_options_and_busy_port_are_refused() {
        let bad_rate = start(SinkOptions {
            fail_rate: 1.5,
            ..SinkOptions::default()
        });
        assert!(matches!(bad_rate.await, Err(SinkError::FailRate(_))));
        let taken = start(SinkOptions::default()).await.unwrap();
        let clash = start(SinkOptions {
            listen: taken.addr,
            ..SinkOptions::default()
        })
        .await;
        let Err(error) = clash else {
            panic!("second bind on {} succeeded", taken.addr)
        };
        assert!(error.to_string().contains(&taken.addr.to_string()));
    }
}
