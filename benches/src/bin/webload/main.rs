//! The web page under load (issue 16): a real `carewatch serve` on a SQLite
//! store of 10,000 installations of one reseller. Targets: overview page and
//! JSON list p99 < 20 ms; 1,000 open live pages add < 100 MiB and keep ingest
//! within 10 % of its throughput.
//!
//! 1. **Seeding** (a new temporary data directory each time, through the
//!    public `Store` API, before the server starts): the reseller's fleet as
//!    [`Fleet`] generates it (10 recording servers per installation on
//!    average; per thousand 20 Attention, 15 with a critical condition, 10
//!    with one server down, 5 Offline) plus `--pending` installations that
//!    never reported (Pending); an installation key for each; every live
//!    server's heartbeat acknowledged with an hour's interval (so no seeded
//!    server falls due during the run); the operator's and the reseller's
//!    tokens; `--users` viewers with `--pages` sessions among them (the live
//!    pages' sign-ins; one Argon2 hash shared, so seeding stays quick).
//! 2. **Sign-in through the page**: the operator invites an admin
//!    (`Admin.InviteUser` over gRPC), who accepts on `/invite` and signs in on
//!    `/login` (double-submit CSRF cookie); that session reads the pages.
//! 3. **Latency**: `GET /` (default filter, `?all=1`, a search), and
//!    `GET /api/v1/installations` (default, `?all=1&limit=100`) with the
//!    reseller's token, one request at a time on one connection, the kinds in
//!    turn, `--warmup-requests` then `--requests` each; with no live page
//!    open, and again with the live pages open (first pair).
//! 4. **Pairs** (`--pairs`, A then B, after one ingest run not counted): A
//!    is an ingest run with no live page open; B opens `--pages` live pages
//!    (`/events` on a TLS connection each, with the sessions seeded in 1),
//!    reads the server's `VmRSS` before and after, sends a probe status
//!    report (a full drive, then its end) and times until every page got the
//!    row event, runs the same ingest, then closes the pages. Between the
//!    runs, the server's CPU is read for `--idle-seconds` without pages
//!    (after A) and with them (before B): what the open pages themselves
//!    cost. An ingest run is `loadgen`'s: `--ingest-servers` Healthy
//!    recording servers sending heartbeats over gRPC + TLS (stream mode, 256
//!    in flight over 4 connections by default), `--warmup-seconds` then
//!    `--seconds` measured. Throughout, a few other installations toggle a
//!    full drive `--changes-per-second` times a second (each toggle changes
//!    the installation's health: a row event and a condition event for every
//!    open page), in A and B alike.
//! 5. **Summary**: a Markdown table.
//!
//! ```sh
//! cargo build --release -p carewatch-cli -p carewatch-benches
//! target/release/webload                     # 10,000 installations, 1,000 pages, 3 pairs
//! target/release/webload --http1             # pages and requests over HTTP/1.1
//! target/release/webload --help
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use carewatch_benches::ingest::{self, Workers};
use carewatch_benches::server::{
    BoxError, Memory, ServerProcess, carewatch_beside_this_program, cpu_time,
};
use carewatch_benches::web::{LivePage, LiveStats, Protocol, WebClient, cookie_header, form};
use carewatch_benches::{Fleet, SeededHealth};
use carewatch_benches::{percentile, thousands};
use carewatch_cli::simulate::SimServer;
use carewatch_cli::tls::TlsIdentity;
use carewatch_core::ConditionCode;
use carewatch_core::auth::{self, Principal};
use carewatch_core::condition::ReportedCondition;
use carewatch_core::ids::{ResellerId, Slc};
use carewatch_core::installation::{Installation, Product};
use carewatch_core::liveness::{LivenessMark, MarkReason};
use carewatch_core::seal::key_file::{self, MASTER_KEY_FILE};
use carewatch_core::seal::{InstallationKey, KeyId, MessageKind};
use carewatch_core::store::Store;
use carewatch_core::team::{
    INVITATION_PREFIX, InvitationRecord, Login, Password, Role, SESSION_LIFETIME, SESSION_PREFIX,
    SessionRecord, User, issue_secret,
};
use carewatch_core::time::{Clock, SystemClock};
use carewatch_grpc::client::{Bearer, connect};
use carewatch_grpc::proto::InviteUserRequest;
use carewatch_grpc::proto::admin_client::AdminClient;
use carewatch_grpc::proto::ingest_client::IngestClient;
use carewatch_storage_sqlite::SqliteStore;
use carewatch_web::{CSRF_FIELD, FORM_COOKIE, SESSION_COOKIE};
use clap::{Parser, ValueEnum};
use futures::{StreamExt, TryStreamExt};
use http::{StatusCode, header};
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;

