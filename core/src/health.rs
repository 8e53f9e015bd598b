//! Health: component statuses aggregated into one report, serialised as JSON into a borrowed
//! buffer with serde-json-core.
//!
//! The overall status is the worst status of the components, except that a non-critical
//! component that is unhealthy only makes the whole `degraded`.
//!
//! ```
//! use vitals_core::{Component, Health, Status, StatusCell};
//!
//! static DATABASE: StatusCell = StatusCell::new(Status::Healthy);
//! static CACHE: StatusCell = StatusCell::new(Status::Healthy);
//! static HEALTH: Health = Health::new(&[
//!     Component::new("database", &DATABASE),
//!     Component::non_critical("cache", &CACHE),
//! ]);
//!
//! CACHE.set(Status::Unhealthy); // non-critical: the whole is only degraded
//! assert_eq!(HEALTH.status(), Status::Degraded);
//! DATABASE.set(Status::Unhealthy);
//! assert_eq!(HEALTH.status(), Status::Unhealthy);
//!
//! let mut buf = [0u8; 160];
//! let n = HEALTH.write_json(&mut buf)?;
//! assert!(buf[..n].starts_with(br#"{"status":"unhealthy","components":[{"name":"database""#));
//! # Ok::<(), vitals_core::HealthError>(())
//! ```

use crate::sync::{AtomicU8, Ordering};
use core::fmt;
use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};

/// A health status, ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Working normally.
    Healthy,
    /// Working, with reduced capacity or a warning (e.g. quota above 90 %).
    Degraded,
    /// Not working (e.g. a circuit breaker is open).
    Unhealthy,
}

impl Status {
    /// The status as lowercase text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Unhealthy => "unhealthy",
        }
    }

    const fn from_u8(v: u8) -> Status {
        match v {
            0 => Status::Healthy,
            1 => Status::Degraded,
            _ => Status::Unhealthy,
        }
    }
}

/// Serialised as its [`as_str`](Status::as_str) text (one string serialiser for every field of
/// the report: less flash than serde's unit variants).
impl Serialize for Status {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Anything that can report a health status: a [`StatusCell`] set by the application, a circuit
/// breaker, a quota.
pub trait Check: Sync {
    /// The current status.
    fn status(&self) -> Status;
    /// A short explanation of the status (static text), if any.
    fn detail(&self) -> Option<&str> {
        None
    }
}

/// A status the application sets (one atomic byte): "database reachable", "sensor calibrated".
#[derive(Debug)]
pub struct StatusCell {
    status: AtomicU8,
}

impl StatusCell {
    const_fn! {
        /// A cell holding `status`.
        pub const fn new(status: Status) -> Self {
            StatusCell { status: AtomicU8::new(status as u8) }
        }
    }

    /// Sets the status.
    pub fn set(&self, status: Status) {
        self.status.store(status as u8, Ordering::Relaxed);
    }

    /// The status.
    pub fn get(&self) -> Status {
        Status::from_u8(self.status.load(Ordering::Relaxed))
    }
}

impl Check for StatusCell {
    fn status(&self) -> Status {
        self.get()
    }
}

/// A named component of the health report.
#[derive(Clone, Copy)]
pub struct Component<'a> {
    name: &'a str,
    check: &'a dyn Check,
    critical: bool,
}

impl core::fmt::Debug for Component<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Component")
            .field("name", &self.name)
            .field("critical", &self.critical)
            .finish_non_exhaustive()
    }
}

impl<'a> Component<'a> {
    /// A critical component: when unhealthy, the whole report is unhealthy.
    pub const fn new(name: &'a str, check: &'a dyn Check) -> Self {
        Component {
            name,
            check,
            critical: true,
        }
    }

    /// A non-critical component: when unhealthy, the whole report is only degraded.
    pub const fn non_critical(name: &'a str, check: &'a dyn Check) -> Self {
        Component {
            name,
            check,
            critical: false,
        }
    }

    /// The component's name.
    pub const fn name(&self) -> &'a str {
        self.name
    }

    /// The component's current status.
    pub fn status(&self) -> Status {
        self.check.status()
    }

    /// Whether the component is critical.
    pub const fn is_critical(&self) -> bool {
        self.critical
    }
}

/// A set of components.
#[derive(Debug, Clone, Copy)]
pub struct Health<'a> {
    components: &'a [Component<'a>],
}

/// Why a health report could not be serialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HealthError {
    /// The JSON does not fit in the buffer; try a larger one.
    BufferTooSmall,
}

impl core::error::Error for HealthError {}

impl fmt::Display for HealthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("health JSON does not fit in the buffer")
    }
}

