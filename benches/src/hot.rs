//! Update hot paths: counter inc, gauge set, histogram observe, labelled inc by typed and by string
//! labels (the series exists already). Every peer holds its metric the way its docs recommend (a
//! handle created once); labelled updates look the series up on every call.

use crate::data::{self, OBS};
use crate::{Op, Visitor, BASELINE, VITALS};
use std::sync::atomic::{AtomicU64, Ordering};
use vitals_core::{
    Bounds, Counter, Exemplar, Family, Gauge, Histogram, HistogramCells, Scale, StrFamily,
};

/// Group names.
pub const COUNTER: &str = "counter_inc";
/// Gauge set.
pub const GAUGE: &str = "gauge_set";
/// Histogram observe, 10 buckets.
pub const HISTOGRAM: &str = "histogram_observe";
/// Histogram observe with an exemplar (trace and span id, timestamp), 10 buckets.
pub const HISTOGRAM_EXEMPLAR: &str = "histogram_observe_exemplar";
/// Labelled inc, typed labels.
pub const TYPED: &str = "labelled_inc_typed";
/// Labelled inc, string labels.
pub const STR: &str = "labelled_inc_str";

/// The ten bounds as vitals bounds.
pub const BOUNDS: Bounds<10> = Bounds::new(data::BOUNDS_US, Scale::MICRO);

static V_COUNTER: Counter = Counter::new();
static V_GAUGE: Gauge = Gauge::new();
static V_HISTOGRAM: Histogram<10> = Histogram::new(BOUNDS);
static V_HISTOGRAM_EXEMPLAR: Histogram<10> = Histogram::new(BOUNDS);
static V_TYPED: Family<(data::Method, data::Status), Counter, 20> = Family::new();
static V_STR: StrFamily<Counter, 2, 32, 16> = StrFamily::new(["method", "status"]);
static V_TYPED_HIST: Family<(data::Method, data::Status), HistogramCells<10>, 20> =
    Family::histogram(BOUNDS);

/// Registers every hot-path workload.
pub fn visit<V: Visitor>(v: &mut V) {
    counter(v);
    gauge(v);
    histogram(v);
    histogram_exemplar(v);
    typed(v);
    strings(v);
}

fn counter<V: Visitor>(v: &mut V) {
    v.op(COUNTER, BASELINE, || {
        let a: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(0)));
        Op::one(move || {
            a.fetch_add(1, Ordering::Relaxed);
        })
    });
    v.op(COUNTER, VITALS, || Op::one(|| V_COUNTER.inc()));
    v.op(COUNTER, "prometheus", || {
        let c = prometheus::IntCounter::new("c", "help").unwrap();
        Op::one(move || c.inc())
    });
    v.op(COUNTER, "prometheus-client", || {
        let c: prometheus_client::metrics::counter::Counter = Default::default();
        Op::one(move || {
            c.inc();
        })
    });
    v.op(COUNTER, "metrics", || {
        data::metrics_handle();
        let c = metrics::counter!("bench_counter");
        Op::one(move || c.increment(1))
    });
    v.op(COUNTER, "measured", || {
        let c = measured::Counter::new();
        Op::one(move || c.inc())
    });
    v.op(COUNTER, "fastmetrics", || {
        let c = <fastmetrics::metrics::counter::Counter>::default();
        Op::one(move || c.inc())
    });
}

fn gauge<V: Visitor>(v: &mut V) {
    v.op(GAUGE, BASELINE, || {
        let a: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(0)));
        let mut x = 0u64;
        Op::one(move || {
            x = x.wrapping_add(1);
            a.store(x, Ordering::Relaxed);
        })
    });
    v.op(GAUGE, VITALS, || {
        let mut x = 0i64;
        Op::one(move || {
            x = x.wrapping_add(1);
            V_GAUGE.set(x);
        })
    });
    v.op(GAUGE, "prometheus", || {
        let g = prometheus::IntGauge::new("g", "help").unwrap();
        let mut x = 0i64;
        Op::one(move || {
            x = x.wrapping_add(1);
            g.set(x);
        })
    });
    v.op(GAUGE, "prometheus-client", || {
        let g: prometheus_client::metrics::gauge::Gauge = Default::default();
        let mut x = 0i64;
        Op::one(move || {
            x = x.wrapping_add(1);
            g.set(x);
        })
    });
    v.op(GAUGE, "metrics", || {
        data::metrics_handle();
        let g = metrics::gauge!("bench_gauge");
        let mut x = 0i64;
        Op::one(move || {
            x = x.wrapping_add(1);
            g.set(x as f64);
        })
    });
    v.op(GAUGE, "measured", || {
        let g = measured::Gauge::new();
        let mut x = 0i64;
        Op::one(move || {
            x = x.wrapping_add(1);
            g.get_metric().set(x);
        })
    });
    v.op(GAUGE, "fastmetrics", || {
        let g = <fastmetrics::metrics::gauge::Gauge>::default();
        let mut x = 0i64;
        Op::one(move || {
            x = x.wrapping_add(1);
            g.set(x);
        })
    });
}

