//! Structured logs through `tracing`, as text or one JSON object per line, always on stderr (so
//! stdout stays free for the MCP stdio transport).
//!
//! Log lines carry values a client chose (JSON-RPC ids, tool names, error messages), so every
//! field is made safe before it is written, in both formats:
//! - control characters (newline, carriage return, ESC, DEL, C1 controls) and the Unicode line
//!   separators and bidirectional overrides are escaped (`\n`, `\u{1b}`, ...) in text lines, so a
//!   client cannot forge a log line or drive the operator's terminal; JSON lines escape them as
//!   JSON does;
//! - every value is cut at [`MAX_FIELD_BYTES`] (with a marker saying how much was dropped), so
//!   one request cannot write megabytes of log.
//!
//! [`directives`] keeps `rmcp`'s own logs at `warn` unless the filter names `rmcp`: at `info` it
//! prints whole payloads and session ids. [`Sampler`] thins out repeated refusal lines.

use std::fmt::{self, Write as _};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// Longest logged value of one field (message included), in bytes of output before the
/// truncation marker.
pub const MAX_FIELD_BYTES: usize = 1024;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON object per line (fields flattened, with timestamp, level and target).
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format `{other}` (expected text or json)"
            )),
        }
    }
}

/// Why logging could not be set up.
#[derive(Debug)]
pub enum LoggingError {
    /// The level or filter directive does not parse.
    Filter(String),
    /// A global subscriber was already installed.
    AlreadyInstalled,
}

impl std::fmt::Display for LoggingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoggingError::Filter(e) => write!(f, "invalid log level/filter: {e}"),
            LoggingError::AlreadyInstalled => {
                f.write_str("a global tracing subscriber is already installed")
            }
        }
    }
}

impl std::error::Error for LoggingError {}

/// The filter directives for `level`: `level` itself, plus `rmcp=warn` unless `level` already
/// says something about `rmcp` or its global level is `warn` or quieter. An empty `level` means
/// `info`.
///
/// ```
/// use vitals_std::logging::directives;
/// assert_eq!(directives("info"), "info,rmcp=warn");
/// assert_eq!(directives("debug,rmcp=debug"), "debug,rmcp=debug");
/// assert_eq!(directives("error"), "error");
/// ```
pub fn directives(level: &str) -> String {
    let level = level.trim();
    let level = if level.is_empty() { "info" } else { level };
    let names_rmcp = level
        .split(',')
        .any(|d| d.trim().split(['=', '[', ':']).next() == Some("rmcp"));
    let global = level
        .split(',')
        .map(str::trim)
        .rfind(|d| !d.contains('='))
        .unwrap_or("error")
        .to_ascii_lowercase();
    let quiet = matches!(global.as_str(), "off" | "error" | "warn");
    if names_rmcp || quiet {
        level.to_owned()
    } else {
        format!("{level},rmcp=warn")
    }
}

/// Installs the global subscriber: `level` is a level (`info`) or an `EnvFilter` directive
/// (`info,rmcp=warn`), completed by [`directives`]; lines go to stderr in `format`, every field
/// escaped and bounded (see the [module docs](self)).
pub fn init(format: LogFormat, level: &str) -> Result<(), LoggingError> {
    let filter =
        EnvFilter::try_new(directives(level)).map_err(|e| LoggingError::Filter(e.to_string()))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .fmt_fields(SafeFields);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.event_format(JsonLines).try_init(),
    };
    result.map_err(|_| LoggingError::AlreadyInstalled)
}

/// Whether `c` must not reach a log line raw: controls, line/paragraph separators, and the
/// invisible formatting characters that reorder or hide text (bidi overrides, zero-width).
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// A `fmt::Write` that escapes unsafe characters (when `escape` is set) and keeps at most
/// [`MAX_FIELD_BYTES`] bytes, counting what it dropped. Formatting a huge value still walks it,
/// but never holds more than the bound.
struct Bounded {
    out: String,
    escape: bool,
    dropped: usize,
}

