//! Number formatting without `core::fmt` (which costs kilobytes of flash and is slow).
//!
//! Integers go through `itoa` on 64-bit targets; on 32-bit ones (MCUs without a 64-bit divider,
//! where itoa's divisions pull in ~1.3 KiB of software division) through a division by ten done
//! with shifts and adds on 16-bit pieces ([`write_u64_no_div`]). Integer values with a decimal
//! scale (microseconds shown as seconds) are written exactly by placing the decimal point, with no
//! float maths; `f64` values go through `ryu` (shortest round-trip) and use Prometheus' spellings
//! `+Inf`, `-Inf` and `NaN`.

/// Longest text any writer here produces (an `f64` from ryu is at most 24 bytes, a `u64` 20 digits
/// plus a point).
#[cfg(any(test, feature = "float"))]
pub(crate) const MAX_NUMBER_LEN: usize = 24;

/// Decimal digits of `u64::MAX`.
#[cfg_attr(target_pointer_width = "64", allow(dead_code))]
const U64_DIGITS: usize = 20;

/// Scratch space for one formatted integer (20 digits and a sign).
#[cfg(target_pointer_width = "64")]
pub(crate) struct Digits(itoa::Buffer);

/// Scratch space for one formatted integer (a sign and 20 digits).
#[cfg(not(target_pointer_width = "64"))]
pub(crate) struct Digits([u8; U64_DIGITS + 1]);

impl Digits {
    /// Empty scratch space.
    #[inline]
    pub(crate) fn new() -> Self {
        #[cfg(target_pointer_width = "64")]
        return Digits(itoa::Buffer::new());
        #[cfg(not(target_pointer_width = "64"))]
        return Digits([0; U64_DIGITS + 1]);
    }
}

impl Default for Digits {
    fn default() -> Self {
        Digits::new()
    }
}

/// Writes `v` in decimal into `buf`, returning the digits.
#[cfg(target_pointer_width = "64")]
#[inline]
pub(crate) fn write_u64(buf: &mut Digits, v: u64) -> &[u8] {
    buf.0.format(v).as_bytes()
}

/// Writes `v` in decimal into `buf`, returning the digits.
#[cfg(not(target_pointer_width = "64"))]
#[inline]
pub(crate) fn write_u64(buf: &mut Digits, v: u64) -> &[u8] {
    write_sign_and_digits(&mut buf.0, false, v)
}

/// Writes `v` in decimal (with a leading `-` when negative) into `buf`, returning the text.
#[cfg(target_pointer_width = "64")]
#[inline]
pub(crate) fn write_i64(buf: &mut Digits, v: i64) -> &[u8] {
    buf.0.format(v).as_bytes()
}

/// Writes `v` in decimal (with a leading `-` when negative) into `buf`, returning the text.
#[cfg(not(target_pointer_width = "64"))]
#[inline]
pub(crate) fn write_i64(buf: &mut Digits, v: i64) -> &[u8] {
    write_sign_and_digits(&mut buf.0, v < 0, v.unsigned_abs())
}

/// `-` when `negative`, then the digits of `v`, from the start of `buf` (a 21-byte `buf` always
/// holds them).
#[cfg(not(target_pointer_width = "64"))]
fn write_sign_and_digits(buf: &mut [u8], negative: bool, v: u64) -> &[u8] {
    let mut len = 0;
    let mut push = |b| {
        if let Some(slot) = buf.get_mut(len) {
            *slot = b;
        }
        len += 1;
    };
    if negative {
        push(b'-');
    }
    scaled_no_div(v, 0, push);
    buf.get(..len).unwrap_or(&[])
}

