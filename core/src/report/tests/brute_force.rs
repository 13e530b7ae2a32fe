//! Brute force: the figures compared with minute-by-minute counting.

use proptest::prelude::*;

use super::*;

// ---------------------------------------------------------------------
// Brute force: on a minute grid, classify every minute independently
// (MaintenanceWindow::occurrence_at for maintenance) and compare.
// ---------------------------------------------------------------------

fn minute(m: i64) -> Timestamp {
    Timestamp::from_millis(m * MINUTE)
}

/// One server: first seen, retired `[r0, r1)` (`r1` `None`: for good), its
/// installation's messages refused over `parked` (`[p0, p1)`, the last
/// maybe for good), its outages `(start, end, recovered)` (not recovered:
/// retired; one lasting through a refusal is out again after it) and which
/// history entries are missing (as if older than the history given).
#[derive(Debug, Clone)]
struct ServerCase {
    first_seen: i64,
    retired: Option<(i64, Option<i64>)>,
    parked: Vec<(i64, Option<i64>)>,
    outages: Vec<(i64, i64, bool)>,
    missing: u8,
}

fn within(span: (i64, Option<i64>), m: i64) -> bool {
    span.0 <= m && span.1.is_none_or(|end| m < end)
}

impl ServerCase {
    fn parked_at(&self, m: i64) -> bool {
        self.parked.iter().any(|&p| within(p, m))
    }

    fn monitored(&self, m: i64) -> bool {
        m >= self.first_seen && !self.retired.is_some_and(|r| within(r, m)) && !self.parked_at(m)
    }

    /// Out and judged: refused time is no outage.
    fn down(&self, m: i64) -> bool {
        self.outages.iter().any(|&(s, e, _)| s <= m && m < e) && !self.parked_at(m)
    }

    /// Whether a refusal begins or ends within `[s, e]`.
    fn refused_within(&self, s: i64, e: i64) -> bool {
        self.parked
            .iter()
            .any(|&(p0, p1)| p0 <= e && p1.is_none_or(|p1| s <= p1))
    }

    fn history(&self, id: &str) -> Vec<HistoryEvent> {
        let mut history = Vec::new();
        for (j, &(s, e, recovered)) in self.outages.iter().enumerate() {
            // A recovered outage's start may be missing: its length says it
            // (not across a refusal: the store reads each server's latest
            // availability entry before the period and its latest refusal).
            if !(recovered && self.missing & (1 << (j % 7)) != 0 && !self.refused_within(s, e)) {
                history.push(down(id, minute(s)));
            }
            if recovered {
                history.push(up(id, minute(e), minute(s)));
            }
        }
        if let Some((r0, r1)) = self.retired {
            // A retirement that ends may be missing its start too.
            if r1.is_none()
                || self.missing & 0x80 == 0
                || r1.is_some_and(|r1| self.refused_within(r0, r1))
            {
                history.push(event(id, minute(r0), HistoryKind::Decommissioned));
            }
            if let Some(r1) = r1 {
                history.push(event(
                    id,
                    minute(r1),
                    HistoryKind::Recommissioned {
                        decommissioned_for: minutes((r1 - r0) as u64),
                    },
                ));
            }
        }
        for &(p0, p1) in &self.parked {
            history.push(event(id, minute(p0), HistoryKind::Parked));
            if let Some(p1) = p1 {
                history.push(event(
                    id,
                    minute(p1),
                    HistoryKind::Resumed {
                        parked_for: minutes((p1 - p0) as u64),
                    },
                ));
            }
        }
        history
    }
}

/// A window's start, length, period, creation and deletion (minutes).
type WindowCase = (i64, i64, Option<i64>, i64, Option<i64>);

#[derive(Debug, Clone)]
struct Case {
    period: (i64, i64),
    servers: Vec<ServerCase>,
    own: Vec<(i64, i64)>,
    maintenance: Vec<WindowCase>,
}

