//! An SMTP server for tests (RFC 5321, what a submission server needs):
//! EHLO/HELO, STARTTLS or TLS from the first byte, AUTH PLAIN and LOGIN,
//! MAIL, RCPT, DATA (dot-unstuffed), RSET, NOOP, QUIT. It keeps every
//! message it accepted, and answers DATA with planned refusals first.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::SelfSigned;

/// How clients must protect the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// None (`smtp+insecure://`).
    Plaintext,
    /// STARTTLS offered, and required before AUTH and MAIL (`smtp://`).
    StartTls,
    /// TLS from the first byte (`smtps://`).
    Tls,
}

/// A message the server accepted.
#[derive(Debug, Clone)]
pub struct Mail {
    /// When DATA ended.
    pub at: SystemTime,
    /// The envelope sender.
    pub from: String,
    /// The envelope recipients.
    pub to: Vec<String>,
    /// The message as sent (headers and body, CRLF line ends).
    pub data: Vec<u8>,
    /// Who signed in, if anyone.
    pub user: Option<String>,
    /// Whether the connection was TLS.
    pub tls: bool,
}

impl Mail {
    /// The raw message as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

#[derive(Debug, Default)]
struct State {
    mail: Vec<Mail>,
    /// Replies to the next DATA, e.g. `451 4.3.0 try later`.
    refusals: VecDeque<String>,
    /// Failed sign-ins.
    auth_failures: u32,
}

/// A running SMTP server; it stops when dropped.
#[derive(Debug)]
pub struct SmtpServer {
    addr: SocketAddr,
    security: Security,
    tls: Option<SelfSigned>,
    credentials: Option<(String, String)>,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

struct Config {
    security: Security,
    acceptor: Option<TlsAcceptor>,
    credentials: Option<(String, String)>,
    state: Arc<Mutex<State>>,
}

impl SmtpServer {
    /// A server on a loopback port. `credentials`: AUTH required with
    /// this user and password.
    pub async fn start(security: Security, credentials: Option<(&str, &str)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("binding the test SMTP server: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("test SMTP server address: {e}"));
        let tls = (security != Security::Plaintext).then(SelfSigned::localhost);
        let state = Arc::new(Mutex::new(State::default()));
        let credentials = credentials.map(|(u, p)| (u.to_owned(), p.to_owned()));
        let config = Arc::new(Config {
            security,
            acceptor: tls.as_ref().map(|t| TlsAcceptor::from(t.server_config())),
            credentials: credentials.clone(),
            state: state.clone(),
        });
        let task = tokio::spawn(accept(listener, config));
        Self {
            addr,
            security,
            tls,
            credentials,
            state,
            task,
        }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL for `serve --smtp-url`, with the credentials
    /// (percent-encoded) if it has any: `smtp+insecure://127.0.0.1:<port>`,
    /// `smtp://…@localhost:<port>`, `smtps://…@localhost:<port>`.
    pub fn url(&self) -> String {
        let (scheme, host) = match self.security {
            Security::Plaintext => ("smtp+insecure", "127.0.0.1"),
            Security::StartTls => ("smtp", "localhost"),
            Security::Tls => ("smtps", "localhost"),
        };
        let userinfo = self
            .credentials
            .as_ref()
            .map(|(u, p)| format!("{}:{}@", encode(u), encode(p)))
            .unwrap_or_default();
        format!("{scheme}://{userinfo}{host}:{}", self.addr.port())
    }

    /// The certificate to trust (TLS servers).
    pub fn cert_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.cert_pem.as_str())
    }

    /// Answers the next DATA commands with these replies instead of 250.
    pub fn refuse_next(&self, replies: impl IntoIterator<Item = impl Into<String>>) {
        self.lock()
            .refusals
            .extend(replies.into_iter().map(Into::into));
    }

    /// Every accepted message so far.
    pub fn mail(&self) -> Vec<Mail> {
        self.lock().mail.clone()
    }

    /// Failed sign-ins so far.
    pub fn auth_failures(&self) -> u32 {
        self.lock().auth_failures
    }

