//! The packed atomic words of a [`CircuitBreaker`](super::CircuitBreaker) and the state an
//! operator sees.
//!
//! - `state`: the state (3 bits), the open level for the exponential wait (5 bits), half-open
//!   probes admitted (8 bits) and succeeded (8 bits), and the generation (32 bits). Every
//!   transition increments the generation; admission in the closed state is one load of it.
//! - two outcome windows (`failures`, `slow`): the newest outcomes as bits (40, newest lowest),
//!   how many of them count (6 bits, at most `window`; bits above the count are stale and never
//!   read) and the generation they belong to (18-bit tag).
//! - `since`: when the current open period or half-open round started, in coarse ticks rounded
//!   up (48 bits; the wait or round is measured from it, so it never ends early), tagged with the
//!   generation it belongs to (16 bits). It only moves forward, so a slow writer can never
//!   overwrite a newer generation's time.

use crate::sync::{AtomicU64, Ordering};
use core::fmt;

// --- state word -------------------------------------------------------------------------------
pub(super) const ST_CLOSED: u64 = 0;
pub(super) const ST_OPEN: u64 = 1;
pub(super) const ST_HALF_OPEN: u64 = 2;
pub(super) const ST_FORCED_OPEN: u64 = 3;
pub(super) const ST_DISABLED: u64 = 4;
pub(super) const MAX_LEVEL: u64 = 31;
pub(super) const ADMITTED_ONE: u64 = 1 << 8;
pub(super) const SUCCEEDED_ONE: u64 = 1 << 16;

pub(super) const fn st(s: u64) -> u64 {
    s & 7
}
pub(super) const fn level(s: u64) -> u64 {
    (s >> 3) & 31
}
pub(super) const fn admitted(s: u64) -> u64 {
    (s >> 8) & 0xFF
}
pub(super) const fn succeeded(s: u64) -> u64 {
    (s >> 16) & 0xFF
}
pub(super) const fn generation(s: u64) -> u32 {
    (s >> 32) as u32
}
pub(super) const fn make(state: u64, level: u64, admitted: u64, succeeded: u64, gen: u32) -> u64 {
    (state & 7)
        | ((level & 31) << 3)
        | ((admitted & 0xFF) << 8)
        | ((succeeded & 0xFF) << 16)
        | ((gen as u64) << 32)
}

// --- window words -----------------------------------------------------------------------------
pub(super) const BITS_MASK: u64 = (1 << 40) - 1;
pub(super) const TAG_BITS: u32 = 18;
pub(super) const TAG_MASK: u64 = (1 << TAG_BITS) - 1;

pub(super) const fn w_bits(w: u64) -> u64 {
    w & BITS_MASK
}
pub(super) const fn w_count(w: u64) -> u64 {
    (w >> 40) & 63
}
pub(super) const fn w_tag(w: u64) -> u64 {
    w >> 46
}
pub(super) const fn gen_tag(gen: u32) -> u64 {
    gen as u64 & TAG_MASK
}
pub(super) const fn w_make(tag: u64, count: u64, bits: u64) -> u64 {
    ((tag & TAG_MASK) << 46) | ((count & 63) << 40) | (bits & BITS_MASK)
}

// --- since word -------------------------------------------------------------------------------
pub(super) const TIME_MASK: u64 = (1 << 48) - 1;
pub(super) const fn s_tag(w: u64) -> u16 {
    (w >> 48) as u16
}

/// Mask of the newest `n` bits.
pub(super) const fn count_mask(n: u64) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// The number of set bits: on 32-bit targets (most MCUs have no population count instruction)
/// a loop over the set bits, at most 40 steps, one per failed (or slow) call in the window.
pub(super) const fn ones(bits: u64) -> u32 {
    if cfg!(target_pointer_width = "32") {
        ones_by_loop(bits)
    } else {
        bits.count_ones()
    }
}

const fn ones_by_loop(mut bits: u64) -> u32 {
    let mut n = 0;
    while bits != 0 {
        bits &= bits - 1;
        n += 1;
    }
    n
}

