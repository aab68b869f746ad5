//! Request bodies and query strings, parsed into typed requests; anything
//! wrong becomes a problem naming every field at fault (malformed JSON,
//! unknown or missing fields, wrong types, values that break the rules the
//! OpenAPI document states, an oversized body).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, Unexpected, Visitor};
use serde_json::{Map, Value};

use super::fields::{Check, FieldErrors};
use super::problem::Problem;

/// A JSON body; refused with a problem unless it parses into `T` exactly
/// (request types deny unknown fields) and its fields pass `T`'s checks.
pub struct JsonBody<T>(pub T);

/// A JSON body that may be left out entirely, or be `null` (then
/// `T::default()`).
pub struct OptionalJsonBody<T>(pub T);

/// A query string parsed into `T` (which denies unknown parameters). A
/// parameter given with an empty value (`?tenant=`) counts as left out.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Check> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let bytes = read_json_body(req, state).await?;
        Ok(JsonBody(parse_checked(&bytes)?))
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Check + Default> FromRequest<S> for OptionalJsonBody<T> {
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
            Some(value) if is_json(value) => {
                // The document allows `null` for a body that may be left out.
                let request: Option<T> = parse_checked_or_null(&bytes)?;
                Ok(OptionalJsonBody(request.unwrap_or_default()))
            }
            other => Err(Problem::not_json(other.unwrap_or_default())),
        }
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Problem> {
        let query = without_empty_values(parts.uri.query().unwrap_or_default());
        serde_urlencoded::from_str(&query)
            .map(QueryParams)
            .map_err(|err| {
                let reason = err.to_string();
                let field = backticked(&reason).unwrap_or("query").to_string();
                Problem::invalid_query(field, reason)
            })
    }
}

/// `query` without the parameters whose value is empty (`tenant=` or a
/// bare `tenant`): a form that sends every field, filled or not, means the
/// empty ones as not given.
fn without_empty_values(query: &str) -> Cow<'_, str> {
    let is_empty =
        |pair: &&str| pair.is_empty() || pair.split_once('=').is_none_or(|(_, v)| v.is_empty());
    if !query.split('&').any(|pair| is_empty(&pair)) {
        return Cow::Borrowed(query);
    }
    Cow::Owned(
        query
            .split('&')
            .filter(|pair| !is_empty(pair))
            .collect::<Vec<_>>()
            .join("&"),
    )
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

/// Parses JSON into `T` and checks its fields; on failure the problem
/// names every field at fault, not only the first.
pub fn parse_checked<T: DeserializeOwned + Check>(bytes: &[u8]) -> Result<T, Problem> {
    let request = parse_json::<T>(bytes).map_err(|first| every_bad_field::<T>(bytes, first))?;
    // serde also reads a struct from an array of its fields in order; the
    // document says object, so nothing else is taken.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Problem::invalid_field("body", "expected a JSON object"));
    }
    let mut errors = FieldErrors::default();
    request.check(&mut errors);
    errors.into_result().map(|()| request)
}

/// [`parse_checked`] for a body that may be `null` (`None`).
fn parse_checked_or_null<T: DeserializeOwned + Check>(bytes: &[u8]) -> Result<Option<T>, Problem> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Null) => Ok(None),
        _ => parse_checked(bytes).map(Some),
    }
}

/// The most fields a body is taken apart for: more than any request has.
const MAX_FIELDS: usize = 64;

/// Every field at fault in a body that did not parse into `T` (whose first
/// fault is `first`): its fields are tried again one fault at a time, a
/// field of the wrong type or unknown set aside and a missing one stood in
/// for, then the rest is checked. `first` when the body is no JSON object
/// or nothing more is found.
fn every_bad_field<T: DeserializeOwned + Check>(bytes: &[u8], first: Problem) -> Problem {
    if first.status_code() != StatusCode::UNPROCESSABLE_ENTITY {
        return first;
    }
    let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(bytes) else {
        return first;
    };
    let mut errors = FieldErrors::default();
    for _ in 0..MAX_FIELDS {
        let err = match serde_path_to_error::deserialize::<_, T>(Value::Object(body.clone())) {
            Ok(request) => {
                // Stand-ins break rules too: their fields are already named.
                request.check(&mut errors);
                break;
            }
            Err(err) => Fault::of(err),
        };
        errors.add(err.field.clone(), err.reason);
        let set_aside = match err.missing {
            // Removed in place: the fields keep the order the client sent.
            false => body.shift_remove(&err.top).is_some(),
            true => stand_in::<T>(&mut body, &err.top),
        };
        if !set_aside {
            break;
        }
    }
    match errors.is_empty() {
        true => first,
        false => Problem::invalid_fields(errors.into_inner()),
    }
}

/// One fault serde found: the field as the client wrote it, the body's
/// field it is in, and whether it was missing.
struct Fault {
    field: String,
    top: String,
    reason: String,
    missing: bool,
}

