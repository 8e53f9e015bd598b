//! The decision script (`decide.lua`): what goes in, what comes back.
//!
//! Invariant: one call is one atomic script run on the store; the quota and every bucket are
//! checked and written together, all or nothing, on the store's clock (`TIME`) unless a test
//! passes its own.

use std::sync::LazyLock;

use super::gcra::Bucket;

/// The script, sent once (`SCRIPT LOAD`) and then run by its SHA1 (`EVALSHA`); when the store
/// answers `NOSCRIPT` (restart, failover, `SCRIPT FLUSH`) it is loaded again and re-run.
pub(crate) static DECIDE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("decide.lua")));

/// The quota part of a call.
#[derive(Debug, Clone)]
pub struct QuotaArgs {
    /// The quota's key.
    pub key: String,
    /// Units per window (0: no quota).
    pub limit: u32,
    /// Window length in seconds (windows aligned to the Unix epoch on the store's clock).
    pub window_seconds: u64,
    /// Units spent elsewhere (while the store was unreachable) to add back first.
    pub add_back: u64,
    /// The window index those units were spent in (added back only if it is still current).
    pub add_back_window: u64,
}

/// One decision to ask of the store.
#[derive(Debug, Clone)]
pub struct Call {
    /// The store's clock when `None`; a test's clock in µs otherwise.
    pub now_us: Option<u64>,
    /// The quota (its key is always passed, even with `limit` 0, so the script's key count is
    /// fixed).
    pub quota: QuotaArgs,
    /// Tokens asked of every bucket (1 ≤ n ≤ every burst).
    pub n: u64,
    /// The buckets: key and parameters.
    pub buckets: Vec<(String, Bucket)>,
}

/// What the store decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every limit passed; everything was spent.
    Admitted,
    /// A bucket refused; nothing was spent.
    RateLimited,
    /// The quota is spent for its window; nothing was spent.
    QuotaExhausted,
}

/// The store's answer to a [`Call`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The decision.
    pub verdict: Verdict,
    /// µs to wait when refused.
    pub retry_us: u64,
    /// Quota units used in the current window after the decision.
    pub quota_used: u64,
    /// µs until the quota window renews.
    pub quota_resets_us: u64,
    /// Units added back by this call.
    pub added_back: u64,
    /// Each bucket's TAT − now after the decision, in its units.
    pub ahead: Vec<u64>,
}

/// A reply that is not what the script returns (another program wrote the keys, or a different
/// script version answered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadReply(pub Vec<i64>);

impl Call {
    /// The invocation (keys and arguments) of this call.
    pub(crate) fn invocation(&self) -> redis::ScriptInvocation<'static> {
        let mut inv = DECIDE.prepare_invoke();
        inv.key(&self.quota.key);
        for (key, _) in &self.buckets {
            inv.key(key);
        }
        match self.now_us {
            Some(now) => inv.arg(now),
            None => inv.arg(""),
        };
        inv.arg(self.quota.limit)
            .arg(self.quota.window_seconds)
            .arg(self.quota.add_back)
            .arg(self.quota.add_back_window)
            .arg(self.n);
        for (_, b) in &self.buckets {
            inv.arg(b.interval).arg(b.scale).arg(b.burst);
        }
        inv
    }
}

impl Reply {
    /// Parses the script's array for a call with `buckets` buckets.
    pub fn parse(values: Vec<i64>, buckets: usize) -> Result<Reply, BadReply> {
        let ok = values.len() == 5 + buckets && values.iter().all(|v| *v >= 0);
        if !ok {
            return Err(BadReply(values));
        }
        let verdict = match values[0] {
            1 => Verdict::Admitted,
            2 => Verdict::RateLimited,
            3 => Verdict::QuotaExhausted,
            _ => return Err(BadReply(values)),
        };
        let u = |i: usize| values[i] as u64;
        Ok(Reply {
            verdict,
            retry_us: u(1),
            quota_used: u(2),
            quota_resets_us: u(3),
            added_back: u(4),
            ahead: values[5..].iter().map(|v| *v as u64).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_checked() {
        let r = Reply::parse(vec![1, 0, 3, 10, 0, 7, 8], 2).unwrap();
        assert_eq!(r.verdict, Verdict::Admitted);
        assert_eq!(r.ahead, [7, 8]);
        assert!(Reply::parse(vec![1, 0, 3, 10, 0, 7], 2).is_err());
        assert!(Reply::parse(vec![4, 0, 3, 10, 0], 0).is_err());
        assert!(Reply::parse(vec![1, -1, 3, 10, 0], 0).is_err());
    }
}