fn server_case() -> impl Strategy<Value = ServerCase> {
    (
        0i64..400,
        prop::collection::vec((1i64..40, 1i64..80), 0..6),
        prop::option::weighted(0.4, (0i64..500, prop::option::of(1i64..200))),
        prop::collection::vec((0i64..150, prop::option::weighted(0.8, 1i64..120)), 0..3),
        any::<u8>(),
    )
        .prop_map(|(first_seen, gaps, retired, refusals, missing)| {
            let retired = retired.map(|(offset, length)| {
                let r0 = first_seen + offset;
                (r0, length.map(|l| r0 + l))
            });
            // Refusals one after the other from first seen on (at least a
            // minute apart); one for good ends the list.
            let mut parked = Vec::new();
            let mut t = first_seen;
            for (gap, length) in refusals {
                let p0 = t + gap + 1;
                parked.push((p0, length.map(|l| p0 + l)));
                match length {
                    Some(l) => t = p0 + l,
                    None => break,
                }
            }
            // Alternate gaps and outage lengths from first seen on; what
            // reaches the retirement ends there; none begins while retired.
            let mut t = first_seen;
            let mut outages = Vec::new();
            for (gap, length) in gaps {
                t += gap;
                let (s, e) = (t, t + length);
                t = e;
                match retired {
                    Some((r0, _)) if e < r0 => outages.push((s, e, true)),
                    Some((r0, _)) if s < r0 => outages.push((s, r0, false)),
                    Some((_, Some(r1))) if s > r1 => outages.push((s, e, true)),
                    Some(_) => {}
                    None => outages.push((s, e, true)),
                }
            }
            // No outage begins while refused (nobody is judged then), and
            // none is recovered at the very instant of a refusal (the
            // figures would count it for MTTR, minute counting would not).
            outages.retain(|&(s, e, _)| {
                !parked.iter().any(|&p| within(p, s)) && !parked.iter().any(|&(p0, _)| p0 == e)
            });
            ServerCase {
                first_seen,
                retired,
                parked,
                outages,
                missing,
            }
        })
}

