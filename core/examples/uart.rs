//! What a firmware gets from vitals-core, in one screen: metrics declared as `static`s, updated
//! from the main loop (or an interrupt handler), and served in 64-byte chunks over a UART-like
//! sink. On a host, the "UART" is stdout:
//!
//! ```sh
//! cargo run -p vitals-core --example uart                # Prometheus text
//! cargo run -p vitals-core --example uart -- openmetrics # OpenMetrics
//! ```
use vitals_core::health::{Component, Health, Status, StatusCell};
use vitals_core::{
    label_enum, Bounds, Counter, Cursor, Entry, Family, Format, Gauge, Histogram, Info, Registry,
    StrFamily,
};

label_enum! {
    /// Which radio a packet went through.
    pub enum Radio: "radio" { Ble = "ble", LoRa = "lora" }
}

static BOOTS: Counter = Counter::new();
static PACKETS: Family<Radio, Counter, 2> = Family::new();
static TEMPERATURE: Gauge = Gauge::new();
static ADC_READ: Histogram<5> = Histogram::new(Bounds::micros([10, 50, 100, 500, 1_000]));
static PEERS: StrFamily<Counter, 1, 4, 16> = StrFamily::new(["peer"]);
static FIRMWARE: Info<2> = Info::new(["version", "board"], ["1.4.2", "nrf52840-dk"]);

static REGISTRY: Registry = Registry::new(&[
    Entry::new("device_boots", "Times the device booted.", &BOOTS),
    Entry::new("radio_packets", "Packets sent, by radio.", &PACKETS),
    Entry::new(
        "board_temperature_celsius",
        "Board temperature.",
        &TEMPERATURE,
    ),
    Entry::new(
        "adc_read_duration_seconds",
        "Time to read the ADC.",
        &ADC_READ,
    )
    .unit("seconds"),
    Entry::new("peer_messages", "Messages received, by peer.", &PEERS),
    Entry::new("firmware", "Firmware build.", &FIRMWARE),
]);

static SENSOR: StatusCell = StatusCell::new(Status::Healthy);
static HEALTH: Health = Health::new(&[Component::new("sensor", &SENSOR)]);

fn main() {
    // The application's hot paths: each update is one or two relaxed atomic adds.
    BOOTS.inc();
    for i in 0..100u64 {
        PACKETS
            .labels(if i % 3 == 0 { Radio::LoRa } else { Radio::Ble })
            .inc();
        ADC_READ.observe(8 + (i * 37) % 900);
        PEERS
            .labels([["gateway-a", "gateway-b", "node-7"][i as usize % 3]])
            .inc();
    }
    TEMPERATURE.set(23);

    // Serve the exposition in 64-byte chunks: the cursor resumes where the last chunk ended.
    let format = match std::env::args().nth(1).as_deref() {
        Some("openmetrics") => Format::OpenMetrics,
        _ => Format::Prometheus,
    };
    let mut uart = std::io::stdout().lock();
    let mut chunk = [0u8; 64];
    let mut cursor = Cursor::new(format);
    loop {
        match REGISTRY.render(&mut cursor, &mut chunk) {
            Ok(0) => break,
            Ok(n) => std::io::Write::write_all(&mut uart, &chunk[..n]).expect("stdout"),
            Err(e) => {
                eprintln!("{e}"); // a line longer than 64 bytes: use a larger chunk
                std::process::exit(1);
            }
        }
    }

    // Health as JSON into a borrowed buffer (stderr, so stdout stays a valid exposition).
    let mut json = [0u8; 128];
    match HEALTH.write_json(&mut json) {
        Ok(n) => eprintln!("{}", std::str::from_utf8(&json[..n]).unwrap_or("?")),
        Err(e) => eprintln!("{e}"),
    }
}
