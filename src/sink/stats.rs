//! What the sink observed: counters, the `webhook-id`s seen (to count
//! duplicates), and the requests kept for tests. Counters are atomics and
//! the id set is sharded, so the happy path takes no lock a benchmark feels.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use serde::Serialize;

use super::{ReceivedRequest, Verdict};

/// Shards of the id set; enough that concurrent requests rarely meet.
const ID_SHARDS: usize = 16;

/// Counters at one moment.
///
/// `duplicates` counts requests accepted (2xx) for a `webhook-id` that had
/// already been accepted: the at-least-once overshoot. A retry after a
/// deliberate failure is not a duplicate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// POST requests received.
    pub received: u64,
    /// Answered 2xx.
    pub accepted: u64,
    /// Answered with the configured failure status.
    pub failed_on_purpose: u64,
    /// Answered 401 for a missing or wrong signature.
    pub bad_signature: u64,
    /// Distinct `webhook-id` values seen, whatever the verdict.
    pub unique_ids: u64,
    /// Accepted again after an earlier acceptance of the same id.
    pub duplicates: u64,
}

impl std::fmt::Display for StatsSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "received={} accepted={} failed_on_purpose={} bad_signature={} unique_ids={} duplicates={}",
            self.received,
            self.accepted,
            self.failed_on_purpose,
            self.bad_signature,
            self.unique_ids,
            self.duplicates
        )
    }
}

/// Everything the sink observed, shared by the handler and the handle.
pub(super) struct SinkStats {
    pub(super) received: AtomicU64,
    accepted: AtomicU64,
    failed_on_purpose: AtomicU64,
    bad_signature: AtomicU64,
    duplicates: AtomicU64,
    pub(super) ids: IdSet,
    pub(super) kept: Option<Mutex<Vec<ReceivedRequest>>>,
}

impl SinkStats {
    pub(super) fn new(keep: bool) -> Self {
        Self {
            received: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            failed_on_purpose: AtomicU64::new(0),
            bad_signature: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            ids: IdSet::default(),
            kept: keep.then(|| Mutex::new(Vec::new())),
        }
    }

    pub(super) fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            received: self.received.load(Ordering::Acquire),
            accepted: self.accepted.load(Ordering::Relaxed),
            failed_on_purpose: self.failed_on_purpose.load(Ordering::Relaxed),
            bad_signature: self.bad_signature.load(Ordering::Relaxed),
            unique_ids: self.ids.len(),
            duplicates: self.duplicates.load(Ordering::Relaxed),
        }
    }

    pub(super) fn count(&self, verdict: Verdict, id: Option<&[u8]>) {
        let counter = match verdict {
            Verdict::Ok => &self.accepted,
            Verdict::FailedOnPurpose => &self.failed_on_purpose,
            Verdict::BadSignature => &self.bad_signature,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(id) = id
            && self.ids.see(id, verdict == Verdict::Ok)
        {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `webhook-id`s seen, stored as 64-bit hashes (a collision among a few
/// million ids is vanishingly unlikely) with when each was first accepted.
#[derive(Default)]
pub(super) struct IdSet {
    shards: [Mutex<HashMap<u64, Option<i64>>>; ID_SHARDS],
}

impl IdSet {
    fn hash(id: &[u8]) -> u64 {
        let mut hasher = DefaultHasher::new();
        id.hash(&mut hasher);
        hasher.finish()
    }

    fn shard(&self, hash: u64) -> &Mutex<HashMap<u64, Option<i64>>> {
        &self.shards[usize::try_from(hash % ID_SHARDS as u64).unwrap_or(0)]
    }

    /// Records `id`; returns true if it was accepted now and before.
    fn see(&self, id: &[u8], accepted: bool) -> bool {
        let hash = Self::hash(id);
        let mut map = lock(self.shard(hash));
        let first_accepted = map.entry(hash).or_insert(None);
        let duplicate = accepted && first_accepted.is_some();
        if accepted && first_accepted.is_none() {
            *first_accepted = Some(crate::model::now_millis());
        }
        duplicate
    }

    /// When `id` was first accepted (unix ms), if it was.
    pub(super) fn first_accepted(&self, id: &[u8]) -> Option<i64> {
        let hash = Self::hash(id);
        lock(self.shard(hash)).get(&hash).copied().flatten()
    }

    fn len(&self) -> u64 {
        self.shards.iter().map(|s| lock(s).len() as u64).sum()
    }
}

/// Locks a std mutex, recovering from poisoning: the data are counters and
/// lists that stay consistent even if a holder panicked.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
