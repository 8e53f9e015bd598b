//! Rendering into a buffer the caller lends, resumably.
//!
//! [`render`] writes as many whole lines as fit into `buf`, remembers in the [`Cursor`] where it
//! stopped, and continues there on the next call; it returns `Ok(0)` exactly when the exposition is
//! complete. A line is never split, so the concatenation of the chunks is the same whatever the
//! buffer size (for unchanging values). A line longer than the whole buffer is
//! [`RenderError::BufferTooSmall`] with the size it needs, and the cursor does not move.
//!
//! Histogram buckets are cumulative even when a render spans calls and values change between
//! them: the cursor carries the running count, so `le="+Inf"` always equals `_count`.

use crate::histogram::Carry;
#[cfg(all(feature = "dyn-labels", target_pointer_width = "64"))]
use crate::labels::LabelSource;
use crate::labels::Labels;
#[cfg(feature = "string-labels")]
use crate::labels::{OVERFLOW_VALUE, SEPARATOR};
#[cfg(not(target_pointer_width = "64"))]
use crate::number::scaled_no_div;
#[cfg(feature = "float")]
use crate::number::NumBuf;
use crate::number::{write_i64, write_u64, Digits};
use crate::registry::{Entry, Kind, Registry, Series, Value};
#[cfg(feature = "string-labels")]
use crate::sync::AtomicU8;
#[cfg(feature = "string-labels")]
use crate::sync::Ordering;
use crate::{Format, RenderError};

/// The name of the family that reports updates routed to overflow series.
pub const OVERFLOW_FAMILY: &str = "vitals_label_overflow";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Help,
    Type,
    Unit,
    /// Line `line` of series `index` (the cursor's fields).
    Series,
    Eof,
    Done,
}

/// Where a render stopped. Start each exposition with a new cursor.
// Plain fields only (no enum with data): a render copies the cursor and writes it back per line,
// and fields the compiler can keep in registers are no memory copy (a `memcpy` call on MCUs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    format: Format,
    /// Index of the entry being rendered; `entries.len()` is the overflow family.
    entry: usize,
    phase: Phase,
    /// In [`Phase::Series`]: the series and the line within it.
    index: usize,
    line: usize,
    /// Running cumulative bucket count (and sum) of the histogram series being rendered.
    carry: Carry,
}

impl Cursor {
    /// A cursor at the start of an exposition in `format`.
    pub const fn new(format: Format) -> Self {
        Cursor {
            format,
            entry: 0,
            phase: Phase::Help,
            index: 0,
            line: 0,
            carry: Carry::ZERO,
        }
    }

    /// The format this cursor renders.
    pub const fn format(&self) -> Format {
        self.format
    }

    /// Whether the exposition is complete.
    pub const fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }
}

/// A byte sink over the caller's buffer that keeps counting once full, so an overflowing line
/// reports the size it needs: `pos` past `buf.len()` means the line did not fit. A write that
/// does not fit is counted, not made, and every later write of the line fails too (`pos` only
/// grows), so nothing lands after a gap; the line is rolled back by resetting `pos`.
struct Out<'b> {
    buf: &'b mut [u8],
    pos: usize,
    /// The label block (`{a="b"`, no closing brace) of the histogram series being rendered, as
    /// already written earlier in this buffer: `((entry, series), start, len)`. Each of a
    /// series' N+3 lines repeats it, so later lines copy it instead of re-rendering it. Only on
    /// 64-bit hosts, as the other copies below: MCUs render into small buffers where the copy
    /// source is rarely still there, and flash is worth more than these cycles.
    #[cfg(target_pointer_width = "64")]
    labels_seen: Option<((usize, usize), usize, usize)>,
    /// The same for the start of its bucket lines, `name_bucket{a="b",le="`.
    #[cfg(target_pointer_width = "64")]
    bucket_seen: Option<((usize, usize), usize, usize)>,
    /// `le` values of the histogram family being rendered (entry + 1; 0 = none), as written
    /// earlier in this buffer: `(start, len)` per bucket, `len == 0` when not yet written.
    #[cfg(target_pointer_width = "64")]
    le_entry: usize,
    #[cfg(target_pointer_width = "64")]
    le_seen: [(u32, u8); LE_CACHE],
}

