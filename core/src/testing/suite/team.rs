//! A reseller's team: invitations, users, sessions and API tokens (storage
//! guarantees on the store, the rules through the facade), and the
//! overview's health filter and SLC search.

use super::{beat, refused, report, reseller_id, secs, slc, t};
use crate::auth::TokenHash;
use crate::catalogue::ConditionCode;
use crate::error::Error;
use crate::health::Health;
use crate::ids::ResellerId;
use crate::store::{
    MAX_PAGE_SIZE, MAX_SEARCH_CHARS, OverviewPage, OverviewQuery, OverviewRow, PageCursor,
};
use crate::team::{
    ApiTokenRecord, INVITATION_LIFETIME, InvitationRecord, Login, Password, Role, SESSION_LIFETIME,
    SessionRecord, User, hash_secret,
};
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, START};
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

/// An invitation creates its user once: accepting it again, after it
/// expired or with an unknown hash is `Unauthenticated` and changes nothing;
/// a login that is already a user's (any case) is `AlreadyExists`, whether
/// when inviting or when accepting, and a refused acceptance leaves the
/// invitation usable; an invitation to a missing reseller is `NotFound`.
pub(crate) async fn invitations_create_users_once(backend: &(impl TestBackend + ?Sized)) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let alpha = fx.reseller("alpha").await;
    let beta = fx.reseller("beta").await;

    let jane = invitation(
        "jane",
        &alpha,
        "jane@alpha.example",
        Role::Admin,
        START,
        t(3600),
    );
    fx.store
        .create_invitation(&jane)
        .await
        .expect("inviting jane");
    assert_eq!(credentials(&fx, "jane@alpha.example").await, None);
    assert!(
        users_of(&fx, &alpha).await.is_empty(),
        "an invitation is not a user"
    );

    assert_unauthenticated(
        fx.store
            .accept_invitation(&secret("nobody"), "hash", t(10))
            .await,
        "accepting an unknown invitation",
    );
    assert!(users_of(&fx, &alpha).await.is_empty());

    let user = fx
        .store
        .accept_invitation(&secret("jane"), "jane's hash", t(10))
        .await
        .expect("accepting jane's invitation");
    let expected = User {
        created_at: t(10),
        ..jane.user.clone()
    };
    assert_eq!(
        user, expected,
        "the invited user, created when the invitation is accepted"
    );
    assert_eq!(
        credentials(&fx, "JANE@alpha.example").await,
        Some((expected.clone(), "jane's hash".to_owned())),
        "the user and the password hash given, found by login in any case"
    );
    assert_eq!(users_of(&fx, &alpha).await, vec![expected.clone()]);
    assert!(users_of(&fx, &beta).await.is_empty());

    assert_unauthenticated(
        fx.store
            .accept_invitation(&secret("jane"), "another hash", t(11))
            .await,
        "accepting jane's invitation a second time",
    );
    assert_eq!(
        credentials(&fx, "jane@alpha.example").await,
        Some((expected.clone(), "jane's hash".to_owned())),
        "a second acceptance must change nothing"
    );

    // Expiry: refused at expires_at, and the refusal does not use it up.
    let bob = invitation(
        "bob",
        &alpha,
        "bob@alpha.example",
        Role::Viewer,
        START,
        t(100),
    );
    fx.store
        .create_invitation(&bob)
        .await
        .expect("inviting bob");
    assert_unauthenticated(
        fx.store
            .accept_invitation(&secret("bob"), "bob's hash", t(100))
            .await,
        "accepting bob's invitation when it expires",
    );
    assert_unauthenticated(
        fx.store
            .accept_invitation(&secret("bob"), "bob's hash", t(5000))
            .await,
        "accepting bob's invitation long after it expired",
    );
    assert_eq!(credentials(&fx, "bob@alpha.example").await, None);
    assert_eq!(users_of(&fx, &alpha).await, vec![expected.clone()]);
    let bob_user = fx
        .store
        .accept_invitation(&secret("bob"), "bob's hash", just_before(t(100)))
        .await
        .expect("bob's invitation works until it expires");
    assert_eq!(bob_user.role, Role::Viewer);

    // A login already a user's, in any case: refused when inviting.
    assert_already_exists(
        fx.store
            .create_invitation(&invitation(
                "jane again",
                &beta,
                "Jane@Alpha.Example",
                Role::Viewer,
                t(20),
                t(3600),
            ))
            .await,
        "inviting a login that is already a user's (of another reseller)",
    );
    assert_unauthenticated(
        fx.store
            .accept_invitation(&secret("jane again"), "hash", t(21))
            .await,
        "the refused invitation must not have been stored",
    );

    // Two invitations for one login: the second acceptance finds it taken.
    for (seed, reseller) in [("carol 1", &alpha), ("carol 2", &beta)] {
        fx.store
            .create_invitation(&invitation(
                seed,
                reseller,
                "carol",
                Role::Viewer,
                t(30),
                t(3600),
            ))
            .await
            .unwrap_or_else(|e| panic!("{seed}: {e}"));
    }
    let carol = fx
        .store
        .accept_invitation(&secret("carol 1"), "carol's hash", t(31))
        .await
        .expect("accepting carol's first invitation");
    assert_eq!(carol.reseller, alpha);
    assert_already_exists(
        fx.store
            .accept_invitation(&secret("carol 2"), "other hash", t(32))
            .await,
        "accepting an invitation whose login was taken meanwhile",
    );
    assert_eq!(
        credentials(&fx, "carol").await,
        Some((carol.clone(), "carol's hash".to_owned())),
        "the refused acceptance must change nothing"
    );
    assert!(users_of(&fx, &beta).await.is_empty());
    // It was not used up: once the login is free, it works.
    fx.store
        .remove_user(&alpha, &login("carol"))
        .await
        .expect("removing carol from alpha");
    let carol_beta = fx
        .store
        .accept_invitation(&secret("carol 2"), "carol's new hash", t(33))
        .await
        .expect("the second invitation, once the login is free");
    assert_eq!(
        (carol_beta.reseller, carol_beta.created_at),
        (beta.clone(), t(33))
    );

    assert_not_found(
        fx.store
            .create_invitation(&invitation(
                "ghost",
                &reseller_id("nobody"),
                "ghost",
                Role::Admin,
                t(40),
                t(3600),
            ))
            .await,
        "inviting to a reseller that does not exist",
    );
    assert_unauthenticated(
        fx.store
            .accept_invitation(&secret("ghost"), "hash", t(41))
            .await,
        "the invitation to a missing reseller must not have been stored",
    );
    assert_eq!(
        users_of(&fx, &alpha)
            .await
            .iter()
            .map(|u| u.login.as_str().to_owned())
            .collect::<Vec<_>>(),
        vec!["bob@alpha.example", "jane@alpha.example"],
        "alpha's users, by login"
    );
}

