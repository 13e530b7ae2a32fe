use proptest::prelude::*;

use super::*;

const DAY: i64 = 86_400_000;

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn ms(d: i64) -> Duration {
    Duration::from_millis(d as u64)
}

fn eval(
    last: i64,
    interval: i64,
    policy: &AvailabilityPolicy,
    downtime: &Downtime,
    now: i64,
) -> Availability {
    evaluate(Some(ts(last)), ms(interval), policy, downtime, ts(now)).availability
}

prop_compose! {
    fn policies()(threshold in 1u32..=6, jitter in 0i64..5_000) -> AvailabilityPolicy {
        AvailabilityPolicy::new(threshold, ms(jitter)).unwrap()
    }
}

#[test]
fn never_heard_from_is_pending() {
    let e = evaluate(
        None,
        ms(60_000),
        &AvailabilityPolicy::default(),
        &Downtime::default(),
        ts(1),
    );
    assert_eq!(
        e,
        Evaluation {
            availability: Availability::Pending,
            next_change_at: None
        }
    );
}

#[test]
fn default_policy_walks_through_late_to_unavailable() {
    let p = AvailabilityPolicy::default();
    let none = Downtime::default();
    let i = 60_000;
    assert_eq!(eval(0, i, &p, &none, 61_999), Availability::Available);
    assert_eq!(
        eval(0, i, &p, &none, 62_000),
        Availability::Late { missed: 1 }
    );
    assert_eq!(
        eval(0, i, &p, &none, 122_000),
        Availability::Late { missed: 2 }
    );
    assert_eq!(
        eval(0, i, &p, &none, 181_999),
        Availability::Late { missed: 2 }
    );
    assert_eq!(
        eval(0, i, &p, &none, 182_000),
        Availability::Unavailable {
            since: ts(180_000),
            missed: 3
        }
    );
    assert_eq!(
        eval(0, i, &p, &none, 600_000),
        Availability::Unavailable {
            since: ts(180_000),
            missed: 9
        }
    );
}

