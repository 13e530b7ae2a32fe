//! The service facade: one [`Carewatch`] value over a store and a clock.
//! Front ends (gRPC, Python, an embedding Rust service) call this and hold no
//! rules of their own.

mod admission_cache;
mod audit;
mod batcher;
mod feed;
mod in_flight;
mod ingest;
mod maintenance;
mod notifications;
mod notifier;
mod operator;
mod password_work;
mod report;
mod reseller;
mod rotation;
mod team;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

pub use feed::WatchStream;
pub use ingest::{IncomingMessage, IngestAck};
pub use maintenance::SweepReport;
pub use notifications::{ChannelView, OpenedChannel};
pub use notifier::NotifierStep;
pub use operator::replace_operator_token;
pub use report::ROLLING_DAYS;
pub use rotation::ResealReport;
pub use team::{IssuedApiToken, IssuedInvitation, IssuedSession};

use crate::availability::{
    AvailabilityPolicy, DEFAULT_INTERVAL, Downtime, DowntimeWindow, check_interval,
};
use crate::error::{Error, Result};
use crate::liveness::MarkReason;
use crate::seal::{MAX_SEALED_MESSAGE_BYTES, MasterKey, MasterKeys};
use crate::store::{Admission, AdmissionQuery, DowntimeEpoch, SignOfLife, Store, WriteOutcome};
use crate::throttle::FailureThrottle;
use crate::time::{Clock, Timestamp};

/// The default [`Config::with_liveness_tolerance`]: three one-second ticks.
pub const DEFAULT_LIVENESS_TOLERANCE: Duration = Duration::from_secs(3);

/// The default [`Config::with_change_retention`]: a week.
pub const DEFAULT_CHANGE_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The default [`Config::with_notification_retention`]: 30 days.
pub const DEFAULT_NOTIFICATION_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// The default [`Config::with_audit_retention`]: 400 days (a year of
/// audit, and a month to spare for a yearly review).
pub const DEFAULT_AUDIT_RETENTION: Duration = Duration::from_secs(400 * 24 * 3600);

/// The shortest audit retention [`Config::with_audit_retention`] keeps: one
/// set by mistake to seconds must not empty the audit log at the next
/// housekeeping.
pub const MIN_AUDIT_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// The default [`Config::with_stall_limit`].
pub const DEFAULT_STALL_LIMIT: Duration = Duration::from_secs(1);

/// `outage_since` when no storage failure is pending.
const NO_OUTAGE: i64 = i64::MAX;

/// Admission batches read at once: enough to keep a few read connections
/// busy while the next batch gathers.
const ADMISSION_READS: usize = 2;

/// How far back own-downtime windows are loaded: older windows cannot change
/// anybody's availability any more.
const DOWNTIME_LOOKBACK: Duration = Duration::from_secs(30 * 24 * 3600);

/// Settings of a Carewatch service.
#[derive(Debug, Clone)]
pub struct Config {
    master_keys: MasterKeys,
    heartbeat_interval: Duration,
    policy: AvailabilityPolicy,
    max_message_bytes: usize,
    node_id: String,
    liveness_tolerance: Duration,
    history_limit: u32,
    stall_limit: Duration,
    change_retention: Duration,
    notification_retention: Duration,
    audit_retention: Option<Duration>,
    probably_removed_after: Option<Duration>,
    withdrawn_data_retention: Duration,
    admission_cache: usize,
}

/// How many installations' admissions a node remembers
/// ([`Config::with_admission_cache`]); each takes about a kilobyte and a
/// half (most of it the key's expanded cipher).
pub const DEFAULT_ADMISSION_CACHE: usize = 100_000;

/// How long an installation's reported data is kept after its owner
/// withdrew consent (then it is deleted; the registration stays).
pub const DEFAULT_WITHDRAWN_DATA_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// How long a server is unavailable before the reseller is asked whether it
/// was removed ([`Availability::probably_removed`](crate::availability::Availability::probably_removed)).
pub const DEFAULT_PROBABLY_REMOVED_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

