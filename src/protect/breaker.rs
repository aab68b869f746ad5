//! The circuit breaker's rules: which outcomes count against a receiver,
//! when a breaker opens, how long it waits before a probe, and what the
//! probe's outcome does. Pure: the store keeps the state and applies these
//! rules in the transaction that records the outcomes.

use std::time::Duration;

use crate::config::{ProtectionConfig, format_duration};
use crate::model::{BreakerMode, BreakerState, ErrorKind};

/// Milliseconds of the sliding window (at least 1, so buckets are defined).
pub fn window_ms(policy: &ProtectionConfig) -> i64 {
    millis(policy.window).max(1)
}

/// The cool-down after the breaker opens with `previous` as the last one
/// (0: it was closed): the base, then doubled up to the most.
pub fn next_cooldown_ms(policy: &ProtectionConfig, previous: i64) -> i64 {
    let base = millis(policy.cooldown).max(1);
    let most = millis(policy.max_cooldown).max(base);
    if previous <= 0 {
        base
    } else {
        previous.saturating_mul(2).clamp(base, most)
    }
}

/// Milliseconds as a setting is written: `30s`, `2m`.
fn format_ms(ms: i64) -> String {
    format_duration(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Whether an attempt that got `status` (if an answer came) or failed with
/// `error` counts against its receiver: it was down, overloaded or
/// unreachable. A 4xx other than 408 and 429 is an answer about the
/// content, `too_large_response` an answer too, and `blocked_destination`
/// the operator's own policy: none of those opens a breaker.
pub fn counts_as_failure(status: Option<i64>, error: Option<ErrorKind>) -> bool {
    match error {
        None => false,
        Some(ErrorKind::HttpStatus) => match status {
            Some(408 | 429) => true,
            Some(501) => false,
            Some(code) => code >= 500,
            None => true,
        },
        Some(ErrorKind::TooLargeResponse | ErrorKind::BlockedDestination) => false,
        Some(
            ErrorKind::Timeout
            | ErrorKind::Connect
            | ErrorKind::Dns
            | ErrorKind::Tls
            | ErrorKind::Network,
        ) => true,
    }
}

/// Whether an outcome shows the receiver up: it answered, whatever it said
/// (except the failures above). The guard's refusal shows nothing.
pub fn shows_receiver_up(status: Option<i64>, error: Option<ErrorKind>) -> bool {
    error != Some(ErrorKind::BlockedDestination) && !counts_as_failure(status, error)
}

/// A breaker's counters and state as stored, after this batch's outcomes
/// were added.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerCounts {
    pub mode: BreakerMode,
    pub state: BreakerState,
    pub cooldown_ms: i64,
    /// Which window bucket `attempts` and `failures` belong to.
    pub window_bucket: i64,
    pub attempts: i64,
    pub failures: i64,
    pub previous_attempts: i64,
    pub previous_failures: i64,
    pub consecutive_failures: i64,
    /// The delivery sent as the probe, while half-open.
    pub probe_delivery_id: Option<String>,
    /// The first failure since the receiver last answered.
    pub failing_since: Option<i64>,
}

/// The attempts and failures of the sliding window ending at `now`: the
/// current bucket's, plus the previous bucket's weighted by how much of it
/// the window still covers.
pub fn window_figures(counts: &BreakerCounts, now: i64, window_ms: i64) -> (f64, f64) {
    let bucket = now.div_euclid(window_ms);
    let into = now.rem_euclid(window_ms) as f64 / window_ms as f64;
    match bucket - counts.window_bucket {
        0 => (
            counts.attempts as f64 + counts.previous_attempts as f64 * (1.0 - into),
            counts.failures as f64 + counts.previous_failures as f64 * (1.0 - into),
        ),
        1 => (
            counts.attempts as f64 * (1.0 - into),
            counts.failures as f64 * (1.0 - into),
        ),
        _ => (0.0, 0.0),
    }
}

/// What a batch of outcomes does to a breaker.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Nothing changes.
    Stay,
    /// It opens (from closed or half-open) for `cooldown_ms`.
    Open {
        reason: String,
        cooldown_ms: i64,
        cause: Cause,
    },
    /// The probe got an answer: it closes and its counters start over.
    Close { reason: String },
}

/// Which rule moved a breaker, as metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// `protection.consecutive_failures` failures in a row.
    ConsecutiveFailures,
    /// `protection.failure_ratio` of the window's attempts failed.
    FailureRatio,
    /// The probe failed: open again, for longer.
    ProbeFailed,
    /// The probe got an answer: closed.
    ProbeAnswered,
    /// An operator forced it, or handed it back to `auto`.
    Operator,
}

