//! Setting values: durations, byte sizes and log formats, to and from text.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;

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

/// Parses a network: a CIDR (`10.1.0.0/16`, `fd00::/8`) or a bare address,
/// which means that one address (`127.0.0.1` is `127.0.0.1/32`). Host bits
/// are cleared (`10.1.2.3/16` is `10.1.0.0/16`). The error quotes `s`.
pub fn parse_network(s: &str) -> Result<ipnet::IpNet, String> {
    let text = s.trim();
    if let Ok(network) = text.parse::<ipnet::IpNet>() {
        return Ok(network.trunc());
    }
    text.parse::<std::net::IpAddr>()
        .map(ipnet::IpNet::from)
        .map_err(|_| {
            format!(
                "{s:?} is not a network such as \"10.1.0.0/16\" or an address such as \"127.0.0.1\""
            )
        })
}

/// An HTTP egress proxy, `http://HOST:PORT`: deliveries to `http://` URLs
/// go to it as absolute-form requests, to `https://` URLs through `CONNECT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    /// Host name or address of the proxy.
    pub host: String,
    pub port: u16,
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "http://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "http://{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for ProxyUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<ProxyUrl, String> {
        let wrong =
            |why: &str| format!("{s:?} is not a proxy URL such as \"http://proxy:3128\": {why}");
        let uri: http::Uri = s.trim().parse().map_err(|_| wrong("it does not parse"))?;
        if uri.scheme_str() != Some("http") {
            return Err(wrong(
                "the scheme must be http:// (the proxy tunnels https itself)",
            ));
        }
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| wrong("it has no host"))?;
        if uri
            .path_and_query()
            .is_some_and(|p| !matches!(p.as_str(), "" | "/"))
        {
            return Err(wrong("a proxy URL has no path"));
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(wrong("proxy credentials are not supported"));
        }
        Ok(ProxyUrl {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port: uri.port_u16().unwrap_or(80),
        })
    }
}

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

/// The levels a log filter may name, most verbose first; `off` logs nothing.
pub const LOG_LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Parses a log filter (`log.level`, `HOOKLINE_LOG`): comma-separated
/// directives, each a level (`info`) or `target=level`
/// (`hookline::dispatch=debug`; span filters such as
/// `hookline[attempt{endpoint=acme}]=trace` too). Spaces around a directive
/// are dropped. The error is a complete sentence quoting `s` and listing the
/// levels.
///
/// Stricter than `EnvFilter` on its own, on purpose: it takes a bare word
/// that is not a level for a target to log everything from, so a misspelt
/// `verbose` would be accepted and would quietly log nothing.
pub fn parse_log_filter(s: &str) -> Result<EnvFilter, String> {
    let levels = LOG_LEVELS.join(", ");
    let directives: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    if directives.is_empty() {
        return Err(format!("must not be empty (valid levels: {levels})"));
    }
    if let Some(problem) = directives.iter().find_map(|d| directive_problem(d)) {
        return Err(format!(
            "{s:?} is not a log filter: {problem} (valid levels: {levels})"
        ));
    }
    // EnvFilter would read " info" as a target, so it is given the trimmed
    // directives; it still judges the rest of the syntax (spans, fields).
    EnvFilter::try_new(directives.join(","))
        .map_err(|e| format!("{s:?} is not a log filter (e.g. info, or info,hookline=debug): {e}"))
}

/// Why one directive is neither a level nor `target=level`, if it is not.
fn directive_problem(directive: &str) -> Option<String> {
    // LevelFilter reads "" as `error`; an empty level is a slip, not a choice.
    let is_level = |word: &str| !word.is_empty() && word.parse::<LevelFilter>().is_ok();
    // The level comes after a span filter's closing `]`: the `=` inside its
    // `{field=value}` is not the one before the level.
    let after_span = directive.rfind(']').map_or(0, |i| i + 1);
    match directive[after_span..].split_once('=') {
        Some((_, level)) if is_level(level) => None,
        Some((_, "")) => Some(format!("{directive:?} has no level after \"=\"")),
        Some((_, level)) => Some(format!("{level:?} in {directive:?} is not a level")),
        None if after_span > 0 => Some(format!(
            "{directive:?} names no level (write it as {directive}=LEVEL)"
        )),
        None if is_level(directive) => None,
        None => Some(format!("{directive:?} is neither a level nor target=level")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    #[test]
    fn log_filters_are_levels_or_target_equals_level() {
        for good in [
            "info",
            "INFO",
            "off",
            "3",
            "warn,hookline::dispatch=debug",
            "info,",
            "sqlx::query=debug,hookline-bench=trace",
            "[request]=debug",
            "hookline[attempt{endpoint=acme}]=trace",
        ] {
            assert!(parse_log_filter(good).is_ok(), "{good:?} refused");
        }
        // Spaces around a directive are dropped: EnvFilter alone would take
        // " debug" for a target and log nothing at debug.
        let spaced = parse_log_filter(" warn , hookline=debug ").unwrap();
        assert_eq!(spaced.max_level_hint(), Some(LevelFilter::DEBUG));
        assert_eq!(
            parse_log_filter(" debug").unwrap().max_level_hint(),
            Some(LevelFilter::DEBUG)
        );

        let levels = "(valid levels: trace, debug, info, warn, error, off)";
        assert_eq!(
            parse_log_filter("verbose").unwrap_err(),
            format!(
                "\"verbose\" is not a log filter: \"verbose\" is neither a level nor target=level {levels}"
            )
        );
        let refused = [
            (
                "info,nonsense",
                "\"nonsense\" is neither a level nor target=level",
            ),
            (
                "hookline=loud",
                "\"loud\" in \"hookline=loud\" is not a level",
            ),
            ("hookline=", "\"hookline=\" has no level after \"=\""),
            (
                "hookline[attempt]",
                "names no level (write it as hookline[attempt]=LEVEL)",
            ),
            // The `=` inside the span's fields is not the one before a level.
            ("[attempt{endpoint=acme}]", "names no level"),
            ("", "must not be empty"),
            (" , ", "must not be empty"),
        ];
        for (text, want) in refused {
            let got = parse_log_filter(text).unwrap_err();
            assert!(
                got.contains(want) && got.ends_with(levels),
                "{text:?}: {got}"
            );
        }
        // What passes the level rule is still parsed by EnvFilter.
        let got = parse_log_filter("hookline[=debug").unwrap_err();
        assert!(
            got.starts_with("\"hookline[=debug\" is not a log filter"),
            "{got}"
        );
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
