//! Noise-proof costs of a server under load, beside its heartbeats/s:
//! instructions it executes (valgrind's callgrind counts them, whatever else
//! the machine does), the database statements it sends (sqlx logs each at
//! debug level), and the processor time of the PostgreSQL backends serving
//! it (from /proc: the database runs on this machine).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use carewatch_storage_postgres::PostgresStore;
use sqlx_core::query_scalar::query_scalar;
use tokio::process::Command;

use crate::server::{BoxError, Launch, cpu_time};

/// Runs the server under callgrind with instrumentation off until
/// [`Callgrind::start`], so start-up and provisioning run at near full
/// speed and only the measured window is counted.
#[derive(Debug)]
pub struct Callgrind {
    dir: PathBuf,
}

impl Callgrind {
    /// Profiles written into `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// The launch that runs the server under callgrind.
    pub fn launch(&self) -> Launch {
        Launch {
            wrapper: vec![
                "valgrind".into(),
                "--tool=callgrind".into(),
                "--instr-atstart=no".into(),
                format!("--callgrind-out-file={}/callgrind.out", self.dir.display()),
            ],
            ..Launch::default()
        }
    }

    /// Zeroes the counters and turns instrumentation on in process `pid`.
    pub async fn start(&self, pid: u32) -> Result<(), BoxError> {
        control(pid, &["-z"]).await?;
        control(pid, &["-i", "on"]).await
    }

    /// Dumps the counters of process `pid` and returns the instructions
    /// executed since [`Callgrind::start`]; instrumentation goes off again.
    pub async fn stop(&self, pid: u32) -> Result<u64, BoxError> {
        control(pid, &["-d"]).await?;
        control(pid, &["-i", "off"]).await?;
        // The dump is the newest file beside the profile's name.
        let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if !name.to_string_lossy().starts_with("callgrind.out") {
                continue;
            }
            let modified = entry.metadata()?.modified()?;
            if newest.as_ref().is_none_or(|(t, _)| modified > *t) {
                newest = Some((modified, entry.path()));
            }
        }
        let (_, path) = newest.ok_or("callgrind wrote no dump")?;
        let text = std::fs::read_to_string(&path)?;
        text.lines()
            .find_map(|line| {
                line.strip_prefix("totals:")
                    .or_else(|| line.strip_prefix("summary:"))
            })
            .and_then(|counts| counts.split_whitespace().next())
            .and_then(|ir| ir.parse().ok())
            .ok_or_else(|| format!("no instruction total in {}", path.display()).into())
    }
}

async fn control(pid: u32, args: &[&str]) -> Result<(), BoxError> {
    let status = Command::new("callgrind_control")
        .args(args)
        .arg(pid.to_string())
        .stdout(std::process::Stdio::null())
        .status()
        .await?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("callgrind_control {args:?} {pid} failed: {status}").into())
    }
}

/// Counts the server's database statements: sqlx logs each one at debug
/// level under this target.
pub fn statement_counting() -> Launch {
    Launch {
        log: Some("warn,sqlx::query=debug".into()),
        count_lines_with: Some("sqlx::query".into()),
        ..Launch::default()
    }
}

/// Processor time of each PostgreSQL backend serving the database, except
/// the connections named `except` (the benchmark's own).
pub async fn backend_cpu(
    store: &PostgresStore,
    except: &str,
) -> Result<HashMap<i32, Duration>, BoxError> {
    let pids: Vec<i32> = query_scalar(
        "SELECT pid FROM pg_stat_activity
         WHERE datname = current_database() AND backend_type = 'client backend'
           AND pid <> pg_backend_pid() AND application_name <> $1",
    )
    .bind(except)
    .fetch_all(store.pool())
    .await?;
    Ok(pids
        .into_iter()
        .filter_map(|pid| Some((pid, cpu_time(&pid.to_string())?)))
        .collect())
}

/// Processor time the backends used between two [`backend_cpu`] readings
/// (a backend that started in between counts whole).
pub fn backend_cpu_spent(
    before: &HashMap<i32, Duration>,
    after: &HashMap<i32, Duration>,
) -> Duration {
    after
        .iter()
        .map(|(pid, spent)| spent.saturating_sub(before.get(pid).copied().unwrap_or_default()))
        .sum()
}
