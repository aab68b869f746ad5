//! Per-endpoint health: the fixed latency buckets the per-minute rollups
//! count into, and percentiles read back from them. The console's success
//! rates and p50/p95 come from these rollups, never from scanning attempts.

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
