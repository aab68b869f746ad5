//! The sender against real sockets on 127.0.0.1: what each kind of receiver
//! misbehaviour is recorded as, and what reaches a receiver that answers.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::*;
use crate::config::NetworkConfig;
use crate::dispatch::guard::Resolve;
use crate::sink::{SinkOptions, Verdict, start as start_sink};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const LIMIT: u64 = 64 * 1024;

fn target(url: &str, timeout_ms: i64) -> PreparedTarget {
    PreparedTarget::new(&EndpointTarget {
        id: "ep_test".to_string(),
        url: url.to_string(),
        secrets: vec![SECRET.to_string()],
        timeout_ms,
        headers: vec![("x-tenant".to_string(), "acme".to_string())],
    })
}

/// A guard that lets attempts reach the test's receivers on 127.0.0.1.
fn loopback_guard() -> Guard {
    Guard::new(&allowing(&["127.0.0.1/32"]))
}

async fn attempt(url: &str, timeout_ms: i64) -> AttemptResult {
    let sender = Sender::new(LIMIT, loopback_guard()).expect("client");
    sender
        .attempt(
            &target(url, timeout_ms),
            "evt_1",
            "test.topic",
            r#"{"a":1}"#.to_string(),
        )
        .await
}

/// A receiver that reads one request, then writes `answer` (if any) and
/// keeps the connection open for `hold` before closing it.
async fn raw_receiver(answer: Option<Vec<u8>>, hold: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let mut buf = vec![0u8; 16 * 1024];
        let _ = socket.read(&mut buf).await;
        if let Some(answer) = answer {
            let _ = socket.write_all(&answer).await;
        }
        tokio::time::sleep(hold).await;
    });
    format!("http://{addr}/hook")
}

#[tokio::test]
async fn a_healthy_receiver_gets_the_signed_post_and_its_answer_is_kept() {
    let sink = start_sink(SinkOptions {
        secrets: vec![Secret::parse(SECRET).expect("secret")],
        keep: true,
        ..SinkOptions::default()
    })
    .await
    .expect("sink");
    let result = attempt(&format!("{}/hook?x=1#frag", sink.url()), 2_000).await;
    assert_eq!(result.status, Some(200), "{result:?}");
    assert_eq!(result.error_kind, None);
    let requests = sink.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.body, br#"{"a":1}"#);
    assert_eq!(request.header("webhook-id"), Some("evt_1"));
    assert_eq!(request.header("webhook-topic"), Some("test.topic"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("x-tenant"), Some("acme"));
    assert_eq!(request.header("user-agent"), Some(USER_AGENT));
    assert!(request.header("authorization").is_none());
    assert_eq!(
        request.verdict,
        Verdict::Ok,
        "the sink verified the signature"
    );
    let names: Vec<&str> = result
        .request_headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "content-type",
            "user-agent",
            "x-tenant",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "webhook-topic"
        ]
    );
}

#[tokio::test]
async fn credentials_in_the_url_become_basic_auth_and_leave_the_request_line() {
    let sink = start_sink(SinkOptions {
        keep: true,
        ..SinkOptions::default()
    })
    .await
    .expect("sink");
    let url = sink
        .url()
        .replacen("http://", "http://hook%20user:p%40ss@", 1);
    let result = attempt(&format!("{url}/in"), 2_000).await;
    assert_eq!(result.status, Some(200), "{result:?}");
    let requests = sink.requests();
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("hook user:p@ss")
    );
    assert_eq!(requests[0].header("authorization"), Some(expected.as_str()));
    assert!(requests[0].header("host").is_some_and(|h| !h.contains('@')));
}

