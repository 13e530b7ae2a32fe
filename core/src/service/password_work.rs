//! Argon2 work (19 MiB and tens of milliseconds of a core each) a few at a
//! time. Signing in and answering an invitation need no account, so
//! unbounded they would let anyone take every core, the memory (one hash's
//! memory per blocking thread, 512 of them), and the blocking threads that
//! SQLite's calls share: ingest would stall.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::error::{Error, Result};

/// Runs password hashing and checks on blocking threads, at most `permits`
/// at once; the others wait their turn.
#[derive(Debug)]
pub(super) struct PasswordWork {
    permits: Arc<Semaphore>,
}

impl Default for PasswordWork {
    /// Half the processors (at least one): the rest stay with ingest.
    fn default() -> Self {
        let processors = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new((processors / 2).max(1))
    }
}

impl PasswordWork {
    pub(super) fn new(permits: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits.max(1))),
        }
    }

    /// Runs `work` on a blocking thread once a turn is free. The turn goes
    /// with the work, so a caller that gives up waiting for the result
    /// does not free it before the work is done.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let turn = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Error::storage("password checks have stopped", e))?;
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            work()
        })
        .await
        .map_err(|e| Error::storage("a password check was interrupted", e))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_than_the_permits_run_at_once_even_when_callers_give_up() {
        let work = Arc::new(PasswordWork::new(2));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let job = |running: Arc<AtomicUsize>, most: Arc<AtomicUsize>| {
            move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(30));
                running.fetch_sub(1, Ordering::SeqCst);
            }
        };
        // Half the callers give up at once: their work still holds a turn.
        let mut callers = Vec::new();
        for n in 0..16 {
            let work = work.clone();
            let job = job(running.clone(), most.clone());
            callers.push(tokio::spawn(async move {
                if n % 2 == 0 {
                    let _ = tokio::time::timeout(Duration::from_millis(1), work.run(job)).await;
                } else {
                    work.run(job).await.expect("runs");
                }
            }));
        }
        for caller in callers {
            caller.await.expect("caller");
        }
        // Wait for the abandoned work too.
        let _ = work.run(|| ()).await;
        let _ = work.run(|| ()).await;
        assert!(
            most.load(Ordering::SeqCst) <= 2,
            "{} ran at once",
            most.load(Ordering::SeqCst)
        );
        assert!(most.load(Ordering::SeqCst) >= 1);
    }
}
