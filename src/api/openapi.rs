//! The OpenAPI 3 document: generated from the handlers' annotations by the
//! same router that serves them, so the document lists exactly the routes
//! the server answers.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::AppState;

/// The document's fixed parts; the paths come from the router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "hookline",
        description = "Webhook delivery: publish events for a tenant, manage its endpoints and \
            subscriptions, and follow every delivery. Authenticate with `Authorization: Bearer <API key>` \
            (`hookline apikey create`). Errors are `application/problem+json` (RFC 9457)."
    ),
    modifiers(&BearerKey),
    tags(
        (name = "events", description = "Publishing"),
        (name = "tenants", description = "The platform's customers"),
        (name = "api-keys", description = "The keys this API accepts"),
        (name = "endpoints", description = "Where a tenant's events are delivered"),
        (name = "subscriptions", description = "Which topics an endpoint receives"),
        (name = "deliveries", description = "Each event at each endpoint, with its attempts"),
        (name = "operations", description = "Health, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// Declares the `api_key` bearer scheme the operations refer to.
struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        // The crate declares no licence; an empty one would be invalid.
        openapi.info.license = None;
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key from `hookline apikey create`"))
                    .build(),
            ),
        );
    }
}

/// This document (no key needed).
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    operation_id = "openapi_document",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3 document", body = Object))
)]
pub async fn document(State(state): State<Arc<AppState>>) -> Response {
    let mut response = state.openapi_json.clone().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
