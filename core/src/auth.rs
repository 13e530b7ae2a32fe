//! Authorisation: credentials of resellers and operators, admission of
//! recording-server messages, and the sequence rule that stops replays.
//!
//! Tokens are 256 random bits. Only their SHA-256 is stored; a presented
//! token is hashed and compared in constant time. A token names its holder
//! (`cwr.<reseller>.<secret>`), so verification looks the holder up and never
//! searches by secret.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::ids::{RecordingServerId, ResellerId, Slc};
use crate::installation::{Installation, Refusal};
use crate::seal::{Envelope, KeyId};
use crate::time::Timestamp;

/// The SHA-256 of a token: what a store keeps instead of the token.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

impl TokenHash {
    /// From stored bytes; `None` if not 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The stored bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time comparison.
    pub fn matches(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }
}

/// Who a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// The service's operator (named, so several operators can hold tokens).
    Operator(ResellerId),
    /// A reseller.
    Reseller(ResellerId),
}

impl Principal {
    fn prefix(&self) -> &'static str {
        match self {
            Self::Operator(_) => "cwo",
            Self::Reseller(_) => "cwr",
        }
    }

    fn name(&self) -> &ResellerId {
        match self {
            Self::Operator(name) | Self::Reseller(name) => name,
        }
    }
}

/// A newly issued token: shown once to its holder, then only its hash is kept.
pub struct IssuedToken {
    /// The token text to hand over.
    pub token: Zeroizing<String>,
    /// What to store.
    pub hash: TokenHash,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IssuedToken(<redacted>)")
    }
}

/// Issues a new random token for `principal`.
pub fn issue_token(principal: &Principal) -> IssuedToken {
    let mut secret = Zeroizing::new([0u8; 32]);
    crate::seal::fill_random_bytes(secret.as_mut());
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let token = Zeroizing::new(format!("{}.{}.{hex}", principal.prefix(), principal.name()));
    let hash = TokenHash::of(&token);
    IssuedToken { token, hash }
}

/// A presented token, parsed: whom it claims to be and its hash.
#[derive(Debug, Clone)]
pub struct PresentedToken {
    /// Whom it claims to be.
    pub principal: Principal,
    /// Its hash, to compare with the stored one.
    pub hash: TokenHash,
}

/// The token of an `Authorization: Bearer <token>` value, for every front
/// end alike: the scheme in any case (RFC 7235: schemes are
/// case-insensitive), the token without surrounding blanks; `None` for
/// another scheme or no token.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Parses a presented token. Refuses malformed ones without echoing them.
pub fn parse_token(token: &str) -> Result<PresentedToken> {
    let refuse = |reason| Error::Unauthenticated { reason };
    let token = token.trim();
    let token = token.strip_prefix("Bearer ").unwrap_or(token);
    let mut parts = token.split('.');
    let (Some(kind), Some(name), Some(secret), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(refuse("malformed token: expected <kind>.<name>.<secret>"));
    };
    if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(refuse(
            "malformed token: the secret part is not 64 hex digits",
        ));
    }
    // Before the name: an API token's middle part is its id, not a name.
    if kind == crate::team::API_TOKEN_PREFIX {
        return Err(refuse(
            "an API token (cwa.) opens the JSON API (/api/v1) only; gRPC and the CLI take the reseller token (cwr.)",
        ));
    }
    let name = ResellerId::new(name).map_err(|_| refuse("malformed token: invalid name"))?;
    let principal = match kind {
        "cwr" => Principal::Reseller(name),
        "cwo" => Principal::Operator(name),
        _ => return Err(refuse("malformed token: unknown token kind")),
    };
    Ok(PresentedToken {
        principal,
        hash: TokenHash::of(token),
    })
}

/// Checks a presented token against the stored hash of its holder.
pub fn verify(presented: &PresentedToken, stored: Option<&TokenHash>) -> Result<()> {
    // Hash-compare even when nobody is stored, so timing does not tell.
    let fallback = TokenHash([0u8; 32]);
    let ok = presented.hash.matches(stored.unwrap_or(&fallback)) && stored.is_some();
    if ok {
        Ok(())
    } else {
        Err(Error::Unauthenticated {
            reason: "invalid or revoked token",
        })
    }
}

/// Checks the installation-level rules for a message received at `now`:
/// consent accepted and Care Plus active.
pub fn admit(installation: &Installation, now: Timestamp) -> Result<()> {
    match installation.refusal_at(now) {
        None => Ok(()),
        Some(Refusal::ConsentWithdrawn) => Err(Error::ConsentMissing {
            slc: installation.slc.clone(),
        }),
        Some(Refusal::SubscriptionExpired { at }) => Err(Error::SubscriptionExpired {
            slc: installation.slc.clone(),
            expired_at: at,
        }),
    }
}

