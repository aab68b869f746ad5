//! Checks on raw input from operators and producers: each names the field
//! at fault and says what is wrong, so every interface reports bad input
//! the same way.

use std::time::Duration;

use serde_json::value::RawValue;

use super::{OpsError, Payload, Result};
use crate::config::{ByteSize, format_size};
use crate::model::{IdKind, RateLimit, now_millis};
use crate::topic::TopicPattern;

/// Longest name of a tenant or endpoint.
pub const MAX_NAME: usize = 64;
/// Longest free-text description.
pub const MAX_DESCRIPTION: usize = 500;
/// Longest endpoint URL.
pub const MAX_URL: usize = 2048;
/// Longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Range of per-endpoint timeouts.
pub const TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(300));
/// Range of per-endpoint in-flight caps.
pub const MAX_IN_FLIGHT_RANGE: (u32, u32) = (1, 1000);
/// Headers hookline sets itself; an endpoint may not override them.
pub const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "transfer-encoding",
    "connection",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// Names of tenants and endpoints: short, no spaces or slashes (`tenant/name`
/// addresses an endpoint), and never shaped like an id.
pub fn validate_name(field: &'static str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(OpsError::invalid(field, "must not be empty"));
    }
    if name.len() > MAX_NAME {
        return Err(OpsError::invalid(
            field,
            format!("longer than {MAX_NAME} characters"),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(OpsError::invalid(
            field,
            format!("{name:?} contains {bad:?}; use letters, digits, '-', '_' and '.'"),
        ));
    }
    if IdKind::of(name).is_some() {
        return Err(OpsError::invalid(
            field,
            format!("{name:?} looks like an id; pick a name"),
        ));
    }
    Ok(())
}

/// An absolute http(s) URL with a host.
pub fn validate_url(url: &str) -> Result<String> {
    if url.len() > MAX_URL {
        return Err(OpsError::invalid(
            "url",
            format!("longer than {MAX_URL} characters"),
        ));
    }
    // Refusals echo the URL, and errors end up on screens and in logs: never
    // with its password.
    let shown = crate::redact::mask_url_password(url);
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| OpsError::invalid("url", format!("{shown:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(OpsError::invalid(
            "url",
            format!(
                "{shown:?} is not an HTTP(S) URL (scheme {:?})",
                parsed.scheme()
            ),
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(OpsError::invalid("url", format!("{shown:?} has no host")));
    }
    if crate::redact::url_password(url).is_some_and(crate::seal::is_sealed) {
        return Err(OpsError::invalid(
            "url",
            format!(
                "the password starts with {}, which marks values hookline encrypted; give the real password",
                crate::seal::PREFIX
            ),
        ));
    }
    Ok(url.to_string())
}

pub fn validate_timeout(timeout: Duration) -> Result<i64> {
    let (low, high) = TIMEOUT_RANGE;
    if timeout < low || timeout > high {
        return Err(OpsError::invalid(
            "timeout",
            format!("must be between {low:?} and {high:?}, got {timeout:?}"),
        ));
    }
    Ok(i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX))
}

pub fn validate_max_in_flight(max: u32) -> Result<i64> {
    let (low, high) = MAX_IN_FLIGHT_RANGE;
    if max < low || max > high {
        return Err(OpsError::invalid(
            "max_in_flight",
            format!("must be between {low} and {high}, got {max}"),
        ));
    }
    Ok(i64::from(max))
}

/// Requests a second an endpoint's rate limit may allow, and its burst.
pub const RATE_LIMIT_RANGE: (u32, u32) = (1, 100_000);

/// A rate limit as people write it: `50`, `50/s`, `50/s burst 5` (as
/// [`RateLimit`] displays it); empty: none. Returns the rate and burst,
/// still to be validated.
pub fn parse_rate_limit(text: &str) -> Result<Option<(u32, Option<u32>)>> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let number = |field: &'static str, word: &str| {
        word.parse::<u32>().map_err(|_| {
            OpsError::invalid(
                field,
                format!("{word:?} is not a whole number (write 50/s or 50/s burst 5)"),
            )
        })
    };
    let mut words = text.split_whitespace();
    let rate = words.next().unwrap_or_default();
    let rate = number("rate_limit", rate.strip_suffix("/s").unwrap_or(rate))?;
    let burst = match (words.next(), words.next(), words.next()) {
        (None, _, _) => None,
        (Some("burst"), Some(burst), None) => Some(number("rate_limit_burst", burst)?),
        _ => {
            return Err(OpsError::invalid(
                "rate_limit",
                format!("{text:?}: write 50/s, or 50/s burst 5"),
            ));
        }
    };
    Ok(Some((rate, burst)))
}

