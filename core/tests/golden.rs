//! Golden output for both formats: escaping of `\`, `"` and newline in HELP and label values;
//! `+Inf`/`-Inf`/`NaN`; cumulative buckets with `+Inf` = `_count`; overflow made visible; and the
//! same bytes for every buffer size.

mod common;
#[path = "common/fixture.rs"]
mod fixture;

use vitals_core::{Cursor, Format, RenderError};

const PROMETHEUS: &str = include_str!("golden/fixture.prom");

const OPENMETRICS: &str = include_str!("golden/fixture.om");

#[test]
fn prometheus_text_is_exact() {
    fixture::fill();
    let out = fixture::render_all(&fixture::REGISTRY, Format::Prometheus, 4096);
    assert_eq!(std::str::from_utf8(&out).unwrap(), PROMETHEUS);
    common::parse(&out, false).unwrap();
}

#[test]
fn openmetrics_is_exact() {
    fixture::fill();
    let out = fixture::render_all(&fixture::REGISTRY, Format::OpenMetrics, 4096);
    assert_eq!(std::str::from_utf8(&out).unwrap(), OPENMETRICS);
    common::parse(&out, true).unwrap();
}

#[test]
fn every_buffer_size_gives_the_same_bytes() {
    fixture::fill();
    for (format, golden) in [
        (Format::Prometheus, PROMETHEUS),
        (Format::OpenMetrics, OPENMETRICS),
    ] {
        let longest = golden.lines().map(|l| l.len() + 1).max().unwrap();
        // Every size from the longest line to the whole output (a sample of them under miri).
        for size in (longest..=golden.len() + 1).step_by(common::buffer_size_step()) {
            let out = fixture::render_all(&fixture::REGISTRY, format, size);
            assert_eq!(
                std::str::from_utf8(&out).unwrap(),
                golden,
                "buffer size {size}"
            );
        }
    }
}

#[test]
fn a_line_too_long_says_what_it_needs_and_loses_nothing() {
    fixture::fill();
    let longest = PROMETHEUS.lines().map(|l| l.len() + 1).max().unwrap();
    let mut cursor = Cursor::new(Format::Prometheus);
    let mut small = vec![0u8; longest - 1];
    let mut big = vec![0u8; longest];
    let mut out = Vec::new();
    let mut errors = 0;
    loop {
        match fixture::REGISTRY.render(&mut cursor, &mut small) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&small[..n]),
            Err(RenderError::BufferTooSmall { needed }) => {
                errors += 1;
                assert_eq!(needed, longest);
                // Retrying with a large enough buffer continues exactly where it stopped.
                let n = fixture::REGISTRY
                    .render(&mut cursor, &mut big[..needed])
                    .unwrap();
                assert_eq!(n, needed);
                out.extend_from_slice(&big[..n]);
            }
            Err(e) => panic!("unexpected render error: {e}"),
        }
    }
    assert_eq!(errors, 1);
    assert_eq!(std::str::from_utf8(&out).unwrap(), PROMETHEUS);
    assert_eq!(
        RenderError::BufferTooSmall { needed: 7 }.to_string(),
        "render buffer too small: the next line needs 7 bytes"
    );
}

#[test]
fn empty_buffer_and_finished_cursor() {
    fixture::fill();
    let mut cursor = Cursor::new(Format::Prometheus);
    assert!(matches!(
        fixture::REGISTRY.render(&mut cursor, &mut []),
        Err(RenderError::BufferTooSmall { needed }) if needed > 0
    ));
    let mut buf = [0u8; 8192];
    assert!(fixture::REGISTRY.render(&mut cursor, &mut buf).unwrap() > 0);
    assert!(cursor.is_done());
    assert_eq!(fixture::REGISTRY.render(&mut cursor, &mut buf), Ok(0));
    assert_eq!(fixture::REGISTRY.render(&mut cursor, &mut []), Ok(0));
}

