//! The harness shared by every footprint kit: a runtime (cortex-m-rt), a panic handler that halts,
//! an opaque input (so the compiler cannot fold the metric updates away) and a UART-like byte sink.
//! The kits differ only in what they do between input and sink, so their size differences are
//! the libraries' own.
#![no_std]

use core::panic::PanicInfo;
use core::ptr::{read_volatile, write_volatile};

/// A free-running input register (a timer's counter on a real chip): values the compiler cannot know.
const INPUT: *const u32 = 0x4000_1000 as *const u32;
/// A UART transmit data register: where rendered bytes go.
const UART_TX: *mut u32 = 0x4000_2000 as *mut u32;

/// The next input value.
#[inline]
pub fn input() -> u32 {
    // SAFETY: a volatile read of a device register address; the kits are sized, never run.
    unsafe { read_volatile(INPUT) }
}

/// Sends `bytes` to the UART, one byte per register write.
#[inline(never)]
pub fn uart(bytes: &[u8]) {
    for &b in bytes {
        // SAFETY: a volatile write to a device register address; the kits are sized, never run.
        unsafe { write_volatile(UART_TX, b as u32) };
    }
}

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
