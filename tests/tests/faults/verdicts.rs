//! The verdicts: what the observer saw, the servers' histories and the
//! own-downtime windows, checked against the rule and the faults as the
//! harness recorded them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use carewatch_grpc::proto;
use carewatch_tests::process::{clock, millis};

use crate::fleet::Sim;
use crate::observer::{Observations, ms_of};
use crate::rule::expected_unavailable;
use crate::scenario::{Done, Fault, Role, SiteKind, SiteSpec};
use crate::{JITTER, at_ms, lock, ms};

fn availability_name(a: i32) -> &'static str {
    match proto::Availability::try_from(a) {
        Ok(proto::Availability::Pending) => "Pending",
        Ok(proto::Availability::Available) => "Available",
        Ok(proto::Availability::Late) => "Late",
        Ok(proto::Availability::Unavailable) => "Unavailable",
        _ => "?",
    }
}

fn health_name(h: i32) -> &'static str {
    match proto::Health::try_from(h) {
        Ok(proto::Health::Healthy) => "Healthy",
        Ok(proto::Health::Pending) => "Pending",
        Ok(proto::Health::Attention) => "Attention",
        Ok(proto::Health::Critical) => "Critical",
        Ok(proto::Health::Offline) => "Offline",
        _ => "?",
    }
}

const AVAILABLE: i32 = proto::Availability::Available as i32;
const UNAVAILABLE: i32 = proto::Availability::Unavailable as i32;
const HEALTHY: i32 = proto::Health::Healthy as i32;
const ATTENTION: i32 = proto::Health::Attention as i32;
const CRITICAL: i32 = proto::Health::Critical as i32;
const OFFLINE: i32 = proto::Health::Offline as i32;

pub(crate) struct Report<'a> {
    pub(crate) specs: &'a [SiteSpec],
    pub(crate) sims: &'a [Arc<Sim>],
    pub(crate) done: &'a [Done],
    pub(crate) windows: &'a [(i64, i64)],
    pub(crate) seen: &'a Observations,
    pub(crate) final_details: &'a [proto::InstallationDetail],
    pub(crate) silent_from: SystemTime,
    /// "storage stalled" lines in the server's log.
    pub(crate) stalls_logged: usize,
}

/// Failures of one kind, the first few in full.
#[derive(Default)]
struct Findings(Vec<String>);

impl Findings {
    fn add(&mut self, what: String) {
        self.0.push(what);
    }

    fn summarise(self, into: &mut Vec<String>) {
        const SHOWN: usize = 3;
        let n = self.0.len();
        into.extend(self.0.into_iter().take(SHOWN));
        if n > SHOWN {
            into.push(format!("… and {} more like it", n - SHOWN));
        }
    }
}

