//! The end-to-end load generator.
//!
//! Starts a real `carewatch serve` (SQLite in a temporary directory, or
//! PostgreSQL in a schema of its own), provisions a fleet through the Admin
//! service, then drives heartbeats over gRPC + TLS on loopback from many
//! concurrent simulated recording servers. It reports accepted heartbeats per
//! second, latency percentiles and errors, stops the server gracefully and
//! checks that every server's last acknowledged heartbeat is in storage.
//!
//! ```sh
//! cargo build --release -p carewatch-cli -p carewatch-benches
//! target/release/loadgen                       # SQLite
//! target/release/loadgen --postgres            # PostgreSQL (CAREWATCH_TEST_DATABASE_URL)
//! target/release/loadgen --postgres --count-statements       # round trips per heartbeat
//! target/release/loadgen --callgrind --installations 200 --seconds 20   # instructions
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use carewatch_benches::costs::{Callgrind, backend_cpu, backend_cpu_spent, statement_counting};
use carewatch_benches::ingest::{self, FleetArgs, Workers, provision_fleet};
use carewatch_benches::percentile;
use carewatch_benches::server::{BoxError, Launch, ServerProcess, cpu_time};
use carewatch_benches::{BenchSchema, database_url};
use carewatch_cli::simulate::SimServer;
use carewatch_core::ids::{ResellerId, Slc};
use carewatch_core::store::Store;
use carewatch_grpc::client::{Bearer, connect};
use carewatch_grpc::proto::admin_client::AdminClient;
use carewatch_storage_sqlite::SqliteStore;
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    /// One unary `Heartbeat` call per message.
    Unary,
    /// One long-lived `Stream` per worker, one message in flight on it.
    Stream,
}

