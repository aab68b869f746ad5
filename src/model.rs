//! The data hookline keeps: tenants, endpoints, subscriptions, events,
//! deliveries, attempts, audit entries and dispatcher heartbeats, with their
//! states and prefixed ULID ids. Plain data: no I/O here.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, Timelike};
use serde::Serialize;

/// Milliseconds since the Unix epoch: the one time representation in the
/// database (it maps cleanly onto SQLite and Postgres `BIGINT`).
pub type Millis = i64;

/// The current wall-clock time in unix milliseconds.
pub fn now_millis() -> Millis {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// Formats unix milliseconds as RFC 3339 UTC with milliseconds always
/// written (`2026-11-23T10:15:00.120Z`). A time outside
/// the years 0000–9999, which RFC 3339 cannot write, comes back as the number.
pub fn format_rfc3339(ms: Millis) -> String {
    try_format_rfc3339(ms).unwrap_or_else(|| ms.to_string())
}

/// [`format_rfc3339`], or `None` outside the years 0000–9999.
pub(crate) fn try_format_rfc3339(ms: Millis) -> Option<String> {
    let t = DateTime::from_timestamp_millis(ms)?;
    if !(0..=9999).contains(&t.year()) {
        return None;
    }
    // Always three digits of fraction, so that times sort as text too.
    let millis = t.timestamp_subsec_millis();
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

/// Parses an RFC 3339 timestamp into unix milliseconds: any offset, any
/// number of fraction digits (those past the millisecond dropped, toward
/// zero), any one character between date and time (`T`, a space, …), and a
/// leap second (`23:59:60`) where one may fall, at the end of a month in
/// UTC, read as the millisecond before it.
pub fn parse_rfc3339(text: &str) -> Option<Millis> {
    // chrono takes only `T`, `t` or a space there; RFC 3339 lets
    // applications choose, and any character was accepted so far.
    let text = match text.as_bytes().get(10) {
        Some(b) if b.is_ascii() && !matches!(b, b'T' | b't' | b' ') => {
            Cow::Owned(format!("{}T{}", &text[..10], &text[11..]))
        }
        _ => Cow::Borrowed(text),
    };
    let t = DateTime::parse_from_rfc3339(&text).ok()?.to_utc();
    let mut nanos = t.timestamp_subsec_nanos();
    if nanos >= 1_000_000_000 {
        // chrono reads `:60` as `:59` and a whole second more of nanoseconds,
        // at any minute; a leap second only ever ends a month (in UTC), and
        // was read, as here, as the last nanosecond of its `:59`.
        let ends_a_month = t.hour() == 23
            && t.minute() == 59
            && t.checked_add_days(Days::new(1))
                .is_some_and(|next| next.day() == 1);
        if !ends_a_month {
            return None;
        }
        nanos = 999_999_999;
    }
    let since_epoch = i128::from(t.timestamp()) * 1_000_000_000 + i128::from(nanos);
    i64::try_from(since_epoch / 1_000_000).ok()
}

/// Re-indents JSON text for reading without re-serialising it: numbers,
/// key order, duplicate keys and escapes stay exactly as published (a parsed
/// and re-printed value would show `1.0e2` as `100.0`). Text that is not
/// JSON comes back re-indented as far as its brackets allow.
pub fn reindent_json(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() * 2);
    let mut depth: usize = 0;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = raw.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                while chars.peek().is_some_and(|n| n.is_whitespace()) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('}' | ']')) {
                    if let Some(close) = chars.next() {
                        out.push(close);
                    }
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

/// What an id names; decides its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Tenant,
    Endpoint,
    Subscription,
    /// Events: the id is also the `webhook-id` header receivers deduplicate on.
    Event,
    Delivery,
    Attempt,
    Audit,
    Dispatcher,
    /// API keys (the id names the key; the secret key itself is never stored).
    ApiKey,
    /// A change of an endpoint's circuit breaker.
    BreakerTransition,
}

impl IdKind {
    /// Every kind of id.
    pub const ALL: [IdKind; 10] = [
        IdKind::Tenant,
        IdKind::Endpoint,
        IdKind::Subscription,
        IdKind::Event,
        IdKind::Delivery,
        IdKind::Attempt,
        IdKind::Audit,
        IdKind::Dispatcher,
        IdKind::ApiKey,
        IdKind::BreakerTransition,
    ];

    /// The prefix, including its underscore.
    pub fn prefix(self) -> &'static str {
        match self {
            IdKind::Tenant => "ten_",
            IdKind::Endpoint => "ep_",
            IdKind::Subscription => "sub_",
            IdKind::Event => "msg_",
            IdKind::Delivery => "dlv_",
            IdKind::Attempt => "att_",
            IdKind::Audit => "aud_",
            IdKind::Dispatcher => "dsp_",
            IdKind::ApiKey => "key_",
            IdKind::BreakerTransition => "brk_",
        }
    }

    /// Which kind of id `text` looks like, judged by prefix and ULID shape.
    pub fn of(text: &str) -> Option<IdKind> {
        IdKind::ALL.into_iter().find(|kind| {
            text.strip_prefix(kind.prefix())
                .is_some_and(|rest| ulid::Ulid::from_string(rest).is_ok())
        })
    }
}

