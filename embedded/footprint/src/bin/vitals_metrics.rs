//! Kit `vitals-metrics`: the kit's metrics and their rendering in 64-byte chunks, with vitals-core.
#![no_std]
#![no_main]

use vitals_footprint::{input, uart};

include!("../kit.rs");

#[cortex_m_rt::entry]
fn main() -> ! {
    loop {
        let v = input();
        update(v);
        if v & 0x8000_0000 != 0 {
            serve();
        }
    }
}
