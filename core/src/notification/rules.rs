//! When a channel notifies about an installation: a small state machine per
//! (channel, installation), moved by the installation's health changes (from
//! the change feed) and by time (hold, reminders, maintenance ending).
//! Pure: the facade stores the states and the messages they emit together.

use super::ChannelRules;
use crate::availability::Downtime;
use crate::health::Health;
use crate::time::Timestamp;

/// Whether `health` is a problem this channel tells about.
pub fn alerting(health: Health, rules: &ChannelRules) -> bool {
    match health {
        Health::Critical | Health::Offline => true,
        Health::Attention => rules.attention,
        Health::Healthy | Health::Pending => false,
    }
}

/// Where a (channel, installation) pair stands. No stored state means
/// [`Phase::Quiet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Nothing told, nothing waiting.
    Quiet,
    /// A problem since `since`, not told yet: holding, or muted by
    /// maintenance (`muted`), then told after it.
    Pending {
        /// The problem's health now.
        health: Health,
        /// When the problem began (this episode).
        since: Timestamp,
        /// Its hold passed during maintenance: tell when the window ends.
        muted: bool,
    },
    /// A problem told.
    Notified {
        /// The health last told.
        health: Health,
        /// When the problem began.
        since: Timestamp,
        /// When it was last told (problem or reminder).
        told_at: Timestamp,
        /// Reminders told so far.
        reminders: u32,
        /// Another problem health since an instant, waiting for its hold.
        changed: Option<(Health, Timestamp)>,
        /// It was in maintenance: tell when the window ends.
        muted: bool,
    },
    /// Fine again after a told problem; the "resolved" waits for the hold.
    Recovering {
        /// The health last told.
        health: Health,
        /// When the problem began.
        problem_since: Timestamp,
        /// When it recovered.
        since: Timestamp,
    },
}

/// What a step tells the reseller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tell {
    /// The installation has a problem (or a worse/other one than told).
    Problem {
        /// Its health.
        health: Health,
        /// Since when.
        since: Timestamp,
    },
    /// Still a problem, reminder number `n` (1, 2, …).
    Reminder {
        /// Its health.
        health: Health,
        /// Since when.
        since: Timestamp,
        /// Which reminder.
        n: u32,
    },
    /// Still a problem after a maintenance window that muted it.
    AfterMaintenance {
        /// Its health.
        health: Health,
        /// Since when.
        since: Timestamp,
    },
    /// The problem told is over.
    Resolved {
        /// The health last told.
        was: Health,
        /// When it began.
        problem_since: Timestamp,
        /// When it ended.
        recovered_at: Timestamp,
    },
}

impl Tell {
    /// `problem`, `reminder`, `after_maintenance` or `resolved`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Problem { .. } => "problem",
            Self::Reminder { .. } => "reminder",
            Self::AfterMaintenance { .. } => "after_maintenance",
            Self::Resolved { .. } => "resolved",
        }
    }
}

/// The installation's health changed to `health` at `at`.
pub fn on_health(phase: Phase, health: Health, at: Timestamp, rules: &ChannelRules) -> Phase {
    let problem = alerting(health, rules);
    match (phase, problem) {
        (Phase::Quiet, true) => Phase::Pending {
            health,
            since: at,
            muted: false,
        },
        (Phase::Quiet, false) => Phase::Quiet,
        (Phase::Pending { since, muted, .. }, true) => Phase::Pending {
            health,
            since,
            muted,
        },
        // Over before its hold: nothing was told, nothing will be.
        (Phase::Pending { .. }, false) => Phase::Quiet,
        (
            Phase::Notified {
                health: told,
                since,
                told_at,
                reminders,
                changed,
                muted,
            },
            true,
        ) => Phase::Notified {
            health: told,
            since,
            told_at,
            reminders,
            changed: if health == told {
                None
            } else {
                // Keep the first instant of a change still in force.
                Some(
                    changed
                        .filter(|(h, _)| *h == health)
                        .unwrap_or((health, at)),
                )
            },
            muted,
        },
        (
            Phase::Notified {
                health: told,
                since,
                ..
            },
            false,
        ) => Phase::Recovering {
            health: told,
            problem_since: since,
            since: at,
        },
        // Back within the hold: a flap, nothing told.
        (
            Phase::Recovering {
                health: told,
                problem_since,
                since,
            },
            true,
        ) => Phase::Notified {
            health: told,
            since: problem_since,
            told_at: since,
            reminders: 0,
            changed: (health != told).then_some((health, at)),
            muted: false,
        },
        (recovering @ Phase::Recovering { .. }, false) => recovering,
    }
}

/// When a state that began at `since` has held for the channel's hold:
/// only time Carewatch was receiving counts (`unwatched`, its own
/// downtime), so an outage of its own never makes a verdict hold that it
/// did not watch hold.
pub fn held_at(since: Timestamp, rules: &ChannelRules, unwatched: &Downtime) -> Timestamp {
    unwatched.after_watching(since, rules.hold)
}

