//! Module-level functions: the availability rule, and sealing as a
//! recording server does it (for Python tooling and test rigs).

use carewatch_core::availability::{self, AvailabilityPolicy, Downtime, DowntimeWindow};
use carewatch_core::catalogue::{ConditionCode, Severity};
use carewatch_core::condition::StatusSnapshot;
use carewatch_core::ids::{RecordingServerId, Slc};
use carewatch_core::seal::payload::decode_message;
use carewatch_core::seal::{self, Binding, InstallationKey, KeyId, MasterKey};
use carewatch_core::{Error, IncomingMessage};
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::convert::{
    self, class, duration, evaluation, reported_condition, sealed_message, timestamp,
    to_incoming_message, to_message_kind,
};
use crate::errors::OrRaise;

/// The availability rule: how a recording server last heard from at
/// ``last_seen`` (``None``: never) stands at ``now``, and when that changes
/// next without a new message. ``downtime`` lists ``(start, end)`` windows
/// when Carewatch itself was not receiving; they do not count as missed.
#[pyfunction]
#[pyo3(signature = (
    last_seen, now, *, interval=None, unavailable_after=3, jitter_tolerance=None, downtime=None,
))]
pub fn evaluate<'py>(
    py: Python<'py>,
    last_seen: Option<Bound<'py, PyAny>>,
    now: Bound<'py, PyAny>,
    interval: Option<Bound<'py, PyAny>>,
    unavailable_after: i128,
    jitter_tolerance: Option<Bound<'py, PyAny>>,
    downtime: Option<Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)>>,
) -> PyResult<Bound<'py, PyAny>> {
    let unavailable_after: u32 = convert::whole(py, unavailable_after, "unavailable_after")?;
    let last_seen = last_seen
        .map(|at| timestamp(&at, "last_seen"))
        .transpose()?;
    let now = timestamp(&now, "now")?;
    let interval = match interval {
        Some(i) => availability::check_interval(duration(&i, "interval")?).or_raise(py)?,
        None => availability::DEFAULT_INTERVAL,
    };
    let jitter = match jitter_tolerance {
        Some(j) => duration(&j, "jitter_tolerance")?,
        None => AvailabilityPolicy::default().jitter_tolerance(),
    };
    let policy = AvailabilityPolicy::new(unavailable_after, jitter).or_raise(py)?;
    let windows = downtime
        .unwrap_or_default()
        .iter()
        .map(|(start, end)| {
            let (start, end) = (timestamp(start, "downtime")?, timestamp(end, "downtime")?);
            DowntimeWindow::new(start, end).or_raise(py)
        })
        .collect::<PyResult<Vec<_>>>()?;
    let result = availability::evaluate(last_seen, interval, &policy, &Downtime::new(windows), now);
    evaluation(py, result)
}

struct Sender {
    key: InstallationKey,
    slc: Slc,
    server: RecordingServerId,
}

impl Sender {
    fn parse(py: Python<'_>, key: &str, slc: &str, server: &str) -> PyResult<Self> {
        Ok(Self {
            key: InstallationKey::from_text(key).or_raise(py)?,
            slc: Slc::new(slc).or_raise(py)?,
            server: RecordingServerId::new(server).or_raise(py)?,
        })
    }
}

/// Seals a heartbeat as a recording server would, with the installation
/// key's text (``cwk1:…``).
#[pyfunction]
pub fn seal_heartbeat<'py>(
    py: Python<'py>,
    key: &str,
    slc: &str,
    server: &str,
    sequence: i128,
) -> PyResult<Bound<'py, PyAny>> {
    let sequence: u64 = convert::whole(py, sequence, "sequence")?;
    let s = Sender::parse(py, key, slc, server)?;
    sealed_message(
        py,
        IncomingMessage::heartbeat(&s.key, &s.slc, &s.server, sequence),
    )
}