/// A new sortable id: the kind's prefix and a ULID. Ids made by one process
/// are strictly increasing, even within a millisecond, so they break ties
/// between rows created together in the order they were created.
pub fn new_id(kind: IdKind) -> String {
    static GENERATOR: std::sync::Mutex<ulid::Generator> =
        std::sync::Mutex::new(ulid::Generator::new());
    let ulid = GENERATOR
        .lock()
        .ok()
        .and_then(|mut generator| generator.generate().ok())
        // Only if 2^80 ids were made in one millisecond (or a panic poisoned the lock).
        .unwrap_or_else(ulid::Ulid::generate);
    format!("{}{}", kind.prefix(), ulid)
}

/// When an id made by [`new_id`] was made (unix ms), from the ULID after its
/// prefix; `None` for anything else.
pub fn id_time_ms(id: &str) -> Option<i64> {
    let (_, ulid) = id.split_once('_')?;
    let ulid = ulid::Ulid::from_string(ulid).ok()?;
    i64::try_from(ulid.timestamp_ms()).ok()
}

/// A value could not be parsed from a user's word or a stored spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownVariant {
    /// The kind of value with its article, e.g. "a state".
    pub what: &'static str,
    /// What was given.
    pub value: String,
    /// The accepted spellings, in declaration order: the words people use,
    /// or the stored ones when a database row was being read.
    pub expected: &'static [&'static str],
}

/// The widest an [`UnknownVariant`] message gets: it is shown on the
/// console's status line and in 80-column terminals, in one line.
pub const ERROR_LINE_WIDTH: usize = 80;

impl fmt::Display for UnknownVariant {
    /// `"foo" is not a state: pending, in_flight, …` on one line of at most
    /// [`ERROR_LINE_WIDTH`] columns: the list of valid words is what helps,
    /// so a long value is shortened rather than the list.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tail = format!(" is not {}: {}", self.what, self.expected.join(", "));
        let quoted = format!("{:?}", self.value);
        let room = ERROR_LINE_WIDTH.saturating_sub(crate::text::width(&tail));
        // When even the list does not fit (error kinds), shortening helps nobody.
        if crate::text::width(&quoted) <= room || room < 4 {
            return write!(f, "{quoted}{tail}");
        }
        // Keep the start of the value: `"…"` and the ellipsis take 3 columns.
        let mut short = String::new();
        for c in quoted.chars().skip(1) {
            if crate::text::width(&short) + crate::text::char_width(c) + 3 > room {
                break;
            }
            short.push(c);
        }
        write!(f, "\"{short}…\"{tail}")
    }
}

impl std::error::Error for UnknownVariant {}

/// A value with a spelling of its own in the database, apart from the word
/// people see; what the store reads and writes.
pub trait Stored: Sized {
    /// The spelling in the database.
    fn as_db(&self) -> &'static str;
    /// Parses the spelling in the database (never a user's word).
    fn from_db(s: &str) -> Result<Self, UnknownVariant>;
}

