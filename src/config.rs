//! Settings: [`Config`] is read once from `hookline.toml` plus `HOOKLINE_*`
//! environment overrides, validated once, and then only read, as typed values,
//! by every other module.
//!
//! The file is walked by hand rather than through serde so that every error
//! names the full key (`dispatch.retry_schedule[2]`) or the environment
//! variable it came from, and so that the file and the environment share one
//! conversion per key. The duration and size parsers live here too; the CLI
//! reuses them for flags such as `--timeout 15s`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Environment variable naming the config file that [`Config::load`] reads
/// when it is given no path.
pub const ENV_CONFIG: &str = "HOOKLINE_CONFIG";

/// Environment variable reserved for the logging set-up (a `RUST_LOG`-style
/// filter). [`Config`] does not read it; `log.level` is the setting.
pub const ENV_LOG: &str = "HOOKLINE_LOG";

/// `HOOKLINE_*` variables that are not settings, so they are not rejected as
/// unknown overrides.
pub const ENV_NOT_SETTINGS: &[&str] = &[ENV_CONFIG, ENV_LOG];

const ENV_PREFIX: &str = "HOOKLINE_";

/// The sections of the file; each is one word, so `HOOKLINE_<SECTION>_<KEY>`
/// splits at the first `_` after the prefix.
const SECTIONS: [&str; 5] = ["database", "dispatch", "limits", "log", "api"];

/// Every setting as (section, key). [`apply`] must accept each of them; the
/// tests check that this list, `apply` and `config/hookline.toml` agree.
const KEYS: [(&str, &str); 18] = [
    ("database", "url"),
    ("dispatch", "concurrency"),
    ("dispatch", "max_in_flight_per_endpoint"),
    ("dispatch", "timeout"),
    ("dispatch", "retry_schedule"),
    ("dispatch", "jitter"),
    ("dispatch", "lease"),
    ("dispatch", "batch_size"),
    ("dispatch", "poll_interval"),
    ("dispatch", "heartbeat_interval"),
    ("dispatch", "shutdown_grace"),
    ("dispatch", "max_response_body"),
    ("dispatch", "secret_rotation_grace"),
    ("limits", "max_payload"),
    ("log", "format"),
    ("log", "level"),
    ("api", "listen"),
    ("api", "open_health_metrics"),
];

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
}

/// `[database]` settings.
#[derive(Clone, PartialEq)]
pub struct DatabaseConfig {
    /// `sqlite:…` (embedded) or `postgres:…`/`postgresql:…`. May hold a
    /// password: log [`DatabaseConfig::redacted_url`], never this.
    pub url: String,
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
    /// A `tracing_subscriber::EnvFilter` directive, e.g. `info` or
    /// `info,hookline::dispatch=debug`; validated to parse.
    pub level: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A number of bytes, written in settings as `512`, `4KiB`, `1MiB`, `1MB`, ….
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

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
        }
    }
}

impl Default for DispatchConfig {
    fn default() -> Self {
        let (s, m, h) = (1, 60, 3600);
        DispatchConfig {
            // An endpoint's slot stays taken until the outcome is committed,
            // a cycle or two after the answer: at 64 / 8, fast receivers
            // left a dispatcher short of slots before it was short of CPU
            // (BENCHMARKS.md, "Larger default caps"). One endpoint may still
            // take only an eighth of the slots, as before.
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

impl Config {
    /// Reads `path` (or, if `None`, the file named by `HOOKLINE_CONFIG`; with
    /// neither, starts from the defaults), applies `HOOKLINE_*` overrides from
    /// the process environment, and validates the result.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_from(path, std::env::vars_os())
    }

    /// Parses `toml`, applies the `HOOKLINE_*` overrides found in `env` (other
    /// variables are ignored), and validates the result. Tests pass their own
    /// `env` so they never touch the process environment.
    pub fn from_toml_str(
        toml: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        Self::build(toml, "config", env.into_iter().collect())
    }

    /// Checks the invariants that [`Config::load`] enforces; for configs built
    /// in code (tests, `demo`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check(&BTreeMap::new())
    }

    fn load_from(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<Config, ConfigError> {
        let mut env = Vec::new();
        let mut config_var = None;
        for (name, value) in vars {
            let lossy = name.to_string_lossy().into_owned();
            if !lossy.starts_with(ENV_PREFIX) {
                continue;
            }
            if lossy == ENV_CONFIG {
                config_var = Some(value);
                continue;
            }
            if is_allowed(&lossy) {
                continue;
            }
            match (name.into_string(), value.into_string()) {
                (Ok(name), Ok(value)) => env.push((name, value)),
                _ => return Err(ConfigError::NotUnicode { var: lossy }),
            }
        }
        let from_var = config_var.filter(|v| !v.is_empty()).map(PathBuf::from);
        match path.or(from_var.as_deref()) {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|reason| ConfigError::Read {
                    path: path.to_owned(),
                    reason,
                })?;
                Self::build(&text, &path.display().to_string(), env)
            }
            None => Self::build("", "config", env),
        }
    }

