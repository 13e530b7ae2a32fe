//! An installation's life end to end (issue 18), on a real `carewatch
//! serve` process (1 s heartbeats, 200 ms jitter) driven over gRPC + TLS
//! with simulated recording servers: a transfer stops the old reseller's
//! open watch and hides what came before from the new one; decommissioning
//! makes health recover at once; an expired Care Plus shows no false
//! Unavailable while refused and a renewal gives three intervals of grace;
//! withdrawn consent's data is deleted after the retention (the
//! housekeeping that runs when the server starts).

use std::time::{Duration, SystemTime};

use carewatch_cli::simulate::{Fleet, provision_site};
use carewatch_core::ConditionCode;
use carewatch_core::condition::ReportedCondition;
use carewatch_core::ids::{ResellerId, Slc};
use carewatch_grpc::proto::{self, installation_updated::Change as Updated, watch_event::Event};
use carewatch_tests::process::{ServeConfig, ServerProcess, binary};
use futures::StreamExt;
use tonic::Code;

const INTERVAL: Duration = Duration::from_secs(1);
/// Longest wait for something that should happen within a few seconds.
const SOON: Duration = Duration::from_secs(20);

fn slc(text: &str) -> Slc {
    Slc::new(text).expect("slc")
}

async fn start(dir: &std::path::Path, extra: &[&str]) -> ServerProcess {
    let config = ServeConfig::new(binary(env!("CARGO_BIN_EXE_carewatch-under-test")), dir)
        .args(["--heartbeat-interval", "1s", "--jitter", "200ms"])
        .args(extra.iter().copied());
    ServerProcess::start(config).await
}

/// Provisions `site` for `reseller` with `servers` simulated servers.
async fn site(server: &ServerProcess, reseller: &str, site: &str, servers: usize) -> Fleet {
    let sims = provision_site(
        &mut server.admin().await,
        &ResellerId::new(reseller).expect("id"),
        &slc(site),
        ("XProtect Corporate", "2016"),
        servers,
    )
    .await
    .expect("provisioned");
    Fleet { servers: sims }
}

async fn detail(server: &ServerProcess, token: &str, site: &str) -> proto::InstallationDetail {
    server
        .dashboard(token)
        .await
        .get_installation(proto::GetInstallationRequest { slc: site.into() })
        .await
        .expect("detail")
        .into_inner()
}

fn health(d: &proto::InstallationDetail) -> proto::Health {
    let summary = d
        .installation
        .as_ref()
        .and_then(|i| i.summary.as_ref())
        .expect("summary");
    proto::Health::try_from(summary.health).expect("a health")
}

fn availabilities(d: &proto::InstallationDetail) -> Vec<proto::Availability> {
    d.servers
        .iter()
        .map(|s| proto::Availability::try_from(s.availability).expect("an availability"))
        .collect()
}

