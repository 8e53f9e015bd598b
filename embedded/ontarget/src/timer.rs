//! One periodic timer interrupt, the same on every emulated chip: SysTick on Cortex-M, the CLINT
//! machine timer of QEMU's RISC-V `virt` machine (10 MHz timebase) on RISC-V.
//!
//! A binary names its handler once with [`timer_interrupt!`](crate::timer_interrupt), then
//! brackets the code the interrupt should preempt with [`start`] and [`stop`]:
//!
//! ```ignore
//! vitals_ontarget::timer_interrupt!(on_tick);
//! fn on_tick() { TICKS.inc(); }
//!
//! timer::start(PERIOD);
//! // ... the main loop, preempted every PERIOD ticks ...
//! timer::stop();
//! ```

/// Timer ticks between two interrupts, as [`start`] set it (read by the RISC-V handler to re-arm).
#[cfg(target_arch = "riscv32")]
static PERIOD: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

#[cfg(target_arch = "arm")]
mod imp {
    use cortex_m::peripheral::{syst::SystClkSource, SYST};

    fn syst() -> SYST {
        // SAFETY: only this module touches the SysTick registers; `Peripherals::take` would work
        // once only and `stop` needs them again.
        unsafe { cortex_m::Peripherals::steal() }.SYST
    }

    pub(super) fn start(period: u32) {
        let mut syst = syst();
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(period.clamp(1, 0x00ff_ffff)); // a 24-bit reload register
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
    }

    pub(super) fn stop() {
        let mut syst = syst();
        syst.disable_interrupt();
        syst.disable_counter();
    }
}

#[cfg(target_arch = "riscv32")]
mod imp {
    use core::ptr::{read_volatile, write_volatile};
    use core::sync::atomic::Ordering;
    use riscv::interrupt::Interrupt;

    const MTIME: usize = 0x0200_bff8;
    const MTIMECMP: usize = 0x0200_4000;

    fn mtime() -> u64 {
        // SAFETY: MMIO reads of the CLINT's mtime (high, low, high again until stable).
        unsafe {
            loop {
                let hi = read_volatile((MTIME + 4) as *const u32);
                let lo = read_volatile(MTIME as *const u32);
                if hi == read_volatile((MTIME + 4) as *const u32) {
                    return (hi as u64) << 32 | lo as u64;
                }
            }
        }
    }

    /// Schedules the next interrupt one period from now.
    pub(super) fn rearm() {
        let t = mtime() + u64::from(super::PERIOD.load(Ordering::Relaxed));
        // SAFETY: MMIO writes to hart 0's mtimecmp; the high word is first set to its maximum so
        // that no spurious interrupt fires between the two halves.
        unsafe {
            write_volatile((MTIMECMP + 4) as *mut u32, u32::MAX);
            write_volatile(MTIMECMP as *mut u32, t as u32);
            write_volatile((MTIMECMP + 4) as *mut u32, (t >> 32) as u32);
        }
    }

    pub(super) fn start(period: u32) {
        super::PERIOD.store(period.max(1), Ordering::Relaxed);
        rearm();
        // SAFETY: the binary installed the handler with `timer_interrupt!`; enabling the
        // interrupt is the caller's purpose.
        unsafe {
            riscv::interrupt::enable_interrupt(Interrupt::MachineTimer);
            riscv::interrupt::enable();
        }
    }

    pub(super) fn stop() {
        riscv::interrupt::disable_interrupt(Interrupt::MachineTimer);
        riscv::interrupt::disable();
    }
}

/// Starts the periodic interrupt: one every `period` ticks (core clock cycles for SysTick, at most
/// 2^24 − 1; timebase ticks for the CLINT). The handler is the one named by
/// [`timer_interrupt!`](crate::timer_interrupt).
pub fn start(period: u32) {
    imp::start(period)
}

/// Stops the periodic interrupt.
pub fn stop() {
    imp::stop()
}

#[doc(hidden)]
#[cfg(target_arch = "riscv32")]
pub fn rearm() {
    imp::rearm()
}

/// Installs `$handler` (a `fn()`) as the timer interrupt handler that [`start`] enables.
#[macro_export]
macro_rules! timer_interrupt {
    ($handler:path) => {
        #[cfg(target_arch = "arm")]
        #[cortex_m_rt::exception]
        fn SysTick() {
            $handler();
        }

        #[cfg(target_arch = "riscv32")]
        #[riscv_rt::core_interrupt(riscv::interrupt::Interrupt::MachineTimer)]
        fn machine_timer() {
            $crate::timer::rearm();
            $handler();
        }
    };
}
