//! A rolling restart of two Carewatch nodes on one PostgreSQL under load:
//! while one node restarts, its recording servers fail over to the other,
//! the fleet keeps receiving, and nobody gets a false verdict (no Late, no
//! Unavailable, no own-downtime window: one node was receiving throughout).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use carewatch_cli::server::{ServeOptions, serve};
use carewatch_cli::tls::TlsIdentity;
use carewatch_core::availability::{Availability, AvailabilityPolicy};
use carewatch_core::ids::{RecordingServerId, ResellerId, Slc};
use carewatch_core::installation::Product;
use carewatch_core::seal::{self, Binding, InstallationKey, MasterKey, MessageKind};
use carewatch_core::store::HistoryKind;
use carewatch_core::time::{SystemClock, Timestamp};
use carewatch_core::{Carewatch, Config};
use carewatch_grpc::client::connect;
use carewatch_grpc::proto::{self, ingest_client::IngestClient};
use carewatch_storage_postgres::{PostgresConfig, PostgresStore};
use sqlx_core::query::query;
use sqlx_core::sql_str::AssertSqlSafe;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until};

const INTERVAL: Duration = Duration::from_secs(1);
const JITTER: Duration = Duration::from_millis(200);

fn database_url() -> String {
    std::env::var("CAREWATCH_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// What every node shares: the schema, the master key, the certificate.
struct Cluster {
    schema: String,
    key: MasterKey,
    tls: TlsIdentity,
    _dir: tempfile::TempDir,
}

/// A running node: its service and server task, stopped gracefully.
struct Node {
    carewatch: Carewatch,
    stop: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Cluster {
    async fn start_node(&self, name: &str, listener: TcpListener) -> Node {
        let config = PostgresConfig::from_url(&database_url())
            .expect("URL")
            .schema(&self.schema)
            .expect("schema")
            .application_name(&format!("cw_test_rolling_{name}"));
        let store = Arc::new(PostgresStore::open(config).await.expect("PostgreSQL"));
        let config = Config::new(self.key.clone())
            .with_heartbeat_interval(INTERVAL)
            .expect("interval")
            .with_policy(AvailabilityPolicy::new(3, JITTER).expect("policy"))
            .with_node_id(name);
        let carewatch = Carewatch::open(store, Arc::new(SystemClock), config)
            .await
            .expect("opens");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let options = ServeOptions {
            tls: Some(self.tls.clone()),
            ..ServeOptions::default()
        };
        let task = tokio::spawn({
            let carewatch = carewatch.clone();
            async move {
                serve(carewatch, listener, options, async {
                    let _ = stopped.await;
                })
                .await
                .expect("serves");
            }
        });
        Node {
            carewatch,
            stop,
            task,
        }
    }
}

impl Node {
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// A recording server that starts on one node, fails over to the other when
/// its node refuses or does not answer, and stays where it succeeded.
async fn recording_server(
    nodes: [IngestClient<tonic::transport::Channel>; 2],
    preferred: usize,
    slc: Slc,
    server: RecordingServerId,
    key: InstallationKey,
    running: Arc<AtomicBool>,
) {
    let mut sequence = 0u64;
    let mut node = preferred;
    while running.load(Ordering::SeqCst) {
        sequence += 1;
        let binding = Binding {
            slc: &slc,
            server: &server,
            kind: MessageKind::Heartbeat,
            sequence,
        };
        let message = proto::SealedMessage {
            slc: slc.to_string(),
            recording_server_id: server.to_string(),
            sequence,
            sealed: seal::seal(&key, &binding, b""),
        };
        let sent = Instant::now();
        // Retried (same bytes) on the other node until acknowledged.
        loop {
            let mut client = nodes[node].clone();
            let call = tokio::time::timeout(
                Duration::from_millis(300),
                client.heartbeat(message.clone()),
            );
            match call.await {
                Ok(Ok(_)) => break,
                _ => {
                    node = 1 - node;
                    sleep(Duration::from_millis(50)).await;
                    if !running.load(Ordering::SeqCst) {
                        return;
                    }
                }
            }
        }
        sleep_until(sent + INTERVAL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_two_nodes_under_load_gives_no_false_verdict() {
    let dir = tempfile::tempdir().expect("dir");
    let (tls, _) = TlsIdentity::self_signed_in(dir.path(), &[]).expect("certificate");
    let cluster = Cluster {
        schema: format!("cw_test_rolling_{}", std::process::id()),
        key: MasterKey::generate(),
        tls,
        _dir: dir,
    };
    let listeners = [
        TcpListener::bind("127.0.0.1:0").await.expect("port"),
        TcpListener::bind("127.0.0.1:0").await.expect("port"),
    ];
    let addresses = listeners
        .each_ref()
        .map(|l| l.local_addr().expect("address"));
    let [first, second] = listeners;
    let mut nodes = [
        Some(cluster.start_node("node-a", first).await),
        Some(cluster.start_node("node-b", second).await),
    ];

    // Twenty recording servers on five sites, half preferring each node.
    let service = nodes[0].as_ref().expect("node").carewatch.clone();
    let reseller = ResellerId::new("acme").expect("id");
    service
        .create_reseller(&reseller, "ACME")
        .await
        .expect("reseller");
    let mut sites = Vec::new();
    for n in 1..=5 {
        let slc = Slc::new(&format!("M01-ROL-{n:04}")).expect("slc");
        service
            .register_installation(
                &slc,
                &reseller,
                Product::new("XProtect", "2016").expect("product"),
            )
            .await
            .expect("register");
        service.set_consent(&slc, true).await.expect("consent");
        let year = service
            .now()
            .saturating_add(Duration::from_secs(365 * 86_400));
        service
            .set_subscription(&slc, Some(year))
            .await
            .expect("subscription");
        let key = service.issue_installation_key(&slc).await.expect("key");
        sites.push((slc, key));
    }
    let clients = {
        let mut out = Vec::new();
        for address in addresses {
            let url = format!("https://localhost:{}", address.port());
            out.push(IngestClient::new(
                connect(&url, Some(&cluster.tls.cert_pem))
                    .await
                    .expect("TLS"),
            ));
        }
        [out[0].clone(), out[1].clone()]
    };
    let running = Arc::new(AtomicBool::new(true));
    let mut fleet = Vec::new();
    for (n, (slc, key)) in sites.iter().enumerate() {
        for s in 1..=4 {
            fleet.push(tokio::spawn(recording_server(
                clients.clone(),
                (n + s) % 2,
                slc.clone(),
                RecordingServerId::new(&format!("rs-{s}")).expect("id"),
                key.clone(),
                running.clone(),
            )));
        }
    }

    // The observer: every server's availability, read every 200 ms from a
    // node that is up.
    let watching = Arc::new(AtomicBool::new(true));
    let observer = tokio::spawn({
        let watching = watching.clone();
        let sites: Vec<Slc> = sites.iter().map(|(slc, _)| slc.clone()).collect();
        let reseller = reseller.clone();
        let service = service.clone();
        async move {
            let mut false_verdicts = Vec::new();
            let start = Instant::now();
            while watching.load(Ordering::SeqCst) {
                for slc in &sites {
                    // Reads go straight to the shared store: a restarting node
                    // does not blind the observer.
                    if let Ok(detail) = service.installation(&reseller, slc).await {
                        for s in &detail.servers {
                            if !matches!(s.availability, Availability::Available) {
                                false_verdicts.push(format!(
                                    "{:.1}s {} {}: {:?}",
                                    start.elapsed().as_secs_f64(),
                                    slc,
                                    s.server,
                                    s.availability
                                ));
                            }
                        }
                    }
                }
                sleep(Duration::from_millis(200)).await;
            }
            false_verdicts
        }
    });

    // The rolling restart: node A down 3 s, back; then node B.
    sleep(Duration::from_secs(5)).await;
    let downtime_before = service
        .store()
        .downtime(Timestamp::EPOCH)
        .await
        .expect("downtime")
        .windows;
    for (i, name) in [(0, "node-a"), (1, "node-b")] {
        if let Some(node) = nodes[i].take() {
            node.stop().await;
        }
        sleep(Duration::from_secs(3)).await;
        let listener = TcpListener::bind(addresses[i])
            .await
            .expect("the same port again");
        nodes[i] = Some(cluster.start_node(name, listener).await);
        sleep(Duration::from_secs(5)).await;
    }
    running.store(false, Ordering::SeqCst);
    for task in fleet {
        let _ = task.await;
    }
    watching.store(false, Ordering::SeqCst);
    let false_verdicts = observer.await.expect("observer");

    let service = nodes[0].as_ref().expect("node").carewatch.clone();
    let windows = service
        .store()
        .downtime(Timestamp::EPOCH)
        .await
        .expect("downtime")
        .windows;
    assert_eq!(
        windows, downtime_before,
        "one node was receiving throughout: no own-downtime window"
    );
    assert!(
        false_verdicts.is_empty(),
        "false verdicts: {false_verdicts:#?}"
    );
    for (slc, _) in &sites {
        let detail = service.installation(&reseller, slc).await.expect("detail");
        let unavailable: Vec<_> = detail
            .history
            .iter()
            .filter(|e| matches!(e.kind, HistoryKind::BecameUnavailable { .. }))
            .collect();
        assert!(unavailable.is_empty(), "{slc}: {unavailable:?}");
    }

    for node in nodes.into_iter().flatten() {
        node.stop().await;
    }
    // A store on the test's own schema (already migrated): one on `public`
    // would migrate that schema, which is not this test's to touch.
    let admin = PostgresStore::open(
        PostgresConfig::from_url(&database_url())
            .and_then(|c| c.schema(&cluster.schema))
            .expect("URL"),
    )
    .await
    .expect("a store on the test's schema");
    let _ = query(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {} CASCADE",
        cluster.schema
    )))
    .execute(admin.pool())
    .await;
}