/// Buckets whose `le` text is reused across the series of one family in a render call.
#[cfg(target_pointer_width = "64")]
const LE_CACHE: usize = 16;
/// Copies of at most this many bytes are made as one fixed-size move.
#[cfg(target_pointer_width = "64")]
const SHORT_COPY: usize = 64;
/// Whether `series_line` writes one line per call, the render loop then calling it again (MCUs:
/// flash), instead of every line of the entry that fits (hosts: speed).
const ONE_LINE_PER_CALL: bool = cfg!(not(target_pointer_width = "64"));

impl Out<'_> {
    // On 64-bit hosts the copies are inlined (speed).
    #[cfg(target_pointer_width = "64")]
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        if let Some(dst) = self.buf.get_mut(self.pos..self.pos + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        self.pos += bytes.len();
    }

    // On MCUs one shared byte loop (flash): no call to `memcpy`, whose word-aligned copy costs
    // ~0.6 KiB and is worth nothing for the few bytes of each piece of a line.
    #[cfg(not(target_pointer_width = "64"))]
    #[inline(never)]
    fn put(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.byte(b);
        }
    }

    /// Whether everything written so far fits.
    #[inline(always)]
    fn fits(&self) -> bool {
        self.pos <= self.buf.len()
    }

    /// Copies `len` bytes written earlier in this buffer at `start` to the end.
    #[cfg(target_pointer_width = "64")]
    #[inline]
    fn repeat(&mut self, start: usize, len: usize) {
        if start + len <= self.pos {
            if len <= SHORT_COPY && self.pos + SHORT_COPY <= self.buf.len() {
                // A fixed-size copy (a few vector moves, no call); the bytes past `len` are
                // scratch that later writes overwrite or that lie past the returned length.
                self.buf.copy_within(start..start + SHORT_COPY, self.pos);
            } else if self.pos + len <= self.buf.len() {
                self.buf.copy_within(start..start + len, self.pos);
            }
        }
        self.pos += len;
    }

    /// Writes the label block of a histogram series line, reusing the copy from its previous
    /// line when it is in this buffer. Returns whether any label was written.
    #[cfg(target_pointer_width = "64")]
    #[inline]
    fn series_labels(&mut self, key: (usize, usize), labels: &Labels<'_>) -> bool {
        if let Some((k, start, len)) = self.labels_seen {
            if k == key {
                self.repeat(start, len);
                return len > 0;
            }
        }
        let start = self.pos;
        let any = open_labels(self, labels);
        if self.fits() {
            self.labels_seen = Some((key, start, self.pos - start));
        }
        any
    }

    /// Writes bucket `i`'s `le` value of histogram entry `entry`, reusing an earlier copy.
    #[cfg(target_pointer_width = "64")]
    #[inline]
    fn le(&mut self, entry: usize, i: usize, v: u64, decimals: u8) {
        if self.le_entry != entry + 1 {
            self.le_entry = entry + 1;
            self.le_seen = [(0, 0); LE_CACHE];
        } else if let Some(&(start, len)) = self.le_seen.get(i) {
            if len > 0 {
                self.repeat(start as usize, len as usize);
                return;
            }
        }
        let start = self.pos;
        self.scaled(v, decimals);
        let fits = self.fits();
        if let (Some(slot), true, Ok(s)) = (self.le_seen.get_mut(i), fits, u32::try_from(start)) {
            *slot = (s, (self.pos - start) as u8);
        }
    }

    #[cfg_attr(target_pointer_width = "64", inline(always))]
    #[cfg_attr(not(target_pointer_width = "64"), inline(never))]
    fn byte(&mut self, b: u8) {
        if let Some(dst) = self.buf.get_mut(self.pos) {
            *dst = b;
        }
        self.pos += 1;
    }

    /// Writes `s` escaping `\` and newline, and `"` when `quote` is set: on MCUs byte by byte
    /// (flash).
    #[cfg(not(target_pointer_width = "64"))]
    #[inline(never)]
    fn escaped(&mut self, s: &[u8], quote: bool) {
        for &b in s {
            // Every escape is a backslash and one character.
            let e = match b {
                b'\\' => b'\\',
                b'\n' => b'n',
                b'"' if quote => b'"',
                b => {
                    self.byte(b);
                    continue;
                }
            };
            self.byte(b'\\');
            self.byte(e);
        }
    }

    /// Writes `s` escaping `\` and newline, and `"` when `quote` is set.
    #[cfg(target_pointer_width = "64")]
    #[inline]
    fn escaped(&mut self, s: &[u8], quote: bool) {
        let mut rest = s;
        while let Some(i) = rest
            .iter()
            .position(|&b| b == b'\\' || b == b'\n' || (quote && b == b'"'))
        {
            let (head, tail) = rest.split_at(i);
            self.put(head);
            self.put(match tail.first() {
                Some(b'\n') => b"\\n",
                Some(b'"') => b"\\\"",
                _ => b"\\\\",
            });
            rest = tail.get(1..).unwrap_or(&[]);
        }
        self.put(rest);
    }

    /// Writes one packed label value (up to the separator or the end of `key`), escaped; returns
    /// the bytes consumed including the separator.
    #[cfg(feature = "string-labels")]
    #[inline]
    fn escaped_packed(&mut self, key: &[AtomicU8]) -> usize {
        // Fast path: copy straight into the buffer until a byte needs escaping or ends the value.
        let mut done = 0;
        if self.fits() {
            let room = self.buf.get_mut(self.pos..).unwrap_or(&mut []);
            for (d, a) in room.iter_mut().zip(key.iter()) {
                let b = a.load(Ordering::Relaxed);
                if matches!(b, SEPARATOR | b'\\' | b'\n' | b'"') {
                    break;
                }
                *d = b;
                done += 1;
            }
            self.pos += done;
        }
        let rest = key.get(done..).unwrap_or(&[]);
        for (i, a) in rest.iter().enumerate() {
            let i = i + done;
            match a.load(Ordering::Relaxed) {
                SEPARATOR => return i + 1,
                b'\\' => self.put(b"\\\\"),
                b'\n' => self.put(b"\\n"),
                b'"' => self.put(b"\\\""),
                b => self.byte(b),
            }
        }
        key.len()
    }

    /// Writes ` # {trace_id="…",span_id="…"} value timestamp` (OpenMetrics exemplar; the label
    /// set is 63 characters, within the 128 allowed).
    #[cfg(feature = "exemplars")]
    fn exemplar(&mut self, e: &crate::Exemplar, value: u64, decimals: u8) {
        self.put(b" # {trace_id=\"");
        self.hex(&e.trace_id());
        self.put(b"\",span_id=\"");
        self.hex(&e.span_id());
        self.put(b"\"} ");
        self.scaled(value, decimals);
        if let Some(ms) = e.timestamp_millis() {
            self.byte(b' ');
            self.scaled(ms, 3);
        }
    }

    /// Writes `bytes` as lowercase hex.
    #[cfg(feature = "exemplars")]
    fn hex(&mut self, bytes: &[u8]) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for b in bytes {
            self.byte(DIGITS[usize::from(b >> 4)]);
            self.byte(DIGITS[usize::from(b & 15)]);
        }
    }

    #[cfg_attr(target_pointer_width = "64", inline)]
    #[cfg_attr(not(target_pointer_width = "64"), inline(always))]
    fn u64(&mut self, v: u64) {
        if cfg!(target_pointer_width = "64") {
            let mut d = Digits::new();
            self.put(write_u64(&mut d, v));
        } else {
            // On MCUs, one integer writer (flash).
            self.scaled(v, 0);
        }
    }

    #[inline]
    fn i64(&mut self, v: i64) {
        if cfg!(target_pointer_width = "64") {
            self.put(write_i64(&mut Digits::new(), v));
        } else {
            // On MCUs, the sign and then the one integer writer (flash).
            if v < 0 {
                self.byte(b'-');
            }
            self.scaled(v.unsigned_abs(), 0);
        }
    }

    /// Writes `v / 10^decimals` exactly (see [`NumBuf::scaled`]): on MCUs digit by digit, with no
    /// division and no copy (flash).
    #[cfg(not(target_pointer_width = "64"))]
    #[inline(never)]
    fn scaled(&mut self, v: u64, decimals: u8) {
        scaled_no_div(v, decimals, |b| self.byte(b));
    }

    /// Writes `v / 10^decimals` exactly (see [`NumBuf::scaled`]), straight into the buffer.
    #[cfg(target_pointer_width = "64")]
    #[inline]
    fn scaled(&mut self, v: u64, decimals: u8) {
        let mut ib = Digits::new();
        let digits = write_u64(&mut ib, v);
        let d = decimals.min(19) as usize;
        if d == 0 {
            self.put(digits);
            return;
        }
        let (int, frac) = digits.split_at(digits.len().saturating_sub(d));
        if int.is_empty() {
            self.byte(b'0');
        } else {
            self.put(int);
        }
        let keep = frac.iter().rposition(|&b| b != b'0').map_or(0, |p| p + 1);
        if keep > 0 {
            self.byte(b'.');
            self.put(b"0000000000000000000".get(..d - frac.len()).unwrap_or(&[]));
            self.put(frac.get(..keep).unwrap_or(&[]));
        }
    }
}

