//! The command line.

mod admin;
mod channels;
mod dashboard;
mod decommission;
mod demo;
mod health;
mod label;
mod maintenance;
mod notifications;
mod operator_token;
mod report;
mod serve;
mod simulate;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Any error a command reports, as text for the user.
pub type CliResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Carewatch: which of your customers' video-surveillance installations need attention, in real time.
#[derive(Debug, Parser)]
#[command(name = "carewatch", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Carewatch server (SQLite in ./carewatch-data unless told otherwise).
    Serve(Box<serve::ServeArgs>),
    /// Operator actions on a running server: resellers, registrations, subscriptions, consent, keys.
    Admin(admin::AdminArgs),
    /// A reseller's overview as a table (or JSON), optionally following changes live.
    Dashboard(dashboard::DashboardArgs),
    /// Name one of a reseller's installations: customer, site, notes, tags (reseller token).
    Label(label::LabelArgs),
    /// Retire a recording server removed at the site: it stops counting (reseller token).
    Decommission(decommission::DecommissionArgs),
    /// A reseller's notification channels: list, add, test, delete (reseller token).
    Channels(channels::ChannelsArgs),
    /// A reseller's maintenance windows, when nothing notifies: list, add, delete (reseller token).
    Maintenance(maintenance::MaintenanceArgs),
    /// A reseller's notifications: sent, waiting, or given up on with their error (reseller token).
    Notifications(notifications::NotificationsArgs),
    /// A reseller's uptime report for a month: availability, outages, MTTR, as a table, CSV or JSON (reseller token).
    Report(report::ReportArgs),
    /// Whether a running server serves (its gRPC health service): exit 0 if so.
    Health(health::HealthArgs),
    /// Replace the operator token, lost or not, straight in the database (no server needed).
    OperatorToken(operator_token::OperatorTokenArgs),
    /// A fleet of simulated recording servers against a running server, with scripted faults.
    Simulate(simulate::SimulateArgs),
    /// See the whole product in under a minute, on a temporary directory.
    Demo(demo::DemoArgs),
}

