//! Figures per pair and for the whole benchmark.

use super::*;
use crate::ingest_runs::IngestRun;
use crate::probes::Latencies;

/// How a row of the summary sums its pairs up.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Summary {
    Median,
    Max,
}

/// One pair's figures.
pub(crate) struct Pair {
    pub(crate) a: IngestRun,
    pub(crate) b: IngestRun,
    pub(crate) opened_in: Duration,
    pub(crate) before_open: Option<Memory>,
    pub(crate) after_probes: Option<Memory>,
    pub(crate) after_close: Option<Memory>,
    /// Probe deliveries, µs.
    pub(crate) deliveries: Vec<u32>,
    /// Server CPU (ms per second) with no ingest, without pages and with them.
    pub(crate) idle_a: Option<f64>,
    pub(crate) idle_b: Option<f64>,
}

impl Pair {
    /// RSS the open pages added (after the probes, against before opening), MiB.
    pub(crate) fn pages_added_mib(&self) -> Option<f64> {
        Some(kib_diff_mib(
            self.after_probes?.rss_kib,
            self.before_open?.rss_kib,
        ))
    }

    /// RSS after the run with pages against after the run without, MiB.
    pub(crate) fn under_load_added_mib(&self) -> Option<f64> {
        Some(kib_diff_mib(
            self.b.rss_after?.rss_kib,
            self.a.rss_after?.rss_kib,
        ))
    }

    /// Server CPU the open pages cost, ms per second (idle B − idle A).
    pub(crate) fn pages_cpu(&self) -> Option<f64> {
        Some(self.idle_b? - self.idle_a?)
    }

    /// That cost against the server CPU ingest used per second in A.
    pub(crate) fn pages_cpu_share(&self) -> Option<f64> {
        let ingest_ms_per_s = self.a.server_cpu_us? * self.a.heartbeats_per_s / 1000.0;
        Some(self.pages_cpu()? / ingest_ms_per_s)
    }

    pub(crate) fn ratio(&self) -> f64 {
        self.b.heartbeats_per_s / self.a.heartbeats_per_s
    }
}