/// Cycles through the precomputed observations.
macro_rules! observe_loop {
    ($values:expr, |$v:ident| $body:expr) => {{
        let values = $values;
        let mut i = 0usize;
        Op::one(move || {
            i = (i + 1) & (OBS - 1);
            let $v = values[i];
            $body
        })
    }};
}

fn histogram<V: Visitor>(v: &mut V) {
    v.op(HISTOGRAM, VITALS, || {
        observe_loop!(data::observations_us(), |x| V_HISTOGRAM.observe(x))
    });
    v.op(HISTOGRAM, "prometheus", || {
        let h = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new("h", "help").buckets(data::bounds_s()),
        )
        .unwrap();
        observe_loop!(data::observations_s(), |x| h.observe(x))
    });
    v.op(HISTOGRAM, "prometheus-client", || {
        let h = prometheus_client::metrics::histogram::Histogram::new(data::bounds_s());
        observe_loop!(data::observations_s(), |x| h.observe(x))
    });
    v.op(HISTOGRAM, "metrics", || {
        let handle = data::metrics_handle();
        let h = metrics::histogram!("bench_histogram");
        // metrics-exporter-prometheus stores raw samples until upkeep folds them into buckets:
        // run the documented upkeep in the background, as its HTTP listener would.
        std::thread::spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_millis(50));
            handle.run_upkeep();
        });
        observe_loop!(data::observations_s(), |x| h.record(x))
    });
    v.op(HISTOGRAM, "measured", || {
        let h = measured::Histogram::<10>::with_metadata(
            measured::metric::histogram::Thresholds::exponential_buckets(0.005, 2.0),
        );
        observe_loop!(data::observations_s(), |x| h.get_metric().observe(x))
    });
    v.op(HISTOGRAM, "fastmetrics", || {
        let h = fastmetrics::metrics::histogram::Histogram::new(data::bounds_s());
        observe_loop!(data::observations_s(), |x| h.observe(x))
    });
}

/// The same observations, each with its own exemplar (a trace id, span id and timestamp made
/// from the index, as a request's ids would be at hand). The plain observe of [`HISTOGRAM`] is
/// the same histogram with no exemplar recorded: the ratio of the two rows is the exemplar's cost.
fn histogram_exemplar<V: Visitor>(v: &mut V) {
    v.op(HISTOGRAM_EXEMPLAR, VITALS, || {
        let values = data::observations_us();
        let mut i = 0usize;
        Op::one(move || {
            i = (i + 1) & (OBS - 1);
            let id = i as u64;
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&id.to_be_bytes());
            trace_id[8..].copy_from_slice(&(!id).to_be_bytes());
            let e = Exemplar::new(trace_id, id.to_le_bytes()).at_millis(1_764_640_000_000 + id);
            V_HISTOGRAM_EXEMPLAR.observe_with_exemplar(values[i], &e)
        })
    });
    // prometheus-client's histogram with exemplars (a lock per observe); the label sets are
    // built once, so the peer pays no formatting or allocation in the loop.
    v.op(HISTOGRAM_EXEMPLAR, "prometheus-client", || {
        type Labels = [(&'static str, &'static str); 2];
        let h = prometheus_client::metrics::exemplar::HistogramWithExemplars::<Labels>::new(
            data::bounds_s().into_iter(),
        );
        let ids: &'static [Labels] = Box::leak(
            (0..OBS)
                .map(|i| -> Labels {
                    let t: &'static str = Box::leak(format!("{i:032x}").into_boxed_str());
                    let s: &'static str = Box::leak(format!("{i:016x}").into_boxed_str());
                    [("trace_id", t), ("span_id", s)]
                })
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        );
        let values = data::observations_s();
        let now = std::time::SystemTime::now();
        let mut i = 0usize;
        Op::one(move || {
            i = (i + 1) & (OBS - 1);
            h.observe(values[i], Some(ids[i]), Some(now))
        })
    });
}

/// Cycles through the 20 series.
macro_rules! series_loop {
    (|$i:ident| $body:expr) => {{
        let mut $i = 0usize;
        Op::one(move || {
            $i = data::next_series($i);
            $body
        })
    }};
}