#[test]
fn empty_registry() {
    let r = vitals_core::Registry::new(&[]);
    assert_eq!(fixture::render_all(&r, Format::Prometheus, 16), b"");
    assert_eq!(fixture::render_all(&r, Format::OpenMetrics, 16), b"# EOF\n");
}

#[test]
fn checker_catches_what_promtool_misses() {
    let no_inf = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n";
    assert!(common::parse(no_inf.as_bytes(), false)
        .unwrap_err()
        .contains("+Inf"));
    let not_cumulative =
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n";
    assert!(common::parse(not_cumulative.as_bytes(), false)
        .unwrap_err()
        .contains("cumulative"));
    let dup = "# TYPE c counter\nc{a=\"1\"} 1\nc{a=\"1\"} 2\n";
    assert!(common::parse(dup.as_bytes(), false)
        .unwrap_err()
        .contains("duplicate"));
    let bad_escape = "# TYPE c counter\nc{a=\"\\x\"} 1\n";
    assert!(common::parse(bad_escape.as_bytes(), false).is_err());
}

vitals_core::label_enum! {
    /// Route.
    pub enum Route: "route" { Home = "/", Api = "/api" }
}

#[test]
fn histogram_families_repeat_labels_and_bounds_exactly() {
    use vitals_core::{Bounds, Entry, Family, HistogramCells, Registry, StrFamily};
    let typed: Family<Route, HistogramCells<2>, 2> = Family::histogram(Bounds::millis([5, 250]));
    let named: StrFamily<HistogramCells<2>, 2, 4, 32> =
        StrFamily::with_shared(["tool", "q"], Bounds::millis([5, 250]));
    typed.labels(Route::Home).observe(3);
    typed.labels(Route::Api).observe(300);
    named.labels(["say \"hi\"", "a\\b"]).observe(100);
    let entries = [
        Entry::new("route_seconds", "By route.", &typed),
        Entry::new("tool_seconds", "By tool.", &named),
    ];
    let registry = Registry::new(&entries);
    let golden = r##"# HELP route_seconds By route.
# TYPE route_seconds histogram
route_seconds_bucket{route="/",le="0.005"} 1
route_seconds_bucket{route="/",le="0.25"} 1
route_seconds_bucket{route="/",le="+Inf"} 1
route_seconds_sum{route="/"} 0.003
route_seconds_count{route="/"} 1
route_seconds_bucket{route="/api",le="0.005"} 0
route_seconds_bucket{route="/api",le="0.25"} 0
route_seconds_bucket{route="/api",le="+Inf"} 1
route_seconds_sum{route="/api"} 0.3
route_seconds_count{route="/api"} 1
# HELP tool_seconds By tool.
# TYPE tool_seconds histogram
tool_seconds_bucket{tool="say \"hi\"",q="a\\b",le="0.005"} 0
tool_seconds_bucket{tool="say \"hi\"",q="a\\b",le="0.25"} 1
tool_seconds_bucket{tool="say \"hi\"",q="a\\b",le="+Inf"} 1
tool_seconds_sum{tool="say \"hi\"",q="a\\b"} 0.1
tool_seconds_count{tool="say \"hi\"",q="a\\b"} 1
# HELP vitals_label_overflow_total Updates to full families.
# TYPE vitals_label_overflow_total counter
vitals_label_overflow_total{family="tool_seconds"} 0
"##;
    let longest = golden.lines().map(|l| l.len() + 1).max().unwrap();
    for size in (longest..=golden.len() + 1).step_by(common::buffer_size_step()) {
        let out = fixture::render_all(&registry, Format::Prometheus, size);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            golden,
            "buffer size {size}"
        );
    }
    common::parse(golden.as_bytes(), false).unwrap();
}