impl Fault {
    fn of(err: serde_path_to_error::Error<serde_json::Error>) -> Fault {
        let top = err.path().iter().next().and_then(|segment| match segment {
            serde_path_to_error::Segment::Map { key } => Some(key.clone()),
            _ => None,
        });
        let field = err.path().to_string();
        let reason = without_position(&err.into_inner().to_string());
        match (top, backticked(&reason).map(str::to_string)) {
            (Some(top), _) => Fault {
                field,
                top,
                reason,
                missing: false,
            },
            (None, Some(name)) if reason.starts_with("missing field") => Fault {
                field: name.clone(),
                top: name,
                reason,
                missing: true,
            },
            (None, _) => Fault {
                field: "body".to_string(),
                top: String::new(),
                reason,
                missing: false,
            },
        }
    }
}

/// Puts a value of some type in the missing `field` so that parsing can go
/// on to the next fault; false when no stand-in fits.
fn stand_in<T: DeserializeOwned>(body: &mut Map<String, Value>, field: &str) -> bool {
    let candidates = [
        Value::String(String::new()),
        Value::Null,
        Value::Bool(false),
        Value::from(0),
        Value::Object(Map::new()),
        Value::Array(Vec::new()),
    ];
    for candidate in candidates {
        body.insert(field.to_string(), candidate);
        let fits = match serde_path_to_error::deserialize::<_, T>(Value::Object(body.clone())) {
            Ok(_) => true,
            Err(err) => Fault::of(err).top != field,
        };
        if fits {
            return true;
        }
    }
    body.shift_remove(field);
    false
}

/// A whole number however JSON writes it: JSON Schema's `integer` takes
/// `5.0` as it takes `5`, so the server does too.
struct Whole<T>(T);

impl<'de, T: TryFrom<u64>> Deserialize<'de> for Whole<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(WholeVisitor(PhantomData))
    }
}

struct WholeVisitor<T>(PhantomData<T>);

impl<T: TryFrom<u64>> Visitor<'_> for WholeVisitor<T> {
    type Value = Whole<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a whole number in range")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Whole<T>, E> {
        T::try_from(v)
            .map(Whole)
            .map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Whole<T>, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::invalid_value(Unexpected::Signed(v), &self)),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Whole<T>, E> {
        // Below 2^64 every float that is whole converts exactly.
        if v.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&v) {
            self.visit_u64(v as u64)
        } else {
            Err(E::invalid_value(Unexpected::Float(v), &self))
        }
    }
}

/// An optional whole number (`null`: left out).
pub fn whole<'de, T: TryFrom<u64>, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    Option::<Whole<T>>::deserialize(deserializer).map(|n| n.map(|Whole(n)| n))
}

/// A whole number that may be left out, but not be `null`.
pub fn whole_present<'de, T: TryFrom<u64>, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    Whole::<T>::deserialize(deserializer).map(|Whole(n)| Some(n))
}

/// A whole number that may be left out (`None`), `null` (`Some(None)`) or given.
pub fn whole_or_null<'de, T: TryFrom<u64>, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    whole(deserializer).map(Some)
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

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Checked {
        name: String,
        #[serde(default, deserialize_with = "whole")]
        count: Option<u32>,
    }

    impl Check for Checked {
        fn check(&self, errors: &mut FieldErrors) {
            if self.name.is_empty() {
                errors.add("name", "empty");
            }
            if self.count == Some(0) {
                errors.add("count", "zero");
            }
        }
    }

    fn fields(problem: &Problem) -> Vec<&str> {
        problem.errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let problem =
            parse_checked::<Checked>(br#"{"name": 5, "count": "x", "colour": 1}"#).unwrap_err();
        assert_eq!(problem.status, 422);
        assert_eq!(fields(&problem), ["name", "count", "colour"], "{problem:?}");

        let problem = parse_checked::<Checked>(br#"{"count": 0, "colour": 1}"#).unwrap_err();
        assert_eq!(fields(&problem), ["colour", "name", "count"], "{problem:?}");

        let problem = parse_checked::<Checked>(br#"{"name": "", "count": 0}"#).unwrap_err();
        assert_eq!(fields(&problem), ["name", "count"], "{problem:?}");
        assert_eq!(problem.detail, "name: empty; count: zero");

        let problem = parse_checked::<Checked>(br#"["a", 1]"#).unwrap_err();
        assert_eq!(fields(&problem), ["body"], "{problem:?}");
        let problem = parse_checked::<Checked>(br#"{"name": "#).unwrap_err();
        assert_eq!(problem.status, 400);
    }

    #[test]
    fn whole_numbers_may_be_written_with_a_fraction() {
        let read = |body: &str| parse_checked::<Checked>(body.as_bytes()).map(|c| c.count);
        assert_eq!(read(r#"{"name": "a", "count": 7.0}"#).ok(), Some(Some(7)));
        assert_eq!(read(r#"{"name": "a", "count": null}"#).ok(), Some(None));
        for bad in ["7.5", "-1", "1e10", "\"7\""] {
            let body = format!(r#"{{"name": "a", "count": {bad}}}"#);
            assert!(read(&body).is_err(), "{body}");
        }
    }

    #[test]
    fn empty_query_values_count_as_left_out() {
        assert_eq!(without_empty_values("a=1&b=&c&d=2"), "a=1&d=2");
        assert!(matches!(without_empty_values("a=1"), Cow::Borrowed("a=1")));
        assert_eq!(without_empty_values(""), "");
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
