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

use carewatch_benches::server::{BoxError, Memory, ServerProcess, carewatch_beside_this_program};
use carewatch_benches::{Fleet, SeededHealth};
use carewatch_benches::{percentile, thousands};
use carewatch_cli::tls::{TlsIdentity, write_private};
use carewatch_core::auth::{self, Principal};
use carewatch_core::availability::check_interval;
use carewatch_core::health::Health;
use carewatch_core::ids::ResellerId;
use carewatch_core::liveness::{LivenessMark, MarkReason};
use carewatch_core::seal::key_file::{self, MASTER_KEY_FILE};
use carewatch_core::seal::{InstallationKey, KeyId};
use carewatch_core::store::{PageCursor, Store};
use carewatch_core::time::{Clock, SystemClock};
use carewatch_grpc::client::{Bearer, connect};
use carewatch_grpc::proto::dashboard_client::DashboardClient;
use carewatch_grpc::proto::{HealthTotals, ListInstallationsRequest, ListInstallationsResponse};
use carewatch_storage_sqlite::SqliteStore;
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

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

/// What the fleet must show its reseller.
#[derive(Debug)]
struct Expected {
    installations: u32,
    healthy: u32,
    /// A cursor whose next page is the last of the full list.
    last_page: String,
}

impl Expected {
    fn of(fleet: &Fleet, page_size: u32) -> Result<Self, BoxError> {
        let healthy: Vec<_> = fleet.installations_with(SeededHealth::Healthy).collect();
        let before_last_page = healthy
            .len()
            .checked_sub(page_size as usize + 1)
            .ok_or("too few installations for a last-page cursor")?;
        Ok(Self {
            installations: u32::try_from(fleet.installations.len())?,
            healthy: u32::try_from(healthy.len())?,
            last_page: PageCursor::Health {
                health: Health::Healthy,
                slc: healthy[before_last_page].slc.clone(),
            }
            .to_token(),
        })
    }

    fn not_healthy(&self) -> u32 {
        self.installations - self.healthy
    }

