//! A real `carewatch serve` process, for tests that stop, kill and restart
//! it: a fixed loopback port (clients reconnect to the same address), the
//! same data directory across restarts, SQLite or a PostgreSQL schema, its
//! output kept (and printed if the test panics), and the instant of every
//! event (spawned, listening, signalled, exited) on the machine clock, so
//! tests can compare them with the server's own timestamps.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use carewatch_grpc::client::{Bearer, connect};
use carewatch_grpc::proto::{
    admin_client::AdminClient, dashboard_client::DashboardClient, ingest_client::IngestClient,
};
use tonic::transport::Channel;

use crate::{Admin, Dashboard};

/// How long a start may take before the test gives up.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The serve line that says the listener is open.
const LISTENING: &str = "carewatch listening on ";
/// The serve line that carries the operator token (first start only).
const TOKEN: &str = "operator token (shown once, keep it safe): ";

/// Where the server keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// `<data dir>/carewatch.db`.
    Sqlite,
    /// A PostgreSQL database and a schema of its own.
    Postgres {
        /// `postgres://…`.
        url: String,
        /// The schema (created by the server if missing).
        schema: String,
    },
}

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The `carewatch` program (`env!("CARGO_BIN_EXE_carewatch-under-test")`).
    pub binary: PathBuf,
    /// Its data directory (master key, certificate, SQLite database).
    pub data_dir: PathBuf,
    /// The loopback port, the same for every start.
    pub port: u16,
    /// SQLite or PostgreSQL.
    pub storage: Storage,
    /// More `serve` arguments, e.g. `--heartbeat-interval 1s`.
    pub args: Vec<String>,
    /// Its open-file limit (soft and hard), if it must be lower than ours.
    pub open_files: Option<u32>,
}

impl ServeConfig {
    /// SQLite in `data_dir` on a free loopback port.
    pub fn new(binary: impl Into<PathBuf>, data_dir: &Path) -> Self {
        Self {
            binary: binary.into(),
            data_dir: data_dir.to_owned(),
            port: free_port(),
            storage: Storage::Sqlite,
            args: Vec::new(),
            open_files: None,
        }
    }

    /// With this open-file limit (set by `sh`, which then execs the server).
    pub fn open_files(mut self, limit: u32) -> Self {
        self.open_files = Some(limit);
        self
    }

    /// With these extra arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// With this storage.
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = storage;
        self
    }
}

/// The program under test: `$CAREWATCH_UNDER_TEST` if set (a release
/// build, or an older one to watch a regression test fail there), else
/// `built`, the one this package builds (pass
/// `env!("CARGO_BIN_EXE_carewatch-under-test")`).
pub fn binary(built: &str) -> PathBuf {
    std::env::var_os("CAREWATCH_UNDER_TEST")
        .filter(|path| !path.is_empty())
        .map_or_else(|| PathBuf::from(built), PathBuf::from)
}

/// A port nobody listens on right now (the kernel's choice).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Milliseconds since the Unix epoch, the unit of the server's timestamps.
pub fn millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// A signal the harness sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A clean stop.
    Term,
    /// A crash.
    Kill,
}

/// One run of the process, from spawn to exit.
#[derive(Debug, Clone)]
pub struct Life {
    /// Process id.
    pub pid: u32,
    /// Just before the process was spawned.
    pub spawned: SystemTime,
    /// When its "listening" line was read.
    pub listening: Option<SystemTime>,
    /// The signal that ended it and when it was sent (just before `kill` ran).
    pub signalled: Option<(Signal, SystemTime)>,
    /// When its exit was seen (polled every 5 ms).
    pub exited: Option<SystemTime>,
    /// How it exited.
    pub status: Option<ExitStatus>,
}

/// A line the process wrote.
#[derive(Debug, Clone)]
struct Line {
    at: SystemTime,
    life: usize,
    stderr: bool,
    text: String,
}

#[derive(Debug, Default)]
struct Output {
    lines: Vec<Line>,
    /// Per life, when its listening line came.
    listening: Vec<Option<SystemTime>>,
    token: Option<String>,
}

