//! Notifications under a regional outage (issue 17): "10,000 installations
//! going Offline at once produce their notifications within 10 s of
//! detection without slowing ingest by more than 10 %."
//!
//! Every run starts a real `carewatch serve` (SQLite, a copy of one seeded
//! data directory, `--heartbeat-interval` `--interval`, default 5 s) with
//! one reseller and one webhook channel to a receiver in this process
//! (`carewatch_notify::testing::http::Receiver`: plain HTTP on 127.0.0.1,
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
//!    outage). The server finds them Late, then, after 3 missed heartbeats,
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
//!    last notification) and over the same offsets from T in A, and over
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
//! target/release/notifyload --installations 500 --pairs 1 --seconds 30
//! target/release/notifyload --help
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use carewatch_benches::notify::{
    Acks, Clock, CpuSample, CpuSampler, Flood, PacedFleet, Serve, load_average, nearest,
    unix_millis,
};
use carewatch_benches::percentile;
use carewatch_benches::server::{BoxError, carewatch_beside_this_program};
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
use carewatch_storage_sqlite::SqliteStore;
use clap::Parser;
use futures::{StreamExt, TryStreamExt};

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
    /// Pairs of runs: A (no outage), then B (the outage).
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
}

/// The seeded data directory every run copies.
struct Template {
    dir: tempfile::TempDir,
    reseller: ResellerId,
    /// The outage fleet's installations and keys.
    outage: Vec<(Slc, InstallationKey)>,
    /// The ingest fleet's.
    ingest: Vec<(Slc, InstallationKey)>,
}

impl Template {
    /// A data directory holding the master key, a certificate, the reseller,
    /// every installation (consent, a year's subscription) and its key.
    async fn seed(args: &Args) -> Result<Self, BoxError> {
        let dir = tempfile::tempdir()?;
        let (master_key, _) = key_file::load_or_create(&dir.path().join(MASTER_KEY_FILE))?;
        TlsIdentity::self_signed_in(dir.path(), &[])?;
        let store = SqliteStore::open(dir.path().join(DATABASE)).await?;
        let reseller = ResellerId::new("outage-reseller")?;
        let at = SystemClock.now();
        let token = auth::issue_token(&Principal::Reseller(reseller.clone()));
        store
            .create_reseller(
                &Reseller {
                    id: reseller.clone(),
                    name: "Outage Security".into(),
                    created_at: at,
                },
                &token.hash,
            )
            .await?;
        let outage: Vec<(Slc, InstallationKey)> = (0..args.installations)
            .map(|n| Ok((Slc::new(&format!("OUT-{n:06}"))?, key())))
            .collect::<Result<_, BoxError>>()?;
        let ingest_installations = args
            .ingest_servers
            .div_ceil(INGEST_SERVERS_PER_INSTALLATION);
        let ingest: Vec<(Slc, InstallationKey)> = (0..ingest_installations)
            .map(|n| Ok((Slc::new(&format!("ING-{n:06}"))?, key())))
            .collect::<Result<_, BoxError>>()?;
        let product = Product::new("XProtect Corporate", "2016 R3")?;
        let (store_ref, master_key, reseller_ref, product) =
            (&store, &master_key, &reseller, &product);
        futures::stream::iter(outage.iter().chain(&ingest))
            .map(Ok)
            .try_for_each_concurrent(CONCURRENT_WRITES, |(slc, key)| async move {
                store_ref
                    .register_installation(&Installation {
                        slc: slc.clone(),
                        reseller: reseller_ref.clone(),
                        product: product.clone(),
                        subscription_expires_at: Some(
                            at.saturating_add(Duration::from_secs(365 * 24 * 3600)),
                        ),
                        consent: true,
                        registered_at: at,
                    })
                    .await?;
                store_ref
                    .add_installation_key(slc, &master_key.wrap(slc, key), at)
                    .await
            })
            .await?;
        // The last connection closes: SQLite checkpoints and removes the WAL.
        drop(store);
        Ok(Self {
            dir,
            reseller,
            outage,
            ingest,
        })
    }

