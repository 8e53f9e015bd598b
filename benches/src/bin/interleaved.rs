//! vitals and one peer timed alternately in one process, for the rows whose ratio a loaded
//! machine moves more than the difference measured: the token bucket's allow (beside governor,
//! both on governor's `FakeRelativeClock`), the histogram's observe (beside prometheus), and the
//! histogram's observe with an exemplar beside the same observe without one (feature `exemplars`).
//! Each round times 20 M calls of each; the load's drift touches both alike.
//!
//! Run: `cargo run --release -p vitals-benches --bin interleaved [ROUNDS]`. Prints one line per
//! round and the median ratio. Not a criterion bench: BENCHMARKS.md quotes it beside the criterion
//! rows, never instead of them.

use governor::clock::{Clock, FakeRelativeClock};
use governor::{Quota, RateLimiter};
use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};
use vitals_benches::data;
use vitals_core::resilience::{Rate, TokenBucket, TokenBucketConfig};
use vitals_core::{Bounds, Exemplar, Histogram, Scale};

const CALLS: u32 = 20_000_000;

static HIST: Histogram<10> = Histogram::new(Bounds::new(data::BOUNDS_US, Scale::MICRO));
static HIST_EXEMPLAR: Histogram<10> = Histogram::new(Bounds::new(data::BOUNDS_US, Scale::MICRO));

fn per_call(f: impl FnMut()) -> f64 {
    let mut f = f;
    let start = Instant::now();
    for _ in 0..CALLS {
        f();
    }
    start.elapsed().as_nanos() as f64 / f64::from(CALLS)
}

fn allow() -> (f64, f64) {
    let nz = |n| NonZeroU32::new(n).expect("non-zero");
    let clock = FakeRelativeClock::default();
    let tb = TokenBucket::new(TokenBucketConfig::new(
        1_000_000_000,
        Rate::per_second(1_000_000),
        10,
    ));
    let vitals = per_call(|| {
        clock.advance(Duration::from_micros(1));
        black_box(tb.try_acquire(clock.now().as_u64()).is_ok());
    });
    let clock = FakeRelativeClock::default();
    let rl = RateLimiter::direct_with_clock(
        Quota::per_second(nz(1_000_000)).allow_burst(nz(10)),
        clock.clone(),
    );
    let governor = per_call(|| {
        clock.advance(Duration::from_micros(1));
        black_box(rl.check().is_ok());
    });
    (vitals, governor)
}

fn observe() -> (f64, f64) {
    let us = data::observations_us();
    let secs: Vec<f64> = us.iter().map(|&v| v as f64 / 1e6).collect();
    let peer = prometheus::Histogram::with_opts(
        prometheus::HistogramOpts::new("h", "help").buckets(data::bounds_s()),
    )
    .expect("valid histogram");
    let mask = us.len() - 1;
    let mut i = 0;
    let vitals = per_call(|| {
        i = (i + 1) & mask;
        HIST.observe(black_box(us[i]));
    });
    let peer_time = per_call(|| {
        i = (i + 1) & mask;
        peer.observe(black_box(secs[i]));
    });
    (vitals, peer_time)
}

/// Observe with an exemplar (ids and timestamp made from the index) and without, on two
/// histograms alike: `(with, without)`.
fn exemplar() -> (f64, f64) {
    let us = data::observations_us();
    let mask = us.len() - 1;
    let mut i = 0;
    let with = per_call(|| {
        i = (i + 1) & mask;
        let id = i as u64;
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&id.to_be_bytes());
        trace_id[8..].copy_from_slice(&(!id).to_be_bytes());
        let e = Exemplar::new(trace_id, id.to_le_bytes()).at_millis(1_764_640_000_000 + id);
        HIST_EXEMPLAR.observe_with_exemplar(black_box(us[i]), black_box(&e));
    });
    let without = per_call(|| {
        i = (i + 1) & mask;
        HIST.observe(black_box(us[i]));
    });
    (with, without)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(8);
    let (mut allow_r, mut observe_r, mut exemplar_r) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (v, g) = allow();
        let (h, p) = observe();
        let (e, o) = exemplar();
        println!(
            "round {round}: allow vitals {v:.2} ns, governor {g:.2} ns ({:.2}x); observe vitals {h:.2} ns, prometheus {p:.2} ns ({:.2}x); observe with exemplar {e:.2} ns, without {o:.2} ns ({:.2}x)",
            v / g,
            h / p,
            e / o
        );
        allow_r.push(v / g);
        observe_r.push(h / p);
        exemplar_r.push(e / o);
    }
    println!(
        "median ratio: token bucket allow {:.2}x governor, histogram observe {:.2}x prometheus, observe with exemplar {:.2}x without",
        median(allow_r),
        median(observe_r),
        median(exemplar_r)
    );
}
