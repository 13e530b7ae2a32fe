//! An installation's life (issue 18): retiring a recording server that was
//! removed at the site, and a message bringing it back.

use super::notifications::on_call;
use super::team::member;
use super::{beat, detail, event, refused, report, rs, secs, server, slc, t};
use crate::availability::Availability;
use crate::catalogue::ConditionCode;
use crate::error::Error;
use crate::health::Health;
use crate::notification::payload::Notification;
use crate::notification::{ChannelRules, OutboxFilter};
use crate::store::HistoryKind;
use crate::team::Role;
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, START};

pub(crate) async fn a_decommissioned_server_stops_counting_until_it_reports(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    let admin = member(&fx, &site.reseller, "admin@alpha", Role::Admin, START).await;
    beat(&fx, &site, "rs-1", 1).await;
    report(
        &fx,
        &site,
        "rs-2",
        1,
        &[(ConditionCode::StorageFull, "D:", "100%")],
    )
    .await;
    // rs-2 goes silent and is marked unavailable; rs-1 keeps beating.
    fx.advance(secs(60));
    beat(&fx, &site, "rs-1", 2).await;
    fx.advance(secs(60));
    beat(&fx, &site, "rs-1", 3).await;
    fx.advance(secs(62));
    beat(&fx, &site, "rs-1", 4).await;
    fx.carewatch.sweep().await.expect("sweep");
    let before = detail(&fx, &site).await;
    assert_eq!(before.summary.health, Health::Critical, "{before:#?}");
    assert!(matches!(
        server(&before, "rs-2").availability,
        Availability::Unavailable { .. }
    ));
    assert_eq!(
        before.active_conditions.len(),
        2,
        "the drive and the outage"
    );

    // Retired at 182 s: health recovers at once, its conditions resolve.
    let changed = fx
        .carewatch
        .decommission_server(&admin, &site.slc, &rs("rs-2"))
        .await
        .expect("decommissioned");
    assert!(changed);
    let after = detail(&fx, &site).await;
    assert_eq!(
        after.summary.health,
        Health::Healthy,
        "{:#?}",
        after.summary
    );
    assert_eq!((after.summary.servers, after.summary.unavailable), (1, 0));
    assert!(
        after.active_conditions.is_empty(),
        "{:#?}",
        after.active_conditions
    );
    assert_eq!(
        server(&after, "rs-2").availability,
        Availability::Decommissioned { since: t(182) }
    );
    assert_eq!(server(&after, "rs-2").next_check_at, None, "never swept");
    assert!(
        after
            .history
            .contains(&event(t(182), "rs-2", HistoryKind::Decommissioned))
    );
    let resolved: Vec<&ConditionCode> = after
        .history
        .iter()
        .filter(|e| e.at == t(182))
        .filter_map(|e| match &e.kind {
            HistoryKind::ConditionResolved { code, .. } => Some(code),
            _ => None,
        })
        .collect();
    assert_eq!(resolved.len(), 2, "both conditions resolved: {resolved:?}");
    assert!(
        before.history.iter().all(|e| after.history.contains(e)),
        "its history stays"
    );
    // Again: nothing to do.
    assert!(
        !fx.carewatch
            .decommission_server(&admin, &site.slc, &rs("rs-2"))
            .await
            .expect("idempotent")
    );
    // Sweeps never mark it again.
    fx.advance(secs(600));
    beat(&fx, &site, "rs-1", 5).await;
    fx.carewatch.sweep().await.expect("sweep");
    let later = detail(&fx, &site).await;
    assert_eq!(later.summary.health, Health::Healthy);
    assert_eq!(
        server(&later, "rs-2").availability,
        Availability::Decommissioned { since: t(182) }
    );

    // A message from it brings it back, and the history says so.
    fx.advance(secs(18));
    beat(&fx, &site, "rs-2", 2).await;
    let back = detail(&fx, &site).await;
    assert_eq!(server(&back, "rs-2").availability, Availability::Available);
    assert_eq!(back.summary.servers, 2, "it counts again");
    assert!(back.history.contains(&event(
        t(800),
        "rs-2",
        HistoryKind::Recommissioned {
            decommissioned_for: secs(618)
        }
    )));
}

