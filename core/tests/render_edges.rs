//! What the render promises at its edges, on arbitrary input: a full label table (new label sets
//! go to the counted overflow series), buffers shorter than the longest line (`BufferTooSmall`
//! with the exact size, nothing lost on retry), and histograms that change between two `render`
//! calls of one pass (buckets stay cumulative, `+Inf` equals `_count`).
//!
//! Not under miri: a property test costs minutes there (breaker_matches_reference_model: 471 s at
//! 4 cases on the shared machine), and these paths (BufferTooSmall and its retry, the overflow
//! series, histogram rendering) already run under miri in golden.rs and properties.rs.
#![cfg(not(miri))]

mod common;
#[path = "common/fixture.rs"]
mod fixture;

use proptest::prelude::*;
use std::collections::BTreeMap;
use vitals_core::{
    Bounds, Counter, Cursor, Entry, Format, HistogramCells, Registry, RenderError, StrFamily,
};

/// Renders `registry` with a `small`-byte buffer; a line that does not fit is retried with a
/// buffer of exactly the size the error names. The output, and how many retries there were.
fn render_small(
    registry: &Registry,
    format: Format,
    small: usize,
) -> Result<(Vec<u8>, usize), TestCaseError> {
    let mut cursor = Cursor::new(format);
    let mut buf = vec![0u8; small];
    let mut out = Vec::new();
    let mut retries = 0;
    loop {
        match registry.render(&mut cursor, &mut buf) {
            Ok(0) => return Ok((out, retries)),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(RenderError::BufferTooSmall { needed }) => {
                prop_assert!(needed > small, "needed {} with {} bytes", needed, small);
                // The same call again (the cursor did not move) says the same.
                prop_assert_eq!(
                    registry.render(&mut cursor, &mut buf),
                    Err(RenderError::BufferTooSmall { needed })
                );
                let mut exact = vec![0u8; needed];
                let n = registry
                    .render(&mut cursor, &mut exact)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(n, needed, "the line is exactly the size named");
                out.extend_from_slice(&exact[..n]);
                retries += 1;
            }
            // `RenderError` is `#[non_exhaustive]`: an error a later core adds fails the case.
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        }
    }
}

fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z]{1,6}",
        1 => "[\\\\\"\n a-z]{0,10}",
        1 => "[a-z]{49,60}", // longer than a slot: always the overflow series
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(), failure_persistence: None, ..ProptestConfig::default() })]

    /// 16 slots, up to 40 label values: the first 16 distinct (that fit a slot) keep their
    /// series, every other update goes to the overflow series and is counted; the exposition
    /// parses and is the same with a buffer shorter than its longest line.
    #[test]
    fn a_full_label_table_routes_the_rest_to_overflow(
        incs in proptest::collection::vec((label_value(), 1u64..100), 0..40),
        small in 8usize..64,
        openmetrics in any::<bool>(),
    ) {
        let calls: StrFamily<Counter, 1, 16, 48> = StrFamily::new(["tool"]);
        let entries = [Entry::new("calls", "Calls.", &calls)];
        let registry = Registry::new(&entries);
        let mut kept: BTreeMap<String, u64> = BTreeMap::new();
        let mut overflow = 0u64;
        for (v, n) in &incs {
            calls.labels([v.as_str()]).inc_by(*n);
            if v.len() <= 48 && (kept.contains_key(v) || kept.len() < 16) {
                *kept.entry(v.clone()).or_default() += n;
            } else {
                overflow += n;
            }
        }
        let format = if openmetrics { Format::OpenMetrics } else { Format::Prometheus };
        let whole = fixture::render_all(&registry, format, 1 << 16);
        let fams = common::parse(&whole, openmetrics)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{}", String::from_utf8_lossy(&whole))))?;
        let mut got: BTreeMap<String, u64> = BTreeMap::new();
        let mut got_overflow = 0;
        for s in fams.iter().filter(|f| f.name.trim_end_matches("_total") == "calls").flat_map(|f| &f.samples) {
            let v = &s.labels[0].1;
            if v == "__overflow__" { got_overflow = s.value as u64; continue; }
            prop_assert!(got.insert(v.clone(), s.value as u64).is_none(), "series {} twice", v);
        }
        prop_assert_eq!(got, kept);
        prop_assert_eq!(got_overflow, overflow);
        // The overflow counter family counts the dropped updates of `calls`.
        let dropped: f64 = fams.iter()
            .filter(|f| f.name.starts_with("vitals_label_overflow"))
            .flat_map(|f| &f.samples)
            .filter(|s| s.labels.iter().any(|(k, v)| k == "family" && v == "calls"))
            .map(|s| s.value)
            .sum();
        let updates_dropped = incs.iter()
            .filter(|(v, _)| v.len() > 48 || !got_keys_contains(&fams, v))
            .count() as f64;
        prop_assert_eq!(dropped, updates_dropped);

        let (chunked, _) = render_small(&registry, format, small)?;
        prop_assert_eq!(chunked, whole);
    }

    /// Buffers from 1 byte up: every line too long for the buffer is refused with its exact
    /// size and rendered on retry; the bytes are those of one big buffer.
    #[test]
    fn a_buffer_shorter_than_a_line_names_its_size_and_loses_nothing(
        small in 1usize..96,
        openmetrics in any::<bool>(),
    ) {
        fixture::fill();
        let format = if openmetrics { Format::OpenMetrics } else { Format::Prometheus };
        let whole = fixture::render_all(&fixture::REGISTRY, format, 1 << 16);
        let longest = whole.split(|&b| b == b'\n').map(|l| l.len() + 1).max().unwrap();
        let (out, retries) = render_small(&fixture::REGISTRY, format, small)?;
        prop_assert_eq!(&out, &whole);
        prop_assert!(small >= longest || retries > 0);
    }

    /// Observations land between the chunks of one render: every series still has cumulative
    /// buckets and `+Inf` equal to its `_count` (the strict checker), in both formats.
    #[test]
    fn histograms_changing_between_chunks_stay_cumulative(
        before in proptest::collection::vec((0usize..3, 0u64..2_000), 0..30),
        during in proptest::collection::vec(proptest::collection::vec((0usize..3, 0u64..2_000), 0..6), 1..40),
        chunk in 96usize..240,
        openmetrics in any::<bool>(),
    ) {
        let h: StrFamily<HistogramCells<3>, 1, 3, 8> =
            StrFamily::with_shared(["route"], Bounds::millis([10, 100, 1_000]));
        let entries = [Entry::new("latency_seconds", "Latency.", &h).unit("seconds")];
        let registry = Registry::new(&entries);
        let routes = ["a", "b", "c"];
        for (r, v) in &before { h.labels([routes[*r]]).observe(*v); }
        let format = if openmetrics { Format::OpenMetrics } else { Format::Prometheus };
        let mut cursor = Cursor::new(format);
        let mut buf = vec![0u8; chunk];
        let mut out = Vec::new();
        let mut batches = during.iter();
        loop {
            let n = registry.render(&mut cursor, &mut buf).map_err(|e| TestCaseError::fail(e.to_string()))?;
            if n == 0 { break; }
            out.extend_from_slice(&buf[..n]);
            for (r, v) in batches.next().into_iter().flatten() { h.labels([routes[*r]]).observe(*v); }
        }
        common::parse(&out, openmetrics)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{}", String::from_utf8_lossy(&out))))?;
    }
}

/// Whether label value `v` has a series of its own in `calls`.
fn got_keys_contains(fams: &[common::Family], v: &str) -> bool {
    fams.iter()
        .filter(|f| f.name.trim_end_matches("_total") == "calls")
        .flat_map(|f| &f.samples)
        .any(|s| s.labels[0].1 == v)
}
