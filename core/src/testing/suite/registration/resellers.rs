//! Resellers, their rotating tokens and operator tokens.

use crate::auth::{Principal, issue_token};
use crate::error::Error;
use crate::store::Reseller;
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, START};
use crate::testing::suite::{refused, reseller_id, secs, t};

/// A reseller id is created once; a second creation is `AlreadyExists` and
/// leaves the first one (name, creation time, token) untouched.
pub(crate) async fn resellers_are_created_once(backend: &(impl TestBackend + ?Sized)) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let acme = reseller_id("acme");

    let first = fx
        .carewatch
        .create_reseller(&acme, "Acme Security")
        .await
        .expect("creating a new reseller");
    fx.advance(secs(5));
    let err = refused(
        fx.carewatch.create_reseller(&acme, "Impostor").await,
        "creating reseller acme a second time",
    );
    assert!(
        matches!(err, Error::AlreadyExists { .. }),
        "creating reseller acme twice must be AlreadyExists, got {err:?}"
    );

    // Straight to the store, with another token: still refused, and the
    // stored token must not have been replaced.
    let other = issue_token(&Principal::Reseller(acme.clone()));
    let err = refused(
        fx.store
            .create_reseller(
                &Reseller {
                    id: acme.clone(),
                    name: "Impostor".into(),
                    created_at: fx.carewatch.now(),
                },
                &other.hash,
            )
            .await,
        "Store::create_reseller with a taken id",
    );
    assert!(
        matches!(err, Error::AlreadyExists { .. }),
        "Store::create_reseller with a taken id must be AlreadyExists, got {err:?}"
    );
    assert_eq!(
        fx.store
            .reseller_token(&acme)
            .await
            .expect("reading acme's token"),
        Some(first.hash.clone()),
        "a refused second creation replaced acme's token hash"
    );
    assert_eq!(
        fx.carewatch
            .authenticate_reseller(&first.token, None)
            .await
            .expect("acme's first token must still authenticate"),
        acme,
        "acme's first token authenticated as somebody else"
    );

    let abc = reseller_id("abc");
    fx.carewatch
        .create_reseller(&abc, "ABC Integration")
        .await
        .expect("creating a second reseller");
    assert_eq!(
        fx.carewatch.resellers().await.expect("listing resellers"),
        vec![
            Reseller {
                id: abc,
                name: "ABC Integration".into(),
                created_at: t(5),
            },
            Reseller {
                id: acme,
                name: "Acme Security".into(),
                created_at: START,
            },
        ],
        "resellers must be listed by id, each exactly as first created"
    );
}

/// Rotating a reseller's token revokes the old one at once; the new one works;
/// rotating an unknown reseller is `NotFound` and creates nothing.
pub(crate) async fn reseller_tokens_rotate(backend: &(impl TestBackend + ?Sized)) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let acme = reseller_id("acme");
    let beta = reseller_id("beta");
    let t1 = fx
        .carewatch
        .create_reseller(&acme, "Acme")
        .await
        .expect("creating acme");
    let tb = fx
        .carewatch
        .create_reseller(&beta, "Beta")
        .await
        .expect("creating beta");
    assert_eq!(
        fx.carewatch
            .authenticate_reseller(&t1.token, None)
            .await
            .expect("acme's first token"),
        acme
    );

    let t2 = fx
        .carewatch
        .rotate_reseller_token(&acme)
        .await
        .expect("rotating acme's token");
    let err = refused(
        fx.carewatch.authenticate_reseller(&t1.token, None).await,
        "acme's token after rotation",
    );
    assert!(
        matches!(err, Error::Unauthenticated { .. }),
        "a rotated-out token must be Unauthenticated, got {err:?}"
    );
    assert_eq!(
        fx.carewatch
            .authenticate_reseller(&t2.token, None)
            .await
            .expect("acme's new token must authenticate"),
        acme
    );
    assert_eq!(
        fx.store
            .reseller_token(&acme)
            .await
            .expect("reading acme's token"),
        Some(t2.hash.clone()),
        "the store must hold the new token's hash"
    );

    let t3 = fx
        .carewatch
        .rotate_reseller_token(&acme)
        .await
        .expect("rotating acme's token again");
    for (token, label) in [(&t1, "first"), (&t2, "second")] {
        let err = refused(
            fx.carewatch.authenticate_reseller(&token.token, None).await,
            &format!("acme's {label} token after two rotations"),
        );
        assert!(
            matches!(err, Error::Unauthenticated { .. }),
            "acme's {label} token must be Unauthenticated after rotation, got {err:?}"
        );
    }
    assert_eq!(
        fx.carewatch
            .authenticate_reseller(&t3.token, None)
            .await
            .expect("acme's third token"),
        acme
    );
    assert_eq!(
        fx.carewatch
            .authenticate_reseller(&tb.token, None)
            .await
            .expect("beta's token must survive acme's rotations"),
        beta
    );

    let ghost = reseller_id("ghost");
    let err = refused(
        fx.carewatch.rotate_reseller_token(&ghost).await,
        "rotating the token of a reseller that does not exist",
    );
    assert!(
        matches!(err, Error::NotFound { .. }),
        "rotating an unknown reseller's token must be NotFound, got {err:?}"
    );
    assert_eq!(
        fx.store
            .reseller_token(&ghost)
            .await
            .expect("reading ghost's token"),
        None,
        "a refused rotation stored a token for a reseller that does not exist"
    );
    assert_eq!(
        fx.carewatch
            .resellers()
            .await
            .expect("listing resellers")
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>(),
        vec!["acme", "beta"],
        "a refused rotation created a reseller"
    );
}

