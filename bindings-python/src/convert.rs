//! Python values to core types and back. Results are built as the
//! dataclasses and enums of `carewatch/_types.py`; times are tz-aware UTC
//! `datetime`s, durations `timedelta`s.

use std::time::Duration;

use carewatch_core::IncomingMessage;
use carewatch_core::availability::{Availability, Evaluation};
use carewatch_core::catalogue::ConditionCode;
use carewatch_core::condition::{ConditionRecord, ReportedCondition};
use carewatch_core::error::Error;
use carewatch_core::health::{Health, HealthSummary};
use carewatch_core::ids::{RecordingServerId, Slc};
use carewatch_core::installation::{Installation, Product};
use carewatch_core::seal::MessageKind;
use carewatch_core::time::Timestamp;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDateTime, PyDelta, PyDict, PyModule, PyTzInfo};

use crate::errors::OrRaise;

static TYPES: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
static EPOCH: PyOnceLock<Py<PyDateTime>> = PyOnceLock::new();

const MILLIS_PER_DAY: i64 = 86_400_000;
/// The times a `datetime` can hold, in UTC: 0001-01-01T00:00:00Z to
/// 9999-12-31T23:59:59.999Z, in milliseconds since 1970.
const DATETIME_RANGE: std::ops::RangeInclusive<i64> = -62_135_596_800_000..=253_402_300_799_999;

/// A class (or enum) of `carewatch._types`.
pub fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    TYPES
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("carewatch._types")?.unbind())
        })?
        .bind(py)
        .getattr(name)
}

/// Builds a `carewatch._types` dataclass from named fields.
macro_rules! value {
    ($py:expr, $class:literal { $($field:ident: $value:expr),* $(,)? }) => {{
        let py = $py;
        let fields = pyo3::types::PyDict::new(py);
        $(fields.set_item(stringify!($field), $value)?;)*
        $crate::convert::class(py, $class)?.call((), Some(&fields))
    }};
}
pub(crate) use value;

/// A whole number a Python int gives for `field` (a count, an id, a
/// sequence number): one outside `T`'s range, a negative one say, is
/// refused as `InvalidInput` naming the field, like any other bad value
/// (it raised Python's bare `OverflowError`, with no code).
pub fn whole<T: TryFrom<i128>>(py: Python<'_>, value: i128, field: &'static str) -> PyResult<T> {
    T::try_from(value).map_err(|_| {
        invalid(
            py,
            field,
            format!("{value} is out of range: use a whole number from 0 up"),
        )
    })
}

fn invalid(py: Python<'_>, field: &'static str, reason: String) -> PyErr {
    crate::errors::to_py(py, &Error::InvalidInput { field, reason })
}

