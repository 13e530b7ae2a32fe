//! HTTP POSTs to webhooks, Slack and Teams. Chat webhook URLs carry their
//! own secret in the path, so nothing here ever shows more of a URL than
//! its host and port.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use crate::addresses::{PublicOnly, REFUSED, is_public};
use crate::proxy::ProxyUrl;
use crate::sender::{Attempt, SenderError, USER_AGENT};

/// Bytes of a refusal's body kept in its error.
const SNIPPET: usize = 300;

#[derive(Debug)]
pub(crate) struct Http {
    client: reqwest::Client,
    timeout: Duration,
    /// Kept out of error texts.
    proxy_password: Option<String>,
    /// Whether an IP in a URL must be public (names: the resolver).
    public_only: bool,
}

impl Http {
    pub(crate) fn new(
        roots_pem: Option<&[u8]>,
        timeout: Duration,
        proxy: Option<&ProxyUrl>,
        allow_private_addresses: bool,
    ) -> Result<Self, SenderError> {
        // Through a proxy, the proxy resolves (and its own address is the
        // operator's choice, often a private one).
        let public_only = !allow_private_addresses && proxy.is_none();
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect would send the signed body somewhere else: never.
            .redirect(reqwest::redirect::Policy::none())
            .tls_built_in_root_certs(true);
        // Through the proxy chosen, or straight to the receiver: never a
        // proxy from the environment's HTTP(S)_PROXY.
        builder = match proxy {
            Some(proxy) => builder.proxy(proxy.to_reqwest().map_err(SenderError::new)?),
            None => builder.no_proxy(),
        };
        if public_only {
            builder = builder.dns_resolver(std::sync::Arc::new(PublicOnly));
        }
        if let Some(pem) = roots_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                SenderError::new(format!("the extra trusted certificates: {}", chain(&e)))
            })?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder
            .build()
            .map_err(|e| SenderError::new(format!("HTTP client: {}", chain(&e))))?;
        Ok(Self {
            client,
            timeout,
            proxy_password: proxy.and_then(ProxyUrl::password).map(str::to_owned),
            public_only,
        })
    }

    /// POSTs `body` (JSON) to `url` with `headers`: 2xx delivered; 408, 429,
    /// 5xx and failures to connect or answer in time retried; anything else
    /// given up.
    pub(crate) async fn post(
        &self,
        what: &str,
        url: &str,
        body: String,
        headers: &[(&str, String)],
    ) -> Attempt {
        let Ok(parsed) = reqwest::Url::parse(url) else {
            return Attempt::Failed(format!("{what}: the URL is not valid"));
        };
        let host = host_of(&parsed);
        let place = format!("{what} at {host}");
        if !matches!(parsed.scheme(), "http" | "https") {
            return Attempt::Failed(format!("{place}: only http and https URLs"));
        }
        // An IP in the URL is connected to as is, without the resolver.
        // (The URL parser has normalised it: `0x7f.1` reads 127.0.0.1.)
        let literal = parsed
            .host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|h| h.parse::<IpAddr>().ok());
        if self.public_only && literal.is_some_and(|ip| !is_public(ip)) {
            return Attempt::Failed(format!("{place}: {REFUSED}"));
        }
        let mut map = HeaderMap::new();
        map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in headers {
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) else {
                return Attempt::Failed(format!("{place}: header {name} cannot be sent"));
            };
            map.insert(name, value);
        }
        let response = match self
            .client
            .post(parsed)
            .headers(map)
            .body(body)
            .send()
            .await
        {
            Ok(response) => response,
            Err(e) => return self.failed_request(&place, url, &e),
        };
        let status = response.status();
        if status.is_success() {
            return Attempt::Delivered;
        }
        let asked = asked_wait(response.headers(), std::time::SystemTime::now());
        let snippet = snippet(response).await;
        let mut error = format!("{place} answered HTTP {status}");
        if !snippet.is_empty() {
            error.push_str(": ");
            error.push_str(&scrub(&snippet, url));
        }
        let code = status.as_u16();
        if code == 408 || code == 429 || status.is_server_error() {
            match asked {
                Some(wait) => {
                    error.push_str(&format!(" (asked to retry after {} s)", wait.as_secs()));
                    Attempt::RetryAfter(error, wait)
                }
                None => Attempt::Retry(error),
            }
        } else {
            if status.is_redirection() {
                error.push_str(" (redirects are not followed)");
            }
            Attempt::Failed(error)
        }
    }

    fn failed_request(&self, place: &str, url: &str, e: &reqwest::Error) -> Attempt {
        let what = if e.is_timeout() {
            format!("no answer within {:?}", self.timeout)
        } else if e.is_connect() {
            "could not connect".to_owned()
        } else {
            "the request failed".to_owned()
        };
        let detail = e.without_url_ref().to_string();
        let mut error = scrub(&format!("{place}: {what}: {detail}"), url);
        if let Some(password) = &self.proxy_password {
            error = error.replace(password.as_str(), "<proxy password>");
        }
        if e.is_builder() {
            Attempt::Failed(error)
        } else if e.is_timeout() || e.is_connect() {
            Attempt::Unreachable(error)
        } else {
            Attempt::Retry(error)
        }
    }
}

