//! The plaintext of a status report, inside the sealed envelope.
//!
//! Format version 1, all integers big-endian, no trailing bytes:
//!
//! ```text
//! u8   format version (1)
//! u16  number of conditions (at most 1024)
//! then, per condition:
//!   u8   code length,    code bytes (A-Z, 0-9, '_', at most 64)
//!   u16  subject length, subject bytes (UTF-8, at most 256)
//!   u16  detail length,  detail bytes (UTF-8, at most 1024)
//! ```
//!
//! The limits apply to the lengths as sent, before the texts are trimmed, so
//! [`MAX_STATUS_PAYLOAD_BYTES`] bounds every valid payload. A heartbeat's
//! plaintext is empty. `PROTOCOL.md` at the repository root is the full
//! description, with test vectors.

use super::MessageKind;
use crate::catalogue::ConditionCode;
use crate::condition::{
    MAX_CONDITIONS_PER_REPORT, MAX_DETAIL_BYTES, MAX_SUBJECT_BYTES, ReportedCondition,
    StatusSnapshot,
};
use crate::error::{Error, Result};

/// The status payload format this code writes and reads.
pub const STATUS_FORMAT_VERSION: u8 = 1;

/// Bytes of the longest condition: code, subject and detail at their longest,
/// with their length prefixes.
pub const MAX_CONDITION_BYTES: usize =
    1 + ConditionCode::MAX_LEN + 2 + MAX_SUBJECT_BYTES + 2 + MAX_DETAIL_BYTES;

/// Bytes of the largest valid status payload (1,381,379): the most
/// conditions, each at its longest. Every valid report fits.
pub const MAX_STATUS_PAYLOAD_BYTES: usize = 1 + 2 + MAX_CONDITIONS_PER_REPORT * MAX_CONDITION_BYTES;

/// Encodes a snapshot.
pub fn encode_status(snapshot: &StatusSnapshot) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + snapshot.conditions().len() * 48);
    out.push(STATUS_FORMAT_VERSION);
    // Lengths are bounded by the snapshot's own validation.
    out.extend_from_slice(&(snapshot.conditions().len() as u16).to_be_bytes());
    for c in snapshot.conditions() {
        out.push(c.code().as_str().len() as u8);
        out.extend_from_slice(c.code().as_str().as_bytes());
        for text in [c.subject(), c.detail()] {
            out.extend_from_slice(&(text.len() as u16).to_be_bytes());
            out.extend_from_slice(text.as_bytes());
        }
    }
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| {
                malformed(format!(
                    "status report ends inside {what} at byte {}",
                    self.at
                ))
            })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn text(&mut self, len: usize, what: &str) -> Result<&'a str> {
        std::str::from_utf8(self.take(len, what)?)
            .map_err(|_| malformed(format!("{what} is not UTF-8")))
    }
}

fn malformed(reason: String) -> Error {
    Error::Malformed { reason }
}

/// Limits are on the bytes as sent, so padding cannot carry a payload past
/// [`MAX_STATUS_PAYLOAD_BYTES`].
fn check_len(index: usize, what: &str, len: usize, max: usize) -> Result<()> {
    if len > max {
        return Err(malformed(format!(
            "condition {index}: the {what} is {len} bytes, at most {max} allowed"
        )));
    }
    Ok(())
}

/// Decodes an opened message: a status report's snapshot, or `None` for a
/// heartbeat (which must be empty).
pub fn decode_message(kind: MessageKind, plaintext: &[u8]) -> Result<Option<StatusSnapshot>> {
    match kind {
        MessageKind::Heartbeat if plaintext.is_empty() => Ok(None),
        MessageKind::Heartbeat => Err(malformed(format!(
            "a heartbeat is empty, this one has {} bytes",
            plaintext.len()
        ))),
        MessageKind::StatusReport => decode_status(plaintext).map(Some),
    }
}

/// Decodes a status report's plaintext. Never panics, whatever the bytes.
pub fn decode_status(bytes: &[u8]) -> Result<StatusSnapshot> {
    let mut r = Reader { bytes, at: 0 };
    let version = r.u8("the format version")?;
    if version != STATUS_FORMAT_VERSION {
        return Err(malformed(format!(
            "status format version {version} is not supported"
        )));
    }
    let count = usize::from(r.u16("the condition count")?);
    if count > MAX_CONDITIONS_PER_REPORT {
        return Err(malformed(format!(
            "{count} conditions, at most {MAX_CONDITIONS_PER_REPORT} allowed"
        )));
    }
    let mut conditions = Vec::with_capacity(count.min(64));
    for index in 0..count {
        let code_len = usize::from(r.u8("a code length")?);
        let code = r.text(code_len, "a condition code")?;
        let subject_len = usize::from(r.u16("a subject length")?);
        check_len(index, "subject", subject_len, MAX_SUBJECT_BYTES)?;
        let subject = r.text(subject_len, "a subject")?;
        let detail_len = usize::from(r.u16("a detail length")?);
        check_len(index, "detail", detail_len, MAX_DETAIL_BYTES)?;
        let detail = r.text(detail_len, "a detail")?;
        let condition = ConditionCode::parse(code)
            .and_then(|code| ReportedCondition::new(code, subject, detail))
            .map_err(|e| malformed(format!("condition {index}: {e}")))?;
        conditions.push(condition);
    }
    if r.at != bytes.len() {
        return Err(malformed(format!(
            "{} unexpected bytes after the last condition",
            bytes.len() - r.at
        )));
    }
    StatusSnapshot::new(conditions).map_err(|e| malformed(e.to_string()))
}
