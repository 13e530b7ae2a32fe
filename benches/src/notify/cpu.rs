//! [`CpuSampler`]: the server's (and its lower-priority threads') and this
//! process's CPU time, four times a second; and the machine's load average.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

use super::Clock;
use crate::server::{background_cpu_time, cpu_time, thread_cpu_time};

/// How often [`CpuSampler`] reads CPU times.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// CPU time read at one instant.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    /// Milliseconds since the origin.
    pub at_ms: u32,
    /// The server's CPU time so far.
    pub server: Option<Duration>,
    /// The part of it taken by the server's threads at a lower priority
    /// (the notification threads).
    pub server_background: Option<Duration>,
    /// This process's CPU time so far.
    pub this: Option<Duration>,
    /// The part of it taken by the receiver's thread, if it has one.
    pub receiver: Option<Duration>,
}

/// Reads the server's (and its lower-priority threads') and this process's CPU
/// time every 250 ms.
#[derive(Debug)]
pub struct CpuSampler {
    quit: Arc<AtomicBool>,
    task: JoinHandle<Vec<CpuSample>>,
}

impl CpuSampler {
    /// Starts sampling process `pid` (and this process's thread
    /// `receiver_thread`, if given).
    pub fn start(pid: u32, receiver_thread: Option<u32>, clock: Clock) -> Self {
        let quit = Arc::new(AtomicBool::new(false));
        let stop = quit.clone();
        let task = tokio::spawn(async move {
            let pid = pid.to_string();
            let mut samples = Vec::new();
            let mut every = tokio::time::interval(SAMPLE_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !stop.load(Ordering::Acquire) {
                every.tick().await;
                samples.push(CpuSample {
                    at_ms: clock.now_ms(),
                    server: cpu_time(&pid),
                    server_background: background_cpu_time(&pid),
                    this: cpu_time("self"),
                    receiver: receiver_thread.and_then(|tid| thread_cpu_time("self", tid)),
                });
            }
            samples
        });
        Self { quit, task }
    }

    /// Stops; the samples, by time.
    pub async fn stop(self) -> Vec<CpuSample> {
        self.quit.store(true, Ordering::Release);
        self.task.await.unwrap_or_default()
    }
}

/// The sample nearest to `at_ms`.
pub fn nearest(samples: &[CpuSample], at_ms: u32) -> Option<&CpuSample> {
    samples.iter().min_by_key(|s| s.at_ms.abs_diff(at_ms))
}

/// `/proc/loadavg`'s first three fields.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "?".to_owned())
}