proptest! {
    #[test]
    fn exactly_at_the_threshold_boundary(last in -DAY..DAY, i in 100i64..100_000, p in policies()) {
        let none = Downtime::default();
        let thr = i64::from(p.unavailable_after());
        let j = p.jitter_ms();
        let boundary = last + thr * i + j;
        let before = eval(last, i, &p, &none, boundary - 1);
        prop_assert!(!matches!(before, Availability::Unavailable { .. }), "{before:?}");
        let at = eval(last, i, &p, &none, boundary);
        prop_assert_eq!(at, Availability::Unavailable { since: ts(last + thr * i), missed: p.unavailable_after() });
    }

    #[test]
    fn each_interval_missed_counts_once(last in -DAY..DAY, i in 100i64..100_000, p in policies(), k in 1i64..6) {
        let none = Downtime::default();
        prop_assume!(k < i64::from(p.unavailable_after()));
        let j = p.jitter_ms();
        prop_assert_eq!(eval(last, i, &p, &none, last + k * i + j), Availability::Late { missed: k as u32 });
        prop_assert_eq!(eval(last, i, &p, &none, last + (k + 1) * i + j - 1), Availability::Late { missed: k as u32 });
    }

    #[test]
    fn jitter_tolerance_keeps_a_slightly_late_heartbeat_available(
        last in -DAY..DAY, i in 100i64..100_000, p in policies(), early in 1i64..5_000,
    ) {
        let j = p.jitter_ms();
        // `early = 0` is exactly due plus the tolerance: missed.
        prop_assume!(early <= i + j);
        prop_assert_eq!(eval(last, i, &p, &Downtime::default(), last + i + j - early), Availability::Available);
    }

    #[test]
    fn the_next_message_recovers_at_once(last in -DAY..DAY, i in 100i64..100_000, p in policies(), gap in 0i64..DAY) {
        let none = Downtime::default();
        let received = last + gap;
        prop_assert_eq!(eval(received, i, &p, &none, received), Availability::Available);
        let expected = if gap < i + p.jitter_ms() { 0 } else { ((gap - p.jitter_ms()) / i) as u32 };
        prop_assert_eq!(missed_before(ts(last), ts(received), ms(i), &p, &none), expected);
    }

    #[test]
    fn next_change_at_is_exactly_when_it_changes(last in -DAY..DAY, i in 100i64..100_000, p in policies(), t in 0i64..DAY) {
        let none = Downtime::default();
        let e = evaluate(Some(ts(last)), ms(i), &p, &none, ts(last + t));
        if let Some(next) = e.next_change_at {
            prop_assert!(next > ts(last + t));
            prop_assert_eq!(eval(last, i, &p, &none, next.as_millis() - 1), e.availability);
            prop_assert_ne!(eval(last, i, &p, &none, next.as_millis()), e.availability);
        } else {
            prop_assert!(matches!(e.availability, Availability::Unavailable { .. }), "{:?}", e);
        }
    }

    #[test]
    fn own_downtime_gives_everyone_full_intervals_after_restart(
        last in -DAY..DAY, i in 100i64..100_000, p in policies(),
        stop_per_mille in 0i64..1000, outage in 1i64..DAY, probe in 0i64..DAY,
    ) {
        let thr = i64::from(p.unavailable_after());
        let j = p.jitter_ms();
        // The service stopped before this server was due to turn Unavailable.
        let stop_after = (thr * i + j) * stop_per_mille / 1000;
        let (stop, restart) = (last + stop_after, last + stop_after + outage);
        let downtime = Downtime::new(vec![DowntimeWindow::new(ts(stop), ts(restart)).unwrap()]);
        let now = restart + probe;
        let got = eval(last, i, &p, &downtime, now);
        if probe < thr * i + j {
            prop_assert!(!matches!(got, Availability::Unavailable { .. }), "unavailable {probe} ms after restart: {got:?}");
        } else {
            // Each stretch of receiving counts on its own schedule.
            let before_stop = if stop_after < i + j { 0 } else { (stop_after - j) / i };
            prop_assert_eq!(got, Availability::Unavailable {
                since: ts(restart + thr * i),
                missed: (before_stop + (probe - j) / i) as u32,
            });
        }
    }

    #[test]
    fn already_unavailable_before_an_outage_stays_unavailable(
        last in -DAY..DAY, i in 100i64..100_000, p in policies(), extra in 0i64..DAY, outage in 1i64..DAY, probe in 0i64..DAY,
    ) {
        let thr = i64::from(p.unavailable_after());
        let stop = last + thr * i + p.jitter_ms() + extra;
        let downtime = Downtime::new(vec![DowntimeWindow::new(ts(stop), ts(stop + outage)).unwrap()]);
        let got = eval(last, i, &p, &downtime, stop + outage + probe);
        prop_assert!(matches!(got, Availability::Unavailable { since, .. } if since == ts(last + thr * i)), "{got:?}");
    }

    #[test]
    fn batch_agrees_with_the_scalar_evaluator(
        servers in prop::collection::vec((prop::option::of(-DAY..DAY), 100i64..100_000), 0..64),
        p in policies(),
        windows in prop::collection::vec((-DAY..DAY, 1i64..DAY), 0..3),
        now in -DAY..2 * DAY,
    ) {
        let downtime = Downtime::new(windows.iter().map(|&(s, len)| DowntimeWindow::new(ts(s), ts(s + len)).unwrap()).collect());
        let last: Vec<i64> = servers.iter().map(|(l, _)| l.unwrap_or(NEVER)).collect();
        let interval: Vec<i64> = servers.iter().map(|(_, i)| *i).collect();
        let mut out = vec![0u8; servers.len()];
        evaluate_batch(&last, &interval, &p, &downtime, ts(now), &mut out);
        for (k, (l, i)) in servers.iter().enumerate() {
            let expected = match evaluate(l.map(ts), ms(*i), &p, &downtime, ts(now)).availability {
                Availability::Pending => PENDING_CODE,
                Availability::Available => 0,
                Availability::Late { missed } => missed as u8,
                Availability::Unavailable { .. } | Availability::Decommissioned { .. } => {
                    p.unavailable_after() as u8
                }
            };
            prop_assert_eq!(out[k], expected, "server {}", k);
        }
    }
}

