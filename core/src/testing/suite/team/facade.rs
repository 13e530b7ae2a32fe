//! The team's rules through the facade: signing in, invitations, roles and API tokens.

use super::{assert_not_found, assert_permission_denied, assert_unauthenticated, login, member};
use crate::error::Error;
use crate::team::{ApiTokenRecord, INVITATION_LIFETIME, Password, Role, SESSION_LIFETIME};
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, START};
use crate::testing::suite::{refused, reseller_id, secs, t};

/// Through the facade: an invitation link sets the password once; signing
/// in works after that, and a wrong password, an unknown login and a
/// malformed one fail alike; sessions end by signing out, by expiry and by
/// the user's removal; invitations expire; made-up invitation codes are
/// throttled per address; only an admin of the reseller may invite.
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
            None,
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
                None,
            )
            .await,
        "the invitation link a second time",
    );
    assert_unauthenticated(
        fx.carewatch
            .accept_invitation(
                "cwi.not-a-secret",
                Password::new(PASSWORD).expect("valid"),
                None,
            )
            .await,
        "a malformed invitation secret",
    );
    // Made-up codes, well formed, from one address: refused before any
    // password work, and counted like bad tokens, so guessing is slowed.
    let guesser: std::net::IpAddr = [203, 0, 113, 9].into();
    for n in 0..6_u8 {
        assert_unauthenticated(
            fx.carewatch
                .accept_invitation(
                    &format!("cwi.{}", format!("{n:02x}").repeat(32)),
                    Password::new(PASSWORD).expect("valid"),
                    Some(guesser),
                )
                .await,
            "a made-up invitation code",
        );
    }
    assert!(
        !fx.carewatch.authentication_delay(guesser).is_zero(),
        "six made-up codes from one address slow the next"
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
            None,
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
    // Found by review: a user named as the reseller token's actions are
    // recorded would pass for the token in the audit log.
    let reserved = fx
        .carewatch
        .invite_user(
            &alpha,
            &login(crate::team::TOKEN_LOGIN),
            "Not the token",
            Role::Admin,
            Some(&jane),
        )
        .await;
    assert!(
        matches!(reserved, Err(Error::InvalidInput { field: "login", .. })),
        "{reserved:?}"
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
            None,
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
                None,
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
        fx.carewatch.create_api_token(&joe, "PSA sync", None).await,
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
        .create_api_token(&jane, "PSA sync", None)
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