impl Bounded {
    fn new(escape: bool) -> Self {
        Bounded {
            out: String::new(),
            escape,
            dropped: 0,
        }
    }

    /// Appends `piece`, or as much of it as fits (cut on a char boundary); counts the rest.
    fn push(&mut self, piece: &str) {
        let room = MAX_FIELD_BYTES.saturating_sub(self.out.len());
        if self.dropped == 0 && piece.len() <= room {
            self.out.push_str(piece);
            return;
        }
        let mut cut = if self.dropped > 0 { 0 } else { room };
        while !piece.is_char_boundary(cut) {
            cut -= 1;
        }
        self.out.push_str(&piece[..cut]);
        self.dropped += piece.len() - cut;
    }

    fn finish(mut self) -> String {
        if self.dropped > 0 {
            let _ = write!(self.out, "…(+{} bytes)", self.dropped);
        }
        self.out
    }
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if !self.escape {
            self.push(s);
            return Ok(());
        }
        let mut start = 0;
        for (i, c) in s.char_indices() {
            if is_unsafe(c) {
                self.push(&s[start..i]);
                let mut esc = [0u8; 12];
                let esc = match c {
                    '\n' => "\\n",
                    '\r' => "\\r",
                    '\t' => "\\t",
                    c => {
                        let mut w = Cursor(&mut esc, 0);
                        let _ = write!(w, "\\u{{{:x}}}", c as u32);
                        let n = w.1;
                        std::str::from_utf8(&esc[..n]).unwrap_or("\\u{?}")
                    }
                };
                self.push(esc);
                start = i + c.len_utf8();
            }
        }
        self.push(&s[start..]);
        Ok(())
    }
}

/// A tiny fixed-buffer writer for escape sequences.
struct Cursor<'a>(&'a mut [u8; 12], usize);

impl fmt::Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.1 + s.len();
        if end > self.0.len() {
            return Err(fmt::Error);
        }
        self.0[self.1..end].copy_from_slice(s.as_bytes());
        self.1 = end;
        Ok(())
    }
}

/// `value` made safe for a text line: unsafe characters escaped, cut at [`MAX_FIELD_BYTES`].
///
/// ```
/// use vitals_std::logging::escape;
/// assert_eq!(escape("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
/// ```
pub fn escape(value: &str) -> String {
    let mut b = Bounded::new(true);
    let _ = b.write_str(value);
    b.finish()
}

/// Formats one `Debug` value (which also carries `%display` fields) bounded, escaped or not.
fn bounded_debug(value: &dyn fmt::Debug, escape: bool) -> String {
    let mut b = Bounded::new(escape);
    let _ = write!(b, "{value:?}");
    b.finish()
}

/// The text formatter's fields: `message key=value ...`, like `tracing_subscriber`'s default,
/// with every value escaped and bounded.
#[derive(Debug)]
pub struct SafeFields;

impl<'writer> FormatFields<'writer> for SafeFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut v = TextVisitor {
            writer: &mut writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

struct TextVisitor<'a, 'w> {
    writer: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl TextVisitor<'_, '_> {
    fn sep(&mut self) -> fmt::Result {
        if !std::mem::replace(&mut self.first, false) {
            self.writer.write_char(' ')?;
        }
        Ok(())
    }

    fn emit(&mut self, field: &Field, value: &str, quoted: bool) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            self.sep()?;
            if field.name() == "message" {
                return self.writer.write_str(value);
            }
            if quoted {
                write!(self.writer, "{}=\"{}\"", field.name(), value)
            } else {
                write!(self.writer, "{}={}", field.name(), value)
            }
        })();
    }
}

impl Visit for TextVisitor<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.emit(field, &escape(value), false);
        } else {
            let quoted = escape(&value.replace('\\', "\\\\").replace('"', "\\\""));
            self.emit(field, &quoted, true);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.emit(field, &value.to_string(), false);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.emit(field, &value.to_string(), false);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.emit(field, &value.to_string(), false);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.emit(field, if value { "true" } else { "false" }, false);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let s = bounded_debug(value, true);
        self.emit(field, &s, false);
    }
}

