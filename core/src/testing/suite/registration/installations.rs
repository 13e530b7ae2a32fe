//! Installations: registered once, updated, and their keys stored wrapped and retired.

use super::key_bytes;
use crate::error::Error;
use crate::health::{Health, HealthSummary};
use crate::ids::RecordingServerId;
use crate::installation::{Installation, Product};
use crate::seal::{InstallationKey, KeyId, SealError};
use crate::store::{InstallationUpdate, OverviewQuery, OverviewRow};
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, START, Site};
use crate::testing::suite::{
    accept, beat, detail, heartbeat_msg, observable, overview_all, refused, reseller_id, secs, slc,
    t,
};
use crate::time::Timestamp;

/// An SLC is registered once, to an existing reseller; a refused
/// registration leaves nothing behind.
pub(crate) async fn installations_register_once_to_an_existing_reseller(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let alpha = fx.reseller("alpha").await;
    let beta = fx.reseller("beta").await;
    let product = Product::new("XProtect Corporate", "2016 R3").expect("valid product");
    let first = slc("M01-C01-0001");

    fx.advance(secs(3));
    let installation = fx
        .carewatch
        .register_installation(&first, &alpha, product.clone())
        .await
        .expect("registering a new SLC");
    let expected = Installation {
        slc: first.clone(),
        reseller: alpha.clone(),
        product: product.clone(),
        subscription_expires_at: None,
        consent: false,
        registered_at: t(3),
    };
    assert_eq!(
        installation, expected,
        "register_installation returned something else"
    );
    assert_eq!(
        fx.store
            .installation(&first)
            .await
            .expect("reading it back"),
        Some(expected.clone()),
        "the stored installation differs from the registered one"
    );

    fx.advance(secs(1));
    for (reseller, text) in [(&alpha, "M01-C01-0001"), (&beta, "m01-c01-0001")] {
        let err = refused(
            fx.carewatch
                .register_installation(&slc(text), reseller, product.clone())
                .await,
            &format!("registering {text} again for {reseller}"),
        );
        assert!(
            matches!(err, Error::AlreadyExists { .. }),
            "registering a taken SLC ({text} for {reseller}) must be AlreadyExists, got {err:?}"
        );
    }
    let err = refused(
        fx.store
            .register_installation(&Installation {
                reseller: beta.clone(),
                registered_at: fx.carewatch.now(),
                ..expected.clone()
            })
            .await,
        "Store::register_installation with a taken SLC",
    );
    assert!(
        matches!(err, Error::AlreadyExists { .. }),
        "Store::register_installation with a taken SLC must be AlreadyExists, got {err:?}"
    );
    assert_eq!(
        fx.store
            .installation(&first)
            .await
            .expect("reading it back"),
        Some(expected.clone()),
        "a refused registration changed the installation (owner or time)"
    );

    let second = slc("M01-C01-0002");
    let err = refused(
        fx.carewatch
            .register_installation(&second, &reseller_id("ghost"), product.clone())
            .await,
        "registering to a reseller that does not exist",
    );
    assert!(
        matches!(err, Error::NotFound { .. }),
        "registering to an unknown reseller must be NotFound, got {err:?}"
    );
    assert_eq!(
        fx.store.installation(&second).await.expect("reading"),
        None,
        "a refused registration left an installation behind"
    );
    fx.carewatch
        .register_installation(&second, &beta, product.clone())
        .await
        .expect("the SLC refused for an unknown reseller is still free");

    // A new registration is Pending, listed by default.
    for query in [
        OverviewQuery::default(),
        OverviewQuery {
            include_healthy: true,
            ..OverviewQuery::default()
        },
    ] {
        let page = fx
            .carewatch
            .overview(&alpha, &query)
            .await
            .expect("alpha's overview");
        assert_eq!(
            page.rows,
            vec![OverviewRow {
                slc: first.clone(),
                product: product.clone(),
                summary: HealthSummary::pending(),
                last_seen_at: None,
                labels: crate::labels::Labels::default(),
                consent: false,
                subscription_expires_at: None,
            }],
            "alpha's overview ({query:?}) must list exactly its Pending installation"
        );
        assert_eq!(page.next, None);
        assert_eq!(page.totals.get(Health::Pending), 1);
        assert_eq!(page.totals.total(), 1, "alpha has one installation");
    }
    let beta_rows = overview_all(&fx, &beta, true).await.rows;
    assert_eq!(
        beta_rows.iter().map(|r| r.slc.clone()).collect::<Vec<_>>(),
        vec![second],
        "beta must see exactly the installation registered to it"
    );
}

