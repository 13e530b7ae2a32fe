//! A small HTTPS client for the web front end of a real `carewatch serve`,
//! for the `webload` benchmark: one TLS connection per [`Connection`]
//! (HTTP/2 by ALPN, as a browser would, or HTTP/1.1), the server's
//! self-signed certificate trusted, cookies read from `Set-Cookie`, forms
//! URL-encoded, and [`LivePage`]: a server-sent-event stream (`/events`)
//! read in the background, counting its events.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use crate::server::BoxError;

/// The HTTP version a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1: one request at a time per connection.
    Http1,
    /// HTTP/2, negotiated by ALPN (what a browser gets from `carewatch serve`).
    Http2,
}

impl Protocol {
    /// `HTTP/1.1` or `HTTP/2`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Http1 => "HTTP/1.1",
            Self::Http2 => "HTTP/2",
        }
    }
}

/// Opens connections to one server.
#[derive(Clone)]
pub struct WebClient {
    connector: TlsConnector,
    addr: SocketAddr,
    /// `localhost:<port>`: the Host header, and the name the certificate is checked for.
    authority: String,
    protocol: Protocol,
}

impl std::fmt::Debug for WebClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebClient")
            .field("addr", &self.addr)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl WebClient {
    /// A client of the server at `url` (`https://localhost:<port>`, as
    /// [`crate::server::ServerProcess`] gives it) that trusts `ca_pem`.
    pub fn new(url: &str, ca_pem: &str, protocol: Protocol) -> Result<Self, BoxError> {
        let authority = url
            .strip_prefix("https://")
            .ok_or("the server's address is not https://")?
            .trim_end_matches('/')
            .to_owned();
        let port: u16 = authority
            .rsplit_once(':')
            .ok_or("no port in the server's address")?
            .1
            .parse()?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
            roots.add(cert?)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = match protocol {
            Protocol::Http1 => vec![b"http/1.1".to_vec()],
            Protocol::Http2 => vec![b"h2".to_vec()],
        };
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            authority,
            protocol,
        })
    }

    /// The HTTP version its connections speak.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// A new TLS connection, handshake done.
    pub async fn connect(&self) -> Result<Connection, BoxError> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let host = self
            .authority
            .rsplit_once(':')
            .map_or("localhost", |(h, _)| h);
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())?;
        let tls = self.connector.connect(name, tcp).await?;
        let io = TokioIo::new(tls);
        let (sender, driver): (Sender, JoinHandle<()>) = match self.protocol {
            Protocol::Http1 => {
                let (sender, connection) = http1::handshake(io).await?;
                let driver = tokio::spawn(async move {
                    let _ = connection.await;
                });
                (Sender::H1(sender), driver)
            }
            Protocol::Http2 => {
                let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                    .handshake(io)
                    .await?;
                let driver = tokio::spawn(async move {
                    let _ = connection.await;
                });
                (Sender::H2(sender), driver)
            }
        };
        Ok(Connection {
            sender,
            driver,
            authority: self.authority.clone(),
        })
    }
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// One TLS connection; requests on it go one after another.
pub struct Connection {
    sender: Sender,
    driver: JoinHandle<()>,
    authority: String,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// A whole response.
#[derive(Debug)]
pub struct Reply {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

impl Reply {
    /// The value the reply sets cookie `name` to, if it sets it.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next()?.trim().split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_owned())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Connection {
    /// Sends a request for `path`, with `headers` and `body` (a form if
    /// `Some`); returns the response with its body unread.
    pub async fn send(
        &mut self,
        method: http::Method,
        path: &str,
        headers: &[(header::HeaderName, String)],
        form: Option<String>,
    ) -> Result<Response<Incoming>, BoxError> {
        let uri = match self.sender {
            Sender::H1(_) => path.to_owned(),
            Sender::H2(_) => format!("https://{}{path}", self.authority),
        };
        let mut request = Request::builder().method(method).uri(uri);
        if let Sender::H1(_) = self.sender {
            request = request.header(header::HOST, &self.authority);
        }
        for (name, value) in headers {
            request = request.header(name, HeaderValue::from_str(value)?);
        }
        let body = match form {
            Some(form) => {
                request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Full::new(Bytes::from(form))
            }
            None => Full::new(Bytes::new()),
        };
        let request = request.body(body)?;
        let response = match &mut self.sender {
            Sender::H1(sender) => {
                sender.ready().await?;
                sender.send_request(request).await?
            }
            Sender::H2(sender) => {
                sender.ready().await?;
                sender.send_request(request).await?
            }
        };
        Ok(response)
    }