/// The whole `carewatch` program: parses the command line, sets up logging
/// and the runtime, runs the command. (The binary is this one call, so
/// tests can build the same program as a binary of their own.)
pub fn main() -> std::process::ExitCode {
    use std::process::ExitCode;
    let args = Cli::parse();
    if !matches!(
        args.command,
        Command::Serve(_) | Command::Demo(_) | Command::Simulate(_)
    ) {
        die_quietly_on_a_closed_pipe();
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let (message, code) = failure(e.as_ref());
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

/// The exit status of a refusal worth trying again later (the server or
/// its database unavailable, the server stopping): `EX_TEMPFAIL`.
pub const EXIT_TRY_AGAIN: u8 = 75;

/// What a failed command prints, and its exit status. A server's refusal
/// names its stable code (the `carewatch-error` metadata: what scripts
/// branch on) and exits [`EXIT_TRY_AGAIN`] when trying again later may
/// work, else 1; any other error prints the causes under it (a transport
/// error alone said only "transport error").
pub fn failure(error: &(dyn std::error::Error + 'static)) -> (String, u8) {
    if let Some(status) = error.downcast_ref::<tonic::Status>() {
        let kind = status
            .metadata()
            .get(carewatch_grpc::status::ERROR_KIND_KEY)
            .and_then(|v| v.to_str().ok());
        let message = match kind {
            Some(kind) => format!("{} ({kind})", status.message()),
            None => format!("{} ({:?})", status.message(), status.code()),
        };
        let code = if status.code() == tonic::Code::Unavailable {
            EXIT_TRY_AGAIN
        } else {
            1
        };
        return (message, code);
    }
    // A store that cannot be reached (serve's database at start), or a
    // server that does not answer (not running, restarting): the same "try
    // again later" as a server's UNAVAILABLE.
    // (A store's error says itself whether it is worth retrying.)
    let core_error = error.downcast_ref::<carewatch_core::Error>();
    let unreachable = core_error.is_none()
        && causes(error).any(|e| {
            e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| is_unreachable(io.kind()))
        });
    let code = match core_error {
        Some(e) if e.is_retryable() => EXIT_TRY_AGAIN,
        _ if unreachable => EXIT_TRY_AGAIN,
        _ => 1,
    };
    let mut message = error.to_string();
    for inner in causes(error).skip(1) {
        let said = inner.to_string();
        if !message.contains(&said) {
            message.push_str(": ");
            message.push_str(&said);
        }
    }
    if let Some(e) = core_error {
        message.push_str(&format!(" ({})", e.code()));
    } else if unreachable {
        message.push_str(" (unavailable)");
    }
    (message, code)
}

/// `error` and its sources, outermost first.
fn causes<'e>(
    error: &'e (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'e (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |e| e.source())
}

/// A connection that failed this way may work later: nobody listening
/// (yet), or the network in between.
fn is_unreachable(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind::{
        ConnectionAborted, ConnectionRefused, ConnectionReset, HostUnreachable, NetworkUnreachable,
        NotConnected, TimedOut,
    };
    matches!(
        kind,
        ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | NotConnected
            | TimedOut
            | HostUnreachable
            | NetworkUnreachable
    )
}

/// A command whose output is piped into `head` or `less` stops when the
/// reader goes away, as Unix tools do, instead of panicking on the failed
/// write (Rust ignores SIGPIPE by default). Only the client commands: a
/// server must outlive a peer that hung up.
#[allow(unsafe_code)]
fn die_quietly_on_a_closed_pipe() {
    // SAFETY: restoring a signal's default action before any thread starts;
    // no handler of ours is replaced.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Runs the chosen command.
pub async fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Serve(args) => serve::run(*args).await,
        Command::Admin(args) => admin::run(args).await,
        Command::Dashboard(args) => dashboard::run(args).await,
        Command::Label(args) => label::run(args).await,
        Command::Decommission(args) => decommission::run(args).await,
        Command::Channels(args) => channels::run(args).await,
        Command::Maintenance(args) => maintenance::run(args).await,
        Command::Notifications(args) => notifications::run(args).await,
        Command::Report(args) => report::run(args).await,
        Command::Health(args) => health::run(args).await,
        Command::OperatorToken(args) => operator_token::run(args).await,
        Command::Simulate(args) => simulate::run(args).await,
        Command::Demo(args) => demo::run(args).await,
    }
}

/// Where and how to reach a running server.
#[derive(Debug, clap::Args)]
pub struct Connection {
    /// Server URL.
    #[arg(
        long,
        env = "CAREWATCH_SERVER",
        default_value = "https://127.0.0.1:7443"
    )]
    pub server: String,
    /// Certificate to trust (the server prints where its self-signed one is).
    #[arg(
        long,
        env = "CAREWATCH_CA_CERT",
        default_value = "./carewatch-data/cert.pem"
    )]
    pub ca_cert: PathBuf,
    /// Bearer token (operator for `admin`; reseller for `dashboard`,
    /// `report`, `channels`, `maintenance` and `notifications`, where it
    /// acts as the reseller's admin).
    #[arg(long, env = "CAREWATCH_TOKEN", hide_env_values = true)]
    pub token: String,
}

impl Connection {
    /// A channel to the server.
    pub async fn channel(&self) -> CliResult<tonic::transport::Channel> {
        let ca = if self.server.starts_with("https://") {
            Some(
                std::fs::read_to_string(&self.ca_cert)
                    .map_err(|e| format!("{}: {e}", self.ca_cert.display()))?,
            )
        } else {
            None
        };
        Ok(carewatch_grpc::client::connect(&self.server, ca.as_deref()).await?)
    }

    /// The bearer interceptor.
    pub fn bearer(&self) -> CliResult<carewatch_grpc::client::Bearer> {
        carewatch_grpc::client::Bearer::new(&self.token)
            .ok_or_else(|| "the token is not valid text".into())
    }
}

