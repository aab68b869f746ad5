//! `/v1/endpoints`: where a tenant's events are POSTed, and the operator
//! actions on one (pause, resume, rotate its secret, recover failures).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::body::{JsonBody, OptionalJsonBody, QueryParams};
use super::deliveries::{AttemptQuery, attempts_page};
use super::paging::{List, page_request};
use super::problem::{ApiResult, Problem};
use super::views::{
    AttemptView, BreakerView, Deleted, EndpointSecretView, EndpointStatsView, EndpointView,
};
use crate::model::{BreakerMode, DeliveryState, Endpoint, now_millis};
use crate::ops::{BulkRetry, EndpointChanges, EndpointInput, parse_since, parse_until_rfc3339};
use crate::store::AttemptsOf;

/// `endpoint` as the API shows it, with its circuit breaker as it is now.
async fn shown(caller: &Caller, endpoint: Endpoint) -> ApiResult<EndpointView> {
    let breaker = caller.ops.breaker_of(&endpoint).await?;
    Ok(EndpointView::from(endpoint).with_breaker(breaker))
}

/// Reads a field that may be absent (`None`), `null` (`Some(None)`) or a value.
pub fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// An endpoint to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// Tenant id or name; a tenant key may leave it out.
    pub tenant: Option<String>,
    /// Unique within the tenant.
    pub name: String,
    /// The http(s) URL that receives the POSTs.
    pub url: String,
    /// `whsec_…`; generated when left out.
    pub secret: Option<String>,
    /// Per-attempt timeout, 100 to 300000 ms (default: the server's).
    pub timeout_ms: Option<u64>,
    /// Concurrent attempts, 1 to 1000 (default: the server's).
    pub max_in_flight: Option<u32>,
    /// Extra headers sent with every attempt.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub description: Option<String>,
    /// Requests a second, 1 to 100000, across every dispatcher (default:
    /// unlimited).
    pub rate_limit: Option<u32>,
    /// Requests at once after a quiet spell, 1 to 100000 (default: a tenth
    /// of `rate_limit`, at least 1).
    pub rate_limit_burst: Option<u32>,
}

/// Changes to an endpoint; fields left out stay as they are, `null` resets
/// an optional one to its default.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpoint {
    pub name: Option<String>,
    pub url: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub timeout_ms: Option<Option<u64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub max_in_flight: Option<Option<u32>>,
    /// Replaces every custom header (`{}` removes them all).
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// Requests a second, 1 to 100000; `null` removes the limit.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub rate_limit: Option<Option<u32>>,
    /// Requests at once; alone, it keeps the endpoint's rate (default with
    /// a new `rate_limit`: a tenth of it, at least 1).
    pub rate_limit_burst: Option<u32>,
}

/// Why an endpoint is paused, and when the pause ends by itself.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseEndpoint {
    /// Why: kept with the endpoint, shown, and written to the audit log.
    pub reason: Option<String>,
    /// When the pause ends: an RFC 3339 time in the future
    /// (`2026-12-07T04:00:00+01:00`); a dispatcher resumes the endpoint
    /// then (audited as an automatic `endpoint.resume`). `null` or left
    /// out: paused until resumed.
    #[schema(format = DateTime, example = "2026-12-07T04:00:00+01:00")]
    pub until: Option<String>,
}

/// How an endpoint's circuit breaker is to be decided.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetBreaker {
    /// `open` holds the endpoint's deliveries whatever its outcomes,
    /// `closed` lets them flow whatever they are, `auto` hands the breaker
    /// back to the outcomes (one left open then probes at once). Forced
    /// states hold until set back to `auto`.
    #[schema(example = "open")]
    pub mode: String,
}

/// The new secret; generated when left out.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// `whsec_…`
    pub secret: Option<String>,
}

/// Which of an endpoint's deliveries to revive.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recover {
    /// Deliveries created at or after this RFC 3339 time (or this long ago, e.g. `2h`).
    pub since: String,
    /// Only deliveries created before this time.
    pub until: Option<String>,
    /// `dead` (default), `retrying` or `delivered`; several comma separated
    /// (`scheduled` and `succeeded` are accepted as aliases).
    pub state: Option<String>,
    /// Only count what would be queued.
    #[serde(default)]
    pub dry_run: bool,
}

