//! Label sets.
//!
//! Two kinds of labels, chosen per family:
//! - **Typed** ([`LabelSet`]): an enum (or a tuple of enums) maps to a dense index, so a labelled
//!   update is an array index with no lookup and no hashing. Declare one with [`label_enum!`](crate::label_enum).
//! - **String values** (`StrFamily`, feature `string-labels`): values known only at run time, kept in a fixed table.
//!
//! Label values are escaped when rendered (`\\`, `\"`, `\n`), never trusted.

#[cfg(feature = "string-labels")]
use crate::sync::AtomicU8;

/// A set of label values known at compile time, mapped to a dense index `0..CARDINALITY`.
///
/// Contract (kept by [`label_enum!`](crate::label_enum) and the tuple impls): `index()` is below `CARDINALITY`,
/// `name(i)` is a valid label name for `i < LABELS`, `value(index, i)` is the value of label `i` in
/// the label set with that index.
pub trait LabelSet: Copy + 'static {
    /// Number of labels (names) in the set.
    const LABELS: usize;
    /// Number of distinct label sets.
    const CARDINALITY: usize;
    /// Dense index of this label set.
    fn index(self) -> usize;
    /// Name of label `label`.
    fn name(label: usize) -> &'static str;
    /// Value of label `label` for the label set with index `index`.
    fn value(index: usize, label: usize) -> &'static str;
}

impl<A: LabelSet, B: LabelSet> LabelSet for (A, B) {
    const LABELS: usize = A::LABELS + B::LABELS;
    const CARDINALITY: usize = A::CARDINALITY * B::CARDINALITY;
    #[inline]
    fn index(self) -> usize {
        self.0.index() * B::CARDINALITY + self.1.index()
    }
    fn name(label: usize) -> &'static str {
        if label < A::LABELS {
            A::name(label)
        } else {
            B::name(label - A::LABELS)
        }
    }
    fn value(index: usize, label: usize) -> &'static str {
        let b = B::CARDINALITY.max(1);
        if label < A::LABELS {
            A::value(index / b, label)
        } else {
            B::value(index % b, label - A::LABELS)
        }
    }
}

impl<A: LabelSet, B: LabelSet, C: LabelSet> LabelSet for (A, B, C) {
    const LABELS: usize = A::LABELS + B::LABELS + C::LABELS;
    const CARDINALITY: usize = A::CARDINALITY * B::CARDINALITY * C::CARDINALITY;
    #[inline]
    fn index(self) -> usize {
        ((self.0, self.1), self.2).index()
    }
    fn name(label: usize) -> &'static str {
        <((A, B), C)>::name(label)
    }
    fn value(index: usize, label: usize) -> &'static str {
        <((A, B), C)>::value(index, label)
    }
}

/// Declares an enum usable as a typed label: one label name, one string value per variant.
///
/// ```
/// vitals_core::label_enum! {
///     /// HTTP method.
///     pub enum Method: "method" { Get = "GET", Post = "POST" }
/// }
/// use vitals_core::LabelSet;
/// assert_eq!(Method::Post.index(), 1);
/// assert_eq!(Method::value(1, 0), "POST");
/// ```
///
/// The label name is checked at compile time: the same declaration with the reserved name `le`
/// does not compile (E0080: the constant's evaluation panics with "label name `le` is reserved for
/// histogram buckets"):
///
/// ```compile_fail,E0080
/// vitals_core::label_enum! {
///     /// HTTP method.
///     pub enum Method: "le" { Get = "GET", Post = "POST" }
/// }
/// ```
#[macro_export]
macro_rules! label_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident : $label:literal { $($(#[$vmeta:meta])* $variant:ident = $value:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name { $($(#[$vmeta])* #[doc = concat!("Label value `", $value, "`.")] $variant),+ }

        const _: () = match $crate::__private::check_label_name($label) {
            Ok(()) => (),
            Err(e) => panic!("{}", e.as_str()),
        };

        impl $name {
            const VALUES: &'static [&'static str] = &[$($value),+];
            /// Every variant, in index order.
            $vis const ALL: &'static [$name] = &[$($name::$variant),+];
        }

        impl $crate::LabelSet for $name {
            const LABELS: usize = 1;
            const CARDINALITY: usize = $name::VALUES.len();
            #[inline]
            fn index(self) -> usize {
                self as usize
            }
            fn name(_label: usize) -> &'static str {
                $label
            }
            fn value(index: usize, _label: usize) -> &'static str {
                match $name::VALUES.get(index) {
                    Some(v) => v,
                    None => "",
                }
            }
        }
    };
}

