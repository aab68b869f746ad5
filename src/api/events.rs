//! `POST /v1/events`: publish an event for a tenant, or broadcast it;
//! `DELETE /v1/events/{id}/payload`: erase one.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_json::value::RawValue;
use utoipa::openapi::schema::Object;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Caller;
use super::body::{JsonBody, QueryParams};
use super::contract;
use super::fields::{Check, FieldErrors};
use super::paging::{List, page_request, query_time};
use super::problem::{ApiResult, Problem};
use super::views::{EventDetailView, EventView};
use crate::model::IdKind;
use crate::ops::{EventInput, MAX_IDEMPOTENCY_KEY, Payload, validate_idempotency_key};
use crate::store::EventFilter;

/// The header a producer may send its idempotency key in instead of the body.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// An event to publish.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// The tenant it is for (id or name). A tenant key may leave it out.
    pub tenant: Option<String>,
    /// `true` sends it to every tenant's subscribed endpoints (admin keys
    /// only), and then `tenant` must be left out (or `null`).
    #[serde(default)]
    pub broadcast: bool,
    /// e.g. `resident.update`: dot-separated lowercase segments.
    #[schema(schema_with = contract::topic)]
    pub topic: String,
    /// Any JSON value; receivers get exactly these bytes. At most
    /// `limits.max_payload` bytes (256 KiB by default), else 413.
    #[schema(value_type = serde_json::Value)]
    pub payload: Box<RawValue>,
    #[schema(schema_with = contract::idempotency_key)]
    pub idempotency_key: Option<String>,
}

impl PublishRequest {
    /// What its schema cannot say field by field: a tenant or a
    /// broadcast, never both.
    pub fn refine_schema(schema: &mut Object) {
        let both = json!({
            "required": ["tenant", "broadcast"],
            "properties": {
                "tenant": { "type": "string" },
                "broadcast": { "const": true }
            }
        });
        *schema = contract::with_not(std::mem::take(schema), both);
    }
}

impl Check for PublishRequest {
    fn check(&self, errors: &mut FieldErrors) {
        if self.broadcast && self.tenant.is_some() {
            errors.add("tenant", "give a tenant or broadcast, not both");
        }
        contract::check_topic(errors, "topic", &self.topic);
        if let Some(key) = &self.idempotency_key {
            errors.ops("idempotency_key", validate_idempotency_key(key));
        }
    }
}

/// What publishing did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublishResponse {
    /// `msg_…`: also the `webhook-id` receivers see.
    pub id: String,
    /// Deliveries created (for a duplicate: created by the original).
    pub deliveries: i64,
    /// The idempotency key was seen before; nothing new was created.
    pub duplicate: bool,
}

impl From<crate::store::Published> for PublishResponse {
    fn from(published: crate::store::Published) -> PublishResponse {
        PublishResponse {
            id: published.event_id,
            deliveries: published.deliveries,
            duplicate: published.duplicate,
        }
    }
}

/// Publish an event. Answered once the event and all its deliveries are
/// committed; concurrent publishes share a commit.
#[utoipa::path(
    post,
    path = "/v1/events",
    operation_id = "publish_event",
    tag = "events",
    request_body = PublishRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Idempotency key (instead of the body field; both given must be equal)")),
    responses(
        (status = 202, description = "Committed", body = PublishResponse),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Broadcast with a tenant key, or neither `tenant` nor `broadcast` with an admin key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The idempotency key was first used for a different request (its event is named), or the header and the body give different keys", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Payload over the size limit", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn publish(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(request): JsonBody<PublishRequest>,
) -> ApiResult<(StatusCode, Json<PublishResponse>)> {
    if request.tenant.is_none() && !request.broadcast && caller.scope().is_none() {
        return Err(Problem::forbidden_field(
            "tenant",
            "an admin key has no tenant of its own: name the tenant, or broadcast",
        ));
    }
    let input = EventInput {
        idempotency_key: idempotency_key(&headers, request.idempotency_key)?,
        tenant: request.tenant,
        broadcast: request.broadcast,
        topic: request.topic,
        payload: Payload::Json(request.payload),
    };
    let published = state.publisher.publish(&caller.ops, input).await?;
    Ok((StatusCode::ACCEPTED, Json(published.into())))
}

/// The key from the body or the header; both given must agree (two keys
/// for one request conflict, as a key used for another request does).
fn idempotency_key(headers: &HeaderMap, body: Option<String>) -> ApiResult<Option<String>> {
    let header = match headers.get(IDEMPOTENCY_HEADER) {
        None => None,
        Some(value) => {
            let text = value.to_str().ok().filter(|text| {
                contract::IDEMPOTENCY_HEADER.is_match(text)
                    && text.chars().count() <= MAX_IDEMPOTENCY_KEY
            });
            match text {
                Some(text) => Some(text.to_string()),
                None => {
                    return Err(Problem::invalid_field(
                        "Idempotency-Key",
                        format!(
                            "must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters (use the body field for other text)"
                        ),
                    ));
                }
            }
        }
    };
    match (body, header) {
        (Some(body), Some(header)) if body != header => Err(Problem::conflict_in(
            "idempotency_key",
            "differs from the Idempotency-Key header; send one or make them equal",
        )),
        (body, header) => Ok(body.or(header)),
    }
}

/// What erasing an event's payload did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExpungeResponse {
    /// `msg_…`
    pub id: String,
    /// Its deliveries that had not finished, now cancelled.
    pub deliveries_cancelled: u64,
    /// Stored response bodies removed from its attempts.
    pub response_bodies_removed: u64,
}

