//! A reseller's team: invitations, users, sessions and API tokens (storage
//! guarantees on the store, the rules through the facade), and the
//! overview's health filter and SLC search.

mod expiry;
mod facade;
mod overview;
mod removal;
mod storage;

pub(crate) use expiry::*;
pub(crate) use facade::*;
pub(crate) use overview::*;
pub(crate) use removal::*;
pub(crate) use storage::*;

use super::{refused, secs};
use crate::auth::TokenHash;
use crate::error::Error;
use crate::ids::ResellerId;
use crate::team::{
    ApiTokenRecord, InvitationRecord, Login, Role, SessionRecord, User, hash_secret,
};
use crate::testing::fixture::Fixture;
use crate::time::Timestamp;

/// A login.
fn login(text: &str) -> Login {
    Login::new(text).expect("valid login")
}

/// A secret's hash, distinct per `seed`.
fn secret(seed: &str) -> TokenHash {
    hash_secret(seed)
}

/// One millisecond before `at`.
fn just_before(at: Timestamp) -> Timestamp {
    Timestamp::from_millis(at.as_millis() - 1)
}

/// An invitation record as a facade would store it, created at `created_at`.
fn invitation(
    seed: &str,
    reseller: &ResellerId,
    who: &str,
    role: Role,
    created_at: Timestamp,
    expires_at: Timestamp,
) -> InvitationRecord {
    InvitationRecord {
        hash: secret(seed),
        user: User {
            reseller: reseller.clone(),
            login: login(who),
            name: format!("Name of {who}"),
            role,
            created_at,
        },
        invited_by: None,
        expires_at,
    }
}

/// Invites and accepts at once, straight on the store (a stand-in password
/// hash: the store keeps whatever it is given). Returns the user.
pub(super) async fn member(
    fx: &Fixture,
    reseller: &ResellerId,
    who: &str,
    role: Role,
    at: Timestamp,
) -> User {
    let seed = format!("invitation of {who} to {reseller} at {at:?}");
    let record = invitation(
        &seed,
        reseller,
        who,
        role,
        at,
        at.saturating_add(secs(3600)),
    );
    fx.store
        .create_invitation(&record)
        .await
        .unwrap_or_else(|e| panic!("inviting {who}: {e}"));
    fx.store
        .accept_invitation(&secret(&seed), &format!("password hash of {who}"), at)
        .await
        .unwrap_or_else(|e| panic!("accepting the invitation of {who}: {e}"))
}

/// A session record of `user`.
fn session_of(
    seed: &str,
    user: &User,
    created_at: Timestamp,
    expires_at: Timestamp,
) -> SessionRecord {
    SessionRecord {
        hash: secret(seed),
        user: user.clone(),
        created_at,
        expires_at,
    }
}

/// An API token record.
fn api_token(id: &str, reseller: &ResellerId, by: &User, created_at: Timestamp) -> ApiTokenRecord {
    ApiTokenRecord {
        id: id.into(),
        reseller: reseller.clone(),
        name: format!("token {id}"),
        hash: secret(&format!("API token {id}")),
        created_at,
        created_by: by.login.clone(),
        revoked_at: None,
        expires_at: None,
    }
}

/// A reseller's users, which the store must list.
async fn users_of(fx: &Fixture, reseller: &ResellerId) -> Vec<User> {
    fx.store
        .users(reseller)
        .await
        .unwrap_or_else(|e| panic!("users of {reseller}: {e}"))
}

/// A login's stored user and password hash.
async fn credentials(fx: &Fixture, who: &str) -> Option<(User, String)> {
    fx.store
        .user_credentials(&login(who))
        .await
        .unwrap_or_else(|e| panic!("credentials of {who}: {e}"))
}

/// A session as the store reads it at `now`.
async fn session_at(fx: &Fixture, seed: &str, now: Timestamp) -> Option<SessionRecord> {
    fx.store
        .session(&secret(seed), now)
        .await
        .unwrap_or_else(|e| panic!("session {seed:?} at {now:?}: {e}"))
}

#[track_caller]
fn assert_unauthenticated<T: std::fmt::Debug>(result: crate::Result<T>, what: &str) {
    let err = refused(result, what);
    assert!(
        matches!(err, Error::Unauthenticated { .. }),
        "{what}: expected Unauthenticated, got {err:?}"
    );
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(result: crate::Result<T>, what: &str) {
    let err = refused(result, what);
    assert!(
        matches!(err, Error::NotFound { .. }),
        "{what}: expected NotFound, got {err:?}"
    );
}

#[track_caller]
fn assert_already_exists<T: std::fmt::Debug>(result: crate::Result<T>, what: &str) {
    let err = refused(result, what);
    assert!(
        matches!(err, Error::AlreadyExists { .. }),
        "{what}: expected AlreadyExists, got {err:?}"
    );
}

#[track_caller]
fn assert_permission_denied<T: std::fmt::Debug>(result: crate::Result<T>, what: &str) {
    let err = refused(result, what);
    assert!(
        matches!(err, Error::PermissionDenied { .. }),
        "{what}: expected PermissionDenied, got {err:?}"
    );
}
