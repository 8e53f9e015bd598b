//! Exemplars (feature `exemplars`): rendered on OpenMetrics `_bucket` lines only, exactly, in any
//! buffer size; never in Prometheus text; the latest per bucket; never torn under concurrent
//! writers (threads here; every interleaving in `loom_exemplars.rs`). Runs under miri (step 30).

mod common;
#[path = "common/fixture.rs"]
mod fixture;

use proptest::prelude::*;
use vitals_core::{
    Bounds, Entry, Exemplar, Format, Histogram, HistogramCells, Registry, StrFamily,
};

const TRACE: [u8; 16] = [
    0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36,
];
const SPAN: [u8; 8] = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];

#[test]
fn exemplars_render_on_openmetrics_bucket_lines_only() {
    let h: Histogram<2> = Histogram::new(Bounds::millis([5, 250]));
    let family: StrFamily<HistogramCells<2>, 1, 4, 16> =
        StrFamily::with_shared(["tool"], Bounds::millis([5, 250]));
    h.observe(1);
    h.observe_with_exemplar(3, &Exemplar::new(TRACE, SPAN).at_millis(1_764_640_000_123));
    h.observe_with_exemplar(9_000, &Exemplar::new([0xff; 16], [1; 8]));
    family.labels(["search"]).observe_duration_with_exemplar(
        core::time::Duration::from_micros(7_500),
        &Exemplar::new([0x11; 16], [0x22; 8]).at_millis(1_000),
    );
    let entries = [
        Entry::new("latency_seconds", "Latency.", &h).unit("seconds"),
        Entry::new("tool_seconds", "By tool.", &family),
    ];
    let registry = Registry::new(&entries);
    let om = r##"# HELP latency_seconds Latency.
# TYPE latency_seconds histogram
# UNIT latency_seconds seconds
latency_seconds_bucket{le="0.005"} 2 # {trace_id="4bf92f3577b34da6a3ce929d0e0e4736",span_id="00f067aa0ba902b7"} 0.003 1764640000.123
latency_seconds_bucket{le="0.25"} 2
latency_seconds_bucket{le="+Inf"} 3 # {trace_id="ffffffffffffffffffffffffffffffff",span_id="0101010101010101"} 9
latency_seconds_sum 9.004
latency_seconds_count 3
# HELP tool_seconds By tool.
# TYPE tool_seconds histogram
tool_seconds_bucket{tool="search",le="0.005"} 0
tool_seconds_bucket{tool="search",le="0.25"} 1 # {trace_id="11111111111111111111111111111111",span_id="2222222222222222"} 0.007 1
tool_seconds_bucket{tool="search",le="+Inf"} 1
tool_seconds_sum{tool="search"} 0.007
tool_seconds_count{tool="search"} 1
# HELP vitals_label_overflow Updates to full families.
# TYPE vitals_label_overflow counter
vitals_label_overflow_total{family="tool_seconds"} 0
# EOF
"##;
    let longest = om.lines().map(|l| l.len() + 1).max().unwrap();
    for size in (longest..=om.len() + 1).step_by(common::buffer_size_step()) {
        let out = fixture::render_all(&registry, Format::OpenMetrics, size);
        assert_eq!(std::str::from_utf8(&out).unwrap(), om, "buffer size {size}");
    }
    let fams = common::parse(om.as_bytes(), true).unwrap();
    let with: Vec<_> = fams
        .iter()
        .flat_map(|f| &f.samples)
        .filter_map(|s| s.exemplar.as_ref())
        .collect();
    assert_eq!(with.len(), 3);

    // Prometheus text: the same histograms, no exemplar anywhere.
    let plain = fixture::render_all(&registry, Format::Prometheus, 4096);
    let plain = std::str::from_utf8(&plain).unwrap();
    assert!(!plain.contains(" # {"), "{plain}");
    assert!(
        plain.contains("latency_seconds_bucket{le=\"0.005\"} 2\n"),
        "{plain}"
    );
    common::parse(plain.as_bytes(), false).unwrap();
}

