//! The fault scenario: the faults, the sites and their servers' roles, and
//! the run itself, from provisioning the fleet to the report.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use carewatch_cli::simulate::provision_site;
use carewatch_core::ConditionCode;
use carewatch_core::condition::ReportedCondition;
use carewatch_core::ids::{ResellerId, Slc};
use carewatch_core::store::Store;
use carewatch_core::time::Timestamp;
use carewatch_grpc::proto;
use carewatch_tests::process::{
    ServeConfig, ServerProcess, Storage, binary, clock, http2_call_prefix,
};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use crate::fleet::{Sim, run_sim};
use crate::observer::{Observations, observe, read_sites};
use crate::verdicts::Report;
use crate::{GRACE, LEADS, SETTLE, lock, postgres};

#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Sqlite,
    Postgres { url: String, schema: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
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
pub(crate) struct Done {
    pub(crate) fault: Fault,
    /// Signal sent, or PostgreSQL's stop begun.
    pub(crate) begun: SystemTime,
    /// The process exited, or PostgreSQL's stop returned.
    pub(crate) stopped: SystemTime,
    /// The process spawned again, or PostgreSQL's start begun.
    pub(crate) resumed: SystemTime,
    /// The listening line, or PostgreSQL's start returned.
    pub(crate) recovered: SystemTime,
    /// SIGTERM to exit, or to the SIGKILL after grace + 2 s.
    pub(crate) exit_after: Option<Result<Duration, Duration>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SiteKind {
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
pub(crate) enum Role {
    Live,
    SilentFromStart,
    SilentBefore(usize, Duration),
}

#[derive(Debug)]
pub(crate) struct SiteSpec {
    pub(crate) slc: String,
    pub(crate) kind: SiteKind,
    pub(crate) roles: Vec<Role>,
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

async fn sleep_until(t: SystemTime) {
    if let Ok(d) = t.duration_since(SystemTime::now()) {
        tokio::time::sleep(d).await;
    }
}

pub(crate) async fn scenario(backend: Backend) {
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
