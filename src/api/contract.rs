//! The rules the OpenAPI document states for request fields and query
//! parameters, each written once: as the schema the document shows and as
//! the check the server runs, so the two cannot say different things.
//!
//! A pattern here is both the document's `pattern` and the server's first
//! test of a value, in the regular-expression dialect that JSON Schema,
//! Rust's `regex` and Python's `re` share (no look-around, no `\d` or `\s`,
//! whose meaning differs between them). The validators of [`crate::ops`]
//! then accept every value a pattern matches: the tests below prove it.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Value, json};
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, KnownFormat, Object, ObjectBuilder, Schema, SchemaFormat,
    SchemaType, Type,
};

use super::fields::FieldErrors;
use crate::model::{BreakerMode, DeliveryState, IdKind};
use crate::ops::{
    MAX_DESCRIPTION, MAX_IDEMPOTENCY_KEY, MAX_IN_FLIGHT_RANGE, MAX_NAME, MAX_URL, RATE_LIMIT_RANGE,
    RESERVED_HEADERS, TIMEOUT_RANGE,
};
use crate::topic::{MAX_LEN as MAX_TOPIC, Topic, TopicPattern};

/// A regular expression the document states and the server checks.
pub struct Pattern {
    source: String,
    regex: Regex,
}

impl Pattern {
    fn new(source: String) -> Pattern {
        // Every pattern is built from constants; `every_pattern_compiles` compiles each.
        let regex = Regex::new(&source).expect("a valid pattern"); // ok: constants, tested
        Pattern { source, regex }
    }

    /// Whether `text` matches (the patterns are anchored: all of it).
    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }

    /// The pattern as the document writes it.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// `[aA]` for a letter, the character escaped otherwise: `word` in any case.
fn any_case(word: &str) -> String {
    word.chars()
        .map(|c| match c.is_ascii_alphabetic() {
            true => format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase()),
            false => regex::escape(&c.to_string()),
        })
        .collect()
}

/// Whole strings made of `words`, separated by commas (spaces allowed
/// around each word).
fn word_list(words: &[&str]) -> String {
    let word = format!("(?:{})", words.join("|"));
    format!("^ *{word} *(?:, *{word} *)*$")
}

/// Names of tenants and endpoints ([`crate::ops::validate_name`]).
pub static NAME: LazyLock<Pattern> =
    LazyLock::new(|| Pattern::new(format!("^[A-Za-z0-9._-]{{1,{MAX_NAME}}}$")));

/// Strings shaped like an id (`ep_` and a ULID), which a name must not be.
pub static ID_SHAPED: LazyLock<Pattern> = LazyLock::new(|| {
    let prefixes: Vec<&str> = IdKind::ALL
        .iter()
        .map(|kind| kind.prefix().trim_end_matches('_'))
        .collect();
    Pattern::new(format!(
        "^(?:{})_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{{26}}$",
        prefixes.join("|")
    ))
});

/// A topic as published ([`Topic`]).
pub static TOPIC: LazyLock<Pattern> =
    LazyLock::new(|| Pattern::new("^[a-z0-9_-]+(?:[.][a-z0-9_-]+)*$".to_string()));

/// Topics producers may not publish: under the reserved first segment.
pub static RESERVED_TOPIC: LazyLock<Pattern> =
    LazyLock::new(|| Pattern::new(format!("^{}(?:[.]|$)", crate::topic::RESERVED_SEGMENT)));

/// A subscription's topic pattern ([`TopicPattern`]).
pub static TOPIC_PATTERN: LazyLock<Pattern> = LazyLock::new(|| {
    Pattern::new("^(?:(?:[*]|[a-z0-9_-]+)[.])*(?:[*][*]|[*]|[a-z0-9_-]+)$".to_string())
});

/// One base64 character.
const B64: &str = "[A-Za-z0-9+/]";

