//! Limits shared through a real `redis-server`: the store's script decides exactly as the core's
//! GCRA and quota do, and replicas sharing a store share every budget.

use std::time::{Duration, Instant};

use serde_json::json;
use vitals_std::mcp::ClientKey;
use vitals_std::shared_limits::gcra::Bucket;
use vitals_std::shared_limits::script::Verdict;
use vitals_std::shared_limits::{Admission, Budgets, SharedLimits, SharedLimitsConfig};
use vitals_std::vitals_core::resilience::{
    AcquireError, Quota, QuotaConfig, QuotaError, Rate, TokenBucket, TokenBucketConfig,
};
use vitals_std::RateSpec;
use vitals_tests::*;

mod redis_support;
use redis_support::RedisServer;

/// xorshift64*: reproducible sequences without a dependency. `VITALS_REDIS_SEED` picks the seed.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("VITALS_REDIS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5eed_cafe_f00d_u64);
        eprintln!("seed {seed} (VITALS_REDIS_SEED)");
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn config(store: &RedisServer) -> SharedLimitsConfig {
    let mut c = SharedLimitsConfig::new(&store.url());
    // Generous for a loaded 2-core machine: these tests are about decisions, not speed.
    c.timeout = Duration::from_secs(2);
    c
}

/// Cases per rate in the differential test (`VITALS_REDIS_CASES` for a longer run).
fn cases() -> u64 {
    std::env::var("VITALS_REDIS_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_script_decides_as_the_core_gcra() {
    let store = RedisServer::start();
    let mut rng = Rng::new();
    // Whole-µs intervals, exact fractions of a µs (3/1s, 7/2s), long periods, a burst of 1.
    for (i, spec) in [
        "3/1s", "7/2s", "10/1m", "100/1h", "1/1s", "1000/1s", "13/1d",
    ]
    .into_iter()
    .enumerate()
    {
        let spec: RateSpec = spec.parse().unwrap();
        let limits = SharedLimits::new(
            &config(&store),
            Budgets {
                client: Some(spec),
                ..Budgets::default()
            },
        )
        .unwrap();
        let core = TokenBucket::new(TokenBucketConfig::new(
            1_000_000,
            Rate::new(spec.tokens, spec.seconds),
            spec.tokens as u32,
        ));
        let bucket = Bucket::of(spec).unwrap();
        let client = ClientKey::Token(i as u32);
        // Epoch µs of today: the script's numbers are as large as with the store's own clock.
        let start = 1_764_633_600_000_000u64;
        let interval_us = spec.seconds * 1_000_000 / spec.tokens;
        let mut now = start;
        for step in 0..cases() {
            now += match rng.below(4) {
                0 => 0,
                1 => rng.below(interval_us.max(2)),
                2 => rng.below(3 * interval_us.max(2)),
                _ => rng.below(spec.tokens * interval_us + 2),
            };
            let n = 1 + rng.below(spec.tokens.min(4) + 1); // sometimes burst + 1
            let ours = limits.decide_at(client, "t", now, n).await.unwrap();
            let theirs = core.try_acquire_n(now - start, n as u32);
            let what = format!("{spec} step {step} now +{} µs n {n}", now - start);
            match (ours, theirs) {
                (None, Err(AcquireError::ExceedsBurst { .. })) => continue,
                (Some(r), Ok(())) => assert_eq!(r.verdict, Verdict::Admitted, "{what}"),
                (Some(r), Err(AcquireError::RateLimited(e))) => {
                    assert_eq!(r.verdict, Verdict::RateLimited, "{what}");
                    assert_eq!(r.retry_us, e.retry_after, "retry-after, {what}");
                }
                (ours, theirs) => panic!("{what}: store {ours:?}, core {theirs:?}"),
            }
            let r = limits
                .decide_at(client, "t", now, 0)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                bucket.remaining(r.ahead[0]),
                u64::from(core.available(now - start)),
                "remaining, {what}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_script_counts_the_quota_as_the_core() {
    let store = RedisServer::start();
    let mut rng = Rng::new();
    let (limit, window) = (5u32, 10u64);
    let limits = SharedLimits::new(
        &config(&store),
        Budgets {
            quota: Some(("q".into(), limit, window)),
            ..Budgets::default()
        },
    )
    .unwrap();
    let core = Quota::new(QuotaConfig::new(1_000_000, window, limit));
    let mut now = 1_764_633_600_000_000u64;
    for step in 0..cases() {
        now += rng.below(3_000_000);
        let ours = limits
            .decide_at(ClientKey::Local, "t", now, 1)
            .await
            .unwrap()
            .unwrap();
        match core.try_acquire(now) {
            Ok(left) => {
                assert_eq!(ours.verdict, Verdict::Admitted, "step {step}");
                assert_eq!(ours.quota_used, u64::from(limit - left), "step {step}");
            }
            Err(QuotaError::Exhausted { retry_after }) => {
                assert_eq!(ours.verdict, Verdict::QuotaExhausted, "step {step}");
                assert_eq!(ours.retry_us, retry_after, "step {step}");
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    // Every key the script writes expires.
    let keys = store.cli(&["KEYS", "*"]);
    for key in keys.lines().filter(|k| !k.is_empty()) {
        let ttl: i64 = store.cli(&["PTTL", key]).trim().parse().unwrap();
        assert!(ttl > 0, "{key} has no expiry ({ttl})");
    }
}

/// One decision as a load task saw it.
struct Seen {
    sent: Instant,
    received: Instant,
    admitted: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_each_client_budget_and_the_quota() {
    let store = RedisServer::start();
    let spec: RateSpec = "20/1s".parse().unwrap();
    let replicas: Vec<&'static SharedLimits> = (0..3)
        .map(|_| {
            SharedLimits::new(
                &config(&store),
                Budgets {
                    client: Some(spec),
                    tool: Some("100000/1s".parse().unwrap()),
                    quota: Some(("daily".into(), 100_000, 86_400)),
                },
            )
            .unwrap()
        })
        .collect();
    let clients: Vec<ClientKey> = (0..4).map(ClientKey::Token).collect();
    let run = Duration::from_millis(1500);
    let mut tasks = Vec::new();
    for (ri, r) in replicas.iter().enumerate() {
        for (ci, c) in clients.iter().enumerate() {
            for _ in 0..2 {
                let (r, c) = (*r, *c);
                tasks.push(tokio::spawn(async move {
                    let end = Instant::now() + run;
                    let mut seen = Vec::new();
                    while Instant::now() < end {
                        let sent = Instant::now();
                        let a = r.admit(c, "tool").await;
                        seen.push(Seen {
                            sent,
                            received: Instant::now(),
                            admitted: a == Admission::Admitted,
                        });
                    }
                    (ri, ci, seen)
                }));
            }
        }
    }
    let mut per_client: Vec<Vec<Seen>> = (0..clients.len()).map(|_| Vec::new()).collect();
    for t in tasks {
        let (_, ci, seen) = t.await.unwrap();
        per_client[ci].extend(seen);
    }
    let rate = spec.tokens as f64 / spec.seconds as f64;
    let mut total = 0;
    for (ci, seen) in per_client.iter().enumerate() {
        let admitted = seen.iter().filter(|s| s.admitted).count() as f64;
        total += admitted as u64;
        let first_sent = seen.iter().map(|s| s.sent).min().unwrap();
        let first_received = seen.iter().map(|s| s.received).min().unwrap();
        let last_received = seen.iter().map(|s| s.received).max().unwrap();
        let last_refused_sent = seen
            .iter()
            .filter(|s| !s.admitted)
            .map(|s| s.sent)
            .max()
            .expect("the load exceeds the budget");
        // The store's elapsed time lies between these two (its clock ran while they did).
        let most = last_received.duration_since(first_sent).as_secs_f64();
        let least = last_refused_sent
            .saturating_duration_since(first_received)
            .as_secs_f64();
        let burst = spec.tokens as f64;
        assert!(
            admitted <= burst + rate * most,
            "client {ci}: {admitted} admitted > {burst} + {rate} × {most:.3} s"
        );
        assert!(
            admitted >= burst + rate * least - 1.0,
            "client {ci}: {admitted} admitted < {burst} + {rate} × {least:.3} s − 1"
        );
    }
    // Every admission went through the store, and one round trip at most per admitted call:
    // refusals mostly come from the local cache.
    let mut store_decisions = 0.0;
    for r in &replicas {
        let m = r.metrics();
        store_decisions += m.decisions.labels(["store", "admitted"]).get() as f64;
        assert_eq!(m.decisions.labels(["fallback", "admitted"]).get(), 0);
    }
    assert_eq!(store_decisions as u64, total);
    let used = store.cli(&["HGET", "{vitals}:quota:daily", "u"]);
    assert_eq!(used.trim().parse::<u64>().unwrap(), total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quota_is_never_exceeded_across_replicas() {
    let store = RedisServer::start();
    let limit = 150u32;
    let replicas: Vec<&'static SharedLimits> = (0..3)
        .map(|_| {
            SharedLimits::new(
                &config(&store),
                Budgets {
                    client: Some("1000/1s".parse().unwrap()),
                    tool: None,
                    quota: Some(("daily".into(), limit, 86_400)),
                },
            )
            .unwrap()
        })
        .collect();
    let mut tasks = Vec::new();
    for r in replicas {
        for c in 0..4 {
            tasks.push(tokio::spawn(async move {
                let mut admitted = 0u32;
                // Bounded: more than the whole quota from each task.
                for _ in 0..200 {
                    match r.admit(ClientKey::Token(c), "tool").await {
                        Admission::Admitted => admitted += 1,
                        Admission::QuotaExhausted(_) => {}
                        other => panic!("{other:?}"),
                    }
                }
                admitted
            }));
        }
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, limit, "exactly the quota, across 3 replicas");
    let used = store.cli(&["HGET", "{vitals}:quota:daily", "u"]);
    assert_eq!(used.trim(), limit.to_string());
}

#[test]
fn two_servers_with_redis_share_a_client_budget() {
    let store = RedisServer::start();
    let url = store.url();
    let args = [
        "--redis",
        url.as_str(),
        "--client-tool-rate-limit",
        "4/1h",
        "--redis-timeout",
        "2000",
    ];
    let a = Server::start(&args);
    let b = Server::start(&args);
    let mut sa = McpSession::open(a.addr);
    let mut sb = McpSession::open(b.addr);
    let mut admitted = 0;
    let mut refused = Vec::new();
    for i in 0..8 {
        let s = if i % 2 == 0 { &mut sa } else { &mut sb };
        let r = s.call_tool("server_health", json!({}));
        if r["result"]["isError"] == json!(false) {
            admitted += 1;
        } else {
            refused.push(r);
        }
    }
    assert_eq!(
        admitted, 4,
        "one budget of 4 across both servers: {refused:?}"
    );
    for r in &refused {
        assert_eq!(
            r["result"]["_meta"]["io.vitals/reason"], "rate_limited",
            "{r}"
        );
    }
    let m = a.metrics();
    assert!(
        metric_value(
            &m,
            "shared_limits_decisions_total{source=\"store\",verdict=\"admitted\"}"
        )
        .is_some_and(|v| v >= 1.0),
        "{m}"
    );
    assert!(m.contains("shared_limits_breaker_state 0\n"), "{m}");
    let h = a.request("GET", "/healthz", &[], b"").text();
    assert!(h.contains("shared_limits"), "{h}");
}

#[test]
fn a_server_starts_and_serves_with_the_store_down() {
    let dir = std::env::temp_dir().join(format!("vitals-no-redis-{}", std::process::id()));
    let url = format!("unix://{}/absent.sock", dir.display());
    let server = Server::start(&["--redis", url.as_str()]);
    let mut s = McpSession::open(server.addr);
    for _ in 0..5 {
        let r = s.call_tool("server_health", json!({}));
        assert_eq!(r["result"]["isError"], json!(false), "{r}");
    }
    let m = server.metrics();
    assert!(
        metric_value(
            &m,
            "shared_limits_decisions_total{source=\"fallback\",verdict=\"admitted\"}"
        ) == Some(5.0),
        "{m}"
    );
    assert!(
        metric_value(&m, "shared_limits_store_errors_total{kind=\"connection\"}")
            .is_some_and(|v| v >= 1.0),
        "{m}"
    );
    assert!(m.contains("shared_limits_breaker_state 1\n"), "{m}");
    let h = server.request("GET", "/healthz", &[], b"").text();
    assert!(
        h.contains("\"name\":\"shared_limits\",\"status\":\"degraded\""),
        "{h}"
    );
    // Degraded, not unhealthy: still ready.
    assert_eq!(server.request("GET", "/readyz", &[], b"").status, 200);
}