/// Time passed: what is due at `now`, given whether the installation is in
/// maintenance and Carewatch's own downtime (`unwatched`, see [`held_at`]).
/// Returns the new phase and what to tell, if anything.
pub fn on_tick(
    phase: Phase,
    now: Timestamp,
    in_maintenance: bool,
    rules: &ChannelRules,
    unwatched: &Downtime,
) -> (Phase, Option<Tell>) {
    let held = |since: Timestamp| held_at(since, rules, unwatched) <= now;
    match phase {
        Phase::Pending {
            health,
            since,
            muted,
        } if held(since) => {
            if in_maintenance {
                return (
                    Phase::Pending {
                        health,
                        since,
                        muted: true,
                    },
                    None,
                );
            }
            let tell = if muted {
                Tell::AfterMaintenance { health, since }
            } else {
                Tell::Problem { health, since }
            };
            let told = Phase::Notified {
                health,
                since,
                told_at: now,
                reminders: 0,
                changed: None,
                muted: false,
            };
            (told, Some(tell))
        }
        Phase::Notified {
            health,
            since,
            told_at,
            reminders,
            changed,
            muted,
        } => {
            let change_due = changed.filter(|(_, at)| held(*at));
            let reminder_due = rules
                .reminder
                .is_some_and(|every| now.since(told_at) >= every);
            if in_maintenance {
                // Whatever happens meanwhile, the end of the window says
                // whether it is still unhealthy.
                let phase = Phase::Notified {
                    health,
                    since,
                    told_at,
                    reminders,
                    changed,
                    muted: true,
                };
                return (phase, None);
            }
            let told = |health, tell| {
                let phase = Phase::Notified {
                    health,
                    since,
                    told_at: now,
                    reminders: if matches!(tell, Tell::Reminder { .. }) {
                        reminders + 1
                    } else {
                        reminders
                    },
                    changed: None,
                    muted: false,
                };
                (phase, Some(tell))
            };
            match (change_due, muted, reminder_due) {
                (Some((now_health, _)), _, _) => told(
                    now_health,
                    Tell::Problem {
                        health: now_health,
                        since,
                    },
                ),
                (None, true, _) => told(health, Tell::AfterMaintenance { health, since }),
                (None, false, true) => told(
                    health,
                    Tell::Reminder {
                        health,
                        since,
                        n: reminders + 1,
                    },
                ),
                (None, false, false) => (
                    Phase::Notified {
                        health,
                        since,
                        told_at,
                        reminders,
                        changed,
                        muted,
                    },
                    None,
                ),
            }
        }
        Phase::Recovering {
            health,
            problem_since,
            since,
        } if held(since) && !in_maintenance => (
            Phase::Quiet,
            Some(Tell::Resolved {
                was: health,
                problem_since,
                recovered_at: since,
            }),
        ),
        other => (other, None),
    }
}

/// The phase before a problem was told, when the tell could not be made
/// (the installation's messages are refused): `phase`, which the tell of a
/// problem (first, changed or after maintenance) left Notified, goes back to
/// Pending since the same instant, to be told once it can be. `None` for
/// other tells and phases: a reminder or a "resolved" is not owed later.
pub fn untold(phase: &Phase, tell: &Tell) -> Option<Phase> {
    let muted = match tell {
        Tell::Problem { .. } => false,
        Tell::AfterMaintenance { .. } => true,
        Tell::Reminder { .. } | Tell::Resolved { .. } => return None,
    };
    match *phase {
        Phase::Notified {
            health,
            since,
            changed: None,
            muted: false,
            ..
        } => Some(Phase::Pending {
            health,
            since,
            muted,
        }),
        _ => None,
    }
}

/// When the phase next needs a tick without a health change: what the
/// store indexes so the notifier reads only due states. `None`: nothing
/// until the health changes (or maintenance ends, for a muted phase: the
/// caller passes the window's end as `maintenance_until`). Holds end as
/// [`held_at`] says.
pub fn next_due(
    phase: &Phase,
    rules: &ChannelRules,
    maintenance_until: Option<Timestamp>,
    unwatched: &Downtime,
) -> Option<Timestamp> {
    let after_hold = |at: Timestamp| held_at(at, rules, unwatched);
    let due = match phase {
        Phase::Quiet => None,
        Phase::Pending { since, .. } => Some(after_hold(*since)),
        Phase::Notified {
            told_at,
            changed,
            muted,
            ..
        } => {
            let reminder = rules.reminder.map(|every| told_at.saturating_add(every));
            let change = changed.map(|(_, at)| after_hold(at));
            let unmute = muted.then_some(Timestamp::EPOCH);
            [reminder, change, unmute].into_iter().flatten().min()
        }
        Phase::Recovering { since, .. } => Some(after_hold(*since)),
    };
    // While muted, nothing is told before the window ends.
    match (due, maintenance_until) {
        (Some(due), Some(until)) => Some(due.max(until)),
        (due, _) => due,
    }
}

#[cfg(test)]
mod tests;
