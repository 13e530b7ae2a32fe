//! `carewatch serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::background::spawn_dispatcher;
use crate::server::{ServeOptions, serve};
use crate::tls::TlsIdentity;
use carewatch_core::availability::AvailabilityPolicy;
use carewatch_core::ids::ResellerId;
use carewatch_core::seal::MasterKey;
use carewatch_core::seal::key_file::{self, KeySource, MASTER_KEY_FILE};
use carewatch_core::time::SystemClock;
use carewatch_core::{Carewatch, Config};

use super::{CliResult, parse_audit_retention, parse_duration};
use crate::store::{self, IfMissing, OpenOptions, StoreTarget};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Where the database, master key and certificate live.
    #[arg(long, env = "CAREWATCH_DATA_DIR", default_value = "./carewatch-data")]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "CAREWATCH_LISTEN", default_value = "127.0.0.1:7443")]
    listen: SocketAddr,
    /// TLS certificate chain (PEM); without it a self-signed one is made in the data directory.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Another name (DNS name or IP address) recording servers reach this
    /// server by, for the self-signed certificate made on first start;
    /// repeat for several. A certificate made earlier that lacks one is
    /// refused: delete cert.pem and key.pem to make a new one.
    #[arg(long = "tls-name", conflicts_with_all = ["tls_cert", "tls_key"])]
    tls_names: Vec<String>,
    /// Serve without TLS. Refused unless listening on a loopback address.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    insecure_plaintext: bool,
    /// Heartbeat interval recording servers are told to keep.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    heartbeat_interval: Duration,
    /// Missed heartbeats in a row that make a server Unavailable.
    #[arg(long, default_value_t = 3)]
    unavailable_after: u32,
    /// Tolerance for a heartbeat's network delay.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    jitter: Duration,
    /// Use PostgreSQL (postgres://…) instead of SQLite in the data directory,
    /// e.g. for several Carewatch nodes sharing one database.
    #[arg(long, env = "CAREWATCH_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// How long to keep trying to reach the database at start (PostgreSQL
    /// still starting, or restarting beside this node) before giving up
    /// with exit status 75.
    #[arg(long, env = "CAREWATCH_DATABASE_WAIT", default_value = "60s", value_parser = parse_duration)]
    database_wait: Duration,
    /// An earlier master key file, still accepted while a rotation moves
    /// what it sealed to the current key (`master.key` in the data
    /// directory); repeat for several. See the README, "Running in
    /// production".
    #[arg(
        long = "previous-master-key-file",
        env = "CAREWATCH_PREVIOUS_MASTER_KEY_FILES",
        value_delimiter = ','
    )]
    previous_master_key_files: Vec<PathBuf>,
    /// Keep the tables in this PostgreSQL schema (created if missing), so
    /// several deployments can share one database.
    #[arg(long, env = "CAREWATCH_DATABASE_SCHEMA", requires = "database_url")]
    database_schema: Option<String>,
    /// This node's name when several share one database (unique per node).
    #[arg(long, env = "CAREWATCH_NODE_ID", default_value = "carewatch")]
    node_id: String,
    /// How old another node's liveness mark may be for it to count as
    /// receiving, and the longest pause of this node's once-a-second marks
    /// that is not own downtime. Restarts, clean stops and storage outages
    /// are measured exactly whatever this is.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    liveness_tolerance: Duration,
    /// Most connections at once (default: what the open-file limit allows).
    #[arg(long)]
    max_connections: Option<usize>,
    /// How long the change feed keeps events (a watcher can resume after an
    /// event this old); events the notifier has not processed yet are kept
    /// longer, up to four times as long.
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    change_retention: Duration,
    /// How long delivered and given-up notifications stay listed (web page,
    /// gRPC, CLI) before they are deleted (checked every 10 minutes; 0
    /// deletes them at the next check); pending ones stay until done.
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    notification_retention: Duration,
    /// How long audit entries (who did what) are kept before they are
    /// deleted (checked every 10 minutes; at least a day); 0 keeps them
    /// for ever.
    #[arg(long, default_value = "400d", value_parser = parse_audit_retention)]
    audit_retention: Duration,
    /// A recording server unavailable this long is shown as "probably
    /// removed" for the reseller to decommission (never dropped by itself);
    /// 0 never shows it.
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    probably_removed_after: Duration,
    /// How long an installation's reported data (servers, conditions,
    /// history) is kept after its owner withdrew consent; then it is deleted
    /// and only the registration stays (see "Data protection" in README.md).
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    withdrawn_data_retention: Duration,
    /// How many installations' admissions (the installation and its key) a
    /// node remembers between heartbeats instead of reading them for every
    /// message; about 1.5 KB each. Changes on any node still decide the
    /// next heartbeat. 0 reads every time.
    #[arg(long, default_value_t = carewatch_core::DEFAULT_ADMISSION_CACHE)]
    admission_cache: usize,
    /// Longest a stop waits for calls in flight before closing connections.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    shutdown_grace: Duration,
    /// The SMTP server for email notification channels:
    /// smtp://[user:password@]host[:port] (STARTTLS required, port 587),
    /// smtps://[user:password@]host[:port] (TLS, port 465), or
    /// smtp+insecure://127.0.0.1:port (no TLS; loopback only). User and
    /// password percent-encoded; never logged.
    #[arg(
        long,
        env = "CAREWATCH_SMTP_URL",
        hide_env_values = true,
        requires = "smtp_from"
    )]
    smtp_url: Option<HiddenText>,
    /// The From address of notification emails, e.g.
    /// "Carewatch <carewatch@example.net>".
    #[arg(long, env = "CAREWATCH_SMTP_FROM", requires = "smtp_url", value_parser = carewatch_notify::parse_mailbox)]
    smtp_from: Option<carewatch_notify::Mailbox>,
    /// PEM certificates to trust, besides the public roots, when delivering
    /// notifications (webhooks, SMTP): a private CA, or a test receiver's
    /// self-signed certificate.
    #[arg(long, env = "CAREWATCH_NOTIFY_CA_CERT")]
    notify_ca_cert: Option<PathBuf>,
    /// The HTTP proxy webhooks, Slack and Teams messages go through, when
    /// this network reaches the Internet only through one:
    /// http://[user:password@]host[:port] (or https://). Without it they go
    /// straight to the receiver; HTTP(S)_PROXY is not read. Email goes to
    /// the SMTP server directly.
    #[arg(
        long,
        env = "CAREWATCH_NOTIFY_PROXY",
        value_name = "URL",
        hide_env_values = true
    )]
    notify_proxy: Option<HiddenText>,
    /// Let webhooks, Slack and Teams messages reach loopback, private and
    /// link-local addresses (10.0.0.0/8, 127.0.0.1, 169.254.169.254 …).
    /// Off by default: a channel's URL is a reseller's choice and must not
    /// reach into this network. Turn it on when receivers live on your own
    /// network (and trust every reseller admin with it). Through
    /// --notify-proxy, the proxy decides.
    #[arg(long, env = "CAREWATCH_ALLOW_PRIVATE_WEBHOOKS")]
    allow_private_webhooks: bool,
    /// How much lower than ingest's the CPU priority of notification work
    /// (the notifier's rules and payloads, delivery) is (a nice increment
    /// for its thread, Linux): under load heartbeats go first and
    /// notifications use what is left, still within seconds. Their
    /// database writes keep ingest's priority (on PostgreSQL their reads
    /// too). 0 runs it all at ingest's priority.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(0..=19))]
    notify_nice: u8,
}

