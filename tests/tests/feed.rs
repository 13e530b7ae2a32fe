//! The change feed across nodes: two Carewatch nodes on one PostgreSQL (each
//! its own store, pool and server over TLS, as two `carewatch serve`
//! processes would be); a watcher on node A sees what node B ingested within
//! a second, and a watcher that reconnects with the last event id it saw
//! misses nothing.

use std::sync::Arc;
use std::time::Duration;

use carewatch_cli::server::{ServeOptions, serve};
use carewatch_cli::tls::TlsIdentity;
use carewatch_core::availability::AvailabilityPolicy;
use carewatch_core::feed::EventId;
use carewatch_core::ids::ResellerId;
use carewatch_core::seal::MasterKey;
use carewatch_core::time::SystemClock;
use carewatch_core::{Carewatch, Config};
use carewatch_grpc::client::{Bearer, connect};
use carewatch_grpc::proto::{self, admin_client::AdminClient, dashboard_client::DashboardClient};
use carewatch_grpc::proto::{ingest_client::IngestClient, watch_event::Event};
use carewatch_storage_postgres::{PostgresConfig, PostgresStore};
use futures::StreamExt;
use sqlx_core::query::query;
use sqlx_core::sql_str::AssertSqlSafe;
use tokio::task::JoinHandle;

const INTERVAL: Duration = Duration::from_millis(500);

