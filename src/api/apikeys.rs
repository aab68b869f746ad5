//! `/v1/api-keys`: the keys this API accepts, made, listed and revoked by admin keys.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::body::{JsonBody, QueryParams};
use super::contract;
use super::fields::{Check, FieldErrors};
use super::paging::{List, page_request};
use super::problem::{ApiResult, FieldError, Problem};
use crate::model::{ApiKey, IdKind, Millis, format_rfc3339, now_millis};
use crate::ops::{OpsError, parse_expires_at};
use crate::store::StoreError;

/// A key to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// Unique among live keys and recorded as the actor of every change made
    /// with the key: letters, digits, `-`, `_` and `.`, at most 64
    /// characters, not shaped like an id (`key_…`).
    #[schema(schema_with = contract::api_key_name)]
    pub name: String,
    /// The one tenant (id or name) the key may see and manage; left out or
    /// `null`, an admin key.
    #[serde(default)]
    pub tenant: Option<String>,
    /// When the key stops working (RFC 3339, in the future); left out or
    /// `null`, never.
    #[serde(default)]
    #[schema(schema_with = contract::key_expires_at)]
    pub expires_at: Option<String>,
}

impl Check for CreateApiKey {
    fn check(&self, errors: &mut FieldErrors) {
        contract::check_name(errors, "name", &self.name);
        if let Some(at) = &self.expires_at
            && crate::model::parse_rfc3339(at.trim()).is_none()
        {
            errors.add(
                "expires_at",
                format!("{at:?} is not an RFC 3339 time like 2026-12-07T04:00:00Z"),
            );
        }
    }
}

/// Which keys to list, and paging; all optional.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ApiKeyQuery {
    /// `true` lists revoked keys too (default `false`: live keys, expired ones included).
    #[param(value_type = Option<bool>)]
    pub include_revoked: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Keys per page, 1 to 1000 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// An API key as listed: never the key itself, only its first characters.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    /// `key_…`
    pub id: String,
    pub name: String,
    /// The one tenant the key may see; `null` for an admin key.
    pub tenant_id: Option<String>,
    pub tenant_name: Option<String>,
    /// The key's first characters (`hlk_` and six more), to tell keys apart.
    pub prefix: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When the key stops working; `null`: never.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
    /// Whether `expires_at` has passed, by the server's clock when it answered.
    pub expired: bool,
}

impl ApiKeyView {
    /// The view of `key` as of `now` (unix ms).
    pub fn new(key: ApiKey, now: Millis) -> ApiKeyView {
        ApiKeyView {
            expired: key.is_expired(now),
            id: key.id,
            name: key.name,
            tenant_id: key.tenant_id,
            tenant_name: key.tenant_name,
            prefix: key.key_prefix,
            created_at: format_rfc3339(key.created_at),
            expires_at: key.expires_at.map(format_rfc3339),
            revoked_at: key.revoked_at.map(format_rfc3339),
        }
    }
}

/// A key just made: the record and, this once, the key.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub record: ApiKeyView,
    /// The key in full (`hlk_…`): in this answer only; hookline keeps just
    /// its hash and cannot show it again.
    pub key: String,
}

/// Create an API key, shown in full this once (admin keys only).
#[utoipa::path(
    post,
    path = "/v1/api-keys",
    operation_id = "create_api_key",
    tag = "api-keys",
    request_body = CreateApiKey,
    responses(
        (status = 201, description = "Created; `key` is the key, shown this once", body = CreatedApiKey),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No usable API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A live key has this name", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not declared as JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An unknown, missing or invalid field (a bad name, an `expires_at` not RFC 3339 or not in the future)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database failed or is unreachable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn create(
    caller: Caller,
    JsonBody(request): JsonBody<CreateApiKey>,
) -> ApiResult<(StatusCode, Json<CreatedApiKey>)> {
    caller.require_admin("creating an API key")?;
    let expires_at = request
        .expires_at
        .as_deref()
        .map(parse_expires_at)
        .transpose()?;
    let (key, secret) = caller
        .ops
        .create_api_key(&request.name, request.tenant.as_deref(), expires_at)
        .await
        .map_err(name_taken)?;
    let created = CreatedApiKey {
        record: ApiKeyView::new(key, now_millis()),
        key: secret,
    };
    Ok((StatusCode::CREATED, Json(created)))
}

/// A name in use is a conflict with the key that has it (409), naming the field.
fn name_taken(err: OpsError) -> Problem {
    match err {
        OpsError::Store(StoreError::Conflict(reason)) => {
            let mut problem = Problem::conflict(reason.clone());
            problem.errors.push(FieldError {
                field: "name".to_string(),
                reason,
            });
            problem
        }
        other => other.into(),
    }
}

/// List API keys, oldest first, a page at a time (admin keys only).
#[utoipa::path(
    get,
    path = "/v1/api-keys",
    operation_id = "list_api_keys",
    tag = "api-keys",
    params(ApiKeyQuery),
    responses(
        (status = 200, description = "A page of keys, never the keys themselves", body = List<ApiKeyView>),
        (status = 400, description = "Invalid query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No usable API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin key", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database failed or is unreachable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    caller: Caller,
    QueryParams(query): QueryParams<ApiKeyQuery>,
) -> ApiResult<Json<List<ApiKeyView>>> {
    caller.require_admin("listing API keys")?;
    let include_revoked = match query.include_revoked.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(Problem::invalid_query(
                "include_revoked",
                format!("must be true or false, got {other:?}"),
            ));
        }
    };
    let page = page_request(query.limit.as_deref(), query.cursor.as_deref())?;
    let keys = caller
        .ops
        .reads()
        .list_api_keys_page(include_revoked, page.after.as_ref(), page.limit)
        .await?;
    let now = now_millis();
    Ok(Json(List::of(keys, |key| ApiKeyView::new(key, now))))
}

/// Revoke an API key: refused from the next request on (admin keys only).
/// A key may revoke itself; the request that does it still completes.
#[utoipa::path(
    delete,
    path = "/v1/api-keys/{id}",
    operation_id = "revoke_api_key",
    tag = "api-keys",
    params(("id" = String, Path, description = "Key id (`key_…`)")),
    responses(
        (status = 200, description = "Revoked; the key as it now is", body = ApiKeyView),
        (status = 401, description = "No usable API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such live key (unknown, or already revoked)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database failed or is unreachable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn delete(caller: Caller, Path(id): Path<String>) -> ApiResult<Json<ApiKeyView>> {
    caller.require_admin("revoking an API key")?;
    let not_found = || Problem::not_found("API key", &id);
    // Only ids: a name could be reused by a later key, an id never is.
    if IdKind::of(&id) != Some(IdKind::ApiKey) {
        return Err(not_found());
    }
    match caller.ops.revoke_api_key(&id).await {
        Ok(key) => Ok(Json(ApiKeyView::new(key, now_millis()))),
        Err(OpsError::Invalid { field: "key", .. }) => Err(not_found()),
        Err(err) => Err(err.into()),
    }
}
