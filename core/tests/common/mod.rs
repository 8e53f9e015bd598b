//! Helpers shared by the core's integration tests: the strict exposition checker (the test kit's
//! one, `tests/src/exposition.rs`), the property-test case count and the buffer-size step.
#![allow(dead_code, unused_imports)]
// Each test crate uses a part of these, and the exposition checker is the test kit's public API
// (`pub` there): `pub` here is unreachable by design.
#![allow(unreachable_pub)]

#[path = "../../../tests/src/exposition.rs"]
mod exposition;
pub use exposition::*;

/// Cases per property test: 256, or 4 under miri (which is ~1000 times slower).
pub fn cases() -> u32 {
    if cfg!(miri) {
        4
    } else {
        256
    }
}

/// The step between buffer sizes in tests that render with every size: 1, or a sample of them
/// (every 97th) under miri.
pub fn buffer_size_step() -> usize {
    if cfg!(miri) {
        97
    } else {
        1
    }
}
