//! The storage backends under Carewatch's load, for one reseller with 10,000
//! installations and 100,000 recording servers of which 5 % need attention:
//!
//! - heartbeats through the batched sign-of-life path, in batches of 1 (what
//!   ingest sends today, one message at a time), 100 and 1,000;
//! - status reports applied, one transaction each: a snapshot repeating the
//!   open conditions, and one opening or resolving a condition;
//! - the overview's first page (default query: only installations needing
//!   attention), which a dashboard reads on every refresh.
//!
//! Each backend is seeded once, on its first benchmark, outside the timed
//! loops. SQLite lives in a temporary directory; PostgreSQL (at
//! `CAREWATCH_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`) in a schema of its own, dropped
//! at the end, and is skipped with a message when unreachable.
//! `CAREWATCH_BENCH_INSTALLATIONS` sets another fleet size (at least 1,000).

use std::cell::OnceCell;
use std::time::Instant;

use carewatch_benches::{
    BenchSchema, Fleet, MessageSource, SeededHealth, URL_VAR, camera_unreachable,
    camera_unreachable_and_license_overuse, database_url,
};
use carewatch_core::health::Health;
use carewatch_core::store::{OverviewQuery, Store, WriteOutcome};
use carewatch_storage_sqlite::SqliteStore;
use criterion::{
    BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use tokio::runtime::Runtime;

const INSTALLATIONS_VAR: &str = "CAREWATCH_BENCH_INSTALLATIONS";
const DEFAULT_INSTALLATIONS: usize = 10_000;
/// The seeded health mix repeats every 1,000 installations.
const MIN_INSTALLATIONS: usize = 1_000;
const HEARTBEAT_BATCH_SIZES: [usize; 3] = [1, 100, 1_000];

fn storage(c: &mut Criterion) {
    let runtime = Runtime::new().expect("starts a tokio runtime");
    let fleet = Fleet::generate(installations());

    let dir = tempfile::tempdir().expect("creates a temporary directory");
    let sqlite = runtime
        .block_on(SqliteStore::open(dir.path().join("carewatch.db")))
        .expect("opens the SQLite store");
    bench_backend(c, &runtime, &Backend::new("sqlite", &sqlite, &fleet));

    let url = database_url();
    match runtime.block_on(BenchSchema::create(&url)) {
        Ok(schema) => {
            bench_backend(
                c,
                &runtime,
                &Backend::new("postgres", &schema.store, &fleet),
            );
            let name = schema.name().to_owned();
            if let Err(e) = runtime.block_on(schema.drop_schema()) {
                eprintln!("could not drop benchmark schema {name} ({e}); the next run drops it");
            }
        }
        Err(e) => eprintln!(
            "PostgreSQL unreachable at {url} ({e}): skipping the PostgreSQL storage benchmarks. \
             Start it, or point {URL_VAR} at a server."
        ),
    }
}

fn installations() -> usize {
    let Ok(text) = std::env::var(INSTALLATIONS_VAR) else {
        return DEFAULT_INSTALLATIONS;
    };
    let requested: usize = text
        .parse()
        .unwrap_or_else(|_| panic!("{INSTALLATIONS_VAR}={text:?} is not a number"));
    requested.max(MIN_INSTALLATIONS)
}

/// A store and the fleet it holds, seeded on first use, so a backend whose
/// benchmarks a filter leaves out costs nothing.
struct Backend<'a> {
    name: &'static str,
    store: &'a dyn Store,
    fleet: &'a Fleet,
    seeded: OnceCell<()>,
}

impl<'a> Backend<'a> {
    fn new(name: &'static str, store: &'a dyn Store, fleet: &'a Fleet) -> Self {
        Self {
            name,
            store,
            fleet,
            seeded: OnceCell::new(),
        }
    }

    fn seeded_store(&self, runtime: &Runtime) -> &'a dyn Store {
        self.seeded.get_or_init(|| runtime.block_on(self.seed()));
        self.store
    }

    async fn seed(&self) {
        let fleet = self.fleet;
        eprintln!(
            "seeding {}: {} installations, {} recording servers",
            self.name,
            fleet.installations.len(),
            fleet.server_count()
        );
        let started = Instant::now();
        fleet
            .seed(self.store)
            .await
            .unwrap_or_else(|e| panic!("seeding {} failed: {e}", self.name));
        let totals = self
            .store
            .overview(&fleet.reseller, &OverviewQuery::default())
            .await
            .expect("reads the seeded overview")
            .totals;
        let expected_healthy = fleet.installations_with(SeededHealth::Healthy).count();
        assert_eq!(
            totals.get(Health::Healthy) as usize,
            expected_healthy,
            "the seeded fleet has the planned share of healthy installations"
        );
        let per_health = Health::ALL.map(|h| format!("{} {}", h.name(), totals.get(h)));
        eprintln!(
            "seeded {} in {:.1?}: {}",
            self.name,
            started.elapsed(),
            per_health.join(", ")
        );
    }
}

