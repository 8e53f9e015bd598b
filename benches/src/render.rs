//! Rendering the text exposition, reported per line.
//!
//! - `render_fleet`: 10 counter families × 20 series and 10 histogram families × 20 series × 10
//!   buckets (~2,800 lines), string label values known at run time.
//! - `render_100k`: one counter family of 100,000 series.
//!
//! Each peer renders with its fastest documented text encoder into a buffer reused across
//! scrapes; vitals renders the whole exposition into one reused buffer (`vitals`) and, as a
//! scraping server does, in 64 KiB chunks (`vitals-chunked`, reported beside the table).

use crate::data::{self, OBS};
use crate::hot::BOUNDS;
use crate::{Op, Visitor, VITALS};
use std::hint::black_box;
use vitals_core::{Counter, Cursor, Entry, Family, Format, HistogramCells, Registry, StrFamily};

/// Fleet group.
pub const FLEET: &str = "render_fleet";
/// Fleet with typed vitals families (extra row).
pub const FLEET_TYPED: &str = "render_fleet_typed";
/// 100,000 series.
pub const BIG: &str = "render_100k";

/// Families per kind in the fleet.
pub const FAMILIES: usize = 10;
/// Series in the big family.
pub const BIG_SERIES: usize = 100_000;

type StrCounters = StrFamily<Counter, 2, 32, 16>;
type StrHistograms = StrFamily<HistogramCells<10>, 2, 32, 16>;

static F_COUNTERS: [StrCounters; FAMILIES] =
    [const { StrFamily::new(["method", "status"]) }; FAMILIES];
static F_HISTOGRAMS: [StrHistograms; FAMILIES] =
    [const { StrFamily::with_shared(["method", "status"], BOUNDS) }; FAMILIES];
static T_COUNTERS: [Family<(data::Method, data::Status), Counter, 20>; FAMILIES] =
    [const { Family::new() }; FAMILIES];
static T_HISTOGRAMS: [Family<(data::Method, data::Status), HistogramCells<10>, 20>; FAMILIES] =
    [const { Family::histogram(BOUNDS) }; FAMILIES];

const HELP_C: &str = "Requests served.";
const HELP_H: &str = "Time to serve a request.";

macro_rules! fleet_entries {
    ($c:ident, $h:ident, $($i:literal),*) => {
        [
            $(Entry::new(concat!("fleet_counter_", $i), HELP_C, &$c[$i]),)*
            $(Entry::new(concat!("fleet_histogram_", $i, "_seconds"), HELP_H, &$h[$i]).unit("seconds"),)*
        ]
    };
}

