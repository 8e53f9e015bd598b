//! The streamed exposition allocates nothing once warm: after two scrapes, streaming a whole
//! `/metrics` body (polling every frame; text, OpenMetrics and gzip) and dropping it allocates
//! nothing, counted by a global allocator that counts this thread's allocations. (The response
//! head, its headers and the process-metrics refresh come before the stream and are not counted.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Buf;
use http::{header, HeaderMap, HeaderValue, Method};
use http_body::Body;
use vitals_std::Vitals;

/// Counts the allocations made on a thread while its flag is set.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counting touches only
// const-initialised thread-locals (no allocation, no reentrancy).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn count() {
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        }
    });
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Streams the response to `headers` to its end into `out`; the allocations made while streaming
/// and dropping the body.
fn scrape(vitals: &Vitals, headers: &HeaderMap, out: &mut Vec<u8>) -> u64 {
    let response = vitals.exposition().respond(&Method::GET, headers);
    let mut body = response.into_body();
    out.clear();
    let mut cx = Context::from_waker(Waker::noop());
    COUNT.with(|c| c.set(0));
    COUNTING.with(|on| on.set(true));
    loop {
        match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(Some(frame)) => {
                let frame = frame.expect("frame");
                if let Ok(mut data) = frame.into_data() {
                    while data.has_remaining() {
                        let chunk = data.chunk();
                        // `out` has its capacity from the start.
                        out.extend_from_slice(chunk);
                        let n = chunk.len();
                        data.advance(n);
                    }
                }
            }
            Poll::Ready(None) => break,
            Poll::Pending => panic!("the exposition body is never pending"),
        }
    }
    drop(body);
    COUNTING.with(|on| on.set(false));
    COUNT.with(|c| c.get())
}

#[test]
fn a_warm_streamed_scrape_allocates_nothing() {
    let vitals = Vitals::builder().build().expect("vitals");
    let mut gzip = HeaderMap::new();
    gzip.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    let mut openmetrics = HeaderMap::new();
    openmetrics.insert(
        header::ACCEPT,
        HeaderValue::from_static("application/openmetrics-text;version=1.0.0"),
    );
    let mut out = Vec::with_capacity(1 << 20);
    for (what, headers) in [
        ("text", HeaderMap::new()),
        ("openmetrics", openmetrics),
        ("gzip", gzip),
    ] {
        for _ in 0..2 {
            scrape(&vitals, &headers, &mut out);
        }
        let allocations = scrape(&vitals, &headers, &mut out);
        assert!(!out.is_empty(), "{what}: empty body");
        assert_eq!(allocations, 0, "{what}: a warm streamed scrape allocated");
    }
}
