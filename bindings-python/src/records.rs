//! The facade's records (overview, detail, history, acknowledgements …) as
//! `carewatch._types` dataclasses.

use carewatch_core::feed::{Change, ChangeEvent};
use carewatch_core::labels::Labels;
use carewatch_core::report::{InstallationUptime, Uptime, UptimeReport};
use carewatch_core::store::{
    HistoryEvent, HistoryKind, InstallationDetail, OverviewPage, OverviewRow, Reseller,
    ServerRecord,
};
use carewatch_core::time::Timestamp;
use carewatch_core::{IngestAck, SweepReport};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::convert::{
    availability, code, condition_record, datetime, health, installation, opt_datetime, product,
    summary, timedelta, totals, value,
};

pub fn reseller<'py>(py: Python<'py>, r: &Reseller) -> PyResult<Bound<'py, PyAny>> {
    value!(py, "Reseller" {
        id: r.id.as_str(),
        name: r.name.as_str(),
        created_at: datetime(py, r.created_at)?,
    })
}

pub fn reseal_report<'py>(
    py: Python<'py>,
    r: &carewatch_core::ResealReport,
) -> PyResult<Bound<'py, PyAny>> {
    value!(py, "ResealReport" {
        current_key: r.current_key.as_str(),
        previous_keys: r.previous_keys,
        keys_resealed: r.keys_resealed,
        keys_current: r.keys_current,
        channels_resealed: r.channels_resealed,
        channels_current: r.channels_current,
        changed_meanwhile: r.changed_meanwhile,
        unopenable: r.unopenable,
        unopenable_named: pyo3::types::PyTuple::new(py, &r.unopenable_named)?,
    })
}

pub fn audit_entry<'py>(
    py: Python<'py>,
    e: &carewatch_core::audit::AuditEntry,
) -> PyResult<Bound<'py, PyAny>> {
    let actor = carewatch_core::store::columns::ActorColumns::from(&e.record.actor);
    value!(py, "AuditEntry" {
        id: e.id,
        at: datetime(py, e.record.at)?,
        actor_kind: actor.kind,
        actor_name: actor.name,
        actor_reseller: actor.reseller,
        action: e.record.action.name(),
        target: e.record.target.as_str(),
        detail: e.record.detail.as_str(),
    })
}

fn overview_row<'py>(
    py: Python<'py>,
    row: &OverviewRow,
    now: Timestamp,
) -> PyResult<Bound<'py, PyAny>> {
    value!(py, "OverviewRow" {
        slc: row.slc.as_str(),
        product: product(py, &row.product)?,
        summary: summary(py, &row.summary)?,
        last_seen_at: opt_datetime(py, row.last_seen_at)?,
        labels: labels(py, &row.labels)?,
        refused: row.refusal_at(now).map(|r| r.name()),
    })
}

pub fn labels<'py>(py: Python<'py>, l: &Labels) -> PyResult<Bound<'py, PyAny>> {
    value!(py, "Labels" {
        customer: l.customer(),
        site: l.site(),
        notes: l.notes(),
        tags: PyTuple::new(py, l.tags())?,
    })
}

pub fn overview_page<'py>(
    py: Python<'py>,
    page: &OverviewPage,
    now: Timestamp,
) -> PyResult<Bound<'py, PyAny>> {
    let rows = page
        .rows
        .iter()
        .map(|row| overview_row(py, row, now))
        .collect::<PyResult<Vec<_>>>()?;
    value!(py, "OverviewPage" {
        rows: PyTuple::new(py, rows)?,
        next_page: page.next.as_ref().map(|cursor| cursor.to_token()),
        totals: totals(py, |h| page.totals.get(h))?,
    })
}

fn recording_server<'py>(py: Python<'py>, s: &ServerRecord) -> PyResult<Bound<'py, PyAny>> {
    value!(py, "RecordingServer" {
        id: s.server.as_str(),
        first_seen_at: datetime(py, s.first_seen_at)?,
        last_seen_at: datetime(py, s.last_seen_at)?,
        interval: timedelta(py, s.interval)?,
        availability: availability(py, s.availability)?,
        next_check_at: opt_datetime(py, s.next_check_at)?,
    })
}

pub fn history_event<'py>(py: Python<'py>, e: &HistoryEvent) -> PyResult<Bound<'py, PyAny>> {
    let (event_code, subject, missed, duration) = match &e.kind {
        HistoryKind::FirstSeen => (None, None, None, None),
        HistoryKind::ConditionOpened { code: c, subject } => {
            (Some(code(py, c)?), Some(subject.as_str()), None, None)
        }
        HistoryKind::ConditionResolved {
            code: c,
            subject,
            open_for,
        } => (
            Some(code(py, c)?),
            Some(subject.as_str()),
            None,
            Some(timedelta(py, *open_for)?),
        ),
        HistoryKind::BecameUnavailable { missed } => (None, None, Some(*missed), None),
        HistoryKind::Recovered {
            unavailable_for,
            missed,
        } => (
            None,
            None,
            Some(*missed),
            Some(timedelta(py, *unavailable_for)?),
        ),
        HistoryKind::Decommissioned => (None, None, None, None),
        HistoryKind::Recommissioned { decommissioned_for } => {
            (None, None, None, Some(timedelta(py, *decommissioned_for)?))
        }
        HistoryKind::Parked => (None, None, None, None),
        HistoryKind::Resumed { parked_for } => {
            (None, None, None, Some(timedelta(py, *parked_for)?))
        }
    };
    value!(py, "HistoryEvent" {
        at: datetime(py, e.at)?,
        server: e.server.as_str(),
        kind: crate::convert::class(py, "HistoryKind")?.call1((e.kind.name(),))?,
        code: event_code,
        subject: subject,
        missed: missed,
        duration: duration,
    })
}

