//! When a pause ends: the forms operators write it in (a duration from now,
//! a local `HH:MM`, an RFC 3339 time) and how it is shown back to them (in
//! their local time zone, with its offset, so nobody guesses which zone).

use std::time::Duration;

use chrono::{DateTime, Local, LocalResult, NaiveTime, Offset, TimeDelta, TimeZone};

use super::{OpsError, Result};
use crate::config::{format_duration, parse_duration};
use crate::model::{Millis, now_millis, parse_rfc3339};

/// The field every refusal here names.
const FIELD: &str = "until";

/// When a pause that starts now should end, as an operator writes it:
/// a duration from now (`30m`, `1h30m`, or `for 30m`), a local time of day
/// (`04:00`, `until 04:00`: the next 04:00 in the operator's time zone, so
/// tomorrow's once today's has passed), or an RFC 3339 time
/// (`2026-12-07T04:00:00+01:00`). It must lie in the future.
pub fn parse_until(text: &str) -> Result<Millis> {
    parse_until_from(text, &Local::now())
}

/// [`parse_until`] as of `now`, in `now`'s time zone.
pub fn parse_until_from<Tz: TimeZone>(text: &str, now: &DateTime<Tz>) -> Result<Millis> {
    let text = text.trim();
    let now_ms = now.timestamp_millis();
    let (wants_duration, wants_time, rest) = if let Some(rest) = strip_word(text, "for") {
        (true, false, rest)
    } else if let Some(rest) = strip_word(text, "until") {
        (false, true, rest)
    } else {
        (true, true, text)
    };
    let at = if wants_time && let Some(at) = parse_rfc3339(rest) {
        at
    } else if wants_time && let Some(at) = next_local_time(rest, now)? {
        at
    } else if wants_duration && let Ok(after) = parse_duration(rest) {
        now_ms.saturating_add(i64::try_from(after.as_millis()).unwrap_or(i64::MAX))
    } else {
        return Err(OpsError::invalid(
            FIELD,
            format!(
                "{text:?} is neither a duration nor a time: give e.g. 30m, 2h, 04:00 (local time, {}) or 2026-12-07T04:00:00+01:00",
                now.offset().fix()
            ),
        ));
    };
    check_future(at, now_ms)?;
    Ok(at)
}

/// An RFC 3339 time in the future, as the API takes `until`.
pub fn parse_until_rfc3339(text: &str) -> Result<Millis> {
    let at = parse_rfc3339(text.trim()).ok_or_else(|| {
        OpsError::invalid(
            FIELD,
            format!("{text:?} is not an RFC 3339 time like 2026-12-07T04:00:00+01:00"),
        )
    })?;
    check_future(at, now_millis())?;
    Ok(at)
}

/// Refuses an end that is not after `now`: well formed, but the clock has
/// passed it, so a conflict rather than bad input.
pub(super) fn check_future(at: Millis, now: Millis) -> Result<()> {
    if at <= now {
        return Err(OpsError::Conflict {
            field: FIELD,
            reason: format!(
                "{} is not in the future (it is now {}); a pause ends after it starts",
                local_time(at),
                local_time(now)
            ),
        });
    }
    Ok(())
}

/// `text` after a leading `word` and a space, if it starts so.
fn strip_word<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let rest = text.strip_prefix(word)?;
    rest.starts_with(char::is_whitespace).then(|| rest.trim())
}

/// `HH:MM` (or `H:MM`, `HH:MM:SS`) as the next such moment after `now` in
/// `now`'s time zone; `None` when `text` is not a time of day.
fn next_local_time<Tz: TimeZone>(text: &str, now: &DateTime<Tz>) -> Result<Option<Millis>> {
    let Some(time) = time_of_day(text) else {
        return Ok(None);
    };
    let today = now.date_naive();
    for day in [
        today,
        today + TimeDelta::days(1),
        today + TimeDelta::days(2),
    ] {
        let at = match now.timezone().from_local_datetime(&day.and_time(time)) {
            LocalResult::Single(at) => at,
            // Clocks went back: the first of the two.
            LocalResult::Ambiguous(first, _) => first,
            // Clocks went forward past it that day.
            LocalResult::None => {
                return Err(OpsError::invalid(
                    FIELD,
                    format!(
                        "{text} does not occur on {day} in the local time zone (the clocks skip it); give another time"
                    ),
                ));
            }
        };
        if at > *now {
            return Ok(Some(at.timestamp_millis()));
        }
    }
    Ok(None)
}

/// `HH:MM` or `HH:MM:SS`, hours 0–23.
fn time_of_day(text: &str) -> Option<NaiveTime> {
    let parts: Vec<&str> = text.split(':').collect();
    if !(2..=3).contains(&parts.len())
        || parts
            .iter()
            .any(|p| p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()))
        || parts[1..].iter().any(|p| p.len() != 2)
    {
        return None;
    }
    let number = |i: usize| parts.get(i).map_or(Some(0), |p| p.parse::<u32>().ok());
    NaiveTime::from_hms_opt(number(0)?, number(1)?, number(2)?)
}

/// `ms` in the local time zone with its offset: `2026-12-07 04:00 +01:00`
/// (seconds only when there are some).
pub fn local_time(ms: Millis) -> String {
    match Local.timestamp_millis_opt(ms) {
        LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => show(&at, None),
        LocalResult::None => crate::model::format_rfc3339(ms),
    }
}

/// `ms` in the local time zone, without the date when it falls on today:
/// `23:24 +01:00`, or `2026-12-06 23:24 +01:00`.
pub fn local_time_short(ms: Millis) -> String {
    local_time_short_from(ms, &Local::now())
}

