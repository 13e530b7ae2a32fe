//! TLS identities: loaded from PEM files, or self-signed on first start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// A certificate chain and its private key, PEM-encoded.
#[derive(Clone)]
pub struct TlsIdentity {
    /// Certificate chain (PEM).
    pub cert_pem: String,
    /// Private key (PEM).
    pub key_pem: String,
    /// The certificate and key files it was read from, if it was: a server
    /// reads them again when they change ([`crate::tls_reload`]).
    pub files: Option<(PathBuf, PathBuf)>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TlsIdentity(fingerprint {})",
            self.fingerprint().unwrap_or_else(|| "?".into())
        )
    }
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// Which file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Generating the self-signed certificate failed.
    #[error("generating a self-signed certificate failed: {0}")]
    Generate(String),
    /// A PEM file holds no certificate or no key.
    #[error("{0}")]
    Invalid(String),
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Io {
        path: path.to_owned(),
        source,
    })
}

impl TlsIdentity {
    /// Loads a certificate chain and key from PEM files, checking they hold one.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let identity = Self {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
            files: Some((cert.to_owned(), key.to_owned())),
        };
        if identity.fingerprint().is_none() {
            return Err(TlsError::Invalid(format!(
                "{} holds no PEM certificate",
                cert.display()
            )));
        }
        if !identity.key_pem.contains("PRIVATE KEY-----") {
            return Err(TlsError::Invalid(format!(
                "{} holds no PEM private key",
                key.display()
            )));
        }
        Ok(identity)
    }

    /// Loads `cert.pem`/`key.pem` from `dir`, generating a self-signed pair for
    /// `localhost`, `127.0.0.1` and `::1` (plus `extra_names`) if absent.
    /// Returns the identity and whether it was generated now. An existing
    /// certificate that does not name every one of `extra_names` is refused
    /// rather than silently served: clients would fail to verify it.
    pub fn self_signed_in(dir: &Path, extra_names: &[String]) -> Result<(Self, bool), TlsError> {
        for name in extra_names {
            if rustls::pki_types::ServerName::try_from(name.as_str()).is_err() {
                return Err(TlsError::Invalid(format!(
                    "--tls-name {name:?} is not a DNS name or an IP address \
                     (wildcards are not supported)"
                )));
            }
        }
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        if cert.exists() && key.exists() {
            let identity = Self::from_files(&cert, &key)?;
            let missing = identity.names_not_covered(extra_names)?;
            if !missing.is_empty() {
                return Err(TlsError::Invalid(format!(
                    "{} was made earlier and does not name {}: delete it and {} to make one \
                     that names every --tls-name (clients that pinned the old one must be \
                     told the new fingerprint), or give --tls-cert and --tls-key",
                    cert.display(),
                    missing.join(", "),
                    key.display()
                )));
            }
            return Ok((identity, false));
        }
        let mut names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        names.extend(extra_names.iter().cloned());
        let generated = rcgen::generate_simple_self_signed(names)
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        let identity = Self {
            cert_pem: generated.cert.pem(),
            key_pem: generated.signing_key.serialize_pem(),
            files: Some((cert.clone(), key.clone())),
        };
        // What a restart checks must hold from the start.
        let missing = identity.names_not_covered(extra_names)?;
        if !missing.is_empty() {
            return Err(TlsError::Invalid(format!(
                "a certificate for {} cannot be verified by that name: use --tls-cert and --tls-key",
                missing.join(", ")
            )));
        }
        // The key first, then the certificate renamed into place: a start
        // finds both only once both are whole. A kill mid-write used to
        // leave a partial cert.pem beside key.pem, which every later start
        // refused; now it leaves no cert.pem, and the pair is made again.
        write_private(&key, &identity.key_pem)?;
        replace_synced(&cert, &identity.cert_pem)?;
        Ok((identity, true))
    }

    /// A rustls server configuration offering `alpn` protocols in order.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<rustls::ServerConfig, TlsError> {
        let certified = self.certified_key()?;
        server_config_with(
            Arc::new(rustls::sign::SingleCertAndKey::from(certified)),
            alpn,
        )
    }

    /// The certificate chain and its signing key, checked to belong
    /// together.
    pub fn certified_key(&self) -> Result<Arc<rustls::sign::CertifiedKey>, TlsError> {
        let certs = rustls_pemfile::certs(&mut self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Invalid(format!("certificate chain: {e}")))?;
        if certs.is_empty() {
            return Err(TlsError::Invalid(
                "no certificate in the certificate file".into(),
            ));
        }
        let key = rustls_pemfile::private_key(&mut self.key_pem.as_bytes())
            .map_err(|e| TlsError::Invalid(format!("private key: {e}")))?
            .ok_or_else(|| TlsError::Invalid("no private key in the key file".into()))?;
        let provider = rustls::crypto::ring::default_provider();
        let certified = rustls::sign::CertifiedKey::from_der(certs, key, &provider)
            .map_err(|e| TlsError::Invalid(format!("certificate and key: {e}")))?;
        Ok(Arc::new(certified))
    }

    /// Those of `names` (DNS names or IP addresses) the first certificate is
    /// not valid for.
    fn names_not_covered(&self, names: &[String]) -> Result<Vec<String>, TlsError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let der = rustls_pemfile::certs(&mut self.cert_pem.as_bytes())
            .next()
            .ok_or_else(|| TlsError::Invalid("no certificate".into()))?
            .map_err(|e| TlsError::Invalid(format!("certificate: {e}")))?;
        let cert = webpki::EndEntityCert::try_from(&der)
            .map_err(|e| TlsError::Invalid(format!("certificate: {e}")))?;
        Ok(names
            .iter()
            .filter(|name| {
                rustls::pki_types::ServerName::try_from(name.as_str())
                    .map_or(true, |n| cert.verify_is_valid_for_subject_name(&n).is_err())
            })
            .cloned()
            .collect())
    }

    /// SHA-256 of the first certificate's DER, as colon-separated hex.
    pub fn fingerprint(&self) -> Option<String> {
        let der = rustls_pemfile::certs(&mut self.cert_pem.as_bytes())
            .next()?
            .ok()?;
        let digest = Sha256::digest(&der);
        Some(
            digest
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":"),
        )
    }
}

