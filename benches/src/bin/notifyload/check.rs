//! What is wrong with a run, and its notifications' latencies.

use super::*;

/// What is wrong with a run.
pub(crate) fn check(
    args: &Args,
    run: &Run,
    resumed_unix: Option<i64>,
    timed_out: bool,
) -> Vec<String> {
    let label = if run.b { "B" } else { "A" };
    let mut problems = Vec::new();
    if timed_out {
        problems.push(format!(
            "{label}: not every notification came within {} s",
            args.timeout_seconds
        ));
    }
    // Late servers (Attention) are reported, not failed: no notification
    // follows, but they show the fleets were not steady.
    let wrong: usize = run
        .stray_health
        .iter()
        .filter(|(k, _)| !k.ends_with("Attention"))
        .map(|(_, n)| n)
        .sum();
    if wrong > 0 {
        problems.push(format!(
            "{label}: unexpected health changes: {:?}",
            run.stray_health
        ));
    }
    if run.early > 0 {
        problems.push(format!(
            "{label}: {} notifications during the warm-up (the fleets were not steady)",
            run.early
        ));
    }
    if run.ingest.error_count() > 0 || run.paced.error_count() > 0 {
        problems.push(format!(
            "{label}: heartbeat errors: ingest {:?}, outage fleet {:?}",
            run.ingest.errors, run.paced.errors
        ));
    }
    let expected: HashSet<String> = (0..args.installations)
        .map(|n| format!("OUT-{n:06}"))
        .collect();
    // The outage's runs (B, A with --a-outage, a control's B): every
    // installation recorded Offline, which B's window is measured from.
    if run.outage {
        let undetected = expected
            .iter()
            .filter(|s| run.seen.get(s.as_str()).is_none_or(|s| s.offline.is_none()))
            .count();
        if undetected > 0 {
            problems.push(format!(
                "{label}: {undetected} installations never recorded Offline"
            ));
        }
    }
    if !run.notify {
        if !run.notes.is_empty() {
            problems.push(format!(
                "{label}: {} notifications without a channel",
                run.notes.len()
            ));
        }
        return problems;
    }
    let mut keys: HashMap<&str, usize> = HashMap::new();
    for note in &run.notes {
        *keys.entry(note.key.as_str()).or_default() += 1;
    }
    let duplicates: usize = keys.values().map(|n| n - 1).sum();
    if duplicates > 0 {
        problems.push(format!(
            "B: {duplicates} notifications came again (same key)"
        ));
    }
    let mismatched = run.notes.iter().filter(|n| !n.header_matches).count();
    if mismatched > 0 {
        problems.push(format!(
            "B: {mismatched} Idempotency-Key headers differ from the body's id"
        ));
    }
    let per_slc = |kind: &str| {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for note in run.notes.iter().filter(|n| n.kind == kind) {
            *counts.entry(note.slc.as_str()).or_default() += 1;
        }
        counts
    };
    let problem = per_slc("problem");
    let missing = expected
        .iter()
        .filter(|s| !problem.contains_key(s.as_str()))
        .count();
    if missing > 0 {
        problems.push(format!(
            "B: {missing} of {} Offline notifications missing",
            args.installations
        ));
    }
    let twice = problem.values().filter(|&&n| n > 1).count();
    if twice > 0 {
        problems.push(format!(
            "B: {twice} installations got more than one problem notification"
        ));
    }
    let not_offline = run
        .notes
        .iter()
        .filter(|n| n.kind == "problem" && n.health != "offline")
        .count();
    if not_offline > 0 {
        problems.push(format!(
            "B: {not_offline} problem notifications not Offline"
        ));
    }
    let others = run
        .notes
        .iter()
        .filter(|n| {
            !expected.contains(&n.slc) || !matches!(n.kind.as_str(), "problem" | "resolved")
        })
        .count();
    if others > 0 {
        problems.push(format!(
            "B: {others} notifications about other installations or of other kinds"
        ));
    }
    let since_differs = run
        .notes
        .iter()
        .filter(|n| n.kind == "problem")
        .filter(|n| run.seen.get(&n.slc).and_then(|s| s.offline) != n.since)
        .count();
    if since_differs > 0 {
        problems.push(format!(
            "B: {since_differs} payloads' installation.since differ from the feed's Offline instant"
        ));
    }
    if resumed_unix.is_some() {
        let resolved = per_slc("resolved");
        let missing = expected
            .iter()
            .filter(|s| !resolved.contains_key(s.as_str()))
            .count();
        if missing > 0 {
            problems.push(format!(
                "B: {missing} of {} resolved notifications missing",
                args.installations
            ));
        }
    }
    if run.outbox[3] > 0 || run.outbox[4] > 0 {
        problems.push(format!(
            "B: outbox has {} given up and {} pending entries",
            run.outbox[3], run.outbox[4]
        ));
    }
    problems
}

