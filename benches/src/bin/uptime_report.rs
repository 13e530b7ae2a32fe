//! The uptime report benchmark (issue 18): a month's report for 10,000
//! installations of 3 recording servers, target < 2 s.
//!
//! 1. **Population.** [`UptimeFleet`] writes, through the public `Store`
//!    API (as the product writes every row), one reseller's installations
//!    with the month before the report and the report's month of history:
//!    about 2 outages per server per 30 days (3 minutes to 2 hours, a few
//!    of 6 hours), the site link lost once a month at one installation in
//!    20, a full drive reported and cleared once a month per installation,
//!    one server in 100 silent at the end; three short stretches of
//!    Carewatch's own downtime per month; a weekly maintenance window for
//!    all installations and a one-off one for one in ten.
//!    On PostgreSQL the tables are then analysed, as autovacuum keeps a
//!    database in use.
//! 2. **Runs** (`--runs`, default 5): `Carewatch::uptime_report` for the
//!    month (the store's read and the rules), then its CSV and JSON; and
//!    the store's read alone. Min, median and max are printed.
//!
//! ```sh
//! cargo build --release -p carewatch-benches --bin uptime_report
//! target/release/uptime_report                        # SQLite, 10,000 installations
//! target/release/uptime_report --backend postgres     # CAREWATCH_TEST_DATABASE_URL
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use carewatch_benches::{BenchSchema, UptimeFleet, database_url};
use carewatch_core::report::Period;
use carewatch_core::seal::MasterKey;
use carewatch_core::store::Store;
use carewatch_core::time::ManualClock;
use carewatch_core::{Carewatch, Config};
use carewatch_storage_postgres::{PostgresConfig, PostgresStore};
use carewatch_storage_sqlite::SqliteStore;
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Parser)]
#[command(about = "Times a month's uptime report for a reseller's installations")]
struct Args {
    /// Installations of the reseller.
    #[arg(long, default_value_t = 10_000)]
    installations: usize,
    /// Recording servers per installation.
    #[arg(long, default_value_t = 3)]
    servers: usize,
    /// The month reported.
    #[arg(long, default_value = "2026-11")]
    month: String,
    /// Months of history before it (their outages reach into it).
    #[arg(long, default_value_t = 1)]
    months_before: u32,
    /// The store.
    #[arg(long, value_enum, default_value_t = Backend::Sqlite)]
    backend: Backend,
    /// Times the report is made.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Where the SQLite database goes (kept); by default a temporary directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Keep the PostgreSQL schema (its name is printed) to look at it.
    #[arg(long)]
    keep_schema: bool,
    /// Time the report on a schema a `--keep-schema` run seeded (with the
    /// same options), without seeding again; it is kept.
    #[arg(long, value_name = "SCHEMA")]
    reuse_schema: Option<String>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The month `months` before `period`'s.
fn months_before(period: Period, months: u32) -> Result<Period, BoxError> {
    let text = period.start().to_string();
    let year: i32 = text.get(..4).ok_or("year")?.parse()?;
    let month: i32 = text.get(5..7).ok_or("month")?.parse()?;
    let index = year * 12 + (month - 1) - i32::try_from(months)?;
    Ok(Period::month(
        index.div_euclid(12),
        u32::try_from(index.rem_euclid(12) + 1)?,
    )?)
}

fn summary(label: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    if let (Some(min), Some(max)) = (times.first(), times.last()) {
        println!(
            "{label:<34} min {:>8.1} ms   median {:>8.1} ms   max {:>8.1} ms",
            ms(*min),
            ms(times[times.len() / 2]),
            ms(*max)
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let period = Period::parse_month(&args.month)?;
    let start = months_before(period, args.months_before)?.start();
    println!(
        "uptime_report: {} installations x {} servers, history {} to {}, report {}, {:?}; load average {}",
        args.installations,
        args.servers,
        start,
        period.end(),
        args.month,
        args.backend,
        load_average()
    );
    let fleet = UptimeFleet::generate(args.installations, args.servers, start, period.end());

    let mut _dir = None;
    let mut schema = None;
    let store: Arc<dyn Store> = match args.backend {
        Backend::Sqlite => {
            let dir = match &args.data_dir {
                Some(dir) => {
                    std::fs::create_dir_all(dir)?;
                    dir.clone()
                }
                None => {
                    let temp = tempfile::tempdir()?;
                    let path = temp.path().to_owned();
                    _dir = Some(temp);
                    path
                }
            };
            Arc::new(SqliteStore::open(dir.join("carewatch.db")).await?)
        }
        Backend::Postgres if args.reuse_schema.is_some() => {
            let name = args.reuse_schema.as_deref().unwrap_or_default();
            let config = PostgresConfig::from_url(&database_url())?
                .schema(name)?
                .max_connections(8);
            Arc::new(PostgresStore::open(config).await?)
        }
        Backend::Postgres => {
            let created = BenchSchema::create(&database_url()).await?;
            println!("PostgreSQL schema {}", created.name());
            let store = Arc::new(created.store.clone());
            schema = Some(created);
            store
        }
    };

    if args.reuse_schema.is_none() {
        let began = Instant::now();
        let counts = fleet.seed(store.as_ref()).await?;
        println!(
            "seeded in {:.1} s: {} servers, {} signs of life, {} outages, {} status reports",
            began.elapsed().as_secs_f64(),
            fleet.server_count(),
            counts.signs,
            counts.outages,
            counts.reports
        );
    }

    if let Some(schema) = &schema {
        // The statistics autovacuum keeps on a database in use (a freshly
        // loaded one has none yet).
        sqlx_core::query::query("ANALYZE installations, servers, history")
            .execute(schema.store.pool())
            .await?;
    }

    let clock = Arc::new(ManualClock::new(
        period.end().saturating_add(Duration::from_secs(3600)),
    ));
    let carewatch =
        Carewatch::open(store.clone(), clock, Config::new(MasterKey::generate())).await?;

    let (mut reports, mut totals, mut reads) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..args.runs {
        let began = Instant::now();
        let report = carewatch.uptime_report(&fleet.reseller, period).await?;
        let made = began.elapsed();
        let csv = report.to_csv();
        let json = report.to_json();
        let total = began.elapsed();
        let began = Instant::now();
        let histories = store
            .uptime_histories(&fleet.reseller, None, period)
            .await?;
        let read = began.elapsed();
        let entries: usize = histories.iter().map(|h| h.history.len()).sum();
        let outages: u64 = report
            .installations
            .iter()
            .flat_map(|i| &i.servers)
            .map(|s| u64::from(s.uptime.outages))
            .sum();
        let site_outages: u64 = report
            .installations
            .iter()
            .map(|i| u64::from(i.uptime.outages))
            .sum();
        let ongoing = report
            .installations
            .iter()
            .flat_map(|i| &i.servers)
            .filter(|s| s.uptime.ongoing)
            .count();
        if run == 0 {
            println!(
                "report: {} installations, {} history entries read, {} server outages \
                 ({} ongoing at the end), {} installation outages; CSV {} KB, JSON {} KB",
                report.installations.len(),
                entries,
                outages,
                ongoing,
                site_outages,
                csv.len() / 1024,
                json.len() / 1024
            );
            if let Some(first) = report.installations.first() {
                println!(
                    "  e.g. {}: {} (own downtime {:?}, maintenance {:?})",
                    first.slc,
                    first.uptime,
                    first.uptime.excluded_own_downtime,
                    first.uptime.excluded_maintenance
                );
            }
        }
        println!(
            "run {}: uptime_report {:>8.1} ms, with CSV and JSON {:>8.1} ms; store read alone {:>8.1} ms",
            run + 1,
            made.as_secs_f64() * 1000.0,
            total.as_secs_f64() * 1000.0,
            read.as_secs_f64() * 1000.0
        );
        reports.push(made);
        totals.push(total);
        reads.push(read);
    }
    summary("Carewatch::uptime_report", reports);
    summary("  with CSV and JSON", totals);
    summary("Store::uptime_histories alone", reads);
    println!("load average at the end {}", load_average());
    if let Some(schema) = schema
        && !args.keep_schema
    {
        schema.drop_schema().await?;
    }
    Ok(())
}