/// Declares a string-backed enum: the word people see and type (`Display`,
/// serde, `as_str`), the spelling the database stores (`as_db`, `from_db`;
/// the same word unless given with `stored "…"`), and `FromStr` that takes
/// the word or the stored spelling. Where the two differ, the stored one is
/// what earlier versions showed, so it stays accepted as an alias. A macro:
/// it declares the type and its impls from one list of variants.
macro_rules! string_enum {
    (@stored $text:literal) => { $text };
    (@stored $text:literal $stored:literal) => { $stored };
    ($(#[$meta:meta])* $name:ident, $what:literal {
        $($(#[$vmeta:meta])* $variant:ident => $text:literal $(stored $stored:literal)?),+ $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The words people see and type, in declaration order.
            pub const WORDS: &'static [&'static str] = &[$($text),+];

            /// The spellings stored in the database, in declaration order.
            pub const STORED: &'static [&'static str] =
                &[$(string_enum!(@stored $text $($stored)?)),+];

            /// The word people see: screens, tables, JSON, metrics labels.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The spelling stored in the database; only the store uses it.
            pub fn as_db(self) -> &'static str {
                match self { $($name::$variant => string_enum!(@stored $text $($stored)?)),+ }
            }

            /// Parses a stored spelling, and nothing else: a user's word
            /// found in the database means the row was not written by us.
            pub fn from_db(s: &str) -> Result<Self, UnknownVariant> {
                $(if s == string_enum!(@stored $text $($stored)?) {
                    return Ok($name::$variant);
                })+
                // The database's list: this is about a row, not what a person typed.
                Err(UnknownVariant { what: $what, value: s.to_string(), expected: Self::STORED })
            }
        }

        impl Stored for $name {
            fn as_db(&self) -> &'static str {
                $name::as_db(*self)
            }
            fn from_db(s: &str) -> Result<Self, UnknownVariant> {
                $name::from_db(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;
            /// The word, or the stored spelling as an alias.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $(if s == $text {
                    return Ok($name::$variant);
                })+
                // The aliases are accepted, not advertised: the error lists the words.
                Self::from_db(s).map_err(|e| UnknownVariant { expected: Self::WORDS, ..e })
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// Where a delivery is in its life.
    DeliveryState, "a state" {
        /// Due now: never attempted in its current schedule, or manually retried.
        Pending => "pending",
        /// Leased by a dispatcher that is attempting it.
        InFlight => "in_flight",
        /// Failed at least once and waiting for its next retry.
        Retrying => "retrying" stored "scheduled",
        /// A 2xx answer was received.
        Delivered => "delivered" stored "succeeded",
        /// The retry schedule is exhausted.
        Dead => "dead",
        /// Its endpoint or tenant was deleted before it was delivered.
        Cancelled => "cancelled",
    }
}

impl DeliveryState {
    /// States a manual retry may revive.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            DeliveryState::Dead | DeliveryState::Retrying | DeliveryState::Delivered
        )
    }
}

string_enum! {
    /// Where an endpoint's circuit breaker is: whether its receiver is
    /// being spared.
    BreakerState, "a breaker state" {
        /// Deliveries flow; outcomes are counted.
        Closed => "closed",
        /// The receiver kept failing: its due work is held, nothing is
        /// attempted, no retry is spent, until a probe may go.
        Open => "open",
        /// One delivery has gone as a probe; its outcome closes or re-opens.
        HalfOpen => "half_open",
    }
}

string_enum! {
    /// Who decides an endpoint's breaker: its outcomes, or an operator.
    BreakerMode, "a breaker mode" {
        /// Outcomes open it and a probe closes it.
        Auto => "auto",
        /// Held open by an operator until set back to `auto`.
        Open => "open",
        /// Held closed by an operator: outcomes are counted, never acted on.
        Closed => "closed",
    }
}

string_enum! {
    /// Whether an endpoint receives deliveries.
    EndpointState, "an endpoint state" {
        /// Deliveries flow.
        Active => "active",
        /// Held by an operator: deliveries wait, nothing is attempted or discarded.
        Paused => "paused",
        /// Held by the system (it answered 410 Gone); the reason is recorded.
        Disabled => "disabled",
    }
}

