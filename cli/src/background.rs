//! Notification work (the notifier's rules and payloads, delivery) on a
//! thread of its own, at a lower CPU priority than ingest.
//!
//! A regional outage queues thousands of notifications at once, each an
//! HTTP request (or an email) with a signature. Run on the server's
//! runtime, that work competes with heartbeats for the same cores, and
//! ingest loses what notifying takes. On its own thread with a higher nice
//! value, the scheduler gives the cores to ingest first and notifications
//! use what is left; they still get a share under full load (CFS weights,
//! never starvation), so they stay within seconds of detection. What runs
//! here: the notifier's rules and payloads, and the sending (HTTP requests,
//! signatures, chat and email formatting, TLS). The dispatcher's store
//! calls run on the server's runtime
//! ([`carewatch_notify::DispatcherOptions::store_runtime`]): the notifier's
//! commits, claims and outcomes keep ingest's priority and its database
//! connections, and never hold SQLite's write lock from a thread the
//! scheduler holds back. The notifier's reads run here when the store has
//! a view for them ([`carewatch_core::store::Store::for_background_reads`]:
//! SQLite, on a reader connection of their own), on blocking threads this
//! thread starts, which inherit its priority. A panic there (a bug in the rules or in
//! sending) is caught: by the dispatcher for one step or one attempt, here
//! for anything else, and the work starts again.

use std::future::Future;
use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use carewatch_core::Carewatch;
use carewatch_notify::{Dispatcher, DispatcherOptions, Sender, panic_message};
use futures::FutureExt;
use tokio::sync::{oneshot, watch};

/// The thread's name (`top -H` and `/proc/PID/task/*/comm` show its first 15
/// characters).
pub const THREAD_NAME: &str = "carewatch-notify";

/// Starts the dispatcher on its own thread, its priority lowered by `nice`
/// (0 keeps the server's), until `stopping` turns true. The receiver
/// completes when it has stopped (or if the thread could not run it).
pub fn spawn_dispatcher(
    carewatch: Carewatch,
    sender: Arc<Sender>,
    stopping: watch::Receiver<bool>,
    nice: u8,
) -> io::Result<oneshot::Receiver<()>> {
    let options = DispatcherOptions {
        store_runtime: Some(tokio::runtime::Handle::current()),
        ..DispatcherOptions::default()
    };
    let (done, finished) = oneshot::channel();
    std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || {
            match lower_this_threads_priority(nice) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                    tracing::debug!(error = %e, "notifications run at the server's CPU priority");
                }
                Err(e) => {
                    tracing::warn!(error = %e, nice, "notifications run at the server's CPU priority");
                }
            }
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the notification thread's runtime; nothing is delivered by this node");
                    return;
                }
            };
            // One runtime throughout: the sender's pooled connections
            // belong to it, and would be dead on another.
            runtime.block_on(run_restarting(stopping.clone(), RESTART_AFTER, || {
                let mut stopping = stopping.clone();
                let dispatcher =
                    Dispatcher::new(carewatch.clone(), sender.clone(), options.clone());
                async move {
                    dispatcher
                        .run(async move {
                            let _ = stopping.wait_for(|stop| *stop).await;
                        })
                        .await;
                }
            }));
            // Ended before saying so: the store's last handle (a read still
            // running on this runtime's blocking threads) goes with them,
            // and the server's closes the database cleanly.
            drop(runtime);
            drop(carewatch);
            let _ = done.send(());
        })?;
    Ok(finished)
}

/// How long after a first panic the notification work starts again; the
/// wait doubles with each panic in a row, up to [`RESTART_AFTER_AT_MOST`].
const RESTART_AFTER: Duration = Duration::from_secs(1);
const RESTART_AFTER_AT_MOST: Duration = Duration::from_secs(60);

