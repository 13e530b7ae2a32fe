//! Heartbeats judged on a remembered admission: the store applies them only
//! in the common case and while the admission is current, and every change
//! to what admission reads gives the admission a new version.

use crate::Error;
use crate::auth::{MessageDigest, SequenceCursor};
use crate::ids::Slc;
use crate::store::{
    AdmissionVersion, InstallationUpdate, SignOfLife, StatusWrite, Transfer, WriteOutcome,
};
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, Site, snapshot};
use crate::testing::suite::{beat, refused, rs, secs, sign};

/// The admission's version and the server's last sequence, as stored.
async fn stored(fx: &Fixture, site: &Site, server: &str) -> (AdmissionVersion, Option<u64>) {
    let admission = fx
        .store
        .admission(&site.slc, &rs(server), site.key.id())
        .await
        .expect("admission reads")
        .expect("the installation is registered");
    (
        admission.version,
        admission.server.map(|s| s.cursor.sequence),
    )
}

fn remembered(
    slc: &Slc,
    server: &str,
    sequence: u64,
    fx: &Fixture,
    version: AdmissionVersion,
) -> SignOfLife {
    SignOfLife {
        remembered: Some(version),
        ..sign(
            slc,
            server,
            sequence,
            &format!("m{sequence}"),
            fx.carewatch.now(),
        )
    }
}

/// Changes the installation straight in the store, as another node would.
async fn update(fx: &Fixture, site: &Site, update: InstallationUpdate, what: &str) {
    let now = fx.carewatch.now();
    fx.store
        .update_installation(&site.slc, &update, now)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
}

async fn write_one(fx: &Fixture, sign: SignOfLife) -> WriteOutcome {
    let mut outcomes = fx
        .store
        .record_signs_of_life(&[sign])
        .await
        .expect("the write runs");
    assert_eq!(outcomes.len(), 1, "one outcome per sign");
    outcomes.remove(0)
}

/// A remembered heartbeat is applied while the admission is at its version;
/// each change to the installation's admitted columns or keys (consent,
/// Care Plus, product, a key issued or retired, a transfer) gives a new
/// version, and a heartbeat remembered under the old one is `Readmit`,
/// changing nothing.
pub(crate) async fn remembered_heartbeats_apply_only_under_the_current_admission(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    fx.reseller("beta").await;
    beat(&fx, &site, "rs-1", 1).await;
    let (version, last) = stored(&fx, &site, "rs-1").await;
    assert_eq!(last, Some(1));
    fx.advance(secs(1));
    assert_eq!(
        write_one(&fx, remembered(&site.slc, "rs-1", 2, &fx, version)).await,
        WriteOutcome::Applied(None),
        "a newer heartbeat of an available server under the current version applies"
    );
    assert_eq!(stored(&fx, &site, "rs-1").await, (version, Some(2)));

    let now = fx.carewatch.now();
    let new_key = fx.master_key.wrap(
        &site.slc,
        &crate::seal::InstallationKey::generate(crate::seal::KeyId::new(site.key.id().get() + 1)),
    );
    // With consent withdrawn the servers are parked (no next check), so even
    // the new version's heartbeat is read: `false`.
    let changes: Vec<(&str, InstallationUpdate, bool)> = vec![
        (
            "consent withdrawn",
            InstallationUpdate::Consent(false),
            false,
        ),
        ("consent given", InstallationUpdate::Consent(true), true),
        (
            "Care Plus changed",
            InstallationUpdate::Subscription(Some(now.saturating_add(secs(3600)))),
            true,
        ),
        (
            "product changed",
            InstallationUpdate::Product(
                crate::installation::Product::new("XProtect Expert", "2024 R2").expect("product"),
            ),
            true,
        ),
    ];
    let mut version = version;
    let mut sequence = 2;
    let mut check = async |what: &str, version: &mut AdmissionVersion, applies: bool| {
        let (current, last) = stored(&fx, &site, "rs-1").await;
        assert_ne!(
            current, *version,
            "{what} must give a new admission version"
        );
        sequence += 1;
        fx.advance(secs(1));
        assert_eq!(
            write_one(&fx, remembered(&site.slc, "rs-1", sequence, &fx, *version)).await,
            WriteOutcome::Readmit,
            "a heartbeat remembered before '{what}' must be readmitted"
        );
        assert_eq!(
            stored(&fx, &site, "rs-1").await.1,
            last,
            "a readmitted heartbeat changes nothing ({what})"
        );
        let expected = if applies {
            WriteOutcome::Applied(None)
        } else {
            WriteOutcome::Readmit
        };
        assert_eq!(
            write_one(&fx, remembered(&site.slc, "rs-1", sequence, &fx, current)).await,
            expected,
            "under the new version ({what})"
        );
        *version = current;
    };
    for (what, update, applies) in &changes {
        fx.store
            .update_installation(&site.slc, update, now)
            .await
            .expect("updates");
        check(what, &mut version, *applies).await;
    }
    fx.store
        .add_installation_key(&site.slc, &new_key, now)
        .await
        .expect("adds a key");
    check("a key issued", &mut version, true).await;
    fx.store
        .retire_installation_key(&site.slc, new_key.id, now)
        .await
        .expect("retires the key");
    check("a key retired", &mut version, true).await;
    fx.store
        .transfer_installation(&Transfer {
            slc: site.slc.clone(),
            to: crate::testing::suite::reseller_id("beta"),
            at: now,
            share_history: false,
        })
        .await
        .expect("transfers");
    check("a transfer", &mut version, true).await;
}

