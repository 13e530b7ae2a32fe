//! The team on the store: invitations, sessions, users and API tokens per reseller.

use super::{
    api_token, assert_already_exists, assert_not_found, assert_unauthenticated, credentials,
    invitation, just_before, login, member, secret, session_at, session_of, users_of,
};
use crate::team::{ApiTokenRecord, Role, User};
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, START};
use crate::testing::suite::{reseller_id, t};

/// An invitation creates its user once: accepting it again, after it
/// expired or with an unknown hash is `Unauthenticated` and changes nothing;
/// inviting a login that is already a user of the same reseller (any case)
/// is `AlreadyExists`; one of another reseller is invited (nothing tells it
/// exists) and accepting it is `Unauthenticated`, like accepting a login
/// taken meanwhile, and a refused acceptance leaves the invitation usable;
/// an invitation to a missing reseller is `NotFound`. An invitation is
/// open (may be accepted) exactly while accepting it would work.
pub(crate) async fn invitations_create_users_once(backend: &(impl TestBackend + ?Sized)) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let open = |name: &'static str, at| {
        let store = fx.store.clone();
        async move {
            store
                .invitation_open(&secret(name), at)
                .await
                .expect("reading an invitation")
        }
    };
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

    assert!(open("jane", t(10)).await, "jane's invitation is open");
    assert!(!open("nobody", t(10)).await, "an unknown one is not");
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

    assert!(!open("jane", t(11)).await, "an accepted one is not");
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
    assert!(!open("bob", t(100)).await, "an expired one is not");
    assert!(open("bob", just_before(t(100))).await);
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

    // A login already one of the reseller's users, in any case: refused
    // when inviting, and the refused invitation is not stored.
    assert_already_exists(
        fx.store
            .create_invitation(&invitation(
                "jane again",
                &alpha,
                "Jane@Alpha.Example",
                Role::Viewer,
                t(20),
                t(3600),
            ))
            .await,
        "inviting a login that is already one of the reseller's users",
    );
    assert_unauthenticated(
        fx.store
            .accept_invitation(&secret("jane again"), "hash", t(21))
            .await,
        "the refused invitation must not have been stored",
    );
    // Another reseller's user: invited, refused when accepted.
    fx.store
        .create_invitation(&invitation(
            "jane elsewhere",
            &beta,
            "Jane@Alpha.Example",
            Role::Viewer,
            t(20),
            t(3600),
        ))
        .await
        .expect("inviting a login another reseller uses tells nothing");
    assert_unauthenticated(
        fx.store
            .accept_invitation(&secret("jane elsewhere"), "hash", t(21))
            .await,
        "accepting a login another reseller uses",
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
    assert_unauthenticated(
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
        .prune_sessions(t(500), t(500))
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
            .prune_sessions(t(500), t(500))
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
        Some(joe_session.clone()),
        "a refused removal ends no session"
    );
    // Found by review (PostgreSQL): beta invites alpha's joe (nothing tells
    // beta the login is taken), then removes "joe": that cancels beta's
    // invitation, and must not end alpha's joe's sessions.
    let beta_invites_joe = invitation(
        "beta's invitation of joe",
        &beta,
        "joe",
        Role::Viewer,
        t(6),
        t(3600),
    );
    fx.store
        .create_invitation(&beta_invites_joe)
        .await
        .expect("beta invites a login alpha uses");
    fx.store
        .remove_user(&beta, &login("joe"))
        .await
        .expect("beta's invitation cancelled");
    assert_eq!(
        session_at(&fx, "joe", t(7)).await,
        Some(joe_session),
        "another reseller's removal ends none of joe's sessions"
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