/// A running (or stopped) `carewatch serve`.
#[derive(Debug)]
pub struct ServerProcess {
    config: ServeConfig,
    child: Option<Child>,
    output: Arc<Mutex<Output>>,
    lives: Vec<Life>,
    operator_token: String,
    cert_pem: String,
}

/// Time since `earlier`, zero if it is in the future.
pub fn since(earlier: SystemTime) -> Duration {
    SystemTime::now()
        .duration_since(earlier)
        .unwrap_or(Duration::ZERO)
}

impl ServerProcess {
    /// Starts the server on a fresh data directory and waits until it
    /// listens; the first start prints the operator token, kept here.
    pub async fn start(config: ServeConfig) -> Self {
        let mut server = Self {
            config,
            child: None,
            output: Arc::default(),
            lives: Vec::new(),
            operator_token: String::new(),
            cert_pem: String::new(),
        };
        server.spawn().await;
        // stdout has its own reader: the token line may be read just after.
        for _ in 0..200 {
            if server.output().token.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let token = server.output().token.clone();
        server.operator_token =
            token.unwrap_or_else(|| server.fail("no operator token printed on first start"));
        let cert = server.config.data_dir.join("cert.pem");
        server.cert_pem = std::fs::read_to_string(&cert)
            .unwrap_or_else(|e| server.fail(&format!("{}: {e}", cert.display())));
        server
    }

    /// Starts it again on the same data directory and port (after a stop).
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "restart while it still runs");
        self.spawn().await;
    }

    async fn spawn(&mut self) {
        let life = self.lives.len();
        let mut command = match self.config.open_files {
            Some(limit) => {
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(&self.config.binary);
                sh
            }
            None => Command::new(&self.config.binary),
        };
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.config.data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.config.port));
        if let Storage::Postgres { url, schema } = &self.config.storage {
            command
                .args(["--database-url", url])
                .args(["--database-schema", schema]);
        }
        command
            .args(&self.config.args)
            // The environment must not pick another store or address.
            .env_remove("CAREWATCH_DATA_DIR")
            .env_remove("CAREWATCH_LISTEN")
            .env_remove("CAREWATCH_DATABASE_URL")
            .env_remove("CAREWATCH_DATABASE_SCHEMA")
            .env_remove("CAREWATCH_NODE_ID")
            // Deliveries are logged at debug: tests look for them.
            .env("RUST_LOG", "info,carewatch_notify=debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.output().listening.push(None);
        let spawned = SystemTime::now();
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", self.config.binary.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        self.read_lines(stdout, life, false);
        self.read_lines(stderr, life, true);
        self.lives.push(Life {
            pid: child.id(),
            spawned,
            listening: None,
            signalled: None,
            exited: None,
            status: None,
        });
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            let listening = self.output().listening[life];
            if let Some(at) = listening {
                self.lives[life].listening = Some(at);
                return;
            }
            if let Some(status) = self.poll_exit() {
                self.fail(&format!("exited before listening: {status}"));
            }
            if tokio::time::Instant::now() > deadline {
                self.fail(&format!("not listening after {START_TIMEOUT:?}"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn read_lines(&self, pipe: impl Read + Send + 'static, life: usize, stderr: bool) {
        let output = self.output.clone();
        std::thread::spawn(move || {
            for text in BufReader::new(pipe).lines() {
                let Ok(text) = text else { break };
                let at = SystemTime::now();
                let mut out = output.lock().unwrap_or_else(PoisonError::into_inner);
                if stderr && text.contains(LISTENING) {
                    out.listening[life].get_or_insert(at);
                }
                if let Some(token) = text.split_once(TOKEN).map(|(_, t)| t.trim()) {
                    out.token = Some(token.to_owned());
                }
                out.lines.push(Line {
                    at,
                    life,
                    stderr,
                    text,
                });
            }
        });
    }

    fn output(&self) -> MutexGuard<'_, Output> {
        self.output.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the exit if the process has ended.
    fn poll_exit(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let status = child.try_wait().ok()??;
        let life = self.lives.last_mut().expect("a life per child");
        life.exited = Some(SystemTime::now());
        life.status = Some(status);
        self.child = None;
        Some(status)
    }

    /// Sends SIGTERM (with the `kill` program: no `unsafe` here) and waits
    /// up to `timeout` for the exit. Returns the time from signal to exit;
    /// fails the test if it did not exit in time (then kills it).
    pub async fn terminate(&mut self, timeout: Duration) -> Duration {
        match self.terminate_within(timeout).await {
            Ok(took) => took,
            Err(_) => self.fail(&format!("still running {timeout:?} after SIGTERM")),
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit: `Ok` with the
    /// time from signal to exit, or `Err` with the time to the SIGKILL that
    /// ended it when it did not exit in time.
    pub async fn terminate_within(&mut self, timeout: Duration) -> Result<Duration, Duration> {
        let pid = self.pid();
        let sent = SystemTime::now();
        self.lives.last_mut().expect("running").signalled = Some((Signal::Term, sent));
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("runs kill");
        assert!(status.success(), "kill -TERM {pid}: {status}");
        let exited = self.wait_exit(timeout).await.is_some();
        if !exited {
            self.kill_now();
        }
        let took = self.last_life().exited.map_or(Duration::ZERO, |e| {
            e.duration_since(sent).unwrap_or(Duration::ZERO)
        });
        if exited { Ok(took) } else { Err(took) }
    }

    /// Sends SIGKILL and waits for the exit.
    pub async fn kill(&mut self) {
        self.lives.last_mut().expect("running").signalled = Some((Signal::Kill, SystemTime::now()));
        if let Some(child) = self.child.as_mut() {
            child.kill().expect("SIGKILL");
        }
        if self.wait_exit(Duration::from_secs(10)).await.is_none() {
            self.fail("still running 10 s after SIGKILL");
        }
    }

    fn kill_now(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let status = child.wait().ok();
            if let Some(life) = self.lives.last_mut() {
                life.exited = Some(SystemTime::now());
                life.status = status;
            }
        }
    }

    async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.poll_exit() {
                return Some(status);
            }
            if tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Whether the process runs.
    pub fn is_running(&mut self) -> bool {
        self.poll_exit();
        self.child.is_some()
    }

    /// The current process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }

    /// Every run so far, oldest first.
    pub fn lives(&self) -> &[Life] {
        &self.lives
    }

    /// The latest run.
    pub fn last_life(&self) -> &Life {
        self.lives.last().expect("started")
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ServeConfig {
        &self.config
    }

    /// How it starts next, to change between a stop and a restart (e.g.
    /// other `serve` arguments).
    pub fn config_mut(&mut self) -> &mut ServeConfig {
        &mut self.config
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.config.port)
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.config.port))
    }

    /// The operator token printed on first start.
    pub fn operator_token(&self) -> &str {
        &self.operator_token
    }

    /// The self-signed certificate clients trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A TLS channel (it reconnects by itself after a restart).
    pub async fn channel(&self) -> Channel {
        connect(&self.url(), Some(&self.cert_pem))
            .await
            .unwrap_or_else(|e| self.fail(&format!("connecting: {e:?}")))
    }

    /// An Admin client with the operator token.
    pub async fn admin(&self) -> Admin {
        AdminClient::with_interceptor(
            self.channel().await,
            Bearer::new(&self.operator_token).expect("token"),
        )
    }

    /// Runs the `carewatch` client: `carewatch <command> --server <this>
    /// --ca-cert <its cert.pem> <args>` with `token`, as a user types it.
    pub fn client(&self, command: &str, args: &[&str], token: &str) -> std::process::Output {
        std::process::Command::new(&self.config().binary)
            .args([command, "--server", &self.url(), "--ca-cert"])
            .arg(self.config().data_dir.join("cert.pem"))
            .args(args)
            .env("CAREWATCH_TOKEN", token)
            .env_remove("CAREWATCH_SERVER")
            .env_remove("CAREWATCH_CA_CERT")
            .output()
            .expect("the carewatch client runs")
    }

    /// Creates reseller `id` (named `id` in capitals) and returns its token.
    pub async fn reseller_token(&self, id: &str) -> String {
        self.admin()
            .await
            .create_reseller(carewatch_grpc::proto::CreateResellerRequest {
                id: id.into(),
                name: id.to_uppercase(),
            })
            .await
            .unwrap_or_else(|e| self.fail(&format!("creating reseller {id}: {e}")))
            .into_inner()
            .token
    }

    /// A Dashboard client with `token`.
    pub async fn dashboard(&self, token: &str) -> Dashboard {
        DashboardClient::with_interceptor(self.channel().await, Bearer::new(token).expect("token"))
    }

    /// An Ingest client.
    pub async fn ingest(&self) -> IngestClient<Channel> {
        IngestClient::new(self.channel().await)
    }

    /// Whether any stderr line so far contains `text`.
    pub fn stderr_contains(&self, text: &str) -> bool {
        self.output()
            .lines
            .iter()
            .any(|l| l.stderr && l.text.contains(text))
    }

    /// Everything it wrote, each line with its local time, run and stream.
    pub fn log(&self) -> String {
        let out = self.output();
        let mut text = String::new();
        for l in &out.lines {
            let stream = if l.stderr { "err" } else { "out" };
            // Tokens stay out of test logs.
            let line = if l.text.contains(TOKEN) {
                format!("{TOKEN}<redacted>")
            } else {
                l.text.clone()
            };
            text.push_str(&format!(
                "{} [run {} {stream}] {line}\n",
                clock(l.at),
                l.life + 1
            ));
        }
        text
    }

    /// The harness events as text: one line per spawn, listen, signal, exit.
    pub fn events(&self) -> Vec<(SystemTime, String)> {
        let mut events = Vec::new();
        for (n, life) in self.lives.iter().enumerate() {
            let run = n + 1;
            events.push((life.spawned, format!("run {run}: spawned pid {}", life.pid)));
            if let Some(at) = life.listening {
                events.push((at, format!("run {run}: listening")));
            }
            if let Some((signal, at)) = life.signalled {
                events.push((at, format!("run {run}: {signal:?} sent")));
            }
            if let Some(at) = life.exited {
                let status = life.status.map(|s| s.to_string()).unwrap_or_default();
                events.push((at, format!("run {run}: exited ({status})")));
            }
        }
        events
    }

    /// Fails the test with the server's output.
    pub fn fail(&self, why: &str) -> ! {
        panic!("carewatch serve: {why}\n--- its output ---\n{}", self.log())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill_now();
        if std::thread::panicking() {
            eprintln!("--- carewatch serve output ---\n{}", self.log());
        }
    }
}

/// `HH:MM:SS.mmm` (UTC) of a local instant, for timelines.
pub fn clock(t: SystemTime) -> String {
    let ms = millis(t).rem_euclid(86_400_000);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// The first bytes an HTTP/2 client sends for a gRPC call that never ends:
/// the connection preface, an empty SETTINGS frame and a HEADERS frame
/// (stream 1, no END_STREAM) for `path`, header fields as HPACK literals.
/// A test that sends them and never reads holds a call in flight forever.
pub fn http2_call_prefix(authority: &str, path: &str) -> Vec<u8> {
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend_from_slice(&frame_header(0, 0x4, 0, 0));
    let mut block = Vec::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "https"),
        (":path", path),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] {
        // Literal header field without indexing, new name, no Huffman.
        block.push(0);
        hpack_string(&mut block, name);
        hpack_string(&mut block, value);
    }
    // HEADERS, END_HEADERS, stream 1.
    bytes.extend_from_slice(&frame_header(block.len(), 0x1, 0x4, 1));
    bytes.extend_from_slice(&block);
    bytes
}

fn frame_header(len: usize, kind: u8, flags: u8, stream: u32) -> [u8; 9] {
    let len = u32::try_from(len).expect("small frame").to_be_bytes();
    let stream = stream.to_be_bytes();
    [
        len[1], len[2], len[3], kind, flags, stream[0], stream[1], stream[2], stream[3],
    ]
}

fn hpack_string(block: &mut Vec<u8>, s: &str) {
    assert!(s.len() < 127, "one-byte HPACK length");
    block.push(u8::try_from(s.len()).expect("short"));
    block.extend_from_slice(s.as_bytes());
}
