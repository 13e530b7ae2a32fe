use std::time::Duration;

use super::*;

fn t(s: i64) -> Timestamp {
    Timestamp::from_millis(s * 1000)
}

fn rules() -> ChannelRules {
    ChannelRules {
        hold: Duration::from_secs(60),
        ..ChannelRules::default()
    }
}

/// Runs health changes `(at, health)` and ticks every second up to `until`
/// (in maintenance during `muted`), collecting what is told.
fn run(
    changes: &[(i64, Health)],
    until: i64,
    rules: &ChannelRules,
    muted: std::ops::Range<i64>,
) -> Vec<(i64, Tell)> {
    run_with_downtime(changes, until, rules, muted, &Downtime::default())
}

/// [`run`] with Carewatch's own downtime `unwatched`.
fn run_with_downtime(
    changes: &[(i64, Health)],
    until: i64,
    rules: &ChannelRules,
    muted: std::ops::Range<i64>,
    unwatched: &Downtime,
) -> Vec<(i64, Tell)> {
    let mut phase = Phase::Quiet;
    let mut told = Vec::new();
    for s in 0..=until {
        for (at, health) in changes.iter().filter(|(at, _)| *at == s) {
            phase = on_health(phase, *health, t(*at), rules);
        }
        let (next, tell) = on_tick(phase, t(s), muted.contains(&s), rules, unwatched);
        phase = next;
        if let Some(tell) = tell {
            told.push((s, tell));
        }
    }
    told
}

#[test]
fn a_flap_shorter_than_the_hold_tells_nothing() {
    let told = run(
        &[(10, Health::Critical), (50, Health::Healthy)],
        300,
        &rules(),
        0..0,
    );
    assert_eq!(told, []);
}

#[test]
fn a_problem_held_is_told_once_and_its_recovery_once() {
    let told = run(
        &[(10, Health::Critical), (200, Health::Healthy)],
        400,
        &rules(),
        0..0,
    );
    assert_eq!(
        told,
        [
            (
                70,
                Tell::Problem {
                    health: Health::Critical,
                    since: t(10)
                }
            ),
            (
                260,
                Tell::Resolved {
                    was: Health::Critical,
                    problem_since: t(10),
                    recovered_at: t(200)
                }
            ),
        ]
    );
}

#[test]
fn a_recovery_that_does_not_hold_is_not_told() {
    let told = run(
        &[
            (10, Health::Critical),
            (200, Health::Healthy),
            (230, Health::Critical),
        ],
        500,
        &rules(),
        0..0,
    );
    assert_eq!(told.len(), 1, "only the problem: {told:?}");
}

#[test]
fn a_site_going_offline_after_a_critical_server_is_told_as_offline() {
    let told = run(
        &[(10, Health::Critical), (100, Health::Offline)],
        300,
        &rules(),
        0..0,
    );
    assert_eq!(
        told.iter()
            .map(|(s, tell)| (*s, tell.kind()))
            .collect::<Vec<_>>(),
        [(70, "problem"), (160, "problem")]
    );
    assert_eq!(
        told[1].1,
        Tell::Problem {
            health: Health::Offline,
            since: t(10)
        }
    );
}

#[test]
fn attention_tells_only_when_the_channel_asks() {
    let changes = [(10, Health::Attention)];
    assert_eq!(run(&changes, 200, &rules(), 0..0), []);
    let asking = ChannelRules {
        attention: true,
        ..rules()
    };
    assert_eq!(run(&changes, 200, &asking, 0..0).len(), 1);
}

#[test]
fn reminders_repeat_while_unresolved() {
    let reminding = ChannelRules {
        reminder: Some(Duration::from_secs(300)),
        ..rules()
    };
    let told = run(&[(0, Health::Offline)], 1000, &reminding, 0..0);
    assert_eq!(
        told.iter()
            .map(|(s, tell)| (*s, tell.kind()))
            .collect::<Vec<_>>(),
        [
            (60, "problem"),
            (360, "reminder"),
            (660, "reminder"),
            (960, "reminder")
        ]
    );
    assert!(matches!(told[2].1, Tell::Reminder { n: 2, .. }));
}