/// Subscription, consent and product changes are stored exactly and
/// returned; changing an unknown SLC is `NotFound`.
pub(crate) async fn installation_updates_are_stored(backend: &(impl TestBackend + ?Sized)) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    let mut expected = fx
        .store
        .installation(&site.slc)
        .await
        .expect("reading the installation")
        .expect("the fixture's installation exists");
    assert!(expected.consent, "the fixture's installation has consent");

    // An instant with milliseconds, to catch rounding to seconds.
    let expiry = Timestamp::from_millis(START.as_millis() + 86_400_000 + 12_345);
    let husky = Product::new("Husky M50", "2.1 (build 77)").expect("valid product");
    let steps = [
        InstallationUpdate::Subscription(Some(expiry)),
        InstallationUpdate::Consent(false),
        InstallationUpdate::Product(husky.clone()),
        InstallationUpdate::Subscription(None),
        InstallationUpdate::Consent(true),
    ];
    for update in steps {
        fx.advance(secs(1));
        let returned = match &update {
            InstallationUpdate::Subscription(at) => {
                expected.subscription_expires_at = *at;
                fx.carewatch.set_subscription(&site.slc, *at).await
            }
            InstallationUpdate::Consent(accepted) => {
                expected.consent = *accepted;
                fx.carewatch.set_consent(&site.slc, *accepted).await
            }
            InstallationUpdate::Product(p) => {
                expected.product = p.clone();
                fx.carewatch.set_product(&site.slc, p.clone()).await
            }
        }
        .unwrap_or_else(|e| panic!("{update:?}: {e}"));
        assert_eq!(
            returned, expected,
            "{update:?} returned a different installation"
        );
        assert_eq!(
            fx.store.installation(&site.slc).await.expect("reading"),
            Some(expected.clone()),
            "after {update:?} the stored installation differs"
        );
    }
    assert_eq!(
        detail(&fx, &site).await.installation,
        expected,
        "the installation detail shows stale installation data"
    );
    let row = overview_all(&fx, &site.reseller, true).await.rows;
    assert_eq!(
        row.iter().map(|r| r.product.clone()).collect::<Vec<_>>(),
        vec![husky],
        "the overview shows a stale product"
    );

    let ghost = slc("M99-C99-9999");
    for update in [
        InstallationUpdate::Subscription(Some(expiry)),
        InstallationUpdate::Consent(true),
        InstallationUpdate::Product(Product::default()),
    ] {
        let err = refused(
            fx.store
                .update_installation(&ghost, &update, fx.carewatch.now())
                .await,
            &format!("{update:?} on an unregistered SLC"),
        );
        assert!(
            matches!(err, Error::NotFound { .. }),
            "{update:?} on an unregistered SLC must be NotFound, got {err:?}"
        );
    }
    assert_eq!(
        fx.store.installation(&ghost).await.expect("reading"),
        None,
        "updating an unregistered SLC created it"
    );
}

