//! A real `carewatch serve` as a child process, for the end-to-end binaries
//! (`loadgen`, `scale`): start it on a data directory, wait until it listens
//! (and, if asked, until its gRPC health service answers SERVING), read its
//! memory from /proc, and stop it with SIGTERM.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use carewatch_grpc::client::connect;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Any error, boxed: what the benchmark binaries return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long a server may take to start before the binaries give up.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a server may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The `carewatch` binary beside the running program (both are built into
/// the same `target/release`).
pub fn carewatch_beside_this_program() -> Result<PathBuf, BoxError> {
    Ok(std::env::current_exe()?
        .parent()
        .ok_or("no directory")?
        .join("carewatch"))
}

/// Resident and peak resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the most it has been resident.
    pub peak_kib: u64,
}

/// Processor time a process has used so far, user and system together,
/// from `/proc/<pid>/stat` (Linux; in the kernel's fixed 100 ticks per second).
pub fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it do not.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // utime and stime are the 14th and 15th fields, the 12th and 13th after the name.
    let user: u64 = fields.nth(11)?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((user + system) * 10))
}

/// Processor time used so far by the threads of process `pid` that run at
/// a lower priority than its main thread (a higher nice value: `serve`'s
/// notification thread and its blocking threads, `--notify-nice`), from
/// `/proc/<pid>/task/*/stat` (Linux). A thread that has ended takes its
/// time with it: tokio's blocking threads end after 10 s idle, so a window
/// in which one ends reads short.
pub fn background_cpu_time(pid: &str) -> Option<Duration> {
    let main_nice = thread_stat(&format!("/proc/{pid}/task/{pid}/stat"))?.nice;
    let mut ticks = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        // A thread that ended between the listing and the read is skipped.
        let Some(stat) = task
            .ok()
            .and_then(|t| thread_stat(&t.path().join("stat").to_string_lossy()))
        else {
            continue;
        };
        if stat.nice > main_nice {
            ticks += stat.ticks;
        }
    }
    Some(Duration::from_millis(ticks * 10))
}

/// One thread's CPU time so far, from `/proc/<pid>/task/<tid>/stat`.
pub fn thread_cpu_time(pid: &str, tid: u32) -> Option<Duration> {
    let stat = thread_stat(&format!("/proc/{pid}/task/{tid}/stat"))?;
    Some(Duration::from_millis(stat.ticks * 10))
}

/// A thread's CPU ticks (user and system) and nice value.
struct ThreadStat {
    ticks: u64,
    nice: i64,
}

fn thread_stat(path: &str) -> Option<ThreadStat> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name may hold spaces; the fields after it do not.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime, stime and nice are the 14th, 15th and 19th fields: the 12th,
    // 13th and 17th after the name.
    let field = |n: usize| fields.get(n)?.parse::<i64>().ok();
    Some(ThreadStat {
        ticks: u64::try_from(field(11)? + field(12)?).ok()?,
        nice: field(16)?,
    })
}

/// How a server is launched beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// A program and its arguments to run `carewatch` under (valgrind).
    pub wrapper: Vec<String>,
    /// The server's `RUST_LOG` (default `warn`).
    pub log: Option<String>,
    /// More arguments for `serve`.
    pub args: Vec<String>,
    /// Count the log lines holding this text (not echoed) instead of
    /// echoing them: see [`ServerProcess::counted_lines`].
    pub count_lines_with: Option<String>,
}

/// A `carewatch serve` child process.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    spawned_at: Instant,
    /// Where it listens: `https://localhost:<port>`.
    pub url: String,
    /// Its (self-signed) certificate, to trust.
    pub ca_pem: String,
    /// The operator token it printed; only a new data directory gets one.
    pub operator_token: Option<String>,
    /// From spawning it until it logged that it listens.
    pub started_in: Duration,
    counted: Arc<AtomicU64>,
}

impl ServerProcess {
    /// Starts `binary serve` on `data_dir` (SQLite there, or PostgreSQL at
    /// `postgres = (url, schema)`) on a free loopback port, and returns once
    /// it logs that it listens and, if `wait_for_operator_token`, has printed
    /// the operator token (which it does on a new database only).
    pub async fn start(
        binary: &Path,
        data_dir: &Path,
        postgres: Option<(&str, &str)>,
        wait_for_operator_token: bool,
    ) -> Result<Self, BoxError> {
        Self::start_with(
            binary,
            data_dir,
            postgres,
            wait_for_operator_token,
            &Launch::default(),
        )
        .await
    }