string_enum! {
    /// Why an attempt failed; `None` on the attempt means it succeeded.
    ErrorKind, "an error kind" {
        /// No complete answer within the endpoint's timeout.
        Timeout => "timeout",
        /// The TCP connection could not be made (refused, unreachable).
        Connect => "connect",
        /// The host name did not resolve.
        Dns => "dns",
        /// The TLS handshake failed (certificate, protocol).
        Tls => "tls",
        /// An answer other than 2xx.
        HttpStatus => "http_status",
        /// The answer's body was larger than `dispatch.max_response_body`.
        TooLargeResponse => "too_large_response",
        /// The connection broke mid-request or another transport error.
        Network => "network",
        /// The URL's host resolves only to addresses the outbound guard does
        /// not allow (`[network]`): nothing was sent, and retrying cannot help.
        BlockedDestination => "blocked_destination",
    }
}

string_enum! {
    /// Which interface an operator used; recorded in the audit log.
    Source, "a source" {
        Cli => "cli",
        Console => "console",
        Api => "api",
        /// hookline itself, e.g. disabling an endpoint that answered 410 Gone.
        System => "system",
    }
}

/// One customer of the producer platform; owns endpoints and subscriptions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub created_at: Millis,
}

/// An endpoint's rate limit: at most `per_second` requests a second across
/// every dispatcher, and at most `burst` at once after a quiet spell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    pub per_second: i64,
    pub burst: i64,
}

impl RateLimit {
    /// A limit of `per_second` with `burst`, or the default burst of a
    /// tenth of the rate (at least 1).
    pub fn new(per_second: i64, burst: Option<i64>) -> RateLimit {
        RateLimit {
            per_second,
            burst: burst.unwrap_or((per_second / 10).max(1)),
        }
    }
}

impl fmt::Display for RateLimit {
    /// `10/s`, or `10/s burst 5` where the burst is not the default.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s", self.per_second)?;
        if self.burst != RateLimit::new(self.per_second, None).burst {
            write!(f, " burst {}", self.burst)?;
        }
        Ok(())
    }
}

/// A URL that receives a tenant's events, with its signing secrets and limits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Endpoint {
    pub id: String,
    pub tenant_id: String,
    pub tenant_name: String,
    pub name: String,
    pub url: String,
    /// `whsec_…`; never printed unmasked unless asked for.
    pub secret: String,
    /// The secret before the last rotation, still signing until it expires.
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<Millis>,
    pub state: EndpointState,
    /// Why the endpoint is paused or disabled.
    pub state_reason: Option<String>,
    pub state_changed_at: Option<Millis>,
    /// Who made the last change of state, as [`Actor::describe`] says it
    /// (`hookline` when hookline disabled or resumed it by itself).
    pub state_changed_by: Option<String>,
    /// When an operator's pause ends by itself: a dispatcher resumes the
    /// endpoint then (by the database's clock). `None` unless paused so.
    pub paused_until: Option<Millis>,
    /// Per-attempt timeout; `None` uses `dispatch.timeout`.
    pub timeout_ms: Option<i64>,
    /// Concurrent attempts cap; `None` uses `dispatch.max_in_flight_per_endpoint`.
    pub max_in_flight: Option<i64>,
    /// Requests a second across every dispatcher; `None`: unlimited.
    pub rate_limit: Option<RateLimit>,
    /// Extra headers sent with every attempt, in order.
    pub headers: Vec<(String, String)>,
    pub description: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// When the signing secret was last rotated; `None`: never (it dates
    /// from `created_at`).
    pub secret_rotated_at: Option<Millis>,
}

impl Endpoint {
    /// The endpoint as shown to people: signing secrets as a hint
    /// (`whsec_MfKQ…aSw`), the URL's password and sensitive header values
    /// as `****` (see [`crate::redact`]). Only an audited reveal shows more.
    pub fn masked(&self) -> Endpoint {
        Endpoint {
            url: crate::redact::mask_url_password(&self.url),
            secret: secret_hint(&self.secret),
            previous_secret: self.previous_secret.as_deref().map(secret_hint),
            headers: crate::redact::mask_headers(&self.headers),
            ..self.clone()
        }
    }

