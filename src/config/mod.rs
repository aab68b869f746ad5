//! Settings: the [`Config`](crate::config::Config) structure, its sections, defaults and validation.
//!
//! [`Config`](crate::config::Config) is read once from `hookline.toml` plus `HOOKLINE_*` environment
//! overrides (`load.rs`), validated once, and then only read, as typed values,
//! by every other module.
//!
//! The file is walked by hand rather than through serde so that every error
//! names the full key (`dispatch.retry_schedule[2]`) or the environment
//! variable it came from, and so that the file and the environment share one
//! conversion per key. The duration and size parsers live here too
//! (`values.rs`); the CLI reuses them for flags such as `--timeout 15s`.

mod load;
mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

pub use ipnet::IpNet;
use load::SECTIONS;
pub use load::{ENV_CONFIG, ENV_LOG, ENV_NOT_SETTINGS};
pub use values::{
    ByteSize, LOG_LEVELS, LogFormat, ProxyUrl, format_duration, format_size, parse_duration,
    parse_log_filter, parse_network, parse_size,
};

/// No duration setting may exceed this: larger values are typos, and adding
/// them to a timestamp could overflow.
const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

/// All settings. Build it with [`Config::load`] (or [`Config::from_toml_str`]
/// in tests); [`Config::default`] is what an empty file gives.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// `[database]`: where the state lives.
    pub database: DatabaseConfig,
    /// `[dispatch]`: the delivery engine.
    pub dispatch: DispatchConfig,
    /// `[limits]`: what producers may send.
    pub limits: LimitsConfig,
    /// `[log]`: diagnostics.
    pub log: LogConfig,
    /// `[api]`: the HTTP API that `hookline serve` runs.
    pub api: ApiConfig,
    /// `[network]`: where deliveries may go.
    pub network: NetworkConfig,
    /// `[secrets]`: encryption at rest of endpoint secrets.
    pub secrets: SecretsConfig,
    /// `[metrics]`: what Prometheus can scrape, and where.
    pub metrics: MetricsConfig,
    /// `[retention]`: how long history is kept.
    pub retention: RetentionConfig,
    /// `[protection]`: sparing receivers that keep failing.
    pub protection: ProtectionConfig,
}

/// `[protection]` settings: each endpoint's circuit breaker (see
/// [`crate::protect`] and `config/hookline.toml`).
#[derive(Debug, Clone, PartialEq)]
pub struct ProtectionConfig {
    /// Off: outcomes are not counted and no breaker opens by itself
    /// (a state an operator forced still holds).
    pub breaker: bool,
    /// The sliding window the failure ratio is taken over.
    pub window: Duration,
    /// Fewest attempts in the window before the ratio can open a breaker.
    pub min_attempts: u32,
    /// Share of the window's attempts that failed at which it opens.
    pub failure_ratio: f64,
    /// Failures in a row, across all dispatchers, at which it opens; 0: off.
    pub consecutive_failures: u32,
    /// Wait before the first probe; doubled on each re-open.
    pub cooldown: Duration,
    /// The longest wait before a probe.
    pub max_cooldown: Duration,
    /// An endpoint whose every attempt has failed this long is disabled;
    /// zero: never.
    pub disable_after: Duration,
    /// The longest a receiver's `Retry-After` holds its whole endpoint.
    pub max_retry_after: Duration,
}

impl Default for ProtectionConfig {
    fn default() -> Self {
        ProtectionConfig {
            breaker: true,
            window: Duration::from_secs(60),
            min_attempts: 10,
            failure_ratio: 0.5,
            consecutive_failures: 20,
            cooldown: Duration::from_secs(30),
            max_cooldown: Duration::from_secs(30 * 60),
            disable_after: Duration::from_secs(5 * 86_400),
            max_retry_after: Duration::from_secs(3600),
        }
    }
}

