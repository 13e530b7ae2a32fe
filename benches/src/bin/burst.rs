//! A minute-start burst: every recording server of a large fleet sends its
//! heartbeat at the start of each minute at once, as production heartbeat
//! services see (clients on synchronised clocks and cron-like timers).
//!
//! Seeds `--installations` installations (10 recording servers each on
//! average: 100,000 make 1,000,000 servers) through the store's API, each
//! with an installation key sealed under the server's master key, marks
//! every live server heard from just now, starts a real `carewatch serve`
//! on the store (SQLite, or PostgreSQL with `--backend postgres`) and runs
//! `--rounds` rounds `--period` apart. In each round every live server sends
//! one sealed heartbeat over gRPC + TLS, `--concurrency` streams each
//! sending its share of the servers one after another. It reports, per
//! round, the time to drain (round start → last acknowledgement), the
//! latency from the round start (what a server whose heartbeat was due then
//! waited) and per request, and every error.
//!
//! ```sh
//! cargo build --release -p carewatch-cli -p carewatch-benches
//! target/release/burst                                  # 1M servers, SQLite
//! target/release/burst --backend postgres               # CAREWATCH_TEST_DATABASE_URL
//! target/release/burst --installations 10000 --rounds 2 # 100k servers, quick
//! target/release/burst --jitter-seconds 20              # serve --jitter 20s: nobody Late mid-round
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use carewatch_benches::ingest::heartbeat_on_stream;
use carewatch_benches::server::{BoxError, Launch, ServerProcess, cpu_time};
use carewatch_benches::{BenchSchema, Fleet, database_url, percentile};
use carewatch_cli::simulate::SimServer;
use carewatch_core::auth::TokenHash;
use carewatch_core::seal::key_file::{self, MASTER_KEY_FILE};
use carewatch_core::seal::{InstallationKey, KeyId, MasterKey};
use carewatch_core::store::Store;
use carewatch_core::time::Timestamp;
use carewatch_grpc::client::connect;
use carewatch_grpc::proto::ingest_client::IngestClient;
use carewatch_grpc::proto::{self};
use carewatch_storage_sqlite::SqliteStore;
use clap::{Parser, ValueEnum};
use futures::{StreamExt, TryStreamExt};
use tokio::sync::mpsc;
use tonic::transport::Channel;

/// The issue's target: a minute-start burst of 1M servers drained in 20 s.
const TARGET_DRAIN: Duration = Duration::from_secs(20);
const TARGET_SERVERS: usize = 1_000_000;
/// Installation keys sealed and stored at once while seeding.
const KEYS_IN_FLIGHT: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Parser)]
#[command(
    about = "Every recording server of a large fleet sends its heartbeat at the start of \
                   each minute at once: time to drain and acknowledgement latency"
)]
struct Args {
    /// Installations (10 recording servers each on average).
    #[arg(long, default_value_t = 100_000)]
    installations: usize,
    /// The store `carewatch serve` runs on.
    #[arg(long, value_enum, default_value_t = Backend::Sqlite)]
    backend: Backend,
    /// Rounds (minute starts) measured.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Time from one round's start to the next (the heartbeat interval).
    #[arg(long, default_value_t = 60)]
    period_seconds: u64,
    /// The server's jitter tolerance (`serve --jitter`), seconds: a
    /// heartbeat counts as missed this long after it was due. A server
    /// acknowledged later in a round than in the one before (its stream
    /// reached it later) is that much late; 2 s is the product's default.
    #[arg(long, default_value_t = 2)]
    jitter_seconds: u64,
    /// Streams sending at once (one message in flight each).
    #[arg(long, default_value_t = 1024)]
    concurrency: usize,
    /// HTTP/2 connections the streams share.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// The `carewatch` binary; by default the one beside this program.
    #[arg(long)]
    server: Option<std::path::PathBuf>,
}

/// What one stream saw in a round.
#[derive(Debug, Default)]
struct Tally {
    /// Round start → acknowledgement, µs.
    since_due_us: Vec<u32>,
    /// Send → acknowledgement, µs.
    request_us: Vec<u32>,
    /// Errors by what went wrong.
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.since_due_us.extend(other.since_due_us);
        self.request_us.extend(other.request_us);
        for (what, n) in other.errors {
            *self.errors.entry(what).or_default() += n;
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let binary = match &args.server {
        Some(path) => path.clone(),
        None => carewatch_benches::server::carewatch_beside_this_program()?,
    };
    let dir = tempfile::tempdir()?;
    let (master, _) = key_file::load_or_create(&dir.path().join(MASTER_KEY_FILE))?;
    let url = database_url();
    let schema = match args.backend {
        Backend::Postgres => Some(BenchSchema::create(&url).await?),
        Backend::Sqlite => None,
    };
    let sqlite_path = dir.path().join("carewatch.db");

    let fleet = Fleet::generate(args.installations);
    let began = Instant::now();
    let servers = match &schema {
        Some(schema) => seed(&schema.store, &fleet, &master).await?,
        None => seed(&SqliteStore::open(&sqlite_path).await?, &fleet, &master).await?,
    };
    println!(
        "seeded {} installations, {} recording servers ({} live) with keys in {:.1} s",
        fleet.installations.len(),
        fleet.server_count(),
        servers.len(),
        began.elapsed().as_secs_f64()
    );

    let launch = Launch {
        args: vec![
            "--heartbeat-interval".into(),
            format!("{}s", args.period_seconds),
            "--jitter".into(),
            format!("{}s", args.jitter_seconds),
        ],
        ..Launch::default()
    };
    let postgres = schema.as_ref().map(|s| (url.as_str(), s.name()));
    let server = ServerProcess::start_with(&binary, dir.path(), postgres, false, &launch).await?;
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        channels.push(connect(&server.url, Some(&server.ca_pem)).await?);
    }
    println!(
        "{:?}: carewatch serve listening after {:.1} s; {} rounds {} s apart (jitter tolerance {} s), {} streams over {} connections",
        args.backend,
        server.started_in.as_secs_f64(),
        args.rounds,
        args.period_seconds,
        args.jitter_seconds,
        args.concurrency,
        channels.len()
    );

