//! Every workload of `vitals_benches`, timed by criterion in one run.
//!
//! `BENCH_QUICK=1` shortens every measurement (CI: it only checks that the benches run).

use criterion::Criterion;
use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};
use vitals_benches::{Op, Visitor};

struct Timed<'a> {
    c: &'a mut Criterion,
    quick: bool,
}

impl Timed<'_> {
    fn group<'b>(
        &'b mut self,
        group: &str,
    ) -> criterion::BenchmarkGroup<'b, criterion::measurement::WallTime> {
        let quick = self.quick;
        let mut g = self.c.benchmark_group(group);
        if quick {
            g.warm_up_time(Duration::from_millis(50))
                .measurement_time(Duration::from_millis(100))
                .sample_size(10);
        } else if group.starts_with("render_100k") {
            g.sample_size(20).measurement_time(Duration::from_secs(8));
        } else if group.starts_with("render") {
            g.sample_size(50);
        }
        g
    }
}

impl Visitor for Timed<'_> {
    fn op<R, F, S>(&mut self, group: &'static str, peer: &'static str, setup: S)
    where
        F: FnMut() -> R,
        S: FnOnce() -> Op<F>,
    {
        let mut setup = Some(setup);
        let mut op: Option<Op<F>> = None;
        let mut g = self.group(group);
        g.bench_function(peer, |b| {
            let op = op.get_or_insert_with(|| (setup.take().expect("setup runs once"))());
            b.iter(|| black_box((op.f)()))
        });
        g.finish();
    }

    fn contended<F, S>(&mut self, group: &'static str, peer: &'static str, setup: S)
    where
        F: Fn(usize) + Sync,
        S: FnOnce() -> F,
    {
        let mut setup = Some(setup);
        let mut op: Option<F> = None;
        let mut g = self.group(group);
        g.bench_function(peer, |b| {
            let f = &*op.get_or_insert_with(|| (setup.take().expect("setup runs once"))());
            b.iter_custom(|iters| {
                let barrier = Barrier::new(2);
                let run = |t: usize| {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        f(t);
                    }
                    start.elapsed()
                };
                std::thread::scope(|s| {
                    let other = s.spawn(|| run(1));
                    let mine = run(0);
                    mine.max(other.join().expect("bench thread"))
                })
            })
        });
        g.finish();
    }
}

fn main() {
    let quick = std::env::var_os("BENCH_QUICK").is_some_and(|v| v != "0");
    let mut c = Criterion::default().configure_from_args();
    vitals_benches::visit_all(&mut Timed { c: &mut c, quick });
    c.final_summary();
}