/// Erase an event's payload now, with the response bodies stored for its
/// attempts (receivers often echo the payload); its unfinished deliveries
/// are cancelled. The event keeps its id, topic and size; its deliveries
/// can no longer be retried. Audited. Admin keys, or the key of the
/// event's tenant (broadcasts: admin keys only).
#[utoipa::path(
    delete,
    path = "/v1/events/{id}/payload",
    operation_id = "expunge_event_payload",
    tag = "events",
    params(("id" = String, Path, description = "Event id (`msg_…`)")),
    responses(
        (status = 200, description = "Erased", body = ExpungeResponse),
        (status = 404, description = "No such event", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "Removed by retention: the id is older than the retention horizon", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn expunge_payload(
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ExpungeResponse>> {
    if IdKind::of(&id) != Some(IdKind::Event) {
        return Err(Problem::not_found("event", &id));
    }
    let report = caller.ops.expunge_events(std::slice::from_ref(&id)).await?;
    Ok(Json(ExpungeResponse {
        id,
        deliveries_cancelled: report.deliveries_cancelled,
        response_bodies_removed: report.response_bodies_removed,
    }))
}

/// Filters and paging of the event list; all optional.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only the events this tenant received (id or name): its own and the
    /// broadcasts. A tenant key always sees only its own and broadcasts.
    pub tenant: Option<String>,
    /// Only this exact topic.
    pub topic: Option<String>,
    /// Created at or after this RFC 3339 time, or within this long (`2h`).
    pub since: Option<String>,
    /// Created before this RFC 3339 time (or this long ago).
    pub until: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Rows per page, 1 to 1000 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// List events, newest first, a page at a time; an event that matched no
/// subscription is listed like any other (`GET /v1/events/{id}` shows
/// where each went).
#[utoipa::path(
    get,
    path = "/v1/events",
    operation_id = "list_events",
    tag = "events",
    params(EventQuery),
    responses(
        (status = 200, description = "A page of events", body = List<EventView>),
        (status = 400, description = "Invalid query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    caller: Caller,
    QueryParams(query): QueryParams<EventQuery>,
) -> ApiResult<Json<List<EventView>>> {
    let page = page_request(query.limit.as_deref(), query.cursor.as_deref())?;
    let tenant_id = caller.tenant_filter(query.tenant.as_deref()).await?;
    let filter = EventFilter {
        tenant_id,
        topic: query.topic,
        since: query_time("since", query.since.as_deref())?,
        until: query_time("until", query.until.as_deref())?,
    };
    let events = caller.ops.reads().page_events(&filter, &page).await?;
    Ok(Json(List::of(events, EventView::from)))
}

/// Get an event: topic, tenant, payload (exactly as published, or why it
/// is gone) and every endpoint it fanned out to, with that delivery's state.
#[utoipa::path(
    get,
    path = "/v1/events/{id}",
    operation_id = "get_event",
    tag = "events",
    params(("id" = String, Path, description = "Event id (`msg_…`, the `webhook-id` receivers got)")),
    responses(
        (status = 200, description = "The event and its fan-out", body = EventDetailView),
        (status = 404, description = "No such event (or another tenant's)", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "Removed by retention: the id is older than the retention horizon", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get(caller: Caller, Path(id): Path<String>) -> ApiResult<Json<EventDetailView>> {
    let fanout = caller.event(&id).await?;
    let stopped = caller.ops.reads().held_endpoints().await?;
    Ok(Json(caller.present(EventDetailView::new(fanout, &stopped))))
}
