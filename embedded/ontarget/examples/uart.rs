//! A firmware you can copy: metrics declared as `static`s, updated from a timer interrupt and from
//! the main loop, and served in 64-byte chunks over a UART-like sink (semihosting stdout under
//! QEMU; on a board, your UART's blocking write). The health report follows as JSON on stderr.
//!
//! ```sh
//! cd embedded
//! cargo run --example uart --target thumbv7em-none-eabihf   # or thumbv6m-none-eabi, riscv32imc-unknown-none-elf
//! ```
//!
//! What the final firmware must choose (see README "On microcontrollers"): this crate's
//! `.cargo/config.toml` sets `--cfg portable_atomic_unsafe_assume_single_core` for every target,
//! the right choice for a single-core chip. Without a choice, vitals-core refuses to build.
//!
//! The timer interrupt comes from this crate's `timer` module (`src/timer.rs`, shared with the
//! interrupt test): on a board, use your HAL's timer instead.
#![no_std]
#![no_main]

use vitals_core::health::{Component, Health, Status, StatusCell};
use vitals_core::{
    label_enum, Bounds, Counter, Cursor, Entry, Family, Format, Gauge, Histogram, Registry,
};
use vitals_ontarget::{platform, timer};

label_enum! {
    /// Which radio a packet went through.
    pub enum Radio: "radio" { Ble = "ble", LoRa = "lora" }
}

// 1. Metrics are statics: const-constructed, no heap, no init code.
static TICKS: Counter = Counter::new();
static PACKETS: Family<Radio, Counter, 2> = Family::new();
static QUEUE_DEPTH: Gauge = Gauge::new();
static ISR_LATENCY: Histogram<4> = Histogram::new(Bounds::micros([5, 10, 50, 100]));

static REGISTRY: Registry = Registry::new(&[
    Entry::new("timer_ticks", "Timer interrupts handled.", &TICKS),
    Entry::new("radio_packets", "Packets sent, by radio.", &PACKETS),
    Entry::new("queue_depth", "Packets waiting to be sent.", &QUEUE_DEPTH),
    Entry::new(
        "isr_latency_seconds",
        "Time spent in the timer interrupt.",
        &ISR_LATENCY,
    )
    .unit("seconds"),
]);

static RADIO: StatusCell = StatusCell::new(Status::Healthy);
static HEALTH: Health = Health::new(&[Component::new("radio", &RADIO)]);

// 2. The interrupt handler updates metrics directly: each update is one interrupt-safe atomic RMW.
vitals_ontarget::timer_interrupt!(on_timer_interrupt);

/// Timer ticks between two interrupts (core clock cycles on Cortex-M, 10 MHz ticks on RISC-V).
const PERIOD: u32 = if cfg!(target_arch = "arm") {
    10_000
} else {
    1_000
};

/// Interrupts the example handles before it serves its metrics.
const TICKS_TO_RUN: u64 = 200;

fn on_timer_interrupt() {
    let n = TICKS.get();
    if n >= TICKS_TO_RUN {
        return; // the main loop is about to stop the timer: the totals stay exact
    }
    TICKS.inc();
    QUEUE_DEPTH.inc();
    ISR_LATENCY.observe(3 + n % 60); // a real handler would measure itself with a cycle counter
}

#[vitals_ontarget::entry]
fn main() -> ! {
    timer::start(PERIOD);
    // 3. The main loop does its work and updates the same metrics.
    let mut sent = 0u32;
    while TICKS.get() < TICKS_TO_RUN {
        if QUEUE_DEPTH.get() > 0 {
            QUEUE_DEPTH.dec();
            PACKETS
                .labels(if sent.is_multiple_of(3) {
                    Radio::LoRa
                } else {
                    Radio::Ble
                })
                .inc();
            sent += 1;
        }
    }
    timer::stop();
    if PACKETS.labels(Radio::LoRa).get() == 0 {
        RADIO.set(Status::Degraded);
    }

    // 4. Serve the exposition in 64-byte chunks: the cursor resumes where the last chunk ended,
    //    and every chunk ends on a line boundary, so it can go straight to a UART FIFO or a frame.
    let mut chunk = [0u8; 64];
    let mut cursor = Cursor::new(Format::Prometheus);
    let mut ok = true;
    loop {
        match REGISTRY.render(&mut cursor, &mut chunk) {
            Ok(0) => break,
            Ok(n) => uart_write(&chunk[..n]),
            Err(_too_small) => {
                ok = false; // a line longer than 64 bytes: give it a bigger buffer
                break;
            }
        }
    }

    // 5. Health as JSON into a borrowed buffer.
    let mut json = [0u8; 96];
    match HEALTH.write_json(&mut json) {
        Ok(n) => {
            platform::write_err(&json[..n]);
            platform::write_err(b"\n");
        }
        Err(_) => ok = false,
    }
    platform::exit(ok)
}

/// The UART stand-in: semihosting stdout.
fn uart_write(bytes: &[u8]) {
    platform::write(bytes);
}
