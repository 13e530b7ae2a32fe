//! The notification as sent: one JSON document with a stable, versioned
//! schema (`carewatch.notification.v1`; fields are only ever added). The
//! webhook body is this document; email, Slack and Teams messages are
//! rendered from it. It is built when the notification is derived and kept
//! in the outbox, so every retry sends the same bytes.

use serde::{Deserialize, Serialize};

use super::rules::Tell;
use crate::catalogue::ConditionCode;
use crate::health::{Health, HealthSummary};
use crate::store::InstallationDetail;
use crate::time::Timestamp;

/// The schema name and version of [`Notification`].
pub const SCHEMA: &str = "carewatch.notification.v1";

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// The idempotency key: the same for every attempt of this notification.
    pub id: String,
    /// `problem`, `reminder`, `after_maintenance`, `resolved`,
    /// `subscription_expired` or `test`.
    pub kind: String,
    /// When it was decided (RFC 3339, UTC).
    pub at: String,
    /// The reseller.
    pub reseller: String,
    /// One line for a subject or a chat title.
    pub title: String,
    /// A few lines of plain text.
    pub text: String,
    /// The installation, as it was when the notification was decided.
    pub installation: Option<InstallationPart>,
    /// Its unavailable recording servers (the site's, when it is Offline).
    pub servers_down: Vec<ServerPart>,
    /// Its active conditions.
    pub conditions: Vec<ConditionPart>,
    /// For `resolved`: the problem that ended.
    pub resolved: Option<ResolvedPart>,
}

/// The installation in a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallationPart {
    /// Its SLC.
    pub slc: String,
    /// Product and version.
    pub product: String,
    /// `healthy`, `pending`, `attention`, `critical`, `offline`.
    pub health: String,
    /// Since when the problem lasts (RFC 3339), for problems.
    pub since: Option<String>,
    /// The worst condition's code.
    pub worst_condition: Option<String>,
    /// Recording servers known, unavailable, late.
    pub servers: u32,
    /// Of which unavailable.
    pub unavailable: u32,
    /// Of which late.
    pub late: u32,
    /// Every server down at once: the site is unreachable (possibly its link).
    pub offline: bool,
}

/// An unavailable recording server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerPart {
    /// Its id.
    pub id: String,
    /// Unavailable since (RFC 3339).
    pub since: String,
    /// Heartbeats missed.
    pub missed: u32,
}

/// An active condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionPart {
    /// Its recording server.
    pub server: String,
    /// Its code.
    pub code: String,
    /// What it is about.
    pub subject: String,
    /// Open since (RFC 3339).
    pub since: String,
}

impl ConditionPart {
    /// Whether it is a recording server's own unavailability, which
    /// `servers_down` already tells: messages list the other conditions.
    pub fn is_server_unavailable(&self) -> bool {
        self.code == ConditionCode::ServerUnavailable.as_str()
    }
}

/// The problem a `resolved` notification ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedPart {
    /// The health that was told.
    pub was: String,
    /// When it began (RFC 3339).
    pub problem_since: String,
    /// When it ended (RFC 3339).
    pub recovered_at: String,
    /// How long it lasted, in seconds.
    pub lasted_seconds: u64,
}

fn health_name(health: Health) -> &'static str {
    match health {
        Health::Healthy => "healthy",
        Health::Pending => "pending",
        Health::Attention => "attention",
        Health::Critical => "critical",
        Health::Offline => "offline",
    }
}

/// How a health reads in a sentence.
fn health_words(health: Health) -> &'static str {
    match health {
        Health::Offline => "Offline (site unreachable, possibly its network)",
        Health::Critical => "Critical",
        Health::Attention => "in need of attention",
        Health::Pending => "not reporting yet",
        Health::Healthy => "healthy",
    }
}

