//! `carewatch admin`: the operator's actions against a running server.

use carewatch_core::time::Timestamp;
use carewatch_grpc::proto::{self, admin_client::AdminClient};
use clap::Subcommand;

use super::{CliResult, Connection};

#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Create a reseller; prints its token once.
    AddReseller {
        /// Short lower-case id, e.g. acme-security.
        id: String,
        /// Display name.
        name: String,
    },
    /// Invite a user to a reseller's team (its first admin, say); prints the
    /// one-time link that sets their password (valid 72 hours).
    AddUser {
        /// Reseller id.
        reseller: String,
        /// The user's login: an email address or a name.
        login: String,
        /// Display name (default: the login).
        #[arg(long)]
        name: Option<String>,
        /// admin (manages users, tokens, notification channels) or viewer.
        #[arg(long, default_value = "admin", value_parser = ["admin", "viewer"])]
        role: String,
    },
    /// Replace a reseller's token; prints the new one once.
    RotateToken {
        /// Reseller id.
        id: String,
    },
    /// List resellers.
    Resellers,
    /// Record that a reseller registered an SLC.
    Register {
        /// Software License Code.
        slc: String,
        /// Reseller id.
        reseller: String,
        /// Product, e.g. "XProtect Corporate".
        #[arg(long, default_value = "XProtect")]
        product: String,
        /// Product version, e.g. 2016.
        #[arg(long, default_value = "")]
        version: String,
    },
    /// Move an installation to another reseller (the registration centre
    /// moved its SLC): the old reseller finds it nowhere from now on.
    Transfer {
        /// Software License Code.
        slc: String,
        /// The reseller it goes to.
        to: String,
        /// Let the new reseller see what happened before the transfer
        /// (history, uptime); by default only the operator can.
        #[arg(long)]
        share_history: bool,
    },
    /// Set when the Care Plus subscription ends (RFC 3339 date-time in UTC, or "none").
    Subscription {
        /// Software License Code.
        slc: String,
        /// When it ends: e.g. 2027-12-31T23:59:59Z; a plain date (2027-12-31)
        /// is the whole of that day, UTC (it ends at the next midnight); or none.
        until: String,
    },
    /// Record the owner's consent (accept) or its withdrawal (withdraw).
    Consent {
        /// Software License Code.
        slc: String,
        /// accept or withdraw.
        #[arg(value_parser = ["accept", "withdraw"])]
        decision: String,
    },
    /// Show an installation's whole history, newest first (including what a
    /// transfer hid from its reseller).
    History {
        /// Software License Code.
        slc: String,
        /// At most this many events (1 to 1,000).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// Show the audit log, newest first: who did what, when.
    Audit {
        /// Only this reseller's team's actions.
        #[arg(long)]
        reseller: Option<String>,
        /// Entries older than this id (the last id of the previous page).
        #[arg(long)]
        before: Option<u64>,
        /// At most this many (1 to 500).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
    },
    /// Issue a new installation key; prints it once (cwk1:<id>:<hex>).
    IssueKey {
        /// Software License Code.
        slc: String,
    },
    /// Retire an installation key.
    RetireKey {
        /// Software License Code.
        slc: String,
        /// Key id.
        key_id: u32,
    },
    /// Master-key rotation: re-seal every stored secret an earlier master
    /// key sealed under the server's current one (start every node with
    /// --previous-master-key-file first; README, "Running in production").
    ResealSecrets {
        /// The fingerprint of the new master key (`serve` prints it at
        /// start): refused unless the server's current key is that one.
        #[arg(long)]
        expect_master_key: Option<String>,
    },
}