impl Cause {
    /// The label: `failure_ratio`.
    pub fn label(self) -> &'static str {
        match self {
            Cause::ConsecutiveFailures => "consecutive_failures",
            Cause::FailureRatio => "failure_ratio",
            Cause::ProbeFailed => "probe_failed",
            Cause::ProbeAnswered => "probe_answered",
            Cause::Operator => "operator",
        }
    }
}

/// What the outcomes just counted into `counts` do to the breaker at `now`.
/// `probe_answered` is the probe's outcome if this batch holds it: whether
/// the receiver answered (`true`) or failed again.
pub fn judge(
    policy: &ProtectionConfig,
    counts: &BreakerCounts,
    probe_answered: Option<bool>,
    now: i64,
) -> Verdict {
    if counts.mode != BreakerMode::Auto || !policy.breaker {
        return Verdict::Stay;
    }
    match counts.state {
        BreakerState::Closed => match opening_reason(policy, counts, now) {
            Some((cause, reason)) => Verdict::Open {
                reason,
                cooldown_ms: next_cooldown_ms(policy, 0),
                cause,
            },
            None => Verdict::Stay,
        },
        BreakerState::HalfOpen => match probe_answered {
            Some(true) => Verdict::Close {
                reason: "the probe got an answer".to_string(),
            },
            Some(false) => {
                let cooldown_ms = next_cooldown_ms(policy, counts.cooldown_ms);
                Verdict::Open {
                    reason: format!("the probe failed; next probe in {}", format_ms(cooldown_ms)),
                    cooldown_ms,
                    cause: Cause::ProbeFailed,
                }
            }
            None => Verdict::Stay,
        },
        // Outcomes of attempts that were in flight when it opened.
        BreakerState::Open => Verdict::Stay,
    }
}

/// Whether the endpoint is to be disabled at `now`: every attempt has
/// failed for `protection.disable_after` (off at zero), and no operator
/// forced its breaker. Returns since when.
pub fn failing_too_long(
    policy: &ProtectionConfig,
    counts: &BreakerCounts,
    now: i64,
) -> Option<i64> {
    let after = millis(policy.disable_after);
    if after == 0 || counts.mode != BreakerMode::Auto || counts.consecutive_failures == 0 {
        return None;
    }
    counts
        .failing_since
        .filter(|since| now.saturating_sub(*since) >= after)
}

