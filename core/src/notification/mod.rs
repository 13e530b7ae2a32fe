//! Notifications: tell the reseller, once, reliably, and say "the site", not
//! "N servers".
//!
//! Rules are pure functions here ([`rules`], [`maintenance`]); the facade
//! derives notifications from the durable change feed into the store's
//! outbox in one transaction per step, and delivery (`carewatch-notify`)
//! sends what the outbox holds, at least once, each attempt carrying the
//! same idempotency key.
//!
//! A notification is about an installation, never about one server or one
//! camera: when a site goes Offline, one message lists its servers and
//! conditions. What notifies: an installation turning Critical or Offline
//! (and Attention, if the channel asks for it), its recovery, reminders
//! while it stays unhealthy, and one message after a maintenance window if
//! it is still unhealthy. A state must hold for the channel's hold time
//! before it notifies; a recovery within it sends nothing.

pub mod delivery;
pub mod maintenance;
pub mod payload;
pub mod rules;

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::ids::{ResellerId, Slc};
use crate::team::Login;
use crate::time::Timestamp;

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        field,
        reason: reason.into(),
    }
}

/// A notification channel's public id (16 hex digits).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChannelId(Box<str>);

impl ChannelId {
    /// A new random id.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 8];
        crate::seal::fill_random_bytes(&mut bytes);
        Self(
            bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into(),
        )
    }

    /// Parses an id: 16 hex digits.
    pub fn new(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.len() != 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("channel id", "16 hex digits"));
        }
        Ok(Self(text.to_ascii_lowercase().into()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChannelId({})", self.0)
    }
}

/// Where a channel delivers. URLs of chat webhooks carry their own secret,
/// and addresses are personal data: the store keeps destinations sealed
/// under the master key.
#[derive(Clone, PartialEq, Eq)]
pub enum Destination {
    /// An HTTPS (or HTTP) endpoint that receives the JSON notification,
    /// signed with HMAC-SHA256 ([`delivery::signature_header`]).
    Webhook {
        /// The URL.
        url: String,
    },
    /// Email over the SMTP server configured for `carewatch serve`.
    Email {
        /// Recipients.
        to: Vec<String>,
    },
    /// A Slack incoming webhook.
    Slack {
        /// The webhook URL (a secret).
        url: String,
    },
    /// A Microsoft Teams incoming webhook.
    Teams {
        /// The webhook URL (a secret).
        url: String,
    },
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never prints the URL's secret or the addresses.
        write!(f, "Destination::{}", self.kind())
    }
}

impl Destination {
    /// `webhook`, `email`, `slack` or `teams`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Webhook { .. } => "webhook",
            Self::Email { .. } => "email",
            Self::Slack { .. } => "slack",
            Self::Teams { .. } => "teams",
        }
    }

    /// Checks the URL or addresses.
    pub fn validate(self) -> Result<Self> {
        match &self {
            Self::Webhook { url } | Self::Slack { url } | Self::Teams { url } => check_url(url)?,
            Self::Email { to } => {
                if to.is_empty() || to.len() > 20 {
                    return Err(invalid("email recipients", "1 to 20 addresses"));
                }
                for address in to {
                    check_email(address)?;
                }
            }
        }
        Ok(self)
    }

    /// A description safe to show: the kind and the host or the addresses.
    pub fn describe(&self) -> String {
        match self {
            Self::Webhook { url } | Self::Slack { url } | Self::Teams { url } => {
                format!("{} to {}", self.kind(), host_of(url))
            }
            Self::Email { to } => format!("email to {}", to.join(", ")),
        }
    }

    /// Encodes for sealing: `kind`, a newline, then the URL or the
    /// addresses one per line.
    pub fn encode(&self) -> String {
        match self {
            Self::Webhook { url } | Self::Slack { url } | Self::Teams { url } => {
                format!("{}\n{url}", self.kind())
            }
            Self::Email { to } => format!("email\n{}", to.join("\n")),
        }
    }

    /// The inverse of [`Destination::encode`].
    pub fn decode(text: &str) -> Result<Self> {
        let corrupt = || crate::store::columns::corrupt("channel destination", "not decodable");
        let (kind, rest) = text.split_once('\n').ok_or_else(corrupt)?;
        Ok(match kind {
            "webhook" => Self::Webhook { url: rest.into() },
            "slack" => Self::Slack { url: rest.into() },
            "teams" => Self::Teams { url: rest.into() },
            "email" => Self::Email {
                to: rest.lines().map(str::to_owned).collect(),
            },
            _ => return Err(corrupt()),
        })
    }
}