/// A value that may hold a secret (the SMTP or proxy URL's password): its `Debug`
/// hides it, and clap never repeats it in an error (parsing cannot fail
/// here; `run` checks it without echoing it).
#[derive(Clone)]
struct HiddenText(String);

impl std::str::FromStr for HiddenText {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(text.to_owned()))
    }
}

impl std::fmt::Debug for HiddenText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hidden>")
    }
}

/// The notification sender from the SMTP and trust settings.
fn notification_sender(args: &ServeArgs) -> Result<carewatch_notify::Sender, String> {
    let smtp = match (&args.smtp_url, &args.smtp_from) {
        (Some(url), Some(from)) => Some(carewatch_notify::SmtpSettings {
            url: url.0.parse().map_err(|e| format!("--smtp-url: {e}"))?,
            from: from.clone(),
        }),
        _ => None,
    };
    let extra_roots_pem = args
        .notify_ca_cert
        .as_ref()
        .map(|path| std::fs::read(path).map_err(|e| format!("{}: {e}", path.display())))
        .transpose()?;
    match &smtp {
        Some(smtp) => eprintln!(
            "notification emails via {} from {}",
            smtp.url.describe(),
            smtp.from
        ),
        None => {
            eprintln!("no SMTP server (--smtp-url): email notification channels cannot deliver")
        }
    }
    let proxy = args
        .notify_proxy
        .as_ref()
        .map(|text| carewatch_notify::ProxyUrl::parse(&text.0))
        .transpose()
        .map_err(|e| format!("--notify-proxy: {e}"))?;
    if let Some(proxy) = &proxy {
        eprintln!(
            "webhook, Slack and Teams notifications go through the proxy {}",
            proxy.describe()
        );
    }
    if args.allow_private_webhooks {
        eprintln!(
            "webhook, Slack and Teams notifications may reach private and loopback addresses (--allow-private-webhooks)"
        );
    }
    carewatch_notify::Sender::new(carewatch_notify::SenderOptions {
        smtp,
        extra_roots_pem,
        proxy,
        allow_private_addresses: args.allow_private_webhooks,
        ..carewatch_notify::SenderOptions::default()
    })
    .map_err(|e| format!("notifications: {e}"))
}

