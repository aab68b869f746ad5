//! `/v1/deliveries`: what happened to each event at each endpoint, paged
//! with cursors, and manual retries.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Caller;
use super::body::QueryParams;
use super::paging::{List, page_request, query_time};
use super::problem::{ApiResult, Problem};
use super::views::{AttemptView, DeliveryDetailView, DeliveryView};
use crate::model::{DeliveryState, IdKind};
use crate::store::{AttemptFilter, AttemptsOf, DeliveryFilter};

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
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
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
        (status = 200, description = "A page of deliveries", body = List<DeliveryView>),
        (status = 400, description = "Invalid query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant or endpoint", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    caller: Caller,
    QueryParams(query): QueryParams<DeliveryQuery>,
) -> ApiResult<Json<List<DeliveryView>>> {
    let page = page_request(query.limit.as_deref(), query.cursor.as_deref())?;
    let filter = filter(&caller, &query).await?;
    let deliveries = caller
        .ops
        .reads()
        .list_deliveries(&filter, page.after.as_ref(), page.limit)
        .await?;
    let stopped = caller.ops.reads().held_endpoints().await?;
    Ok(Json(List::of(deliveries, |d| {
        caller.present(DeliveryView::new(d, &stopped))
    })))
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
    let tenant_id = caller.tenant_filter(query.tenant.as_deref()).await?;
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
    Ok(DeliveryFilter {
        states,
        tenant_id,
        endpoint_id,
        topic: query.topic.clone(),
        event_id: query.event.clone(),
        since: query_time("since", query.since.as_deref())?,
        until: query_time("until", query.until.as_deref())?,
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

/// Filters and paging of an attempt list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AttemptQuery {
    /// `succeeded` (a 2xx answer) or `failed` (anything else).
    #[param(value_type = Option<String>, pattern = "^(succeeded|failed)$")]
    pub outcome: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Rows per page, 1 to 1000 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// A page of attempts matching `query` of `of`, as `caller` may see them.
pub async fn attempts_page(
    caller: &Caller,
    of: AttemptsOf,
    query: &AttemptQuery,
) -> ApiResult<List<AttemptView>> {
    let page = page_request(query.limit.as_deref(), query.cursor.as_deref())?;
    let succeeded = match query.outcome.as_deref() {
        None => None,
        Some("succeeded") => Some(true),
        Some("failed") => Some(false),
        Some(other) => {
            return Err(Problem::invalid_query(
                "outcome",
                format!("must be succeeded or failed, got {other:?}"),
            ));
        }
    };
    let filter = AttemptFilter { of, succeeded };
    let attempts = caller.ops.reads().page_attempts(&filter, &page).await?;
    Ok(List::of(attempts, |a| caller.present(AttemptView::from(a))))
}

/// List a delivery's attempts, newest first: status, duration, error, the
/// headers sent (masked) and the start of the answer.
#[utoipa::path(
    get,
    path = "/v1/deliveries/{id}/attempts",
    operation_id = "list_delivery_attempts",
    tag = "deliveries",
    params(("id" = String, Path, description = "Delivery id (`dlv_…`)"), AttemptQuery),
    responses(
        (status = 200, description = "A page of attempts", body = List<AttemptView>),
        (status = 400, description = "Invalid query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such delivery", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "Removed by retention: the id is older than the retention horizon", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn attempts(
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<AttemptQuery>,
) -> ApiResult<Json<List<AttemptView>>> {
    // Only its row: the attempts are read by the page, the event not at all.
    let delivery = caller.delivery_alone(&id).await?;
    let of = AttemptsOf::Delivery(delivery.id);
    Ok(Json(attempts_page(&caller, of, &query).await?))
}