/// A rustls server configuration whose certificate `resolver` chooses,
/// offering `alpn` protocols in order.
pub fn server_config_with(
    resolver: Arc<dyn rustls::server::ResolvesServerCert>,
    alpn: &[&[u8]],
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Invalid(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Writes a secret file readable by its owner only (on Unix).
/// Writes `path` whole or not at all: a synced temporary file renamed over
/// it, then the directory synced.
fn replace_synced(path: &Path, contents: &str) -> Result<(), TlsError> {
    use std::io::Write;
    let io = |source| TlsError::Io {
        path: path.to_owned(),
        source,
    };
    let temporary = path.with_extension("pem.tmp");
    let mut file = std::fs::File::create(&temporary).map_err(io)?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(io)?;
    #[cfg(unix)]
    if let Some(dir) = path.parent().and_then(|dir| std::fs::File::open(dir).ok()) {
        let _ = dir.sync_all();
    }
    Ok(())
}

pub fn write_private(path: &Path, contents: &str) -> Result<(), TlsError> {
    let io = |source| TlsError::Io {
        path: path.to_owned(),
        source,
    };
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        file.write_all(contents.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io)
    }
    #[cfg(not(unix))]
    {
        std::fs::write(path, contents).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_identity_is_generated_once_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let (first, generated) = TlsIdentity::self_signed_in(dir.path(), &[]).unwrap();
        assert!(generated);
        let (again, generated) = TlsIdentity::self_signed_in(dir.path(), &[]).unwrap();
        assert!(!generated);
        assert_eq!(first.fingerprint(), again.fingerprint());
        assert_eq!(first.fingerprint().unwrap().len(), 32 * 3 - 1);
    }

    #[test]
    fn an_earlier_certificate_without_a_wanted_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let names = ["cw.example.net".to_owned(), "10.0.0.7".to_owned()];
        TlsIdentity::self_signed_in(dir.path(), &names[..1]).unwrap();
        // The names it was made with, and the defaults, are fine.
        TlsIdentity::self_signed_in(dir.path(), &names[..1]).unwrap();
        TlsIdentity::self_signed_in(dir.path(), &["127.0.0.1".to_owned()]).unwrap();
        let err = TlsIdentity::self_signed_in(dir.path(), &names).unwrap_err();
        let said = err.to_string();
        assert!(
            said.contains("does not name 10.0.0.7") && !said.contains("cw.example.net,"),
            "{said}"
        );
        // Names no client could verify are refused before anything is made,
        // so a first start and a restart agree.
        let fresh = tempfile::tempdir().unwrap();
        for bad in ["not a name!", "*.example.net", "[::1]"] {
            let refused = TlsIdentity::self_signed_in(fresh.path(), &[bad.to_owned()]);
            assert!(matches!(refused, Err(TlsError::Invalid(_))), "{bad}");
            assert!(!fresh.path().join("cert.pem").exists(), "{bad}");
        }
        let dotted = ["cw.example.net.".to_owned()];
        if TlsIdentity::self_signed_in(fresh.path(), &dotted).is_ok() {
            TlsIdentity::self_signed_in(fresh.path(), &dotted).expect("a restart agrees");
        }
    }

    /// What a kill during a first start leaves (the key written, the
    /// certificate's temporary file partial) starts as a fresh directory.
    #[test]
    fn an_interrupted_first_start_makes_a_whole_pair_again() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("key.pem"),
            "-----BEGIN PRIVATE KEY-----\nMII",
        )
        .unwrap();
        std::fs::write(dir.path().join("cert.pem.tmp"), "-----BEGIN CERT").unwrap();
        let (made, generated) = TlsIdentity::self_signed_in(dir.path(), &[]).unwrap();
        assert!(generated);
        let (again, generated) = TlsIdentity::self_signed_in(dir.path(), &[]).unwrap();
        assert!(!generated);
        assert_eq!(made.fingerprint(), again.fingerprint());
        again.server_config(&[b"h2"]).expect("a whole pair");
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["cert.pem", "key.pem"]);
    }

    #[test]
    fn files_without_pem_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "not a key").unwrap();
        assert!(matches!(
            TlsIdentity::from_files(&cert, &key),
            Err(TlsError::Invalid(_))
        ));
    }
}
