//! Notifications under a regional outage (issue 17): "10,000 installations
//! going Offline at once produce their notifications within 10 s of
//! detection without slowing ingest by more than 10 %."
//!
//! Every run starts a real `carewatch serve` (SQLite, a copy of one seeded
//! data directory; with `--postgres`, a PostgreSQL schema of its own seeded
//! afresh; `--heartbeat-interval` `--interval`, default 5 s) with
//! one reseller and one webhook channel to a receiver in this process
//! (`carewatch_notify::testing::http::Receiver` on a thread of its own,
//! whose CPU time is printed apart: plain HTTP on 127.0.0.1,
//! or HTTPS with `--https` and `--notify-ca-cert`), default rules (Critical,
//! Offline and their recovery) held `--hold` (default 0 s, the shortest the
//! rules allow; the product's default is 2 min).
//!
//! 1. **Fleets**, each sending over gRPC + TLS (a server's first message is
//!    its status report, in its turn):
//!    the *outage fleet*, `--installations` installations with one recording
//!    server each, every server one heartbeat per interval spread evenly
//!    over it (10,000 at 5 s: 2,000 heartbeats/s), one stream per worker
//!    (512 over 4 connections: a slow answer delays few servers);
//!    and the *ingest fleet*, `--ingest-servers` servers (4 per
//!    installation) sending as fast as they are acknowledged, as `loadgen
//!    --mode stream` does (256 in flight over 4 connections), recording when
//!    each heartbeat was acknowledged.
//! 2. **Warm-up** (`--warmup-seconds`), then at T: in run **B** every outage
//!    server falls silent at once (its stream closed); in run **A** it keeps
//!    sending (with `--a-outage`, A has the same outage but no notification
//!    channel, so B / A is what notifying costs, apart from detecting the
//!    outage; with `--control`, B too has no channel, so B / A is the
//!    benchmark's own noise). The server finds them Late, then, after 3 missed heartbeats,
//!    Unavailable: each installation Offline. Ingest goes on throughout;
//!    A ends `--seconds` after T, B once every Offline notification came (at
//!    least `--seconds`, at most `--timeout-seconds`).
//! 3. **Recovery** (B only, after the measured window; `--no-recovery`
//!    skips it): the outage fleet sends again, spread over one interval;
//!    each installation's "resolved" is awaited.
//! 4. **Reading back**, after the server stopped: detection = the instant
//!    the server recorded each installation Offline (its health event in
//!    the change feed; the payload's `installation.since` must match),
//!    recovery = its next health event. Latency = the receiver's arrival
//!    time − detection. The outbox tells attempts and failures.
//! 5. **Ingest**, per pair (A then B, `--pairs` times, interleaved): the
//!    ingest fleet's heartbeats/s over B's outage window (first detection to
//!    last notification; to the last detection in a control) and over the same offsets from T in A, and over
//!    [T, T + `--seconds`]; the server's CPU per heartbeat (all heartbeats
//!    it took, both fleets).
//!
//! It fails (non-zero exit) if any Offline or resolved notification is
//! missing, one came twice, A got any notification, or a fleet was not
//! steady (a notification before T; a health change other than Late from
//! one interval before T, but the outage's). `--dump` writes every
//! notification received, `--keep` every run's data directory.
//!
//! ```sh
//! cargo build --release -p carewatch-cli -p carewatch-benches
//! target/release/notifyload                        # 10,000 installations, 2 pairs
//! target/release/notifyload --a-outage --pairs 3   # B / A: what notifying costs ingest
//! target/release/notifyload --control --pairs 3    # B run as A: the benchmark's own noise
//! target/release/notifyload --installations 500 --pairs 1 --seconds 30
//! target/release/notifyload --postgres --a-outage --pairs 2   # on PostgreSQL
//! target/release/notifyload --help
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use carewatch_benches::costs::{backend_cpu, backend_cpu_spent};
use carewatch_benches::notify::{
    Acks, Clock, CpuSample, CpuSampler, Flood, PacedFleet, ReceiverThread, Serve, load_average,
    nearest, unix_millis,
};
use carewatch_benches::server::{BoxError, carewatch_beside_this_program};
use carewatch_benches::{BenchSchema, database_url};
use carewatch_benches::{percentile, thousands};
use carewatch_cli::commands::parse_duration;
use carewatch_cli::simulate::SimServer;
use carewatch_cli::tls::TlsIdentity;
use carewatch_core::auth::{self, Principal};
use carewatch_core::feed::{Change, EventId};
use carewatch_core::health::Health;
use carewatch_core::ids::{RecordingServerId, ResellerId, Slc};
use carewatch_core::installation::{Installation, Product};
use carewatch_core::notification::{ChannelRules, Destination, OutboxFilter};
use carewatch_core::seal::key_file::{self, MASTER_KEY_FILE};
use carewatch_core::seal::{InstallationKey, KeyId};
use carewatch_core::store::{Reseller, Store};
use carewatch_core::team::{Login, Role, User};
use carewatch_core::time::{Clock as _, SystemClock, Timestamp};
use carewatch_core::{Carewatch, Config};
use carewatch_grpc::client::connect;
use carewatch_notify::testing::http::{Received, Receiver};
use carewatch_storage_postgres::{PostgresConfig, PostgresStore};
use carewatch_storage_sqlite::SqliteStore;
use clap::Parser;
use futures::{StreamExt, TryStreamExt};

