//! Circuit breakers, one per upstream dependency, on the std clock.
//!
//! Upstreams declared at start-up are created eagerly; a tool with no declared upstream gets a
//! breaker of its own (named after the tool) the first time it is called, up to
//! [`MAX_UPSTREAMS`]; past that, such tools share the breaker named [`OVERFLOW_UPSTREAM`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use vitals_core::health::{Check, Status};
use vitals_core::resilience::{BreakerConfig, BreakerState, CircuitBreaker};

use crate::clock::{MonotonicClock, TICKS_PER_SECOND};

/// Most breakers a set holds.
pub const MAX_UPSTREAMS: usize = 128;
/// The breaker shared once [`MAX_UPSTREAMS`] is reached.
pub const OVERFLOW_UPSTREAM: &str = "__overflow__";

/// A named breaker.
#[derive(Debug)]
pub struct Upstream {
    name: String,
    breaker: CircuitBreaker,
}

impl Upstream {
    /// The upstream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The breaker.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// A serialisable snapshot.
    pub fn status(&self) -> BreakerStatus {
        let (window_calls, window_failures) = self.breaker.window_counts();
        BreakerStatus {
            upstream: self.name.clone(),
            state: self.breaker.state().as_str().to_owned(),
            window_calls,
            window_failures,
            rejected_total: self.breaker.rejections(),
            transitions_total: self.breaker.transitions(),
        }
    }
}

/// A breaker is a health check: open or forced open is unhealthy, half-open degraded.
impl Check for Upstream {
    fn status(&self) -> Status {
        match self.breaker.state() {
            BreakerState::Closed | BreakerState::Disabled => Status::Healthy,
            BreakerState::HalfOpen => Status::Degraded,
            BreakerState::Open | BreakerState::ForcedOpen => Status::Unhealthy,
            // A state a later core adds: not known to be closed.
            _ => Status::Degraded,
        }
    }
    fn detail(&self) -> Option<&str> {
        Some(self.breaker.state().as_str())
    }
}

/// The state of one breaker, as the `circuit_breaker_status` tool reports it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct BreakerStatus {
    /// Upstream name.
    pub upstream: String,
    /// `closed`, `open`, `half_open`, `forced_open` or `disabled`.
    pub state: String,
    /// Calls in the current closed window.
    pub window_calls: u32,
    /// Failures in the current closed window.
    pub window_failures: u32,
    /// Calls refused since start.
    pub rejected_total: u64,
    /// State transitions since start.
    pub transitions_total: u64,
}

/// The breakers of a process.
#[derive(Debug)]
pub struct Upstreams {
    config: BreakerConfig,
    tool_map: RwLock<HashMap<String, String>>,
    map: RwLock<HashMap<String, Arc<Upstream>>>,
}

impl Upstreams {
    /// Breakers with `config` (ticks must be [`TICKS_PER_SECOND`]), the declared `upstreams`, and
    /// `tool_map` from tool name to upstream name.
    pub fn new(
        config: BreakerConfig,
        upstreams: impl IntoIterator<Item = String>,
        tool_map: HashMap<String, String>,
    ) -> Self {
        let u = Upstreams {
            config,
            tool_map: RwLock::new(tool_map),
            map: RwLock::new(HashMap::new()),
        };
        for name in upstreams {
            u.get_or_create(&name);
        }
        u
    }

    /// The default configuration on the std clock: window 20, at least 10 calls, trip at 50 %
    /// failures, open 5 s doubling to 60 s, 3 half-open probes.
    pub fn default_config() -> BreakerConfig {
        BreakerConfig::new(TICKS_PER_SECOND)
    }

    /// The upstream a call to `tool` depends on.
    pub fn for_tool(&self, tool: &str) -> Arc<Upstream> {
        let map = self.tool_map.read().unwrap_or_else(|e| e.into_inner());
        let name = map.get(tool).map(String::as_str).unwrap_or(tool);
        self.get_or_create(name)
    }

    /// Declares (or moves) `tool` onto `upstream`'s breaker at run time, as a gateway does each
    /// time it lists an upstream's tools.
    pub fn route_tool(&self, tool: &str, upstream: &str) {
        let mut map = self.tool_map.write().unwrap_or_else(|e| e.into_inner());
        if map.get(tool).map(String::as_str) != Some(upstream) {
            map.insert(tool.to_owned(), upstream.to_owned());
        }
    }

    /// The breaker named `name`, created on first use with the default configuration.
    pub fn get_or_create(&self, name: &str) -> Arc<Upstream> {
        self.get_or_create_with(name, self.config)
    }

    /// The breaker named `name`, created on first use with `config` (an existing breaker keeps
    /// its configuration).
    pub fn get_or_create_with(&self, name: &str, config: BreakerConfig) -> Arc<Upstream> {
        if let Some(u) = self.map.read().unwrap_or_else(|e| e.into_inner()).get(name) {
            return u.clone();
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        let key = if map.len() >= MAX_UPSTREAMS && !map.contains_key(name) {
            OVERFLOW_UPSTREAM
        } else {
            name
        };
        map.entry(key.to_owned())
            .or_insert_with(|| {
                Arc::new(Upstream {
                    name: key.to_owned(),
                    // Clamped: a configuration from flags never makes this panic.
                    breaker: CircuitBreaker::new(config.clamped()),
                })
            })
            .clone()
    }

    /// Every breaker, sorted by name.
    pub fn all(&self) -> Vec<Arc<Upstream>> {
        let mut v: Vec<_> = self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Snapshots of every breaker, sorted by name.
    pub fn status(&self) -> Vec<BreakerStatus> {
        self.all().iter().map(|u| u.status()).collect()
    }
}

/// Converts breaker ticks to a duration (the breaker runs on the std clock).
pub fn ticks_to_duration(ticks: u64) -> std::time::Duration {
    MonotonicClock::to_duration(ticks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_map_to_upstreams_and_trip() {
        let mut map = HashMap::new();
        map.insert("search".to_owned(), "db".to_owned());
        let cfg = Upstreams::default_config().window(4, 2).failure_rate(50);
        let u = Upstreams::new(cfg, ["db".to_owned()], map);
        assert_eq!(u.for_tool("search").name(), "db");
        assert_eq!(u.for_tool("other").name(), "other");
        let db = u.for_tool("search");
        for t in 0..4 {
            if let Ok(p) = db.breaker().try_acquire(t) {
                p.failure(t);
            }
        }
        assert_eq!(db.breaker().state(), BreakerState::Open);
        assert_eq!(Check::status(&*db), Status::Unhealthy);
        assert_eq!(u.status().len(), 2);
    }
}
