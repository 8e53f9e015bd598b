//! A registry with every metric kind and hostile label values, shared by the golden and property tests.
#![allow(dead_code)]

use vitals_core::{
    label_enum, Bounds, Counter, Entry, Family, FloatGauge, Gauge, Histogram, Info, Registry,
    StrFamily,
};

label_enum! {
    /// Which special float.
    pub enum Which: "which" { Nan = "nan", PosInf = "pinf", NegInf = "ninf" }
}

pub static REQUESTS: Counter = Counter::new();
pub static TEMPERATURE: Gauge = Gauge::new();
pub static RATIO: Family<Which, FloatGauge, 3> = Family::new();
pub static LATENCY: Histogram<3> = Histogram::new(Bounds::micros([500, 1_000, 2_500]));
pub static TOOL_CALLS: StrFamily<Counter, 2, 2, 32> = StrFamily::new(["tool", "status"]);
pub static BUILD: Info<1> = Info::new(["version"], ["1.0\n\"x\""]);

pub static REGISTRY: Registry = Registry::new(&[
    Entry::new("requests_total", "Requests served.", &REQUESTS),
    Entry::new(
        "temperature_millicelsius",
        "Board temperature.",
        &TEMPERATURE,
    )
    .unit("millicelsius"),
    Entry::new(
        "ratio",
        "A ratio with \"quotes\", a back\\slash and a\nnewline.",
        &RATIO,
    ),
    Entry::new("latency_seconds", "Request latency.", &LATENCY).unit("seconds"),
    Entry::new("tool_calls", "Tool calls.", &TOOL_CALLS),
    Entry::new("build", "Build information.", &BUILD),
]);

/// Sets the fixture's values (idempotent: absolute values only).
pub fn fill() {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        REQUESTS.inc_by(3);
        TEMPERATURE.set(-1500);
        RATIO.labels(Which::Nan).set(f64::NAN);
        RATIO.labels(Which::PosInf).set(f64::INFINITY);
        RATIO.labels(Which::NegInf).set(f64::NEG_INFINITY);
        for v in [100, 700, 700, 3000] {
            LATENCY.observe(v);
        }
        TOOL_CALLS.labels(["a\\b", "ok"]).inc();
        TOOL_CALLS.labels(["say \"hi\"\n", "error"]).inc_by(2);
        TOOL_CALLS.labels(["third", "ok"]).inc_by(5);
    });
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