    fn build(toml: &str, origin: &str, env: Vec<(String, String)>) -> Result<Config, ConfigError> {
        let table: toml::Table =
            toml.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    origin: origin.to_owned(),
                    message: e.to_string().trim_end().to_owned(),
                })?;
        let mut config = Config::default();
        config.apply_file(&table)?;
        let origins = config.apply_env(env)?;
        config.check(&origins)?;
        Ok(config)
    }

    fn apply_file(&mut self, root: &toml::Table) -> Result<(), ConfigError> {
        for (section, value) in root {
            if !SECTIONS.contains(&section.as_str()) {
                return Err(ConfigError::UnknownSection {
                    section: section.clone(),
                });
            }
            let toml::Value::Table(table) = value else {
                return Err(ConfigError::Invalid {
                    key: section.clone(),
                    env: None,
                    message: format!(
                        "expected a [{section}] table, found a TOML {}",
                        value.type_str()
                    ),
                });
            };
            for (key, value) in table {
                match apply(self, section, key, Raw::Toml(value)) {
                    None => {
                        return Err(ConfigError::UnknownKey {
                            key: format!("{section}.{key}"),
                        });
                    }
                    Some(Err(problem)) => return Err(problem.into_error(section, key, None)),
                    Some(Ok(())) => {}
                }
            }
        }
        Ok(())
    }

    /// Applies the overrides; returns which variable set each key.
    fn apply_env(
        &mut self,
        env: Vec<(String, String)>,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut vars: Vec<_> = env
            .into_iter()
            .filter(|(name, _)| name.starts_with(ENV_PREFIX))
            .collect();
        // Sorted so that the outcome does not depend on the environment's order
        // (with two spellings of one key, e.g. _JITTER and _jitter, the last wins).
        vars.sort();
        let mut origins = BTreeMap::<String, String>::new();
        for (var, value) in vars {
            if is_allowed(&var) {
                continue;
            }
            let rest = var[ENV_PREFIX.len()..].to_ascii_lowercase();
            let Some((section, key)) = rest.split_once('_').filter(|sk| KEYS.contains(sk)) else {
                return Err(ConfigError::UnknownEnv { var });
            };
            match apply(self, section, key, Raw::Env(&value)) {
                Some(Ok(())) => {}
                Some(Err(problem)) => return Err(problem.into_error(section, key, Some(var))),
                None => return Err(ConfigError::UnknownEnv { var }),
            }
            origins.insert(format!("{section}.{key}"), var);
        }
        Ok(origins)
    }

    fn check(&self, origins: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        let (d, level) = (&self.dispatch, self.log.level.trim());
        let zero = |n: u64| (n == 0).then(|| "must be at least 1, got 0".to_owned());
        let instant = |v: Duration| v.is_zero().then(|| "must be greater than 0s".to_owned());
        let too_long = |v: Duration| {
            let max = format_duration(MAX_DURATION);
            (v > MAX_DURATION).then(|| format!("must be at most {max}, got {}", format_duration(v)))
        };
        // Checked in order; the first failure is reported.
        let mut rules: Vec<(String, Option<String>)> =
            vec![
            ("database.url".into(), url_problem(&self.database.url)),
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
                    let by = origins.get("dispatch.lease").map(|var| format!(", set by {var}"));
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
            (
                "log.level".into(),
                level
                    .is_empty()
                    .then(|| "must not be empty (e.g. info)".to_owned()),
            ),
            (
                "log.level".into(),
                tracing_subscriber::EnvFilter::try_new(level)
                    .err()
                    .map(|e| {
                        format!(
                            "{level:?} is not a log filter (e.g. info, or info,hookline=debug): {e}"
                        )
                    }),
            ),
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
            .finish()
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("{s:?} is not a log format (use text or json)")),
        }
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_size(*self))
    }
}

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        parse_size(s)
    }
}

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Duration units, largest first: parsing wants them in this order and
/// formatting emits them in it.
const DURATION_UNITS: [(&str, u128); 7] = [
    ("d", 86_400 * NANOS_PER_SEC),
    ("h", 3_600 * NANOS_PER_SEC),
    ("m", 60 * NANOS_PER_SEC),
    ("s", NANOS_PER_SEC),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

/// Parses a duration such as `250ms`, `15s`, `5m`, `2h`, `1d` or `1h30m`
/// (units `d h m s ms us ns`, each at most once, largest first). A bare number
/// is refused: units are required. The error is a complete sentence quoting `s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    let not_a_duration = || format!("{s:?} is not a duration (use e.g. 250ms, 15s, 5m, 2h)");
    if text.is_empty() {
        return Err(not_a_duration());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{s:?} has no unit: units are required (use e.g. 250ms, 15s, 5m, 2h)"
        ));
    }
    let too_large = || format!("{s:?} is too long a duration");
    let mut rest = text;
    let mut total: u128 = 0;
    let mut previous: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (number, tail) = rest.split_at(digits);
        let letters = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(letters);
        let rank = DURATION_UNITS.iter().position(|(u, _)| *u == unit);
        let Some(rank) = rank.filter(|_| digits > 0) else {
            return Err(not_a_duration());
        };
        if previous.is_some_and(|p| rank <= p) {
            return Err(format!(
                "{s:?} is not a duration: give each unit once, largest first (e.g. 1h30m)"
            ));
        }
        previous = Some(rank);
        let n: u128 = number.parse().map_err(|_| too_large())?;
        total = n
            .checked_mul(DURATION_UNITS[rank].1)
            .and_then(|ns| total.checked_add(ns))
            .ok_or_else(too_large)?;
        rest = tail;
    }
    let secs = u64::try_from(total / NANOS_PER_SEC).map_err(|_| too_large())?;
    // The remainder is below 10^9, so it fits.
    Ok(Duration::new(secs, (total % NANOS_PER_SEC) as u32))
}