    /// Which of the endpoint's values are secrets, by field: what a reveal
    /// shows and its audit row names (`secret`, `previous_secret` while it
    /// is kept, `url` with a password, `header:NAME` for sensitive headers).
    pub fn secret_fields(&self) -> Vec<String> {
        let mut fields = vec!["secret".to_string()];
        if self.previous_secret.is_some() {
            fields.push("previous_secret".to_string());
        }
        if crate::redact::url_password(&self.url).is_some() {
            fields.push("url".to_string());
        }
        for (name, _) in &self.headers {
            if crate::redact::is_sensitive_header(name) {
                fields.push(format!("header:{name}"));
            }
        }
        fields
    }
}

/// A signing secret as shown: `whsec_` and a few characters of each end.
pub fn secret_hint(secret: &str) -> String {
    crate::sign::Secret::parse(secret).map_or_else(|_| "whsec_****".to_string(), |s| s.masked())
}

/// An endpoint's interest in topics matching a pattern.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subscription {
    pub id: String,
    pub endpoint_id: String,
    pub endpoint_name: String,
    pub tenant_id: String,
    pub tenant_name: String,
    pub pattern: String,
    pub description: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// Something that happened, published for one tenant or broadcast to all.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// `msg_…`, also the `webhook-id` header.
    pub id: String,
    /// `None` for a broadcast.
    pub tenant_id: Option<String>,
    pub topic: String,
    /// Exactly the bytes published; empty once removed (`payload_removed`).
    pub payload: String,
    /// Bytes published (kept when the payload is removed).
    pub payload_size: i64,
    /// Set when the payload was removed: its deliveries cannot be retried.
    pub payload_removed: Option<PayloadRemoval>,
    pub idempotency_key: Option<String>,
    pub created_at: Millis,
}

impl Event {
    /// Why this event's deliveries cannot be sent again, if they cannot.
    pub fn unsendable_reason(&self) -> Option<String> {
        self.payload_removed.as_ref().map(|removal| {
            format!(
                "its payload was {}; it cannot be retried",
                removal.by.describe()
            )
        })
    }
}

/// When and why an event's payload bytes were removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PayloadRemoval {
    pub at: Millis,
    pub by: PayloadRemovedBy,
}

string_enum! {
    /// What removed a payload.
    PayloadRemovedBy, "a payload removal" {
        /// `retention.payload`: its deliveries had finished and it aged out.
        Retention => "retention",
        /// Erased on request (`hookline event expunge`, `tenant expunge`, the API).
        Expunged => "expunged",
    }
}

impl PayloadRemovedBy {
    /// "expunged" / "removed by retention.payload", for sentences.
    pub fn describe(self) -> &'static str {
        match self {
            PayloadRemovedBy::Retention => "removed by retention.payload",
            PayloadRemovedBy::Expunged => "expunged",
        }
    }
}

/// One event on its way to one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub id: String,
    pub event_id: String,
    pub endpoint_id: String,
    pub endpoint_name: String,
    pub tenant_id: String,
    pub tenant_name: String,
    pub topic: String,
    pub state: DeliveryState,
    /// Attempts made in the current schedule (a manual retry starts over).
    pub attempts: i64,
    /// When a pending or retrying delivery is due.
    pub next_attempt_at: Millis,
    pub last_attempt_at: Option<Millis>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// One HTTP try of a delivery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub id: String,
    pub delivery_id: String,
    pub endpoint_id: String,
    /// 1-based position in the schedule it belonged to.
    pub attempt_number: i64,
    pub started_at: Millis,
    pub duration_ms: i64,
    pub status_code: Option<i64>,
    /// `None` when the attempt succeeded.
    pub error_kind: Option<ErrorKind>,
    pub error_message: Option<String>,
    /// Headers sent, with the signature masked.
    pub request_headers: Vec<(String, String)>,
    /// The first bytes of the answer's body (lossy UTF-8).
    pub response_body: Option<String>,
    pub dispatcher_id: Option<String>,
}

