//! A reseller's team: users (admins manage users, tokens and channels;
//! viewers read), their sessions, invitations, and named read-only API
//! tokens for the reseller's own tools.
//!
//! Passwords are kept only as Argon2id hashes (PHC strings). Session,
//! invitation and API-token secrets are 256 random bits kept only as their
//! SHA-256, like every other token; a session or invitation is looked up by
//! that hash, an API token by its id and then compared in constant time.

use std::fmt;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::auth::TokenHash;
use crate::error::{Error, Result};
use crate::ids::ResellerId;
use crate::time::Timestamp;

/// The login a reseller token's actions are recorded under (audit log,
/// `created_by`): it has no user, and no user may be invited under it.
pub const TOKEN_LOGIN: &str = "api-token";

/// How long a session lasts after signing in.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// How long an invitation link works.
pub const INVITATION_LIFETIME: Duration = Duration::from_secs(72 * 3600);
/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted (Argon2 hashes any length; this bounds the work
/// an attacker can ask for).
pub const MAX_PASSWORD_BYTES: usize = 1024;

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        field,
        reason: reason.into(),
    }
}

/// What a user signs in with: an email address or a name, unique across
/// Carewatch, compared without case.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Login(Box<str>);

impl Login {
    /// Longest login, in bytes.
    pub const MAX_LEN: usize = 254;

    /// Validates and normalises (trimmed, lower case): 3 to 254 characters,
    /// letters, digits and `. _ @ + -`.
    pub fn new(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.len() < 3 || text.len() > Self::MAX_LEN {
            return Err(invalid(
                "login",
                format!(
                    "{} characters; use 3 to {}",
                    text.chars().count(),
                    Self::MAX_LEN
                ),
            ));
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_alphanumeric() || matches!(c, '.' | '_' | '@' | '+' | '-')))
        {
            return Err(invalid(
                "login",
                format!("{bad:?} is not allowed: use letters, digits and . _ @ + -"),
            ));
        }
        Ok(Self(text.to_lowercase().into()))
    }

    /// The login as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Login({:?})", &*self.0)
    }
}

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Manages users, API tokens and notification channels; reads everything.
    Admin,
    /// Reads.
    Viewer,
}

impl Role {
    /// `admin` or `viewer`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Viewer => "viewer",
        }
    }

    /// Parses [`Role::name`].
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim() {
            "admin" => Ok(Self::Admin),
            "viewer" => Ok(Self::Viewer),
            other => Err(invalid("role", format!("{other:?}: use admin or viewer"))),
        }
    }
}

/// A user of a reseller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The reseller (company) the user works for.
    pub reseller: ResellerId,
    /// What the user signs in with.
    pub login: Login,
    /// A display name.
    pub name: String,
    /// What the user may do.
    pub role: Role,
    /// When the user was created.
    pub created_at: Timestamp,
}

/// A display name: 1 to 200 characters, no control characters.
pub fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(invalid("name", "use 1 to 200 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("name", "control characters are not allowed"));
    }
    Ok(name.to_owned())
}

/// A password as typed; wiped from memory when dropped.
pub struct Password(Zeroizing<String>);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    /// A new password: at least [`MIN_PASSWORD_CHARS`] characters, at most
    /// [`MAX_PASSWORD_BYTES`] bytes.
    pub fn new(text: &str) -> Result<Self> {
        if text.chars().count() < MIN_PASSWORD_CHARS {
            return Err(invalid(
                "password",
                format!("use at least {MIN_PASSWORD_CHARS} characters"),
            ));
        }
        if text.len() > MAX_PASSWORD_BYTES {
            return Err(invalid(
                "password",
                format!("use at most {MAX_PASSWORD_BYTES} bytes"),
            ));
        }
        Ok(Self(Zeroizing::new(text.to_owned())))
    }

    /// The Argon2id hash to store (PHC string, random salt). Deliberately
    /// slow: run it off the async workers.
    pub fn hash(&self) -> Result<String> {
        let mut salt = [0u8; 16];
        crate::seal::fill_random_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt)
            .map_err(|e| Error::storage("encoding a password salt", e.to_string()))?;
        argon2()
            .hash_password(self.0.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::storage("hashing a password", e.to_string()))
    }
}

