//! Several `carewatch serve` nodes on one PostgreSQL, driven at once.
//!
//! Starts `--nodes` servers on one schema (each its own `--node-id`),
//! provisions a fleet through the first, then measures twice with the same
//! simulated recording servers: **one node** (every client on the first)
//! and **all nodes** (clients spread over them), reporting heartbeats/s per
//! node and in total, and the processor time per heartbeat of each node and
//! of PostgreSQL's backends. With `--kill-after S`, the first node is killed
//! (SIGKILL) S seconds into the all-nodes phase: its clients move to the
//! next node and carry on. With `--rounds N` the two phases alternate N
//! times (one, all, one, all …), and all nodes / one node is printed per
//! round and as the median. Afterwards every server's last acknowledged
//! heartbeat must be stored and every server must still be Available (no
//! false verdict from the kill).
//!
//! ```sh
//! cargo build --release -p carewatch-cli -p carewatch-benches
//! target/release/clusterload --nodes 2
//! target/release/clusterload --nodes 3 --kill-after 5
//! target/release/clusterload --nodes 2 --rounds 5 --seconds 5
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use carewatch_benches::costs::{backend_cpu, backend_cpu_spent};
use carewatch_benches::ingest::{FleetArgs, Workers, heartbeat_on_stream, provision_fleet};
use carewatch_benches::server::{BoxError, Launch, ServerProcess};
use carewatch_benches::{BenchSchema, database_url, percentile};
use carewatch_cli::simulate::SimServer;
use carewatch_core::availability::Availability;
use carewatch_core::ids::ResellerId;
use carewatch_core::seal::key_file::MASTER_KEY_FILE;
use carewatch_core::store::Store;
use carewatch_grpc::client::{Bearer, connect};
use carewatch_grpc::proto::admin_client::AdminClient;
use carewatch_grpc::proto::ingest_client::IngestClient;
use carewatch_grpc::proto::{self};
use clap::Parser;
use tokio::sync::mpsc;
use tonic::transport::Channel;

#[derive(Debug, Parser)]
#[command(about = "Drives several `carewatch serve` nodes on one PostgreSQL and measures them")]
struct Args {
    #[command(flatten)]
    fleet: FleetArgs,
    /// Nodes to start.
    #[arg(long, default_value_t = 2)]
    nodes: usize,
    /// How long each phase measures, in seconds.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Load before measuring, in seconds (not counted).
    #[arg(long, default_value_t = 3)]
    warmup_seconds: u64,
    /// Kill the first node (SIGKILL) this many seconds into the all-nodes phase.
    #[arg(long, conflicts_with = "rounds")]
    kill_after: Option<u64>,
    /// Measure one node then all nodes this many times, alternating, so the
    /// machine's drift touches both alike; the ratio is given per round and
    /// as the median.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
}

/// What one phase measured.
#[derive(Debug, Default)]
struct Tally {
    latencies_us: Vec<u32>,
    /// Heartbeats acknowledged by each node.
    per_node: Vec<u64>,
    /// Calls that failed (a killed node's, before its clients moved).
    failed: u64,
    /// Times a client moved to another node.
    moved: u64,
    /// The first failure, as the client saw it.
    first_failure: Option<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        if self.per_node.len() < other.per_node.len() {
            self.per_node.resize(other.per_node.len(), 0);
        }
        for (mine, theirs) in self.per_node.iter_mut().zip(other.per_node) {
            *mine += theirs;
        }
        self.failed += other.failed;
        self.moved += other.moved;
        self.first_failure = self.first_failure.take().or(other.first_failure);
    }
}

type Replies = tonic::Streaming<proto::StreamReply>;

/// Opens a stream to `channel`.
async fn open(channel: &Channel) -> Option<(mpsc::Sender<proto::StreamMessage>, Replies)> {
    let (tx, rx) = mpsc::channel::<proto::StreamMessage>(1);
    let requests = tokio_stream::wrappers::ReceiverStream::new(rx);
    let replies = IngestClient::new(channel.clone())
        .stream(requests)
        .await
        .ok()?;
    Some((tx, replies.into_inner()))
}