/// How many deliveries a recover queued (or would queue). A dry run
/// also previews them: the oldest and newest, and how many wait behind a
/// hold on the endpoint, and why.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Recovered {
    pub queued: u64,
    pub dry_run: bool,
    /// Dry run: the oldest delivery it would queue (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest: Option<String>,
    /// Dry run: the newest delivery it would queue (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest: Option<String>,
    /// Dry run: how many of them would wait behind a hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<u64>,
    /// Dry run: what holds them (`endpoint_paused`, `breaker_open`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_reason: Option<String>,
}

/// Filters of the endpoint list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EndpointQuery {
    /// Only this tenant's endpoints (id or name).
    pub tenant: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Rows per page, 1 to 1000 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// List endpoints, oldest first (a tenant key sees its tenant's).
#[utoipa::path(
    get,
    path = "/v1/endpoints",
    operation_id = "list_endpoints",
    tag = "endpoints",
    params(EndpointQuery),
    responses(
        (status = 200, description = "A page of endpoints", body = List<EndpointView>),
        (status = 400, description = "Invalid query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    caller: Caller,
    QueryParams(query): QueryParams<EndpointQuery>,
) -> ApiResult<Json<List<EndpointView>>> {
    let tenant = match (&query.tenant, caller.scope()) {
        (None, None) => None,
        (given, _) => Some(caller.tenant_or_own(given.as_deref()).await?.id),
    };
    let page = page_request(query.limit.as_deref(), query.cursor.as_deref())?;
    let endpoints = caller
        .ops
        .reads()
        .page_endpoints(tenant.as_deref(), &page)
        .await?;
    let mut breakers = caller.ops.breakers_by_endpoint().await?;
    Ok(Json(List::of(endpoints, |e| {
        let breaker = breakers.remove(&e.id);
        let view = EndpointView::from(e);
        match breaker {
            Some(breaker) => view.with_breaker(breaker),
            None => view,
        }
    })))
}

/// Register an endpoint.
#[utoipa::path(
    post,
    path = "/v1/endpoints",
    operation_id = "create_endpoint",
    tag = "endpoints",
    request_body = CreateEndpoint,
    responses(
        (status = 201, description = "Created, with the signing secret in full", body = EndpointView),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn create(
    caller: Caller,
    JsonBody(request): JsonBody<CreateEndpoint>,
) -> ApiResult<(StatusCode, Json<EndpointView>)> {
    let tenant = caller.tenant_or_own(request.tenant.as_deref()).await?;
    let input = EndpointInput {
        tenant: tenant.id,
        name: request.name,
        url: request.url,
        secret: request.secret,
        timeout: request.timeout_ms.map(Duration::from_millis),
        max_in_flight: request.max_in_flight,
        headers: header_lines(&request.headers)?,
        description: request.description,
        rate_limit: request.rate_limit,
        rate_limit_burst: request.rate_limit_burst,
    };
    let endpoint = caller.ops.add_endpoint(&input).await?;
    Ok((
        StatusCode::CREATED,
        Json(EndpointView::with_secret(endpoint)),
    ))
}

/// Get an endpoint.
#[utoipa::path(
    get,
    path = "/v1/endpoints/{id}",
    operation_id = "get_endpoint",
    tag = "endpoints",
    params(("id" = String, Path, description = "Endpoint id (`ep_…`)")),
    responses(
        (status = 200, description = "The endpoint", body = EndpointView),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get(caller: Caller, Path(id): Path<String>) -> ApiResult<Json<EndpointView>> {
    let endpoint = caller.endpoint(&id, None).await?;
    Ok(Json(shown(&caller, endpoint).await?))
}

/// Change an endpoint's settings.
#[utoipa::path(
    patch,
    path = "/v1/endpoints/{id}",
    operation_id = "update_endpoint",
    tag = "endpoints",
    params(("id" = String, Path, description = "Endpoint id (`ep_…`)")),
    request_body = UpdateEndpoint,
    responses(
        (status = 200, description = "The endpoint as it now is", body = EndpointView),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn update(
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<UpdateEndpoint>,
) -> ApiResult<Json<EndpointView>> {
    let endpoint = caller.endpoint(&id, None).await?;
    let changes = EndpointChanges {
        name: request.name,
        url: request.url,
        timeout: request.timeout_ms.map(|t| t.map(Duration::from_millis)),
        max_in_flight: request.max_in_flight,
        headers: request.headers.as_ref().map(header_lines).transpose()?,
        description: request.description,
        rate_limit: request.rate_limit,
        rate_limit_burst: request.rate_limit_burst,
    };
    let endpoint = caller.ops.update_endpoint(&endpoint.id, &changes).await?;
    Ok(Json(shown(&caller, endpoint).await?))
}

/// Delete an endpoint and its subscriptions; unfinished deliveries are cancelled.
#[utoipa::path(
    delete,
    path = "/v1/endpoints/{id}",
    operation_id = "delete_endpoint",
    tag = "endpoints",
    params(("id" = String, Path, description = "Endpoint id (`ep_…`)")),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn delete(caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Deleted>> {
    let endpoint = caller.endpoint(&id, None).await?;
    let (endpoint, cancelled) = caller.ops.delete_endpoint(&endpoint.id).await?;
    Ok(Json(Deleted {
        id: endpoint.id,
        cancelled_deliveries: cancelled,
    }))
}

/// Hold an endpoint's deliveries (nothing is attempted or dropped) until
/// resumed, or until `until`. Pausing a paused endpoint replaces the
/// reason and the end given and keeps the others.
#[utoipa::path(
    post,
    path = "/v1/endpoints/{id}/pause",
    operation_id = "pause_endpoint",
    tag = "endpoints",
    params(("id" = String, Path, description = "Endpoint id (`ep_…`)")),
    request_body(content = Option<PauseEndpoint>, description = "Optional"),
    responses(
        (status = 200, description = "Paused", body = EndpointView),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad reason or until (named in the problem)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn pause(
    caller: Caller,
    Path(id): Path<String>,
    OptionalJsonBody(request): OptionalJsonBody<PauseEndpoint>,
) -> ApiResult<Json<EndpointView>> {
    let endpoint = caller.endpoint(&id, None).await?;
    let until = request
        .until
        .as_deref()
        .map(parse_until_rfc3339)
        .transpose()?;
    let (endpoint, _was_paused) = caller
        .ops
        .pause_endpoint(&endpoint.id, request.reason.as_deref(), until)
        .await?;
    Ok(Json(shown(&caller, endpoint).await?))
}

/// The endpoint's circuit breaker: its state, why, the next probe, the
/// window's figures, and its latest transitions (newest first).
#[utoipa::path(
    get,
    path = "/v1/endpoints/{id}/breaker",
    operation_id = "get_endpoint_breaker",
    tag = "endpoints",
    params(("id" = String, Path, description = "Endpoint id (`ep_…`)")),
    responses(
        (status = 200, description = "The breaker", body = BreakerView),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn breaker(caller: Caller, Path(id): Path<String>) -> ApiResult<Json<BreakerView>> {
    let endpoint = caller.endpoint(&id, None).await?;
    let (_, breaker, transitions) = caller
        .ops
        .breaker(&endpoint.id, BREAKER_TRANSITIONS_SHOWN)
        .await?;
    Ok(Json(BreakerView::new(breaker, transitions)))
}

/// Force the endpoint's circuit breaker open or closed, or hand it back to
/// its outcomes (`auto`); audited.
#[utoipa::path(
    post,
    path = "/v1/endpoints/{id}/breaker",
    operation_id = "set_endpoint_breaker",
    tag = "endpoints",
    params(("id" = String, Path, description = "Endpoint id (`ep_…`)")),
    request_body = SetBreaker,
    responses(
        (status = 200, description = "The breaker as it now is", body = BreakerView),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`mode` is not open, closed or auto", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn set_breaker(
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<SetBreaker>,
) -> ApiResult<Json<BreakerView>> {
    let mode: BreakerMode = request
        .mode
        .parse()
        .map_err(|e: crate::model::UnknownVariant| Problem::invalid_field("mode", e.to_string()))?;
    let endpoint = caller.endpoint(&id, None).await?;
    caller.ops.set_breaker(&endpoint.id, mode).await?;
    let (_, breaker, transitions) = caller
        .ops
        .breaker(&endpoint.id, BREAKER_TRANSITIONS_SHOWN)
        .await?;
    Ok(Json(BreakerView::new(breaker, transitions)))
}

/// Transitions a breaker view lists.
const BREAKER_TRANSITIONS_SHOWN: i64 = 20;

/// Make a paused or disabled endpoint active; held deliveries flow oldest first.
#[utoipa::path(
    post,
    path = "/v1/endpoints/{id}/resume",
    operation_id = "resume_endpoint",
    tag = "endpoints",
    params(("id" = String, Path, description = "Endpoint id (`ep_…`)")),
    responses(
        (status = 200, description = "Active", body = EndpointView),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn resume(caller: Caller, Path(id): Path<String>) -> ApiResult<Json<EndpointView>> {
    let endpoint = caller.endpoint(&id, None).await?;
    let (endpoint, _before) = caller.ops.resume_endpoint(&endpoint.id).await?;
    Ok(Json(shown(&caller, endpoint).await?))
}

/// Replace the signing secret; the old one keeps signing (both signatures
/// sent) for the rotation grace period.
#[utoipa::path(
    post,
    path = "/v1/endpoints/{id}/rotate-secret",
    operation_id = "rotate_endpoint_secret",
    tag = "endpoints",
    params(("id" = String, Path, description = "Endpoint id (`ep_…`)")),
    request_body(content = Option<RotateSecret>, description = "Optional"),
    responses(
        (status = 200, description = "The endpoint with its new secret, in full", body = EndpointView),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid secret", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn rotate_secret(
    caller: Caller,
    Path(id): Path<String>,
    OptionalJsonBody(request): OptionalJsonBody<RotateSecret>,
) -> ApiResult<Json<EndpointView>> {
    let endpoint = caller.endpoint(&id, None).await?;
    let endpoint = caller
        .ops
        .rotate_secret(&endpoint.id, request.secret.as_deref())
        .await?;
    let breaker = caller.ops.breaker_of(&endpoint).await?;
    Ok(Json(
        EndpointView::with_secret(endpoint).with_breaker(breaker),
    ))
}

/// Reveal an endpoint's signing secrets: the current one, and the previous
/// one while it still signs. Lists and GETs show only a hint; each call
/// here is recorded in the audit log under the key's name.
#[utoipa::path(
    get,
    path = "/v1/endpoints/{id}/secret",
    operation_id = "get_endpoint_secret",
    tag = "endpoints",
    params(("id" = String, Path, description = "Endpoint id (`ep_…`)")),
    responses(
        (status = 200, description = "The signing secrets, in full", body = EndpointSecretView),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn secret(caller: Caller, Path(id): Path<String>) -> ApiResult<Json<EndpointSecretView>> {
    let endpoint = caller.endpoint(&id, None).await?;
    let endpoint = caller.ops.reveal_signing_secrets(&endpoint.id).await?;
    Ok(Json(EndpointSecretView::new(endpoint, now_millis())))
}

/// Queue an endpoint's failed deliveries again, each on a fresh schedule.
#[utoipa::path(
    post,
    path = "/v1/endpoints/{id}/recover",
    operation_id = "recover_endpoint",
    tag = "endpoints",
    params(("id" = String, Path, description = "Endpoint id (`ep_…`)")),
    request_body = Recover,
    responses(
        (status = 202, description = "Queued", body = Recovered),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn recover(
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<Recover>,
) -> ApiResult<(StatusCode, Json<Recovered>)> {
    let endpoint = caller.endpoint(&id, None).await?;
    let since = parse_since("since", &request.since)?;
    let until = request
        .until
        .as_deref()
        .map(|t| parse_since("until", t))
        .transpose()?;
    let states = match &request.state {
        None => vec![DeliveryState::Dead],
        Some(text) => text
            .split(',')
            .map(|s| {
                s.trim()
                    .parse::<DeliveryState>()
                    .map_err(|e| Problem::invalid_field("state", e.to_string()))
            })
            .collect::<Result<_, _>>()?,
    };
    let request = BulkRetry {
        endpoint: endpoint.id,
        states,
        since: Some(since),
        until,
        dry_run: request.dry_run,
    };
    if request.dry_run {
        let (_endpoint, preview) = caller.ops.preview_bulk(&request).await?;
        let time = |ms: i64| (preview.count > 0).then(|| crate::model::format_rfc3339(ms));
        return Ok((
            StatusCode::ACCEPTED,
            Json(Recovered {
                queued: preview.count,
                dry_run: true,
                oldest: time(preview.oldest),
                newest: time(preview.newest),
                held: Some(if preview.held.is_some() {
                    preview.count
                } else {
                    0
                }),
                held_reason: preview.held.map(|hold| hold.code().to_string()),
            }),
        ));
    }
    let (_endpoint, queued) = caller.ops.retry_bulk(&request).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Recovered {
            queued,
            dry_run: false,
            oldest: None,
            newest: None,
            held: None,
            held_reason: None,
        }),
    ))
}

/// Headers as the `Name: value` lines that `ops` validates (a colon in a
/// name would move the split, so it is refused here).
fn header_lines(headers: &BTreeMap<String, String>) -> ApiResult<Vec<String>> {
    headers
        .iter()
        .map(|(name, value)| match name.contains(':') {
            true => Err(Problem::invalid_field(
                "headers",
                format!("{name:?} is not a valid header name"),
            )),
            false => Ok(format!("{name}: {value}")),
        })
        .collect()
}

/// List an endpoint's attempts across its deliveries, newest first:
/// status, duration, error, the headers sent (masked) and the start of
/// the answer.
#[utoipa::path(
    get,
    path = "/v1/endpoints/{id}/attempts",
    operation_id = "list_endpoint_attempts",
    tag = "endpoints",
    params(("id" = String, Path, description = "Endpoint id (`ep_…`)"), AttemptQuery),
    responses(
        (status = 200, description = "A page of attempts", body = List<AttemptView>),
        (status = 400, description = "Invalid query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn attempts(
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<AttemptQuery>,
) -> ApiResult<Json<List<AttemptView>>> {
    let endpoint = caller.endpoint(&id, None).await?;
    let of = AttemptsOf::Endpoint(endpoint.id);
    Ok(Json(attempts_page(&caller, of, &query).await?))
}

/// The window of endpoint stats.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// `1h` (default), `24h` or `7d`.
    #[param(value_type = Option<String>, pattern = "^(1h|24h|7d)$")]
    pub window: Option<String>,
}

/// The windows stats are kept for, in minutes.
const STATS_WINDOWS: [(&str, i64); 3] = [("1h", 60), ("24h", 24 * 60), ("7d", 7 * 24 * 60)];

/// An endpoint's figures over a window: attempts and success ratio,
/// latency percentiles, failures by kind and by cause, its deliveries by
/// state, and its backlog now with the oldest due time.
#[utoipa::path(
    get,
    path = "/v1/endpoints/{id}/stats",
    operation_id = "get_endpoint_stats",
    tag = "endpoints",
    params(("id" = String, Path, description = "Endpoint id (`ep_…`)"), StatsQuery),
    responses(
        (status = 200, description = "The endpoint's figures", body = EndpointStatsView),
        (status = 400, description = "Invalid query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn stats(
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<StatsQuery>,
) -> ApiResult<Json<EndpointStatsView>> {
    let endpoint = caller.endpoint(&id, None).await?;
    let window = query.window.as_deref().unwrap_or("1h");
    let minutes = STATS_WINDOWS
        .iter()
        .find(|(name, _)| *name == window)
        .map(|(_, minutes)| *minutes)
        .ok_or_else(|| {
            Problem::invalid_query("window", format!("must be 1h, 24h or 7d, got {window:?}"))
        })?;
    let stats = caller
        .ops
        .reads()
        .endpoint_stats(&endpoint.id, minutes)
        .await?;
    Ok(Json(EndpointStatsView::new(stats, window)))
}