impl<'a> Health<'a> {
    /// Health over `components`.
    pub const fn new(components: &'a [Component<'a>]) -> Self {
        Health { components }
    }

    /// The components.
    pub const fn components(&self) -> &'a [Component<'a>] {
        self.components
    }

    /// The overall status (worst of the components; non-critical ones count at most as degraded).
    pub fn status(&self) -> Status {
        self.report().status
    }

    /// The overall status, read now, with the components behind it. Serialising the report
    /// ([`write_json`](Self::write_json)) reads each component's status again as it writes it,
    /// so a component that changes in between can disagree with that one report's overall
    /// status; the next report agrees again.
    pub fn report(&self) -> HealthReport<'a> {
        let status = self
            .components
            .iter()
            .map(|c| match c.status() {
                Status::Unhealthy if !c.critical => Status::Degraded,
                s => s,
            })
            .max()
            .unwrap_or(Status::Healthy);
        HealthReport {
            status,
            components: self.components,
        }
    }

    /// Serialises the report as JSON into `buf`, returning the length:
    /// `{"status":"degraded","components":[{"name":"db","status":"degraded","critical":true}]}`
    /// (plus `"detail"` when a component gives one).
    pub fn write_json(&self, buf: &mut [u8]) -> Result<usize, HealthError> {
        serde_json_core::to_slice(&self.report(), buf).map_err(|_| HealthError::BufferTooSmall)
    }
}

/// The overall status and the components behind it.
#[derive(Debug, Clone, Copy)]
pub struct HealthReport<'a> {
    /// Overall status.
    pub status: Status,
    components: &'a [Component<'a>],
}

impl<'a> HealthReport<'a> {
    /// The components.
    pub fn components(&self) -> &'a [Component<'a>] {
        self.components
    }
}

impl Serialize for HealthReport<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        object(
            s,
            "HealthReport",
            &[
                ("status", Field::Str(self.status.as_str())),
                ("components", Field::Components(self.components)),
            ],
        )
    }
}

/// Every field value of the report is one of these, so the JSON serialiser's per-field code
/// exists once rather than once per value type (flash on MCUs).
enum Field<'a> {
    Str(&'a str),
    Bool(bool),
    Components(&'a [Component<'a>]),
}

/// Serialises `fields` as a struct named `name`: one loop, so one call of the serialiser's field
/// code for every field of the report.
fn object<S: Serializer>(
    s: S,
    name: &'static str,
    fields: &[(&'static str, Field<'_>)],
) -> Result<S::Ok, S::Error> {
    let mut st = s.serialize_struct(name, fields.len())?;
    for (key, value) in fields {
        st.serialize_field(key, value)?;
    }
    st.end()
}

impl Serialize for Field<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Str(v) => s.serialize_str(v),
            Field::Bool(v) => s.serialize_bool(*v),
            Field::Components(cs) => {
                let mut seq = s.serialize_seq(Some(cs.len()))?;
                for c in *cs {
                    seq.serialize_element(c)?;
                }
                seq.end()
            }
        }
    }
}

impl Serialize for Component<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let detail = self.check.detail();
        let fields = [
            ("name", Field::Str(self.name)),
            ("status", Field::Str(self.check.status().as_str())),
            ("critical", Field::Bool(self.critical)),
            ("detail", Field::Str(detail.unwrap_or(""))),
        ];
        // `detail` only when the check gives one.
        object(s, "Component", &fields[..3 + detail.is_some() as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_and_serialises() {
        static DB: StatusCell = StatusCell::new(Status::Healthy);
        static CACHE: StatusCell = StatusCell::new(Status::Healthy);
        static H: Health = Health::new(&[
            Component::new("db", &DB),
            Component::non_critical("cache", &CACHE),
        ]);
        assert_eq!(H.status(), Status::Healthy);
        CACHE.set(Status::Unhealthy);
        assert_eq!(H.status(), Status::Degraded);
        DB.set(Status::Unhealthy);
        assert_eq!(H.status(), Status::Unhealthy);
        let mut buf = [0u8; 256];
        let n = H.write_json(&mut buf).unwrap();
        assert_eq!(
            core::str::from_utf8(&buf[..n]).unwrap(),
            r#"{"status":"unhealthy","components":[{"name":"db","status":"unhealthy","critical":true},{"name":"cache","status":"unhealthy","critical":false}]}"#
        );
        assert_eq!(
            H.write_json(&mut [0u8; 10]),
            Err(HealthError::BufferTooSmall)
        );
        assert_eq!(Health::new(&[]).status(), Status::Healthy);
    }

    #[test]
    fn a_detail_is_serialised_escaped_after_the_other_fields() {
        struct Quota;
        impl Check for Quota {
            fn status(&self) -> Status {
                Status::Degraded
            }
            fn detail(&self) -> Option<&str> {
                Some("quota \"db\" at 95 %")
            }
        }
        static H: Health = Health::new(&[Component::non_critical("quota", &Quota)]);
        let mut buf = [0u8; 160];
        let n = H.write_json(&mut buf).unwrap();
        assert_eq!(
            core::str::from_utf8(&buf[..n]).unwrap(),
            r#"{"status":"degraded","components":[{"name":"quota","status":"degraded","critical":false,"detail":"quota \"db\" at 95 %"}]}"#
        );
    }
}