pub fn installation_detail<'py>(
    py: Python<'py>,
    d: &InstallationDetail,
) -> PyResult<Bound<'py, PyAny>> {
    let servers = d
        .servers
        .iter()
        .map(|s| recording_server(py, s))
        .collect::<PyResult<Vec<_>>>()?;
    let conditions = d
        .active_conditions
        .iter()
        .map(|c| condition_record(py, c))
        .collect::<PyResult<Vec<_>>>()?;
    let history = d
        .history
        .iter()
        .map(|e| history_event(py, e))
        .collect::<PyResult<Vec<_>>>()?;
    value!(py, "InstallationDetail" {
        installation: installation(py, &d.installation)?,
        summary: summary(py, &d.summary)?,
        servers: PyTuple::new(py, servers)?,
        active_conditions: PyTuple::new(py, conditions)?,
        history: PyTuple::new(py, history)?,
        labels: labels(py, &d.labels)?,
    })
}

pub fn ingest_ack(py: Python<'_>, ack: IngestAck) -> PyResult<Bound<'_, PyAny>> {
    value!(py, "IngestAck" {
        received_at: datetime(py, ack.received_at)?,
        heartbeat_interval: timedelta(py, ack.heartbeat_interval)?,
        duplicate: ack.duplicate,
    })
}

pub fn sweep_report(py: Python<'_>, report: SweepReport) -> PyResult<Bound<'_, PyAny>> {
    value!(py, "SweepReport" {
        evaluated: report.evaluated,
        installations_changed: report.installations_changed,
    })
}

/// A change-feed event: `InstallationChange`, `ServerChange` or `InstallationUpdate`.
pub fn change_event(py: Python<'_>, event: ChangeEvent) -> PyResult<Bound<'_, PyAny>> {
    let event_id = event.id.0;
    let slc = event.slc.as_str();
    let at = datetime(py, event.at)?;
    let update = |kind: &str, accepted: Option<bool>, expires_at: Option<Timestamp>| {
        value!(py, "InstallationUpdate" {
            slc: slc,
            at: at.clone(),
            kind: kind,
            accepted: accepted,
            expires_at: opt_datetime(py, expires_at)?,
            event_id: event_id,
        })
    };
    match event.change {
        Change::Health {
            previous,
            summary: s,
        } => value!(py, "InstallationChange" {
            slc: slc,
            previous: health(py, previous)?,
            summary: summary(py, &s)?,
            at: at,
            event_id: event_id,
        }),
        Change::Server {
            server,
            event: kind,
        } => value!(py, "ServerChange" {
            slc: slc,
            event: history_event(py, &HistoryEvent { at: event.at, server, kind })?,
            event_id: event_id,
        }),
        Change::Registered => update("registered", None, None),
        Change::Consent { accepted } => update("consent", Some(accepted), None),
        Change::Subscription { expires_at } => update("subscription", None, expires_at),
        Change::Labels => update("labels", None, None),
        Change::Removed => update("removed", None, None),
        // Never watched (ChangeFilter::matches); named as stored.
        Change::Unknown { kind } => update(&kind, None, None),
    }
}

fn uptime<'py>(py: Python<'py>, u: &Uptime) -> PyResult<Bound<'py, PyAny>> {
    value!(py, "Uptime" {
        // As in the report's JSON: rounded down to 3 decimals.
        availability_percent: u.availability().map(|a| a.scaled_down(3) as f64 / 1000.0),
        observed: timedelta(py, u.observed)?,
        down: timedelta(py, u.down)?,
        outages: u.outages,
        outage_time: timedelta(py, u.outage_time)?,
        mttr: u.mttr.map(|d| timedelta(py, d)).transpose()?,
        ongoing: u.ongoing,
        excluded_own_downtime: timedelta(py, u.excluded_own_downtime)?,
        excluded_maintenance: timedelta(py, u.excluded_maintenance)?,
        unmonitored: timedelta(py, u.unmonitored)?,
    })
}

fn installation_uptime<'py>(
    py: Python<'py>,
    i: &InstallationUptime,
) -> PyResult<Bound<'py, PyAny>> {
    let servers = i
        .servers
        .iter()
        .map(|s| {
            value!(py, "ServerUptime" {
                server: s.server.as_str(),
                uptime: uptime(py, &s.uptime)?,
            })
        })
        .collect::<PyResult<Vec<_>>>()?;
    value!(py, "InstallationUptime" {
        slc: i.slc.as_str(),
        customer: i.customer.as_str(),
        site: i.site.as_str(),
        uptime: uptime(py, &i.uptime)?,
        servers: PyTuple::new(py, servers)?,
    })
}

pub fn uptime_report<'py>(py: Python<'py>, r: &UptimeReport) -> PyResult<Bound<'py, PyAny>> {
    let installations = r
        .installations
        .iter()
        .map(|i| installation_uptime(py, i))
        .collect::<PyResult<Vec<_>>>()?;
    value!(py, "UptimeReport" {
        reseller: r.reseller.as_str(),
        period_start: datetime(py, r.period.start())?,
        period_end: datetime(py, r.period.end())?,
        installations: PyTuple::new(py, installations)?,
        csv: r.to_csv(),
        json: r.to_json(),
    })
}