pub async fn run(args: AdminArgs) -> CliResult {
    let channel = args.connection.channel().await?;
    let mut client = AdminClient::with_interceptor(channel, args.connection.bearer()?);
    match args.action {
        Action::AddReseller { id, name } => {
            let token = client
                .create_reseller(proto::CreateResellerRequest { id, name })
                .await?
                .into_inner()
                .token;
            println!("{token}");
        }
        Action::AddUser {
            reseller,
            login,
            name,
            role,
        } => {
            let invitation = client
                .invite_user(proto::InviteUserRequest {
                    reseller_id: reseller,
                    name: name.unwrap_or_else(|| login.clone()),
                    login,
                    role,
                })
                .await?
                .into_inner();
            // The secret goes after `#`: browsers never send a fragment to
            // the server, so it stays out of logs and Referer headers.
            let base = args.connection.server.trim_end_matches('/');
            println!("{base}/invite#{}", invitation.secret);
        }
        Action::RotateToken { id } => {
            let token = client
                .rotate_reseller_token(proto::RotateResellerTokenRequest { id })
                .await?
                .into_inner()
                .token;
            println!("{token}");
        }
        Action::Resellers => {
            for r in client
                .list_resellers(proto::ListResellersRequest {})
                .await?
                .into_inner()
                .resellers
            {
                println!("{:<24} {}", r.id, r.name);
            }
        }
        Action::Register {
            slc,
            reseller,
            product,
            version,
        } => {
            let request = proto::RegisterInstallationRequest {
                slc,
                reseller_id: reseller,
                product,
                product_version: version,
            };
            let info = client.register_installation(request).await?.into_inner();
            println!("registered {} to {}", info.slc, info.reseller_id);
        }
        Action::Transfer {
            slc,
            to,
            share_history,
        } => {
            let request = proto::TransferInstallationRequest {
                slc,
                to_reseller_id: to,
                share_history,
            };
            let info = client.transfer_installation(request).await?.into_inner();
            println!(
                "transferred {} to {}{}",
                info.slc,
                info.reseller_id,
                if share_history {
                    " (with its history)"
                } else {
                    ""
                }
            );
        }
        Action::Subscription { slc, until } => {
            let expires_at = if until == "none" {
                None
            } else {
                Some(subscription_end(&until)?)
            };
            let info = client
                .set_subscription(proto::SetSubscriptionRequest { slc, expires_at })
                .await?
                .into_inner();
            println!(
                "{}: subscription {}",
                info.slc,
                if info.subscription_expires_at.is_some() {
                    until
                } else {
                    "none".into()
                }
            );
        }
        Action::Consent { slc, decision } => {
            let accepted = decision == "accept";
            let info = client
                .set_consent(proto::SetConsentRequest { slc, accepted })
                .await?
                .into_inner();
            println!(
                "{}: consent {}",
                info.slc,
                if info.consent {
                    "accepted"
                } else {
                    "withdrawn"
                }
            );
        }
        Action::History { slc, limit } => {
            let events = client
                .get_installation_history(proto::GetInstallationHistoryRequest { slc, limit })
                .await?
                .into_inner()
                .events;
            for e in events {
                let at =
                    e.at.and_then(|t| carewatch_grpc::convert::from_timestamp("at", &t).ok())
                        .map_or_else(|| "?".to_owned(), |t| t.to_string());
                let kind = e
                    .kind
                    .map_or_else(|| "?".to_owned(), |k| describe_history(&k));
                println!("{at}  {}  {kind}", e.recording_server_id);
            }
        }
        Action::Audit {
            reseller,
            before,
            limit,
        } => {
            let entries = client
                .list_audit_log(proto::ListAuditLogRequest {
                    team_reseller_id: reseller.unwrap_or_default(),
                    before_id: before.unwrap_or(0),
                    limit,
                })
                .await?
                .into_inner()
                .entries;
            for e in entries {
                let at =
                    e.at.and_then(|t| carewatch_grpc::convert::from_timestamp("at", &t).ok())
                        .map_or_else(|| "?".to_owned(), |t| t.to_string());
                let who = if e.actor_kind == "operator" {
                    format!("operator {}", e.actor_name)
                } else {
                    format!("{} ({})", e.actor_name, e.actor_reseller_id)
                };
                println!(
                    "{:>6}  {at}  {who}  {}  {}  {}",
                    e.id, e.action, e.target, e.detail
                );
            }
        }
        Action::IssueKey { slc } => {
            let key = client
                .issue_installation_key(proto::IssueInstallationKeyRequest { slc })
                .await?
                .into_inner();
            println!("{}", key.key);
        }
        Action::RetireKey { slc, key_id } => {
            client
                .retire_installation_key(proto::RetireInstallationKeyRequest {
                    slc: slc.clone(),
                    key_id,
                })
                .await?;
            println!("{slc}: key {key_id} retired");
        }
        Action::ResealSecrets { expect_master_key } => {
            let report = client
                .reseal_secrets(proto::ResealSecretsRequest {
                    expected_current_key: expect_master_key.unwrap_or_default(),
                })
                .await?
                .into_inner();
            print_reseal(&report);
            let mut left = Vec::new();
            if report.unopenable > 0 {
                left.push(if report.previous_keys == 0 {
                    "some secrets do not open under the server's master key, and it holds no earlier one: start it with --previous-master-key-file"
                } else {
                    "some secrets open under none of the server's master keys: left as they were"
                });
            }
            if report.changed_meanwhile > 0 {
                left.push("some secrets changed while being re-sealed: run it again");
            }
            if !left.is_empty() {
                return Err(left.join("; ").into());
            }
        }
    }
    Ok(())
}

