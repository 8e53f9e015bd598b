//! Two threads at once (this machine has two cores): on one counter, on one histogram, and on one
//! labelled family (string labels; each thread updates its own existing series, as two requests
//! for different tools would). A unit is one update on one thread.

use crate::data::{self, OBS};
use crate::hot::BOUNDS;
use crate::{Visitor, VITALS};
use vitals_core::{Counter, Histogram, StrFamily};

/// Group names.
pub const COUNTER: &str = "contended_counter";
/// One histogram.
pub const HISTOGRAM: &str = "contended_histogram";
/// One family.
pub const FAMILY: &str = "contended_family";

static V_COUNTER: Counter = Counter::new();
static V_HISTOGRAM: Histogram<10> = Histogram::new(BOUNDS);
static V_FAMILY: StrFamily<Counter, 2, 32, 16> = StrFamily::new(["method", "status"]);

/// Observation for thread `t` (cheap, stateless, same for every peer).
#[inline]
fn obs_index(t: usize) -> usize {
    use std::cell::Cell;
    thread_local!(static I: Cell<usize> = const { Cell::new(0) });
    I.with(|i| {
        let n = (i.get() + 1 + t) & (OBS - 1);
        i.set(n);
        n
    })
}

/// Registers the contended workloads.
pub fn visit<V: Visitor>(v: &mut V) {
    v.contended(COUNTER, crate::BASELINE, || {
        let a: &'static std::sync::atomic::AtomicU64 = Box::leak(Box::default());
        move |_| {
            a.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    v.contended(COUNTER, VITALS, || |_| V_COUNTER.inc());
    v.contended(COUNTER, "prometheus", || {
        let c = prometheus::IntCounter::new("c", "help").unwrap();
        move |_| c.inc()
    });
    v.contended(COUNTER, "prometheus-client", || {
        let c: prometheus_client::metrics::counter::Counter = Default::default();
        move |_| {
            c.inc();
        }
    });
    v.contended(COUNTER, "metrics", || {
        data::metrics_handle();
        let c = metrics::counter!("bench_contended_counter");
        move |_| c.increment(1)
    });
    v.contended(COUNTER, "measured", || {
        let c = measured::Counter::new();
        move |_| c.inc()
    });
    v.contended(COUNTER, "fastmetrics", || {
        let c = <fastmetrics::metrics::counter::Counter>::default();
        move |_| c.inc()
    });

    v.contended(HISTOGRAM, VITALS, || {
        let values = data::observations_us();
        move |t| V_HISTOGRAM.observe(values[obs_index(t)])
    });
    v.contended(HISTOGRAM, "prometheus", || {
        let values = data::observations_s();
        let h = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new("h", "help").buckets(data::bounds_s()),
        )
        .unwrap();
        move |t| h.observe(values[obs_index(t)])
    });
    v.contended(HISTOGRAM, "prometheus-client", || {
        let values = data::observations_s();
        let h = prometheus_client::metrics::histogram::Histogram::new(data::bounds_s());
        move |t| h.observe(values[obs_index(t)])
    });
    v.contended(HISTOGRAM, "metrics", || {
        let values = data::observations_s();
        let handle = data::metrics_handle();
        let h = metrics::histogram!("bench_contended_histogram");
        std::thread::spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_millis(50));
            handle.run_upkeep();
        });
        move |t| h.record(values[obs_index(t)])
    });
    v.contended(HISTOGRAM, "measured", || {
        let values = data::observations_s();
        let h = measured::Histogram::<10>::with_metadata(
            measured::metric::histogram::Thresholds::exponential_buckets(0.005, 2.0),
        );
        move |t| h.get_metric().observe(values[obs_index(t)])
    });
    v.contended(HISTOGRAM, "fastmetrics", || {
        let values = data::observations_s();
        let h = fastmetrics::metrics::histogram::Histogram::new(data::bounds_s());
        move |t| h.observe(values[obs_index(t)])
    });

    // Family: thread t updates series t·7 (both exist).
    v.contended(FAMILY, VITALS, || {
        let pairs = data::string_pairs();
        for (m, s) in &pairs {
            V_FAMILY.labels([m, s]).inc();
        }
        move |t| {
            let (m, s) = &pairs[t * 7];
            V_FAMILY.labels([m, s]).inc()
        }
    });
    v.contended(FAMILY, "prometheus", || {
        let pairs = data::string_pairs();
        let c = prometheus::IntCounterVec::new(
            prometheus::Opts::new("c", "help"),
            &["method", "status"],
        )
        .unwrap();
        for (m, s) in &pairs {
            c.with_label_values(&[m.as_str(), s.as_str()]).inc();
        }
        move |t| {
            let (m, s) = &pairs[t * 7];
            c.with_label_values(&[m.as_str(), s.as_str()]).inc()
        }
    });
    v.contended(FAMILY, "prometheus-client", move || {
        use prometheus_client::metrics::{counter::Counter, family::Family};
        let pairs = data::string_pairs();
        let f = Family::<data::pc::Str, Counter>::default();
        let key = |m: &str, s: &str| data::pc::Str {
            method: m.to_owned(),
            status: s.to_owned(),
        };
        for (m, s) in &pairs {
            f.get_or_create(&key(m, s)).inc();
        }
        move |t| {
            let (m, s) = &pairs[t * 7];
            f.get_or_create(&key(m, s)).inc();
        }
    });
    v.contended(FAMILY, "metrics", move || {
        data::metrics_handle();
        let pairs = data::string_pairs();
        move |t| {
            let (m, s) = &pairs[t * 7];
            metrics::counter!("bench_contended_family", "method" => m.clone(), "status" => s.clone()).increment(1)
        }
    });
    v.contended(FAMILY, "measured", || {
        let pairs = data::string_pairs();
        let c = measured::CounterVec::with_label_set(data::ms::StrSet::default());
        move |t| {
            let (m, s) = &pairs[t * 7];
            c.inc(data::ms::Str {
                method: m,
                status: s,
            })
        }
    });
    v.contended(FAMILY, "fastmetrics", move || {
        use fastmetrics::metrics::{counter::Counter, family::Family};
        let pairs = data::string_pairs();
        let f = Family::<data::fm::Str, Counter>::default();
        let key = |m: &str, s: &str| data::fm::Str {
            method: m.to_owned(),
            status: s.to_owned(),
        };
        for (m, s) in &pairs {
            f.with_or_new(&key(m, s), |c| c.inc());
        }
        move |t| {
            let (m, s) = &pairs[t * 7];
            f.with_or_new(&key(m, s), |c| c.inc())
        }
    });
}