/// `(n / 10, n % 10)` for every `u32`, with shifts, adds and one multiplication by a constant
/// (Hacker's Delight, `divu10`): the Cortex-M0 has no divider, and a call to the software
/// division is larger and slower. `q` below is `n·0.8` (the shifted sums are its binary
/// expansion 0.1100 1100…) then `/ 8`, at most one short; the remainder corrects it.
#[inline]
pub(crate) fn div10(n: u32) -> (u32, u32) {
    let mut q = (n >> 1) + (n >> 2);
    q += q >> 4;
    q += q >> 8;
    q += q >> 16;
    q >>= 3;
    let r = n - q * 10;
    if r > 9 {
        (q + 1, r - 10)
    } else {
        (q, r)
    }
}

/// Division-free decimal formatting of `v / 10^decimals` (used on 32-bit targets; compiled
/// everywhere so host tests check it against `core::fmt`): calls `emit` with each byte of the
/// text in order, exactly and without trailing zeros, as [`NumBuf::scaled`] spells it (`1500`, 6
/// → `0.0015`; `2_000_000`, 6 → `2`; `decimals` above 19 counts as 19).
///
/// The digits are taken least significant first, each the remainder of a division by ten of `v`
/// as a 32-bit high word and two 16-bit pieces: each step a [`div10`] of a number below 2^32 (a
/// remainder below 10 shifted up by 16 bits, plus 16 bits). At least `decimals + 1` are taken
/// (the zeros before a small value's point); the fraction's trailing zeros are then skipped, and
/// the point comes before the fraction's first digit when one is written.
#[cfg_attr(target_pointer_width = "64", allow(dead_code))]
#[inline]
pub(crate) fn scaled_no_div(v: u64, decimals: u8, mut emit: impl FnMut(u8)) {
    let d = usize::from(decimals.min(19));
    let mut digits = [0u8; U64_DIGITS];
    let (mut hi, mut lo) = ((v >> 32) as u32, v as u32);
    let mut len = 0;
    loop {
        let (q_hi, r) = div10(hi);
        let (q_mid, r) = div10(r << 16 | lo >> 16);
        let (q_lo, r) = div10(r << 16 | (lo & 0xffff));
        (hi, lo) = (q_hi, q_mid << 16 | q_lo);
        if let Some(slot) = digits.get_mut(len) {
            *slot = r as u8;
        }
        len += 1;
        // At most 20 rounds: `v` has at most 20 digits and `d + 1` is at most 20.
        if hi == 0 && lo == 0 && len > d {
            break;
        }
    }
    let mut end = 0;
    while end < d && digits.get(end) == Some(&0) {
        end += 1;
    }
    for i in (end..len).rev() {
        if i + 1 == d {
            emit(b'.');
        }
        emit(b'0' + digits.get(i).copied().unwrap_or(0));
    }
}

/// A small stack buffer holding one formatted number.
#[cfg(any(test, feature = "float"))]
pub(crate) struct NumBuf {
    bytes: [u8; MAX_NUMBER_LEN],
    len: usize,
}

#[cfg(any(test, feature = "float"))]
impl NumBuf {
    const fn empty() -> Self {
        NumBuf {
            bytes: [0; MAX_NUMBER_LEN],
            len: 0,
        }
    }

    #[inline]
    fn push(&mut self, s: &[u8]) {
        if let Some(dst) = self.bytes.get_mut(self.len..self.len + s.len()) {
            dst.copy_from_slice(s);
            self.len += s.len();
        }
    }

    /// The formatted text.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }

