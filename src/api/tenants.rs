//! `/v1/tenants`: the platform's customers. Admin keys manage them; a tenant
//! key sees only its own.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::body::{JsonBody, QueryParams};
use super::contract;
use super::fields::{Check, FieldErrors};
use super::paging::{List, page_request};
use super::problem::{ApiResult, Problem};
use super::views::{Deleted, TenantView};

/// A tenant to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Unique; letters, digits, `-`, `_` and `.`, at most 64 characters.
    #[schema(schema_with = contract::tenant_name)]
    pub name: String,
}

impl Check for CreateTenant {
    fn check(&self, errors: &mut FieldErrors) {
        contract::check_name(errors, "name", &self.name);
    }
}

/// Paging of the tenant list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TenantQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Rows per page, 1 to 1000 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// List tenants, oldest first (a tenant key sees its own).
#[utoipa::path(
    get,
    path = "/v1/tenants",
    operation_id = "list_tenants",
    tag = "tenants",
    params(TenantQuery),
    responses(
        (status = 200, description = "A page of tenants", body = List<TenantView>),
        (status = 400, description = "Invalid query parameter", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    caller: Caller,
    QueryParams(query): QueryParams<TenantQuery>,
) -> ApiResult<Json<List<TenantView>>> {
    let page = page_request(query.limit.as_deref(), query.cursor.as_deref())?;
    let tenants = caller
        .ops
        .reads()
        .page_tenants(caller.scope(), &page)
        .await?;
    Ok(Json(List::of(tenants, TenantView::from)))
}

/// Create a tenant (admin keys only).
#[utoipa::path(
    post,
    path = "/v1/tenants",
    operation_id = "create_tenant",
    tag = "tenants",
    request_body = CreateTenant,
    responses(
        (status = 201, description = "Created", body = TenantView),
        (status = 403, description = "Not an admin key", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn create(
    caller: Caller,
    JsonBody(request): JsonBody<CreateTenant>,
) -> ApiResult<(StatusCode, Json<TenantView>)> {
    caller.require_admin("creating a tenant")?;
    let tenant = caller.ops.add_tenant(&request.name).await?;
    Ok((StatusCode::CREATED, Json(tenant.into())))
}

/// Get a tenant by id or name.
#[utoipa::path(
    get,
    path = "/v1/tenants/{id}",
    operation_id = "get_tenant",
    tag = "tenants",
    params(("id" = String, Path, description = "Tenant id (`ten_…`) or name")),
    responses(
        (status = 200, description = "The tenant", body = TenantView),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get(caller: Caller, Path(id): Path<String>) -> ApiResult<Json<TenantView>> {
    Ok(Json(caller.tenant(&id, None).await?.into()))
}

/// Delete a tenant with its endpoints, subscriptions and API keys; its
/// unfinished deliveries are cancelled (admin keys only).
#[utoipa::path(
    delete,
    path = "/v1/tenants/{id}",
    operation_id = "delete_tenant",
    tag = "tenants",
    params(("id" = String, Path, description = "Tenant id (`ten_…`) or name")),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 403, description = "Not an admin key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn delete(caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Deleted>> {
    let tenant = caller.tenant(&id, None).await?;
    caller.require_admin("deleting a tenant")?;
    let (tenant, cancelled) = caller.ops.delete_tenant(&tenant.id).await?;
    Ok(Json(Deleted {
        id: tenant.id,
        cancelled_deliveries: cancelled,
    }))
}
