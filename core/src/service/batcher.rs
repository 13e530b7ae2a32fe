//! Group commit for heartbeats. Heartbeats that arrive while a write is in
//! flight queue up and are written together in the next transaction, so
//! under load one commit (and one fsync) serves many heartbeats, while a lone
//! heartbeat is written at once. Each is acknowledged only after the
//! transaction holding it committed: durability is unchanged.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::store::{SignOfLife, Store, WriteOutcome};

/// Most heartbeats written in one transaction.
const MAX_BATCH: usize = 1024;

type Reply = oneshot::Sender<Result<WriteOutcome>>;

/// The queue in front of [`Store::record_signs_of_life`].
#[derive(Debug)]
pub(super) struct HeartbeatBatcher {
    queue: mpsc::Sender<(SignOfLife, Reply)>,
}

impl HeartbeatBatcher {
    /// Starts the writer task on the current tokio runtime. It ends, after
    /// writing what is queued, when the batcher is dropped.
    pub(super) fn start(store: Arc<dyn Store>) -> Self {
        let (queue, pending) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(write_batches(store, pending));
        Self { queue }
    }

    /// Records one sign of life; returns once it is committed.
    pub(super) async fn record(&self, sign: SignOfLife) -> Result<WriteOutcome> {
        let (reply, outcome) = oneshot::channel();
        self.queue
            .send((sign, reply))
            .await
            .map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

fn stopped() -> Error {
    Error::StorageUnavailable {
        message: "the heartbeat writer has stopped (the service is shutting down)".into(),
        source: None,
    }
}

async fn write_batches(store: Arc<dyn Store>, mut pending: mpsc::Receiver<(SignOfLife, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while pending.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (signs, replies): (Vec<SignOfLife>, Vec<Reply>) = batch.drain(..).unzip();
        match store.record_signs_of_life(&signs).await {
            Ok(outcomes) if outcomes.len() == replies.len() => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // The caller may have gone (its request was cancelled).
                    let _ = reply.send(Ok(outcome));
                }
            }
            Ok(outcomes) => {
                let message = format!(
                    "the store returned {} outcomes for {} heartbeats",
                    outcomes.len(),
                    replies.len()
                );
                for reply in replies {
                    let _ = reply.send(Err(Error::Storage {
                        message: message.clone(),
                        source: None,
                    }));
                }
            }
            Err(e) => {
                // Every heartbeat of the batch failed the same way.
                let message = e.to_string();
                tracing::warn!(error = %e, heartbeats = replies.len(), "writing heartbeats failed");
                for reply in replies {
                    let copy = if e.is_retryable() {
                        Error::StorageUnavailable {
                            message: message.clone(),
                            source: None,
                        }
                    } else {
                        Error::Storage {
                            message: message.clone(),
                            source: None,
                        }
                    };
                    let _ = reply.send(Err(copy));
                }
            }
        }
    }
}
