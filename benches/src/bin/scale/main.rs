//! The scale run (issue 6): a real `carewatch serve` on a SQLite database of
//! 1,000,000 registered recording servers. Targets: resident memory < 1 GiB,
//! start-up < 5 s, overview p99 < 10 ms.
//!
//! 1. **Population** (once, cached). One reseller's fleet as the storage
//!    benchmark seeds it ([`Fleet`]: 10 recording servers per installation on
//!    average, 5 % of installations not Healthy), written through the public
//!    `Store` API of `SqliteStore` (batched `record_signs_of_life` for the
//!    heartbeats), plus one installation key per installation sealed under
//!    the data directory's `master.key` (the key `carewatch serve` loads), the
//!    operator, the reseller's token and the TLS certificate. The directory
//!    (`<target>/scale-<N>/` by default) is reused while its marker file,
//!    written last, says it is complete; `--fresh` populates it again.
//! 2. **Per run** (`--runs`, default 5):
//!    - *refresh*: a new heartbeat from every server that is not seeded
//!      unavailable, and a liveness mark, so the fleet looks as if it had been
//!      reporting until just now and the restart records no downtime. The
//!      heartbeats are acknowledged with `--interval-seconds` (default an
//!      hour), so no server falls due for an availability check during the
//!      run and the measurement sees what a live fleet's steady state would
//!      (on time servers are never read by the sweep); a warning says if a run
//!      lasted longer. With `--interval-seconds 60 --downtime-seconds 70` the
//!      start waits until the whole fleet is due instead: the overview is then
//!      measured during the restart catch-up sweep, and the time until no
//!      server is due any more is reported;
//!    - *start-up*: spawn `carewatch serve`, until its gRPC health service
//!      answers SERVING for `carewatch.v1.Dashboard` over TLS;
//!    - *memory*: `VmRSS` and `VmHWM` from /proc, after start-up and after
//!      the overview load;
//!    - *overview*: `Dashboard/ListInstallations` over TLS with the reseller's
//!      token, one request at a time: `--requests` first pages without and with
//!      Healthy installations, `--requests` pages following `next_page_token`
//!      (without Healthy: from start to end, again and again; with Healthy:
//!      from the start, as deep as that many pages go), and `--requests / 5`
//!      requests for the last page of the full list (a cursor near its end).
//!      The answers are checked against the fleet: totals, rows per walk;
//!    - *stop*: SIGTERM, and a clean exit.
//!
//! ```sh
//! cargo build --release -p carewatch-cli -p carewatch-benches
//! target/release/scale                      # 1,000,000 servers, 5 runs
//! target/release/scale --servers 100000     # a tenth, to see how cost grows
//! target/release/scale --help
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use carewatch_benches::Fleet;
use carewatch_benches::server::{BoxError, Memory, ServerProcess, carewatch_beside_this_program};
use carewatch_benches::{percentile, thousands};
use carewatch_core::availability::check_interval;
use carewatch_core::seal::key_file::MASTER_KEY_FILE;
use carewatch_grpc::client::{Bearer, connect};
use carewatch_grpc::proto::dashboard_client::DashboardClient;
use clap::Parser;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

mod overview;
mod populate;
mod report;

use overview::{Expected, list, overview_load};
use populate::{prepare, refresh, watch_catch_up};
use report::{mib, ms, report};

type Dashboard = DashboardClient<InterceptedService<Channel, Bearer>>;

/// Recording servers per installation, on average (the fleet mixes sizes).
const SERVERS_PER_INSTALLATION: usize = 10;
/// The database file in the data directory, as `carewatch serve` names it.
const DATABASE: &str = "carewatch.db";
/// Written last by the population: the directory is complete.
const COMPLETE: &str = "populated";
/// The reseller's token, for the overview calls.
const RESELLER_TOKEN: &str = "reseller.token";
/// The operator's token (unused here; kept so the directory can be administered).
const OPERATOR_TOKEN: &str = "operator.token";
/// Files the population writes, removed before populating again.
const POPULATED_FILES: [&str; 9] = [
    COMPLETE,
    DATABASE,
    "carewatch.db-wal",
    "carewatch.db-shm",
    MASTER_KEY_FILE,
    "cert.pem",
    "key.pem",
    RESELLER_TOKEN,
    OPERATOR_TOKEN,
];
/// The operator `carewatch serve` creates on a new database.
const OPERATOR: &str = "admin";
/// `carewatch serve`'s default `--node-id`, whose liveness mark the refresh sets.
const NODE_ID: &str = "carewatch";
/// Key writes in flight during population (SQLite queues them on its writer).
const CONCURRENT_WRITES: usize = 8;
/// The service whose health means "the dashboard can be asked".
const DASHBOARD_SERVICE: &str = "carewatch.v1.Dashboard";

