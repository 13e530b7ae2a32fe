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
//!
//! Each simulated server's first message is its status report, sent in its
//! turn like a heartbeat: no server waits for the others' reports, so none
//! falls Late while a fleet starts.
//! - [`CpuSampler`]: the server's and this process's CPU time, four times a
//!   second.
//!
//! Times are milliseconds since a run's origin ([`Clock`]), which also
//! maps them to wall-clock milliseconds (the store's and the receiver's).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use carewatch_cli::simulate::SimServer;
use carewatch_core::seal::MessageKind;
use carewatch_grpc::proto::{self, ingest_client::IngestClient};
use futures::TryStreamExt;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::server::{BoxError, cpu_time};

/// How long a server may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a server may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often [`CpuSampler`] reads CPU times.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// Pause before a worker opens a stream again after an error.
const REOPEN_AFTER: Duration = Duration::from_millis(100);

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

/// What the server logs when a storage write took longer than its stall
/// limit (1 s): it stops receiving until a liveness mark succeeds, and
/// records the stall as its own downtime.
const STALL_LOG: &str = "storage stalled";

/// A `carewatch serve` child process started with extra flags.
#[derive(Debug)]
pub struct Serve {
    child: Child,
    /// When (Unix ms, as read) it logged each storage stall.
    stalls: Arc<Mutex<Vec<i64>>>,
    /// Where it listens: `https://localhost:<port>`.
    pub url: String,
    /// Its self-signed certificate, to trust.
    pub ca_pem: String,
    /// From spawning it until it logged that it listens.
    pub started_in: Duration,
}

impl Serve {
    /// Starts `binary serve --data-dir <data_dir> --listen 127.0.0.1:<free
    /// port> <extra>` (SQLite in the data directory) and returns once it
    /// logs that it listens. Its log (`RUST_LOG=warn`) is copied to stderr
    /// with a `[server]` prefix.
    pub async fn start(binary: &Path, data_dir: &Path, extra: &[String]) -> Result<Self, BoxError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let spawned_at = Instant::now();
        let mut child = Command::new(binary)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        let mut stderr = BufReader::new(child.stderr.take().ok_or("no stderr")?).lines();
        let deadline = tokio::time::sleep(START_TIMEOUT);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                line = stdout.next_line() => if line?.is_none() {
                    return Err("the server closed its output before starting".into());
                },
                line = stderr.next_line() => match line? {
                    Some(line) if line.contains("carewatch listening on") => break,
                    Some(line) if line.contains("ERROR") || line.contains("error:") => {
                        eprintln!("[server] {line}");
                    }
                    Some(_) => {}
                    None => return Err("the server exited before listening".into()),
                },
                () = &mut deadline => {
                    return Err(format!(
                        "the server did not start within {} s",
                        START_TIMEOUT.as_secs()
                    )
                    .into())
                }
            }
        }
        let started_in = spawned_at.elapsed();
        tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
        let stalls = Arc::new(Mutex::new(Vec::new()));
        let logged = stalls.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                if line.contains(STALL_LOG) {
                    logged
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(unix_millis(SystemTime::now()));
                }
                eprintln!("[server] {line}");
            }
        });
        Ok(Self {
            child,
            stalls,
            url: format!("https://localhost:{port}"),
            ca_pem: std::fs::read_to_string(data_dir.join("cert.pem"))?,
            started_in,
        })
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// When (Unix ms) it logged storage stalls so far: writes slower than
    /// its stall limit, after which it stopped receiving until a liveness
    /// mark succeeded and recorded the gap as its own downtime.
    pub fn stalls(&self) -> Vec<i64> {
        self.stalls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// SIGTERM, then waits for a clean exit.
    pub async fn stop(mut self) -> Result<Duration, BoxError> {
        let pid = self.pid().ok_or("the server already exited")?;
        let began = Instant::now();
        let killed = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await?;
        if !killed.success() {
            return Err("kill -TERM failed".into());
        }
        let status = tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await??;
        if !status.success() {
            return Err(format!("the server exited with {status}").into());
        }
        Ok(began.elapsed())
    }
}