/// The labels of one series, in a form the renderer can walk without allocating.
///
/// Some variants exist only with a feature (`string-labels`, `dyn-labels`), so a `match` outside
/// this crate needs a wildcard arm: turning a feature on elsewhere in the build never breaks it.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum Labels<'a> {
    /// No labels.
    None,
    /// Parallel slices of names and values.
    Static {
        /// Label names.
        names: &'a [&'a str],
        /// Label values (same length as `names`).
        values: &'a [&'a str],
    },
    /// A typed label set: `count` labels of the set with dense index `index`.
    Typed {
        /// Number of labels.
        count: usize,
        /// Dense index of the label set.
        index: usize,
        /// Name of label `i`.
        name: fn(usize) -> &'static str,
        /// Value of label `i` for the set with index `index`: `value(index, i)`.
        value: fn(usize, usize) -> &'static str,
    },
    /// String values packed in a family's table: values separated by `0xFF` (never in UTF-8).
    #[cfg(feature = "string-labels")]
    Packed {
        /// Label names.
        names: &'a [&'a str],
        /// Packed value bytes.
        key: &'a [AtomicU8],
        /// Used length of `key`.
        len: usize,
    },
    /// The overflow series of a full family: every label has the value [`OVERFLOW_VALUE`].
    #[cfg(feature = "string-labels")]
    Overflow {
        /// Label names.
        names: &'a [&'a str],
    },
    /// Labels provided by a collector at run time (e.g. a std runtime family).
    #[cfg(feature = "dyn-labels")]
    Dyn(&'a dyn LabelSource),
}

impl core::fmt::Debug for Labels<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Labels::None => f.write_str("None"),
            Labels::Static { names, values } => f
                .debug_struct("Static")
                .field("names", &names)
                .field("values", &values)
                .finish(),
            Labels::Typed {
                count,
                index,
                name,
                value,
            } => {
                let mut d = f.debug_map();
                for i in 0..count {
                    d.entry(&name(i), &value(index, i));
                }
                d.finish()
            }
            #[cfg(feature = "string-labels")]
            Labels::Packed { names, key, len } => f
                .debug_struct("Packed")
                .field("names", &names)
                .field("key", &key.get(..len).unwrap_or(key))
                .finish(),
            #[cfg(feature = "string-labels")]
            Labels::Overflow { names } => {
                f.debug_struct("Overflow").field("names", &names).finish()
            }
            #[cfg(feature = "dyn-labels")]
            Labels::Dyn(src) => {
                let mut d = f.debug_map();
                for i in 0..src.len() {
                    d.entry(&src.name(i), &src.value(i));
                }
                d.finish()
            }
        }
    }
}

/// The label value of the overflow series that a full family routes new label sets to.
#[cfg(feature = "string-labels")]
pub const OVERFLOW_VALUE: &str = "__overflow__";

/// Separator between packed label values (a byte that never occurs in UTF-8).
#[cfg(feature = "string-labels")]
pub(crate) const SEPARATOR: u8 = 0xFF;

/// Labels supplied at run time through a trait object.
#[cfg(feature = "dyn-labels")]
pub trait LabelSource: Sync {
    /// Number of labels.
    fn len(&self) -> usize;
    /// Whether there are no labels.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Name of label `i`.
    fn name(&self, i: usize) -> &str;
    /// Value of label `i` (escaped by the renderer).
    fn value(&self, i: usize) -> &str;
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::label_enum! {
        /// Colour.
        enum Colour: "colour" { Red = "red", Green = "green", Blue = "blue" }
    }
    crate::label_enum! {
        /// Size.
        enum Size: "size" { S = "s", L = "l" }
    }

    #[test]
    fn tuples_are_dense() {
        type P = (Colour, Size);
        assert_eq!(P::CARDINALITY, 6);
        let mut seen = [false; 6];
        for &c in Colour::ALL {
            for &s in Size::ALL {
                let i = (c, s).index();
                assert!(!seen[i]);
                seen[i] = true;
                assert_eq!(P::value(i, 0), Colour::value(c.index(), 0));
                assert_eq!(P::value(i, 1), Size::value(s.index(), 0));
            }
        }
        assert_eq!(P::name(1), "size");
        assert_eq!(<(Colour, Size, Size)>::CARDINALITY, 12);
        assert_eq!(
            <(Colour, Size, Size)>::value((Colour::Blue, Size::L, Size::S).index(), 2),
            "s"
        );
    }
}