impl Config {
    /// Defaults: 60 s heartbeats, unavailable after 3 missed, messages up to
    /// [`MAX_SEALED_MESSAGE_BYTES`] (the largest valid status report), a
    /// liveness tolerance of 3 s.
    pub fn new(master_key: MasterKey) -> Self {
        Self {
            master_keys: MasterKeys::new(master_key),
            heartbeat_interval: DEFAULT_INTERVAL,
            policy: AvailabilityPolicy::default(),
            max_message_bytes: MAX_SEALED_MESSAGE_BYTES,
            node_id: "carewatch".into(),
            liveness_tolerance: DEFAULT_LIVENESS_TOLERANCE,
            history_limit: 50,
            stall_limit: DEFAULT_STALL_LIMIT,
            change_retention: DEFAULT_CHANGE_RETENTION,
            notification_retention: DEFAULT_NOTIFICATION_RETENTION,
            audit_retention: Some(DEFAULT_AUDIT_RETENTION),
            probably_removed_after: Some(DEFAULT_PROBABLY_REMOVED_AFTER),
            withdrawn_data_retention: DEFAULT_WITHDRAWN_DATA_RETENTION,
            admission_cache: DEFAULT_ADMISSION_CACHE,
        }
    }

    /// Earlier master keys still accepted while a rotation re-seals what
    /// they sealed ([`Carewatch::reseal_secrets`]); everything new is sealed
    /// under the current key given to [`Config::new`].
    pub fn with_previous_master_keys(mut self, previous: Vec<MasterKey>) -> Self {
        self.master_keys = self.master_keys.with_previous(previous);
        self
    }

    /// How many installations' admissions (the installation, its key
    /// unwrapped) a node remembers between heartbeats instead of reading
    /// them for every message; 0 reads every time. A write made on a
    /// remembered admission checks in the same statement that it is still
    /// current, so a change on any node is seen at once either way.
    pub fn with_admission_cache(mut self, installations: usize) -> Self {
        self.admission_cache = installations;
        self
    }

    /// How long after consent is withdrawn the installation's reported data
    /// (servers, conditions, history) is deleted.
    pub fn with_withdrawn_data_retention(mut self, retention: Duration) -> Self {
        self.withdrawn_data_retention = retention;
        self
    }

    /// After how long unavailable a server is shown as "probably removed"
    /// for the reseller to confirm by decommissioning it; `None`: never.
    pub fn with_probably_removed_after(mut self, after: Option<Duration>) -> Self {
        self.probably_removed_after = after;
        self
    }

    /// See [`Config::with_probably_removed_after`].
    pub fn probably_removed_after(&self) -> Option<Duration> {
        self.probably_removed_after
    }

    /// The interval every recording server is told to keep.
    pub fn with_heartbeat_interval(mut self, interval: Duration) -> Result<Self> {
        self.heartbeat_interval = check_interval(interval)?;
        Ok(self)
    }