/// Sends heartbeats from `servers` on one stream at a time, starting on
/// node `first` of `nodes`; when a call fails, moves to the next node.
async fn drive(
    nodes: &[Channel],
    first: usize,
    servers: &mut [SimServer],
    acked: &mut [u64],
    until: Instant,
) -> Tally {
    let mut tally = Tally {
        per_node: vec![0; nodes.len()],
        ..Tally::default()
    };
    let mut node = first;
    let mut stream = open(&nodes[node]).await;
    'outer: loop {
        for (server, acked) in servers.iter_mut().zip(acked.iter_mut()) {
            if Instant::now() >= until {
                break 'outer;
            }
            let Some((tx, replies)) = stream.as_mut() else {
                node = (node + 1) % nodes.len();
                tally.moved += 1;
                stream = open(&nodes[node]).await;
                if stream.is_none() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                continue;
            };
            let (_, message) = server.next_message();
            let sequence = message.sequence;
            let sent = Instant::now();
            let outcome = heartbeat_on_stream(tx, replies, message).await;
            if let Err(why) = &outcome {
                tally.first_failure.get_or_insert_with(|| why.clone());
            }
            if outcome.is_ok() {
                *acked = sequence;
                tally.per_node[node] += 1;
                tally
                    .latencies_us
                    .push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
            } else {
                // Unknown outcome: the next message of this server carries a
                // higher sequence, so nothing acknowledged is ever undone.
                tally.failed += 1;
                stream = None;
            }
        }
    }
    tally
}

/// Runs every worker for `seconds`, worker `n` starting on `nodes[n % len]`.
async fn phase(
    nodes: &[Channel],
    groups: &mut [(Vec<SimServer>, Vec<u64>)],
    seconds: u64,
) -> (Tally, Duration) {
    let began = Instant::now();
    let until = began + Duration::from_secs(seconds);
    let tallies = futures::future::join_all(
        groups
            .iter_mut()
            .enumerate()
            .map(|(n, (servers, acked))| drive(nodes, n % nodes.len(), servers, acked, until)),
    )
    .await;
    let mut total = Tally::default();
    for t in tallies {
        total.merge(t);
    }
    (total, began.elapsed())
}

/// Prints what a phase measured; returns its heartbeats/s.
fn report(
    what: &str,
    tally: &mut Tally,
    elapsed: Duration,
    cpu: &[Option<Duration>],
    db: Duration,
) -> f64 {
    tally.latencies_us.sort_unstable();
    let accepted = tally.latencies_us.len();
    let seconds = elapsed.as_secs_f64();
    let per_node: Vec<String> = tally
        .per_node
        .iter()
        .enumerate()
        .map(|(n, acked)| format!("node {n} {:.0}/s", *acked as f64 / seconds))
        .collect();
    println!(
        "{what}: {:.0} heartbeats/s in all ({}), failed calls {}, clients moved {}",
        accepted as f64 / seconds,
        per_node.join(", "),
        tally.failed,
        tally.moved
    );
    if let Some(why) = &tally.first_failure {
        println!("  first failed call: {why}");
    }
    let l = &tally.latencies_us;
    println!(
        "  latency ms: p50 {:.2}  p99 {:.2}  max {:.2}",
        percentile(l, 50.0),
        percentile(l, 99.0),
        percentile(l, 100.0)
    );
    let per = |d: Duration| d.as_secs_f64() * 1e6 / accepted.max(1) as f64;
    let nodes: Vec<String> = cpu
        .iter()
        .enumerate()
        .map(|(n, spent)| match spent {
            Some(spent) => format!("node {n} {:.1} µs", per(*spent)),
            None => format!("node {n} ?"),
        })
        .collect();
    println!(
        "  processor time per heartbeat (of all): {}, PostgreSQL backends {:.1} µs",
        nodes.join(", "),
        per(db)
    );
    accepted as f64 / seconds
}

/// Each node's processor time, while it runs.
fn cpu_times(nodes: &[ServerProcess]) -> Vec<Option<Duration>> {
    nodes.iter().map(ServerProcess::cpu_time).collect()
}

