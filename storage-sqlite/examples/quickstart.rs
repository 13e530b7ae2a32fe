//! Embedding Carewatch in a Rust service: open SQLite, register a customer,
//! ingest sealed messages as its recording server would, print the overview.
//!
//! Run with `cargo run -p carewatch-storage-sqlite --example quickstart`.

use std::sync::Arc;
use std::time::Duration;

use carewatch_core::condition::{ReportedCondition, StatusSnapshot};
use carewatch_core::ids::{RecordingServerId, ResellerId, Slc};
use carewatch_core::installation::Product;
use carewatch_core::seal::MasterKey;
use carewatch_core::store::OverviewQuery;
use carewatch_core::time::SystemClock;
use carewatch_core::{Carewatch, ConditionCode, Config, IncomingMessage};
use carewatch_storage_sqlite::SqliteStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteStore::open(dir.path().join("carewatch.db")).await?);
    // Keep the master key outside the database (a file, a secret store).
    let carewatch = Carewatch::open(
        store,
        Arc::new(SystemClock),
        Config::new(MasterKey::generate()),
    )
    .await?;

    // Operator: a reseller, and a customer installation it registered.
    let reseller = ResellerId::new("acme-security")?;
    let token = carewatch
        .create_reseller(&reseller, "ACME Security")
        .await?;
    let slc = Slc::new("M01-C01-123-45")?;
    carewatch
        .register_installation(
            &slc,
            &reseller,
            Product::new("XProtect Corporate", "2016 R3")?,
        )
        .await?;
    carewatch.set_consent(&slc, true).await?;
    let in_a_year = carewatch
        .now()
        .saturating_add(Duration::from_secs(365 * 24 * 3600));
    carewatch.set_subscription(&slc, Some(in_a_year)).await?;
    let key = carewatch.issue_installation_key(&slc).await?; // provisioned on the recording server

    // Recording server: a heartbeat, then a status report with a full disk.
    let server = RecordingServerId::new("rs-lobby")?;
    let ack = carewatch
        .ingest(IncomingMessage::heartbeat(&key, &slc, &server, 1))
        .await?;
    println!(
        "heartbeat acknowledged; next one due in {:?}",
        ack.heartbeat_interval
    );
    let disk_full =
        ReportedCondition::new(ConditionCode::StorageFull, "D:\\Recordings", "100% used")?;
    let snapshot = StatusSnapshot::new(vec![disk_full])?;
    carewatch
        .ingest(IncomingMessage::status_report(
            &key, &slc, &server, 2, &snapshot,
        ))
        .await?;

    // Reseller: its overview (only installations needing attention).
    let who = carewatch.authenticate_reseller(&token.token, None).await?;
    let page = carewatch.overview(&who, &OverviewQuery::default()).await?;
    for row in &page.rows {
        let worst = row.summary.worst.as_ref().map_or("-", |c| c.as_str());
        println!(
            "{:<16} {:<10} worst: {worst:<14} servers: {}",
            row.slc,
            row.summary.health.name(),
            row.summary.servers
        );
    }
    Ok(())
}
