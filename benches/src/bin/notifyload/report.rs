//! Figures per pair and for the whole benchmark.

use super::*;
use crate::check::{Latency, latency, spread_s};
use crate::record::Window;

/// A figure of run A and of run B, if known.
pub(crate) type AandB = (Option<f64>, Option<f64>);

/// Ingest in A and B over B's outage window and over [T, T + seconds].
pub(crate) struct PairIngest {
    pub(crate) outage_a: Window,
    pub(crate) outage_b: Window,
    pub(crate) fixed_a: Window,
    pub(crate) fixed_b: Window,
    /// B's window reached past A's measured end (A's was cut).
    pub(crate) clipped: bool,
}

pub(crate) fn pair_ingest(args: &Args, a: &Run, b: &Run) -> PairIngest {
    let seconds_ms = u32::try_from(args.seconds * 1000).unwrap_or(u32::MAX);
    let fixed_a = a.window(a.t_ms, a.t_ms + seconds_ms);
    let fixed_b = b.window(b.t_ms, b.t_ms + seconds_ms);
    let (from, to) = b.outage_offsets().unwrap_or((0, i64::from(seconds_ms)));
    let outage_b = b.window(b.at_offset(from), b.at_offset(to));
    let outage_a = a.window(a.at_offset(from), a.at_offset(to));
    PairIngest {
        clipped: a.at_offset(to) > a.measured_until_ms,
        outage_a,
        outage_b,
        fixed_a,
        fixed_b,
    }
}

pub(crate) fn opt1(v: Option<f64>) -> String {
    v.map_or_else(|| "?".to_owned(), |v| format!("{v:.1}"))
}

pub(crate) fn print_pair(number: usize, args: &Args, a: &Run, b: &Run) {
    let ingest = pair_ingest(args, a, b);
    let l = latency(b);
    if !b.notify {
        println!(
            "pair {number} B (a control, no channel): first detection {:.1} s after T, \
             detections spread over {:.1} s",
            l.first_detection_from_t_ms.unwrap_or(0) as f64 / 1000.0,
            l.detection_spread_ms.unwrap_or(0) as f64 / 1000.0,
        );
    } else {
        print_notifications(number, args, b, &l);
    }
    for (run, label) in [(a, "A"), (b, "B")] {
        let (before, after) = run
            .stalls
            .iter()
            .partition::<Vec<i64>, _>(|&&at| at < run.t_unix);
        println!(
            "pair {number} {label}: outage servers' longest gap beyond their interval {:.2} s; \
             Late servers (health events) {:?}; storage stalls (writes > 1 s) {} before T, {} \
             after (at T + {:?} s)",
            run.paced.max_late.as_secs_f64(),
            run.stray_health,
            before.len(),
            after.len(),
            after
                .iter()
                .map(|at| (at - run.t_unix) / 1000)
                .collect::<Vec<_>>()
        );
    }
    println!(
        "pair {number} ingest over B's outage window ({:.1} s{}): A {:.0}/s, B {:.0}/s, B/A \
         {:.3}; server CPU per heartbeat A {} µs, B {} µs; over [T, T+{} s]: A {:.0}/s, B \
         {:.0}/s, B/A {:.3}; load average {} / {}",
        ingest.outage_b.seconds,
        if ingest.clipped {
            ", A's cut short"
        } else {
            ""
        },
        ingest.outage_a.heartbeats_per_s,
        ingest.outage_b.heartbeats_per_s,
        ingest.outage_b.heartbeats_per_s / ingest.outage_a.heartbeats_per_s,
        opt1(ingest.outage_a.server_cpu_us),
        opt1(ingest.outage_b.server_cpu_us),
        args.seconds,
        ingest.fixed_a.heartbeats_per_s,
        ingest.fixed_b.heartbeats_per_s,
        ingest.fixed_b.heartbeats_per_s / ingest.fixed_a.heartbeats_per_s,
        a.load,
        b.load,
    );
}

/// B's notifications in one line.
fn print_notifications(number: usize, args: &Args, b: &Run, l: &Latency) {
    println!(
        "pair {number} B: {} of {} Offline notifications (detection → arrival {}); first \
         detection {:.1} s after T, detections spread over {:.1} s, first detection → last \
         notification {:.1} s; {} of {} resolved ({}); outbox {} entries, {} delivered, {} \
         retried, {} given up, {} pending",
        l.offline_received,
        args.installations,
        spread_s(&l.arrival),
        l.first_detection_from_t_ms.unwrap_or(0) as f64 / 1000.0,
        l.detection_spread_ms.unwrap_or(0) as f64 / 1000.0,
        l.first_to_last_ms.unwrap_or(0) as f64 / 1000.0,
        l.resolved_received,
        args.installations,
        spread_s(&l.resolved),
        b.outbox[0],
        b.outbox[1],
        b.outbox[2],
        b.outbox[3],
        b.outbox[4],
    );
}

pub(crate) fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// What run A is.
pub(crate) fn a_label(args: &Args) -> &'static str {
    if args.control {
        "a control: A and B both the outage without a notification channel"
    } else if args.a_outage {
        "A: the outage without a notification channel, B: the outage notified"
    } else {
        "A: no outage, B: outage"
    }
}