/// A signing secret: `whsec_` and the base64 of 24 to 64 bytes, padded or
/// not, with no stray bits in its last character ([`crate::sign::Secret`]).
pub static SECRET: LazyLock<Pattern> = LazyLock::new(|| {
    // Four characters carry three bytes; a tail of two carries one (its
    // last character keeps 4 bits zero), of three two (2 bits zero). Short
    // padding is taken, as the lenient decoder does.
    let one = format!("{B64}[AQgw]={{0,2}}");
    let two = format!("{B64}{{2}}[AEIMQUYcgkosw048]=?");
    Pattern::new(format!(
        "^whsec_(?:(?:{B64}{{4}}){{8,20}}(?:{one}|{two})?|(?:{B64}{{4}}){{21}}(?:{one})?)$"
    ))
});

/// One byte of an IPv4 address, without leading zeros.
const OCTET: &str = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";

/// An IPv6 address in one of its plain forms (no IPv4 tail, no zone).
fn ipv6() -> String {
    let h = "[0-9A-Fa-f]{1,4}";
    [
        format!("(?:{h}:){{7}}{h}"),
        format!("(?:{h}:){{1,7}}:"),
        format!("(?:{h}:){{1,6}}:{h}"),
        format!("(?:{h}:){{1,5}}(?::{h}){{1,2}}"),
        format!("(?:{h}:){{1,4}}(?::{h}){{1,3}}"),
        format!("(?:{h}:){{1,3}}(?::{h}){{1,4}}"),
        format!("(?:{h}:){{1,2}}(?::{h}){{1,5}}"),
        format!("{h}:(?::{h}){{1,6}}"),
        format!(":(?:(?::{h}){{1,7}}|:)"),
    ]
    .join("|")
}

/// An endpoint URL as the API takes it: ASCII, `http(s)://`, optional
/// userinfo, a host (a name whose last label starts with a letter, an IPv4
/// address or a bracketed IPv6 one), an optional port up to 65535, and any
/// printable path, query and fragment. Every such URL parses
/// ([`crate::ops::validate_url`]); the document's `not` adds what a
/// pattern without look-ahead cannot say ([`URL_REFUSED`]).
pub static URL: LazyLock<Pattern> = LazyLock::new(|| {
    let userinfo = "(?:[A-Za-z0-9._~!$&'()*+,;=:%-]*@)?";
    let domain = "(?:[A-Za-z0-9_-]+[.])*[A-Za-z][A-Za-z0-9_-]*";
    let ipv4 = format!("{OCTET}(?:[.]{OCTET}){{3}}");
    let port = "(?::(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])?)?";
    Pattern::new(format!(
        "^{scheme}://{userinfo}(?:{domain}|{ipv4}|\\[(?:{ipv6})\\]){port}(?:[/?#][!-~]*)?$",
        scheme = any_case("http") + "[Ss]?",
        ipv6 = ipv6(),
    ))
});

/// URLs the pattern matches that are still refused: a password that
/// starts with the mark of a value hookline encrypted, and a host label
/// in IDNA form (`xn--`), whose punycode a pattern cannot check.
pub static URL_REFUSED: LazyLock<Pattern> = LazyLock::new(|| {
    let sealed = format!("^[^:]*://[^:@/?#]*:{}", regex::escape(crate::seal::PREFIX));
    let idna = format!(
        "^[^:]*://(?:[^@/?#]*@)?(?:[A-Za-z0-9_-]+[.])*{}",
        any_case("xn--")
    );
    Pattern::new(format!("(?:{sealed})|(?:{idna})"))
});

/// A custom header's name: an HTTP token.
pub static HEADER_NAME: LazyLock<Pattern> =
    LazyLock::new(|| Pattern::new("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$".to_string()));

/// The header names hookline sets itself, in any case.
pub static RESERVED_HEADER: LazyLock<Pattern> = LazyLock::new(|| {
    let names: Vec<String> = RESERVED_HEADERS.iter().map(|n| any_case(n)).collect();
    Pattern::new(format!("^(?:{})$", names.join("|")))
});