#[test]
fn downtime_windows_are_merged_and_sorted() {
    let w = |s, e| DowntimeWindow::new(ts(s), ts(e)).unwrap();
    let d = Downtime::new(vec![w(50, 60), w(0, 10), w(5, 20), w(20, 30)]);
    assert_eq!(d.windows(), &[w(0, 30), w(50, 60)]);
    assert_eq!(d.latest_end(), Some(ts(60)));
    assert!(DowntimeWindow::new(ts(5), ts(5)).is_err());
}

#[test]
fn policy_and_interval_are_validated() {
    assert!(AvailabilityPolicy::new(0, Duration::ZERO).is_err());
    assert!(AvailabilityPolicy::new(101, Duration::ZERO).is_err());
    assert!(check_interval(Duration::from_millis(99)).is_err());
    assert!(check_interval(Duration::from_secs(60)).is_ok());
}

/// The cases in `core/testdata/evaluator_boundaries.txt`, which the Python
/// bindings' tests check too.
#[test]
fn shared_boundary_cases() {
    let cases = include_str!("../../testdata/evaluator_boundaries.txt");
    let time = |s: &str| (s != "-").then(|| ts(s.parse().unwrap()));
    let mut checked = 0;
    for line in cases
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [
            interval,
            threshold,
            jitter,
            last,
            now,
            downtime,
            expected,
            next,
        ] = f[..]
        else {
            panic!("malformed case: {line}");
        };
        let policy =
            AvailabilityPolicy::new(threshold.parse().unwrap(), ms(jitter.parse().unwrap()))
                .unwrap();
        let windows = match downtime {
            "-" => Vec::new(),
            list => list
                .split(',')
                .map(|w| {
                    let (s, e) = w.split_once("..").unwrap();
                    DowntimeWindow::new(ts(s.parse().unwrap()), ts(e.parse().unwrap())).unwrap()
                })
                .collect(),
        };
        let expected = match expected.split(':').collect::<Vec<_>>()[..] {
            ["pending"] => Availability::Pending,
            ["available"] => Availability::Available,
            ["late", missed] => Availability::Late {
                missed: missed.parse().unwrap(),
            },
            ["unavailable", since, missed] => Availability::Unavailable {
                since: ts(since.parse().unwrap()),
                missed: missed.parse().unwrap(),
            },
            _ => panic!("malformed expectation: {line}"),
        };
        let got = evaluate(
            time(last),
            ms(interval.parse().unwrap()),
            &policy,
            &Downtime::new(windows),
            ts(now.parse().unwrap()),
        );
        assert_eq!(
            got,
            Evaluation {
                availability: expected,
                next_change_at: time(next)
            },
            "case: {line}"
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} cases read");
}

/// The batch code the scalar evaluator gives one server.
fn scalar_code(
    last: i64,
    interval: i64,
    p: &AvailabilityPolicy,
    downtime: &Downtime,
    now: i64,
) -> u8 {
    let last = (last != NEVER).then(|| ts(last));
    let interval = Duration::from_millis(u64::try_from(interval).unwrap_or(1));
    match evaluate(last, interval, p, downtime, ts(now)).availability {
        Availability::Pending => PENDING_CODE,
        Availability::Available => 0,
        Availability::Late { missed } => missed as u8,
        Availability::Unavailable { .. } | Availability::Decommissioned { .. } => {
            p.unavailable_after() as u8
        }
    }
}

/// Last signs of life: mostly near `now`, some at the edges of `i64`.
fn last_seen_near(now: i64) -> impl Strategy<Value = i64> {
    prop_oneof![
        8 => (-10 * DAY..DAY).prop_map(move |back| now.saturating_sub(back)),
        1 => Just(NEVER),
        1 => prop_oneof![Just(i64::MIN + 1), Just(i64::MAX), any::<i64>()],
    ]
}