/// Identifies a retry of the same sealed message: its key id, nonce and
/// authentication tag ([`Envelope::identity`]).
///
/// Only compared between messages that opened under their installation's
/// key for the same binding (SLC, server, kind, sequence), so equal digests
/// mean the same bytes: a different message would need a new nonce, or a
/// tag forged by the key's holder against itself. It used to be the SHA-256
/// of the whole sealed field: a second pass over every message, in software
/// on processors without SHA extensions (3,400 instructions a heartbeat,
/// 7% of the server's); [`MessageDigest::sha256`] still recognises a retry
/// of a message accepted before.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageDigest(pub [u8; 32]);

impl fmt::Debug for MessageDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MessageDigest({:02x}{:02x}{:02x}{:02x}..)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

impl MessageDigest {
    /// The digest of a sealed message.
    pub fn of(envelope: &Envelope<'_>) -> Self {
        Self(envelope.identity())
    }

    /// The SHA-256 of `bytes`: the digest releases before this one kept of a
    /// sealed message.
    pub fn sha256(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
}

/// The last accepted message of a recording server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceCursor {
    /// Its sequence number.
    pub sequence: u64,
    /// Its digest.
    pub digest: MessageDigest,
}

/// What to do with a message, judged by its sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceVerdict {
    /// A new message: apply it.
    New,
    /// The same message again (a retry): acknowledge, change nothing.
    Duplicate,
}

/// Where a message stands against its server's last accepted one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceOrder {
    /// Newer (or the server's first): apply it.
    New,
    /// The latest message again, byte for byte: a retry.
    Duplicate,
    /// Older, or the latest sequence number with other bytes.
    Stale {
        /// The sequence number of the last accepted message.
        last_accepted: u64,
    },
}

/// The replay rule, once for the facade and every backend: sequence numbers
/// strictly increase per recording server (compared as `u64`); the latest
/// message may be retried byte for byte.
pub fn sequence_order(last: Option<SequenceCursor>, incoming: SequenceCursor) -> SequenceOrder {
    match last {
        None => SequenceOrder::New,
        Some(last) if incoming.sequence > last.sequence => SequenceOrder::New,
        Some(last) if incoming == last => SequenceOrder::Duplicate,
        Some(last) => SequenceOrder::Stale {
            last_accepted: last.sequence,
        },
    }
}

/// [`sequence_order`] as the facade judges a message before writing it: a
/// stale one is refused as replayed. `sealed` is the message's sealed field,
/// to recognise the retry of a message whose SHA-256 an earlier release kept.
pub fn check_sequence(
    slc: &Slc,
    server: &RecordingServerId,
    last: Option<SequenceCursor>,
    sequence: u64,
    digest: MessageDigest,
    sealed: &[u8],
) -> Result<SequenceVerdict> {
    match sequence_order(last, SequenceCursor { sequence, digest }) {
        SequenceOrder::New => Ok(SequenceVerdict::New),
        SequenceOrder::Duplicate => Ok(SequenceVerdict::Duplicate),
        // The retry of a message accepted by a release that kept its SHA-256.
        SequenceOrder::Stale { .. }
            if last.is_some_and(|last| {
                last.sequence == sequence && last.digest == MessageDigest::sha256(sealed)
            }) =>
        {
            Ok(SequenceVerdict::Duplicate)
        }
        SequenceOrder::Stale { last_accepted } => Err(Error::Replayed {
            slc: slc.clone(),
            server: server.clone(),
            sequence,
            last_accepted,
        }),
    }
}

