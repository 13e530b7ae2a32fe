//! The maintenance loop against a slow and a failing store.
//!
//! A million servers due after a restart take 14-22 s to sweep. Liveness must
//! keep being marked meanwhile: if it waited for the sweep, the next mark would
//! see a gap longer than the tolerance and record a false own-downtime window,
//! which would excuse real missed heartbeats. A storage outage is own
//! downtime from the first refused write, at any length, and no sweep may
//! judge across it before it is recorded. Time is tokio's paused clock
//! (auto-advanced; SQLite work in `spawn_blocking` holds it still), and the
//! service clock follows it, so minutes of maintenance take milliseconds.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use carewatch_core::auth::TokenHash;
use carewatch_core::availability::DowntimeWindow;
use carewatch_core::ids::{RecordingServerId, ResellerId, Slc};
use carewatch_core::installation::Installation;
use carewatch_core::liveness::LivenessMark;
use carewatch_core::seal::{KeyId, MasterKey, WrappedKey};
use carewatch_core::store::{
    Admission, AdmissionQuery, AvailabilityChange, AvailabilityOutcome, DowntimeEpoch, DowntimeLog,
    InstallationDetail, InstallationUpdate, OverviewPage, OverviewQuery, Reseller, ServerRecord,
    SignOfLife, StatusWrite, Store, StoredKey, WriteOutcome,
};
use carewatch_core::time::{Clock, Timestamp};
use carewatch_core::{Carewatch, Config};
use carewatch_core::{Error, Result};
use carewatch_storage_sqlite::SqliteStore;
use tokio::time::{Instant, sleep};

const TOLERANCE: Duration = Duration::from_secs(10);
const EVERY: Duration = Duration::from_secs(1);
/// A slow sweep's first store read takes this long: three times the tolerance.
const SLOW_SWEEP: Duration = Duration::from_secs(30);

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

/// SQLite whose `due_servers` takes `sweep_delay` (tokio time), whose every
/// call fails while `failing` is set (as a database that is down), recording
/// liveness marks and completed sweep reads.
#[derive(Debug)]
struct Faulty {
    inner: SqliteStore,
    sweep_delay: Duration,
    failing: AtomicBool,
    marks: Mutex<Vec<Timestamp>>,
    sweeps: AtomicU32,
}

