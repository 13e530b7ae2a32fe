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
use carewatch_benches::percentile;
use carewatch_benches::server::{
    BoxError, Memory, ServerProcess, carewatch_beside_this_program, cpu_time,
};
use carewatch_benches::web::{LivePage, LiveStats, Protocol, WebClient, cookie_header, form};
use carewatch_benches::{Fleet, SeededHealth};
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

/// Writes the data directory `carewatch serve` will start on.
async fn seed(dir: &Path, args: &Args) -> Result<Seeded, BoxError> {
    let (master_key, _) = key_file::load_or_create(&dir.join(MASTER_KEY_FILE))?;
    TlsIdentity::self_signed_in(dir, &[])?;
    let store = SqliteStore::open(dir.join(DATABASE)).await?;
    let operator = ResellerId::new(OPERATOR)?;
    let operator_token = auth::issue_token(&Principal::Operator(operator.clone()));
    store
        .set_operator_token(&operator, &operator_token.hash)
        .await?;

    let fleet = Fleet::generate(args.installations - args.pending);
    let reseller_token = auth::issue_token(&Principal::Reseller(fleet.reseller.clone()));
    let at = SystemClock.now();
    fleet.seed_at(&store, &reseller_token.hash, at).await?;
    let product = Product::new("XProtect Corporate", "2022 R1")?;
    let store_ref = &store;
    futures::stream::iter(0..args.pending)
        .map(Ok)
        .try_for_each_concurrent(CONCURRENT_WRITES, |n| {
            let installation = Slc::new(&format!("PD-{n:06}")).map(|slc| Installation {
                slc,
                reseller: fleet.reseller.clone(),
                product: product.clone(),
                subscription_expires_at: Some(
                    at.saturating_add(Duration::from_secs(365 * 24 * 3600)),
                ),
                consent: true,
                registered_at: at,
            });
            async move { store_ref.register_installation(&installation?).await }
        })
        .await?;

    let keys: Vec<InstallationKey> = fleet
        .installations
        .iter()
        .map(|_| InstallationKey::generate(KeyId::new(1)))
        .collect();
    let master_key = &master_key;
    futures::stream::iter(fleet.installations.iter().zip(&keys))
        .map(Ok)
        .try_for_each_concurrent(CONCURRENT_WRITES, |(installation, key)| async move {
            let wrapped = master_key.wrap(&installation.slc, key);
            store_ref
                .add_installation_key(&installation.slc, &wrapped, at)
                .await
        })
        .await?;

    // The fleet reported until now, and no live server falls due for an hour.
    let sequence = u64::try_from(SystemClock.now().as_millis())?;
    let applied = fleet
        .heartbeat(&store, sequence, SEEDED_INTERVAL, &|| SystemClock.now())
        .await?;
    if applied != fleet.live_server_count() {
        return Err(format!(
            "only {applied} of {} refresh heartbeats were applied",
            fleet.live_server_count()
        )
        .into());
    }

    // Viewers and the live pages' sessions; one password hash for all.
    let password_hash = Password::new(PASSWORD)?.hash()?;
    let users: Vec<User> = futures::stream::iter(0..args.users)
        .map(|n| {
            let reseller = fleet.reseller.clone();
            let password_hash = &password_hash;
            async move {
                let secret = issue_secret(INVITATION_PREFIX);
                let invitation = InvitationRecord {
                    hash: secret.hash.clone(),
                    user: User {
                        reseller,
                        login: Login::new(&format!("viewer{n:04}@bench.example"))?,
                        name: format!("Technician {n}"),
                        role: Role::Viewer,
                        created_at: at,
                    },
                    invited_by: None,
                    expires_at: at.saturating_add(Duration::from_secs(3600)),
                };
                store_ref.create_invitation(&invitation).await?;
                store_ref
                    .accept_invitation(&secret.hash, password_hash, at)
                    .await
            }
        })
        .buffer_unordered(CONCURRENT_WRITES)
        .try_collect()
        .await?;
    let now = SystemClock.now();
    let sessions: Vec<String> = futures::stream::iter(0..args.pages)
        .map(|n| {
            let user = users[n % users.len()].clone();
            async move {
                let secret = issue_secret(SESSION_PREFIX);
                store_ref
                    .create_session(&SessionRecord {
                        hash: secret.hash.clone(),
                        user,
                        created_at: now,
                        expires_at: now.saturating_add(SESSION_LIFETIME),
                    })
                    .await?;
                Ok::<_, carewatch_core::Error>(secret.token.to_string())
            }
        })
        .buffer_unordered(CONCURRENT_WRITES)
        .try_collect()
        .await?;

    // The server that starts next finds the fleet received until now.
    store
        .mark_alive(&LivenessMark {
            node: NODE_ID.to_owned(),
            at: SystemClock.now(),
            reason: MarkReason::Running,
            tolerance: Duration::from_secs(3),
        })
        .await?;
    drop(store);

    let count = |health| fleet.installations_with(health).count() as u64;
    let expected = Totals {
        healthy: count(SeededHealth::Healthy),
        pending: args.pending as u64,
        attention: count(SeededHealth::Attention),
        critical: count(SeededHealth::CriticalCondition) + count(SeededHealth::OneServerDown),
        offline: count(SeededHealth::Offline),
    };
    Ok(Seeded {
        fleet,
        reseller_token: reseller_token.token.to_string(),
        operator_token: operator_token.token.to_string(),
        keys,
        sessions,
        expected,
    })
}