#[tokio::test]
async fn a_closed_port_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let result = attempt(&format!("http://{addr}/hook"), 2_000).await;
    assert_eq!(result.error_kind, Some(ErrorKind::Connect), "{result:?}");
    assert_eq!(result.status, None);
    assert!(
        result
            .error_message
            .as_deref()
            .is_some_and(|m| m.to_lowercase().contains("refused")),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out() {
    let url = raw_receiver(None, Duration::from_secs(5)).await;
    let result = attempt(&url, 200).await;
    assert_eq!(result.error_kind, Some(ErrorKind::Timeout), "{result:?}");
    assert_eq!(result.status, None);
    assert!((150..2_000).contains(&result.duration_ms), "{result:?}");
}

#[tokio::test]
async fn a_body_that_stalls_times_out_but_keeps_the_status() {
    let head = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial".to_vec();
    let url = raw_receiver(Some(head), Duration::from_secs(5)).await;
    let result = attempt(&url, 300).await;
    assert_eq!(result.error_kind, Some(ErrorKind::Timeout), "{result:?}");
    assert_eq!(result.status, Some(200));
}

#[tokio::test]
async fn an_answer_over_the_limit_is_refused_and_its_start_kept() {
    let body = "x".repeat(LIMIT as usize + 1);
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let url = raw_receiver(Some(answer.into_bytes()), Duration::from_secs(1)).await;
    let result = attempt(&url, 2_000).await;
    assert_eq!(
        result.error_kind,
        Some(ErrorKind::TooLargeResponse),
        "{result:?}"
    );
    assert_eq!(result.status, Some(200));
    assert_eq!(
        result.response_body.as_deref().map(str::len),
        Some(KEPT_BODY_BYTES)
    );
}

#[tokio::test]
async fn a_connection_dropped_mid_answer_is_a_network_error() {
    let head = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial".to_vec();
    let url = raw_receiver(Some(head), Duration::ZERO).await;
    let result = attempt(&url, 2_000).await;
    assert_eq!(result.error_kind, Some(ErrorKind::Network), "{result:?}");
    assert_eq!(result.status, Some(200));
}

#[tokio::test]
async fn https_to_a_plain_http_receiver_is_a_tls_error() {
    let answer = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n".to_vec();
    let url = raw_receiver(Some(answer), Duration::from_secs(1)).await;
    let result = attempt(&url.replacen("http://", "https://", 1), 2_000).await;
    assert_eq!(result.error_kind, Some(ErrorKind::Tls), "{result:?}");
    assert_eq!(result.status, None);
}

#[tokio::test]
async fn a_failing_status_is_recorded_with_its_body_and_retry_after() {
    let answer =
        b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 7\r\ncontent-length: 4\r\n\r\nbusy"
            .to_vec();
    let url = raw_receiver(Some(answer), Duration::from_secs(1)).await;
    let result = attempt(&url, 2_000).await;
    assert_eq!(result.error_kind, Some(ErrorKind::HttpStatus), "{result:?}");
    assert_eq!(result.status, Some(503));
    assert_eq!(result.response_body.as_deref(), Some("busy"));
    assert_eq!(result.retry_after, Some(Duration::from_secs(7)));
}

/// A listener on `address` that counts the connections it accepts and
/// answers each request 200.
async fn counting_receiver(address: &str) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(address).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counted.fetch_add(1, SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                // Keep-alive: answer every request on the connection.
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if socket.write_all(answer).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, connections)
}

/// Answers with `first` on the first lookup and `later` on every other one,
/// and counts the lookups: a rebinding DNS server.
struct RebindingResolver {
    first: Vec<IpAddr>,
    later: Vec<IpAddr>,
    lookups: AtomicUsize,
}

impl Resolve for RebindingResolver {
    fn resolve(
        &self,
        _host: &str,
    ) -> std::pin::Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
        let answer = if self.lookups.fetch_add(1, SeqCst) == 0 {
            self.first.clone()
        } else {
            self.later.clone()
        };
        Box::pin(async move { Ok(answer) })
    }
}

fn allowing(networks: &[&str]) -> NetworkConfig {
    NetworkConfig {
        allow: networks
            .iter()
            .map(|n| n.parse().expect("network"))
            .collect(),
        ..NetworkConfig::default()
    }
}

