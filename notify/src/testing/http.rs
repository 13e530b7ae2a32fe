//! An HTTP(S) receiver for tests: records every request (headers and body,
//! when it came, what it was answered) and answers as planned: a status
//! after a delay, in order, then 200.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use super::SelfSigned;

/// How to answer one request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status.
    pub status: u16,
    /// How long to wait before answering.
    pub delay: Duration,
    /// The body.
    pub body: String,
    /// Headers besides the defaults.
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// This status at once, with a short body.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            delay: Duration::ZERO,
            body: format!("test receiver says {status}"),
            headers: Vec::new(),
        }
    }

    /// With the header `name: value`.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// After `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// When its body had arrived.
    pub at: SystemTime,
    /// `POST` and the like.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The request target as sent: the path and query, or the whole URL
    /// when the request was sent to this receiver as a proxy.
    pub target: String,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The status it was answered with (`None` while the answer waits, or
    /// if the connection went away first).
    pub answered: Option<u16>,
}

impl Received {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (`Null` if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

#[derive(Debug, Default)]
struct State {
    plan: VecDeque<Reply>,
    received: Vec<Received>,
}

/// A running receiver; it stops when dropped.
#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    tls: Option<SelfSigned>,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Receiver {
    /// A plain HTTP receiver on a loopback port.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// An HTTPS receiver with a new self-signed certificate for
    /// `localhost` and `127.0.0.1` ([`Receiver::cert_pem`]).
    pub async fn start_tls() -> Self {
        Self::start_with(Some(SelfSigned::localhost())).await
    }

    /// An HTTPS receiver presenting `identity`.
    pub async fn start_with(tls: Option<SelfSigned>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("binding the test receiver: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("test receiver address: {e}"));
        let state = Arc::new(Mutex::new(State::default()));
        let acceptor = tls
            .as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(t.server_config()));
        let task = tokio::spawn(accept(listener, acceptor, state.clone()));
        Self {
            addr,
            tls,
            state,
            task,
        }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port><path>` (https for a TLS receiver).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.addr.port())
    }

    /// The certificate to trust (TLS receivers).
    pub fn cert_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.cert_pem.as_str())
    }

    /// Answers the next requests with these, in order (then 200).
    pub fn plan(&self, replies: impl IntoIterator<Item = Reply>) {
        self.lock().plan.extend(replies);
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// How many requests have come, without copying them: the handlers
    /// wait on the same lock, and a benchmark's 10,000 requests (headers
    /// and bodies) take tens of milliseconds to copy.
    pub fn count(&self) -> usize {
        self.lock().received.len()
    }

    /// Waits until `n` requests have come (or `timeout`), returns them all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.count() < n && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.received()
    }

    /// Waits until `n` requests have been answered 2xx (or `timeout`),
    /// returns every request.
    pub async fn wait_for_accepted(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        let accepted = || {
            self.lock()
                .received
                .iter()
                .filter(|r| r.answered.is_some_and(|s| (200..300).contains(&s)))
                .count()
        };
        while accepted() < n && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.received()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<Mutex<State>>,
) {
    // Dropped with this task: every connection ends with the receiver.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let state = state.clone();
                let acceptor = acceptor.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        handle(request, state.clone())
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                let _ = http.serve_connection(TokioIo::new(tls), service).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle(
    request: Request<Incoming>,
    state: Arc<Mutex<State>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let received = Received {
        at: SystemTime::now(),
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), ToString::to_string),
        target: parts.uri.to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
        answered: None,
    };
    let (index, reply) = {
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        state.received.push(received);
        let reply = state.plan.pop_front().unwrap_or_else(|| Reply {
            status: 200,
            delay: Duration::ZERO,
            body: "ok".into(),
            headers: Vec::new(),
        });
        (state.received.len() - 1, reply)
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    state
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .received[index]
        .answered = Some(reply.status);
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    for (name, value) in &reply.headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}
