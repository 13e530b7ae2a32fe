//! A renewed TLS certificate is served without a restart.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use carewatch_cli::tls::TlsIdentity;
use carewatch_tests::process::ServerProcess;

use crate::support;

/// Whether a TLS handshake with `server` succeeds trusting only `cert_pem`.
async fn trusted(server: &ServerProcess, cert_pem: &str) -> bool {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut cert_pem.as_bytes()) {
        roots
            .add(cert.expect("PEM certificate"))
            .expect("trusted certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let Ok(tcp) = tokio::net::TcpStream::connect(server.addr()).await else {
        return false;
    };
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("server name");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .is_ok()
}

/// Replaces `dir`'s file `name` whole (written beside it, then renamed).
fn replace(dir: &Path, name: &str, contents: &str) {
    let next = dir.join(format!("{name}.next"));
    std::fs::write(&next, contents).expect("written");
    std::fs::rename(&next, dir.join(name)).expect("renamed");
}

fn hang_up(server: &ServerProcess) {
    let status = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("runs kill");
    assert!(status.success(), "kill -HUP: {status}");
}

/// Waits up to 20 s for `done`.
async fn eventually(mut done: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The certificate had to be restarted into service (every connection
/// dropped). Now: after the files are replaced and SIGHUP sent, new
/// handshakes get the new certificate, with no restart; a broken pair then
/// is logged and the one before kept, and the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_on_sighup_and_a_broken_one_is_not() {
    let data = tempfile::tempdir().expect("data directory");
    let mut server = support::start(&data).await;
    let before = server.cert_pem().to_owned();
    let next = tempfile::tempdir().expect("directory");
    let (renewed, _) = TlsIdentity::self_signed_in(next.path(), &[]).expect("a new pair");
    assert!(trusted(&server, &before).await, "serving the first pair");
    assert!(
        !trusted(&server, &renewed.cert_pem).await,
        "not the new one yet"
    );

    replace(data.path(), "key.pem", &renewed.key_pem);
    replace(data.path(), "cert.pem", &renewed.cert_pem);
    hang_up(&server);
    assert!(
        eventually(async || trusted(&server, &renewed.cert_pem).await).await,
        "the renewed certificate is served after SIGHUP"
    );
    assert!(!trusted(&server, &before).await, "the old one is not");
    assert!(
        eventually(async || server.stderr_contains("TLS certificate reloaded")).await,
        "the reload is logged"
    );
    assert!(
        !server.stderr_contains("TLS certificate not reloaded"),
        "nothing reported as not reloaded yet"
    );

    replace(
        data.path(),
        "cert.pem",
        "-----BEGIN CERTIFICATE-----\nnot base64",
    );
    hang_up(&server);
    assert!(
        eventually(async || server.stderr_contains("TLS certificate not reloaded")).await,
        "a broken pair is reported"
    );
    assert!(
        trusted(&server, &renewed.cert_pem).await,
        "the pair before is kept"
    );
    assert!(server.is_running(), "and the server serves on");
    server.terminate(support::GRACE * 2).await;
}
