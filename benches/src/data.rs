//! Inputs shared by every peer: label values, observations, bucket bounds, and each peer's label
//! types for the same two labels (`method`, `status`; 2 × 10 = 20 series).

use std::sync::OnceLock;

/// Values of the `method` label.
pub const METHODS: [&str; 2] = ["GET", "PUT"];
/// Values of the `status` label.
pub const STATUSES: [&str; 10] = [
    "200", "201", "204", "301", "304", "400", "401", "404", "429", "500",
];
/// Number of series in a labelled family.
pub const SERIES: usize = 20;

/// Series `i` (0..20) as (method index, status index).
pub const fn pair(i: usize) -> (usize, usize) {
    (i / 10, i % 10)
}

/// The order in which labelled benches visit the 20 series (a stride that touches all of them).
pub fn next_series(i: usize) -> usize {
    (i + 7) % SERIES
}

/// Number of precomputed observations (a power of two).
pub const OBS: usize = 1024;

/// Observations in microseconds, spread over every bucket of [`BOUNDS_US`] and beyond.
pub fn observations_us() -> &'static [u64; OBS] {
    static V: OnceLock<[u64; OBS]> = OnceLock::new();
    V.get_or_init(|| {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        core::array::from_fn(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // log-uniform over ~1 ms .. ~5 s: every bucket gets some
            let exp = (x % 13) as u32;
            (1_000u64 << exp) | ((x >> 40) % 1_000)
        })
    })
}

/// The same observations in seconds (what the f64-based peers record).
pub fn observations_s() -> &'static [f64; OBS] {
    static V: OnceLock<[f64; OBS]> = OnceLock::new();
    V.get_or_init(|| observations_us().map(|us| us as f64 / 1e6))
}

/// Ten exponential bucket bounds in microseconds: 5 ms × 2^k.
pub const BOUNDS_US: [u64; 10] = [
    5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 640_000, 1_280_000, 2_560_000,
];

/// The same bounds in seconds.
pub fn bounds_s() -> Vec<f64> {
    BOUNDS_US.iter().map(|&b| b as f64 / 1e6).collect()
}

vitals_core::label_enum! {
    /// HTTP method.
    pub enum Method: "method" { Get = "GET", Put = "PUT" }
}

vitals_core::label_enum! {
    /// HTTP status.
    pub enum Status: "status" {
        S200 = "200", S201 = "201", S204 = "204", S301 = "301", S304 = "304",
        S400 = "400", S401 = "401", S404 = "404", S429 = "429", S500 = "500"
    }
}

/// Series `i` as typed vitals labels.
pub fn typed(i: usize) -> (Method, Status) {
    let (m, s) = pair(i);
    (Method::ALL[m], Status::ALL[s])
}

/// The 20 label pairs as owned strings (values known only at run time).
pub fn string_pairs() -> Vec<(String, String)> {
    (0..SERIES)
        .map(|i| {
            let (m, s) = pair(i);
            (METHODS[m].to_string(), STATUSES[s].to_string())
        })
        .collect()
}

/// prometheus-client label types.
pub mod pc {
    use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};

    /// Method as a typed label value.
    #[allow(missing_docs)]
    #[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
    pub enum Method {
        GET,
        PUT,
    }

    /// Status as a typed label value.
    #[allow(missing_docs)]
    #[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
    pub enum Status {
        S200,
        S201,
        S204,
        S301,
        S304,
        S400,
        S401,
        S404,
        S429,
        S500,
    }

    const M: [Method; 2] = [Method::GET, Method::PUT];
    const S: [Status; 10] = [
        Status::S200,
        Status::S201,
        Status::S204,
        Status::S301,
        Status::S304,
        Status::S400,
        Status::S401,
        Status::S404,
        Status::S429,
        Status::S500,
    ];

    /// Typed label set.
    #[allow(missing_docs)]
    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    pub struct Typed {
        pub method: Method,
        pub status: Status,
    }

    /// Series `i` as a typed label set.
    pub fn typed(i: usize) -> Typed {
        let (m, s) = super::pair(i);
        Typed {
            method: M[m],
            status: S[s],
        }
    }

    /// String label set (the documented shape for run-time values).
    #[allow(missing_docs)]
    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    pub struct Str {
        pub method: String,
        pub status: String,
    }

    /// One string label (the 100,000-series family).
    #[allow(missing_docs)]
    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    pub struct One {
        pub series: String,
    }
}

/// fastmetrics label types (implemented by hand exactly as the crate's docs show).
pub mod fm {
    use fastmetrics::encoder::{EncodeLabelSet, LabelSetEncoder};
    use fastmetrics::error::Result;
    use fastmetrics::raw::LabelSetSchema;

    /// Typed label set: the values are `&'static str` chosen from enums.
    #[allow(missing_docs)]
    #[derive(Clone, Debug, Hash, PartialEq, Eq)]
    pub struct Typed {
        pub method: &'static str,
        pub status: &'static str,
    }