fn bench_backend(c: &mut Criterion, runtime: &Runtime, backend: &Backend<'_>) {
    let fleet = backend.fleet;
    let mut messages = MessageSource::after_seeding();
    let mut group = c.benchmark_group(format!("storage/{}", backend.name));
    // Every iteration is at least one committed transaction: flat sampling
    // with fewer samples keeps a run to minutes.
    group.sampling_mode(SamplingMode::Flat).sample_size(20);

    // First, so it reads the fleet exactly as seeded.
    let query = OverviewQuery::default();
    group.throughput(Throughput::Elements(1));
    group.bench_function("overview_first_page", |b| {
        let store = backend.seeded_store(runtime);
        b.to_async(runtime).iter(|| async {
            store
                .overview(&fleet.reseller, &query)
                .await
                .expect("reads the overview")
        });
    });

    // Heartbeats from healthy installations only: they change no health, so
    // the data keep the shape the overview was measured on.
    let healthy = fleet.servers_with(SeededHealth::Healthy);
    let mut next_healthy = healthy.iter().cycle();
    for batch_size in HEARTBEAT_BATCH_SIZES {
        group.throughput(Throughput::Elements(batch_size as u64));
        group.bench_function(BenchmarkId::new("heartbeats", batch_size), |b| {
            let store = backend.seeded_store(runtime);
            b.to_async(runtime).iter_batched(
                || {
                    (&mut next_healthy)
                        .take(batch_size)
                        .map(|&(slc, server)| messages.heartbeat(slc, server))
                        .collect::<Vec<_>>()
                },
                |batch| async move {
                    let outcomes = store
                        .record_signs_of_life(&batch)
                        .await
                        .expect("records heartbeats");
                    assert_all_applied(&outcomes);
                },
                BatchSize::SmallInput,
            );
        });
    }

    // Status reports from the Attention installations' reporting servers;
    // both snapshots are warnings only, so those stay Attention.
    let reporters: Vec<_> = fleet
        .installations_with(SeededHealth::Attention)
        .map(|installation| (&installation.slc, &installation.servers[0]))
        .collect();
    group.throughput(Throughput::Elements(1));
    let mut next_reporter = reporters.iter().cycle();
    group.bench_function("status_report_unchanged", |b| {
        let store = backend.seeded_store(runtime);
        let unchanged = camera_unreachable();
        b.to_async(runtime).iter_batched(
            || {
                let &(slc, server) = next_reporter.next().expect("an endless cycle");
                messages.status_report(slc, server, unchanged.clone())
            },
            |report| async move {
                let outcome = store
                    .apply_status_report(&report)
                    .await
                    .expect("applies a status report");
                assert_all_applied(&[outcome]);
            },
            BatchSize::SmallInput,
        );
    });
    // Alternate laps over the reporters open, then resolve, a second condition:
    // every report writes a condition, a history event and the summary.
    let mut reports_sent = 0;
    group.bench_function("status_report_changed", |b| {
        let store = backend.seeded_store(runtime);
        let laps = [
            camera_unreachable_and_license_overuse(),
            camera_unreachable(),
        ];
        b.to_async(runtime).iter_batched(
            || {
                let (lap, position) = (
                    reports_sent / reporters.len(),
                    reports_sent % reporters.len(),
                );
                reports_sent += 1;
                let (slc, server) = reporters[position];
                messages.status_report(slc, server, laps[lap % laps.len()].clone())
            },
            |report| async move {
                let outcome = store
                    .apply_status_report(&report)
                    .await
                    .expect("applies a status report");
                assert_all_applied(&[outcome]);
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

/// A duplicate or stale outcome would mean the benchmark timed a no-op.
fn assert_all_applied(outcomes: &[WriteOutcome]) {
    assert!(
        outcomes
            .iter()
            .all(|outcome| matches!(outcome, WriteOutcome::Applied(_))),
        "every benchmark message is newer than the last one applied"
    );
}

criterion_group!(benches, storage);
criterion_main!(benches);
