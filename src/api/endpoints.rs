//! `/v1/endpoints`: where a tenant's events are POSTed, and the operator
//! actions on one (pause, resume, rotate its secret, recover failures).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use utoipa::openapi::schema::Object;
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::body::{JsonBody, OptionalJsonBody, QueryParams, whole, whole_or_null, whole_present};
use super::contract;
use super::deliveries::{AttemptQuery, attempts_page};
use super::fields::{Check, FieldErrors, ops_problem};
use super::paging::{List, page_request};
use super::problem::{ApiResult, Problem};
use super::views::{
    AttemptView, BreakerView, Deleted, EndpointSecretView, EndpointStatsView, EndpointView,
};
use crate::model::{BreakerMode, DeliveryState, Endpoint, now_millis};
use crate::ops::{
    BulkRetry, EndpointChanges, EndpointInput, parse_since, parse_until_rfc3339,
    validate_description, validate_max_in_flight, validate_rate_limit, validate_reason,
    validate_timeout,
};
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

/// Reads a field that may be left out but, when given, is not `null`
/// (`null` would mean nothing for it).
pub fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// An endpoint to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// Tenant id or name; a tenant key may leave it out (an admin key
    /// that does is refused with 403: it has no tenant of its own).
    pub tenant: Option<String>,
    #[schema(schema_with = contract::endpoint_name)]
    pub name: String,
    #[schema(schema_with = contract::url)]
    pub url: String,
    #[schema(schema_with = contract::secret)]
    pub secret: Option<String>,
    #[serde(default, deserialize_with = "whole")]
    #[schema(schema_with = contract::timeout_ms)]
    pub timeout_ms: Option<u64>,
    #[serde(default, deserialize_with = "whole")]
    #[schema(schema_with = contract::max_in_flight)]
    pub max_in_flight: Option<u32>,
    #[serde(default)]
    #[schema(schema_with = contract::headers)]
    pub headers: BTreeMap<String, String>,
    #[schema(schema_with = contract::description)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "whole")]
    #[schema(schema_with = contract::rate_limit)]
    pub rate_limit: Option<u32>,
    #[serde(default, deserialize_with = "whole")]
    #[schema(schema_with = contract::rate_limit_burst)]
    pub rate_limit_burst: Option<u32>,
}

impl CreateEndpoint {
    /// What its schema cannot say field by field: a burst needs a rate.
    pub fn refine_schema(schema: &mut Object) {
        let burst_without_rate = json!({
            "required": ["rate_limit_burst"],
            "properties": {
                "rate_limit_burst": { "type": "integer" },
                "rate_limit": { "type": "null" }
            }
        });
        *schema = contract::with_not(std::mem::take(schema), burst_without_rate);
    }
}

impl Check for CreateEndpoint {
    fn check(&self, errors: &mut FieldErrors) {
        contract::check_name(errors, "name", &self.name);
        contract::check_url(errors, "url", &self.url);
        if let Some(secret) = &self.secret {
            contract::check_secret(errors, "secret", secret);
        }
        if let Some(timeout) = self.timeout_ms {
            errors.ops(
                "timeout_ms",
                validate_timeout(Duration::from_millis(timeout)),
            );
        }
        if let Some(max) = self.max_in_flight {
            errors.ops("max_in_flight", validate_max_in_flight(max));
        }
        contract::check_headers(errors, &self.headers);
        if let Some(description) = &self.description {
            errors.ops("description", validate_description(description));
        }
        check_rate(errors, self.rate_limit, self.rate_limit_burst);
        if self.rate_limit.is_none() && self.rate_limit_burst.is_some() {
            errors.add("rate_limit_burst", NO_RATE);
        }
    }
}

/// Why a burst without a rate is refused.
const NO_RATE: &str = "a burst needs a rate limit: give rate_limit too";

/// Checks a rate limit and its burst, each in range.
fn check_rate(errors: &mut FieldErrors, rate: Option<u32>, burst: Option<u32>) {
    if let Some(rate) = rate {
        errors.ops("rate_limit", validate_rate_limit(rate, None));
    }
    if let Some(burst) = burst {
        // Checked with a rate known to be good, to judge the burst alone.
        errors.ops("rate_limit_burst", validate_rate_limit(1, Some(burst)));
    }
}

/// Changes to an endpoint; fields left out stay as they are, `null` resets
/// an optional one to its default. At least one field must be given.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpoint {
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = contract::endpoint_name)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = contract::url)]
    pub url: Option<String>,
    #[serde(default, deserialize_with = "whole_or_null")]
    #[schema(schema_with = contract::timeout_ms)]
    pub timeout_ms: Option<Option<u64>>,
    #[serde(default, deserialize_with = "whole_or_null")]
    #[schema(schema_with = contract::max_in_flight)]
    pub max_in_flight: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = contract::headers_change)]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = contract::description)]
    pub description: Option<Option<String>>,
    /// `null` removes the limit.
    #[serde(default, deserialize_with = "whole_or_null")]
    #[schema(schema_with = contract::rate_limit)]
    pub rate_limit: Option<Option<u32>>,
    #[serde(default, deserialize_with = "whole_present")]
    #[schema(schema_with = contract::rate_limit_burst_change)]
    pub rate_limit_burst: Option<u32>,
}

impl UpdateEndpoint {
    /// What its schema cannot say field by field: something to change,
    /// and a burst never beside a rate limit being removed.
    pub fn refine_schema(schema: &mut Object) {
        schema.min_properties = Some(1);
        let burst_while_removing_rate = json!({
            "required": ["rate_limit_burst", "rate_limit"],
            "properties": { "rate_limit": { "type": "null" } }
        });
        *schema = contract::with_not(std::mem::take(schema), burst_while_removing_rate);
    }