/// A custom header's value: printable ASCII, spaces and tabs.
pub static HEADER_VALUE: LazyLock<Pattern> =
    LazyLock::new(|| Pattern::new("^[\t -~]*$".to_string()));

/// A value starting (after blanks) with the mark of one hookline encrypted.
pub static SEALED_VALUE: LazyLock<Pattern> =
    LazyLock::new(|| Pattern::new(format!("^[\t ]*{}", regex::escape(crate::seal::PREFIX))));

/// An idempotency key: no control characters.
pub static IDEMPOTENCY_KEY: LazyLock<Pattern> =
    LazyLock::new(|| Pattern::new("^[^\\x00-\\x1f\\x7f-\\x9f]*$".to_string()));

/// The `Idempotency-Key` header: visible ASCII, spaces inside only.
pub static IDEMPOTENCY_HEADER: LazyLock<Pattern> =
    LazyLock::new(|| Pattern::new("^[!-~](?:[ -~]*[!-~])?$".to_string()));

/// A duration such as `2h` or `1h30m` ([`crate::config::parse_duration`]),
/// each unit once, largest first, at most nine digits each.
pub static DURATION: LazyLock<Pattern> = LazyLock::new(|| {
    let units: String = ["d", "h", "m", "s", "ms", "us", "ns"]
        .iter()
        .map(|unit| format!("(?:[0-9]{{1,9}}{unit})?"))
        .collect();
    Pattern::new(format!("^{units}$"))
});

/// The states a recovery may revive, comma separated.
pub static RECOVER_STATES: LazyLock<Pattern> = LazyLock::new(|| {
    let words: Vec<&str> = DeliveryState::ALL
        .iter()
        .filter(|s| s.is_retryable())
        .flat_map(|s| [s.as_str(), s.as_db()])
        .collect();
    Pattern::new(word_list(&dedup(words)))
});

/// Every delivery state, comma separated (the delivery list's `state`).
pub static DELIVERY_STATES: LazyLock<Pattern> = LazyLock::new(|| {
    let words: Vec<&str> = DeliveryState::ALL
        .iter()
        .flat_map(|s| [s.as_str(), s.as_db()])
        .collect();
    Pattern::new(word_list(&dedup(words)))
});

/// An event id (`msg_` and a ULID).
pub static EVENT_ID: LazyLock<Pattern> = LazyLock::new(|| {
    Pattern::new(format!(
        "^{}[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{{26}}$",
        IdKind::Event.prefix()
    ))
});

/// A page cursor as the API hands it out (`<millis>.<id>`).
pub static CURSOR: LazyLock<Pattern> =
    LazyLock::new(|| Pattern::new("^-?[0-9]{1,18}[.][!-~]*$".to_string()));

fn dedup(mut words: Vec<&str>) -> Vec<&str> {
    let mut seen = Vec::new();
    words.retain(|w| {
        let new = !seen.contains(w);
        seen.push(*w);
        new
    });
    words
}

// --- schemas ------------------------------------------------------------------

/// A string schema with `pattern` and, when given, a length limit.
fn string(pattern: &Pattern, max_length: Option<usize>, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern.as_str()))
        .max_length(max_length)
        .description(Some(description))
}

/// An integer schema from `low` to `high`.
fn integer(low: u64, high: u64, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(low as f64))
        .maximum(Some(high as f64))
        .description(Some(description))
}

/// `object` that also accepts `null`.
fn or_null(object: ObjectBuilder) -> Object {
    let mut object = object.build();
    let mut types = match &object.schema_type {
        SchemaType::Type(one) => vec![one.clone()],
        SchemaType::Array(many) => many.clone(),
        SchemaType::AnyValue => return object,
    };
    types.push(Type::Null);
    object.schema_type = SchemaType::from_iter(types);
    object
}

/// Adds the JSON Schema keyword `not` to `object`: utoipa's types lack it,
/// but serialise their extensions inline, which is where it goes.
pub fn with_not(mut object: Object, not: Value) -> Object {
    let extensions = object.extensions.get_or_insert_with(Extensions::default);
    extensions.insert("not".to_string(), not);
    object
}