    // Each stream sends its share: every `concurrency`-th server, so a
    // stream's servers belong to different installations.
    let streams = args.concurrency.clamp(1, servers.len().max(1));
    let mut groups: Vec<Vec<SimServer>> = (0..streams).map(|_| Vec::new()).collect();
    for (n, server) in servers.into_iter().enumerate() {
        groups[n % streams].push(server);
    }
    let period = Duration::from_secs(args.period_seconds);
    let mut drains = Vec::new();
    let mut failed = false;
    for round in 1..=args.rounds {
        let start = Instant::now();
        let started_at = now();
        let cpu_before = server.cpu_time();
        let generator_before = cpu_time("self");
        let wal_before = wal_state(&sqlite_path);
        let tallies = futures::future::join_all(
            groups
                .iter_mut()
                .enumerate()
                .map(|(n, group)| send_all(channels[n % channels.len()].clone(), group, start)),
        )
        .await;
        let drained = start.elapsed();
        let cpu = server
            .cpu_time()
            .zip(cpu_before)
            .map(|(after, before)| after.saturating_sub(before));
        // The generator shares the two cores: a round slower at the same
        // server cost per heartbeat is the generator's or the machine's.
        let generator = cpu_time("self")
            .zip(generator_before)
            .map(|(after, before)| after.saturating_sub(before));
        let mut tally = Tally::default();
        for t in tallies {
            tally.merge(t);
        }
        let wal_after = wal_state(&sqlite_path);
        tally.since_due_us.sort_unstable();
        tally.request_us.sort_unstable();
        let acked = tally.since_due_us.len();
        let errors: u64 = tally.errors.values().sum();
        failed |= errors > 0;
        drains.push(drained);
        println!(
            "round {round}: {acked} acknowledged in {:.2} s ({:.0}/s); since due p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; \
             per request p50 {:.1} ms, p99 {:.1} ms; server CPU {}; generator CPU {}; errors {errors} {:?}{}{}",
            drained.as_secs_f64(),
            acked as f64 / drained.as_secs_f64(),
            percentile(&tally.since_due_us, 50.0),
            percentile(&tally.since_due_us, 99.0),
            percentile(&tally.since_due_us, 100.0),
            percentile(&tally.request_us, 50.0),
            percentile(&tally.request_us, 99.0),
            cpu_per_heartbeat(cpu, acked),
            cpu_per_heartbeat(generator, acked),
            tally.errors,
            match (wal_before, wal_after) {
                (Some(before), Some(after)) => format!("; write-ahead log {before} -> {after}"),
                _ => String::new(),
            },
            match (&schema, feed_since(&sqlite_path, started_at)) {
                (None, Ok(kinds)) => format!("; change feed during the round {kinds:?}"),
                (None, Err(e)) => format!("; change feed unread: {e}"),
                (Some(_), _) => String::new(),
            }
        );
        if round < args.rounds {
            tokio::time::sleep(period.saturating_sub(start.elapsed())).await;
        }
    }
    server.stop().await?;
    if let Some(schema) = schema {
        schema.drop_schema().await?;
    }
    let worst = drains.iter().max().copied().unwrap_or_default();
    let verdict = if fleet.server_count() < TARGET_SERVERS {
        format!("the target is for {TARGET_SERVERS} servers; this fleet has fewer")
    } else if worst < TARGET_DRAIN && !failed {
        "met".to_owned()
    } else {
        "not met".to_owned()
    };
    println!(
        "slowest drain {:.2} s (target < {} s for {TARGET_SERVERS} servers): {verdict}",
        worst.as_secs_f64(),
        TARGET_DRAIN.as_secs(),
    );
    if failed {
        return Err("some heartbeats were not acknowledged".into());
    }
    Ok(())
}

