//! [`PacedFleet`]: recording servers that each send one message per
//! interval, spread evenly over it, until silenced and again when resumed.

use std::time::{Duration, Instant};

use carewatch_cli::simulate::SimServer;
use carewatch_grpc::proto::ingest_client::IngestClient;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use super::Clock;
use super::pipe::{Acks, Pipe, REOPEN_AFTER, send_on};

/// What a [`PacedFleet`] is told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Send: server `n` of `N` at `epoch + (k + n/N) × interval`, k = 0, 1 …
    Running(Instant),
    /// Send nothing; streams are closed (the site lost its link).
    Silent,
    /// Stop for good.
    Quit,
}

/// Recording servers that each send one message per interval, spread
/// evenly over it (server `n` of `N` at phase `n/N`), over one stream per
/// worker.
#[derive(Debug)]
pub struct PacedFleet {
    control: watch::Sender<Beat>,
    tasks: Vec<JoinHandle<(Vec<SimServer>, Acks)>>,
}

impl PacedFleet {
    /// Starts `workers` workers, worker `n` on `channels[n %
    /// channels.len()]`, sending from now on. Each waits for one message's
    /// acknowledgement before the next: use enough workers that every
    /// server's turn comes on time although the server answers slowly.
    pub fn start(
        servers: Vec<SimServer>,
        channels: &[Channel],
        workers: usize,
        interval: Duration,
        clock: Clock,
    ) -> Self {
        let total = servers.len().max(1);
        let workers = workers.clamp(1, total);
        let mut groups: Vec<Vec<(SimServer, Duration)>> =
            (0..workers).map(|_| Vec::new()).collect();
        for (n, server) in servers.into_iter().enumerate() {
            let phase = interval.mul_f64(n as f64 / total as f64);
            groups[n % workers].push((server, phase));
        }
        let (control, _) = watch::channel(Beat::Running(Instant::now()));
        let tasks = groups
            .into_iter()
            .enumerate()
            .map(|(n, group)| {
                tokio::spawn(paced_worker(
                    channels[n % channels.len()].clone(),
                    group,
                    interval,
                    control.subscribe(),
                    clock,
                ))
            })
            .collect();
        Self { control, tasks }
    }

    /// Every server stops sending at once (each finishes the heartbeat it
    /// is sending, if any) and its stream is closed.
    pub fn silence(&self) {
        self.control.send_replace(Beat::Silent);
    }

    /// Every server sends again, spread over one interval from now.
    pub fn resume(&self) {
        self.control.send_replace(Beat::Running(Instant::now()));
    }

    /// Stops the workers; what they recorded.
    pub async fn stop(self) -> Acks {
        self.control.send_replace(Beat::Quit);
        let mut total = Acks::default();
        for task in self.tasks {
            if let Ok((_, acks)) = task.await {
                total.merge(acks);
            }
        }
        total.sort();
        total
    }
}

async fn paced_worker(
    channel: Channel,
    servers: Vec<(SimServer, Duration)>,
    interval: Duration,
    mut control: watch::Receiver<Beat>,
    clock: Clock,
) -> (Vec<SimServer>, Acks) {
    let mut client = IngestClient::new(channel);
    let mut acks = Acks::default();
    // Each server, its phase, and when it last sent.
    let mut servers: Vec<(SimServer, Duration, Option<Instant>)> = servers
        .into_iter()
        .map(|(server, phase)| (server, phase, None))
        .collect();
    loop {
        let beat = *control.borrow_and_update();
        let epoch = match beat {
            Beat::Quit => break,
            Beat::Silent => {
                if control.changed().await.is_err() {
                    break;
                }
                continue;
            }
            Beat::Running(epoch) => epoch,
        };
        let mut pipe: Option<Pipe> = None;
        let mut round = 0u32;
        'running: loop {
            for (server, phase, last_sent) in &mut servers {
                let due = epoch + interval * round + *phase;
                tokio::select! {
                    () = tokio::time::sleep_until(due.into()) => {}
                    _ = control.changed() => break 'running,
                }
                let sent = Instant::now();
                // From the third round on: the first (status reports, slow
                // while the fleets start) and the catch-up after it not counted.
                if let Some(last) = last_sent.filter(|_| round >= 2) {
                    let gap = sent.saturating_duration_since(last);
                    acks.max_late = acks.max_late.max(gap.saturating_sub(interval));
                }
                *last_sent = Some(sent);
                let result = send_on(&mut client, &mut pipe, server).await;
                if result.is_err() {
                    tokio::time::sleep(REOPEN_AFTER).await;
                }
                acks.record(&clock, sent, result);
            }
            round += 1;
        }
        // Closed: a silent site has no connection.
        drop(pipe);
        for (_, _, last_sent) in &mut servers {
            *last_sent = None;
        }
    }
    (servers.into_iter().map(|(s, ..)| s).collect(), acks)
}