/// Whether the window `w` holds at least `min` calls and at least `percent` % of them are set.
pub(super) const fn reached(w: u64, min: u64, percent: u8) -> bool {
    let count = w_count(w);
    if count < min || count == 0 {
        return false;
    }
    // At most 63 calls: 32-bit products (no 64-bit multiplication on MCUs).
    let ones = ones(w_bits(w) & count_mask(count));
    ones * 100 >= percent as u32 * count as u32
}

/// The state of a breaker as an operator sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls pass; outcomes are recorded.
    Closed,
    /// Calls are refused until the open wait ends.
    Open,
    /// A bounded number of probe calls pass; their outcomes decide.
    HalfOpen,
    /// Refused until an operator resets it.
    ForcedOpen,
    /// Every call passes and nothing is recorded, until an operator resets it.
    Disabled,
}

impl BreakerState {
    pub(super) const fn from_code(code: u64) -> Self {
        match code {
            ST_OPEN => BreakerState::Open,
            ST_HALF_OPEN => BreakerState::HalfOpen,
            ST_FORCED_OPEN => BreakerState::ForcedOpen,
            ST_DISABLED => BreakerState::Disabled,
            _ => BreakerState::Closed,
        }
    }

    /// The conventional gauge value: 0 closed (and disabled), 1 open (and forced open), 2
    /// half-open.
    pub const fn gauge(self) -> i64 {
        match self {
            BreakerState::Closed | BreakerState::Disabled => 0,
            BreakerState::Open | BreakerState::ForcedOpen => 1,
            BreakerState::HalfOpen => 2,
        }
    }

    /// Lower-case name (`closed`, `open`, `half_open`, `forced_open`, `disabled`).
    pub const fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
            BreakerState::ForcedOpen => "forced_open",
            BreakerState::Disabled => "disabled",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// --- atomic steps -----------------------------------------------------------------------------
// Every access to the breaker's words goes through these, so their orderings are stated once
// (acquire loads, release stores, acquire-release exchanges). On 32-bit targets a 64-bit
// compare-exchange is a critical section (or a library call): it exists once, out of line, and
// gives the word it found back in registers. Measured on thumbv6m: loads and stores out of line,
// or a `Result` returned through memory, cost flash instead of saving it, so those stay inline.

/// Loads a word (acquire).
#[inline(always)]
pub(super) fn load(word: &AtomicU64) -> u64 {
    word.load(Ordering::Acquire)
}

/// Stores a word (release).
#[inline(always)]
pub(super) fn store(word: &AtomicU64, value: u64) {
    word.store(value, Ordering::Release)
}

/// Replaces `current` by `new` if the word still holds `current`; the value found otherwise.
#[inline(always)]
pub(super) fn cas(word: &AtomicU64, current: u64, new: u64) -> Result<u64, u64> {
    let found = swap_if(word, current, new);
    if found == current {
        Ok(found)
    } else {
        Err(found)
    }
}

/// The compare-exchange behind [`cas`]: the value found (`new` was stored iff it is `current`),
/// returned in registers rather than as a `Result` in memory.
#[cfg_attr(target_pointer_width = "32", inline(never))]
#[cfg_attr(not(target_pointer_width = "32"), inline(always))]
fn swap_if(word: &AtomicU64, current: u64, new: u64) -> u64 {
    match word.compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire) {
        Ok(found) | Err(found) => found,
    }
}

/// [`cas`] that may fail spuriously, for retry loops. On 32-bit targets it is [`cas`] (a strong
/// exchange is a valid weak one), so only one copy exists.
#[inline(always)]
pub(super) fn cas_weak(word: &AtomicU64, current: u64, new: u64) -> Result<u64, u64> {
    #[cfg(target_pointer_width = "32")]
    return cas(word, current, new);
    #[cfg(not(target_pointer_width = "32"))]
    word.compare_exchange_weak(current, new, Ordering::AcqRel, Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_set_bit_loop_counts_like_count_ones() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for k in 0..64 {
            for v in [x, 1 << k, (1 << k) - 1, u64::MAX << k, BITS_MASK & x] {
                assert_eq!(ones_by_loop(v), v.count_ones(), "{v:#x}");
            }
            x = x.rotate_left(7) ^ (x >> 3);
        }
        assert_eq!(ones_by_loop(u64::MAX), 64);
        assert_eq!(ones_by_loop(0), 0);
    }
}
