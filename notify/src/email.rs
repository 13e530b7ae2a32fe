//! Email over SMTP (lettre on tokio with rustls): the server from `carewatch
//! serve --smtp-url`, its password never shown.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use carewatch_core::notification::OutboxEntry;
use carewatch_core::notification::payload::Notification;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::render;
use crate::sender::{Attempt, SenderError, USER_AGENT};

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: STARTTLS, required (a server without it is refused).
    StartTls,
    /// `smtps://`: TLS from the first byte (port 465).
    Tls,
    /// `smtp+insecure://`: no TLS at all, only to a loopback address (tests,
    /// or a relay on the same machine).
    Plaintext,
}

/// An SMTP server: `smtp://[user[:password]@]host[:port]` (STARTTLS
/// required, port 587 by default), `smtps://…` (implicit TLS, port 465) or
/// `smtp+insecure://…` (plaintext, loopback only, port 25). User and
/// password are percent-decoded. Its `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    /// How the connection is protected.
    pub security: SmtpSecurity,
    /// Host name or IP address.
    pub host: String,
    /// Port.
    pub port: u16,
    user: Option<String>,
    password: Option<Zeroizing<String>>,
}

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpUrl")
            .field("security", &self.security)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// The one error for any malformed SMTP URL: it never repeats the input,
/// which may hold a password.
const URL_FORMAT: &str = "not an SMTP URL: use smtp://[user:password@]host[:port] (STARTTLS), \
     smtps://[user:password@]host[:465] (TLS) or smtp+insecure://127.0.0.1:port (plaintext, loopback only)";

impl FromStr for SmtpUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (scheme, rest) = text.split_once("://").ok_or(URL_FORMAT)?;
        let (security, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "smtp" => (SmtpSecurity::StartTls, 587),
            "smtps" => (SmtpSecurity::Tls, 465),
            "smtp+insecure" => (SmtpSecurity::Plaintext, 25),
            _ => return Err(URL_FORMAT.into()),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) || authority.chars().any(char::is_whitespace) {
            return Err(URL_FORMAT.into());
        }
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, password) = match info.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (info, None),
                };
                let user = percent_decode(user).ok_or(URL_FORMAT)?;
                let password = match password {
                    Some(p) => Some(Zeroizing::new(percent_decode(p).ok_or(URL_FORMAT)?)),
                    None => None,
                };
                if user.is_empty() {
                    return Err(URL_FORMAT.into());
                }
                (Some(user), password)
            }
        };
        let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or(URL_FORMAT)?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(URL_FORMAT.into()),
            };
            (host.to_owned(), port)
        } else {
            match hostport.split_once(':') {
                Some((host, port)) => (host.to_owned(), Some(port)),
                None => (hostport.to_owned(), None),
            }
        };
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or(URL_FORMAT)?,
            None => default_port,
        };
        if host.is_empty() {
            return Err(URL_FORMAT.into());
        }
        if security == SmtpSecurity::Plaintext && !is_loopback(&host) {
            return Err(
                "smtp+insecure:// (no TLS) is only allowed to a loopback address; use smtp:// (STARTTLS) or smtps://"
                    .into(),
            );
        }
        Ok(Self {
            security,
            host,
            port,
            user,
            password,
        })
    }
}