#[tokio::test]
async fn a_blocked_literal_address_is_never_connected_to() {
    let (addr, connections) = counting_receiver("127.0.0.1:0").await;
    let sender = Sender::new(LIMIT, Guard::new(&NetworkConfig::default())).expect("client");
    let result = sender
        .attempt(
            &target(&format!("http://{addr}/hook"), 2_000),
            "evt_1",
            "test.topic",
            "{}".into(),
        )
        .await;
    assert_eq!(
        result.error_kind,
        Some(ErrorKind::BlockedDestination),
        "{result:?}"
    );
    let message = result.error_message.unwrap_or_default();
    assert!(
        message.contains("127.0.0.1 (loopback 127.0.0.0/8)"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(connections.load(SeqCst), 0, "nothing reached the receiver");
}

#[tokio::test]
async fn connections_go_only_to_checked_addresses_and_keep_alive_needs_one_lookup() {
    let (allowed, allowed_connections) = counting_receiver("127.0.0.1:0").await;
    // The same port on another loopback address, which the policy blocks.
    let (blocked, blocked_connections) =
        counting_receiver(&format!("127.0.0.2:{}", allowed.port())).await;
    let resolver = Arc::new(RebindingResolver {
        // The blocked address first: it must be skipped, not tried.
        first: vec![blocked.ip(), allowed.ip()],
        // Later answers would rebind to the blocked address.
        later: vec![blocked.ip()],
        lookups: AtomicUsize::new(0),
    });
    let guard = Guard::with_resolver(&allowing(&["127.0.0.1/32"]), resolver.clone());
    let sender = Sender::new(LIMIT, guard).expect("client");
    let url = format!("http://receiver.test:{}/hook", allowed.port());
    for n in 0..5 {
        let result = sender
            .attempt(
                &target(&url, 2_000),
                &format!("evt_{n}"),
                "test.topic",
                "{}".into(),
            )
            .await;
        assert_eq!(result.status, Some(200), "attempt {n}: {result:?}");
    }
    assert_eq!(
        resolver.lookups.load(SeqCst),
        1,
        "one lookup for five attempts"
    );
    assert_eq!(
        allowed_connections.load(SeqCst),
        1,
        "one kept-alive connection"
    );
    assert_eq!(
        blocked_connections.load(SeqCst),
        0,
        "the blocked address saw nothing"
    );
}

/// A forward proxy on `address`: relays absolute-form HTTP requests and
/// `CONNECT` tunnels, recording each request line.
async fn recording_proxy(address: &str) -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind(address).await.expect("bind the proxy");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let recorded = Arc::clone(&recorded);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match client.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let line = text.lines().next().unwrap_or_default().to_string();
                recorded.lock().expect("lock").push(line.clone());
                let mut parts = line.split_whitespace();
                let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                if method == "CONNECT" {
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await;
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    return;
                }
                // Absolute form: http://host:port/path; relay as is to host:port.
                let authority = target
                    .trim_start_matches("http://")
                    .split('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let Ok(mut upstream) = tokio::net::TcpStream::connect(&authority).await else {
                    return;
                };
                let _ = upstream.write_all(&head).await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn deliveries_go_through_the_proxy_which_is_exempt_from_the_guard() {
    let sink = start_sink(SinkOptions {
        secrets: vec![Secret::parse(SECRET).expect("secret")],
        keep: true,
        ..SinkOptions::default()
    })
    .await
    .expect("sink");
    // The proxy listens on an address the policy does not allow: exempt.
    let (proxy, seen) = recording_proxy("127.0.0.2:0").await;
    let mut network = allowing(&["127.0.0.1/32"]);
    network.proxy = Some(format!("http://{proxy}").parse().expect("proxy URL"));
    let sender = Sender::new(LIMIT, Guard::new(&network)).expect("client");
    let url = format!("{}/hook", sink.url());
    let result = sender
        .attempt(
            &target(&url, 2_000),
            "evt_proxied",
            "test.topic",
            r#"{"a":1}"#.into(),
        )
        .await;
    assert_eq!(result.status, Some(200), "{result:?}");
    let requests = sink.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].verdict, Verdict::Ok, "signed as ever");
    let lines = seen.lock().expect("lock").clone();
    assert_eq!(
        lines,
        [format!("POST {url} HTTP/1.1")],
        "absolute form, through the proxy"
    );

    // https: a CONNECT tunnel to the judged address (here a plain-HTTP
    // receiver, so the TLS handshake inside it fails, after the tunnel).
    let https = url.replacen("http://", "https://", 1);
    let result = sender
        .attempt(
            &target(&https, 2_000),
            "evt_tunnel",
            "test.topic",
            "{}".into(),
        )
        .await;
    assert_eq!(result.error_kind, Some(ErrorKind::Tls), "{result:?}");
    let addr = sink
        .url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let lines = seen.lock().expect("lock").clone();
    assert_eq!(lines.last(), Some(&format!("CONNECT {addr} HTTP/1.1")));

    // A blocked destination is refused before the proxy is asked.
    let blocked_network = NetworkConfig {
        proxy: network.proxy.clone(),
        ..NetworkConfig::default()
    };
    let strict = Sender::new(LIMIT, Guard::new(&blocked_network)).expect("client");
    let result = strict
        .attempt(
            &target(&url, 2_000),
            "evt_blocked",
            "test.topic",
            "{}".into(),
        )
        .await;
    assert_eq!(
        result.error_kind,
        Some(ErrorKind::BlockedDestination),
        "{result:?}"
    );
    assert_eq!(
        seen.lock().expect("lock").len(),
        2,
        "the proxy was not asked"
    );
}
