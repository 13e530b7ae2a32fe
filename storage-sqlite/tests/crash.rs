//! Data acknowledged before the process dies without any clean shutdown is
//! all there after reopening. The child is this same test binary, re-run with
//! an environment variable; it aborts the process right after its last write.

use std::process::Command;
use std::sync::Arc;

use carewatch_core::availability::Availability;
use carewatch_core::seal::MasterKey;
use carewatch_core::testing::fixture::{Fixture, START};
use carewatch_core::testing::{Site, TestDatabase};
use carewatch_core::time::ManualClock;
use carewatch_core::{ConditionCode, store::Store};
use carewatch_storage_sqlite::SqliteStore;

const CHILD_DB: &str = "CAREWATCH_CRASH_CHILD_DB";
const CHILD_MASTER_KEY: &str = "CAREWATCH_CRASH_CHILD_MASTER_KEY";
const REPORTS: u64 = 50;

struct Path(std::path::PathBuf);

#[async_trait::async_trait]
impl TestDatabase for Path {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(
            SqliteStore::open(&self.0)
                .await
                .expect("opens SQLite store"),
        )
    }
}

/// In the child: registers a site, writes acknowledged reports, then aborts.
async fn child(db: Path, master_key: MasterKey) -> ! {
    let fx = Fixture::open_with(&db, Arc::new(ManualClock::new(START)), master_key).await;
    let site = fx.site("acme", "M01-C01-CRASH").await;
    std::fs::write(db.0.with_extension("key"), &*site.key.to_text())
        .expect("writes key for the parent");
    for seq in 1..=REPORTS {
        let subject = format!("Camera {seq}");
        fx.report(
            &site,
            "rs-1",
            seq,
            &[(ConditionCode::CameraUnreachable, &subject, "")],
        )
        .await
        .expect("acknowledged");
    }
    // No drop, no close, no checkpoint: the process ends here.
    std::process::abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_an_abort() {
    if let (Ok(db), Ok(key)) = (std::env::var(CHILD_DB), std::env::var(CHILD_MASTER_KEY)) {
        child(
            Path(db.into()),
            MasterKey::from_hex(&key).expect("master key"),
        )
        .await;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = dir.path().join("carewatch.db");
    let master_key = MasterKey::generate();
    let status = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "acknowledged_writes_survive_an_abort",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD_DB, &db)
        .env(CHILD_MASTER_KEY, &*master_key.to_hex())
        .status()
        .expect("child runs");
    assert!(
        !status.success(),
        "the child must die by abort, not exit cleanly: {status}"
    );
    assert!(
        db.with_extension("db-wal").exists(),
        "the child left its write-ahead log un-checkpointed"
    );

    let fx = Fixture::open_with(
        &Path(db.clone()),
        Arc::new(ManualClock::new(START)),
        master_key,
    )
    .await;
    let acme = carewatch_core::ids::ResellerId::new("acme").expect("id");
    let slc = carewatch_core::ids::Slc::new("M01-C01-CRASH").expect("slc");
    let detail = fx
        .carewatch
        .installation(&acme, &slc)
        .await
        .expect("installation survived");
    assert_eq!(detail.servers.len(), 1);
    assert_eq!(
        detail.servers[0].cursor.sequence, REPORTS,
        "every acknowledged report survived"
    );
    assert_eq!(detail.servers[0].availability, Availability::Available);
    assert_eq!(
        detail.active_conditions.len(),
        1,
        "the last snapshot is the active set"
    );
    assert_eq!(
        detail.active_conditions[0].subject,
        format!("Camera {REPORTS}")
    );

    // The installation key survived too: the site can go on reporting.
    let key_text = std::fs::read_to_string(db.with_extension("key")).expect("key from the child");
    let site = Site {
        slc,
        reseller: acme,
        key: carewatch_core::seal::InstallationKey::from_text(&key_text).expect("key"),
    };
    let ack = fx
        .heartbeat(&site, "rs-1", REPORTS + 1)
        .await
        .expect("ingest after crash");
    assert!(!ack.duplicate);
}
