//! `carewatch channels`: a reseller's notification channels, over the
//! Notifications service with the reseller token (an admin credential).

use std::io::BufRead;
use std::time::Duration;

use carewatch_core::time::Timestamp;
use carewatch_grpc::client::Bearer;
use carewatch_grpc::proto::create_channel_request::Destination;
use carewatch_grpc::proto::{self, notifications_client::NotificationsClient};
use clap::Subcommand;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::{CliResult, Connection, parse_duration};

#[derive(Debug, clap::Args)]
pub struct ChannelsArgs {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// List the channels: destination (without secrets), rules, last delivery.
    List,
    /// Create a channel. Prints its id and, for a webhook, its signing
    /// secret (shown only this once) on the next line.
    ///
    /// A URL given as "-" is read from the first line of standard input, so
    /// a Slack or Teams webhook URL (a secret) stays out of the shell's
    /// history and the process list.
    #[command(group(
        clap::ArgGroup::new("destination")
            .required(true)
            .args(["webhook", "email", "slack", "teams"])
    ))]
    Add {
        /// What to call it.
        name: String,
        /// A webhook URL: signed JSON is POSTed to it.
        #[arg(long, value_name = "URL")]
        webhook: Option<String>,
        /// Email addresses (repeat the option, or separate with commas).
        #[arg(long, value_name = "ADDRESS", value_delimiter = ',')]
        email: Option<Vec<String>>,
        /// A Slack incoming-webhook URL ("-": read it from standard input).
        #[arg(long, value_name = "URL")]
        slack: Option<String>,
        /// A Microsoft Teams incoming-webhook URL ("-": read it from standard input).
        #[arg(long, value_name = "URL")]
        teams: Option<String>,
        /// Also notify installations turning Attention (Critical, Offline
        /// and recoveries always notify).
        #[arg(long)]
        attention: bool,
        /// How long a state must hold before it notifies (flap damping),
        /// e.g. 2m; 0 to 24h.
        #[arg(long, value_parser = parse_duration, default_value = "2m")]
        hold: Duration,
        /// Repeat while unresolved this often (5m to 7d); default: never.
        #[arg(long, value_parser = parse_duration)]
        reminder: Option<Duration>,
        /// Only this installation (repeat for several); default: all.
        #[arg(long = "slc", value_name = "SLC")]
        slcs: Vec<String>,
    },
    /// Send a test notification on a channel; its result shows in `list`.
    Test {
        /// The channel's id (16 hex digits, from `list`).
        id: String,
    },
    /// Delete a channel; its waiting notifications are given up.
    Delete {
        /// The channel's id.
        id: String,
    },
}

pub(super) type Client = NotificationsClient<InterceptedService<Channel, Bearer>>;

/// A Notifications client with the connection's (reseller) token.
pub(super) async fn client(connection: &Connection) -> CliResult<Client> {
    let channel = connection.channel().await?;
    Ok(NotificationsClient::with_interceptor(
        channel,
        connection.bearer()?,
    ))
}

/// A protobuf instant as RFC 3339 in UTC, to the second.
pub(super) fn instant(t: Option<&prost_types::Timestamp>) -> String {
    match t {
        Some(t) => {
            let ms = t
                .seconds
                .saturating_mul(1000)
                .saturating_add(i64::from(t.nanos / 1_000_000));
            let text = Timestamp::from_millis(ms).to_string();
            // `2026-01-01T12:00:05.123Z` → `2026-01-01T12:00:05Z`.
            match text.get(..19) {
                Some(whole) => format!("{whole}Z"),
                None => text,
            }
        }
        None => "-".to_owned(),
    }
}

/// A protobuf duration as a duration (negative: zero).
pub(super) fn duration(d: Option<&prost_types::Duration>) -> Option<Duration> {
    d.map(|d| Duration::from_secs(u64::try_from(d.seconds).unwrap_or(0)))
}

