//! Reading settings: the TOML file, `HOOKLINE_*` overrides, one conversion per key.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{
    ByteSize, Config, ConfigError, IpNet, LogFormat, ProxyUrl, parse_duration, parse_log_filter,
    parse_network, parse_size,
};

/// Environment variable naming the config file that [`Config::load`] reads
/// when it is given no path.
pub const ENV_CONFIG: &str = "HOOKLINE_CONFIG";

/// Environment variable with a log filter that overrides `log.level` (the
/// logging set-up reads it). Not a setting, but [`Config::load`] checks it as
/// it checks `log.level`, so a typo stops the command instead of silencing
/// its logs.
pub const ENV_LOG: &str = "HOOKLINE_LOG";

/// `HOOKLINE_*` variables that are not settings, so they are not rejected as
/// unknown overrides.
pub const ENV_NOT_SETTINGS: &[&str] = &[ENV_CONFIG, ENV_LOG];

const ENV_PREFIX: &str = "HOOKLINE_";

/// The sections of the file; each is one word, so `HOOKLINE_<SECTION>_<KEY>`
/// splits at the first `_` after the prefix.
pub(super) const SECTIONS: [&str; 10] = [
    "database",
    "dispatch",
    "limits",
    "log",
    "api",
    "network",
    "secrets",
    "metrics",
    "retention",
    "protection",
];

/// Every setting as (section, key). [`apply`] must accept each of them; the
/// tests check that this list, `apply` and `config/hookline.toml` agree.
const KEYS: [(&str, &str); 46] = [
    ("database", "url"),
    ("database", "max_connections"),
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
    ("network", "allow"),
    ("network", "deny"),
    ("network", "proxy"),
    ("secrets", "key"),
    ("metrics", "listen"),
    ("metrics", "per_endpoint"),
    ("retention", "succeeded"),
    ("retention", "dead"),
    ("retention", "held"),
    ("retention", "health"),
    ("retention", "dispatchers"),
    ("retention", "audit"),
    ("retention", "idempotency"),
    ("retention", "payload"),
    ("retention", "breaker"),
    ("retention", "failure_causes"),
    ("retention", "attempts_per_delivery"),
    ("retention", "interval"),
    ("protection", "breaker"),
    ("protection", "window"),
    ("protection", "min_attempts"),
    ("protection", "failure_ratio"),
    ("protection", "consecutive_failures"),
    ("protection", "cooldown"),
    ("protection", "max_cooldown"),
    ("protection", "disable_after"),
    ("protection", "max_retry_after"),
];

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
            if var == ENV_LOG {
                parse_log_filter(&value)
                    .map_err(|message| ConfigError::InvalidVariable { var, message })?;
                continue;
            }
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
}

fn is_allowed(name: &str) -> bool {
    ENV_NOT_SETTINGS.contains(&name)
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
/// [`apply`] for the `[retention]` section.
fn apply_retention(
    r: &mut crate::config::RetentionConfig,
    key: &str,
    raw: Raw<'_>,
) -> Option<Result<(), Problem>> {
    let slot = match key {
        "succeeded" => &mut r.succeeded,
        "dead" => &mut r.dead,
        "held" => &mut r.held,
        "health" => &mut r.health,
        "dispatchers" => &mut r.dispatchers,
        "audit" => &mut r.audit,
        "idempotency" => &mut r.idempotency,
        "payload" => &mut r.payload,
        "breaker" => &mut r.breaker,
        "failure_causes" => &mut r.failure_causes,
        "interval" => &mut r.interval,
        "attempts_per_delivery" => {
            return Some(match raw {
                Raw::Toml(value) => u32::from_toml(value).map(|v| r.attempts_per_delivery = v),
                Raw::Env(value) => u32::from_env(value).map(|v| r.attempts_per_delivery = v),
            });
        }
        _ => return None,
    };
    Some(match raw {
        Raw::Toml(value) => Duration::from_toml(value).map(|v| *slot = v),
        Raw::Env(value) => Duration::from_env(value).map(|v| *slot = v),
    })
}

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
        ("database", "max_connections") => set(&mut config.database.max_connections, raw),
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
        ("network", "allow") => set(&mut config.network.allow, raw),
        ("network", "deny") => set(&mut config.network.deny, raw),
        ("network", "proxy") => set(&mut config.network.proxy, raw),
        ("secrets", "key") => set(&mut config.secrets.key, raw),
        ("metrics", "listen") => set(&mut config.metrics.listen, raw),
        ("metrics", "per_endpoint") => set(&mut config.metrics.per_endpoint, raw),
        ("retention", key) => return apply_retention(&mut config.retention, key, raw),
        ("protection", "breaker") => set(&mut config.protection.breaker, raw),
        ("protection", "window") => set(&mut config.protection.window, raw),
        ("protection", "min_attempts") => set(&mut config.protection.min_attempts, raw),
        ("protection", "failure_ratio") => set(&mut config.protection.failure_ratio, raw),
        ("protection", "consecutive_failures") => {
            set(&mut config.protection.consecutive_failures, raw)
        }
        ("protection", "cooldown") => set(&mut config.protection.cooldown, raw),
        ("protection", "max_cooldown") => set(&mut config.protection.max_cooldown, raw),
        ("protection", "disable_after") => set(&mut config.protection.disable_after, raw),
        ("protection", "max_retry_after") => set(&mut config.protection.max_retry_after, raw),
        _ => return None,
    })
}