    fn check(&self, totals: Option<&HealthTotals>) -> Result<(), BoxError> {
        let t = totals.ok_or("no totals in the overview")?;
        let total = t.healthy + t.pending + t.attention + t.critical + t.offline;
        if total != self.installations || t.healthy != self.healthy {
            return Err(format!(
                "the overview shows {total} installations, {} Healthy; the fleet has {}, {} Healthy \
                 (was the data directory changed? try --fresh)",
                t.healthy, self.installations, self.healthy
            )
            .into());
        }
        Ok(())
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

/// Uses the data directory if complete, populates it otherwise. Returns how
/// long population took (now or when it was done) and whether it was now.
async fn prepare(dir: &Path, fleet: &Fleet, fresh: bool) -> Result<(Duration, bool), BoxError> {
    if !fresh && let Ok(marker) = std::fs::read_to_string(dir.join(COMPLETE)) {
        let field = |name: &str| {
            marker
                .lines()
                .filter_map(|l| l.split_once(' '))
                .find(|(k, _)| *k == name)
                .and_then(|(_, v)| v.trim().parse::<u64>().ok())
        };
        if field("servers") != Some(fleet.server_count() as u64)
            || field("installations") != Some(fleet.installations.len() as u64)
        {
            return Err(format!(
                "{} holds another fleet; use --fresh or another --data-dir",
                dir.display()
            )
            .into());
        }
        let took = field("populated_in_ms").ok_or("damaged marker file")?;
        return Ok((Duration::from_millis(took), false));
    }
    for name in POPULATED_FILES {
        match std::fs::remove_file(dir.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    std::fs::create_dir_all(dir)?;
    let took = populate(dir, fleet).await?;
    std::fs::write(
        dir.join(COMPLETE),
        format!(
            "servers {}\ninstallations {}\npopulated_in_ms {}\n",
            fleet.server_count(),
            fleet.installations.len(),
            took.as_millis()
        ),
    )?;
    Ok((took, true))
}

/// Writes the fleet into a new data directory through the public store API,
/// with everything `carewatch serve` would otherwise create on first start.
async fn populate(dir: &Path, fleet: &Fleet) -> Result<Duration, BoxError> {
    let began = Instant::now();
    let (master_key, _) = key_file::load_or_create(&dir.join(MASTER_KEY_FILE))?;
    TlsIdentity::self_signed_in(dir, &[])?;
    let store = SqliteStore::open(dir.join(DATABASE)).await?;
    // The operator serve would create on first start, so every start is alike.
    let operator = ResellerId::new(OPERATOR)?;
    let operator_token = auth::issue_token(&Principal::Operator(operator.clone()));
    store
        .set_operator_token(&operator, &operator_token.hash)
        .await?;
    write_private(&dir.join(OPERATOR_TOKEN), &operator_token.token)?;

    let reseller_token = auth::issue_token(&Principal::Reseller(fleet.reseller.clone()));
    let at = SystemClock.now();
    fleet.seed_at(&store, &reseller_token.hash, at).await?;
    println!(
        "seeded {} installations, {} servers in {:.1} s",
        thousands(fleet.installations.len()),
        thousands(fleet.server_count()),
        began.elapsed().as_secs_f64()
    );

    let keys_began = Instant::now();
    let store_ref = &store;
    let master_key = &master_key;
    futures::stream::iter(&fleet.installations)
        .map(Ok)
        .try_for_each_concurrent(CONCURRENT_WRITES, |installation| async move {
            let key = InstallationKey::generate(KeyId::new(1));
            let wrapped = master_key.wrap(&installation.slc, &key);
            store_ref
                .add_installation_key(&installation.slc, &wrapped, at)
                .await
        })
        .await?;
    println!(
        "issued {} installation keys in {:.1} s",
        thousands(fleet.installations.len()),
        keys_began.elapsed().as_secs_f64()
    );
    write_private(&dir.join(RESELLER_TOKEN), &reseller_token.token)?;
    drop(store);
    Ok(began.elapsed())
}

/// A new heartbeat from every live server and a liveness mark, now.
async fn refresh(dir: &Path, fleet: &Fleet, interval: Duration) -> Result<Duration, BoxError> {
    let began = Instant::now();
    let store = SqliteStore::open(dir.join(DATABASE)).await?;
    // Later than every earlier refresh's, and than seeding's 1 and 2.
    fleet.refresh(&store, interval).await?;
    // The server that starts next must find the fleet received until now.
    store
        .mark_alive(&LivenessMark {
            node: NODE_ID.to_owned(),
            at: SystemClock.now(),
            reason: MarkReason::Running,
            tolerance: Duration::from_secs(3),
        })
        .await?;
    drop(store);
    Ok(began.elapsed())
}

/// Polls the database (read only, through the store API) until no server is
/// due for an availability check; yields the time from now until then, or
/// `None` if the store failed.
async fn watch_catch_up(dir: &Path) -> Result<tokio::task::JoinHandle<Option<Duration>>, BoxError> {
    let store = SqliteStore::open(dir.join(DATABASE)).await?;
    let began = Instant::now();
    Ok(tokio::spawn(async move {
        loop {
            match store.due_servers(SystemClock.now(), 1).await {
                Ok(due) if due.is_empty() => return Some(began.elapsed()),
                Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(_) => return None,
            }
        }
    }))
}

/// One `ListInstallations` call; its reply and latency in microseconds.
async fn list(
    client: &mut Dashboard,
    include_healthy: bool,
    page_size: u32,
    page_token: String,
) -> Result<(ListInstallationsResponse, u32), BoxError> {
    let request = ListInstallationsRequest {
        include_healthy,
        page_size,
        page_token,
        ..ListInstallationsRequest::default()
    };
    let began = Instant::now();
    let reply = client.list_installations(request).await?.into_inner();
    let took = u32::try_from(began.elapsed().as_micros()).unwrap_or(u32::MAX);
    Ok((reply, took))
}

/// The overview requests of one run, one at a time, checked against the fleet.
async fn overview_load(
    client: &mut Dashboard,
    expected: &Expected,
    args: &Args,
    check: bool,
    samples: &mut BTreeMap<Kind, Vec<u32>>,
) -> Result<(), BoxError> {
    let n = args.requests;
    for (kind, include_healthy) in [(Kind::First, false), (Kind::FirstAll, true)] {
        let latencies = samples.entry(kind).or_default();
        for _ in 0..n {
            let (page, took) = list(client, include_healthy, args.page_size, String::new()).await?;
            if page.installations.is_empty() {
                return Err("an empty first page".into());
            }
            latencies.push(took);
        }
    }

    for (kind, include_healthy) in [(Kind::Walk, false), (Kind::WalkAll, true)] {
        let latencies = samples.entry(kind).or_default();
        let mut token = String::new();
        let mut rows = 0usize;
        for _ in 0..n {
            let (page, took) = list(client, include_healthy, args.page_size, token).await?;
            latencies.push(took);
            rows += page.installations.len();
            token = page.next_page_token;
            if token.is_empty() {
                let listed = if include_healthy {
                    expected.installations
                } else {
                    expected.not_healthy()
                };
                if check && rows != listed as usize {
                    return Err(format!("paging listed {rows} installations, not {listed}").into());
                }
                rows = 0;
            }
        }
    }

    let latencies = samples.entry(Kind::LastPage).or_default();
    for _ in 0..n.div_ceil(5) {
        let (page, took) = list(client, true, args.page_size, expected.last_page.clone()).await?;
        if check
            && (page.installations.len() != args.page_size as usize
                || !page.next_page_token.is_empty())
        {
            return Err("the last page is not a full, final page".into());
        }
        latencies.push(took);
    }
    Ok(())
}

fn report(
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(memory: Option<Memory>, field: impl Fn(&Memory) -> u64) -> String {
    memory.map_or_else(|| "?".to_owned(), |m| (field(&m) / 1024).to_string())
}