    /// A fresh copy in `to` (SQLite rebuilds its shared-memory index).
    fn copy_to(&self, to: &Path) -> Result<(), BoxError> {
        for entry in std::fs::read_dir(self.dir.path())? {
            let entry = entry?;
            let name = entry.file_name();
            if entry.file_type()?.is_file() && !name.to_string_lossy().ends_with("-shm") {
                std::fs::copy(entry.path(), to.join(&name))?;
            }
        }
        Ok(())
    }

    fn outage_servers(&self) -> Result<Vec<SimServer>, BoxError> {
        let id = RecordingServerId::new("rs-1")?;
        Ok(self
            .outage
            .iter()
            .map(|(slc, key)| SimServer::new(slc.clone(), id.clone(), key.clone()))
            .collect())
    }

    fn ingest_servers(&self, count: usize) -> Result<Vec<SimServer>, BoxError> {
        let mut servers = Vec::with_capacity(count);
        for (slc, key) in &self.ingest {
            for n in 1..=INGEST_SERVERS_PER_INSTALLATION {
                if servers.len() == count {
                    break;
                }
                let id = RecordingServerId::new(&format!("rs-{n}"))?;
                servers.push(SimServer::new(slc.clone(), id, key.clone()));
            }
        }
        Ok(servers)
    }
}

fn key() -> InstallationKey {
    InstallationKey::generate(KeyId::new(1))
}

/// The webhook channel, created through the facade on a run's database
/// before its server starts (as an admin would on the web page).
async fn create_channel(
    dir: &Path,
    reseller: &ResellerId,
    url: String,
    hold: Duration,
) -> Result<(), BoxError> {
    let (master_key, _) = key_file::load_or_create(&dir.join(MASTER_KEY_FILE))?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.join(DATABASE)).await?);
    let carewatch = Carewatch::open(store, Arc::new(SystemClock), Config::new(master_key)).await?;
    let admin = User {
        reseller: reseller.clone(),
        login: Login::new("admin@outage.example")?,
        name: "Bench Admin".into(),
        role: Role::Admin,
        created_at: carewatch.now(),
    };
    let rules = ChannelRules {
        hold,
        ..ChannelRules::default()
    };
    carewatch
        .create_channel(
            &admin,
            "outage webhook",
            Destination::Webhook { url },
            rules,
        )
        .await?;
    Ok(())
}

/// One notification as the receiver got it.
#[derive(Debug, Clone)]
struct Note {
    key: String,
    header_matches: bool,
    kind: String,
    slc: String,
    health: String,
    /// Receiver arrival, Unix ms.
    arrived: i64,
    /// `at`: when the notifier decided it.
    decided: Option<i64>,
    /// `installation.since`: when the problem began (the detection).
    since: Option<i64>,
    /// `servers_down[0].since`: the server's missed-heartbeat deadline.
    server_since: Option<i64>,
    /// `resolved.recovered_at`.
    recovered_at: Option<i64>,
}

impl Note {
    fn of(received: &Received) -> Self {
        let json = received.json();
        let text = |value: &serde_json::Value| value.as_str().map(str::to_owned);
        let time = |value: &serde_json::Value| value.as_str().and_then(parse_millis);
        let key = text(&json["id"]).unwrap_or_default();
        Self {
            header_matches: received.header("idempotency-key") == Some(key.as_str()),
            key,
            kind: text(&json["kind"]).unwrap_or_default(),
            slc: text(&json["installation"]["slc"]).unwrap_or_default(),
            health: text(&json["installation"]["health"]).unwrap_or_default(),
            arrived: unix_millis(received.at),
            decided: time(&json["at"]),
            since: time(&json["installation"]["since"]),
            server_since: time(&json["servers_down"][0]["since"]),
            recovered_at: time(&json["resolved"]["recovered_at"]),
        }
    }
}

/// RFC 3339 UTC with milliseconds (`2026-12-01T14:00:03.512Z`), in Unix ms.
fn parse_millis(text: &str) -> Option<i64> {
    let whole = Timestamp::parse_utc(text)?.as_millis();
    let fraction = text
        .split_once('.')
        .map_or("", |(_, f)| f.trim_end_matches('Z'));
    let digits: String = fraction.chars().take(3).collect();
    let ms = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<3}").parse::<i64>().ok()?
    };
    Some(whole + ms)
}