#[derive(Debug, Parser)]
#[command(about = "Measures `carewatch serve` on a SQLite database of a million recording servers")]
struct Args {
    /// Registered recording servers (10 per installation on average).
    #[arg(long, default_value_t = 1_000_000)]
    servers: usize,
    /// The data directory; by default `scale-<servers>` in the target directory
    /// this program was built into.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Populate the data directory again even if it is complete.
    #[arg(long)]
    fresh: bool,
    /// Times to start, measure and stop the server.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Overview requests per kind and run (the last-page kind gets a fifth).
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// Rows per overview page.
    #[arg(long, default_value_t = 50)]
    page_size: u32,
    /// The heartbeat interval the refresh acknowledges to every live server:
    /// none is due for an availability check until this long (plus 2 s of
    /// jitter tolerance) after the refresh.
    #[arg(long, default_value_t = 3600)]
    interval_seconds: u64,
    /// Wait this long between the refresh and the start: longer than the
    /// interval plus 2 s makes the whole fleet due at start (a restart after
    /// downtime), and the overview is measured during the catch-up sweep.
    /// Over 10 s (serve's liveness tolerance) the wait is recorded as own
    /// downtime; shorter, it counts as missed heartbeats.
    #[arg(long, default_value_t = 0)]
    downtime_seconds: u64,
    /// The `carewatch` binary; by default the one beside this program.
    #[arg(long)]
    server: Option<PathBuf>,
}

/// The kinds of overview request measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    First,
    FirstAll,
    Walk,
    WalkAll,
    LastPage,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Self::First => "first page, not Healthy (default)",
            Self::FirstAll => "first page, all",
            Self::Walk => "paging to the end, not Healthy",
            Self::WalkAll => "paging from the start, all",
            Self::LastPage => "last page of all (cursor near the end)",
        }
    }
}

