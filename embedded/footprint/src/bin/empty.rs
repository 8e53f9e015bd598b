//! Kit `empty`: the runtime only (vector table, reset handler, panic handler, input and sink).
#![no_std]
#![no_main]

use vitals_footprint::{input, uart};

#[cortex_m_rt::entry]
fn main() -> ! {
    loop {
        uart(&input().to_le_bytes());
    }
}