/// `not` for a string: refuses the strings `pattern` matches.
fn not_matching(object: ObjectBuilder, pattern: &Pattern) -> Object {
    with_not(object.build(), json!({ "pattern": pattern.as_str() }))
}

/// A tenant's name.
pub fn tenant_name() -> Object {
    name("Unique; letters, digits, `-`, `_` and `.`, and not shaped like an id (`ten_…`).")
}

/// An endpoint's name.
pub fn endpoint_name() -> Object {
    name(
        "Unique within the tenant; letters, digits, `-`, `_` and `.`, and not shaped like an id (`ep_…`).",
    )
}

fn name(description: &str) -> Object {
    not_matching(string(&NAME, Some(MAX_NAME), description), &ID_SHAPED)
}

/// An endpoint's URL.
pub fn url() -> Object {
    not_matching(
        string(
            &URL,
            Some(MAX_URL),
            "The http(s) URL that receives the POSTs: ASCII (percent-encode the rest, \
             an internationalised host is not taken), a host name whose last label starts \
             with a letter, an IPv4 address or a bracketed IPv6 one in hex groups, an optional port. \
             A URL whose address the server's outbound policy blocks is refused with 403.",
        ),
        &URL_REFUSED,
    )
}

/// A signing secret, optional.
pub fn secret() -> Object {
    or_null(string(
        &SECRET,
        None,
        "`whsec_` and the base64 of a 24 to 64 byte key; generated when left out.",
    ))
}

/// Per-attempt timeout, optional.
pub fn timeout_ms() -> Object {
    let (low, high) = TIMEOUT_RANGE;
    or_null(integer(
        low.as_millis() as u64,
        high.as_millis() as u64,
        "Per-attempt timeout in ms (`null`: the server's).",
    ))
}

/// Concurrent attempts, optional.
pub fn max_in_flight() -> Object {
    let (low, high) = MAX_IN_FLIGHT_RANGE;
    or_null(integer(
        low.into(),
        high.into(),
        "Concurrent attempts (`null`: the server's).",
    ))
}

/// Requests a second, optional.
pub fn rate_limit() -> Object {
    let (low, high) = RATE_LIMIT_RANGE;
    or_null(integer(
        low.into(),
        high.into(),
        "Requests a second across every dispatcher (`null`: unlimited).",
    ))
}

const BURST: &str = "Requests at once after a quiet spell (default: a tenth of `rate_limit`, \
     at least 1); needs a rate limit.";

/// A rate limit's burst, optional, `null` allowed.
pub fn rate_limit_burst() -> Object {
    let (low, high) = RATE_LIMIT_RANGE;
    or_null(integer(low.into(), high.into(), BURST))
}

/// A rate limit's burst in a change: a number when given.
pub fn rate_limit_burst_change() -> Object {
    let (low, high) = RATE_LIMIT_RANGE;
    integer(
        low.into(),
        high.into(),
        "Requests at once; alone, it keeps the endpoint's rate (which it needs).",
    )
    .build()
}

/// Free text describing something, optional.
pub fn description() -> Object {
    or_null(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(MAX_DESCRIPTION))
            .description(Some("Free text (`null`: none).")),
    )
}

/// Why an endpoint is paused, optional.
pub fn pause_reason() -> Object {
    or_null(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(MAX_DESCRIPTION))
            .description(Some(
                "Why: kept with the endpoint, shown, and written to the audit log.",
            )),
    )
}

/// An endpoint's custom headers.
pub fn headers() -> Object {
    headers_builder("Extra headers sent with every attempt.").build()
}

/// An endpoint's custom headers in a change.
pub fn headers_change() -> Object {
    headers_builder("Replaces every custom header (`{}` removes them all).").build()
}