/// A session is found (with its user as stored now) until its `expires_at`,
/// not from then on; `delete_session` ends it (twice is fine); removing a
/// user ends every session of theirs at once and no other; a session of a
/// missing user is `NotFound`; `prune_sessions` deletes the expired
/// sessions and invitations and keeps the rest.
pub(crate) async fn sessions_expire_and_end_with_their_user(backend: &(impl TestBackend + ?Sized)) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let alpha = fx.reseller("alpha").await;
    let beta = fx.reseller("beta").await;
    let jane = member(&fx, &alpha, "jane", Role::Admin, START).await;
    let joe = member(&fx, &alpha, "joe", Role::Viewer, START).await;
    let bea = member(&fx, &beta, "bea", Role::Admin, START).await;

    let s1 = session_of("jane 1", &jane, t(10), t(3600));
    for session in [
        &s1,
        &session_of("jane 2", &jane, t(10), t(7200)),
        &session_of("jane 3", &jane, t(10), t(7200)),
        &session_of("joe 1", &joe, t(10), t(7200)),
        &session_of("bea 1", &bea, t(10), t(7200)),
    ] {
        fx.store
            .create_session(session)
            .await
            .unwrap_or_else(|e| panic!("creating a session of {}: {e}", session.user.login));
    }

    assert_eq!(session_at(&fx, "jane 1", t(10)).await, Some(s1.clone()));
    assert_eq!(
        session_at(&fx, "jane 1", just_before(t(3600))).await,
        Some(s1.clone()),
        "found until it expires"
    );
    assert_eq!(
        session_at(&fx, "jane 1", t(3600)).await,
        None,
        "not found once expires_at is reached"
    );
    assert_eq!(session_at(&fx, "jane 1", t(9000)).await, None);
    assert_eq!(session_at(&fx, "nobody", t(10)).await, None);

    fx.store
        .delete_session(&secret("jane 2"))
        .await
        .expect("signing out");
    assert_eq!(session_at(&fx, "jane 2", t(20)).await, None, "signed out");
    fx.store
        .delete_session(&secret("jane 2"))
        .await
        .expect("signing out twice is fine");
    fx.store
        .delete_session(&secret("never existed"))
        .await
        .expect("ending a session that does not exist is fine");
    assert!(
        session_at(&fx, "jane 3", t(20)).await.is_some(),
        "signing out ends only that session"
    );

    assert_not_found(
        fx.store
            .create_session(&session_of(
                "ghost",
                &User {
                    login: login("ghost"),
                    ..jane.clone()
                },
                t(20),
                t(3600),
            ))
            .await,
        "a session of a login that is nobody",
    );
    assert_eq!(session_at(&fx, "ghost", t(20)).await, None);

    fx.store
        .remove_user(&alpha, &login("jane"))
        .await
        .expect("removing jane");
    for seed in ["jane 1", "jane 3"] {
        assert_eq!(
            session_at(&fx, seed, t(30)).await,
            None,
            "{seed}: a removed user's sessions end at once"
        );
    }
    assert_eq!(
        session_at(&fx, "joe 1", t(30)).await,
        Some(session_of("joe 1", &joe, t(10), t(7200))),
        "another user's session stays"
    );
    assert!(session_at(&fx, "bea 1", t(30)).await.is_some());
    assert_not_found(
        fx.store
            .create_session(&session_of("jane 4", &jane, t(30), t(3600)))
            .await,
        "a session of a removed user",
    );
    // Coming back under the same login does not bring old sessions back.
    let jane_again = member(&fx, &alpha, "jane", Role::Viewer, t(40)).await;
    assert_eq!(session_at(&fx, "jane 3", t(41)).await, None);
    // A session reads its user as stored now.
    let s5 = session_of("jane 5", &jane_again, t(41), t(7200));
    fx.store.create_session(&s5).await.expect("a new session");
    assert_eq!(
        session_at(&fx, "jane 5", t(42)).await.map(|s| s.user),
        Some(jane_again.clone())
    );

    // Pruning: two sessions and one invitation expire before t(500).
    for session in [
        session_of("short 1", &joe, t(50), t(100)),
        session_of("short 2", &jane_again, t(50), t(200)),
        session_of("long", &joe, t(50), t(100_000)),
    ] {
        fx.store
            .create_session(&session)
            .await
            .expect("creating a session");
    }
    fx.store
        .create_invitation(&invitation(
            "kim",
            &alpha,
            "kim",
            Role::Viewer,
            t(50),
            t(300),
        ))
        .await
        .expect("inviting kim");
    fx.store
        .create_invitation(&invitation(
            "lee",
            &alpha,
            "lee",
            Role::Viewer,
            t(50),
            t(100_000),
        ))
        .await
        .expect("inviting lee");
    let pruned = fx
        .store
        .prune_sessions(t(500))
        .await
        .expect("pruning sessions");
    assert_eq!(
        pruned, 3,
        "two expired sessions and one expired invitation are deleted"
    );
    for seed in ["short 1", "short 2"] {
        assert_eq!(
            session_at(&fx, seed, t(60)).await,
            None,
            "{seed}: pruned (gone even when read at an instant before its expiry)"
        );
    }
    assert_unauthenticated(
        fx.store
            .accept_invitation(&secret("kim"), "hash", t(60))
            .await,
        "the pruned invitation is gone",
    );
    for seed in ["long", "joe 1", "bea 1", "jane 5"] {
        assert!(
            session_at(&fx, seed, t(500)).await.is_some(),
            "{seed}: an unexpired session survives pruning"
        );
    }
    fx.store
        .accept_invitation(&secret("lee"), "lee's hash", t(600))
        .await
        .expect("an unexpired invitation survives pruning");
    assert_eq!(
        fx.store
            .prune_sessions(t(500))
            .await
            .expect("pruning again"),
        0,
        "nothing left to prune"
    );
}