/// Keys are stored only wrapped under the master key, listed by id with
/// their issue and retirement times; a retired key opens nothing.
pub(crate) async fn installation_keys_are_stored_wrapped_and_retired(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    let key1 = site.key.clone();
    assert_eq!(
        key1.id(),
        KeyId::new(1),
        "an installation's first key is #1"
    );

    fx.advance(secs(10));
    let key2 = fx
        .carewatch
        .issue_installation_key(&site.slc)
        .await
        .expect("issuing a second key");
    assert_eq!(key2.id(), KeyId::new(2), "the second key is #2");

    let keys = fx
        .store
        .installation_keys(&site.slc)
        .await
        .expect("listing keys");
    assert_eq!(
        keys.iter()
            .map(|k| (k.wrapped.id, k.created_at, k.retired_at))
            .collect::<Vec<_>>(),
        vec![(KeyId::new(1), START, None), (KeyId::new(2), t(10), None)],
        "keys must be listed by id with their issue times, none retired"
    );
    for (stored, issued) in keys.iter().zip([&key1, &key2]) {
        let clear = key_bytes(issued);
        assert_eq!(clear.len(), 32);
        assert!(
            !stored
                .wrapped
                .sealed
                .windows(32)
                .any(|w| w == clear.as_slice()),
            "key {} is stored in clear inside its wrapped form",
            stored.wrapped.id
        );
        let hex = issued.to_text();
        let hex = hex.rsplit(':').next().expect("hex part").as_bytes();
        assert!(
            !stored.wrapped.sealed.windows(hex.len()).any(|w| w == hex),
            "key {} is stored as hex text",
            stored.wrapped.id
        );
        let unwrapped = fx
            .master_key
            .unwrap_key(&site.slc, &stored.wrapped)
            .unwrap_or_else(|e| panic!("stored key {} does not unwrap: {e}", stored.wrapped.id));
        assert_eq!(
            *unwrapped.to_text(),
            *issued.to_text(),
            "stored key {} unwraps to another key",
            stored.wrapped.id
        );
    }

    // Both keys are active: messages under either are accepted.
    let with_key1 = Site {
        key: key1.clone(),
        ..site.clone()
    };
    let with_key2 = Site {
        key: key2.clone(),
        ..site.clone()
    };
    beat(&fx, &with_key1, "rs-1", 1).await;
    beat(&fx, &with_key2, "rs-1", 2).await;
    let server = RecordingServerId::new("rs-1").expect("valid id");
    let admission = fx
        .store
        .admission(&site.slc, &server, KeyId::new(2))
        .await
        .expect("admission")
        .expect("a registered SLC has an admission");
    assert_eq!(
        admission.key,
        Some(keys[1].wrapped.clone()),
        "admission must return the active key the envelope names"
    );
    let admission = fx
        .store
        .admission(&site.slc, &server, KeyId::new(7))
        .await
        .expect("admission")
        .expect("a registered SLC has an admission");
    assert_eq!(
        admission.key, None,
        "admission returned a key for an unknown key id"
    );

    fx.advance(secs(5));
    fx.carewatch
        .retire_installation_key(&site.slc, KeyId::new(1))
        .await
        .expect("retiring key #1");
    let keys = fx
        .store
        .installation_keys(&site.slc)
        .await
        .expect("listing keys");
    assert_eq!(
        keys.iter()
            .map(|k| (k.wrapped.id, k.created_at, k.retired_at))
            .collect::<Vec<_>>(),
        vec![
            (KeyId::new(1), START, Some(t(15))),
            (KeyId::new(2), t(10), None)
        ],
        "a retired key must stay listed, with its retirement time"
    );
    let admission = fx
        .store
        .admission(&site.slc, &server, KeyId::new(1))
        .await
        .expect("admission")
        .expect("a registered SLC has an admission");
    assert_eq!(admission.key, None, "admission returned a retired key");

    let before = observable(&fx, &site).await;
    let err = refused(
        fx.carewatch
            .ingest(heartbeat_msg(&with_key1, "rs-1", 3))
            .await,
        "a heartbeat sealed with a retired key",
    );
    assert!(
        matches!(&err, Error::CannotDecrypt { slc, reason: SealError::UnknownKey(id) }
            if *slc == site.slc && *id == KeyId::new(1)),
        "a message under a retired key must be CannotDecrypt(UnknownKey #1), got {err:?}"
    );
    assert_eq!(
        observable(&fx, &site).await,
        before,
        "a message under a retired key changed something"
    );
    accept(
        &fx,
        heartbeat_msg(&with_key2, "rs-1", 3),
        "the same sequence under the active key",
    )
    .await;

    // Store-level refusals.
    let duplicate = fx
        .master_key
        .wrap(&site.slc, &InstallationKey::generate(KeyId::new(2)));
    let err = refused(
        fx.store
            .add_installation_key(&site.slc, &duplicate, fx.carewatch.now())
            .await,
        "adding a key with a used id",
    );
    assert!(
        matches!(err, Error::AlreadyExists { .. }),
        "adding a key with a used id must be AlreadyExists, got {err:?}"
    );
    assert_eq!(
        fx.store
            .installation_keys(&site.slc)
            .await
            .expect("listing keys"),
        keys,
        "a refused key replaced a stored one"
    );
    let ghost = slc("M99-C99-9999");
    let err = refused(
        fx.store
            .add_installation_key(&ghost, &duplicate, fx.carewatch.now())
            .await,
        "adding a key to an unregistered SLC",
    );
    assert!(
        matches!(err, Error::NotFound { .. }),
        "adding a key to an unregistered SLC must be NotFound, got {err:?}"
    );
    for (target, id, what) in [
        (&site.slc, KeyId::new(9), "a key id that does not exist"),
        (&ghost, KeyId::new(1), "an unregistered SLC"),
    ] {
        let err = refused(
            fx.store
                .retire_installation_key(target, id, fx.carewatch.now())
                .await,
            &format!("retiring {what}"),
        );
        assert!(
            matches!(err, Error::NotFound { .. }),
            "retiring {what} must be NotFound, got {err:?}"
        );
    }
    let err = refused(
        fx.carewatch.issue_installation_key(&ghost).await,
        "issuing a key for an unregistered SLC",
    );
    assert!(
        matches!(err, Error::NotFound { .. }),
        "issuing a key for an unregistered SLC must be NotFound, got {err:?}"
    );
    assert_eq!(
        fx.store.installation_keys(&ghost).await.expect("listing"),
        vec![],
        "a refused key was stored for an unregistered SLC"
    );

    // Ids are never reused, and are per installation.
    let key3 = fx
        .carewatch
        .issue_installation_key(&site.slc)
        .await
        .expect("issuing a third key");
    assert_eq!(
        key3.id(),
        KeyId::new(3),
        "a retired key's id must not be reused"
    );
    let other = fx.site("alpha", "M01-C01-0002").await;
    assert_eq!(
        other.key.id(),
        KeyId::new(1),
        "key ids are per installation"
    );
    beat(&fx, &other, "rs-1", 1).await;
    assert_eq!(
        detail(&fx, &site).await.servers.len(),
        1,
        "a message of another installation was recorded for this one"
    );
}
