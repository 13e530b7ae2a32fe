//! [`Flood`]: recording servers sending heartbeats as fast as the server
//! takes them, recording when each was acknowledged.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use carewatch_cli::simulate::SimServer;
use carewatch_grpc::proto::ingest_client::IngestClient;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use super::Clock;
use super::pipe::{Acks, Pipe, REOPEN_AFTER, send_on};

/// Recording servers sending heartbeats as fast as they are acknowledged:
/// `workers` workers, each with its share of the servers and one stream,
/// one heartbeat in flight, round-robin over its servers.
#[derive(Debug)]
pub struct Flood {
    quit: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<Acks>>,
}

impl Flood {
    /// Starts now; worker `n` uses `channels[n % channels.len()]`.
    pub fn start(
        servers: Vec<SimServer>,
        channels: &[Channel],
        workers: usize,
        clock: Clock,
    ) -> Self {
        let workers = workers.clamp(1, servers.len().max(1));
        let mut groups: Vec<Vec<SimServer>> = (0..workers).map(|_| Vec::new()).collect();
        for (n, server) in servers.into_iter().enumerate() {
            groups[n % workers].push(server);
        }
        let quit = Arc::new(AtomicBool::new(false));
        let tasks = groups
            .into_iter()
            .enumerate()
            .map(|(n, group)| {
                let channel = channels[n % channels.len()].clone();
                tokio::spawn(flood_worker(channel, group, quit.clone(), clock))
            })
            .collect();
        Self { quit, tasks }
    }

    /// Stops the workers; what they recorded, by time.
    pub async fn stop(self) -> Acks {
        self.quit.store(true, Ordering::Release);
        let mut total = Acks::default();
        for task in self.tasks {
            if let Ok(acks) = task.await {
                total.merge(acks);
            }
        }
        total.sort();
        total
    }
}

async fn flood_worker(
    channel: Channel,
    mut servers: Vec<SimServer>,
    quit: Arc<AtomicBool>,
    clock: Clock,
) -> Acks {
    let mut client = IngestClient::new(channel);
    let mut pipe: Option<Pipe> = None;
    let mut acks = Acks::default();
    'outer: loop {
        for server in &mut servers {
            if quit.load(Ordering::Acquire) {
                break 'outer;
            }
            let sent = Instant::now();
            let result = send_on(&mut client, &mut pipe, server).await;
            if result.is_err() {
                tokio::time::sleep(REOPEN_AFTER).await;
            }
            acks.record(&clock, sent, result);
        }
    }
    acks
}
