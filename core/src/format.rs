//! Exposition formats and HTTP content negotiation.
//!
//! [`Format::negotiate`] picks the format from an `Accept` header; [`qualities`] is the one
//! parser of HTTP quality values (`q=`) in the workspace, also used by `vitals-std` for
//! `Accept-Encoding`. Neither allocates, and no input makes them panic.
//!
//! ```
//! use vitals_core::format::{qualities, Format};
//!
//! assert_eq!(
//!     Format::negotiate("application/openmetrics-text;version=1.0.0, text/plain;q=0.5"),
//!     Format::OpenMetrics,
//! );
//! let gzip = qualities("br;q=1.0, gzip;q=0.5").any(|(coding, q)| coding == "gzip" && q > 0);
//! assert!(gzip);
//! ```

/// Content-Type of Prometheus text format 0.0.4 (exactly as Prometheus expects it).
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content-Type of OpenMetrics 1.0.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0 text format.
    OpenMetrics,
}

impl Format {
    /// The HTTP Content-Type for this format.
    pub const fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => PROMETHEUS_CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }

    /// Chooses a format from an HTTP `Accept` header: OpenMetrics only when the client asks for
    /// `application/openmetrics-text` with a quality at least that of any text format it accepts;
    /// Prometheus text otherwise (including for a missing or malformed header).
    pub fn negotiate(accept: &str) -> Format {
        let (mut om, mut text) = (0u16, 0u16);
        for (media, q) in qualities(accept) {
            if media.eq_ignore_ascii_case("application/openmetrics-text") {
                om = om.max(q);
            } else if media.eq_ignore_ascii_case("text/plain")
                || media == "*/*"
                || media.eq_ignore_ascii_case("text/*")
            {
                text = text.max(q);
            }
        }
        if om > 0 && om >= text {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }
}

/// The elements of an HTTP list header with quality values (`Accept`, `Accept-Encoding`), each
/// as `(value, quality)`: the value without its parameters and trimmed, the quality in
/// thousandths (`q=0.75` → 750; no `q` → 1000; a malformed `q` → 0, as if refused). The first
/// `q` parameter counts; the value's other parameters are ignored.
///
/// ```
/// use vitals_core::format::qualities;
///
/// let mut it = qualities("gzip;q=0.8, identity;q=0, *;q=abc, br");
/// assert_eq!(it.next(), Some(("gzip", 800)));
/// assert_eq!(it.next(), Some(("identity", 0)));
/// assert_eq!(it.next(), Some(("*", 0)));
/// assert_eq!(it.next(), Some(("br", 1000)));
/// assert_eq!(it.next(), None);
/// ```
pub fn qualities(header: &str) -> Qualities<'_> {
    Qualities {
        items: header.split(','),
    }
}

/// The iterator of [`qualities`].
#[derive(Debug, Clone)]
pub struct Qualities<'a> {
    items: core::str::Split<'a, char>,
}

impl<'a> Iterator for Qualities<'a> {
    type Item = (&'a str, u16);

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.items.next()?;
        let mut parts = item.split(';');
        let value = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                (k.trim().eq_ignore_ascii_case("q")).then(|| parse_q(v.trim()))
            })
            .next()
            .unwrap_or(1000);
        Some((value, q))
    }
}

/// Parses an HTTP quality value into thousandths: `0` or `1`, then optionally a point and at
/// most three digits, never above `1` (RFC 9110 `qvalue`: `0.5`, `1.000`). Anything else is
/// malformed and counts as 0.
fn parse_q(v: &str) -> u16 {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    let mut milli = 0u16;
    let mut scale = 100u16;
    for b in frac.bytes() {
        milli += (b - b'0') as u16 * scale;
        scale /= 10;
    }
    match (int, milli) {
        ("0", m) => m,
        ("1", 0) => 1000,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(Format::negotiate(""), Format::Prometheus);
        assert_eq!(Format::negotiate("text/plain"), Format::Prometheus);
        assert_eq!(
            Format::negotiate("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::negotiate("application/openmetrics-text;q=0.2, text/plain;q=0.9"),
            Format::Prometheus
        );
        assert_eq!(
            Format::negotiate("application/openmetrics-text;q=0"),
            Format::Prometheus
        );
        assert_eq!(
            Format::negotiate("application/openmetrics-text;q=abc"),
            Format::Prometheus
        );
    }

    #[test]
    fn quality_values() {
        assert_eq!(parse_q("0.75"), 750);
        assert_eq!(parse_q("1.000"), 1000);
        assert_eq!(parse_q("1"), 1000);
        assert_eq!(parse_q("0"), 0);
        assert_eq!(parse_q("0.001"), 1);
        assert_eq!(parse_q("2"), 0);
        assert_eq!(parse_q("0.0001"), 0);
        assert_eq!(parse_q("0.5x"), 0);
        assert_eq!(parse_q(""), 0);
        assert_eq!(parse_q("1.5"), 0);
        assert_eq!(parse_q("1."), 1000);
        assert_eq!(parse_q("0."), 0);
        assert_eq!(parse_q(".5"), 0);
        assert_eq!(parse_q("0.+5"), 0);
        let all: [(&str, u16); 3] = [("a", 1000), ("b", 500), ("", 1000)];
        assert!(qualities("a, b ; Q=0.5,").eq(all));
    }
}
