//! Running a store call on another Tokio runtime.
//!
//! Notification work runs on a thread of its own at a lower CPU priority
//! (the `carewatch` binary's `carewatch-notify` thread), but its store
//! calls must not: SQLite's blocking work would then run on threads that
//! inherit the low priority (and hold the write lock while the scheduler
//! holds them back), and PostgreSQL connections opened there would belong
//! to that thread's runtime. Spawned on the server's runtime, a call keeps
//! the server's threads and connections; only the rules and payloads
//! around it run on the caller's thread (and reads, where the store has a
//! view for them: [`super::Store::for_background_reads`]).

use std::future::Future;

use tokio::runtime::Handle;

use crate::error::{Error, Result};

/// Runs `call` on `runtime` when one is given (spawned there and awaited
/// here), here otherwise. A runtime that is shutting down (the call was
/// cancelled) is [`Error::ShuttingDown`].
pub async fn run_on<T, F>(runtime: Option<&Handle>, call: F) -> Result<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let Some(runtime) = runtime else {
        return call.await;
    };
    match runtime.spawn(call).await {
        Ok(done) => done,
        Err(e) if e.is_cancelled() => Err(Error::ShuttingDown),
        Err(e) => Err(Error::storage(
            "a store call failed unexpectedly",
            e.to_string(),
        )),
    }
}
