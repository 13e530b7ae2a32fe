//! Between domain types and protobuf messages.

use carewatch_core::labels::Labels;
use std::time::Duration;

use carewatch_core::availability::Availability;
use carewatch_core::feed::{Change, ChangeEvent};
use carewatch_core::health::{Health, HealthSummary};
use carewatch_core::ids::{RecordingServerId, ResellerId, Slc};
use carewatch_core::installation::Installation;
use carewatch_core::report::{InstallationUptime, Uptime, UptimeReport};
use carewatch_core::store::{
    HealthTotals, HistoryEvent, HistoryKind, InstallationDetail, OverviewOrder, OverviewRow,
    ServerRecord,
};
use carewatch_core::time::Timestamp;
use carewatch_core::{Error, Result};

use crate::proto;

/// A domain instant as a protobuf timestamp.
pub fn timestamp(t: Timestamp) -> prost_types::Timestamp {
    let ms = t.as_millis();
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A protobuf timestamp as a domain instant (millisecond precision).
pub fn from_timestamp(field: &'static str, t: &prost_types::Timestamp) -> Result<Timestamp> {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Err(Error::InvalidInput {
            field,
            reason: format!("nanos {} out of range", t.nanos),
        });
    }
    let ms = t
        .seconds
        .checked_mul(1000)
        .and_then(|ms| ms.checked_add(i64::from(t.nanos / 1_000_000)))
        .ok_or_else(|| Error::InvalidInput {
            field,
            reason: "out of range".into(),
        })?;
    Ok(Timestamp::from_millis(ms))
}

/// A duration as a protobuf duration.
pub fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// A protobuf duration as a duration: a negative one, or nanos outside
/// 0..1e9, is refused (read as zero it turned a hold off).
pub fn from_duration(field: &'static str, d: &prost_types::Duration) -> Result<Duration> {
    match (u64::try_from(d.seconds), u32::try_from(d.nanos)) {
        (Ok(seconds), Ok(nanos)) if nanos < 1_000_000_000 => Ok(Duration::new(seconds, nanos)),
        _ => Err(Error::InvalidInput {
            field,
            reason: "a duration of zero or more (seconds, and nanos below one second)".into(),
        }),
    }
}

/// Parses an SLC field.
pub fn slc(text: &str) -> Result<Slc> {
    Slc::new(text)
}

/// Parses a recording-server id field.
pub fn server_id(text: &str) -> Result<RecordingServerId> {
    RecordingServerId::new(text)
}

/// Parses a reseller id field.
pub fn reseller_id(text: &str) -> Result<ResellerId> {
    ResellerId::new(text)
}

/// Health in protobuf.
pub fn health(h: Health) -> proto::Health {
    match h {
        Health::Healthy => proto::Health::Healthy,
        Health::Pending => proto::Health::Pending,
        Health::Attention => proto::Health::Attention,
        Health::Critical => proto::Health::Critical,
        Health::Offline => proto::Health::Offline,
    }
}

/// Health from protobuf.
pub fn from_health(h: proto::Health) -> Option<Health> {
    match h {
        proto::Health::Unspecified => None,
        proto::Health::Healthy => Some(Health::Healthy),
        proto::Health::Pending => Some(Health::Pending),
        proto::Health::Attention => Some(Health::Attention),
        proto::Health::Critical => Some(Health::Critical),
        proto::Health::Offline => Some(Health::Offline),
    }
}

/// An overview order from protobuf (an unknown number is refused).
pub fn overview_order(value: i32) -> Result<OverviewOrder> {
    match proto::InstallationOrder::try_from(value) {
        Ok(proto::InstallationOrder::WorstFirst) => Ok(OverviewOrder::WorstFirst),
        Ok(proto::InstallationOrder::Customer) => Ok(OverviewOrder::Customer),
        Ok(proto::InstallationOrder::Site) => Ok(OverviewOrder::Site),
        Err(_) => Err(Error::InvalidInput {
            field: "order",
            reason: format!("{value} is not a known order"),
        }),
    }
}