/// What the change feed says about one outage installation.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    /// When it was recorded Offline (after T).
    offline: Option<i64>,
    /// When its next health event after that was recorded (the recovery).
    recovered: Option<i64>,
}

/// One run's record.
struct Run {
    /// The pair's B run (A otherwise).
    b: bool,
    /// A notification channel was set up (B only).
    notify: bool,
    /// T (ms since the origin) and as Unix ms.
    t_ms: u32,
    t_unix: i64,
    /// The last ms the fleets were measured in A/B terms (before recovery).
    measured_until_ms: u32,
    ingest: Acks,
    paced: Acks,
    samples: Vec<CpuSample>,
    /// Notifications that arrived after T.
    notes: Vec<Note>,
    /// Notifications that arrived before T (during the warm-up).
    early: usize,
    seen: HashMap<String, Seen>,
    /// Outbox: entries, delivered, retried (attempts > 1), given up, pending.
    outbox: [usize; 5],
    /// Health events other than Pending/Healthy from one interval before T
    /// on, of the ingest fleet and (in A) of the outage fleet, by fleet and
    /// health.
    stray_health: BTreeMap<String, usize>,
    /// Storage stalls the server logged (Unix ms).
    stalls: Vec<i64>,
    load: String,
    problems: Vec<String>,
}

/// Ingest over a window.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    heartbeats_per_s: f64,
    p99_ms: f64,
    server_cpu_us: Option<f64>,
    generator_cpu_us: Option<f64>,
    seconds: f64,
}

impl Run {
    /// Ingest between `from_ms` and `to_ms` (since the origin).
    fn window(&self, from_ms: u32, to_ms: u32) -> Window {
        let to_ms = to_ms.min(self.measured_until_ms).max(from_ms + 1);
        let in_window = |acks: &[(u32, u32)], a: u32, b: u32| -> Vec<u32> {
            let start = acks.partition_point(|&(at, _)| at < a);
            let end = acks.partition_point(|&(at, _)| at < b);
            acks[start..end].iter().map(|&(_, l)| l).collect()
        };
        let mut latencies = in_window(&self.ingest.acks, from_ms, to_ms);
        latencies.sort_unstable();
        let seconds = f64::from(to_ms - from_ms) / 1000.0;
        let cpu = nearest(&self.samples, from_ms).zip(nearest(&self.samples, to_ms));
        let (server_cpu_us, generator_cpu_us) = match cpu {
            Some((a, b)) if b.at_ms > a.at_ms => {
                let heartbeats = in_window(&self.ingest.acks, a.at_ms, b.at_ms).len()
                    + in_window(&self.paced.acks, a.at_ms, b.at_ms).len();
                let per = |x: Option<Duration>, y: Option<Duration>| {
                    Some((y? - x?).as_secs_f64() * 1e6 / heartbeats.max(1) as f64)
                };
                (per(a.server, b.server), per(a.this, b.this))
            }
            _ => (None, None),
        };
        Window {
            heartbeats_per_s: latencies.len() as f64 / seconds,
            p99_ms: percentile(&latencies, 99.0),
            server_cpu_us,
            generator_cpu_us,
            seconds,
        }
    }

    /// Offsets from T (ms) of B's outage window: first detection to last
    /// Offline notification.
    fn outage_offsets(&self) -> Option<(i64, i64)> {
        let first = self.seen.values().filter_map(|s| s.offline).min()?;
        let last = self
            .notes
            .iter()
            .filter(|n| n.kind == "problem")
            .map(|n| n.arrived)
            .max()?;
        Some((first - self.t_unix, last - self.t_unix))
    }