/// The current master key and the earlier ones still accepted, with a
/// line on stderr naming each by its fingerprint, and whether the current
/// one was made now.
/// Reads the key files that exist (the current one, if there is one, and
/// every earlier one given): a wrong or missing one is said before any
/// wait for the database.
fn check_key_files(args: &ServeArgs) -> CliResult {
    let current = args.data_dir.join(MASTER_KEY_FILE);
    if current.exists() {
        key_file::load(&current)?;
    }
    for path in &args.previous_master_key_files {
        key_file::load(path)?;
    }
    Ok(())
}

fn master_keys(
    args: &ServeArgs,
    target: &StoreTarget<'_>,
) -> CliResult<(MasterKey, Vec<MasterKey>, KeySource)> {
    let path = args.data_dir.join(MASTER_KEY_FILE);
    let previous = args
        .previous_master_key_files
        .iter()
        .map(|path| key_file::load(path))
        .collect::<Result<Vec<_>, _>>()?;
    // The key file lives in the data directory whatever the backend, so
    // PostgreSQL nodes share it by sharing (or copying) that file. During a
    // rotation it must already be there: a new random one made now would
    // receive every secret and be in no backup.
    let if_missing = if previous.is_empty() {
        IfMissing::Create
    } else {
        IfMissing::Refuse
    };
    let (current, source) = store::master_key(target, None, Some(&args.data_dir), if_missing)?;
    if source == KeySource::Created {
        eprintln!(
            "created master key {} (back it up: installation keys cannot be read without it)",
            path.display()
        );
    }
    eprintln!("master key {} (fingerprint)", current.fingerprint());
    for (file, key) in args.previous_master_key_files.iter().zip(&previous) {
        eprintln!(
            "also accepting earlier master key {} ({}): once every node does, \
             `carewatch admin reseal-secrets` moves what it sealed to the current key",
            key.fingerprint(),
            file.display()
        );
    }
    Ok((current, previous, source))
}

/// The lock file of a data directory: one `serve` at a time uses it.
pub const DATA_DIR_LOCK: &str = "carewatch.lock";

/// Takes the data directory's lock, or says which directory another
/// `serve` holds. Two processes on one directory shared its SQLite
/// database, master key and certificate under one node id: each one's
/// dispatcher released the other's notification claims at start, so
/// notifications went twice, and their liveness marks mixed.
fn lock_data_dir(dir: &std::path::Path) -> CliResult<std::fs::File> {
    let path = dir.join(DATA_DIR_LOCK);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor this function owns; no memory is shared.
        #[allow(unsafe_code)]
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if locked != 0 {
            return Err(format!(
                "another carewatch serve is using the data directory {} (it holds {}): \
                 stop it, or give this one a --data-dir of its own",
                dir.display(),
                path.display()
            )
            .into());
        }
    }
    Ok(file)
}

