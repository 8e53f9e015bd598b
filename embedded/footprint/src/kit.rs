// The metrics of the vitals kits (`include!`d by vitals-full and vitals-metrics): 10 counters,
// 2 gauges, 2 histograms of 10 buckets, one family of 8 series, and the loop that updates them
// from the input and serves the exposition in 64-byte chunks.

use vitals_core::{label_enum, Bounds, Counter, Cursor, Entry, Family, Format, Gauge, Histogram, Registry};

label_enum! {
    /// Which message kind.
    pub enum Kind: "kind" {
        Ping = "ping", Data = "data", Ack = "ack", Nack = "nack",
        Join = "join", Leave = "leave", Config = "config", Other = "other",
    }
}

static C0: Counter = Counter::new();
static C1: Counter = Counter::new();
static C2: Counter = Counter::new();
static C3: Counter = Counter::new();
static C4: Counter = Counter::new();
static C5: Counter = Counter::new();
static C6: Counter = Counter::new();
static C7: Counter = Counter::new();
static C8: Counter = Counter::new();
static C9: Counter = Counter::new();
static COUNTERS: [&Counter; 10] = [&C0, &C1, &C2, &C3, &C4, &C5, &C6, &C7, &C8, &C9];
static TEMPERATURE: Gauge = Gauge::new();
static QUEUE: Gauge = Gauge::new();
static ADC: Histogram<10> = Histogram::new(Bounds::micros([
    10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000,
]));
static SEND: Histogram<10> = Histogram::new(Bounds::micros([
    100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000,
]));
static MESSAGES: Family<Kind, Counter, 8> = Family::new();

static REGISTRY: Registry = Registry::new(&[
    Entry::new("boots", "Boots.", &C0),
    Entry::new("radio_tx", "Radio frames sent.", &C1),
    Entry::new("radio_rx", "Radio frames received.", &C2),
    Entry::new("radio_errors", "Radio errors.", &C3),
    Entry::new("sensor_reads", "Sensor reads.", &C4),
    Entry::new("sensor_errors", "Sensor errors.", &C5),
    Entry::new("flash_writes", "Flash writes.", &C6),
    Entry::new("watchdog_feeds", "Watchdog feeds.", &C7),
    Entry::new("uart_bytes", "UART bytes sent.", &C8),
    Entry::new("scrapes", "Expositions served.", &C9),
    Entry::new("temperature_millicelsius", "Board temperature.", &TEMPERATURE),
    Entry::new("queue_depth", "Messages waiting.", &QUEUE),
    Entry::new("adc_read_seconds", "ADC read time.", &ADC),
    Entry::new("send_seconds", "Send time.", &SEND),
    Entry::new("messages", "Messages by kind.", &MESSAGES),
]);

/// One round of metric updates driven by the input.
fn update(v: u32) {
    COUNTERS[v as usize % 10].inc();
    TEMPERATURE.set(v as i64 - 20_000);
    QUEUE.add((v & 3) as i64 - 1);
    ADC.observe((v >> 4) as u64 & 0x3fff);
    SEND.observe((v >> 8) as u64);
    MESSAGES.labels(Kind::ALL[(v >> 12) as usize % 8]).inc();
}

/// Serves the whole exposition in 64-byte chunks over the UART.
fn serve() {
    let mut chunk = [0u8; 64];
    let mut cursor = Cursor::new(Format::Prometheus);
    loop {
        match REGISTRY.render(&mut cursor, &mut chunk) {
            Ok(0) => return,
            Ok(n) => uart(&chunk[..n]),
            Err(_) => return, // a line longer than 64 bytes: none in this kit
        }
    }
}