/// Users and API tokens belong to one reseller: `users` lists only its own;
/// removing another reseller's user or revoking its token is `NotFound`
/// and changes nothing; `api_token` finds a token by id; tokens are listed
/// newest first and a revoked one stays listed with its (first) revocation
/// time.
pub(crate) async fn users_and_api_tokens_are_per_reseller(backend: &(impl TestBackend + ?Sized)) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let alpha = fx.reseller("alpha").await;
    let beta = fx.reseller("beta").await;
    let joe = member(&fx, &alpha, "joe", Role::Viewer, t(2)).await;
    let jane = member(&fx, &alpha, "jane", Role::Admin, t(1)).await;
    let bea = member(&fx, &beta, "bea", Role::Admin, t(3)).await;

    assert_eq!(
        users_of(&fx, &alpha).await,
        vec![jane.clone(), joe.clone()],
        "alpha's users, by login"
    );
    assert_eq!(users_of(&fx, &beta).await, vec![bea.clone()]);
    assert!(users_of(&fx, &reseller_id("gamma")).await.is_empty());

    let joe_session = session_of("joe", &joe, t(5), t(3600));
    fx.store
        .create_session(&joe_session)
        .await
        .expect("joe's session");
    assert_not_found(
        fx.store.remove_user(&beta, &login("joe")).await,
        "beta removing alpha's user",
    );
    assert_not_found(
        fx.store.remove_user(&alpha, &login("nobody")).await,
        "removing a user that does not exist",
    );
    assert_eq!(
        users_of(&fx, &alpha).await,
        vec![jane.clone(), joe.clone()],
        "a refused removal changes nothing"
    );
    assert_eq!(
        session_at(&fx, "joe", t(6)).await,
        Some(joe_session),
        "a refused removal ends no session"
    );

    let a1 = api_token("00000000000000a1", &alpha, &jane, t(10));
    let a2 = api_token("00000000000000a2", &alpha, &jane, t(20));
    let b1 = api_token("00000000000000b1", &beta, &bea, t(15));
    for token in [&a1, &a2, &b1] {
        fx.store
            .create_api_token(token)
            .await
            .unwrap_or_else(|e| panic!("creating API token {}: {e}", token.id));
    }
    assert_already_exists(
        fx.store
            .create_api_token(&api_token("00000000000000a1", &beta, &bea, t(21)))
            .await,
        "an API token with an id in use",
    );
    assert_not_found(
        fx.store
            .create_api_token(&api_token(
                "00000000000000c1",
                &reseller_id("gamma"),
                &bea,
                t(21),
            ))
            .await,
        "an API token of a reseller that does not exist",
    );
    assert_eq!(
        fx.store
            .api_token("00000000000000c1")
            .await
            .expect("api_token"),
        None
    );
    assert_eq!(
        fx.store
            .api_token("00000000000000a1")
            .await
            .expect("api_token"),
        Some(a1.clone()),
        "a token by id, exactly as stored"
    );
    assert_eq!(
        fx.store
            .api_token("ffffffffffffffff")
            .await
            .expect("api_token"),
        None
    );
    assert_eq!(
        fx.store.api_tokens(&alpha).await.expect("alpha's tokens"),
        vec![a2.clone(), a1.clone()],
        "alpha's tokens, newest first"
    );
    assert_eq!(
        fx.store.api_tokens(&beta).await.expect("beta's tokens"),
        vec![b1.clone()]
    );

    assert_not_found(
        fx.store.revoke_api_token(&beta, &a1.id, t(30)).await,
        "beta revoking alpha's token",
    );
    assert_not_found(
        fx.store
            .revoke_api_token(&alpha, "ffffffffffffffff", t(30))
            .await,
        "revoking a token that does not exist",
    );
    assert_eq!(
        fx.store.api_token(&a1.id).await.expect("api_token"),
        Some(a1.clone()),
        "a refused revocation changes nothing"
    );

    fx.store
        .revoke_api_token(&alpha, &a1.id, t(40))
        .await
        .expect("revoking a1");
    let revoked = ApiTokenRecord {
        revoked_at: Some(t(40)),
        ..a1.clone()
    };
    fx.store
        .revoke_api_token(&alpha, &a1.id, t(50))
        .await
        .expect("revoking a1 again");
    assert_eq!(
        fx.store.api_token(&a1.id).await.expect("api_token"),
        Some(revoked.clone()),
        "revoked once, at the first revocation"
    );
    assert_eq!(
        fx.store.api_tokens(&alpha).await.expect("alpha's tokens"),
        vec![a2.clone(), revoked],
        "a revoked token stays listed"
    );
    assert_eq!(
        fx.store.api_tokens(&beta).await.expect("beta's tokens"),
        vec![b1]
    );
}

