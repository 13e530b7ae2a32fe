//! Identifiers, validated when they are made so the rest of the code can trust them.

use std::fmt;

use crate::error::{Error, Result};

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        field,
        reason: reason.into(),
    }
}

/// Checks length and character set; `allowed` decides which ASCII bytes may appear.
fn check(
    field: &'static str,
    value: &str,
    max_len: usize,
    allowed: fn(u8) -> bool,
    rule: &str,
) -> Result<()> {
    if value.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if value.len() > max_len {
        return Err(invalid(
            field,
            format!("is {} bytes long, at most {max_len} allowed", value.len()),
        ));
    }
    if let Some(bad) = value.bytes().find(|b| !allowed(*b)) {
        let shown = if bad.is_ascii_graphic() {
            format!("'{}'", bad as char)
        } else {
            format!("byte 0x{bad:02x}")
        };
        return Err(invalid(
            field,
            format!("{value:?} contains {shown}; {rule}"),
        ));
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        // Shared rather than copied: each message's ids are cloned into its
        // sign of life and again into the store's batch.
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(std::sync::Arc<str>);

        impl $name {
            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id! {
    /// Software License Code: identifies one customer installation.
    ///
    /// Letters, digits and `-`, 4 to 64 characters, starting and ending with a
    /// letter or digit. Letters are normalised to upper case, so `m01-c01`
    /// and `M01-C01` are the same installation.
    Slc
}

impl Slc {
    /// Longest SLC, in bytes.
    pub const MAX_LEN: usize = 64;

    /// Validates and normalises an SLC.
    pub fn new(value: &str) -> Result<Self> {
        let value = value.trim();
        check(
            "slc",
            value,
            Self::MAX_LEN,
            |b| b.is_ascii_alphanumeric() || b == b'-',
            "an SLC holds only letters, digits and '-'",
        )?;
        if value.len() < 4 {
            return Err(invalid(
                "slc",
                format!("{value:?} is too short: an SLC has at least 4 characters"),
            ));
        }
        if value.starts_with('-') || value.ends_with('-') || value.contains("--") {
            return Err(invalid(
                "slc",
                format!("{value:?} has a misplaced '-': dashes only separate groups"),
            ));
        }
        // Most SLCs arrive upper case: one allocation then, not two.
        Ok(Self(if value.bytes().any(|b| b.is_ascii_lowercase()) {
            value.to_ascii_uppercase().into()
        } else {
            value.into()
        }))
    }
}

string_id! {
    /// Identifies one recording server within its installation (often a GUID).
    ///
    /// 1 to 128 characters out of letters, digits and `-_.:{}`; case is kept.
    RecordingServerId
}

impl RecordingServerId {
    /// Longest recording-server id, in bytes.
    pub const MAX_LEN: usize = 128;

    /// Validates a recording-server id.
    pub fn new(value: &str) -> Result<Self> {
        check(
            "recording server id",
            value,
            Self::MAX_LEN,
            |b| b.is_ascii_alphanumeric() || b"-_.:{}".contains(&b),
            "allowed are letters, digits and -_.:{}",
        )?;
        Ok(Self(value.into()))
    }
}

string_id! {
    /// Identifies a reseller: a short lower-case name such as `acme-security`.
    ///
    /// 1 to 64 characters out of `a-z`, `0-9` and `-`.
    ResellerId
}

impl ResellerId {
    /// Validates a reseller id.
    pub fn new(value: &str) -> Result<Self> {
        check(
            "reseller id",
            value,
            64,
            |b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-',
            "a reseller id holds only lower-case letters, digits and '-'",
        )?;
        Ok(Self(value.into()))
    }
}

/// Free text (product names, condition subjects): printable, bounded, trimmed.
pub(crate) fn checked_text(field: &'static str, value: &str, max_len: usize) -> Result<String> {
    let value = value.trim();
    if value.len() > max_len {
        return Err(invalid(
            field,
            format!("is {} bytes long, at most {max_len} allowed", value.len()),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slc_is_normalised_to_upper_case() {
        assert_eq!(Slc::new(" m01-c01-123 ").unwrap().as_str(), "M01-C01-123");
    }

    #[test]
    fn slc_rejects_garbage_with_a_reason() {
        for bad in [
            "",
            "ab",
            "M01 C01",
            "M01_C01",
            "-M01",
            "M01-",
            "M01--C01",
            "Ä123",
            &"A".repeat(65),
        ] {
            let err = Slc::new(bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidInput { field: "slc", .. }),
                "{bad:?}: {err}"
            );
        }
        let msg = Slc::new("M01_C01").unwrap_err().to_string();
        assert!(msg.contains("'_'"), "{msg}");
    }

    #[test]
    fn recording_server_ids_keep_case_and_reject_spaces() {
        assert_eq!(
            RecordingServerId::new("{A1b2-C3}").unwrap().as_str(),
            "{A1b2-C3}"
        );
        assert!(RecordingServerId::new("rs 1").is_err());
        assert!(RecordingServerId::new("").is_err());
    }

    #[test]
    fn reseller_ids_are_lower_case_slugs() {
        assert!(ResellerId::new("acme-security").is_ok());
        assert!(ResellerId::new("Acme").is_err());
        assert!(ResellerId::new("acme.security").is_err());
    }

    #[test]
    fn text_rejects_control_characters() {
        assert!(
            checked_text("subject", "Camera 1\n", 10).is_ok(),
            "trailing newline is trimmed"
        );
        assert!(checked_text("subject", "Cam\u{0}era", 10).is_err());
        assert!(checked_text("subject", "x".repeat(11).as_str(), 10).is_err());
    }
}