/// Renders the next whole lines of `registry` into `buf`. Returns the number of bytes written;
/// `Ok(0)` means the exposition is complete (and [`Cursor::is_done`] is true).
pub fn render(
    registry: &Registry<'_>,
    cursor: &mut Cursor,
    buf: &mut [u8],
) -> Result<usize, RenderError> {
    let mut out = Out {
        buf,
        pos: 0,
        #[cfg(target_pointer_width = "64")]
        labels_seen: None,
        #[cfg(target_pointer_width = "64")]
        bucket_seen: None,
        #[cfg(target_pointer_width = "64")]
        le_entry: 0,
        #[cfg(target_pointer_width = "64")]
        le_seen: [(0, 0); LE_CACHE],
    };
    loop {
        let mut next = *cursor;
        let start = out.pos;
        match step(registry.entries(), &mut next, &mut out) {
            Step::Done => {
                *cursor = next;
                return Ok(out.pos);
            }
            Step::Skip => *cursor = next,
            Step::Full => {
                *cursor = next;
                return Ok(out.pos);
            }
            Step::Line => {
                if !out.fits() {
                    let needed = out.pos - start;
                    if start == 0 {
                        return Err(RenderError::BufferTooSmall { needed });
                    }
                    return Ok(start);
                }
                *cursor = next;
            }
        }
    }
}

