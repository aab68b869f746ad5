//! `/v1/deliveries`: what happened to each event at each endpoint, paged
//! with cursors, and manual retries.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Caller;
use super::body::QueryParams;
use super::problem::{ApiResult, Problem};
use super::views::{DeliveryDetailView, DeliveryPage, DeliveryView};
use crate::model::{DeliveryState, IdKind};
use crate::ops::parse_since;
use crate::store::{Cursor, DeliveryFilter};

/// Rows per page unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 50;
/// Most rows per page.
pub(super) const MAX_LIMIT: usize = 1000;

/// Filters and paging of the delivery list; all optional.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// One or more states, comma separated: `pending`, `in_flight`,
    /// `retrying`, `delivered`, `dead`, `cancelled` (`scheduled` and
    /// `succeeded` are accepted as aliases of `retrying` and `delivered`).
    pub state: Option<String>,
    /// Only this tenant's (id or name).
    pub tenant: Option<String>,
    /// Only this endpoint's (`ep_…`).
    pub endpoint: Option<String>,
    /// Only this exact topic.
    pub topic: Option<String>,
    /// Only this event's (`msg_…`).
    pub event: Option<String>,
    /// Created at or after this RFC 3339 time, or within this long (`2h`).
    pub since: Option<String>,
    /// Created before this RFC 3339 time (or this long ago).
    pub until: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Rows per page, 1 to 1000 (default 50).
    pub limit: Option<String>,
}

/// List deliveries, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/deliveries",
    operation_id = "list_deliveries",
    tag = "deliveries",
    params(DeliveryQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryPage),
        (status = 400, description = "Invalid query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant or endpoint", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    caller: Caller,
    QueryParams(query): QueryParams<DeliveryQuery>,
) -> ApiResult<Json<DeliveryPage>> {
    let limit = match &query.limit {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                Problem::invalid_query("limit", format!("must be 1 to {MAX_LIMIT}, got {text:?}"))
            })?,
    };
    let cursor = match &query.cursor {
        None => None,
        Some(text) => Some(Cursor::decode(text).ok_or_else(|| {
            Problem::invalid_query("cursor", "not a cursor this API handed out (next_cursor)")
        })?),
    };
    let filter = filter(&caller, &query).await?;
    let page = caller
        .ops
        .reads()
        .list_deliveries(&filter, cursor.as_ref(), limit)
        .await?;
    let stopped = caller.ops.reads().held_endpoints().await?;
    Ok(Json(DeliveryPage {
        data: page
            .items
            .into_iter()
            .map(|d| caller.present(DeliveryView::new(d, &stopped)))
            .collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

/// The store filter for a query, limited to what the caller may see.
async fn filter(caller: &Caller, query: &DeliveryQuery) -> ApiResult<DeliveryFilter> {
    let states = match &query.state {
        None => Vec::new(),
        Some(text) => text
            .split(',')
            .map(|s| {
                s.trim()
                    .parse::<DeliveryState>()
                    .map_err(|e| Problem::invalid_query("state", e.to_string()))
            })
            .collect::<Result<_, _>>()?,
    };
    let tenant_id = match (&query.tenant, caller.scope()) {
        (None, None) => None,
        (given, _) => Some(caller.tenant_or_own(given.as_deref()).await?.id),
    };
    let endpoint_id = match &query.endpoint {
        Some(id) => Some(caller.endpoint(id, Some("endpoint")).await?.id),
        None => None,
    };
    if let Some(event) = &query.event
        && IdKind::of(event) != Some(IdKind::Event)
    {
        return Err(Problem::invalid_query(
            "event",
            format!("{event:?} is not an event id (msg_…)"),
        ));
    }
    let time = |field: &'static str, text: &Option<String>| {
        text.as_deref()
            .map(|t| parse_since(field, t))
            .transpose()
            .map_err(|e| match e {
                crate::ops::OpsError::Invalid { field, reason } => {
                    Problem::invalid_query(field, reason)
                }
                other => other.into(),
            })
    };
    Ok(DeliveryFilter {
        states,
        tenant_id,
        endpoint_id,
        topic: query.topic.clone(),
        event_id: query.event.clone(),
        since: time("since", &query.since)?,
        until: time("until", &query.until)?,
    })
}

/// Get a delivery with its event (payload exactly as published) and every attempt.
#[utoipa::path(
    get,
    path = "/v1/deliveries/{id}",
    operation_id = "get_delivery",
    tag = "deliveries",
    params(("id" = String, Path, description = "Delivery id (`dlv_…`)")),
    responses(
        (status = 200, description = "The delivery", body = DeliveryDetailView),
        (status = 404, description = "No such delivery", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "Removed by retention: the id is older than the retention horizon", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get(caller: Caller, Path(id): Path<String>) -> ApiResult<Json<DeliveryDetailView>> {
    let detail = caller.delivery(&id).await?;
    let stopped = caller.ops.reads().held_endpoints().await?;
    let view = DeliveryDetailView::new(detail, &stopped);
    Ok(Json(caller.present(view)))
}

/// Retry a dead, retrying or delivered delivery on a fresh schedule.
#[utoipa::path(
    post,
    path = "/v1/deliveries/{id}/retry",
    operation_id = "retry_delivery",
    tag = "deliveries",
    params(("id" = String, Path, description = "Delivery id (`dlv_…`)")),
    responses(
        (status = 202, description = "Queued again", body = DeliveryView),
        (status = 404, description = "No such delivery", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not retryable now (pending, in flight, cancelled)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn retry(
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<DeliveryView>)> {
    let detail = caller.delivery(&id).await?;
    let report = caller
        .ops
        .retry(std::slice::from_ref(&detail.delivery.id))
        .await?;
    if let Some((_, reason)) = report.skipped.first() {
        return Err(Problem::conflict(format!("not retried: {reason}")));
    }
    let detail = caller.delivery(&id).await?;
    let stopped = caller.ops.reads().held_endpoints().await?;
    let view = DeliveryView::new(detail.delivery, &stopped);
    Ok((StatusCode::ACCEPTED, Json(caller.present(view))))
}