pub(crate) fn report(args: &Args, pairs: &[(Run, Run)]) {
    let command: Vec<String> = std::env::args().collect();
    println!();
    println!("command: {}", command.join(" "));
    println!(
        "outage fleet: {} installations × 1 recording server, one heartbeat each per {} ms \
         ({:.0}/s), {} streams; ingest fleet: {} recording servers ({} per installation), {} in \
         flight over {} connections, stream mode; serve --heartbeat-interval {} ms --jitter {} \
         ms; webhook over {}, hold {} s (default rules: Critical, Offline, their recovery); \
         {} pairs ({}), {} s warm-up, fresh data directory per run",
        thousands(args.installations),
        args.interval.as_millis(),
        args.installations as f64 / args.interval.as_secs_f64(),
        args.outage_workers,
        thousands(args.ingest_servers),
        INGEST_SERVERS_PER_INSTALLATION,
        args.concurrency,
        args.connections,
        args.interval.as_millis(),
        args.jitter.as_millis(),
        if args.https { "HTTPS" } else { "plain HTTP" },
        args.hold.as_secs_f64(),
        pairs.len(),
        a_label(args),
        args.warmup_seconds,
    );
    // A control has no channel: no notification to report on.
    if !args.control {
        println!();
        println!("| measure | per B run | target |");
        println!("|---|---|---|");
        let lat: Vec<Latency> = pairs.iter().map(|(_, b)| latency(b)).collect();
        let each = |f: &dyn Fn(&Latency) -> String| -> String {
            lat.iter().map(f).collect::<Vec<_>>().join("; ")
        };
        println!(
            "| Offline notifications received (one per installation) | {} | all {} |",
            each(&|l| format!("{}", l.offline_received)),
            thousands(args.installations)
        );
        println!(
            "| detection → webhook arrival | {} | ≤ 10 s |",
            each(&|l| spread_s(&l.arrival))
        );
        println!(
            "| … within 10 s | {} | all |",
            each(&|l| format!(
                "{} of {}",
                l.arrival
                    .iter()
                    .filter(|&&ms| ms <= TARGET_LATENCY_MS)
                    .count(),
                l.arrival.len()
            ))
        );
        println!(
            "| first detection → last Offline notification | {} | |",
            each(&|l| format!("{:.1} s", l.first_to_last_ms.unwrap_or(0) as f64 / 1000.0))
        );
        println!(
            "| detections spread over (first → last) | {} | |",
            each(&|l| format!(
                "{:.1} s",
                l.detection_spread_ms.unwrap_or(0) as f64 / 1000.0
            ))
        );
        println!(
            "| first detection after the outage began | {} | |",
            each(&|l| format!(
                "{:.1} s",
                l.first_detection_from_t_ms.unwrap_or(0) as f64 / 1000.0
            ))
        );
        let rate = |span: Option<i64>, n: usize| match span {
            Some(ms) if ms > 0 => format!(
                "{:.1} s, {:.0}/s",
                ms as f64 / 1000.0,
                n as f64 * 1000.0 / ms as f64
            ),
            _ => "?".to_owned(),
        };
        println!(
            "| Offline notifications queued, first → last (payload `at`) | {} | |",
            each(&|l| rate(l.queued_span_ms, l.offline_received))
        );
        println!(
            "| Offline notifications arrived, first → last | {} | |",
            each(&|l| rate(l.arrival_span_ms, l.offline_received))
        );
        println!(
            "| … detection → queued (notifier, payload `at`) | {} | |",
            each(&|l| spread_s(&l.notifier))
        );
        println!(
            "| … queued → arrival (delivery) | {} | |",
            each(&|l| spread_s(&l.delivery))
        );
        println!(
            "| third heartbeat due → detection (2 s jitter tolerance, sweep) | {} | |",
            each(&|l| spread_s(&l.sweep))
        );
        println!(
            "| duplicates (same key twice) / retried / given up | {} | 0 / 0 / 0 |",
            pairs
                .iter()
                .map(|(_, b)| {
                    let mut keys = HashSet::new();
                    let duplicates = b.notes.iter().filter(|n| !keys.insert(&n.key)).count();
                    format!("{duplicates} / {} / {}", b.outbox[2], b.outbox[3])
                })
                .collect::<Vec<_>>()
                .join("; ")
        );
        if !args.no_recovery {
            println!(
                "| resolved notifications received | {} | all {} |",
                each(&|l| format!("{}", l.resolved_received)),
                thousands(args.installations)
            );
            println!(
                "| recovery → resolved arrival | {} | |",
                each(&|l| spread_s(&l.resolved))
            );
        }
    }
    println!();
    println!(
        "| ingest fleet | A ({}) | B ({}) | B / A, per pair | median B / A | target |",
        if args.a_outage || args.control {
            "outage, no channel"
        } else {
            "no outage"
        },
        if args.control {
            "the same as A: a control"
        } else {
            "outage, notifying"
        }
    );
    println!("|---|---|---|---|---|---|");
    let ingest: Vec<PairIngest> = pairs.iter().map(|(a, b)| pair_ingest(args, a, b)).collect();
    let row = |name: &str, pick: &dyn Fn(&PairIngest) -> AandB, digits: usize, target: &str| {
        let join = |side: usize| {
            ingest
                .iter()
                .map(|p| {
                    let v = pick(p);
                    let v = if side == 0 { v.0 } else { v.1 };
                    v.map_or_else(|| "?".to_owned(), |v| format!("{v:.digits$}"))
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut ratios: Vec<f64> = ingest
            .iter()
            .filter_map(|p| {
                let (a, b) = pick(p);
                Some(b? / a?)
            })
            .collect();
        let each: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
        let m = median(&mut ratios).map_or_else(|| "?".to_owned(), |m| format!("{m:.3}"));
        println!(
            "| {name} | {} | {} | {} | {m} | {target} |",
            join(0),
            join(1),
            each.join(", ")
        );
    };
    row(
        "heartbeats/s, B's outage window (first detection → last notification; last detection in a control)",
        &|p| {
            (
                Some(p.outage_a.heartbeats_per_s),
                Some(p.outage_b.heartbeats_per_s),
            )
        },
        0,
        &format!("≥ {TARGET_RATIO:.2}"),
    );
    row(
        &format!("heartbeats/s, [T, T + {} s]", args.seconds),
        &|p| {
            (
                Some(p.fixed_a.heartbeats_per_s),
                Some(p.fixed_b.heartbeats_per_s),
            )
        },
        0,
        "",
    );
    row(
        "server CPU per heartbeat (both fleets), outage window, µs",
        &|p| (p.outage_a.server_cpu_us, p.outage_b.server_cpu_us),
        1,
        "",
    );
    row(
        "… of it at the server's priority (all but the notification threads), µs",
        &|p| (p.outage_a.foreground_cpu_us, p.outage_b.foreground_cpu_us),
        1,
        "",
    );
    row(
        "generator CPU per heartbeat, outage window, µs",
        &|p| (p.outage_a.generator_cpu_us, p.outage_b.generator_cpu_us),
        1,
        "",
    );
    row(
        "heartbeat p99, outage window, ms",
        &|p| (Some(p.outage_a.p99_ms), Some(p.outage_b.p99_ms)),
        2,
        "",
    );
    let windows: Vec<String> = ingest
        .iter()
        .map(|p| {
            format!(
                "{:.1} s{}",
                p.outage_b.seconds,
                if p.clipped { " (A cut short)" } else { "" }
            )
        })
        .collect();
    let loads: Vec<String> = pairs
        .iter()
        .map(|(a, b)| format!("{} / {}", a.load, b.load))
        .collect();
    let outage_hb: Vec<String> = pairs
        .iter()
        .map(|(a, _)| {
            let w = a.window(a.t_ms, a.measured_until_ms);
            let n = a
                .paced
                .acks
                .iter()
                .filter(|&&(at, _)| at >= a.t_ms && at < a.measured_until_ms)
                .count();
            format!("{:.0}", n as f64 / w.seconds)
        })
        .collect();
    println!();
    println!(
        "outage windows: {}; outage fleet heartbeats/s in A after T: {}; load average at T + {} \
         s (A / B): {}",
        windows.join(", "),
        outage_hb.join(", "),
        args.seconds,
        loads.join("; ")
    );
    print_background(args, &ingest);
}

/// What the notification threads (the server's threads below its priority)
/// used over each B window, against the machine's cores over it: what
/// notifying took, read without the ingest ratio's noise.
fn print_background(args: &Args, ingest: &[PairIngest]) {
    if args.control {
        // No channel in either run: nothing to tell apart.
        return;
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    let each: Vec<String> = ingest
        .iter()
        .map(|p| match (p.outage_a.background_cpu_ms, p.outage_b.background_cpu_ms) {
            (Some(a), Some(b)) => format!(
                "A {a:.0} ms, B {b:.0} ms ({:.0} µs per Offline notification, {:.1}% of {cores} \
                 cores over the window)",
                b * 1e3 / args.installations.max(1) as f64,
                b / 10.0 / (p.outage_b.seconds * cores),
            ),
            _ => "?".to_owned(),
        })
        .collect();
    println!(
        "notification threads' CPU (below the server's priority) over the outage window: {}",
        each.join("; ")
    );
    let receiver: Vec<String> = ingest
        .iter()
        .map(
            |p| match (p.outage_a.receiver_cpu_ms, p.outage_b.receiver_cpu_ms) {
                (Some(a), Some(b)) => format!(
                    "A {a:.0} ms, B {b:.0} ms ({:.1}% of {cores} cores over the window)",
                    b / 10.0 / (p.outage_b.seconds * cores),
                ),
                _ => "?".to_owned(),
            },
        )
        .collect();
    println!(
        "the benchmark's receiver thread's CPU (part of the generator's) over the outage window: {}",
        receiver.join("; ")
    );
}