/// Outside the common case a remembered sign is `Readmit` and changes
/// nothing: a server never heard from, a retry of the last message, an
/// older sequence, a server no longer available, and any status report.
pub(crate) async fn remembered_signs_outside_the_common_case_are_readmitted(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    beat(&fx, &site, "rs-1", 5).await;
    beat(&fx, &site, "rs-late", 1).await;
    let (version, _) = stored(&fx, &site, "rs-1").await;
    fx.advance(secs(1));

    let unknown = remembered(&site.slc, "rs-new", 1, &fx, version);
    assert_eq!(write_one(&fx, unknown).await, WriteOutcome::Readmit);
    assert_eq!(
        stored(&fx, &site, "rs-new").await.1,
        None,
        "a readmitted first sight makes no server"
    );
    let retry = SignOfLife {
        cursor: SequenceCursor {
            sequence: 5,
            digest: MessageDigest::sha256(b"anything"),
        },
        ..remembered(&site.slc, "rs-1", 5, &fx, version)
    };
    assert_eq!(write_one(&fx, retry).await, WriteOutcome::Readmit);
    let older = remembered(&site.slc, "rs-1", 4, &fx, version);
    assert_eq!(write_one(&fx, older).await, WriteOutcome::Readmit);
    assert_eq!(stored(&fx, &site, "rs-1").await.1, Some(5));

    let report = StatusWrite {
        sign: remembered(&site.slc, "rs-1", 6, &fx, version),
        snapshot: snapshot(&[]),
    };
    assert_eq!(
        fx.store
            .apply_status_report(&report)
            .await
            .expect("the write runs"),
        WriteOutcome::Readmit,
        "a status report is never judged on a remembered admission"
    );
    assert_eq!(stored(&fx, &site, "rs-1").await.1, Some(5));

    // Two signs of one server in a batch are not the common case; another
    // server's sign beside them is.
    beat(&fx, &site, "rs-2", 1).await;
    fx.advance(secs(1));
    let outcomes = fx
        .store
        .record_signs_of_life(&[
            remembered(&site.slc, "rs-1", 6, &fx, version),
            remembered(&site.slc, "rs-2", 2, &fx, version),
            remembered(&site.slc, "rs-1", 7, &fx, version),
        ])
        .await
        .expect("the write runs");
    assert_eq!(
        outcomes,
        vec![
            WriteOutcome::Readmit,
            WriteOutcome::Applied(None),
            WriteOutcome::Readmit
        ],
        "a server with two remembered signs in one batch is readmitted, the other applied"
    );
    assert_eq!(stored(&fx, &site, "rs-1").await.1, Some(5));
    assert_eq!(stored(&fx, &site, "rs-2").await.1, Some(2));

    // rs-late misses its heartbeats until the sweep finds it unavailable.
    let mut sequence = 5;
    for _ in 0..6 {
        fx.advance(crate::testing::fixture::INTERVAL);
        sequence += 1;
        beat(&fx, &site, "rs-1", sequence).await;
        fx.carewatch.sweep().await.expect("sweeps");
    }
    let (version, late_last) = stored(&fx, &site, "rs-late").await;
    let late = remembered(&site.slc, "rs-late", 2, &fx, version);
    assert_eq!(
        write_one(&fx, late).await,
        WriteOutcome::Readmit,
        "a server that is not available is readmitted (its recovery is recorded on a read)"
    );
    assert_eq!(stored(&fx, &site, "rs-late").await.1, late_last);

    // Care Plus ended: the servers are parked (no next check). Even under
    // the current version a remembered heartbeat is read, as a node whose
    // admission predates the refusal would otherwise write it.
    let now = fx.carewatch.now();
    update(
        &fx,
        &site,
        InstallationUpdate::Subscription(Some(now)),
        "ends Care Plus",
    )
    .await;
    let (version, last) = stored(&fx, &site, "rs-1").await;
    fx.advance(secs(1));
    let parked = remembered(&site.slc, "rs-1", sequence + 1, &fx, version);
    assert_eq!(
        write_one(&fx, parked).await,
        WriteOutcome::Readmit,
        "a parked server's remembered heartbeat is readmitted"
    );
    assert_eq!(stored(&fx, &site, "rs-1").await.1, last);
}

