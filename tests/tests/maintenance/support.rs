//! The service over a faulty store on tokio's paused clock, and a site that beats.

use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use carewatch_core::IncomingMessage;
use carewatch_core::availability::{AvailabilityPolicy, DowntimeWindow};
use carewatch_core::ids::{RecordingServerId, ResellerId, Slc};
use carewatch_core::installation::Product;
use carewatch_core::seal::{InstallationKey, MasterKey};
use carewatch_core::store::{HistoryKind, Store};
use carewatch_core::time::{Clock, Timestamp};
use carewatch_core::{Carewatch, Config};
use carewatch_storage_sqlite::SqliteStore;
use tokio::time::{Instant, sleep, sleep_until};

use crate::faulty::Faulty;

const TOLERANCE: Duration = Duration::from_secs(10);
pub(crate) const EVERY: Duration = Duration::from_secs(1);
/// A slow sweep's first store read takes this long: three times the tolerance.
pub(crate) const SLOW_SWEEP: Duration = Duration::from_secs(30);

/// The service clock, following tokio's (paused) time.
#[derive(Debug)]
struct TokioClock {
    base: Timestamp,
    start: Instant,
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        self.base.saturating_add(self.start.elapsed())
    }
}

/// A service over a fresh [`Faulty`] store, its clock at 2026-11-22T21:11:00Z.
pub(crate) async fn open(sweep_delay: Duration) -> (tempfile::TempDir, Arc<Faulty>, Carewatch) {
    open_with(sweep_delay, Config::new(MasterKey::generate())).await
}

pub(crate) async fn open_with(
    sweep_delay: Duration,
    config: Config,
) -> (tempfile::TempDir, Arc<Faulty>, Carewatch) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let inner = SqliteStore::open(dir.path().join("carewatch.db"))
        .await
        .expect("opens SQLite");
    let store = Arc::new(Faulty {
        inner,
        sweep_delay,
        failing: AtomicBool::new(false),
        stall_until: Mutex::default(),
        marks: Mutex::default(),
        sweeps: AtomicU32::new(0),
        transfer_before_details: Mutex::default(),
        window_before_commit: Mutex::default(),
    });
    let service = node(&store, Timestamp::from_millis(1_795_381_860_000), config).await;
    (dir, store, service)
}

/// One more service (node) over `store`, its clock reading `first`'s.
pub(crate) async fn another_node(
    store: &Arc<Faulty>,
    first: &Carewatch,
    config: Config,
) -> Carewatch {
    node(store, first.now(), config).await
}

/// A service over `store` whose clock reads `now` now.
async fn node(store: &Arc<Faulty>, now: Timestamp, config: Config) -> Carewatch {
    let clock = Arc::new(TokioClock {
        base: now,
        start: Instant::now(),
    });
    let config = config.with_liveness_tolerance(TOLERANCE);
    Carewatch::open(store.clone(), clock, config)
        .await
        .expect("service opens")
}

/// The longest time between consecutive liveness marks.
pub(crate) fn longest_gap(marks: &[Timestamp]) -> Duration {
    marks
        .windows(2)
        .map(|w| w[1].since(w[0]))
        .max()
        .unwrap_or_default()
}

/// Heartbeats every second, jitter tolerance 200 ms (as the fault tests).
pub(crate) fn fast_config() -> Config {
    fast_config_with(MasterKey::generate())
}

/// [`fast_config`] under `master_key` (nodes of one deployment share it).
pub(crate) fn fast_config_with(master_key: MasterKey) -> Config {
    Config::new(master_key)
        .with_heartbeat_interval(Duration::from_secs(1))
        .expect("interval")
        .with_policy(AvailabilityPolicy::new(3, Duration::from_millis(200)).expect("policy"))
}

/// One registered installation with a key, ready to ingest.
pub(crate) async fn site(service: &Carewatch) -> (Slc, InstallationKey) {
    let reseller = ResellerId::new("alpha").expect("id");
    let slc = Slc::new("M01-C01-0001").expect("slc");
    service
        .create_reseller(&reseller, "Alpha")
        .await
        .expect("reseller");
    service
        .register_installation(
            &slc,
            &reseller,
            Product::new("XProtect", "2016").expect("product"),
        )
        .await
        .expect("registers");
    service.set_consent(&slc, true).await.expect("consent");
    let year = service
        .now()
        .saturating_add(Duration::from_secs(365 * 86_400));
    service
        .set_subscription(&slc, Some(year))
        .await
        .expect("subscription");
    let key = service.issue_installation_key(&slc).await.expect("key");
    (slc, key)
}

/// Sends a heartbeat from `server` every second until `until` (tokio time),
/// from `from`; refusals (the store is down) are simply not acknowledged.
pub(crate) async fn beat_every_second(
    service: &Carewatch,
    slc: &Slc,
    key: &InstallationKey,
    server: &str,
    from: Instant,
    until: Instant,
) {
    let server = RecordingServerId::new(server).expect("id");
    sleep_until(from).await;
    let mut sequence = 0;
    while Instant::now() < until {
        sequence += 1;
        let _ = service
            .ingest(IncomingMessage::heartbeat(key, slc, &server, sequence))
            .await;
        sleep(Duration::from_secs(1)).await;
    }
}

/// The availability verdicts the service recorded (history), as text.
pub(crate) async fn became_unavailable(service: &Carewatch, slc: &Slc) -> Vec<String> {
    let detail = service
        .installation(&ResellerId::new("alpha").expect("id"), slc)
        .await
        .expect("detail");
    detail
        .history
        .iter()
        .filter(|e| matches!(e.kind, HistoryKind::BecameUnavailable { .. }))
        .map(|e| format!("{} at {}: {:?}", e.server, e.at, e.kind))
        .collect()
}

/// The own-downtime window `store` holds, checked to be the only one: one
/// outage, one window.
pub(crate) async fn the_one_window(store: &Faulty) -> DowntimeWindow {
    let windows = store
        .downtime(Timestamp::EPOCH)
        .await
        .expect("downtime")
        .windows;
    assert_eq!(windows.len(), 1, "one outage, one window: {windows:?}");
    windows[0]
}