/// Writes `d` in the form [`parse_duration`] reads back exactly, largest units
/// first: `0s`, `250ms`, `5m`, `1h30m`, `1d`.
pub fn format_duration(d: Duration) -> String {
    let mut left = d.as_nanos();
    if left == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in DURATION_UNITS {
        if left >= size {
            out.push_str(&(left / size).to_string());
            out.push_str(unit);
            left %= size;
        }
    }
    out
}

/// Size units in the order [`format_size`] prefers them when lengths tie.
const SIZE_UNITS: [(&str, u64); 6] = [
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
];

/// Parses a size: bytes (`512`, `512B`), powers of 1024 (`4KiB`, `1MiB`,
/// `1GiB`) or powers of 1000 (`4KB`, `1MB`, `1GB`); units ignore case and may
/// follow a space. The error is a complete sentence quoting `s`.
pub fn parse_size(s: &str) -> Result<ByteSize, String> {
    let text = s.trim();
    let not_a_size = || format!("{s:?} is not a size (use e.g. 512, 4KiB, 256KiB, 1MiB)");
    let too_large = || format!("{s:?} is too large a size");
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(not_a_size());
    }
    let (number, unit) = text.split_at(digits);
    let unit = unit.trim_start();
    let multiplier = if unit.is_empty() || unit.eq_ignore_ascii_case("b") {
        1
    } else {
        SIZE_UNITS
            .iter()
            .find(|(u, _)| u.eq_ignore_ascii_case(unit))
            .map(|(_, m)| *m)
            .ok_or_else(not_a_size)?
    };
    let n: u64 = number.parse().map_err(|_| too_large())?;
    n.checked_mul(multiplier)
        .map(ByteSize)
        .ok_or_else(too_large)
}

/// Writes `size` in the shortest form [`parse_size`] reads back exactly,
/// preferring binary units on a tie: `512`, `4KiB`, `1MiB`, `1KB`.
pub fn format_size(size: ByteSize) -> String {
    let n = size.0;
    let mut best: Option<String> = None;
    for (unit, multiplier) in SIZE_UNITS {
        if n != 0 && n.is_multiple_of(multiplier) {
            let candidate = format!("{}{unit}", n / multiplier);
            if best.as_ref().is_none_or(|b| candidate.len() < b.len()) {
                best = Some(candidate);
            }
        }
    }
    let bytes = n.to_string();
    match best {
        Some(b) if b.len() <= bytes.len() => b,
        _ => bytes,
    }
}

fn is_allowed(name: &str) -> bool {
    ENV_NOT_SETTINGS.contains(&name)
}

