//! The error catalogue: stable condition codes a recording server reports.
//!
//! The list is open-ended: a code this version does not know is kept as
//! [`ConditionCode::Unknown`], stored and shown, never rejected.

use std::fmt;

use crate::error::{Error, Result};

/// How much a condition matters for an installation's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Something needs looking at, recording goes on.
    Warning,
    /// Recording or retention is at risk now.
    Critical,
}

/// An error condition code. Known codes have their own variant.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConditionCode {
    /// Unable to connect to a camera.
    CameraUnreachable,
    /// A recording or archiving drive reached full capacity.
    StorageFull,
    /// Unable to add data to the media database.
    MediaDbWriteFailed,
    /// More cameras installed than camera licenses.
    LicenseOveruse,
    /// The recording server is unavailable: derived by Carewatch from missed
    /// heartbeats, never accepted from a recording server.
    ServerUnavailable,
    /// Could not delete an archive.
    ArchiveDeleteFailed,
    /// Could not delete a file.
    FileDeleteFailed,
    /// Fatal error while processing an archive.
    ArchiveFatalError,
    /// An archive operation failed.
    ArchiveOperationFailed,
    /// Archive file move error(s).
    ArchiveMoveFailed,
    /// A code from a newer recording server: upper-case letters, digits, `_`.
    Unknown(Box<str>),
}

const KNOWN: [(ConditionCode, &str, Severity, &str); 10] = [
    (
        ConditionCode::CameraUnreachable,
        "CAMERA_UNREACHABLE",
        Severity::Warning,
        "unable to connect to a camera",
    ),
    (
        ConditionCode::StorageFull,
        "STORAGE_FULL",
        Severity::Critical,
        "a recording/archiving drive is full",
    ),
    (
        ConditionCode::MediaDbWriteFailed,
        "MEDIA_DB_WRITE_FAILED",
        Severity::Critical,
        "unable to add data to the media database",
    ),
    (
        ConditionCode::LicenseOveruse,
        "LICENSE_OVERUSE",
        Severity::Warning,
        "more cameras installed than camera licenses",
    ),
    (
        ConditionCode::ServerUnavailable,
        "SERVER_UNAVAILABLE",
        Severity::Critical,
        "the recording server is unavailable",
    ),
    (
        ConditionCode::ArchiveDeleteFailed,
        "ARCHIVE_DELETE_FAILED",
        Severity::Warning,
        "could not delete an archive",
    ),
    (
        ConditionCode::FileDeleteFailed,
        "FILE_DELETE_FAILED",
        Severity::Warning,
        "could not delete a file",
    ),
    (
        ConditionCode::ArchiveFatalError,
        "ARCHIVE_FATAL_ERROR",
        Severity::Critical,
        "fatal error while processing an archive",
    ),
    (
        ConditionCode::ArchiveOperationFailed,
        "ARCHIVE_OPERATION_FAILED",
        Severity::Warning,
        "an archive operation failed",
    ),
    (
        ConditionCode::ArchiveMoveFailed,
        "ARCHIVE_MOVE_FAILED",
        Severity::Warning,
        "archive file move error(s)",
    ),
];

impl ConditionCode {
    /// Longest code, in bytes.
    pub const MAX_LEN: usize = 64;

    /// Every code this version knows, in catalogue order.
    pub fn known() -> impl Iterator<Item = ConditionCode> {
        KNOWN.iter().map(|(code, ..)| code.clone())
    }

    /// Parses a code; unknown but well-formed codes become [`ConditionCode::Unknown`].
    pub fn parse(code: &str) -> Result<Self> {
        if let Some((known, ..)) = KNOWN.iter().find(|(_, name, ..)| *name == code) {
            return Ok(known.clone());
        }
        let well_formed = !code.is_empty()
            && code.len() <= Self::MAX_LEN
            && code
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            && code.as_bytes()[0].is_ascii_uppercase();
        if !well_formed {
            return Err(Error::InvalidInput {
                field: "condition code",
                reason: format!(
                    "{code:?} is not a code: 1-64 of A-Z, 0-9 and '_', starting with a letter"
                ),
            });
        }
        Ok(Self::Unknown(code.into()))
    }

    fn entry(&self) -> Option<&'static (ConditionCode, &'static str, Severity, &'static str)> {
        KNOWN.iter().find(|(known, ..)| known == self)
    }

    /// The stable wire and storage name, e.g. `STORAGE_FULL`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Unknown(code) => code,
            known => known.entry().map_or("", |(_, name, ..)| name),
        }
    }

    /// How much it matters. Unknown codes count as warnings.
    pub fn severity(&self) -> Severity {
        self.entry()
            .map_or(Severity::Warning, |(_, _, severity, _)| *severity)
    }

    /// A short human description.
    pub fn description(&self) -> &str {
        self.entry()
            .map_or("reported by a newer recording server", |(.., text)| text)
    }

    /// Position for "worst first": higher is worse (severity, then catalogue order).
    pub fn badness(&self) -> u32 {
        let position = KNOWN
            .iter()
            .position(|(known, ..)| known == self)
            .unwrap_or(KNOWN.len());
        let severity = match self.severity() {
            Severity::Critical => 1000,
            Severity::Warning => 0,
        };
        // Earlier catalogue entries rank higher within one severity.
        severity + (KNOWN.len() - position) as u32
    }
}

impl fmt::Display for ConditionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ConditionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ConditionCode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_round_trip() {
        for code in ConditionCode::known() {
            assert_eq!(ConditionCode::parse(code.as_str()).unwrap(), code);
            assert!(!matches!(code, ConditionCode::Unknown(_)));
        }
        assert_eq!(ConditionCode::known().count(), 10);
    }

    #[test]
    fn unknown_codes_are_kept() {
        let code = ConditionCode::parse("FAN_FAILURE").unwrap();
        assert_eq!(code, ConditionCode::Unknown("FAN_FAILURE".into()));
        assert_eq!(code.as_str(), "FAN_FAILURE");
        assert_eq!(code.severity(), Severity::Warning);
    }

    #[test]
    fn garbage_codes_are_refused() {
        for bad in ["", "fan_failure", "1ABC", "A B", &"A".repeat(65)] {
            assert!(ConditionCode::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn critical_outranks_warning() {
        assert!(ConditionCode::StorageFull.badness() > ConditionCode::CameraUnreachable.badness());
        assert!(
            ConditionCode::CameraUnreachable.badness()
                > ConditionCode::Unknown("X".into()).badness()
        );
    }
}