fn epoch(py: Python<'_>) -> PyResult<&Bound<'_, PyDateTime>> {
    Ok(EPOCH
        .get_or_try_init(py, || {
            let utc = PyTzInfo::utc(py)?;
            Ok::<_, PyErr>(PyDateTime::new(py, 1970, 1, 1, 0, 0, 0, 0, Some(&utc))?.unbind())
        })?
        .bind(py))
}

/// A timestamp as a UTC `datetime`.
pub fn datetime(py: Python<'_>, at: Timestamp) -> PyResult<Bound<'_, PyAny>> {
    let ms = at.as_millis();
    if !DATETIME_RANGE.contains(&ms) {
        return Err(invalid(
            py,
            "time",
            format!("{ms} ms is out of datetime's range"),
        ));
    }
    let days = i32::try_from(ms.div_euclid(MILLIS_PER_DAY))
        .map_err(|_| invalid(py, "time", format!("{ms} ms is out of datetime's range")))?;
    let rest = ms.rem_euclid(MILLIS_PER_DAY);
    // `rest` is below one day, so both fit in i32.
    let delta = PyDelta::new(
        py,
        days,
        (rest / 1000) as i32,
        ((rest % 1000) * 1000) as i32,
        true,
    )?;
    epoch(py)?.add(delta)
}

/// An optional timestamp as an optional `datetime`.
pub fn opt_datetime(py: Python<'_>, at: Option<Timestamp>) -> PyResult<Option<Bound<'_, PyAny>>> {
    at.map(|at| datetime(py, at)).transpose()
}

/// A timezone-aware `datetime` as a timestamp (to the millisecond).
pub fn timestamp(value: &Bound<'_, PyAny>, field: &'static str) -> PyResult<Timestamp> {
    let py = value.py();
    let Ok(at) = value.cast::<PyDateTime>() else {
        return Err(PyTypeError::new_err(format!(
            "{field}: expected a datetime, got {}",
            value.get_type().name()?
        )));
    };
    if at.call_method0("utcoffset")?.is_none() {
        return Err(invalid(
            py,
            field,
            format!(
                "{at} has no timezone: pass an aware datetime, e.g. datetime.now(timezone.utc)"
            ),
        ));
    }
    let one_ms = PyDelta::new(py, 0, 0, 1000, false)?;
    let ms: i64 = at.sub(epoch(py)?)?.floor_div(one_ms)?.extract()?;
    // An aware time whose offset moves it past year 9999 (or before year
    // 1) in UTC was stored, and every later read of it failed.
    if !DATETIME_RANGE.contains(&ms) {
        return Err(invalid(
            py,
            field,
            format!("{at} is outside the years 1 to 9999 in UTC"),
        ));
    }
    Ok(Timestamp::from_millis(ms))
}

/// A `timedelta` or a number of seconds, not negative.
pub fn duration(value: &Bound<'_, PyAny>, field: &'static str) -> PyResult<Duration> {
    let py = value.py();
    let seconds: f64 = if value.cast::<PyDelta>().is_ok() {
        value.call_method0("total_seconds")?.extract()?
    } else {
        value.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "{field}: expected a timedelta or a number of seconds, got {}",
                value
                    .get_type()
                    .name()
                    .map_or_else(|_| "?".into(), |n| n.to_string())
            ))
        })?
    };
    // Durations beyond a few thousand years are mistakes, not settings.
    if !(0.0..1e11).contains(&seconds) {
        return Err(invalid(
            py,
            field,
            format!("{seconds} s: use a duration from zero to a few years"),
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A duration as a `timedelta`.
pub fn timedelta(py: Python<'_>, d: Duration) -> PyResult<Bound<'_, PyAny>> {
    Ok(d.into_pyobject(py)?.into_any())
}

pub fn health(py: Python<'_>, health: Health) -> PyResult<Bound<'_, PyAny>> {
    class(py, "Health")?.call1((health.rank(),))
}

/// A known code as `ConditionCode`, one this version does not know as `str`.
pub fn code<'py>(py: Python<'py>, code: &ConditionCode) -> PyResult<Bound<'py, PyAny>> {
    match code {
        ConditionCode::Unknown(text) => Ok(text.into_pyobject(py)?.into_any()),
        known => class(py, "ConditionCode")?.call1((known.as_str(),)),
    }
}

fn kind_name(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Heartbeat => "heartbeat",
        MessageKind::StatusReport => "status_report",
    }
}

pub fn message_kind(py: Python<'_>, kind: MessageKind) -> PyResult<Bound<'_, PyAny>> {
    class(py, "MessageKind")?.call1((kind_name(kind),))
}

/// `MessageKind` or its value.
pub fn to_message_kind(value: &Bound<'_, PyAny>) -> PyResult<MessageKind> {
    let name: String = value.extract()?;
    match name.as_str() {
        "heartbeat" => Ok(MessageKind::Heartbeat),
        "status_report" => Ok(MessageKind::StatusReport),
        _ => Err(invalid(
            value.py(),
            "message kind",
            format!("{name:?}: use MessageKind.HEARTBEAT or MessageKind.STATUS_REPORT"),
        )),
    }
}

pub fn availability(py: Python<'_>, availability: Availability) -> PyResult<Bound<'_, PyAny>> {
    let state = class(py, "AvailabilityState")?.call1((availability.name(),))?;
    let (missed, since) = match availability {
        Availability::Pending | Availability::Available => (0, None),
        Availability::Late { missed } => (missed, None),
        Availability::Unavailable { since, missed } => (missed, Some(since)),
        Availability::Decommissioned { since } => (0, Some(since)),
    };
    value!(py, "Availability" { state: state, missed: missed, since: opt_datetime(py, since)? })
}

pub fn evaluation(py: Python<'_>, evaluation: Evaluation) -> PyResult<Bound<'_, PyAny>> {
    value!(py, "Evaluation" {
        availability: availability(py, evaluation.availability)?,
        next_change_at: opt_datetime(py, evaluation.next_change_at)?,
    })
}

pub fn product<'py>(py: Python<'py>, product: &Product) -> PyResult<Bound<'py, PyAny>> {
    value!(py, "Product" { name: product.name(), version: product.version() })
}

pub fn installation<'py>(py: Python<'py>, i: &Installation) -> PyResult<Bound<'py, PyAny>> {
    value!(py, "Installation" {
        slc: i.slc.as_str(),
        reseller: i.reseller.as_str(),
        product: product(py, &i.product)?,
        subscription_expires_at: opt_datetime(py, i.subscription_expires_at)?,
        consent: i.consent,
        registered_at: datetime(py, i.registered_at)?,
    })
}

pub fn summary<'py>(py: Python<'py>, s: &HealthSummary) -> PyResult<Bound<'py, PyAny>> {
    value!(py, "HealthSummary" {
        health: health(py, s.health)?,
        worst: s.worst.as_ref().map(|c| code(py, c)).transpose()?,
        servers: s.servers,
        unavailable: s.unavailable,
        late: s.late,
        active_conditions: s.active_conditions,
    })
}