/// One long-lived `Ingest.Stream`, one message in flight on it.
struct Pipe {
    tx: mpsc::Sender<proto::StreamMessage>,
    replies: tonic::Streaming<proto::StreamReply>,
}

impl Pipe {
    async fn open(client: &mut IngestClient<Channel>) -> Result<Self, String> {
        let (tx, rx) = mpsc::channel::<proto::StreamMessage>(1);
        let requests = tokio_stream::wrappers::ReceiverStream::new(rx);
        let replies = client
            .stream(requests)
            .await
            .map_err(|status| format!("{:?}", status.code()))?
            .into_inner();
        Ok(Self { tx, replies })
    }

    /// Sends `server`'s next message (its first is a status report, then
    /// heartbeats) and waits for its acknowledgement.
    async fn send(&mut self, server: &mut SimServer) -> Result<(), String> {
        let (kind, message) = server.next_message();
        let kind = match kind {
            MessageKind::Heartbeat => proto::MessageKind::Heartbeat,
            MessageKind::StatusReport => proto::MessageKind::StatusReport,
        };
        let item = proto::StreamMessage {
            kind: kind as i32,
            message: Some(message),
        };
        self.tx
            .send(item)
            .await
            .map_err(|_| "stream closed".to_owned())?;
        match self.replies.try_next().await {
            Ok(Some(proto::StreamReply {
                result: Some(proto::stream_reply::Result::Ack(_)),
                ..
            })) => {
                if kind == proto::MessageKind::StatusReport {
                    server.report_acknowledged();
                }
                Ok(())
            }
            Ok(Some(reply)) => Err(format!("refused: {:?}", reply.result)),
            Ok(None) => Err("stream ended".into()),
            Err(status) => Err(format!("{:?}", status.code())),
        }
    }
}

/// Sends `server`'s next message on `pipe`, opening it first if needed;
/// an error closes the pipe (the next call opens another).
async fn send_on(
    client: &mut IngestClient<Channel>,
    pipe: &mut Option<Pipe>,
    server: &mut SimServer,
) -> Result<(), String> {
    if pipe.is_none() {
        *pipe = Some(Pipe::open(client).await?);
    }
    let Some(open) = pipe.as_mut() else {
        return Err("no stream".into());
    };
    let result = open.send(server).await;
    if result.is_err() {
        *pipe = None;
    }
    result
}

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

/// What one worker of a [`PacedFleet`] or a [`Flood`] recorded.
#[derive(Debug, Default)]
pub struct Acks {
    /// Each acknowledged message (the first status report, then
    /// heartbeats): when it was acknowledged (ms since the origin) and how
    /// long it took (µs).
    pub acks: Vec<(u32, u32)>,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
    /// The longest a server of a paced fleet went between two messages
    /// beyond its interval (0 if it always kept it), from its third message
    /// after a start or resumption on; a silence not counted.
    pub max_late: Duration,
}

impl Acks {
    fn merge(&mut self, other: Acks) {
        self.max_late = self.max_late.max(other.max_late);
        self.acks.extend(other.acks);
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
    }

    fn record(&mut self, clock: &Clock, sent: Instant, result: Result<(), String>) {
        match result {
            Ok(()) => self.acks.push((
                clock.now_ms(),
                u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX),
            )),
            Err(e) => *self.errors.entry(e).or_default() += 1,
        }
    }

    /// Failures of every kind.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Sorts the acknowledgements by time.
    pub fn sort(&mut self) {
        self.acks.sort_unstable();
    }
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

/// CPU time read at one instant.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    /// Milliseconds since the origin.
    pub at_ms: u32,
    /// The server's CPU time so far.
    pub server: Option<Duration>,
    /// This process's CPU time so far.
    pub this: Option<Duration>,
}

/// Reads the server's and this process's CPU time every 250 ms.
#[derive(Debug)]
pub struct CpuSampler {
    quit: Arc<AtomicBool>,
    task: JoinHandle<Vec<CpuSample>>,
}

impl CpuSampler {
    /// Starts sampling process `pid`.
    pub fn start(pid: u32, clock: Clock) -> Self {
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
                    this: cpu_time("self"),
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
