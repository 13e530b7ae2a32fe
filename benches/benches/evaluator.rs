//! The availability evaluator over whole fleets: `evaluate_batch` on the
//! column layout, beside a plain sum that reads the same bytes (the memory
//! bandwidth floor), and the scalar `evaluate` per server for reference.

use std::hint::black_box;
use std::time::Duration;

use carewatch_benches::{EVALUATED_AT, FleetColumns, sum_columns};
use carewatch_core::availability::{
    AvailabilityPolicy, Downtime, DowntimeWindow, NEVER, evaluate, evaluate_batch,
};
use carewatch_core::time::Timestamp;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const FLEET_SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];
/// The scalar path is only a reference: one size is enough.
const SCALAR_FLEET_SIZE: usize = 1_000;
const SEED: u64 = 0x00CA_4E5A_7C11;
/// A ten-minute outage of Carewatch itself that ended a second before the
/// evaluation: every server was last heard before it, so every one takes the
/// exact per-server path instead of the division-free one.
const OUTAGE: Duration = Duration::from_secs(10 * 60);
const SINCE_RESTART: Duration = Duration::from_secs(1);

fn evaluator(c: &mut Criterion) {
    let policy = AvailabilityPolicy::default();
    let no_downtime = Downtime::default();
    let outage_start = EVALUATED_AT.saturating_sub(OUTAGE + SINCE_RESTART);
    let just_restarted = Downtime::new(vec![
        DowntimeWindow::new(outage_start, EVALUATED_AT.saturating_sub(SINCE_RESTART))
            .expect("the outage starts before it ends"),
    ]);

    let mut group = c.benchmark_group("evaluator");
    for servers in FLEET_SIZES {
        let fleet = FleetColumns::generate(servers, SEED, EVALUATED_AT);
        let fleet_before_outage = FleetColumns::generate(servers, SEED, outage_start);
        let mut codes = vec![0u8; servers];
        group.throughput(Throughput::Elements(servers as u64));

        // Steady state, and just after a restart (every server on the exact path).
        for (name, fleet, downtime) in [
            ("evaluate_batch", &fleet, &no_downtime),
            (
                "evaluate_batch_just_restarted",
                &fleet_before_outage,
                &just_restarted,
            ),
        ] {
            group.bench_with_input(BenchmarkId::new(name, servers), fleet, |b, fleet| {
                b.iter(|| {
                    evaluate_batch(
                        black_box(&fleet.last_seen_ms),
                        black_box(&fleet.interval_ms),
                        &policy,
                        downtime,
                        black_box(EVALUATED_AT),
                        black_box(&mut codes),
                    );
                });
            });
        }

        // The floor: reading both columns and nothing else.
        group.bench_with_input(BenchmarkId::new("sum", servers), &fleet, |b, fleet| {
            b.iter(|| {
                sum_columns(
                    black_box(&fleet.last_seen_ms),
                    black_box(&fleet.interval_ms),
                )
            });
        });

        if servers == SCALAR_FLEET_SIZE {
            group.bench_with_input(BenchmarkId::new("evaluate", servers), &fleet, |b, fleet| {
                b.iter(|| evaluate_each(fleet, &policy, &no_downtime));
            });
        }
    }
    group.finish();
}

/// The scalar evaluator, one server at a time, converting the columns into
/// its arguments as a caller would.
fn evaluate_each(fleet: &FleetColumns, policy: &AvailabilityPolicy, downtime: &Downtime) {
    for (&last, &interval) in fleet.last_seen_ms.iter().zip(&fleet.interval_ms) {
        let last = (last != NEVER).then(|| Timestamp::from_millis(last));
        let interval = Duration::from_millis(interval.unsigned_abs());
        black_box(evaluate(
            black_box(last),
            interval,
            policy,
            downtime,
            EVALUATED_AT,
        ));
    }
}

criterion_group!(benches, evaluator);
criterion_main!(benches);