/// Polls the detail until `done` holds (or fails after [`SOON`]).
async fn detail_when(
    server: &ServerProcess,
    token: &str,
    site: &str,
    what: &str,
    done: impl Fn(&proto::InstallationDetail) -> bool,
) -> proto::InstallationDetail {
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        let d = detail(server, token, site).await;
        if done(&d) {
            return d;
        }
        if tokio::time::Instant::now() > deadline {
            server.fail(&format!("{site}: not {what} within {SOON:?}: {d:#?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The next watch event that is not a health or server change.
async fn next_update(
    server: &ServerProcess,
    stream: &mut tonic::Streaming<proto::WatchEvent>,
) -> proto::InstallationUpdated {
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        let event = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(event))) => event,
            other => server.fail(&format!("no update on the watch: {other:?}")),
        };
        if let Some(Event::Updated(update)) = event.event {
            return update;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_stops_the_old_resellers_watch_and_hides_the_past() {
    let dir = tempfile::tempdir().expect("data dir");
    let mut server = start(dir.path(), &[]).await;
    let acme = server.reseller_token("acme").await;
    let beta = server.reseller_token("beta").await;
    let mut fleet = site(&server, "acme", "M01-LC-0001", 2).await;
    let ingest = server.ingest().await;
    let camera = ReportedCondition::new(ConditionCode::CameraUnreachable, "Camera 3", "")
        .expect("condition");
    fleet
        .server_mut(&slc("M01-LC-0001"), "rs-1")
        .expect("server")
        .set_conditions(vec![camera]);
    assert_eq!(fleet.round(&ingest, 2).await.refused, 0);
    let before = detail(&server, &acme, "M01-LC-0001").await;
    assert!(!before.history.is_empty());
    assert_eq!(before.active_conditions.len(), 1);

    let mut acme_watch = server
        .dashboard(&acme)
        .await
        .watch(proto::WatchRequest::default())
        .await
        .expect("acme watches")
        .into_inner();
    let mut beta_watch = server
        .dashboard(&beta)
        .await
        .watch(proto::WatchRequest::default())
        .await
        .expect("beta watches")
        .into_inner();
    let moved = server
        .admin()
        .await
        .transfer_installation(proto::TransferInstallationRequest {
            slc: "M01-LC-0001".into(),
            to_reseller_id: "beta".into(),
            share_history: false,
        })
        .await
        .expect("transferred")
        .into_inner();
    assert_eq!(moved.reseller_id, "beta");

    // The old reseller's open watch is told, then nothing is there.
    let removed = next_update(&server, &mut acme_watch).await;
    assert_eq!(removed.slc, "M01-LC-0001");
    assert_eq!(removed.change, Some(Updated::Removed(true)));
    let gone = server
        .dashboard(&acme)
        .await
        .get_installation(proto::GetInstallationRequest {
            slc: "M01-LC-0001".into(),
        })
        .await
        .expect_err("not acme's any more");
    assert_eq!(gone.code(), Code::NotFound, "{gone:?}");
    let listed = server
        .dashboard(&acme)
        .await
        .list_installations(proto::ListInstallationsRequest {
            include_healthy: true,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert!(listed.installations.is_empty(), "{listed:?}");

    // The new one: registered to it, without the past.
    let registered = next_update(&server, &mut beta_watch).await;
    assert_eq!(registered.change, Some(Updated::Registered(true)));
    let now_beta = detail(&server, &beta, "M01-LC-0001").await;
    assert!(now_beta.history.is_empty(), "{:?}", now_beta.history);
    assert_eq!(
        now_beta.active_conditions.len(),
        1,
        "what is wrong now is shown"
    );
    // Messages go on; the old reseller's watch hears nothing more of it.
    assert_eq!(fleet.round(&ingest, 2).await.refused, 0);
    fleet
        .server_mut(&slc("M01-LC-0001"), "rs-1")
        .expect("server")
        .set_conditions(Vec::new());
    assert_eq!(fleet.round(&ingest, 2).await.refused, 0);
    let resolved = detail_when(&server, &beta, "M01-LC-0001", "resolved", |d| {
        d.active_conditions.is_empty()
    })
    .await;
    assert!(!resolved.history.is_empty(), "beta's own history");
    let quiet = tokio::time::timeout(Duration::from_secs(2), acme_watch.next()).await;
    assert!(quiet.is_err(), "acme heard more: {quiet:?}");
    server.terminate(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decommissioning_a_silent_server_makes_health_recover_at_once() {
    let dir = tempfile::tempdir().expect("data dir");
    let mut server = start(dir.path(), &[]).await;
    let acme = server.reseller_token("acme").await;
    let mut fleet = site(&server, "acme", "M01-LC-0002", 2).await;
    let ingest = server.ingest().await;
    assert_eq!(fleet.round(&ingest, 2).await.refused, 0);
    // rs-2 was removed at the site: only rs-1 goes on.
    fleet.servers.retain(|s| s.id.as_str() == "rs-1");
    let beat = tokio::spawn(async move {
        loop {
            fleet.round(&ingest, 1).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let critical = detail_when(&server, &acme, "M01-LC-0002", "Critical", |d| {
        health(d) == proto::Health::Critical
    })
    .await;
    assert!(availabilities(&critical).contains(&proto::Availability::Unavailable));

    let retired = server
        .dashboard(&acme)
        .await
        .decommission_server(proto::DecommissionServerRequest {
            slc: "M01-LC-0002".into(),
            recording_server_id: "rs-2".into(),
        })
        .await
        .expect("decommissioned")
        .into_inner();
    assert!(retired.changed);
    // At once: the very next read.
    let after = detail(&server, &acme, "M01-LC-0002").await;
    assert_eq!(health(&after), proto::Health::Healthy, "{after:#?}");
    assert!(
        availabilities(&after).contains(&proto::Availability::Decommissioned),
        "{after:#?}"
    );
    assert!(after.active_conditions.is_empty(), "{after:#?}");
    beat.abort();
    server.terminate(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_care_plus_shows_no_false_unavailable_and_renewal_gives_grace() {
    let dir = tempfile::tempdir().expect("data dir");
    let mut server = start(dir.path(), &[]).await;
    let acme = server.reseller_token("acme").await;
    let mut fleet = site(&server, "acme", "M01-LC-0003", 1).await;
    let ingest = server.ingest().await;
    assert_eq!(fleet.round(&ingest, 1).await.refused, 0);
    let ends = SystemTime::now() + Duration::from_secs(2);
    server
        .admin()
        .await
        .set_subscription(proto::SetSubscriptionRequest {
            slc: "M01-LC-0003".into(),
            expires_at: Some(ends.into()),
        })
        .await
        .expect("subscription");
    // It ends; the site keeps sending, and is refused.
    let expired = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < expired + Duration::from_secs(6) {
        fleet.round(&ingest, 1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let refused = fleet.round(&ingest, 1).await;
    assert_eq!(refused.first_refusal, Some(Code::FailedPrecondition));
    // Six intervals after the end: no false Unavailable, and it says why.
    let d = detail(&server, &acme, "M01-LC-0003").await;
    let row = d.installation.as_ref().expect("row");
    assert_eq!(row.refused, "subscription_expired", "{d:#?}");
    assert!(
        !availabilities(&d).contains(&proto::Availability::Unavailable),
        "{d:#?}"
    );
    assert_ne!(health(&d), proto::Health::Offline);

    // Renewed: three intervals of grace before a silent server counts.
    server
        .admin()
        .await
        .set_subscription(proto::SetSubscriptionRequest {
            slc: "M01-LC-0003".into(),
            expires_at: Some((SystemTime::now() + Duration::from_secs(86_400)).into()),
        })
        .await
        .expect("renewed");
    let renewed = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let d = detail(&server, &acme, "M01-LC-0003").await;
    assert_eq!(d.installation.as_ref().expect("row").refused, "");
    assert!(
        !availabilities(&d).contains(&proto::Availability::Unavailable),
        "within the grace: {d:#?}"
    );
    // Silent past the grace: now it counts (the grace ends).
    let d = detail_when(&server, &acme, "M01-LC-0003", "Unavailable", |d| {
        availabilities(d).contains(&proto::Availability::Unavailable)
    })
    .await;
    assert!(
        renewed.elapsed() >= INTERVAL * 3,
        "unavailable {:?} after the renewal: {d:#?}",
        renewed.elapsed()
    );
    // And one message brings it back.
    assert_eq!(fleet.round(&ingest, 1).await.refused, 0);
    detail_when(&server, &acme, "M01-LC-0003", "available", |d| {
        availabilities(d) == [proto::Availability::Available]
    })
    .await;
    server.terminate(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawn_consents_data_is_deleted_after_the_retention() {
    let dir = tempfile::tempdir().expect("data dir");
    let mut server = start(dir.path(), &["--withdrawn-data-retention", "2s"]).await;
    let acme = server.reseller_token("acme").await;
    let mut fleet = site(&server, "acme", "M01-LC-0004", 1).await;
    let ingest = server.ingest().await;
    let drive =
        ReportedCondition::new(ConditionCode::StorageFull, "D:", "100%").expect("condition");
    fleet
        .server_mut(&slc("M01-LC-0004"), "rs-1")
        .expect("server")
        .set_conditions(vec![drive]);
    assert_eq!(fleet.round(&ingest, 1).await.refused, 0);
    let before = detail(&server, &acme, "M01-LC-0004").await;
    assert!(!before.history.is_empty() && !before.active_conditions.is_empty());

    server
        .admin()
        .await
        .set_consent(proto::SetConsentRequest {
            slc: "M01-LC-0004".into(),
            accepted: false,
        })
        .await
        .expect("withdrawn");
    let withdrawn = detail(&server, &acme, "M01-LC-0004").await;
    assert_eq!(
        withdrawn.installation.as_ref().expect("row").refused,
        "consent_withdrawn"
    );
    assert!(!withdrawn.history.is_empty(), "kept during the retention");
    // Past the retention, housekeeping deletes it (it runs at every start).
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.terminate(Duration::from_secs(30)).await;
    server.restart().await;
    let deleted = detail_when(&server, &acme, "M01-LC-0004", "deleted", |d| {
        d.history.is_empty() && d.active_conditions.is_empty() && d.servers.is_empty()
    })
    .await;
    assert!(!deleted.consent, "still registered, still without consent");
    server.terminate(Duration::from_secs(30)).await;
}