/// Seeds `fleet` into `store` with one installation key each, sealed under
/// `master`, then marks every live server heard from now; the live servers,
/// ready to send heartbeats.
async fn seed(
    store: &dyn Store,
    fleet: &Fleet,
    master: &MasterKey,
) -> Result<Vec<SimServer>, BoxError> {
    fleet.seed_at(store, &bench_token(), now()).await?;
    // In fleet order (`buffered`), one per installation.
    let keys: Vec<InstallationKey> = futures::stream::iter(fleet.installations.iter())
        .map(|installation| async move {
            let key = InstallationKey::generate(KeyId::new(1));
            let wrapped = master.wrap(&installation.slc, &key);
            store
                .add_installation_key(&installation.slc, &wrapped, now())
                .await?;
            Ok::<_, carewatch_core::Error>(key)
        })
        .buffered(KEYS_IN_FLIGHT)
        .try_collect()
        .await?;
    // Heard from just now, so nobody is late before the first round.
    fleet
        .heartbeat(store, 3, Duration::from_secs(60), &now)
        .await?;
    let mut servers = Vec::with_capacity(fleet.live_server_count());
    for (installation, key) in fleet.installations.iter().zip(keys) {
        for (slc, id) in installation.live_servers() {
            let mut server = SimServer::new(slc.clone(), id.clone(), key.clone());
            // Seeded as heard from: heartbeats from the first message on.
            server.report_acknowledged();
            servers.push(server);
        }
    }
    Ok(servers)
}

fn bench_token() -> TokenHash {
    TokenHash::from_slice(&[0x5A; 32]).unwrap_or_else(|| unreachable!())
}

fn now() -> Timestamp {
    std::time::SystemTime::now().into()
}

/// Sends one heartbeat from each of `servers`, one after another on one
/// stream; latencies from `due` and per request.
async fn send_all(channel: Channel, servers: &mut [SimServer], due: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut client = IngestClient::new(channel);
    let (tx, rx) = mpsc::channel::<proto::StreamMessage>(1);
    let mut replies = match client
        .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
    {
        Ok(replies) => replies.into_inner(),
        Err(status) => {
            tally
                .errors
                .insert(format!("{:?}", status.code()), servers.len() as u64);
            return tally;
        }
    };
    let total = servers.len();
    for (n, server) in servers.iter_mut().enumerate() {
        let (_, message) = server.next_message();
        let sent = Instant::now();
        match heartbeat_on_stream(&tx, &mut replies, message).await {
            Ok(()) => {
                tally.request_us.push(micros(sent.elapsed()));
                tally.since_due_us.push(micros(due.elapsed()));
            }
            Err(what) => {
                *tally.errors.entry(what).or_default() += 1;
                // The stream is gone: the rest of its share is not sent.
                let unsent = (total - n - 1) as u64;
                if unsent > 0 {
                    *tally
                        .errors
                        .entry("not sent: its stream failed".into())
                        .or_default() += unsent;
                }
                break;
            }
        }
    }
    tally
}

/// "12.3 s (23.4 µs per heartbeat)", or "?" when the time is unknown.
fn cpu_per_heartbeat(cpu: Option<Duration>, heartbeats: usize) -> String {
    cpu.map_or("?".into(), |c| {
        format!(
            "{:.1} s ({:.1} µs per heartbeat)",
            c.as_secs_f64(),
            c.as_secs_f64() * 1e6 / heartbeats.max(1) as f64
        )
    })
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Where a SQLite write-ahead log stands: its frames (pages written since
/// it last restarted) and how many of them are copied into the database.
#[derive(Debug, Clone, Copy)]
struct WalState {
    frames: u32,
    backfilled: u32,
}

impl std::fmt::Display for WalState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} frames ({} copied)", self.frames, self.backfilled)
    }
}

/// Reads `mxFrame` and `nBackfill` from the database's wal-index (`-shm`
/// file: <https://sqlite.org/walformat.html>, native byte order), `None` when
/// there is none (PostgreSQL, or no log yet). A page read searches the
/// log's index from its newest frame back, so a log that never restarts
/// makes every read dearer.
fn wal_state(database: &std::path::Path) -> Option<WalState> {
    let mut shm = database.as_os_str().to_owned();
    shm.push("-shm");
    let header = std::fs::read(shm).ok()?;
    let word = |at: usize| {
        header
            .get(at..at + 4)
            .and_then(|bytes| bytes.try_into().ok())
            .map(u32::from_ne_bytes)
    };
    // The header (48 bytes, twice), then the checkpoint information.
    Some(WalState {
        frames: word(16)?,
        backfilled: word(96)?,
    })
}

/// The change feed's events since `since`, by kind (SQLite): a round that
/// keeps every server on time writes almost none; servers marked late and
/// then recovered write theirs.
fn feed_since(
    database: &std::path::Path,
    since: Timestamp,
) -> rusqlite::Result<Vec<(String, i64)>> {
    let conn = rusqlite::Connection::open_with_flags(
        database,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    let mut stmt =
        conn.prepare("SELECT kind, count(*) FROM changes WHERE at >= ?1 GROUP BY kind ORDER BY 1")?;
    stmt.query_map([since.as_millis()], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect()
}
