//! Installations: one customer system, identified by its SLC.

use crate::error::Result;
use crate::ids::{ResellerId, Slc, checked_text};
use crate::time::Timestamp;

/// Longest product or version text accepted.
pub const MAX_PRODUCT_BYTES: usize = 128;

/// What the customer runs, e.g. "XProtect Corporate" version "2016 R3".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Product {
    name: String,
    version: String,
}

impl Product {
    /// Validates product name and version text.
    pub fn new(name: &str, version: &str) -> Result<Self> {
        Ok(Self {
            name: checked_text("product", name, MAX_PRODUCT_BYTES)?,
            version: checked_text("product version", version, MAX_PRODUCT_BYTES)?,
        })
    }

    /// The product name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version text.
    pub fn version(&self) -> &str {
        &self.version
    }
}

/// One customer installation as registered by its reseller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    /// Its Software License Code.
    pub slc: Slc,
    /// The reseller that registered the SLC: the only one who sees it.
    pub reseller: ResellerId,
    /// What it runs.
    pub product: Product,
    /// When its Care Plus subscription ends; `None` if it has none.
    pub subscription_expires_at: Option<Timestamp>,
    /// Whether the owner accepted the service.
    pub consent: bool,
    /// When the SLC was registered.
    pub registered_at: Timestamp,
}

impl Installation {
    /// Whether Care Plus is active at `at`.
    pub fn subscription_active_at(&self, at: Timestamp) -> bool {
        self.subscription_expires_at.is_some_and(|end| at < end)
    }

    /// Why Carewatch refuses this installation's messages at `at`, if it
    /// does ([`refusal`]).
    pub fn refusal_at(&self, at: Timestamp) -> Option<Refusal> {
        refusal(self.consent, self.subscription_expires_at, at)
    }
}

/// Why Carewatch refuses an installation's messages: then its servers are
/// not judged (silence is expected, not a fault), and every view says why
/// instead of showing them drifting into Unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The owner withdrew (or never gave) consent.
    ConsentWithdrawn,
    /// Care Plus ended at this instant (`None`: there never was one).
    SubscriptionExpired {
        /// When it ended.
        at: Option<Timestamp>,
    },
}

impl Refusal {
    /// A stable lower-case name: `consent_withdrawn`, `subscription_expired`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ConsentWithdrawn => "consent_withdrawn",
            Self::SubscriptionExpired { .. } => "subscription_expired",
        }
    }

    /// In words, for pages and messages.
    pub fn label(&self) -> &'static str {
        match self {
            Self::ConsentWithdrawn => "Consent withdrawn",
            Self::SubscriptionExpired { .. } => "Subscription expired",
        }
    }
}

/// The service rule, one place for ingest and every view: consent first,
/// then Care Plus active at `at`.
pub fn refusal(
    consent: bool,
    subscription_expires_at: Option<Timestamp>,
    at: Timestamp,
) -> Option<Refusal> {
    if !consent {
        return Some(Refusal::ConsentWithdrawn);
    }
    match subscription_expires_at {
        Some(end) if at < end => None,
        end => Some(Refusal::SubscriptionExpired { at: end }),
    }
}