    impl LabelSetSchema for Typed {
        fn names() -> Option<&'static [&'static str]> {
            Some(&["method", "status"])
        }
    }

    impl EncodeLabelSet for Typed {
        fn encode(&self, encoder: &mut dyn LabelSetEncoder) -> Result<()> {
            encoder.encode(&("method", self.method))?;
            encoder.encode(&("status", self.status))?;
            Ok(())
        }
    }

    /// Series `i` as a typed label set.
    pub fn typed(i: usize) -> Typed {
        let (m, s) = super::pair(i);
        Typed {
            method: super::METHODS[m],
            status: super::STATUSES[s],
        }
    }

    /// String label set.
    #[allow(missing_docs)]
    #[derive(Clone, Debug, Hash, PartialEq, Eq)]
    pub struct Str {
        pub method: String,
        pub status: String,
    }

    impl LabelSetSchema for Str {
        fn names() -> Option<&'static [&'static str]> {
            Some(&["method", "status"])
        }
    }

    impl EncodeLabelSet for Str {
        fn encode(&self, encoder: &mut dyn LabelSetEncoder) -> Result<()> {
            encoder.encode(&("method", self.method.as_str()))?;
            encoder.encode(&("status", self.status.as_str()))?;
            Ok(())
        }
    }

    /// One string label.
    #[allow(missing_docs)]
    #[derive(Clone, Debug, Hash, PartialEq, Eq)]
    pub struct One {
        pub series: String,
    }

    impl LabelSetSchema for One {
        fn names() -> Option<&'static [&'static str]> {
            Some(&["series"])
        }
    }

    impl EncodeLabelSet for One {
        fn encode(&self, encoder: &mut dyn LabelSetEncoder) -> Result<()> {
            encoder.encode(&("series", self.series.as_str()))
        }
    }
}

/// measured label types.
pub mod ms {
    #![allow(missing_docs)]
    use measured::label::StaticLabelSet;
    use measured::{FixedCardinalityLabel, LabelGroup};
    use paracord::ParaCord;

    #[derive(FixedCardinalityLabel, Clone, Copy, Debug, PartialEq)]
    pub enum Method {
        #[label(rename = "GET")]
        Get,
        #[label(rename = "PUT")]
        Put,
    }

    #[derive(FixedCardinalityLabel, Clone, Copy, Debug, PartialEq)]
    pub enum Status {
        #[label(rename = "200")]
        S200,
        #[label(rename = "201")]
        S201,
        #[label(rename = "204")]
        S204,
        #[label(rename = "301")]
        S301,
        #[label(rename = "304")]
        S304,
        #[label(rename = "400")]
        S400,
        #[label(rename = "401")]
        S401,
        #[label(rename = "404")]
        S404,
        #[label(rename = "429")]
        S429,
        #[label(rename = "500")]
        S500,
    }

    const M: [Method; 2] = [Method::Get, Method::Put];
    const S: [Status; 10] = [
        Status::S200,
        Status::S201,
        Status::S204,
        Status::S301,
        Status::S304,
        Status::S400,
        Status::S401,
        Status::S404,
        Status::S429,
        Status::S500,
    ];

    /// Typed label group: a dense index, like vitals' typed families.
    #[derive(LabelGroup, Debug, Clone, Copy)]
    #[label(set = TypedSet)]
    pub struct Typed {
        pub method: Method,
        pub status: Status,
    }

    /// Series `i` as a typed label group.
    pub fn typed(i: usize) -> Typed {
        let (m, s) = super::pair(i);
        Typed {
            method: M[m],
            status: S[s],
        }
    }

    /// The typed label set.
    pub fn typed_set() -> TypedSet {
        TypedSet {
            method: StaticLabelSet::new(),
            status: StaticLabelSet::new(),
        }
    }

    /// String label group: values interned on demand (the crate's encoding bench uses ParaCord).
    #[derive(LabelGroup, Debug, Clone, Copy)]
    #[label(set = StrSet)]
    pub struct Str<'a> {
        #[label(dynamic_with = ParaCord, default)]
        pub method: &'a str,
        #[label(dynamic_with = ParaCord, default)]
        pub status: &'a str,
    }

    /// One string label.
    #[derive(LabelGroup, Debug, Clone, Copy)]
    #[label(set = OneSet)]
    pub struct One<'a> {
        #[label(dynamic_with = ParaCord, default)]
        pub series: &'a str,
    }
}

/// The process-wide `metrics` recorder (metrics-exporter-prometheus, histograms with the same
/// ten buckets), installed once, and its handle for rendering and upkeep.
pub fn metrics_handle() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static H: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    H.get_or_init(|| {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets(&bounds_s())
            .expect("buckets")
            .build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).expect("one recorder per process");
        handle
    })
}
