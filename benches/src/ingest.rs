//! Ingest load as `loadgen` drives it: simulated recording servers, split
//! among workers, each worker sending one heartbeat at a time over gRPC +
//! TLS (a unary call each, or one long-lived `Stream` per worker), for the
//! `webload` benchmark's runs with and without live pages.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use carewatch_cli::simulate::{Admin, SimServer, provision_site};
use carewatch_core::ids::{ResellerId, Slc};
use carewatch_grpc::proto::{self, CreateResellerRequest, ingest_client::IngestClient};

use crate::server::BoxError;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::mpsc;
use tonic::transport::Channel;

/// How heartbeats travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One unary `Heartbeat` call per message.
    Unary,
    /// One long-lived `Stream` per worker, one message in flight on it.
    Stream,
}

/// What the workers measured.
#[derive(Debug, Default)]
pub struct Tally {
    /// Latency of every accepted heartbeat, in microseconds.
    pub latencies_us: Vec<u32>,
    /// Failures by code.
    pub errors: BTreeMap<String, u64>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
    }

    /// Failures of every kind.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The fleet and the server every end-to-end load generator takes.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// Installations to provision.
    #[arg(long, default_value_t = 2500)]
    pub installations: usize,
    /// Recording servers per installation.
    #[arg(long, default_value_t = 4)]
    pub servers_per_installation: usize,
    /// Requests in flight at once (each worker owns a share of the servers).
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// The `carewatch` binary; by default the one beside this program.
    #[arg(long)]
    pub server: Option<std::path::PathBuf>,
}

impl FleetArgs {
    /// The `carewatch` binary to run.
    pub fn binary(&self) -> Result<std::path::PathBuf, BoxError> {
        match &self.server {
            Some(path) => Ok(path.clone()),
            None => crate::server::carewatch_beside_this_program(),
        }
    }
}

/// Creates `reseller` and provisions `installations` installations of
/// `servers_per_installation` simulated recording servers each for it
/// through the Admin service (SLCs `<prefix>-0000000`, …), 32 at a time.
pub async fn provision_fleet(
    admin: &Admin,
    reseller: &ResellerId,
    prefix: &str,
    installations: usize,
    servers_per_installation: usize,
) -> Result<Vec<SimServer>, BoxError> {
    admin
        .clone()
        .create_reseller(CreateResellerRequest {
            id: reseller.to_string(),
            name: format!("Benchmark {reseller}"),
        })
        .await?;
    let sites: Vec<Vec<SimServer>> = futures::stream::iter(0..installations)
        .map(|n| {
            let mut admin = admin.clone();
            async move {
                let slc = Slc::new(&format!("{prefix}-{n:07}"))?;
                let site = provision_site(
                    &mut admin,
                    reseller,
                    &slc,
                    ("XProtect Corporate", "2016 R3"),
                    servers_per_installation,
                )
                .await?;
                Ok::<_, BoxError>(site)
            }
        })
        .buffer_unordered(32)
        .try_collect()
        .await?;
    Ok(sites.into_iter().flatten().collect())
}

/// Simulated recording servers split among workers, with the sequence
/// number each last had acknowledged.
#[derive(Debug)]
pub struct Workers {
    groups: Vec<(Vec<SimServer>, Vec<u64>)>,
}

impl Workers {
    /// Sends every server's first message (its status report) with up to
    /// `concurrency` in flight, then splits them among `concurrency` workers.
    pub async fn start(
        servers: Vec<SimServer>,
        channel: &Channel,
        concurrency: usize,
    ) -> Result<Self, tonic::Status> {
        let concurrency = concurrency.max(1);
        let reported: Vec<SimServer> = futures::stream::iter(servers)
            .map(|mut server| {
                let mut client = IngestClient::new(channel.clone());
                async move {
                    let (_, message) = server.next_message();
                    client.status_report(message).await?;
                    server.report_acknowledged();
                    Ok::<_, tonic::Status>(server)
                }
            })
            .buffer_unordered(concurrency)
            .try_collect()
            .await?;
        let workers = concurrency.min(reported.len()).max(1);
        let mut groups: Vec<(Vec<SimServer>, Vec<u64>)> =
            (0..workers).map(|_| (Vec::new(), Vec::new())).collect();
        for (n, server) in reported.into_iter().enumerate() {
            let group = &mut groups[n % workers];
            group.1.push(server.sequence());
            group.0.push(server);
        }
        Ok(Self { groups })
    }