/// The key id a new key of an installation gets: one above the highest so far.
pub fn next_key_id(existing: impl IntoIterator<Item = KeyId>) -> KeyId {
    KeyId::new(
        existing
            .into_iter()
            .map(|k| k.get())
            .max()
            .map_or(1, |m| m.saturating_add(1)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::installation::Product;

    fn reseller(name: &str) -> Principal {
        Principal::Reseller(ResellerId::new(name).unwrap())
    }

    #[test]
    fn bearer_tokens_are_read_whatever_the_scheme_s_case() {
        for value in [
            "Bearer cwr.a.b",
            "bearer cwr.a.b",
            "BEARER  cwr.a.b ",
            " Bearer cwr.a.b",
        ] {
            assert_eq!(bearer_token(value), Some("cwr.a.b"), "{value:?}");
        }
        for value in [
            "Basic cwr.a.b",
            "Bearer",
            "Bearer   ",
            "Bearercwr.a.b",
            "cwr.a.b",
            "",
        ] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
    }

    #[test]
    fn issued_tokens_verify_and_others_do_not() {
        let issued = issue_token(&reseller("acme"));
        let presented = parse_token(&issued.token).unwrap();
        assert_eq!(presented.principal, reseller("acme"));
        assert!(verify(&presented, Some(&issued.hash)).is_ok());
        let other = issue_token(&reseller("acme"));
        assert!(verify(&presented, Some(&other.hash)).is_err());
        assert!(verify(&presented, None).is_err());
        let bearer = format!("Bearer {}", &*issued.token);
        assert!(verify(&parse_token(&bearer).unwrap(), Some(&issued.hash)).is_ok());
    }

    #[test]
    fn malformed_tokens_are_refused_without_echo() {
        for bad in [
            "",
            "cwr.acme",
            "cwr.acme.xyz",
            "cwx.acme.".to_owned().as_str(),
            "cwr.ACME.0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            let err = parse_token(bad).unwrap_err();
            assert!(matches!(err, Error::Unauthenticated { .. }), "{bad:?}");
            assert!(
                bad.is_empty() || !err.to_string().contains(bad),
                "echoed: {err}"
            );
        }
    }

    /// An API token given where a reseller token is wanted is named as
    /// such (it read "malformed token: unknown token kind").
    #[test]
    fn an_api_token_is_told_where_it_works() {
        let token = format!("cwa.0123456789abcdef.{}", "ab".repeat(32));
        let err = parse_token(&token).unwrap_err();
        assert!(matches!(err, Error::Unauthenticated { .. }));
        assert!(err.to_string().contains("JSON API"), "{err}");
        assert!(!err.to_string().contains(&"ab".repeat(32)), "echoed: {err}");
    }

    #[test]
    fn admission_checks_consent_then_subscription() {
        let mut inst = Installation {
            slc: Slc::new("M01-C01-0001").unwrap(),
            reseller: ResellerId::new("acme").unwrap(),
            product: Product::new("XProtect Corporate", "2016").unwrap(),
            subscription_expires_at: Some(Timestamp::from_millis(1000)),
            consent: false,
            registered_at: Timestamp::EPOCH,
        };
        assert!(matches!(
            admit(&inst, Timestamp::from_millis(10)),
            Err(Error::ConsentMissing { .. })
        ));
        inst.consent = true;
        assert!(admit(&inst, Timestamp::from_millis(999)).is_ok());
        assert!(matches!(
            admit(&inst, Timestamp::from_millis(1000)),
            Err(Error::SubscriptionExpired { .. })
        ));
        inst.subscription_expires_at = None;
        assert!(matches!(
            admit(&inst, Timestamp::from_millis(10)),
            Err(Error::SubscriptionExpired { .. })
        ));
    }

    #[test]
    fn sequence_rule() {
        let slc = Slc::new("M01-C01-0001").unwrap();
        let rs = RecordingServerId::new("rs-1").unwrap();
        let d1 = MessageDigest([1; 32]);
        let d2 = MessageDigest([2; 32]);
        let last = Some(SequenceCursor {
            sequence: 5,
            digest: d1,
        });
        let bytes = b"sealed";
        assert_eq!(
            check_sequence(&slc, &rs, None, 0, d1, bytes).unwrap(),
            SequenceVerdict::New
        );
        assert_eq!(
            check_sequence(&slc, &rs, last, 6, d2, bytes).unwrap(),
            SequenceVerdict::New
        );
        assert_eq!(
            check_sequence(&slc, &rs, last, 5, d1, bytes).unwrap(),
            SequenceVerdict::Duplicate
        );
        assert!(matches!(
            check_sequence(&slc, &rs, last, 5, d2, bytes),
            Err(Error::Replayed {
                last_accepted: 5,
                ..
            })
        ));
        assert!(matches!(
            check_sequence(&slc, &rs, last, 4, d1, bytes),
            Err(Error::Replayed { .. })
        ));
    }

    #[test]
    fn a_retry_of_a_message_accepted_under_the_sha256_digest_is_a_duplicate() {
        let slc = Slc::new("M01-C01-0001").unwrap();
        let rs = RecordingServerId::new("rs-1").unwrap();
        let sealed = b"the sealed field as an earlier release stored it";
        let last = Some(SequenceCursor {
            sequence: 5,
            digest: MessageDigest::sha256(sealed),
        });
        let now = MessageDigest([7; 32]);
        assert_eq!(
            check_sequence(&slc, &rs, last, 5, now, sealed).unwrap(),
            SequenceVerdict::Duplicate
        );
        // Other bytes with that sequence, or an older one, are still replays.
        assert!(matches!(
            check_sequence(&slc, &rs, last, 5, now, b"other bytes"),
            Err(Error::Replayed { .. })
        ));
        assert!(matches!(
            check_sequence(&slc, &rs, last, 4, now, sealed),
            Err(Error::Replayed { .. })
        ));
    }

    #[test]
    fn key_ids_increase() {
        assert_eq!(next_key_id([]), KeyId::new(1));
        assert_eq!(next_key_id([KeyId::new(1), KeyId::new(4)]), KeyId::new(5));
    }
}