pub fn reported_condition<'py>(
    py: Python<'py>,
    c: &ReportedCondition,
) -> PyResult<Bound<'py, PyAny>> {
    value!(py, "Condition" { code: code(py, c.code())?, subject: c.subject(), detail: c.detail() })
}

/// A `Condition` (anything with `code`, `subject` and optional `detail`).
pub fn to_reported_condition(value: &Bound<'_, PyAny>) -> PyResult<ReportedCondition> {
    let py = value.py();
    let code: String = value.getattr("code")?.extract()?;
    let subject: String = value.getattr("subject")?.extract()?;
    let detail: String = match value.getattr_opt("detail")? {
        Some(detail) => detail.extract()?,
        None => String::new(),
    };
    let code = ConditionCode::parse(&code).or_raise(py)?;
    ReportedCondition::new(code, &subject, &detail).or_raise(py)
}

pub fn condition_record<'py>(py: Python<'py>, c: &ConditionRecord) -> PyResult<Bound<'py, PyAny>> {
    value!(py, "ConditionRecord" {
        server: c.server.as_str(),
        code: code(py, &c.code)?,
        subject: c.subject.as_str(),
        detail: c.detail.as_str(),
        opened_at: datetime(py, c.opened_at)?,
        resolved_at: opt_datetime(py, c.resolved_at)?,
    })
}

/// A sealed message as the `SealedMessage` dataclass.
pub fn sealed_message(py: Python<'_>, message: IncomingMessage) -> PyResult<Bound<'_, PyAny>> {
    value!(py, "SealedMessage" {
        slc: message.slc.as_str(),
        server: message.server.as_str(),
        kind: message_kind(py, message.kind)?,
        sequence: message.sequence,
        sealed: pyo3::types::PyBytes::new(py, &message.sealed),
    })
}

/// A `SealedMessage` (anything with its attributes) as the core's message.
pub fn to_incoming_message(value: &Bound<'_, PyAny>) -> PyResult<IncomingMessage> {
    let py = value.py();
    let slc: String = value.getattr("slc")?.extract()?;
    let server: String = value.getattr("server")?.extract()?;
    Ok(IncomingMessage {
        slc: Slc::new(&slc).or_raise(py)?,
        server: RecordingServerId::new(&server).or_raise(py)?,
        kind: to_message_kind(&value.getattr("kind")?)?,
        sequence: value.getattr("sequence")?.extract()?,
        sealed: value.getattr("sealed")?.extract()?,
    })
}

/// Counts per health as `{Health: int}`.
pub fn totals<'py>(py: Python<'py>, count: impl Fn(Health) -> u32) -> PyResult<Bound<'py, PyDict>> {
    let totals = PyDict::new(py);
    for h in Health::ALL {
        totals.set_item(health(py, h)?, count(h))?;
    }
    Ok(totals)
}