/// Argon2id with OWASP's 2024 minimum (19 MiB, 2 passes, 1 lane).
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Whether `password` matches the stored PHC hash. Slow on purpose. A
/// missing user is checked against a fixed hash, so timing does not tell
/// whether a login exists.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    let stored = stored.unwrap_or(DECOY_HASH);
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let ok = argon2()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && stored != DECOY_HASH
}

/// An Argon2id hash of a random password nobody knows, with the same
/// parameters as real ones.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$Y2FyZXdhdGNoZGVjb3k$k7nqvRN7pVQfJ5QpT4pmWEF6XQSjZz3Hx3uI/TIjy9k";

/// A fresh secret and its hash: shown once, kept only as the hash.
pub struct IssuedSecret {
    /// The secret text to hand over (in a cookie, a link, to a tool).
    pub token: Zeroizing<String>,
    /// What the store keeps.
    pub hash: TokenHash,
}

impl fmt::Debug for IssuedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IssuedSecret(<redacted>)")
    }
}

/// A new random `<prefix>.<64 hex>` secret.
pub fn issue_secret(prefix: &str) -> IssuedSecret {
    let mut secret = Zeroizing::new([0u8; 32]);
    crate::seal::fill_random_bytes(secret.as_mut());
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let token = Zeroizing::new(format!("{prefix}.{hex}"));
    let hash = hash_secret(&token);
    IssuedSecret { token, hash }
}

/// The hash a store keeps for a secret.
pub fn hash_secret(secret: &str) -> TokenHash {
    let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
    TokenHash::from_slice(&digest).unwrap_or_else(|| unreachable!("SHA-256 is 32 bytes"))
}

/// Checks a presented secret's shape (`<prefix>.<64 hex>`) before any
/// lookup; never echoes it.
pub fn parse_secret(prefix: &str, presented: &str) -> Result<TokenHash> {
    let presented = presented.trim();
    let ok = presented
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
    if !ok {
        return Err(Error::Unauthenticated {
            reason: "malformed credential",
        });
    }
    Ok(hash_secret(presented))
}

/// Session secrets start with this.
pub const SESSION_PREFIX: &str = "cws";
/// Invitation secrets start with this.
pub const INVITATION_PREFIX: &str = "cwi";

/// A signed-in user's session, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The hash of the session secret (the cookie).
    pub hash: TokenHash,
    /// The user.
    pub user: User,
    /// When the user signed in.
    pub created_at: Timestamp,
    /// When the session ends.
    pub expires_at: Timestamp,
}

/// An invitation to join a reseller's team, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationRecord {
    /// The hash of the invitation secret (in the link).
    pub hash: TokenHash,
    /// The user it creates once accepted (its `created_at` is the invitation's).
    pub user: User,
    /// Who invited (`None`: the operator).
    pub invited_by: Option<Login>,
    /// When the link stops working.
    pub expires_at: Timestamp,
}

/// A named read-only API token of a reseller, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRecord {
    /// Its public id (in the token, and in lists).
    pub id: String,
    /// The reseller.
    pub reseller: ResellerId,
    /// What the reseller called it (e.g. "PSA sync").
    pub name: String,
    /// The hash of the whole token.
    pub hash: TokenHash,
    /// When it was made, and by whom.
    pub created_at: Timestamp,
    /// Who made it.
    pub created_by: Login,
    /// When it was revoked; a revoked token opens nothing.
    pub revoked_at: Option<Timestamp>,
    /// When it expires (`None`: never); from then on it opens nothing and
    /// no longer counts towards the reseller's bound.
    pub expires_at: Option<Timestamp>,
}

