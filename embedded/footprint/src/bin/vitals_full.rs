//! Kit `vitals-full`: the kit's metrics and rendering, plus a token bucket guarding the scrape, a
//! circuit breaker around the radio, and a health report served as JSON.
#![no_std]
#![no_main]

use vitals_core::health::{Component, Health, Status, StatusCell};
use vitals_core::resilience::{
    BreakerConfig, CircuitBreaker, Rate, TokenBucket, TokenBucketConfig,
};
use vitals_footprint::{input, uart};

include!("../kit.rs");

/// At most 2 scrapes per second, bursts of 4 (clock in milliseconds).
static SCRAPES: TokenBucket =
    TokenBucket::new(TokenBucketConfig::new(1_000, Rate::per_second(2), 4));
/// Stop using the radio after 5 failures in a row; retry after 1 s, backing off to 30 s.
static RADIO: CircuitBreaker = CircuitBreaker::new(
    BreakerConfig::new(1_000)
        .consecutive_failures(5)
        .open_wait(1_000, 30_000),
);
static SENSOR: StatusCell = StatusCell::new(Status::Healthy);
static RADIO_STATUS: StatusCell = StatusCell::new(Status::Healthy);
static HEALTH: Health = Health::new(&[
    Component::new("sensor", &SENSOR),
    Component::non_critical("radio", &RADIO_STATUS),
]);

#[cortex_m_rt::entry]
fn main() -> ! {
    let mut now = 0u64;
    loop {
        let v = input();
        now += (v & 0xff) as u64;
        update(v);
        match RADIO.try_acquire(now) {
            Ok(call) if v & 1 == 0 => call.success(now),
            Ok(call) => call.failure(now),
            Err(_) => RADIO_STATUS.set(Status::Unhealthy),
        }
        SENSOR.set(if v & 2 == 0 {
            Status::Healthy
        } else {
            Status::Degraded
        });
        if v & 0x8000_0000 != 0 && SCRAPES.try_acquire(now).is_ok() {
            serve();
        }
        if v & 0x4000_0000 != 0 {
            let mut json = [0u8; 192];
            if let Ok(n) = HEALTH.write_json(&mut json) {
                uart(&json[..n]);
            }
        }
    }
}
