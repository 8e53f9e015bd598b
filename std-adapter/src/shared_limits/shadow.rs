//! The last state the store returned, kept locally so that a client already over its limit is
//! refused without a round trip.
//!
//! Invariant: a cached state only ever refuses a call the store would refuse too. A bucket's
//! TAT in the store never moves back (other replicas only push it forward), and the time elapsed
//! on the store since its answer is at most the time elapsed here since the question was *sent*,
//! so `ahead − elapsed-since-sent` is a lower bound of the store's `TAT − now`. (Only a store
//! that lost its state — `FLUSHALL`, a failover — can make the cache stricter than the store, for
//! at most one retry-after, and the quota's cache for at most [`QUOTA_RECHECK`].)

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::gcra::Bucket;

/// How long a spent quota is refused locally before the store is asked again.
pub const QUOTA_RECHECK: Duration = Duration::from_secs(1);

/// Buckets kept at most (beyond, new refusals go to the store until old ones expire).
pub const CAPACITY: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Entry {
    ahead: u64,
    bucket: Bucket,
    sent: Instant,
}

/// The cache of refusing buckets and of a spent quota.
#[derive(Debug, Default)]
pub struct Shadow {
    buckets: Mutex<HashMap<String, Entry>>,
    quota: Mutex<Option<(Instant, Duration)>>,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Shadow {
    /// The wait (µs) if the cached state of `key` already refuses `n` tokens now.
    pub fn bucket_wait(&self, key: &str, n: u64) -> Option<u64> {
        let map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let e = map.get(key)?;
        e.bucket.wait_us(e.ahead, micros(e.sent.elapsed()), n)
    }

    /// Records the store's answer for `key` (asked at `sent`): kept only while it refuses the
    /// next `n` tokens.
    pub fn record_bucket(&self, key: &str, bucket: Bucket, ahead: u64, sent: Instant, n: u64) {
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if bucket.wait_us(ahead, 0, n).is_none() {
            map.remove(key);
            return;
        }
        if map.len() >= CAPACITY && !map.contains_key(key) {
            map.retain(|_, e| {
                e.bucket
                    .wait_us(e.ahead, micros(e.sent.elapsed()), n)
                    .is_some()
            });
            if map.len() >= CAPACITY {
                return;
            }
        }
        map.insert(
            key.to_owned(),
            Entry {
                ahead,
                bucket,
                sent,
            },
        );
    }

    /// Forgets every cached state (the store lost its state, or came back).
    pub fn clear(&self) {
        self.buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        *self.quota.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The wait (µs) if the quota is known spent for its window.
    pub fn quota_wait(&self) -> Option<u64> {
        let q = self.quota.lock().unwrap_or_else(|e| e.into_inner());
        let (sent, resets) = (*q)?;
        let elapsed = sent.elapsed();
        (elapsed < resets.min(QUOTA_RECHECK)).then(|| micros(resets - elapsed))
    }

    /// Records that the quota was spent, asked at `sent`, renewing `resets_us` later.
    pub fn record_quota(&self, spent: bool, sent: Instant, resets_us: u64) {
        *self.quota.lock().unwrap_or_else(|e| e.into_inner()) =
            spent.then(|| (sent, Duration::from_micros(resets_us)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_only_what_the_store_refused() {
        let s = Shadow::default();
        let b = Bucket::of("2/1h".parse().unwrap()).unwrap();
        let t = Instant::now();
        // One token left: nothing cached.
        s.record_bucket("a", b, b.interval, t, 1);
        assert_eq!(s.bucket_wait("a", 1), None);
        // Empty: cached, and refused with about one interval to wait.
        s.record_bucket("a", b, b.span, t, 1);
        let wait = s.bucket_wait("a", 1).unwrap();
        assert!(wait <= 1_800_000_000 && wait > 1_700_000_000, "{wait}");
        assert_eq!(s.bucket_wait("b", 1), None);
        // A state that admits again forgets the key.
        s.record_bucket("a", b, 0, t, 1);
        assert_eq!(s.bucket_wait("a", 1), None);
        s.record_quota(true, t, 10_000_000);
        assert!(s.quota_wait().unwrap() > 9_000_000);
        s.record_quota(true, Instant::now() - QUOTA_RECHECK, 10_000_000);
        assert_eq!(s.quota_wait(), None, "rechecked after a second");
        s.record_quota(false, t, 0);
        assert_eq!(s.quota_wait(), None);
    }
}
