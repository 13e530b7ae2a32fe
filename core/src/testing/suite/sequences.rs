//! Sequence numbers are `u64`: their order holds across 2⁶³, where a
//! backend storing them in a signed 64-bit column sees the sign flip.

use super::{detail, server, sign, t};
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
