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
use carewatch_core::IncomingMessage;
use carewatch_core::audit::{AuditEntry, AuditQuery, AuditRecord};
use carewatch_core::auth::TokenHash;
use carewatch_core::availability::DowntimeWindow;
use carewatch_core::availability::{Availability, AvailabilityPolicy};
use carewatch_core::feed::{ChangeEvent, EventId};
use carewatch_core::health::Health;
use carewatch_core::ids::{RecordingServerId, ResellerId, Slc};
use carewatch_core::installation::Installation;
use carewatch_core::installation::Product;
use carewatch_core::labels::Labels;
use carewatch_core::liveness::LivenessMark;
use carewatch_core::notification::maintenance::{MaintenanceWindow, WindowId};
use carewatch_core::notification::{
    ChannelId, ChannelRecord, ChannelRules, Committed, DeliveryOutcome, Destination,
    NewOutboxEntry, NotificationState, NotifierCommit, OutboxEntry, OutboxFilter,
};
use carewatch_core::report::{InstallationHistory, Period};
use carewatch_core::seal::InstallationKey;
use carewatch_core::seal::{KeyId, MasterKey, WrappedKey};
use carewatch_core::store::HistoryKind;
use carewatch_core::store::{
    Admission, AdmissionQuery, AvailabilityChange, AvailabilityOutcome, DowntimeEpoch, DowntimeLog,
    HistoryEvent, InstallationDetail, InstallationUpdate, OverviewPage, OverviewQuery, Reseller,
    ServerRecord, SignOfLife, StatusWrite, Store, StoredKey, Transfer, WriteOutcome,
};
use carewatch_core::team::{ApiTokenRecord, InvitationRecord, Login, Role, SessionRecord, User};
use carewatch_core::time::{Clock, Timestamp};
use carewatch_core::{Carewatch, Config};
use carewatch_core::{Error, Result};
use carewatch_storage_sqlite::SqliteStore;
use tokio::time::{Instant, sleep, sleep_until};

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
/// liveness marks and completed sweep reads; a transfer set in
/// `transfer_before_details` happens just before the next installation
/// read (as if the operator moved one during a notifier step).
#[derive(Debug)]
struct Faulty {
    inner: SqliteStore,
    sweep_delay: Duration,
    failing: AtomicBool,
    stall_until: Mutex<Option<Instant>>,
    marks: Mutex<Vec<Timestamp>>,
    sweeps: AtomicU32,
    transfer_before_details: Mutex<Option<Transfer>>,
}

