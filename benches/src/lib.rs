//! # carewatch-benches
//!
//! Setup shared by Carewatch's Criterion benchmarks (`benches/benches/`) and
//! its end-to-end binaries (`src/bin/`):
//!
//! - [`FleetColumns`]: a fleet laid out as the availability evaluator's
//!   columns;
//! - [`Fleet`]: one reseller's installations and recording servers, seeded
//!   into a [`carewatch_core::store::Store`] with batched writes, and
//!   [`MessageSource`] for the new messages the storage benchmarks write;
//! - [`BenchSchema`]: a PostgreSQL store in a schema of its own per run;
//! - [`interleaved::median_ns`]: operations timed in turn, for ratios that
//!   the machine's drift would otherwise swamp;
//! - [`server::ServerProcess`]: a real `carewatch serve` child process, for
//!   the end-to-end binaries `loadgen`, `scale` and `webload`;
//! - [`ingest::Workers`]: simulated recording servers sending heartbeats
//!   as `loadgen` does, and [`web`]: an HTTPS client of the web page with
//!   live pages (server-sent events), for `webload`;
//! - [`notify`]: a `carewatch serve` with extra flags, paced and flooding
//!   fleets of recording servers and a CPU sampler, for `notifyload`;
//! - [`UptimeFleet`]: installations with two months of outages, own
//!   downtime and maintenance windows, for the `uptime_report` benchmark.
//!
//! Everything is generated from fixed seeds, so every run measures the same
//! inputs.

mod columns;
pub mod costs;
mod fleet;
pub mod ingest;
pub mod interleaved;
pub mod notify;
mod postgres;
mod rng;
pub mod server;
mod uptime;
pub mod web;

pub use columns::{EVALUATED_AT, FleetColumns, sum_columns};
pub use fleet::{
    Fleet, MessageSource, SeededHealth, SeededInstallation, camera_unreachable,
    camera_unreachable_and_license_overuse,
};
pub use postgres::{BenchSchema, DEFAULT_URL, URL_VAR, database_url};
pub use uptime::{SeedCounts, UptimeFleet, UptimeInstallation};

/// `n` with a comma between thousands: 1,000,000.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The `p`th percentile (0 to 100) of latencies in microseconds, sorted
/// ascending, in milliseconds; NaN if there are none.
pub fn percentile(sorted_micros: &[u32], p: f64) -> f64 {
    let Some(last) = sorted_micros.len().checked_sub(1) else {
        return f64::NAN;
    };
    let rank = ((p / 100.0) * last as f64).round() as usize;
    f64::from(sorted_micros[rank.min(last)]) / 1000.0
}

#[cfg(test)]
mod thousands_tests {
    use super::thousands;

    #[test]
    fn thousands_are_separated_by_commas() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(994_000), "994,000");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }
}