enum Step {
    /// One line was written (or overflowed); `cursor` is past it.
    Line,
    /// Whole lines were written and the next one does not fit (it was rolled back); `cursor` is
    /// at that line.
    Full,
    /// The cursor moved without writing.
    Skip,
    /// Nothing left.
    Done,
}

/// The synthetic family that reports updates routed to overflow series (it has no series of its
/// own: its lines are read from the other entries).
#[cfg(feature = "string-labels")]
static OVERFLOW_ENTRY: Entry<'static> = {
    match Entry::try_dyn(
        OVERFLOW_FAMILY,
        "Updates to full families.",
        Kind::Counter,
        &NoSeries,
    ) {
        Ok(e) => e,
        Err(_) => panic!("the overflow family's name is valid"),
    }
};

/// The overflow entry's metric: no series of its own (a unit struct, so the entry is a constant
/// in every build, loom's included, where atomics have no `const` constructor).
#[cfg(feature = "string-labels")]
struct NoSeries;

#[cfg(feature = "string-labels")]
impl crate::registry::Collect for NoSeries {
    fn series_len(&self) -> usize {
        0
    }
    fn series(&self, _: usize) -> Option<Series<'_>> {
        None
    }
}

/// Family-level facts the renderer reads for the current entry (a user entry or the synthetic
/// overflow family): on hosts a copy of the entry's (its fields stay in registers across a run of
/// lines: speed), on MCUs the entry itself, borrowed (no copy: flash).
#[cfg(target_pointer_width = "64")]
struct Family<'e> {
    name: &'e str,
    help: &'e str,
    unit: Option<&'e str>,
    kind: Kind,
}

#[cfg(target_pointer_width = "64")]
impl<'e> Family<'e> {
    fn name(&self) -> &'e str {
        self.name
    }
    fn help(&self) -> &'e str {
        self.help
    }
    fn unit_name(&self) -> Option<&'e str> {
        self.unit
    }
    fn kind(&self) -> Kind {
        self.kind
    }
}

/// The family facts of `e` (see [`Family`]).
#[cfg(target_pointer_width = "64")]
fn family<'e>(e: &Entry<'e>) -> Family<'e> {
    Family {
        name: e.name(),
        help: e.help(),
        unit: e.unit_name(),
        kind: e.kind(),
    }
}

/// On MCUs the entry itself.
#[cfg(not(target_pointer_width = "64"))]
type Family<'e> = Entry<'e>;

/// The family facts of `e` (see [`Family`]): on MCUs the entry, borrowed.
#[cfg(not(target_pointer_width = "64"))]
fn family<'e>(e: &'e Entry<'e>) -> &'e Family<'e> {
    e
}