/// Through the facade: an invitation link sets the password once; signing
/// in works after that, and a wrong password, an unknown login and a
/// malformed one fail alike; sessions end by signing out, by expiry and by
/// the user's removal; invitations expire; only an admin of the reseller
/// may invite.
pub(crate) async fn sign_in_follows_invitations_and_fails_alike(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let alpha = fx.reseller("alpha").await;
    let beta = fx.reseller("beta").await;
    const PASSWORD: &str = "correct horse battery";

    let invited = fx
        .carewatch
        .invite_user(
            &alpha,
            &login("Jane@Alpha.Example"),
            "Jane Doe",
            Role::Admin,
            None,
        )
        .await
        .expect("the operator invites alpha's first admin");
    assert_eq!(
        invited.expires_at,
        fx.carewatch.now().saturating_add(INVITATION_LIFETIME)
    );
    let wrong_password = refused(
        fx.carewatch
            .sign_in("jane@alpha.example", PASSWORD, None)
            .await,
        "signing in before the invitation is accepted",
    );
    fx.advance(secs(60));
    let jane = fx
        .carewatch
        .accept_invitation(
            &invited.secret.token,
            Password::new(PASSWORD).expect("valid"),
        )
        .await
        .expect("accepting the invitation");
    assert_eq!(
        (
            jane.login.as_str(),
            jane.name.as_str(),
            jane.role,
            &jane.reseller
        ),
        ("jane@alpha.example", "Jane Doe", Role::Admin, &alpha)
    );
    assert_eq!(jane.created_at, fx.carewatch.now());
    assert_unauthenticated(
        fx.carewatch
            .accept_invitation(
                &invited.secret.token,
                Password::new("another password").expect("valid"),
            )
            .await,
        "the invitation link a second time",
    );
    assert_unauthenticated(
        fx.carewatch
            .accept_invitation("cwi.not-a-secret", Password::new(PASSWORD).expect("valid"))
            .await,
        "a malformed invitation secret",
    );

    let signed_in = fx
        .carewatch
        .sign_in("JANE@alpha.example", PASSWORD, None)
        .await
        .expect("signing in with the password set by the invitation");
    assert_eq!(signed_in.session.user, jane);
    assert_eq!(
        signed_in.session.expires_at,
        fx.carewatch.now().saturating_add(SESSION_LIFETIME)
    );
    assert_eq!(
        fx.carewatch
            .session(&signed_in.secret.token)
            .await
            .expect("the session opens"),
        signed_in.session
    );

    let errors = [
        wrong_password,
        refused(
            fx.carewatch
                .sign_in("jane@alpha.example", "correct horse battery!", None)
                .await,
            "a wrong password",
        ),
        refused(
            fx.carewatch
                .sign_in("nobody@alpha.example", PASSWORD, None)
                .await,
            "an unknown login",
        ),
        refused(
            fx.carewatch.sign_in("no", PASSWORD, None).await,
            "a malformed login",
        ),
    ];
    for err in &errors {
        assert!(
            matches!(err, Error::Unauthenticated { .. }),
            "a failed sign-in must be Unauthenticated, got {err:?}"
        );
        assert_eq!(
            err.to_string(),
            errors[0].to_string(),
            "every failed sign-in must read the same"
        );
    }

    fx.carewatch
        .sign_out(&signed_in.secret.token)
        .await
        .expect("signing out");
    assert_unauthenticated(
        fx.carewatch.session(&signed_in.secret.token).await,
        "a signed-out session",
    );

    let again = fx
        .carewatch
        .sign_in("jane@alpha.example", PASSWORD, None)
        .await
        .expect("signing in again");
    fx.advance(SESSION_LIFETIME - secs(1));
    fx.carewatch
        .session(&again.secret.token)
        .await
        .expect("the session still opens just before it expires");
    fx.advance(secs(1));
    assert_unauthenticated(
        fx.carewatch.session(&again.secret.token).await,
        "an expired session",
    );

    // Jane invites a viewer, who signs in; removing the viewer ends that.
    let joe_invited = fx
        .carewatch
        .invite_user(&alpha, &login("joe"), "Joe", Role::Viewer, Some(&jane))
        .await
        .expect("an admin invites a viewer");
    let joe = fx
        .carewatch
        .accept_invitation(
            &joe_invited.secret.token,
            Password::new("joe's password").expect("valid"),
        )
        .await
        .expect("joe accepts");
    let joe_session = fx
        .carewatch
        .sign_in("joe", "joe's password", None)
        .await
        .expect("joe signs in");
    assert_permission_denied(
        fx.carewatch
            .invite_user(&alpha, &login("kim"), "Kim", Role::Admin, Some(&joe))
            .await,
        "a viewer inviting",
    );
    let bea_invited = fx
        .carewatch
        .invite_user(&beta, &login("bea"), "Bea", Role::Admin, None)
        .await
        .expect("beta's first admin");
    let bea = fx
        .carewatch
        .accept_invitation(
            &bea_invited.secret.token,
            Password::new("bea's password").expect("valid"),
        )
        .await
        .expect("bea accepts");
    assert_not_found(
        fx.carewatch
            .invite_user(&alpha, &login("kim"), "Kim", Role::Admin, Some(&bea))
            .await,
        "beta's admin inviting to alpha",
    );
    assert_not_found(
        fx.carewatch.remove_user(&bea, &login("joe")).await,
        "beta's admin removing alpha's user",
    );
    fx.carewatch
        .session(&joe_session.secret.token)
        .await
        .expect("a refused removal ends nothing");
    fx.carewatch
        .remove_user(&jane, &login("joe"))
        .await
        .expect("jane removes joe");
    assert_unauthenticated(
        fx.carewatch.session(&joe_session.secret.token).await,
        "the session of a removed user",
    );
    assert_unauthenticated(
        fx.carewatch.sign_in("joe", "joe's password", None).await,
        "a removed user signing in",
    );
    assert_eq!(
        fx.carewatch.users(&alpha).await.expect("alpha's users"),
        vec![jane.clone()]
    );

    // An invitation link expires.
    let kim = fx
        .carewatch
        .invite_user(&alpha, &login("kim"), "Kim", Role::Viewer, Some(&jane))
        .await
        .expect("jane invites kim");
    fx.advance(INVITATION_LIFETIME);
    assert_unauthenticated(
        fx.carewatch
            .accept_invitation(
                &kim.secret.token,
                Password::new("kim's password").expect("valid"),
            )
            .await,
        "an expired invitation link",
    );
    assert_eq!(
        fx.carewatch.users(&alpha).await.expect("alpha's users"),
        vec![jane]
    );
}