impl ProtectionConfig {
    /// What is wrong with these settings, by key (`None`: nothing).
    fn problems(&self) -> Vec<(String, Option<String>)> {
        let between = |key: &str, value: Duration, low: Duration, high: Duration| {
            let problem = (value < low || value > high).then(|| {
                format!(
                    "must be between {} and {}, got {}",
                    format_duration(low),
                    format_duration(high),
                    format_duration(value)
                )
            });
            (format!("protection.{key}"), problem)
        };
        let second = Duration::from_secs(1);
        let day = Duration::from_secs(86_400);
        vec![
            between("window", self.window, second, day),
            between("cooldown", self.cooldown, second, day),
            between("max_cooldown", self.max_cooldown, self.cooldown, day),
            between("max_retry_after", self.max_retry_after, Duration::ZERO, day),
            (
                "protection.disable_after".into(),
                (self.disable_after > MAX_DURATION).then(|| {
                    format!(
                        "must be at most {}, got {}",
                        format_duration(MAX_DURATION),
                        format_duration(self.disable_after)
                    )
                }),
            ),
            (
                "protection.failure_ratio".into(),
                (!(self.failure_ratio > 0.0 && self.failure_ratio <= 1.0))
                    .then(|| format!("must be above 0 and at most 1, got {}", self.failure_ratio)),
            ),
            (
                "protection.min_attempts".into(),
                (self.min_attempts == 0).then(|| "must be at least 1, got 0".to_string()),
            ),
        ]
    }
}

/// `[retention]` settings: how long each kind of row is kept, counted from
/// when it was written (an event's `created_at` for events, deliveries and
/// attempts). Zero turns a rule off; see `config/hookline.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionConfig {
    /// Events whose every delivery succeeded or was cancelled (or that
    /// matched no endpoint), with their deliveries and attempts.
    pub succeeded: Duration,
    /// Events with a dead delivery and none unfinished.
    pub dead: Duration,
    /// Deliveries held by a paused or disabled endpoint longer than this end dead.
    pub held: Duration,
    /// Per-minute health rollups.
    pub health: Duration,
    /// Rows of dispatchers that stopped (or stopped beating) this long ago.
    pub dispatchers: Duration,
    /// Audit log rows.
    pub audit: Duration,
    /// Idempotency keys: an older key no longer deduplicates.
    pub idempotency: Duration,
    /// Payload bytes of events whose deliveries have all finished (off by
    /// default): the event keeps id, topic and size, and its deliveries can
    /// no longer be retried.
    pub payload: Duration,
    /// Circuit breaker transitions.
    pub breaker: Duration,
    /// Per-minute failures by cause (the endpoint detail's grouping).
    pub failure_causes: Duration,
    /// Attempts kept per delivery: its first and its latest; 0 keeps all.
    pub attempts_per_delivery: u32,
    /// How often the pruner looks for what has expired.
    pub interval: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        let (m, h, d) = (60, 3600, 86_400);
        RetentionConfig {
            succeeded: Duration::from_secs(14 * d),
            dead: Duration::from_secs(30 * d),
            held: Duration::from_secs(30 * d),
            health: Duration::from_secs(7 * d),
            dispatchers: Duration::from_secs(d),
            audit: Duration::from_secs(400 * d),
            idempotency: Duration::from_secs(24 * h),
            payload: Duration::ZERO,
            breaker: Duration::from_secs(30 * d),
            failure_causes: Duration::from_secs(7 * d),
            attempts_per_delivery: 20,
            interval: Duration::from_secs(m),
        }
    }
}

/// No retention may exceed this (ten years): larger values are typos.
const MAX_RETENTION: Duration = Duration::from_secs(3650 * 86_400);

