//! The audit log: who did what, when. Every operator action (resellers,
//! registrations, transfers, consent, subscriptions, keys, decommissioning,
//! first admins) and every reseller-admin action (users, API tokens,
//! channels, maintenance windows, labels, decommissioning) is recorded by
//! the [`crate::Carewatch`] facade once it succeeded. The operator reads all
//! of it; a reseller's admins read their own team's actions.
//!
//! The operator acting through a front end is named with [`as_operator`]
//! around the call (the gRPC admin service does); without it the actor is
//! [`LOCAL_OPERATOR`] (the embedding program, the CLI on the same machine).

use std::fmt;
use std::future::Future;

use crate::error::{Error, Result};
use crate::ids::ResellerId;
use crate::team::{Login, User};
use crate::time::Timestamp;

/// The operator's name when no front end named it.
pub const LOCAL_OPERATOR: &str = "local";
/// Most entries one read returns.
pub const MAX_PAGE: u32 = 500;

tokio::task_local! {
    static OPERATOR: ResellerId;
}

/// Runs `action` as operator `name`: what it does is recorded as `name`'s.
pub async fn as_operator<F: Future>(name: ResellerId, action: F) -> F::Output {
    OPERATOR.scope(name, action).await
}

/// The operator acting now (see [`as_operator`]).
pub(crate) fn current_operator() -> Actor {
    let name = OPERATOR
        .try_with(|name| name.to_string())
        .unwrap_or_else(|_| LOCAL_OPERATOR.to_owned());
    Actor::Operator { name }
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The service's operator, by name.
    Operator {
        /// Its name (an operator token's, or [`LOCAL_OPERATOR`]).
        name: String,
    },
    /// A reseller's user (a web session, or an API token acting as the
    /// reseller's admin).
    User {
        /// The user's reseller.
        reseller: ResellerId,
        /// The user's login.
        login: Login,
    },
}

impl Actor {
    /// `user` acting.
    pub fn user(user: &User) -> Self {
        Self::User {
            reseller: user.reseller.clone(),
            login: user.login.clone(),
        }
    }

    /// The reseller whose team acted; `None` for the operator.
    pub fn reseller(&self) -> Option<&ResellerId> {
        match self {
            Self::Operator { .. } => None,
            Self::User { reseller, .. } => Some(reseller),
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Operator { name } => write!(f, "operator {name}"),
            Self::User { reseller, login } => write!(f, "{login} ({reseller})"),
        }
    }
}

macro_rules! actions {
    ($($variant:ident => $name:literal: $doc:literal,)*) => {
        /// What was done.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Action {
            $(#[doc = $doc] $variant,)*
            /// An action a newer Carewatch sharing the database recorded
            /// (a rolling upgrade), read by this version without its name:
            /// the record is listed (`unknown`) rather than failing the
            /// whole audit log. Never recorded, and not in [`Action::ALL`].
            Unknown,
        }

        impl Action {
            /// Every action this version records.
            pub const ALL: &'static [Action] = &[$(Action::$variant,)*];

            /// A stable name, e.g. `installation.transferred`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Action::$variant => $name,)*
                    Action::Unknown => "unknown",
                }
            }

            /// The action named `name`.
            pub fn parse(name: &str) -> Result<Self> {
                match name {
                    $($name => Ok(Action::$variant),)*
                    other => Err(Error::InvalidInput {
                        field: "audit action",
                        reason: format!("unknown action {other:?}"),
                    }),
                }
            }
        }
    };
}

actions! {
    ResellerCreated => "reseller.created": "A reseller was created.",
    ResellerTokenRotated => "reseller.token_rotated": "A reseller's token was replaced.",
    OperatorTokenIssued => "operator.token_issued": "An operator token was issued.",
    InstallationRegistered => "installation.registered": "An SLC was registered to a reseller.",
    InstallationTransferred => "installation.transferred": "An installation moved to another reseller.",
    ConsentChanged => "installation.consent": "Consent was given or withdrawn.",
    SubscriptionChanged => "installation.subscription": "Care Plus was set, changed or removed.",
    ProductChanged => "installation.product": "What an installation runs was changed.",
    KeyIssued => "installation.key_issued": "An installation key was issued.",
    KeyRetired => "installation.key_retired": "An installation key was retired.",
    LabelsChanged => "installation.labels": "An installation's labels were changed.",
    ServerDecommissioned => "server.decommissioned": "A recording server was retired.",
    UserInvited => "user.invited": "A user was invited to a reseller's team.",
    UserRemoved => "user.removed": "A user was removed from a team.",
    SignedIn => "user.signed_in": "A user signed in (from the address given; recorded at most once per login and address every 10 minutes, with the count).",
    SignInFailed => "user.sign_in_failed": "Sign-ins as a user failed: a wrong password (recorded at most once per login every 10 s, with the count).",
    ApiTokenCreated => "api_token.created": "An API token was created.",
    ApiTokenRevoked => "api_token.revoked": "An API token was revoked.",
    ChannelCreated => "channel.created": "A notification channel was created.",
    ChannelDeleted => "channel.deleted": "A notification channel was deleted.",
    ChannelTested => "channel.tested": "A test notification was queued on a channel.",
    MaintenanceCreated => "maintenance.created": "A maintenance window was created.",
    MaintenanceDeleted => "maintenance.deleted": "A maintenance window was deleted.",
    SecretsResealed => "master_key.resealed": "Stored secrets were re-sealed under the current master key.",
}

/// One action, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: Actor,
    /// What.
    pub action: Action,
    /// What it was done to: an SLC, a reseller, a login, a channel id …
    pub target: String,
    /// Details (never a secret): e.g. `to beta, history not shared`.
    pub detail: String,
}

impl AuditRecord {
    /// A record; control characters in `target` and `detail` become
    /// spaces, and they are cut at 200 and 1,000 characters (they name
    /// things, and a long or odd name must not keep an action unrecorded).
    pub fn new(at: Timestamp, actor: Actor, action: Action, target: &str, detail: &str) -> Self {
        Self {
            at,
            actor,
            action,
            target: clean(target, 200),
            detail: clean(detail, 1000),
        }
    }
}

fn clean(text: &str, max_chars: usize) -> String {
    text.trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max_chars)
        .collect()
}

/// A recorded action and its place in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Grows with every record.
    pub id: u64,
    /// The action.
    pub record: AuditRecord,
}

/// Which entries to read: newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only the actions of this reseller's team (`None`: everyone's,
    /// the operator's included).
    pub team: Option<ResellerId>,
    /// Only entries older than this id (the next page).
    pub before: Option<u64>,
    /// At most this many (1 to [`MAX_PAGE`]).
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_action_is_not_one_to_record_or_parse() {
        assert!(!Action::ALL.contains(&Action::Unknown));
        assert!(Action::parse("unknown").is_err());
    }

    #[test]
    fn every_action_name_parses_back_and_is_in_the_readme() {
        // The README's "Audit log" is where a client learns the names.
        let readme = include_str!("../../README.md").replace('\n', " ");
        for action in Action::ALL {
            assert_eq!(Action::parse(action.name()).ok(), Some(*action));
            assert!(
                readme.contains(&format!("`{}`", action.name())),
                "README.md does not name {}",
                action.name()
            );
        }
    }
}
