//! Benchmarks of vitals beside its peer crates, measured in the same run.
//!
//! Every workload is declared once, here, as a *setup* that builds the state and returns the
//! operation as a closure. Two drivers walk the same list through [`Visitor`]:
//! - the criterion bench (`benches/compare.rs`) times each operation;
//! - the `alloc-count` binary counts heap allocations per operation under a counting global
//!   allocator (kept out of the timed binary so the peers' allocations are not slowed down).
//!
//! Closures are generic all the way down (no boxing), so each peer's operation is inlined into
//! the measuring loop exactly as it would be in an application.
//!
//! Groups and peers:
//! - [`hot`]: counter inc, gauge set, histogram observe, labelled inc (typed, string), each beside
//!   a bare `AtomicU64` baseline where one applies;
//! - [`render`]: a fleet of families and one 100,000-series family;
//! - [`contention`]: two threads on one counter, one histogram, one family;
//! - [`resilience`]: token bucket allow/deny vs governor, keyed limiter hit, breaker vs failsafe.

pub mod alloc;
pub mod contention;
pub mod data;
pub mod hot;
pub mod render;
pub mod resilience;

/// One single-threaded operation, built by a setup closure.
#[derive(Debug)]
pub struct Op<F> {
    /// The operation: one call is one measured unit (one inc, one observe, one whole render).
    pub f: F,
    /// Exposition lines one call produces (renders), or 1.
    pub lines: u64,
}

impl<F> Op<F> {
    /// An operation that is one unit of work.
    pub fn one(f: F) -> Self {
        Op { f, lines: 1 }
    }
}

/// What a driver does with each workload.
pub trait Visitor {
    /// A single-threaded operation of `peer` in `group`. `setup` runs at most once, and only if
    /// the driver wants this operation.
    fn op<R, F, S>(&mut self, group: &'static str, peer: &'static str, setup: S)
    where
        F: FnMut() -> R + 'static,
        S: FnOnce() -> Op<F>;

    /// An operation run by two threads at once on shared state; the argument is the thread's
    /// index (0 or 1). One unit is one call on one thread.
    fn contended<F, S>(&mut self, group: &'static str, peer: &'static str, setup: S)
    where
        F: Fn(usize) + Sync,
        S: FnOnce() -> F;
}

/// Walks every workload of every group.
pub fn visit_all<V: Visitor>(v: &mut V) {
    hot::visit(v);
    render::visit(v);
    contention::visit(v);
    resilience::visit(v);
}

/// The name vitals is reported under; the baseline rows use [`BASELINE`].
pub const VITALS: &str = "vitals";
/// The bare-atomic baseline's peer name.
pub const BASELINE: &str = "bare-atomic";