impl RetentionConfig {
    /// Each rule's key and duration.
    pub fn rules(&self) -> [(&'static str, Duration); 10] {
        [
            ("succeeded", self.succeeded),
            ("dead", self.dead),
            ("held", self.held),
            ("health", self.health),
            ("dispatchers", self.dispatchers),
            ("audit", self.audit),
            ("idempotency", self.idempotency),
            ("payload", self.payload),
            ("breaker", self.breaker),
            ("failure_causes", self.failure_causes),
        ]
    }

    /// What is wrong with these settings, by key (`None`: nothing).
    fn problems(&self) -> Vec<(String, Option<String>)> {
        let mut problems: Vec<(String, Option<String>)> = self
            .rules()
            .into_iter()
            .map(|(key, value)| {
                let problem = (value > MAX_RETENTION).then(|| {
                    format!(
                        "must be at most {}, got {}",
                        format_duration(MAX_RETENTION),
                        format_duration(value)
                    )
                });
                (format!("retention.{key}"), problem)
            })
            .collect();
        problems.push((
            "retention.attempts_per_delivery".into(),
            (self.attempts_per_delivery == 1).then(|| {
                "must be 0 (keep every attempt) or at least 2 (the first and the latest), got 1"
                    .to_string()
            }),
        ));
        problems.push((
            "retention.interval".into(),
            (self.interval < Duration::from_secs(1) || self.interval > Duration::from_secs(86_400))
                .then(|| {
                    format!(
                        "must be between 1s and 1d, got {}",
                        format_duration(self.interval)
                    )
                }),
        ));
        problems
    }
}

/// `[metrics]` settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricsConfig {
    /// A listener of its own for `/metrics` in `dispatch` and `serve`
    /// (`None`, an empty `listen`, the default: none; `serve` still answers
    /// `/metrics` on its API listener).
    pub listen: Option<std::net::SocketAddr>,
    /// Attempts by `endpoint_id` as well: one series per endpoint and outcome.
    pub per_endpoint: bool,
}

/// `[secrets]` settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SecretsConfig {
    /// Seals signing secrets, URL passwords and sensitive header values in
    /// the database (see [`crate::seal`]); `None` (the default, an empty
    /// `key`) stores them plain.
    pub key: Option<crate::seal::SecretsKey>,
}

/// `[database]` settings.
#[derive(Clone, PartialEq)]
pub struct DatabaseConfig {
    /// `sqlite:…` (embedded) or `postgres:…`/`postgresql:…`. May hold a
    /// password: log [`DatabaseConfig::redacted_url`], never this.
    pub url: String,
    /// Postgres: most connections each hookline process opens (≥ 1).
    pub max_connections: u32,
}

/// `[dispatch]` settings; see `config/hookline.toml` for what each does.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchConfig {
    /// Attempts in flight at once per dispatcher process (≥ 1).
    pub concurrency: usize,
    /// Default per-endpoint cap on attempts in flight, counted in the
    /// database so it holds across processes (≥ 1; an endpoint may override).
    pub max_in_flight_per_endpoint: u32,
    /// Default per-attempt timeout (> 0, < `lease`; an endpoint may override).
    pub timeout: Duration,
    /// Delay before attempt 1, 2, …; its length is the number of attempts.
    pub retry_schedule: Vec<Duration>,
    /// Random spread on each retry delay as a fraction: 0.2 is ±20 %. In [0, 1).
    pub jitter: f64,
    /// How long a claimed delivery stays leased before another dispatcher may
    /// take it (≥ 1s).
    pub lease: Duration,
    /// Most deliveries claimed per database round trip (≥ 1).
    pub batch_size: usize,
    /// Fallback poll when no wake-up signal arrives (> 0).
    pub poll_interval: Duration,
    /// How often a dispatcher writes its heartbeat row (> 0).
    pub heartbeat_interval: Duration,
    /// On SIGINT/SIGTERM, how long in-flight attempts may finish before their
    /// leases are released.
    pub shutdown_grace: Duration,
    /// A response body larger than this fails the attempt (`too_large_response`).
    pub max_response_body: ByteSize,
    /// How long the old secret keeps signing after `rotate-secret`.
    pub secret_rotation_grace: Duration,
}

