//! Registration and operator data: resellers, tokens, installations, keys.

mod installations;
mod resellers;

pub(crate) use installations::*;
pub(crate) use resellers::*;

use crate::seal::InstallationKey;

/// The key bytes inside an installation key.
fn key_bytes(key: &InstallationKey) -> Vec<u8> {
    let text = key.to_text();
    let hex = text.rsplit(':').next().expect("cwk1:<id>:<hex>");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digits"))
        .collect()
}