/// Intervals: mostly valid ones, some out of range (the exact path clamps them).
fn intervals() -> impl Strategy<Value = i64> {
    prop_oneof![
        8 => 100i64..=DAY,
        1 => prop_oneof![Just(0i64), Just(-1), Just(DAY + 1), Just(i64::MAX), any::<i64>()],
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Fleets spanning several chunks, every threshold (the unrolled and the
    /// dividing pass), and values at the edges of `i64`.
    #[test]
    fn batch_agrees_with_the_scalar_evaluator_over_chunks_and_edges(
        (now, servers) in prop_oneof![
            9 => -DAY..2 * DAY,
            1 => prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(1i64 << 62)],
        ].prop_flat_map(|now| (Just(now), prop::collection::vec((last_seen_near(now), intervals()), 0..2500))),
        threshold in prop_oneof![1u32..=6, 1u32..=100],
        jitter in 0i64..=DAY,
        outage in prop::option::of((1i64..DAY, 0i64..DAY)),
    ) {
        let p = AvailabilityPolicy::new(threshold, ms(jitter)).unwrap();
        // An outage of Carewatch ending `ago` before now (if any).
        let downtime = Downtime::new(outage.iter().filter_map(|&(length, ago)| {
            let end = now.checked_sub(ago)?;
            DowntimeWindow::new(ts(end.checked_sub(length)?), ts(end)).ok()
        }).collect());
        let last: Vec<i64> = servers.iter().map(|&(l, _)| l).collect();
        let interval: Vec<i64> = servers.iter().map(|&(_, i)| i).collect();
        let mut out = vec![0u8; servers.len()];
        evaluate_batch(&last, &interval, &p, &downtime, ts(now), &mut out);
        for (k, &(l, i)) in servers.iter().enumerate() {
            prop_assert_eq!(out[k], scalar_code(l, i, &p, &downtime, now), "server {}: last {}, interval {}", k, l, i);
        }
    }
}

#[test]
fn after_watching_skips_own_downtime() {
    let w = |s, e| DowntimeWindow::new(ts(s), ts(e)).unwrap();
    let downtime = Downtime::new(vec![w(100, 200), w(300, 400)]);
    let after = |from, span| downtime.after_watching(ts(from), ms(span));
    assert_eq!(after(0, 50), ts(50), "before any window");
    assert_eq!(after(0, 100), ts(100), "up to a window's start");
    assert_eq!(after(0, 150), ts(250), "across one window");
    assert_eq!(after(0, 250), ts(450), "across both");
    assert_eq!(
        after(150, 10),
        ts(210),
        "from inside a window: from its end"
    );
    assert_eq!(after(150, 0), ts(150), "nothing to watch");
    assert_eq!(after(500, 10), ts(510), "after every window");
    assert_eq!(Downtime::default().after_watching(ts(7), ms(3)), ts(10));
}

proptest! {
    /// The time watched between `from` and `after_watching(from, span)` is
    /// `span`: the instant minus the windows' overlap with the stretch.
    #[test]
    fn after_watching_watches_exactly_the_span(
        windows in proptest::collection::vec((0i64..10_000, 1i64..2_000), 0..6),
        from in 0i64..12_000,
        span in 0i64..5_000,
    ) {
        let downtime = Downtime::new(windows.iter().map(|&(s, len)| DowntimeWindow::new(ts(s), ts(s + len)).unwrap()).collect());
        let end = downtime.after_watching(ts(from), ms(span)).as_millis();
        let unwatched: i64 = downtime.windows().iter().map(|w| {
            (w.end().as_millis().min(end) - w.start().as_millis().max(from)).max(0)
        }).sum();
        prop_assert_eq!(end - from - unwatched, span);
        // And not a moment later than needed: the end is never inside a window.
        prop_assert!(downtime.windows().iter().all(|w| !(w.start().as_millis() < end && end <= w.end().as_millis()) || span == 0 && end == from));
    }
}