pub(crate) async fn decommissioning_is_for_the_owner_and_known_servers(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0002").await;
    let other = fx.reseller("beta").await;
    beat(&fx, &site, "rs-1", 1).await;
    let intruder = member(&fx, &other, "admin@beta", Role::Admin, START).await;
    let viewer = member(&fx, &site.reseller, "viewer@alpha", Role::Viewer, START).await;
    let admin = member(&fx, &site.reseller, "admin@alpha", Role::Admin, START).await;
    let theirs = refused(
        fx.carewatch
            .decommission_server(&intruder, &site.slc, &rs("rs-1"))
            .await,
        "another reseller's installation",
    );
    let missing = refused(
        fx.carewatch
            .decommission_server(&intruder, &slc("M01-C01-0099"), &rs("rs-1"))
            .await,
        "a missing installation",
    );
    assert!(matches!(theirs, Error::NotFound { .. }), "{theirs}");
    assert_eq!(
        theirs.to_string().replace("0002", "0099"),
        missing.to_string(),
        "another reseller's reads exactly like a missing one"
    );
    let err = refused(
        fx.carewatch
            .decommission_server(&admin, &site.slc, &rs("rs-9"))
            .await,
        "a server never heard from",
    );
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = refused(
        fx.carewatch
            .decommission_server(&viewer, &site.slc, &rs("rs-1"))
            .await,
        "a viewer",
    );
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    assert_eq!(
        server(&detail(&fx, &site).await, "rs-1").availability,
        Availability::Available,
        "nothing changed"
    );
    // The operator may retire any installation's server.
    assert!(
        fx.carewatch
            .decommission_server_as_operator(&site.slc, &rs("rs-1"))
            .await
            .expect("the operator retires it")
    );
    let d = detail(&fx, &site).await;
    assert_eq!(
        d.summary.health,
        Health::Pending,
        "no server counts: none heard"
    );
}

/// Sweeps at `at` (seconds after the start) and returns rs-1's availability.
async fn availability_at(
    fx: &Fixture,
    site: &crate::testing::fixture::Site,
    at: u64,
) -> Availability {
    let now = fx.carewatch.now();
    if t(at) > now {
        fx.advance(t(at).since(now));
    }
    fx.carewatch.sweep().await.expect("sweep");
    server(&detail(fx, site).await, "rs-1").availability
}

pub(crate) async fn an_expired_subscription_is_not_judged_and_renewal_gives_grace(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0003").await;
    fx.carewatch
        .set_subscription(&site.slc, Some(t(100)))
        .await
        .expect("Care Plus until 100 s");
    beat(&fx, &site, "rs-1", 1).await;
    fx.advance(secs(90));
    beat(&fx, &site, "rs-1", 2).await;
    fx.advance(secs(20));
    let refused_beat = fx.heartbeat(&site, "rs-1", 3).await;
    assert!(
        matches!(refused_beat, Err(Error::SubscriptionExpired { .. })),
        "{refused_beat:?}"
    );
    // Long after: silent because refused, never judged for it.
    assert_eq!(
        availability_at(&fx, &site, 1000).await,
        Availability::Available
    );
    let d = detail(&fx, &site).await;
    assert_eq!(server(&d, "rs-1").next_check_at, None, "parked");
    assert!(
        !d.history
            .iter()
            .any(|e| matches!(e.kind, HistoryKind::BecameUnavailable { .. })),
        "no false Unavailable while refused: {:#?}",
        d.history
    );
    let ran_out: Vec<_> = fx
        .store
        .changes(crate::feed::EventId(0), 1000)
        .await
        .expect("the feed")
        .into_iter()
        .filter(|e| {
            e.change
                == crate::feed::Change::Subscription {
                    expires_at: Some(t(100)),
                }
        })
        .collect();
    assert_eq!(
        ran_out.len(),
        2,
        "set, then ran out (told once, when the sweep found it): {ran_out:#?}"
    );
    let row = d.overview_row();
    assert_eq!(
        row.refusal_at(fx.carewatch.now()),
        Some(crate::installation::Refusal::SubscriptionExpired { at: Some(t(100)) }),
        "every view can say why"
    );

    // Renewed at 1000 s: three intervals of grace from the renewal.
    fx.carewatch
        .set_subscription(&site.slc, Some(t(10_000_000)))
        .await
        .expect("renewed");
    assert_eq!(
        availability_at(&fx, &site, 1000).await,
        Availability::Available
    );
    assert!(matches!(
        availability_at(&fx, &site, 1175).await,
        Availability::Available | Availability::Late { .. }
    ));
    assert_eq!(
        availability_at(&fx, &site, 1185).await,
        Availability::Unavailable {
            since: t(1180),
            missed: 3
        },
        "still silent three intervals after the renewal: unavailable, counted from it"
    );
    // Its recovery counts what it missed from the renewal too, as the
    // sweep did: not the refused time before it (18 intervals since 90 s).
    fx.advance(t(1200).since(fx.carewatch.now()));
    beat(&fx, &site, "rs-1", 3).await;
    let recovered: Vec<_> = detail(&fx, &site)
        .await
        .history
        .into_iter()
        .filter_map(|e| match e.kind {
            HistoryKind::Recovered {
                unavailable_for,
                missed,
            } => Some((unavailable_for, missed)),
            _ => None,
        })
        .collect();
    assert_eq!(recovered, [(secs(20), 3)], "recovered at 1200 s");
}

