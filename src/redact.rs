//! Which values are secrets and how they are masked when shown: URL
//! passwords and sensitive header values. One set of rules for every place
//! that shows or keeps them (CLI, API, console, audit log, attempts, logs).

use serde_json::Value;

/// What a masked value reads as.
pub const MASK: &str = "****";

/// Header names whose values are secrets whatever they contain.
const SENSITIVE_NAMES: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// Words that make any header name sensitive when it contains them
/// (`x-api-key`, `x-auth-token`, `x-webhook-secret`…).
const SENSITIVE_WORDS: &[&str] = &["token", "secret", "key", "password", "auth"];

/// Authorization schemes kept in front of a masked value (`Bearer ****`):
/// the scheme tells an operator what kind of credential is set and is no
/// secret itself. Any other first word is masked with the rest.
const AUTH_SCHEMES: &[&str] = &[
    "basic",
    "bearer",
    "digest",
    "token",
    "negotiate",
    "hoba",
    "mutual",
    "apikey",
];

/// Whether a header's value is a secret: `Authorization`,
/// `Proxy-Authorization`, `Cookie`, `Set-Cookie`, and any name containing
/// `token`, `secret`, `key`, `password` or `auth`, in any case.
pub fn is_sensitive_header(name: &str) -> bool {
    let name = name.trim();
    SENSITIVE_NAMES.iter().any(|n| name.eq_ignore_ascii_case(n))
        || SENSITIVE_WORDS
            .iter()
            .any(|word| contains_ignore_case(name, word))
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// A sensitive header's value as shown: `****`, or `Bearer ****` when it
/// starts with a known authorization scheme.
pub fn mask_header_value(value: &str) -> String {
    match value.trim().split_once(' ') {
        Some((scheme, _)) if AUTH_SCHEMES.iter().any(|s| scheme.eq_ignore_ascii_case(s)) => {
            format!("{scheme} {MASK}")
        }
        _ => MASK.to_string(),
    }
}

/// Whether `value` is what [`mask_header_value`] shows, rather than a real
/// value: a masked header sent back in an edit means "keep the current one".
pub fn is_masked_header_value(value: &str) -> bool {
    let value = value.trim();
    value == MASK
        || value.split_once(' ').is_some_and(|(scheme, rest)| {
            rest == MASK && AUTH_SCHEMES.iter().any(|s| scheme.eq_ignore_ascii_case(s))
        })
}

/// One header as shown: its value masked when its name is sensitive.
pub fn mask_header(name: &str, value: &str) -> String {
    if is_sensitive_header(name) {
        mask_header_value(value)
    } else {
        value.to_string()
    }
}

/// Headers as shown: every sensitive value masked, the rest as they are.
pub fn mask_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| (name.clone(), mask_header(name, value)))
        .collect()
}

/// Where a URL's password is: the byte range of `password` in
/// `scheme://user:password@host/…`, or `None` without one. Read from the
/// text itself (no parsing into a normal form), so the rest of the URL is
/// shown exactly as it was given.
pub fn url_password_range(url: &str) -> Option<std::ops::Range<usize>> {
    let start = url.find("://")? + 3;
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    // The last `@` ends the userinfo (a password may hold an encoded `@`,
    // never a raw one, but be generous); the first `:` before it splits it.
    let at = start + url[start..end].rfind('@')?;
    let colon = start + url[start..at].find(':')?;
    Some(colon + 1..at)
}

/// The URL with the password of its userinfo masked:
/// `https://bob:s3cret@host/` becomes `https://bob:****@host/`.
pub fn mask_url_password(url: &str) -> String {
    match url_password_range(url) {
        Some(range) => format!("{}{MASK}{}", &url[..range.start], &url[range.end..]),
        None => url.to_string(),
    }
}

/// The URL's password, if it has one (still percent-encoded).
pub fn url_password(url: &str) -> Option<&str> {
    url_password_range(url).map(|range| &url[range])
}

/// `url` with its password replaced by `password` (which must be a valid
/// userinfo part, e.g. percent-encoded); unchanged without a password.
pub fn replace_url_password(url: &str, password: &str) -> String {
    match url_password_range(url) {
        Some(range) => format!("{}{password}{}", &url[..range.start], &url[range.end..]),
        None => url.to_string(),
    }
}

