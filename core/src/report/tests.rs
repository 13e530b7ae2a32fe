//! Uptime figures and the report: a hand-computed scenario, edge cases,
//! a brute-force comparison, and the formats.

use std::time::Duration;

use super::*;
use crate::availability::{Downtime, DowntimeWindow};
use crate::ids::{RecordingServerId, ResellerId, Slc};
use crate::labels::Labels;
use crate::notification::maintenance::{MaintenanceWindow, WindowId};
use crate::store::{HistoryEvent, HistoryKind};
use crate::team::Login;
use crate::time::Timestamp;

const DAY: &str = "2026-11-03";
const SLC: &str = "M01-C01-123-45";

/// `HH:MM` on [`DAY`]; `-HH:MM` the day before, `+HH:MM` the day after.
fn at(hhmm: &str) -> Timestamp {
    let (day, time) = match hhmm.as_bytes().first() {
        Some(b'-') => ("2026-11-02", &hhmm[1..]),
        Some(b'+') => ("2026-11-04", &hhmm[1..]),
        _ => (DAY, hhmm),
    };
    Timestamp::parse_utc(&format!("{day}T{time}")).expect("a time")
}

fn minutes(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

fn rs(id: &str) -> RecordingServerId {
    RecordingServerId::new(id).expect("server id")
}

fn slc(text: &str) -> Slc {
    Slc::new(text).expect("slc")
}

fn acme() -> ResellerId {
    ResellerId::new("acme").expect("reseller")
}

fn day() -> Period {
    Period::parse_day(DAY).expect("the day")
}

fn event(server: &str, at: Timestamp, kind: HistoryKind) -> HistoryEvent {
    HistoryEvent {
        at,
        server: rs(server),
        kind,
    }
}

fn down(server: &str, t: Timestamp) -> HistoryEvent {
    event(server, t, HistoryKind::BecameUnavailable { missed: 3 })
}

fn up(server: &str, t: Timestamp, since: Timestamp) -> HistoryEvent {
    event(
        server,
        t,
        HistoryKind::Recovered {
            unavailable_for: t.since(since),
            missed: 3,
        },
    )
}

/// Down from `start` to `end` (not recovered if `end` is `None`).
fn outage(server: &str, start: Timestamp, end: Option<Timestamp>) -> Vec<HistoryEvent> {
    let mut events = vec![down(server, start)];
    events.extend(end.map(|end| up(server, end, start)));
    events
}

fn window(
    reseller: &str,
    slc: Option<&str>,
    starts_at: Timestamp,
    length: Duration,
    every: Option<Duration>,
) -> MaintenanceWindow {
    MaintenanceWindow {
        id: WindowId::generate(),
        reseller: ResellerId::new(reseller).expect("reseller"),
        slc: slc.map(self::slc),
        starts_at,
        length,
        every,
        reason: "firmware".into(),
        created_by: Login::new("admin@acme.example").expect("login"),
        created_at: Timestamp::EPOCH,
        deleted_at: None,
    }
}

fn own(start: Timestamp, end: Timestamp) -> DowntimeWindow {
    DowntimeWindow::new(start, end).expect("window")
}

fn installation(
    slc_text: &str,
    customer: &str,
    servers: &[(&str, Timestamp)],
    history: Vec<HistoryEvent>,
) -> InstallationHistory {
    InstallationHistory {
        slc: slc(slc_text),
        labels: Labels::new(customer, "Harbour", "", &[]).expect("labels"),
        servers: servers
            .iter()
            .map(|(id, first_seen_at)| MonitoredServer {
                server: rs(id),
                first_seen_at: *first_seen_at,
            })
            .collect(),
        history,
    }
}

fn long_ago() -> Timestamp {
    Timestamp::parse_utc("2026-10-01").expect("a time")
}

/// One server, first seen long ago, over [`day`], with these exclusions.
fn server_uptime(
    history: Vec<HistoryEvent>,
    first_seen: Timestamp,
    own_downtime: &[DowntimeWindow],
    maintenance: &[MaintenanceWindow],
) -> Uptime {
    let installation = installation(SLC, "", &[("rs-a", first_seen)], history);
    let computed = InstallationUptime::compute(
        &installation,
        day(),
        &Downtime::new(own_downtime.to_vec()),
        maintenance,
    );
    assert_eq!(computed.servers.len(), 1);
    let server = computed.servers[0].uptime;
    assert_eq!(
        computed.uptime, server,
        "one server: the installation's figures"
    );
    server
}

/// The four parts of the period add up to it.
fn assert_partition(u: &Uptime) {
    assert_eq!(
        u.unmonitored + u.excluded_own_downtime + u.excluded_maintenance + u.observed,
        u.period.length(),
        "{u:?}"
    );
    assert!(u.down <= u.observed && u.down <= u.outage_time, "{u:?}");
}

const MINUTE: i64 = 60_000;

mod brute_force;
mod report;
mod uptime;
