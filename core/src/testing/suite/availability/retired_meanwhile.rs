//! A sweep's verdict against a life-cycle change committed between its
//! evaluation and its write.

use super::{epoch, unavailable_verdicts};
use crate::availability::Availability;
use crate::catalogue::ConditionCode;
use crate::store::{AvailabilityOutcome, HistoryKind};
use crate::team::Role;
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, START};
use crate::testing::suite::team::member;
use crate::testing::suite::{beat, count_history, detail, rs, secs, server, sign};

/// `due_servers` and `apply_availability` run in two transactions. A
/// server decommissioned, or an installation parked (consent withdrawn),
/// in between is no longer counted: the verdict judged on the row before
/// must not bring it back as Unavailable with a condition. A verdict on a
/// server still counted applies as usual.
pub(crate) async fn a_sweep_verdict_loses_to_a_decommission_or_a_park_meanwhile(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let retiring = fx.site("alpha", "M01-C01-0001").await;
    let parking = fx.site("alpha", "M01-C01-0002").await;
    let admin = member(&fx, &retiring.reseller, "admin@alpha", Role::Admin, START).await;
    beat(&fx, &retiring, "rs-1", 1).await;
    beat(&fx, &retiring, "rs-2", 1).await;
    beat(&fx, &parking, "rs-1", 1).await;

    fx.advance(secs(182));
    let now = fx.carewatch.now();
    let due = fx.store.due_servers(now, 10).await.expect("due_servers");
    assert_eq!(due.len(), 3, "all three are due: {due:?}");
    let changes = unavailable_verdicts(&due, now);

    // Between the evaluation and its write: rs-2 is retired, and the
    // second site's consent is withdrawn (its servers parked).
    assert!(
        fx.carewatch
            .decommission_server(&admin, &retiring.slc, &rs("rs-2"))
            .await
            .expect("decommissioned")
    );
    fx.carewatch
        .set_consent(&parking.slc, false)
        .await
        .expect("consent withdrawn");
    let retired_before = detail(&fx, &retiring).await;
    let parked_before = detail(&fx, &parking).await;

    let epoch = epoch(&fx).await;
    let outcome = fx
        .store
        .apply_availability(&changes, epoch)
        .await
        .expect("apply_availability");
    let AvailabilityOutcome::Applied(summary_changes) = outcome else {
        panic!("no window was recorded: the changes must apply");
    };

    let retired = detail(&fx, &retiring).await;
    let rs2 = server(&retired, "rs-2");
    assert_eq!(
        (rs2.availability, rs2.next_check_at),
        (server(&retired_before, "rs-2").availability, None),
        "a verdict judged before the decommission overwrote it"
    );
    assert!(matches!(
        rs2.availability,
        Availability::Decommissioned { .. }
    ));
    assert_eq!(
        server(&retired, "rs-1").availability,
        Availability::Unavailable {
            since: crate::testing::suite::t(180),
            missed: 3
        },
        "the verdict on a server still counted applies"
    );
    let unavailable_conditions: Vec<_> = retired
        .active_conditions
        .iter()
        .filter(|c| c.code == ConditionCode::ServerUnavailable)
        .map(|c| c.subject.as_str())
        .collect();
    assert_eq!(unavailable_conditions, ["rs-1"], "no condition for rs-2");

    let parked = detail(&fx, &parking).await;
    assert_eq!(
        parked, parked_before,
        "a verdict judged before the park changed the parked installation"
    );
    assert_eq!(
        count_history(&parked, |k| matches!(
            k,
            HistoryKind::BecameUnavailable { .. }
        )),
        0
    );
    assert!(
        summary_changes.iter().all(|c| c.slc == retiring.slc),
        "only the first site's summary changes: {summary_changes:?}"
    );
}

/// A message admitted just before its installation was refused (consent
/// withdrawn) and written after the park must not resume the server's
/// judging: every later message is refused, and the silence that follows
/// would turn it Unavailable, a false verdict.
pub(crate) async fn a_message_admitted_before_a_park_does_not_resume_judging(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0003").await;
    beat(&fx, &site, "rs-1", 1).await;
    fx.advance(secs(10));
    fx.carewatch
        .set_consent(&site.slc, false)
        .await
        .expect("consent withdrawn");
    assert_eq!(
        server(&detail(&fx, &site).await, "rs-1").next_check_at,
        None,
        "parked"
    );

    // Admitted before the withdrawal committed; written after it.
    let written_at = fx.carewatch.now();
    fx.store
        .record_signs_of_life(&[sign(&site.slc, "rs-1", 2, "admitted", written_at)])
        .await
        .expect("written");
    let after = server(&detail(&fx, &site).await, "rs-1").clone();
    assert_eq!(
        (after.last_seen_at, after.next_check_at),
        (written_at, None),
        "written, and still parked"
    );

    // Long after: never judged for the refused silence.
    fx.advance(secs(1000));
    fx.carewatch.sweep().await.expect("sweep");
    let d = detail(&fx, &site).await;
    assert_eq!(server(&d, "rs-1").availability, Availability::Available);
    assert_eq!(
        count_history(&d, |k| matches!(k, HistoryKind::BecameUnavailable { .. })),
        0
    );
}
