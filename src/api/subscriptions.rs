//! `/v1/subscriptions`: which topic patterns an endpoint receives.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::openapi::schema::Object;
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::body::{JsonBody, QueryParams};
use super::contract;
use super::endpoints::{double_option, present};
use super::fields::{Check, FieldErrors};
use super::paging::{List, page_request};
use super::problem::{ApiResult, Problem};
use super::views::SubscriptionView;
use crate::ops::validate_description;

/// A subscription to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSubscription {
    /// Endpoint id (`ep_…`).
    pub endpoint: String,
    /// Topic pattern: `resident.update`, `resident.*` (one segment),
    /// `resident.**` (one or more) or `*` (everything).
    #[schema(schema_with = contract::topic_pattern)]
    pub topic: String,
    #[schema(schema_with = contract::description)]
    pub description: Option<String>,
}

impl Check for CreateSubscription {
    fn check(&self, errors: &mut FieldErrors) {
        contract::check_topic_pattern(errors, "topic", &self.topic);
        if let Some(description) = &self.description {
            errors.ops("description", validate_description(description));
        }
    }
}

/// Changes to a subscription; `null` clears the description. At least
/// one field must be given.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSubscription {
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = contract::topic_pattern)]
    pub topic: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = contract::description)]
    pub description: Option<Option<String>>,
}

impl UpdateSubscription {
    /// What its schema cannot say field by field: something to change.
    pub fn refine_schema(schema: &mut Object) {
        schema.min_properties = Some(1);
    }
}

impl Check for UpdateSubscription {
    fn check(&self, errors: &mut FieldErrors) {
        if self.topic.is_none() && self.description.is_none() {
            errors.add("body", "nothing to change was given");
        }
        if let Some(topic) = &self.topic {
            contract::check_topic_pattern(errors, "topic", topic);
        }
        if let Some(Some(description)) = &self.description {
            errors.ops("description", validate_description(description));
        }
    }
}

/// Filters of the subscription list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SubscriptionQuery {
    /// Only this endpoint's (`ep_…`).
    pub endpoint: Option<String>,
    /// Only this tenant's (id or name).
    pub tenant: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Rows per page, 1 to 1000 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// List subscriptions (a tenant key sees its tenant's).
#[utoipa::path(
    get,
    path = "/v1/subscriptions",
    operation_id = "list_subscriptions",
    tag = "subscriptions",
    params(SubscriptionQuery),
    responses(
        (status = 200, description = "A page of subscriptions", body = List<SubscriptionView>),
        (status = 400, description = "Invalid query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint or tenant", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    caller: Caller,
    QueryParams(query): QueryParams<SubscriptionQuery>,
) -> ApiResult<Json<List<SubscriptionView>>> {
    let endpoint = match &query.endpoint {
        Some(id) => Some(caller.endpoint(id, Some("endpoint")).await?.id),
        None => None,
    };
    let tenant = caller.tenant_filter(query.tenant.as_deref()).await?;
    let page = page_request(query.limit.as_deref(), query.cursor.as_deref())?;
    let subscriptions = caller
        .ops
        .reads()
        .page_subscriptions(endpoint.as_deref(), tenant.as_deref(), &page)
        .await?;
    Ok(Json(List::of(subscriptions, SubscriptionView::from)))
}

/// Subscribe an endpoint to a topic pattern.
#[utoipa::path(
    post,
    path = "/v1/subscriptions",
    operation_id = "create_subscription",
    tag = "subscriptions",
    request_body = CreateSubscription,
    responses(
        (status = 201, description = "Created", body = SubscriptionView),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The endpoint already has this topic pattern", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn create(
    caller: Caller,
    JsonBody(request): JsonBody<CreateSubscription>,
) -> ApiResult<(StatusCode, Json<SubscriptionView>)> {
    let endpoint = caller.endpoint(&request.endpoint, Some("endpoint")).await?;
    let subscription = caller
        .ops
        .add_subscription(&endpoint.id, &request.topic, request.description.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(subscription.into())))
}

/// Get a subscription.
#[utoipa::path(
    get,
    path = "/v1/subscriptions/{id}",
    operation_id = "get_subscription",
    tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id (`sub_…`)")),
    responses(
        (status = 200, description = "The subscription", body = SubscriptionView),
        (status = 404, description = "No such subscription", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get(caller: Caller, Path(id): Path<String>) -> ApiResult<Json<SubscriptionView>> {
    Ok(Json(caller.subscription(&id).await?.into()))
}

/// Change a subscription's topic pattern or description.
#[utoipa::path(
    patch,
    path = "/v1/subscriptions/{id}",
    operation_id = "update_subscription",
    tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id (`sub_…`)")),
    request_body = UpdateSubscription,
    responses(
        (status = 200, description = "The subscription as it now is", body = SubscriptionView),
        (status = 404, description = "No such subscription", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The endpoint already has this topic pattern", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn update(
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<UpdateSubscription>,
) -> ApiResult<Json<SubscriptionView>> {
    let subscription = caller.subscription(&id).await?;
    let description = request.description.as_ref().map(|d| d.as_deref());
    let subscription = caller
        .ops
        .update_subscription(&subscription.id, request.topic.as_deref(), description)
        .await?;
    Ok(Json(subscription.into()))
}

/// Remove a subscription.
#[utoipa::path(
    delete,
    path = "/v1/subscriptions/{id}",
    operation_id = "delete_subscription",
    tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id (`sub_…`)")),
    responses(
        (status = 200, description = "The subscription as it was", body = SubscriptionView),
        (status = 404, description = "No such subscription", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn delete(caller: Caller, Path(id): Path<String>) -> ApiResult<Json<SubscriptionView>> {
    let subscription = caller.subscription(&id).await?;
    let subscription = caller.ops.delete_subscription(&subscription.id).await?;
    Ok(Json(subscription.into()))
}