impl SmtpUrl {
    /// The user it signs in as, if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// `smtp://host:port` and the like, without credentials: for logs.
    pub fn describe(&self) -> String {
        let scheme = match self.security {
            SmtpSecurity::StartTls => "smtp",
            SmtpSecurity::Tls => "smtps",
            SmtpSecurity::Plaintext => "smtp+insecure",
        };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parses a sender address, `carewatch@example.net` or `Carewatch
/// <carewatch@example.net>` (`serve --smtp-from`).
pub fn parse_mailbox(text: &str) -> Result<Mailbox, String> {
    text.trim()
        .parse::<Mailbox>()
        .map_err(|e| format!("not an email address ({e})"))
}

/// The SMTP server and the sender address.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// The server.
    pub url: SmtpUrl,
    /// The `From` address.
    pub from: Mailbox,
}

/// `X-Carewatch-Idempotency-Key`: the same on every attempt.
#[derive(Debug, Clone)]
struct IdempotencyKey(String);

impl Header for IdempotencyKey {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Carewatch-Idempotency-Key")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// `Auto-Submitted: auto-generated` (RFC 3834): no vacation replies.
#[derive(Debug, Clone)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

pub(crate) struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    server: String,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("server", &self.server)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    pub(crate) fn new(
        settings: &SmtpSettings,
        roots_pem: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Self, SenderError> {
        let url = &settings.url;
        let tls = || -> Result<TlsParameters, SenderError> {
            let mut builder = TlsParameters::builder(url.host.clone());
            if let Some(pem) = roots_pem {
                let certificate = Certificate::from_pem(pem).map_err(|e| {
                    SenderError::new(format!("the extra trusted certificates: {e}"))
                })?;
                builder = builder.add_root_certificate(certificate);
            }
            builder
                .build_rustls()
                .map_err(|e| SenderError::new(format!("SMTP TLS settings: {e}")))
        };
        let tls = match url.security {
            SmtpSecurity::StartTls => Tls::Required(tls()?),
            SmtpSecurity::Tls => Tls::Wrapper(tls()?),
            SmtpSecurity::Plaintext => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(url.host.clone())
            .port(url.port)
            .tls(tls)
            .timeout(Some(timeout));
        if let Some(user) = &url.user {
            let password = url.password.as_deref().map(String::as_str).unwrap_or("");
            builder = builder.credentials(Credentials::new(user.clone(), password.to_owned()));
        }
        Ok(Self {
            transport: builder.build(),
            from: settings.from.clone(),
            server: url.describe(),
        })
    }

    pub(crate) async fn send(
        &self,
        to: &[String],
        notification: &Notification,
        entry: &OutboxEntry,
    ) -> Attempt {
        let message = match self.message(to, notification, entry) {
            Ok(message) => message,
            Err(e) => return Attempt::Failed(e),
        };
        match self.transport.send(message).await {
            Ok(_) => Attempt::Delivered,
            Err(e) => {
                let error = format!("email via {}: {}", self.server, crate::http::chain(&e));
                // The SMTP server is the operator's, not the channel's:
                // anything about it or its settings (unreachable, no
                // STARTTLS, a certificate, closing, a refused sign-in) is
                // deferred, not counted against the channel. A 5xx refusal
                // of this message is final; a 4xx one is retried.
                let server_side = e.status().is_none_or(|code| {
                    matches!(
                        code.to_string().as_str(),
                        "421" | "454" | "530" | "534" | "535" | "538"
                    )
                });
                if server_side {
                    Attempt::Deferred(error)
                } else if e.is_permanent() {
                    Attempt::Failed(error)
                } else {
                    Attempt::Retry(error)
                }
            }
        }
    }

    fn message(
        &self,
        to: &[String],
        n: &Notification,
        entry: &OutboxEntry,
    ) -> Result<Message, String> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(n.title.clone())
            .message_id(Some(message_id(&entry.key, &self.from)))
            .date(SystemTime::from(entry.created_at))
            .user_agent(USER_AGENT.to_owned())
            .header(IdempotencyKey(entry.key.clone()))
            .header(AutoSubmitted);
        for address in to {
            let mailbox = address
                .parse::<Mailbox>()
                .map_err(|e| format!("recipient {address:?} is not an address: {e}"))?;
            builder = builder.to(mailbox);
        }
        builder
            .multipart(MultiPart::alternative_plain_html(
                render::email_text(n),
                render::email_html(n),
            ))
            .map_err(|e| format!("the email cannot be built: {e}"))
    }
}

/// `<key@sender-domain>`: the key itself when it is a valid message-id
/// left part (it always is for keys Carewatch makes), else its SHA-256.
fn message_id(key: &str, from: &Mailbox) -> String {
    let plain = !key.is_empty()
        && key.len() <= 200
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.+=".contains(&b))
        && !key.starts_with('.')
        && !key.ends_with('.')
        && !key.contains("..");
    let left = if plain {
        key.to_owned()
    } else {
        Sha256::digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    format!("<{left}@{}>", from.email.domain())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_parse_and_never_show_the_password() {
        let url: SmtpUrl = "smtp://alerts%40acme:p%3Ass@mail.example.net"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(url.security, SmtpSecurity::StartTls);
        assert_eq!((url.host.as_str(), url.port), ("mail.example.net", 587));
        assert_eq!(url.user(), Some("alerts@acme"));
        assert_eq!(url.password.as_deref().map(String::as_str), Some("p:ss"));
        let debug = format!("{url:?}");
        assert!(
            !debug.contains("p:ss") && !debug.contains("p%3Ass"),
            "{debug}"
        );
        assert_eq!(url.describe(), "smtp://mail.example.net:587");

        let tls: SmtpUrl = "smtps://mail.example.net"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((tls.security, tls.port), (SmtpSecurity::Tls, 465));
        let local: SmtpUrl = "smtp+insecure://127.0.0.1:2525"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (local.security, local.port),
            (SmtpSecurity::Plaintext, 2525)
        );
        let v6: SmtpUrl = "smtp+insecure://[::1]:25"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v6.host, "::1");

        for bad in [
            "smtp+insecure://mail.example.net:25",
            "http://mail.example.net",
            "smtp://user:secret@mail.example.net/path",
            "smtp://user:secret@mail.example.net:99999",
            "smtp://:secret@mail.example.net",
            "smtp://",
        ] {
            let error = bad.parse::<SmtpUrl>().err().unwrap_or_default();
            assert!(!error.is_empty(), "{bad} accepted");
            assert!(!error.contains("secret"), "{error}");
        }
    }

    #[test]
    fn message_ids_come_from_the_key() {
        let from =
            parse_mailbox("Carewatch <cw@alerts.example.net>").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            message_id("0123456789abcdef.M01-C01-1.problem.1.2", &from),
            "<0123456789abcdef.M01-C01-1.problem.1.2@alerts.example.net>"
        );
        let odd = message_id("a b<c>", &from);
        assert_eq!(odd.len(), 64 + "<@alerts.example.net>".len());
        assert_eq!(odd, message_id("a b<c>", &from), "stable");
    }
}
