//! The OpenAPI 3 document: generated from the handlers' annotations by the
//! same router that serves them, so the document lists exactly the routes
//! the server answers, then completed here with what every operation can
//! answer and the rules no annotation states, so it is exact.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{Operation, Parameter, ParameterIn, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{AnyOfBuilder, Object, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{Modify, OpenApi};

use super::problem::PROBLEM_JSON;
use super::{AppState, contract, endpoints, events, paging, subscriptions};

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

/// Completes the document the routes make: the rules across request
/// fields, the rules of query and header parameters, and every status each
/// operation can answer.
pub fn complete(document: &mut utoipa::openapi::OpenApi) {
    refine_request_schemas(document);
    for item in document.paths.paths.values_mut() {
        for operation in operations(item) {
            constrain_parameters(operation);
            list_every_status(operation);
        }
    }
}

/// The operations of one path.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Adds to a request schema what its derive cannot say.
type Refine = fn(&mut Object);

/// Adds to each request schema what a derive cannot say: rules across its
/// fields (see each `refine_schema`).
fn refine_request_schemas(document: &mut utoipa::openapi::OpenApi) {
    let Some(components) = document.components.as_mut() else {
        return;
    };
    let refinements: [(&str, Refine); 4] = [
        ("CreateEndpoint", endpoints::CreateEndpoint::refine_schema),
        ("UpdateEndpoint", endpoints::UpdateEndpoint::refine_schema),
        (
            "UpdateSubscription",
            subscriptions::UpdateSubscription::refine_schema,
        ),
        ("PublishRequest", events::PublishRequest::refine_schema),
    ];
    for (name, refine) in refinements {
        if let Some(RefOr::T(Schema::Object(schema))) = components.schemas.get_mut(name) {
            refine(schema);
        }
    }
}

/// The schema of a query or header parameter, by name. These parameters
/// mean the same wherever they appear (a list's `limit` and `cursor` are
/// its paging, docs/api.md#paging), so their rules are stated once here,
/// where they also reach lists added later. A query parameter may also be
/// empty (`?limit=`), which counts as left out.
fn parameter_schema(location: &ParameterIn, name: &str) -> Option<RefOr<Schema>> {
    let rule: Schema = match (location, name) {
        (ParameterIn::Query, "limit") => ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(paging::MAX_LIMIT as f64))
            .into(),
        (ParameterIn::Query, "cursor") => pattern(&contract::CURSOR),
        (ParameterIn::Query, "state") => pattern(&contract::DELIVERY_STATES),
        (ParameterIn::Query, "event") => pattern(&contract::EVENT_ID),
        (ParameterIn::Query, "since" | "until") => {
            contract::time_or_ago("An RFC 3339 time, or a duration ago (`2h`)", false)
        }
        (ParameterIn::Header, "Idempotency-Key") => {
            return Some(RefOr::T(contract::idempotency_header().into()));
        }
        _ => return None,
    };
    let empty = ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(0))
        .description(Some("Empty: as if left out"));
    Some(RefOr::T(
        AnyOfBuilder::new().item(rule).item(empty.build()).into(),
    ))
}

fn pattern(pattern: &contract::Pattern) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern.as_str()))
        .into()
}

/// Gives each query and header parameter the schema its rules make.
fn constrain_parameters(operation: &mut Operation) {
    for parameter in operation.parameters.iter_mut().flatten() {
        if let RefOr::T(Parameter {
            name,
            parameter_in,
            schema,
            ..
        }) = parameter
            && let Some(constrained) = parameter_schema(parameter_in, name)
        {
            *schema = Some(constrained);
        }
    }
}

/// Lists the statuses an operation can answer whatever it does: 401 when
/// it takes a key, 500 and 503 when it reads the database, 400 for a bad
/// query string or body, 413, 415 and 422 for a body; each a problem.
fn list_every_status(operation: &mut Operation) {
    let secured = operation.security.iter().flatten().any(|requirement| {
        serde_json::to_value(requirement)
            .is_ok_and(|v| v.as_object().is_some_and(|m| !m.is_empty()))
    });
    let has_query = operation.parameters.iter().flatten().any(|p| {
        matches!(
            p,
            RefOr::T(Parameter {
                parameter_in: ParameterIn::Query,
                ..
            })
        )
    });
    let has_body = operation.request_body.is_some();
    let mut statuses: Vec<(&str, String)> = Vec::new();
    let bad_request = match (has_query, has_body) {
        (true, true) => Some(
            "An unknown, repeated or malformed query parameter (`invalid-query`), or a body that is not JSON (`malformed-json`)",
        ),
        (true, false) => Some(
            "An unknown, repeated or malformed query parameter, named in `errors` (`invalid-query`)",
        ),
        (false, true) => Some("The body is not JSON (`malformed-json`)"),
        (false, false) => None,
    };
    if let Some(description) = bad_request {
        statuses.push(("400", description.to_string()));
    }
    if secured {
        statuses.push((
            "401",
            "No API key, or an unknown or revoked one (`unauthorized`)".to_string(),
        ));
    }
    if has_body {
        statuses.push((
            "413",
            "The body is over the size limit (`too-large`)".to_string(),
        ));
        statuses.push((
            "415",
            "The body is not sent as `application/json` (`unsupported-media-type`)".to_string(),
        ));
        statuses.push(("422", "Fields that break the rules this document states, each named in `errors` as sent (`invalid-field`)".to_string()));
    }
    if secured {
        statuses.push((
            "500",
            "hookline failed unexpectedly; the server log has the details (`internal`)".to_string(),
        ));
        statuses.push((
            "503",
            "The database failed or is unreachable: retry later (`unavailable`)".to_string(),
        ));
    }
    for (status, description) in statuses {
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| problem_response(&description));
    }
}

/// A response whose body is a problem.
fn problem_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .build();
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(PROBLEM_JSON, content)
            .build(),
    )
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