/// Checks a channel URL as delivery parses it (the `url` crate, which the
/// HTTP client uses), so the host shown is the host it is sent to: a
/// lenient check of its own read `https://a.example\@b.example/` as going
/// to `b.example` where the client sends it to `a.example`.
fn check_url(url: &str) -> Result<()> {
    if url.is_empty()
        || url.len() > 2048
        || url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
    {
        return Err(invalid(
            "url",
            "not a URL (at most 2048 characters, no spaces or backslashes)",
        ));
    }
    let parsed = url::Url::parse(url).map_err(|e| invalid("url", format!("not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(invalid("url", "must start with https:// (or http://)"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("url", "names no host"));
    }
    Ok(())
}

/// Checks an address: a dot-atom local part (ASCII letters, digits and the
/// specials `!#$%&'*+-/=?^_\`{|}~`), `@`, a domain of dot-separated ASCII
/// labels (an internationalised one in its `xn--` form). ASCII only: a mail
/// server without SMTPUTF8 cannot take anything else, and such an address
/// would hold every notification back. The sender also takes quoted local
/// parts and IP-literal domains, refused here as mistakes far more often
/// than meant.
fn check_email(address: &str) -> Result<()> {
    const LOCAL_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";
    let local_ok = |local: &str| {
        (1..=64).contains(&local.len())
            && local.split('.').all(|atom| {
                !atom.is_empty()
                    && atom
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || LOCAL_SPECIALS.contains(c))
            })
    };
    let domain_ok = |domain: &str| {
        (1..=253).contains(&domain.len())
            && domain.contains('.')
            && domain.split('.').all(|label| {
                (1..=63).contains(&label.len())
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
    };
    let ok = address.len() <= 254
        && address
            .split_once('@')
            .is_some_and(|(local, domain)| local_ok(local) && domain_ok(domain));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "email address",
            format!("{address:?} is not an address"),
        ))
    }
}

/// The host (and port) of a URL, as delivery will connect to it, for
/// display: never its user, password, path, query or fragment, where
/// receivers put their secrets.
fn host_of(url: &str) -> String {
    let Ok(parsed) = url::Url::parse(url) else {
        return "(not a URL)".to_owned();
    };
    match (parsed.host_str(), parsed.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => "(no host)".to_owned(),
    }
}

/// What a channel notifies about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRules {
    /// Also installations turning Attention (by default only Critical and
    /// Offline).
    pub attention: bool,
    /// Only these installations (`None`: all of the reseller's).
    pub installations: Option<Vec<Slc>>,
    /// How long a state must hold before it notifies (flap damping).
    pub hold: Duration,
    /// Repeat while unresolved, this often (`None`: never).
    pub reminder: Option<Duration>,
}

/// The most installations a channel may choose (more: all of them).
pub const MAX_CHOSEN_INSTALLATIONS: usize = 1000;

impl Default for ChannelRules {
    /// Critical and Offline, every installation, held two minutes, no reminders.
    fn default() -> Self {
        Self {
            attention: false,
            installations: None,
            hold: Duration::from_secs(120),
            reminder: None,
        }
    }
}

impl ChannelRules {
    /// Checks the times (hold 0 to 24 h, reminders 5 min to 7 days) and the
    /// chosen installations (1 to 1,000, each once: kept sorted).
    pub fn validate(mut self) -> Result<Self> {
        if let Some(only) = &mut self.installations {
            only.sort();
            only.dedup();
            if !(1..=MAX_CHOSEN_INSTALLATIONS).contains(&only.len()) {
                return Err(invalid(
                    "installations",
                    "choose 1 to 1,000 installations, or all of them",
                ));
            }
        }
        if self.hold > Duration::from_secs(24 * 3600) {
            return Err(invalid("hold", "at most 24 hours"));
        }
        if let Some(every) = self.reminder
            && !(Duration::from_secs(300)..=Duration::from_secs(7 * 86_400)).contains(&every)
        {
            return Err(invalid("reminder", "every 5 minutes to 7 days"));
        }
        Ok(self)
    }

    /// Whether the channel covers this installation.
    pub fn covers(&self, slc: &Slc) -> bool {
        self.installations
            .as_ref()
            .is_none_or(|only| only.contains(slc))
    }
}