/// `[secrets] key`: base64 of 32 bytes; empty means no key. The value is
/// never repeated in an error (it is a secret, or a typo of one).
impl Setting for Option<crate::seal::SecretsKey> {
    fn from_toml(value: &toml::Value) -> Result<Self, Problem> {
        match value {
            toml::Value::String(s) if s.trim().is_empty() => Ok(None),
            toml::Value::String(s) => crate::seal::SecretsKey::parse(s)
                .map(Some)
                .map_err(|e| e.to_string().into()),
            other => Err(expected(
                "a base64 key such as from `openssl rand -base64 32`",
                other,
            )),
        }
    }
}

impl Setting for String {
    fn from_toml(value: &toml::Value) -> Result<Self, Problem> {
        match value {
            toml::Value::String(s) => Ok(s.clone()),
            other => Err(expected("a string", other)),
        }
    }
}

/// [`Setting`] for each whole-number type. A macro: a blanket impl over
/// `TryFrom<u64>` would overlap the other types' impls.
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

impl Setting for Vec<IpNet> {
    fn from_toml(value: &toml::Value) -> Result<Self, Problem> {
        let toml::Value::Array(items) = value else {
            return Err(expected(
                "a list of networks such as [\"10.1.0.0/16\", \"127.0.0.1\"]",
                value,
            ));
        };
        let each = items.iter().enumerate();
        each.map(|(i, item)| match item {
            toml::Value::String(text) => parse_network(text).map_err(|p| Problem::from(p).at(i)),
            other => Err(expected("a network such as \"10.1.0.0/16\"", other).at(i)),
        })
        .collect()
    }

    fn from_env(value: &str) -> Result<Self, Problem> {
        let each = value
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty());
        each.enumerate()
            .map(|(i, item)| parse_network(item).map_err(|p| Problem::from(p).at(i)))
            .collect()
    }
}