    /// When servers count as late and unavailable.
    pub fn with_policy(mut self, policy: AvailabilityPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The largest sealed message accepted: 1 KiB up to
    /// [`MAX_SEALED_MESSAGE_BYTES`], the largest message the protocol allows.
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Result<Self> {
        if !(1024..=MAX_SEALED_MESSAGE_BYTES).contains(&bytes) {
            return Err(Error::InvalidInput {
                field: "max message bytes",
                reason: format!("{bytes}; use 1024 to {MAX_SEALED_MESSAGE_BYTES}"),
            });
        }
        self.max_message_bytes = bytes;
        Ok(self)
    }

    /// This node's name among nodes sharing one database.
    pub fn with_node_id(mut self, node_id: impl Into<String>) -> Self {
        self.node_id = node_id.into();
        self
    }

    /// How old another node's liveness mark may be for it to count as
    /// receiving, and the longest pause a running node's marks may show
    /// before the pause counts as own downtime. Keep it a few maintenance
    /// ticks long (the tick is one second in `carewatch serve`). A restart,
    /// a clean stop and a storage outage are measured exactly, whatever
    /// this is.
    pub fn with_liveness_tolerance(mut self, tolerance: Duration) -> Self {
        self.liveness_tolerance = tolerance;
        self
    }

    /// A message whose write takes longer than this counts as refused by a
    /// storage outage from its receipt: while its storage stalls, a node is
    /// not really receiving (senders time out and give up).
    pub fn with_stall_limit(mut self, limit: Duration) -> Self {
        self.stall_limit = limit;
        self
    }

    /// How long the change feed keeps events: a watcher can resume after an
    /// event this old; older ones are pruned by maintenance, but for those
    /// the notifier has not processed (kept up to four times as long).
    pub fn with_change_retention(mut self, retention: Duration) -> Self {
        self.change_retention = retention;
        self
    }

    /// How long delivered and given-up notifications stay in the outbox
    /// (the reseller's list of deliveries) before maintenance deletes them.
    /// Pending ones stay until they are delivered or given up.
    pub fn with_notification_retention(mut self, retention: Duration) -> Self {
        self.notification_retention = retention;
        self
    }

    /// How long audit entries are kept before maintenance deletes them;
    /// `None` keeps them for ever. Every entry is kept at least a day.
    pub fn with_audit_retention(mut self, retention: Option<Duration>) -> Self {
        self.audit_retention = retention;
        self
    }

    /// The liveness tolerance.
    pub fn liveness_tolerance(&self) -> Duration {
        self.liveness_tolerance
    }

    /// This node's name.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// History events returned with an installation's detail.
    pub fn with_history_limit(mut self, limit: u32) -> Self {
        self.history_limit = limit.clamp(1, 1000);
        self
    }

    /// The heartbeat interval.
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval
    }

    /// The availability policy.
    pub fn policy(&self) -> &AvailabilityPolicy {
        &self.policy
    }

    /// The largest sealed message accepted.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }
}

/// The Carewatch service. Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct Carewatch {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    /// Admission lookups of concurrent messages, read together.
    admissions: batcher::Coalescer<AdmissionQuery, Option<Admission>>,
    /// Heartbeats, written together (group commit).
    heartbeats: batcher::Coalescer<SignOfLife, WriteOutcome>,
    /// Admissions remembered between heartbeats.
    admission_cache: admission_cache::AdmissionCache,
    clock: Arc<dyn Clock>,
    config: Config,
    /// The change feed's in-process side.
    feed: feed::Feed,
    downtime: RwLock<Arc<DowntimeState>>,
    /// The first storage failure not yet turned into a downtime window
    /// (ms), or [`NO_OUTAGE`].
    outage_since: AtomicI64,
    /// Whether the storage works (no outage pending), for health checks.
    storage_works: watch::Sender<bool>,
    /// Set when a recovered outage may have been recorded by another node:
    /// the next liveness mark reloads the windows until a reload succeeds.
    downtime_stale: AtomicBool,
    /// Set once, when the node stops receiving (a clean shutdown).
    stopping: watch::Sender<bool>,
    /// Authentication failures per source address.
    auth_failures: FailureThrottle,
    /// Sign-in failures per login and per address.
    sign_in_failures: FailureThrottle,
    /// Sign-ins recorded in the audit log, per login and address.
    sign_ins_recorded: crate::log_limit::KeyedLimit<String>,
    /// Wrong passwords recorded in the audit log, per login.
    wrong_passwords_recorded: crate::log_limit::KeyedLimit<String>,
    /// Password hashing and checks, a few at a time.
    password_work: password_work::PasswordWork,
    /// Refused messages, logged per kind at a bounded rate.
    refusals_logged: crate::log_limit::RateLimitedLog,
    /// Messages received and not yet written.
    in_flight: in_flight::InFlight,
    /// One sweep at a time (the maintenance loop, a caller's `sweep`).
    sweeping: tokio::sync::Mutex<()>,
    /// When this node's last liveness mark succeeded (ms).
    last_mark: AtomicI64,
    /// One liveness mark at a time.
    marking: tokio::sync::Mutex<()>,
}

