//! Kit `embeprom`: the same metrics and rendering as `vitals-metrics`, built with `embeprom` (the
//! other no_std Prometheus renderer; it has no limiter, breaker or health). Its renderer yields
//! one line at a time from a line buffer of 64 bytes: the same 64-byte chunks over the UART.
#![no_std]
#![no_main]

use cortex_m as _; // links its single-core critical-section implementation (embeprom needs one)
use vitals_footprint::{input, uart};

mod metrics {
    embeprom::metrics! {
        /// Boots.
        boots: Counter,
        /// Radio frames sent.
        radio_tx: Counter,
        /// Radio frames received.
        radio_rx: Counter,
        /// Radio errors.
        radio_errors: Counter,
        /// Sensor reads.
        sensor_reads: Counter,
        /// Sensor errors.
        sensor_errors: Counter,
        /// Flash writes.
        flash_writes: Counter,
        /// Watchdog feeds.
        watchdog_feeds: Counter,
        /// UART bytes sent.
        uart_bytes: Counter,
        /// Expositions served.
        scrapes: Counter,
        /// Board temperature.
        temperature_millicelsius: Gauge,
        /// Messages waiting.
        queue_depth: Gauge,
        /// ADC read time.
        #[buckets(10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)]
        adc_read_us: IntHistogram,
        /// Send time.
        #[buckets(100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000)]
        send_us: IntHistogram,
        /// Messages by kind.
        #[labels("kind")]
        messages: CounterVec<8>,
    }
}

const KINDS: [&str; 8] = [
    "ping", "data", "ack", "nack", "join", "leave", "config", "other",
];

fn update(v: u32) {
    let m = metrics::get();
    match v % 10 {
        0 => m.boots.inc(),
        1 => m.radio_tx.inc(),
        2 => m.radio_rx.inc(),
        3 => m.radio_errors.inc(),
        4 => m.sensor_reads.inc(),
        5 => m.sensor_errors.inc(),
        6 => m.flash_writes.inc(),
        7 => m.watchdog_feeds.inc(),
        8 => m.uart_bytes.inc(),
        _ => m.scrapes.inc(),
    }
    m.temperature_millicelsius.set(v as i64 - 20_000);
    m.queue_depth.add((v & 3) as i64 - 1);
    m.adc_read_us.observe((v >> 4) as u64 & 0x3fff);
    m.send_us.observe((v >> 8) as u64);
    m.messages.inc(&[KINDS[(v >> 12) as usize % 8]]);
}

fn serve() {
    let mut renderer = embeprom::Renderer::with_line_capacity::<64>();
    while let Ok(Some(line)) = renderer.next_line() {
        uart(line.as_bytes());
    }
}

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