    /// Waits until `n` messages have been accepted (or `timeout`).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Mail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mail = self.mail();
            if mail.len() >= n || tokio::time::Instant::now() >= deadline {
                return mail;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn accept(listener: TcpListener, config: Arc<Config>) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                sessions.spawn(session(Box::new(stream), config.clone()));
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
}

enum End {
    Closed,
    StartTls,
}

async fn session(stream: Box<dyn Io>, config: Arc<Config>) {
    let mut io: Box<dyn Io> = stream;
    let mut tls = false;
    if config.security == Security::Tls {
        let Some(acceptor) = &config.acceptor else {
            return;
        };
        match acceptor.accept(io).await {
            Ok(stream) => io = Box::new(stream),
            Err(_) => return,
        }
        tls = true;
    }
    let mut greet = true;
    loop {
        match converse(&mut io, &config, tls, greet).await {
            Ok(End::StartTls) => {
                let Some(acceptor) = &config.acceptor else {
                    return;
                };
                match acceptor.accept(io).await {
                    Ok(stream) => io = Box::new(stream),
                    Err(_) => return,
                }
                tls = true;
                greet = false;
            }
            Ok(End::Closed) | Err(_) => return,
        }
    }
}

/// Longest command line accepted.
const MAX_LINE: usize = 4096;

async fn converse(
    io: &mut Box<dyn Io>,
    config: &Config,
    tls: bool,
    greet: bool,
) -> std::io::Result<End> {
    let mut reader = BufReader::new(io);
    if greet {
        reply(&mut reader, "220 carewatch-test ESMTP ready").await?;
    }
    let mut hello = false;
    let mut user: Option<String> = None;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    loop {
        let Some(line) = read_line(&mut reader).await? else {
            return Ok(End::Closed);
        };
        let upper = line.to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("");
        let tls_needed = config.security == Security::StartTls && !tls;
        let auth_needed = config.credentials.is_some() && user.is_none();
        match verb {
            "EHLO" => {
                hello = true;
                let mut lines = vec!["250-carewatch-test".to_owned()];
                if tls_needed {
                    lines.push("250-STARTTLS".into());
                } else if config.credentials.is_some() {
                    lines.push("250-AUTH PLAIN LOGIN".into());
                }
                lines.push("250-8BITMIME".into());
                lines.push("250 SIZE 10485760".into());
                reply(&mut reader, &lines.join("\r\n")).await?;
            }
            "HELO" => {
                hello = true;
                reply(&mut reader, "250 carewatch-test").await?;
            }
            "STARTTLS" if tls_needed => {
                reply(&mut reader, "220 2.0.0 ready to start TLS").await?;
                if !reader.buffer().is_empty() {
                    return Ok(End::Closed);
                }
                return Ok(End::StartTls);
            }
            "AUTH" if !hello => reply(&mut reader, "503 5.5.1 EHLO first").await?,
            "AUTH" if tls_needed => {
                reply(&mut reader, "530 5.7.0 must issue a STARTTLS command first").await?;
            }
            "AUTH" => {
                let Some((expected_user, expected_password)) = &config.credentials else {
                    reply(&mut reader, "503 5.5.1 AUTH not offered").await?;
                    continue;
                };
                let words: Vec<&str> = line.split_whitespace().collect();
                let mechanism = words.get(1).map(|m| m.to_ascii_uppercase());
                let given = match mechanism.as_deref() {
                    Some("PLAIN") => {
                        let response = match words.get(2) {
                            Some(r) => (*r).to_owned(),
                            None => {
                                reply(&mut reader, "334 ").await?;
                                read_line(&mut reader).await?.unwrap_or_default()
                            }
                        };
                        decode_base64(&response).and_then(|plain| {
                            let mut parts = plain.split(|b| *b == 0);
                            let _authzid = parts.next()?;
                            let user = String::from_utf8(parts.next()?.to_vec()).ok()?;
                            let password = String::from_utf8(parts.next()?.to_vec()).ok()?;
                            Some((user, password))
                        })
                    }
                    Some("LOGIN") => {
                        reply(&mut reader, "334 VXNlcm5hbWU6").await?;
                        let u = read_line(&mut reader).await?.unwrap_or_default();
                        reply(&mut reader, "334 UGFzc3dvcmQ6").await?;
                        let p = read_line(&mut reader).await?.unwrap_or_default();
                        decode_base64(&u).zip(decode_base64(&p)).and_then(|(u, p)| {
                            Some((String::from_utf8(u).ok()?, String::from_utf8(p).ok()?))
                        })
                    }
                    _ => {
                        reply(&mut reader, "504 5.5.4 unrecognised authentication type").await?;
                        continue;
                    }
                };
                match given {
                    Some((u, p)) if &u == expected_user && &p == expected_password => {
                        user = Some(u);
                        reply(&mut reader, "235 2.7.0 authentication successful").await?;
                    }
                    _ => {
                        lock(&config.state).auth_failures += 1;
                        reply(&mut reader, "535 5.7.8 authentication credentials invalid").await?;
                    }
                }
            }
            "MAIL" if !hello => reply(&mut reader, "503 5.5.1 EHLO first").await?,
            "MAIL" if tls_needed => {
                reply(&mut reader, "530 5.7.0 must issue a STARTTLS command first").await?;
            }
            "MAIL" if auth_needed => {
                reply(&mut reader, "530 5.7.0 authentication required").await?;
            }
            "MAIL" => match address_after(&line, "FROM:") {
                Some(address) => {
                    from = Some(address);
                    to.clear();
                    reply(&mut reader, "250 2.1.0 ok").await?;
                }
                None => reply(&mut reader, "501 5.5.4 syntax: MAIL FROM:<address>").await?,
            },
            "RCPT" if from.is_none() => reply(&mut reader, "503 5.5.1 MAIL first").await?,
            "RCPT" => match address_after(&line, "TO:") {
                Some(address) if address.contains('@') => {
                    to.push(address);
                    reply(&mut reader, "250 2.1.5 ok").await?;
                }
                _ => reply(&mut reader, "501 5.1.3 bad recipient address").await?,
            },
            "DATA" if to.is_empty() => reply(&mut reader, "503 5.5.1 RCPT first").await?,
            "DATA" => {
                reply(&mut reader, "354 end data with <CR><LF>.<CR><LF>").await?;
                let Some(data) = read_data(&mut reader).await? else {
                    return Ok(End::Closed);
                };
                let refusal = lock(&config.state).refusals.pop_front();
                match refusal {
                    Some(refusal) => reply(&mut reader, &refusal).await?,
                    None => {
                        lock(&config.state).mail.push(Mail {
                            at: SystemTime::now(),
                            from: from.clone().unwrap_or_default(),
                            to: to.clone(),
                            data,
                            user: user.clone(),
                            tls,
                        });
                        reply(&mut reader, "250 2.0.0 queued").await?;
                    }
                }
                from = None;
                to.clear();
            }
            "RSET" => {
                from = None;
                to.clear();
                reply(&mut reader, "250 2.0.0 ok").await?;
            }
            "NOOP" => reply(&mut reader, "250 2.0.0 ok").await?,
            "QUIT" => {
                reply(&mut reader, "221 2.0.0 bye").await?;
                return Ok(End::Closed);
            }
            _ => reply(&mut reader, "502 5.5.2 command not recognised").await?,
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn reply<W: AsyncWrite + Unpin>(w: &mut W, text: &str) -> std::io::Result<()> {
    w.write_all(text.as_bytes()).await?;
    w.write_all(b"\r\n").await?;
    w.flush().await
}

/// One line without its CRLF; `None` at the end of the stream.
async fn read_line<R: AsyncBufReadExt + Unpin>(r: &mut R) -> std::io::Result<Option<String>> {
    let mut bytes = Vec::new();
    let n = r.read_until(b'\n', &mut bytes).await?;
    if n == 0 {
        return Ok(None);
    }
    if bytes.len() > MAX_LINE {
        return Err(std::io::Error::other("line too long"));
    }
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// DATA up to the lone dot, dot-unstuffed, CRLF line ends.
async fn read_data<R: AsyncBufReadExt + Unpin>(r: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line).await? == 0 {
            return Ok(None);
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(Some(data));
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        data.extend_from_slice(line);
        if data.len() > 10 * 1024 * 1024 {
            return Err(std::io::Error::other("message too large"));
        }
    }
}

/// The address in `MAIL FROM:<a>` / `RCPT TO:<a>`.
fn address_after(line: &str, keyword: &str) -> Option<String> {
    let upper = line.to_ascii_uppercase();
    let at = upper.find(keyword)? + keyword.len();
    let rest = line.get(at..)?.trim_start();
    let inner = rest.strip_prefix('<')?;
    let end = inner.find('>')?;
    Some(inner[..end].to_owned())
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text.trim().bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_addresses() {
        assert_eq!(
            decode_base64("AHVzZXIAcGFzcw==").as_deref(),
            Some(&b"\0user\0pass"[..])
        );
        assert_eq!(
            address_after("MAIL FROM:<cw@example.net> SIZE=12", "FROM:").as_deref(),
            Some("cw@example.net")
        );
        assert_eq!(
            address_after("rcpt to: <a@b.c>", "TO:").as_deref(),
            Some("a@b.c")
        );
    }
}