/// A duration in the largest unit that divides it: `90s`, `2m`, `4h`, `7d`.
pub(super) fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".to_owned(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// A protobuf duration.
pub(super) fn proto_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        // Kept: `--hold 500ms` dropped to a hold of 0 (no damping).
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// `url`, or the first line of standard input for "-".
fn url_or_stdin(url: String) -> CliResult<String> {
    if url != "-" {
        return Ok(url);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let line = line.trim().to_owned();
    if line.is_empty() {
        return Err("expected the URL on standard input".into());
    }
    Ok(line)
}

fn rules_text(rules: Option<&proto::ChannelRules>) -> String {
    let Some(r) = rules else {
        return "-".to_owned();
    };
    let what = if r.attention {
        "Attention, Critical, Offline"
    } else {
        "Critical, Offline"
    };
    let scope = if r.installations.is_empty() {
        "all installations".to_owned()
    } else {
        r.installations.join(", ")
    };
    let hold = duration(r.hold.as_ref()).map_or("-".to_owned(), human);
    let reminder = duration(r.reminder.as_ref()).map_or("no reminders".to_owned(), |d| {
        format!("reminders every {}", human(d))
    });
    format!("{what} and recoveries; {scope}; hold {hold}; {reminder}")
}

fn last_delivery(c: &proto::Channel) -> String {
    let mut text = match (&c.last_attempt_at, c.last_error.as_str()) {
        (None, _) => "none yet".to_owned(),
        (Some(at), "") => format!("delivered {}", instant(Some(at))),
        (Some(at), error) => format!("failed {}: {error}", instant(Some(at))),
    };
    if c.failing {
        text.push_str(&format!(
            "  [FAILING: {} attempts in a row]",
            c.failures_in_a_row
        ));
    }
    text
}

pub async fn run(args: ChannelsArgs) -> CliResult {
    let mut client = client(&args.connection).await?;
    match args.action {
        Action::List => {
            let channels = client
                .list_channels(proto::ListChannelsRequest {})
                .await?
                .into_inner()
                .channels;
            if channels.is_empty() {
                println!("(no channels: nobody is notified; `carewatch channels add` makes one)");
            }
            for c in &channels {
                println!("{}  {}  ({})", c.id, c.name, c.destination);
                println!("    notifies: {}", rules_text(c.rules.as_ref()));
                println!("    last delivery: {}", last_delivery(c));
            }
        }
        Action::Add {
            name,
            webhook,
            email,
            slack,
            teams,
            attention,
            hold,
            reminder,
            slcs,
        } => {
            let destination = match (webhook, email, slack, teams) {
                (Some(url), ..) => Destination::Webhook(proto::WebhookDestination {
                    url: url_or_stdin(url)?,
                }),
                (_, Some(to), ..) => Destination::Email(proto::EmailDestination {
                    to: to
                        .iter()
                        .map(|a| a.trim().to_owned())
                        .filter(|a| !a.is_empty())
                        .collect(),
                }),
                (_, _, Some(url), _) => Destination::Slack(proto::SlackDestination {
                    url: url_or_stdin(url)?,
                }),
                (_, _, _, Some(url)) => Destination::Teams(proto::TeamsDestination {
                    url: url_or_stdin(url)?,
                }),
                _ => return Err("give --webhook, --email, --slack or --teams".into()),
            };
            let request = proto::CreateChannelRequest {
                name,
                destination: Some(destination),
                rules: Some(proto::ChannelRules {
                    attention,
                    installations: slcs,
                    hold: Some(proto_duration(hold)),
                    reminder: reminder.map(proto_duration),
                }),
            };
            let created = client.create_channel(request).await?.into_inner();
            let channel = created.channel.unwrap_or_default();
            eprintln!(
                "created channel {} \"{}\" ({})",
                channel.id, channel.name, channel.destination
            );
            // Standard output is for scripts: the id, then (a webhook) the
            // secret, each on a line of its own.
            println!("{}", channel.id);
            if !created.signing_secret.is_empty() {
                eprintln!(
                    "its signing secret follows, shown only this once: the receiver checks \
                     the Carewatch-Signature header with it"
                );
                println!("{}", created.signing_secret);
            }
        }
        Action::Test { id } => {
            client
                .test_channel(proto::TestChannelRequest { id: id.clone() })
                .await?;
            println!(
                "test notification queued on channel {id}; `carewatch channels list` shows its result"
            );
        }
        Action::Delete { id } => {
            client
                .delete_channel(proto::DeleteChannelRequest { id: id.clone() })
                .await?;
            println!("channel {id} deleted");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_instants_read_plainly() {
        assert_eq!(human(Duration::from_secs(120)), "2m");
        assert_eq!(human(Duration::from_secs(90)), "90s");
        assert_eq!(human(Duration::from_secs(7 * 86_400)), "7d");
        assert_eq!(human(Duration::from_secs(4 * 3600)), "4h");
        assert_eq!(
            instant(Some(&prost_types::Timestamp {
                seconds: 1_767_225_605,
                nanos: 123_000_000
            })),
            "2026-01-01T00:00:05Z"
        );
        assert_eq!(instant(None), "-");
    }
}
