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

mod fleet;
mod observer;
mod postgres;
mod rule;
mod scenario;
mod verdicts;

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use carewatch_cli::simulate::provision_site;
use carewatch_core::ids::{ResellerId, Slc};
use carewatch_core::store::Store;
use carewatch_core::time::Timestamp;
use carewatch_grpc::proto;
use carewatch_tests::process::{ServeConfig, ServerProcess, Storage, binary, clock, millis};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::rule::expected_unavailable;
use crate::scenario::{Backend, scenario};

pub(crate) const INTERVAL: Duration = Duration::from_secs(1);
pub(crate) const JITTER: Duration = Duration::from_millis(200);
/// `serve --shutdown-grace`'s default.
pub(crate) const GRACE: Duration = Duration::from_secs(5);
/// A failed message is sent again this often, each try with this deadline.
pub(crate) const RETRY_EVERY: Duration = Duration::from_millis(100);
pub(crate) const CALL_DEADLINE: Duration = Duration::from_secs(2);
pub(crate) const POLL_EVERY: Duration = Duration::from_millis(150);
/// After each recovery: long enough for the servers silenced before the
/// fault to be due (window end + 3 intervals + jitter) and observed.
pub(crate) const SETTLE: Duration = Duration::from_secs(5);
/// Servers of each fault's site go silent this long before it.
pub(crate) const LEADS: [Duration; 2] = [Duration::from_millis(300), Duration::from_millis(1700)];

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

// ------------------------------------------------------------- shared helpers

/// A PostgreSQL URL, a schema named for this test and this run, a data
/// directory, and `serve` set up on them.
fn serve_on_a_schema_of_its_own(tag: &str) -> (String, String, tempfile::TempDir, ServeConfig) {
    let url = postgres::url();
    let schema = format!(
        "cw_test_{}_{tag}_{}",
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
    });
    (url, schema, data, config)
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn add(t: SystemTime, ms: i64) -> SystemTime {
    match u64::try_from(ms) {
        Ok(ms) => t + Duration::from_millis(ms),
        Err(_) => t - Duration::from_millis(ms.unsigned_abs()),
    }
}

pub(crate) fn at_ms(ms: i64) -> SystemTime {
    add(SystemTime::UNIX_EPOCH, ms)
}

pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).expect("short duration")
}

// ------------------------------------------------------------- the tests beside it

// They stay here, at the crate's root, so that their names (as `--exact`
// and the test list give them) are those they had when this was one file.

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
    let (url, schema, _data, config) = serve_on_a_schema_of_its_own("stall");
    let config = config.args(["--heartbeat-interval", "1s", "--jitter", "200ms"]);
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
    let (url, schema, _data, config) = serve_on_a_schema_of_its_own("outage");
    let config = config.args(["--heartbeat-interval", "1s", "--jitter", "200ms"]);
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
    // Found by review: the health service went on saying SERVING.
    let mut health = HealthClient::new(server.channel().await);
    let ingest_health = || HealthCheckRequest {
        service: "carewatch.v1.Ingest".into(),
    };
    let during = health.check(ingest_health()).await.expect("health answers");
    // The server as a whole: what the image's health check asks (it said
    // SERVING throughout, so a balancer kept a node without its database).
    let whole_during = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health answers");
    stopped.start().await;
    let mut after = health.check(ingest_health()).await.expect("health answers");
    let recovered = tokio::time::Instant::now();
    while after.get_ref().status() != ServingStatus::Serving
        && recovered.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
        after = health.check(ingest_health()).await.expect("health answers");
    }
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
    assert_eq!(
        during.get_ref().status(),
        ServingStatus::NotServing,
        "Ingest is not serving while its database is down"
    );
    assert_eq!(
        whole_during.get_ref().status(),
        ServingStatus::NotServing,
        "nor is the server as a whole"
    );
    assert_eq!(
        after.get_ref().status(),
        ServingStatus::Serving,
        "Ingest serves again once the database is back"
    );
}

/// Found by review: `serve` made one attempt at its database and exited 1,
/// so a node started with its database (compose, a reboot) needed starting
/// again by hand. It now keeps trying (`--database-wait`, 60 s by default).
#[tokio::test(flavor = "multi_thread")]
async fn serve_waits_for_a_database_still_starting_on_postgres() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (url, schema, _data, config) = serve_on_a_schema_of_its_own("starting");
    let (stopped, _) = postgres::Stopped::stop().await;
    let starting = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        stopped.start().await
    });
    let mut server = ServerProcess::start(config).await;
    starting.await.expect("PostgreSQL started");
    let waited = server.stderr_contains("trying again");
    let served = server
        .admin()
        .await
        .create_reseller(proto::CreateResellerRequest {
            id: "waited".into(),
            name: "Waited".into(),
        })
        .await;
    let store = postgres::store(&url, &schema).await;
    server.terminate(GRACE + Duration::from_secs(2)).await;
    postgres::drop_schema(&store, &schema).await;
    store.close().await;
    assert!(waited, "it said it waits for the database");
    served.expect("it serves once the database is up");
}

/// `carewatch operator-token` on PostgreSQL: a schema that holds no
/// Carewatch tables (a mistyped name) is refused and not created, the
/// deployment's own gets a new token that works after a restart.
#[tokio::test(flavor = "multi_thread")]
async fn the_operator_token_is_replaced_in_a_postgres_schema() {
    let _one = ONE_AT_A_TIME.lock().await;
    use carewatch_grpc::client::Bearer;
    use carewatch_grpc::proto::admin_client::AdminClient;
    use carewatch_storage_postgres::{PostgresConfig, PostgresStore};
    let (url, schema, data, config) = serve_on_a_schema_of_its_own("token");
    let mistyped = format!("{schema}_mistyped");
    let program = binary(env!("CARGO_BIN_EXE_carewatch-under-test"));
    let mut server = ServerProcess::start(config).await;
    server.terminate(GRACE + Duration::from_secs(2)).await;
    let replace = |schema: &str| {
        std::process::Command::new(&program)
            .arg("operator-token")
            .args(["--database-url", &url, "--database-schema", schema])
            .arg("--data-dir")
            .arg(data.path())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("runs")
    };
    let refused = replace(&mistyped);
    let replaced = replace(&schema);
    let still_missing = PostgresStore::open_existing(
        PostgresConfig::from_url(&url)
            .expect("URL")
            .schema(&mistyped)
            .expect("schema name"),
    )
    .await;
    server.restart().await;
    let token = String::from_utf8_lossy(&replaced.stdout).trim().to_owned();
    let listed = AdminClient::with_interceptor(
        server.channel().await,
        Bearer::new(&token).expect("a token"),
    )
    .list_resellers(proto::ListResellersRequest::default())
    .await;
    let store = postgres::store(&url, &schema).await;
    server.terminate(GRACE + Duration::from_secs(2)).await;
    postgres::drop_schema(&store, &schema).await;
    postgres::drop_schema(&store, &mistyped).await;
    store.close().await;

    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not found"),
        "{refused:?}"
    );
    assert!(
        matches!(still_missing, Err(carewatch_core::Error::NotFound { .. })),
        "the mistyped schema holds no tables: {:?}",
        still_missing.map(|_| ())
    );
    assert!(replaced.status.success(), "{replaced:?}");
    listed.expect("the new token works");
}
