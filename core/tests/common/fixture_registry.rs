//! The golden fixture registry: every metric kind and hostile label values. One definition for
//! the host golden and property tests (through `fixture.rs`) and the on-target render test
//! (`embedded/ontarget/tests/render.rs`), so host and chip render the same registry against the
//! same golden texts (`core/tests/golden/`). `no_std`-friendly: statics and atomics only.
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

/// Sets the fixture's values. Counters and the histogram add: call it once per process.
pub fn set_values() {
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
}