#[test]
fn nothing_is_told_during_maintenance_and_once_after_it_if_still_unhealthy() {
    let told = run(&[(10, Health::Critical)], 900, &rules(), 0..600);
    assert_eq!(
        told,
        [(
            600,
            Tell::AfterMaintenance {
                health: Health::Critical,
                since: t(10)
            }
        )]
    );
    // Recovered during the window: nothing at all.
    let told = run(
        &[(10, Health::Critical), (300, Health::Healthy)],
        900,
        &rules(),
        0..600,
    );
    assert_eq!(told, []);
    // Told before the window, still down after it: one message after it.
    let told = run(&[(10, Health::Critical)], 900, &rules(), 100..600);
    assert_eq!(
        told.iter()
            .map(|(s, tell)| (*s, tell.kind()))
            .collect::<Vec<_>>(),
        [(70, "problem"), (600, "after_maintenance")]
    );
}

#[test]
fn next_due_is_when_a_tick_would_tell() {
    let rules = ChannelRules {
        reminder: Some(Duration::from_secs(600)),
        ..rules()
    };
    let pending = Phase::Pending {
        health: Health::Critical,
        since: t(10),
        muted: false,
    };
    let none = Downtime::default();
    assert_eq!(next_due(&pending, &rules, None, &none), Some(t(70)));
    assert_eq!(
        next_due(&pending, &rules, Some(t(500)), &none),
        Some(t(500))
    );
    assert_eq!(next_due(&Phase::Quiet, &rules, None, &none), None);
    assert_eq!(
        next_due(&pending, &rules, None, &outage(30, 100)),
        Some(t(140)),
        "own downtime does not count toward the hold"
    );
    let told = Phase::Notified {
        health: Health::Critical,
        since: t(10),
        told_at: t(70),
        reminders: 0,
        changed: None,
        muted: false,
    };
    assert_eq!(next_due(&told, &rules, None, &none), Some(t(670)));
}

fn outage(from: i64, to: i64) -> Downtime {
    Downtime::new(vec![
        crate::availability::DowntimeWindow::new(t(from), t(to)).expect("a window"),
    ])
}

#[test]
fn own_downtime_does_not_count_toward_a_hold() {
    let rules = rules();
    // Critical 20 s before a ten-minute outage of Carewatch's own: it has
    // held for the 60-s hold 40 s after the outage, not at its end.
    let told = run_with_downtime(
        &[(0, Health::Critical)],
        800,
        &rules,
        0..0,
        &outage(20, 620),
    );
    assert_eq!(
        told,
        [(
            660,
            Tell::Problem {
                health: Health::Critical,
                since: t(0)
            }
        )]
    );
    // Over 10 s after the outage: a flap that was watched for 30 s.
    let told = run_with_downtime(
        &[(0, Health::Critical), (630, Health::Healthy)],
        800,
        &rules,
        0..0,
        &outage(20, 620),
    );
    assert_eq!(told, [], "a flap across an outage tells nothing");
}

#[test]
fn a_problem_that_could_not_be_told_is_pending_again() {
    let rules = rules();
    let pending = on_health(Phase::Quiet, Health::Offline, t(0), &rules);
    let (told, tell) = on_tick(pending.clone(), t(60), false, &rules, &Downtime::default());
    let tell = tell.expect("held: a problem");
    assert_eq!(untold(&told, &tell), Some(pending.clone()));
    // Told later, once it can be: the same problem, since the same instant.
    let (_, again) = on_tick(pending, t(500), false, &rules, &Downtime::default());
    assert_eq!(again, Some(tell));
    let reminder = Tell::Reminder {
        health: Health::Offline,
        since: t(0),
        n: 1,
    };
    assert_eq!(untold(&told, &reminder), None, "a reminder is not owed");
    let after = Tell::AfterMaintenance {
        health: Health::Offline,
        since: t(0),
    };
    assert_eq!(
        untold(&told, &after),
        Some(Phase::Pending {
            health: Health::Offline,
            since: t(0),
            muted: true
        }),
        "still owed after the window"
    );
}
