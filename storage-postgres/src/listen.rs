//! Wake-ups from other nodes: each event-appending transaction sends a
//! NOTIFY at COMMIT (see the change-feed migration); a listener connection
//! turns them into a counter readers wait on. Only a hint: readers also
//! poll, so a notification lost while the connection is down costs latency,
//! never an event.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx_postgres::{PgListener, PgPool};
use tokio::sync::watch;

/// The NOTIFY channel; the payload is the schema that changed.
const CHANNEL: &str = "carewatch_changes";

/// Starts (once, while somebody listens) the listener task of a store.
#[derive(Debug, Default, Clone)]
pub(crate) struct ChangeSignals {
    sender: Arc<Mutex<Option<watch::Sender<u64>>>>,
}

impl ChangeSignals {
    /// A receiver of wake-ups; starts the listener if none runs.
    pub(crate) fn subscribe(&self, pool: &PgPool, schema: &str) -> watch::Receiver<u64> {
        let mut sender = self
            .sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(sender) = sender.as_ref().filter(|s| !s.is_closed()) {
            return sender.subscribe();
        }
        let (tx, rx) = watch::channel(0);
        tokio::spawn(listen(pool.clone(), schema.to_owned(), tx.clone()));
        *sender = Some(tx);
        rx
    }
}

/// Listens until every receiver is gone, reconnecting after failures.
async fn listen(pool: PgPool, schema: String, tx: watch::Sender<u64>) {
    let wake = |tx: &watch::Sender<u64>| tx.send_modify(|n| *n = n.wrapping_add(1));
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::debug!(error = %e, "change listener cannot connect; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    () = tx.closed() => return,
                }
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::debug!(error = %e, "LISTEN failed; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        loop {
            tokio::select! {
                received = listener.try_recv() => match received {
                    Ok(Some(notification)) => {
                        if notification.payload() == schema {
                            wake(&tx);
                        }
                    }
                    // The connection dropped (it reconnects): events may have
                    // been appended meanwhile.
                    Ok(None) => wake(&tx),
                    Err(e) => {
                        tracing::debug!(error = %e, "change listener failed; reconnecting");
                        wake(&tx);
                        break;
                    }
                },
                () = tx.closed() => return,
            }
        }
    }
}