/// Parses `500ms`, `30s`, `5m`, `2h`, `1d` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| {
        format!(
            "{text:?}: expected a number and a unit (ms, s, m, h or d; none is seconds), e.g. 30s"
        )
    })?;
    let ms = match unit {
        "ms" => 1,
        "s" | "" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?}; use ms, s, m, h or d"
            ));
        }
    };
    n.checked_mul(ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// [`parse_duration`] for `serve --audit-retention`: 0 (for ever) or at
/// least a day (what the service keeps at least; a shorter value was
/// silently taken as a day).
pub fn parse_audit_retention(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d.is_zero() || d >= carewatch_core::MIN_AUDIT_RETENTION => Ok(d),
        _ => Err(format!(
            "{text:?}: audit records are kept at least a day (1d); 0 keeps them for ever"
        )),
    }
}

/// [`parse_duration`], not zero: a period something repeats at (a zero
/// interval panicked the timer).
pub fn parse_period(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        Duration::ZERO => Err(format!("{text:?}: a period must be longer than zero")),
        period => Ok(period),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every subcommand's arguments are valid clap definitions: a clash
    /// (`decommission`'s positional `server` and the connection's
    /// `--server`) made the command panic on every use, `--help` included.
    #[test]
    fn every_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[tokio::test]
    async fn a_server_nobody_answers_at_is_worth_trying_again() {
        // A port nothing listens on: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let error = carewatch_grpc::client::connect(&format!("http://127.0.0.1:{port}"), None)
            .await
            .expect_err("nobody listens");
        let (said, code) = failure(&error);
        assert_eq!(code, EXIT_TRY_AGAIN, "{said}");
        assert!(said.ends_with("(unavailable)"), "{said}");
        assert!(said.contains("refused"), "{said}");
    }

    #[test]
    fn an_audit_retention_is_a_day_or_more_or_for_ever() {
        assert_eq!(parse_audit_retention("0"), Ok(Duration::ZERO));
        assert_eq!(parse_audit_retention("1d"), Ok(Duration::from_secs(86_400)));
        for short in ["1s", "12h", "23h"] {
            let refused = parse_audit_retention(short).expect_err(short);
            assert!(refused.contains("at least a day"), "{refused}");
        }
    }

    #[test]
    fn a_failure_names_the_refusal_s_code_or_the_causes() {
        let error = carewatch_grpc::status::to_status(carewatch_core::Error::NotFound {
            what: "installation M01-C01-0001".into(),
        });
        let (said, code) = failure(&error);
        assert_eq!(
            (said.as_str(), code),
            ("installation M01-C01-0001 not found (not_found)", 1)
        );
        let busy = carewatch_grpc::status::to_status(carewatch_core::Error::ShuttingDown);
        assert_eq!(failure(&busy).1, EXIT_TRY_AGAIN);
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let wrapped = carewatch_core::Error::storage("cannot connect", io);
        let (said, code) = failure(&wrapped);
        assert!(
            said.contains("cannot connect") && said.contains("refused"),
            "{said}"
        );
        assert_eq!(code, 1);
        let unreachable = carewatch_core::Error::storage_unavailable(
            "cannot connect to PostgreSQL",
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"),
        );
        assert_eq!(failure(&unreachable).1, EXIT_TRY_AGAIN);
        // The command's own checks name their code too.
        let date = admin::parse_utc("notadate").expect_err("not a date");
        let (said, code) = failure(date.as_ref());
        assert!(said.ends_with("(invalid_input)"), "{said}");
        assert_eq!(code, 1);
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3y").is_err());
        // A period is never zero (`simulate --interval 0` panicked).
        assert!(parse_period("0").is_err() && parse_period("0ms").is_err());
        assert_eq!(parse_period("1ms").unwrap(), Duration::from_millis(1));
    }
}
