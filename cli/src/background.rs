//! Notification delivery on a thread of its own, at a lower CPU priority
//! than ingest.
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
//! reads and commits, claims and outcomes keep ingest's priority and its
//! database connections, and never hold SQLite's write lock from a thread
//! the scheduler holds back.

use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use carewatch_core::Carewatch;
use carewatch_notify::{Dispatcher, DispatcherOptions, Sender};
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
            run_restarting(&stopping.clone(), RESTART_AFTER, || {
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
                let mut stopping = stopping.clone();
                let dispatcher = Dispatcher::new(carewatch.clone(), sender.clone(), options.clone());
                runtime.block_on(dispatcher.run(async move {
                    let _ = stopping.wait_for(|stop| *stop).await;
                }));
            });
            let _ = done.send(());
        })?;
    Ok(finished)
}

/// How long after a panic the notification work starts again.
const RESTART_AFTER: Duration = Duration::from_secs(1);

/// Runs `work` until it returns, starting it again (after `pause`) when it
/// panics, unless `stopping` is true by then. A bug in the rules or in
/// sending must not leave the node running without notifications: the
/// outbox keeps what was not sent, and leases hand it back.
fn run_restarting(stopping: &watch::Receiver<bool>, pause: Duration, mut work: impl FnMut()) {
    loop {
        match std::panic::catch_unwind(AssertUnwindSafe(&mut work)) {
            Ok(()) => return,
            Err(_) if *stopping.borrow() => return,
            Err(_) => {
                tracing::error!(
                    "notification work panicked (the message is above); starting it again in {pause:?}"
                );
                std::thread::sleep(pause);
            }
        }
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[allow(unsafe_code)]
    fn this_threads_nice() -> i32 {
        // SAFETY: plain system calls on the calling thread.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[test]
    fn panicking_work_is_started_again_until_it_returns() {
        let (_stop, stopping) = watch::channel(false);
        let mut runs = 0;
        run_restarting(&stopping, Duration::ZERO, || {
            runs += 1;
            assert!(runs >= 3, "run {runs} panics");
        });
        assert_eq!(runs, 3);
    }

    #[test]
    fn panicking_work_is_not_started_again_once_stopping() {
        let (stop, stopping) = watch::channel(false);
        let mut runs = 0;
        run_restarting(&stopping, Duration::ZERO, || {
            runs += 1;
            let _ = stop.send(true);
            panic!("run {runs} panics while the server stops");
        });
        assert_eq!(runs, 1);
    }

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