/// The notification `tell` makes about `detail`, with idempotency key `id`.
/// `decided_by` is the installation's line as the change that decided it
/// left it (the feed carries it); the counts and health are that line's,
/// so a notification built after the installation moved on still agrees
/// with its title, and says in a last line how the installation is now.
pub fn build(
    id: String,
    tell: &Tell,
    decided_by: Option<&HealthSummary>,
    detail: &InstallationDetail,
    at: Timestamp,
) -> Notification {
    let slc = detail.installation.slc.to_string();
    let summary = decided_by.unwrap_or(&detail.summary);
    let servers_down: Vec<ServerPart> = detail
        .servers
        .iter()
        .filter_map(|s| match s.availability {
            crate::availability::Availability::Unavailable { since, missed } => Some(ServerPart {
                id: s.server.to_string(),
                since: since.to_string(),
                missed,
            }),
            _ => None,
        })
        .collect();
    let conditions: Vec<ConditionPart> = detail
        .active_conditions
        .iter()
        .map(|c| ConditionPart {
            server: c.server.to_string(),
            code: c.code.to_string(),
            subject: c.subject.clone(),
            since: c.opened_at.to_string(),
        })
        .collect();
    let (title, since, resolved) = match tell {
        Tell::Problem { health, since } => (
            format!("{slc} is {}", health_words(*health)),
            Some(*since),
            None,
        ),
        Tell::Reminder { health, since, n } => (
            format!("Reminder {n}: {slc} is still {}", health_words(*health)),
            Some(*since),
            None,
        ),
        Tell::AfterMaintenance { health, since } => (
            format!(
                "{slc} is still {} after its maintenance window",
                health_words(*health)
            ),
            Some(*since),
            None,
        ),
        Tell::Resolved {
            was,
            problem_since,
            recovered_at,
        } => (
            format!("Resolved: {slc} is no longer {}", health_words(*was)),
            None,
            Some(ResolvedPart {
                was: health_name(*was).into(),
                problem_since: problem_since.to_string(),
                recovered_at: recovered_at.to_string(),
                lasted_seconds: recovered_at.since(*problem_since).as_secs(),
            }),
        ),
    };
    let mut text = vec![format!(
        "{slc} ({} {}): {} of {} recording servers unavailable, {} late, {} active conditions.",
        detail.installation.product.name(),
        detail.installation.product.version(),
        summary.unavailable,
        summary.servers,
        summary.late,
        summary.active_conditions
    )];
    if !servers_down.is_empty() {
        let ids: Vec<&str> = servers_down.iter().map(|s| s.id.as_str()).collect();
        text.push(format!("Unavailable: {}.", ids.join(", ")));
    }
    // A server's own SERVER_UNAVAILABLE is already in the "Unavailable:"
    // line; the text lists the other conditions (the document has them all).
    let reported: Vec<&ConditionPart> = conditions
        .iter()
        .filter(|c| !c.is_server_unavailable())
        .collect();
    for c in reported.iter().take(20) {
        text.push(if c.subject == c.server {
            format!("{} on {}", c.code, c.server)
        } else {
            format!("{} on {} ({})", c.code, c.subject, c.server)
        });
    }
    if reported.len() > 20 {
        text.push(format!("… and {} more conditions", reported.len() - 20));
    }
    if detail.summary.health != summary.health {
        text.push(format!(
            "Now: {slc} is {} ({} of {} recording servers unavailable).",
            health_words(detail.summary.health),
            detail.summary.unavailable,
            detail.summary.servers
        ));
    }
    Notification {
        schema: SCHEMA.into(),
        id,
        kind: tell.kind().into(),
        at: at.to_string(),
        reseller: detail.installation.reseller.to_string(),
        title,
        text: text.join("\n"),
        installation: Some(installation_part(detail, summary, since)),
        servers_down,
        conditions,
        resolved,
    }
}

/// The installation part of a notification about `detail`, with `summary`
/// as its line.
fn installation_part(
    detail: &InstallationDetail,
    summary: &HealthSummary,
    since: Option<Timestamp>,
) -> InstallationPart {
    InstallationPart {
        slc: detail.installation.slc.to_string(),
        product: product(detail),
        health: health_name(summary.health).into(),
        since: since.map(|t| t.to_string()),
        worst_condition: summary.worst.as_ref().map(ToString::to_string),
        servers: summary.servers,
        unavailable: summary.unavailable,
        late: summary.late,
        offline: summary.health == Health::Offline,
    }
}

fn product(detail: &InstallationDetail) -> String {
    format!(
        "{} {}",
        detail.installation.product.name(),
        detail.installation.product.version()
    )
    .trim()
    .to_owned()
}

/// The notification that an installation's Care Plus ended at `ended`
/// (kind `subscription_expired`, sent once per channel): Carewatch refuses
/// its messages from then on, so nothing else is told about it until it
/// is renewed.
pub fn subscription_expired(
    id: String,
    detail: &InstallationDetail,
    ended: Timestamp,
    at: Timestamp,
) -> Notification {
    let slc = detail.installation.slc.to_string();
    Notification {
        schema: SCHEMA.into(),
        id,
        kind: "subscription_expired".into(),
        at: at.to_string(),
        reseller: detail.installation.reseller.to_string(),
        title: format!("{slc}: Care Plus has expired"),
        text: format!(
            "{slc} ({}): its Care Plus subscription ended at {ended}. Carewatch refuses its \
             recording servers' messages and does not watch it until the subscription is renewed.",
            product(detail)
        ),
        installation: Some(installation_part(detail, &detail.summary, None)),
        servers_down: Vec::new(),
        conditions: Vec::new(),
        resolved: None,
    }
}

