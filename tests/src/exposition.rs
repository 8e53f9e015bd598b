//! The one exposition checker of every test that checks output: a strict parser for Prometheus
//! text 0.0.4 and OpenMetrics 1.0, written from the specifications, catching what promtool does
//! not: missing `+Inf` buckets, non-cumulative buckets, `+Inf` different from `_count`, duplicate
//! series, HELP/TYPE after samples, bad escapes, samples outside their family, no final newline or
//! `# EOF`, exemplars where they may not be (Prometheus text, lines other than a counter's
//! `_total` or a histogram's `_bucket`), malformed, with a label set over 128 characters or a
//! value outside their bucket. The core's tests include this file (`core/tests/common/mod.rs`); the end-to-end tests
//! use it as `vitals_tests::exposition`.

use std::collections::{BTreeMap, HashSet};

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Its name (with the family's suffix, e.g. `_bucket`).
    pub name: String,
    /// Its labels, unescaped, in order of appearance.
    pub labels: Vec<(String, String)>,
    /// Its value.
    pub value: f64,
    /// Its OpenMetrics exemplar, if any.
    pub exemplar: Option<Exemplar>,
}

/// An OpenMetrics exemplar: ` # {labels} value [timestamp]` after a sample's value.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    /// Its labels, unescaped, in order of appearance.
    pub labels: Vec<(String, String)>,
    /// Its value.
    pub value: f64,
    /// Its timestamp (seconds since the Unix epoch), if written.
    pub timestamp: Option<f64>,
}

/// The most characters an exemplar's label names and values may have together (OpenMetrics 1.0).
pub const EXEMPLAR_LABELS_MAX_CHARS: usize = 128;

/// Parses what follows a sample's value: nothing, or (OpenMetrics only) an exemplar.
fn parse_exemplar(rest: &str, openmetrics: bool, line: &str) -> Result<Option<Exemplar>, String> {
    if rest.is_empty() {
        return Ok(None);
    }
    let body = match rest.strip_prefix(" # {") {
        Some(b) if openmetrics => b,
        Some(_) => return Err(format!("exemplar in Prometheus text in {line:?}")),
        None => return Err(format!("timestamp or junk after value in {line:?}")),
    };
    let (labels, after) = parse_labels(body).map_err(|e| format!("exemplar: {e} in {line:?}"))?;
    let chars: usize = labels
        .iter()
        .map(|(k, v)| k.chars().count() + v.chars().count())
        .sum();
    if chars > EXEMPLAR_LABELS_MAX_CHARS {
        return Err(format!(
            "exemplar label set of {chars} characters (over {EXEMPLAR_LABELS_MAX_CHARS}) in {line:?}"
        ));
    }
    let mut seen = HashSet::new();
    if let Some((k, _)) = labels.iter().find(|(k, _)| !seen.insert(k.as_str())) {
        return Err(format!("exemplar label {k} repeated in {line:?}"));
    }
    let fields = after
        .strip_prefix(' ')
        .ok_or(format!("exemplar without a value in {line:?}"))?;
    let mut parts = fields.split(' ');
    let value = parse_value(parts.next().unwrap_or(""))?;
    let timestamp = parts.next().map(parse_value).transpose()?;
    if parts.next().is_some() || timestamp.is_some_and(|t| !t.is_finite()) {
        return Err(format!("junk after the exemplar in {line:?}"));
    }
    Ok(Some(Exemplar {
        labels,
        value,
        timestamp,
    }))
}

/// One metric family: its metadata and samples.
#[derive(Debug, Clone, Default)]
pub struct Family {
    /// The family name.
    pub name: String,
    /// `# TYPE` (empty when absent).
    pub kind: String,
    /// `# HELP`, unescaped.
    pub help: Option<String>,
    /// `# UNIT` (OpenMetrics).
    pub unit: Option<String>,
    /// Its samples in order.
    pub samples: Vec<Sample>,
}

fn is_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

