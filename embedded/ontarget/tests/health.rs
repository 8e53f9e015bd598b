//! Health on the chip: aggregation of critical and non-critical components and the JSON report
//! (serde + serde-json-core into a borrowed buffer), including a component with a detail.
#![no_std]
#![no_main]

use vitals_core::health::{Check, Component, Health, HealthError, Status, StatusCell};
use vitals_ontarget::{check_eq, tests};

static RADIO: StatusCell = StatusCell::new(Status::Healthy);
static LOGGER: StatusCell = StatusCell::new(Status::Healthy);

/// A check with a detail: a sensor that knows why it is degraded.
struct Sensor;

impl Check for Sensor {
    fn status(&self) -> Status {
        Status::Degraded
    }
    fn detail(&self) -> Option<&str> {
        Some("calibration \"stale\"")
    }
}

static SENSOR: Sensor = Sensor;

static HEALTH: Health = Health::new(&[
    Component::new("radio", &RADIO),
    Component::non_critical("logger", &LOGGER),
]);

tests!(
    aggregates_statuses,
    writes_json,
    json_with_detail_and_escaping,
    json_buffer_too_small,
);

fn aggregates_statuses() -> Result<(), ()> {
    RADIO.set(Status::Healthy);
    LOGGER.set(Status::Healthy);
    check_eq!(HEALTH.status(), Status::Healthy);
    LOGGER.set(Status::Unhealthy); // non-critical: at most degraded
    check_eq!(HEALTH.status(), Status::Degraded);
    RADIO.set(Status::Unhealthy);
    check_eq!(HEALTH.status(), Status::Unhealthy);
    check_eq!(HEALTH.report().components().len(), 2);
    check_eq!(Health::new(&[]).status(), Status::Healthy);
    check_eq!(Status::Degraded.as_str(), "degraded");
    Ok(())
}

fn writes_json() -> Result<(), ()> {
    RADIO.set(Status::Healthy);
    LOGGER.set(Status::Degraded);
    let mut buf = [0u8; 256];
    let n = HEALTH.write_json(&mut buf).map_err(|_| ())?;
    check_eq!(
        core::str::from_utf8(&buf[..n]).unwrap_or("?"),
        r#"{"status":"degraded","components":[{"name":"radio","status":"healthy","critical":true},{"name":"logger","status":"degraded","critical":false}]}"#
    );
    Ok(())
}

fn json_with_detail_and_escaping() -> Result<(), ()> {
    static H: Health = Health::new(&[Component::new("imu", &SENSOR)]);
    let mut buf = [0u8; 128];
    let n = H.write_json(&mut buf).map_err(|_| ())?;
    check_eq!(
        core::str::from_utf8(&buf[..n]).unwrap_or("?"),
        r#"{"status":"degraded","components":[{"name":"imu","status":"degraded","critical":true,"detail":"calibration \"stale\""}]}"#
    );
    Ok(())
}

fn json_buffer_too_small() -> Result<(), ()> {
    let mut small = [0u8; 16];
    check_eq!(
        HEALTH.write_json(&mut small),
        Err(HealthError::BufferTooSmall)
    );
    check_eq!(HEALTH.write_json(&mut []), Err(HealthError::BufferTooSmall));
    Ok(())
}