/// A summary in protobuf.
pub fn summary(s: &HealthSummary) -> proto::HealthSummary {
    proto::HealthSummary {
        health: health(s.health) as i32,
        worst_condition: s
            .worst
            .as_ref()
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default(),
        servers: s.servers,
        unavailable: s.unavailable,
        late: s.late,
        active_conditions: s.active_conditions,
    }
}

/// An overview row in protobuf (`maintenance_until` unset: the caller
/// knows the maintenance windows).
pub fn row(r: &OverviewRow) -> proto::InstallationRow {
    proto::InstallationRow {
        slc: r.slc.to_string(),
        product: r.product.name().to_owned(),
        product_version: r.product.version().to_owned(),
        summary: Some(summary(&r.summary)),
        last_seen_at: r.last_seen_at.map(timestamp),
        maintenance_until: None,
        labels: Some(labels(&r.labels)),
        refused: String::new(),
    }
}

/// Labels in protobuf.
pub fn labels(l: &Labels) -> proto::Labels {
    proto::Labels {
        customer: l.customer().to_owned(),
        site: l.site().to_owned(),
        notes: l.notes().to_owned(),
        tags: l.tags().to_vec(),
    }
}

/// Labels from protobuf, checked (absent: none).
pub fn labels_from(l: Option<proto::Labels>) -> carewatch_core::Result<Labels> {
    let l = l.unwrap_or_default();
    Labels::new(&l.customer, &l.site, &l.notes, &l.tags)
}

/// Totals in protobuf.
pub fn totals(t: &HealthTotals) -> proto::HealthTotals {
    proto::HealthTotals {
        healthy: t.get(Health::Healthy),
        pending: t.get(Health::Pending),
        attention: t.get(Health::Attention),
        critical: t.get(Health::Critical),
        offline: t.get(Health::Offline),
    }
}

fn server(s: &ServerRecord, probably_removed: bool) -> proto::RecordingServer {
    let decommissioned_at = match s.availability {
        Availability::Decommissioned { since } => Some(timestamp(since)),
        _ => None,
    };
    let (availability, missed, since) = match s.availability {
        Availability::Pending => (proto::Availability::Pending, 0, None),
        Availability::Available => (proto::Availability::Available, 0, None),
        Availability::Late { missed } => (proto::Availability::Late, missed, None),
        Availability::Unavailable { since, missed } => (
            proto::Availability::Unavailable,
            missed,
            Some(timestamp(since)),
        ),
        Availability::Decommissioned { .. } => (proto::Availability::Decommissioned, 0, None),
    };
    proto::RecordingServer {
        decommissioned_at,
        probably_removed,
        id: s.server.to_string(),
        availability: availability as i32,
        missed_heartbeats: missed,
        unavailable_since: since,
        first_seen_at: Some(timestamp(s.first_seen_at)),
        last_seen_at: Some(timestamp(s.last_seen_at)),
        heartbeat_interval: Some(duration(s.interval)),
    }
}