/// How a channel's deliveries have gone lately.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeliveryStatus {
    /// When the last attempt ended, and whether it worked.
    pub last_attempt_at: Option<Timestamp>,
    /// The last attempt's error, if it failed.
    pub last_error: Option<String>,
    /// Attempts that failed in a row; [`FAILING_AFTER`] or more flags it.
    pub failures_in_a_row: u32,
}

/// Consecutive failed attempts after which a channel is shown as failing.
pub const FAILING_AFTER: u32 = 5;

impl DeliveryStatus {
    /// Whether the channel keeps failing.
    pub fn failing(&self) -> bool {
        self.failures_in_a_row >= FAILING_AFTER
    }
}

/// A channel as the store keeps it: the destination and signing secret
/// sealed under the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRecord {
    /// Its id.
    pub id: ChannelId,
    /// Whose it is.
    pub reseller: ResellerId,
    /// What the reseller called it.
    pub name: String,
    /// `webhook`, `email`, `slack`, `teams` (also inside the sealed part).
    pub kind: String,
    /// [`Destination::encode`] and the signing secret, sealed.
    pub sealed: Vec<u8>,
    /// What it notifies about.
    pub rules: ChannelRules,
    /// When and by whom it was made.
    pub created_at: Timestamp,
    /// Who made it.
    pub created_by: Login,
    /// How its deliveries went.
    pub status: DeliveryStatus,
}

/// A (channel, installation) pair's [`rules::Phase`] as stored, with when
/// it next needs a tick ([`rules::next_due`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationState {
    /// The channel.
    pub channel: ChannelId,
    /// The installation.
    pub slc: Slc,
    /// Where it stands ([`rules::Phase::Quiet`] deletes the row).
    pub phase: rules::Phase,
    /// When to look at it again without a health change.
    pub due_at: Option<Timestamp>,
}

/// A notification to deliver, as the outbox keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Its position in the outbox.
    pub id: u64,
    /// The channel it goes to.
    pub channel: ChannelId,
    /// The reseller.
    pub reseller: ResellerId,
    /// The installation (none for a test).
    pub slc: Option<Slc>,
    /// The idempotency key, sent with every attempt.
    pub key: String,
    /// The [`payload::Notification`] as JSON: every attempt sends it as is.
    pub body: String,
    /// When it was decided.
    pub created_at: Timestamp,
    /// Attempts so far.
    pub attempts: u32,
    /// When it may be tried (again).
    pub next_attempt_at: Timestamp,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// When it was delivered.
    pub delivered_at: Option<Timestamp>,
    /// When it was given up on (kept, with its error, for the reseller to see).
    pub failed_at: Option<Timestamp>,
}

/// A notification to put in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutboxEntry {
    /// The channel.
    pub channel: ChannelId,
    /// The reseller.
    pub reseller: ResellerId,
    /// The installation (none for a test).
    pub slc: Option<Slc>,
    /// The idempotency key: one entry per key (a second is ignored).
    pub key: String,
    /// The JSON notification.
    pub body: String,
    /// When it was decided.
    pub created_at: Timestamp,
    /// When it may first be tried: when it was decided, or later when it is
    /// held until a maintenance window over its installation ends
    /// ([`Self::held`]).
    pub first_attempt_at: Timestamp,
}

/// How an attempt to deliver ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Delivered.
    Delivered,
    /// Failed; try again at this instant.
    Retry {
        /// When.
        at: Timestamp,
        /// Why it failed (no secrets: URLs are shown by host only).
        error: String,
    },
    /// Failed for good (too many attempts, or a permanent refusal).
    Failed {
        /// Why.
        error: String,
    },
    /// Not counted: Carewatch's own delivery settings are missing or do
    /// not work (no SMTP server configured, the SMTP server unreachable or
    /// refusing Carewatch's sign-in), its own storage could not read the
    /// channels, or it was held back unsent because
    /// another attempt of its batch to the same channel had just failed.
    /// Tried again at `at` without counting an attempt or a failure of the
    /// channel, so an operator's mistake neither gives notifications up nor
    /// flags every reseller's channel, and a dead receiver costs one attempt
    /// a batch; the error is shown.
    Deferred {
        /// When to try again.
        at: Timestamp,
        /// Why (no secrets).
        error: String,
    },
}

/// Which outbox entries to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxFilter {
    /// Not delivered and not given up.
    Pending,
    /// Given up on.
    Failed,
    /// Everything, newest first.
    All,
}