/// Seals a status report: the server's complete set of active conditions
/// (an empty list means all clear).
#[pyfunction]
pub fn seal_status<'py>(
    py: Python<'py>,
    key: &str,
    slc: &str,
    server: &str,
    sequence: i128,
    conditions: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let sequence: u64 = convert::whole(py, sequence, "sequence")?;
    let s = Sender::parse(py, key, slc, server)?;
    let conditions = conditions
        .try_iter()?
        .map(|c| convert::to_reported_condition(&c?))
        .collect::<PyResult<Vec<_>>>()?;
    let snapshot = StatusSnapshot::new(conditions).or_raise(py)?;
    sealed_message(
        py,
        IncomingMessage::status_report(&s.key, &s.slc, &s.server, sequence, &snapshot),
    )
}

/// Seals any plaintext as a message of ``kind``: for test rigs that need
/// messages a well-behaved recording server would not send.
#[pyfunction]
pub fn seal_message<'py>(
    py: Python<'py>,
    key: &str,
    slc: &str,
    server: &str,
    kind: Bound<'py, PyAny>,
    sequence: i128,
    plaintext: &[u8],
) -> PyResult<Bound<'py, PyAny>> {
    let sequence: u64 = convert::whole(py, sequence, "sequence")?;
    let s = Sender::parse(py, key, slc, server)?;
    let kind = to_message_kind(&kind)?;
    let binding = Binding {
        slc: &s.slc,
        server: &s.server,
        kind,
        sequence,
    };
    let sealed = seal::seal(&s.key, &binding, plaintext);
    sealed_message(
        py,
        IncomingMessage {
            slc: s.slc,
            server: s.server,
            kind,
            sequence,
            sealed,
        },
    )
}

/// Opens a sealed message with the installation key, as Carewatch does:
/// returns a status report's conditions, or ``None`` for a heartbeat.
/// Raises ``CannotDecrypt`` if it does not open (wrong key, altered bytes, or
/// sealed for another message) and ``Malformed`` if its content is invalid.
#[pyfunction]
pub fn open_message<'py>(
    py: Python<'py>,
    key: &str,
    message: Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyList>>> {
    let key = InstallationKey::from_text(key).or_raise(py)?;
    let message = to_incoming_message(&message)?;
    let binding = Binding {
        slc: &message.slc,
        server: &message.server,
        kind: message.kind,
        sequence: message.sequence,
    };
    let plaintext = seal::open(&key, &binding, &message.sealed)
        .map_err(|reason| Error::CannotDecrypt {
            slc: message.slc.clone(),
            reason,
        })
        .or_raise(py)?;
    let Some(snapshot) = decode_message(message.kind, &plaintext).or_raise(py)? else {
        return Ok(None);
    };
    let conditions = snapshot
        .conditions()
        .iter()
        .map(|c| reported_condition(py, c))
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, conditions).map(Some)
}

/// A new random master key (64 hex digits). Keep it secret and backed up:
/// installation keys are stored sealed under it.
#[pyfunction]
pub fn generate_master_key() -> String {
    MasterKey::generate().to_hex().to_string()
}

/// A new random installation key's text, for test rigs without a database
/// (a real installation's key comes from ``Carewatch.issue_installation_key``).
#[pyfunction]
#[pyo3(signature = (key_id=1))]
pub fn generate_installation_key(py: Python<'_>, key_id: i128) -> PyResult<String> {
    let key_id: u32 = convert::whole(py, key_id, "key_id")?;
    Ok(InstallationKey::generate(KeyId::new(key_id))
        .to_text()
        .to_string())
}

/// Every condition code this version knows: ``(code, severity, description)``
/// with severity ``"warning"`` or ``"critical"``.
#[pyfunction]
pub fn condition_catalogue(
    py: Python<'_>,
) -> PyResult<Vec<(Bound<'_, PyAny>, &'static str, String)>> {
    ConditionCode::known()
        .map(|code| {
            let severity = match code.severity() {
                Severity::Warning => "warning",
                Severity::Critical => "critical",
            };
            let description = code.description().to_owned();
            Ok((
                class(py, "ConditionCode")?.call1((code.as_str(),))?,
                severity,
                description,
            ))
        })
        .collect()
}