fn is_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn unescape(s: &str, quote: bool) -> Result<String, String> {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('"') if quote => out.push('"'),
                other => return Err(format!("bad escape \\{other:?} in {s:?}")),
            }
        } else if c == '\n' {
            return Err(format!("raw newline in {s:?}"));
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => s
            .parse::<f64>()
            .map_err(|e| format!("bad value {s:?}: {e}")),
    }
}

/// Label pairs in order of appearance.
pub type LabelPairs = Vec<(String, String)>;

/// Per histogram series: `(le, cumulative count, exemplar value)` buckets, `_count`, `_sum`.
type HistogramSeries = (Vec<(f64, f64, Option<f64>)>, Option<f64>, Option<f64>);

fn parse_labels(s: &str) -> Result<(LabelPairs, &str), String> {
    let mut labels = Vec::new();
    let mut rest = s;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut end = None;
        let mut esc = false;
        for (i, c) in rest.char_indices() {
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                end = Some(i);
                break;
            }
        }
        let end = end.ok_or("unterminated label value")?;
        labels.push((name.to_string(), unescape(&rest[..end], true)?));
        rest = &rest[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return Err(format!("expected , or }} at {rest:?}"));
        }
    }
}

/// Parses and checks an exposition; returns its families in order.
pub fn parse(text: &[u8], openmetrics: bool) -> Result<Vec<Family>, String> {
    let text = std::str::from_utf8(text).map_err(|e| e.to_string())?;
    if !text.ends_with('\n') {
        return Err("body does not end with a newline".into());
    }
    let mut fams: Vec<Family> = Vec::new();
    let mut seen_series = HashSet::new();
    let mut eof = false;
    for line in text.lines() {
        if eof {
            return Err("content after # EOF".into());
        }
        if openmetrics && line == "# EOF" {
            eof = true;
            continue;
        }
        if let Some(meta) = line.strip_prefix("# ") {
            let (kw, rest) = meta
                .split_once(' ')
                .ok_or(format!("bad comment {line:?}"))?;
            let (name, arg) = rest.split_once(' ').unwrap_or((rest, ""));
            if !is_name(name) {
                return Err(format!("bad family name {name:?}"));
            }
            let new = fams.last().is_none_or(|f| f.name != name);
            if new {
                if fams.iter().any(|f| f.name == name) {
                    return Err(format!("family {name} appears twice"));
                }
                fams.push(Family {
                    name: name.into(),
                    ..Default::default()
                });
            }
            let f = fams.last_mut().unwrap();
            if !f.samples.is_empty() {
                return Err(format!("{kw} for {name} after its samples"));
            }
            match kw {
                "HELP" => {
                    if f.help.replace(unescape(arg, openmetrics)?).is_some() {
                        return Err(format!("two HELP for {name}"));
                    }
                }
                "TYPE" => {
                    let ok = if openmetrics {
                        [
                            "counter",
                            "gauge",
                            "histogram",
                            "info",
                            "unknown",
                            "summary",
                            "stateset",
                            "gaugehistogram",
                        ]
                        .contains(&arg)
                    } else {
                        ["counter", "gauge", "histogram", "untyped", "summary"].contains(&arg)
                    };
                    if !ok || !f.kind.is_empty() {
                        return Err(format!("bad or repeated TYPE {arg:?} for {name}"));
                    }
                    f.kind = arg.into();
                }
                "UNIT" if openmetrics => {
                    if !name.ends_with(&format!("_{arg}")) {
                        return Err(format!("unit {arg} not a suffix of {name}"));
                    }
                    f.unit = Some(arg.into());
                }
                _ => return Err(format!("unknown comment {line:?}")),
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or(format!("bad sample {line:?}"))?;
        let name = &line[..name_end];
        if !is_name(name) {
            return Err(format!("bad sample name {name:?}"));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end + 1..])?
        } else {
            (Vec::new(), &line[name_end..])
        };
        let value_text = rest
            .strip_prefix(' ')
            .ok_or(format!("no value in {line:?}"))?;
        let (value_text, after) = value_text
            .find(' ')
            .map_or((value_text, ""), |i| value_text.split_at(i));
        let value = parse_value(value_text)?;
        let exemplar = parse_exemplar(after, openmetrics, line)?;
        let f = fams
            .last_mut()
            .ok_or(format!("sample {name} without a family"))?;
        let suffixes: &[&str] = match (f.kind.as_str(), openmetrics) {
            ("counter", true) => &["_total", "_created"],
            ("counter", false) => &[""],
            ("histogram", _) => &["_bucket", "_sum", "_count", "_created"],
            ("info", _) => &["_info"],
            _ => &[""],
        };
        if !suffixes.iter().any(|s| name == format!("{}{}", f.name, s)) {
            return Err(format!(
                "sample {name} does not belong to family {} ({})",
                f.name, f.kind
            ));
        }
        let exemplar_allowed = match f.kind.as_str() {
            "counter" => name.ends_with("_total"),
            "histogram" | "gaugehistogram" => name.ends_with("_bucket"),
            _ => false,
        };
        if exemplar.is_some() && !exemplar_allowed {
            return Err(format!(
                "exemplar on {name} ({}): only a counter's _total or a histogram's _bucket may carry one",
                f.kind
            ));
        }
        let mut key: Vec<_> = labels.clone();
        key.sort();
        if !seen_series.insert((name.to_string(), key)) {
            return Err(format!("duplicate series {line:?}"));
        }
        f.samples.push(Sample {
            name: name.into(),
            labels,
            value,
            exemplar,
        });
    }
    if openmetrics && !eof {
        return Err("missing # EOF".into());
    }
    for f in &fams {
        if f.kind == "histogram" {
            check_histogram(f)?;
        }
    }
    Ok(fams)
}

