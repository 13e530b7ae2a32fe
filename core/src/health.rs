//! Installation health, derived from its recording servers and conditions.

use std::fmt;

use crate::availability::Availability;
use crate::catalogue::{ConditionCode, Severity};
use crate::error::{Error, Result};

/// How an installation is doing, best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Health {
    /// Every server available, nothing wrong.
    Healthy,
    /// Registered, but no recording server has reported yet.
    Pending,
    /// Something needs looking at: a late server or a warning.
    Attention,
    /// Recording is at risk: a critical condition or an unavailable server.
    Critical,
    /// Every recording server is unavailable at once: the site is unreachable,
    /// possibly its Internet link. One problem, not one per server.
    Offline,
}

impl Health {
    /// Every health, best to worst.
    pub const ALL: [Health; 5] = [
        Self::Healthy,
        Self::Pending,
        Self::Attention,
        Self::Critical,
        Self::Offline,
    ];

    /// Sort key: higher is worse. Stored, so it must never change.
    pub fn rank(self) -> u8 {
        self as u8
    }

    /// The health with this rank.
    pub fn from_rank(rank: u8) -> Result<Self> {
        Self::ALL
            .get(usize::from(rank))
            .copied()
            .ok_or_else(|| Error::InvalidInput {
                field: "health rank",
                reason: format!("{rank} is not a health rank (0-4)"),
            })
    }

    /// A stable lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Pending => "pending",
            Self::Attention => "attention",
            Self::Critical => "critical",
            Self::Offline => "offline",
        }
    }

    /// The health of this [`Health::name`] (surrounding spaces ignored).
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|h| h.name() == name.trim())
            .ok_or_else(|| Error::InvalidInput {
                field: "health",
                reason: format!("{name:?}: use healthy, pending, attention, critical or offline"),
            })
    }

    /// What a person reads on the dashboard.
    pub fn label(self) -> &'static str {
        match self {
            Self::Healthy => "Healthy",
            Self::Pending => "Pending (no report yet)",
            Self::Attention => "Attention",
            Self::Critical => "Critical",
            Self::Offline => "Offline (site unreachable — possibly network)",
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The overview line of one installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSummary {
    /// Its health.
    pub health: Health,
    /// Its worst active condition, if any.
    pub worst: Option<ConditionCode>,
    /// Recording servers known.
    pub servers: u32,
    /// Of which unavailable.
    pub unavailable: u32,
    /// Of which late.
    pub late: u32,
    /// Active conditions, derived ones included.
    pub active_conditions: u32,
}

impl HealthSummary {
    /// The summary of an installation nobody has heard from.
    pub fn pending() -> Self {
        Self {
            health: Health::Pending,
            worst: None,
            servers: 0,
            unavailable: 0,
            late: 0,
            active_conditions: 0,
        }
    }
}

/// Derives an installation's summary from its servers' availability and its
/// active conditions (including derived `SERVER_UNAVAILABLE` ones).
pub fn summarize<'a>(
    servers: impl IntoIterator<Item = Availability>,
    active_conditions: impl IntoIterator<Item = &'a ConditionCode>,
) -> HealthSummary {
    let (mut total, mut heard, mut unavailable, mut late) = (0u32, 0u32, 0u32, 0u32);
    for availability in servers {
        // A retired server counts for nothing, not even as known.
        if matches!(availability, Availability::Decommissioned { .. }) {
            continue;
        }
        total += 1;
        match availability {
            Availability::Pending | Availability::Decommissioned { .. } => continue,
            Availability::Available => {}
            Availability::Late { .. } => late += 1,
            Availability::Unavailable { .. } => unavailable += 1,
        }
        heard += 1;
    }
    let mut worst: Option<&ConditionCode> = None;
    let mut conditions = 0u32;
    for code in active_conditions {
        conditions += 1;
        // Ties (e.g. two unknown codes) break by name, so the result never
        // depends on the order a backend returns rows in.
        if worst.is_none_or(|w| {
            (code.badness(), std::cmp::Reverse(code.as_str()))
                > (w.badness(), std::cmp::Reverse(w.as_str()))
        }) {
            worst = Some(code);
        }
    }
    let critical = worst.is_some_and(|w| w.severity() == Severity::Critical);
    let health = if heard == 0 {
        Health::Pending
    } else if unavailable == heard {
        Health::Offline
    } else if unavailable > 0 || critical {
        Health::Critical
    } else if late > 0 || conditions > 0 {
        Health::Attention
    } else {
        Health::Healthy
    };
    let worst = match health {
        Health::Offline | Health::Critical if unavailable > 0 && !critical => {
            Some(ConditionCode::ServerUnavailable)
        }
        _ => worst.cloned(),
    };
    HealthSummary {
        health,
        worst,
        servers: total,
        unavailable,
        late,
        active_conditions: conditions,
    }
}

