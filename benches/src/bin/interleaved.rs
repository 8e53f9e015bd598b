//! vitals and one peer timed alternately in one process, for the rows whose ratio a loaded
//! machine moves more than the difference measured: the token bucket's allow and deny (beside
//! governor, both on governor's `FakeRelativeClock`; allow then again with both on its
//! `QuantaClock`), the histogram's observe (beside prometheus-client, the best peer on that row),
//! and the histogram's observe with an exemplar beside the same observe without one (feature
//! `exemplars`). Each round times 20 M calls of each; the load's drift touches both alike.
//!
//! `interleaved allow [ROUNDS]`: only the token bucket's two allow rows.
//!
//! `interleaved deny [ROUNDS]`: only the token bucket's deny row (beside governor, fake clock).
//!
//! `interleaved observe [ROUNDS]`: only the histogram's observe beside prometheus-client.
//!
//! Run: `cargo run --release -p vitals-benches --bin interleaved [ROUNDS]`. Prints one line per
//! round and the median ratio. Not a criterion bench: BENCHMARKS.md quotes it beside the criterion
//! rows, never instead of them.
//!
//! `interleaved render [ROUNDS]`: the render rows the same way. Every render workload of
//! `vitals_benches::render` (the criterion rows' own setup) whose peer renders within 4× of vitals
//! (fastmetrics, measured, prometheus-client; prometheus and metrics are 5–60× slower) is built
//! once; each round times every one of them in turn for about 0.2 s, and reports ns per line
//! (each divided by the lines it wrote) and vitals' ratio to the best peer of that round.

use governor::clock::{Clock, FakeRelativeClock, QuantaClock, Reference};
use std::hint::black_box;
use std::time::{Duration, Instant};
use vitals_benches::data;
use vitals_benches::resilience::limiters;
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
    let clock = FakeRelativeClock::default();
    let tb = limiters::allow();
    let vitals = per_call(|| {
        clock.advance(Duration::from_micros(1));
        black_box(tb.try_acquire(clock.now().as_u64()).is_ok());
    });
    let clock = FakeRelativeClock::default();
    let rl = limiters::allow_governor(&clock);
    let governor = per_call(|| {
        clock.advance(Duration::from_micros(1));
        black_box(rl.check().is_ok());
    });
    (vitals, governor)
}

/// The deny row (the criterion `token_bucket_deny` setup): the one token taken first, then every
/// call refused, both on governor's `FakeRelativeClock`.
fn deny() -> (f64, f64) {
    let clock = FakeRelativeClock::default();
    let tb = limiters::deny();
    let _ = tb.try_acquire(clock.now().as_u64());
    let vitals = per_call(|| {
        black_box(tb.try_acquire(clock.now().as_u64()).is_err());
    });
    let rl = limiters::deny_governor(&clock);
    let _ = rl.check();
    let governor = per_call(|| {
        black_box(rl.check().is_err());
    });
    (vitals, governor)
}

/// The allow row on governor's `QuantaClock` (the criterion `token_bucket_allow_quanta` setup):
/// both read the same clock once per call.
fn allow_quanta() -> (f64, f64) {
    let clock = QuantaClock::default();
    let start = clock.now();
    let tb = limiters::allow_quanta();
    let vitals = per_call(|| {
        let now = clock.now().duration_since(start).as_u64();
        black_box(tb.try_acquire(now).is_ok());
    });
    let rl = limiters::allow_quanta_governor();
    let governor = per_call(|| {
        black_box(rl.check().is_ok());
    });
    (vitals, governor)
}

