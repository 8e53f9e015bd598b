//! Number formatting without `core::fmt` (which costs kilobytes of flash and is slow).
//!
//! Integers go through `itoa` on 64-bit targets; on 32-bit ones (MCUs without a 64-bit divider,
//! where itoa's divisions pull in ~1.3 KiB of software division) through a division-free
//! subtraction of powers of ten. Integer values with a decimal scale (microseconds shown as seconds)
//! are written exactly by placing the decimal point, with no float maths; `f64` values go through
//! `ryu` (shortest round-trip) and use Prometheus' spellings `+Inf`, `-Inf` and `NaN`.

/// Longest text any writer here produces (an `f64` from ryu is at most 24 bytes, a `u64` 20 digits
/// plus a point).
#[cfg(any(test, feature = "float"))]
pub(crate) const MAX_NUMBER_LEN: usize = 24;

/// Scratch space for one formatted integer (20 digits and a sign).
#[cfg(target_pointer_width = "64")]
pub(crate) struct Digits(itoa::Buffer);

/// Scratch space for one formatted integer (20 digits and a sign).
#[cfg(not(target_pointer_width = "64"))]
pub(crate) struct Digits([u8; 21]);

impl Digits {
    /// Empty scratch space.
    #[inline]
    pub(crate) fn new() -> Self {
        #[cfg(target_pointer_width = "64")]
        return Digits(itoa::Buffer::new());
        #[cfg(not(target_pointer_width = "64"))]
        return Digits([0; 21]);
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
    write_u64_no_div(&mut buf.0, v)
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
    let (sign, digits) = buf.0.split_at_mut(1);
    let n = write_u64_no_div(digits, v.unsigned_abs()).len();
    if v >= 0 {
        return buf.0.get(1..1 + n).unwrap_or(&[]);
    }
    if let Some(s) = sign.first_mut() {
        *s = b'-';
    }
    buf.0.get(..1 + n).unwrap_or(&[])
}

/// Division-free decimal formatting: at most 9 subtractions per digit (used on 32-bit targets;
/// compiled everywhere so host tests check it against itoa).
#[cfg_attr(target_pointer_width = "64", allow(dead_code))]
pub(crate) fn write_u64_no_div(buf: &mut [u8], mut v: u64) -> &[u8] {
    const POW10: [u64; 20] = [
        10_000_000_000_000_000_000,
        1_000_000_000_000_000_000,
        100_000_000_000_000_000,
        10_000_000_000_000_000,
        1_000_000_000_000_000,
        100_000_000_000_000,
        10_000_000_000_000,
        1_000_000_000_000,
        100_000_000_000,
        10_000_000_000,
        1_000_000_000,
        100_000_000,
        10_000_000,
        1_000_000,
        100_000,
        10_000,
        1_000,
        100,
        10,
        1,
    ];
    let mut len = 0;
    // By reference: iterating the array by value copies its 160 bytes to the stack first.
    for &p in POW10.iter() {
        let mut digit = b'0';
        while v >= p {
            v -= p;
            digit += 1;
        }
        if len > 0 || digit != b'0' || p == 1 {
            if let Some(d) = buf.get_mut(len) {
                *d = digit;
            }
            len += 1;
        }
    }
    buf.get(..len).unwrap_or(&[])
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

    #[test]
    fn division_free_matches_itoa() {
        let mut vals = std::vec![0u64, 1, 9, 10, 99, 100, u64::MAX, u64::MAX - 1, 1 << 63];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            vals.push(x >> (x % 64));
        }
        for v in vals {
            let want = std::format!("{v}");
            assert_eq!(write_u64_no_div(&mut [0u8; 20], v), want.as_bytes());
            assert_eq!(write_u64(&mut Digits::new(), v), want.as_bytes());
            let i = v as i64;
            assert_eq!(
                write_i64(&mut Digits::new(), i),
                std::format!("{i}").as_bytes()
            );
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