/// The own-downtime windows this node knows, and their epoch in the store.
#[derive(Debug, Default)]
struct DowntimeState {
    windows: Arc<Downtime>,
    epoch: DowntimeEpoch,
}

impl Carewatch {
    /// Opens the service: records that it is receiving again and, if no
    /// other node was, the time since the fleet last received as own
    /// downtime (so it does not count as missed heartbeats). Starts the
    /// heartbeat writer on the current tokio runtime.
    pub async fn open(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: Config,
    ) -> Result<Self> {
        let service = Self {
            inner: Arc::new(Inner {
                admission_cache: admission_cache::AdmissionCache::new(config.admission_cache),
                admissions: batcher::Coalescer::start("reading admissions", ADMISSION_READS, {
                    let store = store.clone();
                    move |queries: Vec<AdmissionQuery>| {
                        let store = store.clone();
                        async move { store.admissions(&queries).await }
                    }
                }),
                heartbeats: batcher::Coalescer::start("writing heartbeats", 1, {
                    let store = store.clone();
                    move |signs: Vec<SignOfLife>| {
                        let store = store.clone();
                        async move {
                            let outcomes = store.record_signs_of_life(&signs).await?;
                            Ok(outcomes.into_iter().map(Ok).collect())
                        }
                    }
                }),
                store,
                clock,
                config,
                feed: feed::Feed::default(),
                downtime: RwLock::new(Arc::default()),
                outage_since: AtomicI64::new(NO_OUTAGE),
                storage_works: watch::channel(true).0,
                downtime_stale: AtomicBool::new(false),
                stopping: watch::channel(false).0,
                auth_failures: FailureThrottle::default(),
                sign_in_failures: FailureThrottle::default(),
                sign_ins_recorded: crate::log_limit::KeyedLimit::new(
                    team::SIGN_INS_RECORDED_EVERY,
                    100_000,
                ),
                wrong_passwords_recorded: crate::log_limit::KeyedLimit::new(
                    team::WRONG_PASSWORDS_RECORDED_EVERY,
                    100_000,
                ),
                password_work: password_work::PasswordWork::default(),
                refusals_logged: crate::log_limit::RateLimitedLog::default(),
                in_flight: in_flight::InFlight::default(),
                sweeping: tokio::sync::Mutex::new(()),
                last_mark: AtomicI64::new(i64::MIN),
                marking: tokio::sync::Mutex::new(()),
            }),
        };
        service.mark(MarkReason::Starting).await?;
        service.reload_downtime().await?;
        Ok(service)
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The service clock's current time.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    fn downtime_state(&self) -> Arc<DowntimeState> {
        // A poisoned lock only means a panic elsewhere while swapping an Arc.
        self.inner
            .downtime
            .read()
            .map_or_else(|e| e.into_inner().clone(), |d| d.clone())
    }

    /// The known windows, plus the pending storage outage (if any) as a
    /// provisional window up to `now`: a message received right after the
    /// storage came back must not count the outage as missed heartbeats
    /// before the next liveness mark records it.
    fn downtime_at(&self, now: crate::time::Timestamp) -> Arc<Downtime> {
        let known = self.downtime_state().windows.clone();
        match self.outage_since() {
            Some(since) => match DowntimeWindow::new(since, now) {
                Ok(pending) => {
                    let mut windows = known.windows().to_vec();
                    windows.push(pending);
                    Arc::new(Downtime::new(windows))
                }
                Err(_) => known,
            },
            None => known,
        }
    }