/// A test notification for a channel ("send a test").
pub fn test(id: String, reseller: &str, channel_name: &str, at: Timestamp) -> Notification {
    Notification {
        schema: SCHEMA.into(),
        id,
        kind: "test".into(),
        at: at.to_string(),
        reseller: reseller.into(),
        title: format!("Carewatch test notification for \"{channel_name}\""),
        text: "This is a test: the channel works.".into(),
        installation: None,
        servers_down: Vec::new(),
        conditions: Vec::new(),
        resolved: None,
    }
}

impl Notification {
    /// The JSON document (the webhook body).
    pub fn to_json(&self) -> String {
        // Serialising plain strings and numbers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a stored document.
    pub fn from_json(text: &str) -> crate::error::Result<Self> {
        serde_json::from_str(text).map_err(|e| crate::store::columns::corrupt("notification", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ResellerId, Slc};
    use crate::installation::{Installation, Product};

    fn line(health: Health, unavailable: u32) -> HealthSummary {
        HealthSummary {
            health,
            worst: None,
            servers: 3,
            unavailable,
            late: 0,
            active_conditions: 0,
        }
    }

    fn detail_now(summary: HealthSummary) -> InstallationDetail {
        InstallationDetail {
            installation: Installation {
                slc: Slc::new("M01-AAAA-BBBB").expect("slc"),
                reseller: ResellerId::new("acme").expect("reseller"),
                product: Product::new("XProtect Corporate", "2024 R1").expect("product"),
                subscription_expires_at: None,
                consent: true,
                registered_at: Timestamp::from_millis(0),
            },
            summary,
            servers: Vec::new(),
            active_conditions: Vec::new(),
            history: Vec::new(),
            labels: Default::default(),
        }
    }

    #[test]
    fn a_late_built_notification_agrees_with_its_change_and_says_how_it_is_now() {
        let since = Timestamp::from_millis(1_000);
        let tell = Tell::Problem {
            health: Health::Offline,
            since,
        };
        // Built after the site came back: its line is the change's.
        let offline = line(Health::Offline, 3);
        let detail = detail_now(line(Health::Healthy, 0));
        let n = build("k".into(), &tell, Some(&offline), &detail, since);
        let part = n.installation.expect("installation");
        assert!(n.title.contains("Offline"), "{}", n.title);
        assert_eq!(
            (part.health.as_str(), part.unavailable, part.offline),
            ("offline", 3, true)
        );
        assert!(
            n.text.contains("3 of 3 recording servers unavailable"),
            "{}",
            n.text
        );
        assert!(
            n.text
                .ends_with("Now: M01-AAAA-BBBB is healthy (0 of 3 recording servers unavailable)."),
            "{}",
            n.text
        );

        // Built in time (or a reminder, no change in hand): the line now.
        let detail = detail_now(offline.clone());
        for decided_by in [Some(&offline), None] {
            let n = build("k".into(), &tell, decided_by, &detail, since);
            assert_eq!(n.installation.expect("installation").health, "offline");
            assert!(!n.text.contains("Now:"), "{}", n.text);
        }
    }

    #[test]
    fn the_text_leaves_a_servers_own_unavailability_to_its_unavailable_line() {
        use crate::auth::{MessageDigest, SequenceCursor};
        use crate::availability::Availability;
        use crate::condition::ConditionRecord;
        use crate::ids::RecordingServerId;
        use crate::store::ServerRecord;
        let since = Timestamp::from_millis(1_000);
        let server = RecordingServerId::new("rs-1").expect("server");
        let condition = |code, subject: &str| ConditionRecord {
            server: server.clone(),
            code,
            subject: subject.into(),
            detail: String::new(),
            opened_at: since,
            resolved_at: None,
        };
        let mut detail = detail_now(line(Health::Critical, 1));
        detail.servers = vec![ServerRecord {
            slc: detail.installation.slc.clone(),
            server: server.clone(),
            first_seen_at: since,
            last_seen_at: since,
            interval: std::time::Duration::from_secs(60),
            cursor: SequenceCursor {
                sequence: 1,
                digest: MessageDigest([1; 32]),
            },
            availability: Availability::Unavailable { since, missed: 3 },
            counted_from: None,
            next_check_at: None,
        }];
        detail.active_conditions = vec![
            condition(ConditionCode::ServerUnavailable, "rs-1"),
            condition(ConditionCode::CameraUnreachable, "Gate cam"),
        ];
        let tell = Tell::Problem {
            health: Health::Critical,
            since,
        };
        let n = build("k".into(), &tell, None, &detail, since);
        assert_eq!(n.conditions.len(), 2, "the document has every condition");
        let lines: Vec<&str> = n.text.lines().skip(1).collect();
        assert_eq!(
            lines,
            [
                "Unavailable: rs-1.",
                "CAMERA_UNREACHABLE on Gate cam (rs-1)"
            ]
        );
    }
}