impl Faulty {
    fn check(&self) -> Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(Error::storage_unavailable(
                "the test's database is down",
                "connection refused",
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Store for Faulty {
    async fn due_servers(&self, now: Timestamp, limit: u32) -> Result<Vec<ServerRecord>> {
        self.check()?;
        sleep(self.sweep_delay).await;
        let due = self.inner.due_servers(now, limit).await;
        self.sweeps.fetch_add(1, Ordering::SeqCst);
        due
    }
    async fn mark_alive(&self, mark: &LivenessMark) -> Result<Option<DowntimeWindow>> {
        self.check()?;
        self.marks.lock().expect("marks").push(mark.at);
        self.inner.mark_alive(mark).await
    }
    async fn mark_stopped(&self, node: &str, at: Timestamp) -> Result<()> {
        self.check()?;
        self.inner.mark_stopped(node, at).await
    }

    // Everything else as SQLite does it.
    async fn create_reseller(&self, reseller: &Reseller, token: &TokenHash) -> Result<()> {
        self.check()?;
        self.inner.create_reseller(reseller, token).await
    }
    async fn set_reseller_token(&self, id: &ResellerId, token: &TokenHash) -> Result<()> {
        self.check()?;
        self.inner.set_reseller_token(id, token).await
    }
    async fn reseller_token(&self, id: &ResellerId) -> Result<Option<TokenHash>> {
        self.check()?;
        self.inner.reseller_token(id).await
    }
    async fn resellers(&self) -> Result<Vec<Reseller>> {
        self.check()?;
        self.inner.resellers().await
    }
    async fn set_operator_token(&self, name: &ResellerId, token: &TokenHash) -> Result<()> {
        self.check()?;
        self.inner.set_operator_token(name, token).await
    }
    async fn operator_token(&self, name: &ResellerId) -> Result<Option<TokenHash>> {
        self.check()?;
        self.inner.operator_token(name).await
    }
    async fn has_operator(&self) -> Result<bool> {
        self.check()?;
        self.inner.has_operator().await
    }
    async fn register_installation(&self, installation: &Installation) -> Result<()> {
        self.check()?;
        self.inner.register_installation(installation).await
    }
    async fn update_installation(
        &self,
        slc: &Slc,
        update: &InstallationUpdate,
    ) -> Result<Installation> {
        self.check()?;
        self.inner.update_installation(slc, update).await
    }
    async fn installation(&self, slc: &Slc) -> Result<Option<Installation>> {
        self.check()?;
        self.inner.installation(slc).await
    }
    async fn add_installation_key(&self, slc: &Slc, key: &WrappedKey, at: Timestamp) -> Result<()> {
        self.check()?;
        self.inner.add_installation_key(slc, key, at).await
    }
    async fn installation_keys(&self, slc: &Slc) -> Result<Vec<StoredKey>> {
        self.check()?;
        self.inner.installation_keys(slc).await
    }
    async fn retire_installation_key(&self, slc: &Slc, id: KeyId, at: Timestamp) -> Result<()> {
        self.check()?;
        self.inner.retire_installation_key(slc, id, at).await
    }
    async fn admission(
        &self,
        slc: &Slc,
        server: &RecordingServerId,
        key: KeyId,
    ) -> Result<Option<Admission>> {
        self.check()?;
        self.inner.admission(slc, server, key).await
    }
    async fn admissions(
        &self,
        queries: &[AdmissionQuery],
    ) -> Result<Vec<Result<Option<Admission>>>> {
        self.check()?;
        self.inner.admissions(queries).await
    }
    async fn record_signs_of_life(&self, batch: &[SignOfLife]) -> Result<Vec<WriteOutcome>> {
        self.check()?;
        self.inner.record_signs_of_life(batch).await
    }
    async fn apply_status_report(&self, report: &StatusWrite) -> Result<WriteOutcome> {
        self.check()?;
        self.inner.apply_status_report(report).await
    }
    async fn apply_availability(
        &self,
        changes: &[AvailabilityChange],
        epoch: DowntimeEpoch,
    ) -> Result<AvailabilityOutcome> {
        self.check()?;
        self.inner.apply_availability(changes, epoch).await
    }
    async fn record_downtime(&self, window: DowntimeWindow) -> Result<()> {
        self.check()?;
        self.inner.record_downtime(window).await
    }
    async fn downtime(&self, after: Timestamp) -> Result<DowntimeLog> {
        self.check()?;
        self.inner.downtime(after).await
    }
    async fn overview(&self, reseller: &ResellerId, query: &OverviewQuery) -> Result<OverviewPage> {
        self.check()?;
        self.inner.overview(reseller, query).await
    }
    async fn installation_detail(
        &self,
        reseller: &ResellerId,
        slc: &Slc,
        history_limit: u32,
    ) -> Result<Option<InstallationDetail>> {
        self.check()?;
        self.inner
            .installation_detail(reseller, slc, history_limit)
            .await
    }
}

/// A service over a fresh [`Faulty`] store, its clock at 2026-11-22T21:11:00Z.
async fn open(sweep_delay: Duration) -> (tempfile::TempDir, Arc<Faulty>, Carewatch) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let inner = SqliteStore::open(dir.path().join("carewatch.db"))
        .await
        .expect("opens SQLite");
    let store = Arc::new(Faulty {
        inner,
        sweep_delay,
        failing: AtomicBool::new(false),
        marks: Mutex::default(),
        sweeps: AtomicU32::new(0),
    });
    let clock = Arc::new(TokioClock {
        base: Timestamp::from_millis(1_795_381_860_000),
        start: Instant::now(),
    });
    let config = Config::new(MasterKey::generate()).with_liveness_tolerance(TOLERANCE);
    let service = Carewatch::open(store.clone(), clock, config)
        .await
        .expect("service opens");
    (dir, store, service)
}

/// The longest time between consecutive liveness marks.
fn longest_gap(marks: &[Timestamp]) -> Duration {
    marks
        .windows(2)
        .map(|w| w[1].since(w[0]))
        .max()
        .unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn slow_sweeps_are_not_recorded_as_own_downtime() {
    let (_dir, store, service) = open(SLOW_SWEEP).await;
    let started = service.now();

    service
        .run_maintenance(EVERY, sleep(Duration::from_secs(150)))
        .await;

    // The bug's symptom: a false window, which would excuse missed heartbeats.
    let windows = store
        .downtime(Timestamp::EPOCH)
        .await
        .expect("downtime")
        .windows;
    assert!(
        windows.is_empty(),
        "slow sweeps recorded as own downtime: {windows:?}"
    );
    // Its cause: liveness waiting for the sweep.
    let marks = store.marks.lock().expect("marks").clone();
    let gap = longest_gap(&marks);
    assert!(
        gap <= 2 * EVERY,
        "liveness waited {gap:?} (for a sweep?) between marks"
    );
    assert!(
        marks.len() >= 140,
        "liveness marked only {} times in 150 s",
        marks.len()
    );
    // And the sweeps really were slow, and ran all along.
    assert_eq!(service.now().since(started), Duration::from_secs(150));
    let sweeps = store.sweeps.load(Ordering::SeqCst);
    assert!(sweeps >= 4, "only {sweeps} slow sweeps completed in 150 s");
}

#[tokio::test(start_paused = true)]
async fn a_real_outage_is_recorded_as_own_downtime() {
    // Quick sweeps: this must hold before and after liveness got its own timer.
    let (_dir, store, service) = open(Duration::ZERO).await;
    let started = service.now();
    let at = |secs| started.saturating_add(Duration::from_secs(secs));

    service
        .run_maintenance(EVERY, sleep(Duration::from_secs(5)))
        .await;
    // Nothing marks liveness for a minute, then maintenance resumes.
    sleep(Duration::from_secs(60)).await;
    service
        .run_maintenance(EVERY, sleep(Duration::from_secs(5)))
        .await;

    let windows = store
        .downtime(Timestamp::EPOCH)
        .await
        .expect("downtime")
        .windows;
    assert_eq!(windows.len(), 1, "one outage, one window: {windows:?}");
    let window = windows[0];
    // From the last mark before the outage (at 4 or 5 s, as the shutdown and
    // that tick fall together) to the first one after it (at once, at 65 s).
    assert!(
        (at(4)..=at(5)).contains(&window.start()),
        "window starts at {}",
        window.start()
    );
    assert_eq!(window.end(), at(65));
    assert!(
        longest_gap(&store.marks.lock().expect("marks")) >= Duration::from_secs(60),
        "the outage left no gap between marks"
    );
}