pub(crate) async fn withdrawn_consent_is_not_judged_and_its_data_is_deleted_after_retention(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0004").await;
    let kept = fx.site("alpha", "M01-C01-0005").await;
    beat(&fx, &site, "rs-1", 1).await;
    beat(&fx, &kept, "rs-1", 1).await;
    report(
        &fx,
        &site,
        "rs-1",
        2,
        &[(ConditionCode::StorageFull, "D:", "100%")],
    )
    .await;
    fx.advance(secs(30));
    fx.carewatch
        .set_consent(&site.slc, false)
        .await
        .expect("withdrawn at 30 s");
    assert!(matches!(
        fx.heartbeat(&site, "rs-1", 3).await,
        Err(Error::ConsentMissing { .. })
    ));
    assert_eq!(
        availability_at(&fx, &site, 900).await,
        Availability::Available
    );
    let d = detail(&fx, &site).await;
    assert_eq!(
        d.overview_row().refusal_at(fx.carewatch.now()),
        Some(crate::installation::Refusal::ConsentWithdrawn)
    );
    assert!(!d.history.is_empty() && !d.active_conditions.is_empty());

    // Within the retention nothing is deleted.
    assert_eq!(fx.carewatch.delete_withdrawn_data().await.expect("runs"), 0);
    // After it (30 days by default), the reported data goes, the
    // registration stays; the installation that kept consent is untouched.
    fx.advance(secs(31 * 24 * 3600));
    assert_eq!(fx.carewatch.delete_withdrawn_data().await.expect("runs"), 1);
    assert_eq!(
        fx.carewatch.delete_withdrawn_data().await.expect("again"),
        0
    );
    let d = detail(&fx, &site).await;
    assert!(d.servers.is_empty(), "{:#?}", d.servers);
    assert!(d.history.is_empty() && d.active_conditions.is_empty());
    assert_eq!(d.summary.health, Health::Pending);
    assert!(!d.installation.consent, "the registration stays");
    assert_eq!(detail(&fx, &kept).await.servers.len(), 1);

    // Consent given again: judged again, with grace, and data kept.
    fx.carewatch
        .set_consent(&site.slc, true)
        .await
        .expect("accepted again");
    beat(&fx, &site, "rs-1", 4).await;
    fx.carewatch
        .set_consent(&site.slc, false)
        .await
        .expect("withdrawn again");
    fx.carewatch
        .set_consent(&site.slc, true)
        .await
        .expect("accepted again");
    fx.advance(secs(31 * 24 * 3600));
    assert_eq!(fx.carewatch.delete_withdrawn_data().await.expect("runs"), 0);
    assert_eq!(detail(&fx, &site).await.servers.len(), 1);
}