    /// A request whose whole response is read.
    pub async fn fetch(
        &mut self,
        method: http::Method,
        path: &str,
        headers: &[(header::HeaderName, String)],
        form: Option<String>,
    ) -> Result<Reply, BoxError> {
        let response = self.send(method, path, headers, form).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// `GET path` with `headers`, the whole response read.
    pub async fn get(
        &mut self,
        path: &str,
        headers: &[(header::HeaderName, String)],
    ) -> Result<Reply, BoxError> {
        self.fetch(http::Method::GET, path, headers, None).await
    }
}

/// A `Cookie` header of one cookie.
pub fn cookie_header(name: &str, value: &str) -> (header::HeaderName, String) {
    (header::COOKIE, format!("{name}={value}"))
}

/// A URL-encoded form of `fields`.
pub fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What every open live page records, shared with the benchmark.
#[derive(Debug)]
pub struct LiveStats {
    /// When the benchmark began: times below are microseconds since then.
    epoch: Instant,
    /// The SLC whose next `row` event each page should time.
    probe: RwLock<String>,
}

impl LiveStats {
    /// Stats timed from now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            probe: RwLock::new(String::new()),
        })
    }

    /// Microseconds since the epoch.
    pub fn now_micros(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// From now on, the pages time the next `row` event of `slc` (and
    /// forget the last one they timed).
    pub fn probe(&self, slc: &str, pages: &[LivePage]) {
        for page in pages {
            page.state.probe_seen_at.store(0, Ordering::Relaxed);
        }
        *self
            .probe
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = format!("\"slc\":\"{slc}\"");
    }

    fn is_probe(&self, data: &str) -> bool {
        let probe = self
            .probe
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        !probe.is_empty() && data.contains(probe.as_str())
    }
}

#[derive(Debug, Default)]
struct PageState {
    /// Events with data received (not comments or keep-alives).
    events: AtomicU64,
    /// When the probe's row event arrived (µs since the epoch), 0 if not yet.
    probe_seen_at: AtomicU64,
    /// The stream ended or failed.
    ended: AtomicBool,
}

/// An open live page: a `/events` stream on a connection of its own, read
/// in the background until dropped.
#[derive(Debug)]
pub struct LivePage {
    state: Arc<PageState>,
    reader: JoinHandle<()>,
    _connection: Connection,
}

impl Drop for LivePage {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl LivePage {
    /// Opens `path` (`/events?…`) with the session cookie `session` on a
    /// new connection; returns once the response headers say it is an event
    /// stream.
    pub async fn open(
        client: &WebClient,
        path: &str,
        cookie: (header::HeaderName, String),
        stats: Arc<LiveStats>,
    ) -> Result<Self, BoxError> {
        let mut connection = client.connect().await?;
        let response = connection
            .send(
                http::Method::GET,
                path,
                &[cookie, (header::ACCEPT, "text/event-stream".into())],
                None,
            )
            .await?;
        let is_stream = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if response.status() != StatusCode::OK || !is_stream {
            return Err(format!("/events answered {} (not a stream)", response.status()).into());
        }
        let state = Arc::new(PageState::default());
        let reader = tokio::spawn(read_events(response.into_body(), state.clone(), stats));
        Ok(Self {
            state,
            reader,
            _connection: connection,
        })
    }

    /// Events with data received so far.
    pub fn events(&self) -> u64 {
        self.state.events.load(Ordering::Relaxed)
    }

    /// When the probe's row event arrived (µs since the stats' epoch).
    pub fn probe_seen_at(&self) -> Option<u64> {
        Some(self.state.probe_seen_at.load(Ordering::Relaxed)).filter(|&t| t > 0)
    }

    /// Whether the stream ended.
    pub fn ended(&self) -> bool {
        self.state.ended.load(Ordering::Relaxed)
    }
}

/// Reads server-sent events: blocks separated by a blank line, with
/// `event:` and `data:` lines (comments start with `:`).
async fn read_events(mut body: Incoming, state: Arc<PageState>, stats: Arc<LiveStats>) {
    let mut buffer: Vec<u8> = Vec::new();
    loop {
        let frame = match body.frame().await {
            Some(Ok(frame)) => frame,
            _ => break,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buffer.extend_from_slice(&data);
        while let Some(end) = find_blank_line(&buffer) {
            let block: Vec<u8> = buffer.drain(..end.1).collect();
            let block = String::from_utf8_lossy(&block[..end.0]);
            let mut kind = "message";
            let mut payload = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    kind = v.trim();
                } else if let Some(v) = line.strip_prefix("data:") {
                    payload.push_str(v.trim_start());
                }
            }
            if payload.is_empty() {
                continue;
            }
            state.events.fetch_add(1, Ordering::Relaxed);
            if kind == "row" && stats.is_probe(&payload) {
                let now = stats.now_micros().max(1);
                let _ = state.probe_seen_at.compare_exchange(
                    0,
                    now,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
    }
    state.ended.store(true, Ordering::Relaxed);
}

/// The end of the first block (before its blank line) and where the next
/// one starts.
fn find_blank_line(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2));
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_url_encoded() {
        assert_eq!(
            form(&[("csrf", "cwf.ab"), ("password", "a b&c=d")]),
            "csrf=cwf.ab&password=a%20b%26c%3Dd"
        );
    }

    #[test]
    fn event_blocks_end_at_a_blank_line() {
        assert_eq!(
            find_blank_line(b"event: row\ndata: x\n\nid"),
            Some((18, 20))
        );
        assert_eq!(find_blank_line(b"data: x\r\n\r\n"), Some((7, 11)));
        assert_eq!(find_blank_line(b"data: x\n"), None);
    }
}