fn step(entries: &[Entry<'_>], c: &mut Cursor, out: &mut Out<'_>) -> Step {
    let om = c.format == Format::OpenMetrics;
    let fam = &match entries.get(c.entry) {
        Some(e) => family(e),
        // The synthetic overflow family, present only when some family can overflow.
        #[cfg(feature = "string-labels")]
        None if c.entry == entries.len() => {
            if matches!(c.phase, Phase::Help)
                && !entries.iter().any(|e| e.metric().overflow().is_some())
            {
                c.entry += 1;
                c.phase = Phase::Eof;
                return Step::Skip;
            }
            family(&OVERFLOW_ENTRY)
        }
        // Without string labels no family overflows: no code or text for that family.
        #[cfg(not(feature = "string-labels"))]
        None if c.entry == entries.len() => {
            c.entry += 1;
            c.phase = Phase::Eof;
            return Step::Skip;
        }
        None => {
            return match c.phase {
                Phase::Eof if om => {
                    out.put(b"# EOF\n");
                    c.phase = Phase::Done;
                    Step::Line
                }
                Phase::Done => Step::Done,
                _ => {
                    c.phase = Phase::Done;
                    Step::Skip
                }
            };
        }
    };
    match c.phase {
        Phase::Help => {
            c.phase = Phase::Type;
            if fam.help().is_empty() {
                return Step::Skip;
            }
            out.put(b"# HELP ");
            family_name(out, fam, om);
            out.byte(b' ');
            out.escaped(fam.help().as_bytes(), om);
            out.byte(b'\n');
            Step::Line
        }
        Phase::Type => {
            c.phase = Phase::Unit;
            out.put(b"# TYPE ");
            family_name(out, fam, om);
            out.put(match (fam.kind(), om) {
                (Kind::Counter, _) => b" counter\n",
                (Kind::Gauge, _) | (Kind::Info, false) => b" gauge\n",
                (Kind::Histogram, _) => b" histogram\n",
                (Kind::Info, true) => b" info\n",
            });
            Step::Line
        }
        Phase::Unit => {
            c.phase = Phase::Series;
            c.index = 0;
            c.line = 0;
            match fam.unit_name() {
                Some(u) if om => {
                    out.put(b"# UNIT ");
                    out.put(fam.name().as_bytes());
                    out.byte(b' ');
                    out.put(u.as_bytes());
                    out.byte(b'\n');
                    Step::Line
                }
                _ => Step::Skip,
            }
        }
        Phase::Series => match entries.get(c.entry) {
            Some(e) => series_line(e, fam, c, out),
            #[cfg(feature = "string-labels")]
            None => overflow_line(entries, fam, c, out),
            #[cfg(not(feature = "string-labels"))]
            None => {
                next_entry(c);
                c.phase = Phase::Eof;
                Step::Skip
            }
        },
        Phase::Eof | Phase::Done => {
            c.phase = Phase::Done;
            Step::Skip
        }
    }
}

fn next_entry(c: &mut Cursor) {
    c.entry += 1;
    c.phase = Phase::Help;
    c.carry = Carry::ZERO;
}

fn family_name(out: &mut Out<'_>, fam: &Family<'_>, om: bool) {
    out.put(fam.name().as_bytes());
    if !om {
        match fam.kind() {
            Kind::Counter => out.put(b"_total"),
            Kind::Info => out.put(b"_info"),
            _ => {}
        }
    }
}

fn series_line(e: &Entry<'_>, fam: &Family<'_>, c: &mut Cursor, out: &mut Out<'_>) -> Step {
    // Every line of this entry that fits (one on MCUs: `ONE_LINE_PER_CALL`), from (index, line)
    // on: one dynamic call per series (not per line), and no return to `step` between lines.
    let m = e.metric();
    let end = m.series_len();
    let (mut index, mut line) = (c.index, c.line);
    let mut wrote = false;
    let mut prefix = Prefix::new();
    loop {
        if index >= end {
            next_entry(c);
            return if wrote { Step::Line } else { Step::Skip };
        }
        // Used in place (not moved out): on MCUs a move of it is a `memcpy` call.
        let series = m.series(index);
        let Some(Series { labels, value }) = &series else {
            index += 1;
            line = 0;
            continue;
        };
        match value {
            Value::Histogram(h) => {
                let n = h.le.len();
                if line == 0 {
                    c.carry = Carry::ZERO;
                }
                while line <= n + 2 {
                    let (start, carry) = (out.pos, c.carry);
                    histogram_line(out, fam, labels, h, c, index, line);
                    if !out.fits() {
                        c.carry = carry;
                        return stop(c, out, start, wrote, index, line);
                    }
                    wrote = true;
                    line += 1;
                    if ONE_LINE_PER_CALL {
                        return at(c, index, line);
                    }
                }
            }
            value => {
                let start = out.pos;
                plain_line(out, fam, labels, value, &mut prefix);
                if !out.fits() {
                    return stop(c, out, start, wrote, index, 0);
                }
                wrote = true;
                if ONE_LINE_PER_CALL {
                    return at(c, index + 1, 0);
                }
            }
        }
        index += 1;
        line = 0;
    }
}

/// Ends a run of lines at the line that did not fit (it started at `start`): when earlier lines
/// of the run were written it is rolled back and the render call ends there ([`Step::Full`]);
/// when it was the run's first line, the caller sees the overflow (and the size it needs).
fn stop(
    c: &mut Cursor,
    out: &mut Out<'_>,
    start: usize,
    wrote: bool,
    index: usize,
    line: usize,
) -> Step {
    if wrote {
        at(c, index, line);
        out.pos = start;
        Step::Full
    } else {
        at(c, index, line)
    }
}

/// Moves the cursor to line `line` of series `index` after a line was written ([`Step::Line`]).
fn at(c: &mut Cursor, index: usize, line: usize) -> Step {
    c.phase = Phase::Series;
    c.index = index;
    c.line = line;
    Step::Line
}

/// Line `line` of histogram series `index` of the cursor's entry: buckets `0..n`, `+Inf` (`n`),
/// `_sum`, `_count`. The cursor's `carry` is the running cumulative count. On MCUs one sequence
/// for every kind of line (flash): no label reuse, no exemplars' special case beyond the text.
#[cfg(not(target_pointer_width = "64"))]
#[inline]
fn histogram_line(
    out: &mut Out<'_>,
    fam: &Family<'_>,
    labels: &Labels<'_>,
    h: &crate::registry::HistogramView<'_>,
    c: &mut Cursor,
    _index: usize,
    line: usize,
) {
    let n = h.le.len();
    let bucket = line <= n;
    if bucket {
        c.carry.add(h.tally(line));
    }
    let (suffix, value, decimals): (&[u8], u64, u8) = if bucket {
        (b"_bucket", c.carry.count(), 0)
    } else if line == n + 1 {
        (b"_sum", c.carry.sum(h.sum), h.scale.get())
    } else {
        (b"_count", c.carry.count(), 0)
    };
    out.put(fam.name().as_bytes());
    out.put(suffix);
    let any = open_labels(out, labels);
    if bucket {
        out.byte(if any { b',' } else { b'{' });
        out.put(b"le=\"");
        match h.le.get(line) {
            Some(&le) => out.scaled(le, h.scale.get()),
            None => out.put(b"+Inf"),
        }
        out.put(b"\"}");
    } else if any {
        out.byte(b'}');
    }
    out.byte(b' ');
    out.scaled(value, decimals);
    #[cfg(feature = "exemplars")]
    if bucket && c.format == Format::OpenMetrics {
        if let Some((e, v)) = h.exemplar(line) {
            out.exemplar(&e, v, h.scale.get());
        }
    }
    out.byte(b'\n');
}

/// Line `line` of histogram series `index` of the cursor's entry: buckets `0..n`, `+Inf` (`n`),
/// `_sum`, `_count`. The cursor's `carry` is the running cumulative count.
#[cfg(target_pointer_width = "64")]
#[inline]
fn histogram_line(
    out: &mut Out<'_>,
    fam: &Family<'_>,
    labels: &Labels<'_>,
    h: &crate::registry::HistogramView<'_>,
    c: &mut Cursor,
    index: usize,
    line: usize,
) {
    let key = (c.entry, index);
    let n = h.le.len();
    if line <= n {
        c.carry.add(h.tally(line));
        match out.bucket_seen {
            Some((k, start, len)) if k == key => out.repeat(start, len),
            _ => {
                let start = out.pos;
                out.put(fam.name().as_bytes());
                out.put(b"_bucket");
                let any = out.series_labels(key, labels);
                out.byte(if any { b',' } else { b'{' });
                out.put(b"le=\"");
                if out.fits() {
                    out.bucket_seen = Some((key, start, out.pos - start));
                }
            }
        }
        match h.le.get(line) {
            Some(&le) => out.le(key.0, line, le, h.scale.get()),
            None => out.put(b"+Inf"),
        }
        out.put(b"\"} ");
        out.u64(c.carry.count());
        #[cfg(feature = "exemplars")]
        if c.format == Format::OpenMetrics {
            if let Some((e, v)) = h.exemplar(line) {
                out.exemplar(&e, v, h.scale.get());
            }
        }
    } else {
        let sum = line == n + 1;
        out.put(fam.name().as_bytes());
        out.put(if sum { b"_sum" } else { b"_count" });
        if out.series_labels(key, labels) {
            out.byte(b'}');
        }
        out.byte(b' ');
        if sum {
            out.scaled(c.carry.sum(h.sum), h.scale.get());
        } else {
            out.u64(c.carry.count());
        }
    }
    out.byte(b'\n');
}

/// The sample-name suffix the text format adds for `kind`.
fn suffix(kind: Kind) -> &'static [u8] {
    match kind {
        Kind::Counter => b"_total",
        Kind::Info => b"_info",
        _ => b"",
    }
}

