//! Coalescing of concurrent store calls into batches.
//!
//! Requests that arrive while earlier batches are in flight queue up and go
//! to the store together in the next call, so under load one transaction
//! (and, for writes, one fsync) serves many messages, while a lone request
//! is sent at once. Each caller gets its own result only after the batch
//! holding its request finished: for heartbeats, after the commit, so
//! durability is unchanged.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::error::{Error, Result};

/// Most requests in one batch.
const MAX_BATCH: usize = 1024;

type Reply<T> = oneshot::Sender<Result<T>>;

/// The queue in front of one batched store call.
#[derive(Debug)]
pub(super) struct Coalescer<Request, Response> {
    queue: mpsc::Sender<(Request, Reply<Response>)>,
    /// What the batches do, for messages: "writing heartbeats".
    what: &'static str,
}

impl<Request, Response> Coalescer<Request, Response>
where
    Request: Send + 'static,
    Response: Send + 'static,
{
    /// Starts the batching task on the current tokio runtime, with at most
    /// `in_flight` batches running at once. `run` answers a batch with one
    /// result per request, in order, or fails it as a whole. The task ends,
    /// after answering what is queued, when the coalescer is dropped.
    pub(super) fn start<Run, Batch>(what: &'static str, in_flight: usize, run: Run) -> Self
    where
        Run: Fn(Vec<Request>) -> Batch + Send + 'static,
        Batch: Future<Output = Result<Vec<Result<Response>>>> + Send + 'static,
    {
        let (queue, pending) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run_batches(what, in_flight.max(1), pending, run));
        Self { queue, what }
    }

    /// Queues one request; returns its result once its batch has run.
    pub(super) async fn submit(&self, request: Request) -> Result<Response> {
        let (reply, response) = oneshot::channel();
        self.queue
            .send((request, reply))
            .await
            .map_err(|_| stopped(self.what))?;
        response.await.map_err(|_| stopped(self.what))?
    }
}

fn stopped(what: &str) -> Error {
    tracing::debug!("{what} has stopped (the service is shutting down)");
    Error::ShuttingDown
}

/// One copy of a batch's error for each of its callers, of the same kind
/// (`Error` holds boxed sources, so it is not `Clone`).
fn copy_for_caller(what: &str, e: &Error) -> Error {
    let message = format!("{what} failed: {e}");
    match e {
        Error::StorageUnavailable { reason, .. } => Error::StorageUnavailable {
            reason: *reason,
            message,
            source: None,
        },
        Error::StorageCorrupt { .. } => Error::StorageCorrupt {
            message,
            source: None,
        },
        Error::ShuttingDown => Error::ShuttingDown,
        _ => Error::Storage {
            message,
            source: None,
        },
    }
}

async fn run_batches<Request, Response, Run, Batch>(
    what: &'static str,
    in_flight: usize,
    mut pending: mpsc::Receiver<(Request, Reply<Response>)>,
    run: Run,
) where
    Request: Send + 'static,
    Response: Send + 'static,
    Run: Fn(Vec<Request>) -> Batch,
    Batch: Future<Output = Result<Vec<Result<Response>>>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(in_flight));
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        // Wait for a free slot first, so the batch gathers everything that
        // queued while the running ones were busy.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        if pending.recv_many(&mut batch, MAX_BATCH).await == 0 {
            break;
        }
        let (requests, replies): (Vec<Request>, Vec<Reply<Response>>) = batch.drain(..).unzip();
        let results = run(requests);
        tokio::spawn(async move {
            answer(what, replies, results.await);
            drop(slot);
        });
    }
    // Let the batches still running finish before the task ends.
    let _ = slots.acquire_many(in_flight as u32).await;
}

fn answer<Response>(
    what: &str,
    replies: Vec<Reply<Response>>,
    results: Result<Vec<Result<Response>>>,
) {
    match results {
        Ok(results) if results.len() == replies.len() => {
            for (reply, result) in replies.into_iter().zip(results) {
                // The caller may have gone (its request was cancelled).
                let _ = reply.send(result);
            }
        }
        Ok(results) => {
            let message = format!(
                "{what}: the store returned {} results for {} requests",
                results.len(),
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
            // Every request of the batch failed the same way. Through a
            // database outage a fleet's retries fail batch after batch:
            // one line per period says how many.
            static FAILED: std::sync::LazyLock<crate::log_limit::RateLimitedLog> =
                std::sync::LazyLock::new(Default::default);
            FAILED.log("batch failed", |batches| {
                tracing::warn!(error = %e, requests = replies.len(), batches, "{what} failed");
            });
            for reply in replies {
                let _ = reply.send(Err(copy_for_caller(what, &e)));
            }
        }
    }
}