/// Latencies of B's notifications.
#[derive(Debug, Default)]
pub(crate) struct Latency {
    /// Offline: detection → arrival, notifier (detection → `at`), delivery
    /// (`at` → arrival), sweep (deadline → detection); ms.
    pub(crate) arrival: Vec<i64>,
    pub(crate) notifier: Vec<i64>,
    pub(crate) delivery: Vec<i64>,
    pub(crate) sweep: Vec<i64>,
    /// First detection → last Offline notification; detections' spread.
    pub(crate) first_to_last_ms: Option<i64>,
    pub(crate) detection_spread_ms: Option<i64>,
    /// Detection's first instant from T.
    pub(crate) first_detection_from_t_ms: Option<i64>,
    /// First to last Offline notification queued (`at`), and arrived.
    pub(crate) queued_span_ms: Option<i64>,
    pub(crate) arrival_span_ms: Option<i64>,
    /// Resolved: recovery → arrival.
    pub(crate) resolved: Vec<i64>,
    pub(crate) offline_received: usize,
    pub(crate) resolved_received: usize,
}

pub(crate) fn latency(run: &Run) -> Latency {
    let mut l = Latency::default();
    let mut offline_slcs = HashSet::new();
    let mut resolved_slcs = HashSet::new();
    for note in &run.notes {
        let seen = run.seen.get(&note.slc).copied().unwrap_or_default();
        match note.kind.as_str() {
            "problem" => {
                offline_slcs.insert(note.slc.as_str());
                if let Some(detected) = seen.offline.or(note.since) {
                    l.arrival.push(note.arrived - detected);
                    if let Some(decided) = note.decided {
                        l.notifier.push(decided - detected);
                    }
                    if let Some(deadline) = note.server_since {
                        l.sweep.push(detected - deadline);
                    }
                }
                if let Some(decided) = note.decided {
                    l.delivery.push(note.arrived - decided);
                }
            }
            "resolved" => {
                resolved_slcs.insert(note.slc.as_str());
                if let Some(recovered) = seen.recovered.or(note.recovered_at) {
                    l.resolved.push(note.arrived - recovered);
                }
            }
            _ => {}
        }
    }
    l.offline_received = offline_slcs.len();
    l.resolved_received = resolved_slcs.len();
    let detections: Vec<i64> = run.seen.values().filter_map(|s| s.offline).collect();
    let first = detections.iter().min().copied();
    let last_detection = detections.iter().max().copied();
    let last_arrival = run
        .notes
        .iter()
        .filter(|n| n.kind == "problem")
        .map(|n| n.arrived)
        .max();
    l.first_to_last_ms = first.zip(last_arrival).map(|(a, b)| b - a);
    l.detection_spread_ms = first.zip(last_detection).map(|(a, b)| b - a);
    l.first_detection_from_t_ms = first.map(|f| f - run.t_unix);
    let span = |values: Vec<i64>| {
        let first = values.iter().min()?;
        Some(values.iter().max()? - first)
    };
    let problems = || run.notes.iter().filter(|n| n.kind == "problem");
    l.queued_span_ms = span(problems().filter_map(|n| n.decided).collect());
    l.arrival_span_ms = span(problems().map(|n| n.arrived).collect());
    for v in [
        &mut l.arrival,
        &mut l.notifier,
        &mut l.delivery,
        &mut l.sweep,
        &mut l.resolved,
    ] {
        v.sort_unstable();
    }
    l
}

/// The `p`th percentile of sorted milliseconds, in seconds.
pub(crate) fn pct_s(sorted: &[i64], p: f64) -> String {
    let Some(last) = sorted.len().checked_sub(1) else {
        return "?".to_owned();
    };
    let rank = ((p / 100.0) * last as f64).round() as usize;
    format!("{:.2}", sorted[rank.min(last)] as f64 / 1000.0)
}

pub(crate) fn spread_s(sorted: &[i64]) -> String {
    format!(
        "p50 {} s, p99 {} s, max {} s",
        pct_s(sorted, 50.0),
        pct_s(sorted, 99.0),
        pct_s(sorted, 100.0)
    )
}
