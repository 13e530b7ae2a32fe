//! API tokens that expire, and what is kept of ended credentials.

use std::time::Duration;

use super::{api_token, assert_unauthenticated, member, secret, session_of};
use crate::error::Error;
use crate::store::limits::{
    API_TOKENS_KEPT_AFTER_END, MAX_LIVE_API_TOKENS_PER_RESELLER, MAX_SESSIONS_PER_USER,
};
use crate::team::ApiTokenRecord;
use crate::team::Role;
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, START};
use crate::testing::suite::{refused, secs, t};

const DAY: Duration = Duration::from_secs(86_400);

/// An API token made to last 30 days opens the API until then and nothing
/// from that instant (its holder is told it expired), is stored and listed
/// with its expiry, and no longer counts towards the reseller's bound; a
/// lifetime shorter than a day or longer than two years is refused and
/// stores nothing. A token that never expires keeps working.
pub(crate) async fn api_tokens_expire_and_then_free_their_place(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let alpha = fx.reseller("alpha").await;
    let jane = member(&fx, &alpha, "jane", Role::Admin, START).await;
    let cw = &fx.carewatch;

    for (valid_for, what) in [(secs(3600), "an hour"), (DAY * 800, "800 days")] {
        let err = refused(
            cw.create_api_token(&jane, "short", Some(valid_for)).await,
            what,
        );
        assert!(
            matches!(
                err,
                Error::InvalidInput {
                    field: "lifetime",
                    ..
                }
            ),
            "{what}: {err:?}"
        );
    }
    assert!(cw.api_tokens(&alpha).await.expect("tokens").is_empty());

    let made = cw.now();
    let expiring = cw
        .create_api_token(&jane, "trial", Some(DAY * 30))
        .await
        .expect("30 days");
    let lasting = cw
        .create_api_token(&jane, "PSA", None)
        .await
        .expect("never expires");
    assert_eq!(
        expiring.record.expires_at,
        Some(made.saturating_add(DAY * 30))
    );
    let listed = cw.api_tokens(&alpha).await.expect("tokens");
    assert!(
        listed.contains(&expiring.record) && listed.contains(&lasting.record),
        "stored with their expiry: {listed:?}"
    );

    fx.advance(DAY * 30 - secs(1));
    assert_eq!(
        cw.authenticate_reader(&expiring.secret.token, None)
            .await
            .expect("a second before it expires"),
        alpha
    );
    fx.advance(secs(1));
    let err = refused(
        cw.authenticate_reader(&expiring.secret.token, None).await,
        "an expired token",
    );
    assert!(
        matches!(err, Error::Unauthenticated { reason } if reason.contains("expired")),
        "its holder is told it expired: {err:?}"
    );
    assert_unauthenticated(
        cw.authenticate_reader(&expiring.secret.token, None).await,
        "an expired token, again",
    );
    assert_eq!(
        cw.authenticate_reader(&lasting.secret.token, None)
            .await
            .expect("the token that never expires"),
        alpha
    );

    // The expired one no longer counts: the bound's worth of new ones fit
    // beside the lasting one only because it does not.
    for n in 1..MAX_LIVE_API_TOKENS_PER_RESELLER {
        cw.create_api_token(&jane, &format!("tool {n}"), None)
            .await
            .unwrap_or_else(|e| panic!("token {n}: {e}"));
    }
    let err = refused(
        cw.create_api_token(&jane, "one too many", None).await,
        "beyond the bound",
    );
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "API tokens",
                ..
            }
        ),
        "{err:?}"
    );
}

/// Found by reading maintenance: expired sessions and invitations were
/// never deleted (nothing called `prune_sessions`), and every sign-in
/// added a session, so a loop of sign-ins grew the table without end.
/// `prune_sessions` deletes API tokens revoked or expired before its
/// second instant (and keeps the others, listed); a user keeps only their
/// newest sessions; maintenance's pruning runs them.
pub(crate) async fn ended_credentials_are_pruned_and_a_user_keeps_twenty_sessions(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let alpha = fx.reseller("alpha").await;
    let jane = member(&fx, &alpha, "jane", Role::Admin, START).await;
    let joe = member(&fx, &alpha, "joe", Role::Viewer, START).await;

    let token = |id: &str, revoked: Option<u64>, expires: Option<u64>| ApiTokenRecord {
        revoked_at: revoked.map(t),
        expires_at: expires.map(t),
        ..api_token(id, &alpha, &jane, t(10))
    };
    let tokens = [
        token("00000000000000a1", Some(100), None),
        token("00000000000000a2", None, Some(200)),
        token("00000000000000a3", None, None),
        token("00000000000000a4", Some(400), Some(900)),
    ];
    for record in &tokens {
        fx.store.create_api_token(record).await.expect("stored");
    }
    let pruned = fx
        .store
        .prune_sessions(t(1000), t(300))
        .await
        .expect("pruned");
    assert_eq!(pruned, 2, "the two tokens ended before 300 s");
    let mut kept: Vec<String> = fx
        .store
        .api_tokens(&alpha)
        .await
        .expect("tokens")
        .into_iter()
        .map(|r| r.id)
        .collect();
    kept.sort();
    assert_eq!(kept, ["00000000000000a3", "00000000000000a4"]);

    let live = |seed: String| {
        let store = &fx.store;
        async move {
            store
                .session(&secret(&seed), t(60))
                .await
                .expect("session read")
                .is_some()
        }
    };
    fx.store
        .create_session(&session_of("joe's", &joe, t(1), t(100_000)))
        .await
        .expect("joe's session");
    let made = MAX_SESSIONS_PER_USER + 2;
    for n in 0..made {
        let at = t(n as u64 + 2);
        fx.store
            .create_session(&session_of(&format!("jane {n}"), &jane, at, t(100_000)))
            .await
            .expect("jane's session");
    }
    for n in 0..made {
        assert_eq!(
            live(format!("jane {n}")).await,
            n >= 2,
            "jane's session {n}: only the newest {MAX_SESSIONS_PER_USER} are kept"
        );
    }
    assert!(
        live("joe's".into()).await,
        "another user's session is not touched"
    );
    // One made with an older clock (stepped back, or another node's) is
    // kept: it is the one just signed in with.
    fx.store
        .create_session(&session_of("jane late", &jane, t(1), t(100_000)))
        .await
        .expect("a session stamped earlier");
    assert!(
        live("jane late".into()).await,
        "the session just made is kept"
    );
    assert!(!live("jane 2".into()).await, "the oldest other one ended");
    assert!(live("jane 3".into()).await);

    // Maintenance's pruning: a token revoked through the facade is deleted
    // once it has been revoked for longer than it is kept.
    let cw = &fx.carewatch;
    let issued = cw
        .create_api_token(&jane, "old tool", None)
        .await
        .expect("made");
    cw.revoke_api_token(&jane, &issued.record.id)
        .await
        .expect("revoked");
    cw.prune_credentials().await.expect("pruned");
    assert!(
        cw.api_tokens(&alpha)
            .await
            .expect("tokens")
            .iter()
            .any(|r| r.id == issued.record.id),
        "kept, listed as revoked, for a while"
    );
    fx.advance(API_TOKENS_KEPT_AFTER_END + secs(1));
    cw.prune_credentials().await.expect("pruned");
    assert!(
        !cw.api_tokens(&alpha)
            .await
            .expect("tokens")
            .iter()
            .any(|r| r.id == issued.record.id),
        "deleted once it has been revoked that long"
    );
}