impl ApiTokenRecord {
    /// Whether it opens anything at `now`: neither revoked nor expired.
    pub fn in_use_at(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// The shortest and longest lifetimes an API token may be given.
pub const API_TOKEN_LIFETIMES: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(86_400)..=Duration::from_secs(2 * 366 * 86_400);

/// Checks an API token's lifetime: `None` (never expires) or 1 day to 2 years.
pub fn check_api_token_lifetime(valid_for: Option<Duration>) -> Result<Option<Duration>> {
    match valid_for {
        Some(d) if !API_TOKEN_LIFETIMES.contains(&d) => Err(Error::InvalidInput {
            field: "lifetime",
            reason: "an API token lasts 1 day to 2 years, or never expires".into(),
        }),
        other => Ok(other),
    }
}

/// API tokens are `cwa.<id>.<64 hex>`.
pub const API_TOKEN_PREFIX: &str = "cwa";

/// A new API token: its id (16 hex digits) and the secret.
pub fn issue_api_token() -> (String, IssuedSecret) {
    let mut id = [0u8; 8];
    crate::seal::fill_random_bytes(&mut id);
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let secret = issue_secret(&format!("{API_TOKEN_PREFIX}.{id}"));
    (id, secret)
}

/// The id and hash of a presented API token.
pub fn parse_api_token(presented: &str) -> Result<(String, TokenHash)> {
    let presented = presented.trim();
    let id = presented
        .strip_prefix(API_TOKEN_PREFIX)
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| rest.split_once('.'))
        .map(|(id, _)| id)
        .filter(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or(Error::Unauthenticated {
            reason: "malformed credential",
        })?;
    let hash = parse_secret(&format!("{API_TOKEN_PREFIX}.{id}"), presented)?;
    Ok((id.to_owned(), hash))
}

/// Refuses an action a viewer may not take.
pub fn require_admin(user: &User) -> Result<()> {
    match user.role {
        Role::Admin => Ok(()),
        Role::Viewer => Err(Error::PermissionDenied {
            reason: "only an admin of the reseller may do this",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_are_normalised_and_checked() {
        assert_eq!(
            Login::new("  Jane.Doe@ACME.example ").unwrap().as_str(),
            "jane.doe@acme.example"
        );
        assert!(Login::new("ab").is_err());
        assert!(Login::new("jane doe").is_err());
        assert!(Login::new("jane\u{0}").is_err());
        assert!(Login::new(&"a".repeat(255)).is_err());
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify_only_themselves() {
        assert!(Password::new("short").is_err());
        let password = Password::new("correct horse battery").unwrap();
        let stored = password.hash().unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(verify_password("correct horse battery", Some(&stored)));
        assert!(!verify_password("correct horse battery!", Some(&stored)));
        assert!(
            !verify_password("anything", None),
            "a missing user never signs in"
        );
        assert!(!verify_password("anything", Some("not a hash")));
        assert_ne!(
            stored,
            Password::new("correct horse battery")
                .unwrap()
                .hash()
                .unwrap(),
            "salted"
        );
    }

    #[test]
    fn secrets_are_random_checked_for_shape_and_kept_as_hashes() {
        let issued = issue_secret(SESSION_PREFIX);
        assert!(issued.token.starts_with("cws."));
        assert_eq!(
            parse_secret(SESSION_PREFIX, &issued.token).unwrap(),
            issued.hash
        );
        assert!(parse_secret(INVITATION_PREFIX, &issued.token).is_err());
        assert!(parse_secret(SESSION_PREFIX, "cws.zz").is_err());
        let (id, token) = issue_api_token();
        let (parsed_id, hash) = parse_api_token(&token.token).unwrap();
        assert_eq!((parsed_id, hash), (id, token.hash));
        assert!(parse_api_token("cwa.nothex.0").is_err());
    }
}