/// `[limits]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitsConfig {
    /// Largest event payload accepted from producers (≥ 1 byte).
    pub max_payload: ByteSize,
}

/// `[network]` settings: which addresses deliveries may reach, and how.
/// The built-in block list (loopback, private, link-local… see
/// `dispatch::guard`) applies unless `allow` lifts it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NetworkConfig {
    /// Networks deliveries may reach although the block list covers them.
    pub allow: Vec<IpNet>,
    /// Networks blocked beyond the block list; these win over `allow`.
    pub deny: Vec<IpNet>,
    /// An HTTP egress proxy every delivery goes through.
    pub proxy: Option<ProxyUrl>,
}

/// `[api]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    /// Address the HTTP API listens on.
    pub listen: std::net::SocketAddr,
    /// Serve `/healthz` and `/metrics` without an API key (for load
    /// balancers and Prometheus scrapers on a trusted network).
    pub open_health_metrics: bool,
}

/// `[log]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Line format.
    pub format: LogFormat,
    /// A log filter, e.g. `info` or `info,hookline::dispatch=debug`: each
    /// comma-separated directive a level or `target=level`, as
    /// [`parse_log_filter`] checks.
    pub level: String,
}

/// Why a configuration could not be loaded. The message is complete on its
/// own (it names the file, key or variable and the reason): print it with `{}`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {reason}", path.display())]
    Read {
        /// The path as given.
        path: PathBuf,
        /// What the operating system said.
        reason: io::Error,
    },
    /// The file is not valid TOML.
    #[error("{origin}: {message}")]
    Syntax {
        /// The file's path, or `config` for a string.
        origin: String,
        /// The TOML parser's message, with line and column.
        message: String,
    },
    /// A `[section]` that hookline does not have.
    #[error("{section}: unknown section (expected one of: {})", SECTIONS.join(", "))]
    UnknownSection {
        /// The section name as written.
        section: String,
    },
    /// A key that its section does not have.
    #[error("{key}: unknown key")]
    UnknownKey {
        /// The full key, e.g. `dispatch.concurency`.
        key: String,
    },
    /// A `HOOKLINE_*` variable that is neither a setting nor allow-listed.
    #[error(
        "{var}: unknown variable: not a setting (HOOKLINE_<SECTION>_<KEY>, e.g. \
         HOOKLINE_DISPATCH_CONCURRENCY) nor one of {}",
        ENV_NOT_SETTINGS.join(", ")
    )]
    UnknownEnv {
        /// The variable's name.
        var: String,
    },
    /// A `HOOKLINE_*` variable whose name or value is not UTF-8.
    #[error("{var}: not valid UTF-8")]
    NotUnicode {
        /// The variable's name, lossily decoded.
        var: String,
    },
    /// A `HOOKLINE_*` variable that is not a setting (`HOOKLINE_LOG`) holding
    /// a value it cannot take.
    #[error("{var}: {message}")]
    InvalidVariable {
        /// The variable's name.
        var: String,
        /// What is wrong, e.g. `"nonsense" is not a log filter: …`.
        message: String,
    },
    /// A value of the wrong type or out of range, from the file or from `env`.
    #[error("{}: {message}", match env {
        Some(var) => format!("{var} ({key})"),
        None => key.clone(),
    })]
    Invalid {
        /// The full key, with an index for list items: `dispatch.retry_schedule[2]`.
        key: String,
        /// The environment variable the value came from, if not the file.
        env: Option<String>,
        /// What is wrong, e.g. `must be between 0 and 1, got 1.5`.
        message: String,
    },
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://hookline.db".to_owned(),
            max_connections: 16,
        }
    }
}