/// Through the facade: a viewer may not create or revoke API tokens or
/// remove users (`PermissionDenied`, nothing changes); an admin's named API
/// token authenticates a reader as its reseller until it is revoked, and the
/// reseller's own token keeps working beside it.
pub(crate) async fn viewers_may_not_manage_and_api_tokens_open_until_revoked(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let alpha = reseller_id("alpha");
    let reseller_token = fx
        .carewatch
        .create_reseller(&alpha, "Alpha Security")
        .await
        .expect("creating alpha");
    let beta = fx.reseller("beta").await;
    let jane = member(&fx, &alpha, "jane", Role::Admin, START).await;
    let joe = member(&fx, &alpha, "joe", Role::Viewer, START).await;
    let bea = member(&fx, &beta, "bea", Role::Admin, START).await;

    assert_permission_denied(
        fx.carewatch.create_api_token(&joe, "PSA sync").await,
        "a viewer creating an API token",
    );
    assert_permission_denied(
        fx.carewatch.remove_user(&joe, &login("jane")).await,
        "a viewer removing a user",
    );
    assert!(
        fx.carewatch
            .api_tokens(&alpha)
            .await
            .expect("alpha's tokens")
            .is_empty(),
        "a refused creation stores nothing"
    );
    assert_eq!(
        fx.carewatch.users(&alpha).await.expect("alpha's users"),
        vec![jane.clone(), joe.clone()],
        "a refused removal removes nobody"
    );

    fx.advance(secs(10));
    let issued = fx
        .carewatch
        .create_api_token(&jane, "PSA sync")
        .await
        .expect("an admin creates an API token");
    assert_eq!(
        (
            &issued.record.reseller,
            issued.record.name.as_str(),
            &issued.record.created_by,
            issued.record.created_at,
            issued.record.revoked_at
        ),
        (&alpha, "PSA sync", &jane.login, t(10), None)
    );
    assert_eq!(
        fx.carewatch
            .api_tokens(&alpha)
            .await
            .expect("alpha's tokens"),
        vec![issued.record.clone()]
    );
    assert!(
        fx.carewatch
            .api_tokens(&beta)
            .await
            .expect("beta's tokens")
            .is_empty()
    );
    assert_eq!(
        fx.carewatch
            .authenticate_reader(&issued.secret.token, None)
            .await
            .expect("the API token authenticates"),
        alpha
    );
    assert_eq!(
        fx.carewatch
            .authenticate_reader(&reseller_token.token, None)
            .await
            .expect("the reseller token still authenticates"),
        alpha
    );
    // The right id with the wrong secret, and an unknown id.
    let token: &str = &issued.secret.token;
    let last = token.chars().last().expect("non-empty");
    let tampered = format!(
        "{}{}",
        &token[..token.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    assert_unauthenticated(
        fx.carewatch.authenticate_reader(&tampered, None).await,
        "an API token with a wrong secret",
    );
    let unknown = format!("cwa.ffffffffffffffff.{}", "0".repeat(64));
    assert_unauthenticated(
        fx.carewatch.authenticate_reader(&unknown, None).await,
        "an API token with an unknown id",
    );

    assert_permission_denied(
        fx.carewatch.revoke_api_token(&joe, &issued.record.id).await,
        "a viewer revoking an API token",
    );
    assert_not_found(
        fx.carewatch.revoke_api_token(&bea, &issued.record.id).await,
        "another reseller's admin revoking the token",
    );
    assert_eq!(
        fx.carewatch
            .authenticate_reader(&issued.secret.token, None)
            .await
            .expect("refused revocations leave the token working"),
        alpha
    );

    fx.advance(secs(10));
    fx.carewatch
        .revoke_api_token(&jane, &issued.record.id)
        .await
        .expect("the admin revokes the token");
    assert_unauthenticated(
        fx.carewatch
            .authenticate_reader(&issued.secret.token, None)
            .await,
        "a revoked API token",
    );
    assert_eq!(
        fx.carewatch
            .api_tokens(&alpha)
            .await
            .expect("alpha's tokens"),
        vec![ApiTokenRecord {
            revoked_at: Some(t(20)),
            ..issued.record.clone()
        }],
        "the revoked token stays listed"
    );
    assert_eq!(
        fx.carewatch
            .authenticate_reader(&reseller_token.token, None)
            .await
            .expect("the reseller token is not affected"),
        alpha
    );

    fx.carewatch
        .remove_user(&jane, &login("joe"))
        .await
        .expect("an admin removes a viewer");
    assert_eq!(
        fx.carewatch.users(&alpha).await.expect("alpha's users"),
        vec![jane]
    );
}

/// Every page of an overview query; checks each page's totals.
async fn pages_of(fx: &Fixture, reseller: &ResellerId, query: &OverviewQuery) -> Vec<OverviewPage> {
    let mut pages: Vec<OverviewPage> = Vec::new();
    let mut query = query.clone();
    loop {
        assert!(pages.len() <= 100, "paging {query:?} does not end");
        let page = fx
            .carewatch
            .overview(reseller, &query)
            .await
            .unwrap_or_else(|e| panic!("overview {query:?}: {e}"));
        let next = page.next.clone();
        pages.push(page);
        match next {
            None => return pages,
            Some(cursor) => {
                query.after = Some(
                    PageCursor::from_token(&cursor.to_token()).expect("the cursor's token parses"),
                );
            }
        }
    }
}

/// The SLCs of rows.
fn slcs(rows: &[OverviewRow]) -> Vec<&str> {
    rows.iter().map(|r| r.slc.as_str()).collect()
}

/// `health` lists only installations of that health; `search` only those
/// whose SLC contains the text, in any case (literally: `%` and `_` are
/// not wildcards); both combine with each other and with paging, whose
/// pages cover exactly the filtered rows once, in order; totals stay over
/// all of the reseller's installations; a search with a control character
/// or longer than 64 characters is refused.
pub(crate) async fn overview_filters_by_health_and_searches_slcs(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let offline = fx.site("alpha", "X17-B00-0001").await;
    beat(&fx, &offline, "rs-1", 1).await;
    fx.advance(secs(182));
    let mut sites = Vec::new();
    for (text, what) in [
        ("M01-C03-0004", "critical"),
        ("M01-C03-0001", "healthy"),
        ("X17-C03-0006", "attention"),
        ("M01-C03-0002", "pending"),
        ("X17-B00-0007", "critical"),
        ("M01-B00-0003", "healthy"),
        ("M01-C03-0005", "attention"),
        ("X17-C03-0008", "critical"),
        ("M01-C03-0009", "pending"),
    ] {
        let site = fx.site("alpha", text).await;
        match what {
            "critical" => {
                report(
                    &fx,
                    &site,
                    "rs-1",
                    1,
                    &[(ConditionCode::StorageFull, "D:", "100%")],
                )
                .await;
            }
            "attention" => {
                report(
                    &fx,
                    &site,
                    "rs-1",
                    1,
                    &[(ConditionCode::LicenseOveruse, "", "12/10")],
                )
                .await;
            }
            "healthy" => {
                beat(&fx, &site, "rs-1", 1).await;
            }
            _ => {}
        }
        sites.push(site);
    }
    let foreign = fx.site("beta", "X17-C03-0000").await;
    report(
        &fx,
        &foreign,
        "rs-1",
        1,
        &[(ConditionCode::StorageFull, "D:", "100%")],
    )
    .await;
    let swept = fx.carewatch.sweep().await.expect("sweep");
    assert_eq!(
        swept.installations_changed, 1,
        "only the silent site changes"
    );
    let alpha = offline.reseller.clone();

    let everything = OverviewQuery {
        include_healthy: true,
        page_size: MAX_PAGE_SIZE,
        ..OverviewQuery::default()
    };
    let full = fx
        .carewatch
        .overview(&alpha, &everything)
        .await
        .expect("the whole overview");
    assert_eq!(
        slcs(&full.rows),
        vec![
            "X17-B00-0001",
            "M01-C03-0004",
            "X17-B00-0007",
            "X17-C03-0008",
            "M01-C03-0005",
            "X17-C03-0006",
            "M01-C03-0002",
            "M01-C03-0009",
            "M01-B00-0003",
            "M01-C03-0001",
        ],
        "the test's own set-up went wrong"
    );
    let healths: Vec<Health> = full.rows.iter().map(|r| r.summary.health).collect();
    assert_eq!(
        healths,
        vec![
            Health::Offline,
            Health::Critical,
            Health::Critical,
            Health::Critical,
            Health::Attention,
            Health::Attention,
            Health::Pending,
            Health::Pending,
            Health::Healthy,
            Health::Healthy,
        ],
        "the test's own set-up went wrong"
    );

    // Spot checks, written out.
    let one = |health: Option<Health>, search: Option<&str>, include_healthy: bool| OverviewQuery {
        include_healthy,
        health,
        search: search.map(str::to_owned),
        page_size: MAX_PAGE_SIZE,
        ..OverviewQuery::default()
    };
    for (query, expected, what) in [
        (
            one(Some(Health::Critical), None, false),
            vec!["M01-C03-0004", "X17-B00-0007", "X17-C03-0008"],
            "only Critical",
        ),
        (
            one(Some(Health::Healthy), None, false),
            vec!["M01-B00-0003", "M01-C03-0001"],
            "only Healthy, though include_healthy is false",
        ),
        (
            one(None, Some("x17"), false),
            vec![
                "X17-B00-0001",
                "X17-B00-0007",
                "X17-C03-0008",
                "X17-C03-0006",
            ],
            "a search in lower case, not beta's X17-C03-0000",
        ),
        (
            one(None, Some(" b00-000 "), true),
            vec!["X17-B00-0001", "X17-B00-0007", "M01-B00-0003"],
            "a search is trimmed; Healthy ones with include_healthy",
        ),
        (
            one(None, Some("b00"), false),
            vec!["X17-B00-0001", "X17-B00-0007"],
            "a search lists no Healthy one unless asked",
        ),
        (
            one(Some(Health::Critical), Some("c03"), false),
            vec!["M01-C03-0004", "X17-C03-0008"],
            "a health and a search together",
        ),
        (
            one(Some(Health::Offline), Some("C03"), false),
            vec![],
            "nothing matches both",
        ),
        (
            one(None, Some("   "), true),
            slcs(&full.rows),
            "a blank search is no search",
        ),
        (one(None, Some("%"), true), vec![], "'%' is not a wildcard"),
        (
            one(None, Some("M01_C03"), true),
            vec![],
            "'_' is not a wildcard",
        ),
        (
            one(None, Some("x17-c03-0006"), true),
            vec!["X17-C03-0006"],
            "a whole SLC",
        ),
    ] {
        let page = fx
            .carewatch
            .overview(&alpha, &query)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(slcs(&page.rows), expected, "{what}");
        assert_eq!(page.next, None, "{what}");
        assert_eq!(page.totals, full.totals, "{what}: totals are unfiltered");
    }

    // Every combination, paged with every size: exactly the filtered rows.
    let mut filters = vec![None];
    filters.extend(Health::ALL.map(Some));
    for health in filters {
        for search in [None, Some("c03"), Some("X17-"), Some("zzz")] {
            for include_healthy in [false, true] {
                let base = OverviewQuery {
                    include_healthy,
                    health,
                    search: search.map(str::to_owned),
                    ..OverviewQuery::default()
                };
                let pattern = base.search_pattern();
                let expected: Vec<OverviewRow> = full
                    .rows
                    .iter()
                    .filter(|r| {
                        base.lists(r.summary.health)
                            && pattern
                                .as_deref()
                                .is_none_or(|p| r.slc.as_str().contains(p))
                    })
                    .cloned()
                    .collect();
                let n = expected.len();
                for page_size in 1..=(n as u32 + 1) {
                    let label = format!(
                        "health {health:?}, search {search:?}, include_healthy {include_healthy}, page size {page_size}"
                    );
                    let query = OverviewQuery {
                        page_size,
                        ..base.clone()
                    };
                    let pages = pages_of(&fx, &alpha, &query).await;
                    assert_eq!(
                        pages.len(),
                        n.div_ceil(page_size as usize).max(1),
                        "{label}: number of pages"
                    );
                    for page in &pages {
                        assert_eq!(page.totals, full.totals, "{label}: totals are unfiltered");
                        assert!(page.rows.len() <= page_size as usize, "{label}");
                    }
                    let rows: Vec<OverviewRow> = pages.into_iter().flat_map(|p| p.rows).collect();
                    assert_eq!(
                        rows, expected,
                        "{label}: the pages together are the filtered rows, once, in order"
                    );
                }
            }
        }
    }

    // A cursor outside the filtered healths: before them, all; after, none.
    let critical = |after: PageCursor| OverviewQuery {
        after: Some(after),
        ..one(Some(Health::Critical), Some("C03"), false)
    };
    let page = fx
        .carewatch
        .overview(
            &alpha,
            &critical(PageCursor::Health {
                health: Health::Offline,
                slc: slc("AAAA"),
            }),
        )
        .await
        .expect("after an Offline position");
    assert_eq!(slcs(&page.rows), vec!["M01-C03-0004", "X17-C03-0008"]);
    let page = fx
        .carewatch
        .overview(
            &alpha,
            &critical(PageCursor::Health {
                health: Health::Critical,
                slc: slc("M01-C03-0004"),
            }),
        )
        .await
        .expect("after the first Critical one");
    assert_eq!(slcs(&page.rows), vec!["X17-C03-0008"]);
    let page = fx
        .carewatch
        .overview(
            &alpha,
            &critical(PageCursor::Health {
                health: Health::Attention,
                slc: slc("AAAA"),
            }),
        )
        .await
        .expect("after an Attention position");
    assert!(page.rows.is_empty(), "{:?}", slcs(&page.rows));

    // Refused searches.
    for (search, what) in [
        ("C03\u{7}".to_owned(), "a control character"),
        ("C03\n".to_owned(), "a line break"),
        ("C".repeat(MAX_SEARCH_CHARS + 1), "65 characters"),
    ] {
        let err = refused(
            fx.carewatch
                .overview(
                    &alpha,
                    &OverviewQuery {
                        search: Some(search),
                        ..OverviewQuery::default()
                    },
                )
                .await,
            what,
        );
        assert!(
            matches!(
                err,
                Error::InvalidInput {
                    field: "search",
                    ..
                }
            ),
            "a search with {what} must be InvalidInput(search), got {err:?}"
        );
    }
    let longest = fx
        .carewatch
        .overview(
            &alpha,
            &OverviewQuery {
                search: Some("C".repeat(MAX_SEARCH_CHARS)),
                ..OverviewQuery::default()
            },
        )
        .await
        .expect("a search of 64 characters is fine");
    assert!(longest.rows.is_empty());
}
