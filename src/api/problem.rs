//! Errors as `application/problem+json` (RFC 9457): a status, a stable
//! `type`, a sentence for people and, for bad input, the fields at fault.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::ops::OpsError;
use crate::store::StoreError;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The JSON field or query parameter, e.g. `url` or `headers.x-team`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// Identifies the kind of problem, e.g. `urn:hookline:problem:invalid-field`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// The fields at fault (bad input only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("urn:hookline:problem:{slug}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// The same problem with its fields named as the client sent them:
    /// `ops` names some by its own words (`timeout` for `timeout_ms`).
    pub fn named_as_sent(mut self, names: &[(&str, &str)]) -> Problem {
        for error in &mut self.errors {
            if let Some((ops, sent)) = names.iter().find(|(ops, _)| *ops == error.field) {
                if let Some(rest) = self.detail.strip_prefix(&format!("{ops}: ")) {
                    self.detail = format!("{sent}: {rest}");
                }
                error.field = (*sent).to_string();
            }
        }
        self
    }

    /// The status as a [`StatusCode`].
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn with_field(mut self, field: impl Into<String>, reason: impl Into<String>) -> Problem {
        self.errors.push(FieldError {
            field: field.into(),
            reason: reason.into(),
        });
        self
    }

    /// The body is not JSON at all (400).
    pub fn malformed_json(reason: impl Into<String>) -> Problem {
        let reason = reason.into();
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "Malformed JSON",
            format!("the request body is not valid JSON: {reason}"),
        )
        .with_field("body", reason)
    }

    /// A field is unknown, missing or of the wrong type, or fails validation (422).
    pub fn invalid_field(field: impl Into<String>, reason: impl Into<String>) -> Problem {
        let (field, reason) = (field.into(), reason.into());
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
            "Invalid field",
            format!("{field}: {reason}"),
        )
        .with_field(field, reason)
    }

    /// Every field at fault at once (422): unknown, missing or of the wrong
    /// type, or failing validation. `errors` must not be empty.
    pub fn invalid_fields(errors: Vec<FieldError>) -> Problem {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.reason))
            .collect::<Vec<_>>()
            .join("; ");
        Problem {
            errors,
            ..Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                "Invalid field",
                detail,
            )
        }
    }

    /// A query parameter is unknown or malformed (400).
    pub fn invalid_query(field: impl Into<String>, reason: impl Into<String>) -> Problem {
        let (field, reason) = (field.into(), reason.into());
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            "Invalid query parameter",
            format!("{field}: {reason}"),
        )
        .with_field(field, reason)
    }

    /// The payload (or the whole body) is over the size limit (413).
    pub fn too_large(field: impl Into<String>, reason: impl Into<String>) -> Problem {
        let (field, reason) = (field.into(), reason.into());
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "Too large",
            format!("{field}: {reason}"),
        )
        .with_field(field, reason)
    }

    /// The body is not declared as JSON (415).
    pub fn not_json(found: &str) -> Problem {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            format!("send the body as Content-Type: application/json (got {found:?})"),
        )
    }

    /// Nothing of this kind with this id is visible to the caller (404).
    /// Another tenant's ids get exactly this answer too.
    pub fn not_found(kind: &str, id: &str) -> Problem {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("no {kind} {id:?}"),
        )
    }

    /// An event or delivery retention removed (410).
    pub fn gone(kind: &str, id: &str, horizon: &str) -> Problem {
        Problem::new(
            StatusCode::GONE,
            "gone",
            "Removed by retention",
            format!("{kind} {id:?} was removed by retention (older than {horizon})"),
        )
    }

    /// Like [`Problem::not_found`], for an id given in a body field or query parameter.
    pub fn unknown_reference(field: &str, kind: &str, id: &str) -> Problem {
        Problem::not_found(kind, id).with_field(field, format!("no {kind} {id:?}"))
    }

    /// No route here (404).
    pub fn no_route(path: &str) -> Problem {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("no route {path:?} (see /v1/openapi.json)"),
        )
    }

    /// The route exists but not with this method (405).
    pub fn method_not_allowed() -> Problem {
        Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            "this route does not take that method (see /v1/openapi.json)",
        )
    }

    /// No usable API key (401).
    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        )
    }

    /// The key is valid but may not do this (403).
    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    /// The request conflicts with the current state (409).
    pub fn conflict(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
    }

    /// A well-formed field that conflicts with the current state (409): a
    /// name taken, a time that has passed.
    pub fn conflict_in(field: impl Into<String>, reason: impl Into<String>) -> Problem {
        let (field, reason) = (field.into(), reason.into());
        Problem::conflict(format!("{field}: {reason}")).with_field(field, reason)
    }

    /// A well-formed field that this caller or this installation's policy
    /// does not allow (403).
    pub fn forbidden_field(field: impl Into<String>, reason: impl Into<String>) -> Problem {
        let (field, reason) = (field.into(), reason.into());
        Problem::forbidden(format!("{field}: {reason}")).with_field(field, reason)
    }

    /// The database could not be reached or failed (503): worth retrying.
    pub fn unavailable(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            detail,
        )
    }

    /// Something hookline did not expect (500); the details go to the log.
    pub fn internal() -> Problem {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "hookline failed to handle the request; the server log has the details",
        )
    }
}

impl From<StoreError> for Problem {
    fn from(err: StoreError) -> Problem {
        match err {
            StoreError::NotFound { kind, key } => Problem::not_found(kind, &key),
            StoreError::Gone { kind, key, horizon } => Problem::gone(kind, &key, &horizon),
            StoreError::Conflict(reason) => Problem::conflict(reason),
            StoreError::Database(err) => {
                tracing::error!(error = %err, "database error in the API");
                Problem::unavailable("the database failed or could not be reached; retry later")
            }
            other => {
                tracing::error!(error = %other, "store error in the API");
                Problem::internal()
            }
        }
    }
}

impl From<OpsError> for Problem {
    fn from(err: OpsError) -> Problem {
        match err {
            OpsError::Invalid { field, reason } => Problem::invalid_field(field, reason),
            OpsError::TooLarge { field, reason } => Problem::too_large(field, reason),
            OpsError::Conflict { field, reason } => Problem::conflict_in(field, reason),
            OpsError::Blocked { field, reason } => Problem::forbidden_field(field, reason),
            OpsError::NotFound { field, kind, key } => {
                Problem::unknown_reference(field, kind, &key)
            }
            OpsError::Forbidden(reason) => Problem::forbidden(reason),
            OpsError::Unavailable(reason) => Problem::unavailable(reason),
            OpsError::Store(err) => err.into(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_default(); // ok: plain strings always serialise
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"hookline\""),
            );
        }
        response
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, Problem>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_errors_name_the_field() {
        let problem = Problem::invalid_field("url", "not an HTTP(S) URL");
        assert_eq!(problem.status, 422);
        assert_eq!(problem.errors[0].field, "url");
        let json = serde_json::to_value(&problem).unwrap();
        assert_eq!(json["type"], "urn:hookline:problem:invalid-field");
    }

    #[test]
    fn unknown_ids_are_404_and_database_failures_503() {
        let problem: Problem = StoreError::not_found("endpoint", "ep_x").into();
        assert_eq!(problem.status, 404);
        let problem: Problem = StoreError::Database(sqlx::Error::PoolTimedOut).into();
        assert_eq!(problem.status, 503);
    }
}