impl Attempt {
    /// Whether the endpoint answered 2xx.
    pub fn succeeded(&self) -> bool {
        self.error_kind.is_none()
    }
}

/// Who did an operator action, from where, through which interface.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Actor {
    /// OS user, or the API key's name.
    pub name: String,
    /// The SSH client address when the operator came in over SSH.
    pub client_addr: Option<String>,
    pub source: Source,
}

impl Actor {
    /// Who, in a few words: `oncall-ana (console, from 203.0.113.9)`, or
    /// `hookline` for hookline itself.
    pub fn describe(&self) -> String {
        if self.source == Source::System {
            return "hookline".to_string();
        }
        match &self.client_addr {
            Some(addr) => format!("{} ({}, from {addr})", self.name, self.source),
            None => format!("{} ({})", self.name, self.source),
        }
    }

    /// The operator running this process: OS user and SSH client address.
    pub fn from_environment(source: Source) -> Actor {
        let name = ["USER", "LOGNAME"]
            .iter()
            .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(current_uid_name);
        // SSH_CLIENT is "addr port localport"; SSH_CONNECTION starts the same way.
        let client_addr = ["SSH_CLIENT", "SSH_CONNECTION"].iter().find_map(|var| {
            std::env::var(var)
                .ok()
                .and_then(|v| v.split_whitespace().next().map(str::to_string))
        });
        Actor {
            name,
            client_addr,
            source,
        }
    }
}

fn current_uid_name() -> String {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    format!("uid:{uid}")
}

/// One operator mutation, as written to the audit log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: String,
    pub at: Millis,
    pub actor: String,
    pub client_addr: Option<String>,
    pub source: Source,
    /// Dotted verb, e.g. `endpoint.pause`, `delivery.retry`.
    pub action: String,
    /// The ids acted on (capped; `detail` holds the full count).
    pub target_ids: Vec<String>,
    /// Action-specific facts as JSON text (counts, changed fields, filters).
    pub detail: String,
}

/// An API key as listed: who it is and what it may touch, never the key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiKey {
    /// `key_…`: names the key in listings and the audit log.
    pub id: String,
    /// Unique among live keys; recorded as the actor of every change made with it.
    pub name: String,
    /// `None` for an admin key; otherwise the only tenant it may see.
    pub tenant_id: Option<String>,
    pub tenant_name: Option<String>,
    /// The first characters of the key, enough to tell keys apart.
    pub key_prefix: String,
    pub created_at: Millis,
    /// From then on the key is refused (401, saying so); `None`: never.
    pub expires_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
}

impl ApiKey {
    /// Whether the key has expired as of `now` (unix ms): at its
    /// `expires_at` it already has.
    pub fn is_expired(&self, now: Millis) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// A running (or recently stopped) dispatcher's heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DispatcherInfo {
    pub id: String,
    pub host: String,
    pub pid: i64,
    pub version: String,
    pub started_at: Millis,
    pub last_seen_at: Millis,
    pub stopped_at: Option<Millis>,
    pub deliveries_per_sec: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_sort_by_time() {
        let first = new_id(IdKind::Event);
        let second = new_id(IdKind::Event);
        assert!(first.starts_with("msg_"));
        assert!(first < second);
        assert_eq!(IdKind::of(&first), Some(IdKind::Event));
        assert_eq!(IdKind::of("msg_nope"), None);
        assert_eq!(
            IdKind::of(&new_id(IdKind::Delivery)),
            Some(IdKind::Delivery)
        );
    }

    #[test]
    fn states_round_trip_through_their_word_and_stored_spelling() {
        for state in DeliveryState::ALL {
            assert_eq!(state.as_str().parse::<DeliveryState>(), Ok(*state));
            assert_eq!(DeliveryState::from_db(state.as_db()), Ok(*state));
            assert_eq!(state.to_string(), state.as_str());
        }
        assert_eq!(
            DeliveryState::WORDS,
            [
                "pending",
                "in_flight",
                "retrying",
                "delivered",
                "dead",
                "cancelled"
            ]
        );
    }