    #[cfg(test)]
    /// The formatted text as `&str` (always ASCII).
    pub(crate) fn as_str(&self) -> &str {
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    #[cfg(test)]
    /// Formats an unsigned integer.
    pub(crate) fn u64(v: u64) -> Self {
        let mut n = NumBuf::empty();
        n.push(write_u64(&mut Digits::new(), v));
        n
    }

    #[cfg(test)]
    /// Formats a signed integer.
    pub(crate) fn i64(v: i64) -> Self {
        let mut n = NumBuf::empty();
        n.push(write_i64(&mut Digits::new(), v));
        n
    }

    #[cfg(test)]
    /// Formats `v / 10^decimals` exactly, without trailing zeros (`1500`, 6 → `0.0015`;
    /// `2_000_000`, 6 → `2`). `decimals` above 19 is treated as 19.
    pub(crate) fn scaled(v: u64, decimals: u8) -> Self {
        let mut ib = Digits::new();
        let digits = write_u64(&mut ib, v);
        let d = if decimals > 19 { 19 } else { decimals as usize };
        let mut n = NumBuf::empty();
        if d == 0 {
            n.push(digits);
            return n;
        }
        // Integer part: the digits before the last `d`, or "0".
        let split = digits.len().saturating_sub(d);
        let (int, frac) = digits.split_at(split);
        n.push(if int.is_empty() { b"0" } else { int });
        // Fraction: left-padded to `d` digits, trailing zeros trimmed.
        let keep = frac.iter().rposition(|&b| b != b'0').map_or(0, |p| p + 1);
        if keep > 0 {
            n.push(b".");
            n.push(b"0000000000000000000".get(..d - frac.len()).unwrap_or(&[]));
            n.push(frac.get(..keep).unwrap_or(&[]));
        }
        n
    }

    /// Formats an `f64` as Prometheus spells it: shortest round-trip digits, `+Inf`, `-Inf`, `NaN`.
    #[cfg(feature = "float")]
    pub(crate) fn f64(v: f64) -> Self {
        let mut n = NumBuf::empty();
        if v.is_nan() {
            n.push(b"NaN");
        } else if v.is_infinite() {
            n.push(if v > 0.0 { b"+Inf" } else { b"-Inf" });
        } else {
            let mut b = ryu::Buffer::new();
            n.push(b.format_finite(v).as_bytes());
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values where a digit-by-digit writer goes wrong first: the edges of every power of ten
    /// and of two (so of the 16- and 32-bit pieces), `u64::MAX`, and pseudo-random values of every
    /// magnitude. Under miri (slow), a few of each kind.
    fn edge_and_random_u64s() -> std::vec::Vec<u64> {
        let mut vals = std::vec![0u64, 9, 10, u64::MAX, u64::MAX - 1, 1 << 63];
        let mut p = 1u64;
        while let Some(next) = p.checked_mul(10) {
            vals.extend([p - 1, p, p + 1, next - 1]);
            p = next;
        }
        for k in 1..64 {
            let p = 1u64 << k;
            vals.extend([p - 1, p, p + 1]);
        }
        if cfg!(miri) {
            vals.retain(|&v| v < 100 || v.ilog2() % 16 == 0 || v.ilog2() % 16 == 15);
        }
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..if cfg!(miri) { 8 } else { 10_000 } {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            vals.push(x >> (x % 64));
        }
        vals
    }

    /// What `scaled_no_div` emits.
    fn scaled_no_div_text(v: u64, decimals: u8) -> std::vec::Vec<u8> {
        let mut text = std::vec::Vec::new();
        scaled_no_div(v, decimals, |b| text.push(b));
        text
    }

    #[test]
    fn division_free_matches_core_fmt() {
        for v in edge_and_random_u64s() {
            let want = std::format!("{v}");
            assert_eq!(scaled_no_div_text(v, 0), want.as_bytes());
            assert_eq!(write_u64(&mut Digits::new(), v), want.as_bytes());
            for i in [v as i64, (v as i64).wrapping_neg(), i64::MIN, i64::MAX] {
                let want = std::format!("{i}");
                assert_eq!(write_i64(&mut Digits::new(), i), want.as_bytes(), "{i}");
            }
        }
    }

    /// `v / 10^d` spelled from `core::fmt`'s digits: left-padded to `d + 1` digits, the point
    /// before the last `d`, trailing zeros (and a bare point) dropped.
    fn scaled_by_fmt(v: u64, d: usize) -> std::string::String {
        let digits = std::format!("{v:0>width$}", width = d + 1);
        let (int, frac) = digits.split_at(digits.len() - d);
        let frac = frac.trim_end_matches('0');
        if frac.is_empty() {
            int.into()
        } else {
            std::format!("{int}.{frac}")
        }
    }

    #[test]
    fn scaled_division_free_matches_core_fmt() {
        assert_eq!(scaled_no_div_text(1500, 6), b"0.0015");
        assert_eq!(scaled_no_div_text(0, 19), b"0");
        assert_eq!(scaled_no_div_text(1, 19), b"0.0000000000000000001");
        for v in edge_and_random_u64s() {
            let all: &[u8] = &[
                0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
            ];
            let decimals = if cfg!(miri) { &[0, 1, 6, 19][..] } else { all };
            for &decimals in decimals.iter().chain(&[20, 200, u8::MAX]) {
                let want = scaled_by_fmt(v, usize::from(decimals.min(19)));
                let got = scaled_no_div_text(v, decimals);
                assert_eq!(got, want.as_bytes(), "{v} / 10^{decimals}");
                assert_eq!(NumBuf::scaled(v, decimals).as_bytes(), want.as_bytes());
            }
        }
    }

    #[test]
    fn div10_matches_division() {
        // Every value up to 2^20 (the pieces `write_u64_no_div` divides are below 655,360), the
        // edges of every power of two and of ten, and pseudo-random values (fewer under miri).
        let dense = if cfg!(miri) { 1 << 8 } else { 1 << 20 };
        let mut vals: std::vec::Vec<u32> = (0..dense).collect();
        for k in 0..32 {
            let p = 1u32 << k;
            vals.extend([p - 1, p, p.wrapping_add(1), p.wrapping_mul(10)]);
        }
        vals.extend([
            u32::MAX,
            u32::MAX - 1,
            4_294_967_290,
            999_999_999,
            1_000_000_000,
        ]);
        let mut x = 0x2545_F491u32;
        for _ in 0..if cfg!(miri) { 16 } else { 100_000 } {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            vals.push(x);
        }
        for n in vals {
            assert_eq!(div10(n), (n / 10, n % 10), "{n}");
        }
    }

    #[test]
    fn integers() {
        assert_eq!(NumBuf::u64(0).as_str(), "0");
        assert_eq!(NumBuf::u64(u64::MAX).as_str(), "18446744073709551615");
        assert_eq!(NumBuf::i64(i64::MIN).as_str(), "-9223372036854775808");
    }

    #[test]
    fn scaled() {
        assert_eq!(NumBuf::scaled(1500, 6).as_str(), "0.0015");
        assert_eq!(NumBuf::scaled(2_000_000, 6).as_str(), "2");
        assert_eq!(NumBuf::scaled(2_500_000, 6).as_str(), "2.5");
        assert_eq!(NumBuf::scaled(1, 9).as_str(), "0.000000001");
        assert_eq!(NumBuf::scaled(0, 3).as_str(), "0");
        assert_eq!(NumBuf::scaled(123, 0).as_str(), "123");
        assert_eq!(
            NumBuf::scaled(u64::MAX, 19).as_str(),
            "1.8446744073709551615"
        );
        assert_eq!(
            NumBuf::scaled(u64::MAX, 200).as_str(),
            "1.8446744073709551615"
        );
    }

    #[cfg(feature = "float")]
    #[test]
    fn floats() {
        assert_eq!(NumBuf::f64(f64::NAN).as_str(), "NaN");
        assert_eq!(NumBuf::f64(f64::INFINITY).as_str(), "+Inf");
        assert_eq!(NumBuf::f64(f64::NEG_INFINITY).as_str(), "-Inf");
        assert_eq!(NumBuf::f64(0.25).as_str(), "0.25");
        assert_eq!(NumBuf::f64(-1.0).as_str(), "-1.0");
        assert_eq!(
            NumBuf::f64(f64::MIN).as_str().parse::<f64>().unwrap(),
            f64::MIN
        );
        assert!(NumBuf::f64(f64::MIN_POSITIVE).as_bytes().len() <= MAX_NUMBER_LEN);
    }
}