#[test]
fn a_line_with_an_exemplar_too_long_for_the_buffer_is_reported_with_its_size() {
    let h: Histogram<1> = Histogram::new(Bounds::units([10]));
    h.observe_with_exemplar(1, &Exemplar::new(TRACE, SPAN));
    let entries = [Entry::new("h", "", &h)];
    let registry = Registry::new(&entries);
    let line = "h_bucket{le=\"10\"} 1 # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\",span_id=\"00f067aa0ba902b7\"} 1\n";
    let mut cursor = vitals_core::Cursor::new(Format::OpenMetrics);
    let mut buf = vec![0u8; line.len() - 1];
    assert_eq!(
        registry.render(&mut cursor, &mut buf),
        Ok("# TYPE h histogram\n".len())
    );
    assert_eq!(
        registry.render(&mut cursor, &mut buf),
        Err(vitals_core::RenderError::BufferTooSmall { needed: line.len() })
    );
}

#[test]
fn concurrent_writers_never_leave_a_torn_exemplar() {
    static H: Histogram<1> = Histogram::new(Bounds::units([1_000]));
    let rounds: u64 = if cfg!(miri) { 20 } else { 20_000 };
    let torn = |e: &Exemplar, v: u64| {
        // Writer k observes value k with ids made of k and the timestamp k.
        let k = v as u8;
        e.trace_id() != [k; 16] || e.span_id() != [k; 8] || e.timestamp_millis() != Some(v)
    };
    std::thread::scope(|s| {
        for k in 1..=3u64 {
            s.spawn(move || {
                for _ in 0..rounds {
                    H.observe_with_exemplar(
                        k,
                        &Exemplar::new([k as u8; 16], [k as u8; 8]).at_millis(k),
                    );
                }
            });
        }
        s.spawn(move || {
            for _ in 0..rounds {
                if let Some((e, v)) = H.cells().exemplar(0) {
                    assert!(!torn(&e, v), "torn: {e:?} with value {v}");
                }
            }
        });
    });
    assert_eq!(H.count(), 3 * rounds);
    let (e, v) = H.cells().exemplar(0).expect("recorded");
    assert!(!torn(&e, v));
    assert_eq!(H.cells().exemplar(1), None, "+Inf saw nothing");
    assert_eq!(H.cells().exemplar(2), None, "no such bucket");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases()))]

    /// Each bucket's exemplar is the last observation that fell in it; rendered, every
    /// exemplar's value lies in its bucket and the output passes the strict checker.
    #[test]
    fn each_bucket_keeps_its_latest_exemplar(
        observations in proptest::collection::vec((0u64..3_000, any::<[u8; 16]>(), any::<[u8; 8]>(), any::<bool>()), 0..40),
        chunk_extra in 0usize..300,
    ) {
        let bounds = Bounds::micros([10, 200, 1_000]);
        let h: Histogram<3> = Histogram::new(bounds);
        let mut latest: [Option<(Exemplar, u64)>; 4] = [None; 4];
        for &(v, trace, span, with) in &observations {
            if with {
                let e = Exemplar::new(trace, span).at_millis(1_700_000_000_000 + v);
                h.observe_with_exemplar(v, &e);
                latest[bounds.bucket(v)] = Some((e, v));
            } else {
                h.observe(v);
            }
        }
        for (i, want) in latest.iter().enumerate() {
            prop_assert_eq!(h.cells().exemplar(i), *want);
        }
        let entries = [Entry::new("d_seconds", "D.", &h)];
        let registry = Registry::new(&entries);
        let out = fixture::render_all(&registry, Format::OpenMetrics, 200 + chunk_extra);
        let fams = common::parse(&out, true).map_err(TestCaseError::fail)?;
        let rendered = fams[0].samples.iter().filter(|s| s.exemplar.is_some()).count();
        prop_assert_eq!(rendered, latest.iter().flatten().count());
        let plain = fixture::render_all(&registry, Format::Prometheus, 200 + chunk_extra);
        common::parse(&plain, false).map_err(TestCaseError::fail)?;
    }
}
