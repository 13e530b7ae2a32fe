//! The service facade: one [`Carewatch`] value over a store and a clock.
//! Front ends (gRPC, Python, an embedding Rust service) call this and hold no
//! rules of their own.

mod batcher;
mod ingest;
mod maintenance;
mod operator;
mod reseller;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::broadcast;

pub use ingest::{IncomingMessage, IngestAck};
pub use maintenance::SweepReport;
pub use reseller::{InstallationChange, WatchEvent, WatchStream};

use crate::availability::{AvailabilityPolicy, DEFAULT_INTERVAL, Downtime, check_interval};
use crate::error::{Error, Result};
use crate::seal::MasterKey;
use crate::store::{Admission, AdmissionQuery, SignOfLife, Store, SummaryChange, WriteOutcome};
use crate::time::{Clock, Timestamp};

/// Admission batches read at once: enough to keep a few read connections
/// busy while the next batch gathers.
const ADMISSION_READS: usize = 2;

/// How far back own-downtime windows are loaded: older windows cannot change
/// anybody's availability any more.
const DOWNTIME_LOOKBACK: Duration = Duration::from_secs(30 * 24 * 3600);

/// Settings of a Carewatch service.
#[derive(Debug, Clone)]
pub struct Config {
    master_key: MasterKey,
    heartbeat_interval: Duration,
    policy: AvailabilityPolicy,
    max_message_bytes: usize,
    node_id: String,
    liveness_tolerance: Duration,
    history_limit: u32,
    watch_capacity: usize,
}

impl Config {
    /// Defaults: 60 s heartbeats, unavailable after 3 missed, 64 KiB messages.
    pub fn new(master_key: MasterKey) -> Self {
        Self {
            master_key,
            heartbeat_interval: DEFAULT_INTERVAL,
            policy: AvailabilityPolicy::default(),
            max_message_bytes: 64 * 1024,
            node_id: "carewatch".into(),
            liveness_tolerance: Duration::from_secs(10),
            history_limit: 50,
            watch_capacity: 4096,
        }
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

    /// The largest sealed message accepted (1 KiB to 16 MiB).
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Result<Self> {
        if !(1024..=16 * 1024 * 1024).contains(&bytes) {
            return Err(Error::InvalidInput {
                field: "max message bytes",
                reason: format!("{bytes}; use 1 KiB to 16 MiB"),
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

    /// A gap longer than this between liveness marks counts as own downtime.
    /// Keep it well above the maintenance tick (one second).
    pub fn with_liveness_tolerance(mut self, tolerance: Duration) -> Self {
        self.liveness_tolerance = tolerance;
        self
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
    clock: Arc<dyn Clock>,
    config: Config,
    changes: broadcast::Sender<Arc<SummaryChange>>,
    downtime: RwLock<Arc<Downtime>>,
}

impl Carewatch {
    /// Opens the service: records that it is receiving again and, if nobody
    /// was for longer than the liveness tolerance, the gap as own downtime
    /// (so the outage does not count as missed heartbeats). Starts the
    /// heartbeat writer on the current tokio runtime.
    pub async fn open(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: Config,
    ) -> Result<Self> {
        let (changes, _) = broadcast::channel(config.watch_capacity);
        let service = Self {
            inner: Arc::new(Inner {
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
                changes,
                downtime: RwLock::new(Arc::default()),
            }),
        };
        service.mark_alive().await?;
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

    fn downtime(&self) -> Arc<Downtime> {
        // A poisoned lock only means a panic elsewhere while swapping an Arc.
        self.inner
            .downtime
            .read()
            .map_or_else(|e| e.into_inner().clone(), |d| d.clone())
    }

    async fn reload_downtime(&self) -> Result<()> {
        let after = self.now().saturating_sub(DOWNTIME_LOOKBACK);
        let windows = Arc::new(Downtime::new(self.inner.store.downtime(after).await?));
        match self.inner.downtime.write() {
            Ok(mut d) => *d = windows,
            Err(e) => *e.into_inner() = windows,
        }
        Ok(())
    }

    fn publish(&self, change: SummaryChange) {
        // No receivers is fine: nobody is watching.
        let _ = self.inner.changes.send(Arc::new(change));
    }
}