/// A history event in protobuf.
pub fn history(e: &HistoryEvent) -> proto::HistoryEvent {
    use proto::history_event::{self as h, Kind};
    let kind = match &e.kind {
        HistoryKind::FirstSeen => Kind::FirstSeen(h::FirstSeen {}),
        HistoryKind::ConditionOpened { code, subject } => {
            Kind::ConditionOpened(h::ConditionOpened {
                code: code.to_string(),
                subject: subject.clone(),
            })
        }
        HistoryKind::ConditionResolved {
            code,
            subject,
            open_for,
        } => Kind::ConditionResolved(h::ConditionResolved {
            code: code.to_string(),
            subject: subject.clone(),
            open_for: Some(duration(*open_for)),
        }),
        HistoryKind::BecameUnavailable { missed } => {
            Kind::BecameUnavailable(h::BecameUnavailable {
                missed_heartbeats: *missed,
            })
        }
        HistoryKind::Recovered {
            unavailable_for,
            missed,
        } => Kind::Recovered(h::Recovered {
            unavailable_for: Some(duration(*unavailable_for)),
            missed_heartbeats: *missed,
        }),
        HistoryKind::Decommissioned => Kind::Decommissioned(h::Decommissioned {}),
        HistoryKind::Recommissioned { decommissioned_for } => {
            Kind::Recommissioned(h::Recommissioned {
                decommissioned_for: Some(duration(*decommissioned_for)),
            })
        }
        HistoryKind::Parked => Kind::Parked(h::Parked {}),
        HistoryKind::Resumed { parked_for } => Kind::Resumed(h::Resumed {
            parked_for: Some(duration(*parked_for)),
        }),
    };
    proto::HistoryEvent {
        at: Some(timestamp(e.at)),
        recording_server_id: e.server.to_string(),
        kind: Some(kind),
    }
}

/// An installation's detail in protobuf; `probably_removed` says which
/// availabilities are flagged now.
pub fn detail(
    d: &InstallationDetail,
    probably_removed: impl Fn(&Availability) -> bool,
) -> proto::InstallationDetail {
    let last_seen = d.servers.iter().map(|s| s.last_seen_at).max();
    let i = &d.installation;
    proto::InstallationDetail {
        installation: Some(proto::InstallationRow {
            slc: i.slc.to_string(),
            product: i.product.name().to_owned(),
            product_version: i.product.version().to_owned(),
            summary: Some(summary(&d.summary)),
            last_seen_at: last_seen.map(timestamp),
            maintenance_until: None,
            labels: Some(labels(&d.labels)),
            refused: String::new(),
        }),
        subscription_expires_at: i.subscription_expires_at.map(timestamp),
        consent: i.consent,
        servers: d
            .servers
            .iter()
            .map(|s| server(s, probably_removed(&s.availability)))
            .collect(),
        active_conditions: d
            .active_conditions
            .iter()
            .map(|c| proto::Condition {
                recording_server_id: c.server.to_string(),
                code: c.code.to_string(),
                subject: c.subject.clone(),
                detail: c.detail.clone(),
                opened_at: Some(timestamp(c.opened_at)),
            })
            .collect(),
        history: d.history.iter().map(history).collect(),
    }
}

/// An installation as the operator sees it.
pub fn installation_info(i: &Installation) -> proto::InstallationInfo {
    proto::InstallationInfo {
        slc: i.slc.to_string(),
        reseller_id: i.reseller.to_string(),
        product: i.product.name().to_owned(),
        product_version: i.product.version().to_owned(),
        subscription_expires_at: i.subscription_expires_at.map(timestamp),
        consent: i.consent,
        registered_at: Some(timestamp(i.registered_at)),
    }
}

/// An audit-log entry in protobuf.
pub fn audit_entry(e: &carewatch_core::audit::AuditEntry) -> proto::AuditEntry {
    use carewatch_core::store::columns::ActorColumns;
    let actor = ActorColumns::from(&e.record.actor);
    proto::AuditEntry {
        id: e.id,
        at: Some(timestamp(e.record.at)),
        actor_kind: actor.kind.to_owned(),
        actor_name: actor.name.to_owned(),
        actor_reseller_id: actor.reseller.unwrap_or_default().to_owned(),
        action: e.record.action.name().to_owned(),
        target: e.record.target.clone(),
        detail: e.record.detail.clone(),
    }
}

