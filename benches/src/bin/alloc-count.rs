//! Counts heap allocations per operation for every workload (after a warm-up call), under a
//! counting global allocator, and prints one JSON object per line:
//! `{"group":…,"peer":…,"allocs_per_op":…,"lines":…}`.
//!
//! Usage: `alloc-count [FILTER]` (a substring of `group/peer`).

use std::hint::black_box;
use vitals_benches::alloc::{allocations, Counting};
use vitals_benches::{Op, Visitor};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

struct Count {
    filter: Option<String>,
}

impl Count {
    fn wants(&self, group: &str, peer: &str) -> bool {
        self.filter
            .as_deref()
            .is_none_or(|f| format!("{group}/{peer}").contains(f))
    }
}

fn emit(group: &str, peer: &str, per_op: f64, lines: u64) {
    println!(
        "{}",
        serde_json::json!({ "group": group, "peer": peer, "allocs_per_op": per_op, "lines": lines })
    );
}

impl Visitor for Count {
    fn op<R, F, S>(&mut self, group: &'static str, peer: &'static str, setup: S)
    where
        F: FnMut() -> R,
        S: FnOnce() -> Op<F>,
    {
        if !self.wants(group, peer) {
            return;
        }
        let mut op = setup();
        // Warm: the first calls may size buffers, intern strings, create thread-local state.
        for _ in 0..3 {
            black_box((op.f)());
        }
        let n: u64 = if op.lines > 1 { 10 } else { 10_000 };
        let before = allocations();
        for _ in 0..n {
            black_box((op.f)());
        }
        let per_op = (allocations() - before) as f64 / n as f64;
        emit(group, peer, per_op, op.lines);
    }

    fn contended<F, S>(&mut self, group: &'static str, peer: &'static str, setup: S)
    where
        F: Fn(usize) + Sync,
        S: FnOnce() -> F,
    {
        if !self.wants(group, peer) {
            return;
        }
        let f = setup();
        for t in 0..2 {
            f(t);
        }
        let n = 10_000u64;
        let before = allocations();
        for i in 0..n {
            f((i % 2) as usize);
        }
        emit(group, peer, (allocations() - before) as f64 / n as f64, 1);
    }
}

fn main() {
    let filter = std::env::args().nth(1);
    vitals_benches::visit_all(&mut Count { filter });
}