    fn is_empty(&self) -> bool {
        let UpdateEndpoint {
            name,
            url,
            timeout_ms,
            max_in_flight,
            headers,
            description,
            rate_limit,
            rate_limit_burst,
        } = self;
        name.is_none()
            && url.is_none()
            && timeout_ms.is_none()
            && max_in_flight.is_none()
            && headers.is_none()
            && description.is_none()
            && rate_limit.is_none()
            && rate_limit_burst.is_none()
    }
}

impl Check for UpdateEndpoint {
    fn check(&self, errors: &mut FieldErrors) {
        if self.is_empty() {
            errors.add("body", "nothing to change was given");
        }
        if let Some(name) = &self.name {
            contract::check_name(errors, "name", name);
        }
        if let Some(url) = &self.url {
            contract::check_url(errors, "url", url);
        }
        if let Some(Some(timeout)) = self.timeout_ms {
            errors.ops(
                "timeout_ms",
                validate_timeout(Duration::from_millis(timeout)),
            );
        }
        if let Some(Some(max)) = self.max_in_flight {
            errors.ops("max_in_flight", validate_max_in_flight(max));
        }
        if let Some(headers) = &self.headers {
            contract::check_headers(errors, headers);
        }
        if let Some(Some(description)) = &self.description {
            errors.ops("description", validate_description(description));
        }
        check_rate(errors, self.rate_limit.flatten(), self.rate_limit_burst);
        if self.rate_limit == Some(None) && self.rate_limit_burst.is_some() {
            errors.add("rate_limit_burst", NO_RATE);
        }
    }
}

/// Why an endpoint is paused, and when the pause ends by itself.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseEndpoint {
    #[schema(schema_with = contract::pause_reason)]
    pub reason: Option<String>,
    /// An RFC 3339 time in the future, or nothing: paused until resumed.
    #[schema(schema_with = contract::pause_until)]
    pub until: Option<String>,
}

impl Check for PauseEndpoint {
    fn check(&self, errors: &mut FieldErrors) {
        if let Some(reason) = &self.reason {
            errors.ops("reason", validate_reason(reason));
        }
        if let Some(until) = &self.until {
            contract::check_date_time(errors, "until", until);
        }
    }
}

/// How an endpoint's circuit breaker is to be decided.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetBreaker {
    /// `open`, `closed` or `auto`.
    #[schema(schema_with = contract::breaker_mode)]
    pub mode: String,
}

impl Check for SetBreaker {
    fn check(&self, errors: &mut FieldErrors) {
        errors.check("mode", self.mode.parse::<BreakerMode>());
    }
}

/// The new secret; generated when left out.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    #[schema(schema_with = contract::secret)]
    pub secret: Option<String>,
}

impl Check for RotateSecret {
    fn check(&self, errors: &mut FieldErrors) {
        if let Some(secret) = &self.secret {
            contract::check_secret(errors, "secret", secret);
        }
    }
}

/// Which of an endpoint's deliveries to revive.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recover {
    /// An RFC 3339 time or a duration ago (`2h`).
    #[schema(schema_with = contract::recover_since)]
    pub since: String,
    /// Like `since`, later than it.
    #[schema(schema_with = contract::recover_until)]
    pub until: Option<String>,
    /// Retryable states, comma separated (default `dead`).
    #[schema(schema_with = contract::recover_state)]
    pub state: Option<String>,
    /// Only count what would be queued, and preview it.
    #[serde(default)]
    pub dry_run: bool,
}

impl Check for Recover {
    fn check(&self, errors: &mut FieldErrors) {
        contract::check_time_or_ago(errors, "since", &self.since);
        if let Some(until) = &self.until {
            contract::check_time_or_ago(errors, "until", until);
        }
        if let Some(state) = &self.state {
            contract::check_recover_states(errors, "state", state);
        }
    }
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
    let tenant = caller.tenant_filter(query.tenant.as_deref()).await?;
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
        (status = 403, description = "An admin key without `tenant`, or a `url` whose address the outbound policy blocks", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken in the tenant", body = Problem, content_type = "application/problem+json"),
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
        headers: header_lines(&request.headers),
        description: request.description,
        rate_limit: request.rate_limit,
        rate_limit_burst: request.rate_limit_burst,
    };
    let endpoint = caller
        .ops
        .add_endpoint(&input)
        .await
        .map_err(|e| ops_problem(e, AS_SENT))?;
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
        (status = 403, description = "A `url` whose address the outbound policy blocks", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken, a masked password or header value has nothing to keep, or a burst alone for an endpoint without a rate limit", body = Problem, content_type = "application/problem+json"),
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
        headers: request.headers.as_ref().map(header_lines),
        description: request.description,
        rate_limit: request.rate_limit,
        rate_limit_burst: request.rate_limit_burst,
    };
    let endpoint = caller
        .ops
        .update_endpoint(&endpoint.id, &changes)
        .await
        .map_err(|e| ops_problem(e, AS_SENT))?;
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
        (status = 409, description = "`until` has passed", body = Problem, content_type = "application/problem+json"),
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
        (status = 409, description = "`until` is not later than `since`", body = Problem, content_type = "application/problem+json"),
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

/// Headers as the `Name: value` lines that `ops` validates (the names are
/// HTTP tokens, checked before, so a colon never moves the split).
fn header_lines(headers: &BTreeMap<String, String>) -> Vec<String> {
    headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}"))
        .collect()
}

/// The fields `ops` names its own way, as the client sent them.
const AS_SENT: &[(&str, &str)] = &[("timeout", "timeout_ms"), ("header", "headers")];
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
