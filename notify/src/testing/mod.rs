//! Real receivers for tests (feature `testing`): an HTTP server over plain
//! TCP or TLS that records every request and answers as the test planned
//! ([`http::Receiver`]), an SMTP server with STARTTLS, implicit TLS and
//! AUTH ([`smtp::SmtpServer`]), and self-signed certificates for both, for
//! the sender to trust through [`crate::SenderOptions::extra_roots_pem`]
//! (`serve --notify-ca-cert`).
//!
//! They are small, strict enough to catch a malformed request, and only
//! listen on loopback addresses.

pub mod http;
pub mod smtp;

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A self-signed certificate and its key.
#[derive(Debug, Clone)]
pub struct SelfSigned {
    /// The certificate, PEM (what the sender is told to trust).
    pub cert_pem: String,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

impl SelfSigned {
    /// A certificate for `localhost` and `127.0.0.1`.
    pub fn localhost() -> Self {
        let generated = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .unwrap_or_else(|e| panic!("generating a certificate: {e}"));
        Self {
            cert_pem: generated.cert.pem(),
            cert_der: generated.cert.der().to_vec(),
            key_der: generated.signing_key.serialize_der(),
        }
    }

    /// A rustls server configuration presenting it.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| {
                b.with_no_client_auth().with_single_cert(
                    vec![CertificateDer::from(self.cert_der.clone())],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
                )
            })
            .unwrap_or_else(|e| panic!("TLS server configuration: {e}"));
        Arc::new(config)
    }
}