impl Setting for Option<ProxyUrl> {
    fn from_toml(value: &toml::Value) -> Result<Self, Problem> {
        match value {
            toml::Value::String(text) if text.trim().is_empty() => Ok(None),
            toml::Value::String(text) => Ok(Some(text.parse::<ProxyUrl>()?)),
            other => Err(expected("a proxy URL such as \"http://proxy:3128\"", other)),
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

/// `[metrics] listen`: an address, or empty for no listener.
impl Setting for Option<std::net::SocketAddr> {
    fn from_toml(value: &toml::Value) -> Result<Self, Problem> {
        match value {
            toml::Value::String(s) if s.trim().is_empty() => Ok(None),
            other => std::net::SocketAddr::from_toml(other).map(Some),
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

    const SHIPPED: &str = include_str!("../../config/hookline.toml");

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
    fn the_secrets_key_is_base64_of_32_bytes_and_never_echoed() {
        let key = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
        let metrics = from_file("[metrics]\nlisten = \"\"\nper_endpoint = true").unwrap();
        assert_eq!(metrics.metrics.listen, None, "empty: no listener");
        assert!(metrics.metrics.per_endpoint);
        let metrics = from_file("[metrics]\nlisten = \"127.0.0.1:9464\"").unwrap();
        assert_eq!(
            metrics.metrics.listen,
            Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9464)))
        );
        let in_file = from_file(&format!("[secrets]\nkey = \"{key}\"")).unwrap();
        let in_env = from_env(&[("HOOKLINE_SECRETS_KEY", key)]).unwrap();
        assert!(in_file.secrets.key.is_some());
        assert_eq!(in_file.secrets, in_env.secrets);
        assert!(!format!("{in_file:?}").contains(key), "Debug shows the key");
        assert_eq!(
            from_env(&[("HOOKLINE_SECRETS_KEY", "")])
                .unwrap()
                .secrets
                .key,
            None
        );
        let short = "c2hvcnQta2V5LXZhbHVl";
        let err = env_error(&[("HOOKLINE_SECRETS_KEY", short)]);
        assert!(
            err.starts_with("HOOKLINE_SECRETS_KEY (secrets.key): must be the base64 of 32"),
            "{err}"
        );
        assert!(!err.contains(short), "echoed the key: {err}");
        let err = file_error("[secrets]\nkey = \"not base64!\"");
        assert!(err.starts_with("secrets.key: "), "{err}");
        assert!(!err.contains("not base64!"), "echoed the key: {err}");
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
                "[database]\nmax_connections = 0",
                "database.max_connections: must be at least 1, got 0",
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
                "[metrics]\nlisten = \"localhost\"",
                "metrics.listen: \"localhost\" is not an address such as \"127.0.0.1:8080\"",
            ),
            (
                "[metrics]\nper_endpoint = \"yes\"",
                "metrics.per_endpoint: expected",
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
                "[database]\nurl = \"mysql://u:pa55word@h/db\"",
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
            assert!(!got.contains("pa55word"), "leaked a password: {got}");
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
    fn network_settings_parse_and_bad_ones_name_the_key() {
        let config = from_env(&[
            ("HOOKLINE_NETWORK_ALLOW", "127.0.0.1/32, 10.1.2.3/16,::1"),
            ("HOOKLINE_NETWORK_DENY", "10.1.9.0/24"),
            ("HOOKLINE_NETWORK_PROXY", "http://proxy.internal:3128"),
        ])
        .unwrap();
        let shown: Vec<String> = config.network.allow.iter().map(|n| n.to_string()).collect();
        assert_eq!(shown, ["127.0.0.1/32", "10.1.0.0/16", "::1/128"]);
        assert_eq!(config.network.deny.len(), 1);
        let proxy = config.network.proxy.expect("a proxy");
        assert_eq!((proxy.host.as_str(), proxy.port), ("proxy.internal", 3128));
        let cases: [(&[(&str, &str)], &str); 4] = [
            (
                &[("HOOKLINE_NETWORK_ALLOW", "127.0.0.1/32,10.0.0/8")],
                "HOOKLINE_NETWORK_ALLOW (network.allow[1]): \"10.0.0/8\" is not a network",
            ),
            (
                &[("HOOKLINE_NETWORK_DENY", "everything")],
                "HOOKLINE_NETWORK_DENY (network.deny[0]): \"everything\" is not a network",
            ),
            (
                &[("HOOKLINE_NETWORK_PROXY", "https://proxy:3128")],
                "HOOKLINE_NETWORK_PROXY (network.proxy): \"https://proxy:3128\" is not a proxy URL",
            ),
            (
                &[("HOOKLINE_NETWORK_PROXY", "http://user:pw@proxy:3128")],
                "HOOKLINE_NETWORK_PROXY (network.proxy): \"http://user:pw@proxy:3128\" is not a proxy URL",
            ),
        ];
        for (pairs, want) in cases {
            let got = env_error(pairs);
            assert!(
                got.starts_with(want),
                "for {pairs:?}\n got: {got}\nwant: {want}…"
            );
        }
        let err = file_error("[network]\nallow = [\"10.0.0.0/33\"]\n");
        assert!(
            err.starts_with("network.allow[0]: \"10.0.0.0/33\" is not a network"),
            "{err}"
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

    #[test]
    fn bad_log_filters_name_the_key_or_the_variable_and_the_levels() {
        let levels = "(valid levels: trace, debug, info, warn, error, off)";
        let cases = [
            (
                file_error("[log]\nlevel = \"verbose\""),
                "log.level: \"verbose\" is not a log filter",
            ),
            (
                env_error(&[("HOOKLINE_LOG_LEVEL", "verbose")]),
                "HOOKLINE_LOG_LEVEL (log.level): \"verbose\" is not a log filter",
            ),
            (
                env_error(&[("HOOKLINE_LOG", "nonsense")]),
                "HOOKLINE_LOG: \"nonsense\" is not a log filter",
            ),
            (
                env_error(&[("HOOKLINE_LOG", "hookline=loud")]),
                "HOOKLINE_LOG: \"hookline=loud\" is not a log filter",
            ),
            (
                env_error(&[("HOOKLINE_LOG", "")]),
                "HOOKLINE_LOG: must not be empty",
            ),
        ];
        for (got, want) in cases {
            assert!(got.starts_with(want) && got.ends_with(levels), "{got}");
        }
        // HOOKLINE_LOG is checked, not stored: the logging set-up reads it.
        let config = from_env(&[("HOOKLINE_LOG", "warn,hookline::dispatch=debug")]).unwrap();
        assert_eq!(config, Config::default());

        let vars = vec![(OsString::from(ENV_LOG), OsString::from("nonsense"))];
        let err = Config::load_from(None, vars).unwrap_err().to_string();
        assert!(
            err.starts_with("HOOKLINE_LOG: \"nonsense\" is not a log filter"),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn non_unicode_log_filter_is_an_error() {
        use std::os::unix::ffi::OsStringExt;
        let vars = vec![(OsString::from(ENV_LOG), OsString::from_vec(vec![0xff]))];
        let err = Config::load_from(None, vars).unwrap_err().to_string();
        assert_eq!(err, "HOOKLINE_LOG: not valid UTF-8");
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
}
