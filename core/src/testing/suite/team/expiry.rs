//! API tokens that expire.

use std::time::Duration;

use super::{assert_unauthenticated, member};
use crate::error::Error;
use crate::store::limits::MAX_LIVE_API_TOKENS_PER_RESELLER;
use crate::team::Role;
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, START};
use crate::testing::suite::{refused, secs};

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
