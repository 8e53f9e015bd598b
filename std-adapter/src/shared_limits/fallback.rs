//! What decides while the store cannot: this replica's own core limiters, each budget divided by
//! the replicas hint, and a share of the quota that is left, added back to the store once it
//! answers again.
//!
//! Invariant: with at most `replicas_hint` replicas falling back at once, the replicas together
//! admit no more than one store would (rates), and spend at most what the quota had left at the
//! last answer each replica saw; every unit spent here is added back to the store's window it
//! was spent in (or dropped with that window once it is over).

use std::sync::Mutex;

use crate::clock::TICKS_PER_SECOND;
use crate::limits::{ClientLimiter, RateSpec, ToolLimiter};
use crate::mcp::ClientKey;
use crate::quota::wall_now;

/// `spec` with its tokens (and burst) divided by `hint`, at least 1.
pub fn share(spec: RateSpec, hint: u32) -> RateSpec {
    RateSpec {
        tokens: (spec.tokens / u64::from(hint.max(1))).max(1),
        seconds: spec.seconds,
    }
}

#[derive(Debug, Default)]
struct QuotaShare {
    window: u64,
    allowance: u64,
    spent: u64,
    pending: u64,
    pending_window: u64,
}

/// The local decisions; see the [module docs](self).
pub struct Fallback {
    client: Option<ClientLimiter>,
    tool: Option<ToolLimiter>,
    quota_limit: u64,
    window_seconds: u64,
    hint: u64,
    quota: Mutex<QuotaShare>,
}

impl std::fmt::Debug for Fallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fallback").finish_non_exhaustive()
    }
}

/// A local refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A rate limit, with the wait in µs and the scope (`tool_client` or `tool`).
    Rate(u64, &'static str),
    /// The quota's share, with the wait until the window renews in µs.
    Quota(u64),
}

impl Fallback {
    /// Shares of `client` and `tool` rates and of a quota of `quota_limit` per `window_seconds`
    /// (0: none) for one of `hint` replicas.
    pub fn new(
        client: Option<RateSpec>,
        tool: Option<RateSpec>,
        quota_limit: u32,
        window_seconds: u64,
        hint: u32,
    ) -> Fallback {
        let hint = hint.max(1);
        Fallback {
            client: client.map(|s| ClientLimiter::new(share(s, hint))),
            tool: tool.map(|s| ToolLimiter::new(share(s, hint))),
            quota_limit: u64::from(quota_limit),
            window_seconds: window_seconds.max(1),
            hint: u64::from(hint),
            quota: Mutex::new(QuotaShare {
                allowance: u64::from(quota_limit) / u64::from(hint),
                window: Self::window_of(window_seconds.max(1), wall_now()),
                ..Default::default()
            }),
        }
    }

    fn window_of(window_seconds: u64, now_us: u64) -> u64 {
        now_us / (window_seconds * TICKS_PER_SECOND)
    }

    fn resets_us(&self, now_us: u64) -> u64 {
        let w = self.window_seconds * TICKS_PER_SECOND;
        w - now_us % w
    }

    /// Decides locally at `now` (the monotonic clock): rates first, then the quota share.
    pub fn decide(&self, client: ClientKey, tool: &str, now: u64) -> Result<(), Refused> {
        let micros =
            |r: crate::limits::RetryAfter| u64::try_from(r.0.as_micros()).unwrap_or(u64::MAX);
        if let Some(t) = &self.tool {
            if t.available(tool, now) == 0 {
                return t
                    .check(tool, now)
                    .map_err(|r| Refused::Rate(micros(r), "tool"));
            }
        }
        if let Some(c) = &self.client {
            c.check(&client, now)
                .map_err(|r| Refused::Rate(micros(r), "tool_client"))?;
        }
        if let Some(t) = &self.tool {
            t.check(tool, now)
                .map_err(|r| Refused::Rate(micros(r), "tool"))?;
        }
        if self.quota_limit == 0 {
            return Ok(());
        }
        let now_us = wall_now();
        let w = Self::window_of(self.window_seconds, now_us);
        let mut q = self.quota.lock().unwrap_or_else(|e| e.into_inner());
        if q.window != w {
            q.window = w;
            q.allowance = self.quota_limit / self.hint;
            q.spent = 0;
        }
        if q.spent >= q.allowance {
            return Err(Refused::Quota(self.resets_us(now_us)));
        }
        q.spent += 1;
        if q.pending_window != w {
            q.pending = 0;
            q.pending_window = w;
        }
        q.pending += 1;
        Ok(())
    }

