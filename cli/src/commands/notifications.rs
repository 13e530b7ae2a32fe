//! `carewatch notifications`: what was sent, is waiting, or was given up
//! on (with its error), over the Notifications service with the reseller
//! token (an admin credential).

use carewatch_grpc::proto;

use super::channels::{client, instant};
use super::{CliResult, Connection};

#[derive(Debug, clap::Args)]
pub struct NotificationsArgs {
    #[command(flatten)]
    connection: Connection,
    /// Only notifications given up on, with their error.
    #[arg(long, conflicts_with = "pending")]
    failed: bool,
    /// Only notifications not delivered yet.
    #[arg(long)]
    pending: bool,
    /// At most this many, newest first (1 to 500).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=500))]
    limit: u32,
}

fn state_name(state: i32) -> &'static str {
    match proto::DeliveryState::try_from(state).unwrap_or(proto::DeliveryState::Unspecified) {
        proto::DeliveryState::Pending => "pending",
        proto::DeliveryState::Delivered => "delivered",
        proto::DeliveryState::Failed => "FAILED",
        proto::DeliveryState::Unspecified => "?",
    }
}

pub async fn run(args: NotificationsArgs) -> CliResult {
    let mut client = client(&args.connection).await?;
    let filter = if args.failed {
        proto::NotificationFilter::Failed
    } else if args.pending {
        proto::NotificationFilter::Pending
    } else {
        proto::NotificationFilter::All
    };
    let notifications = client
        .list_notifications(proto::ListNotificationsRequest {
            filter: filter.into(),
            limit: args.limit,
        })
        .await?
        .into_inner()
        .notifications;
    if notifications.is_empty() {
        println!("(no notifications)");
        return Ok(());
    }
    println!(
        "{:<20}  {:<9}  {:<16}  {:<20}  {:<17}  {:>8}  TITLE / LAST ERROR",
        "DECIDED", "STATE", "CHANNEL", "INSTALLATION", "KIND", "ATTEMPTS"
    );
    for n in &notifications {
        println!(
            "{:<20}  {:<9}  {:<16}  {:<20}  {:<17}  {:>8}  {}",
            instant(n.created_at.as_ref()),
            state_name(n.state),
            n.channel_id,
            if n.slc.is_empty() { "-" } else { &n.slc },
            if n.kind.is_empty() { "?" } else { &n.kind },
            n.attempts,
            n.title,
        );
        if !n.last_error.is_empty() {
            let when = match (&n.failed_at, &n.next_attempt_at) {
                (Some(at), _) => format!("given up {}", instant(Some(at))),
                (None, Some(next)) if n.delivered_at.is_none() => {
                    format!("next attempt {}", instant(Some(next)))
                }
                _ => String::new(),
            };
            println!("{:>20}  error: {} {when}", "", n.last_error);
        }
    }
    Ok(())
}