/// The start of every line of a string-labelled family up to its first value
/// (`name_total{first="`), built once per run of the family's lines.
#[cfg_attr(not(feature = "string-labels"), allow(dead_code))]
struct Prefix<'a> {
    /// The label names it was built for (`None`: not built, or too long to keep).
    names: Option<&'a [&'a str]>,
    len: usize,
    bytes: [u8; PREFIX_BYTES],
}

/// Room for a line prefix; longer prefixes are written piece by piece.
const PREFIX_BYTES: usize = if cfg!(target_pointer_width = "64") {
    128
} else {
    0
};

impl<'a> Prefix<'a> {
    fn new() -> Self {
        Prefix {
            names: None,
            len: 0,
            bytes: [0; PREFIX_BYTES],
        }
    }

    /// Builds the prefix for a family with label `names`, unless already built for them;
    /// returns whether it holds one (false without labels, or when it is too long).
    #[cfg(feature = "string-labels")]
    #[inline]
    fn build(&mut self, fam: &Family<'_>, names: &'a [&'a str]) -> bool {
        if let Some(n) = self.names {
            return core::ptr::eq(n, names);
        }
        let Some(first) = names.first() else {
            return false;
        };
        let parts: [&[u8]; 5] = [
            fam.name().as_bytes(),
            suffix(fam.kind()),
            b"{",
            first.as_bytes(),
            b"=\"",
        ];
        let mut len = 0;
        for p in parts {
            match self.bytes.get_mut(len..len + p.len()) {
                Some(d) => d.copy_from_slice(p),
                None => return false,
            }
            len += p.len();
        }
        self.len = len;
        self.names = Some(names);
        true
    }
}

/// The line of a counter, gauge or info series.
#[inline]
fn plain_line<'a>(
    out: &mut Out<'_>,
    fam: &Family<'_>,
    labels: &Labels<'a>,
    value: &Value<'_>,
    #[cfg_attr(not(feature = "string-labels"), allow(unused_variables))] prefix: &mut Prefix<'a>,
) {
    match *labels {
        #[cfg(feature = "string-labels")]
        Labels::Packed { names, key, len } if prefix.build(fam, names) => {
            // `name_total{first="` once per run, then each value and the later names.
            out.put(prefix.bytes.get(..prefix.len).unwrap_or(&[]));
            let mut at = 0;
            for (j, n) in names.iter().enumerate() {
                if j > 0 {
                    out.put(b"\",");
                    out.put(n.as_bytes());
                    out.put(b"=\"");
                }
                let rest = key.get(at..len).unwrap_or(&[]);
                at += out.escaped_packed(rest);
            }
            out.put(b"\"} ");
        }
        _ => {
            out.put(fam.name().as_bytes());
            out.put(suffix(fam.kind()));
            write_labels(out, labels);
            out.byte(b' ');
        }
    }
    match value {
        Value::Counter(x) => out.u64(x.get()),
        Value::Gauge(x) => out.i64(x.get()),
        #[cfg(feature = "float")]
        Value::FloatGauge(x) => out.put(NumBuf::f64(x.get()).as_bytes()),
        Value::Int(x) => out.i64(*x),
        Value::Uint(x) => out.u64(*x),
        #[cfg(feature = "float")]
        Value::Float(x) => out.put(NumBuf::f64(*x).as_bytes()),
        Value::Info | Value::Histogram(_) => out.byte(b'1'),
    }
    out.byte(b'\n');
}