fn typed<V: Visitor>(v: &mut V) {
    v.op(TYPED, VITALS, || {
        series_loop!(|i| V_TYPED.labels(data::typed(i)).inc())
    });
    v.op(TYPED, "prometheus", || {
        let c = prometheus::IntCounterVec::new(
            prometheus::Opts::new("c", "help"),
            &["method", "status"],
        )
        .unwrap();
        for i in 0..data::SERIES {
            let (m, s) = data::pair(i);
            c.with_label_values(&[data::METHODS[m], data::STATUSES[s]])
                .inc();
        }
        series_loop!(|i| {
            let (m, s) = data::pair(i);
            c.with_label_values(&[data::METHODS[m], data::STATUSES[s]])
                .inc()
        })
    });
    v.op(TYPED, "prometheus-client", || {
        use prometheus_client::metrics::{counter::Counter, family::Family};
        let f = Family::<data::pc::Typed, Counter>::default();
        for i in 0..data::SERIES {
            f.get_or_create(&data::pc::typed(i)).inc();
        }
        series_loop!(|i| {
            f.get_or_create(&data::pc::typed(i)).inc();
        })
    });
    v.op(TYPED, "metrics", || {
        data::metrics_handle();
        series_loop!(|i| {
            let (m, s) = data::pair(i);
            metrics::counter!("bench_typed", "method" => data::METHODS[m], "status" => data::STATUSES[s]).increment(1)
        })
    });
    v.op(TYPED, "measured", || {
        let c = measured::CounterVec::with_label_set(data::ms::typed_set());
        series_loop!(|i| c.inc(data::ms::typed(i)))
    });
    v.op(TYPED, "fastmetrics", || {
        use fastmetrics::metrics::{counter::Counter, family::Family};
        let f = Family::<data::fm::Typed, Counter>::default();
        for i in 0..data::SERIES {
            f.with_or_new(&data::fm::typed(i), |c| c.inc());
        }
        series_loop!(|i| f.with_or_new(&data::fm::typed(i), |c| c.inc()))
    });
    // A typed histogram family: the label lookup plus the observe.
    v.op("labelled_observe_typed", VITALS, || {
        let values = data::observations_us();
        let mut j = 0usize;
        series_loop!(|i| {
            j = (j + 1) & (OBS - 1);
            V_TYPED_HIST.labels(data::typed(i)).observe(values[j])
        })
    });
}

fn strings<V: Visitor>(v: &mut V) {
    v.op(STR, VITALS, || {
        let pairs = data::string_pairs();
        for (m, s) in &pairs {
            V_STR.labels([m, s]).inc();
        }
        series_loop!(|i| {
            let (m, s) = &pairs[i];
            V_STR.labels([m, s]).inc()
        })
    });
    v.op(STR, "prometheus", || {
        let pairs = data::string_pairs();
        let c = prometheus::IntCounterVec::new(
            prometheus::Opts::new("c", "help"),
            &["method", "status"],
        )
        .unwrap();
        for (m, s) in &pairs {
            c.with_label_values(&[m.as_str(), s.as_str()]).inc();
        }
        series_loop!(|i| {
            let (m, s) = &pairs[i];
            c.with_label_values(&[m.as_str(), s.as_str()]).inc()
        })
    });
    v.op(STR, "prometheus-client", || {
        use prometheus_client::metrics::{counter::Counter, family::Family};
        let pairs = data::string_pairs();
        let f = Family::<data::pc::Str, Counter>::default();
        // Its documented label set owns its values: the key is built from the &str at hand.
        let key = |m: &str, s: &str| data::pc::Str {
            method: m.to_owned(),
            status: s.to_owned(),
        };
        for (m, s) in &pairs {
            f.get_or_create(&key(m, s)).inc();
        }
        series_loop!(|i| {
            let (m, s) = &pairs[i];
            f.get_or_create(&key(m, s)).inc();
        })
    });
    v.op(STR, "metrics", || {
        data::metrics_handle();
        let pairs = data::string_pairs();
        series_loop!(|i| {
            let (m, s) = &pairs[i];
            metrics::counter!("bench_str", "method" => m.clone(), "status" => s.clone())
                .increment(1)
        })
    });
    v.op(STR, "measured", || {
        let pairs = data::string_pairs();
        let c = measured::CounterVec::with_label_set(data::ms::StrSet::default());
        series_loop!(|i| {
            let (m, s) = &pairs[i];
            c.inc(data::ms::Str {
                method: m,
                status: s,
            })
        })
    });
    v.op(STR, "fastmetrics", || {
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
        series_loop!(|i| {
            let (m, s) = &pairs[i];
            f.with_or_new(&key(m, s), |c| c.inc())
        })
    });
}