    /// [`ServerProcess::start`], launched as `launch` says.
    pub async fn start_with(
        binary: &Path,
        data_dir: &Path,
        postgres: Option<(&str, &str)>,
        wait_for_operator_token: bool,
        launch: &Launch,
    ) -> Result<Self, BoxError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut command = match launch.wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("RUST_LOG", launch.log.as_deref().unwrap_or("warn"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command.args(&launch.args);
        if let Some((url, schema)) = postgres {
            command
                .arg("--database-url")
                .arg(url)
                .arg("--database-schema")
                .arg(schema);
        }
        let spawned_at = Instant::now();
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        let mut stderr = BufReader::new(child.stderr.take().ok_or("no stderr")?).lines();
        let mut operator_token = None;
        let mut listening = false;
        let deadline = tokio::time::sleep(START_TIMEOUT);
        tokio::pin!(deadline);
        while !(listening && (operator_token.is_some() || !wait_for_operator_token)) {
            tokio::select! {
                line = stdout.next_line() => match line? {
                    Some(line) => if let Some((_, token)) = line.split_once("keep it safe): ") {
                        operator_token = Some(token.trim().to_owned());
                    },
                    None => return Err("the server closed its output before starting".into()),
                },
                line = stderr.next_line() => match line? {
                    Some(line) => listening |= line.contains("carewatch listening on"),
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
        // Keep draining its output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
        let counted = Arc::new(AtomicU64::new(0));
        let (count, pattern) = (counted.clone(), launch.count_lines_with.clone());
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                match &pattern {
                    Some(p) if line.contains(p.as_str()) => {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => eprintln!("[server] {line}"),
                }
            }
        });
        Ok(Self {
            child,
            spawned_at,
            url: format!("https://localhost:{port}"),
            ca_pem: std::fs::read_to_string(data_dir.join("cert.pem"))?,
            operator_token,
            started_in,
            counted,
        })
    }

    /// Polls the standard gRPC health service (over TLS) until it reports
    /// `service` SERVING; returns the time from spawning the server until then.
    pub async fn wait_serving(&self, service: &str) -> Result<Duration, BoxError> {
        let deadline = self.spawned_at + START_TIMEOUT;
        let mut last_error = String::from("never answered");
        while Instant::now() < deadline {
            match connect(&self.url, Some(&self.ca_pem)).await {
                Ok(channel) => {
                    let request = HealthCheckRequest {
                        service: service.to_owned(),
                    };
                    match HealthClient::new(channel).check(request).await {
                        Ok(reply) if reply.get_ref().status() == ServingStatus::Serving => {
                            return Ok(self.spawned_at.elapsed());
                        }
                        Ok(reply) => last_error = format!("{:?}", reply.get_ref().status()),
                        Err(status) => last_error = format!("{:?}", status.code()),
                    }
                }
                Err(e) => last_error = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Err(format!(
            "{service:?} not SERVING within {} s: {last_error}",
            START_TIMEOUT.as_secs()
        )
        .into())
    }

    /// How many log lines held [`Launch::count_lines_with`] so far.
    pub fn counted_lines(&self) -> u64 {
        self.counted.load(Ordering::Relaxed)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Processor time it has used so far (Linux).
    pub fn cpu_time(&self) -> Option<Duration> {
        cpu_time(&self.pid()?.to_string())
    }

    /// Resident and peak memory, from /proc (Linux).
    pub fn memory(&self) -> Option<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let kib = |field: &str| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        };
        Some(Memory {
            rss_kib: kib("VmRSS:")?,
            peak_kib: kib("VmHWM:")?,
        })
    }

    /// SIGKILL: gone at once, nothing finished or flushed.
    pub async fn kill(&mut self) -> Result<(), BoxError> {
        self.child.kill().await?;
        Ok(())
    }

    /// SIGTERM, then waits for a clean exit; returns how long it took.
    pub async fn stop(mut self) -> Result<Duration, BoxError> {
        stop_child(&mut self.child).await
    }
}

/// SIGTERM to a `carewatch serve` child, then waits for its clean exit;
/// returns how long it took.
pub(crate) async fn stop_child(child: &mut Child) -> Result<Duration, BoxError> {
    let pid = child.id().ok_or("the server already exited")?;
    let began = Instant::now();
    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .await?;
    if !killed.success() {
        return Err("kill -TERM failed".into());
    }
    let status = tokio::time::timeout(STOP_TIMEOUT, child.wait()).await??;
    if !status.success() {
        return Err(format!("the server exited with {status}").into());
    }
    Ok(began.elapsed())
}