    #[test]
    fn the_database_keeps_its_own_spelling() {
        assert_eq!(DeliveryState::Retrying.as_db(), "scheduled");
        assert_eq!(DeliveryState::Delivered.as_db(), "succeeded");
        assert_eq!(DeliveryState::Dead.as_db(), "dead");
        // A user's word in the database is a row hookline did not write.
        let corrupt = DeliveryState::from_db("retrying").unwrap_err().to_string();
        assert!(
            corrupt.ends_with("in_flight, scheduled, succeeded, dead, cancelled"),
            "{corrupt}"
        );
        assert!(DeliveryState::from_db("delivered").is_err());
    }

    #[test]
    fn old_state_words_are_accepted_as_aliases() {
        assert_eq!("scheduled".parse(), Ok(DeliveryState::Retrying));
        assert_eq!("succeeded".parse(), Ok(DeliveryState::Delivered));
        assert_eq!("retrying".parse(), Ok(DeliveryState::Retrying));
        assert_eq!("delivered".parse(), Ok(DeliveryState::Delivered));
        assert!("ok".parse::<DeliveryState>().is_err());
        assert!("Retrying".parse::<DeliveryState>().is_err(), "exact words");
    }

    #[test]
    fn an_unknown_state_lists_the_words_in_one_line_of_80_columns() {
        let err = "foo".parse::<DeliveryState>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"foo\" is not a state: pending, in_flight, retrying, delivered, dead, cancelled"
        );
        let long = "a-very-long-word-that-is-no-state-at-all-and-goes-on".repeat(3);
        for given in [
            "",
            "x",
            "scheduledd",
            long.as_str(),
            "zweiunddreißig",
            "状態状態状態",
        ] {
            let line = given.parse::<DeliveryState>().unwrap_err().to_string();
            assert!(!line.contains('\n'), "{line}");
            assert!(
                crate::text::width(&line) <= ERROR_LINE_WIDTH,
                "{} columns: {line}",
                crate::text::width(&line)
            );
            assert!(
                line.ends_with("pending, in_flight, retrying, delivered, dead, cancelled"),
                "{line}"
            );
            assert!(line.starts_with('"'), "{line}");
        }
        let cut = long.parse::<DeliveryState>().unwrap_err().to_string();
        assert_eq!(
            cut,
            "\"a-ve…\" is not a state: pending, in_flight, retrying, delivered, dead, cancelled"
        );
        let other = "on".parse::<ErrorKind>().unwrap_err().to_string();
        assert!(
            other.starts_with("\"on\" is not an error kind: timeout, connect"),
            "the value is kept when the list alone is too wide: {other}"
        );
        // The old words are not advertised: they are aliases, not the vocabulary.
        assert!(
            !cut.contains("scheduled") && !cut.contains("succeeded"),
            "{cut}"
        );
    }

    #[test]
    fn reindenting_keeps_every_token() {
        let raw = r#"{"b":1.0e2,"a":[1, {"x":"y, \"z\": {"}],"a":{}, "n": 123456789012345678901234567890}"#;
        let pretty = reindent_json(raw);
        assert!(pretty.contains("1.0e2"), "{pretty}");
        assert!(
            pretty.contains("123456789012345678901234567890"),
            "{pretty}"
        );
        assert!(pretty.contains(r#""y, \"z\": {""#), "{pretty}");
        assert!(pretty.contains("\"a\": {}"), "{pretty}");
        let squeezed: String = pretty.split_whitespace().collect();
        let original: String = raw.split_whitespace().collect();
        assert_eq!(squeezed.replace(": ", ":"), original.replace(": ", ":"));
        assert!(pretty.starts_with("{\n  \"b\": 1.0e2,\n"), "{pretty}");
    }

    #[test]
    fn rfc3339_round_trips_milliseconds() {
        let ms = 1_764_000_000_123;
        let text = format_rfc3339(ms);
        assert!(text.ends_with('Z'), "{text}");
        assert_eq!(parse_rfc3339(&text), Some(ms));
    }

    /// Every timestamp hookline prints, byte for byte, and what it reads
    /// back: pinned so that a change of date library changes nothing.
    #[test]
    fn rfc3339_strings_are_pinned() {
        let written = [
            (1_795_420_800_123, "2026-11-23T08:00:00.123Z"),
            // Always three digits of fraction, so that times sort as text.
            (1_795_420_800_000, "2026-11-23T08:00:00.000Z"),
            (1_795_420_800_120, "2026-11-23T08:00:00.120Z"),
            (1_795_420_800_100, "2026-11-23T08:00:00.100Z"),
            (1_795_420_800_001, "2026-11-23T08:00:00.001Z"),
            (0, "1970-01-01T00:00:00.000Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (-1_000, "1969-12-31T23:59:59.000Z"),
            (1_709_193_600_000, "2024-02-29T08:00:00.000Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
            (-62_167_219_200_000, "0000-01-01T00:00:00.000Z"),
        ];
        for (ms, text) in written {
            assert_eq!(format_rfc3339(ms), text, "{ms}");
            assert_eq!(parse_rfc3339(text), Some(ms), "{text}");
        }
        // RFC 3339 has four-digit years only: outside them, the number.
        for ms in [253_402_300_800_000, -62_167_219_200_001, i64::MAX, i64::MIN] {
            assert_eq!(format_rfc3339(ms), ms.to_string());
        }

        let read = [
            ("2026-11-23T10:00:00+02:00", Some(1_795_420_800_000)),
            ("2026-11-23T08:00:00-00:00", Some(1_795_420_800_000)),
            ("2026-11-23T08:00:00.123+00:00", Some(1_795_420_800_123)),
            ("2026-11-23T08:00:00.123-23:59", Some(1_795_507_140_123)),
            ("2026-11-23T08:00:00+23:59", Some(1_795_334_460_000)),
            ("0000-01-01T00:00:00+00:01", Some(-62_167_219_260_000)),
            // Lower case, and another separator than `T`.
            ("2026-11-23t08:00:00z", Some(1_795_420_800_000)),
            ("2026-11-23 08:00:00Z", Some(1_795_420_800_000)),
            ("2026-11-23_08:00:00Z", Some(1_795_420_800_000)),
            // Digits past the millisecond are dropped, not rounded, and
            // toward zero before 1970.
            ("2026-11-23T08:00:00.9999Z", Some(1_795_420_800_999)),
            ("2026-11-23T08:00:00.123456789Z", Some(1_795_420_800_123)),
            ("2026-11-23T08:00:00.1234567891Z", Some(1_795_420_800_123)),
            ("1969-12-31T23:59:59.9995Z", Some(0)),
            // A leap second ends a month (in UTC) and reads as the last
            // millisecond before it.
            ("2026-12-31T23:59:60Z", Some(1_798_761_599_999)),
            ("2026-12-31T23:59:60.5Z", Some(1_798_761_599_999)),
            ("2027-01-01T00:59:60+01:00", Some(1_798_761_599_999)),
            ("2026-11-23T23:59:60Z", None),
            ("2026-12-31T22:59:60Z", None),
            ("2026-11-23T08:00:00+24:00", None),
            ("2026-11-23T08:00:00+01:60", None),
            ("2026-11-23T08:00:00+0200", None),
            ("2026-11-23T08:00:00", None),
            ("2026-11-23", None),
            ("2026-11-23T08:00:00.Z", None),
            ("2026-11-23T08:00:00,5Z", None),
            ("2026-02-29T08:00:00Z", None),
            ("2026-11-23T24:00:00Z", None),
            ("2026-1-23T08:00:00Z", None),
            ("2026-11-23T8:00:00Z", None),
            ("+2026-11-23T08:00:00Z", None),
            ("12026-11-23T08:00:00Z", None),
            (" 2026-11-23T08:00:00Z", None),
            ("2026-11-23T08:00:00Z ", None),
            ("2026-11-23é08:00:00Z", None),
            ("", None),
        ];
        for (text, want) in read {
            assert_eq!(parse_rfc3339(text), want, "{text:?}");
        }
    }
}
