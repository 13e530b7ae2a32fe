//! `evaluate_batch` against the memory floor (a plain sum over the same two
//! columns), measured interleaved: the ratio the evaluator target is about,
//! without this machine's drift between Criterion's separate measurements
//! (see [`carewatch_benches::interleaved`]). The same fleets as the
//! `evaluator` Criterion group.
//!
//! ```sh
//! cargo run --release -p carewatch-benches --bin evaluator_ratio
//! ```

use std::hint::black_box;

use carewatch_benches::interleaved::median_ns;
use carewatch_benches::{EVALUATED_AT, FleetColumns, sum_columns};
use carewatch_core::availability::{AvailabilityPolicy, Downtime, evaluate_batch};

const SEED: u64 = 0x00CA_4E5A_7C11;
/// Fleet size and rounds: each block is about the same number of servers.
const RUNS: [(usize, u32); 3] = [(1_000, 2_000), (100_000, 20), (1_000_000, 2)];
const ROUNDS: usize = 200;

fn main() {
    let policy = AvailabilityPolicy::default();
    let downtime = Downtime::default();
    for (servers, calls_per_block) in RUNS {
        let fleet = FleetColumns::generate(servers, SEED, EVALUATED_AT);
        let mut codes = vec![0u8; servers];
        let [evaluate_ns, sum_ns] = median_ns(
            ROUNDS,
            calls_per_block,
            [
                &mut || {
                    evaluate_batch(
                        black_box(&fleet.last_seen_ms),
                        black_box(&fleet.interval_ms),
                        &policy,
                        &downtime,
                        black_box(EVALUATED_AT),
                        black_box(&mut codes),
                    );
                },
                &mut || {
                    black_box(sum_columns(
                        black_box(&fleet.last_seen_ms),
                        black_box(&fleet.interval_ms),
                    ));
                },
            ],
        );
        println!(
            "{servers:>9} servers: evaluate_batch {:>9.2} µs, sum {:>9.2} µs: {:.0}% of the floor's throughput",
            evaluate_ns / 1000.0,
            sum_ns / 1000.0,
            sum_ns / evaluate_ns * 100.0
        );
    }
}