fn spent(before: &[Option<Duration>], after: &[Option<Duration>]) -> Vec<Option<Duration>> {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| Some(a.as_ref()?.saturating_sub((*b)?)))
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    if args.nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    let binary = args.fleet.binary()?;
    let url = database_url();
    let schema = BenchSchema::create(&url).await?;
    let postgres = Some((url.as_str(), schema.name()));
    let mut dirs = Vec::new();
    let mut nodes = Vec::new();
    for n in 0..args.nodes {
        let dir = tempfile::tempdir()?;
        // The nodes share the master key the first one created.
        if let Some(first) = dirs.first() {
            let first: &tempfile::TempDir = first;
            std::fs::copy(
                first.path().join(MASTER_KEY_FILE),
                dir.path().join(MASTER_KEY_FILE),
            )?;
        }
        let launch = Launch {
            args: vec!["--node-id".into(), format!("node-{n}")],
            ..Launch::default()
        };
        // Only the first node, on the new schema, prints the operator token.
        nodes
            .push(ServerProcess::start_with(&binary, dir.path(), postgres, n == 0, &launch).await?);
        dirs.push(dir);
    }
    println!("{} nodes on one PostgreSQL schema, listening", nodes.len());
    let mut channels = Vec::new();
    for node in &nodes {
        channels.push(connect(&node.url, Some(&node.ca_pem)).await?);
    }
    let token = nodes[0]
        .operator_token
        .as_deref()
        .ok_or("no operator token")?;
    let admin = AdminClient::with_interceptor(
        channels[0].clone(),
        Bearer::new(token).ok_or("unusable operator token")?,
    );
    let reseller = ResellerId::new("clusterload")?;
    let servers = provision_fleet(
        &admin,
        &reseller,
        "CL",
        args.fleet.installations,
        args.fleet.servers_per_installation,
    )
    .await?;
    println!(
        "provisioned {} installations, {} recording servers",
        args.fleet.installations,
        servers.len()
    );
    let mut workers = Workers::start(servers, &channels[0], args.fleet.concurrency).await?;
    let groups = workers.groups_mut();

    // One node, then all of them, with the same clients; `rounds` times.
    let mut ratios = Vec::new();
    let phases =
        (0..args.rounds).flat_map(|_| [("one node", &channels[..1]), ("all nodes", &channels[..])]);
    let mut one_node_rate = 0.0;
    for (what, targets) in phases {
        phase(targets, groups, args.warmup_seconds).await;
        let db_before = backend_cpu(&schema.store, schema.name()).await?;
        let cpu_before = cpu_times(&nodes);
        let kill = match args.kill_after {
            Some(after) if targets.len() > 1 => Some(after),
            _ => None,
        };
        let (mut tally, elapsed) = match kill {
            None => phase(targets, groups, args.seconds).await,
            Some(after) => {
                let first = &mut nodes[0];
                let killing = async {
                    tokio::time::sleep(Duration::from_secs(after)).await;
                    first.kill().await
                };
                let (result, killed) = tokio::join!(phase(targets, groups, args.seconds), killing);
                killed?;
                println!("node 0 killed (SIGKILL) {after} s into the phase");
                result
            }
        };
        let cpu_after = cpu_times(&nodes);
        let db = backend_cpu_spent(
            &db_before,
            &backend_cpu(&schema.store, schema.name()).await?,
        );
        let rate = report(
            what,
            &mut tally,
            elapsed,
            &spent(&cpu_before, &cpu_after),
            db,
        );
        if targets.len() == 1 {
            one_node_rate = rate;
        } else {
            ratios.push(rate / one_node_rate.max(f64::MIN_POSITIVE));
            println!("  all nodes / one node: {:.3}", ratios[ratios.len() - 1]);
        }
    }
    if ratios.len() > 1 {
        let listed: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
        let mut sorted = ratios.clone();
        sorted.sort_by(f64::total_cmp);
        let middle = sorted.len() / 2;
        let median = if sorted.len() % 2 == 0 {
            (sorted[middle - 1] + sorted[middle]) / 2.0
        } else {
            sorted[middle]
        };
        println!(
            "all nodes / one node over {} rounds: {} (median {:.3}, lowest {:.3})",
            ratios.len(),
            listed.join(", "),
            median,
            sorted[0]
        );
    }

    // Stop what still runs; then check storage.
    for (n, node) in nodes.into_iter().enumerate() {
        if n == 0 && args.kill_after.is_some() {
            continue;
        }
        node.stop().await?;
    }
    let store: Arc<dyn Store> = Arc::new(schema.store.clone());
    let mut missing = 0usize;
    let mut not_available = 0usize;
    let mut checked = 0usize;
    for (servers, acked) in groups.iter() {
        for (server, &sequence) in servers.iter().zip(acked) {
            let detail = store
                .installation_detail(&reseller, &server.slc, 0)
                .await?
                .ok_or("an installation is missing")?;
            let stored = detail.servers.iter().find(|s| s.server == server.id);
            checked += 1;
            if stored.is_none_or(|s| s.cursor.sequence < sequence) {
                missing += 1;
            }
            if stored.is_none_or(|s| s.availability != Availability::Available) {
                not_available += 1;
            }
        }
    }
    drop(store);
    schema.drop_schema().await?;
    drop(dirs);
    if missing > 0 || not_available > 0 {
        return Err(format!(
            "of {checked} servers, {missing} lack their last acknowledged heartbeat \
             and {not_available} are not Available"
        )
        .into());
    }
    println!(
        "verified: all {checked} servers' last acknowledged heartbeat is stored, and all are Available"
    );
    Ok(())
}