/// A change-feed event in protobuf.
pub fn watch_event(e: &ChangeEvent) -> proto::WatchEvent {
    use proto::installation_updated::Change as Updated;
    use proto::watch_event::Event;
    let slc = e.slc.to_string();
    let updated = |change| {
        Event::Updated(proto::InstallationUpdated {
            slc: slc.clone(),
            at: Some(timestamp(e.at)),
            change: Some(change),
        })
    };
    let event = match &e.change {
        Change::Health {
            previous,
            summary: s,
        } => Event::Changed(proto::InstallationChanged {
            slc: slc.clone(),
            previous: health(*previous) as i32,
            summary: Some(summary(s)),
            at: Some(timestamp(e.at)),
        }),
        Change::Server { server, event } => Event::Server(proto::ServerChanged {
            slc: slc.clone(),
            event: Some(history(&HistoryEvent {
                at: e.at,
                server: server.clone(),
                kind: event.clone(),
            })),
        }),
        Change::Registered => updated(Updated::Registered(true)),
        Change::Consent { accepted } => updated(Updated::Consent(*accepted)),
        Change::Subscription { expires_at } => {
            updated(Updated::Subscription(proto::SubscriptionChange {
                expires_at: expires_at.map(timestamp),
            }))
        }
        Change::Labels => updated(Updated::Labels(true)),
        Change::Removed => updated(Updated::Removed(true)),
        // Never watched (ChangeFilter::matches): its id alone.
        Change::Unknown { .. } => {
            return proto::WatchEvent {
                event_id: e.id.0,
                event: None,
            };
        }
    };
    proto::WatchEvent {
        event_id: e.id.0,
        event: Some(event),
    }
}

/// Uptime figures in protobuf; the availability as in the report's JSON
/// (rounded down to 3 decimals).
pub fn uptime(u: &Uptime) -> proto::Uptime {
    proto::Uptime {
        availability_percent: u.availability().map(|a| a.scaled_down(3) as f64 / 1000.0),
        observed: Some(duration(u.observed)),
        down: Some(duration(u.down)),
        outages: u.outages,
        outage_time: Some(duration(u.outage_time)),
        mttr: u.mttr.map(duration),
        ongoing: u.ongoing,
        excluded_own_downtime: Some(duration(u.excluded_own_downtime)),
        excluded_maintenance: Some(duration(u.excluded_maintenance)),
        unmonitored: Some(duration(u.unmonitored)),
    }
}

/// One installation's figures and its servers' in protobuf.
pub fn installation_uptime(i: &InstallationUptime) -> proto::InstallationUptime {
    proto::InstallationUptime {
        slc: i.slc.to_string(),
        customer: i.customer.clone(),
        site: i.site.clone(),
        uptime: Some(uptime(&i.uptime)),
        servers: i
            .servers
            .iter()
            .map(|s| proto::ServerUptime {
                recording_server_id: s.server.to_string(),
                uptime: Some(uptime(&s.uptime)),
            })
            .collect(),
    }
}

/// An uptime report in protobuf: typed, and as CSV and JSON.
pub fn uptime_report(r: &UptimeReport) -> proto::UptimeReport {
    proto::UptimeReport {
        period_start: Some(timestamp(r.period.start())),
        period_end: Some(timestamp(r.period.end())),
        installations: r.installations.iter().map(installation_uptime).collect(),
        csv: r.to_csv(),
        json: r.to_json(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_including_before_the_epoch() {
        for ms in [-1_500, -1, 0, 1, 1_767_225_600_123] {
            let t = Timestamp::from_millis(ms);
            assert_eq!(from_timestamp("t", &timestamp(t)).unwrap(), t);
        }
        assert!(
            from_timestamp(
                "t",
                &prost_types::Timestamp {
                    seconds: 0,
                    nanos: -1
                }
            )
            .is_err()
        );
        assert!(
            from_timestamp(
                "t",
                &prost_types::Timestamp {
                    seconds: i64::MAX,
                    nanos: 0
                }
            )
            .is_err()
        );
    }

    #[test]
    fn health_round_trips() {
        for h in Health::ALL {
            assert_eq!(from_health(health(h)), Some(h));
        }
    }
}