static FLEET_ENTRIES: [Entry<'static>; 2 * FAMILIES] =
    fleet_entries!(F_COUNTERS, F_HISTOGRAMS, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9);
static FLEET_TYPED_ENTRIES: [Entry<'static>; 2 * FAMILIES] =
    fleet_entries!(T_COUNTERS, T_HISTOGRAMS, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9);
static FLEET_REG: Registry = Registry::new(&FLEET_ENTRIES);
static FLEET_TYPED_REG: Registry = Registry::new(&FLEET_TYPED_ENTRIES);

/// The 100,000-series family (a `static`: it is ~2 MiB, too large for a stack).
static BIG_FAMILY: StrFamily<Counter, 1, BIG_SERIES, 8> = StrFamily::new(["series"]);
static BIG_ENTRIES: [Entry<'static>; 1] = [Entry::new("big_counter", HELP_C, &BIG_FAMILY)];
static BIG_REG: Registry = Registry::new(&BIG_ENTRIES);

fn counter_name(f: usize) -> String {
    format!("fleet_counter_{f}")
}
fn histogram_name(f: usize) -> String {
    format!("fleet_histogram_{f}_seconds")
}

/// Which observation (from the shared list) series `i` of family `f` gets: a few per series.
fn fleet_observations(f: usize, i: usize) -> impl Iterator<Item = usize> {
    (0..3).map(move |k| (f * 131 + i * 17 + k * 7) & (OBS - 1))
}

fn lines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// vitals: the whole exposition into one reused buffer.
fn vitals_render(reg: &'static Registry<'static>, size: usize) -> Op<impl FnMut() -> usize> {
    let mut buf = vec![0u8; size];
    let mut f = move || {
        let mut cursor = Cursor::new(Format::Prometheus);
        let mut total = 0;
        while let Ok(n @ 1..) = reg.render(&mut cursor, &mut buf[total..]) {
            total += n;
        }
        black_box(&buf[..total]);
        total
    };
    let n = f();
    let mut check = vec![0u8; size];
    let mut cursor = Cursor::new(Format::Prometheus);
    let got = reg
        .render(&mut cursor, &mut check)
        .expect("buffer holds the exposition");
    assert_eq!(got, n, "the buffer must hold the whole exposition");
    Op {
        f,
        lines: lines(&check[..got]),
    }
}

/// vitals: in 64 KiB chunks, each handed to a sink (here `black_box`).
fn vitals_chunked(reg: &'static Registry<'static>) -> Op<impl FnMut() -> usize> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut f = move || {
        let mut cursor = Cursor::new(Format::Prometheus);
        let mut total = 0;
        while let Ok(n @ 1..) = reg.render(&mut cursor, &mut buf) {
            black_box(&buf[..n]);
            total += n;
        }
        total
    };
    let mut all = vec![0u8; 16 << 20];
    let mut cursor = Cursor::new(Format::Prometheus);
    let n = reg.render(&mut cursor, &mut all).expect("fits");
    f();
    Op {
        f,
        lines: lines(&all[..n]),
    }
}

/// Registers the render workloads.
pub fn visit<V: Visitor>(v: &mut V) {
    fleet(v);
    big(v);
}

fn fill_vitals_fleet() {
    let obs = data::observations_us();
    let pairs = data::string_pairs();
    for f in 0..FAMILIES {
        for (i, (m, s)) in pairs.iter().enumerate() {
            F_COUNTERS[f].labels([m, s]).inc_by((f * 20 + i) as u64);
            T_COUNTERS[f]
                .labels(data::typed(i))
                .inc_by((f * 20 + i) as u64);
            for k in fleet_observations(f, i) {
                F_HISTOGRAMS[f].labels([m, s]).observe(obs[k]);
                T_HISTOGRAMS[f].labels(data::typed(i)).observe(obs[k]);
            }
        }
    }
}

fn fleet<V: Visitor>(v: &mut V) {
    static FILL: std::sync::Once = std::sync::Once::new();
    let fill = || FILL.call_once(fill_vitals_fleet);
    v.op(FLEET, VITALS, || {
        fill();
        vitals_render(&FLEET_REG, 1 << 20)
    });
    v.op(FLEET, "vitals-chunked", || {
        fill();
        vitals_chunked(&FLEET_REG)
    });
    v.op(FLEET_TYPED, VITALS, || {
        fill();
        vitals_render(&FLEET_TYPED_REG, 1 << 20)
    });
    v.op(FLEET, "prometheus", || {
        let reg = prometheus::Registry::new();
        let obs = data::observations_s();
        let pairs = data::string_pairs();
        for f in 0..FAMILIES {
            let c = prometheus::IntCounterVec::new(
                prometheus::Opts::new(counter_name(f), HELP_C),
                &["method", "status"],
            )
            .unwrap();
            let h = prometheus::HistogramVec::new(
                prometheus::HistogramOpts::new(histogram_name(f), HELP_H).buckets(data::bounds_s()),
                &["method", "status"],
            )
            .unwrap();
            for (i, (m, s)) in pairs.iter().enumerate() {
                c.with_label_values(&[m.as_str(), s.as_str()])
                    .inc_by((f * 20 + i) as u64);
                for k in fleet_observations(f, i) {
                    h.with_label_values(&[m.as_str(), s.as_str()])
                        .observe(obs[k]);
                }
            }
            reg.register(Box::new(c)).unwrap();
            reg.register(Box::new(h)).unwrap();
        }
        prometheus_op(reg)
    });
    v.op(FLEET, "prometheus-client", || {
        use prometheus_client::metrics::{counter::Counter, family::Family, histogram::Histogram};
        let mut reg = prometheus_client::registry::Registry::default();
        let obs = data::observations_s();
        let pairs = data::string_pairs();
        for f in 0..FAMILIES {
            let c = Family::<data::pc::Str, Counter>::default();
            let h = Family::<data::pc::Str, Histogram>::new_with_constructor(|| {
                Histogram::new(data::bounds_s())
            });
            for (i, (m, s)) in pairs.iter().enumerate() {
                let key = data::pc::Str {
                    method: m.clone(),
                    status: s.clone(),
                };
                c.get_or_create(&key).inc_by((f * 20 + i) as u64);
                for k in fleet_observations(f, i) {
                    h.get_or_create(&key).observe(obs[k]);
                }
            }
            reg.register(format!("fleet_counter_{f}"), HELP_C, c);
            reg.register(histogram_name(f), HELP_H, h);
        }
        prometheus_client_op(reg)
    });
    v.op(FLEET, "metrics", || {
        // A recorder of its own (the global one holds the hot-path metrics).
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets(&data::bounds_s())
            .unwrap()
            .build_recorder();
        let handle = recorder.handle();
        let obs = data::observations_s();
        let pairs = data::string_pairs();
        metrics::with_local_recorder(&recorder, || {
            for f in 0..FAMILIES {
                metrics::describe_counter!(counter_name(f), HELP_C);
                metrics::describe_histogram!(histogram_name(f), HELP_H);
                for (i, (m, s)) in pairs.iter().enumerate() {
                    let labels = [("method", m.clone()), ("status", s.clone())];
                    metrics::counter!(counter_name(f), &labels).increment((f * 20 + i) as u64);
                    for k in fleet_observations(f, i) {
                        metrics::histogram!(histogram_name(f), &labels).record(obs[k]);
                    }
                }
            }
        });
        metrics_op(recorder, handle)
    });
    v.op(FLEET, "measured", || {
        use measured::metric::histogram::Thresholds;
        let obs = data::observations_s();
        let pairs = data::string_pairs();
        let mut fleet = MeasuredFleet::default();
        for f in 0..FAMILIES {
            let c = measured::CounterVec::with_label_set(data::ms::StrSet::default());
            let h = measured::HistogramVec::<_, 10>::with_label_set_and_metadata(
                data::ms::StrSet::default(),
                Thresholds::exponential_buckets(0.005, 2.0),
            );
            for (i, (m, s)) in pairs.iter().enumerate() {
                let l = data::ms::Str {
                    method: m,
                    status: s,
                };
                c.inc_by(l, (f * 20 + i) as u64);
                for k in fleet_observations(f, i) {
                    h.observe(l, obs[k]);
                }
            }
            fleet.counters.push((leak_name(counter_name(f)), c));
            fleet.histograms.push((leak_name(histogram_name(f)), h));
        }
        measured_op(fleet)
    });
    v.op(FLEET, "fastmetrics", || {
        use fastmetrics::metrics::{counter::Counter, family::Family, histogram::Histogram};
        let mut reg = fastmetrics::registry::Registry::default();
        let obs = data::observations_s();
        let pairs = data::string_pairs();
        for f in 0..FAMILIES {
            let c = Family::<data::fm::Str, Counter>::default();
            let h = Family::<data::fm::Str, Histogram>::new(|| Histogram::new(data::bounds_s()));
            for (i, (m, s)) in pairs.iter().enumerate() {
                let key = data::fm::Str {
                    method: m.clone(),
                    status: s.clone(),
                };
                c.with_or_new(&key, |c| c.inc_by((f * 20 + i) as u64));
                for k in fleet_observations(f, i) {
                    h.with_or_new(&key, |h| h.observe(obs[k]));
                }
            }
            reg.register(counter_name(f), HELP_C, c).unwrap();
            reg.register(histogram_name(f), HELP_H, h).unwrap();
        }
        fastmetrics_op(reg)
    });
}

fn big_values() -> Vec<String> {
    (0..BIG_SERIES).map(|i| i.to_string()).collect()
}

fn big<V: Visitor>(v: &mut V) {
    static FILL: std::sync::Once = std::sync::Once::new();
    let fill = || {
        FILL.call_once(|| {
            for (i, s) in big_values().iter().enumerate() {
                BIG_FAMILY.labels([s]).inc_by(i as u64);
            }
            assert_eq!(BIG_FAMILY.dropped(), 0, "every series has its own slot");
        })
    };
    v.op(BIG, VITALS, || {
        fill();
        vitals_render(&BIG_REG, 8 << 20)
    });
    v.op(BIG, "vitals-chunked", || {
        fill();
        vitals_chunked(&BIG_REG)
    });
    v.op(BIG, "prometheus", || {
        let reg = prometheus::Registry::new();
        let c = prometheus::IntCounterVec::new(
            prometheus::Opts::new("big_counter", HELP_C),
            &["series"],
        )
        .unwrap();
        for (i, s) in big_values().iter().enumerate() {
            c.with_label_values(&[s.as_str()]).inc_by(i as u64);
        }
        reg.register(Box::new(c)).unwrap();
        prometheus_op(reg)
    });
    v.op(BIG, "prometheus-client", || {
        use prometheus_client::metrics::{counter::Counter, family::Family};
        let mut reg = prometheus_client::registry::Registry::default();
        let c = Family::<data::pc::One, Counter>::default();
        for (i, s) in big_values().into_iter().enumerate() {
            c.get_or_create(&data::pc::One { series: s })
                .inc_by(i as u64);
        }
        reg.register("big_counter", HELP_C, c);
        prometheus_client_op(reg)
    });
    v.op(BIG, "metrics", || {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_counter!("big_counter", HELP_C);
            for (i, s) in big_values().into_iter().enumerate() {
                metrics::counter!("big_counter", "series" => s).increment(i as u64);
            }
        });
        metrics_op(recorder, handle)
    });
    v.op(BIG, "measured", || {
        let c = measured::CounterVec::with_label_set(data::ms::OneSet::default());
        for (i, s) in big_values().iter().enumerate() {
            c.inc_by(data::ms::One { series: s }, i as u64);
        }
        let mut fleet = MeasuredFleet::default();
        fleet.one.push((leak_name("big_counter".into()), c));
        measured_op(fleet)
    });
    v.op(BIG, "fastmetrics", || {
        use fastmetrics::metrics::{counter::Counter, family::Family};
        let mut reg = fastmetrics::registry::Registry::default();
        let c = Family::<data::fm::One, Counter>::default();
        for (i, s) in big_values().into_iter().enumerate() {
            c.with_or_new(&data::fm::One { series: s }, |c| c.inc_by(i as u64));
        }
        reg.register("big_counter", HELP_C, c).unwrap();
        fastmetrics_op(reg)
    });
}