impl Faulty {
    /// Fails while `failing`; waits while a stall lasts (then proceeds).
    async fn check(&self) -> Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(Error::storage_unavailable(
                "the test's database is down",
                "connection refused",
            ));
        }
        let stall = *self.stall_until.lock().expect("stall");
        if let Some(until) = stall {
            tokio::time::sleep_until(until).await;
        }
        Ok(())
    }

    /// Makes the transfer set in `transfer_before_details`, once.
    async fn transfer_if_set(&self) -> Result<()> {
        let transfer = self.transfer_before_details.lock().expect("hook").take();
        if let Some(transfer) = transfer {
            self.inner.transfer_installation(&transfer).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Store for Faulty {
    async fn due_servers(&self, now: Timestamp, limit: u32) -> Result<Vec<ServerRecord>> {
        self.check().await?;
        sleep(self.sweep_delay).await;
        let due = self.inner.due_servers(now, limit).await;
        self.sweeps.fetch_add(1, Ordering::SeqCst);
        due
    }
    async fn mark_alive(&self, mark: &LivenessMark) -> Result<Option<DowntimeWindow>> {
        self.check().await?;
        self.marks.lock().expect("marks").push(mark.at);
        self.inner.mark_alive(mark).await
    }
    async fn mark_stopped(&self, node: &str, at: Timestamp) -> Result<()> {
        self.check().await?;
        self.inner.mark_stopped(node, at).await
    }

    // Everything else as SQLite does it.
    async fn create_reseller(&self, reseller: &Reseller, token: &TokenHash) -> Result<()> {
        self.check().await?;
        self.inner.create_reseller(reseller, token).await
    }
    async fn set_reseller_token(&self, id: &ResellerId, token: &TokenHash) -> Result<()> {
        self.check().await?;
        self.inner.set_reseller_token(id, token).await
    }
    async fn reseller_token(&self, id: &ResellerId) -> Result<Option<TokenHash>> {
        self.check().await?;
        self.inner.reseller_token(id).await
    }
    async fn resellers(&self) -> Result<Vec<Reseller>> {
        self.check().await?;
        self.inner.resellers().await
    }
    async fn set_operator_token(&self, name: &ResellerId, token: &TokenHash) -> Result<()> {
        self.check().await?;
        self.inner.set_operator_token(name, token).await
    }
    async fn operator_token(&self, name: &ResellerId) -> Result<Option<TokenHash>> {
        self.check().await?;
        self.inner.operator_token(name).await
    }
    async fn has_operator(&self) -> Result<bool> {
        self.check().await?;
        self.inner.has_operator().await
    }
    async fn register_installation(&self, installation: &Installation) -> Result<()> {
        self.check().await?;
        self.inner.register_installation(installation).await
    }
    async fn update_installation(
        &self,
        slc: &Slc,
        update: &InstallationUpdate,
        at: Timestamp,
    ) -> Result<Installation> {
        self.check().await?;
        self.inner.update_installation(slc, update, at).await
    }
    async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        self.check().await?;
        self.inner.append_audit(record).await
    }
    async fn audit_log(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        self.check().await?;
        self.inner.audit_log(query).await
    }
    async fn full_history(&self, slc: &Slc, limit: u32) -> Result<Vec<HistoryEvent>> {
        self.check().await?;
        self.inner.full_history(slc, limit).await
    }
    async fn transfer_installation(&self, transfer: &Transfer) -> Result<Installation> {
        self.check().await?;
        self.inner.transfer_installation(transfer).await
    }
    async fn installation(&self, slc: &Slc) -> Result<Option<Installation>> {
        self.check().await?;
        self.inner.installation(slc).await
    }
    async fn park_expired(&self, now: Timestamp) -> Result<u32> {
        self.check().await?;
        self.inner.park_expired(now).await
    }
    async fn delete_withdrawn_data(&self, before: Timestamp, at: Timestamp) -> Result<u32> {
        self.check().await?;
        self.inner.delete_withdrawn_data(before, at).await
    }
    async fn decommission_server(
        &self,
        reseller: Option<&ResellerId>,
        slc: &Slc,
        server: &RecordingServerId,
        at: Timestamp,
    ) -> Result<bool> {
        self.check().await?;
        self.inner
            .decommission_server(reseller, slc, server, at)
            .await
    }
    async fn set_labels(
        &self,
        reseller: &ResellerId,
        slc: &Slc,
        labels: &Labels,
        at: Timestamp,
    ) -> Result<()> {
        self.check().await?;
        self.inner.set_labels(reseller, slc, labels, at).await
    }
    async fn add_installation_key(&self, slc: &Slc, key: &WrappedKey, at: Timestamp) -> Result<()> {
        self.check().await?;
        self.inner.add_installation_key(slc, key, at).await
    }
    async fn installation_keys(&self, slc: &Slc) -> Result<Vec<StoredKey>> {
        self.check().await?;
        self.inner.installation_keys(slc).await
    }
    async fn retire_installation_key(&self, slc: &Slc, id: KeyId, at: Timestamp) -> Result<()> {
        self.check().await?;
        self.inner.retire_installation_key(slc, id, at).await
    }
    async fn admission(
        &self,
        slc: &Slc,
        server: &RecordingServerId,
        key: KeyId,
    ) -> Result<Option<Admission>> {
        self.check().await?;
        self.inner.admission(slc, server, key).await
    }
    async fn admissions(
        &self,
        queries: &[AdmissionQuery],
    ) -> Result<Vec<Result<Option<Admission>>>> {
        self.check().await?;
        self.inner.admissions(queries).await
    }
    async fn record_signs_of_life(&self, batch: &[SignOfLife]) -> Result<Vec<WriteOutcome>> {
        self.check().await?;
        self.inner.record_signs_of_life(batch).await
    }
    async fn apply_status_report(&self, report: &StatusWrite) -> Result<WriteOutcome> {
        self.check().await?;
        self.inner.apply_status_report(report).await
    }
    async fn apply_availability(
        &self,
        changes: &[AvailabilityChange],
        epoch: DowntimeEpoch,
    ) -> Result<AvailabilityOutcome> {
        self.check().await?;
        self.inner.apply_availability(changes, epoch).await
    }
    async fn record_downtime(&self, window: DowntimeWindow) -> Result<()> {
        self.check().await?;
        self.inner.record_downtime(window).await
    }
    async fn downtime(&self, after: Timestamp) -> Result<DowntimeLog> {
        self.check().await?;
        self.inner.downtime(after).await
    }
    async fn changes(&self, after: EventId, limit: u32) -> Result<Vec<ChangeEvent>> {
        self.check().await?;
        self.inner.changes(after, limit).await
    }
    async fn latest_change(&self) -> Result<EventId> {
        self.check().await?;
        self.inner.latest_change().await
    }
    async fn prune_changes(&self, before: Timestamp) -> Result<u64> {
        self.check().await?;
        self.inner.prune_changes(before).await
    }
    async fn create_invitation(&self, invitation: &InvitationRecord) -> Result<()> {
        self.check().await?;
        self.inner.create_invitation(invitation).await
    }
    async fn accept_invitation(
        &self,
        hash: &TokenHash,
        password_hash: &str,
        at: Timestamp,
    ) -> Result<User> {
        self.check().await?;
        self.inner.accept_invitation(hash, password_hash, at).await
    }
    async fn user_credentials(&self, login: &Login) -> Result<Option<(User, String)>> {
        self.check().await?;
        self.inner.user_credentials(login).await
    }
    async fn users(&self, reseller: &ResellerId) -> Result<Vec<User>> {
        self.check().await?;
        self.inner.users(reseller).await
    }
    async fn remove_user(&self, reseller: &ResellerId, login: &Login) -> Result<()> {
        self.check().await?;
        self.inner.remove_user(reseller, login).await
    }
    async fn create_session(&self, session: &SessionRecord) -> Result<()> {
        self.check().await?;
        self.inner.create_session(session).await
    }
    async fn session(&self, hash: &TokenHash, now: Timestamp) -> Result<Option<SessionRecord>> {
        self.check().await?;
        self.inner.session(hash, now).await
    }
    async fn delete_session(&self, hash: &TokenHash) -> Result<()> {
        self.check().await?;
        self.inner.delete_session(hash).await
    }
    async fn prune_sessions(&self, now: Timestamp) -> Result<u64> {
        self.check().await?;
        self.inner.prune_sessions(now).await
    }
    async fn create_api_token(&self, token: &ApiTokenRecord) -> Result<()> {
        self.check().await?;
        self.inner.create_api_token(token).await
    }
    async fn api_token(&self, id: &str) -> Result<Option<ApiTokenRecord>> {
        self.check().await?;
        self.inner.api_token(id).await
    }
    async fn api_tokens(&self, reseller: &ResellerId) -> Result<Vec<ApiTokenRecord>> {
        self.check().await?;
        self.inner.api_tokens(reseller).await
    }
    async fn revoke_api_token(&self, reseller: &ResellerId, id: &str, at: Timestamp) -> Result<()> {
        self.check().await?;
        self.inner.revoke_api_token(reseller, id, at).await
    }
    async fn create_channel(&self, channel: &ChannelRecord) -> Result<()> {
        self.check().await?;
        self.inner.create_channel(channel).await
    }
    async fn channels(&self, reseller: Option<&ResellerId>) -> Result<Vec<ChannelRecord>> {
        self.check().await?;
        self.inner.channels(reseller).await
    }
    async fn delete_channel(
        &self,
        reseller: &ResellerId,
        id: &ChannelId,
        at: Timestamp,
    ) -> Result<()> {
        self.check().await?;
        self.inner.delete_channel(reseller, id, at).await
    }
    async fn create_maintenance(&self, window: &MaintenanceWindow) -> Result<()> {
        self.check().await?;
        self.inner.create_maintenance(window).await
    }
    async fn maintenance_windows(
        &self,
        reseller: Option<&ResellerId>,
    ) -> Result<Vec<MaintenanceWindow>> {
        self.check().await?;
        self.inner.maintenance_windows(reseller).await
    }
    async fn delete_maintenance(&self, reseller: &ResellerId, id: &WindowId) -> Result<()> {
        self.check().await?;
        self.inner.delete_maintenance(reseller, id).await
    }
    async fn notifier_lease(
        &self,
        node: &str,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Option<EventId>> {
        self.check().await?;
        self.inner.notifier_lease(node, now, lease).await
    }
    async fn notification_states(
        &self,
        keys: &[(ChannelId, Slc)],
    ) -> Result<Vec<NotificationState>> {
        self.check().await?;
        self.inner.notification_states(keys).await
    }
    async fn due_notification_states(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<NotificationState>> {
        self.check().await?;
        self.inner.due_notification_states(now, limit).await
    }
    async fn commit_notifications(&self, commit: NotifierCommit) -> Result<Committed> {
        self.check().await?;
        self.inner.commit_notifications(commit).await
    }
    async fn enqueue_notifications(&self, entries: &[NewOutboxEntry]) -> Result<()> {
        self.check().await?;
        self.inner.enqueue_notifications(entries).await
    }
    async fn release_claims(&self, node: &str, ids: &[u64]) -> Result<u64> {
        self.check().await?;
        self.inner.release_claims(node, ids).await
    }
    async fn claim_deliveries(
        &self,
        node: &str,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>> {
        self.check().await?;
        self.inner.claim_deliveries(node, now, lease, limit).await
    }
    async fn finish_deliveries(
        &self,
        node: &str,
        at: Timestamp,
        finished: &[(u64, DeliveryOutcome)],
    ) -> Result<()> {
        self.check().await?;
        self.inner.finish_deliveries(node, at, finished).await
    }
    async fn outbox(
        &self,
        reseller: &ResellerId,
        filter: OutboxFilter,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>> {
        self.check().await?;
        self.inner.outbox(reseller, filter, limit).await
    }
    async fn prune_outbox(&self, before: Timestamp, limit: u32) -> Result<u64> {
        self.check().await?;
        self.inner.prune_outbox(before, limit).await
    }
    async fn overview(&self, reseller: &ResellerId, query: &OverviewQuery) -> Result<OverviewPage> {
        self.check().await?;
        self.inner.overview(reseller, query).await
    }
    async fn installation_detail(
        &self,
        reseller: &ResellerId,
        slc: &Slc,
        history_limit: u32,
    ) -> Result<Option<InstallationDetail>> {
        self.check().await?;
        self.transfer_if_set().await?;
        self.inner
            .installation_detail(reseller, slc, history_limit)
            .await
    }
    async fn installation_details(
        &self,
        reseller: &ResellerId,
        slcs: &[Slc],
    ) -> Result<Vec<InstallationDetail>> {
        self.check().await?;
        self.transfer_if_set().await?;
        self.inner.installation_details(reseller, slcs).await
    }
    async fn uptime_histories(
        &self,
        reseller: &ResellerId,
        only: Option<&Slc>,
        period: Period,
    ) -> Result<Vec<InstallationHistory>> {
        self.check().await?;
        self.inner.uptime_histories(reseller, only, period).await
    }
}

/// A service over a fresh [`Faulty`] store, its clock at 2026-11-22T21:11:00Z.
async fn open(sweep_delay: Duration) -> (tempfile::TempDir, Arc<Faulty>, Carewatch) {
    open_with(sweep_delay, Config::new(MasterKey::generate())).await
}

async fn open_with(
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
    });
    let clock = Arc::new(TokioClock {
        base: Timestamp::from_millis(1_795_381_860_000),
        start: Instant::now(),
    });
    let config = config.with_liveness_tolerance(TOLERANCE);
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

/// Heartbeats every second, jitter tolerance 200 ms (as the fault tests).
fn fast_config() -> Config {
    Config::new(MasterKey::generate())
        .with_heartbeat_interval(Duration::from_secs(1))
        .expect("interval")
        .with_policy(AvailabilityPolicy::new(3, Duration::from_millis(200)).expect("policy"))
}

/// One registered installation with a key, ready to ingest.
async fn site(service: &Carewatch) -> (Slc, InstallationKey) {
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
async fn beat_every_second(
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
async fn became_unavailable(service: &Carewatch, slc: &Slc) -> Vec<String> {
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

/// Observed 2: a storage outage, long (20 s) or short (3 s), made almost
/// every server unavailable when the storage came back. Now the outage is
/// own downtime from the first refused write, and nobody is blamed.
#[tokio::test(start_paused = true)]
async fn a_storage_outage_makes_nobody_unavailable() {
    for outage in [Duration::from_secs(20), Duration::from_secs(3)] {
        let (_dir, store, service) = open_with(Duration::ZERO, fast_config()).await;
        let (slc, key) = site(&service).await;
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let run = service.run_maintenance(EVERY, sleep_until(at(40)));
        let live = beat_every_second(&service, &slc, &key, "rs-live", at(0), at(40));
        // Goes silent 0.5 s before the outage: owes 3 intervals after it.
        let quiet = beat_every_second(
            &service,
            &slc,
            &key,
            "rs-quiet",
            at(0),
            at(10) - Duration::from_millis(500),
        );
        let fault = async {
            sleep_until(at(10)).await;
            store.failing.store(true, Ordering::SeqCst);
            sleep(outage).await;
            store.failing.store(false, Ordering::SeqCst);
        };
        tokio::join!(run, live, quiet, fault);

        let windows = store
            .downtime(Timestamp::EPOCH)
            .await
            .expect("downtime")
            .windows;
        assert_eq!(windows.len(), 1, "one outage, one window: {windows:?}");
        let began = service.now().saturating_sub(Duration::from_secs(30));
        assert!(
            windows[0].start() <= began.saturating_add(Duration::from_millis(1000)),
            "the window starts with the first refused write: {windows:?}"
        );
        let unavailable = became_unavailable(&service, &slc).await;
        assert_eq!(
            unavailable.len(),
            1,
            "{outage:?}: only rs-quiet: {unavailable:?}"
        );
        let expected_since = windows[0].end().saturating_add(Duration::from_secs(3));
        assert_eq!(
            unavailable[0],
            format!("rs-quiet at {expected_since}: BecameUnavailable {{ missed: 3 }}"),
            "{outage:?}: three intervals after the outage, three missed"
        );
    }
}

/// A storage that stalls (every call waits 3 s, then succeeds): heartbeats
/// received during the stall are written late, and a sweep must not read
/// the servers before them and call them late.
#[tokio::test(start_paused = true)]
async fn a_storage_stall_makes_nobody_late() {
    let (_dir, store, service) = open_with(Duration::ZERO, fast_config()).await;
    let (slc, key) = site(&service).await;
    let start = Instant::now();
    let at = |s: u64| start + Duration::from_secs(s);
    let run = service.run_maintenance(EVERY, sleep_until(at(30)));
    let live = beat_every_second(&service, &slc, &key, "rs-1", at(0), at(30));
    let reseller = ResellerId::new("alpha").expect("id");
    let watch = async {
        let mut seen = Vec::new();
        while Instant::now() < at(30) {
            if let Ok(detail) = service.installation(&reseller, &slc).await {
                for s in &detail.servers {
                    if !matches!(s.availability, Availability::Available) {
                        seen.push(format!(
                            "{:?} at {:?}",
                            s.availability,
                            Instant::now() - start
                        ));
                    }
                }
            }
            sleep(Duration::from_millis(100)).await;
        }
        seen
    };
    let fault = async {
        for begin in [5, 15] {
            sleep_until(at(begin)).await;
            *store.stall_until.lock().expect("stall") = Some(at(begin + 3));
            sleep_until(at(begin + 3)).await;
            *store.stall_until.lock().expect("stall") = None;
        }
    };
    let ((), (), seen, ()) = tokio::join!(run, live, watch, fault);
    assert!(
        seen.is_empty(),
        "false verdicts during storage stalls: {seen:?}"
    );
    assert_eq!(
        became_unavailable(&service, &slc).await,
        Vec::<String>::new()
    );
}

/// An installation moved to another reseller between the notifier's read of
/// the feed and its read of the installations it tells about: the step
/// carries on (it used to fail, reading the moved installation as the old
/// reseller's, until the next step read the change as the new owner's), the
/// old reseller's channel is told nothing, and no state about the moved
/// installation is kept.
#[tokio::test(start_paused = true)]
async fn a_transfer_during_a_notifier_step_tells_nothing_and_keeps_no_state() {
    let (_dir, store, service) = open_with(Duration::ZERO, fast_config()).await;
    let (slc, key) = site(&service).await;
    let alpha = ResellerId::new("alpha").expect("id");
    let beta = ResellerId::new("beta").expect("id");
    service
        .create_reseller(&beta, "Beta")
        .await
        .expect("reseller");
    let admin = User {
        reseller: alpha.clone(),
        login: Login::new("admin@alpha.example").expect("login"),
        name: "Admin".into(),
        role: Role::Admin,
        created_at: service.now(),
    };
    let (channel, _) = service
        .create_channel(
            &admin,
            "on call",
            Destination::Webhook {
                url: "https://hooks.example.net/carewatch".into(),
            },
            ChannelRules {
                hold: Duration::ZERO,
                ..ChannelRules::default()
            },
        )
        .await
        .expect("channel");
    // Beats for 5 s, then falls silent until it is Offline.
    let start = Instant::now();
    let at = |s: u64| start + Duration::from_secs(s);
    let run = service.run_maintenance(EVERY, sleep_until(at(30)));
    let beats = beat_every_second(&service, &slc, &key, "rs-1", at(0), at(5));
    tokio::join!(run, beats);
    let health = service
        .installation(&alpha, &slc)
        .await
        .expect("detail")
        .summary
        .health;
    assert_eq!(health, Health::Offline);

    *store.transfer_before_details.lock().expect("hook") = Some(Transfer {
        slc: slc.clone(),
        to: beta,
        at: service.now(),
        share_history: false,
    });
    let step = service.notify_step().await.expect("the step carries on");
    assert!(
        store
            .transfer_before_details
            .lock()
            .expect("hook")
            .is_none(),
        "moved during the step"
    );
    assert_eq!(step.queued, 0, "nothing told");
    let told = store
        .outbox(&alpha, OutboxFilter::All, 10)
        .await
        .expect("outbox");
    assert!(told.is_empty(), "{told:#?}");
    let kept = store
        .notification_states(&[(channel.id.clone(), slc.clone())])
        .await
        .expect("states");
    assert!(kept.is_empty(), "no state about it: {kept:#?}");
}
