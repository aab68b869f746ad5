//! Request bodies and query strings, parsed into typed requests; anything
//! wrong becomes a problem naming the field (malformed JSON, unknown or
//! missing fields, wrong types, an oversized body).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::problem::Problem;

/// A JSON body; refused with a problem unless it parses into `T` exactly
/// (request types deny unknown fields).
pub struct JsonBody<T>(pub T);

/// A JSON body that may be left out entirely (then `T::default()`).
pub struct OptionalJsonBody<T>(pub T);

/// A query string parsed into `T` (which denies unknown parameters).
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let bytes = read_json_body(req, state).await?;
        Ok(JsonBody(parse_json(&bytes)?))
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        match content_type.as_deref() {
            Some(value) if is_json(value) => Ok(OptionalJsonBody(parse_json(&bytes)?)),
            other => Err(Problem::not_json(other.unwrap_or_default())),
        }
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Problem> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(QueryParams)
            .map_err(|err| {
                let reason = err.to_string();
                let field = backticked(&reason).unwrap_or("query").to_string();
                Problem::invalid_query(field, reason)
            })
    }
}

/// The body bytes of a request that declares a JSON content type.
async fn read_json_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, Problem> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    match content_type.as_deref() {
        Some(value) if is_json(value) => {}
        Some(other) => return Err(Problem::not_json(other)),
        None => return Err(Problem::not_json("")),
    }
    Bytes::from_request(req, state)
        .await
        .map_err(body_rejection)
}

/// `application/json`, with or without parameters, or any `+json` type.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

fn body_rejection(rejection: axum::extract::rejection::BytesRejection) -> Problem {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::too_large("body", "the request body is over the size limit")
    } else {
        Problem::malformed_json(rejection.body_text())
    }
}

/// Parses JSON into `T`, naming the field at fault on failure.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(json_problem)?;
    deserializer
        .end()
        .map_err(|e| Problem::malformed_json(without_position(&e.to_string())))?;
    Ok(value)
}

fn json_problem(err: serde_path_to_error::Error<serde_json::Error>) -> Problem {
    let path = err.path().to_string();
    let inner = err.into_inner();
    let reason = without_position(&inner.to_string());
    match inner.classify() {
        serde_json::error::Category::Data => {
            // The path names the field at fault, an unknown one included;
            // "." is the document itself (a missing field, a wrong shape).
            let field = match (path.as_str(), backticked(&reason)) {
                (".", Some(name)) if reason.starts_with("missing field") => name.to_string(),
                (".", _) => "body".to_string(),
                _ => path,
            };
            Problem::invalid_field(field, reason)
        }
        _ => Problem::malformed_json(reason),
    }
}

/// The first `name` in a serde message such as "unknown field `name`, expected …".
fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

/// serde_json's message without its " at line L column C" suffix.
fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::value::RawValue;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        name: String,
        #[serde(default)]
        count: Option<u32>,
        payload: Box<RawValue>,
    }

    #[test]
    fn raw_payloads_keep_their_bytes() {
        let body = br#"{"name":"a","payload": { "b" :1.0e2, "a":[ ] } }"#;
        let sample: Sample = parse_json(body).unwrap();
        assert_eq!(sample.payload.get(), r#"{ "b" :1.0e2, "a":[ ] }"#);
        assert_eq!(sample.name, "a");
        assert_eq!(sample.count, None);
    }

    #[test]
    fn problems_name_the_field() {
        let problem = parse_json::<Sample>(br#"{"name":"a","payload":1,"colour":2}"#).unwrap_err();
        assert_eq!(problem.status, 422);
        assert_eq!(problem.errors[0].field, "colour", "{problem:?}");

        let problem = parse_json::<Sample>(br#"{"name":5,"payload":1}"#).unwrap_err();
        assert_eq!(problem.status, 422);
        assert_eq!(problem.errors[0].field, "name", "{problem:?}");

        let problem = parse_json::<Sample>(br#"{"payload":1}"#).unwrap_err();
        assert_eq!(problem.status, 422);
        assert_eq!(problem.errors[0].field, "name", "{problem:?}");

        let problem = parse_json::<Sample>(br#"{"name": "a", "payload": {"#).unwrap_err();
        assert_eq!(problem.status, 400);
        let problem = parse_json::<Sample>(br#"{"name":"a","payload":1} trailing"#).unwrap_err();
        assert_eq!(problem.status, 400);
    }
}