/// The operator invites an admin over gRPC; the admin accepts on `/invite`
/// and signs in on `/login`, as in a browser. Returns the session secret.
async fn admin_sign_in(
    web: &mut carewatch_benches::web::Connection,
    grpc: Channel,
    seeded: &Seeded,
) -> Result<String, BoxError> {
    let bearer = Bearer::new(&seeded.operator_token).ok_or("unusable operator token")?;
    let invitation = AdminClient::with_interceptor(grpc, bearer)
        .invite_user(InviteUserRequest {
            reseller_id: seeded.fleet.reseller.to_string(),
            login: ADMIN_LOGIN.into(),
            name: "Bench Admin".into(),
            role: "admin".into(),
        })
        .await?
        .into_inner();

    let page = web.get("/invite", &[]).await?;
    let token = page
        .cookie(FORM_COOKIE)
        .ok_or("/invite set no form cookie")?;
    let accepted = web
        .fetch(
            http::Method::POST,
            "/invite",
            &[cookie_header(FORM_COOKIE, &token)],
            Some(form(&[
                (CSRF_FIELD, &token),
                ("code", &invitation.secret),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
            ])),
        )
        .await?;
    if accepted.status != StatusCode::SEE_OTHER || accepted.cookie(SESSION_COOKIE).is_none() {
        return Err(format!("accepting the invitation answered {}", accepted.status).into());
    }

    let page = web.get("/login", &[]).await?;
    let token = page
        .cookie(FORM_COOKIE)
        .ok_or("/login set no form cookie")?;
    let signed_in = web
        .fetch(
            http::Method::POST,
            "/login",
            &[cookie_header(FORM_COOKIE, &token)],
            Some(form(&[
                (CSRF_FIELD, &token),
                ("login", ADMIN_LOGIN),
                ("password", PASSWORD),
            ])),
        )
        .await?;
    let session = signed_in
        .cookie(SESSION_COOKIE)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("signing in answered {} without a session", signed_in.status))?;
    Ok(session)
}

/// The JSON list's totals must be the seeded fleet's.
async fn check_totals(
    web: &mut carewatch_benches::web::Connection,
    seeded: &Seeded,
) -> Result<(), BoxError> {
    let reply = web
        .get(
            "/api/v1/installations",
            &[bearer_header(&seeded.reseller_token)],
        )
        .await?;
    if reply.status != StatusCode::OK {
        return Err(format!("/api/v1/installations answered {}", reply.status).into());
    }
    let json: serde_json::Value = serde_json::from_slice(&reply.body)?;
    let totals = Totals::of_json(&json).ok_or("no totals in the JSON list")?;
    if totals != seeded.expected {
        return Err(format!(
            "the server shows {totals:?}; the seeded fleet is {:?}",
            seeded.expected
        )
        .into());
    }
    Ok(())
}

fn bearer_header(token: &str) -> (header::HeaderName, String) {
    (header::AUTHORIZATION, format!("Bearer {token}"))
}

