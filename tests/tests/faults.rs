//! The fault scenario of issue 14, time-compressed (1 s heartbeats, 200 ms
//! jitter), against a real `carewatch serve` over TLS, on SQLite and on
//! PostgreSQL: a simulated fleet keeps sending while Carewatch is stopped
//! (SIGTERM, SIGKILL), held open by abusive clients, or loses its database;
//! an observer records every verdict the Dashboard shows. At the end the
//! verdicts are checked against the availability rule, computed here
//! independently from the servers' last messages and the own-downtime
//! windows in the store, and the windows against the instants the harness
//! recorded. Beside it, PostgreSQL faults the scenario came across, each
//! reduced to a test of its own.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use carewatch_cli::simulate::{SimServer, provision_site};
use carewatch_core::ConditionCode;
use carewatch_core::condition::ReportedCondition;
use carewatch_core::ids::{ResellerId, Slc};
use carewatch_core::seal::MessageKind;
use carewatch_core::store::Store;
use carewatch_core::time::Timestamp;
use carewatch_grpc::proto::{self, ingest_client::IngestClient};
use carewatch_grpc::status::ERROR_KIND_KEY;
use carewatch_tests::Dashboard;
use carewatch_tests::process::{
    ServeConfig, ServerProcess, Storage, binary, clock, http2_call_prefix, millis,
};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tonic::Code;
use tonic::transport::Channel;

const INTERVAL: Duration = Duration::from_secs(1);
const JITTER: Duration = Duration::from_millis(200);
/// `serve --shutdown-grace`'s default.
const GRACE: Duration = Duration::from_secs(5);
/// A failed message is sent again this often, each try with this deadline.
const RETRY_EVERY: Duration = Duration::from_millis(100);
const CALL_DEADLINE: Duration = Duration::from_secs(2);
const POLL_EVERY: Duration = Duration::from_millis(150);
/// After each recovery: long enough for the servers silenced before the
/// fault to be due (window end + 3 intervals + jitter) and observed.
const SETTLE: Duration = Duration::from_secs(5);
/// Servers of each fault's site go silent this long before it.
const LEADS: [Duration; 2] = [Duration::from_millis(300), Duration::from_millis(1700)];

