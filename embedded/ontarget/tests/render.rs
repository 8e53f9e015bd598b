//! Rendering on the chip, in small chunks, in both formats: the registry and the expected text are
//! those of the core's host golden test (core/tests/golden.rs), so passing here proves the chip
//! produces the same bytes as the host: escaping, `+Inf`/`-Inf`/`NaN` (soft-float), cumulative
//! buckets, the overflow series and the overflow counter family.
#![no_std]
#![no_main]

use vitals_core::{Cursor, Format, Registry, RenderError};
use vitals_ontarget::{check, check_eq, show_difference, tests, Collected};

// The host golden tests' registry, the same file (core/tests/common/fixture_registry.rs).
#[path = "../../../core/tests/common/fixture_registry.rs"]
mod fixture;
use fixture::REGISTRY;

// The host golden output, byte for byte (core/tests/golden/).
const PROMETHEUS: &str = include_str!("../../../core/tests/golden/fixture.prom");

// The host golden output, byte for byte (core/tests/golden/).
const OPENMETRICS: &str = include_str!("../../../core/tests/golden/fixture.om");

tests!(
    prometheus_in_64_byte_chunks,
    openmetrics_in_64_byte_chunks,
    every_chunk_size_gives_the_same_bytes,
    a_line_too_long_says_what_it_needs,
    finished_cursor_and_empty_registry,
);

fn fill() {
    static DONE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    // Plain load/store: this binary is single-threaded (and thumbv6m has no atomic swap).
    if DONE.load(core::sync::atomic::Ordering::Relaxed) {
        return;
    }
    DONE.store(true, core::sync::atomic::Ordering::Relaxed);
    fixture::set_values();
}

/// Renders everything with `chunk`-byte buffers; every chunk must end on a line boundary.
/// A line longer than the chunk is retried with a buffer of exactly the size the error names.
fn render_all(
    registry: &Registry,
    format: Format,
    chunk: usize,
    out: &mut Collected<2048>,
) -> Result<usize, ()> {
    let mut cursor = Cursor::new(format);
    let mut buf = [0u8; 256];
    let mut too_small = 0;
    out.clear();
    loop {
        match registry.render(&mut cursor, &mut buf[..chunk]) {
            Ok(0) => {
                check!(cursor.is_done());
                return Ok(too_small);
            }
            Ok(n) => {
                check!(n <= chunk);
                check_eq!(buf[n - 1], b'\n');
                check!(out.push(&buf[..n]));
            }
            Err(RenderError::BufferTooSmall { needed }) => {
                too_small += 1;
                check!(needed > chunk && needed <= buf.len());
                let n = registry
                    .render(&mut cursor, &mut buf[..needed])
                    .map_err(|_| ())?;
                check_eq!(n, needed);
                check!(out.push(&buf[..n]));
            }
            Err(_) => return Err(()),
        }
    }
}

fn compare(got: &str, want: &str) -> Result<(), ()> {
    if got != want {
        show_difference(got, want);
        return Err(());
    }
    Ok(())
}

fn prometheus_in_64_byte_chunks() -> Result<(), ()> {
    fill();
    let mut out = Collected::new();
    // One HELP line (65 bytes with its newline) does not fit in 64: reported, then retried.
    let too_small = render_all(&REGISTRY, Format::Prometheus, 64, &mut out)?;
    compare(out.as_str(), PROMETHEUS)?;
    check_eq!(too_small, 1);
    Ok(())
}

fn openmetrics_in_64_byte_chunks() -> Result<(), ()> {
    fill();
    let mut out = Collected::new();
    let too_small = render_all(&REGISTRY, Format::OpenMetrics, 64, &mut out)?;
    compare(out.as_str(), OPENMETRICS)?;
    check_eq!(too_small, 1);
    Ok(())
}

fn every_chunk_size_gives_the_same_bytes() -> Result<(), ()> {
    fill();
    let mut out = Collected::new();
    for (format, golden) in [
        (Format::Prometheus, PROMETHEUS),
        (Format::OpenMetrics, OPENMETRICS),
    ] {
        let longest = golden.lines().map(|l| l.len() + 1).max().unwrap_or(0);
        for chunk in longest..=256 {
            let too_small = render_all(&REGISTRY, format, chunk, &mut out)?;
            check_eq!(too_small, 0);
            compare(out.as_str(), golden)?;
        }
    }
    Ok(())
}

fn a_line_too_long_says_what_it_needs() -> Result<(), ()> {
    fill();
    let longest = PROMETHEUS.lines().map(|l| l.len() + 1).max().unwrap_or(0);
    let mut cursor = Cursor::new(Format::Prometheus);
    let mut buf = [0u8; 256];
    // Walk up to the long line with a small buffer, then check the error and that nothing is lost.
    let mut out: Collected<2048> = Collected::new();
    loop {
        match REGISTRY.render(&mut cursor, &mut buf[..longest - 1]) {
            Ok(n) => {
                check!(n > 0);
                check!(out.push(&buf[..n]));
            }
            Err(e) => {
                check_eq!(e, RenderError::BufferTooSmall { needed: longest });
                break;
            }
        }
    }
    // An empty buffer makes no progress either, and says the same.
    check_eq!(
        REGISTRY.render(&mut cursor, &mut []),
        Err(RenderError::BufferTooSmall { needed: longest })
    );
    loop {
        let n = REGISTRY.render(&mut cursor, &mut buf).map_err(|_| ())?;
        if n == 0 {
            break;
        }
        check!(out.push(&buf[..n]));
    }
    compare(out.as_str(), PROMETHEUS)
}

fn finished_cursor_and_empty_registry() -> Result<(), ()> {
    fill();
    let mut cursor = Cursor::new(Format::Prometheus);
    let mut buf = [0u8; 1200];
    let n = REGISTRY.render(&mut cursor, &mut buf).map_err(|_| ())?;
    check_eq!(n, PROMETHEUS.len());
    check!(cursor.is_done());
    check_eq!(REGISTRY.render(&mut cursor, &mut buf), Ok(0));
    check_eq!(REGISTRY.render(&mut cursor, &mut []), Ok(0));

    let empty = Registry::new(&[]);
    let mut out = Collected::new();
    render_all(&empty, Format::Prometheus, 16, &mut out)?;
    check_eq!(out.as_str(), "");
    render_all(&empty, Format::OpenMetrics, 16, &mut out)?;
    check_eq!(out.as_str(), "# EOF\n");
    check_eq!(
        Format::Prometheus.content_type(),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    check_eq!(
        Format::negotiate("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
        Format::OpenMetrics
    );
    Ok(())
}
