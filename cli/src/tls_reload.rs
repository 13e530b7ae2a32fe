//! A certificate served from files that are read again when they change
//! (looked at every minute) or at once on SIGHUP: a renewed certificate
//! (certbot, cert-manager, an operator's copy) reaches new connections
//! without a restart; connections open keep theirs. A pair that does not
//! load (half written, the key not the certificate's) is logged and the
//! pair in service kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::tls::{TlsError, TlsIdentity};

/// How often the files are looked at.
pub const LOOK_EVERY: Duration = Duration::from_secs(60);

/// How long a pair that does not load is given to settle (a renewal
/// between its two renames) before it is reported.
const SETTLE: Duration = Duration::from_secs(2);

/// Makes SIGHUP this process's to handle from now on: a SIGHUP that
/// arrives before the server looks for it (during start-up, a long
/// database wait) would otherwise end the process. Call it early; the
/// server's certificate is read again at its first look anyway.
pub fn claim_hangups() {
    #[cfg(unix)]
    {
        // Registering a handler installs it for the process's lifetime
        // (tokio never removes one); the stream itself is not needed.
        if let Err(e) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            tracing::warn!(error = %e, "cannot listen for SIGHUP: it would end the process");
        }
    }
}

/// What a file looked like: its modification time and length.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// What [`ReloadingCert::reload`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The files are as they were when last read (or there are none).
    Unchanged,
    /// A new pair is served, with this SHA-256 fingerprint.
    Reloaded(String),
    /// The files could not be used; the pair in service is kept.
    Kept(String),
}

/// The certificate new TLS handshakes get.
#[derive(Debug)]
pub struct ReloadingCert {
    files: Option<(PathBuf, PathBuf)>,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' stamps when last read, successfully or not: a bad pair
    /// is reported once, not every minute.
    seen: Mutex<(Stamp, Stamp)>,
}

impl ReloadingCert {
    /// Serves `identity`, reading its files again when they change. The
    /// first look reads them whatever their stamps: they may have been
    /// renewed between `identity`'s reading and now (a start can wait
    /// minutes for its database).
    pub fn new(identity: &TlsIdentity) -> Result<Arc<Self>, TlsError> {
        let current = identity.certified_key()?;
        Ok(Arc::new(Self {
            files: identity.files.clone(),
            current: RwLock::new(current),
            seen: Mutex::new((None, None)),
        }))
    }