/// Operator tokens: stored per operator name, replaced by reissue, separate
/// from reseller tokens of the same name.
pub(crate) async fn operator_tokens_round_trip(backend: &(impl TestBackend + ?Sized)) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let root = reseller_id("root");
    let ops = reseller_id("ops");

    assert!(
        !fx.store.has_operator().await.expect("has_operator"),
        "a fresh database must have no operator"
    );
    assert_eq!(
        fx.store
            .operator_token(&root)
            .await
            .expect("operator_token"),
        None,
        "a fresh database must hold no operator token"
    );

    let t1 = fx
        .carewatch
        .ensure_operator(&root)
        .await
        .expect("ensure_operator on a fresh database")
        .expect("the first ensure_operator must issue a token");
    assert!(
        fx.store.has_operator().await.expect("has_operator"),
        "has_operator must be true once a token is stored"
    );
    assert!(
        fx.carewatch
            .ensure_operator(&root)
            .await
            .expect("ensure_operator again")
            .is_none(),
        "ensure_operator must not issue a second token while one exists"
    );
    assert!(
        fx.carewatch
            .ensure_operator(&ops)
            .await
            .expect("ensure_operator for another name")
            .is_none(),
        "ensure_operator must not issue a token while any operator exists"
    );
    assert_eq!(
        fx.store
            .operator_token(&root)
            .await
            .expect("operator_token"),
        Some(t1.hash.clone()),
        "the store must hold root's token hash"
    );
    assert_eq!(
        fx.carewatch
            .authenticate(&t1.token, None)
            .await
            .expect("root's token must authenticate"),
        Principal::Operator(root.clone())
    );
    let err = refused(
        fx.carewatch.authenticate_reseller(&t1.token, None).await,
        "an operator token used as a reseller token",
    );
    assert!(
        matches!(err, Error::Unauthenticated { .. }),
        "an operator token is not a reseller token, got {err:?}"
    );

    let t2 = fx
        .carewatch
        .issue_operator_token(&ops)
        .await
        .expect("issuing a second operator's token");
    let t3 = fx
        .carewatch
        .issue_operator_token(&root)
        .await
        .expect("reissuing root's token");
    let err = refused(
        fx.carewatch.authenticate_operator(&t1.token, None).await,
        "root's replaced token",
    );
    assert!(
        matches!(err, Error::Unauthenticated { .. }),
        "a replaced operator token must be Unauthenticated, got {err:?}"
    );
    for (token, name) in [(&t2, &ops), (&t3, &root)] {
        assert_eq!(
            &fx.carewatch
                .authenticate_operator(&token.token, None)
                .await
                .unwrap_or_else(|e| panic!("operator {name}'s current token: {e}")),
            name
        );
    }

    // A reseller with an operator's name: separate credentials.
    let reseller_root = fx
        .carewatch
        .create_reseller(&root, "Root Resale")
        .await
        .expect("a reseller may share a name with an operator");
    assert_eq!(
        fx.carewatch
            .authenticate(&reseller_root.token, None)
            .await
            .expect("reseller root's token"),
        Principal::Reseller(root.clone())
    );
    let err = refused(
        fx.carewatch
            .authenticate_operator(&reseller_root.token, None)
            .await,
        "reseller root's token used as an operator token",
    );
    assert!(
        matches!(err, Error::Unauthenticated { .. }),
        "a reseller token is not an operator token, got {err:?}"
    );
    assert_eq!(
        fx.store
            .operator_token(&root)
            .await
            .expect("operator_token"),
        Some(t3.hash.clone()),
        "creating reseller root replaced operator root's token"
    );
    assert_eq!(
        fx.store
            .reseller_token(&root)
            .await
            .expect("reseller_token"),
        Some(reseller_root.hash.clone()),
        "reseller root's token hash is not stored as a reseller token"
    );
    assert_eq!(
        fx.carewatch
            .authenticate_operator(&t3.token, None)
            .await
            .expect("operator root's token after reseller root was created"),
        root
    );
    assert_eq!(
        fx.store
            .operator_token(&reseller_id("nobody"))
            .await
            .expect("operator_token"),
        None
    );
}

