//! When an API key stops working: an RFC 3339 time or a duration from now, always in the future.

use super::{OpsError, Result};
use crate::config::parse_duration;
use crate::model::{Millis, format_rfc3339, now_millis, parse_rfc3339};

/// `expires_at` as the API takes it: an RFC 3339 time in the future.
pub fn parse_expires_at(text: &str) -> Result<Millis> {
    let field = "expires_at";
    let at = parse_rfc3339(text.trim()).ok_or_else(|| {
        OpsError::invalid(
            field,
            format!("{text:?} is not an RFC 3339 time like 2026-12-07T04:00:00Z"),
        )
    })?;
    check_expiry(field, at, now_millis())?;
    Ok(at)
}

/// An expiry as an operator writes it (`--expires`): an RFC 3339 time, or
/// a duration from now (`90d`, `12h`, `1h30m`); refusals name `field`.
pub fn parse_expires(field: &'static str, text: &str) -> Result<Millis> {
    parse_expires_from(field, text, now_millis())
}

/// [`parse_expires`] as of `now` (unix ms).
fn parse_expires_from(field: &'static str, text: &str, now: Millis) -> Result<Millis> {
    let text = text.trim();
    let at = if let Some(at) = parse_rfc3339(text) {
        at
    } else if let Ok(after) = parse_duration(text) {
        now.saturating_add(i64::try_from(after.as_millis()).unwrap_or(i64::MAX))
    } else {
        return Err(OpsError::invalid(
            field,
            format!(
                "{text:?} is neither a duration nor a time: give e.g. 90d, 12h or 2026-12-07T04:00:00Z"
            ),
        ));
    };
    check_expiry(field, at, now)?;
    Ok(at)
}

/// Refuses an expiry that is not after `now`: such a key would be born dead.
pub(super) fn check_expiry(field: &'static str, at: Millis, now: Millis) -> Result<()> {
    if at <= now {
        // Well formed, but the clock has passed it: a conflict, not bad input.
        return Err(OpsError::Conflict {
            field,
            reason: format!(
                "{} is not in the future (it is now {}); a key must expire after it is made",
                format_rfc3339(at),
                format_rfc3339(now)
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_796_616_000_000; // 2026-12-07T04:00:00Z

    #[test]
    fn durations_count_from_now_and_times_are_taken_as_written() {
        let day = 86_400_000;
        assert_eq!(
            parse_expires_from("--expires", "90d", NOW).unwrap(),
            NOW + 90 * day
        );
        assert_eq!(
            parse_expires_from("--expires", " 12h ", NOW).unwrap(),
            NOW + 12 * 3_600_000
        );
        assert_eq!(
            parse_expires_from("--expires", "2026-12-08T05:00:00+01:00", NOW).unwrap(),
            NOW + day
        );
    }

    #[test]
    fn nonsense_and_the_past_are_refused_naming_the_field() {
        for (text, says) in [
            ("yesterday", "neither a duration nor a time"),
            ("", "neither a duration nor a time"),
            ("90", "neither a duration nor a time"),
            ("0s", "not in the future"),
            ("2026-12-07T04:00:00Z", "not in the future"),
            ("2020-01-01T00:00:00Z", "not in the future"),
        ] {
            let err = parse_expires_from("--expires", text, NOW).unwrap_err();
            assert_eq!(err.field(), Some("--expires"), "{text}: {err}");
            assert!(err.to_string().contains(says), "{text}: {err}");
        }
        let err = parse_expires_at("90d").unwrap_err();
        assert_eq!(err.field(), Some("expires_at"));
        assert!(err.to_string().contains("RFC 3339"), "{err}");
        let err = parse_expires_at("2020-01-01T00:00:00Z").unwrap_err();
        assert_eq!(err.field(), Some("expires_at"));
        assert!(err.to_string().contains("not in the future"), "{err}");
    }
}
