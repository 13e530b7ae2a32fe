//! Sealing and opening of recording-server messages.
//!
//! Every message travels inside TLS *and* is sealed with AES-256-GCM under
//! its installation's key. The envelope, version 1:
//!
//! | offset | size   | field                                          |
//! |--------|--------|------------------------------------------------|
//! | 0      | 1      | envelope version, `1`                          |
//! | 1      | 4      | key id, big-endian `u32`                       |
//! | 5      | 12     | nonce, unique per message (see `nonce`)        |
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
//! [`payload`]. No valid sealed message is longer than
//! [`MAX_SEALED_MESSAGE_BYTES`]. `PROTOCOL.md` at the repository root
//! describes the whole wire protocol for implementers, with test vectors.

pub mod key_file;
mod keys;
mod nonce;
pub mod payload;
mod ring;

use std::fmt;

use aes_gcm::aead::AeadInOut;
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::{Nonce, Tag};

pub use keys::{InstallationKey, KeyId, MasterKey, WrappedKey};
pub use ring::{MasterKeys, SealedUnder};

use crate::ids::{RecordingServerId, Slc};

/// The envelope version this code writes.
pub const ENVELOPE_VERSION: u8 = 1;
/// Bytes before the ciphertext: version, key id, nonce.
pub const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
/// Bytes of the GCM tag.
pub const TAG_LEN: usize = 16;
/// Bytes of the largest valid sealed message (1,381,412): a status report
/// with the largest valid payload. The one size limit of the protocol.
pub const MAX_SEALED_MESSAGE_BYTES: usize =
    HEADER_LEN + payload::MAX_STATUS_PAYLOAD_BYTES + TAG_LEN;
use nonce::NONCE_LEN;
const AAD_LABEL: &[u8] = b"carewatch-envelope-v1";
/// The longest associated data: both ids at their longest.
const MAX_AAD_LEN: usize =
    AAD_LABEL.len() + 1 + 4 + 2 + Slc::MAX_LEN + 2 + RecordingServerId::MAX_LEN + 1 + 8;

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
    /// Opened with a key other than the one it names (a caller holding
    /// the key, not a lookup by the envelope's key id).
    #[error("sealed with key {sealed_with}, not with the key given ({given})")]
    KeyMismatch {
        /// The key the envelope names.
        sealed_with: KeyId,
        /// The key it was opened with.
        given: KeyId,
    },
    /// Wrong key, tampered bytes, or sealed for another installation, server,
    /// kind or sequence number.
    #[error("authentication failed: wrong key, altered bytes, or sealed for another message")]
    AuthenticationFailed,
}

/// Writes the associated data into `buffer` (on the caller's stack: an
/// allocation, or even returning the buffer by value, was a measurable share
/// of opening a heartbeat); returns the part written.
fn associated_data<'b>(
    buffer: &'b mut [u8; MAX_AAD_LEN],
    key_id: KeyId,
    binding: &Binding<'_>,
) -> &'b [u8] {
    let mut len = 0;
    // The ids are bounded by their MAX_LEN, so the buffer cannot overflow.
    for_each_associated_part(key_id, binding, |part| {
        buffer[len..len + part.len()].copy_from_slice(part);
        len += part.len();
    });
    &buffer[..len]
}

/// The length of the associated data `binding` is sealed with: what a raw
/// AES-GCM baseline must authenticate to compare like with like.
pub fn associated_data_len(binding: &Binding<'_>) -> usize {
    AAD_LABEL.len()
        + 1
        + 4
        + 2
        + binding.slc.as_str().len()
        + 2
        + binding.server.as_str().len()
        + 1
        + 8
}

/// Hands the associated data to `push` in order, in four parts: fixed-size
/// pieces are assembled on the stack first, since every call to `push` is a
/// copy with its own length check (a measurable share of a heartbeat's seal).
#[inline(always)]
fn for_each_associated_part(key_id: KeyId, binding: &Binding<'_>, mut push: impl FnMut(&[u8])) {
    let slc = binding.slc.as_str().as_bytes();
    let server = binding.server.as_str().as_bytes();
    // Ids are bounded by their MAX_LEN, so the u16 lengths cannot truncate.
    let mut head = [0u8; AAD_LABEL.len() + 1 + 4 + 2];
    head[..AAD_LABEL.len()].copy_from_slice(AAD_LABEL);
    head[AAD_LABEL.len()] = ENVELOPE_VERSION;
    head[AAD_LABEL.len() + 1..AAD_LABEL.len() + 5].copy_from_slice(&key_id.get().to_be_bytes());
    head[AAD_LABEL.len() + 5..].copy_from_slice(&(slc.len() as u16).to_be_bytes());
    push(&head);
    push(slc);
    push(&(server.len() as u16).to_be_bytes());
    push(server);
    let mut tail = [0u8; 1 + 8];
    tail[0] = binding.kind.code();
    tail[1..].copy_from_slice(&binding.sequence.to_be_bytes());
    push(&tail);
}