/// How a kind of request is authenticated.
#[derive(Debug, Clone, Copy)]
enum Auth {
    /// The admin's session cookie (the web page).
    Session,
    /// The reseller's token (the JSON API).
    Bearer,
}

/// The requests measured: name, path, credential, and text the body must hold.
const KINDS: [(&str, &str, Auth, &str); 5] = [
    (
        "page `/` (not Healthy, 50 rows)",
        "/",
        Auth::Session,
        "Installations needing attention",
    ),
    (
        "page `/?all=1` (50 rows)",
        "/?all=1",
        Auth::Session,
        "All installations",
    ),
    (
        "page `/?all=1&q=0042` (search)",
        "/?all=1&q=0042",
        Auth::Session,
        "matching",
    ),
    (
        "JSON `/api/v1/installations` (50 rows)",
        "/api/v1/installations",
        Auth::Bearer,
        "\"totals\"",
    ),
    (
        "JSON `?all=1&limit=100`",
        "/api/v1/installations?all=1&limit=100",
        Auth::Bearer,
        "\"totals\"",
    ),
];

/// The admin's session and the reseller's token.
struct Bench {
    session: String,
    reseller_token: String,
}

/// Latencies of one kind, in microseconds.
type Latencies = Vec<(&'static str, Vec<u32>)>;

impl Bench {
    fn credential(&self, auth: Auth) -> (header::HeaderName, String) {
        match auth {
            Auth::Session => cookie_header(SESSION_COOKIE, &self.session),
            Auth::Bearer => bearer_header(&self.reseller_token),
        }
    }

    /// Every kind in turn, one request at a time: warm-up, then measured.
    async fn latencies(
        &self,
        web: &mut carewatch_benches::web::Connection,
        args: &Args,
    ) -> Result<Latencies, BoxError> {
        let mut out: Latencies = KINDS
            .iter()
            .map(|k| (k.0, Vec::with_capacity(args.requests)))
            .collect();
        for round in 0..args.warmup_requests + args.requests {
            for (n, (name, path, auth, must_hold)) in KINDS.iter().enumerate() {
                let credential = self.credential(*auth);
                let began = Instant::now();
                let reply = web.get(path, &[credential]).await?;
                let took = began.elapsed();
                if reply.status != StatusCode::OK {
                    return Err(format!("{name} answered {}", reply.status).into());
                }
                if round == 0 && !reply.text().contains(must_hold) {
                    return Err(format!("{name}: the body lacks {must_hold:?}").into());
                }
                if round >= args.warmup_requests {
                    out[n]
                        .1
                        .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
                }
            }
        }
        for (_, l) in &mut out {
            l.sort_unstable();
        }
        Ok(out)
    }

    /// The live stream's address the overview page gives its script (its
    /// feed position when read).
    async fn events_path(
        &self,
        web: &mut carewatch_benches::web::Connection,
    ) -> Result<String, BoxError> {
        let reply = web.get("/", &[self.credential(Auth::Session)]).await?;
        let text = reply.text();
        let start = text
            .find("data-events=\"")
            .ok_or("the overview has no live stream address")?
            + "data-events=\"".len();
        let end = text[start..].find('"').ok_or("unterminated attribute")? + start;
        Ok(text[start..end].replace("&amp;", "&"))
    }
}

/// One ingest run's figures.
#[derive(Debug, Clone)]
struct IngestRun {
    heartbeats_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    server_cpu_us: Option<f64>,
    generator_cpu_us: Option<f64>,
    rss_after: Option<Memory>,
    changes: u64,
    /// Events each open page received during the measured seconds: min, max.
    page_events: Option<(u64, u64)>,
    /// Seconds since the previous ingest run ended.
    gap_s: f64,
}

#[allow(clippy::too_many_arguments)]
async fn ingest_run(
    workers: &mut Workers,
    channels: &[Channel],
    mode: ingest::Mode,
    args: &Args,
    server: &ServerProcess,
    site: &Site,
    pages: &[LivePage],
    last_ingest: Instant,
) -> Result<IngestRun, BoxError> {
    let gap = last_ingest.elapsed();
    if gap > INGEST_INTERVAL.saturating_sub(Duration::from_secs(5)) {
        eprintln!(
            "warning: {:.0} s since the last ingest run: the ingest servers may have turned Late",
            gap.as_secs_f64()
        );
    }
    workers
        .run(channels, mode, Duration::from_secs(args.warmup_seconds))
        .await;
    let events_before: Vec<u64> = pages.iter().map(LivePage::events).collect();
    let changes_before = site.changes();
    let cpu_before = (server.cpu_time(), cpu_time("self"));
    let (mut tally, elapsed) = workers
        .run(channels, mode, Duration::from_secs(args.seconds))
        .await;
    let cpu_after = (server.cpu_time(), cpu_time("self"));
    let changes = site.changes() - changes_before;
    let page_events = (!pages.is_empty()).then(|| {
        let deltas = pages
            .iter()
            .zip(&events_before)
            .map(|(p, before)| p.events() - before);
        let (mut min, mut max) = (u64::MAX, 0);
        for d in deltas {
            min = min.min(d);
            max = max.max(d);
        }
        (min, max)
    });
    tally.latencies_us.sort_unstable();
    let accepted = tally.latencies_us.len();
    let per_heartbeat = |before: Option<Duration>, after: Option<Duration>| {
        Some((after? - before?).as_secs_f64() * 1e6 / accepted.max(1) as f64)
    };
    Ok(IngestRun {
        heartbeats_per_s: accepted as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&tally.latencies_us, 50.0),
        p99_ms: percentile(&tally.latencies_us, 99.0),
        errors: tally.error_count(),
        server_cpu_us: per_heartbeat(cpu_before.0, cpu_after.0),
        generator_cpu_us: per_heartbeat(cpu_before.1, cpu_after.1),
        rss_after: server.memory(),
        changes,
        page_events,
        gap_s: gap.as_secs_f64(),
    })
}