#[test]
fn checker_accepts_valid_exemplars_and_rejects_malformed_ones() {
    let valid = "# TYPE h histogram\n\
        h_bucket{le=\"1\"} 1 # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\",span_id=\"00f067aa0ba902b7\"} 0.5 1764640000.123\n\
        h_bucket{le=\"2\"} 1\n\
        h_bucket{le=\"+Inf\"} 2 # {trace_id=\"a\"} 7\n\
        h_sum 7.5\nh_count 2\n\
        # TYPE c counter\nc_total 3 # {trace_id=\"b\"} 1\n# EOF\n";
    let fams = common::parse(valid.as_bytes(), true).unwrap();
    let e = fams[0].samples[0].exemplar.as_ref().unwrap();
    assert_eq!(
        e.labels,
        [
            ("trace_id".into(), "4bf92f3577b34da6a3ce929d0e0e4736".into()),
            ("span_id".into(), "00f067aa0ba902b7".into())
        ]
    );
    assert_eq!((e.value, e.timestamp), (0.5, Some(1764640000.123)));
    assert_eq!(fams[0].samples[1].exemplar, None);
    assert_eq!(
        fams[1].samples[0].exemplar.as_ref().unwrap().timestamp,
        None
    );

    // Prometheus text never carries exemplars.
    let plain = valid.replace("c_total", "c").replace("# EOF\n", "");
    assert!(common::parse(plain.as_bytes(), false)
        .unwrap_err()
        .contains("exemplar in Prometheus text"));

    let long = "x".repeat(121);
    for (bad, why) in [
        // Only a counter's _total and a histogram's _bucket may carry one.
        ("h_sum 7.5", "h_sum 7.5 # {a=\"b\"} 1"),
        ("h_count 2", "h_count 2 # {a=\"b\"} 1"),
        // The value must fall in its bucket: (previous le, le].
        (
            "h_bucket{le=\"2\"} 1\n",
            "h_bucket{le=\"2\"} 1 # {a=\"b\"} 0.5\n",
        ),
        (
            "h_bucket{le=\"2\"} 1\n",
            "h_bucket{le=\"2\"} 1 # {a=\"b\"} 2.5\n",
        ),
        // Over 128 characters of label names and values.
        (
            "c_total 3 # {trace_id=\"b\"} 1",
            &format!("c_total 3 # {{trace_id=\"{long}\"}} 1"),
        ),
        // Malformed: no value, unquoted value, no braces, junk, repeated label, bad value.
        (
            "c_total 3 # {trace_id=\"b\"} 1",
            "c_total 3 # {trace_id=\"b\"}",
        ),
        (
            "c_total 3 # {trace_id=\"b\"} 1",
            "c_total 3 # {trace_id=b} 1",
        ),
        (
            "c_total 3 # {trace_id=\"b\"} 1",
            "c_total 3 # trace_id=\"b\" 1",
        ),
        (
            "c_total 3 # {trace_id=\"b\"} 1",
            "c_total 3 # {trace_id=\"b\"} 1 2 3",
        ),
        (
            "c_total 3 # {trace_id=\"b\"} 1",
            "c_total 3 # {a=\"b\",a=\"c\"} 1",
        ),
        (
            "c_total 3 # {trace_id=\"b\"} 1",
            "c_total 3 # {trace_id=\"b\"} one",
        ),
        (
            "c_total 3 # {trace_id=\"b\"} 1",
            "c_total 3 # {trace_id=\"b\"} 1 +Inf",
        ),
        (
            "c_total 3 # {trace_id=\"b\"} 1",
            "c_total 3 #{trace_id=\"b\"} 1",
        ),
    ] {
        assert!(valid.contains(bad), "{bad}");
        let text = valid.replacen(bad, why, 1);
        assert!(
            common::parse(text.as_bytes(), true).is_err(),
            "accepted:\n{text}"
        );
    }
    // 128 characters exactly is allowed.
    let at_limit = format!("c_total 3 # {{trace_id=\"{}\"}} 1", "x".repeat(120));
    let text = valid.replacen("c_total 3 # {trace_id=\"b\"} 1", &at_limit, 1);
    common::parse(text.as_bytes(), true).unwrap();
    // A gauge may not carry one.
    let gauge = "# TYPE g gauge\ng 1 # {a=\"b\"} 1\n# EOF\n";
    assert!(common::parse(gauge.as_bytes(), true)
        .unwrap_err()
        .contains("only a counter"));
}
