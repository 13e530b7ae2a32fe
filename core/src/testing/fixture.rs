//! A ready-made Carewatch over a test store, with a manual clock.

use std::sync::Arc;
use std::time::Duration;

use super::TestDatabase;
use crate::condition::{ReportedCondition, StatusSnapshot};
use crate::ids::{RecordingServerId, ResellerId, Slc};
use crate::installation::Product;
use crate::seal::{InstallationKey, MasterKey};
use crate::service::{Carewatch, Config, IncomingMessage, IngestAck};
use crate::store::Store;
use crate::time::{ManualClock, Timestamp};
use crate::{ConditionCode, Result};

/// The instant every fixture clock starts at (2026-01-01T00:00:00Z).
pub const START: Timestamp = Timestamp::from_millis(1_767_225_600_000);
/// The heartbeat interval fixtures use.
pub const INTERVAL: Duration = Duration::from_secs(60);
/// The jitter tolerance fixtures use (the default policy's).
pub const JITTER: Duration = Duration::from_secs(2);
/// The liveness tolerance fixtures use: above the 5 s steps in which tests
/// keep a service ticking.
pub const LIVENESS_TOLERANCE: Duration = Duration::from_secs(10);

/// A Carewatch service over a store, with a clock the test moves.
#[derive(Debug)]
pub struct Fixture {
    /// The service.
    pub carewatch: Carewatch,
    /// Its clock.
    pub clock: Arc<ManualClock>,
    /// Its store.
    pub store: Arc<dyn Store>,
    /// The master key (reuse it to reopen the same database).
    pub master_key: MasterKey,
}

/// One registered, consenting, subscribed installation with a key.
#[derive(Debug, Clone)]
pub struct Site {
    /// Its SLC.
    pub slc: Slc,
    /// Its reseller.
    pub reseller: ResellerId,
    /// Its current key.
    pub key: InstallationKey,
}

impl Fixture {
    /// Opens a service on `db` at [`START`] with a new master key.
    pub async fn open(db: &dyn TestDatabase) -> Self {
        Self::open_with(db, Arc::new(ManualClock::new(START)), MasterKey::generate()).await
    }

    /// Opens a service on `db` with the given clock and master key.
    pub async fn open_with(
        db: &dyn TestDatabase,
        clock: Arc<ManualClock>,
        master_key: MasterKey,
    ) -> Self {
        Self::open_configured(db, clock, master_key, |config| config).await
    }

    /// Opens a service on `db` with the given clock and master key, and the
    /// fixture's settings changed by `configure`.
    pub async fn open_configured(
        db: &dyn TestDatabase,
        clock: Arc<ManualClock>,
        master_key: MasterKey,
        configure: impl FnOnce(Config) -> Config,
    ) -> Self {
        let store = db.open().await;
        let config = Config::new(master_key.clone())
            .with_heartbeat_interval(INTERVAL)
            .expect("valid interval")
            .with_liveness_tolerance(LIVENESS_TOLERANCE)
            // A loaded CI machine can take over a second to fsync; the
            // suite's clock is manual, so no test here measures stalls.
            .with_stall_limit(std::time::Duration::from_secs(60));
        let config = configure(config);
        let carewatch = Carewatch::open(store.clone(), clock.clone(), config)
            .await
            .expect("service opens");
        Self {
            carewatch,
            clock,
            store,
            master_key,
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }

    /// Creates a reseller (if new) and returns its id.
    pub async fn reseller(&self, id: &str) -> ResellerId {
        let id = ResellerId::new(id).expect("valid reseller id");
        match self
            .carewatch
            .create_reseller(&id, &format!("Reseller {id}"))
            .await
        {
            Ok(_) | Err(crate::Error::AlreadyExists { .. }) => id,
            Err(e) => panic!("creating reseller {id}: {e}"),
        }
    }

    /// Registers an installation for `reseller`, with consent, a year of Care
    /// Plus and a key.
    pub async fn site(&self, reseller: &str, slc: &str) -> Site {
        let reseller = self.reseller(reseller).await;
        let slc = Slc::new(slc).expect("valid SLC");
        let product = Product::new("XProtect Corporate", "2016 R3").expect("valid product");
        self.carewatch
            .register_installation(&slc, &reseller, product)
            .await
            .expect("registers");
        self.carewatch
            .set_consent(&slc, true)
            .await
            .expect("consent");
        let year = self
            .carewatch
            .now()
            .saturating_add(Duration::from_secs(365 * 24 * 3600));
        self.carewatch
            .set_subscription(&slc, Some(year))
            .await
            .expect("subscription");
        let key = self
            .carewatch
            .issue_installation_key(&slc)
            .await
            .expect("key");
        Site { slc, reseller, key }
    }

    /// Sends a heartbeat from `server` of `site`.
    pub async fn heartbeat(&self, site: &Site, server: &str, sequence: u64) -> Result<IngestAck> {
        let server = RecordingServerId::new(server).expect("valid server id");
        self.carewatch
            .ingest(IncomingMessage::heartbeat(
                &site.key, &site.slc, &server, sequence,
            ))
            .await
    }

    /// Sends a status report from `server` of `site` with `(code, subject, detail)` conditions.
    pub async fn report(
        &self,
        site: &Site,
        server: &str,
        sequence: u64,
        conditions: &[(ConditionCode, &str, &str)],
    ) -> Result<IngestAck> {
        let server = RecordingServerId::new(server).expect("valid server id");
        let snapshot = snapshot(conditions);
        self.carewatch
            .ingest(IncomingMessage::status_report(
                &site.key, &site.slc, &server, sequence, &snapshot,
            ))
            .await
    }
}

/// Builds a snapshot from `(code, subject, detail)` triples.
pub fn snapshot(conditions: &[(ConditionCode, &str, &str)]) -> StatusSnapshot {
    let conditions = conditions
        .iter()
        .map(|(code, subject, detail)| {
            ReportedCondition::new(code.clone(), subject, detail).expect("valid condition")
        })
        .collect();
    StatusSnapshot::new(conditions).expect("valid snapshot")
}