/// What one run measured, besides the overview latencies.
#[derive(Debug)]
struct Run {
    refresh: Duration,
    listening: Duration,
    serving: Duration,
    first_call: Duration,
    after_start: Option<Memory>,
    after_load: Option<Memory>,
    stop: Duration,
    first_p99_ms: f64,
    /// With downtime: from spawning the server until no server was due.
    catch_up: Option<Duration>,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let binary = match &args.server {
        Some(path) => path.clone(),
        None => carewatch_beside_this_program()?,
    };
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .and_then(Path::parent)
            .ok_or("no target directory")?
            .join(format!("scale-{}", args.servers)),
    };
    if args.page_size == 0 || args.requests == 0 || args.runs == 0 {
        return Err("--page-size, --requests and --runs must be at least 1".into());
    }
    let interval = check_interval(Duration::from_secs(args.interval_seconds))?;
    let restart_after_downtime = args.downtime_seconds > 0;
    let fleet = Fleet::generate(args.servers.div_ceil(SERVERS_PER_INSTALLATION));
    let expected = Expected::of(&fleet, args.page_size)?;
    println!(
        "fleet: {} recording servers in {} installations, {} not Healthy ({:.1} %)",
        thousands(fleet.server_count()),
        thousands(fleet.installations.len()),
        thousands(expected.not_healthy() as usize),
        100.0 * f64::from(expected.not_healthy()) / f64::from(expected.installations),
    );

    let (populated_in, populated_now) = prepare(&data_dir, &fleet, args.fresh).await?;
    let database_bytes = std::fs::metadata(data_dir.join(DATABASE))?.len();
    println!(
        "{} {} in {:.1} s; database {:.0} MiB",
        if populated_now {
            "populated"
        } else {
            "reusing (populated earlier)"
        },
        data_dir.display(),
        populated_in.as_secs_f64(),
        database_bytes as f64 / (1024.0 * 1024.0)
    );
    let token = std::fs::read_to_string(data_dir.join(RESELLER_TOKEN))?;
    let bearer = Bearer::new(&token).ok_or("unusable reseller token")?;

    let mut samples: BTreeMap<Kind, Vec<u32>> = BTreeMap::new();
    let mut runs = Vec::new();
    for number in 1..=args.runs {
        let refresh_began = Instant::now();
        let refresh = refresh(&data_dir, &fleet, interval).await?;
        let first_due = refresh_began + interval;
        let catching_up = if restart_after_downtime {
            tokio::time::sleep(Duration::from_secs(args.downtime_seconds)).await;
            Some(watch_catch_up(&data_dir).await?)
        } else {
            None
        };

        let server = ServerProcess::start(&binary, &data_dir, None, false).await?;
        let serving = server.wait_serving(DASHBOARD_SERVICE).await?;
        let after_start = server.memory();
        let channel = connect(&server.url, Some(&server.ca_pem)).await?;
        let mut client = DashboardClient::with_interceptor(channel, bearer.clone());
        let first_call = Instant::now();
        let (page, _) = list(&mut client, false, args.page_size, String::new()).await?;
        let first_call = first_call.elapsed();
        // During a catch-up sweep servers may turn Late, so the fleet's health
        // may change under the measurement: then nothing is checked.
        let check = !restart_after_downtime;
        if check {
            expected.check(page.totals.as_ref())?;
        } else if let Some(t) = &page.totals {
            println!(
                "  totals at the first call: {} Healthy, {} Pending, {} Attention, {} Critical, \
                 {} Offline",
                t.healthy, t.pending, t.attention, t.critical, t.offline
            );
        }
        let mut run_samples = BTreeMap::new();
        overview_load(&mut client, &expected, &args, check, &mut run_samples).await?;
        let after_load = server.memory();
        if !restart_after_downtime && Instant::now() > first_due {
            eprintln!(
                "warning: run {number} ended more than {} s after its refresh: the sweep may have \
                 run during the measurement",
                interval.as_secs()
            );
        }
        let catch_up = match catching_up {
            Some(mut watch) => {
                match tokio::time::timeout(Duration::from_secs(600), &mut watch).await {
                    Ok(joined) => joined.ok().flatten(),
                    Err(_) => {
                        watch.abort();
                        None
                    }
                }
            }
            None => None,
        };
        drop(client);
        let listening = server.started_in;
        let stop = server.stop().await?;

        let first_p99_ms =
            run_samples
                .get_mut(&Kind::First)
                .map_or(f64::NAN, |l: &mut Vec<u32>| {
                    l.sort_unstable();
                    percentile(l, 99.0)
                });
        for (kind, latencies) in run_samples {
            samples.entry(kind).or_default().extend(latencies);
        }
        let run = Run {
            refresh,
            listening,
            serving,
            first_call,
            after_start,
            after_load,
            stop,
            first_p99_ms,
            catch_up,
        };
        println!(
            "run {number}: refresh {:.1} s, listening after {:.0} ms, SERVING after {:.0} ms, \
             first overview {:.1} ms, RSS {} -> {} MiB (peak {} MiB), first-page p99 {:.2} ms, \
             stopped in {:.0} ms",
            run.refresh.as_secs_f64(),
            ms(run.listening),
            ms(run.serving),
            ms(run.first_call),
            mib(run.after_start, |m| m.rss_kib),
            mib(run.after_load, |m| m.rss_kib),
            mib(run.after_load, |m| m.peak_kib),
            run.first_p99_ms,
            ms(run.stop),
        );
        if restart_after_downtime {
            match run.catch_up {
                Some(took) => println!(
                    "  restart catch-up: no server due any more {:.1} s after the spawn",
                    took.as_secs_f64()
                ),
                None => println!("  restart catch-up: not observed to finish"),
            }
        }
        runs.push(run);
    }

    report(
        &args,
        &fleet,
        populated_in,
        populated_now,
        &runs,
        &mut samples,
    );
    Ok(())
}
