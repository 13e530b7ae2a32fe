//! Connecting to a Carewatch server: TLS trusting a given certificate, and a
//! bearer token on every call.

use std::time::Duration;

use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};

/// Opens a channel to `url` (`https://host:port`, or `http://` for an
/// insecure loopback server). `ca_pem` is the certificate (or bundle) to
/// trust: the server's self-signed one, or its CA's; `None` trusts none,
/// so an `https://` server then cannot be reached.
pub async fn connect(url: &str, ca_pem: Option<&str>) -> Result<Channel, tonic::transport::Error> {
    connect_as(url, ca_pem, None).await
}

/// [`connect`], checking the server's certificate for `server_name`
/// instead of the URL's host: a health check inside a container connects
/// to `localhost`, and a certificate from a CA names the public name only.
pub async fn connect_as(
    url: &str,
    ca_pem: Option<&str>,
    server_name: Option<&str>,
) -> Result<Channel, tonic::transport::Error> {
    let mut endpoint = Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    if url.starts_with("https://") {
        let name = server_name.map_or_else(|| host_of(url), str::to_owned);
        let mut tls = ClientTlsConfig::new().domain_name(name);
        if let Some(ca) = ca_pem {
            tls = tls.ca_certificate(Certificate::from_pem(ca));
        }
        endpoint = endpoint.tls_config(tls)?;
    }
    endpoint.connect().await
}

fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6).to_owned();
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .to_owned()
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(AsciiMetadataValue);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(<redacted>)")
    }
}

impl Bearer {
    /// A bearer interceptor; `None` if the token is not valid metadata text.
    pub fn new(token: &str) -> Option<Self> {
        format!("Bearer {}", token.trim()).parse().ok().map(Self)
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_is_taken_from_the_url() {
        assert_eq!(super::host_of("https://localhost:7443"), "localhost");
        assert_eq!(super::host_of("https://127.0.0.1:7443/x"), "127.0.0.1");
        assert_eq!(super::host_of("https://[::1]:7443"), "::1");
    }
}
