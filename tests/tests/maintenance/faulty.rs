//! The faulty store: SQLite that can be slow, fail or stall on demand.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use carewatch_core::notification::maintenance::MaintenanceWindow;
use carewatch_core::store::{Store, Transfer};
use carewatch_core::time::Timestamp;
use carewatch_core::{Error, Result};
use carewatch_storage_sqlite::SqliteStore;
use tokio::time::Instant;

/// SQLite whose `due_servers` takes `sweep_delay` (tokio time), whose every
/// call fails while `failing` is set (as a database that is down), recording
/// liveness marks and completed sweep reads; a transfer set in
/// `transfer_before_details` happens just before the next installation
/// read (as if the operator moved one during a notifier step); a window set
/// in `window_before_commit` is made just before the next notifier commit
/// (as if an admin made it while a step ran).
#[derive(Debug)]
pub(crate) struct Faulty {
    pub(crate) inner: SqliteStore,
    pub(crate) sweep_delay: Duration,
    pub(crate) failing: AtomicBool,
    pub(crate) stall_until: Mutex<Option<Instant>>,
    pub(crate) marks: Mutex<Vec<Timestamp>>,
    pub(crate) sweeps: AtomicU32,
    pub(crate) transfer_before_details: Mutex<Option<Transfer>>,
    pub(crate) window_before_commit: Mutex<Option<MaintenanceWindow>>,
}

impl Faulty {
    /// Fails while `failing`; waits while a stall lasts (then proceeds).
    pub(crate) async fn check(&self) -> Result<()> {
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

    /// Makes the window set in `window_before_commit`, once.
    pub(crate) async fn window_if_set(&self) -> Result<()> {
        let window = self.window_before_commit.lock().expect("hook").take();
        if let Some(window) = window {
            self.inner.create_maintenance(&window).await?;
        }
        Ok(())
    }

    /// Makes the transfer set in `transfer_before_details`, once.
    pub(crate) async fn transfer_if_set(&self) -> Result<()> {
        let transfer = self.transfer_before_details.lock().expect("hook").take();
        if let Some(transfer) = transfer {
            self.inner.transfer_installation(&transfer).await?;
        }
        Ok(())
    }
}