fn headers_builder(description: &str) -> ObjectBuilder {
    let value = not_matching(
        string(
            &HEADER_VALUE,
            None,
            "Printable ASCII, spaces and tabs; not starting with the mark of an encrypted value.",
        ),
        &SEALED_VALUE,
    );
    let name = not_matching(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(HEADER_NAME.as_str())),
        &RESERVED_HEADER,
    );
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(format!(
            "{description} Names are HTTP tokens, never one hookline sets ({}).",
            RESERVED_HEADERS.join(", ")
        )))
        .additional_properties(Some(AdditionalProperties::RefOr(
            Schema::Object(value).into(),
        )))
        .property_names(Some(Schema::Object(name)))
}

/// A topic as published.
pub fn topic() -> Object {
    not_matching(
        string(
            &TOPIC,
            Some(MAX_TOPIC),
            "Dot-separated segments of lowercase letters, digits, `_` and `-`, e.g. \
             `resident.update`. The first segment `hookline` is reserved for hookline's own \
             events.",
        ),
        &RESERVED_TOPIC,
    )
}

/// A subscription's topic pattern.
pub fn topic_pattern() -> Object {
    string(
        &TOPIC_PATTERN,
        Some(MAX_TOPIC),
        "A topic, or a pattern: `*` for exactly one segment (`resident.*`), a trailing `**` \
         for one or more (`resident.**`), or `*` alone for every topic.",
    )
    .build()
}

/// An idempotency key in a body, optional.
pub fn idempotency_key() -> Object {
    or_null(
        string(
            &IDEMPOTENCY_KEY,
            Some(MAX_IDEMPOTENCY_KEY),
            "A repeated key (per tenant) returns the original event and creates nothing. \
             May be sent as the `Idempotency-Key` header instead (both given must be equal).",
        )
        .min_length(Some(1)),
    )
}

/// The `Idempotency-Key` header.
pub fn idempotency_header() -> Object {
    string(
        &IDEMPOTENCY_HEADER,
        Some(MAX_IDEMPOTENCY_KEY),
        "Idempotency key (instead of the body field; both given must be equal)",
    )
    .build()
}

/// An RFC 3339 time.
fn date_time(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .description(Some(description))
}

/// An API key's name.
pub fn api_key_name() -> Object {
    name(
        "Unique among live keys and recorded as the actor of every change made with the key; \
         letters, digits, `-`, `_` and `.`, and not shaped like an id (`key_…`).",
    )
}

/// When an API key stops working, optional.
pub fn key_expires_at() -> Object {
    or_null(
        date_time(
            "When the key stops working: an RFC 3339 time. `null` or left out: never. \
             A time already past is refused with 409.",
        )
        .examples([json!("2099-12-07T04:00:00Z")]),
    )
}

/// When a pause ends, optional.
pub fn pause_until() -> Object {
    or_null(
        date_time(
            "When the pause ends: an RFC 3339 time; a dispatcher resumes the endpoint then \
             (audited as an automatic `endpoint.resume`). `null` or left out: paused until \
             resumed. A time already past is refused with 409.",
        )
        .examples([json!("2099-12-07T04:00:00+01:00")]),
    )
}

/// A time as an RFC 3339 time or a duration ago, as a schema.
pub fn time_or_ago(description: &str, nullable: bool) -> Schema {
    let ago = string(&DURATION, None, "A duration ago, e.g. `2h` or `1h30m`").min_length(Some(1));
    let mut any = AnyOfBuilder::new()
        .item(date_time("An RFC 3339 time").build())
        .item(ago.build())
        .description(Some(description));
    if nullable {
        any = any.item(ObjectBuilder::new().schema_type(Type::Null).build());
    }
    Schema::AnyOf(any.build())
}

/// Recover's `since`.
pub fn recover_since() -> Schema {
    time_or_ago(
        "Deliveries created at or after this RFC 3339 time, or this long ago (`2h`).",
        false,
    )
}

/// Recover's `until`.
pub fn recover_until() -> Schema {
    time_or_ago(
        "Only deliveries created before this time (or this long ago); it must be later \
         than `since`, else 409.",
        true,
    )
}

