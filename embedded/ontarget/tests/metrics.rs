//! Counters, gauges, histograms, typed and string-labelled families (overflow included) and info
//! metrics, exercised on the chip: every value lives in a `static`, as in a firmware.
#![no_std]
#![no_main]

use core::time::Duration;
use vitals_core::{
    label_enum, Bounds, Counter, Family, Gauge, Histogram, HistogramCells, LabelSet, Scale,
    StrFamily,
};
use vitals_ontarget::{check, check_eq, tests};

label_enum! {
    /// Which radio.
    pub enum Radio: "radio" { Ble = "ble", LoRa = "lora", Wifi = "wifi" }
}

label_enum! {
    /// Result of an operation.
    pub enum Outcome: "outcome" { Ok = "ok", Error = "error" }
}

tests!(
    counter_counts_and_wraps,
    gauge_goes_up_and_down,
    histogram_buckets_sum_count,
    histogram_bounds_and_durations,
    typed_family_is_dense,
    typed_family_of_pairs_and_histograms,
    str_family_claims_slots_then_overflows,
    str_family_rejects_long_values,
);

fn counter_counts_and_wraps() -> Result<(), ()> {
    static C: Counter = Counter::new();
    check_eq!(C.get(), 0);
    C.inc();
    C.inc_by(41);
    check_eq!(C.get(), 42);
    // 64-bit on a 32-bit chip: carries across the word boundary, wraps at u64::MAX.
    C.inc_by(u32::MAX as u64);
    check_eq!(C.get(), 42 + u32::MAX as u64);
    C.inc_by(u64::MAX - C.get());
    check_eq!(C.get(), u64::MAX);
    C.inc();
    check_eq!(C.get(), 0);
    Ok(())
}

fn gauge_goes_up_and_down() -> Result<(), ()> {
    static G: Gauge = Gauge::new();
    G.set(10);
    G.inc();
    G.dec();
    G.add(-15);
    check_eq!(G.get(), -5);
    G.set(i64::MIN);
    check_eq!(G.get(), i64::MIN);
    G.dec(); // wraps like the hardware does
    check_eq!(G.get(), i64::MAX);
    G.set(-1 << 40);
    G.add(1 << 41);
    check_eq!(G.get(), 1 << 40);
    #[cfg(feature = "float")]
    {
        static F: vitals_core::FloatGauge = vitals_core::FloatGauge::new();
        F.set(1.5);
        F.add(0.25);
        check_eq!(F.get(), 1.75);
        F.set(f64::NAN);
        check!(F.get().is_nan());
    }
    Ok(())
}

fn histogram_buckets_sum_count() -> Result<(), ()> {
    static H: Histogram<3> = Histogram::new(Bounds::micros([500, 1_000, 2_500]));
    for v in [100, 500, 501, 1_000, 2_500, 2_501, u64::MAX / 2] {
        H.observe(v);
    }
    let (buckets, inf) = H.cells().buckets();
    check_eq!(buckets, [2, 2, 1]); // `le` is inclusive
    check_eq!(inf, 2);
    check_eq!(H.count(), 7);
    check_eq!(
        H.sum(),
        100 + 500 + 501 + 1_000 + 2_500 + 2_501 + u64::MAX / 2
    );
    Ok(())
}

fn histogram_bounds_and_durations() -> Result<(), ()> {
    check!(Bounds::try_new([3, 2, 1], Scale::ONE).is_err());
    check!(Bounds::try_new([1, 2, 3], Scale::ONE).is_ok());
    let exp = Bounds::<4>::exponential(1, 10, Scale::MILLI);
    check_eq!(exp.le(), &[1, 10, 100, 1_000]);
    let lin = Bounds::<3>::linear(5, 5, Scale::ONE);
    check_eq!(lin.le(), &[5, 10, 15]);
    check_eq!(lin.bucket(0), 0);
    check_eq!(lin.bucket(11), 2);
    check_eq!(lin.bucket(16), 3);

    static D: Histogram<2> = Histogram::new(Bounds::millis([10, 100]));
    D.observe_duration(Duration::from_micros(9_999)); // 9 ms (truncated)
    D.observe_duration(Duration::from_millis(50));
    D.observe_duration(Duration::from_secs(1));
    check_eq!(D.cells().buckets(), ([1, 1], 1));
    check_eq!(D.sum(), 9 + 50 + 1_000);

    // Cells shared by a caller that keeps its own bounds.
    static CELLS: HistogramCells<2> = HistogramCells::new();
    let b = Bounds::units([1, 2]);
    CELLS.observe(&b, 2);
    CELLS.observe(&b, 3);
    check_eq!(CELLS.count(), 2);
    check_eq!(CELLS.sum(), 5);
    Ok(())
}

