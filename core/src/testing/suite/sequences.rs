//! Sequence numbers are `u64`: their order holds across 2⁶³, where a
//! backend storing them in a signed 64-bit column sees the sign flip.

use super::{beat, detail, secs, server, sign, t};
use crate::error::Error;
use crate::ids::RecordingServerId;
use crate::service::IncomingMessage;
use crate::store::WriteOutcome;
use crate::testing::TestBackend;
use crate::testing::fixture::Fixture;

const HALF: u64 = 1 << 63;

/// Signs of life with sequences on both sides of 2⁶³ and at `u64::MAX`:
/// each newer one is applied, each older one is `Stale` and changes nothing.
pub(crate) async fn sequences_keep_their_order_past_2_pow_63(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    // Each sequence, and the last accepted one if it must be refused as stale.
    let steps = [
        (HALF - 2, None),
        (HALF - 1, None),
        (HALF, None),
        (HALF + 2, None),
        (HALF + 1, Some(HALF + 2)),
        (HALF - 1, Some(HALF + 2)),
        (5, Some(HALF + 2)),
        (u64::MAX, None),
        (u64::MAX - 1, Some(u64::MAX)),
    ];
    let mut last_applied = None;
    for (n, (sequence, stale_after)) in (1u64..).zip(steps) {
        let sign_of_life = sign(&site.slc, "rs-1", sequence, "tag", t(n));
        let outcomes = fx
            .store
            .record_signs_of_life(std::slice::from_ref(&sign_of_life))
            .await
            .expect("record_signs_of_life");
        match (outcomes.as_slice(), stale_after) {
            ([WriteOutcome::Applied(_)], None) => last_applied = Some((sequence, t(n))),
            ([WriteOutcome::Stale { last_accepted }], Some(expected)) => {
                assert_eq!(*last_accepted, expected, "sequence {sequence}");
            }
            (other, _) => {
                panic!("sequence {sequence}: expected stale after {stale_after:?}, got {other:?}")
            }
        }
        let (cursor, seen) = last_applied.expect("the first sign of life is applied");
        let stored = server(&detail(&fx, &site).await, "rs-1").clone();
        assert_eq!(
            (stored.cursor.sequence, stored.last_seen_at),
            (cursor, seen),
            "after sequence {sequence}"
        );
    }
}

/// Deleting withdrawn data keeps each server's sequence cursor: once consent
/// is given again, a message captured before the deletion is refused as a
/// replay (it read as the server's first sight and was accepted), its last
/// message is a duplicate that changes nothing, and a newer one is the
/// server's first sight. A second deletion keeps the newer cursor.
pub(crate) async fn a_message_captured_before_its_data_was_deleted_stays_a_replay(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0004").await;
    let rs1 = RecordingServerId::new("rs-1").expect("valid server id");
    let captured = IncomingMessage::heartbeat(&site.key, &site.slc, &rs1, 5);
    fx.carewatch
        .ingest(captured.clone())
        .await
        .expect("accepted when sent");
    beat(&fx, &site, "rs-1", 6).await;
    let last = IncomingMessage::heartbeat(&site.key, &site.slc, &rs1, 7);
    fx.carewatch.ingest(last.clone()).await.expect("accepted");
    let delete_after_retention = || async {
        fx.carewatch
            .set_consent(&site.slc, false)
            .await
            .expect("withdrawn");
        fx.advance(secs(31 * 24 * 3600));
        assert_eq!(fx.carewatch.delete_withdrawn_data().await.expect("runs"), 1);
        assert!(detail(&fx, &site).await.servers.is_empty());
        fx.carewatch
            .set_consent(&site.slc, true)
            .await
            .expect("given again");
    };
    delete_after_retention().await;

    let replayed = fx.carewatch.ingest(captured.clone()).await;
    assert!(
        matches!(
            replayed,
            Err(Error::Replayed {
                sequence: 5,
                last_accepted: 7,
                ..
            })
        ),
        "{replayed:?}"
    );
    let again = fx.carewatch.ingest(last).await.expect("a duplicate");
    assert!(again.duplicate, "the last message is a duplicate");
    assert!(
        detail(&fx, &site).await.servers.is_empty(),
        "neither wrote anything"
    );
    beat(&fx, &site, "rs-1", 8).await;
    assert_eq!(
        server(&detail(&fx, &site).await, "rs-1").cursor.sequence,
        8,
        "a newer message is the server's first sight"
    );

    delete_after_retention().await;
    let replayed = fx.carewatch.ingest(captured).await;
    assert!(
        matches!(
            replayed,
            Err(Error::Replayed {
                last_accepted: 8,
                ..
            })
        ),
        "{replayed:?}"
    );
}