/// Care Plus running out is told once per channel of the installation's
/// reseller (and again only for a later expiry), never to another's.
pub(crate) async fn an_expired_subscription_is_told_once_per_channel(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0005").await;
    let theirs = fx.site("beta", "M02-C01-0005").await;
    let mut channels = Vec::new();
    for reseller in [&site.reseller, &theirs.reseller] {
        channels.push(on_call(&fx, reseller, ChannelRules::default()).await.1);
    }
    let told = || async {
        let entries = fx
            .store
            .outbox(&site.reseller, OutboxFilter::All, 100)
            .await
            .expect("outbox");
        entries
            .into_iter()
            .map(|e| Notification::from_json(&e.body).expect("a notification"))
            .filter(|n| n.kind == "subscription_expired")
            .collect::<Vec<_>>()
    };
    let step = || async { fx.carewatch.notify_step().await.expect("notifier step") };
    fx.carewatch
        .set_subscription(&site.slc, Some(t(100)))
        .await
        .expect("Care Plus until 100 s");
    beat(&fx, &site, "rs-1", 1).await;
    step().await;
    assert!(told().await.is_empty(), "setting an end is not an expiry");

    fx.advance(secs(110));
    fx.carewatch.sweep().await.expect("sweep");
    step().await;
    let notices = told().await;
    assert_eq!(notices.len(), 1, "{notices:#?}");
    let notice = &notices[0];
    assert_eq!(notice.title, format!("{}: Care Plus has expired", site.slc));
    assert!(notice.text.contains("ended at"), "{}", notice.text);
    assert_eq!(
        notice.installation.as_ref().map(|i| i.slc.as_str()),
        Some(site.slc.as_str())
    );
    // Once: later sweeps and steps add nothing.
    for _ in 0..3 {
        fx.advance(secs(30));
        fx.carewatch.sweep().await.expect("sweep");
        step().await;
    }
    assert_eq!(told().await.len(), 1);
    let beta_entries = fx
        .store
        .outbox(&theirs.reseller, OutboxFilter::All, 100)
        .await
        .expect("outbox");
    assert!(beta_entries.is_empty(), "{beta_entries:#?}");

    // Renewed, then run out again: told again, once.
    fx.carewatch
        .set_subscription(&site.slc, Some(t(400)))
        .await
        .expect("renewed");
    step().await;
    fx.advance(secs(250));
    fx.carewatch.sweep().await.expect("sweep");
    step().await;
    step().await;
    assert_eq!(told().await.len(), 2);

    // Care Plus ran out before consent was withdrawn: it was told when the
    // sweep parked it, and giving consent again (twice) tells it no more.
    let expiry_events = || async {
        fx.store
            .changes(crate::feed::EventId(0), 10_000)
            .await
            .expect("the feed")
            .into_iter()
            .filter(|e| {
                e.slc == site.slc
                    && matches!(
                        e.change,
                        crate::feed::Change::Subscription {
                            expires_at: Some(ended)
                        } if ended <= e.at
                    )
            })
            .count()
    };
    let expiries = expiry_events().await;
    fx.carewatch
        .set_consent(&site.slc, false)
        .await
        .expect("consent withdrawn");
    for _ in 0..2 {
        fx.carewatch
            .set_consent(&site.slc, true)
            .await
            .expect("consent given");
    }
    step().await;
    assert_eq!(expiry_events().await, expiries, "told when it ran out only");

    // Renewed, consent withdrawn, then Care Plus runs out: nothing is told
    // while consent is withdrawn (the sweep skips installations refused
    // already), and the expiry is told once consent is given again.
    let ends = fx.carewatch.now().saturating_add(secs(100));
    fx.carewatch
        .set_subscription(&site.slc, Some(ends))
        .await
        .expect("renewed");
    fx.carewatch
        .set_consent(&site.slc, false)
        .await
        .expect("consent withdrawn");
    fx.advance(secs(200));
    fx.carewatch.sweep().await.expect("sweep");
    step().await;
    assert_eq!(told().await.len(), 2, "not while consent is withdrawn");
    fx.carewatch
        .set_consent(&site.slc, true)
        .await
        .expect("consent given again");
    for _ in 0..3 {
        step().await;
        fx.advance(secs(30));
        fx.carewatch.sweep().await.expect("sweep");
    }
    let notices = told().await;
    assert_eq!(
        notices.len(),
        3,
        "the expiry that happened meanwhile, once: {notices:#?}"
    );
    assert!(
        notices.iter().any(|n| n.text.contains(&ends.to_string())),
        "{notices:#?}"
    );
}