/// Bad tokens from an address slow that address's refusals, never a valid
/// token from it: behind a proxy every client shares one address.
pub(crate) async fn bad_tokens_never_slow_a_valid_one_from_the_same_address(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let acme = reseller_id("acme");
    let issued = fx
        .carewatch
        .create_reseller(&acme, "Acme")
        .await
        .expect("creating acme");
    let proxy: std::net::IpAddr = "10.0.0.7".parse().expect("an address");
    let bad = issue_token(&crate::auth::Principal::Reseller(acme.clone()));
    // Ten wrong tokens at once from the proxy's address: the later ones
    // are answered after delays of up to 4 s (five free, then 250 ms
    // doubling), each counted as soon as it was checked.
    let guesses: Vec<_> = (0..10)
        .map(|_| {
            let carewatch = fx.carewatch.clone();
            let token = bad.token.to_string();
            tokio::spawn(async move { carewatch.authenticate(&token, Some(proxy)).await })
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while fx.carewatch.authentication_delay(proxy) < std::time::Duration::from_secs(4) {
        assert!(
            std::time::Instant::now() < deadline,
            "the failures were never counted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let started = std::time::Instant::now();
    assert_eq!(
        fx.carewatch
            .authenticate(&issued.token, Some(proxy))
            .await
            .expect("the valid token"),
        Principal::Reseller(acme)
    );
    // A delay would be 5 s; a loaded machine answers far within 2.5.
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_millis(2_500), "{took:?}");
    for guess in guesses {
        let refused = guess.await.expect("task");
        assert!(
            matches!(refused, Err(Error::Unauthenticated { .. })),
            "{refused:?}"
        );
    }
}

/// The first operator is stored once: of several nodes starting on a fresh
/// database at once, one stores its token and the others nothing, whatever
/// name they give (each printed a token, and the last stored replaced the
/// ones printed before it).
pub(crate) async fn the_first_operator_is_stored_once(backend: &(impl TestBackend + ?Sized)) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let root = reseller_id("root");
    let ops = reseller_id("ops");
    let hashes: Vec<_> = (0..4)
        .map(|n| crate::team::hash_secret(&format!("operator token {n}")))
        .collect();
    // At once, as two nodes' first starts race.
    let (a, b) = tokio::join!(
        fx.store.add_first_operator(&root, &hashes[0]),
        fx.store.add_first_operator(&root, &hashes[1]),
    );
    let (a, b) = (a.expect("first node"), b.expect("second node"));
    assert!(a != b, "exactly one stores its token: {a} {b}");
    let stored = if a { &hashes[0] } else { &hashes[1] };
    for (name, hash) in [(&root, &hashes[2]), (&ops, &hashes[3])] {
        assert!(
            !fx.store
                .add_first_operator(name, hash)
                .await
                .expect("a later start"),
            "{name}: an operator exists"
        );
    }
    assert_eq!(
        fx.store.operator_token(&root).await.expect("read"),
        Some(stored.clone())
    );
    assert_eq!(fx.store.operator_token(&ops).await.expect("read"), None);
}