fn print_run(number: usize, label: &str, run: &IngestRun) {
    println!(
        "pair {number} {label}: {:.0} heartbeats/s, p50 {:.2} ms, p99 {:.2} ms, errors {}, \
         CPU per heartbeat: server {} µs, generator {} µs; server RSS {} MiB; {} changes{}",
        run.heartbeats_per_s,
        run.p50_ms,
        run.p99_ms,
        run.errors,
        opt1(run.server_cpu_us),
        opt1(run.generator_cpu_us),
        mib(run.rss_after),
        run.changes,
        match run.page_events {
            Some((min, max)) => format!(", events per page {min}–{max}"),
            None => String::new(),
        }
    );
}

/// The server's CPU time over `seconds` with no ingest running, in
/// milliseconds per second (1,000 is one core).
async fn idle_cpu(server: &ServerProcess, seconds: u64) -> Option<f64> {
    let began = Instant::now();
    let before = server.cpu_time()?;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let spent = server.cpu_time()? - before;
    Some(spent.as_secs_f64() * 1000.0 / began.elapsed().as_secs_f64())
}

/// Sends the probe's status report (its full drive on, or off) and waits
/// until every page got the probe installation's row event; the latencies
/// (µs, from just before sending) and how many pages got none in time.
async fn probe_pages(
    site: &Site,
    stats: &LiveStats,
    pages: &[LivePage],
    slc: &str,
) -> Result<(Vec<u32>, usize), BoxError> {
    stats.probe(slc, pages);
    let sent_at = stats.now_micros();
    site.probe().await?;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    while Instant::now() < deadline && pages.iter().any(|p| p.probe_seen_at().is_none()) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let latencies: Vec<u32> = pages
        .iter()
        .filter_map(LivePage::probe_seen_at)
        .map(|t| u32::try_from(t.saturating_sub(sent_at)).unwrap_or(u32::MAX))
        .collect();
    let missing = pages.len() - latencies.len();
    Ok((latencies, missing))
}