/// Where the notifier stood when a step took its lease: the feed position
/// it had processed, and how many times since the store began states were
/// made due from outside the notifier (a maintenance window made or
/// deleted, an installation's messages accepted again). A step's commit is
/// written only if both are unchanged: one that read the states before such
/// a nudge would otherwise write its view of them over it, and the window
/// (or the resumed installation) would not be looked at when it must.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifierMark {
    /// The feed position processed.
    pub position: crate::feed::EventId,
    /// States made due from outside the notifier, counted.
    pub nudges: u64,
}

/// One step of the notifier, written in one transaction by the node that
/// holds the notifier lease: the states, the outbox entries, and the feed
/// position they were derived up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifierCommit {
    /// The node (it must still hold the lease).
    pub node: String,
    /// Where the step started (must still be where the notifier stands).
    pub from: NotifierMark,
    /// The feed position it processed up to.
    pub to: crate::feed::EventId,
    /// States to store (a Quiet phase deletes the row).
    pub states: Vec<NotificationState>,
    /// Notifications to put in the outbox.
    pub outbox: Vec<NewOutboxEntry>,
    /// When set, the entries are inserted already claimed by `node` until
    /// then: the committing node sends them at once, without a claim of its
    /// own (a write, and reading the bodies back); if it cannot, it
    /// releases them when it stops, or they are claimed again when this
    /// claim ends, as after any claim.
    pub claim_until: Option<Timestamp>,
}

impl NotifierCommit {
    /// The entries a commit inserted claimed, as the outbox now holds them:
    /// `ids` has one place per entry of `outbox`, the id it was inserted
    /// with or `None` when it was not (its key was already there, or its
    /// channel or installation is no longer the reseller's). Empty unless
    /// the commit asked for a claim; held entries ([`NewOutboxEntry::held`])
    /// are never claimed.
    pub fn into_claimed(self, ids: Vec<Option<u64>>) -> Vec<OutboxEntry> {
        if self.claim_until.is_none() {
            return Vec::new();
        }
        debug_assert_eq!(ids.len(), self.outbox.len(), "one id place per entry");
        self.outbox
            .into_iter()
            .zip(ids)
            .filter(|(entry, _)| !entry.held())
            .filter_map(|(entry, id)| id.map(|id| entry.stored_as(id)))
            .collect()
    }
}

impl NewOutboxEntry {
    /// Whether it waits before its first attempt (until a maintenance
    /// window over its installation ends): then it is not claimed as it is
    /// written (nobody sends it at once), and the store keeps when it is
    /// held until, so that deleting a window moves it to the end of the
    /// maintenance left, or makes it due.
    pub fn held(&self) -> bool {
        self.first_attempt_at > self.created_at
    }

    /// This entry as the outbox holds it once inserted with `id`: pending,
    /// due at its first attempt, not tried yet.
    pub fn stored_as(self, id: u64) -> OutboxEntry {
        OutboxEntry {
            id,
            channel: self.channel,
            reseller: self.reseller,
            slc: self.slc,
            key: self.key,
            body: self.body,
            created_at: self.created_at,
            attempts: 0,
            next_attempt_at: self.first_attempt_at,
            last_error: None,
            delivered_at: None,
            failed_at: None,
        }
    }
}

/// What [`crate::store::Store::commit_notifications`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// Nothing: the node no longer holds the notifier lease, or the
    /// notifier no longer stands at the step's `from` (another step moved
    /// it, or states were made due meanwhile).
    Refused,
    /// Written. `claimed`: the entries inserted claimed by the node, in
    /// the commit's order (empty when it asked for no claim).
    Written {
        /// What the committing node is to send.
        claimed: Vec<OutboxEntry>,
    },
}