/// Replaces the password of `scheme://user:password@host/…` and any
/// `password=` query parameter with `***`.
fn redact_url(url: &str) -> String {
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

/// A value to convert, from the file or from an environment variable.
#[derive(Clone, Copy)]
enum Raw<'a> {
    Toml(&'a toml::Value),
    Env(&'a str),
}

/// A conversion failure, before it is tied to a key.
struct Problem {
    /// Which list item, for list settings.
    index: Option<usize>,
    message: String,
}

impl Problem {
    fn at(self, index: usize) -> Problem {
        Problem {
            index: Some(index),
            ..self
        }
    }

    fn into_error(self, section: &str, key: &str, env: Option<String>) -> ConfigError {
        let key = match self.index {
            Some(i) => format!("{section}.{key}[{i}]"),
            None => format!("{section}.{key}"),
        };
        ConfigError::Invalid {
            key,
            env,
            message: self.message,
        }
    }
}

impl From<String> for Problem {
    fn from(message: String) -> Self {
        Problem {
            index: None,
            message,
        }
    }
}

fn expected(what: &str, found: &toml::Value) -> Problem {
    format!("expected {what}, found a TOML {}", found.type_str()).into()
}

/// A setting's type: how to read it from TOML and from an env string. By
/// default an env value reads as a TOML string would.
trait Setting: Sized {
    fn from_toml(value: &toml::Value) -> Result<Self, Problem>;
    fn from_env(value: &str) -> Result<Self, Problem> {
        Self::from_toml(&toml::Value::String(value.to_owned()))
    }
}

/// Sets the one key `section.key`; `None` if there is no such key.
fn apply(
    config: &mut Config,
    section: &str,
    key: &str,
    raw: Raw<'_>,
) -> Option<Result<(), Problem>> {
    fn set<T: Setting>(slot: &mut T, raw: Raw<'_>) -> Result<(), Problem> {
        *slot = match raw {
            Raw::Toml(value) => T::from_toml(value)?,
            Raw::Env(value) => T::from_env(value)?,
        };
        Ok(())
    }
    let d = &mut config.dispatch;
    Some(match (section, key) {
        ("database", "url") => set(&mut config.database.url, raw),
        ("dispatch", "concurrency") => set(&mut d.concurrency, raw),
        ("dispatch", "max_in_flight_per_endpoint") => set(&mut d.max_in_flight_per_endpoint, raw),
        ("dispatch", "timeout") => set(&mut d.timeout, raw),
        ("dispatch", "retry_schedule") => set(&mut d.retry_schedule, raw),
        ("dispatch", "jitter") => set(&mut d.jitter, raw),
        ("dispatch", "lease") => set(&mut d.lease, raw),
        ("dispatch", "batch_size") => set(&mut d.batch_size, raw),
        ("dispatch", "poll_interval") => set(&mut d.poll_interval, raw),
        ("dispatch", "heartbeat_interval") => set(&mut d.heartbeat_interval, raw),
        ("dispatch", "shutdown_grace") => set(&mut d.shutdown_grace, raw),
        ("dispatch", "max_response_body") => set(&mut d.max_response_body, raw),
        ("dispatch", "secret_rotation_grace") => set(&mut d.secret_rotation_grace, raw),
        ("limits", "max_payload") => set(&mut config.limits.max_payload, raw),
        ("log", "format") => set(&mut config.log.format, raw),
        ("log", "level") => set(&mut config.log.level, raw),
        ("api", "listen") => set(&mut config.api.listen, raw),
        ("api", "open_health_metrics") => set(&mut config.api.open_health_metrics, raw),
        _ => return None,
    })
}

impl Setting for String {
    fn from_toml(value: &toml::Value) -> Result<Self, Problem> {
        match value {
            toml::Value::String(s) => Ok(s.clone()),
            other => Err(expected("a string", other)),
        }
    }
}

macro_rules! whole_number_setting {
    ($($t:ty),*) => {$(
        impl Setting for $t {
            fn from_toml(value: &toml::Value) -> Result<Self, Problem> {
                match value {
                    toml::Value::Integer(n) => whole_number(u64::try_from(*n).map_err(|_| {
                        Problem::from(format!("must not be negative, got {n}"))
                    })?),
                    other => Err(expected("a whole number", other)),
                }
            }

            fn from_env(value: &str) -> Result<Self, Problem> {
                let n: u64 = value.trim().parse().map_err(|_| {
                    Problem::from(format!("expected a whole number, got {value:?}"))
                })?;
                whole_number(n)
            }
        }
    )*};
}

whole_number_setting!(usize, u32);

fn whole_number<T: TryFrom<u64>>(n: u64) -> Result<T, Problem> {
    T::try_from(n).map_err(|_| format!("{n} is too large").into())
}

impl Setting for f64 {
    fn from_toml(value: &toml::Value) -> Result<Self, Problem> {
        match value {
            toml::Value::Float(x) => Ok(*x),
            toml::Value::Integer(n) => Ok(*n as f64),
            other => Err(expected("a number", other)),
        }
    }

    fn from_env(value: &str) -> Result<Self, Problem> {
        value
            .trim()
            .parse()
            .map_err(|_| format!("expected a number, got {value:?}").into())
    }
}

impl Setting for Duration {
    fn from_toml(value: &toml::Value) -> Result<Self, Problem> {
        match value {
            toml::Value::String(s) => Ok(parse_duration(s)?),
            toml::Value::Integer(n) => Err(format!(
                "{n} has no unit: units are required, write it as a string such as \"{n}s\" \
                 (units: ms, s, m, h, d)"
            )
            .into()),
            other => Err(expected("a duration such as \"15s\"", other)),
        }
    }
}

impl Setting for Vec<Duration> {
    fn from_toml(value: &toml::Value) -> Result<Self, Problem> {
        let toml::Value::Array(items) = value else {
            return Err(expected(
                "a list of durations such as [\"0s\", \"5s\"]",
                value,
            ));
        };
        let each = items.iter().enumerate();
        each.map(|(i, item)| Duration::from_toml(item).map_err(|p| p.at(i)))
            .collect()
    }

    fn from_env(value: &str) -> Result<Self, Problem> {
        if value.trim().is_empty() {
            return Ok(Vec::new());
        }
        let each = value.split(',').enumerate();
        each.map(|(i, item)| Duration::from_env(item.trim()).map_err(|p| p.at(i)))
            .collect()
    }
}

impl Setting for ByteSize {
    fn from_toml(value: &toml::Value) -> Result<Self, Problem> {
        match value {
            toml::Value::String(s) => Ok(parse_size(s)?),
            toml::Value::Integer(n) => u64::try_from(*n)
                .map(ByteSize)
                .map_err(|_| format!("must not be negative, got {n}").into()),
            other => Err(expected("a size such as \"256KiB\"", other)),
        }
    }
}

impl Setting for bool {
    fn from_toml(value: &toml::Value) -> Result<Self, Problem> {
        match value {
            toml::Value::Boolean(b) => Ok(*b),
            other => Err(expected("true or false", other)),
        }
    }

    fn from_env(value: &str) -> Result<Self, Problem> {
        match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(format!("expected true or false, got {value:?}").into()),
        }
    }
}

impl Setting for std::net::SocketAddr {
    fn from_toml(value: &toml::Value) -> Result<Self, Problem> {
        match value {
            toml::Value::String(s) => s
                .trim()
                .parse()
                .map_err(|_| format!("{s:?} is not an address such as \"127.0.0.1:8080\"").into()),
            other => Err(expected("an address such as \"127.0.0.1:8080\"", other)),
        }
    }
}

impl Setting for LogFormat {
    fn from_toml(value: &toml::Value) -> Result<Self, Problem> {
        match value {
            toml::Value::String(s) => Ok(s.parse::<LogFormat>()?),
            other => Err(expected("\"text\" or \"json\"", other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SHIPPED: &str = include_str!("../config/hookline.toml");

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn from_file(toml: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(toml, Vec::new())
    }

    fn from_env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_toml_str("", env(pairs))
    }

    fn file_error(toml: &str) -> String {
        match from_file(toml) {
            Ok(config) => panic!("expected an error for {toml:?}, got {config:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn env_error(pairs: &[(&str, &str)]) -> String {
        match from_env(pairs) {
            Ok(config) => panic!("expected an error for {pairs:?}, got {config:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn shipped_file_is_the_defaults() {
        let config = from_file(SHIPPED).unwrap();
        assert_eq!(config, Config::default());
        Config::default().validate().unwrap();
    }

    #[test]
    fn shipped_file_lists_every_key_and_each_is_settable() {
        let table: toml::Table = SHIPPED.parse().unwrap();
        let mut in_file = Vec::new();
        for (section, keys) in &table {
            for key in keys.as_table().unwrap().keys() {
                in_file.push(format!("{section}.{key}"));
            }
        }
        let mut known: Vec<String> = KEYS.iter().map(|(s, k)| format!("{s}.{k}")).collect();
        in_file.sort();
        known.sort();
        assert_eq!(in_file, known);
        for (section, key) in KEYS {
            let value = &table[section][key];
            let mut config = Config::default();
            assert!(apply(&mut config, section, key, Raw::Toml(value)).is_some_and(|r| r.is_ok()));
        }
    }

    #[test]
    fn empty_input_gives_defaults() {
        assert_eq!(from_file("").unwrap(), Config::default());
        assert_eq!(from_file("[dispatch]\n").unwrap(), Config::default());
    }

    #[test]
    fn file_values_of_each_kind() {
        let config = from_file(
            r#"
            database.url = "postgres://hook:pw@db/hookline"
            [dispatch]
            concurrency = 16
            max_in_flight_per_endpoint = 2
            timeout = "1m30s"
            lease = "2m"
            retry_schedule = ["0s", "250ms", "1d"]
            jitter = 0
            max_response_body = 2048
            [limits]
            max_payload = "1 MB"
            [log]
            format = "json"
            level = "warn,hookline::dispatch=debug"
            "#,
        )
        .unwrap();
        let d = &config.dispatch;
        assert_eq!(config.database.url, "postgres://hook:pw@db/hookline");
        assert_eq!((d.concurrency, d.max_in_flight_per_endpoint), (16, 2));
        assert_eq!(d.timeout, Duration::from_secs(90));
        assert_eq!(
            d.retry_schedule,
            [
                Duration::ZERO,
                Duration::from_millis(250),
                Duration::from_secs(86_400)
            ]
        );
        assert_eq!(d.jitter, 0.0);
        assert_eq!(d.max_response_body, ByteSize(2048));
        assert_eq!(config.limits.max_payload, ByteSize(1_000_000));
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.log.level, "warn,hookline::dispatch=debug");
    }

    #[test]
    fn env_overrides_each_kind_and_wins_over_the_file() {
        let config = Config::from_toml_str(
            "[dispatch]\nconcurrency = 3\n",
            env(&[
                ("PATH", "/bin"),
                ("HOOKLINE_DATABASE_URL", "sqlite::memory:"),
                ("HOOKLINE_DISPATCH_CONCURRENCY", "16"),
                ("HOOKLINE_DISPATCH_MAX_IN_FLIGHT_PER_ENDPOINT", " 4 "),
                ("HOOKLINE_DISPATCH_JITTER", "0.5"),
                ("HOOKLINE_DISPATCH_TIMEOUT", "250ms"),
                ("HOOKLINE_DISPATCH_RETRY_SCHEDULE", "0s, 1s,2s"),
                ("HOOKLINE_LIMITS_MAX_PAYLOAD", "1MiB"),
                ("HOOKLINE_Log_Format", "JSON"),
                ("HOOKLINE_LOG_LEVEL", "debug"),
                ("HOOKLINE_CONFIG", "ignored.toml"),
                ("HOOKLINE_LOG", "trace"),
            ]),
        )
        .unwrap();
        let d = &config.dispatch;
        assert_eq!(config.database.url, "sqlite::memory:");
        assert_eq!((d.concurrency, d.max_in_flight_per_endpoint), (16, 4));
        assert_eq!(d.jitter, 0.5);
        assert_eq!(d.timeout, Duration::from_millis(250));
        assert_eq!(d.retry_schedule, [0, 1, 2].map(Duration::from_secs));
        assert_eq!(config.limits.max_payload, ByteSize(1 << 20));
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.log.level, "debug");
    }

    #[test]
    fn file_errors_name_the_key() {
        let cases = [
            (
                "[dispatch]\nconcurency = 3",
                "dispatch.concurency: unknown key",
            ),
            ("[dispatcher]\nx = 1", "dispatcher: unknown section"),
            ("dispatch = 3", "dispatch: expected a [dispatch] table"),
            (
                "[dispatch]\njitter = 1.5",
                "dispatch.jitter: must be between 0 and 1, got 1.5",
            ),
            (
                "[dispatch]\njitter = nan",
                "dispatch.jitter: must be between 0 and 1, got NaN",
            ),
            (
                r#"[dispatch]
                retry_schedule = ["0s", "5s", "5x"]"#,
                r#"dispatch.retry_schedule[2]: "5x" is not a duration (use e.g. 250ms, 15s, 5m, 2h)"#,
            ),
            (
                "[dispatch]\nretry_schedule = []",
                "dispatch.retry_schedule: must list at least one",
            ),
            (
                "[dispatch]\ntimeout = 15",
                "dispatch.timeout: 15 has no unit: units are required",
            ),
            (
                "[dispatch]\ntimeout = \"15\"",
                "dispatch.timeout: \"15\" has no unit",
            ),
            (
                "[dispatch]\ntimeout = \"0s\"",
                "dispatch.timeout: must be greater than 0s",
            ),
            (
                "[dispatch]\ntimeout = \"2m\"",
                "dispatch.timeout: must be shorter than dispatch.lease (1m), got 2m",
            ),
            (
                "[dispatch]\nlease = \"500ms\"",
                "dispatch.lease: must be at least 1s, got 500ms",
            ),
            (
                "[dispatch]\nshutdown_grace = \"400d\"",
                "dispatch.shutdown_grace: must be at most 365d, got 400d",
            ),
            (
                "[dispatch]\nconcurrency = 0",
                "dispatch.concurrency: must be at least 1, got 0",
            ),
            (
                "[dispatch]\nconcurrency = -2",
                "dispatch.concurrency: must not be negative, got -2",
            ),
            (
                "[dispatch]\nconcurrency = \"8\"",
                "dispatch.concurrency: expected a whole number, found a TOML string",
            ),
            (
                "[dispatch]\nmax_in_flight_per_endpoint = 0",
                "dispatch.max_in_flight_per_endpoint: must be at least 1",
            ),
            (
                "[dispatch]\nmax_in_flight_per_endpoint = 5000000000",
                "dispatch.max_in_flight_per_endpoint: 5000000000 is too large",
            ),
            (
                "[dispatch]\nbatch_size = 0",
                "dispatch.batch_size: must be at least 1",
            ),
            (
                "[dispatch]\npoll_interval = \"0ms\"",
                "dispatch.poll_interval: must be greater than 0s",
            ),
            (
                "[dispatch]\nheartbeat_interval = \"0s\"",
                "dispatch.heartbeat_interval: must be greater than 0s",
            ),
            (
                "[dispatch]\nmax_response_body = \"1XB\"",
                "dispatch.max_response_body: \"1XB\" is not a size",
            ),
            (
                "[limits]\nmax_payload = 0",
                "limits.max_payload: must be at least 1 byte",
            ),
            (
                "[log]\nformat = \"yaml\"",
                "log.format: \"yaml\" is not a log format (use text or json)",
            ),
            (
                "[log]\nlevel = \"hookline=loud\"",
                "log.level: \"hookline=loud\" is not a log filter",
            ),
            ("[log]\nlevel = \" \"", "log.level: must not be empty"),
            (
                "[database]\nurl = \"mysql://u:secret@h/db\"",
                "database.url: must start with sqlite:, postgres: or postgresql: (got \"mysql:\")",
            ),
            (
                "[database]\nurl = 5",
                "database.url: expected a string, found a TOML integer",
            ),
            ("[dispatch\n", "config: TOML parse error"),
        ];
        for (toml, want) in cases {
            let got = file_error(toml);
            assert!(
                got.starts_with(want),
                "for {toml:?}\n got: {got}\nwant: {want}…"
            );
            assert!(!got.contains("secret"), "leaked a password: {got}");
        }
    }

    #[test]
    fn env_errors_name_the_variable_and_the_key() {
        let cases: [(&[(&str, &str)], &str); 7] = [
            (
                &[("HOOKLINE_DISPATCH_CONCURENCY", "3")],
                "HOOKLINE_DISPATCH_CONCURENCY: unknown variable",
            ),
            (&[("HOOKLINE_FOO", "1")], "HOOKLINE_FOO: unknown variable"),
            (
                &[("HOOKLINE_DISPATCH", "1")],
                "HOOKLINE_DISPATCH: unknown variable",
            ),
            (
                &[("HOOKLINE_DISPATCH_JITTER", "1.5")],
                "HOOKLINE_DISPATCH_JITTER (dispatch.jitter): must be between 0 and 1, got 1.5",
            ),
            (
                &[("HOOKLINE_DISPATCH_CONCURRENCY", "many")],
                "HOOKLINE_DISPATCH_CONCURRENCY (dispatch.concurrency): expected a whole number, got \"many\"",
            ),
            (
                &[("HOOKLINE_DISPATCH_RETRY_SCHEDULE", "0s,1s,5x")],
                "HOOKLINE_DISPATCH_RETRY_SCHEDULE (dispatch.retry_schedule[2]): \"5x\" is not a duration",
            ),
            (
                &[("HOOKLINE_DISPATCH_RETRY_SCHEDULE", "")],
                "HOOKLINE_DISPATCH_RETRY_SCHEDULE (dispatch.retry_schedule): must list at least one",
            ),
        ];
        for (pairs, want) in cases {
            let got = env_error(pairs);
            assert!(
                got.starts_with(want),
                "for {pairs:?}\n got: {got}\nwant: {want}…"
            );
        }
        let got = env_error(&[("HOOKLINE_LIMITS_MAX_PAYLOAD", "0")]);
        assert_eq!(
            got,
            "HOOKLINE_LIMITS_MAX_PAYLOAD (limits.max_payload): must be at least 1 byte, got 0"
        );
        let got = env_error(&[("HOOKLINE_DISPATCH_LEASE", "10s")]);
        assert_eq!(
            got,
            "dispatch.timeout: must be shorter than dispatch.lease (10s, set by \
             HOOKLINE_DISPATCH_LEASE), got 15s"
        );
        // Lower-case lookalikes are not ours and are ignored.
        assert_eq!(
            from_env(&[("hookline_whatever", "x")]).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn load_reads_the_named_file_or_hookline_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custom.toml");
        std::fs::write(&path, "[dispatch]\nconcurrency = 7\n").unwrap();
        let vars = |pairs: &[(&str, &std::ffi::OsStr)]| -> Vec<(OsString, OsString)> {
            pairs
                .iter()
                .map(|(k, v)| (OsString::from(k), v.to_os_string()))
                .collect()
        };

        let config = Config::load_from(Some(&path), vars(&[])).unwrap();
        assert_eq!(config.dispatch.concurrency, 7);
        let config = Config::load_from(None, vars(&[(ENV_CONFIG, path.as_os_str())])).unwrap();
        assert_eq!(config.dispatch.concurrency, 7);
        let config = Config::load_from(None, vars(&[])).unwrap();
        assert_eq!(config, Config::default());

        let missing = dir.path().join("missing.toml");
        let err = Config::load_from(Some(&missing), vars(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("cannot read config file {}: ", missing.display())),
            "{err}"
        );

        std::fs::write(&path, "[log]\nlevel = 3\n").unwrap();
        let err = Config::load_from(Some(&path), vars(&[]))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "log.level: expected a string, found a TOML integer");
    }

    #[cfg(unix)]
    #[test]
    fn non_unicode_override_is_an_error() {
        use std::os::unix::ffi::OsStringExt;
        let vars = vec![(
            OsString::from("HOOKLINE_DATABASE_URL"),
            OsString::from_vec(vec![0xff, 0xfe]),
        )];
        let err = Config::load_from(None, vars).unwrap_err().to_string();
        assert_eq!(err, "HOOKLINE_DATABASE_URL: not valid UTF-8");
    }

    #[test]
    fn debug_and_redacted_url_hide_passwords() {
        let db = DatabaseConfig {
            url: "postgres://hook:s3cret@db:5432/hookline?sslmode=require&password=also".to_owned(),
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
    fn durations_parse_and_format() {
        let ok = [
            ("250ms", Duration::from_millis(250)),
            ("15s", Duration::from_secs(15)),
            ("5m", Duration::from_secs(300)),
            ("2h", Duration::from_secs(7200)),
            ("1d", Duration::from_secs(86_400)),
            ("1h30m", Duration::from_secs(5400)),
            (" 0s ", Duration::ZERO),
            ("1s500ms", Duration::from_millis(1500)),
            ("7us", Duration::from_micros(7)),
            ("3ns", Duration::from_nanos(3)),
        ];
        for (text, want) in ok {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for bad in [
            "",
            "15",
            "5x",
            "-5s",
            "+5s",
            "1.5s",
            "s",
            "5 s",
            "30m1h",
            "5m5m",
            "99999999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(
            parse_duration("15").unwrap_err(),
            "\"15\" has no unit: units are required (use e.g. 250ms, 15s, 5m, 2h)"
        );
        let formatted = [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_secs(300), "5m"),
            (Duration::from_secs(5400), "1h30m"),
            (Duration::from_secs(86_400), "1d"),
            (Duration::from_millis(1500), "1s500ms"),
        ];
        for (d, want) in formatted {
            assert_eq!(format_duration(d), want);
        }
        assert_eq!(
            parse_duration(&format_duration(Duration::MAX)),
            Ok(Duration::MAX)
        );
    }

    #[test]
    fn sizes_parse_and_format() {
        let ok = [
            ("512", 512),
            ("512B", 512),
            ("4KiB", 4096),
            ("256KiB", 256 << 10),
            ("1MiB", 1 << 20),
            ("1 mib", 1 << 20),
            ("2GiB", 2 << 30),
            ("4KB", 4000),
            ("1MB", 1_000_000),
            ("1GB", 1_000_000_000),
            ("0", 0),
        ];
        for (text, want) in ok {
            assert_eq!(parse_size(text), Ok(ByteSize(want)), "{text}");
        }
        for bad in ["", "KiB", "1.5MiB", "-1", "5x", "1TiB", "99999999999GiB"] {
            assert!(parse_size(bad).is_err(), "{bad:?} parsed");
        }
        let formatted = [
            (0, "0"),
            (512, "512"),
            (1024, "1KiB"),
            (1000, "1KB"),
            (1536, "1536"),
            (256 << 10, "256KiB"),
            (1 << 20, "1MiB"),
        ];
        for (n, want) in formatted {
            assert_eq!(format_size(ByteSize(n)), want);
            assert_eq!(ByteSize(n).to_string(), want);
        }
    }

    proptest! {
        #[test]
        fn durations_round_trip(secs in any::<u64>(), nanos in 0u32..1_000_000_000) {
            let d = Duration::new(secs, nanos);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn sizes_round_trip(n in any::<u64>(), shift in 0u32..40) {
            for size in [ByteSize(n), ByteSize(n >> shift << shift), ByteSize((n % 1_000_000) * 1000)] {
                prop_assert_eq!(parse_size(&format_size(size)), Ok(size));
            }
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,12}") {
            let _ = parse_duration(&s);
            let _ = parse_size(&s);
        }
    }
}