#[derive(Debug, Parser)]
#[command(about = "Drives a real `carewatch serve` with heartbeats and measures it")]
struct Args {
    #[command(flatten)]
    fleet: FleetArgs,
    /// HTTP/2 connections the workers share.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// How long to measure, in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Load before measuring, in seconds (not counted).
    #[arg(long, default_value_t = 3)]
    warmup_seconds: u64,
    /// Unary calls or long-lived streams.
    #[arg(long, value_enum, default_value_t = Mode::Unary)]
    mode: Mode,
    /// Use PostgreSQL (CAREWATCH_TEST_DATABASE_URL) instead of SQLite.
    #[arg(long)]
    postgres: bool,
    /// Count the server's instructions per heartbeat in the measured window
    /// (valgrind's callgrind: about 50 times slower, so use a small fleet;
    /// the rate and latencies are then not the server's).
    #[arg(long)]
    callgrind: bool,
    /// Keep callgrind's profile in this directory (for callgrind_annotate).
    #[arg(long, requires = "callgrind")]
    callgrind_out: Option<PathBuf>,
    /// Count the database statements the server sends per heartbeat
    /// (PostgreSQL; each is a round trip; sqlx's debug log, which slows it).
    #[arg(long)]
    count_statements: bool,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let binary = args.fleet.binary()?;
    let data_dir = tempfile::tempdir()?;
    let schema = if args.postgres {
        Some(BenchSchema::create(&database_url()).await?)
    } else {
        None
    };
    let url = database_url();
    let postgres = schema.as_ref().map(|s| (url.as_str(), s.name()));
    let callgrind = args
        .callgrind
        .then(|| Callgrind::new(args.callgrind_out.as_deref().unwrap_or(data_dir.path())));
    let mut launch = if args.count_statements {
        statement_counting()
    } else {
        Launch::default()
    };
    if let Some(callgrind) = &callgrind {
        launch.wrapper = callgrind.launch().wrapper;
    }
    let server =
        ServerProcess::start_with(&binary, data_dir.path(), postgres, true, &launch).await?;
    let backend = if args.postgres {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "carewatch serve ({backend}) listening after {:.0} ms",
        server.started_in.as_secs_f64() * 1000.0
    );

    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        channels.push(connect(&server.url, Some(&server.ca_pem)).await?);
    }
    let operator_token = server
        .operator_token
        .as_deref()
        .ok_or("no operator token")?;
    let bearer = Bearer::new(operator_token).ok_or("unusable operator token")?;
    let admin = AdminClient::with_interceptor(channels[0].clone(), bearer);
    let reseller = ResellerId::new("loadgen")?;
    let provisioning = Instant::now();
    let servers = provision_fleet(
        &admin,
        &reseller,
        "LG",
        args.fleet.installations,
        args.fleet.servers_per_installation,
    )
    .await?;
    println!(
        "provisioned {} installations, {} recording servers in {:.1} s",
        args.fleet.installations,
        servers.len(),
        provisioning.elapsed().as_secs_f64()
    );
    // Every server's first message is its status report.
    let mut workers = Workers::start(servers, &channels[0], args.fleet.concurrency).await?;
    let mode = match args.mode {
        Mode::Unary => ingest::Mode::Unary,
        Mode::Stream => ingest::Mode::Stream,
    };

    workers
        .run(&channels, mode, Duration::from_secs(args.warmup_seconds))
        .await;
    let pid = server.pid().ok_or("the server exited")?;
    if let Some(callgrind) = &callgrind {
        callgrind.start(pid).await?;
    }
    let backends_before = match &schema {
        Some(s) => Some(backend_cpu(&s.store, s.name()).await?),
        None => None,
    };
    let statements_before = server.counted_lines();
    let cpu_before = (server.cpu_time(), cpu_time("self"));
    let (mut tally, elapsed) = workers
        .run(&channels, mode, Duration::from_secs(args.seconds))
        .await;
    let cpu_after = (server.cpu_time(), cpu_time("self"));
    let statements = server.counted_lines() - statements_before;
    let backends = match (&schema, &backends_before) {
        (Some(s), Some(before)) => Some(backend_cpu_spent(
            before,
            &backend_cpu(&s.store, s.name()).await?,
        )),
        _ => None,
    };
    let instructions = match &callgrind {
        Some(callgrind) => Some(callgrind.stop(pid).await?),
        None => None,
    };
    let memory = server.memory();
    tally.latencies_us.sort_unstable();
    let accepted = tally.latencies_us.len();
    let errors = tally.error_count();
    println!(
        "{:?} mode, {} in flight over {} connections, {:.1} s measured:",
        args.mode,
        workers.workers(),
        channels.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "  accepted {accepted} heartbeats = {:.0}/s, errors {errors} {:?}",
        accepted as f64 / elapsed.as_secs_f64(),
        tally.errors
    );
    let l = &tally.latencies_us;
    println!(
        "  latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        percentile(l, 50.0),
        percentile(l, 90.0),
        percentile(l, 99.0),
        percentile(l, 99.9),
        percentile(l, 100.0)
    );
    if let ((Some(s0), Some(g0)), (Some(s1), Some(g1))) = (cpu_before, cpu_after) {
        let per_heartbeat = |spent: Duration| spent.as_secs_f64() * 1e6 / accepted.max(1) as f64;
        println!(
            "  processor time per heartbeat: server {:.1} µs, load generator {:.1} µs",
            per_heartbeat(s1 - s0),
            per_heartbeat(g1 - g0)
        );
    }
    let per = |n: f64| n / accepted.max(1) as f64;
    if let Some(spent) = backends {
        println!(
            "  PostgreSQL backends' processor time per heartbeat: {:.1} µs",
            per(spent.as_secs_f64() * 1e6)
        );
    }
    if args.count_statements {
        println!(
            "  database statements (round trips) per heartbeat: {:.3} ({statements} in all)",
            per(statements as f64)
        );
    }
    if let Some(instructions) = instructions {
        println!(
            "  server instructions per heartbeat: {:.0} ({instructions} in all, callgrind)",
            per(instructions as f64)
        );
    }
    if let Some(memory) = memory {
        println!(
            "  server memory: resident {} MiB, peak {} MiB",
            memory.rss_kib / 1024,
            memory.peak_kib / 1024
        );
    }
    drop(channels);
    server.stop().await?;

    // Every server's last acknowledged heartbeat must be in storage.
    let store: Arc<dyn Store> = match &schema {
        Some(schema) => Arc::new(schema.store.clone()),
        None => Arc::new(SqliteStore::open(data_dir.path().join("carewatch.db")).await?),
    };
    let mut expected: BTreeMap<&Slc, Vec<(&SimServer, u64)>> = BTreeMap::new();
    for (servers, acked) in workers.groups_mut().iter() {
        for (server, &sequence) in servers.iter().zip(acked) {
            expected
                .entry(&server.slc)
                .or_default()
                .push((server, sequence));
        }
    }
    let mut checked = 0usize;
    let mut missing = 0usize;
    for (slc, servers) in expected {
        let detail = store
            .installation_detail(&reseller, slc, 1)
            .await?
            .ok_or("an installation is missing")?;
        for (server, sequence) in servers {
            let stored = detail
                .servers
                .iter()
                .find(|s| s.server == server.id)
                .map(|s| s.cursor.sequence);
            checked += 1;
            if stored.is_none_or(|s| s < sequence) {
                missing += 1;
            }
        }
    }
    drop(store);
    if let Some(schema) = schema {
        schema.drop_schema().await?;
    }
    if missing > 0 {
        return Err(format!(
            "{missing} of {checked} servers' last acknowledged heartbeat is not in storage"
        )
        .into());
    }
    println!("verified: the last acknowledged heartbeat of all {checked} servers is in storage");
    Ok(())
}
