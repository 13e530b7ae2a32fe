//! The summary: a Markdown table of the runs' figures, and the overview
//! latencies of all runs together.

use super::*;

pub(crate) fn report(
    args: &Args,
    fleet: &Fleet,
    populated_in: Duration,
    populated_now: bool,
    runs: &[Run],
    samples: &mut BTreeMap<Kind, Vec<u32>>,
) {
    let command: Vec<String> = std::env::args().collect();
    println!();
    println!("command: {}", command.join(" "));
    println!(
        "{} recording servers, {} installations, {} run(s){}",
        thousands(fleet.server_count()),
        thousands(fleet.installations.len()),
        runs.len(),
        if args.downtime_seconds > 0 {
            format!(
                ", heartbeat interval {} s, started {} s after the refresh (restart catch-up sweep)",
                args.interval_seconds, args.downtime_seconds
            )
        } else {
            format!(", heartbeat interval {} s", args.interval_seconds)
        }
    );
    println!();
    println!("| measure | median | min | max | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| population (once{}) | {:.1} s | | | |",
        if populated_now { "" } else { ", cached" },
        populated_in.as_secs_f64()
    );
    let row = |name: &str, unit: &str, mut values: Vec<f64>, target: &str| {
        values.sort_by(f64::total_cmp);
        if values.is_empty() {
            return;
        }
        let median = values[values.len() / 2];
        let (min, max) = (values[0], values[values.len() - 1]);
        println!("| {name} | {median:.1} {unit} | {min:.1} {unit} | {max:.1} {unit} | {target} |");
    };
    row(
        "refresh (1 heartbeat per live server)",
        "s",
        runs.iter().map(|r| r.refresh.as_secs_f64()).collect(),
        "",
    );
    row(
        "start-up: spawn → health SERVING",
        "ms",
        runs.iter().map(|r| ms(r.serving)).collect(),
        "< 5,000 ms",
    );
    row(
        "spawn → \"listening\" logged",
        "ms",
        runs.iter().map(|r| ms(r.listening)).collect(),
        "",
    );
    row(
        "first overview call after start",
        "ms",
        runs.iter().map(|r| ms(r.first_call)).collect(),
        "",
    );
    // One memory reading per run, in MiB.
    let mib = |reading: MemoryReading| -> Vec<f64> {
        runs.iter()
            .filter_map(reading)
            .map(|kib| kib as f64 / 1024.0)
            .collect()
    };
    let readings: [(&str, MemoryReading); 3] = [
        ("RSS after start-up", |r| r.after_start.map(|m| m.rss_kib)),
        ("RSS after the overview load", |r| {
            r.after_load.map(|m| m.rss_kib)
        }),
        ("peak RSS (VmHWM)", |r| r.after_load.map(|m| m.peak_kib)),
    ];
    for (name, reading) in readings {
        row(name, "MiB", mib(reading), "< 1,024 MiB");
    }
    row(
        "first-page p99, per run",
        "ms",
        runs.iter().map(|r| r.first_p99_ms).collect(),
        "< 10 ms",
    );
    row(
        "restart catch-up: spawn → no server due",
        "s",
        runs.iter()
            .filter_map(|r| r.catch_up)
            .map(|d| d.as_secs_f64())
            .collect(),
        "",
    );
    row(
        "stop: SIGTERM → clean exit",
        "ms",
        runs.iter().map(|r| ms(r.stop)).collect(),
        "",
    );
    println!();
    println!(
        "overview over gRPC + TLS, {} rows per page, all runs together:",
        args.page_size
    );
    println!();
    println!("| request | n | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    for (kind, latencies) in samples.iter_mut() {
        latencies.sort_unstable();
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
            kind.describe(),
            thousands(latencies.len()),
            percentile(latencies, 50.0),
            percentile(latencies, 90.0),
            percentile(latencies, 99.0),
            percentile(latencies, 100.0),
        );
    }
}

/// Picks one memory figure (KiB) out of a run, if it was read.
type MemoryReading = fn(&Run) -> Option<u64>;

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) fn mib(memory: Option<Memory>, field: impl Fn(&Memory) -> u64) -> String {
    memory.map_or_else(|| "?".to_owned(), |m| (field(&m) / 1024).to_string())
}