fn case() -> impl Strategy<Value = Case> {
    (
        (0i64..300, 1i64..500),
        prop::collection::vec(server_case(), 1..4),
        prop::collection::vec((0i64..700, 1i64..60), 0..3),
        prop::collection::vec(
            (
                0i64..700,
                1i64..90,
                prop::option::of(0i64..60),
                0i64..700,
                prop::option::of(0i64..500),
            ),
            0..3,
        ),
    )
        .prop_map(|((start, length), servers, own, maintenance)| Case {
            period: (start, start + length),
            servers,
            own: own.into_iter().map(|(s, l)| (s, s + l)).collect(),
            maintenance: maintenance
                .into_iter()
                .map(|(s, l, every, created, deleted_after)| {
                    let every = every.map(|extra| l + 1 + extra);
                    (s, l, every, created, deleted_after.map(|d| created + d))
                })
                .collect(),
        })
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Expected {
    unmonitored: i64,
    own: i64,
    maintenance: i64,
    observed: i64,
    down: i64,
    outages: u32,
    outage_time: i64,
    ongoing: bool,
    mttr: Option<i64>,
}

/// The figures of a subject monitored and down at the minutes `monitored`
/// and `down` say, minute by minute.
fn brute(
    case: &Case,
    monitored: &dyn Fn(i64) -> bool,
    down: &dyn Fn(i64) -> bool,
    windows: &[MaintenanceWindow],
) -> Expected {
    let (p0, p1) = case.period;
    let is_own = |m: i64| case.own.iter().any(|&(s, e)| s <= m && m < e);
    // A window excludes only time from its creation on, until its deletion.
    let is_maintenance = |m: i64| {
        windows.iter().any(|w| {
            minute(m) >= w.created_at
                && w.deleted_at.is_none_or(|d| minute(m) < d)
                && w.occurrence_at(minute(m)).is_some()
        })
    };
    let excluded = |m: i64| is_own(m) || is_maintenance(m);
    let mut e = Expected::default();
    for m in p0..p1 {
        if !monitored(m) {
            e.unmonitored += 1;
        } else if is_own(m) {
            e.own += 1;
        } else if is_maintenance(m) {
            e.maintenance += 1;
        } else {
            e.observed += 1;
            if down(m) {
                e.down += 1;
            }
        }
    }
    // Runs of down minutes overlapping the period.
    let (mut repaired, mut repaired_n) = (0i64, 0i64);
    let mut m = 0;
    while m < p1 {
        if !down(m) {
            m += 1;
            continue;
        }
        let start = m;
        while down(m) {
            m += 1;
        }
        let end = m; // the run is [start, end)
        if end <= p0 {
            continue;
        }
        let observed = (start.max(p0)..end.min(p1))
            .filter(|&x| !excluded(x))
            .count();
        if observed == 0 {
            continue;
        }
        e.outages += 1;
        e.outage_time += end.min(p1) - start.max(p0);
        if end > p1 {
            e.ongoing = true;
        } else if monitored(end) {
            // Ended by a recovery, not by a retirement.
            repaired += (start..end).filter(|&x| !excluded(x)).count() as i64;
            repaired_n += 1;
        }
    }
    e.mttr = (repaired_n > 0).then(|| repaired * MINUTE / repaired_n);
    e
}

fn figures(u: &Uptime) -> Expected {
    let m = |d: Duration| i64::try_from(d.as_millis()).expect("small") / MINUTE;
    Expected {
        unmonitored: m(u.unmonitored),
        own: m(u.excluded_own_downtime),
        maintenance: m(u.excluded_maintenance),
        observed: m(u.observed),
        down: m(u.down),
        outages: u.outages,
        outage_time: m(u.outage_time),
        ongoing: u.ongoing,
        mttr: u.mttr.map(|d| i64::try_from(d.as_millis()).expect("small")),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        // Failures are reported with their case; none saved to files.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]
    #[test]
    fn figures_match_minute_by_minute_counting(case in case(), newest_first in any::<bool>()) {
        let ids = ["rs-0", "rs-1", "rs-2", "rs-3"];
        let mut history: Vec<HistoryEvent> = case
            .servers
            .iter()
            .zip(ids)
            .flat_map(|(server, id)| server.history(id))
            .collect();
        history.sort_by_key(|e| e.at);
        if newest_first {
            history.reverse();
        }
        let servers: Vec<(&str, Timestamp)> = case
            .servers
            .iter()
            .zip(ids)
            .map(|(server, id)| (id, minute(server.first_seen)))
            .collect();
        let installation = installation(SLC, "", &servers, history);
        let windows: Vec<MaintenanceWindow> = case
            .maintenance
            .iter()
            .map(|&(s, l, every, created, deleted)| MaintenanceWindow {
                created_at: minute(created),
                deleted_at: deleted.map(minute),
                ..window("acme", None, minute(s), minutes(l as u64), every.map(|e| minutes(e as u64)))
            })
            .collect();
        let own_windows: Vec<DowntimeWindow> =
            case.own.iter().map(|&(s, e)| own(minute(s), minute(e))).collect();
        let period = Period::new(minute(case.period.0), minute(case.period.1)).expect("period");
        let report = UptimeReport::build(&acme(), period, &[installation], &own_windows, &windows);
        let computed = &report.installations[0];

        for (i, server) in case.servers.iter().enumerate() {
            let expected = brute(&case, &|m| server.monitored(m), &|m| server.down(m), &windows);
            prop_assert_eq!(figures(&computed.servers[i].uptime), expected, "server {}", i);
            assert_partition(&computed.servers[i].uptime);
        }
        let monitored = |m: i64| case.servers.iter().any(|s| s.monitored(m));
        let offline = |m: i64| {
            monitored(m) && case.servers.iter().filter(|s| s.monitored(m)).all(|s| s.down(m))
        };
        let expected = brute(&case, &monitored, &offline, &windows);
        prop_assert_eq!(figures(&computed.uptime), expected, "installation");
        assert_partition(&computed.uptime);
    }
}