pub async fn run(args: ServeArgs) -> CliResult {
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| format!("{}: {e}", args.data_dir.display()))?;
    // Held until the process ends (the kernel releases it on any exit).
    let _data_dir_lock = lock_data_dir(&args.data_dir)?;
    if args.insecure_plaintext && !args.listen.ip().is_loopback() {
        return Err(format!(
            "--insecure-plaintext is only allowed on a loopback address, not {}: recording servers' messages must travel inside TLS",
            args.listen
        )
        .into());
    }
    // From here a SIGTERM is this process's to handle: during the database
    // wait it ends the start; after that, once the operator token is
    // printed, the first thing the server does is stop (a SIGTERM's default
    // action between storing the token and printing it lost it).
    let mut stop_requested = shutdown_signal();
    crate::tls_reload::claim_hangups();
    let sender = Arc::new(notification_sender(&args)?);
    let tls = if args.insecure_plaintext {
        eprintln!(
            "WARNING: serving WITHOUT TLS on {} (--insecure-plaintext)",
            args.listen
        );
        None
    } else if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let identity = TlsIdentity::from_files(cert, key)?;
        // A key that is not the certificate's is refused here, before the
        // operator token is issued and "listening" is said (it used to
        // fail only after both).
        identity.server_config(&[b"h2"])?;
        Some(identity)
    } else {
        let (identity, generated) = TlsIdentity::self_signed_in(&args.data_dir, &args.tls_names)?;
        let fingerprint = identity.fingerprint().unwrap_or_default();
        let verb = if generated { "generated" } else { "using" };
        eprintln!(
            "{verb} self-signed certificate {} (SHA-256 {fingerprint})",
            args.data_dir.join("cert.pem").display()
        );
        Some(identity)
    };

    let db = args.data_dir.join("carewatch.db");
    let target = StoreTarget::of_node(args.database_url.as_deref(), &db);
    let options = OpenOptions {
        schema: args.database_schema.as_deref(),
        application_name: None,
        existing: false,
    };
    // Key files that exist are read now, so that a wrong one is said at
    // once; a new key is made up only once the database is reached, and
    // checked against it at once (removed if the database holds other
    // keys), not left behind by a start stopped while it waited.
    check_key_files(&args)?;
    let Some(store) =
        open_store_waiting(&target, &options, args.database_wait, &mut stop_requested).await?
    else {
        eprintln!("carewatch stopped before it was ready");
        return Ok(());
    };
    let (master_key, previous_master_keys, key_source) = master_keys(&args, &target)?;
    let storage = target.describe();
    let policy = AvailabilityPolicy::new(args.unavailable_after, args.jitter)?;
    let config = Config::new(master_key)
        .with_previous_master_keys(previous_master_keys)
        .with_heartbeat_interval(args.heartbeat_interval)?
        .with_policy(policy)
        .with_node_id(args.node_id)
        .with_liveness_tolerance(args.liveness_tolerance)
        .with_change_retention(args.change_retention)
        .with_notification_retention(args.notification_retention)
        .with_audit_retention(Some(args.audit_retention).filter(|d| !d.is_zero()))
        .with_withdrawn_data_retention(args.withdrawn_data_retention)
        .with_admission_cache(args.admission_cache)
        .with_probably_removed_after(Some(args.probably_removed_after).filter(|d| !d.is_zero()));
    let key_file = args.data_dir.join(MASTER_KEY_FILE);
    let created = (key_source == KeySource::Created).then_some(key_file.as_path());
    store::check_master_keys(&config, store.as_ref(), created).await?;
    let carewatch = Carewatch::open(store, Arc::new(SystemClock), config).await?;
    if let Some(issued) = carewatch
        .ensure_operator(&ResellerId::new("admin")?)
        .await?
    {
        println!(
            "operator token (shown once, keep it safe): {}",
            &*issued.token
        );
    }

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("{}: {e}", args.listen))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!(
        "carewatch listening on {scheme}://{} ({storage})",
        listener.local_addr()?
    );
    let options = ServeOptions {
        tls,
        max_connections: args.max_connections,
        shutdown_grace: args.shutdown_grace,
        ..ServeOptions::default()
    };
    // Notifications are derived and delivered beside the server, and stop
    // with it (or when it fails).
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let dispatcher = spawn_dispatcher(carewatch.clone(), sender, stopped, args.notify_nice)
        .map_err(|e| format!("cannot start the notification thread: {e}"))?;
    let shutdown = async move {
        stop_requested.await;
        let _ = stopping.send(true);
    };
    let served = serve(carewatch, listener, options, shutdown).await;
    let _ = dispatcher.await;
    served?;
    eprintln!("carewatch stopped");
    Ok(())
}