fn observe() -> (f64, f64) {
    let us = data::observations_us();
    let secs: Vec<f64> = us.iter().map(|&v| v as f64 / 1e6).collect();
    let peer = prometheus_client::metrics::histogram::Histogram::new(data::bounds_s());
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

/// Times one row `rounds` times (`time` gives vitals' and the peer's ns per call), printing each
/// round and the median ratio.
fn one_row(rounds: usize, row: &str, peer: &str, time: fn() -> (f64, f64)) {
    let mut ratios = Vec::new();
    for round in 0..rounds {
        let (v, p) = time();
        println!(
            "round {round}: {row} vitals {v:.2} ns, {peer} {p:.2} ns ({:.2}x)",
            v / p
        );
        ratios.push(v / p);
    }
    println!("median ratio: {row} {:.3}x {peer}", median(ratios));
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A render workload kept for interleaved timing.
struct Render {
    group: &'static str,
    peer: &'static str,
    lines: u64,
    f: Box<dyn FnMut() -> usize>,
}

/// Collects the render workloads worth interleaving.
struct Renders(Vec<Render>);

impl vitals_benches::Visitor for Renders {
    fn op<R, F, S>(&mut self, group: &'static str, peer: &'static str, setup: S)
    where
        F: FnMut() -> R + 'static,
        S: FnOnce() -> vitals_benches::Op<F>,
    {
        if !matches!(
            peer,
            "vitals" | "vitals-chunked" | "fastmetrics" | "measured" | "prometheus-client"
        ) {
            return;
        }
        let op = setup();
        let mut f = op.f;
        self.0.push(Render {
            group,
            peer,
            lines: op.lines,
            f: Box::new(move || {
                black_box(f());
                0
            }),
        });
    }

    fn contended<F, S>(&mut self, _: &'static str, _: &'static str, _: S)
    where
        F: Fn(usize) + Sync,
        S: FnOnce() -> F,
    {
    }
}

/// ns per line of `r`, over about 0.2 s of whole renders.
fn per_line(r: &mut Render) -> f64 {
    (r.f)();
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < Duration::from_millis(200) {
        (r.f)();
        calls += 1;
    }
    start.elapsed().as_nanos() as f64 / (calls * r.lines) as f64
}

fn render(rounds: usize) {
    let mut all = Renders(Vec::new());
    vitals_benches::render::visit(&mut all);
    let mut all = all.0;
    let groups = [
        vitals_benches::render::FLEET,
        vitals_benches::render::FLEET_TYPED,
        vitals_benches::render::BIG,
    ];
    // Per group and vitals variant: the ratio to that round's best peer, every round.
    let mut ratios: Vec<(String, Vec<f64>)> = Vec::new();
    for round in 0..rounds {
        let times: Vec<f64> = all.iter_mut().map(per_line).collect();
        let time = |g: &str, p: &str| {
            all.iter()
                .zip(&times)
                .find(|(r, _)| r.group == g && r.peer == p)
                .map(|(_, &t)| t)
        };
        // The typed fleet has no peer rows of its own: its peers are the fleet's.
        let peers = |g: &'static str| -> &'static str {
            if g == vitals_benches::render::BIG {
                g
            } else {
                vitals_benches::render::FLEET
            }
        };
        let mut line = format!("round {round}:");
        for g in groups {
            let (best, best_t) = all
                .iter()
                .zip(&times)
                .filter(|(r, _)| r.group == peers(g) && !r.peer.starts_with("vitals"))
                .map(|(r, &t)| (r.peer, t))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .expect("a peer");
            for v in ["vitals", "vitals-chunked"] {
                let Some(t) = time(g, v) else { continue };
                let row = format!("{g} {v}");
                line += &format!(
                    " {row} {t:.1} ns/line ({:.2}x faster than {best} {best_t:.1});",
                    best_t / t
                );
                match ratios.iter_mut().find(|(r, _)| *r == row) {
                    Some((_, v)) => v.push(best_t / t),
                    None => ratios.push((row, vec![best_t / t])),
                }
            }
        }
        println!("{line}");
    }
    for (row, r) in ratios {
        let (lo, hi) = r
            .iter()
            .fold((f64::MAX, 0f64), |(l, h), &x| (l.min(x), h.max(x)));
        println!("median: {row} {:.2}x faster per line than the round's best peer (rounds {lo:.2}-{hi:.2})", median(r));
    }
}

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let mode = ["render", "allow", "observe", "deny"]
        .into_iter()
        .find(|m| args.peek().is_some_and(|a| a == m));
    if mode.is_some() {
        args.next();
    }
    let rounds: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(8);
    if mode == Some("render") {
        render(rounds);
        return;
    }
    if mode == Some("observe") {
        one_row(rounds, "histogram observe", "prometheus-client", observe);
        return;
    }
    if mode == Some("deny") {
        one_row(rounds, "token bucket deny", "governor", deny);
        return;
    }
    let mut quanta_r = Vec::new();
    if mode == Some("allow") {
        let mut allow_r = Vec::new();
        for round in 0..rounds {
            let (v, g) = allow();
            let (vq, gq) = allow_quanta();
            println!(
                "round {round}: allow vitals {v:.2} ns, governor {g:.2} ns ({:.2}x); quanta clock: vitals {vq:.2} ns, governor {gq:.2} ns ({:.2}x)",
                v / g,
                vq / gq
            );
            allow_r.push(v / g);
            quanta_r.push(vq / gq);
        }
        println!(
            "median ratio: token bucket allow {:.2}x governor, on the quanta clock {:.2}x",
            median(allow_r),
            median(quanta_r)
        );
        return;
    }
    let (mut allow_r, mut deny_r, mut observe_r, mut exemplar_r) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (v, g) = allow();
        let (vq, gq) = allow_quanta();
        let (vd, gd) = deny();
        quanta_r.push(vq / gq);
        deny_r.push(vd / gd);
        let (h, p) = observe();
        let (e, o) = exemplar();
        println!(
            "round {round}: allow vitals {v:.2} ns, governor {g:.2} ns ({:.2}x); quanta clock: vitals {vq:.2} ns, governor {gq:.2} ns ({:.2}x); deny vitals {vd:.2} ns, governor {gd:.2} ns ({:.2}x); observe vitals {h:.2} ns, prometheus-client {p:.2} ns ({:.2}x); observe with exemplar {e:.2} ns, without {o:.2} ns ({:.2}x)",
            v / g,
            vq / gq,
            vd / gd,
            h / p,
            e / o
        );
        allow_r.push(v / g);
        observe_r.push(h / p);
        exemplar_r.push(e / o);
    }
    println!(
        "median ratio: token bucket allow {:.2}x governor (quanta clock {:.2}x), deny {:.2}x, histogram observe {:.2}x prometheus-client, observe with exemplar {:.2}x without",
        median(allow_r),
        median(quanta_r),
        median(deny_r),
        median(observe_r),
        median(exemplar_r)
    );
}
