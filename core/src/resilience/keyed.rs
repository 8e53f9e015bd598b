//! Per-client token buckets in a fixed, lock-free table.
//!
//! Layout: `CAP` slots in sets of [`WAYS`]; a key hashes to one set and lives in one of its slots.
//! A slot is a key word and a TAT word. Readers never lock: they find the key, read the TAT,
//! check the key again and `compare_exchange` the TAT. Inserting into a set takes that set's
//! insert flag with one `compare_exchange` and never waits for it: a thread that finds the flag
//! taken retries a few times and then uses the overflow bucket, so an interrupt handler that
//! preempted an insertion can never spin forever.
//!
//! Eviction. A slot whose TAT is before `now` is identical to a fresh bucket, so it can be handed
//! to a new key without losing anything. The evictor swaps the TAT for a marker, writes the new
//! key, then writes `old TAT + 1` as the new key's TAT (still in the past: a full bucket). TATs in
//! a slot only ever grow, so a reader holding a TAT read under the old key can never succeed its
//! `compare_exchange` on the new key's bucket (no ABA).

use super::clock::LastSeen;
use super::error::{AcquireError, RateLimited};
use super::token_bucket::{Gcra, TokenBucketConfig};
use crate::sync::{spin_hint, AtomicU64, AtomicU8, Ordering};
use crate::Counter;

/// Slots per set: a key can live in any slot of its set.
pub const WAYS: usize = 4;
/// The key word of an unused slot.
const EMPTY: u64 = 0;
/// The key word stored for the one key whose mix is `EMPTY`.
const EMPTY_ALIAS: u64 = 0x9E37_79B9_7F4A_7C15;
/// TAT of a slot that is being handed to a new key.
const MARK: u64 = u64::MAX;
/// How many times a request retries a busy set before it goes to the overflow bucket.
const RETRIES: u32 = 4;

#[derive(Debug)]
struct Slot {
    key: AtomicU64,
    tat: AtomicU64,
}

impl Slot {
    const_fn! {
        const fn new() -> Self {
            Self { key: AtomicU64::new(EMPTY), tat: AtomicU64::new(0) }
        }
    }
}

/// A bijective 64-bit mix (the splitmix64 finalizer): distinct `u64` keys get distinct words.
const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The key word for `key`: never `EMPTY`.
const fn key_word(key: u64) -> u64 {
    let m = mix(key);
    if m == EMPTY {
        EMPTY_ALIAS
    } else {
        m
    }
}

/// FNV-1a, 64-bit: how byte keys become `u64` keys.
pub const fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
        i += 1;
    }
    h
}

/// Where a request was charged.
enum Found {
    Slot(usize),
    Overflow,
}

/// Per-client rate limits: up to `CAP` clients, each with its own [`TokenBucket`]-equivalent
/// bucket, plus one shared overflow bucket.
///
/// Invariants:
/// - a client that has a slot gets exactly the guarantees of a [`TokenBucket`] with the same
///   configuration (burst from idle, `burst + elapsed × rate` over any interval);
/// - a key never has two slots (insertions into a set are serialised by its insert flag, taken
///   without waiting);
/// - a slot is only given to another key when its bucket is full again, which loses nothing;
/// - **overflow policy**: when every slot of the key's set holds an active client (or the set is
///   busy inserting for longer than a few retries), the request is charged to one shared
///   overflow bucket with the same rate and burst, and [`overflowed`](Self::overflowed) counts it.
///   Clients in overflow share that one budget, so a flood of new clients cannot starve the ones
///   that have slots, and is never admitted without limit;
/// - keys are `u64` client ids (distinct ids never collide) or bytes hashed with 64-bit FNV-1a
///   (two byte keys with the same hash share a bucket);
/// - no lock, no allocation, no panic; a `now` earlier than one already admitted counts as no
///   time passed (it is decided as [`TokenBucket`] decides it, from the slot's TAT);
/// - a refusal is loads only and counts nothing: the caller counts refusals where it exports
///   them.
///
/// [`TokenBucket`]: super::TokenBucket
///
/// ```
/// use vitals_core::resilience::{KeyedLimiter, Rate, TokenBucketConfig};
///
/// // Each client: 2 per second, bursts of 2; 64 clients tracked; clock in milliseconds.
/// static PER_CLIENT: KeyedLimiter<64> =
///     KeyedLimiter::new(TokenBucketConfig::new(1_000, Rate::per_second(2), 2));
///
/// assert!(PER_CLIENT.try_acquire_bytes(b"alice", 0).is_ok());
/// assert!(PER_CLIENT.try_acquire_bytes(b"alice", 0).is_ok());
/// assert!(PER_CLIENT.try_acquire_bytes(b"alice", 0).is_err());
/// assert!(PER_CLIENT.try_acquire_bytes(b"bob", 0).is_ok()); // bob has his own bucket
/// ```
#[derive(Debug)]
pub struct KeyedLimiter<const CAP: usize> {
    slots: [Slot; CAP],
    /// One insert flag per set (index `set × WAYS`); the others are unused.
    inserting: [AtomicU8; CAP],
    overflow: AtomicU64,
    seen: LastSeen,
    overflowed: Counter,
    gcra: Gcra,
    config: TokenBucketConfig,
}