    async fn reload_downtime(&self) -> Result<()> {
        let after = self.now().saturating_sub(DOWNTIME_LOOKBACK);
        let log = self.inner.store.downtime(after).await?;
        let state = Arc::new(DowntimeState {
            windows: Arc::new(Downtime::new(log.windows)),
            epoch: log.epoch,
        });
        match self.inner.downtime.write() {
            Ok(mut d) => *d = state,
            Err(e) => *e.into_inner() = state,
        }
        Ok(())
    }

    /// The first storage failure not yet recorded as own downtime.
    fn outage_since(&self) -> Option<crate::time::Timestamp> {
        match self.inner.outage_since.load(Ordering::Acquire) {
            NO_OUTAGE => None,
            ms => Some(crate::time::Timestamp::from_millis(ms)),
        }
    }

    /// Notes that a storage call started at `at` failed: from then on this
    /// node was not receiving, until a liveness mark succeeds again.
    fn note_storage_failure(&self, at: crate::time::Timestamp, error: &Error) {
        if self.note_outage(at) {
            tracing::warn!(since = %at, error = %error, "storage failing: not receiving until it works again");
        }
    }

    /// Notes that a storage call started at `at` took longer than the stall
    /// limit: an outage, although it ended in success.
    fn note_storage_stall(&self, at: crate::time::Timestamp) {
        if self.note_outage(at) {
            tracing::warn!(since = %at, limit = ?self.inner.config.stall_limit,
                "storage stalled: not receiving until a liveness mark succeeds");
        }
    }

    /// Whether this is the first unrecorded failure.
    fn note_outage(&self, at: crate::time::Timestamp) -> bool {
        let first = self
            .inner
            .outage_since
            .fetch_min(at.as_millis(), Ordering::AcqRel)
            == NO_OUTAGE;
        if first {
            self.publish_storage_state();
        }
        first
    }

    /// Publishes whether an outage is pending. Read inside the channel's
    /// lock, so that of a failure and a recovery racing, the last to
    /// publish sees both, and the published state is the atomic's.
    fn publish_storage_state(&self) {
        self.inner.storage_works.send_if_modified(|works| {
            let now_works = self.outage_since().is_none();
            std::mem::replace(works, now_works) != now_works
        });
    }

    /// Whether the storage works, now and as it changes: `false` from a
    /// failed (or stalled) storage call until a liveness mark succeeds
    /// again. Health checks report it.
    pub fn storage_works(&self) -> watch::Receiver<bool> {
        self.inner.storage_works.subscribe()
    }

    /// Passes `result` through, noting a storage failure of a call started at `at`.
    fn watch_storage<T>(&self, at: crate::time::Timestamp, result: Result<T>) -> Result<T> {
        if let Err(e) = &result
            && e.is_storage_failure()
        {
            self.note_storage_failure(at, e);
        }
        result
    }

    /// Stops receiving: from now on messages are refused with
    /// [`Error::ShuttingDown`], maintenance ends, open streams end, and the
    /// store records this instant as the exact end of this node's receiving
    /// (so the time until the next start is own downtime, however long the
    /// process then takes to exit). Call it when the listener stops taking
    /// messages. Calling it again does nothing.
    pub async fn stop_receiving(&self) -> Result<()> {
        let at = self.now();
        if self.inner.stopping.send_replace(true) {
            return Ok(());
        }
        tracing::info!(node = %self.inner.config.node_id, at = %at, "stopped receiving");
        self.inner
            .store
            .mark_stopped(&self.inner.config.node_id, at)
            .await
    }

    /// Whether [`Carewatch::stop_receiving`] was called.
    pub fn is_stopping(&self) -> bool {
        *self.inner.stopping.borrow()
    }

    /// Completes when [`Carewatch::stop_receiving`] is called: long-lived
    /// streams end on it.
    pub fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.stopping.subscribe();
        async move {
            let _ = rx.wait_for(|stopping| *stopping).await;
        }
    }
}