/// A rate limit of `per_second` with `burst` (or the default burst).
pub fn validate_rate_limit(per_second: u32, burst: Option<u32>) -> Result<RateLimit> {
    let (low, high) = RATE_LIMIT_RANGE;
    if per_second < low || per_second > high {
        return Err(OpsError::invalid(
            "rate_limit",
            format!("must be between {low} and {high} requests a second, got {per_second}"),
        ));
    }
    if let Some(burst) = burst
        && (burst < low || burst > high)
    {
        return Err(OpsError::invalid(
            "rate_limit_burst",
            format!("must be between {low} and {high} requests, got {burst}"),
        ));
    }
    Ok(RateLimit::new(i64::from(per_second), burst.map(i64::from)))
}

pub fn validate_description(text: &str) -> Result<String> {
    if text.chars().count() > MAX_DESCRIPTION {
        return Err(OpsError::invalid(
            "description",
            format!("longer than {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(text.to_string())
}

/// Why an endpoint is paused: free text, kept, shown and audited.
pub fn validate_reason(text: &str) -> Result<String> {
    if text.chars().count() > MAX_DESCRIPTION {
        return Err(OpsError::invalid(
            "reason",
            format!("longer than {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(text.to_string())
}

pub fn validate_pattern(pattern: &str) -> Result<String> {
    TopicPattern::parse(pattern)
        .map(|p| p.as_str().to_string())
        .map_err(|e| OpsError::invalid("topic", e.to_string()))
}

/// Parses `Name: value` headers, refusing ones hookline sets itself.
pub fn parse_headers(headers: &[String]) -> Result<Vec<(String, String)>> {
    headers
        .iter()
        .map(|header| {
            let (name, value) = header.split_once(':').ok_or_else(|| {
                OpsError::invalid("header", format!("{header:?} is not NAME:VALUE"))
            })?;
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim().to_string();
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(OpsError::invalid(
                    "header",
                    format!("{name:?} is not a valid header name"),
                ));
            }
            if reqwest::header::HeaderValue::from_str(&value).is_err() {
                return Err(OpsError::invalid(
                    "header",
                    format!("the value of {name:?} has characters a header cannot carry"),
                ));
            }
            if crate::redact::is_sensitive_header(&name) && crate::seal::is_sealed(&value) {
                return Err(OpsError::invalid(
                    "header",
                    format!(
                        "the value of {name:?} starts with {}, which marks values hookline encrypted; give the real value",
                        crate::seal::PREFIX
                    ),
                ));
            }
            if RESERVED_HEADERS.contains(&name.as_str()) {
                return Err(OpsError::invalid(
                    "header",
                    format!("{name:?} is set by hookline and cannot be overridden"),
                ));
            }
            Ok((name, value))
        })
        .collect()
}

/// A payload must be one JSON value within the size limit. It is checked,
/// never re-serialised: the receiver gets exactly these bytes. JSON that its
/// reader already parsed is not parsed again.
pub fn validate_payload(payload: &Payload, max_payload: u64) -> Result<()> {
    let text = payload.as_str();
    if text.len() as u64 > max_payload {
        return Err(OpsError::TooLarge {
            field: "payload",
            reason: format!(
                "{} bytes is over the limit of {} (limits.max_payload)",
                text.len(),
                format_size(ByteSize(max_payload))
            ),
        });
    }
    if let Payload::Text(text) = payload {
        serde_json::from_str::<&RawValue>(text)
            .map_err(|e| OpsError::invalid("payload", format!("not valid JSON: {e}")))?;
    }
    Ok(())
}

pub fn validate_idempotency_key(key: &str) -> Result<()> {
    // Characters, not bytes, as the message says (and as a JSON Schema
    // `maxLength` counts them).
    if key.is_empty() || key.chars().count() > MAX_IDEMPOTENCY_KEY {
        return Err(OpsError::invalid(
            "idempotency_key",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY} characters"),
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(OpsError::invalid(
            "idempotency_key",
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// "2h" ago as unix ms, for `--since 2h`; an RFC 3339 time is taken as is.
pub fn parse_since(field: &'static str, text: &str) -> Result<i64> {
    if let Some(at) = crate::model::parse_rfc3339(text) {
        return Ok(at);
    }
    let ago = crate::config::parse_duration(text).map_err(|e| {
        OpsError::invalid(
            field,
            format!("{e}; or give an RFC 3339 time like 2026-11-23T08:00:00Z"),
        )
    })?;
    Ok(now_millis() - i64::try_from(ago.as_millis()).unwrap_or(i64::MAX / 2))
}

/// `--before` / `before`: an RFC 3339 time, a date (`2026-01-31`, the
/// start of that day in UTC), or an age (`30d`: that long ago).
pub fn parse_before(text: &str) -> Result<i64> {
    let is_date = text.len() == 10 && text.as_bytes().get(4) == Some(&b'-');
    if is_date && let Some(at) = crate::model::parse_rfc3339(&format!("{text}T00:00:00Z")) {
        return Ok(at);
    }
    parse_since("before", text).map_err(|_| {
        OpsError::invalid(
            "before",
            format!(
                "expected an RFC 3339 time like 2026-11-23T08:00:00Z, a date like 2026-11-23, \
                 or an age like 30d; got {text:?}"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_read_as_they_are_shown() {
        assert_eq!(parse_rate_limit("").ok(), Some(None));
        assert_eq!(parse_rate_limit("50").ok(), Some(Some((50, None))));
        assert_eq!(parse_rate_limit(" 50/s ").ok(), Some(Some((50, None))));
        assert_eq!(
            parse_rate_limit("50/s burst 5").ok(),
            Some(Some((50, Some(5))))
        );
        let shown = RateLimit::new(50, Some(7)).to_string();
        assert_eq!(shown, "50/s burst 7");
        assert_eq!(parse_rate_limit(&shown).ok(), Some(Some((50, Some(7)))));
        assert_eq!(
            RateLimit::new(50, None).to_string(),
            "50/s",
            "the default unsaid"
        );
        assert!(matches!(
            parse_rate_limit("fast"),
            Err(OpsError::Invalid {
                field: "rate_limit",
                ..
            })
        ));
        assert!(matches!(
            parse_rate_limit("50/s burst many"),
            Err(OpsError::Invalid {
                field: "rate_limit_burst",
                ..
            })
        ));
        assert!(matches!(
            validate_rate_limit(0, None),
            Err(OpsError::Invalid {
                field: "rate_limit",
                ..
            })
        ));
    }

    #[test]
    fn urls_must_be_http() {
        assert!(validate_url("https://example.com/hook").is_ok());
        let err = validate_url("ftp://example.com/").unwrap_err().to_string();
        assert!(err.starts_with("url: ") && err.contains("HTTP(S)"), "{err}");
        assert!(validate_url("not a url").is_err());
    }

    #[test]
    fn payloads_are_checked_not_rewritten() {
        assert!(validate_payload(&r#"{"b":1, "a":1.0e2}"#.into(), 1024).is_ok());
        let err = validate_payload(&"{nope".into(), 1024)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("payload: not valid JSON"), "{err}");
        let err = validate_payload(&"[1,2,3]".into(), 3).unwrap_err();
        assert!(matches!(err, OpsError::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains("over the limit"), "{err}");
        assert!(validate_payload(&"{} trailing".into(), 1024).is_err());
    }

    #[test]
    fn headers_parse_and_reserved_ones_are_refused() {
        let parsed = parse_headers(&["X-Team: payments".to_string()]).unwrap();
        assert_eq!(parsed, [("x-team".to_string(), "payments".to_string())]);
        assert!(parse_headers(&["webhook-id: x".to_string()]).is_err());
        assert!(parse_headers(&["no-colon".to_string()]).is_err());
    }

    #[test]
    fn names_are_plain_and_never_ids() {
        assert!(validate_name("name", "acme-prod").is_ok());
        assert!(validate_name("name", "acme/prod").is_err());
        assert!(validate_name("name", "").is_err());
        let id = crate::model::new_id(IdKind::Endpoint);
        assert!(validate_name("name", &id).is_err());
    }
}