mod check;
mod record;
mod report;
mod seed;

use check::check;
use record::{Note, Run, Seen};
use report::{print_pair, report};
use seed::{Template, create_channel};

/// The database file in the data directory, as `carewatch serve` names it.
const DATABASE: &str = "carewatch.db";
/// Recording servers per ingest installation.
const INGEST_SERVERS_PER_INSTALLATION: usize = 4;
/// Store writes in flight while seeding (SQLite queues them on its writer).
const CONCURRENT_WRITES: usize = 8;
/// How often the receiver is checked while waiting for notifications.
const POLL: Duration = Duration::from_secs(1);
/// Seconds the acceptance allows from detection to notification.
const TARGET_LATENCY_MS: i64 = 10_000;
/// The acceptance's ingest bound: B at least 90 % of A.
const TARGET_RATIO: f64 = 0.90;

#[derive(Debug, Parser)]
#[command(
    about = "Measures notifications under a regional outage: 10,000 installations going Offline \
             at once against a real `carewatch serve`, their webhook latency from detection, \
             and ingest with and without the outage (A/B pairs)"
)]
struct Args {
    /// Installations of the outage fleet (one recording server each).
    #[arg(long, default_value_t = 10_000)]
    installations: usize,
    /// Recording servers of the ingest fleet (4 per installation).
    #[arg(long, default_value_t = 10_000)]
    ingest_servers: usize,
    /// Ingest heartbeats in flight at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// HTTP/2 connections the ingest workers share (the outage fleet has its own).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Workers (streams, one message in flight each) the outage fleet's
    /// servers are spread over.
    #[arg(long, default_value_t = 512)]
    outage_workers: usize,
    /// HTTP/2 connections of the outage fleet.
    #[arg(long, default_value_t = 4)]
    outage_connections: usize,
    /// Heartbeat interval (`serve --heartbeat-interval`) the outage fleet keeps.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    interval: Duration,
    /// Network delay tolerated (`serve --jitter`).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    jitter: Duration,
    /// The channel's hold (flap damping); 0 s is the shortest the rules allow.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    hold: Duration,
    /// Both fleets sending before the outage (not measured); their first
    /// messages (status reports) take the first 10 to 20 s of it.
    #[arg(long, default_value_t = 30)]
    warmup_seconds: u64,
    /// Ingest measured from T (the outage in B); A runs this long after T.
    #[arg(long, default_value_t = 40)]
    seconds: u64,
    /// Longest wait after T for every Offline notification (and, from the
    /// resumption, for every resolved one).
    #[arg(long, default_value_t = 180)]
    timeout_seconds: u64,
    /// A has the same outage as B, without a notification channel: B / A is
    /// then what notifying costs ingest, apart from detecting the outage
    /// (without it, A has no outage and B / A is what the whole outage costs).
    #[arg(long)]
    a_outage: bool,
    /// A control (A / A): B is run exactly as A with `--a-outage` (the
    /// outage, no channel), and its window ends at its last detection. B / A
    /// is then the benchmark's own noise, to read the real pairs against.
    #[arg(long)]
    control: bool,
    /// Pairs of runs: A (no outage, or the outage without a channel), then
    /// B (the outage, notified; without a channel in a control).
    #[arg(long, default_value_t = 2)]
    pairs: usize,
    /// Deliver over HTTPS (a self-signed receiver trusted with --notify-ca-cert).
    #[arg(long)]
    https: bool,
    /// Skip the recovery after B's measured window.
    #[arg(long)]
    no_recovery: bool,
    /// Write every run's notifications (arrival time, Unix ms, and the body,
    /// one a line) to `<DIR>/pair<N>-<A|B>.jsonl`.
    #[arg(long, value_name = "DIR")]
    dump: Option<PathBuf>,
    /// Keep every run's data directory as `<DIR>/pair<N>-<A|B>/`.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// The `carewatch` binary; by default the one beside this program.
    #[arg(long)]
    server: Option<PathBuf>,
    /// Use PostgreSQL (CAREWATCH_TEST_DATABASE_URL): every run gets a schema
    /// of its own, seeded afresh; the database backends' CPU over the window
    /// is printed apart.
    #[arg(long)]
    postgres: bool,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    if args.installations == 0 || args.ingest_servers == 0 || args.pairs == 0 {
        return Err("use at least one installation, ingest server and pair".into());
    }
    let binary = match &args.server {
        Some(path) => path.clone(),
        None => carewatch_beside_this_program()?,
    };
    println!("load average before: {}", load_average());
    let seeding = Instant::now();
    let template = Template::seed(&args).await?;
    println!(
        "seeded {} outage installations (1 recording server each) and {} ingest installations \
         ({} recording servers) in {:.1} s",
        thousands(template.outage.len()),
        thousands(template.ingest.len()),
        thousands(args.ingest_servers),
        seeding.elapsed().as_secs_f64()
    );
    let mut pairs: Vec<(Run, Run)> = Vec::new();
    for number in 1..=args.pairs {
        let a = run(&args, &binary, &template, number, false).await?;
        let b = run(&args, &binary, &template, number, true).await?;
        print_pair(number, &args, &a, &b);
        pairs.push((a, b));
    }
    report(&args, &pairs);
    let problems: Vec<String> = pairs
        .iter()
        .enumerate()
        .flat_map(|(n, (a, b))| {
            a.problems
                .iter()
                .chain(&b.problems)
                .map(move |p| format!("pair {}: {p}", n + 1))
        })
        .collect();
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("FAILED: {p}");
        }
        return Err(format!("{} checks failed", problems.len()).into());
    }
    if args.control {
        println!("verified: no notification in either run of a control");
    } else {
        println!("verified: every Offline notification (and resolved one) arrived exactly once");
    }
    Ok(())
}