    fn at_offset(&self, offset: i64) -> u32 {
        u32::try_from((i64::from(self.t_ms) + offset).max(0)).unwrap_or(u32::MAX)
    }
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
    println!("verified: every Offline notification (and resolved one) arrived exactly once");
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
    let outage = b || args.a_outage;
    let notify = b;
    let dir = tempfile::tempdir()?;
    template.copy_to(dir.path())?;
    let receiver = if args.https {
        Receiver::start_tls().await
    } else {
        Receiver::start().await
    };
    let mut extra = vec![
        "--heartbeat-interval".to_owned(),
        format!("{}ms", args.interval.as_millis()),
        "--jitter".to_owned(),
        format!("{}ms", args.jitter.as_millis()),
    ];
    if let Some(pem) = receiver.cert_pem() {
        let path = dir.path().join("receiver.pem");
        std::fs::write(&path, pem)?;
        extra.push("--notify-ca-cert".to_owned());
        extra.push(path.display().to_string());
    }
    if notify {
        create_channel(
            dir.path(),
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
    let sampler = CpuSampler::start(pid, clock);
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
    let store = SqliteStore::open(dir.path().join(DATABASE)).await?;
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

    let mut run = Run {
        b,
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

/// What is wrong with a run.
fn check(args: &Args, run: &Run, resumed_unix: Option<i64>, timed_out: bool) -> Vec<String> {
    let label = if run.b { "B" } else { "A" };
    let mut problems = Vec::new();
    if timed_out {
        problems.push(format!(
            "{label}: not every notification came within {} s",
            args.timeout_seconds
        ));
    }
    // Late servers (Attention) are reported, not failed: no notification
    // follows, but they show the fleets were not steady.
    let wrong: usize = run
        .stray_health
        .iter()
        .filter(|(k, _)| !k.ends_with("Attention"))
        .map(|(_, n)| n)
        .sum();
    if wrong > 0 {
        problems.push(format!(
            "{label}: unexpected health changes: {:?}",
            run.stray_health
        ));
    }
    if run.early > 0 {
        problems.push(format!(
            "{label}: {} notifications during the warm-up (the fleets were not steady)",
            run.early
        ));
    }
    if run.ingest.error_count() > 0 || run.paced.error_count() > 0 {
        problems.push(format!(
            "{label}: heartbeat errors: ingest {:?}, outage fleet {:?}",
            run.ingest.errors, run.paced.errors
        ));
    }
    if !run.notify {
        if !run.notes.is_empty() {
            problems.push(format!(
                "A: {} notifications without a channel or an outage",
                run.notes.len()
            ));
        }
        return problems;
    }
    let mut keys: HashMap<&str, usize> = HashMap::new();
    for note in &run.notes {
        *keys.entry(note.key.as_str()).or_default() += 1;
    }
    let duplicates: usize = keys.values().map(|n| n - 1).sum();
    if duplicates > 0 {
        problems.push(format!(
            "B: {duplicates} notifications came again (same key)"
        ));
    }
    let mismatched = run.notes.iter().filter(|n| !n.header_matches).count();
    if mismatched > 0 {
        problems.push(format!(
            "B: {mismatched} Idempotency-Key headers differ from the body's id"
        ));
    }
    let expected: HashSet<String> = (0..args.installations)
        .map(|n| format!("OUT-{n:06}"))
        .collect();
    let per_slc = |kind: &str| {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for note in run.notes.iter().filter(|n| n.kind == kind) {
            *counts.entry(note.slc.as_str()).or_default() += 1;
        }
        counts
    };
    let problem = per_slc("problem");
    let missing = expected
        .iter()
        .filter(|s| !problem.contains_key(s.as_str()))
        .count();
    if missing > 0 {
        problems.push(format!(
            "B: {missing} of {} Offline notifications missing",
            args.installations
        ));
    }
    let twice = problem.values().filter(|&&n| n > 1).count();
    if twice > 0 {
        problems.push(format!(
            "B: {twice} installations got more than one problem notification"
        ));
    }
    let not_offline = run
        .notes
        .iter()
        .filter(|n| n.kind == "problem" && n.health != "offline")
        .count();
    if not_offline > 0 {
        problems.push(format!(
            "B: {not_offline} problem notifications not Offline"
        ));
    }
    let others = run
        .notes
        .iter()
        .filter(|n| {
            !expected.contains(&n.slc) || !matches!(n.kind.as_str(), "problem" | "resolved")
        })
        .count();
    if others > 0 {
        problems.push(format!(
            "B: {others} notifications about other installations or of other kinds"
        ));
    }
    let undetected = expected
        .iter()
        .filter(|s| run.seen.get(s.as_str()).is_none_or(|s| s.offline.is_none()))
        .count();
    if undetected > 0 {
        problems.push(format!(
            "B: {undetected} installations never recorded Offline"
        ));
    }
    let since_differs = run
        .notes
        .iter()
        .filter(|n| n.kind == "problem")
        .filter(|n| run.seen.get(&n.slc).and_then(|s| s.offline) != n.since)
        .count();
    if since_differs > 0 {
        problems.push(format!(
            "B: {since_differs} payloads' installation.since differ from the feed's Offline instant"
        ));
    }
    if resumed_unix.is_some() {
        let resolved = per_slc("resolved");
        let missing = expected
            .iter()
            .filter(|s| !resolved.contains_key(s.as_str()))
            .count();
        if missing > 0 {
            problems.push(format!(
                "B: {missing} of {} resolved notifications missing",
                args.installations
            ));
        }
    }
    if run.outbox[3] > 0 || run.outbox[4] > 0 {
        problems.push(format!(
            "B: outbox has {} given up and {} pending entries",
            run.outbox[3], run.outbox[4]
        ));
    }
    problems
}

/// Latencies of B's notifications.
#[derive(Debug, Default)]
struct Latency {
    /// Offline: detection → arrival, notifier (detection → `at`), delivery
    /// (`at` → arrival), sweep (deadline → detection); ms.
    arrival: Vec<i64>,
    notifier: Vec<i64>,
    delivery: Vec<i64>,
    sweep: Vec<i64>,
    /// First detection → last Offline notification; detections' spread.
    first_to_last_ms: Option<i64>,
    detection_spread_ms: Option<i64>,
    /// Detection's first instant from T.
    first_detection_from_t_ms: Option<i64>,
    /// First to last Offline notification queued (`at`), and arrived.
    queued_span_ms: Option<i64>,
    arrival_span_ms: Option<i64>,
    /// Resolved: recovery → arrival.
    resolved: Vec<i64>,
    offline_received: usize,
    resolved_received: usize,
}

fn latency(run: &Run) -> Latency {
    let mut l = Latency::default();
    let mut offline_slcs = HashSet::new();
    let mut resolved_slcs = HashSet::new();
    for note in &run.notes {
        let seen = run.seen.get(&note.slc).copied().unwrap_or_default();
        match note.kind.as_str() {
            "problem" => {
                offline_slcs.insert(note.slc.as_str());
                if let Some(detected) = seen.offline.or(note.since) {
                    l.arrival.push(note.arrived - detected);
                    if let Some(decided) = note.decided {
                        l.notifier.push(decided - detected);
                    }
                    if let Some(deadline) = note.server_since {
                        l.sweep.push(detected - deadline);
                    }
                }
                if let Some(decided) = note.decided {
                    l.delivery.push(note.arrived - decided);
                }
            }
            "resolved" => {
                resolved_slcs.insert(note.slc.as_str());
                if let Some(recovered) = seen.recovered.or(note.recovered_at) {
                    l.resolved.push(note.arrived - recovered);
                }
            }
            _ => {}
        }
    }
    l.offline_received = offline_slcs.len();
    l.resolved_received = resolved_slcs.len();
    let detections: Vec<i64> = run.seen.values().filter_map(|s| s.offline).collect();
    let first = detections.iter().min().copied();
    let last_detection = detections.iter().max().copied();
    let last_arrival = run
        .notes
        .iter()
        .filter(|n| n.kind == "problem")
        .map(|n| n.arrived)
        .max();
    l.first_to_last_ms = first.zip(last_arrival).map(|(a, b)| b - a);
    l.detection_spread_ms = first.zip(last_detection).map(|(a, b)| b - a);
    l.first_detection_from_t_ms = first.map(|f| f - run.t_unix);
    let span = |values: Vec<i64>| {
        let first = values.iter().min()?;
        Some(values.iter().max()? - first)
    };
    let problems = || run.notes.iter().filter(|n| n.kind == "problem");
    l.queued_span_ms = span(problems().filter_map(|n| n.decided).collect());
    l.arrival_span_ms = span(problems().map(|n| n.arrived).collect());
    for v in [
        &mut l.arrival,
        &mut l.notifier,
        &mut l.delivery,
        &mut l.sweep,
        &mut l.resolved,
    ] {
        v.sort_unstable();
    }
    l
}

/// The `p`th percentile of sorted milliseconds, in seconds.
fn pct_s(sorted: &[i64], p: f64) -> String {
    let Some(last) = sorted.len().checked_sub(1) else {
        return "?".to_owned();
    };
    let rank = ((p / 100.0) * last as f64).round() as usize;
    format!("{:.2}", sorted[rank.min(last)] as f64 / 1000.0)
}

fn spread_s(sorted: &[i64]) -> String {
    format!(
        "p50 {} s, p99 {} s, max {} s",
        pct_s(sorted, 50.0),
        pct_s(sorted, 99.0),
        pct_s(sorted, 100.0)
    )
}

/// A figure of run A and of run B, if known.
type AandB = (Option<f64>, Option<f64>);

/// Ingest in A and B over B's outage window and over [T, T + seconds].
struct PairIngest {
    outage_a: Window,
    outage_b: Window,
    fixed_a: Window,
    fixed_b: Window,
    /// B's window reached past A's measured end (A's was cut).
    clipped: bool,
}

fn pair_ingest(args: &Args, a: &Run, b: &Run) -> PairIngest {
    let seconds_ms = u32::try_from(args.seconds * 1000).unwrap_or(u32::MAX);
    let fixed_a = a.window(a.t_ms, a.t_ms + seconds_ms);
    let fixed_b = b.window(b.t_ms, b.t_ms + seconds_ms);
    let (from, to) = b.outage_offsets().unwrap_or((0, i64::from(seconds_ms)));
    let outage_b = b.window(b.at_offset(from), b.at_offset(to));
    let outage_a = a.window(a.at_offset(from), a.at_offset(to));
    PairIngest {
        clipped: a.at_offset(to) > a.measured_until_ms,
        outage_a,
        outage_b,
        fixed_a,
        fixed_b,
    }
}

fn opt1(v: Option<f64>) -> String {
    v.map_or_else(|| "?".to_owned(), |v| format!("{v:.1}"))
}

fn print_pair(number: usize, args: &Args, a: &Run, b: &Run) {
    let ingest = pair_ingest(args, a, b);
    let l = latency(b);
    println!(
        "pair {number} B: {} of {} Offline notifications (detection → arrival {}); first \
         detection {:.1} s after T, detections spread over {:.1} s, first detection → last \
         notification {:.1} s; {} of {} resolved ({}); outbox {} entries, {} delivered, {} \
         retried, {} given up, {} pending",
        l.offline_received,
        args.installations,
        spread_s(&l.arrival),
        l.first_detection_from_t_ms.unwrap_or(0) as f64 / 1000.0,
        l.detection_spread_ms.unwrap_or(0) as f64 / 1000.0,
        l.first_to_last_ms.unwrap_or(0) as f64 / 1000.0,
        l.resolved_received,
        args.installations,
        spread_s(&l.resolved),
        b.outbox[0],
        b.outbox[1],
        b.outbox[2],
        b.outbox[3],
        b.outbox[4],
    );
    for (run, label) in [(a, "A"), (b, "B")] {
        let (before, after) = run
            .stalls
            .iter()
            .partition::<Vec<i64>, _>(|&&at| at < run.t_unix);
        println!(
            "pair {number} {label}: outage servers' longest gap beyond their interval {:.2} s; \
             Late servers (health events) {:?}; storage stalls (writes > 1 s) {} before T, {} \
             after (at T + {:?} s)",
            run.paced.max_late.as_secs_f64(),
            run.stray_health,
            before.len(),
            after.len(),
            after
                .iter()
                .map(|at| (at - run.t_unix) / 1000)
                .collect::<Vec<_>>()
        );
    }
    println!(
        "pair {number} ingest over B's outage window ({:.1} s{}): A {:.0}/s, B {:.0}/s, B/A \
         {:.3}; server CPU per heartbeat A {} µs, B {} µs; over [T, T+{} s]: A {:.0}/s, B \
         {:.0}/s, B/A {:.3}; load average {} / {}",
        ingest.outage_b.seconds,
        if ingest.clipped {
            ", A's cut short"
        } else {
            ""
        },
        ingest.outage_a.heartbeats_per_s,
        ingest.outage_b.heartbeats_per_s,
        ingest.outage_b.heartbeats_per_s / ingest.outage_a.heartbeats_per_s,
        opt1(ingest.outage_a.server_cpu_us),
        opt1(ingest.outage_b.server_cpu_us),
        args.seconds,
        ingest.fixed_a.heartbeats_per_s,
        ingest.fixed_b.heartbeats_per_s,
        ingest.fixed_b.heartbeats_per_s / ingest.fixed_a.heartbeats_per_s,
        a.load,
        b.load,
    );
}

fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// What run A is.
fn a_label(args: &Args) -> &'static str {
    if args.a_outage {
        "A: the outage without a notification channel, B: the outage notified"
    } else {
        "A: no outage, B: outage"
    }
}

fn report(args: &Args, pairs: &[(Run, Run)]) {
    let command: Vec<String> = std::env::args().collect();
    println!();
    println!("command: {}", command.join(" "));
    println!(
        "outage fleet: {} installations × 1 recording server, one heartbeat each per {} ms \
         ({:.0}/s), {} streams; ingest fleet: {} recording servers ({} per installation), {} in \
         flight over {} connections, stream mode; serve --heartbeat-interval {} ms --jitter {} \
         ms; webhook over {}, hold {} s (default rules: Critical, Offline, their recovery); \
         {} pairs ({}), {} s warm-up, fresh data directory per run",
        thousands(args.installations),
        args.interval.as_millis(),
        args.installations as f64 / args.interval.as_secs_f64(),
        args.outage_workers,
        thousands(args.ingest_servers),
        INGEST_SERVERS_PER_INSTALLATION,
        args.concurrency,
        args.connections,
        args.interval.as_millis(),
        args.jitter.as_millis(),
        if args.https { "HTTPS" } else { "plain HTTP" },
        args.hold.as_secs_f64(),
        pairs.len(),
        a_label(args),
        args.warmup_seconds,
    );
    println!();
    println!("| measure | per B run | target |");
    println!("|---|---|---|");
    let lat: Vec<Latency> = pairs.iter().map(|(_, b)| latency(b)).collect();
    let each = |f: &dyn Fn(&Latency) -> String| -> String {
        lat.iter().map(f).collect::<Vec<_>>().join("; ")
    };
    println!(
        "| Offline notifications received (one per installation) | {} | all {} |",
        each(&|l| format!("{}", l.offline_received)),
        thousands(args.installations)
    );
    println!(
        "| detection → webhook arrival | {} | ≤ 10 s |",
        each(&|l| spread_s(&l.arrival))
    );
    println!(
        "| … within 10 s | {} | all |",
        each(&|l| format!(
            "{} of {}",
            l.arrival
                .iter()
                .filter(|&&ms| ms <= TARGET_LATENCY_MS)
                .count(),
            l.arrival.len()
        ))
    );
    println!(
        "| first detection → last Offline notification | {} | |",
        each(&|l| format!("{:.1} s", l.first_to_last_ms.unwrap_or(0) as f64 / 1000.0))
    );
    println!(
        "| detections spread over (first → last) | {} | |",
        each(&|l| format!(
            "{:.1} s",
            l.detection_spread_ms.unwrap_or(0) as f64 / 1000.0
        ))
    );
    println!(
        "| first detection after the outage began | {} | |",
        each(&|l| format!(
            "{:.1} s",
            l.first_detection_from_t_ms.unwrap_or(0) as f64 / 1000.0
        ))
    );
    let rate = |span: Option<i64>, n: usize| match span {
        Some(ms) if ms > 0 => format!(
            "{:.1} s, {:.0}/s",
            ms as f64 / 1000.0,
            n as f64 * 1000.0 / ms as f64
        ),
        _ => "?".to_owned(),
    };
    println!(
        "| Offline notifications queued, first → last (payload `at`) | {} | |",
        each(&|l| rate(l.queued_span_ms, l.offline_received))
    );
    println!(
        "| Offline notifications arrived, first → last | {} | |",
        each(&|l| rate(l.arrival_span_ms, l.offline_received))
    );
    println!(
        "| … detection → queued (notifier, payload `at`) | {} | |",
        each(&|l| spread_s(&l.notifier))
    );
    println!(
        "| … queued → arrival (delivery) | {} | |",
        each(&|l| spread_s(&l.delivery))
    );
    println!(
        "| third heartbeat due → detection (2 s jitter tolerance, sweep) | {} | |",
        each(&|l| spread_s(&l.sweep))
    );
    println!(
        "| duplicates (same key twice) / retried / given up | {} | 0 / 0 / 0 |",
        pairs
            .iter()
            .map(|(_, b)| {
                let mut keys = HashSet::new();
                let duplicates = b.notes.iter().filter(|n| !keys.insert(&n.key)).count();
                format!("{duplicates} / {} / {}", b.outbox[2], b.outbox[3])
            })
            .collect::<Vec<_>>()
            .join("; ")
    );
    if !args.no_recovery {
        println!(
            "| resolved notifications received | {} | all {} |",
            each(&|l| format!("{}", l.resolved_received)),
            thousands(args.installations)
        );
        println!(
            "| recovery → resolved arrival | {} | |",
            each(&|l| spread_s(&l.resolved))
        );
    }
    println!();
    println!(
        "| ingest fleet | A ({}) | B (outage, notifying) | B / A, per pair | median B / A | target |",
        if args.a_outage {
            "outage, no channel"
        } else {
            "no outage"
        }
    );
    println!("|---|---|---|---|---|---|");
    let ingest: Vec<PairIngest> = pairs.iter().map(|(a, b)| pair_ingest(args, a, b)).collect();
    let row = |name: &str, pick: &dyn Fn(&PairIngest) -> AandB, digits: usize, target: &str| {
        let join = |side: usize| {
            ingest
                .iter()
                .map(|p| {
                    let v = pick(p);
                    let v = if side == 0 { v.0 } else { v.1 };
                    v.map_or_else(|| "?".to_owned(), |v| format!("{v:.digits$}"))
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut ratios: Vec<f64> = ingest
            .iter()
            .filter_map(|p| {
                let (a, b) = pick(p);
                Some(b? / a?)
            })
            .collect();
        let each: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
        let m = median(&mut ratios).map_or_else(|| "?".to_owned(), |m| format!("{m:.3}"));
        println!(
            "| {name} | {} | {} | {} | {m} | {target} |",
            join(0),
            join(1),
            each.join(", ")
        );
    };
    row(
        "heartbeats/s, B's outage window (first detection → last notification)",
        &|p| {
            (
                Some(p.outage_a.heartbeats_per_s),
                Some(p.outage_b.heartbeats_per_s),
            )
        },
        0,
        &format!("≥ {TARGET_RATIO:.2}"),
    );
    row(
        &format!("heartbeats/s, [T, T + {} s]", args.seconds),
        &|p| {
            (
                Some(p.fixed_a.heartbeats_per_s),
                Some(p.fixed_b.heartbeats_per_s),
            )
        },
        0,
        "",
    );
    row(
        "server CPU per heartbeat (both fleets), outage window, µs",
        &|p| (p.outage_a.server_cpu_us, p.outage_b.server_cpu_us),
        1,
        "",
    );
    row(
        "generator CPU per heartbeat, outage window, µs",
        &|p| (p.outage_a.generator_cpu_us, p.outage_b.generator_cpu_us),
        1,
        "",
    );
    row(
        "heartbeat p99, outage window, ms",
        &|p| (Some(p.outage_a.p99_ms), Some(p.outage_b.p99_ms)),
        2,
        "",
    );
    let windows: Vec<String> = ingest
        .iter()
        .map(|p| {
            format!(
                "{:.1} s{}",
                p.outage_b.seconds,
                if p.clipped { " (A cut short)" } else { "" }
            )
        })
        .collect();
    let loads: Vec<String> = pairs
        .iter()
        .map(|(a, b)| format!("{} / {}", a.load, b.load))
        .collect();
    let outage_hb: Vec<String> = pairs
        .iter()
        .map(|(a, _)| {
            let w = a.window(a.t_ms, a.measured_until_ms);
            let n = a
                .paced
                .acks
                .iter()
                .filter(|&&(at, _)| at >= a.t_ms && at < a.measured_until_ms)
                .count();
            format!("{:.0}", n as f64 / w.seconds)
        })
        .collect();
    println!();
    println!(
        "outage windows: {}; outage fleet heartbeats/s in A after T: {}; load average at T + {} \
         s (A / B): {}",
        windows.join(", "),
        outage_hb.join(", "),
        args.seconds,
        loads.join("; ")
    );
}

fn thousands(n: usize) -> String {
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