fn print_reseal(report: &proto::ResealSecretsResponse) {
    println!("current master key: {}", report.current_key);
    println!(
        "installation keys: {} re-sealed, {} already under the current master key",
        report.keys_resealed, report.keys_current
    );
    println!(
        "channels: {} re-sealed, {} already under the current master key",
        report.channels_resealed, report.channels_current
    );
    if report.changed_meanwhile > 0 {
        println!(
            "changed while being re-sealed (left; run again): {}",
            report.changed_meanwhile
        );
    }
    if report.unopenable > 0 {
        println!(
            "open under no master key of the server (left as they were): {}",
            report.unopenable
        );
        for name in &report.unopenable_named {
            println!("  {name}");
        }
    }
}

/// The refusal of `text` as a date (printed with its code, as a server's).
fn not_a_date(text: &str) -> carewatch_core::Error {
    carewatch_core::Error::InvalidInput {
        field: "date",
        reason: format!("{text:?}: expected e.g. 2027-12-31T23:59:59Z or 2027-12-31"),
    }
}

/// Parses `YYYY-MM-DDTHH:MM[:SS]Z` or a plain `YYYY-MM-DD` (midnight), UTC.
pub(crate) fn parse_utc(text: &str) -> CliResult<prost_types::Timestamp> {
    let at = Timestamp::parse_utc(text).ok_or_else(|| not_a_date(text))?;
    Ok(prost_types::Timestamp {
        seconds: at.as_millis().div_euclid(1000),
        nanos: 0,
    })
}

/// When a subscription given as `text` ends: a plain date covers the whole
/// of that day (UTC), as a contract's "valid until 31 December" does.
fn subscription_end(text: &str) -> CliResult<prost_types::Timestamp> {
    let end = Timestamp::parse_utc_end(text).ok_or_else(|| not_a_date(text))?;
    Ok(prost_types::Timestamp {
        seconds: end.as_millis().div_euclid(1000),
        nanos: 0,
    })
}

/// One history event's kind, in words.
fn describe_history(kind: &proto::history_event::Kind) -> String {
    use proto::history_event::Kind;
    match kind {
        Kind::FirstSeen(_) => "first seen".into(),
        Kind::ConditionOpened(c) => format!("condition opened: {} on {}", c.code, c.subject),
        Kind::ConditionResolved(c) => format!("condition resolved: {} on {}", c.code, c.subject),
        Kind::BecameUnavailable(u) => {
            format!("unavailable ({} heartbeats missed)", u.missed_heartbeats)
        }
        Kind::Recovered(_) => "recovered".into(),
        Kind::Decommissioned(_) => "decommissioned".into(),
        Kind::Recommissioned(_) => "recommissioned".into(),
        Kind::Parked(_) => "parked (messages refused)".into(),
        Kind::Resumed(_) => "resumed (messages accepted again)".into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_parse() {
        assert_eq!(super::parse_utc("1970-01-02").unwrap().seconds, 86_400);
        assert_eq!(
            super::parse_utc("2026-01-01T00:00:00Z").unwrap().seconds,
            1_767_225_600
        );
        assert!(super::parse_utc("2026-13-01").is_err());
        assert!(super::parse_utc("tomorrow").is_err());
    }

    #[test]
    fn a_subscription_until_a_date_covers_that_whole_day() {
        let day = super::parse_utc("2027-12-31").unwrap().seconds;
        assert_eq!(
            super::subscription_end("2027-12-31").unwrap().seconds,
            day + 86_400
        );
        assert_eq!(
            super::subscription_end(" 2027-12-31Z ").unwrap().seconds,
            day + 86_400
        );
        for exact in [
            "2027-12-31T12:00:00Z",
            "2027-12-31 12:00",
            "2027-12-31T00:00",
        ] {
            let at = super::parse_utc(exact).unwrap();
            assert_eq!(super::subscription_end(exact).unwrap(), at, "{exact}");
        }
        assert!(super::subscription_end("2027-12-32").is_err());
    }
}