mod ingest_runs;
mod probes;
mod report;
mod seed;

use ingest_runs::{Site, idle_cpu, ingest_run, print_run, probe_pages};
use probes::Bench;
use report::{Pair, mib, opt1, percentile_ms, print_latencies, report};
use seed::{admin_sign_in, check_totals, seed};

/// The database file in the data directory, as `carewatch serve` names it.
const DATABASE: &str = "carewatch.db";
/// The operator `carewatch serve` would create on a new database.
const OPERATOR: &str = "admin";
/// `carewatch serve`'s default `--node-id`, whose liveness mark seeding sets.
const NODE_ID: &str = "carewatch";
/// The interval the seeded live servers' last heartbeat was acknowledged
/// with: none falls due during a run.
const SEEDED_INTERVAL: Duration = Duration::from_secs(3600);
/// Store writes in flight while seeding (SQLite queues them on its writer).
const CONCURRENT_WRITES: usize = 8;
/// The service whose health means "the dashboard can be asked".
const DASHBOARD_SERVICE: &str = "carewatch.v1.Dashboard";
/// The admin who signs in through the page.
const ADMIN_LOGIN: &str = "admin@bench.example";
/// Every seeded user's password (and the admin's).
const PASSWORD: &str = "bench-password-0123";
/// Installations whose full drive toggles in the background.
const TOGGLED_INSTALLATIONS: usize = 8;
/// How often the toggled and probe installations' servers send a heartbeat
/// when they have nothing else to say (well within the 60 s interval).
const KEEPALIVE: Duration = Duration::from_secs(10);
/// How long every open page has to receive a probe's event.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// The server's own interval for the ingest servers: a gap longer than
/// this between two ingest runs would make them Late.
const INGEST_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    /// One unary `Heartbeat` call per message.
    Unary,
    /// One long-lived `Stream` per worker, one message in flight on it.
    Stream,
}

#[derive(Debug, Parser)]
#[command(
    about = "Measures the web page of a real `carewatch serve`: overview and JSON list latency \
             at 10,000 installations, the memory of 1,000 open live pages and their effect on \
             ingest"
)]
struct Args {
    /// Installations of the reseller, Pending ones included.
    #[arg(long, default_value_t = 10_000)]
    installations: usize,
    /// Of them, registered but never heard from (Pending).
    #[arg(long, default_value_t = 100)]
    pending: usize,
    /// Live pages to open (each its own session and TLS connection).
    #[arg(long, default_value_t = 1000)]
    pages: usize,
    /// Viewers the live pages' sessions belong to.
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// Measured requests per kind and state.
    #[arg(long, default_value_t = 500)]
    requests: usize,
    /// Requests per kind before measuring.
    #[arg(long, default_value_t = 50)]
    warmup_requests: usize,
    /// Pairs of ingest runs: without live pages, then with them.
    #[arg(long, default_value_t = 3)]
    pairs: usize,
    /// Measured seconds per ingest run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Ingest before measuring, per run (not counted).
    #[arg(long, default_value_t = 2)]
    warmup_seconds: u64,
    /// Recording servers sending heartbeats (whole Healthy installations).
    #[arg(long, default_value_t = 10_000)]
    ingest_servers: usize,
    /// Heartbeats in flight at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// HTTP/2 connections the ingest workers share.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Unary calls or long-lived streams for ingest.
    #[arg(long, value_enum, default_value_t = Mode::Stream)]
    mode: Mode,
    /// Health changes per second in the background (a full drive on, off …).
    #[arg(long, default_value_t = 1.0)]
    changes_per_second: f64,
    /// Seconds without ingest over which the server's CPU is read, without
    /// and with the live pages open (background changes go on).
    #[arg(long, default_value_t = 5)]
    idle_seconds: u64,
    /// Live pages opening at once.
    #[arg(long, default_value_t = 32)]
    open_concurrency: usize,
    /// Pages and requests over HTTP/1.1 instead of HTTP/2.
    #[arg(long)]
    http1: bool,
    /// The `carewatch` binary; by default the one beside this program.
    #[arg(long)]
    server: Option<PathBuf>,
}

/// What the seeded store holds for the benchmark.
struct Seeded {
    fleet: Fleet,
    reseller_token: String,
    operator_token: String,
    /// Installation keys, in fleet order.
    keys: Vec<InstallationKey>,
    /// The live pages' session secrets.
    sessions: Vec<String>,
    expected: Totals,
}