impl Default for DispatchConfig {
    fn default() -> Self {
        let (s, m, h) = (1, 60, 3600);
        DispatchConfig {
            // An endpoint's slot stays taken until its outcome is committed,
            // a cycle or two after the receiver answered. With fast receivers
            // the earlier caps (64 slots, 8 per endpoint) ran out of slots
            // before the dispatcher ran out of CPU; these delivered about a
            // fifth more per second for less CPU per delivery, and doubling
            // them again gained nothing. One endpoint may still take only an
            // eighth of the slots, as before.
            concurrency: 256,
            max_in_flight_per_endpoint: 32,
            timeout: Duration::from_secs(15 * s),
            retry_schedule: [0, 5 * s, 5 * m, 30 * m, 2 * h, 5 * h, 10 * h, 10 * h]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            jitter: 0.2,
            lease: Duration::from_secs(60 * s),
            batch_size: 128,
            poll_interval: Duration::from_secs(s),
            heartbeat_interval: Duration::from_secs(2 * s),
            shutdown_grace: Duration::from_secs(10 * s),
            max_response_body: ByteSize(1 << 20),
            secret_rotation_grace: Duration::from_secs(24 * h),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_payload: ByteSize(256 << 10),
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
            open_health_metrics: false,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

impl DispatchConfig {
    /// How recent a dispatcher's heartbeat must be for it to count as alive:
    /// three heartbeat intervals, and at least 5 s.
    pub fn alive_within(&self) -> Duration {
        (self.heartbeat_interval * 3).max(Duration::from_secs(5))
    }
}

impl Config {
    /// Checks the invariants that [`Config::load`] enforces; for configs built
    /// in code (tests, `demo`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check(&BTreeMap::new())
    }

    fn check(&self, origins: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        let d = &self.dispatch;
        let zero = |n: u64| (n == 0).then(|| "must be at least 1, got 0".to_owned());
        let instant = |v: Duration| v.is_zero().then(|| "must be greater than 0s".to_owned());
        let too_long = |v: Duration| {
            let max = format_duration(MAX_DURATION);
            (v > MAX_DURATION).then(|| format!("must be at most {max}, got {}", format_duration(v)))
        };
        // Checked in order; the first failure is reported.
        let mut rules: Vec<(String, Option<String>)> = vec![
            ("database.url".into(), url_problem(&self.database.url)),
            (
                "database.max_connections".into(),
                zero(self.database.max_connections.into()),
            ),
            ("dispatch.concurrency".into(), zero(d.concurrency as u64)),
            (
                "dispatch.max_in_flight_per_endpoint".into(),
                zero(d.max_in_flight_per_endpoint.into()),
            ),
            ("dispatch.batch_size".into(), zero(d.batch_size as u64)),
            (
                "dispatch.retry_schedule".into(),
                d.retry_schedule.is_empty().then(|| {
                    "must list at least one delay (its length is the number of attempts)".to_owned()
                }),
            ),
            (
                "dispatch.jitter".into(),
                (!(0.0..1.0).contains(&d.jitter))
                    .then(|| format!("must be between 0 and 1, got {}", d.jitter)),
            ),
            ("dispatch.timeout".into(), instant(d.timeout)),
            ("dispatch.poll_interval".into(), instant(d.poll_interval)),
            (
                "dispatch.heartbeat_interval".into(),
                instant(d.heartbeat_interval),
            ),
            (
                "dispatch.lease".into(),
                (d.lease < Duration::from_secs(1))
                    .then(|| format!("must be at least 1s, got {}", format_duration(d.lease))),
            ),
            // Otherwise an attempt could outlive its lease and be sent twice.
            (
                "dispatch.timeout".into(),
                (d.timeout >= d.lease).then(|| {
                    let by = origins
                        .get("dispatch.lease")
                        .map(|var| format!(", set by {var}"));
                    format!(
                        "must be shorter than dispatch.lease ({}{}), got {}",
                        format_duration(d.lease),
                        by.unwrap_or_default(),
                        format_duration(d.timeout)
                    )
                }),
            ),
            (
                "limits.max_payload".into(),
                (self.limits.max_payload.0 == 0)
                    .then(|| "must be at least 1 byte, got 0".to_owned()),
            ),
            ("log.level".into(), parse_log_filter(&self.log.level).err()),
        ];
        for (key, value) in [
            ("timeout", d.timeout),
            ("lease", d.lease),
            ("poll_interval", d.poll_interval),
            ("heartbeat_interval", d.heartbeat_interval),
            ("shutdown_grace", d.shutdown_grace),
            ("secret_rotation_grace", d.secret_rotation_grace),
        ] {
            rules.push((format!("dispatch.{key}"), too_long(value)));
        }
        for (i, value) in d.retry_schedule.iter().enumerate() {
            rules.push((format!("dispatch.retry_schedule[{i}]"), too_long(*value)));
        }
        rules.extend(self.retention.problems());
        rules.extend(self.protection.problems());
        match rules
            .into_iter()
            .find_map(|(key, problem)| Some((key, problem?)))
        {
            None => Ok(()),
            Some((key, message)) => Err(ConfigError::Invalid {
                env: key.split('[').next().and_then(|k| origins.get(k)).cloned(),
                key,
                message,
            }),
        }
    }
}

/// What is wrong with a `database.url`, echoing only its scheme: the rest may
/// hold a password.
fn url_problem(url: &str) -> Option<String> {
    if ["sqlite:", "postgres:", "postgresql:"]
        .iter()
        .any(|p| url.starts_with(p))
    {
        return None;
    }
    let got = match url.split_once(':') {
        Some((scheme, _)) => format!("got {:?}", format!("{scheme}:")),
        None => "got no scheme".to_owned(),
    };
    Some(format!(
        "must start with sqlite:, postgres: or postgresql: ({got})"
    ))
}

impl DatabaseConfig {
    /// The URL with any password replaced by `***`, for logs and screens.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &self.redacted_url())
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// Replaces the password of `scheme://user:password@host/…` and any
/// `password=` query parameter with `***`: the one redaction for database
/// URLs, which the store uses too for the location it reports.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(start) = url.find("://").map(|i| i + 3) {
        let end = url[start..]
            .find(['/', '?', '#'])
            .map_or(url.len(), |i| start + i);
        if let Some(at) = url[start..end].rfind('@').map(|i| start + i)
            && let Some(colon) = url[start..at].find(':').map(|i| start + i)
        {
            out = format!("{}:***{}", &url[..colon], &url[at..]);
        }
    }
    if let Some((base, query)) = out.split_once('?') {
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out = format!("{base}?{}", query.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_redacted_url_hide_passwords() {
        let db = DatabaseConfig {
            url: "postgres://hook:s3cret@db:5432/hookline?sslmode=require&password=also".to_owned(),
            ..DatabaseConfig::default()
        };
        assert_eq!(
            db.redacted_url(),
            "postgres://hook:***@db:5432/hookline?sslmode=require&password=***"
        );
        assert!(!format!("{db:?}").contains("s3cret"));
        let plain = DatabaseConfig::default();
        assert_eq!(plain.redacted_url(), "sqlite://hookline.db");
    }

    #[test]
    fn redact_url_hides_a_password_in_the_query_without_userinfo() {
        let cases = [
            (
                "postgres://u@h/db?password=secret",
                "postgres://u@h/db?password=***",
            ),
            (
                "postgresql://h/db?sslmode=require&PASSWORD=secret&application_name=x",
                "postgresql://h/db?sslmode=require&PASSWORD=***&application_name=x",
            ),
            (
                "postgres://u:secret@h:5432/db",
                "postgres://u:***@h:5432/db",
            ),
            ("postgres://u@db/h", "postgres://u@db/h"),
            (
                "sqlite://hookline.db?mode=rwc",
                "sqlite://hookline.db?mode=rwc",
            ),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want);
        }
    }
}
