//! Property tests: arbitrary label values and observations render to output that the strict checker
//! parses back to the same values, in both formats, whatever the buffer size.

mod common;
#[path = "common/fixture.rs"]
mod fixture;

use proptest::prelude::*;
use std::collections::BTreeMap;
use vitals_core::format::qualities;
use vitals_core::{
    Bounds, Counter, Entry, FloatGauge, Format, Gauge, Histogram, Registry, StrFamily,
};

fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{0,8}",
        "[\\\\\"\n a-zA-Z0-9]{0,12}",
        any::<String>().prop_map(|s| s.chars().take(24).collect()),
    ]
}

/// `Accept` / `Accept-Encoding` headers: well-formed lists with odd spacing, case and qualities,
/// and arbitrary text.
fn accept_header() -> impl Strategy<Value = String> {
    let media = prop_oneof![
        Just("application/openmetrics-text".to_owned()),
        Just("Application/OpenMetrics-Text".to_owned()),
        Just("text/plain".to_owned()),
        Just("text/*".to_owned()),
        Just("*/*".to_owned()),
        Just("gzip".to_owned()),
        "[a-z/*+-]{0,12}",
    ];
    let q = prop_oneof![
        Just(String::new()),
        "[01](\\.[0-9]{0,4})?".prop_map(|q| format!(";q={q}")),
        "[ ;]{0,2}[qQ] ?= ?[0-9.a-z]{0,6}".prop_map(|p| format!(";{p}")),
    ];
    let item = (media, ";version=[0-9.]{0,5}|", q, " {0,2}")
        .prop_map(|(m, v, q, sp)| format!("{sp}{m}{v}{q}{sp}"));
    prop_oneof![
        proptest::collection::vec(item, 0..6).prop_map(|items| items.join(",")),
        any::<String>(),
    ]
}

/// The reference reading of one quality (RFC 9110 `qvalue`), in thousandths; 0 when malformed.
fn reference_q(v: &str) -> u16 {
    let ok = v.len() <= 5
        && match v.split_once('.') {
            None => v == "0" || v == "1",
            Some((i, f)) => {
                f.len() <= 3
                    && f.bytes().all(|b| b.is_ascii_digit())
                    && (i == "0" || (i == "1" && f.bytes().all(|b| b == b'0')))
            }
        };
    if ok {
        (v.parse::<f64>().unwrap_or(0.0) * 1000.0).round() as u16
    } else {
        0
    }
}

fn sample<'a>(fams: &'a [common::Family], name: &str) -> Vec<&'a common::Sample> {
    fams.iter()
        .flat_map(|f| f.samples.iter())
        .filter(|s| s.name == name)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases()))]

    #[test]
    fn values_round_trip(
        incs in proptest::collection::vec((label_value(), 1u64..1000), 0..12),
        observations in proptest::collection::vec(0u64..5_000_000_000, 0..40),
        gauge in any::<i64>(),
        float in any::<f64>(),
        chunk_extra in 0usize..400,
        openmetrics in any::<bool>(),
    ) {
        let calls: StrFamily<Counter, 1, 16, 48> = StrFamily::new(["tool"]);
        let hist: Histogram<5> = Histogram::new(Bounds::exponential(1_000, 10, vitals_core::Scale::MICRO));
        let g = Gauge::new();
        let fg = FloatGauge::new();
        let entries = [
            Entry::new("calls", "Calls.", &calls),
            Entry::new("latency_seconds", "Latency.", &hist).unit("seconds"),
            Entry::new("level", "Level.", &g),
            Entry::new("ratio", "Ratio.", &fg),
        ];
        let registry = Registry::new(&entries);

        let mut expected: BTreeMap<String, u64> = BTreeMap::new();
        let mut overflow = 0u64;
        for (v, n) in &incs {
            calls.labels([v.as_str()]).inc_by(*n);
            if v.len() <= 48 { *expected.entry(v.clone()).or_default() += n } else { overflow += n }
        }
        for &o in &observations { hist.observe(o); }
        g.set(gauge);
        fg.set(float);

        let format = if openmetrics { Format::OpenMetrics } else { Format::Prometheus };
        let whole = fixture::render_all(&registry, format, 1 << 16);
        let fams = common::parse(&whole, openmetrics).map_err(|e| TestCaseError::fail(format!("{e}\n{}", String::from_utf8_lossy(&whole))))?;

        // Same bytes with a smaller buffer.
        let longest = whole.split(|&b| b == b'\n').map(|l| l.len() + 1).max().unwrap();
        let chunked = fixture::render_all(&registry, format, longest + chunk_extra);
        prop_assert_eq!(&chunked, &whole);

        // Counters by label value.
        let mut got: BTreeMap<String, u64> = BTreeMap::new();
        let mut got_overflow = 0;
        for s in sample(&fams, "calls_total") {
            let v = &s.labels[0].1;
            if v == "__overflow__" && s.labels.len() == 1 && !expected.contains_key(v) { got_overflow = s.value as u64; continue; }
            prop_assert!(got.insert(v.clone(), s.value as u64).is_none());
        }
        prop_assert_eq!(got, expected);
        prop_assert_eq!(got_overflow, overflow);

        // Histogram: per-bucket counts and sum.
        let bounds = [1_000u64, 10_000, 100_000, 1_000_000, 10_000_000];
        let buckets = sample(&fams, "latency_seconds_bucket");
        prop_assert_eq!(buckets.len(), 6);
        for (i, b) in buckets.iter().enumerate() {
            let want = observations.iter().filter(|&&o| i == 5 || o <= bounds[i]).count() as f64;
            prop_assert_eq!(b.value, want);
        }
        let sum: u64 = observations.iter().sum();
        let got_sum = sample(&fams, "latency_seconds_sum")[0].value;
        prop_assert!((got_sum - sum as f64 / 1e6).abs() <= 1e-9 * (sum as f64 / 1e6).max(1.0));
        prop_assert_eq!(sample(&fams, "latency_seconds_count")[0].value, observations.len() as f64);

        prop_assert_eq!(sample(&fams, "level")[0].value, gauge as f64);
        let r = sample(&fams, "ratio")[0].value;
        prop_assert!(r == float || (r.is_nan() && float.is_nan()));
    }

    /// Any header, however hostile: one element per comma, trimmed values, qualities as the
    /// RFC reads them (0 when malformed), and OpenMetrics chosen exactly when its best quality
    /// is positive and at least that of any text format. Never a panic.
    #[test]
    fn accept_headers_are_read_like_the_reference(header in accept_header()) {
        let items: Vec<(&str, u16)> = qualities(&header).collect();
        let raw: Vec<&str> = header.split(',').collect();
        prop_assert_eq!(items.len(), raw.len());
        let (mut om, mut text) = (0u16, 0u16);
        for ((value, q), raw) in items.iter().zip(&raw) {
            let mut params = raw.split(';');
            prop_assert_eq!(*value, params.next().unwrap_or("").trim());
            let want = params
                .find_map(|p| p.split_once('=').filter(|(k, _)| k.trim().eq_ignore_ascii_case("q")))
                .map_or(1000, |(_, v)| reference_q(v.trim()));
            prop_assert_eq!(*q, want, "{:?} in {:?}", raw, header);
            let v = value.to_ascii_lowercase();
            if v == "application/openmetrics-text" {
                om = om.max(*q);
            } else if v == "text/plain" || v == "text/*" || v == "*/*" {
                text = text.max(*q);
            }
        }
        let want = if om > 0 && om >= text { Format::OpenMetrics } else { Format::Prometheus };
        prop_assert_eq!(Format::negotiate(&header), want);
    }
}