fn database_url() -> String {
    std::env::var("CAREWATCH_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// One node: its own store on the shared schema, its own server.
struct Node {
    url: String,
    carewatch: Carewatch,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Node {
    async fn start(name: &str, schema: &str, key: &MasterKey, tls: &TlsIdentity) -> Self {
        let config = PostgresConfig::from_url(&database_url())
            .expect("URL")
            .schema(schema)
            .expect("schema")
            .application_name(&format!("cw_test_{name}"));
        let store = Arc::new(PostgresStore::open(config).await.expect("PostgreSQL"));
        let config = Config::new(key.clone())
            .with_heartbeat_interval(INTERVAL)
            .expect("interval")
            .with_policy(AvailabilityPolicy::new(3, INTERVAL / 3).expect("policy"))
            .with_node_id(name);
        let carewatch = Carewatch::open(store, Arc::new(SystemClock), config)
            .await
            .expect("opens");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("port");
        let url = format!(
            "https://localhost:{}",
            listener.local_addr().expect("addr").port()
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let options = ServeOptions {
            tls: Some(tls.clone()),
            maintenance_every: Duration::from_millis(200),
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
        Self {
            url,
            carewatch,
            stop: Some(stop),
            task,
        }
    }

    async fn channel(&self, tls: &TlsIdentity) -> tonic::transport::Channel {
        connect(&self.url, Some(&tls.cert_pem)).await.expect("TLS")
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.task.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_on_one_node_sees_what_another_node_ingested_and_resumes_without_gaps() {
    let schema = format!(
        "cw_test_feed_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    );
    let key = MasterKey::generate();
    let dir = tempfile::tempdir().expect("dir");
    let (tls, _) = TlsIdentity::self_signed_in(dir.path(), &[]).expect("certificate");
    let a = Node::start("node-a", &schema, &key, &tls).await;
    let b = Node::start("node-b", &schema, &key, &tls).await;

    // The operator provisions through node B; the reseller watches node A.
    let operator = a
        .carewatch
        .issue_operator_token(&ResellerId::new("admin").expect("id"))
        .await
        .expect("operator");
    let mut admin = AdminClient::with_interceptor(
        b.channel(&tls).await,
        Bearer::new(&operator.token).expect("token"),
    );
    let token = admin
        .create_reseller(proto::CreateResellerRequest {
            id: "acme".into(),
            name: "ACME".into(),
        })
        .await
        .expect("reseller")
        .into_inner()
        .token;
    let mut fleet = carewatch_cli::simulate::Fleet::default();
    let slcs = ["M01-FED-0001", "M01-FED-0002"];
    let acme = ResellerId::new("acme").expect("id");
    for slc in slcs {
        let slc = carewatch_core::ids::Slc::new(slc).expect("slc");
        fleet
            .provision(&mut admin, &acme, &slc, ("XProtect", "2016"), 1)
            .await
            .expect("site");
    }
    let mut dashboard = DashboardClient::with_interceptor(
        a.channel(&tls).await,
        Bearer::new(&token).expect("token"),
    );
    // From after the registrations: only the servers' changes follow.
    let mut watch = dashboard
        .watch(proto::WatchRequest::default())
        .await
        .expect("watch on node A")
        .into_inner();

    // Ingested on node B: seen on node A within a second.
    let ingest_b = IngestClient::new(b.channel(&tls).await);
    let sent = tokio::time::Instant::now();
    let round = fleet.round(&ingest_b, 1).await;
    assert_eq!(round.accepted, 2, "{round:?}");
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let event = tokio::time::timeout_at(sent + Duration::from_secs(1), watch.next())
            .await
            .expect("node A shows node B's changes within 1 s")
            .expect("open")
            .expect("event");
        seen.push(event);
    }
    assert!(sent.elapsed() < Duration::from_secs(1));
    let healthy: Vec<&str> = seen
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Changed(c)) => Some(c.slc.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(healthy.len(), 2, "both sites Pending -> Healthy: {seen:?}");
    let last = seen.last().expect("events").event_id;
    drop(watch);

    // While disconnected: changes on node B (a condition on each site).
    let camera = carewatch_core::condition::ReportedCondition::new(
        carewatch_core::ConditionCode::CameraUnreachable,
        "Camera 2",
        "",
    )
    .expect("condition");
    for slc in slcs {
        fleet
            .server_mut(&carewatch_core::ids::Slc::new(slc).expect("slc"), "rs-1")
            .expect("server")
            .set_conditions(vec![camera.clone()]);
    }
    fleet.round(&ingest_b, 1).await;

    // Reconnect to node A after the last event seen: every change since.
    let mut resumed = dashboard
        .watch(proto::WatchRequest {
            slc: String::new(),
            after_event_id: Some(last),
        })
        .await
        .expect("resume")
        .into_inner();
    let mut ids = vec![last];
    let mut kinds = Vec::new();
    while kinds.len() < 4 {
        let event = tokio::time::timeout(Duration::from_secs(2), resumed.next())
            .await
            .expect("the missed changes")
            .expect("open")
            .expect("event");
        ids.push(event.event_id);
        kinds.push(match event.event {
            Some(Event::Server(_)) => "server",
            Some(Event::Changed(_)) => "health",
            _ => "other",
        });
    }
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "no gap: this reseller made every change: {ids:?}"
    );
    assert_eq!(kinds, ["server", "health", "server", "health"]);

    // A resume point older than the feed keeps is refused, typed.
    a.carewatch
        .store()
        .prune_changes(
            a.carewatch.now().saturating_add(Duration::from_secs(1)),
            EventId(u64::MAX),
        )
        .await
        .expect("prune");
    let status = dashboard
        .watch(proto::WatchRequest {
            slc: String::new(),
            after_event_id: Some(1),
        })
        .await
        .expect_err("too old");
    assert_eq!(status.code(), tonic::Code::OutOfRange);
    assert_eq!(
        status
            .metadata()
            .get(carewatch_grpc::status::ERROR_KIND_KEY)
            .and_then(|v| v.to_str().ok()),
        Some("resume_too_old")
    );

    a.stop().await;
    b.stop().await;
    // A store on the test's own schema (already migrated): one on `public`
    // would migrate that schema, which is not this test's to touch.
    let pool = carewatch_storage_postgres::PostgresStore::open(
        PostgresConfig::from_url(&database_url())
            .and_then(|c| c.schema(&schema))
            .expect("URL"),
    )
    .await
    .expect("a store on the test's schema");
    let _ = query(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(pool.pool())
    .await;
}
