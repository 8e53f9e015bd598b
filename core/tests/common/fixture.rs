//! The golden fixture registry (`fixture_registry.rs`) for the host tests: filled once per
//! process, rendered into a `Vec` with chunks of any size.
#![allow(dead_code)]
// Shared by several test crates (and the on-target tests) through `#[path]`: `pub` is what the
// including crate reads, unreachable from a test crate's root by design.
#![allow(unreachable_pub)]

#[path = "fixture_registry.rs"]
mod registry;
pub use registry::*;

use vitals_core::Registry;

/// Sets the fixture's values, once per process (every test may call it).
pub fn fill() {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    ONCE.call_once(set_values);
}

/// Renders the whole registry with chunks of `chunk` bytes.
pub fn render_all(registry: &Registry, format: vitals_core::Format, chunk: usize) -> Vec<u8> {
    let mut cursor = vitals_core::Cursor::new(format);
    let mut buf = vec![0u8; chunk];
    let mut out = Vec::new();
    loop {
        match registry.render(&mut cursor, &mut buf) {
            Ok(0) => {
                assert!(cursor.is_done());
                return out;
            }
            Ok(n) => {
                assert!(out.is_empty() || buf[n - 1] == b'\n');
                out.extend_from_slice(&buf[..n]);
            }
            Err(e) => panic!("render failed with chunk {chunk}: {e}"),
        }
    }
}