/// Recover's `state`.
pub fn recover_state() -> Object {
    or_null(string(
        &RECOVER_STATES,
        None,
        "`dead` (default), `retrying` or `delivered`; several comma separated \
         (`scheduled` and `succeeded` are accepted as aliases).",
    ))
}

/// A breaker mode.
pub fn breaker_mode() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(BreakerMode::WORDS.iter().copied()))
        .description(Some(
            "`open` holds the endpoint's deliveries whatever its outcomes, `closed` lets them \
             flow whatever they are, `auto` hands the breaker back to the outcomes (one left \
             open then probes at once). Forced states hold until set back to `auto`.",
        ))
        .examples([json!("open")])
        .build()
}

// --- checks -------------------------------------------------------------------

/// Checks a name.
pub fn check_name(errors: &mut FieldErrors, field: &str, name: &str) {
    errors.ops(field, crate::ops::validate_name("name", name));
}

/// Checks an endpoint URL: the pattern, then what `ops` says of it.
pub fn check_url(errors: &mut FieldErrors, field: &str, url: &str) {
    if errors.ops(field, crate::ops::validate_url(url)).is_none() {
        return;
    }
    // The URL is not echoed: the client sent it, and what its host
    // resolves to is for operators only.
    if !URL.is_match(url) {
        errors.add(
            field,
            "not an http(s) URL the API takes: ASCII only, a host name whose last label \
             starts with a letter, an IPv4 address or a bracketed IPv6 one in hex groups, \
             a port up to 65535",
        );
    } else if URL_REFUSED.is_match(url) {
        errors.add(
            field,
            format!(
                "a password marked as encrypted ({}) or a host in IDNA form (xn--): give the \
                 real password, and a host the API takes",
                crate::seal::PREFIX
            ),
        );
    }
}

/// Checks a signing secret.
pub fn check_secret(errors: &mut FieldErrors, field: &str, secret: &str) {
    if errors
        .check(field, crate::sign::Secret::parse(secret))
        .is_some()
        && !SECRET.is_match(secret)
    {
        errors.add(
            field,
            "write it as whsec_ and canonical base64, without spaces",
        );
    }
}

/// Checks a published topic.
pub fn check_topic(errors: &mut FieldErrors, field: &str, topic: &str) {
    if let Some(topic) = errors.check(field, Topic::parse(topic))
        && let Some(reason) = crate::topic::reserved_reason(&topic)
    {
        errors.add(field, reason);
    }
}

/// Checks a subscription's topic pattern.
pub fn check_topic_pattern(errors: &mut FieldErrors, field: &str, pattern: &str) {
    errors.check(field, TopicPattern::parse(pattern));
}

/// Checks custom headers, naming each bad one as `headers.<name>`.
pub fn check_headers<'a>(
    errors: &mut FieldErrors,
    headers: impl IntoIterator<Item = (&'a String, &'a String)>,
) {
    for (name, value) in headers {
        let field = format!("headers.{name}");
        if !HEADER_NAME.is_match(name) {
            errors.add(field, format!("{name:?} is not a valid header name"));
        } else if RESERVED_HEADER.is_match(name) {
            errors.add(
                field,
                format!("{name:?} is set by hookline and cannot be overridden"),
            );
        } else if !HEADER_VALUE.is_match(value) {
            errors.add(field, "the value has characters a header cannot carry (printable ASCII, spaces and tabs only)");
        } else if SEALED_VALUE.is_match(value) {
            errors.add(
                field,
                format!(
                    "the value starts with {}, which marks values hookline encrypted; give the real value",
                    crate::seal::PREFIX
                ),
            );
        }
    }
}

/// Checks an RFC 3339 time as the document's `date-time` means it (`T`
/// between date and time).
pub fn check_date_time(errors: &mut FieldErrors, field: &str, text: &str) {
    if !is_date_time(text) {
        errors.add(
            field,
            format!("{text:?} is not an RFC 3339 time like 2026-12-07T04:00:00+01:00"),
        );
    }
}