fn short_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]{0,19}",
        "[\\\\\"\n a-z]{0,10}",
        any::<String>().prop_map(|s| s.chars().take(9).collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases()))]

    /// Several string labels per series (values packed with separators, escapes anywhere, lengths
    /// on both sides of 8-byte words), counter and histogram families side by side: every label
    /// reads back exactly, whatever the buffer size (runs of lines end at any line).
    #[test]
    fn multi_label_values_round_trip(
        sets in proptest::collection::vec((short_value(), short_value(), short_value(), 1u64..1_000_000), 0..10),
        chunk_extra in 0usize..300,
    ) {
        let calls: StrFamily<Counter, 3, 12, 128> = StrFamily::new(["tool", "status", "client"]);
        let times: StrFamily<vitals_core::HistogramCells<2>, 3, 12, 128> = StrFamily::with_shared(
            ["tool", "status", "client"],
            Bounds::micros([1_000, 100_000]),
        );
        let entries = [
            Entry::new("calls", "Calls.", &calls),
            Entry::new("call_duration_seconds", "Time.", &times).unit("seconds"),
        ];
        let registry = Registry::new(&entries);
        let mut expected: BTreeMap<Vec<String>, u64> = BTreeMap::new();
        for (a, b, c, n) in &sets {
            calls.labels([a, b, c]).inc_by(*n);
            times.labels([a, b, c]).observe(*n);
            *expected.entry(vec![a.clone(), b.clone(), c.clone()]).or_default() += n;
        }
        let whole = fixture::render_all(&registry, Format::Prometheus, 1 << 16);
        let fams = common::parse(&whole, false).map_err(|e| TestCaseError::fail(format!("{e}\n{}", String::from_utf8_lossy(&whole))))?;
        let longest = whole.split(|&b| b == b'\n').map(|l| l.len() + 1).max().unwrap();
        prop_assert_eq!(&fixture::render_all(&registry, Format::Prometheus, longest + chunk_extra), &whole);

        let key = |s: &common::Sample| -> Vec<String> {
            ["tool", "status", "client"].iter().map(|n| {
                s.labels.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap_or_default()
            }).collect()
        };
        let mut got: BTreeMap<Vec<String>, u64> = BTreeMap::new();
        for s in sample(&fams, "calls_total") {
            prop_assert_eq!(s.labels.len(), 3);
            prop_assert!(got.insert(key(s), s.value as u64).is_none());
        }
        prop_assert_eq!(&got, &expected);
        let mut sums: BTreeMap<Vec<String>, u64> = BTreeMap::new();
        for s in sample(&fams, "call_duration_seconds_sum") {
            prop_assert!(sums.insert(key(s), (s.value * 1e6).round() as u64).is_none());
        }
        prop_assert_eq!(&sums, &expected);
        prop_assert_eq!(sample(&fams, "call_duration_seconds_bucket").len(), 3 * expected.len());
    }
}