impl<const CAP: usize> KeyedLimiter<CAP> {
    /// An empty table.
    #[cfg(not(loom))]
    pub const fn new(config: TokenBucketConfig) -> Self {
        Self {
            slots: [const { Slot::new() }; CAP],
            inserting: [const { AtomicU8::new(0) }; CAP],
            overflow: AtomicU64::new(0),
            seen: LastSeen::new(),
            overflowed: Counter::new(),
            gcra: Gcra::new(&config),
            config,
        }
    }

    /// An empty table (loom build: not `const`).
    #[cfg(loom)]
    pub fn new(config: TokenBucketConfig) -> Self {
        Self {
            slots: core::array::from_fn(|_| Slot::new()),
            inserting: core::array::from_fn(|_| AtomicU8::new(0)),
            overflow: AtomicU64::new(0),
            seen: LastSeen::new(),
            overflowed: Counter::new(),
            gcra: Gcra::new(&config),
            config,
        }
    }

    /// Takes one token from `key`'s bucket at `now`.
    #[inline]
    pub fn try_acquire(&self, key: u64, now: u64) -> Result<(), RateLimited> {
        match self.try_acquire_n(key, now, 1) {
            Ok(()) => Ok(()),
            Err(AcquireError::RateLimited(e)) => Err(e),
            Err(AcquireError::ExceedsBurst { .. }) => Err(RateLimited {
                retry_after: u64::MAX,
            }),
        }
    }

    /// Takes one token from the bucket of a byte key (client id, IP address, token hash).
    #[inline]
    pub fn try_acquire_bytes(&self, key: &[u8], now: u64) -> Result<(), RateLimited> {
        self.try_acquire(hash_bytes(key), now)
    }

    /// Takes `n` tokens from `key`'s bucket at `now`, or none. `n > burst` can never pass.
    pub fn try_acquire_n(&self, key: u64, now: u64, n: u32) -> Result<(), AcquireError> {
        if !self.gcra.admissible(n)? {
            return Ok(());
        }
        let now_u = self.gcra.units(now);
        let word = key_word(key);
        let mut attempts = 0;
        let result = loop {
            let found = if attempts >= RETRIES {
                Found::Overflow
            } else {
                match self.find(word) {
                    Some(i) => Found::Slot(i),
                    None => match self.insert(word, now_u) {
                        Insert::Slot(i) => Found::Slot(i),
                        Insert::Full => Found::Overflow,
                        Insert::Busy => {
                            attempts += 1;
                            spin_hint();
                            continue;
                        }
                    },
                }
            };
            let cell = match found {
                Found::Slot(i) => match self.slots.get(i) {
                    Some(slot) => slot,
                    None => break self.charge_overflow(now_u, n),
                },
                Found::Overflow => break self.charge_overflow(now_u, n),
            };
            match self.charge_slot(cell, word, now_u, n) {
                Some(r) => break r,
                // The slot changed hands or is being handed over: look again.
                None => {
                    attempts += 1;
                    spin_hint();
                }
            }
        };
        match result {
            Ok(()) => {
                self.seen.note(now);
                Ok(())
            }
            Err(units) => Err(RateLimited {
                retry_after: self.gcra.ticks(units),
            }
            .into()),
        }
    }

    /// Tokens `key` could take at `now` (its burst if it has no slot), consuming nothing and
    /// inserting nothing.
    pub fn available(&self, key: u64, now: u64) -> u32 {
        let now_u = self.gcra.units(now);
        let word = key_word(key);
        match self.find(word).and_then(|i| self.slots.get(i)) {
            Some(slot) => {
                let tat = slot.tat.load(Ordering::Acquire);
                if tat == MARK || slot.key.load(Ordering::Acquire) != word {
                    self.gcra.burst
                } else {
                    self.gcra.available(tat, now_u)
                }
            }
            None => self.gcra.burst,
        }
    }

