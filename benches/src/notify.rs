//! The notifications benchmark's moving parts (`notifyload`, issue 17):
//!
//! - [`Serve`]: `carewatch serve` with extra flags (`--heartbeat-interval`,
//!   `--jitter`, `--notify-ca-cert`), which [`crate::server::ServerProcess`]
//!   does not pass;
//! - [`PacedFleet`]: recording servers that each send one message per
//!   interval, spread evenly over it, until silenced (the outage) and again
//!   when resumed (its end);
//! - [`Flood`]: recording servers sending heartbeats as fast as the server
//!   takes them (`loadgen --mode stream`), running without a break and
//!   recording when each heartbeat was acknowledged, so any window's
//!   throughput can be read afterwards;
//! - [`CpuSampler`]: the server's (and its lower-priority threads') and this
//!   process's CPU time, four times a second.
//!
//! Each simulated server's first message is its status report, sent in its
//! turn like a heartbeat: no server waits for the others' reports, so none
//! falls Late while a fleet starts.
//!
//! Times are milliseconds since a run's origin ([`Clock`]), which also
//! maps them to wall-clock milliseconds (the store's and the receiver's).

mod cpu;
mod flood;
mod paced;
mod pipe;
mod receiver;
mod serve;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use cpu::{CpuSample, CpuSampler, load_average, nearest};
pub use flood::Flood;
pub use paced::{Beat, PacedFleet};
pub use pipe::Acks;
pub use receiver::ReceiverThread;
pub use serve::Serve;

/// Milliseconds since the Unix epoch of a wall-clock time.
pub fn unix_millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A run's origin: an instant and the wall-clock time read with it.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
    origin_unix_ms: i64,
}

impl Clock {
    /// Starts now.
    pub fn start() -> Self {
        Self {
            origin: Instant::now(),
            origin_unix_ms: unix_millis(SystemTime::now()),
        }
    }

    /// Milliseconds since the origin.
    pub fn now_ms(&self) -> u32 {
        u32::try_from(self.origin.elapsed().as_millis()).unwrap_or(u32::MAX)
    }

    /// The instant `ms` after the origin.
    pub fn instant(&self, ms: u32) -> Instant {
        self.origin + Duration::from_millis(u64::from(ms))
    }

    /// A wall-clock time (Unix milliseconds) as milliseconds since the
    /// origin (negative before it).
    pub fn offset_of_unix(&self, unix_ms: i64) -> i64 {
        unix_ms - self.origin_unix_ms
    }
}
