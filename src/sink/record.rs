//! The record file (`--record FILE`): one JSON line per request, appended
//! and flushed as it is answered, so a killed sink leaves whole lines.

use std::collections::BTreeMap;
use std::path::Path;

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use super::{Outcome, SinkError, Verdict};

/// Opens (creating if needed) the record file for appending.
pub(super) async fn open_record(path: &Path) -> Result<tokio::fs::File, SinkError> {
    tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
        .map_err(|source| SinkError::Record {
            path: path.to_path_buf(),
            source,
        })
}

/// One line of the record file.
#[derive(Serialize)]
struct RecordLine<'a> {
    time: String,
    path: &'a str,
    headers: BTreeMap<&'a str, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_base64: Option<String>,
    verdict: Verdict,
    status: u16,
}

pub(super) fn record_line(
    time_ms: u64,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    outcome: &Outcome,
) -> Vec<u8> {
    let mut joined: BTreeMap<&str, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        joined
            .entry(name.as_str())
            .and_modify(|v| {
                // Repeated headers fold into one, as HTTP allows.
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    let text = std::str::from_utf8(body).ok();
    let line = RecordLine {
        time: rfc3339(time_ms),
        path,
        headers: joined,
        body: text,
        body_base64: text.is_none().then(|| BASE64.encode(body)),
        verdict: outcome.verdict,
        status: outcome.status.as_u16(),
    };
    // Serializing plain strings, maps and numbers cannot fail.
    let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// Appends a whole line under the lock and flushes it, so a process killed
/// right after answering still leaves complete lines on disk.
pub(super) async fn write_line(file: &tokio::sync::Mutex<tokio::fs::File>, line: &[u8]) {
    let mut file = file.lock().await;
    let written = async {
        file.write_all(line).await?;
        file.flush().await
    };
    if let Err(error) = written.await {
        tracing::warn!(%error, "sink: cannot append to the record file");
    }
}

/// The record's `time`: empty for a time RFC 3339 cannot write.
pub(super) fn rfc3339(time_ms: u64) -> String {
    i64::try_from(time_ms)
        .ok()
        .and_then(crate::model::try_format_rfc3339)
        .unwrap_or_default()
}