/// The summaries an installation passes through as `joining` recording
/// servers are heard from for the first time, one after another (each is
/// Available once heard from), starting from `stored` with `servers` and
/// `active_conditions` as they were before: one entry per joining server,
/// `Some(summary)` where it differs from the one before it. The same steps
/// as [`summarize`] after each server, for a backend that writes a batch's
/// new servers together.
pub fn summaries_as_servers_join(
    stored: &HealthSummary,
    mut servers: Vec<Availability>,
    active_conditions: &[ConditionCode],
    joining: usize,
) -> Vec<Option<HealthSummary>> {
    let mut current = stored.clone();
    let mut steps = Vec::with_capacity(joining);
    servers.reserve(joining);
    for _ in 0..joining {
        servers.push(Availability::Available);
        let next = summarize(servers.iter().copied(), active_conditions);
        if next == current {
            steps.push(None);
        } else {
            current = next.clone();
            steps.push(Some(next));
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::time::Timestamp;

    const DOWN: Availability = Availability::Unavailable {
        since: Timestamp::EPOCH,
        missed: 3,
    };

    #[test]
    fn joining_servers_step_the_summary_as_summarize_would() {
        let pending = summarize(Vec::new(), &[]);
        let steps =
            summaries_as_servers_join(&pending, Vec::new(), &[ConditionCode::ServerUnavailable], 2);
        let one = summarize(
            [Availability::Available],
            &[ConditionCode::ServerUnavailable],
        );
        let two = summarize(
            [Availability::Available, Availability::Available],
            &[ConditionCode::ServerUnavailable],
        );
        assert_eq!(steps, vec![Some(one), Some(two)]);

        // A stored summary already equal to the first step: no change there.
        let down_and_one = summarize([DOWN, Availability::Available], &[]);
        let steps = summaries_as_servers_join(&down_and_one, vec![DOWN], &[], 1);
        assert_eq!(steps, vec![None]);
        assert_eq!(
            summaries_as_servers_join(&pending, Vec::new(), &[], 0),
            Vec::<Option<HealthSummary>>::new()
        );
    }

    #[test]
    fn ranks_are_stable_and_ordered() {
        for h in Health::ALL {
            assert_eq!(Health::from_rank(h.rank()).unwrap(), h);
        }
        assert!(Health::Offline > Health::Critical && Health::Critical > Health::Attention);
        assert!(Health::Attention > Health::Pending && Health::Pending > Health::Healthy);
        assert!(Health::from_rank(5).is_err());
    }

    #[test]
    fn no_servers_or_no_reports_is_pending() {
        assert_eq!(summarize([], []).health, Health::Pending);
        assert_eq!(
            summarize([Availability::Pending, Availability::Pending], []).health,
            Health::Pending
        );
    }

    #[test]
    fn conditions_decide_between_attention_and_critical() {
        let ok = [Availability::Available];
        assert_eq!(summarize(ok, []).health, Health::Healthy);
        assert_eq!(
            summarize(ok, [&ConditionCode::CameraUnreachable]).health,
            Health::Attention
        );
        let s = summarize(
            ok,
            [
                &ConditionCode::CameraUnreachable,
                &ConditionCode::StorageFull,
            ],
        );
        assert_eq!(
            (s.health, s.worst, s.active_conditions),
            (Health::Critical, Some(ConditionCode::StorageFull), 2)
        );
        assert_eq!(
            summarize([Availability::Late { missed: 1 }], []).health,
            Health::Attention
        );
    }

    #[test]
    fn one_server_down_of_several_is_critical() {
        let s = summarize(
            [Availability::Available, DOWN],
            [&ConditionCode::ServerUnavailable],
        );
        assert_eq!(
            (s.health, s.unavailable, s.worst),
            (Health::Critical, 1, Some(ConditionCode::ServerUnavailable))
        );
    }

    proptest! {
        #[test]
        fn all_heard_servers_down_together_is_one_offline_problem(down in 1usize..50, pending in 0usize..5) {
            let servers = std::iter::repeat_n(DOWN, down).chain(std::iter::repeat_n(Availability::Pending, pending));
            let codes = vec![ConditionCode::ServerUnavailable; down];
            let s = summarize(servers, &codes);
            prop_assert_eq!(s.health, Health::Offline);
            prop_assert_eq!(s.unavailable as usize, down);
            prop_assert_eq!(s.servers as usize, down + pending);
        }

        #[test]
        fn one_server_still_reporting_means_not_offline(down in 1usize..50, late in 0usize..2) {
            let servers = std::iter::repeat_n(DOWN, down)
                .chain([if late == 1 { Availability::Late { missed: 2 } } else { Availability::Available }]);
            prop_assert_eq!(summarize(servers, []).health, Health::Critical);
        }
    }
}