fn is_date_time(text: &str) -> bool {
    matches!(text.as_bytes().get(10), Some(b'T' | b't'))
        && crate::model::parse_rfc3339(text).is_some()
}

/// Checks a time given as an RFC 3339 time or a duration ago.
pub fn check_time_or_ago(errors: &mut FieldErrors, field: &str, text: &str) {
    if !(is_date_time(text) || (!text.is_empty() && DURATION.is_match(text))) {
        errors.add(
            field,
            format!(
                "{text:?} is neither an RFC 3339 time like 2026-11-23T08:00:00Z nor a duration ago like 2h"
            ),
        );
    }
}

/// Checks a list of states to recover.
pub fn check_recover_states(errors: &mut FieldErrors, field: &str, text: &str) {
    if !RECOVER_STATES.is_match(text) {
        errors.add(
            field,
            format!("{text:?}: give dead, retrying or delivered, several comma separated"),
        );
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// `pattern` without its anchors, for proptest to generate from.
    fn unanchored(pattern: &Pattern) -> &str {
        let text = pattern.as_str();
        let text = text.strip_prefix('^').unwrap_or(text);
        text.strip_suffix('$').unwrap_or(text)
    }

    #[test]
    fn every_pattern_compiles() {
        for pattern in [
            &NAME,
            &ID_SHAPED,
            &TOPIC,
            &RESERVED_TOPIC,
            &TOPIC_PATTERN,
            &SECRET,
            &URL,
            &URL_REFUSED,
            &HEADER_NAME,
            &RESERVED_HEADER,
            &HEADER_VALUE,
            &SEALED_VALUE,
            &IDEMPOTENCY_KEY,
            &IDEMPOTENCY_HEADER,
            &DURATION,
            &RECOVER_STATES,
            &DELIVERY_STATES,
            &EVENT_ID,
            &CURSOR,
        ] {
            assert!(pattern.as_str().starts_with('^') || pattern.as_str().starts_with("(?:"));
        }
    }

    #[test]
    fn the_reserved_topic_pattern_agrees_with_the_topics() {
        for text in [
            "hookline",
            "hookline.ping",
            "hooklines.ping",
            "my.hookline",
            "order.created",
        ] {
            let topic = Topic::parse(text).expect("a topic");
            assert_eq!(RESERVED_TOPIC.is_match(text), topic.is_reserved(), "{text}");
        }
    }

    fn name_rule(name: &str) -> bool {
        NAME.is_match(name) && !ID_SHAPED.is_match(name)
    }

    #[test]
    fn names_follow_the_rule_of_ops() {
        for name in ["acme", "a.b-c_d", "", "a b", "a/b", &"x".repeat(65)] {
            let id = crate::model::new_id(IdKind::Endpoint);
            assert_eq!(
                name_rule(name),
                crate::ops::validate_name("name", name).is_ok()
            );
            assert!(!name_rule(&id), "{id}");
        }
    }

    #[test]
    fn urls_that_match_parse_and_known_ones_match() {
        for url in [
            "https://acme.example/hooks",
            "http://bob:s3cret@acme.example:8080/a?b=c#d",
            "http://127.0.0.1:9/",
            "http://[2001:db8::1]/hook",
            "HTTPS://Acme.Example",
            "http://localhost",
            "https://bob:****@acme.example/",
        ] {
            assert!(URL.is_match(url), "{url}");
            assert!(crate::ops::validate_url(url).is_ok(), "{url}");
        }
        for url in [
            "ftp://a.example/",
            "http://",
            "http://a.1/",
            "http://1.2.3.4.5/",
            "http://a:65536/",
            "http://a b/",
            "http://é.example/",
        ] {
            assert!(!URL.is_match(url), "{url}");
        }
        for url in [
            "http://xn--nxasmq6b.example/",
            "http://a:enc:v1:xyz@b.example/",
        ] {
            assert!(URL_REFUSED.is_match(url), "{url}");
        }
        assert!(!URL_REFUSED.is_match("http://a:b@c.example/x://y:enc:v1:z@"));
    }

    #[test]
    fn secrets_that_match_parse() {
        let generated = crate::sign::Secret::generate()
            .expect("randomness")
            .to_string();
        assert!(SECRET.is_match(&generated), "{generated}");
        // Short padding is taken, as the decoder takes it.
        let short =
            "whsec_AAa0/Aa+++Aaaa0+AAa+0aaAaA/0a/0AaaA+++a0A+0+A0A000a/0a+aa+0++aa++a+AAaaAAg=";
        assert!(crate::sign::Secret::parse(short).is_ok() && SECRET.is_match(short));
        for bad in [
            "whsec_",
            "whsec_AAAA",
            " whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ] {
            assert!(!SECRET.is_match(bad), "{bad}");
        }
    }

    #[test]
    fn state_lists_follow_the_words() {
        assert!(RECOVER_STATES.is_match("dead"));
        assert!(RECOVER_STATES.is_match("dead, retrying,succeeded"));
        assert!(!RECOVER_STATES.is_match("pending"));
        assert!(!RECOVER_STATES.is_match(""));
        assert!(DELIVERY_STATES.is_match("pending,in_flight"));
        assert!(DURATION.is_match("1h30m") && DURATION.is_match("250ms"));
        assert!(!DURATION.is_match("30") && !DURATION.is_match("1m1h"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn a_name_matches_exactly_when_ops_takes_it(name in "[A-Za-z0-9._/ -]{0,70}") {
            prop_assert_eq!(name_rule(&name), crate::ops::validate_name("name", &name).is_ok());
        }

        #[test]
        fn a_topic_matches_exactly_when_it_parses(topic in "[a-zA-Z0-9._* -]{0,12}") {
            prop_assert_eq!(TOPIC.is_match(&topic), Topic::parse(&topic).is_ok());
            if let Ok(parsed) = Topic::parse(&topic) {
                prop_assert_eq!(RESERVED_TOPIC.is_match(&topic), parsed.is_reserved());
            }
            prop_assert_eq!(TOPIC_PATTERN.is_match(&topic), TopicPattern::parse(&topic).is_ok());
        }

        #[test]
        fn every_url_the_pattern_takes_is_valid(url in unanchored(&URL)) {
            prop_assume!(!URL_REFUSED.is_match(&url) && url.len() <= MAX_URL);
            prop_assert!(crate::ops::validate_url(&url).is_ok(), "{}", url);
        }

        #[test]
        fn every_secret_the_pattern_takes_parses(secret in unanchored(&SECRET)) {
            prop_assert!(crate::sign::Secret::parse(&secret).is_ok(), "{}", secret);
        }

        #[test]
        fn a_secret_that_parses_matches(secret in "whsec_[A-Za-z0-9+/]{30,90}={0,2}") {
            prop_assert_eq!(SECRET.is_match(&secret), crate::sign::Secret::parse(&secret).is_ok(), "{}", secret);
        }

        #[test]
        fn every_duration_the_pattern_takes_parses(text in unanchored(&DURATION)) {
            prop_assume!(!text.is_empty());
            prop_assert!(crate::config::parse_duration(&text).is_ok(), "{}", text);
        }

        #[test]
        fn every_header_the_patterns_take_is_valid(
            name in unanchored(&HEADER_NAME),
            value in unanchored(&HEADER_VALUE),
        ) {
            prop_assume!(!RESERVED_HEADER.is_match(&name) && !SEALED_VALUE.is_match(&value));
            let line = format!("{name}: {value}");
            prop_assert!(crate::ops::parse_headers(&[line]).is_ok(), "{}: {}", name, value);
        }

        #[test]
        fn every_recover_state_list_parses(text in unanchored(&RECOVER_STATES)) {
            for word in text.split(',') {
                let state: DeliveryState = word.trim().parse().map_err(|e| TestCaseError::fail(format!("{e}")))?;
                prop_assert!(state.is_retryable());
            }
        }
    }
}