/// The JSON formatter: one object per line with `timestamp`, `level`, the event's fields
/// (flattened, numbers and booleans as JSON values, every string cut at [`MAX_FIELD_BYTES`]),
/// `trace_id` and `span_id` (lowercase hex, as in W3C `traceparent`) when an OpenTelemetry span
/// is current (feature `otel`, traces exported: the SERVER span of the MCP request being
/// handled), and `target`. JSON escaping keeps control characters out of the line.
#[derive(Debug)]
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let meta = event.metadata();
        let mut line = String::with_capacity(256);
        line.push('{');
        push_json_pair(&mut line, "timestamp", &serde_json::Value::from(timestamp));
        line.push(',');
        push_json_pair(
            &mut line,
            "level",
            &serde_json::Value::from(meta.level().as_str()),
        );
        let mut v = JsonVisitor { line: &mut line };
        event.record(&mut v);
        // The span of the request being handled, when traces are exported (crate::otel).
        #[cfg(feature = "otel")]
        if let Some((trace, span)) = crate::otel::current_ids() {
            let _ = write!(line, ",\"trace_id\":\"{trace}\",\"span_id\":\"{span}\"");
        }
        line.push(',');
        push_json_pair(&mut line, "target", &serde_json::Value::from(meta.target()));
        line.push('}');
        writeln!(writer, "{line}")
    }
}

fn push_json_pair(line: &mut String, name: &str, value: &serde_json::Value) {
    line.push_str(&serde_json::Value::from(name).to_string());
    line.push(':');
    line.push_str(&value.to_string());
}

struct JsonVisitor<'a> {
    line: &'a mut String,
}