/// Through the service: a node remembers admissions between heartbeats, and
/// a change made elsewhere (here straight in the store, as another node
/// would) still decides the very next heartbeat.
pub(crate) async fn a_remembered_admission_never_outlives_a_change(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    beat(&fx, &site, "rs-1", 1).await;
    beat(&fx, &site, "rs-1", 2).await;
    let now = fx.carewatch.now();

    update(
        &fx,
        &site,
        InstallationUpdate::Consent(false),
        "withdraws consent",
    )
    .await;
    let error = refused(
        fx.heartbeat(&site, "rs-1", 3).await,
        "after consent withdrawn",
    );
    assert!(
        matches!(error, Error::ConsentMissing { .. }),
        "the next heartbeat is refused for consent: {error}"
    );
    update(
        &fx,
        &site,
        InstallationUpdate::Consent(true),
        "gives consent",
    )
    .await;
    beat(&fx, &site, "rs-1", 4).await;
    beat(&fx, &site, "rs-1", 5).await;

    update(
        &fx,
        &site,
        InstallationUpdate::Subscription(Some(now)),
        "ends Care Plus",
    )
    .await;
    fx.advance(secs(1));
    let error = refused(
        fx.heartbeat(&site, "rs-1", 6).await,
        "after Care Plus ended",
    );
    assert!(
        matches!(error, Error::SubscriptionExpired { .. }),
        "the next heartbeat is refused for Care Plus: {error}"
    );
    fx.store
        .update_installation(
            &site.slc,
            &InstallationUpdate::Subscription(Some(now.saturating_add(secs(365 * 24 * 3600)))),
            now,
        )
        .await
        .expect("renews Care Plus");
    beat(&fx, &site, "rs-1", 7).await;
    beat(&fx, &site, "rs-1", 8).await;

    fx.store
        .retire_installation_key(&site.slc, site.key.id(), now)
        .await
        .expect("retires the key");
    let error = refused(
        fx.heartbeat(&site, "rs-1", 9).await,
        "after the key was retired",
    );
    assert!(
        matches!(error, Error::CannotDecrypt { .. }),
        "the next heartbeat under a retired key is refused: {error}"
    );
    assert_eq!(
        stored(&fx, &site, "rs-1").await.1,
        Some(8),
        "no refused heartbeat was stored"
    );
}