async fn run(
    args: &Args,
    binary: &Path,
    template: &Template,
    number: usize,
    b: bool,
) -> Result<Run, BoxError> {
    let label = if b { "B" } else { "A" };
    let outage = b || args.a_outage || args.control;
    let notify = b && !args.control;
    let dir = tempfile::tempdir()?;
    template.copy_to(dir.path())?;
    let schema = if args.postgres {
        let schema = BenchSchema::create(&database_url()).await?;
        template.populate(&schema.store).await?;
        Some(schema)
    } else {
        None
    };
    let receiver = ReceiverThread::start(args.https)?;
    let mut extra = vec![
        "--heartbeat-interval".to_owned(),
        format!("{}ms", args.interval.as_millis()),
        "--jitter".to_owned(),
        format!("{}ms", args.jitter.as_millis()),
        // The benchmark's receiver is on loopback.
        "--allow-private-webhooks".to_owned(),
    ];
    if let Some(pem) = receiver.cert_pem() {
        let path = dir.path().join("receiver.pem");
        std::fs::write(&path, pem)?;
        extra.push("--notify-ca-cert".to_owned());
        extra.push(path.display().to_string());
    }
    if let Some(schema) = &schema {
        extra.extend([
            "--database-url".to_owned(),
            database_url(),
            "--database-schema".to_owned(),
            schema.name().to_owned(),
        ]);
    }
    if notify {
        create_channel(
            dir.path(),
            open_run_store(dir.path(), schema.as_ref()).await?,
            &template.reseller,
            receiver.url("/carewatch/events"),
            args.hold,
        )
        .await?;
    }
    let server = Serve::start(binary, dir.path(), &extra).await?;
    let pid = server.pid().ok_or("the server exited")?;
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        channels.push(connect(&server.url, Some(&server.ca_pem)).await?);
    }
    let mut outage_channels = Vec::new();
    for _ in 0..args.outage_connections.max(1) {
        outage_channels.push(connect(&server.url, Some(&server.ca_pem)).await?);
    }
    let clock = Clock::start();
    let sampler = CpuSampler::start(pid, receiver.thread_id(), clock);
    let paced = PacedFleet::start(
        template.outage_servers()?,
        &outage_channels,
        args.outage_workers,
        args.interval,
        clock,
    );
    let flood = Flood::start(
        template.ingest_servers(args.ingest_servers)?,
        &channels,
        args.concurrency,
        clock,
    );
    tokio::time::sleep(Duration::from_secs(args.warmup_seconds)).await;
    let t_ms = clock.now_ms();
    let t_unix = unix_millis(SystemTime::now());
    let db_cpu_at_t = match &schema {
        Some(schema) => Some(backend_cpu(&schema.store, schema.name()).await?),
        None => None,
    };
    if outage {
        paced.silence();
    }
    let before_t = receiver.count();
    println!(
        "pair {number} {label}: listening {:.0} ms after start; T = {} = warm-up end{}",
        server.started_in.as_secs_f64() * 1000.0,
        Timestamp::from_millis(t_unix),
        if outage && !notify {
            ": the outage fleet fell silent (no notification channel)"
        } else if outage {
            ": the outage fleet fell silent"
        } else {
            " (no outage)"
        }
    );
    let window_end = clock.instant(t_ms) + Duration::from_secs(args.seconds);
    tokio::time::sleep_until(window_end.into()).await;
    let load = load_average();
    let n = args.installations;
    let mut timed_out = false;
    if outage && notify {
        let deadline = clock.instant(t_ms) + Duration::from_secs(args.timeout_seconds);
        timed_out = !wait_for(&receiver, before_t + n, deadline).await;
    }
    let measured_until_ms = clock.now_ms();
    if let (Some(schema), Some(at_t)) = (&schema, &db_cpu_at_t) {
        let spent = backend_cpu_spent(at_t, &backend_cpu(&schema.store, schema.name()).await?);
        let window = Duration::from_millis(u64::from(measured_until_ms - t_ms));
        println!(
            "pair {number} {label}: PostgreSQL backends' CPU from T to the window's end: \
             {:.2} s over {:.1} s ({:.1}% of two cores)",
            spent.as_secs_f64(),
            window.as_secs_f64(),
            spent.as_secs_f64() / window.as_secs_f64().max(1e-9) / 2.0 * 100.0
        );
    }
    let mut resumed_unix = None;
    if outage && notify && !args.no_recovery {
        let before = receiver.count();
        paced.resume();
        resumed_unix = Some(unix_millis(SystemTime::now()));
        let deadline = Instant::now() + Duration::from_secs(args.timeout_seconds);
        timed_out |= !wait_for(&receiver, before + n, deadline).await;
    }
    let stalls = server.stalls();
    let ingest = flood.stop().await;
    let paced_acks = paced.stop().await;
    let samples = sampler.stop().await;
    drop(channels);
    drop(outage_channels);
    let received = receiver.received();
    if let Some(dump) = &args.dump {
        let lines: Vec<String> = received
            .iter()
            .map(|r| format!("{} {}", unix_millis(r.at), r.text()))
            .collect();
        std::fs::create_dir_all(dump)?;
        std::fs::write(
            dump.join(format!("pair{number}-{label}.jsonl")),
            lines.join("\n"),
        )?;
    }
    // Notifications before T mean the fleets were not steady: counted
    // (a failure), and kept out of the figures.
    let (notes, early): (Vec<Note>, Vec<Note>) = received
        .iter()
        .map(Note::of)
        .partition(|n| n.arrived >= t_unix);
    drop(received);
    drop(receiver);
    server.stop().await?;

    if let Some(keep) = &args.keep {
        let to = keep.join(format!("pair{number}-{label}"));
        std::fs::create_dir_all(&to)?;
        for entry in std::fs::read_dir(dir.path())? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                std::fs::copy(entry.path(), to.join(entry.file_name()))?;
            }
        }
    }

    // What the server recorded.
    let store = open_run_store(dir.path(), schema.as_ref()).await?;
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut stray_health: BTreeMap<String, usize> = BTreeMap::new();
    let steady_from = t_unix - i64::try_from(args.interval.as_millis())?;
    let mut after = EventId(0);
    loop {
        let events = store.changes(after, 1000).await?;
        let Some(last) = events.last() else { break };
        after = last.id;
        for event in &events {
            let Change::Health { summary, .. } = &event.change else {
                continue;
            };
            let at = event.at.as_millis();
            let slc = event.slc.as_str();
            if slc.starts_with("OUT-") && at >= t_unix {
                let entry = seen.entry(slc.to_owned()).or_default();
                match (entry.offline, summary.health) {
                    (None, Health::Offline) => entry.offline = Some(at),
                    (Some(_), health) if entry.recovered.is_none() && health != Health::Offline => {
                        entry.recovered = Some(at);
                    }
                    _ => {}
                }
            }
            // From one interval before T on (the first status reports are
            // over), the ingest fleet stays Healthy, and so does the outage
            // fleet until T (in A, throughout).
            let fleet = if slc.starts_with("ING-") {
                "ingest fleet"
            } else if !outage || at < t_unix {
                "outage fleet"
            } else {
                continue;
            };
            if at >= steady_from && !matches!(summary.health, Health::Healthy | Health::Pending) {
                *stray_health
                    .entry(format!("{fleet} {:?}", summary.health))
                    .or_default() += 1;
            }
        }
    }
    let entries = store
        .outbox(&template.reseller, OutboxFilter::All, u32::MAX)
        .await?;
    let outbox = [
        entries.len(),
        entries.iter().filter(|e| e.delivered_at.is_some()).count(),
        entries.iter().filter(|e| e.attempts > 1).count(),
        entries.iter().filter(|e| e.failed_at.is_some()).count(),
        entries
            .iter()
            .filter(|e| e.delivered_at.is_none() && e.failed_at.is_none())
            .count(),
    ];
    drop(store);
    if let Some(schema) = schema {
        schema.drop_schema().await?;
    }

    let mut run = Run {
        b,
        outage,
        notify,
        t_ms,
        t_unix,
        measured_until_ms,
        ingest,
        paced: paced_acks,
        samples,
        notes,
        early: early.len(),
        seen,
        outbox,
        stray_health,
        stalls,
        load,
        problems: Vec::new(),
    };
    run.problems = check(args, &run, resumed_unix, timed_out);
    Ok(run)
}

/// A run's store: the SQLite file in `dir`, or the run's PostgreSQL schema.
async fn open_run_store(
    dir: &Path,
    schema: Option<&BenchSchema>,
) -> Result<Arc<dyn Store>, BoxError> {
    Ok(match schema {
        Some(schema) => {
            let config = PostgresConfig::from_url(&database_url())?
                .schema(schema.name())?
                .application_name(schema.name())
                .max_connections(2);
            Arc::new(PostgresStore::open(config).await?)
        }
        None => Arc::new(SqliteStore::open(dir.join(DATABASE)).await?),
    })
}

/// Waits until the receiver has `n` requests or `deadline`; whether it has.
async fn wait_for(receiver: &Receiver, n: usize, deadline: Instant) -> bool {
    loop {
        if receiver.count() >= n {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}