/// Opens the store, trying again while it is unavailable (a database still
/// starting, or restarting beside this node) for up to `wait`: a node that
/// starts with its database (compose, a reboot) must not need restarting.
///
/// `None` if `stop` completes first. It is looked at only between attempts:
/// an attempt (a migration, on SQLite on a thread of its own) runs to its
/// end, so that stopping never leaves one running after the data
/// directory's lock is released.
async fn open_store_waiting(
    target: &StoreTarget<'_>,
    options: &OpenOptions<'_>,
    wait: Duration,
    stop: &mut (impl Future<Output = ()> + Unpin),
) -> Result<Option<Arc<dyn carewatch_core::store::Store>>, carewatch_core::Error> {
    use carewatch_core::{Error, Unavailability};
    let deadline = tokio::time::Instant::now() + wait;
    let mut pause = Duration::from_millis(250);
    let mut said = false;
    loop {
        match store::open_store(target, options).await {
            // Unreachable or locked may mend by themselves; full or
            // read-only need someone.
            Err(
                e @ Error::StorageUnavailable {
                    reason: Unavailability::Unreachable | Unavailability::Locked,
                    ..
                },
            ) if tokio::time::Instant::now() + pause < deadline => {
                if !said {
                    eprintln!(
                        "{}: {e}; trying again for up to {} s (--database-wait)",
                        target.describe(),
                        wait.as_secs()
                    );
                    said = true;
                }
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = &mut *stop => return Ok(None),
                }
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            other => return other.map(Some),
        }
    }
}

/// Completes on SIGINT or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled: a signal that arrived after
/// "listening" was printed but before the server loop polled it used to end
/// the process with the default action, without recording its stop.
fn shutdown_signal() -> Pin<Box<dyn Future<Output = ()> + Send>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut interrupt), Ok(mut term)) => Box::pin(async move {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = term.recv() => {}
                }
            }),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM or SIGINT; stop with Ctrl-C");
                Box::pin(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
            }
        }
    }
    #[cfg(not(unix))]
    {
        Box::pin(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn sender_for(proxy: &str) -> Result<carewatch_notify::Sender, String> {
        let parsed =
            Serve::try_parse_from(["serve", "--notify-proxy", proxy]).map_err(|e| e.to_string())?;
        notification_sender(&parsed.args)
    }

    #[test]
    fn a_notify_proxy_is_checked_and_its_password_never_echoed() {
        assert!(sender_for("http://ops:pr0xy-secret@proxy.example:3128").is_ok());
        for bad in [
            "socks5://ops:pr0xy-secret@proxy.example:1080",
            "http://ops:pr0xy-secret@proxy.example:3128/path",
        ] {
            let error = sender_for(bad).expect_err(bad);
            assert!(error.starts_with("--notify-proxy: "), "{error}");
            assert!(!error.contains("pr0xy-secret"), "{error}");
        }
        let parsed = Serve::try_parse_from(["serve", "--notify-proxy", "http://a:pr0xy-secret@p"])
            .expect("parsed");
        assert!(!format!("{parsed:?}").contains("pr0xy-secret"));
    }
}