impl Report<'_> {
    fn detail(&self, slc: &str) -> &proto::InstallationDetail {
        self.final_details
            .iter()
            .find(|d| d.installation.as_ref().is_some_and(|i| i.slc == slc))
            .expect("a final detail per site")
    }

    /// (since, missed) for a silent server, from its last message and the windows.
    fn expected(&self, sim: &Sim) -> Option<(i64, u32)> {
        let server = self
            .detail(&sim.slc)
            .servers
            .iter()
            .find(|s| s.id == sim.id)?;
        let last = ms_of(server.last_seen_at.as_ref()?);
        Some(expected_unavailable(last, self.windows))
    }

    pub(crate) fn check(&self) -> Vec<String> {
        let mut failures = Vec::new();
        self.check_windows(&mut failures);
        self.check_gaps(&mut failures);
        for sim in self.sims {
            self.check_server(sim, &mut failures);
            let log = lock(&sim.log);
            for refusal in log.unexpected.iter().take(3) {
                failures.push(format!("{}: unexpected refusal {refusal}", sim.name()));
            }
        }
        for spec in self.specs {
            self.check_site(spec, &mut failures);
        }
        failures
    }

    /// Each fault left exactly one window, where the harness saw it. Any
    /// other window must be a stall the server reported (a write slower
    /// than its stall limit, e.g. while PostgreSQL warms up after a
    /// restart on a busy machine), and short.
    fn check_windows(&self, failures: &mut Vec<String>) {
        let shown = |&(s, e): &(i64, i64)| format!("{}–{}", clock(at_ms(s)), clock(at_ms(e)));
        let mut matched = vec![false; self.windows.len()];
        for d in self.done {
            let mine: Vec<usize> = (0..self.windows.len())
                .filter(|&n| self.covers_fault(self.windows[n], d))
                .collect();
            let &[n] = mine.as_slice() else {
                failures.push(format!(
                    "{:?} at {}: {} windows around it: {:?}",
                    d.fault,
                    clock(d.begun),
                    mine.len(),
                    mine.iter()
                        .map(|&n| shown(&self.windows[n]))
                        .collect::<Vec<_>>()
                ));
                continue;
            };
            matched[n] = true;
            let (start, end) = self.windows[n];
            let begun = millis(d.begun);
            let (start_range, end_range) = match d.fault {
                Fault::Term(_) | Fault::TermHeldOpen => (
                    (begun, begun + 300),
                    (millis(d.resumed), millis(d.recovered)),
                ),
                // From the last liveness mark: one a second, each a write
                // that takes its time on a busy machine.
                Fault::Kill(_) => (
                    (begun - 2000, begun),
                    (millis(d.resumed), millis(d.recovered)),
                ),
                // From the first refused write to the first mark that succeeds
                // (PostgreSQL accepts connections before pg_ctlcluster returns).
                Fault::PostgresDown(_) => (
                    (begun - 100, millis(d.stopped) + 500),
                    (millis(d.resumed), millis(d.recovered) + 5000),
                ),
            };
            let inside = |t: i64, (lo, hi): (i64, i64)| (lo..=hi).contains(&t);
            if !inside(start, start_range) || !inside(end, end_range) {
                failures.push(format!(
                    "{:?}: window {}–{} should start within {}–{} and end within {}–{}",
                    d.fault,
                    clock(at_ms(start)),
                    clock(at_ms(end)),
                    clock(at_ms(start_range.0)),
                    clock(at_ms(start_range.1)),
                    clock(at_ms(end_range.0)),
                    clock(at_ms(end_range.1)),
                ));
            }
            if let Some(Err(killed)) = d.exit_after {
                failures.push(format!(
                    "{:?}: still running {killed:.1?} after SIGTERM (killed)",
                    d.fault
                ));
            }
        }
        let others: Vec<&(i64, i64)> = self
            .windows
            .iter()
            .zip(&matched)
            .filter(|(_, m)| !**m)
            .map(|(w, _)| w)
            .collect();
        let long = others.iter().any(|(s, e)| e - s > 3000);
        if others.len() > self.stalls_logged || long {
            failures.push(format!(
                "own downtime without a fault: {:?} ({} stalls logged)",
                others.iter().map(|w| shown(w)).collect::<Vec<_>>(),
                self.stalls_logged
            ));
        }
    }

    /// Whether a window overlaps the time `d` kept Carewatch from receiving.
    fn covers_fault(&self, (start, end): (i64, i64), d: &Done) -> bool {
        start < millis(d.resumed) && end > millis(d.begun)
    }

    /// Windows that no fault explains: stalls.
    pub(crate) fn stall_windows(&self) -> usize {
        self.windows
            .iter()
            .filter(|&&w| !self.done.iter().any(|d| self.covers_fault(w, d)))
            .count()
    }

    /// The Dashboard fails only while Carewatch or its database is down.
    fn check_gaps(&self, failures: &mut Vec<String>) {
        let mut findings = Findings::default();
        for gap in &self.seen.gaps {
            let explained = self.done.iter().any(|d| {
                let after = match d.fault {
                    Fault::PostgresDown(_) => Duration::from_secs(3),
                    _ => Duration::from_millis(1500),
                };
                gap.end >= d.begun - Duration::from_millis(200) && gap.start <= d.recovered + after
            });
            if !explained {
                findings.add(format!(
                    "the Dashboard failed at {}–{} while Carewatch was up: {}",
                    clock(gap.start),
                    clock(gap.end),
                    gap.error
                ));
            }
        }
        findings.summarise(failures);
    }

    /// When a server Unavailable since `since` must show so: jitter + 1 s
    /// after its deadline, or 1 s after own downtime that began by then
    /// (no verdicts while the storage is out or stalled).
    fn detection_due(&self, since: i64) -> i64 {
        let deadline = since + ms(JITTER);
        let mut due = deadline + 1000;
        for &(start, end) in self.windows {
            if start <= due && end > deadline {
                due = due.max(end + 1000);
            }
        }
        due
    }

    fn check_server(&self, sim: &Sim, failures: &mut Vec<String>) {
        let name = sim.name();
        let silenced_at = lock(&sim.log).silenced_at;
        let expected = silenced_at.and_then(|_| self.expected(sim));
        let j = ms(JITTER);
        let mut false_verdicts = Findings::default();
        let mut first_unavailable = None;
        let mut late_detection = Findings::default();
        for poll in &self.seen.polls {
            let Some(view) = poll
                .sites
                .get(&sim.slc)
                .and_then(|s| s.servers.get(&sim.id))
            else {
                false_verdicts.add(format!("{name} missing at {}", clock(poll.start)));
                continue;
            };
            let sending = silenced_at.is_none_or(|s| poll.end < s);
            if sending {
                if view.availability != AVAILABLE {
                    false_verdicts.add(format!(
                        "false {} ({} missed) for {name}, which kept sending, at {}",
                        availability_name(view.availability),
                        view.missed,
                        clock(poll.start)
                    ));
                }
                continue;
            }
            let Some((since, missed)) = expected else {
                continue;
            };
            if view.availability == UNAVAILABLE {
                first_unavailable.get_or_insert(poll.start);
                if view.since != Some(since) || view.missed != missed {
                    false_verdicts.add(format!(
                        "{name} Unavailable since {} with {} missed at {}; expected since {} with {missed}",
                        view.since.map_or("-".into(), |s| clock(at_ms(s))),
                        view.missed,
                        clock(poll.start),
                        clock(at_ms(since)),
                    ));
                }
                if millis(poll.end) < since + j {
                    false_verdicts.add(format!(
                        "{name} Unavailable at {}, before its deadline {}",
                        clock(poll.end),
                        clock(at_ms(since + j))
                    ));
                }
            } else if millis(poll.start) > self.detection_due(since) {
                // Detection within jitter + 1 s of the deadline.
                late_detection.add(format!(
                    "{name} still {} at {}, more than 1 s after its deadline {} (due {})",
                    availability_name(view.availability),
                    clock(poll.start),
                    clock(at_ms(since + j)),
                    clock(at_ms(self.detection_due(since)))
                ));
            }
        }
        false_verdicts.summarise(failures);
        late_detection.summarise(failures);

        // The history keeps what polls may miss: a verdict that did not last.
        let detail = self.detail(&sim.slc);
        let became: Vec<(i64, u32)> = detail
            .history
            .iter()
            .filter(|e| e.recording_server_id == sim.id)
            .filter_map(|e| match &e.kind {
                Some(proto::history_event::Kind::BecameUnavailable(b)) => {
                    Some((e.at.as_ref().map_or(0, ms_of), b.missed_heartbeats))
                }
                _ => None,
            })
            .collect();
        let last_state = detail.servers.iter().find(|s| s.id == sim.id);
        match expected {
            None if !became.is_empty() => failures.push(format!(
                "{name} kept sending, yet its history says it became unavailable: {:?}",
                became
                    .iter()
                    .map(|(at, m)| format!("{} ({m} missed)", clock(at_ms(*at))))
                    .collect::<Vec<_>>()
            )),
            None => {}
            Some((since, missed)) => {
                if first_unavailable.is_none() {
                    failures.push(format!(
                        "{name} went silent at {} and was never seen Unavailable (due {})",
                        silenced_at.map_or("-".into(), clock),
                        clock(at_ms(since + j))
                    ));
                }
                // The history dates the change at its `since`.
                if became != [(since, missed)] {
                    failures.push(format!(
                        "{name}: history has {:?} (became unavailable at, missed); expected once, at {} with {missed} missed",
                        became
                            .iter()
                            .map(|(at, m)| (clock(at_ms(*at)), *m))
                            .collect::<Vec<_>>(),
                        clock(at_ms(since))
                    ));
                }
                let final_view = last_state.map(|s| {
                    (
                        s.availability,
                        s.unavailable_since.as_ref().map(ms_of),
                        s.missed_heartbeats,
                    )
                });
                if final_view != Some((UNAVAILABLE, Some(since), missed)) {
                    failures.push(format!(
                        "{name} ends as {final_view:?}; expected Unavailable since {} ({since}) with {missed} missed",
                        clock(at_ms(since))
                    ));
                }
            }
        }
    }

    fn check_site(&self, spec: &SiteSpec, failures: &mut Vec<String>) {
        let slc = spec.slc.as_str();
        let reporter = self
            .sims
            .iter()
            .find(|s| s.slc == slc && s.id == "rs-1")
            .expect("rs-1");
        let (sent, acked) = {
            let log = lock(&reporter.log);
            (log.conditions_sent, log.conditions_acked)
        };
        // The latest deadline of its silent servers: Offline at the earliest then.
        let deadlines: Vec<i64> = self
            .sims
            .iter()
            .filter(|s| s.slc == slc && s.role != Role::Live)
            .filter_map(|s| self.expected(s))
            .map(|(since, _)| since + ms(JITTER))
            .collect();
        let mut false_health = Findings::default();
        let mut seen_expected = false;
        for poll in &self.seen.polls {
            let Some(site) = poll.sites.get(slc) else {
                continue;
            };
            for (which, health) in [("list", site.row_health), ("detail", site.detail_health)] {
                let wrong = match spec.kind {
                    SiteKind::Live | SiteKind::Reporting => health != HEALTHY,
                    SiteKind::DiskFull | SiteKind::CameraLoss => {
                        let shown = if spec.kind == SiteKind::DiskFull {
                            CRITICAL
                        } else {
                            ATTENTION
                        };
                        seen_expected |= health == shown;
                        let before = sent.is_none_or(|s| poll.end < s);
                        let after = acked.is_some_and(|a| poll.start > a);
                        // Healthy until the report is acknowledged, its
                        // health once it was sent, nothing else.
                        let allowed = if health == HEALTHY {
                            !after
                        } else {
                            health == shown && !before
                        };
                        !allowed
                    }
                    SiteKind::SilentServer | SiteKind::BeforeFault(_) => {
                        seen_expected |= health == CRITICAL;
                        health == OFFLINE
                    }
                    SiteKind::SilentSite => {
                        seen_expected |= health == OFFLINE;
                        let latest = deadlines.iter().copied().max().unwrap_or(i64::MAX);
                        health == OFFLINE && millis(poll.end) < latest
                            || health != OFFLINE && millis(poll.start) > latest + 1000
                    }
                };
                if wrong {
                    false_health.add(format!(
                        "{slc} ({:?}) shown {} in the {which} at {}",
                        spec.kind,
                        health_name(health),
                        clock(poll.start)
                    ));
                }
            }
        }
        false_health.summarise(failures);
        let must_show = match spec.kind {
            SiteKind::DiskFull => Some("Critical"),
            SiteKind::CameraLoss => Some("Attention"),
            SiteKind::SilentServer | SiteKind::BeforeFault(_) => Some("Critical"),
            SiteKind::SilentSite => Some("Offline"),
            SiteKind::Live | SiteKind::Reporting => None,
        };
        if let Some(health) = must_show
            && !seen_expected
        {
            failures.push(format!("{slc} ({:?}) was never shown {health}", spec.kind));
        }
    }

    /// For each silent server, how long after its deadline (since +
    /// jitter) the first poll that showed it Unavailable started, in ms.
    pub(crate) fn detection_delays(&self) -> Vec<i64> {
        self.sims
            .iter()
            .filter(|sim| lock(&sim.log).silenced_at.is_some())
            .filter_map(|sim| {
                let (since, _) = self.expected(sim)?;
                let first = self.seen.polls.iter().find(|p| {
                    p.sites
                        .get(&sim.slc)
                        .and_then(|s| s.servers.get(&sim.id))
                        .is_some_and(|v| v.availability == UNAVAILABLE)
                })?;
                Some(millis(first.start) - since - ms(JITTER))
            })
            .collect()
    }

    /// What happened, in order: faults, silences, windows, gaps and every
    /// change the observer saw.
    pub(crate) fn timeline(&self) -> Vec<(SystemTime, String)> {
        let mut events = vec![(
            self.silent_from,
            "servers silent from the start go silent".to_owned(),
        )];
        for d in self.done {
            events.push((d.begun, format!("fault {:?} begins", d.fault)));
            events.push((d.recovered, format!("fault {:?} over", d.fault)));
        }
        for &(start, end) in self.windows {
            events.push((at_ms(start), "window starts (store)".into()));
            events.push((at_ms(end), "window ends (store)".into()));
        }
        for sim in self.sims {
            let log = lock(&sim.log);
            if let (Some(at), Role::SilentBefore(..)) = (log.silenced_at, sim.role) {
                events.push((at, format!("{} goes silent", sim.name())));
            }
            if let Some(at) = log.conditions_acked {
                events.push((at, format!("{} conditions acknowledged", sim.name())));
            }
            if let Some((since, missed)) = log.silenced_at.and_then(|_| self.expected(sim)) {
                events.push((
                    at_ms(since),
                    format!(
                        "{} expected Unavailable since here, {missed} missed",
                        sim.name()
                    ),
                ));
            }
        }
        for gap in &self.seen.gaps {
            events.push((gap.start, format!("poll failed: {}", gap.error)));
        }
        let mut last: BTreeMap<String, String> = BTreeMap::new();
        for poll in &self.seen.polls {
            for (slc, site) in &poll.sites {
                let mut states = vec![(
                    slc.clone(),
                    format!(
                        "{}/{}",
                        health_name(site.row_health),
                        health_name(site.detail_health)
                    ),
                )];
                for (id, s) in &site.servers {
                    states.push((
                        format!("{slc}/{id}"),
                        format!(
                            "{}({}){}",
                            availability_name(s.availability),
                            s.missed,
                            s.since
                                .map_or(String::new(), |t| format!(" since {}", clock(at_ms(t))))
                        ),
                    ));
                }
                for (key, state) in states {
                    if last.get(&key) != Some(&state) {
                        events.push((poll.start, format!("seen {key}: {state}")));
                        last.insert(key, state);
                    }
                }
            }
        }
        events
    }
}
