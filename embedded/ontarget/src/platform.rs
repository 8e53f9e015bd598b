//! What differs between the emulated chips: entry point, semihosting output and exit.

use core::fmt;

/// The target triple this binary was built for.
pub const TARGET: &str = env!("VITALS_TARGET");

/// The interrupt-safe atomic strategy this binary was built with.
pub const ATOMICS: &str = if cfg!(target_has_atomic = "64") {
    "native 64-bit atomics"
} else if cfg!(portable_atomic_unsafe_assume_single_core) {
    "atomics: portable_atomic_unsafe_assume_single_core"
} else if cfg!(feature = "critical-section") {
    "atomics: critical-section (single-core implementation)"
} else if cfg!(feature = "privileged") {
    "atomics: unsafe-assume-privileged"
} else {
    "atomics: ?"
};

/// Semihosting stdout as a `core::fmt::Write` sink (output that does not fit is dropped).
pub struct Stdout;

#[cfg(target_arch = "arm")]
mod imp {
    pub use cortex_m_rt::entry;
    use cortex_m_semihosting::{debug, hio};
    use panic_semihosting as _; // panic: print the message, exit QEMU with a failure code

    pub fn write(bytes: &[u8]) {
        if let Ok(mut out) = hio::hstdout() {
            let _ = out.write_all(bytes);
        }
    }

    pub fn write_err(bytes: &[u8]) {
        if let Ok(mut out) = hio::hstderr() {
            let _ = out.write_all(bytes);
        }
    }

    pub fn exit(success: bool) -> ! {
        debug::exit(if success {
            debug::EXIT_SUCCESS
        } else {
            debug::EXIT_FAILURE
        });
        #[allow(clippy::empty_loop)]
        loop {}
    }
}

#[cfg(target_arch = "riscv32")]
mod imp {
    pub use riscv_rt::entry;
    use semihosting::io::Write as _;

    pub fn write(bytes: &[u8]) {
        if let Ok(mut out) = semihosting::io::stdout() {
            let _ = out.write_all(bytes);
        }
    }

    pub fn write_err(bytes: &[u8]) {
        if let Ok(mut out) = semihosting::io::stderr() {
            let _ = out.write_all(bytes);
        }
    }

    pub fn exit(success: bool) -> ! {
        semihosting::process::exit(if success { 0 } else { 1 })
    }
}

pub use imp::entry;

/// Writes raw bytes to the host's stdout (a UART stand-in).
pub fn write(bytes: &[u8]) {
    imp::write(bytes)
}

/// Writes raw bytes to the host's stderr.
pub fn write_err(bytes: &[u8]) {
    imp::write_err(bytes)
}

/// Leaves QEMU with exit code 0 (`success`) or 1.
pub fn exit(success: bool) -> ! {
    imp::exit(success)
}

impl fmt::Write for Stdout {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write(s.as_bytes());
        Ok(())
    }
}