/// How long a refusal's `Retry-After` asks to wait: delay-seconds or an
/// HTTP date (RFC 9110 §10.2.3); `None` when absent or unreadable.
fn asked_wait(headers: &HeaderMap, now: std::time::SystemTime) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

/// Host and port, for errors.
fn host_of(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// An error and its causes, each once.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// Removes the URL and its path from `text`, in case a library put them in.
fn scrub(text: &str, url: &str) -> String {
    let mut text = text.replace(url, "<url>");
    if let Ok(parsed) = reqwest::Url::parse(url) {
        let path = parsed.path();
        if path.len() > 1 {
            text = text.replace(path, "/<path>");
        }
        if let Some(query) = parsed.query()
            && !query.is_empty()
        {
            text = text.replace(query, "<query>");
        }
    }
    text
}

/// The start of a refusal's body, on one line.
async fn snippet(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < SNIPPET {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(SNIPPET)]);
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `reqwest::Error::without_url` takes the error by value; this keeps a
/// reference usable.
trait WithoutUrlRef {
    fn without_url_ref(&self) -> ErrorText;
}

impl WithoutUrlRef for reqwest::Error {
    fn without_url_ref(&self) -> ErrorText {
        // Display of a reqwest error without its URL: its kind, then the
        // causes (which never hold the URL).
        let kind = if self.is_timeout() {
            "operation timed out"
        } else if self.is_connect() {
            "error trying to connect"
        } else if self.is_body() {
            "error sending the body"
        } else if self.is_decode() {
            "error decoding the answer"
        } else if self.is_redirect() {
            "redirect"
        } else if self.is_builder() {
            "invalid request"
        } else {
            "error sending the request"
        };
        let mut causes = Vec::new();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        ErrorText { kind, causes }
    }
}

#[derive(Debug)]
struct ErrorText {
    kind: &'static str,
    causes: Vec<String>,
}

impl std::fmt::Display for ErrorText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind)?;
        let mut shown: Vec<&str> = vec![self.kind];
        for cause in &self.causes {
            if !shown.iter().any(|s| s.contains(cause.as_str())) {
                write!(f, ": {cause}")?;
                shown.push(cause);
            }
        }
        Ok(())
    }
}

impl std::error::Error for ErrorText {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubbing_removes_the_path_and_query() {
        let url = "https://hooks.slack.com/services/T000/B000/XXXX?token=abc";
        let text = format!("error for url ({url}) at /services/T000/B000/XXXX token=abc");
        let clean = scrub(&text, url);
        assert!(!clean.contains("XXXX"), "{clean}");
        assert!(!clean.contains("abc"), "{clean}");
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                reqwest::header::RETRY_AFTER,
                HeaderValue::from_str(value).expect("header value"),
            );
            asked_wait(&headers, now)
        };
        assert_eq!(with("120"), Some(Duration::from_secs(120)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(with(&later), Some(Duration::from_secs(90)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(with(&earlier), Some(Duration::ZERO));
        assert_eq!(with("soon"), None);
        assert_eq!(with("-5"), None);
        assert_eq!(asked_wait(&HeaderMap::new(), now), None);
    }
}
