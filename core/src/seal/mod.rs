//! Sealing and opening of recording-server messages.
//!
//! Every message travels inside TLS *and* is sealed with AES-256-GCM under
//! its installation's key. The envelope, version 1:
//!
//! | offset | size   | field                                          |
//! |--------|--------|------------------------------------------------|
//! | 0      | 1      | envelope version, `1`                          |
//! | 1      | 4      | key id, big-endian `u32`                       |
//! | 5      | 12     | nonce, random per message                      |
//! | 17     | n + 16 | ciphertext of the n-byte payload, then its tag |
//!
//! The associated data (authenticated, not sent) binds the envelope to its
//! message: `"carewatch-envelope-v1"`, the version and key id bytes, then the
//! SLC and the recording-server id (each as a big-endian `u16` length and the
//! bytes), the message kind (`1` heartbeat, `2` status report) and the
//! sequence number (big-endian `u64`). A sealed message therefore opens only
//! for the installation, server, kind and sequence it was sealed for: it
//! cannot be moved to another installation, turned from a status report into
//! a heartbeat, or replayed under another sequence number.
//!
//! A heartbeat's payload is empty; a status report's is described in
//! [`payload`].

pub mod key_file;
mod keys;
pub mod payload;

use std::fmt;

use aes_gcm::Nonce;
use aes_gcm::aead::{Aead, Payload};

pub use keys::{InstallationKey, KeyId, MasterKey, WrappedKey};

use crate::ids::{RecordingServerId, Slc};

/// The envelope version this code writes.
pub const ENVELOPE_VERSION: u8 = 1;
/// Bytes before the ciphertext: version, key id, nonce.
pub const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
/// Bytes of the GCM tag.
pub const TAG_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const AAD_LABEL: &[u8] = b"carewatch-envelope-v1";

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// An empty sign of life.
    Heartbeat,
    /// The current set of active conditions.
    StatusReport,
}

impl MessageKind {
    fn code(self) -> u8 {
        match self {
            Self::Heartbeat => 1,
            Self::StatusReport => 2,
        }
    }

    /// A stable lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Heartbeat => "heartbeat",
            Self::StatusReport => "status report",
        }
    }
}

/// What a sealed message is bound to.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// The installation.
    pub slc: &'a Slc,
    /// The recording server.
    pub server: &'a RecordingServerId,
    /// Heartbeat or status report.
    pub kind: MessageKind,
    /// The sender's sequence number.
    pub sequence: u64,
}

/// Why a sealed message did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// Shorter than the smallest possible envelope.
    #[error("envelope truncated: {len} bytes, at least {} needed", HEADER_LEN + TAG_LEN)]
    Truncated {
        /// Its length.
        len: usize,
    },
    /// An envelope version this code does not know.
    #[error(
        "envelope version {0} is not supported (this service reads version {ENVELOPE_VERSION})"
    )]
    UnsupportedVersion(u8),
    /// No active key with this id for the installation.
    #[error("key {0} is not an active key of this installation")]
    UnknownKey(KeyId),
    /// Wrong key, tampered bytes, or sealed for another installation, server,
    /// kind or sequence number.
    #[error("authentication failed: wrong key, altered bytes, or sealed for another message")]
    AuthenticationFailed,
}

fn associated_data(key_id: KeyId, binding: &Binding<'_>) -> Vec<u8> {
    let slc = binding.slc.as_str().as_bytes();
    let server = binding.server.as_str().as_bytes();
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + 5 + 4 + slc.len() + server.len() + 9);
    aad.extend_from_slice(AAD_LABEL);
    aad.push(ENVELOPE_VERSION);
    aad.extend_from_slice(&key_id.get().to_be_bytes());
    // Ids are bounded (64 and 128 bytes), so the u16 lengths cannot truncate.
    for field in [slc, server] {
        aad.extend_from_slice(&(field.len() as u16).to_be_bytes());
        aad.extend_from_slice(field);
    }
    aad.push(binding.kind.code());
    aad.extend_from_slice(&binding.sequence.to_be_bytes());
    aad
}

/// Seals `plaintext` for `binding` under `key`, with a fresh random nonce.
pub fn seal(key: &InstallationKey, binding: &Binding<'_>, plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    keys::fill_random(&mut nonce);
    let aad = associated_data(key.id(), binding);
    let ciphertext = key
        .cipher()
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        // Only fails for inputs beyond GCM's 64 GiB limit, far above any message.
        .unwrap_or_default();
    let mut sealed = Vec::with_capacity(HEADER_LEN + ciphertext.len());
    sealed.push(ENVELOPE_VERSION);
    sealed.extend_from_slice(&key.id().get().to_be_bytes());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    sealed
}

/// The parts of an envelope, checked for shape but not yet authenticated.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    key_id: KeyId,
    nonce: [u8; NONCE_LEN],
    ciphertext: &'a [u8],
}

impl fmt::Debug for Envelope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("key_id", &self.key_id)
            .field("len", &self.ciphertext.len())
            .finish()
    }
}

impl<'a> Envelope<'a> {
    /// Reads the header. Never panics, whatever the bytes.
    pub fn parse(sealed: &'a [u8]) -> Result<Self, SealError> {
        if sealed.len() < HEADER_LEN + TAG_LEN {
            return Err(SealError::Truncated { len: sealed.len() });
        }
        let (header, ciphertext) = sealed.split_at(HEADER_LEN);
        if header[0] != ENVELOPE_VERSION {
            return Err(SealError::UnsupportedVersion(header[0]));
        }
        let mut id = [0u8; 4];
        id.copy_from_slice(&header[1..5]);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&header[5..]);
        Ok(Self {
            key_id: KeyId::new(u32::from_be_bytes(id)),
            nonce,
            ciphertext,
        })
    }

    /// The id of the key it claims to be sealed with.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Authenticates and decrypts under `key` for `binding`.
    pub fn open(&self, key: &InstallationKey, binding: &Binding<'_>) -> Result<Vec<u8>, SealError> {
        if key.id() != self.key_id {
            return Err(SealError::UnknownKey(self.key_id));
        }
        let aad = associated_data(self.key_id, binding);
        key.cipher()
            .decrypt(
                &Nonce::from(self.nonce),
                Payload {
                    msg: self.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::AuthenticationFailed)
    }
}

/// Parses and opens in one step.
pub fn open(
    key: &InstallationKey,
    binding: &Binding<'_>,
    sealed: &[u8],
) -> Result<Vec<u8>, SealError> {
    Envelope::parse(sealed)?.open(key, binding)
}

#[cfg(test)]
mod tests;

pub(crate) use keys::fill_random as fill_random_bytes;
