//! [`Serve`]: `carewatch serve` as a child process with extra flags, its
//! storage stalls as logged, and its stop.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::unix_millis;
use crate::server::{BoxError, stop_child};

/// How long a server may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(120);

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
        stop_child(&mut self.child).await
    }
}