fn check_histogram(f: &Family) -> Result<(), String> {
    // Group by labels without `le`.
    let mut series: BTreeMap<LabelPairs, HistogramSeries> = BTreeMap::new();
    for s in &f.samples {
        let mut key: Vec<_> = s
            .labels
            .iter()
            .filter(|(k, _)| k != "le")
            .cloned()
            .collect();
        key.sort();
        let e = series.entry(key).or_default();
        if s.name.ends_with("_bucket") {
            let le = s
                .labels
                .iter()
                .find(|(k, _)| k == "le")
                .ok_or("bucket without le")?;
            e.0.push((
                parse_value(&le.1)?,
                s.value,
                s.exemplar.as_ref().map(|x| x.value),
            ));
        } else if s.name.ends_with("_count") {
            e.1 = Some(s.value);
        } else if s.name.ends_with("_sum") {
            e.2 = Some(s.value);
        }
    }
    for (labels, (buckets, count, sum)) in series {
        let last = buckets
            .last()
            .ok_or(format!("{} {labels:?}: no buckets", f.name))?;
        if last.0 != f64::INFINITY {
            return Err(format!("{} {labels:?}: no +Inf bucket", f.name));
        }
        let mut below = f64::NEG_INFINITY;
        for &(le, _, exemplar) in &buckets {
            if let Some(v) = exemplar {
                if !(v > below && v <= le) {
                    return Err(format!(
                        "{} {labels:?}: exemplar value {v} outside its bucket ({below}, {le}]",
                        f.name
                    ));
                }
            }
            below = le;
        }
        for w in buckets.windows(2) {
            if w[1].0 <= w[0].0 {
                return Err(format!("{}: le not increasing", f.name));
            }
            if w[1].1 < w[0].1 {
                return Err(format!("{}: buckets not cumulative", f.name));
            }
        }
        if Some(last.1) != count {
            return Err(format!(
                "{}: +Inf bucket {} != _count {count:?}",
                f.name, last.1
            ));
        }
        if sum.is_none() {
            return Err(format!("{}: no _sum", f.name));
        }
    }
    Ok(())
}
