//! One attempt to deliver one outbox entry on one channel.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use carewatch_core::OpenedChannel;
use carewatch_core::notification::delivery::{
    IDEMPOTENCY_HEADER, SIGNATURE_HEADER, signature_header,
};
use carewatch_core::notification::payload::Notification;
use carewatch_core::notification::{Destination, OutboxEntry};

use crate::email::{Mailer, SmtpSettings};
use crate::http::Http;
use crate::proxy::ProxyUrl;
use crate::render;

/// The `User-Agent` of every HTTP request, `carewatch/<version>`.
pub const USER_AGENT: &str = concat!("carewatch/", env!("CARGO_PKG_VERSION"));

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The receiver took it (HTTP 2xx, SMTP 250).
    Delivered,
    /// It may work later (connection failed, timed out, HTTP 408, 429 or
    /// 5xx, SMTP 4xx): try again after the backoff.
    Retry(String),
    /// As [`Attempt::Retry`], and the receiver could not be reached at all
    /// (no connection, or no answer within the timeout): the dispatcher
    /// also holds back the channel's other entries of the batch, each of
    /// which would wait as long.
    Unreachable(String),
    /// As [`Attempt::Retry`], and the receiver asked to wait at least this
    /// long (HTTP `Retry-After`).
    RetryAfter(String, Duration),
    /// It will not work as it is (HTTP 4xx, SMTP 5xx, a malformed
    /// destination): give up now.
    Failed(String),
    /// Not the channel's failure: the operator's delivery settings are
    /// missing or do not work (no SMTP server configured, the SMTP server
    /// unreachable or refusing Carewatch's sign-in). Tried again later
    /// without counting an attempt (`DeliveryOutcome::Deferred`).
    Deferred(String),
}

/// What the sender needs besides the channels.
#[derive(Debug, Clone)]
pub struct SenderOptions {
    /// The SMTP server for email channels (`serve --smtp-url`, `--smtp-from`);
    /// without it, email deliveries wait (deferred, not given up) saying so.
    pub smtp: Option<SmtpSettings>,
    /// PEM certificates to trust besides the public (web PKI) roots, for
    /// webhooks and SMTP: a private CA, or a test's self-signed certificate
    /// (`serve --notify-ca-cert`).
    pub extra_roots_pem: Option<Vec<u8>>,
    /// Longest one attempt may take (connecting, sending, the answer).
    pub timeout: Duration,
    /// The HTTP proxy for webhooks, Slack and Teams (`serve
    /// --notify-proxy`); without it they go straight to the receiver.
    pub proxy: Option<ProxyUrl>,
    /// Whether webhooks, Slack and Teams may reach loopback, private and
    /// link-local addresses (`serve --allow-private-webhooks`). Off by
    /// default: a reseller's URL must not reach into the operator's
    /// network. Through a proxy, the proxy decides.
    pub allow_private_addresses: bool,
}

impl Default for SenderOptions {
    fn default() -> Self {
        Self {
            smtp: None,
            extra_roots_pem: None,
            timeout: Duration::from_secs(10),
            proxy: None,
            allow_private_addresses: false,
        }
    }
}

/// Why a sender could not be set up.
#[derive(Debug)]
pub struct SenderError(String);

impl std::fmt::Display for SenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SenderError {}

impl SenderError {
    pub(crate) fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }
}

/// Sends outbox entries: HTTP for webhooks, Slack and Teams, SMTP for email.
#[derive(Debug)]
pub struct Sender {
    http: Http,
    mail: Option<Mailer>,
    timeout: Duration,
}

impl Sender {
    /// A sender with these settings.
    pub fn new(options: SenderOptions) -> Result<Self, SenderError> {
        let roots = options.extra_roots_pem.as_deref();
        if let Some(pem) = roots
            && !String::from_utf8_lossy(pem).contains("-----BEGIN CERTIFICATE-----")
        {
            return Err(SenderError::new(
                "the extra trusted certificates are not PEM certificates",
            ));
        }
        let http = Http::new(
            roots,
            options.timeout,
            options.proxy.as_ref(),
            options.allow_private_addresses,
        )?;
        let mail = options
            .smtp
            .as_ref()
            .map(|smtp| Mailer::new(smtp, roots, options.timeout))
            .transpose()?;
        Ok(Self {
            http,
            mail,
            timeout: options.timeout,
        })
    }

    /// The longest one attempt can take, all timeouts included.
    pub fn longest_attempt(&self) -> Duration {
        self.timeout.saturating_mul(3)
    }

    /// Whether email channels can be served (an SMTP server is configured).
    pub fn has_smtp(&self) -> bool {
        self.mail.is_some()
    }

    /// One attempt at `entry` on `channel`. Never panics on what the
    /// receiver answers; errors describe the destination by host only.
    pub async fn send(&self, channel: &OpenedChannel, entry: &OutboxEntry) -> Attempt {
        let attempt = async {
            match &channel.destination {
                Destination::Webhook { url } => {
                    let Some(secret) = channel.signing_secret.as_deref() else {
                        return Attempt::Failed("the webhook channel has no signing secret".into());
                    };
                    let body = entry.body.as_bytes();
                    let signature = signature_header(secret, unix_now(), body);
                    let headers = [
                        (IDEMPOTENCY_HEADER, entry.key.clone()),
                        (SIGNATURE_HEADER, signature),
                    ];
                    self.http
                        .post("webhook", url, entry.body.clone(), &headers)
                        .await
                }
                Destination::Slack { url } => match parse(entry) {
                    Ok(notification) => {
                        let headers = [(IDEMPOTENCY_HEADER, entry.key.clone())];
                        let body = render::slack(&notification);
                        self.http.post("Slack webhook", url, body, &headers).await
                    }
                    Err(failed) => failed,
                },
                Destination::Teams { url } => match parse(entry) {
                    Ok(notification) => {
                        let headers = [(IDEMPOTENCY_HEADER, entry.key.clone())];
                        let body = render::teams(&notification);
                        self.http.post("Teams webhook", url, body, &headers).await
                    }
                    Err(failed) => failed,
                },
                Destination::Email { to } => {
                    let Some(mail) = &self.mail else {
                        return Attempt::Deferred(
                            "no SMTP server configured (carewatch serve --smtp-url, --smtp-from)"
                                .into(),
                        );
                    };
                    match parse(entry) {
                        Ok(notification) => mail.send(to, &notification, entry).await,
                        Err(failed) => failed,
                    }
                }
            }
        };
        // Each transport has its own timeouts; this bounds the whole attempt.
        match tokio::time::timeout(self.longest_attempt(), attempt).await {
            Ok(attempt) => attempt,
            Err(_) => Attempt::Unreachable(format!(
                "{} delivery timed out after {:?}",
                channel.destination.kind(),
                self.longest_attempt()
            )),
        }
    }
}

fn parse(entry: &OutboxEntry) -> Result<Notification, Attempt> {
    Notification::from_json(&entry.body)
        .map_err(|e| Attempt::Failed(format!("the stored notification cannot be read: {e}")))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