impl Committed {
    /// Whether the step was written.
    pub fn written(&self) -> bool {
        matches!(self, Self::Written { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::{ChannelRules, Destination};
    use crate::error::Error;
    use crate::ids::Slc;

    /// A query or fragment right after the host was shown whole.
    #[test]
    fn a_description_shows_the_host_and_never_a_secret() {
        for url in [
            "https://hooks.example.net?token=SECRET",
            "https://hooks.example.net#SECRET",
            "https://user:SECRET@hooks.example.net/path/SECRET?x=SECRET",
            "https://hooks.example.net/SECRET",
        ] {
            let shown = Destination::Webhook { url: url.into() }.describe();
            assert_eq!(shown, "webhook to hooks.example.net", "{url}");
        }
        let shown = Destination::Slack {
            url: "https://hooks.example.net:8443?SECRET".into(),
        }
        .describe();
        assert_eq!(shown, "slack to hooks.example.net:8443");
    }

    /// A URL is taken as the HTTP client takes it: what the list shows as
    /// its host is where notifications go (a backslash ends the host for
    /// the client, so `a.example` here, not `b.example`: refused), and one
    /// the client cannot parse (a port out of range, an unclosed IPv6
    /// address) is refused when the channel is made, not at every delivery.
    #[test]
    fn a_url_is_checked_as_delivery_parses_it() {
        for bad in [
            "https://evil.example\\@hooks.example.net/x",
            "https://hooks.example.net:99999/",
            "https://[::1/x",
            " https://hooks.example.net/x",
            "https://hooks.example.net/x ",
            "ftp://hooks.example.net/x",
            "https://",
            "https://:443/x",
        ] {
            let checked = Destination::Webhook { url: bad.into() }.validate();
            assert!(
                matches!(checked, Err(Error::InvalidInput { field: "url", .. })),
                "{bad:?}: {checked:?}"
            );
        }
        for good in [
            "https://hooks.example.net/x",
            "HTTPS://Hooks.Example.net/x",
            "http://[2001:db8::1]:8080/in",
            "https://user:pw@hooks.example.net/x?y=z#f",
        ] {
            let checked = Destination::Slack { url: good.into() }.validate();
            assert!(checked.is_ok(), "{good:?}: {checked:?}");
        }
        let shown = Destination::Webhook {
            url: "HTTPS://Hooks.Example.net:443/x".into(),
        }
        .describe();
        assert_eq!(
            shown, "webhook to hooks.example.net",
            "as the client connects"
        );
        let shown = Destination::Webhook {
            url: "http://[2001:db8::1]:8080/in".into(),
        }
        .describe();
        assert_eq!(shown, "webhook to [2001:db8::1]:8080");
    }

    /// An address the mail sender would refuse at every delivery, or that
    /// a server without SMTPUTF8 cannot take (non-ASCII), is refused when
    /// the channel is made.
    #[test]
    fn an_email_address_is_checked_as_the_sender_takes_it() {
        for bad in [
            "ops@@acme.example",
            "ops@acme..example",
            "ops@.acme.example",
            "ops@acme.example.",
            "ops@-acme.example",
            ".ops@acme.example",
            "o..ps@acme.example",
            "ops@acme",
            "@acme.example",
            "o ps@acme.example",
            "ops@acme.example\r\nBcc: x@evil.example",
            "ops,x@acme.example",
            "jörg@acme.example",
            "ops@bücher.example",
        ] {
            let checked = Destination::Email {
                to: vec![bad.into()],
            }
            .validate();
            assert!(
                matches!(
                    checked,
                    Err(Error::InvalidInput {
                        field: "email address",
                        ..
                    })
                ),
                "{bad:?}: {checked:?}"
            );
        }
        for good in [
            "ops@acme.example",
            "first.last+carewatch@mail.acme-group.example",
            "o'brien@acme.example",
            "ops@xn--bcher-kva.example",
        ] {
            let checked = Destination::Email {
                to: vec![good.into()],
            }
            .validate();
            assert!(checked.is_ok(), "{good:?}: {checked:?}");
        }
    }

    /// Chosen installations: each kept once, sorted; none, or more than
    /// 1,000, refused (none would never notify).
    #[test]
    fn chosen_installations_are_kept_once_and_bounded() {
        let slc = |n: usize| Slc::new(&format!("M01-C01-{n:04}")).expect("valid SLC");
        let rules = |installations| ChannelRules {
            installations,
            ..ChannelRules::default()
        };
        let checked = rules(Some(vec![slc(2), slc(1), slc(2)]))
            .validate()
            .expect("valid");
        assert_eq!(checked.installations, Some(vec![slc(1), slc(2)]));
        for refused in [Vec::new(), (0..1001).map(slc).collect()] {
            let checked = rules(Some(refused)).validate();
            assert!(
                matches!(
                    checked,
                    Err(Error::InvalidInput {
                        field: "installations",
                        ..
                    })
                ),
                "{checked:?}"
            );
        }
        let all: Vec<Slc> = (0..1000).map(slc).collect();
        assert!(rules(Some(all)).validate().is_ok());
    }
}
