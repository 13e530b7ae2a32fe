//! The maintenance loop against a slow and a failing store.
//!
//! A million servers due after a restart take 14-22 s to sweep. Liveness must
//! keep being marked meanwhile: if it waited for the sweep, the next mark would
//! see a gap longer than the tolerance and record a false own-downtime window,
//! which would excuse real missed heartbeats. A storage outage is own
//! downtime from the first refused write, at any length, and no sweep may
//! judge across it before it is recorded. Time is tokio's paused clock
//! (auto-advanced; SQLite work in `spawn_blocking` holds it still), and the
//! service clock follows it, so minutes of maintenance take milliseconds.

mod faulty;
mod faulty_store;
mod liveness;
mod notifier;
mod storage_faults;
mod support;