/// Why a closed breaker opens now, if it does.
fn opening_reason(
    policy: &ProtectionConfig,
    counts: &BreakerCounts,
    now: i64,
) -> Option<(Cause, String)> {
    let in_a_row = i64::from(policy.consecutive_failures);
    if in_a_row > 0 && counts.consecutive_failures >= in_a_row {
        let reason = format!("{} failures in a row", counts.consecutive_failures);
        return Some((Cause::ConsecutiveFailures, reason));
    }
    let (attempts, failures) = window_figures(counts, now, window_ms(policy));
    let enough = attempts >= f64::from(policy.min_attempts.max(1));
    if enough && failures >= policy.failure_ratio * attempts {
        let reason = format!(
            "{:.0} of {:.0} attempts failed in the last {}",
            failures,
            attempts,
            format_ms(window_ms(policy))
        );
        return Some((Cause::FailureRatio, reason));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(state: BreakerState) -> BreakerCounts {
        BreakerCounts {
            mode: BreakerMode::Auto,
            state,
            cooldown_ms: 0,
            window_bucket: 10,
            attempts: 0,
            failures: 0,
            previous_attempts: 0,
            previous_failures: 0,
            consecutive_failures: 0,
            probe_delivery_id: None,
            failing_since: None,
        }
    }

    const NOW: i64 = 10 * 60_000 + 30_000;

    #[test]
    fn receiver_faults_count_and_answers_about_content_do_not() {
        let http = Some(ErrorKind::HttpStatus);
        for code in [500, 502, 503, 504, 408, 429] {
            assert!(counts_as_failure(Some(code), http), "{code}");
        }
        for code in [400, 401, 404, 410, 422, 501] {
            assert!(!counts_as_failure(Some(code), http), "{code}");
        }
        for kind in [
            ErrorKind::Timeout,
            ErrorKind::Connect,
            ErrorKind::Dns,
            ErrorKind::Tls,
        ] {
            assert!(counts_as_failure(None, Some(kind)), "{kind}");
        }
        assert!(!counts_as_failure(
            None,
            Some(ErrorKind::BlockedDestination)
        ));
        assert!(!counts_as_failure(
            Some(200),
            Some(ErrorKind::TooLargeResponse)
        ));
        assert!(!counts_as_failure(Some(200), None));
        assert!(!shows_receiver_up(
            None,
            Some(ErrorKind::BlockedDestination)
        ));
        assert!(shows_receiver_up(Some(404), http));
    }

    #[test]
    fn the_ratio_opens_only_past_the_minimum_attempts() {
        let policy = ProtectionConfig::default();
        let mut c = counts(BreakerState::Closed);
        (c.attempts, c.failures) = (9, 9);
        assert_eq!(judge(&policy, &c, None, NOW), Verdict::Stay, "9 < min 10");
        (c.attempts, c.failures) = (10, 5);
        assert!(matches!(
            judge(&policy, &c, None, NOW),
            Verdict::Open { .. }
        ));
        (c.attempts, c.failures) = (10, 4);
        assert_eq!(judge(&policy, &c, None, NOW), Verdict::Stay, "40 % < 50 %");
    }

    #[test]
    fn the_previous_bucket_weighs_what_the_window_still_covers() {
        let mut c = counts(BreakerState::Closed);
        (c.previous_attempts, c.previous_failures) = (20, 20);
        (c.attempts, c.failures) = (4, 0);
        // Half-way into bucket 10: half of bucket 9's attempts still count.
        assert_eq!(window_figures(&c, NOW, 60_000), (14.0, 10.0));
        // In bucket 11, bucket 10 is the previous one; 9 is gone.
        assert_eq!(window_figures(&c, NOW + 60_000, 60_000), (2.0, 0.0));
        assert_eq!(window_figures(&c, NOW + 120_000, 60_000), (0.0, 0.0));
    }

    #[test]
    fn failures_in_a_row_open_it_and_zero_turns_the_rule_off() {
        let mut policy = ProtectionConfig::default();
        let mut c = counts(BreakerState::Closed);
        c.consecutive_failures = 20;
        // A long quiet stretch: the window holds nothing.
        c.window_bucket = 0;
        let Verdict::Open {
            reason,
            cooldown_ms,
            cause,
        } = judge(&policy, &c, None, NOW)
        else {
            panic!("opens")
        };
        assert_eq!(cause, Cause::ConsecutiveFailures);
        assert_eq!(
            (reason.as_str(), cooldown_ms),
            ("20 failures in a row", 30_000)
        );
        policy.consecutive_failures = 0;
        assert_eq!(judge(&policy, &c, None, NOW), Verdict::Stay);
    }

    #[test]
    fn the_probe_closes_it_or_reopens_it_for_twice_as_long() {
        let policy = ProtectionConfig::default();
        let mut c = counts(BreakerState::HalfOpen);
        c.cooldown_ms = 30_000;
        assert!(matches!(
            judge(&policy, &c, Some(true), NOW),
            Verdict::Close { .. }
        ));
        let Verdict::Open { cooldown_ms, .. } = judge(&policy, &c, Some(false), NOW) else {
            panic!("re-opens")
        };
        assert_eq!(cooldown_ms, 60_000);
        assert_eq!(
            judge(&policy, &c, None, NOW),
            Verdict::Stay,
            "no probe outcome yet"
        );
        c.cooldown_ms = 20 * 60_000;
        let Verdict::Open { cooldown_ms, .. } = judge(&policy, &c, Some(false), NOW) else {
            panic!("re-opens")
        };
        assert_eq!(cooldown_ms, 30 * 60_000, "capped at max_cooldown");
    }

    #[test]
    fn an_endpoint_failing_for_disable_after_is_to_be_disabled() {
        let mut policy = ProtectionConfig::default();
        let mut c = counts(BreakerState::Open);
        c.consecutive_failures = 3;
        let five_days = 5 * 86_400_000;
        c.failing_since = Some(NOW - five_days);
        assert_eq!(failing_too_long(&policy, &c, NOW), Some(NOW - five_days));
        c.failing_since = Some(NOW - five_days + 1);
        assert_eq!(failing_too_long(&policy, &c, NOW), None, "just short of it");
        c.failing_since = Some(0);
        c.mode = BreakerMode::Closed;
        assert_eq!(
            failing_too_long(&policy, &c, NOW),
            None,
            "forced: left alone"
        );
        c.mode = BreakerMode::Auto;
        policy.disable_after = Duration::ZERO;
        assert_eq!(failing_too_long(&policy, &c, NOW), None, "off");
    }

    #[test]
    fn forced_states_and_a_disabled_breaker_never_move() {
        let mut policy = ProtectionConfig::default();
        let mut c = counts(BreakerState::Closed);
        c.consecutive_failures = 100;
        c.mode = BreakerMode::Closed;
        assert_eq!(judge(&policy, &c, None, NOW), Verdict::Stay);
        c.mode = BreakerMode::Auto;
        policy.breaker = false;
        assert_eq!(judge(&policy, &c, None, NOW), Verdict::Stay);
    }
}
