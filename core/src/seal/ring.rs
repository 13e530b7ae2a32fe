//! The master keys a node opens secrets with: the current one, which seals
//! everything new, and earlier ones kept only while a rotation re-seals
//! what they sealed (the scheme of Fernet's `MultiFernet`). Nothing stored
//! says which key sealed it: each key is tried in turn, and a wrong one
//! fails its tag check at once.

use zeroize::Zeroizing;

use super::{InstallationKey, MasterKey, WrappedKey};
use crate::error::{Error, Result};
use crate::ids::Slc;

/// Which of a node's master keys opened a stored secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedUnder {
    /// The current key: nothing to re-seal.
    Current,
    /// An earlier key: a rotation re-seals it under the current one.
    Previous,
}

/// The current master key and the earlier ones still accepted.
#[derive(Debug, Clone)]
pub struct MasterKeys {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl MasterKeys {
    /// Only `current`.
    pub fn new(current: MasterKey) -> Self {
        Self {
            current,
            previous: Vec::new(),
        }
    }

    /// Also opens what `previous` sealed (tried in their order, after the
    /// current key).
    pub fn with_previous(mut self, previous: Vec<MasterKey>) -> Self {
        self.previous = previous;
        self
    }

    /// The key everything new is sealed under.
    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    /// How many earlier keys are accepted.
    pub fn previous_count(&self) -> usize {
        self.previous.len()
    }

    /// Opens a stored installation key under whichever key sealed it.
    pub fn unwrap_key(
        &self,
        slc: &Slc,
        wrapped: &WrappedKey,
    ) -> Result<(InstallationKey, SealedUnder)> {
        self.first_that_opens(|key| key.unwrap_key(slc, wrapped))
    }

    /// Opens what [`MasterKey::seal_secret`] sealed for `context`, under
    /// whichever key sealed it.
    pub fn open_secret(
        &self,
        context: &[u8],
        sealed: &[u8],
    ) -> Result<(Zeroizing<Vec<u8>>, SealedUnder)> {
        self.first_that_opens(|key| key.open_secret(context, sealed))
    }

    /// The current key's answer, else the first earlier key that opens it;
    /// if none does, the current key's error (it names the secret).
    fn first_that_opens<T>(
        &self,
        open: impl Fn(&MasterKey) -> Result<T>,
    ) -> Result<(T, SealedUnder)> {
        let refused: Error = match open(&self.current) {
            Ok(opened) => return Ok((opened, SealedUnder::Current)),
            Err(e) => e,
        };
        self.previous
            .iter()
            .find_map(|key| open(key).ok())
            .map(|opened| (opened, SealedUnder::Previous))
            .ok_or(refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::KeyId;

    fn slc() -> Slc {
        Slc::new("M01-C01-777").unwrap()
    }

    #[test]
    fn the_current_key_opens_first_and_an_earlier_one_is_said_to_be_previous() {
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let key = InstallationKey::generate(KeyId::new(1));
        let ring = MasterKeys::new(new.clone()).with_previous(vec![old.clone()]);
        let (opened, under) = ring.unwrap_key(&slc(), &old.wrap(&slc(), &key)).unwrap();
        assert_eq!((opened.id(), under), (key.id(), SealedUnder::Previous));
        let (_, under) = ring.unwrap_key(&slc(), &new.wrap(&slc(), &key)).unwrap();
        assert_eq!(under, SealedUnder::Current);
        let secret = old.seal_secret(b"ch-1", b"hook");
        let (plain, under) = ring.open_secret(b"ch-1", &secret).unwrap();
        assert_eq!(
            (plain.as_slice(), under),
            (&b"hook"[..], SealedUnder::Previous)
        );
    }

    #[test]
    fn a_fingerprint_names_one_key_without_showing_it() {
        let (one, other) = (MasterKey::generate(), MasterKey::generate());
        let again = MasterKey::from_hex(&one.to_hex()).unwrap();
        assert_eq!(one.fingerprint(), again.fingerprint());
        assert_ne!(one.fingerprint(), other.fingerprint());
        assert_eq!(one.fingerprint().len(), 16);
        assert!(!one.to_hex().contains(&one.fingerprint()));
    }

    #[test]
    fn a_secret_no_key_opens_is_refused_with_the_current_keys_error() {
        let (old, new, other) = (
            MasterKey::generate(),
            MasterKey::generate(),
            MasterKey::generate(),
        );
        let ring = MasterKeys::new(new).with_previous(vec![old]);
        let wrapped = other.wrap(&slc(), &InstallationKey::generate(KeyId::new(1)));
        let err = ring.unwrap_key(&slc(), &wrapped).unwrap_err();
        assert!(err.to_string().contains("does not open"), "{err}");
        assert!(
            ring.open_secret(b"ch-1", &other.seal_secret(b"ch-1", b"x"))
                .is_err()
        );
        // Bound to its context under every key, not only the current one.
        let ring = MasterKeys::new(MasterKey::generate()).with_previous(vec![other.clone()]);
        assert!(
            ring.open_secret(b"ch-2", &other.seal_secret(b"ch-1", b"x"))
                .is_err()
        );
    }
}
