//! A counting global allocator: allocations (and reallocations) are counted per thread, so a
//! peer's background thread (e.g. metrics-exporter-prometheus upkeep) does not blur the count of
//! the operation measured on the current thread. Only the `alloc-count` binary installs it, so
//! timed benches run on the plain system allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts allocations, then delegates to the system allocator.
#[derive(Debug)]
pub struct Counting;

thread_local!(static ALLOCS: Cell<u64> = const { Cell::new(0) });

fn count() {
    // `try_with`: allocations during thread teardown are not counted.
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method delegates to `System` with the caller's arguments unchanged; counting has
// no effect on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded contract.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocations counted so far on the current thread.
pub fn allocations() -> u64 {
    ALLOCS.with(|c| c.get())
}