#[cfg(feature = "string-labels")]
fn overflow_line(
    entries: &[Entry<'_>],
    fam: &Family<'_>,
    c: &mut Cursor,
    out: &mut Out<'_>,
) -> Step {
    let Some(e) = entries.get(c.index) else {
        next_entry(c);
        c.phase = Phase::Eof;
        return Step::Skip;
    };
    c.index += 1;
    c.line = 0;
    let Some(dropped) = e.metric().overflow() else {
        return Step::Skip;
    };
    out.put(fam.name().as_bytes());
    out.put(b"_total{family=\"");
    out.put(e.name().as_bytes());
    out.put(b"\"} ");
    out.u64(dropped);
    out.byte(b'\n');
    Step::Line
}

#[cfg(any(target_pointer_width = "64", feature = "string-labels"))]
fn label(out: &mut Out<'_>, first: &mut bool, name: &str) {
    out.byte(if *first { b'{' } else { b',' });
    *first = false;
    out.put(name.as_bytes());
    out.put(b"=\"");
}

/// Writes `{labels}` (nothing when there are none).
fn write_labels(out: &mut Out<'_>, labels: &Labels<'_>) {
    if open_labels(out, labels) {
        out.byte(b'}');
    }
}

/// Writes `{a="b",c="d"` without the closing brace; returns whether any label was written. On
/// MCUs one loop over `(name, value)` pairs for every kind of label set (flash).
#[cfg(not(target_pointer_width = "64"))]
fn open_labels(out: &mut Out<'_>, labels: &Labels<'_>) -> bool {
    #[cfg(feature = "string-labels")]
    if let Labels::Packed { names, key, len } = *labels {
        let mut first = true;
        packed_labels(out, &mut first, names, key.get(..len).unwrap_or(key));
        return !first;
    }
    let mut i = 0;
    loop {
        let (name, value) = match *labels {
            Labels::Static { names, values } => match (names.get(i), values.get(i)) {
                (Some(n), Some(v)) => (*n, *v),
                _ => break,
            },
            Labels::Typed {
                count,
                index,
                name,
                value,
            } if i < count => (name(i), value(index, i)),
            #[cfg(feature = "string-labels")]
            Labels::Overflow { names } => match names.get(i) {
                Some(n) => (*n, OVERFLOW_VALUE),
                None => break,
            },
            #[cfg(feature = "dyn-labels")]
            Labels::Dyn(src) if i < src.len() => (src.name(i), src.value(i)),
            _ => break,
        };
        out.byte(if i == 0 { b'{' } else { b',' });
        out.put(name.as_bytes());
        out.put(b"=\"");
        out.escaped(value.as_bytes(), true);
        out.byte(b'"');
        i += 1;
    }
    i > 0
}

/// Writes the labels of a packed string key (`rest`: the key's bytes in use).
#[cfg(feature = "string-labels")]
fn packed_labels(out: &mut Out<'_>, first: &mut bool, names: &[&str], mut rest: &[AtomicU8]) {
    for n in names {
        label(out, first, n);
        let used = out.escaped_packed(rest);
        rest = rest.get(used..).unwrap_or(&[]);
        out.byte(b'"');
    }
}

/// Writes `{a="b",c="d"` without the closing brace; returns whether any label was written.
#[cfg(target_pointer_width = "64")]
fn open_labels(out: &mut Out<'_>, labels: &Labels<'_>) -> bool {
    let mut first = true;
    match *labels {
        Labels::None => {}
        Labels::Static { names, values } => {
            for (n, v) in names.iter().zip(values.iter()) {
                label(out, &mut first, n);
                out.escaped(v.as_bytes(), true);
                out.byte(b'"');
            }
        }
        Labels::Typed {
            count,
            index,
            name,
            value,
        } => {
            for i in 0..count {
                label(out, &mut first, name(i));
                out.escaped(value(index, i).as_bytes(), true);
                out.byte(b'"');
            }
        }
        #[cfg(feature = "string-labels")]
        Labels::Packed { names, key, len } => {
            packed_labels(out, &mut first, names, key.get(..len).unwrap_or(key));
        }
        #[cfg(feature = "string-labels")]
        Labels::Overflow { names } => {
            for n in names {
                label(out, &mut first, n);
                out.put(OVERFLOW_VALUE.as_bytes());
                out.byte(b'"');
            }
        }
        #[cfg(feature = "dyn-labels")]
        Labels::Dyn(src) => dyn_labels(out, &mut first, src),
    }
    !first
}

#[cfg(all(feature = "dyn-labels", target_pointer_width = "64"))]
fn dyn_labels(out: &mut Out<'_>, first: &mut bool, src: &dyn LabelSource) {
    for i in 0..src.len() {
        label(out, first, src.name(i));
        out.escaped(src.value(i).as_bytes(), true);
        out.byte(b'"');
    }
}
