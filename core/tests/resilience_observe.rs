//! The resilience primitives in the registry and the health report.
#![cfg(not(loom))]

use vitals_core::resilience::*;
use vitals_core::{Component, Counter, Cursor, Entry, Format, Registry, Status};

static BREAKER: CircuitBreaker = CircuitBreaker::new(
    BreakerConfig::new(1_000)
        .consecutive_failures(1)
        .window(2, 2),
);
static BUCKET: TokenBucket =
    TokenBucket::new(TokenBucketConfig::new(1_000, Rate::per_second(1), 3));
static CLIENTS: KeyedLimiter<8> =
    KeyedLimiter::new(TokenBucketConfig::new(1_000, Rate::per_second(1), 1));
/// Refusals of `BUCKET`, counted by the caller (the bucket counts nothing on a refusal).
static BUCKET_REJECTED: Counter = Counter::new();
static QUOTA: Quota = Quota::new(QuotaConfig::new(1_000, 60, 10));
static REGISTRY: Registry = Registry::new(&[
    Entry::new(
        "upstream_circuit_breaker_state",
        "0 closed, 1 open, 2 half-open.",
        &BREAKER,
    ),
    Entry::new(
        "upstream_circuit_breaker_transitions",
        "State changes.",
        BREAKER.transitions_counter(),
    ),
    Entry::new(
        "upstream_circuit_breaker_rejections",
        "Calls refused.",
        BREAKER.rejections_counter(),
    ),
    Entry::new("ratelimit_available_tokens", "Tokens left.", &BUCKET),
    Entry::new(
        "ratelimit_rejections",
        "Requests refused.",
        &BUCKET_REJECTED,
    ),
    Entry::new(
        "client_ratelimit_active_clients",
        "Clients with a non-full bucket.",
        &CLIENTS,
    ),
    Entry::new(
        "client_ratelimit_overflow",
        "Requests charged to the shared overflow bucket.",
        CLIENTS.overflow_counter(),
    ),
    Entry::new("quota_used", "Units used in the current window.", &QUOTA),
]);

fn render() -> String {
    let mut buf = [0u8; 256];
    let mut cursor = Cursor::new(Format::Prometheus);
    let mut out = Vec::new();
    while let n @ 1.. = REGISTRY.render(&mut cursor, &mut buf).unwrap() {
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn metrics_and_health_follow_the_primitives() {
    BUCKET.try_acquire_n(0, 2).unwrap();
    assert!(BUCKET
        .try_acquire_n(0, 2)
        .inspect_err(|_| BUCKET_REJECTED.inc())
        .is_err());
    CLIENTS.try_acquire(1, 0).unwrap();
    QUOTA.try_acquire_n(0, 9).unwrap();
    let text = render();
    for line in [
        "upstream_circuit_breaker_state 0\n",
        "upstream_circuit_breaker_transitions_total 0\n",
        "ratelimit_available_tokens 1\n",
        "ratelimit_rejections_total 1\n",
        "client_ratelimit_active_clients 1\n",
        "client_ratelimit_overflow_total 0\n",
        "quota_used 9\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let health = [
        Component::new("upstream", &BREAKER),
        Component::new("quota", &QUOTA),
    ];
    assert_eq!(health[0].status(), Status::Healthy);
    assert_eq!(
        health[1].status(),
        Status::Healthy,
        "90 % is not above 90 %"
    );
    QUOTA.try_acquire(0).unwrap();
    assert_eq!(health[1].status(), Status::Degraded);

    BREAKER.try_acquire(0).unwrap().failure(0);
    assert!(BREAKER.try_acquire(0).is_err());
    assert_eq!(health[0].status(), Status::Unhealthy);
    let text = render();
    assert!(
        text.contains("upstream_circuit_breaker_state 1\n"),
        "{text}"
    );
    assert!(
        text.contains("upstream_circuit_breaker_transitions_total 1\n"),
        "{text}"
    );
    assert!(
        text.contains("upstream_circuit_breaker_rejections_total 1\n"),
        "{text}"
    );
    let _probe = BREAKER.try_acquire(10_000).unwrap();
    assert_eq!(health[0].status(), Status::Degraded);
    assert!(render().contains("upstream_circuit_breaker_state 2\n"));
}
