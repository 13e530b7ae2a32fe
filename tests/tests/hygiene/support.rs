//! The server under test, its provisioning, and clients from chosen addresses.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use carewatch_cli::simulate::Fleet;
use carewatch_core::ids::{ResellerId, Slc};
use carewatch_grpc::proto;
use carewatch_grpc::status::ERROR_KIND_KEY;
use carewatch_tests::process::{ServeConfig, ServerProcess, binary};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// One at a time: several assert on timings a neighbour's load would blur.
pub(crate) static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `serve --shutdown-grace`'s default.
pub(crate) const GRACE: Duration = Duration::from_secs(5);
/// Another loopback address: not subject to 127.0.0.1's per-address limits.
pub(crate) const OTHER_ADDRESS: [u8; 4] = [127, 0, 0, 2];

pub(crate) async fn start(data: &tempfile::TempDir) -> ServerProcess {
    let config = ServeConfig::new(
        binary(env!("CARGO_BIN_EXE_carewatch-under-test")),
        data.path(),
    )
    .args(["--heartbeat-interval", "1s", "--jitter", "200ms"]);
    ServerProcess::start(config).await
}

/// A reseller with `sites` installations of `servers` servers each.
pub(crate) async fn provision(
    server: &ServerProcess,
    sites: usize,
    servers: usize,
) -> (String, Fleet) {
    let mut admin = server.admin().await;
    let token = admin
        .create_reseller(proto::CreateResellerRequest {
            id: "acme".into(),
            name: "ACME".into(),
        })
        .await
        .expect("reseller created")
        .into_inner()
        .token;
    let reseller = ResellerId::new("acme").expect("id");
    let mut fleet = Fleet::default();
    for n in 1..=sites {
        let slc = Slc::new(&format!("HYG-SITE-{n:04}")).expect("SLC");
        fleet
            .provision(&mut admin, &reseller, &slc, ("XProtect", "2024"), servers)
            .await
            .expect("site provisioned");
    }
    (token, fleet)
}

/// A channel from another loopback address than the test's other clients.
pub(crate) async fn channel_from(server: &ServerProcess, source: [u8; 4]) -> Channel {
    let tls = ClientTlsConfig::new()
        .domain_name("127.0.0.1")
        .ca_certificate(Certificate::from_pem(server.cert_pem()));
    Endpoint::from_shared(server.url())
        .expect("URL")
        .local_address(Some(IpAddr::from(source)))
        .connect_timeout(Duration::from_secs(2))
        .tls_config(tls)
        .expect("TLS settings")
        .connect()
        .await
        .expect("connects from another address")
}

/// A TLS connection, handshake done (ALPN h2), that has sent nothing yet.
pub(crate) async fn tls_connect(
    server: &ServerProcess,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut server.cert_pem().as_bytes()) {
        roots
            .add(cert.expect("PEM certificate"))
            .expect("trusted certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(server.addr())
        .await
        .expect("TCP connection");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("server name");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake")
}

pub(crate) fn kind(status: &tonic::Status) -> Option<&str> {
    status
        .metadata()
        .get(ERROR_KIND_KEY)
        .and_then(|v| v.to_str().ok())
}
