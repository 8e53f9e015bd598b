//! Interrupt safety: a timer interrupt handler (SysTick on Cortex-M, the machine timer on RISC-V)
//! and the main loop update the same `Counter` and `Histogram`, hundreds of thousands of times,
//! while the interrupt keeps preempting the main loop in the middle of its 64-bit updates.
//!
//! The test ends with exact totals (count, every bucket and the sum) and no hang (the runner's
//! `timeout` ends a deadlocked firmware). With portable-atomic's default spin-lock fallback this
//! deadlocks on the first handler that preempts a locked update; vitals-core refuses to build
//! that way, so this binary runs with whichever interrupt-safe strategy it was built with
//! (printed on the first line).
//!
//! Negative control: a counter updated by a plain load and store (not an atomic read-modify-write)
//! from the same two places must lose updates, or the interrupts never landed inside an update
//! and the exact totals above would prove nothing.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};
use vitals_core::{Bounds, Counter, Histogram};
use vitals_ontarget::{check, check_eq, println, tests, timer};

/// Updated by both the handler and the main loop.
static EVENTS: Counter = Counter::new();
static LATENCY: Histogram<4> = Histogram::new(Bounds::units([10, 100, 500, 900]));
/// Handler invocations (written by the handler only).
static TICKS: Counter = Counter::new();
/// The main loop's iterations so far (written by the main loop only).
static MAIN_PROGRESS: AtomicU32 = AtomicU32::new(0);
/// `MAIN_PROGRESS` when the handler last did its updates (written by the handler only).
static SEEN_PROGRESS: AtomicU32 = AtomicU32::new(u32::MAX);
/// The negative control: incremented by load then store, so an interrupt between the two loses
/// the handler's increments. (32-bit load and store are native on every target, CAS or not.)
static RACY: AtomicU32 = AtomicU32::new(0);

/// Not an atomic increment: the lost update this test must be able to see.
fn racy_increment() {
    RACY.store(
        RACY.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// The main loop updates at least this many times...
const MIN_MAIN_UPDATES: u64 = 200_000;
/// ...and goes on until this many interrupts have preempted it.
const MIN_TICKS: u64 = 5_000;
/// Updates of each metric per interrupt.
const PER_TICK: u64 = 40;

/// The value the handler observes on its `k`-th update (a deterministic sequence).
const fn handler_value(k: u64) -> u64 {
    (k * 7) % 1_000
}

/// The value the main loop observes on iteration `i`.
const fn main_value(i: u64) -> u64 {
    (i * 13) % 1_200
}

/// Timer ticks between two interrupts: short, so that interrupts land inside the main loop's
/// atomic updates very often (core clock cycles on Cortex-M, 10 MHz timebase ticks on RISC-V).
const PERIOD: u32 = if cfg!(target_arch = "arm") { 400 } else { 20 };

vitals_ontarget::timer_interrupt!(on_tick);

/// The timer interrupt: updates the shared metrics, once the main loop has made progress since
/// the handler's last updates. Without that rule a slow or loaded host, on which QEMU runs the
/// handler's updates in more host time than the timer's period, chains interrupts back to back
/// and the main loop never runs again (seen in CI as a 120 s timeout); with it, every interrupt
/// that updates is preceded by at least one main-loop iteration, and the others return at once.
fn on_tick() {
    let progress = MAIN_PROGRESS.load(Ordering::Relaxed);
    if progress == SEEN_PROGRESS.load(Ordering::Relaxed) {
        return;
    }
    SEEN_PROGRESS.store(progress, Ordering::Relaxed);
    let k = TICKS.get();
    for j in 0..PER_TICK {
        EVENTS.inc();
        LATENCY.observe(handler_value(k * PER_TICK + j));
        racy_increment();
    }
    TICKS.inc();
}

tests!(main_and_interrupt_share_metrics);

fn main_and_interrupt_share_metrics() -> Result<(), ()> {
    timer::start(PERIOD);
    // Every interrupt lands while the main loop is updating the same metrics.
    let mut main_updates = 0u64;
    while main_updates < MIN_MAIN_UPDATES || TICKS.get() < MIN_TICKS {
        // The racy read-modify-write spans the metric updates, the window the interrupts hit.
        let racy = RACY.load(Ordering::Relaxed);
        EVENTS.inc();
        LATENCY.observe(main_value(main_updates));
        RACY.store(racy.wrapping_add(1), Ordering::Relaxed);
        main_updates += 1;
        MAIN_PROGRESS.store(main_updates as u32, Ordering::Relaxed);
    }
    timer::stop();
    let ticks = TICKS.get();
    println!(
        "    {main_updates} main-loop updates, {ticks} interrupts, {} updates of each metric in all",
        EVENTS.get()
    );

    // Expected totals, computed from the two deterministic sequences.
    let bounds = LATENCY.bounds();
    let mut buckets = [0u64; 5];
    let mut sum = 0u64;
    for i in 0..main_updates {
        buckets[bounds.bucket(main_value(i))] += 1;
        sum += main_value(i);
    }
    for k in 0..ticks * PER_TICK {
        buckets[bounds.bucket(handler_value(k))] += 1;
        sum += handler_value(k);
    }
    let total = main_updates + ticks * PER_TICK;
    check_eq!(EVENTS.get(), total);
    check_eq!(LATENCY.count(), total);
    check_eq!(LATENCY.sum(), sum);
    let (got, inf) = LATENCY.cells().buckets();
    check_eq!(got, [buckets[0], buckets[1], buckets[2], buckets[3]]);
    check_eq!(inf, buckets[4]);
    // The negative control lost updates: interrupts did land inside the main loop's updates.
    let lost = (total as u32).wrapping_sub(RACY.load(Ordering::Relaxed));
    println!("    negative control: a load-then-store counter lost {lost} of {total} updates");
    check!(lost > 0);
    Ok(())
}
