//! `carewatch maintenance`: a reseller's maintenance windows (nothing
//! notifies during one), over the Notifications service with the reseller
//! token (an admin credential).

use std::time::Duration;

use carewatch_grpc::proto;
use clap::Subcommand;

use super::channels::{client, duration, human, instant, proto_duration};
use super::{CliResult, Connection, parse_duration};

#[derive(Debug, clap::Args)]
pub struct MaintenanceArgs {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// List the maintenance windows.
    List,
    /// Set a maintenance window for one installation or all; prints its id.
    #[command(group(
        clap::ArgGroup::new("scope").required(true).args(["slc", "all"])
    ))]
    Add {
        /// The installation.
        #[arg(long)]
        slc: Option<String>,
        /// Every installation of the reseller.
        #[arg(long)]
        all: bool,
        /// When it (first) starts: "now", or UTC like 2026-03-01T22:00Z.
        #[arg(long, default_value = "now")]
        start: String,
        /// How long each window lasts, e.g. 2h (1m to 30d).
        #[arg(long, value_parser = parse_duration)]
        length: Duration,
        /// Repeat: daily, weekly, or a period like 12h; default: once.
        #[arg(long, value_parser = parse_every)]
        every: Option<Duration>,
        /// Why (shown with the window).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Delete a maintenance window.
    Delete {
        /// The window's id (16 hex digits, from `list`).
        id: String,
    },
}

fn parse_every(text: &str) -> Result<Duration, String> {
    match text {
        "daily" => Ok(Duration::from_secs(86_400)),
        "weekly" => Ok(Duration::from_secs(7 * 86_400)),
        other => parse_duration(other),
    }
}

/// "now", or a UTC date and time such as `2026-03-01T22:00Z`.
fn parse_start(text: &str) -> CliResult<Option<prost_types::Timestamp>> {
    if text == "now" {
        return Ok(None);
    }
    super::admin::parse_utc(text).map(Some)
}

fn repeats(every: Option<Duration>) -> String {
    match every.map(|d| d.as_secs()) {
        None => "once".to_owned(),
        Some(86_400) => "daily".to_owned(),
        Some(604_800) => "weekly".to_owned(),
        Some(s) => format!("every {}", human(Duration::from_secs(s))),
    }
}

pub async fn run(args: MaintenanceArgs) -> CliResult {
    let mut client = client(&args.connection).await?;
    match args.action {
        Action::List => {
            let windows = client
                .list_maintenance_windows(proto::ListMaintenanceWindowsRequest {})
                .await?
                .into_inner()
                .windows;
            if windows.is_empty() {
                println!("(no maintenance windows)");
                return Ok(());
            }
            println!(
                "{:<16}  {:<20}  {:<20}  {:>6}  {:<8}  {:<24}  REASON",
                "ID", "INSTALLATION", "STARTS", "LASTS", "REPEATS", "NOW"
            );
            for w in &windows {
                let now = match (&w.in_force_until, &w.next_starts_at) {
                    (Some(until), _) => format!("until {}", instant(Some(until))),
                    (None, Some(next)) => format!("next {}", instant(Some(next))),
                    (None, None) => "over".to_owned(),
                };
                println!(
                    "{:<16}  {:<20}  {:<20}  {:>6}  {:<8}  {:<24}  {}",
                    w.id,
                    if w.slc.is_empty() { "all" } else { &w.slc },
                    instant(w.starts_at.as_ref()),
                    duration(w.length.as_ref()).map_or("-".to_owned(), human),
                    repeats(duration(w.every.as_ref())),
                    now,
                    w.reason,
                );
            }
        }
        Action::Add {
            slc,
            all,
            start,
            length,
            every,
            reason,
        } => {
            let starts_at = match parse_start(&start)? {
                Some(at) => at,
                None => prost_types::Timestamp::from(std::time::SystemTime::now()),
            };
            let request = proto::CreateMaintenanceWindowRequest {
                slc: if all {
                    String::new()
                } else {
                    slc.unwrap_or_default()
                },
                starts_at: Some(starts_at),
                length: Some(proto_duration(length)),
                every: every.map(proto_duration),
                reason,
            };
            let window = client
                .create_maintenance_window(request)
                .await?
                .into_inner();
            eprintln!(
                "maintenance for {} from {}, {} long, {}",
                if window.slc.is_empty() {
                    "all installations"
                } else {
                    &window.slc
                },
                instant(window.starts_at.as_ref()),
                duration(window.length.as_ref()).map_or("-".to_owned(), human),
                repeats(duration(window.every.as_ref())),
            );
            println!("{}", window.id);
        }
        Action::Delete { id } => {
            client
                .delete_maintenance_window(proto::DeleteMaintenanceWindowRequest { id: id.clone() })
                .await?;
            println!("maintenance window {id} deleted");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_and_periods_parse() {
        assert!(matches!(parse_start("now"), Ok(None)));
        let at = |t: &str| parse_start(t).ok().flatten().map(|t| t.seconds);
        assert_eq!(at("2026-01-01T00:00Z"), Some(1_767_225_600));
        assert_eq!(at("2026-01-01T00:00:30Z"), Some(1_767_225_630));
        for bad in [
            "tomorrow",
            "2026-13-01T00:00Z",
            "2026-02-30T00:00Z",
            "2026-01-01T00:00:00:00Z",
        ] {
            assert!(parse_start(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_every("weekly"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_every("12h"), Ok(Duration::from_secs(43_200)));
        assert!(parse_every("sometimes").is_err());
        assert_eq!(repeats(Some(Duration::from_secs(86_400))), "daily");
        assert_eq!(repeats(None), "once");
    }
}
