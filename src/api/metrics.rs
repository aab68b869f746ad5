//! `GET /healthz` (is the database reachable) and `GET /metrics`
//! (Prometheus text: queue depths, attempts by outcome, attempt latency,
//! per-endpoint backlog and wait). Both need a key unless
//! `api.open_health_metrics` is set; metrics span every tenant, so a tenant
//! key may not read them.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::{Peer, authenticate};
use super::problem::{ApiResult, Problem};
use crate::health::LATENCY_BOUNDS_MS;
use crate::model::DeliveryState;
use crate::store::Reads;

/// The Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The answer of `/healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// The database's schema version.
    pub schema_version: i64,
}

/// Is the server up and its database reachable?
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "health",
    tag = "operations",
    responses(
        (status = 200, description = "Healthy", body = Health),
        (status = 503, description = "The database is unreachable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ())
)]
pub async fn healthz(
    State(state): State<Arc<AppState>>,
    Peer(peer): Peer,
    headers: HeaderMap,
) -> ApiResult<Json<Health>> {
    if !state.open_health_metrics {
        authenticate(&state, &headers, peer).await?;
    }
    let schema_version = state
        .ops
        .reads()
        .schema_version()
        .await
        .map_err(|e| Problem::unavailable(format!("the database is unreachable: {e}")))?;
    Ok(Json(Health {
        status: "ok".to_string(),
        schema_version,
    }))
}

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 403, description = "A tenant key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ())
)]
pub async fn metrics(
    State(state): State<Arc<AppState>>,
    Peer(peer): Peer,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if !state.open_health_metrics {
        let caller = authenticate(&state, &headers, peer).await?;
        caller.require_admin("reading metrics")?;
    }
    let text = render(state.ops.reads()).await?;
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROMETHEUS_TEXT),
    );
    Ok(response)
}

/// Reads the figures and writes them in the text exposition format.
async fn render(store: &Reads) -> ApiResult<String> {
    let queue = store.queue_summary().await?;
    let totals = store.attempt_totals().await?;
    let endpoints = store.list_endpoints(None).await?;
    let queues = store.endpoint_queues(None).await?;
    let waits: std::collections::HashMap<String, i64> =
        store.oldest_due_waits().await?.into_iter().collect();

    let mut out = String::new();
    family(
        &mut out,
        "hookline_deliveries",
        "gauge",
        "Deliveries in each unfinished state (delivered ones are counted by hookline_attempts_total).",
    );
    for (state, count) in [
        (DeliveryState::Pending, queue.pending),
        (DeliveryState::Retrying, queue.retrying),
        (DeliveryState::InFlight, queue.in_flight),
        (DeliveryState::Dead, queue.dead),
    ] {
        let _ = writeln!(out, "hookline_deliveries{{state=\"{state}\"}} {count}");
    }
    family(
        &mut out,
        "hookline_queue_oldest_wait_seconds",
        "gauge",
        "How long the longest-waiting due delivery has waited past its due time.",
    );
    let _ = writeln!(
        out,
        "hookline_queue_oldest_wait_seconds {}",
        seconds(queue.oldest_wait_ms().unwrap_or(0))
    );

    family(
        &mut out,
        "hookline_attempts_total",
        "counter",
        "HTTP attempts by outcome.",
    );
    for (outcome, count) in [
        ("succeeded", totals.succeeded),
        ("status_4xx", totals.status_4xx),
        ("status_5xx", totals.status_5xx),
        ("timeout", totals.timeout),
        ("network", totals.network),
        ("other", totals.other),
    ] {
        let _ = writeln!(
            out,
            "hookline_attempts_total{{outcome=\"{outcome}\"}} {count}"
        );
    }

    family(
        &mut out,
        "hookline_attempt_duration_seconds",
        "histogram",
        "Duration of HTTP attempts.",
    );
    let mut cumulative = 0;
    for (i, count) in totals.buckets.iter().enumerate() {
        cumulative += count;
        let le = match LATENCY_BOUNDS_MS.get(i) {
            Some(bound) => seconds(*bound),
            None => "+Inf".to_string(),
        };
        let _ = writeln!(
            out,
            "hookline_attempt_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        out,
        "hookline_attempt_duration_seconds_sum {}",
        seconds(totals.latency_sum_ms)
    );
    let _ = writeln!(out, "hookline_attempt_duration_seconds_count {cumulative}");

    family(
        &mut out,
        "hookline_endpoint_queue_depth",
        "gauge",
        "Deliveries of an endpoint waiting to be attempted (pending and retrying).",
    );
    for endpoint in &endpoints {
        let depth = queues.get(&endpoint.id).map_or(0, |q| q.backlog());
        let _ = writeln!(
            out,
            "hookline_endpoint_queue_depth{} {depth}",
            endpoint_labels(endpoint)
        );
    }
    family(
        &mut out,
        "hookline_endpoint_in_flight",
        "gauge",
        "Deliveries of an endpoint being attempted now.",
    );
    for endpoint in &endpoints {
        let in_flight = queues.get(&endpoint.id).map_or(0, |q| q.in_flight);
        let _ = writeln!(
            out,
            "hookline_endpoint_in_flight{} {in_flight}",
            endpoint_labels(endpoint)
        );
    }
    family(
        &mut out,
        "hookline_endpoint_oldest_wait_seconds",
        "gauge",
        "How long an endpoint's longest-waiting due delivery has waited past its due time.",
    );
    for endpoint in &endpoints {
        let wait = waits.get(&endpoint.id).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "hookline_endpoint_oldest_wait_seconds{} {}",
            endpoint_labels(endpoint),
            seconds(wait)
        );
    }
    Ok(out)
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn endpoint_labels(endpoint: &crate::model::Endpoint) -> String {
    format!(
        "{{endpoint_id=\"{}\",endpoint=\"{}\",tenant=\"{}\"}}",
        label(&endpoint.id),
        label(&endpoint.name),
        label(&endpoint.tenant_name)
    )
}

/// A label value escaped as the exposition format requires.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn seconds(ms: i64) -> String {
    format!("{}", ms as f64 / 1000.0)
}
