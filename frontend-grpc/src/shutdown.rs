//! A signal that long-lived streams (watch, ingest streams) end on, so a
//! graceful shutdown does not wait for them forever.

use std::future::Future;

use tokio::sync::watch;

/// Fires once, when the server starts shutting down.
#[derive(Debug)]
pub struct Shutdown(watch::Sender<bool>);

/// A handle streams hold to learn of the shutdown.
#[derive(Debug, Clone)]
pub struct ShutdownSignal(watch::Receiver<bool>);

impl Shutdown {
    /// A new, unfired signal.
    pub fn new() -> (Self, ShutdownSignal) {
        let (tx, rx) = watch::channel(false);
        (Self(tx), ShutdownSignal(rx))
    }

    /// Fires it.
    pub fn fire(&self) {
        self.0.send_replace(true);
    }
}

impl ShutdownSignal {
    /// Completes when the shutdown fires (or its sender is gone).
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.clone();
        async move {
            let _ = rx.wait_for(|fired| *fired).await;
        }
    }
}
