//! The retry policy: a schedule of delays with jitter, and `Retry-After`.

use std::time::{Duration, SystemTime};

use crate::config::DispatchConfig;
use crate::store::NextStep;

/// When to try again after a failed attempt, and when to give up.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Delay before attempt 1, 2, …; its length is the number of attempts.
    schedule: Vec<Duration>,
    /// Fraction by which each retry delay may vary either way.
    jitter: f64,
}

impl RetryPolicy {
    /// The policy `[dispatch]` configures.
    pub fn from_config(config: &DispatchConfig) -> RetryPolicy {
        RetryPolicy::new(config.retry_schedule.clone(), config.jitter)
    }

    /// A policy from a schedule (at least one entry) and a jitter in `[0, 1)`.
    pub fn new(schedule: Vec<Duration>, jitter: f64) -> RetryPolicy {
        let schedule = if schedule.is_empty() {
            vec![Duration::ZERO]
        } else {
            schedule
        };
        RetryPolicy {
            schedule,
            jitter: jitter.clamp(0.0, 0.99),
        }
    }

    /// How many attempts a delivery gets before it is dead.
    pub fn max_attempts(&self) -> i64 {
        self.schedule.len() as i64
    }

    /// Delay before a fresh schedule's first attempt (publish, manual retry), unjittered.
    pub fn first_delay_ms(&self) -> i64 {
        millis(self.schedule[0])
    }

    /// The longest step: the cap on a `Retry-After` the receiver asks for.
    fn longest_step(&self) -> Duration {
        self.schedule.iter().copied().max().unwrap_or_default()
    }

    /// What follows failed attempt number `attempt` (1-based): the next step
    /// of the schedule with jitter, or the receiver's `Retry-After` (capped at
    /// the longest step), or death once the schedule is spent.
    pub fn after_failure(&self, attempt: i64, retry_after: Option<Duration>) -> NextStep {
        let Some(step) = usize::try_from(attempt)
            .ok()
            .and_then(|n| self.schedule.get(n))
        else {
            return NextStep::Dead;
        };
        let delay = match retry_after {
            Some(asked) => asked.min(self.longest_step()),
            None => self.jittered(*step),
        };
        NextStep::RetryIn(millis(delay))
    }

    fn jittered(&self, delay: Duration) -> Duration {
        if self.jitter == 0.0 {
            return delay;
        }
        let factor = 1.0 + self.jitter * (fastrand::f64() * 2.0 - 1.0);
        delay.mul_f64(factor)
    }
}

fn millis(delay: Duration) -> i64 {
    i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)
}

/// Parses a `Retry-After` value: delay seconds or an HTTP date (a date in the
/// past means "now"). Anything else is ignored.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(list: &[u64]) -> Vec<Duration> {
        list.iter().map(|s| Duration::from_secs(*s)).collect()
    }

    #[test]
    fn schedule_steps_then_death() {
        let policy = RetryPolicy::new(secs(&[0, 5, 300]), 0.0);
        assert_eq!(policy.max_attempts(), 3);
        assert_eq!(policy.after_failure(1, None), NextStep::RetryIn(5_000));
        assert_eq!(policy.after_failure(2, None), NextStep::RetryIn(300_000));
        assert_eq!(policy.after_failure(3, None), NextStep::Dead);
    }

    #[test]
    fn jitter_stays_within_its_band() {
        let policy = RetryPolicy::new(secs(&[0, 100]), 0.2);
        for _ in 0..1_000 {
            let NextStep::RetryIn(ms) = policy.after_failure(1, None) else {
                panic!("expected a retry");
            };
            assert!((80_000..=120_000).contains(&ms), "{ms}");
        }
    }

    #[test]
    fn retry_after_is_honoured_but_capped_and_still_counts() {
        let policy = RetryPolicy::new(secs(&[0, 5, 60]), 0.2);
        let asked = Some(Duration::from_secs(30));
        assert_eq!(policy.after_failure(1, asked), NextStep::RetryIn(30_000));
        let greedy = Some(Duration::from_secs(3_600));
        assert_eq!(policy.after_failure(1, greedy), NextStep::RetryIn(60_000));
        assert_eq!(policy.after_failure(3, asked), NextStep::Dead);
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(90))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