/// PostgreSQL stops are not run concurrently with the SQLite scenario, and
/// two scenarios at once would starve each other on 2 cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread")]
async fn fault_scenario_on_sqlite() {
    let _one = ONE_AT_A_TIME.lock().await;
    scenario(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_scenario_on_postgres() {
    let _one = ONE_AT_A_TIME.lock().await;
    let schema = format!(
        "cw_test_{}_faults_{}",
        millis(SystemTime::now()) / 1000,
        std::process::id()
    );
    scenario(Backend::Postgres {
        url: postgres::url(),
        schema,
    })
    .await;
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite,
    Postgres { url: String, schema: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Term(Duration),
    Kill(Duration),
    /// SIGTERM while an idle TLS client and an HTTP/2 client that never
    /// reads hold connections; restarted 2 s after the signal at the earliest.
    TermHeldOpen,
    PostgresDown(Duration),
}

impl Fault {
    fn all(backend: &Backend) -> Vec<Fault> {
        let s = Duration::from_secs;
        let mut faults = vec![
            Fault::Term(s(2)),
            Fault::Kill(s(2)),
            Fault::Term(s(5)),
            Fault::Kill(s(5)),
            Fault::Term(s(15)),
            Fault::Kill(s(15)),
            Fault::TermHeldOpen,
        ];
        if matches!(backend, Backend::Postgres { .. }) {
            faults.extend([Fault::PostgresDown(s(3)), Fault::PostgresDown(s(20))]);
        }
        faults
    }
}

/// A fault as it happened, by the harness's clock.
#[derive(Debug, Clone)]
struct Done {
    fault: Fault,
    /// Signal sent, or PostgreSQL's stop begun.
    begun: SystemTime,
    /// The process exited, or PostgreSQL's stop returned.
    stopped: SystemTime,
    /// The process spawned again, or PostgreSQL's start begun.
    resumed: SystemTime,
    /// The listening line, or PostgreSQL's start returned.
    recovered: SystemTime,
    /// SIGTERM to exit, or to the SIGKILL after grace + 2 s.
    exit_after: Option<Result<Duration, Duration>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SiteKind {
    /// Every server keeps sending.
    Live,
    /// Keeps sending; status reports (all clear) every third message.
    Reporting,
    /// Keeps sending; one reports STORAGE_FULL: Critical.
    DiskFull,
    /// Keeps sending; one reports CAMERA_UNREACHABLE: Attention.
    CameraLoss,
    /// One server goes silent: Critical, never Offline.
    SilentServer,
    /// Every server goes silent: Offline.
    SilentSite,
    /// One server keeps sending, two go silent just before fault n.
    BeforeFault(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Live,
    SilentFromStart,
    SilentBefore(usize, Duration),
}

#[derive(Debug)]
struct SiteSpec {
    slc: String,
    kind: SiteKind,
    roles: Vec<Role>,
}

fn sites(faults: &[Fault]) -> Vec<SiteSpec> {
    let site = |slc: &str, kind, roles: Vec<Role>| SiteSpec {
        slc: slc.to_owned(),
        kind,
        roles,
    };
    let mut sites = vec![
        site("FLT-LIVE-0001", SiteKind::Live, vec![Role::Live; 3]),
        site("FLT-REPORTS-0001", SiteKind::Reporting, vec![Role::Live; 2]),
        site("FLT-DISK-0001", SiteKind::DiskFull, vec![Role::Live; 2]),
        site("FLT-CAMERA-0001", SiteKind::CameraLoss, vec![Role::Live]),
        site(
            "FLT-SILENT-0001",
            SiteKind::SilentServer,
            vec![Role::Live, Role::SilentFromStart],
        ),
        site(
            "FLT-OFFLINE-0001",
            SiteKind::SilentSite,
            vec![Role::SilentFromStart; 2],
        ),
    ];
    for n in 0..faults.len() {
        sites.push(site(
            &format!("FLT-FAULT-{n:04}"),
            SiteKind::BeforeFault(n),
            vec![
                Role::Live,
                Role::SilentBefore(n, LEADS[0]),
                Role::SilentBefore(n, LEADS[1]),
            ],
        ));
    }
    sites
}

// ---------------------------------------------------------------- the fleet

/// One simulated recording server, shared with its task.
#[derive(Debug)]
struct Sim {
    slc: String,
    id: String,
    kind: SiteKind,
    role: Role,
    silenced: AtomicBool,
    new_conditions: Mutex<Option<Vec<ReportedCondition>>>,
    log: Mutex<SimLog>,
}

#[derive(Debug, Default)]
struct SimLog {
    acks: u64,
    silenced_at: Option<SystemTime>,
    conditions_sent: Option<SystemTime>,
    conditions_acked: Option<SystemTime>,
    /// Refusals that no outage explains.
    unexpected: Vec<String>,
    /// Failed attempts (retried), by code and the start of the message.
    retried: BTreeMap<String, u32>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Sim {
    fn name(&self) -> String {
        format!("{}/{}", self.slc, self.id)
    }

    fn silence(&self) {
        if !self.silenced.swap(true, Ordering::AcqRel) {
            lock(&self.log).silenced_at = Some(SystemTime::now());
        }
    }

    fn silent(&self) -> bool {
        self.silenced.load(Ordering::Acquire)
    }
}

/// Failures a message may meet while Carewatch or its database is down:
/// UNAVAILABLE; a deadline (tonic's server answers an expired
/// `grpc-timeout` with CANCELLED "Timeout expired"); and what the tonic
/// client makes of a call that a clean stop's GOAWAY caught before it was
/// sent (CANCELLED, or INTERNAL "h2 protocol error" without a
/// `carewatch-error` kind): connection failures before the reply, which
/// PROTOCOL.md says to retry.
fn transient(status: &tonic::Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => true,
        Code::Internal => {
            status.metadata().get(ERROR_KIND_KEY).is_none()
                && status.message().starts_with("h2 protocol error")
        }
        _ => false,
    }
}

/// A recording server: a message every interval after the start of its
/// last attempt; a failed one is retried every 100 ms (2 s deadline each)
/// with the same sequence number, as the protocol's retries are.
async fn run_sim(
    sim: Arc<Sim>,
    mut server: SimServer,
    mut client: IngestClient<Channel>,
    mut stop: watch::Receiver<bool>,
) {
    let mut next = tokio::time::Instant::now();
    let mut sent: u64 = 0;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            _ = stop.changed() => return,
        }
        if sim.silent() || *stop.borrow() {
            return;
        }
        let conditions = lock(&sim.new_conditions).take();
        let reporting_conditions = conditions.is_some();
        if let Some(conditions) = conditions {
            server.set_conditions(conditions);
            lock(&sim.log).conditions_sent = Some(SystemTime::now());
        } else if sim.kind == SiteKind::Reporting && sent % 3 == 2 {
            server.set_conditions(Vec::new());
        }
        sent += 1;
        let (kind, message) = server.next_message();
        loop {
            let attempt = tokio::time::Instant::now();
            next = attempt + INTERVAL;
            let mut request = tonic::Request::new(message.clone());
            request.set_timeout(CALL_DEADLINE);
            let call = async {
                match kind {
                    MessageKind::Heartbeat => client.heartbeat(request).await,
                    MessageKind::StatusReport => client.status_report(request).await,
                }
            };
            match tokio::time::timeout(CALL_DEADLINE, call).await {
                Ok(Ok(_)) => {
                    let mut log = lock(&sim.log);
                    log.acks += 1;
                    if kind == MessageKind::StatusReport {
                        server.report_acknowledged();
                        if reporting_conditions {
                            log.conditions_acked = Some(SystemTime::now());
                        }
                    }
                    break;
                }
                Ok(Err(status)) if !transient(&status) => {
                    lock(&sim.log).unexpected.push(format!(
                        "{} {:?}: {}",
                        clock(SystemTime::now()),
                        status.code(),
                        status.message()
                    ));
                }
                Ok(Err(status)) => {
                    let message: String = status.message().chars().take(40).collect();
                    let key = format!("{:?}: {message}", status.code());
                    *lock(&sim.log).retried.entry(key).or_default() += 1;
                }
                Err(_) => {
                    let key = "no answer within the deadline".to_owned();
                    *lock(&sim.log).retried.entry(key).or_default() += 1;
                }
            }
            tokio::select! {
                () = tokio::time::sleep(RETRY_EVERY) => {}
                _ = stop.changed() => return,
            }
            if sim.silent() || *stop.borrow() {
                return;
            }
        }
    }
}

// ------------------------------------------------------------- the observer

#[derive(Debug, Clone, PartialEq, Eq)]
struct ServerView {
    availability: i32,
    missed: u32,
    since: Option<i64>,
    last_seen: Option<i64>,
}

#[derive(Debug, Clone)]
struct SiteView {
    row_health: i32,
    detail_health: i32,
    servers: BTreeMap<String, ServerView>,
}

#[derive(Debug, Clone)]
struct Poll {
    start: SystemTime,
    end: SystemTime,
    sites: BTreeMap<String, SiteView>,
}

#[derive(Debug, Clone)]
struct Gap {
    start: SystemTime,
    end: SystemTime,
    error: String,
}

#[derive(Debug, Default)]
struct Observations {
    polls: Vec<Poll>,
    gaps: Vec<Gap>,
}

fn ms_of(t: &prost_types::Timestamp) -> i64 {
    t.seconds * 1000 + i64::from(t.nanos) / 1_000_000
}

fn health_of(detail: &proto::InstallationDetail) -> i32 {
    detail
        .installation
        .as_ref()
        .and_then(|i| i.summary.as_ref())
        .map_or(0, |s| s.health)
}

async fn read_sites(
    dashboard: &Dashboard,
    slcs: &[String],
) -> Result<(BTreeMap<String, SiteView>, Vec<proto::InstallationDetail>), String> {
    let rows = dashboard
        .clone()
        .list_installations(proto::ListInstallationsRequest {
            include_healthy: true,
            page_size: 500,
            ..Default::default()
        })
        .await
        .map_err(|s| format!("list: {:?} {}", s.code(), s.message()))?
        .into_inner()
        .installations;
    let details = futures::future::try_join_all(slcs.iter().map(|slc| {
        let mut dashboard = dashboard.clone();
        async move {
            dashboard
                .get_installation(proto::GetInstallationRequest { slc: slc.clone() })
                .await
                .map(tonic::Response::into_inner)
        }
    }))
    .await
    .map_err(|s| format!("detail: {:?} {}", s.code(), s.message()))?;
    let mut sites = BTreeMap::new();
    for (slc, detail) in slcs.iter().zip(&details) {
        let row = rows
            .iter()
            .find(|r| &r.slc == slc)
            .ok_or_else(|| format!("{slc} missing from the list"))?;
        let servers = detail
            .servers
            .iter()
            .map(|s| {
                let view = ServerView {
                    availability: s.availability,
                    missed: s.missed_heartbeats,
                    since: s.unavailable_since.as_ref().map(ms_of),
                    last_seen: s.last_seen_at.as_ref().map(ms_of),
                };
                (s.id.clone(), view)
            })
            .collect();
        let view = SiteView {
            row_health: row.summary.as_ref().map_or(0, |s| s.health),
            detail_health: health_of(detail),
            servers,
        };
        sites.insert(slc.clone(), view);
    }
    Ok((sites, details))
}

async fn observe(
    dashboard: Dashboard,
    slcs: Vec<String>,
    seen: Arc<Mutex<Observations>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let start = SystemTime::now();
        let read =
            tokio::time::timeout(Duration::from_secs(1), read_sites(&dashboard, &slcs)).await;
        let end = SystemTime::now();
        let mut seen = lock(&seen);
        match read {
            Ok(Ok((sites, _))) => seen.polls.push(Poll { start, end, sites }),
            Ok(Err(error)) => seen.gaps.push(Gap { start, end, error }),
            Err(_) => seen.gaps.push(Gap {
                start,
                end,
                error: "timed out".into(),
            }),
        }
    }
}

// ------------------------------------------------------------- PostgreSQL

mod postgres {
    use std::time::{Duration, SystemTime};

    use carewatch_storage_postgres::{PostgresConfig, PostgresStore};
    use sqlx_core::query::query;
    use sqlx_core::sql_str::AssertSqlSafe;

    pub fn url() -> String {
        std::env::var("CAREWATCH_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    pub async fn store(url: &str, schema: &str) -> PostgresStore {
        let config = PostgresConfig::from_url(url)
            .and_then(|c| c.schema(schema))
            .expect("PostgreSQL settings");
        PostgresStore::open(config).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {url} ({e}); start it with \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
                 or set CAREWATCH_TEST_DATABASE_URL"
            )
        })
    }

    pub async fn drop_schema(store: &PostgresStore, schema: &str) {
        let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
        if let Err(e) = query(AssertSqlSafe(sql)).execute(store.pool()).await {
            eprintln!("dropping schema {schema}: {e}");
        }
    }

    fn cluster(action: &str) {
        let versions =
            std::fs::read_dir("/etc/postgresql").expect("/etc/postgresql (local PostgreSQL)");
        let version = versions
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .max()
            .expect("a PostgreSQL cluster version");
        let mut command = std::process::Command::new("pg_ctlcluster");
        command.args(["--skip-systemctl-redirect", &version, "main", action]);
        if action == "stop" {
            command.args(["-m", "fast"]);
        }
        let status = command.status().expect("runs pg_ctlcluster");
        assert!(status.success(), "pg_ctlcluster {action}: {status}");
    }

    /// The local PostgreSQL, stopped; started again when dropped (also
    /// when the test fails meanwhile).
    pub struct Stopped {
        running: bool,
    }

    impl Stopped {
        /// Stops it; returns when it has stopped.
        pub async fn stop() -> (Self, SystemTime) {
            tokio::task::spawn_blocking(|| cluster("stop"))
                .await
                .expect("pg_ctlcluster stop");
            (Self { running: false }, SystemTime::now())
        }

        /// Starts it; returns when it accepts connections.
        pub async fn start(mut self) -> SystemTime {
            tokio::task::spawn_blocking(|| cluster("start"))
                .await
                .expect("pg_ctlcluster start");
            self.running = true;
            SystemTime::now()
        }
    }

    impl Drop for Stopped {
        fn drop(&mut self) {
            if !self.running {
                cluster("start");
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

// ------------------------------------------------------------- abusive clients

/// A TLS connection to the server, handshake done (ALPN h2).
async fn tls_connect(
    server: &ServerProcess,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut server.cert_pem().as_bytes()) {
        roots
            .add(cert.expect("PEM certificate"))
            .expect("trusted certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(server.addr())
        .await
        .expect("TCP connection");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("server name");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake")
}

// ------------------------------------------------------------- the scenario

fn add(t: SystemTime, ms: i64) -> SystemTime {
    match u64::try_from(ms) {
        Ok(ms) => t + Duration::from_millis(ms),
        Err(_) => t - Duration::from_millis(ms.unsigned_abs()),
    }
}

fn at_ms(ms: i64) -> SystemTime {
    add(SystemTime::UNIX_EPOCH, ms)
}

async fn sleep_until(t: SystemTime) {
    if let Ok(d) = t.duration_since(SystemTime::now()) {
        tokio::time::sleep(d).await;
    }
}

async fn scenario(backend: Backend) {
    let started = SystemTime::now();
    let data = tempfile::tempdir().expect("data directory");
    let storage = match &backend {
        Backend::Sqlite => Storage::Sqlite,
        Backend::Postgres { url, schema } => Storage::Postgres {
            url: url.clone(),
            schema: schema.clone(),
        },
    };
    let config = ServeConfig::new(
        binary(env!("CARGO_BIN_EXE_carewatch-under-test")),
        data.path(),
    )
    .storage(storage)
    .args(["--heartbeat-interval", "1s", "--jitter", "200ms"]);
    let mut server = ServerProcess::start(config).await;
    let faults = Fault::all(&backend);
    let specs = sites(&faults);

    // Provision every site, then start its servers.
    let mut admin = server.admin().await;
    let reseller = ResellerId::new("faults").expect("reseller id");
    let token = admin
        .create_reseller(proto::CreateResellerRequest {
            id: reseller.to_string(),
            name: "Fault scenario".into(),
        })
        .await
        .expect("reseller created")
        .into_inner()
        .token;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut sims: Vec<Arc<Sim>> = Vec::new();
    let mut tasks = Vec::new();
    for spec in &specs {
        let slc = Slc::new(&spec.slc).expect("SLC");
        let servers = provision_site(
            &mut admin,
            &reseller,
            &slc,
            ("XProtect", "2024"),
            spec.roles.len(),
        )
        .await
        .expect("site provisioned");
        for (sim_server, role) in servers.into_iter().zip(&spec.roles) {
            let sim = Arc::new(Sim {
                slc: spec.slc.clone(),
                id: sim_server.id.to_string(),
                kind: spec.kind,
                role: *role,
                silenced: AtomicBool::new(false),
                new_conditions: Mutex::default(),
                log: Mutex::default(),
            });
            let client = server.ingest().await;
            tasks.push(tokio::spawn(run_sim(
                sim.clone(),
                sim_server,
                client,
                stop_rx.clone(),
            )));
            sims.push(sim);
        }
    }
    let everyone_reported = async {
        while sims.iter().any(|s| lock(&s.log).acks == 0) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(20), everyone_reported)
        .await
        .is_err()
    {
        server.fail("the fleet's first messages were not all acknowledged in 20 s");
    }

    let slcs: Vec<String> = specs.iter().map(|s| s.slc.clone()).collect();
    let dashboard = server.dashboard(&token).await;
    let seen = Arc::new(Mutex::new(Observations::default()));
    let observer = tokio::spawn(observe(
        dashboard.clone(),
        slcs.clone(),
        seen.clone(),
        stop_rx.clone(),
    ));

    for sim in sims.iter().filter(|s| s.role == Role::SilentFromStart) {
        sim.silence();
    }
    let silent_from = SystemTime::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let conditions = |code, subject: &str| {
        vec![
            ReportedCondition::new(code, subject, "reported by the fault scenario")
                .expect("condition"),
        ]
    };
    for sim in &sims {
        let report = match (sim.kind, sim.id.as_str()) {
            (SiteKind::DiskFull, "rs-1") => conditions(ConditionCode::StorageFull, "D:"),
            (SiteKind::CameraLoss, "rs-1") => {
                conditions(ConditionCode::CameraUnreachable, "Camera 7")
            }
            _ => continue,
        };
        *lock(&sim.new_conditions) = Some(report);
    }
    sleep_until(silent_from + Duration::from_secs(6)).await;

    let mut done: Vec<Done> = Vec::new();
    let mut pg_store = None;
    for (n, fault) in faults.iter().copied().enumerate() {
        let at = SystemTime::now() + LEADS[1];
        for lead in [LEADS[1], LEADS[0]] {
            sleep_until(at - lead).await;
            for sim in sims
                .iter()
                .filter(|s| s.role == Role::SilentBefore(n, lead))
            {
                sim.silence();
            }
        }
        sleep_until(at).await;
        let record = match fault {
            Fault::Term(down) => {
                let exit_after = server
                    .terminate_within(GRACE + Duration::from_secs(2))
                    .await;
                restart(&mut server, fault, down, Some(exit_after)).await
            }
            Fault::Kill(down) => {
                server.kill().await;
                restart(&mut server, fault, down, None).await
            }
            Fault::TermHeldOpen => {
                let idle = tls_connect(&server).await;
                let mut unread = tls_connect(&server).await;
                let authority = format!("127.0.0.1:{}", server.config().port);
                unread
                    .write_all(&http2_call_prefix(
                        &authority,
                        "/carewatch.v1.Ingest/Heartbeat",
                    ))
                    .await
                    .expect("HTTP/2 preface and request headers");
                unread.flush().await.expect("flushed");
                tokio::time::sleep(Duration::from_millis(300)).await;
                let exit_after = server
                    .terminate_within(GRACE + Duration::from_secs(2))
                    .await;
                drop((idle, unread));
                restart(&mut server, fault, Duration::from_secs(2), Some(exit_after)).await
            }
            Fault::PostgresDown(down) => {
                let begun = SystemTime::now();
                let (stopped_pg, stopped) = postgres::Stopped::stop().await;
                sleep_until(begun + down).await;
                let resumed = SystemTime::now();
                let recovered = stopped_pg.start().await;
                Done {
                    fault,
                    begun,
                    stopped,
                    resumed,
                    recovered,
                    exit_after: None,
                }
            }
        };
        let recovered = record.recovered;
        done.push(record);
        sleep_until(recovered + SETTLE).await;
    }

    // The final word: every site's detail (with history), and the windows.
    let mut final_details = None;
    for _ in 0..50 {
        if let Ok((_, details)) = read_sites(&dashboard, &slcs).await {
            final_details = Some(details);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let final_details = final_details.unwrap_or_else(|| server.fail("final read failed"));
    let windows: Vec<(i64, i64)> = {
        let log = match &backend {
            Backend::Sqlite => {
                let store =
                    carewatch_storage_sqlite::SqliteStore::open(data.path().join("carewatch.db"))
                        .await
                        .expect("opens the server's SQLite database");
                store.downtime(Timestamp::EPOCH).await
            }
            Backend::Postgres { url, schema } => {
                let store = postgres::store(url, schema).await;
                let log = store.downtime(Timestamp::EPOCH).await;
                pg_store = Some(store);
                log
            }
        }
        .expect("reads the downtime windows");
        // Touching windows are one outage (a mark that stalled while the
        // database was down records its part; the server merges them too).
        let mut merged: Vec<(i64, i64)> = Vec::new();
        for w in &log.windows {
            let (start, end) = (w.start().as_millis(), w.end().as_millis());
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    };
    let _ = stop_tx.send(true);
    let _ = observer.await;
    for task in tasks {
        let _ = task.await;
    }
    let final_exit = server
        .terminate_within(GRACE + Duration::from_secs(2))
        .await;
    if let (Some(store), Backend::Postgres { schema, .. }) = (&pg_store, &backend) {
        postgres::drop_schema(store, schema).await;
        store.close().await;
    }

    let seen = std::mem::take(&mut *lock(&seen));
    let report = Report {
        specs: &specs,
        sims: &sims,
        done: &done,
        windows: &windows,
        seen: &seen,
        final_details: &final_details,
        silent_from,
        stalls_logged: server.log().matches("storage stalled").count(),
    };
    let mut failures = report.check();
    if let Err(killed) = final_exit {
        failures.push(format!(
            "still running {killed:.1?} after the final SIGTERM (killed)"
        ));
    }
    let elapsed = SystemTime::now()
        .duration_since(started)
        .unwrap_or_default();
    let delays = report.detection_delays();
    let mut retried: BTreeMap<String, u32> = BTreeMap::new();
    for sim in &sims {
        for (why, n) in &lock(&sim.log).retried {
            *retried.entry(why.clone()).or_default() += n;
        }
    }
    let exits: Vec<Duration> = done
        .iter()
        .filter_map(|d| d.exit_after.map(|e| e.unwrap_or_else(|killed| killed)))
        .collect();
    eprintln!(
        "{backend:?}: {} faults, {} windows ({} stalls); {} polls, {} failed while down; \
         SIGTERM to exit {exits:.2?}; Unavailable first seen {:?}..{:?} ms after the deadline \
         ({} servers); {elapsed:.1?}; attempts retried: {retried:#?}",
        done.len(),
        windows.len(),
        report.stall_windows(),
        seen.polls.len(),
        seen.gaps.len(),
        delays.iter().min(),
        delays.iter().max(),
        delays.len(),
    );
    if !failures.is_empty() {
        let mut timeline = report.timeline();
        timeline.extend(server.events());
        timeline.sort_by_key(|(t, _)| *t);
        let text: Vec<String> = timeline
            .iter()
            .map(|(t, what)| format!("{} {what}", clock(*t)))
            .collect();
        // The server's output follows when `server` is dropped by the panic.
        eprintln!("--- timeline ---\n{}", text.join("\n"));
        panic!(
            "{} problems in the fault scenario:\n  {}",
            failures.len(),
            failures.join("\n  ")
        );
    }
}

/// Restarts after a stop, `down` after the signal at the earliest.
async fn restart(
    server: &mut ServerProcess,
    fault: Fault,
    down: Duration,
    exit_after: Option<Result<Duration, Duration>>,
) -> Done {
    let life = server.last_life().clone();
    let (_, begun) = life.signalled.expect("signalled");
    sleep_until(begun + down).await;
    server.restart().await;
    let now = server.last_life();
    Done {
        fault,
        begun,
        stopped: life.exited.expect("exited"),
        resumed: now.spawned,
        recovered: now.listening.expect("listening"),
        exit_after,
    }
}

// ------------------------------------------------------------- the verdicts

/// When a server silent since `last` becomes Unavailable and with how many
/// missed heartbeats, by the rule (written here again, not taken from the
/// server): each stretch of receiving after `last` is counted on its own
/// schedule; the first stretch with 3 missed makes it Unavailable, 3
/// intervals after that stretch began.
fn expected_unavailable(last: i64, windows: &[(i64, i64)]) -> (i64, u32) {
    let (i, j) = (ms(INTERVAL), ms(JITTER));
    let missed = |stretch: i64| {
        if stretch >= i + j {
            u32::try_from((stretch - j) / i).expect("small count")
        } else {
            0
        }
    };
    let mut start = last;
    let mut before = 0;
    for &(ws, we) in windows {
        if we <= start {
            continue;
        }
        let n = missed(ws.max(start) - start);
        if n >= 3 {
            break;
        }
        before += n;
        start = we;
    }
    (start + 3 * i, before + 3)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).expect("short duration")
}

fn availability_name(a: i32) -> &'static str {
    match proto::Availability::try_from(a) {
        Ok(proto::Availability::Pending) => "Pending",
        Ok(proto::Availability::Available) => "Available",
        Ok(proto::Availability::Late) => "Late",
        Ok(proto::Availability::Unavailable) => "Unavailable",
        _ => "?",
    }
}

fn health_name(h: i32) -> &'static str {
    match proto::Health::try_from(h) {
        Ok(proto::Health::Healthy) => "Healthy",
        Ok(proto::Health::Pending) => "Pending",
        Ok(proto::Health::Attention) => "Attention",
        Ok(proto::Health::Critical) => "Critical",
        Ok(proto::Health::Offline) => "Offline",
        _ => "?",
    }
}

const AVAILABLE: i32 = proto::Availability::Available as i32;
const UNAVAILABLE: i32 = proto::Availability::Unavailable as i32;
const HEALTHY: i32 = proto::Health::Healthy as i32;
const ATTENTION: i32 = proto::Health::Attention as i32;
const CRITICAL: i32 = proto::Health::Critical as i32;
const OFFLINE: i32 = proto::Health::Offline as i32;

struct Report<'a> {
    specs: &'a [SiteSpec],
    sims: &'a [Arc<Sim>],
    done: &'a [Done],
    windows: &'a [(i64, i64)],
    seen: &'a Observations,
    final_details: &'a [proto::InstallationDetail],
    silent_from: SystemTime,
    /// "storage stalled" lines in the server's log.
    stalls_logged: usize,
}

/// Failures of one kind, the first few in full.
#[derive(Default)]
struct Findings(Vec<String>);

impl Findings {
    fn add(&mut self, what: String) {
        self.0.push(what);
    }

    fn summarise(self, into: &mut Vec<String>) {
        const SHOWN: usize = 3;
        let n = self.0.len();
        into.extend(self.0.into_iter().take(SHOWN));
        if n > SHOWN {
            into.push(format!("… and {} more like it", n - SHOWN));
        }
    }
}

impl Report<'_> {
    fn detail(&self, slc: &str) -> &proto::InstallationDetail {
        self.final_details
            .iter()
            .find(|d| d.installation.as_ref().is_some_and(|i| i.slc == slc))
            .expect("a final detail per site")
    }

    /// (since, missed) for a silent server, from its last message and the windows.
    fn expected(&self, sim: &Sim) -> Option<(i64, u32)> {
        let server = self
            .detail(&sim.slc)
            .servers
            .iter()
            .find(|s| s.id == sim.id)?;
        let last = ms_of(server.last_seen_at.as_ref()?);
        Some(expected_unavailable(last, self.windows))
    }

    fn check(&self) -> Vec<String> {
        let mut failures = Vec::new();
        self.check_windows(&mut failures);
        self.check_gaps(&mut failures);
        for sim in self.sims {
            self.check_server(sim, &mut failures);
            let log = lock(&sim.log);
            for refusal in log.unexpected.iter().take(3) {
                failures.push(format!("{}: unexpected refusal {refusal}", sim.name()));
            }
        }
        for spec in self.specs {
            self.check_site(spec, &mut failures);
        }
        failures
    }

    /// Each fault left exactly one window, where the harness saw it. Any
    /// other window must be a stall the server reported (a write slower
    /// than its stall limit, e.g. while PostgreSQL warms up after a
    /// restart on a busy machine), and short.
    fn check_windows(&self, failures: &mut Vec<String>) {
        let shown = |&(s, e): &(i64, i64)| format!("{}–{}", clock(at_ms(s)), clock(at_ms(e)));
        let mut matched = vec![false; self.windows.len()];
        for d in self.done {
            let mine: Vec<usize> = (0..self.windows.len())
                .filter(|&n| self.covers_fault(self.windows[n], d))
                .collect();
            let &[n] = mine.as_slice() else {
                failures.push(format!(
                    "{:?} at {}: {} windows around it: {:?}",
                    d.fault,
                    clock(d.begun),
                    mine.len(),
                    mine.iter()
                        .map(|&n| shown(&self.windows[n]))
                        .collect::<Vec<_>>()
                ));
                continue;
            };
            matched[n] = true;
            let (start, end) = self.windows[n];
            let begun = millis(d.begun);
            let (start_range, end_range) = match d.fault {
                Fault::Term(_) | Fault::TermHeldOpen => (
                    (begun, begun + 300),
                    (millis(d.resumed), millis(d.recovered)),
                ),
                // From the last liveness mark: one a second, each a write
                // that takes its time on a busy machine.
                Fault::Kill(_) => (
                    (begun - 2000, begun),
                    (millis(d.resumed), millis(d.recovered)),
                ),
                // From the first refused write to the first mark that succeeds
                // (PostgreSQL accepts connections before pg_ctlcluster returns).
                Fault::PostgresDown(_) => (
                    (begun - 100, millis(d.stopped) + 500),
                    (millis(d.resumed), millis(d.recovered) + 5000),
                ),
            };
            let inside = |t: i64, (lo, hi): (i64, i64)| (lo..=hi).contains(&t);
            if !inside(start, start_range) || !inside(end, end_range) {
                failures.push(format!(
                    "{:?}: window {}–{} should start within {}–{} and end within {}–{}",
                    d.fault,
                    clock(at_ms(start)),
                    clock(at_ms(end)),
                    clock(at_ms(start_range.0)),
                    clock(at_ms(start_range.1)),
                    clock(at_ms(end_range.0)),
                    clock(at_ms(end_range.1)),
                ));
            }
            if let Some(Err(killed)) = d.exit_after {
                failures.push(format!(
                    "{:?}: still running {killed:.1?} after SIGTERM (killed)",
                    d.fault
                ));
            }
        }
        let others: Vec<&(i64, i64)> = self
            .windows
            .iter()
            .zip(&matched)
            .filter(|(_, m)| !**m)
            .map(|(w, _)| w)
            .collect();
        let long = others.iter().any(|(s, e)| e - s > 3000);
        if others.len() > self.stalls_logged || long {
            failures.push(format!(
                "own downtime without a fault: {:?} ({} stalls logged)",
                others.iter().map(|w| shown(w)).collect::<Vec<_>>(),
                self.stalls_logged
            ));
        }
    }

    /// Whether a window overlaps the time `d` kept Carewatch from receiving.
    fn covers_fault(&self, (start, end): (i64, i64), d: &Done) -> bool {
        start < millis(d.resumed) && end > millis(d.begun)
    }

    /// Windows that no fault explains: stalls.
    fn stall_windows(&self) -> usize {
        self.windows
            .iter()
            .filter(|&&w| !self.done.iter().any(|d| self.covers_fault(w, d)))
            .count()
    }

    /// The Dashboard fails only while Carewatch or its database is down.
    fn check_gaps(&self, failures: &mut Vec<String>) {
        let mut findings = Findings::default();
        for gap in &self.seen.gaps {
            let explained = self.done.iter().any(|d| {
                let after = match d.fault {
                    Fault::PostgresDown(_) => Duration::from_secs(3),
                    _ => Duration::from_millis(1500),
                };
                gap.end >= d.begun - Duration::from_millis(200) && gap.start <= d.recovered + after
            });
            if !explained {
                findings.add(format!(
                    "the Dashboard failed at {}–{} while Carewatch was up: {}",
                    clock(gap.start),
                    clock(gap.end),
                    gap.error
                ));
            }
        }
        findings.summarise(failures);
    }

    /// When a server Unavailable since `since` must show so: jitter + 1 s
    /// after its deadline, or 1 s after own downtime that began by then
    /// (no verdicts while the storage is out or stalled).
    fn detection_due(&self, since: i64) -> i64 {
        let deadline = since + ms(JITTER);
        let mut due = deadline + 1000;
        for &(start, end) in self.windows {
            if start <= due && end > deadline {
                due = due.max(end + 1000);
            }
        }
        due
    }

    fn check_server(&self, sim: &Sim, failures: &mut Vec<String>) {
        let name = sim.name();
        let silenced_at = lock(&sim.log).silenced_at;
        let expected = silenced_at.and_then(|_| self.expected(sim));
        let j = ms(JITTER);
        let mut false_verdicts = Findings::default();
        let mut first_unavailable = None;
        let mut late_detection = Findings::default();
        for poll in &self.seen.polls {
            let Some(view) = poll
                .sites
                .get(&sim.slc)
                .and_then(|s| s.servers.get(&sim.id))
            else {
                false_verdicts.add(format!("{name} missing at {}", clock(poll.start)));
                continue;
            };
            let sending = silenced_at.is_none_or(|s| poll.end < s);
            if sending {
                if view.availability != AVAILABLE {
                    false_verdicts.add(format!(
                        "false {} ({} missed) for {name}, which kept sending, at {}",
                        availability_name(view.availability),
                        view.missed,
                        clock(poll.start)
                    ));
                }
                continue;
            }
            let Some((since, missed)) = expected else {
                continue;
            };
            if view.availability == UNAVAILABLE {
                first_unavailable.get_or_insert(poll.start);
                if view.since != Some(since) || view.missed != missed {
                    false_verdicts.add(format!(
                        "{name} Unavailable since {} with {} missed at {}; expected since {} with {missed}",
                        view.since.map_or("-".into(), |s| clock(at_ms(s))),
                        view.missed,
                        clock(poll.start),
                        clock(at_ms(since)),
                    ));
                }
                if millis(poll.end) < since + j {
                    false_verdicts.add(format!(
                        "{name} Unavailable at {}, before its deadline {}",
                        clock(poll.end),
                        clock(at_ms(since + j))
                    ));
                }
            } else if millis(poll.start) > self.detection_due(since) {
                // Detection within jitter + 1 s of the deadline.
                late_detection.add(format!(
                    "{name} still {} at {}, more than 1 s after its deadline {} (due {})",
                    availability_name(view.availability),
                    clock(poll.start),
                    clock(at_ms(since + j)),
                    clock(at_ms(self.detection_due(since)))
                ));
            }
        }
        false_verdicts.summarise(failures);
        late_detection.summarise(failures);

        // The history keeps what polls may miss: a verdict that did not last.
        let detail = self.detail(&sim.slc);
        let became: Vec<(i64, u32)> = detail
            .history
            .iter()
            .filter(|e| e.recording_server_id == sim.id)
            .filter_map(|e| match &e.kind {
                Some(proto::history_event::Kind::BecameUnavailable(b)) => {
                    Some((e.at.as_ref().map_or(0, ms_of), b.missed_heartbeats))
                }
                _ => None,
            })
            .collect();
        let last_state = detail.servers.iter().find(|s| s.id == sim.id);
        match expected {
            None if !became.is_empty() => failures.push(format!(
                "{name} kept sending, yet its history says it became unavailable: {:?}",
                became
                    .iter()
                    .map(|(at, m)| format!("{} ({m} missed)", clock(at_ms(*at))))
                    .collect::<Vec<_>>()
            )),
            None => {}
            Some((since, missed)) => {
                if first_unavailable.is_none() {
                    failures.push(format!(
                        "{name} went silent at {} and was never seen Unavailable (due {})",
                        silenced_at.map_or("-".into(), clock),
                        clock(at_ms(since + j))
                    ));
                }
                // The history dates the change at its `since`.
                if became != [(since, missed)] {
                    failures.push(format!(
                        "{name}: history has {:?} (became unavailable at, missed); expected once, at {} with {missed} missed",
                        became
                            .iter()
                            .map(|(at, m)| (clock(at_ms(*at)), *m))
                            .collect::<Vec<_>>(),
                        clock(at_ms(since))
                    ));
                }
                let final_view = last_state.map(|s| {
                    (
                        s.availability,
                        s.unavailable_since.as_ref().map(ms_of),
                        s.missed_heartbeats,
                    )
                });
                if final_view != Some((UNAVAILABLE, Some(since), missed)) {
                    failures.push(format!(
                        "{name} ends as {final_view:?}; expected Unavailable since {} ({since}) with {missed} missed",
                        clock(at_ms(since))
                    ));
                }
            }
        }
    }

    fn check_site(&self, spec: &SiteSpec, failures: &mut Vec<String>) {
        let slc = spec.slc.as_str();
        let reporter = self
            .sims
            .iter()
            .find(|s| s.slc == slc && s.id == "rs-1")
            .expect("rs-1");
        let (sent, acked) = {
            let log = lock(&reporter.log);
            (log.conditions_sent, log.conditions_acked)
        };
        // The latest deadline of its silent servers: Offline at the earliest then.
        let deadlines: Vec<i64> = self
            .sims
            .iter()
            .filter(|s| s.slc == slc && s.role != Role::Live)
            .filter_map(|s| self.expected(s))
            .map(|(since, _)| since + ms(JITTER))
            .collect();
        let mut false_health = Findings::default();
        let mut seen_expected = false;
        for poll in &self.seen.polls {
            let Some(site) = poll.sites.get(slc) else {
                continue;
            };
            for (which, health) in [("list", site.row_health), ("detail", site.detail_health)] {
                let wrong = match spec.kind {
                    SiteKind::Live | SiteKind::Reporting => health != HEALTHY,
                    SiteKind::DiskFull | SiteKind::CameraLoss => {
                        let shown = if spec.kind == SiteKind::DiskFull {
                            CRITICAL
                        } else {
                            ATTENTION
                        };
                        seen_expected |= health == shown;
                        let before = sent.is_none_or(|s| poll.end < s);
                        let after = acked.is_some_and(|a| poll.start > a);
                        // Healthy until the report is acknowledged, its
                        // health once it was sent, nothing else.
                        let allowed = if health == HEALTHY {
                            !after
                        } else {
                            health == shown && !before
                        };
                        !allowed
                    }
                    SiteKind::SilentServer | SiteKind::BeforeFault(_) => {
                        seen_expected |= health == CRITICAL;
                        health == OFFLINE
                    }
                    SiteKind::SilentSite => {
                        seen_expected |= health == OFFLINE;
                        let latest = deadlines.iter().copied().max().unwrap_or(i64::MAX);
                        health == OFFLINE && millis(poll.end) < latest
                            || health != OFFLINE && millis(poll.start) > latest + 1000
                    }
                };
                if wrong {
                    false_health.add(format!(
                        "{slc} ({:?}) shown {} in the {which} at {}",
                        spec.kind,
                        health_name(health),
                        clock(poll.start)
                    ));
                }
            }
        }
        false_health.summarise(failures);
        let must_show = match spec.kind {
            SiteKind::DiskFull => Some("Critical"),
            SiteKind::CameraLoss => Some("Attention"),
            SiteKind::SilentServer | SiteKind::BeforeFault(_) => Some("Critical"),
            SiteKind::SilentSite => Some("Offline"),
            SiteKind::Live | SiteKind::Reporting => None,
        };
        if let Some(health) = must_show
            && !seen_expected
        {
            failures.push(format!("{slc} ({:?}) was never shown {health}", spec.kind));
        }
    }

    /// For each silent server, how long after its deadline (since +
    /// jitter) the first poll that showed it Unavailable started, in ms.
    fn detection_delays(&self) -> Vec<i64> {
        self.sims
            .iter()
            .filter(|sim| lock(&sim.log).silenced_at.is_some())
            .filter_map(|sim| {
                let (since, _) = self.expected(sim)?;
                let first = self.seen.polls.iter().find(|p| {
                    p.sites
                        .get(&sim.slc)
                        .and_then(|s| s.servers.get(&sim.id))
                        .is_some_and(|v| v.availability == UNAVAILABLE)
                })?;
                Some(millis(first.start) - since - ms(JITTER))
            })
            .collect()
    }

    /// What happened, in order: faults, silences, windows, gaps and every
    /// change the observer saw.
    fn timeline(&self) -> Vec<(SystemTime, String)> {
        let mut events = vec![(
            self.silent_from,
            "servers silent from the start go silent".to_owned(),
        )];
        for d in self.done {
            events.push((d.begun, format!("fault {:?} begins", d.fault)));
            events.push((d.recovered, format!("fault {:?} over", d.fault)));
        }
        for &(start, end) in self.windows {
            events.push((at_ms(start), "window starts (store)".into()));
            events.push((at_ms(end), "window ends (store)".into()));
        }
        for sim in self.sims {
            let log = lock(&sim.log);
            if let (Some(at), Role::SilentBefore(..)) = (log.silenced_at, sim.role) {
                events.push((at, format!("{} goes silent", sim.name())));
            }
            if let Some(at) = log.conditions_acked {
                events.push((at, format!("{} conditions acknowledged", sim.name())));
            }
            if let Some((since, missed)) = log.silenced_at.and_then(|_| self.expected(sim)) {
                events.push((
                    at_ms(since),
                    format!(
                        "{} expected Unavailable since here, {missed} missed",
                        sim.name()
                    ),
                ));
            }
        }
        for gap in &self.seen.gaps {
            events.push((gap.start, format!("poll failed: {}", gap.error)));
        }
        let mut last: BTreeMap<String, String> = BTreeMap::new();
        for poll in &self.seen.polls {
            for (slc, site) in &poll.sites {
                let mut states = vec![(
                    slc.clone(),
                    format!(
                        "{}/{}",
                        health_name(site.row_health),
                        health_name(site.detail_health)
                    ),
                )];
                for (id, s) in &site.servers {
                    states.push((
                        format!("{slc}/{id}"),
                        format!(
                            "{}({}){}",
                            availability_name(s.availability),
                            s.missed,
                            s.since
                                .map_or(String::new(), |t| format!(" since {}", clock(at_ms(t))))
                        ),
                    ));
                }
                for (key, state) in states {
                    if last.get(&key) != Some(&state) {
                        events.push((poll.start, format!("seen {key}: {state}")));
                        last.insert(key, state);
                    }
                }
            }
        }
        events
    }
}

#[test]
fn the_rule_as_written_here() {
    // Silent, no window: 3 intervals after the last message.
    assert_eq!(expected_unavailable(10_000, &[]), (13_000, 3));
    // A window before anything was due: 3 full intervals after its end.
    assert_eq!(
        expected_unavailable(10_000, &[(10_300, 25_000)]),
        (28_000, 3)
    );
    // 1.7 s of silence before the window: one heartbeat already missed.
    assert_eq!(
        expected_unavailable(10_000, &[(11_700, 14_000)]),
        (17_000, 4)
    );
    // Last message inside a window (a kill after the last liveness mark).
    assert_eq!(
        expected_unavailable(10_000, &[(9_500, 12_000)]),
        (15_000, 3)
    );
    // Already unavailable before a window: keeps its since.
    assert_eq!(
        expected_unavailable(10_000, &[(20_000, 30_000)]),
        (13_000, 3)
    );
    // Windows that ended before the last message do not count.
    assert_eq!(expected_unavailable(10_000, &[(1_000, 2_000)]), (13_000, 3));
}

/// A write that stalls (here: a heartbeat's row locked for 2.5 s) is own
/// downtime from the first stalled write (the rule for storage outages),
/// not only from this node's next liveness mark.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_write_is_downtime_from_its_start_on_postgres() {
    use sqlx_core::connection::{ConnectOptions, Connection};
    use sqlx_core::query::query;
    use sqlx_core::sql_str::AssertSqlSafe;

    let _one = ONE_AT_A_TIME.lock().await;
    let url = postgres::url();
    let schema = format!(
        "cw_test_{}_stall_{}",
        millis(SystemTime::now()) / 1000,
        std::process::id()
    );
    let data = tempfile::tempdir().expect("data directory");
    let config = ServeConfig::new(
        binary(env!("CARGO_BIN_EXE_carewatch-under-test")),
        data.path(),
    )
    .storage(Storage::Postgres {
        url: url.clone(),
        schema: schema.clone(),
    })
    .args(["--heartbeat-interval", "1s", "--jitter", "200ms"]);
    let mut server = ServerProcess::start(config).await;
    let mut admin = server.admin().await;
    let reseller = ResellerId::new("stall").expect("id");
    admin
        .create_reseller(proto::CreateResellerRequest {
            id: "stall".into(),
            name: "Stall".into(),
        })
        .await
        .expect("reseller");
    let slc = Slc::new("STALL-0001").expect("SLC");
    let mut fleet = carewatch_cli::simulate::Fleet::default();
    fleet
        .provision(&mut admin, &reseller, &slc, ("XProtect", "2024"), 1)
        .await
        .expect("site");
    let ingest = server.ingest().await;
    let sender = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            fleet.round(&ingest, 1).await;
        }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;

    let options: carewatch_storage_postgres::PgConnectOptions = url.parse().expect("URL");
    let mut locker = options
        .options([("search_path", schema.as_str())])
        .connect()
        .await
        .expect("connects");
    query("BEGIN").execute(&mut locker).await.expect("begins");
    query("LOCK TABLE servers IN EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .expect("locks");
    let locked = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    query("COMMIT").execute(&mut locker).await.expect("commits");
    let unlocked = SystemTime::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    sender.abort();
    let store = postgres::store(&url, &schema).await;
    let windows = store
        .downtime(Timestamp::EPOCH)
        .await
        .expect("downtime")
        .windows;
    server.terminate(GRACE + Duration::from_secs(2)).await;
    let _ = query(AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
        .execute(&mut locker)
        .await;
    let _ = locker.close().await;
    store.close().await;
    let shown: Vec<String> = windows
        .iter()
        .map(|w| {
            format!(
                "{}–{}",
                clock(at_ms(w.start().as_millis())),
                clock(at_ms(w.end().as_millis()))
            )
        })
        .collect();
    eprintln!(
        "locked {} unlocked {}: windows {shown:?}",
        clock(locked),
        clock(unlocked)
    );
    // Heartbeats go every 250 ms: the first stalled one came within 300 ms.
    let stalled_from = millis(locked) + 300;
    assert!(
        windows.len() == 1
            && windows[0].start().as_millis() <= stalled_from
            && windows[0].end().as_millis() >= millis(unlocked),
        "the write stalled from {} to {}; own downtime recorded: {shown:?}",
        clock(locked),
        clock(unlocked)
    );
}

/// A heartbeat sent while the database is down fails with a code
/// PROTOCOL.md says to retry: UNAVAILABLE (`storage_unavailable`) at once,
/// or DEADLINE_EXCEEDED when it outlives its `grpc-timeout`. (The scenario
/// saw tonic's server answer an expired `grpc-timeout` with CANCELLED
/// "Timeout expired", which the document does not list, so a recording
/// server that follows it drops the message.)
#[tokio::test(flavor = "multi_thread")]
async fn a_heartbeat_during_a_database_outage_fails_as_retryable_on_postgres() {
    let _one = ONE_AT_A_TIME.lock().await;
    let url = postgres::url();
    let schema = format!(
        "cw_test_{}_outage_{}",
        millis(SystemTime::now()) / 1000,
        std::process::id()
    );
    let data = tempfile::tempdir().expect("data directory");
    let config = ServeConfig::new(
        binary(env!("CARGO_BIN_EXE_carewatch-under-test")),
        data.path(),
    )
    .storage(Storage::Postgres {
        url: url.clone(),
        schema: schema.clone(),
    })
    .args(["--heartbeat-interval", "1s", "--jitter", "200ms"]);
    let mut server = ServerProcess::start(config).await;
    let mut admin = server.admin().await;
    let reseller = ResellerId::new("outage").expect("id");
    admin
        .create_reseller(proto::CreateResellerRequest {
            id: "outage".into(),
            name: "Outage".into(),
        })
        .await
        .expect("reseller");
    let slc = Slc::new("OUTAGE-0001").expect("SLC");
    let mut sims = provision_site(&mut admin, &reseller, &slc, ("XProtect", "2024"), 1)
        .await
        .expect("site");
    let mut sim = sims.pop().expect("one server");
    let mut ingest = server.ingest().await;
    let (_, first) = sim.next_message();
    ingest.status_report(first).await.expect("accepted");
    sim.report_acknowledged();

    // Heartbeats all through a 3 s outage, each with a 1 s deadline, the
    // first sent while PostgreSQL is shutting down.
    let begun = tokio::time::Instant::now();
    let stop = tokio::spawn(postgres::Stopped::stop());
    let mut outcomes = Vec::new();
    while begun.elapsed() < Duration::from_secs(3) {
        let (_, message) = sim.next_message();
        let mut request = tonic::Request::new(message);
        request.set_timeout(Duration::from_secs(1));
        let outcome = tokio::time::timeout(Duration::from_secs(5), ingest.heartbeat(request)).await;
        outcomes.push(outcome.map(|r| r.map(|_| ())));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (stopped, _) = stop.await.expect("stopped");
    stopped.start().await;
    let store = postgres::store(&url, &schema).await;
    server.terminate(GRACE + Duration::from_secs(2)).await;
    postgres::drop_schema(&store, &schema).await;
    store.close().await;

    let wrong: Vec<String> = outcomes
        .iter()
        .filter_map(|o| match o {
            Err(_) => Some("no answer within 5 s".to_owned()),
            Ok(Err(s)) if !matches!(s.code(), Code::Unavailable | Code::DeadlineExceeded) => {
                Some(format!("{:?} {:?}", s.code(), s.message()))
            }
            Ok(_) => None,
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} heartbeats failed with a code PROTOCOL.md does not say to retry: {wrong:?}",
        wrong.len(),
        outcomes.len()
    );
}