/// [`local_time_short`] as of `now`, in `now`'s time zone.
pub fn local_time_short_from<Tz: TimeZone>(ms: Millis, now: &DateTime<Tz>) -> String {
    match now.timezone().timestamp_millis_opt(ms) {
        LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => show(&at, Some(now)),
        LocalResult::None => crate::model::format_rfc3339(ms),
    }
}

fn show<Tz: TimeZone>(at: &DateTime<Tz>, today_of: Option<&DateTime<Tz>>) -> String {
    let clock = if at.timestamp_subsec_millis() == 0 && at.timestamp() % 60 == 0 {
        "%H:%M"
    } else {
        "%H:%M:%S"
    };
    let offset = at.offset().fix();
    let same_day = today_of.is_some_and(|now| now.date_naive() == at.date_naive());
    let date = if same_day {
        String::new()
    } else {
        format!("{} ", at.date_naive())
    };
    format!("{date}{} {offset}", at.naive_local().format(clock))
}

/// How far `at` is from `now`, in words: `in 30m`, `in 4h12m`, `5m ago`.
pub fn from_now(at: Millis, now: Millis) -> String {
    let ahead = at >= now;
    let ms = at.abs_diff(now);
    // Whole seconds under a minute, whole minutes above (rounded to nearest).
    let secs = if ms < 60_000 {
        ms.div_ceil(1_000)
    } else {
        (ms + 30_000) / 60_000 * 60
    };
    let words = format_duration(Duration::from_secs(secs));
    if ahead {
        format!("in {words}")
    } else {
        format!("{words} ago")
    }
}

#[cfg(test)]
mod tests {
    use chrono::FixedOffset;

    use super::*;

    /// 2026-12-06 23:10:00 at +01:00.
    fn evening() -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2026-12-06T23:10:00+01:00").unwrap()
    }

    fn at(text: &str) -> Millis {
        parse_rfc3339(text).unwrap()
    }

    #[test]
    fn a_duration_counts_from_now() {
        let now = evening();
        let expected = at("2026-12-06T23:40:00+01:00");
        assert_eq!(parse_until_from("30m", &now).unwrap(), expected);
        assert_eq!(parse_until_from("for 30m", &now).unwrap(), expected);
        assert_eq!(
            parse_until_from(" 1h30m ", &now).unwrap(),
            at("2026-12-07T00:40:00+01:00")
        );
    }

    #[test]
    fn a_time_of_day_is_the_next_one_in_the_local_zone() {
        let now = evening();
        // 04:00 has passed today: tomorrow's.
        assert_eq!(
            parse_until_from("04:00", &now).unwrap(),
            at("2026-12-07T04:00:00+01:00")
        );
        assert_eq!(
            parse_until_from("until 23:30", &now).unwrap(),
            at("2026-12-06T23:30:00+01:00")
        );
        assert_eq!(
            parse_until_from("4:00:30", &now).unwrap(),
            at("2026-12-07T04:00:30+01:00")
        );
        // Exactly now is not after now: the same time tomorrow.
        assert_eq!(
            parse_until_from("23:10", &now).unwrap(),
            at("2026-12-07T23:10:00+01:00")
        );
    }

    #[test]
    fn an_rfc_3339_time_is_taken_as_written() {
        let now = evening();
        assert_eq!(
            parse_until_from("2026-12-07T04:00:00+01:00", &now).unwrap(),
            at("2026-12-07T03:00:00Z")
        );
        assert_eq!(
            parse_until_from("until 2026-12-07T03:00:00Z", &now).unwrap(),
            at("2026-12-07T03:00:00Z")
        );
    }

    #[test]
    fn nonsense_and_the_past_are_refused_naming_the_field() {
        let now = evening();
        for (text, says) in [
            ("soon", "neither a duration nor a time"),
            ("25:00", "neither a duration nor a time"),
            ("4:0", "neither a duration nor a time"),
            ("for 04:00", "neither a duration nor a time"),
            ("until 30m", "neither a duration nor a time"),
            ("", "neither a duration nor a time"),
            ("0s", "not in the future"),
            ("2026-12-06T22:00:00+01:00", "not in the future"),
        ] {
            let err = parse_until_from(text, &now).unwrap_err();
            assert_eq!(err.field(), Some("until"), "{text}: {err}");
            assert!(err.to_string().contains(says), "{text}: {err}");
        }
        let err = parse_until_from("soon", &now).unwrap_err().to_string();
        assert!(err.contains("+01:00"), "names the local offset: {err}");
        let err = parse_until_rfc3339("04:00").unwrap_err();
        assert_eq!(err.field(), Some("until"));
        let err = parse_until_rfc3339("2020-01-01T00:00:00Z").unwrap_err();
        assert!(err.to_string().contains("not in the future"), "{err}");
    }

    #[test]
    fn times_show_in_the_zone_with_the_offset_and_the_date_when_not_today() {
        let now = evening();
        assert_eq!(
            local_time_short_from(at("2026-12-06T22:24:00Z"), &now),
            "23:24 +01:00"
        );
        assert_eq!(
            local_time_short_from(at("2026-12-07T03:00:05Z"), &now),
            "2026-12-07 04:00:05 +01:00"
        );
    }

    #[test]
    fn distances_read_in_words() {
        let now = 1_000_000_000;
        assert_eq!(from_now(now + 30 * 60_000, now), "in 30m");
        assert_eq!(from_now(now + 29 * 60_000 + 59_400, now), "in 30m");
        assert_eq!(from_now(now + 4_500, now), "in 5s");
        assert_eq!(from_now(now + (4 * 60 + 12) * 60_000, now), "in 4h12m");
        assert_eq!(from_now(now - 5 * 60_000, now), "5m ago");
    }
}