/// A handful of installations whose servers change their conditions: a
/// background toggle of a full drive on some, and the probe on one.
struct Site {
    commands: mpsc::Sender<oneshot::Sender<Result<(), String>>>,
    changes: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Site {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Site {
    fn start(
        channel: Channel,
        toggled: Vec<SimServer>,
        probe: SimServer,
        changes_per_second: f64,
    ) -> Self {
        let (commands, mut received) = mpsc::channel::<oneshot::Sender<Result<(), String>>>(1);
        let changes = Arc::new(AtomicU64::new(0));
        let counted = changes.clone();
        let task = tokio::spawn(async move {
            let mut client = IngestClient::new(channel);
            let mut toggled: Vec<(SimServer, bool)> =
                toggled.into_iter().map(|s| (s, false)).collect();
            let mut probe = (probe, false);
            let mut next = 0usize;
            let period = if changes_per_second > 0.0 {
                Duration::from_secs_f64(1.0 / changes_per_second)
            } else {
                Duration::from_secs(3600)
            };
            let mut changing = tokio::time::interval(period);
            changing.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            changing.tick().await;
            let mut keepalive = tokio::time::interval(KEEPALIVE);
            keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    command = received.recv() => {
                        let Some(reply) = command else { return };
                        let _ = reply.send(toggle(&mut client, &mut probe).await);
                    }
                    _ = changing.tick(), if changes_per_second > 0.0 && !toggled.is_empty() => {
                        let n = next % toggled.len();
                        next += 1;
                        if toggle(&mut client, &mut toggled[n]).await.is_ok() {
                            counted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ = keepalive.tick() => {
                        for (server, _) in toggled.iter_mut().chain(std::iter::once(&mut probe)) {
                            let _ = send(&mut client, server).await;
                        }
                    }
                }
            }
        });
        Self {
            commands,
            changes,
            task,
        }
    }

    /// Toggles the probe installation's full drive; returns once acknowledged.
    async fn probe(&self) -> Result<(), BoxError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(reply)
            .await
            .map_err(|_| "the site stopped")?;
        answer.await?.map_err(Into::into)
    }

    /// Background health changes acknowledged so far.
    fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }
}

/// A full drive on the server if it had none, or its end.
async fn toggle(
    client: &mut IngestClient<Channel>,
    (server, full): &mut (SimServer, bool),
) -> Result<(), String> {
    *full = !*full;
    let conditions = if *full {
        vec![
            ReportedCondition::new(
                ConditionCode::StorageFull,
                "D:\\Recordings",
                "the drive is full: recording stopped",
            )
            .map_err(|e| e.to_string())?,
        ]
    } else {
        Vec::new()
    };
    server.set_conditions(conditions);
    send(client, server).await
}

/// The server's next message (a status report if its conditions changed).
async fn send(client: &mut IngestClient<Channel>, server: &mut SimServer) -> Result<(), String> {
    let (kind, message) = server.next_message();
    let result = match kind {
        MessageKind::StatusReport => client.status_report(message).await.map(drop),
        MessageKind::Heartbeat => client.heartbeat(message).await.map(drop),
    };
    match result {
        Ok(()) => {
            server.report_acknowledged();
            Ok(())
        }
        Err(status) => Err(format!("{:?}: {}", status.code(), status.message())),
    }
}

/// How a row of the summary sums its pairs up.
#[derive(Debug, Clone, Copy)]
enum Summary {
    Median,
    Max,
}

/// One pair's figures.
struct Pair {
    a: IngestRun,
    b: IngestRun,
    opened_in: Duration,
    before_open: Option<Memory>,
    after_probes: Option<Memory>,
    after_close: Option<Memory>,
    /// Probe deliveries, µs.
    deliveries: Vec<u32>,
    /// Server CPU (ms per second) with no ingest, without pages and with them.
    idle_a: Option<f64>,
    idle_b: Option<f64>,
}

impl Pair {
    /// RSS the open pages added (after the probes, against before opening), MiB.
    fn pages_added_mib(&self) -> Option<f64> {
        Some(kib_diff_mib(
            self.after_probes?.rss_kib,
            self.before_open?.rss_kib,
        ))
    }

    /// RSS after the run with pages against after the run without, MiB.
    fn under_load_added_mib(&self) -> Option<f64> {
        Some(kib_diff_mib(
            self.b.rss_after?.rss_kib,
            self.a.rss_after?.rss_kib,
        ))
    }

    /// Server CPU the open pages cost, ms per second (idle B − idle A).
    fn pages_cpu(&self) -> Option<f64> {
        Some(self.idle_b? - self.idle_a?)
    }

    /// That cost against the server CPU ingest used per second in A.
    fn pages_cpu_share(&self) -> Option<f64> {
        let ingest_ms_per_s = self.a.server_cpu_us? * self.a.heartbeats_per_s / 1000.0;
        Some(self.pages_cpu()? / ingest_ms_per_s)
    }