/// Masks the secrets inside a JSON document in place, wherever they sit:
/// strings that are URLs with a password, and `[name, value]` pairs whose
/// name is a sensitive header (how hookline keeps headers). Returns whether
/// anything changed. For rows written before masking existed (the audit
/// log's details and the attempts' headers).
pub fn scrub_json(value: &mut Value) -> bool {
    match value {
        Value::String(text) => {
            let masked = mask_url_password(text);
            let changed = masked != *text;
            *text = masked;
            changed
        }
        Value::Array(items) => {
            if let [Value::String(name), Value::String(header)] = items.as_mut_slice()
                && is_sensitive_header(name)
            {
                let masked = mask_header_value(header);
                let changed = masked != *header;
                *header = masked;
                return changed;
            }
            let mut changed = false;
            for item in items {
                changed |= scrub_json(item);
            }
            changed
        }
        Value::Object(map) => {
            let mut changed = false;
            for item in map.values_mut() {
                changed |= scrub_json(item);
            }
            changed
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sensitive_names_by_name_and_by_word_in_any_case() {
        for name in [
            "Authorization",
            "proxy-authorization",
            "Cookie",
            "SET-COOKIE",
            "X-Api-Key",
            "x-auth-token",
            "X-Webhook-Secret",
            "db-password",
            "X-AUTH",
            "apikey",
        ] {
            assert!(is_sensitive_header(name), "{name}");
        }
        for name in [
            "x-team",
            "content-type",
            "x-request-id",
            "keep-alive",
            "accept",
        ] {
            assert!(!is_sensitive_header(name), "{name}");
        }
    }

    #[test]
    fn header_values_keep_only_a_known_scheme() {
        assert_eq!(mask_header_value("Bearer abc.def"), "Bearer ****");
        assert_eq!(mask_header_value("basic Ym9iOnB3"), "basic ****");
        assert_eq!(mask_header_value("s3cret"), "****");
        // A first word that is no scheme may be part of the secret.
        assert_eq!(mask_header_value("half secret"), "****");
        assert_eq!(mask_header("x-team", "payments"), "payments");
        assert_eq!(mask_header("X-Api-Key", "k-123"), "****");
        for masked in ["****", "Bearer ****", " basic **** "] {
            assert!(is_masked_header_value(masked), "{masked}");
        }
        for real in ["Bearer abc", "***", "half ****", "k-123"] {
            assert!(!is_masked_header_value(real), "{real}");
        }
    }

    #[test]
    fn url_passwords_are_masked_and_nothing_else_moves() {
        let cases = [
            ("https://bob:s3cret@host/", "https://bob:****@host/"),
            (
                "http://bob:p%40ss@h:8080/a/b?c=d#e",
                "http://bob:****@h:8080/a/b?c=d#e",
            ),
            ("https://bob@host/x", "https://bob@host/x"),
            ("https://host/x?u=a:b@c", "https://host/x?u=a:b@c"),
            ("https://host", "https://host"),
            ("not a url", "not a url"),
            ("https://:pw@host", "https://:****@host"),
        ];
        for (url, want) in cases {
            assert_eq!(mask_url_password(url), want, "{url}");
        }
        assert_eq!(url_password("https://bob:s3cret@host/"), Some("s3cret"));
        assert_eq!(url_password("https://bob@host/"), None);
        assert_eq!(
            replace_url_password("https://bob:****@host/", "s3cret"),
            "https://bob:s3cret@host/"
        );
    }

    #[test]
    fn json_documents_are_scrubbed_wherever_secrets_sit() {
        let mut detail = json!({
            "url": {"from": "https://bob:old@h/", "to": "https://bob:new@h/"},
            "headers": {"from": [["authorization", "Bearer abc"], ["x-team", "pay"]],
                        "to": [["X-Api-Key", "k1"]]},
            "name": "prod",
        });
        assert!(scrub_json(&mut detail));
        assert_eq!(
            detail,
            json!({
                "url": {"from": "https://bob:****@h/", "to": "https://bob:****@h/"},
                "headers": {"from": [["authorization", "Bearer ****"], ["x-team", "pay"]],
                            "to": [["X-Api-Key", "****"]]},
                "name": "prod",
            })
        );
        // Scrubbing again changes nothing, so a second run rewrites no row.
        assert!(!scrub_json(&mut detail));
        let mut clean = json!({"from": "active", "to": "paused"});
        assert!(!scrub_json(&mut clean));
    }
}