    /// Reads the files again if they changed since they were last read, or
    /// whatever they look like when `always` (SIGHUP).
    pub fn reload(&self, always: bool) -> Reload {
        let Some((cert, key)) = &self.files else {
            return Reload::Unchanged;
        };
        let now = (stamp(cert), stamp(key));
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if !always && *seen == now {
                return Reload::Unchanged;
            }
            *seen = now;
        }
        let loaded = TlsIdentity::from_files(cert, key).and_then(|identity| {
            let certified = identity.certified_key()?;
            Ok((certified, identity.fingerprint().unwrap_or_default()))
        });
        match loaded {
            Ok((certified, fingerprint)) => {
                let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
                if current.cert == certified.cert {
                    return Reload::Unchanged;
                }
                *current = certified;
                Reload::Reloaded(fingerprint)
            }
            Err(e) => Reload::Kept(e.to_string()),
        }
    }

    /// [`ReloadingCert::reload`] on a blocking thread (it reads files).
    async fn reload_off_the_runtime(self: &Arc<Self>, always: bool) -> Reload {
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || this.reload(always))
            .await
            .unwrap_or_else(|e| Reload::Kept(format!("the reload stopped: {e}")))
    }

    /// Looks at the files every `every`, and at once on SIGHUP (Unix),
    /// until dropped; logs what changed.
    pub async fn keep_fresh(self: Arc<Self>, every: Duration) {
        if self.files.is_none() {
            return;
        }
        let mut hangups = hangups();
        let mut ticks = tokio::time::interval(every.max(Duration::from_secs(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            let always = tokio::select! {
                _ = ticks.tick() => false,
                Some(()) = next_hangup(&mut hangups) => true,
            };
            let mut outcome = self.reload_off_the_runtime(always).await;
            if matches!(outcome, Reload::Kept(_)) {
                // Caught between the key's rename and the certificate's
                // (a renewal in progress): look again before saying so.
                tokio::time::sleep(SETTLE).await;
                outcome = self.reload_off_the_runtime(true).await;
            }
            match outcome {
                Reload::Unchanged => {}
                Reload::Reloaded(fingerprint) => tracing::info!(
                    fingerprint,
                    "TLS certificate reloaded: new connections get it"
                ),
                Reload::Kept(error) => tracing::error!(
                    error,
                    "TLS certificate not reloaded: still serving the one before"
                ),
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<()>;

fn hangups() -> Hangups {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(hangups) => Some(hangups),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP: certificates are reloaded only when looked at");
                None
            }
        }
    }
    #[cfg(not(unix))]
    None
}

/// The next SIGHUP; never, where there are none.
async fn next_hangup(hangups: &mut Hangups) -> Option<()> {
    #[cfg(unix)]
    if let Some(hangups) = hangups {
        return hangups.recv().await;
    }
    let _ = hangups;
    std::future::pending().await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Moves `from`'s pair over `to`'s, the key first, as a renewal does.
    fn renew(to: &Path, from: &Path) {
        for name in ["key.pem", "cert.pem"] {
            std::fs::copy(from.join(name), to.join("next.pem")).expect("copied");
            std::fs::rename(to.join("next.pem"), to.join(name)).expect("renamed");
        }
    }

    fn served(cert: &ReloadingCert) -> Vec<u8> {
        cert.current.read().unwrap().cert[0].as_ref().to_vec()
    }

    #[test]
    fn changed_files_are_served_and_a_bad_pair_keeps_the_one_before() {
        let (live, next, other) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let (first, _) = TlsIdentity::self_signed_in(live.path(), &[]).unwrap();
        let (second, _) = TlsIdentity::self_signed_in(next.path(), &[]).unwrap();
        TlsIdentity::self_signed_in(other.path(), &[]).unwrap();
        let cert = ReloadingCert::new(&first).unwrap();
        let first_der = served(&cert);
        assert_eq!(cert.reload(false), Reload::Unchanged, "nothing changed");

        // Stamps of equal length could share a second on some filesystems:
        // a SIGHUP (always) reads whatever is there.
        renew(live.path(), next.path());
        assert_eq!(
            cert.reload(true),
            Reload::Reloaded(second.fingerprint().unwrap())
        );
        let second_der = served(&cert);
        assert_ne!(first_der, second_der);

        // A key that is not the certificate's: kept, said once.
        std::fs::copy(other.path().join("key.pem"), live.path().join("key.pem")).unwrap();
        let Reload::Kept(error) = cert.reload(true) else {
            panic!("a mismatched pair was served");
        };
        assert!(error.contains("certificate and key"), "{error}");
        assert_eq!(served(&cert), second_der, "the pair before is kept");
        assert_eq!(cert.reload(false), Reload::Unchanged, "reported once");

        // A half-written certificate: kept.
        std::fs::write(live.path().join("cert.pem"), "-----BEGIN CERT").unwrap();
        assert!(matches!(cert.reload(true), Reload::Kept(_)));
        assert_eq!(served(&cert), second_der);
    }

    #[test]
    fn a_renewal_before_serving_began_is_read_at_the_first_look() {
        let (live, next) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (first, _) = TlsIdentity::self_signed_in(live.path(), &[]).unwrap();
        let (second, _) = TlsIdentity::self_signed_in(next.path(), &[]).unwrap();
        // Renewed while the start waited (same second, same length: the
        // stamps alone could not tell).
        renew(live.path(), next.path());
        let cert = ReloadingCert::new(&first).unwrap();
        assert_eq!(
            cert.reload(false),
            Reload::Reloaded(second.fingerprint().unwrap())
        );
    }

    #[test]
    fn a_change_is_noticed_without_a_signal() {
        let (live, next) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (first, _) = TlsIdentity::self_signed_in(live.path(), &[]).unwrap();
        let (second, _) = TlsIdentity::self_signed_in(next.path(), &[]).unwrap();
        // The live pair an hour old, so that the renewal's stamps differ
        // whatever the filesystem's clock granularity.
        let old = SystemTime::now() - Duration::from_secs(3600);
        for name in ["cert.pem", "key.pem"] {
            let file = std::fs::File::options()
                .append(true)
                .open(live.path().join(name))
                .unwrap();
            file.set_modified(old).unwrap();
        }
        let cert = ReloadingCert::new(&first).unwrap();
        assert_eq!(cert.reload(false), Reload::Unchanged);
        renew(live.path(), next.path());
        assert_eq!(
            cert.reload(false),
            Reload::Reloaded(second.fingerprint().unwrap())
        );
        assert_eq!(cert.reload(false), Reload::Unchanged, "read once");
    }
}
