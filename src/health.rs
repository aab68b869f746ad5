//! Per-endpoint health, shared by the dispatcher that records it and the
//! readers that show it: the outcome classes an attempt counts under, the
//! fixed latency buckets the per-minute rollups count into, and percentiles
//! read back from them. The console's success rates and p50/p95 come from
//! these rollups, never from scanning attempts.

use crate::model::ErrorKind;

/// The column of the health rollups an attempt counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeClass {
    /// A 2xx answer.
    Succeeded,
    /// The receiver answered 4xx: usually a content or auth problem on its side.
    Status4xx,
    /// Any other non-2xx answer.
    Status5xx,
    /// No complete answer within the timeout.
    Timeout,
    /// Connect, DNS, TLS or a broken connection: the receiver was not reached.
    Network,
    /// Anything else (an answer too large to keep).
    Other,
    /// Nothing was sent: the outbound guard refused the destination. Not
    /// the receiver's doing, so it counts neither as an attempt nor as a
    /// failure in the endpoint's health.
    Blocked,
}

impl OutcomeClass {
    /// The class of an attempt that ended with `error` (`None`: it
    /// succeeded) and, if an answer came, `status`.
    pub fn of(error: Option<ErrorKind>, status: Option<i64>) -> OutcomeClass {
        match (error, status) {
            (None, _) => OutcomeClass::Succeeded,
            (Some(ErrorKind::HttpStatus), Some(status)) if (400..500).contains(&status) => {
                OutcomeClass::Status4xx
            }
            (Some(ErrorKind::HttpStatus), _) => OutcomeClass::Status5xx,
            (Some(ErrorKind::Timeout), _) => OutcomeClass::Timeout,
            (
                Some(ErrorKind::Connect | ErrorKind::Dns | ErrorKind::Tls | ErrorKind::Network),
                _,
            ) => OutcomeClass::Network,
            (Some(ErrorKind::TooLargeResponse), _) => OutcomeClass::Other,
            (Some(ErrorKind::BlockedDestination), _) => OutcomeClass::Blocked,
        }
    }
}

/// Upper bounds (inclusive, ms) of every bucket but the last, which holds
/// everything slower. Changing them changes the meaning of stored rollups.
pub const LATENCY_BOUNDS_MS: [i64; 11] =
    [5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000];

/// Number of buckets: one per bound plus the overflow bucket.
pub const BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// The bucket an attempt of `duration_ms` counts into.
pub fn bucket_of(duration_ms: i64) -> usize {
    LATENCY_BOUNDS_MS
        .iter()
        .position(|bound| duration_ms <= *bound)
        .unwrap_or(BUCKETS - 1)
}

/// The latency below which a fraction `q` (0..=1) of attempts fell, as the
/// upper bound of the bucket holding that rank; `None` without attempts.
/// The overflow bucket reports twice the last bound, meaning "slower than that".
pub fn percentile(buckets: &[i64; BUCKETS], q: f64) -> Option<i64> {
    let total: i64 = buckets.iter().sum();
    if total <= 0 {
        return None;
    }
    let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as i64).max(1);
    let mut seen = 0;
    for (i, count) in buckets.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return Some(
                LATENCY_BOUNDS_MS
                    .get(i)
                    .copied()
                    .unwrap_or(LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1] * 2),
            );
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_fall_in_their_class() {
        use ErrorKind::*;
        assert_eq!(OutcomeClass::of(None, Some(200)), OutcomeClass::Succeeded);
        assert_eq!(
            OutcomeClass::of(Some(HttpStatus), Some(404)),
            OutcomeClass::Status4xx
        );
        assert_eq!(
            OutcomeClass::of(Some(HttpStatus), Some(503)),
            OutcomeClass::Status5xx
        );
        assert_eq!(
            OutcomeClass::of(Some(HttpStatus), Some(302)),
            OutcomeClass::Status5xx
        );
        assert_eq!(OutcomeClass::of(Some(Timeout), None), OutcomeClass::Timeout);
        assert_eq!(OutcomeClass::of(Some(Dns), None), OutcomeClass::Network);
        assert_eq!(
            OutcomeClass::of(Some(TooLargeResponse), Some(200)),
            OutcomeClass::Other
        );
    }

    #[test]
    fn durations_land_in_their_bucket() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(5), 0);
        assert_eq!(bucket_of(6), 1);
        assert_eq!(bucket_of(10_000), 10);
        assert_eq!(bucket_of(10_001), 11);
    }

    #[test]
    fn percentiles_read_bucket_bounds() {
        let mut buckets = [0; BUCKETS];
        buckets[bucket_of(3)] = 50;
        buckets[bucket_of(80)] = 45;
        buckets[bucket_of(4_000)] = 5;
        assert_eq!(percentile(&buckets, 0.5), Some(5));
        assert_eq!(percentile(&buckets, 0.95), Some(100));
        assert_eq!(percentile(&buckets, 0.99), Some(5_000));
        assert_eq!(percentile(&[0; BUCKETS], 0.5), None);
    }
}