/// Installations per health, as the JSON API reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Totals {
    healthy: u64,
    pending: u64,
    attention: u64,
    critical: u64,
    offline: u64,
}

impl Totals {
    fn of_json(value: &serde_json::Value) -> Option<Self> {
        let t = value.get("totals")?;
        let n = |name: &str| t.get(name).and_then(serde_json::Value::as_u64);
        Some(Self {
            healthy: n("healthy")?,
            pending: n("pending")?,
            attention: n("attention")?,
            critical: n("critical")?,
            offline: n("offline")?,
        })
    }

    fn total(&self) -> u64 {
        self.healthy + self.pending + self.attention + self.critical + self.offline
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    if args.installations <= args.pending + 1000
        || args.pages == 0
        || args.users == 0
        || args.requests == 0
        || args.pairs == 0
    {
        return Err(
            "use over 1,000 installations besides the Pending ones, and at least one \
                    page, user, request and pair"
                .into(),
        );
    }
    let binary = match &args.server {
        Some(path) => path.clone(),
        None => carewatch_beside_this_program()?,
    };
    let protocol = if args.http1 {
        Protocol::Http1
    } else {
        Protocol::Http2
    };
    let data_dir = tempfile::tempdir()?;
    let seeding = Instant::now();
    let seeded = seed(data_dir.path(), &args).await?;
    println!(
        "seeded {} installations ({} Healthy, {} Pending, {} Attention, {} Critical, {} Offline; \
         {} recording servers), {} users, {} sessions in {:.1} s",
        thousands(seeded.expected.total() as usize),
        seeded.expected.healthy,
        seeded.expected.pending,
        seeded.expected.attention,
        seeded.expected.critical,
        seeded.expected.offline,
        thousands(seeded.fleet.server_count()),
        args.users + 1,
        seeded.sessions.len(),
        seeding.elapsed().as_secs_f64()
    );

    let server = ServerProcess::start(&binary, data_dir.path(), None, false).await?;
    let serving = server.wait_serving(DASHBOARD_SERVICE).await?;
    println!(
        "carewatch serve (SQLite) SERVING after {:.0} ms; pages over {}",
        serving.as_secs_f64() * 1000.0,
        protocol.name()
    );
    let after_start = server.memory();
    let grpc = connect(&server.url, Some(&server.ca_pem)).await?;
    let web = WebClient::new(&server.url, &server.ca_pem, protocol)?;
    let mut reader = web.connect().await?;
    let session = admin_sign_in(&mut reader, grpc.clone(), &seeded).await?;
    check_totals(&mut reader, &seeded).await?;
    let bench = Bench {
        session,
        reseller_token: seeded.reseller_token.clone(),
    };

    let quiet = bench.latencies(&mut reader, &args).await?;
    println!("latency, no live page open:");
    print_latencies(&quiet);

    // Ingest: whole Healthy installations; then the toggled ones and the probe.
    let mut healthy = seeded
        .fleet
        .installations
        .iter()
        .zip(&seeded.keys)
        .filter(|(i, _)| i.health == SeededHealth::Healthy);
    let mut ingest_servers = Vec::new();
    for (installation, key) in healthy.by_ref() {
        ingest_servers.extend(
            installation
                .servers
                .iter()
                .map(|id| SimServer::new(installation.slc.clone(), id.clone(), key.clone())),
        );
        if ingest_servers.len() >= args.ingest_servers {
            break;
        }
    }
    let first_server =
        |(installation, key): (&carewatch_benches::SeededInstallation, &InstallationKey)| {
            SimServer::new(
                installation.slc.clone(),
                installation.servers[0].clone(),
                key.clone(),
            )
        };
    let toggled: Vec<SimServer> = healthy
        .by_ref()
        .take(TOGGLED_INSTALLATIONS)
        .map(first_server)
        .collect();
    let probe = healthy
        .next()
        .map(first_server)
        .ok_or("too few Healthy installations")?;
    let probe_slc = probe.slc.to_string();

    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        channels.push(connect(&server.url, Some(&server.ca_pem)).await?);
    }
    let mut workers = Workers::start(ingest_servers, &channels[0], args.concurrency).await?;
    let site = Site::start(
        connect(&server.url, Some(&server.ca_pem)).await?,
        toggled,
        probe,
        args.changes_per_second,
    );
    println!(
        "ingest: {} recording servers, {} in flight over {} connections, {:?} mode; \
         background: {} health changes/s over {} installations",
        thousands(workers.servers()),
        workers.workers(),
        channels.len(),
        args.mode,
        args.changes_per_second,
        TOGGLED_INSTALLATIONS
    );