/// Runs `work` until it returns, starting it again when it panics (after
/// `pause`, doubling), unless the server is stopping. A bug that escapes
/// the dispatcher's own catching must not leave the node running without
/// notifications: the outbox keeps what was not sent, and the new run
/// releases the node's claims as it starts (an outcome the panicked run
/// still writes after that release is lost, and the entry sent again: at
/// least once, with the same key).
async fn run_restarting<W, F>(mut stopping: watch::Receiver<bool>, pause: Duration, mut work: W)
where
    W: FnMut() -> F,
    F: Future<Output = ()>,
{
    let mut pause = pause;
    // The server went away without saying so (its sender dropped): stop too.
    let stopped =
        |stopping: &watch::Receiver<bool>| *stopping.borrow() || stopping.has_changed().is_err();
    loop {
        let panic = match AssertUnwindSafe(work()).catch_unwind().await {
            Ok(()) => return,
            Err(panic) => panic,
        };
        if stopped(&stopping) {
            return;
        }
        tracing::error!(
            panic = %panic_message(panic.as_ref()),
            "notification work panicked; starting it again in {pause:?}"
        );
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = stopping.wait_for(|stop| *stop) => {}
        }
        if stopped(&stopping) {
            return;
        }
        pause = (pause * 2).min(RESTART_AFTER_AT_MOST);
    }
}

/// Adds `nice` to the calling thread's nice value (Linux: the nice value is
/// per thread, and threads it starts inherit it). Elsewhere it would apply
/// to the whole process, so it is not done.
#[allow(unsafe_code)] // getpriority/setpriority on the calling thread
pub fn lower_this_threads_priority(nice: u8) -> io::Result<()> {
    if nice == 0 {
        return Ok(());
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on the calling thread, no pointers.
        let (thread, current) = unsafe {
            let thread = libc::gettid() as libc::id_t;
            *libc::__errno_location() = 0;
            (thread, libc::getpriority(libc::PRIO_PROCESS, thread))
        };
        if current == -1 && io::Error::last_os_error().raw_os_error() != Some(0) {
            return Err(io::Error::last_os_error());
        }
        let wanted = (current + i32::from(nice)).min(19);
        // SAFETY: as above.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, thread, wanted) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a thread's own priority is only set on Linux",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    fn this_threads_nice() -> i32 {
        // SAFETY: plain system calls on the calling thread.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[tokio::test]
    async fn panicking_work_is_started_again_until_it_returns() {
        let (_stop, stopping) = watch::channel(false);
        let mut runs = 0;
        run_restarting(stopping, Duration::from_millis(1), || {
            runs += 1;
            let run = runs;
            async move { assert!(run >= 3, "run {run} panics") }
        })
        .await;
        assert_eq!(runs, 3);
    }

    #[tokio::test]
    async fn panicking_work_is_not_started_again_once_stopping() {
        let (stop, stopping) = watch::channel(false);
        let mut runs = 0;
        run_restarting(stopping, Duration::ZERO, || {
            runs += 1;
            let _ = stop.send(true);
            async { panic!("a panic while the server stops") }
        })
        .await;
        assert_eq!(runs, 1);
    }

    #[tokio::test]
    async fn a_stop_during_the_pause_ends_it_without_another_start() {
        let (stop, stopping) = watch::channel(false);
        let mut runs = 0;
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = stop.send(true);
        });
        tokio::time::timeout(
            Duration::from_secs(10),
            run_restarting(stopping, Duration::from_secs(600), || {
                runs += 1;
                async { panic!("a panic before the stop") }
            }),
        )
        .await
        .expect("the stop ends the pause");
        assert_eq!(runs, 1);
        stopper.await.expect("stopper");
    }

    /// The notifier's SQLite reads run on the blocking threads of the
    /// notification thread's runtime: they must be held back as it is.
    #[cfg(target_os = "linux")]
    #[test]
    fn blocking_work_started_from_a_lowered_thread_runs_at_its_priority() {
        let before = this_threads_nice();
        let (own, blocking) = std::thread::spawn(move || {
            lower_this_threads_priority(5).expect("lowered");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            let blocking = runtime
                .block_on(runtime.spawn_blocking(this_threads_nice))
                .expect("blocking work ran");
            (this_threads_nice(), blocking)
        })
        .join()
        .expect("the thread ran");
        assert_eq!(own, (before + 5).min(19));
        assert_eq!(blocking, own, "blocking threads inherit the priority");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn only_the_calling_thread_is_lowered() {
        let before = this_threads_nice();
        let lowered = std::thread::spawn(move || {
            lower_this_threads_priority(5).map(|()| this_threads_nice())
        })
        .join()
        .expect("the thread ran");
        assert_eq!(lowered.expect("lowered"), (before + 5).min(19));
        assert_eq!(this_threads_nice(), before, "other threads keep theirs");
    }
}