fn push_associated_data(buffer: &mut Vec<u8>, key_id: KeyId, binding: &Binding<'_>) {
    for_each_associated_part(key_id, binding, |part| buffer.extend_from_slice(part));
}

/// Seals `plaintext` for `binding` under `key`, with a fresh nonce.
pub fn seal(key: &InstallationKey, binding: &Binding<'_>, plaintext: &[u8]) -> Vec<u8> {
    seal_with_nonce(key, binding, plaintext, nonce::fresh())
}

/// Seals with a nonce chosen by the caller, to reproduce the protocol's test
/// vectors. Never for real messages: a nonce repeated under one key breaks
/// AES-GCM (it reveals the XOR of the plaintexts and lets tags be forged).
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub fn seal_with_nonce_for_test_vectors(
    key: &InstallationKey,
    binding: &Binding<'_>,
    plaintext: &[u8],
    nonce: [u8; NONCE_LEN],
) -> Vec<u8> {
    seal_with_nonce(key, binding, plaintext, nonce)
}

#[inline(always)]
fn seal_with_nonce(
    key: &InstallationKey,
    binding: &Binding<'_>,
    plaintext: &[u8],
    nonce: [u8; NONCE_LEN],
) -> Vec<u8> {
    let sealed_len = HEADER_LEN + plaintext.len();
    // One allocation, no zeroing: the header, the plaintext (encrypted where
    // it lies), then the associated data, built where the tag will go and
    // overwritten by it.
    let mut sealed = Vec::with_capacity(sealed_len + associated_data_len(binding).max(TAG_LEN));
    let mut header = [0u8; HEADER_LEN];
    header[0] = ENVELOPE_VERSION;
    header[1..5].copy_from_slice(&key.id().get().to_be_bytes());
    header[5..].copy_from_slice(&nonce);
    sealed.extend_from_slice(&header);
    sealed.extend_from_slice(plaintext);
    push_associated_data(&mut sealed, key.id(), binding);
    let (envelope, associated_data) = sealed.split_at_mut(sealed_len);
    let sealed_in_place = key.cipher().encrypt_inout_detached(
        &Nonce::from(nonce),
        associated_data,
        InOutBuf::from(&mut envelope[HEADER_LEN..]),
    );
    match sealed_in_place {
        Ok(tag) => {
            sealed.truncate(sealed_len);
            sealed.extend_from_slice(&tag);
        }
        // Only for inputs beyond GCM's 64 GiB limit, far above any message:
        // send nothing of the plaintext, and the envelope will not open.
        Err(_) => sealed.truncate(HEADER_LEN),
    }
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

    /// Key id, nonce and tag: 32 bytes that, once the envelope has opened,
    /// tell it apart from any other its installation's key opened for the
    /// same binding (see [`crate::auth::MessageDigest`]).
    pub fn identity(&self) -> [u8; 32] {
        let mut identity = [0u8; 32];
        identity[..4].copy_from_slice(&self.key_id.get().to_be_bytes());
        identity[4..4 + NONCE_LEN].copy_from_slice(&self.nonce);
        // `parse` made sure the ciphertext holds at least a tag.
        let tag_start = self.ciphertext.len().saturating_sub(TAG_LEN);
        identity[4 + NONCE_LEN..].copy_from_slice(&self.ciphertext[tag_start..]);
        identity
    }

    /// Authenticates and decrypts under `key` for `binding`.
    pub fn open(&self, key: &InstallationKey, binding: &Binding<'_>) -> Result<Vec<u8>, SealError> {
        if key.id() != self.key_id {
            return Err(SealError::KeyMismatch {
                sealed_with: self.key_id,
                given: key.id(),
            });
        }
        let mut aad_buffer = [0u8; MAX_AAD_LEN];
        let aad = associated_data(&mut aad_buffer, self.key_id, binding);
        // `parse` checked the length, so the split cannot fail.
        let (ciphertext, tag) = self
            .ciphertext
            .split_at_checked(self.ciphertext.len() - TAG_LEN)
            .ok_or(SealError::Truncated {
                len: HEADER_LEN + self.ciphertext.len(),
            })?;
        let tag = Tag::try_from(tag).map_err(|_| SealError::AuthenticationFailed)?;
        // Decrypted straight from the envelope into the result: no copy.
        let mut plaintext = vec![0u8; ciphertext.len()];
        key.cipher()
            .decrypt_inout_detached(
                &Nonce::from(self.nonce),
                aad,
                InOutBuf::new(ciphertext, &mut plaintext)
                    .map_err(|_| SealError::AuthenticationFailed)?,
                &tag,
            )
            .map_err(|_| SealError::AuthenticationFailed)?;
        Ok(plaintext)
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
#[cfg(test)]
mod vectors;

pub(crate) use keys::fill_random as fill_random_bytes;