fn prometheus_op(reg: prometheus::Registry) -> Op<impl FnMut() -> usize> {
    let mut out = String::new();
    prometheus::TextEncoder::new()
        .encode_utf8(&reg.gather(), &mut out)
        .unwrap();
    let lines = lines(out.as_bytes());
    let f = move || {
        out.clear();
        prometheus::TextEncoder::new()
            .encode_utf8(&reg.gather(), &mut out)
            .unwrap();
        black_box(&out);
        out.len()
    };
    Op { f, lines }
}

fn prometheus_client_op(reg: prometheus_client::registry::Registry) -> Op<impl FnMut() -> usize> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
    let lines = lines(out.as_bytes());
    let f = move || {
        out.clear();
        prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
        black_box(&out);
        out.len()
    };
    Op { f, lines }
}

fn metrics_op(
    recorder: metrics_exporter_prometheus::PrometheusRecorder,
    handle: metrics_exporter_prometheus::PrometheusHandle,
) -> Op<impl FnMut() -> usize> {
    let mut out = Vec::new();
    handle.render_to_write(&mut out).unwrap();
    let lines = lines(&out);
    let f = move || {
        let _keep = &recorder;
        out.clear();
        handle.render_to_write(&mut out).unwrap();
        black_box(&out);
        out.len()
    };
    Op { f, lines }
}