    /// The store answered: `used` of the quota is spent in the window renewing `resets_us` from
    /// now; this replica's share of what is left is recomputed.
    pub fn observe_quota(&self, used: u64, resets_us: u64) {
        if self.quota_limit == 0 {
            return;
        }
        let now_us = wall_now();
        // The store's window, seen from here: the one ending `resets_us` from now, taken as the
        // window boundary nearest to that instant, so that the time between the store's reading
        // and ours (or a small clock skew) cannot move it to the next window.
        let span = self.window_seconds * TICKS_PER_SECOND;
        let w =
            (now_us.saturating_add(resets_us).saturating_add(span / 2) / span).saturating_sub(1);
        let mut q = self.quota.lock().unwrap_or_else(|e| e.into_inner());
        q.window = w;
        q.allowance = self.quota_limit.saturating_sub(used) / self.hint;
        q.spent = 0;
    }

    /// Takes the units spent here and not yet added back: `(units, window)`.
    pub fn take_pending(&self) -> (u64, u64) {
        let mut q = self.quota.lock().unwrap_or_else(|e| e.into_inner());
        let units = std::mem::take(&mut q.pending);
        (units, q.pending_window)
    }

    /// Puts back units taken with [`take_pending`](Self::take_pending) that the store did not
    /// add (the call failed); dropped if their window is over.
    pub fn restore_pending(&self, units: u64, window: u64) {
        if units == 0 {
            return;
        }
        let mut q = self.quota.lock().unwrap_or_else(|e| e.into_inner());
        if q.pending == 0 || q.pending_window == window {
            q.pending_window = window;
            q.pending += units;
        }
    }

    /// Units spent here and not yet added back.
    pub fn pending(&self) -> u64 {
        self.quota.lock().unwrap_or_else(|e| e.into_inner()).pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_the_client_rate() {
        let f = Fallback::new(Some("10/1h".parse().unwrap()), None, 0, 86_400, 3);
        // 10 / 3 = 3 per client.
        for _ in 0..3 {
            assert_eq!(f.decide(ClientKey::Local, "t", 0), Ok(()));
        }
        assert!(matches!(
            f.decide(ClientKey::Local, "t", 0),
            Err(Refused::Rate(_, "tool_client"))
        ));
        assert_eq!(f.pending(), 0, "no quota: nothing to add back");
    }

    /// The quota's share, without a client rate: which clients' buckets share a slot of the keyed
    /// limiter depends on the process's hash seed, so a rate refusal could hide a quota one.
    #[test]
    fn shares_the_quota_and_adds_back_what_it_spent() {
        let f = Fallback::new(None, None, 9, 86_400, 3);
        // Quota 9 / 3 = 3 for this replica.
        for c in 0..3 {
            assert_eq!(f.decide(ClientKey::Token(c), "t", 0), Ok(()));
        }
        assert!(matches!(
            f.decide(ClientKey::Token(3), "t", 0),
            Err(Refused::Quota(_))
        ));
        assert_eq!(f.pending(), 3);
        let (units, w) = f.take_pending();
        assert_eq!((units, f.pending()), (3, 0));
        f.restore_pending(units, w);
        assert_eq!(f.pending(), 3);
        // The store says 3 of 9 are used: 2 more for this replica.
        let resets = f.resets_us(wall_now());
        std::thread::sleep(std::time::Duration::from_millis(2)); // the answer took some time
        f.observe_quota(3, resets);
        assert_eq!(f.decide(ClientKey::Token(4), "t", 0), Ok(()));
        assert_eq!(f.decide(ClientKey::Token(5), "t", 0), Ok(()));
        assert!(matches!(
            f.decide(ClientKey::Token(6), "t", 0),
            Err(Refused::Quota(_))
        ));
        assert_eq!(f.pending(), 5);
    }
}