    /// Workers (requests in flight at once).
    pub fn workers(&self) -> usize {
        self.groups.len()
    }

    /// Each worker's servers and the sequence each last had acknowledged.
    pub fn groups_mut(&mut self) -> &mut [(Vec<SimServer>, Vec<u64>)] {
        &mut self.groups
    }

    /// Recording servers.
    pub fn servers(&self) -> usize {
        self.groups.iter().map(|g| g.0.len()).sum()
    }

    /// Runs every worker for `length` over `channels` (worker `n` on
    /// channel `n % channels.len()`); the merged tally and the wall time.
    pub async fn run(
        &mut self,
        channels: &[Channel],
        mode: Mode,
        length: Duration,
    ) -> (Tally, Duration) {
        let began = Instant::now();
        let until = began + length;
        let tallies = futures::future::join_all(self.groups.iter_mut().enumerate().map(
            |(n, (servers, acked))| {
                let channel = channels[n % channels.len()].clone();
                drive(channel, mode, servers, acked, until)
            },
        ))
        .await;
        let elapsed = began.elapsed();
        let mut total = Tally::default();
        for t in tallies {
            total.merge(t);
        }
        (total, elapsed)
    }
}

/// Sends heartbeats from `servers`, one at a time, until `until`.
async fn drive(
    channel: Channel,
    mode: Mode,
    servers: &mut [SimServer],
    acked: &mut [u64],
    until: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut client = IngestClient::new(channel);
    let (tx, mut replies) = match mode {
        Mode::Unary => (None, None),
        Mode::Stream => {
            let (tx, rx) = mpsc::channel::<proto::StreamMessage>(1);
            let requests = tokio_stream::wrappers::ReceiverStream::new(rx);
            match client.stream(requests).await {
                Ok(replies) => (Some(tx), Some(replies.into_inner())),
                Err(status) => {
                    tally.errors.insert(format!("{:?}", status.code()), 1);
                    return tally;
                }
            }
        }
    };
    'outer: loop {
        for (server, acked) in servers.iter_mut().zip(acked.iter_mut()) {
            if Instant::now() >= until {
                break 'outer;
            }
            let (_, message) = server.next_message();
            let sequence = message.sequence;
            let sent = Instant::now();
            let result: Result<(), String> = match (&tx, &mut replies) {
                (Some(tx), Some(replies)) => heartbeat_on_stream(tx, replies, message).await,
                _ => client
                    .heartbeat(message)
                    .await
                    .map(drop)
                    .map_err(|status| format!("{:?}", status.code())),
            };
            let took = sent.elapsed();
            match result {
                Ok(()) => {
                    *acked = sequence;
                    tally
                        .latencies_us
                        .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
                }
                Err(code) => *tally.errors.entry(code).or_default() += 1,
            }
        }
    }
    tally
}

/// Sends `message` as a heartbeat on an open `Stream` and waits for its
/// reply: `Ok` once acknowledged, else what went wrong (the stream closed
/// or ended, a refusal, or the status).
pub async fn heartbeat_on_stream(
    tx: &mpsc::Sender<proto::StreamMessage>,
    replies: &mut tonic::Streaming<proto::StreamReply>,
    message: proto::SealedMessage,
) -> Result<(), String> {
    let item = proto::StreamMessage {
        kind: proto::MessageKind::Heartbeat as i32,
        message: Some(message),
    };
    if tx.send(item).await.is_err() {
        return Err("the stream closed".into());
    }
    match replies.try_next().await {
        Ok(Some(proto::StreamReply {
            result: Some(proto::stream_reply::Result::Ack(_)),
            ..
        })) => Ok(()),
        Ok(Some(reply)) => Err(format!("refused: {:?}", reply.result)),
        Ok(None) => Err("the stream ended".into()),
        Err(status) => Err(format!("{:?}: {}", status.code(), status.message())),
    }
}