fn fastmetrics_op(reg: fastmetrics::registry::Registry) -> Op<impl FnMut() -> usize> {
    use fastmetrics::format::text::{self, TextProfile};
    let mut out = String::new();
    text::encode(&mut out, &reg, TextProfile::PrometheusV0_0_4).unwrap();
    let lines = lines(out.as_bytes());
    let f = move || {
        out.clear();
        text::encode(&mut out, &reg, TextProfile::PrometheusV0_0_4).unwrap();
        black_box(&out);
        out.len()
    };
    Op { f, lines }
}

fn leak_name(name: String) -> &'static measured::metric::name::MetricName {
    measured::metric::name::MetricName::try_from_str(Box::leak(name.into_boxed_str()))
        .expect("valid name")
}

type MeasuredName = &'static measured::metric::name::MetricName;

/// A measured metric group of any number of families (what `#[derive(MetricGroup)]` generates
/// for named fields, written as a loop).
#[derive(Default)]
struct MeasuredFleet {
    counters: Vec<(MeasuredName, measured::CounterVec<data::ms::StrSet>)>,
    histograms: Vec<(MeasuredName, measured::HistogramVec<data::ms::StrSet, 10>)>,
    one: Vec<(MeasuredName, measured::CounterVec<data::ms::OneSet>)>,
}

impl<E: measured::metric::group::Encoding> measured::MetricGroup<E> for MeasuredFleet
where
    measured::CounterVec<data::ms::StrSet>: measured::metric::MetricFamilyEncoding<E>,
    measured::HistogramVec<data::ms::StrSet, 10>: measured::metric::MetricFamilyEncoding<E>,
    measured::CounterVec<data::ms::OneSet>: measured::metric::MetricFamilyEncoding<E>,
{
    fn collect_group_into(&self, enc: &mut E) -> Result<(), E::Err> {
        use measured::metric::MetricFamilyEncoding;
        for (name, c) in &self.counters {
            enc.write_help(*name, HELP_C)?;
            c.collect_family_into(*name, enc)?;
        }
        for (name, h) in &self.histograms {
            enc.write_help(*name, HELP_H)?;
            h.collect_family_into(*name, enc)?;
        }
        for (name, c) in &self.one {
            enc.write_help(*name, HELP_C)?;
            c.collect_family_into(*name, enc)?;
        }
        Ok(())
    }
}

fn measured_op(fleet: MeasuredFleet) -> Op<impl FnMut() -> usize> {
    use measured::MetricGroup;
    let mut enc = measured::text::BufferedTextEncoder::new();
    fleet.collect_group_into(&mut enc).unwrap();
    let lines = lines(&enc.finish());
    let f = move || {
        fleet.collect_group_into(&mut enc).unwrap();
        let bytes = enc.finish();
        black_box(&bytes);
        bytes.len()
    };
    Op { f, lines }
}