impl JsonVisitor<'_> {
    fn add(&mut self, field: &Field, value: serde_json::Value) {
        self.line.push(',');
        push_json_pair(self.line, field.name(), &value);
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let mut b = Bounded::new(false);
        let _ = b.write_str(value);
        self.add(field, b.finish().into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.add(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.add(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.add(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.add(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.add(field, bounded_debug(value, false).into());
    }
}

/// Thins out a stream of repeated log events (refusals: 429s, rejected connections): at most one
/// event per period is let through, carrying how many were held back since the last one.
///
/// ```
/// use std::time::Duration;
/// use vitals_std::logging::Sampler;
/// let s = Sampler::new(Duration::from_secs(60));
/// assert_eq!(s.sample(), Some(0));
/// assert_eq!(s.sample(), None);
/// assert_eq!(s.sample(), None);
/// ```
#[derive(Debug)]
pub struct Sampler {
    origin: Instant,
    period_us: u64,
    /// Microseconds since `origin` of the next event let through (0: the first one).
    next_us: AtomicU64,
    held_back: AtomicU64,
}

impl Sampler {
    /// A sampler letting one event through per `period`.
    pub fn new(period: Duration) -> Self {
        Sampler {
            origin: Instant::now(),
            period_us: period.as_micros().min(u128::from(u64::MAX)) as u64,
            next_us: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when this event should be logged (`n` events were held back since the previous
    /// one), `None` when it should be dropped.
    pub fn sample(&self) -> Option<u64> {
        self.sample_at(self.origin.elapsed().as_micros().min(u128::from(u64::MAX)) as u64)
    }

    fn sample_at(&self, now: u64) -> Option<u64> {
        let next = self.next_us.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_us
                .compare_exchange(
                    next,
                    now.saturating_add(self.period_us),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.held_back.swap(0, Ordering::Relaxed));
        }
        self.held_back.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};

    #[test]
    fn formats_parse() {
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("text".parse::<LogFormat>(), Ok(LogFormat::Text));
        assert!("xml".parse::<LogFormat>().is_err());
    }

    #[test]
    fn directives_keep_rmcp_quiet() {
        assert_eq!(directives(""), "info,rmcp=warn");
        assert_eq!(directives("debug"), "debug,rmcp=warn");
        assert_eq!(directives("warn"), "warn");
        assert_eq!(directives("info,rmcp=info"), "info,rmcp=info");
        assert_eq!(directives("rmcp::transport=debug"), "rmcp::transport=debug");
        assert_eq!(directives("vitals=debug"), "vitals=debug");
    }

    #[test]
    fn escapes_and_bounds() {
        assert_eq!(escape("ok"), "ok");
        assert_eq!(escape("a\r\n\u{7f}\u{202e}"), "a\\r\\n\\u{7f}\\u{202e}");
        let long = "é".repeat(2000);
        let e = escape(&long);
        assert!(e.len() < MAX_FIELD_BYTES + 32, "{}", e.len());
        assert!(e.ends_with("…(+2976 bytes)"), "{e}");
        let d = bounded_debug(&"x".repeat(5000), false);
        assert!(d.len() < MAX_FIELD_BYTES + 32);
    }

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn capture(json: bool, f: impl FnOnce()) -> String {
        let sink = Sink::default();
        let out = sink.clone();
        let builder = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .fmt_fields(SafeFields);
        if json {
            tracing::subscriber::with_default(builder.event_format(JsonLines).finish(), f);
        } else {
            tracing::subscriber::with_default(builder.finish(), f);
        }
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn text_lines_cannot_be_forged() {
        let id = "7\n2030-01-01T00:00:00Z  INFO forged\u{1b}[31m";
        let text = capture(false, || {
            tracing::warn!(%id, other = id, n = 3, big = %"y".repeat(100_000), "response error {id}");
        });
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.contains("id=7\\n2030"), "{text}");
        assert!(text.contains("n=3"), "{text}");
        assert!(text.len() < 4 * MAX_FIELD_BYTES + 512, "{}", text.len());
    }

    #[test]
    fn json_lines_are_bounded_and_typed() {
        let text = capture(true, || {
            tracing::info!(status = 200u64, ok = true, big = %"z".repeat(100_000), s = "a\nb", "http request");
        });
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["status"], 200);
        assert_eq!(v["ok"], true);
        assert_eq!(v["s"], "a\nb");
        assert_eq!(v["message"], "http request");
        assert_eq!(v["level"], "INFO");
        assert!(v["timestamp"].is_string());
        assert!(v["big"].as_str().unwrap().len() < MAX_FIELD_BYTES + 32);
    }

    #[cfg(feature = "otel")]
    #[test]
    fn json_lines_carry_the_current_spans_ids() {
        use crate::otel::testing::{collected, meta_with_parent, server_span};
        use opentelemetry::trace::TraceContextExt as _;
        collected();
        let trace = "6bf92f3577b34da6a3ce929d0e0e4736";
        let server = server_span(&meta_with_parent(trace, "00f067aa0ba902b7"), "t");
        let span_id = server.context().span().span_context().span_id().to_string();
        let inside = {
            let _in_request = server.context().clone().attach();
            capture(true, || tracing::info!(n = 1, "inside a request"))
        };
        let outside = capture(true, || tracing::info!("outside"));
        let v: serde_json::Value = serde_json::from_str(inside.trim()).unwrap();
        assert_eq!(v["trace_id"], trace, "{inside}");
        assert_eq!(v["span_id"], span_id.as_str(), "{inside}");
        assert_eq!(span_id.len(), 16);
        assert_ne!(span_id, "00f067aa0ba902b7", "our span, not the client's");
        assert_eq!(v["n"], 1);
        let v: serde_json::Value = serde_json::from_str(outside.trim()).unwrap();
        assert!(
            v.get("trace_id").is_none() && v.get("span_id").is_none(),
            "{outside}"
        );
    }

    #[test]
    fn sampler_reports_held_back() {
        let s = Sampler::new(Duration::from_millis(10));
        assert_eq!(s.sample_at(0), Some(0));
        assert_eq!(s.sample_at(1_000), None);
        assert_eq!(s.sample_at(9_999), None);
        assert_eq!(s.sample_at(10_000), Some(2));
        assert_eq!(s.sample_at(10_001), None);
        assert_eq!(s.sample_at(50_000), Some(1));
    }
}