    /// Clients whose bucket is not full at `now` (they would lose state if evicted).
    pub fn active(&self, now: u64) -> usize {
        let now_u = self.gcra.units(self.seen.at_least(now));
        self.slots
            .iter()
            .filter(|s| {
                s.key.load(Ordering::Relaxed) != EMPTY && {
                    let tat = s.tat.load(Ordering::Relaxed);
                    tat != MARK && tat > now_u
                }
            })
            .count()
    }

    /// Tokens left in the shared overflow bucket at `now`.
    pub fn overflow_available(&self, now: u64) -> u32 {
        let now_u = self.gcra.units(now);
        self.gcra
            .available(self.overflow.load(Ordering::Relaxed), now_u)
    }

    /// Requests charged to the overflow bucket since start (admitted or not).
    pub fn overflowed(&self) -> u64 {
        self.overflowed.get()
    }

    /// The overflow counter, to register as a metric (`..._overflow_total`).
    pub const fn overflow_counter(&self) -> &Counter {
        &self.overflowed
    }

    /// Active clients at the latest `now` the limiter acted on (what its registry gauge shows).
    pub fn active_latest(&self) -> usize {
        self.active(self.seen.get())
    }

    /// The number of slots.
    pub const fn capacity(&self) -> usize {
        CAP
    }

    /// The per-client configuration.
    pub const fn config(&self) -> &TokenBucketConfig {
        &self.config
    }

    /// The slot range of the set `word` belongs to.
    #[inline]
    fn set_of(&self, word: u64) -> core::ops::Range<usize> {
        let sets = CAP.div_ceil(WAYS);
        let set = ((word >> 32) as usize).checked_rem(sets).unwrap_or(0);
        let start = set.saturating_mul(WAYS);
        start..start.saturating_add(WAYS).min(CAP)
    }

    #[inline]
    fn find(&self, word: u64) -> Option<usize> {
        self.set_of(word).find(|&i| {
            self.slots
                .get(i)
                .is_some_and(|s| s.key.load(Ordering::Acquire) == word)
        })
    }

    /// Inserts `word` into its set under the set's insert flag, taken without waiting.
    fn insert(&self, word: u64, now_u: u64) -> Insert {
        let range = self.set_of(word);
        let Some(flag) = self.inserting.get(range.start) else {
            return Insert::Full; // CAP = 0: everything overflows
        };
        if flag
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Insert::Busy;
        }
        let result = self.insert_locked(word, now_u, range);
        flag.store(0, Ordering::Release);
        result
    }

    fn insert_locked(&self, word: u64, now_u: u64, range: core::ops::Range<usize>) -> Insert {
        let start = range.start;
        let slots = self.slots.get(range).unwrap_or(&[]);
        // Someone may have inserted it since we looked.
        if let Some((i, _)) = slots
            .iter()
            .enumerate()
            .find(|(_, s)| s.key.load(Ordering::Acquire) == word)
        {
            return Insert::Slot(start + i);
        }
        // A never-used slot: its TAT (0) is a full bucket, no previous owner can race on it.
        if let Some((i, s)) = slots
            .iter()
            .enumerate()
            .find(|(_, s)| s.key.load(Ordering::Relaxed) == EMPTY)
        {
            s.key.store(word, Ordering::Release);
            return Insert::Slot(start + i);
        }
        // A slot whose bucket is full again: hand it over without losing anything.
        for (i, s) in slots.iter().enumerate() {
            let tat = s.tat.load(Ordering::Acquire);
            if tat != MARK
                && tat < now_u
                && s.tat
                    .compare_exchange(tat, MARK, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                s.key.store(word, Ordering::Release);
                // `tat + 1 ≤ now_u`: still a full bucket, and larger than every TAT the old key had.
                s.tat.store(tat + 1, Ordering::Release);
                return Insert::Slot(start + i);
            }
        }
        Insert::Full
    }

    /// Charges `key`'s slot; `None` when the slot no longer belongs to `word`.
    fn charge_slot(&self, slot: &Slot, word: u64, now_u: u64, n: u32) -> Option<Result<(), u64>> {
        self.gcra
            .charge(&slot.tat, now_u, n, |tat| {
                tat != MARK && slot.key.load(Ordering::Acquire) == word
            })
            .map(|r| r.map(drop))
    }

    fn charge_overflow(&self, now_u: u64, n: u32) -> Result<(), u64> {
        self.overflowed.inc();
        self.gcra
            .charge(&self.overflow, now_u, n, |_| true)
            .map_or(Err(u64::MAX), |r| r.map(drop))
    }
}

enum Insert {
    Slot(usize),
    Full,
    Busy,
}