    fn ratio(&self) -> f64 {
        self.b.heartbeats_per_s / self.a.heartbeats_per_s
    }
}

fn kib_diff_mib(after: u64, before: u64) -> f64 {
    (after as f64 - before as f64) / 1024.0
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &Args,
    protocol: Protocol,
    seeded: &Seeded,
    after_start: Option<Memory>,
    at_end: Option<Memory>,
    quiet: &Latencies,
    with_pages: Option<&[(&'static str, Vec<u32>)]>,
    pairs: &mut [Pair],
    changes: u64,
) {
    let command: Vec<String> = std::env::args().collect();
    println!();
    println!("command: {}", command.join(" "));
    println!(
        "{} installations ({} not Healthy), {} recording servers; {} live pages over {} ({} \
         users); ingest {} mode, {} s measured per run, {} pairs (A without pages, B with); \
         {} background health changes/s ({} in all); server RSS after start {} MiB, peak {} MiB",
        thousands(seeded.expected.total() as usize),
        seeded.expected.total() - seeded.expected.healthy,
        thousands(seeded.fleet.server_count()),
        thousands(args.pages),
        protocol.name(),
        args.users,
        match args.mode {
            Mode::Unary => "unary",
            Mode::Stream => "stream",
        },
        args.seconds,
        pairs.len(),
        args.changes_per_second,
        changes,
        mib(after_start),
        at_end.map_or_else(|| "?".to_owned(), |m| (m.peak_kib / 1024).to_string()),
    );
    println!();
    println!(
        "| request ({} per kind, one at a time) | p50 ms | p90 ms | p99 ms | max ms | p99 with \
         pages open | target |",
        args.requests
    );
    println!("|---|---|---|---|---|---|---|");
    for (n, (name, latencies)) in quiet.iter().enumerate() {
        let open = with_pages.and_then(|w| w.get(n)).map_or_else(
            || "?".to_owned(),
            |(_, l)| format!("{:.2}", percentile(l, 99.0)),
        );
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {open} | p99 < 20 ms |",
            percentile(latencies, 50.0),
            percentile(latencies, 90.0),
            percentile(latencies, 99.0),
            percentile(latencies, 100.0),
        );
    }
    println!();
    println!("| measure | summary | per pair | target |");
    println!("|---|---|---|---|");
    // Memory rows show the largest value: later pairs reuse what the
    // allocator kept from earlier pages, so the first opening is the honest
    // one and the largest.
    let row = |name: &str,
               unit: &str,
               summary: Summary,
               values: Vec<Option<f64>>,
               digits: usize,
               target: &str| {
        let mut known: Vec<f64> = values.iter().flatten().copied().collect();
        known.sort_by(f64::total_cmp);
        let (label, value) = match summary {
            Summary::Median => ("median", known.get(known.len() / 2)),
            Summary::Max => ("max", known.last()),
        };
        let value = value.map_or_else(|| "?".to_owned(), |m| format!("{label} {m:.digits$}{unit}"));
        let each: Vec<String> = values
            .iter()
            .map(|v| v.map_or_else(|| "?".to_owned(), |v| format!("{v:.digits$}")))
            .collect();
        println!("| {name} | {value} | {} | {target} |", each.join(", "));
    };
    let pages = thousands(args.pages);
    row(
        &format!("RSS added by opening {pages} live pages (after two probe events)"),
        " MiB",
        Summary::Max,
        pairs.iter().map(Pair::pages_added_mib).collect(),
        1,
        "< 100 MiB",
    );
    row(
        "RSS after the ingest run, B − A",
        " MiB",
        Summary::Max,
        pairs.iter().map(Pair::under_load_added_mib).collect(),
        1,
        "",
    );
    row(
        "RSS after closing the pages",
        " MiB",
        Summary::Max,
        pairs
            .iter()
            .map(|p| p.after_close.map(|m| m.rss_kib as f64 / 1024.0))
            .collect(),
        0,
        "",
    );
    row(
        &format!("opening {pages} live pages"),
        " s",
        Summary::Median,
        pairs
            .iter()
            .map(|p| Some(p.opened_in.as_secs_f64()))
            .collect(),
        1,
        "",
    );
    row(
        "ingest without pages (A)",
        "/s",
        Summary::Median,
        pairs.iter().map(|p| Some(p.a.heartbeats_per_s)).collect(),
        0,
        "",
    );
    row(
        "ingest with pages (B)",
        "/s",
        Summary::Median,
        pairs.iter().map(|p| Some(p.b.heartbeats_per_s)).collect(),
        0,
        "",
    );
    row(
        "heartbeats/s, B / A",
        "",
        Summary::Median,
        pairs.iter().map(|p| Some(p.ratio())).collect(),
        3,
        "≥ 0.90",
    );
    row(
        "server CPU per heartbeat, A",
        " µs",
        Summary::Median,
        pairs.iter().map(|p| p.a.server_cpu_us).collect(),
        1,
        "",
    );
    row(
        "server CPU per heartbeat, B",
        " µs",
        Summary::Median,
        pairs.iter().map(|p| p.b.server_cpu_us).collect(),
        1,
        "",
    );
    row(
        "server CPU per heartbeat, B / A",
        "",
        Summary::Median,
        pairs
            .iter()
            .map(|p| Some(p.b.server_cpu_us? / p.a.server_cpu_us?))
            .collect(),
        3,
        "",
    );
    row(
        "server CPU between ingest runs, no page open",
        " ms/s",
        Summary::Median,
        pairs.iter().map(|p| p.idle_a).collect(),
        1,
        "",
    );
    row(
        "server CPU between ingest runs, pages open",
        " ms/s",
        Summary::Median,
        pairs.iter().map(|p| p.idle_b).collect(),
        1,
        "",
    );
    row(
        "server CPU the open pages cost, against ingest's in A",
        "",
        Summary::Median,
        pairs.iter().map(Pair::pages_cpu_share).collect(),
        3,
        "",
    );
    row(
        "generator CPU per heartbeat, A",
        " µs",
        Summary::Median,
        pairs.iter().map(|p| p.a.generator_cpu_us).collect(),
        1,
        "",
    );
    row(
        "generator CPU per heartbeat, B (reads the pages too)",
        " µs",
        Summary::Median,
        pairs.iter().map(|p| p.b.generator_cpu_us).collect(),
        1,
        "",
    );
    row(
        "heartbeat p99, A",
        " ms",
        Summary::Median,
        pairs.iter().map(|p| Some(p.a.p99_ms)).collect(),
        2,
        "",
    );
    row(
        "heartbeat p99, B",
        " ms",
        Summary::Median,
        pairs.iter().map(|p| Some(p.b.p99_ms)).collect(),
        2,
        "",
    );
    row(
        "events each page received during B (fewest)",
        "",
        Summary::Median,
        pairs
            .iter()
            .map(|p| p.b.page_events.map(|(min, _)| min as f64))
            .collect(),
        0,
        "",
    );
    let mut deliveries: Vec<u32> = pairs.iter().flat_map(|p| p.deliveries.clone()).collect();
    deliveries.sort_unstable();
    println!(
        "| probe status report → row event on every page ({} deliveries) | p50 {:.1} ms | p99 \
         {:.1} ms, max {:.1} ms | within 1 s |",
        deliveries.len(),
        percentile(&deliveries, 50.0),
        percentile(&deliveries, 99.0),
        percentile(&deliveries, 100.0),
    );
    let errors: u64 = pairs.iter().map(|p| p.a.errors + p.b.errors).sum();
    let gaps: Vec<String> = pairs
        .iter()
        .flat_map(|p| [p.a.gap_s, p.b.gap_s])
        .map(|g| format!("{g:.0}"))
        .collect();
    println!();
    println!(
        "ingest errors: {errors}; seconds between ingest runs: {}",
        gaps.join(", ")
    );
}

fn print_latencies(latencies: &Latencies) {
    for (name, l) in latencies {
        println!(
            "  {name}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            percentile(l, 50.0),
            percentile(l, 99.0),
            percentile(l, 100.0)
        );
    }
}

fn percentile_ms(values: &mut [u32], p: f64) -> f64 {
    values.sort_unstable();
    percentile(values, p)
}

fn opt1(value: Option<f64>) -> String {
    value.map_or_else(|| "?".to_owned(), |v| format!("{v:.1}"))
}

fn mib(memory: Option<Memory>) -> String {
    memory.map_or_else(|| "?".to_owned(), |m| (m.rss_kib / 1024).to_string())
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
