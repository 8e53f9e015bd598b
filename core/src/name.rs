//! Validation of metric names, label names and units, usable in `const` context so that a bad name
//! in a `static` is a compile error.
//!
//! Exporters never emit colons (they are reserved for recording rules), so metric names follow
//! `[a-zA-Z_][a-zA-Z0-9_]*`; label names follow the same pattern and must not start with `__`.

use crate::NameError;

const fn is_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

const fn is_rest(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

const fn check_ident(s: &str) -> Result<(), NameError> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Err(NameError::Empty);
    }
    if !is_start(b[0]) {
        return Err(NameError::InvalidChar { at: 0 });
    }
    let mut i = 1;
    while i < b.len() {
        if !is_rest(b[i]) {
            return Err(NameError::InvalidChar { at: i });
        }
        i += 1;
    }
    Ok(())
}

/// Checks a metric (family) name.
pub(crate) const fn check_metric_name(name: &str) -> Result<(), NameError> {
    check_ident(name)
}

/// Checks a label name: a valid identifier, not starting with `__`, not `le`.
pub const fn check_label_name(name: &str) -> Result<(), NameError> {
    if let Err(e) = check_ident(name) {
        return Err(e);
    }
    let b = name.as_bytes();
    if b.len() >= 2 && b[0] == b'_' && b[1] == b'_' {
        return Err(NameError::ReservedLabel);
    }
    if b.len() == 2 && b[0] == b'l' && b[1] == b'e' {
        return Err(NameError::ReservedLe);
    }
    Ok(())
}

/// Checks a list of label names: each valid, none repeated.
pub(crate) const fn check_label_names(names: &[&str]) -> Result<(), NameError> {
    let mut i = 0;
    while i < names.len() {
        if let Err(e) = check_label_name(names[i]) {
            return Err(e);
        }
        let mut j = 0;
        while j < i {
            if bytes_eq(names[i].as_bytes(), names[j].as_bytes()) {
                return Err(NameError::DuplicateLabel);
            }
            j += 1;
        }
        i += 1;
    }
    Ok(())
}

/// Checks that `unit` is a valid identifier and that `name` ends with `_<unit>`.
pub(crate) const fn check_unit(name: &str, unit: &str) -> Result<(), NameError> {
    if let Err(e) = check_ident(unit) {
        return Err(e);
    }
    let (n, u) = (name.as_bytes(), unit.as_bytes());
    if n.len() < u.len() + 1 || n[n.len() - u.len() - 1] != b'_' {
        return Err(NameError::UnitNotSuffix);
    }
    if !ends_with(n, u) {
        return Err(NameError::UnitNotSuffix);
    }
    Ok(())
}

/// `const` byte-slice equality.
pub(crate) const fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// `const` suffix test.
pub(crate) const fn ends_with(s: &[u8], suffix: &[u8]) -> bool {
    if s.len() < suffix.len() {
        return false;
    }
    let off = s.len() - suffix.len();
    let mut i = 0;
    while i < suffix.len() {
        if s[off + i] != suffix[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Strips `suffix` from `s` when present (`const`).
pub(crate) const fn strip_suffix<'a>(s: &'a str, suffix: &str) -> &'a str {
    let (b, sfx) = (s.as_bytes(), suffix.as_bytes());
    if b.len() > sfx.len() && ends_with(b, sfx) {
        let (head, _) = b.split_at(b.len() - sfx.len());
        match core::str::from_utf8(head) {
            Ok(h) => h,
            Err(_) => s,
        }
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names() {
        assert_eq!(check_metric_name("http_requests"), Ok(()));
        assert_eq!(check_metric_name("_x1"), Ok(()));
        assert_eq!(check_metric_name(""), Err(NameError::Empty));
        assert_eq!(
            check_metric_name("1x"),
            Err(NameError::InvalidChar { at: 0 })
        );
        assert_eq!(
            check_metric_name("a:b"),
            Err(NameError::InvalidChar { at: 1 })
        );
        assert_eq!(
            check_metric_name("a-b"),
            Err(NameError::InvalidChar { at: 1 })
        );
        assert_eq!(
            check_metric_name("é"),
            Err(NameError::InvalidChar { at: 0 })
        );
    }

    #[test]
    fn label_names() {
        assert_eq!(check_label_name("method"), Ok(()));
        assert_eq!(check_label_name("__name__"), Err(NameError::ReservedLabel));
        assert_eq!(check_label_name("le"), Err(NameError::ReservedLe));
        assert_eq!(check_label_name("lex"), Ok(()));
        assert_eq!(
            check_label_names(&["a", "b", "a"]),
            Err(NameError::DuplicateLabel)
        );
        assert_eq!(check_label_names(&["a", "b"]), Ok(()));
    }

    #[test]
    fn units() {
        assert_eq!(check_unit("latency_seconds", "seconds"), Ok(()));
        assert_eq!(
            check_unit("seconds", "seconds"),
            Err(NameError::UnitNotSuffix)
        );
        assert_eq!(
            check_unit("latencyseconds", "seconds"),
            Err(NameError::UnitNotSuffix)
        );
        assert_eq!(
            check_unit("latency_bytes", "seconds"),
            Err(NameError::UnitNotSuffix)
        );
    }

    #[test]
    fn strip() {
        assert_eq!(strip_suffix("x_total", "_total"), "x");
        assert_eq!(strip_suffix("_total", "_total"), "_total");
        assert_eq!(strip_suffix("x", "_total"), "x");
    }
}