/// An installation moved to another reseller after its change was recorded
/// but before the notifier read it: the change is read as the new owner's,
/// so the old reseller's channels are told nothing about it, and the
/// notifier carries on with everything else.
pub(crate) async fn a_transfer_before_the_notifier_reads_a_change_does_not_stop_it(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let alpha = fx.reseller("alpha").await;
    let beta = fx.reseller("beta").await;
    let moved = fx.site("alpha", "M01-C01-0011").await;
    let stays = fx.site("alpha", "M01-C01-0012").await;
    let immediate = ChannelRules {
        hold: secs(0),
        ..ChannelRules::default()
    };
    let (_, channel) = on_call(&fx, &alpha, immediate).await;
    let step = |what: &'static str| {
        let carewatch = fx.carewatch.clone();
        async move {
            carewatch
                .notify_step()
                .await
                .unwrap_or_else(|e| panic!("notifier step ({what}): {e}"))
        }
    };
    let told = || async {
        fx.store
            .outbox(&alpha, OutboxFilter::All, 100)
            .await
            .expect("outbox")
            .into_iter()
            .map(|e| (e.channel, e.slc))
            .collect::<Vec<_>>()
    };

    beat(&fx, &moved, "rs-1", 1).await;
    beat(&fx, &stays, "rs-1", 1).await;
    step("both healthy").await;
    // Both go Offline in one sweep; one is moved before the next step.
    fx.advance(secs(10 * 60));
    fx.carewatch.sweep().await.expect("sweep");
    fx.carewatch
        .transfer_installation(&moved.slc, &beta, false)
        .await
        .expect("transferred");
    step("one Offline, one moved away").await;
    assert_eq!(
        told().await,
        vec![(channel.id.clone(), Some(stays.slc.clone()))],
        "alpha hears of its own installation only"
    );

    // The notifier still follows alpha's installation.
    beat(&fx, &stays, "rs-1", 2).await;
    step("recovered").await;
    assert_eq!(told().await.len(), 2, "and its recovery");
}

/// A server unavailable when Care Plus ran out recovers, after the renewal,
/// with the heartbeats it missed counted from the renewal: the refused time
/// is nobody's fault (they were counted through it, 167 here).
pub(crate) async fn an_unavailable_servers_recovery_after_a_renewal_counts_from_it(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0004").await;
    fx.carewatch
        .set_subscription(&site.slc, Some(t(300)))
        .await
        .expect("Care Plus until 300 s");
    beat(&fx, &site, "rs-1", 1).await;
    assert_eq!(
        availability_at(&fx, &site, 200).await,
        Availability::Unavailable {
            since: t(180),
            missed: 3
        },
        "silent for three intervals"
    );
    assert_eq!(
        availability_at(&fx, &site, 400).await,
        Availability::Unavailable {
            since: t(180),
            missed: 3
        },
        "Care Plus ran out: refused, still unavailable"
    );
    fx.advance(t(10_000).since(fx.carewatch.now()));
    fx.carewatch
        .set_subscription(&site.slc, Some(t(10_000_000)))
        .await
        .expect("renewed");
    fx.advance(secs(30));
    beat(&fx, &site, "rs-1", 2).await;
    let recovered: Vec<_> = detail(&fx, &site)
        .await
        .history
        .into_iter()
        .filter_map(|e| match e.kind {
            HistoryKind::Recovered { missed, .. } => Some(missed),
            _ => None,
        })
        .collect();
    assert_eq!(recovered, [0], "none missed in the 30 s since the renewal");
}
