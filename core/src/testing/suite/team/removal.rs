//! What removing a user takes with it, and what inviting tells.

use super::{assert_not_found, assert_unauthenticated, login, member};
use crate::error::Error;
use crate::team::{Password, Role};
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, START};
use crate::testing::suite::refused;

/// Removing a user cancels the invitations they issued that are not
/// accepted yet (a removed admin kept one for themselves and came back as
/// an admin), and removing a login that is only invited cancels its
/// invitation; another reseller's invitations stay. Inviting a login
/// another reseller uses does not tell that it exists (logins are global):
/// the invitation is made, and accepting it is refused like any unusable
/// one; the reseller's own members are still "already exists".
pub(crate) async fn removing_a_user_cancels_their_invitations_and_inviting_tells_nothing_of_others(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let alpha = fx.reseller("alpha").await;
    let beta = fx.reseller("beta").await;
    let ann = member(&fx, &alpha, "ann@alpha.example", Role::Admin, START).await;
    let mal = member(&fx, &alpha, "mal@alpha.example", Role::Admin, START).await;
    let bob = member(&fx, &beta, "bob@beta.example", Role::Admin, START).await;
    let cw = &fx.carewatch;
    let password = || Password::new("a long enough password").expect("valid");
    let invite = |by: &crate::team::User, who: &str| {
        let by = by.clone();
        let who = login(who);
        async move {
            cw.invite_user(&by.reseller, &who, "Someone", Role::Admin, Some(&by))
                .await
        }
    };

    let back_door = invite(&mal, "mal2@alpha.example").await.expect("invited");
    let carol = invite(&ann, "carol@alpha.example").await.expect("invited");
    let dave = invite(&bob, "dave@beta.example").await.expect("invited");
    cw.remove_user(&ann, &mal.login).await.expect("mal removed");
    assert_unauthenticated(
        cw.accept_invitation(&back_door.secret.token, password(), None)
            .await,
        "an invitation its removed issuer made",
    );
    cw.remove_user(&ann, &login("carol@alpha.example"))
        .await
        .expect("an invited login is removed: its invitation is cancelled");
    assert_unauthenticated(
        cw.accept_invitation(&carol.secret.token, password(), None)
            .await,
        "a cancelled invitation",
    );
    assert_not_found(
        cw.remove_user(&ann, &login("carol@alpha.example")).await,
        "removing it again",
    );
    assert_not_found(
        cw.remove_user(&ann, &login("bob@beta.example")).await,
        "another reseller's user",
    );
    cw.accept_invitation(&dave.secret.token, password(), None)
        .await
        .expect("another reseller's invitation stays");

    let other = invite(&ann, "bob@beta.example")
        .await
        .expect("nothing tells that beta uses the login");
    assert_unauthenticated(
        cw.accept_invitation(&other.secret.token, password(), None)
            .await,
        "accepting a login another reseller uses",
    );
    let own = refused(
        invite(&ann, "ann@alpha.example").await,
        "inviting one of the reseller's own users",
    );
    assert!(matches!(own, Error::AlreadyExists { .. }), "{own:?}");
}
