//! The observer: polls the Dashboard as a user would and records every
//! verdict it shows, and every poll that failed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use carewatch_grpc::proto;
use carewatch_tests::Dashboard;
use tokio::sync::watch;

use crate::{POLL_EVERY, lock};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerView {
    pub(crate) availability: i32,
    pub(crate) missed: u32,
    pub(crate) since: Option<i64>,
    pub(crate) last_seen: Option<i64>,
}

#[derive(Debug, Clone)]
pub(crate) struct SiteView {
    pub(crate) row_health: i32,
    pub(crate) detail_health: i32,
    pub(crate) servers: BTreeMap<String, ServerView>,
}

#[derive(Debug, Clone)]
pub(crate) struct Poll {
    pub(crate) start: SystemTime,
    pub(crate) end: SystemTime,
    pub(crate) sites: BTreeMap<String, SiteView>,
}

#[derive(Debug, Clone)]
pub(crate) struct Gap {
    pub(crate) start: SystemTime,
    pub(crate) end: SystemTime,
    pub(crate) error: String,
}

#[derive(Debug, Default)]
pub(crate) struct Observations {
    pub(crate) polls: Vec<Poll>,
    pub(crate) gaps: Vec<Gap>,
}

pub(crate) fn ms_of(t: &prost_types::Timestamp) -> i64 {
    t.seconds * 1000 + i64::from(t.nanos) / 1_000_000
}

fn health_of(detail: &proto::InstallationDetail) -> i32 {
    detail
        .installation
        .as_ref()
        .and_then(|i| i.summary.as_ref())
        .map_or(0, |s| s.health)
}

pub(crate) async fn read_sites(
    dashboard: &Dashboard,
    slcs: &[String],
) -> Result<(BTreeMap<String, SiteView>, Vec<proto::InstallationDetail>), String> {
    let rows = dashboard
        .clone()
        .list_installations(proto::ListInstallationsRequest {
            include_healthy: true,
            page_size: 500,
            ..Default::default()
        })
        .await
        .map_err(|s| format!("list: {:?} {}", s.code(), s.message()))?
        .into_inner()
        .installations;
    let details = futures::future::try_join_all(slcs.iter().map(|slc| {
        let mut dashboard = dashboard.clone();
        async move {
            dashboard
                .get_installation(proto::GetInstallationRequest { slc: slc.clone() })
                .await
                .map(tonic::Response::into_inner)
        }
    }))
    .await
    .map_err(|s| format!("detail: {:?} {}", s.code(), s.message()))?;
    let mut sites = BTreeMap::new();
    for (slc, detail) in slcs.iter().zip(&details) {
        let row = rows
            .iter()
            .find(|r| &r.slc == slc)
            .ok_or_else(|| format!("{slc} missing from the list"))?;
        let servers = detail
            .servers
            .iter()
            .map(|s| {
                let view = ServerView {
                    availability: s.availability,
                    missed: s.missed_heartbeats,
                    since: s.unavailable_since.as_ref().map(ms_of),
                    last_seen: s.last_seen_at.as_ref().map(ms_of),
                };
                (s.id.clone(), view)
            })
            .collect();
        let view = SiteView {
            row_health: row.summary.as_ref().map_or(0, |s| s.health),
            detail_health: health_of(detail),
            servers,
        };
        sites.insert(slc.clone(), view);
    }
    Ok((sites, details))
}

pub(crate) async fn observe(
    dashboard: Dashboard,
    slcs: Vec<String>,
    seen: Arc<Mutex<Observations>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let start = SystemTime::now();
        let read =
            tokio::time::timeout(Duration::from_secs(1), read_sites(&dashboard, &slcs)).await;
        let end = SystemTime::now();
        let mut seen = lock(&seen);
        match read {
            Ok(Ok((sites, _))) => seen.polls.push(Poll { start, end, sites }),
            Ok(Err(error)) => seen.gaps.push(Gap { start, end, error }),
            Err(_) => seen.gaps.push(Gap {
                start,
                end,
                error: "timed out".into(),
            }),
        }
    }
}