pub(crate) fn kib_diff_mib(after: u64, before: u64) -> f64 {
    (after as f64 - before as f64) / 1024.0
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn report(
    args: &Args,
    protocol: Protocol,
    seeded: &Seeded,
    after_start: Option<Memory>,
    at_end: Option<Memory>,
    quiet: &Latencies,
    with_pages: Option<&[(&'static str, Vec<u32>)]>,
    pairs: &mut [Pair],
    changes: u64,
) {
    let command: Vec<String> = std::env::args().collect();
    println!();
    println!("command: {}", command.join(" "));
    println!(
        "{} installations ({} not Healthy), {} recording servers; {} live pages over {} ({} \
         users); ingest {} mode, {} s measured per run, {} pairs (A without pages, B with); \
         {} background health changes/s ({} in all); server RSS after start {} MiB, peak {} MiB",
        thousands(seeded.expected.total() as usize),
        seeded.expected.total() - seeded.expected.healthy,
        thousands(seeded.fleet.server_count()),
        thousands(args.pages),
        protocol.name(),
        args.users,
        match args.mode {
            Mode::Unary => "unary",
            Mode::Stream => "stream",
        },
        args.seconds,
        pairs.len(),
        args.changes_per_second,
        changes,
        mib(after_start),
        at_end.map_or_else(|| "?".to_owned(), |m| (m.peak_kib / 1024).to_string()),
    );
    println!();
    println!(
        "| request ({} per kind, one at a time) | p50 ms | p90 ms | p99 ms | max ms | p99 with \
         pages open | target |",
        args.requests
    );
    println!("|---|---|---|---|---|---|---|");
    for (n, (name, latencies)) in quiet.iter().enumerate() {
        let open = with_pages.and_then(|w| w.get(n)).map_or_else(
            || "?".to_owned(),
            |(_, l)| format!("{:.2}", percentile(l, 99.0)),
        );
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {open} | p99 < 20 ms |",
            percentile(latencies, 50.0),
            percentile(latencies, 90.0),
            percentile(latencies, 99.0),
            percentile(latencies, 100.0),
        );
    }
    println!();
    println!("| measure | summary | per pair | target |");
    println!("|---|---|---|---|");
    // Memory rows show the largest value: later pairs reuse what the
    // allocator kept from earlier pages, so the first opening is the honest
    // one and the largest.
    let row = |name: &str,
               unit: &str,
               summary: Summary,
               values: Vec<Option<f64>>,
               digits: usize,
               target: &str| {
        let mut known: Vec<f64> = values.iter().flatten().copied().collect();
        known.sort_by(f64::total_cmp);
        let (label, value) = match summary {
            Summary::Median => ("median", known.get(known.len() / 2)),
            Summary::Max => ("max", known.last()),
        };
        let value = value.map_or_else(|| "?".to_owned(), |m| format!("{label} {m:.digits$}{unit}"));
        let each: Vec<String> = values
            .iter()
            .map(|v| v.map_or_else(|| "?".to_owned(), |v| format!("{v:.digits$}")))
            .collect();
        println!("| {name} | {value} | {} | {target} |", each.join(", "));
    };
    let pages = thousands(args.pages);
    row(
        &format!("RSS added by opening {pages} live pages (after two probe events)"),
        " MiB",
        Summary::Max,
        pairs.iter().map(Pair::pages_added_mib).collect(),
        1,
        "< 100 MiB",
    );
    row(
        "RSS after the ingest run, B − A",
        " MiB",
        Summary::Max,
        pairs.iter().map(Pair::under_load_added_mib).collect(),
        1,
        "",
    );
    row(
        "RSS after closing the pages",
        " MiB",
        Summary::Max,
        pairs
            .iter()
            .map(|p| p.after_close.map(|m| m.rss_kib as f64 / 1024.0))
            .collect(),
        0,
        "",
    );
    row(
        &format!("opening {pages} live pages"),
        " s",
        Summary::Median,
        pairs
            .iter()
            .map(|p| Some(p.opened_in.as_secs_f64()))
            .collect(),
        1,
        "",
    );
    row(
        "ingest without pages (A)",
        "/s",
        Summary::Median,
        pairs.iter().map(|p| Some(p.a.heartbeats_per_s)).collect(),
        0,
        "",
    );
    row(
        "ingest with pages (B)",
        "/s",
        Summary::Median,
        pairs.iter().map(|p| Some(p.b.heartbeats_per_s)).collect(),
        0,
        "",
    );
    row(
        "heartbeats/s, B / A",
        "",
        Summary::Median,
        pairs.iter().map(|p| Some(p.ratio())).collect(),
        3,
        "≥ 0.90",
    );
    row(
        "server CPU per heartbeat, A",
        " µs",
        Summary::Median,
        pairs.iter().map(|p| p.a.server_cpu_us).collect(),
        1,
        "",
    );
    row(
        "server CPU per heartbeat, B",
        " µs",
        Summary::Median,
        pairs.iter().map(|p| p.b.server_cpu_us).collect(),
        1,
        "",
    );
    row(
        "server CPU per heartbeat, B / A",
        "",
        Summary::Median,
        pairs
            .iter()
            .map(|p| Some(p.b.server_cpu_us? / p.a.server_cpu_us?))
            .collect(),
        3,
        "",
    );
    row(
        "server CPU between ingest runs, no page open",
        " ms/s",
        Summary::Median,
        pairs.iter().map(|p| p.idle_a).collect(),
        1,
        "",
    );
    row(
        "server CPU between ingest runs, pages open",
        " ms/s",
        Summary::Median,
        pairs.iter().map(|p| p.idle_b).collect(),
        1,
        "",
    );
    row(
        "server CPU the open pages cost, against ingest's in A",
        "",
        Summary::Median,
        pairs.iter().map(Pair::pages_cpu_share).collect(),
        3,
        "",
    );
    row(
        "generator CPU per heartbeat, A",
        " µs",
        Summary::Median,
        pairs.iter().map(|p| p.a.generator_cpu_us).collect(),
        1,
        "",
    );
    row(
        "generator CPU per heartbeat, B (reads the pages too)",
        " µs",
        Summary::Median,
        pairs.iter().map(|p| p.b.generator_cpu_us).collect(),
        1,
        "",
    );
    row(
        "heartbeat p99, A",
        " ms",
        Summary::Median,
        pairs.iter().map(|p| Some(p.a.p99_ms)).collect(),
        2,
        "",
    );
    row(
        "heartbeat p99, B",
        " ms",
        Summary::Median,
        pairs.iter().map(|p| Some(p.b.p99_ms)).collect(),
        2,
        "",
    );
    row(
        "events each page received during B (fewest)",
        "",
        Summary::Median,
        pairs
            .iter()
            .map(|p| p.b.page_events.map(|(min, _)| min as f64))
            .collect(),
        0,
        "",
    );
    let mut deliveries: Vec<u32> = pairs.iter().flat_map(|p| p.deliveries.clone()).collect();
    deliveries.sort_unstable();
    println!(
        "| probe status report → row event on every page ({} deliveries) | p50 {:.1} ms | p99 \
         {:.1} ms, max {:.1} ms | within 1 s |",
        deliveries.len(),
        percentile(&deliveries, 50.0),
        percentile(&deliveries, 99.0),
        percentile(&deliveries, 100.0),
    );
    let errors: u64 = pairs.iter().map(|p| p.a.errors + p.b.errors).sum();
    let gaps: Vec<String> = pairs
        .iter()
        .flat_map(|p| [p.a.gap_s, p.b.gap_s])
        .map(|g| format!("{g:.0}"))
        .collect();
    println!();
    println!(
        "ingest errors: {errors}; seconds between ingest runs: {}",
        gaps.join(", ")
    );
}

pub(crate) fn print_latencies(latencies: &Latencies) {
    for (name, l) in latencies {
        println!(
            "  {name}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            percentile(l, 50.0),
            percentile(l, 99.0),
            percentile(l, 100.0)
        );
    }
}

pub(crate) fn percentile_ms(values: &mut [u32], p: f64) -> f64 {
    values.sort_unstable();
    percentile(values, p)
}

pub(crate) fn opt1(value: Option<f64>) -> String {
    value.map_or_else(|| "?".to_owned(), |v| format!("{v:.1}"))
}

pub(crate) fn mib(memory: Option<Memory>) -> String {
    memory.map_or_else(|| "?".to_owned(), |m| (m.rss_kib / 1024).to_string())
}
