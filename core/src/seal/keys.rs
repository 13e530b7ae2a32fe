//! Installation keys, and the master key that wraps them for storage.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::ids::Slc;

pub(crate) fn fill_random(buf: &mut [u8]) {
    // A machine without a working random source cannot seal safely: stop.
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

/// Identifies one key of an installation; increases with each rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(u32);

impl KeyId {
    /// A key id.
    pub const fn new(id: u32) -> Self {
        Self(id)
    }

    /// Its number.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(field: &'static str, text: &str) -> Result<Zeroizing<[u8; 32]>> {
    let invalid = |reason: &str| Error::InvalidInput {
        field,
        reason: reason.to_owned(),
    };
    let text = text.trim().as_bytes();
    if text.len() != 64 {
        return Err(invalid("expected 64 hexadecimal digits (32 bytes)"));
    }
    let mut out = Zeroizing::new([0u8; 32]);
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let digit = |c: u8| {
            (c as char)
                .to_digit(16)
                .ok_or_else(|| invalid("not a hexadecimal digit"))
        };
        *byte = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Ok(out)
}

/// An installation's AES-256 key. Its bytes never appear in `Debug` output
/// and are wiped when dropped.
#[derive(Clone)]
pub struct InstallationKey {
    id: KeyId,
    cipher: Aes256Gcm,
    bytes: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for InstallationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstallationKey({}, <redacted>)", self.id)
    }
}

const KEY_TEXT_PREFIX: &str = "cwk1";

impl InstallationKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(id: KeyId, bytes: [u8; 32]) -> Self {
        let bytes = Zeroizing::new(bytes);
        let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*bytes));
        Self { id, cipher, bytes }
    }

    /// A new random key.
    pub fn generate(id: KeyId) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        fill_random(bytes.as_mut());
        Self::from_bytes(id, *bytes)
    }

    /// Its id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    pub(crate) fn cipher(&self) -> &Aes256Gcm {
        &self.cipher
    }

    /// The key as text for provisioning a recording server: `cwk1:<id>:<64 hex>`.
    /// Treat it as a secret.
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "{KEY_TEXT_PREFIX}:{}:{}",
            self.id.0,
            hex(self.bytes.as_ref())
        ))
    }

    /// Parses [`InstallationKey::to_text`]'s format.
    pub fn from_text(text: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidInput {
            field: "installation key",
            reason: reason.to_owned(),
        };
        let mut parts = text.trim().splitn(3, ':');
        if parts.next() != Some(KEY_TEXT_PREFIX) {
            return Err(invalid("expected the form cwk1:<key id>:<64 hex digits>"));
        }
        let id = parts
            .next()
            .and_then(|id| id.parse::<u32>().ok())
            .ok_or_else(|| invalid("the key id is not a number"))?;
        let bytes = unhex32("installation key", parts.next().unwrap_or_default())?;
        Ok(Self::from_bytes(KeyId(id), *bytes))
    }
}

/// An installation key sealed under the master key, as stored in a database.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The key's id.
    pub id: KeyId,
    /// Nonce, then the sealed key and its tag.
    pub sealed: Vec<u8>,
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WrappedKey({}, {} bytes)", self.id, self.sealed.len())
    }
}

/// The service's key-encryption key. Installation keys are stored only
/// sealed under it, so a copy of the database alone reveals no key. It lives
/// outside the database (a file, a secret store).
#[derive(Clone)]
pub struct MasterKey(Aes256Gcm, Zeroizing<[u8; 32]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

const WRAP_LABEL: &[u8] = b"carewatch-key-wrap-v1";
const SECRET_LABEL: &[u8] = b"carewatch-secret-v1";
const FINGERPRINT_LABEL: &[u8] = b"carewatch-master-key-fingerprint-v1";

impl MasterKey {
    /// A master key from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(
            Aes256Gcm::new(&Key::<Aes256Gcm>::from(bytes)),
            Zeroizing::new(bytes),
        )
    }

    /// A new random master key.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        fill_random(bytes.as_mut());
        Self::from_bytes(*bytes)
    }

    /// 64 hex digits, for a key file. Treat it as a secret.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex(self.1.as_ref()))
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self> {
        Ok(Self::from_bytes(*unhex32("master key", text)?))
    }

    /// A short public name of this key (16 hex digits of an HMAC-SHA256
    /// under it), to tell keys apart in logs and commands without showing
    /// them: the same key always gives the same fingerprint.
    pub fn fingerprint(&self) -> String {
        use hmac::{KeyInit as _, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(self.1.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(FINGERPRINT_LABEL);
        hex(&mac.finalize().into_bytes()[..8])
    }

    fn aad(slc: &Slc, id: KeyId) -> Vec<u8> {
        [WRAP_LABEL, slc.as_str().as_bytes(), &id.0.to_be_bytes()].concat()
    }

    /// Seals an installation key for storage, bound to its SLC and id.
    pub fn wrap(&self, slc: &Slc, key: &InstallationKey) -> WrappedKey {
        let mut nonce = [0u8; 12];
        fill_random(&mut nonce);
        let aad = Self::aad(slc, key.id);
        let ciphertext = self
            .0
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: key.bytes.as_ref(),
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        WrappedKey {
            id: key.id,
            sealed: [&nonce[..], &ciphertext].concat(),
        }
    }

    /// Seals a secret for storage (a channel's destination and signing
    /// key), bound to `context` (e.g. the channel's id) so it opens only
    /// there. Nonce, then ciphertext and tag.
    pub fn seal_secret(&self, context: &[u8], secret: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        fill_random(&mut nonce);
        let aad = [SECRET_LABEL, context].concat();
        let ciphertext = self
            .0
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        [&nonce[..], &ciphertext].concat()
    }

    /// Opens what [`MasterKey::seal_secret`] sealed for `context`.
    pub fn open_secret(&self, context: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let refused = || Error::Storage {
            message: "a stored secret does not open under this master key \
                      (wrong master key, or the stored value was altered)"
                .into(),
            source: None,
        };
        let (nonce, ciphertext) = sealed.split_at_checked(12).ok_or_else(refused)?;
        let mut n = [0u8; 12];
        n.copy_from_slice(nonce);
        let aad = [SECRET_LABEL, context].concat();
        self.0
            .decrypt(
                &Nonce::from(n),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| refused())
    }

    /// Opens a stored key; fails if it was wrapped under another master key,
    /// for another installation, or altered.
    pub fn unwrap_key(&self, slc: &Slc, wrapped: &WrappedKey) -> Result<InstallationKey> {
        let refused = || Error::Storage {
            message: format!(
                "stored key {} of installation {slc} does not open under this master key \
                 (wrong master key, or the stored key was altered)",
                wrapped.id
            ),
            source: None,
        };
        if wrapped.sealed.len() != 12 + 32 + 16 {
            return Err(refused());
        }
        let (nonce, ciphertext) = wrapped.sealed.split_at(12);
        let mut n = [0u8; 12];
        n.copy_from_slice(nonce);
        let aad = Self::aad(slc, wrapped.id);
        let plain = Zeroizing::new(
            self.0
                .decrypt(
                    &Nonce::from(n),
                    Payload {
                        msg: ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| refused())?,
        );
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&plain);
        Ok(InstallationKey::from_bytes(wrapped.id, bytes))
    }
}
