//! The shared store fails: killed mid-load, restarted, paused (SIGSTOP), its script cache
//! flushed, its state flushed. Every decision is still answered within the timeout plus a
//! margin, the fallback decides meanwhile, the breaker opens, health is degraded, and the
//! quota spent meanwhile is added back once the store returns.

use std::time::{Duration, Instant};

use vitals_std::mcp::ClientKey;
use vitals_std::shared_limits::{Admission, Budgets, SharedLimits, SharedLimitsConfig};
use vitals_std::vitals_core::health::Status;
use vitals_std::vitals_core::resilience::BreakerState;
use vitals_std::HealthSource;

mod redis_support;
use redis_support::RedisServer;

const TIMEOUT: Duration = Duration::from_millis(100);
/// Bound on one decision: the timeout plus a margin generous enough for a loaded machine.
const BOUND: Duration = Duration::from_secs(3);

fn limits(store: &RedisServer, hint: u32) -> &'static SharedLimits {
    let mut c = SharedLimitsConfig::new(&store.url());
    c.timeout = TIMEOUT;
    c.replicas_hint = hint;
    SharedLimits::new(
        &c,
        Budgets {
            client: Some("1000/1s".parse().unwrap()),
            tool: None,
            quota: Some(("daily".into(), 1_000, 86_400)),
        },
    )
    .unwrap()
}

async fn admit(l: &SharedLimits, client: u32) -> Admission {
    tokio::time::timeout(BOUND, l.admit(ClientKey::Token(client), "tool"))
        .await
        .expect("a decision within the timeout plus the margin")
}

fn count(l: &SharedLimits, source: &str, verdict: &str) -> u64 {
    l.metrics().decisions.labels([source, verdict]).get()
}

fn errors(l: &SharedLimits) -> u64 {
    ["timeout", "connection", "auth", "server", "reply"]
        .iter()
        .map(|k| l.metrics().store_errors.labels([*k]).get())
        .sum()
}

fn used(store: &RedisServer) -> u64 {
    store
        .cli(&["HGET", "{vitals}:quota:daily", "u"])
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Decides until the store decides again (bounded), returning the fallback admissions made
/// meanwhile.
async fn until_store_decides(l: &SharedLimits) -> u64 {
    let mut fallback = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let before = count(l, "store", "admitted");
        let fb_before = count(l, "fallback", "admitted");
        assert_eq!(admit(l, 1).await, Admission::Admitted);
        fallback += count(l, "fallback", "admitted") - fb_before;
        if count(l, "store", "admitted") > before {
            return fallback;
        }
        assert!(Instant::now() < deadline, "the store never decided again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_store_falls_back_then_reconciles_the_quota() {
    let mut store = RedisServer::start();
    let l = limits(&store, 2);
    for _ in 0..10 {
        assert_eq!(admit(l, 1).await, Admission::Admitted);
    }
    assert_eq!(used(&store), 10);
    assert_eq!(l.health_snapshot_status(), Status::Healthy);

    store.kill();
    let mut fallback_admitted = 0;
    for _ in 0..20 {
        if admit(l, 1).await == Admission::Admitted {
            fallback_admitted += 1;
        }
    }
    assert_eq!(
        fallback_admitted, 20,
        "the local fallback admits within its share"
    );
    assert_eq!(count(l, "fallback", "admitted"), 20);
    assert!(errors(l) >= 3, "store errors are counted");
    assert_ne!(
        l.breaker().state(),
        BreakerState::Closed,
        "the breaker opened"
    );
    assert_eq!(l.health_snapshot_status(), Status::Degraded);
    assert_eq!(l.pending_quota(), 20);

    // Back, empty (no persistence): the 20 units spent meanwhile are added back first.
    store.restart();
    let more = until_store_decides(l).await;
    assert_eq!(l.pending_quota(), 0);
    assert_eq!(
        used(&store),
        20 + more + 1,
        "fallback units added back, plus the store's own"
    );
    assert_eq!(l.health_snapshot_status(), Status::Healthy);
    assert_eq!(l.breaker().state(), BreakerState::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_store_times_out_and_nobody_waits_past_the_budget() {
    let store = RedisServer::start();
    let l = limits(&store, 1);
    assert_eq!(admit(l, 1).await, Admission::Admitted);
    store.signal("STOP");
    for _ in 0..6 {
        assert_eq!(admit(l, 1).await, Admission::Admitted);
    }
    assert!(l.metrics().store_errors.labels(["timeout"]).get() >= 1);
    assert!(count(l, "fallback", "admitted") >= 1);
    assert_ne!(l.breaker().state(), BreakerState::Closed);
    store.signal("CONT");
    until_store_decides(l).await;
    assert_eq!(l.breaker().state(), BreakerState::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushed_script_cache_never_reaches_a_client() {
    let store = RedisServer::start();
    let l = limits(&store, 1);
    for _ in 0..3 {
        assert_eq!(admit(l, 1).await, Admission::Admitted);
        assert_eq!(store.cli(&["SCRIPT", "FLUSH"]).trim(), "OK");
    }
    assert_eq!(admit(l, 1).await, Admission::Admitted);
    assert_eq!(errors(l), 0);
    assert_eq!(count(l, "store", "admitted"), 4);
    assert_eq!(used(&store), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushed_store_state_gives_a_fresh_burst() {
    let store = RedisServer::start();
    let mut c = SharedLimitsConfig::new(&store.url());
    c.timeout = Duration::from_secs(2);
    let l = SharedLimits::new(
        &c,
        Budgets {
            client: Some("5/1s".parse().unwrap()),
            ..Budgets::default()
        },
    )
    .unwrap();
    let mut admitted = 0;
    for _ in 0..8 {
        if admit(l, 1).await == Admission::Admitted {
            admitted += 1;
        }
    }
    assert!((5..=6).contains(&admitted), "{admitted}");
    assert_eq!(store.cli(&["FLUSHALL"]).trim(), "OK");
    // The local cache may refuse for at most one retry-after (200 ms); then a fresh burst.
    let fresh = wait_for_async(Duration::from_secs(10), || async {
        let mut n = 0;
        for _ in 0..5 {
            if admit(l, 1).await == Admission::Admitted {
                n += 1;
            }
        }
        (n >= 4).then_some(n)
    })
    .await;
    assert!(fresh.is_some(), "no fresh burst after FLUSHALL");
    assert_eq!(errors(l), 0);
}

async fn wait_for_async<T, F: std::future::Future<Output = Option<T>>>(
    timeout: Duration,
    mut f: impl FnMut() -> F,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

trait Health {
    fn health_snapshot_status(&self) -> Status;
}

impl Health for SharedLimits {
    fn health_snapshot_status(&self) -> Status {
        self.snapshot().0
    }
}