fn typed_family_is_dense() -> Result<(), ()> {
    static PACKETS: Family<Radio, Counter, 3> = Family::new();
    PACKETS.labels(Radio::Ble).inc();
    PACKETS.labels(Radio::LoRa).inc_by(2);
    PACKETS.labels(Radio::Ble).inc();
    check_eq!(PACKETS.labels(Radio::Ble).get(), 2);
    check_eq!(PACKETS.labels(Radio::LoRa).get(), 2);
    check_eq!(PACKETS.labels(Radio::Wifi).get(), 0);
    check_eq!(Radio::CARDINALITY, 3);
    check_eq!(Radio::Wifi.index(), 2);
    check_eq!(Radio::value(1, 0), "lora");
    check_eq!(Radio::name(0), "radio");
    Ok(())
}

fn typed_family_of_pairs_and_histograms() -> Result<(), ()> {
    static CALLS: Family<(Radio, Outcome), Counter, 6> = Family::new();
    CALLS.labels((Radio::Wifi, Outcome::Error)).inc();
    CALLS.labels((Radio::Wifi, Outcome::Ok)).inc_by(3);
    check_eq!(CALLS.labels((Radio::Wifi, Outcome::Error)).get(), 1);
    check_eq!(CALLS.labels((Radio::Wifi, Outcome::Ok)).get(), 3);
    check_eq!(CALLS.labels((Radio::Ble, Outcome::Ok)).get(), 0);
    check_eq!((Radio::Wifi, Outcome::Error).index(), 5);
    check_eq!(<(Radio, Outcome)>::value(5, 1), "error");

    static TIMES: Family<Outcome, HistogramCells<2>, 2> =
        Family::histogram(Bounds::micros([100, 1_000]));
    TIMES.labels(Outcome::Ok).observe(50);
    TIMES.labels(Outcome::Ok).observe(5_000);
    TIMES.labels(Outcome::Error).observe(500);
    check_eq!(TIMES.labels(Outcome::Ok).count(), 2);
    check_eq!(TIMES.labels(Outcome::Ok).sum(), 5_050);
    check_eq!(TIMES.labels(Outcome::Error).cells().buckets(), ([0, 1], 0));
    Ok(())
}

fn str_family_claims_slots_then_overflows() -> Result<(), ()> {
    static PEERS: StrFamily<Counter, 1, 3, 16> = StrFamily::new(["peer"]);
    check!(PEERS.is_empty());
    PEERS.labels(["gateway-a"]).inc();
    PEERS.labels(["gateway-b"]).inc_by(2);
    PEERS.labels(["gateway-a"]).inc();
    PEERS.labels(["node-7"]).inc();
    check_eq!(PEERS.len(), 3);
    check_eq!(PEERS.dropped(), 0);
    // Full: a fourth label set goes to the overflow series, counted, never silently dropped.
    PEERS.labels(["intruder"]).inc_by(5);
    PEERS.labels(["another"]).inc();
    check_eq!(PEERS.len(), 3);
    check_eq!(PEERS.dropped(), 2);
    check_eq!(PEERS.overflow_series().get(), 6);
    check!(PEERS.get(["intruder"]).is_none());
    check_eq!(PEERS.get(["gateway-a"]).map(|c| c.get()), Some(2));
    check_eq!(PEERS.get(["gateway-b"]).map(|c| c.get()), Some(2));
    check!(PEERS.try_labels(["yet-another"]).is_err());
    check_eq!(PEERS.dropped(), 2); // try_labels counts nothing: the caller decides
    Ok(())
}

fn str_family_rejects_long_values() -> Result<(), ()> {
    static TOOLS: StrFamily<Counter, 2, 2, 8> = StrFamily::new(["tool", "status"]);
    check!(TOOLS.try_labels(["a-very-long-tool-name", "ok"]).is_err());
    TOOLS.labels(["a-very-long-tool-name", "ok"]).inc();
    check_eq!(TOOLS.dropped(), 1);
    check_eq!(TOOLS.len(), 0);
    TOOLS.labels(["ls", "ok"]).inc();
    TOOLS.labels(["ls", "error"]).inc();
    TOOLS.labels(["ls", "ok"]).inc();
    check_eq!(TOOLS.get(["ls", "ok"]).map(|c| c.get()), Some(2));
    check_eq!(TOOLS.len(), 2);
    Ok(())
}
