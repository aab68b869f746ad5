//! The sender against real sockets on 127.0.0.1: what each kind of receiver
//! misbehaviour is recorded as, and what reaches a receiver that answers.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::*;
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

async fn attempt(url: &str, timeout_ms: i64) -> AttemptResult {
    let sender = Sender::new(LIMIT).expect("client");
    sender
        .attempt(&target(url, timeout_ms), "evt_1", r#"{"a":1}"#.to_string())
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
            "webhook-signature"
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