    let stats = LiveStats::new();
    let mode = match args.mode {
        Mode::Unary => ingest::Mode::Unary,
        Mode::Stream => ingest::Mode::Stream,
    };
    let mut pairs = Vec::new();
    let mut with_pages_latency = None;
    // One run first, not counted: the first run after the start is slower
    // (caches filling), which would flatter B against A in the first pair.
    let (warm_up, took) = workers
        .run(&channels, mode, Duration::from_secs(args.seconds))
        .await;
    println!(
        "ingest warm-up run (not counted): {:.0} heartbeats/s",
        warm_up.latencies_us.len() as f64 / took.as_secs_f64()
    );
    let mut last_ingest = Instant::now();
    for number in 1..=args.pairs {
        let a = ingest_run(
            &mut workers,
            &channels,
            mode,
            &args,
            &server,
            &site,
            &[],
            last_ingest,
        )
        .await?;
        last_ingest = Instant::now();
        print_run(number, "A, no live page", &a);
        let idle_a = idle_cpu(&server, args.idle_seconds).await;

        let before_open = server.memory();
        // A new connection: an HTTP/1.1 server closes idle ones.
        reader = web.connect().await?;
        let path = bench.events_path(&mut reader).await?;
        let opening = Instant::now();
        let sessions = &seeded.sessions;
        let pages: Vec<LivePage> = futures::stream::iter(sessions)
            .map(|s| LivePage::open(&web, &path, cookie_header(SESSION_COOKIE, s), stats.clone()))
            .buffer_unordered(args.open_concurrency.max(1))
            .try_collect()
            .await?;
        let opened_in = opening.elapsed();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after_open = server.memory();
        let mut deliveries = Vec::new();
        let mut unreached = 0;
        for _ in 0..2 {
            let (latencies, missing) = probe_pages(&site, &stats, &pages, &probe_slc).await?;
            deliveries.extend(latencies);
            unreached += missing;
        }
        let after_probes = server.memory();
        let idle_b = idle_cpu(&server, args.idle_seconds).await;
        println!(
            "pair {number}: server CPU between ingest runs (background changes only): {} ms/s \
             without live pages, {} ms/s with them",
            opt1(idle_a),
            opt1(idle_b)
        );
        println!(
            "pair {number}: opened {} live pages in {:.1} s; RSS {} -> {} MiB (after the probes \
             {} MiB); probe events reached {} of {} pages ({} deliveries: p50 {:.1} ms, p99 \
             {:.1} ms, max {:.1} ms)",
            pages.len(),
            opened_in.as_secs_f64(),
            mib(before_open),
            mib(after_open),
            mib(after_probes),
            pages.len() * 2 - unreached,
            pages.len() * 2,
            deliveries.len(),
            percentile_ms(&mut deliveries, 50.0),
            percentile_ms(&mut deliveries, 99.0),
            percentile_ms(&mut deliveries, 100.0),
        );
        if number == 1 {
            reader = web.connect().await?;
            let latencies = bench.latencies(&mut reader, &args).await?;
            println!("latency, {} live pages open:", pages.len());
            print_latencies(&latencies);
            with_pages_latency = Some(latencies);
        }
        let b = ingest_run(
            &mut workers,
            &channels,
            mode,
            &args,
            &server,
            &site,
            &pages,
            last_ingest,
        )
        .await?;
        last_ingest = Instant::now();
        print_run(number, "B, live pages open", &b);
        let ended = pages.iter().filter(|p| p.ended()).count();
        if ended > 0 {
            return Err(format!("{ended} live pages' streams ended during the run").into());
        }
        if unreached > 0 {
            return Err(format!("{unreached} probe events did not reach their page").into());
        }
        drop(pages);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after_close = server.memory();
        pairs.push(Pair {
            a,
            b,
            opened_in,
            before_open,
            after_probes,
            after_close,
            deliveries,
            idle_a,
            idle_b,
        });
    }
    let changes = site.changes();
    drop(site);
    drop(channels);
    drop(reader);
    let peak = server.memory();
    server.stop().await?;

    report(
        &args,
        protocol,
        &seeded,
        after_start,
        peak,
        &quiet,
        with_pages_latency.as_deref(),
        &mut pairs,
        changes,
    );
    Ok(())
}
