//! What is not told, through the facade: what maintenance windows mute
//! (told when they end or are deleted), and installations whose messages
//! are refused.

use super::{on_call, one_site_on_call, outbox_of, settle, told_kinds};
use crate::catalogue::ConditionCode;
use crate::ids::ResellerId;
use crate::notification::payload::Notification;
use crate::notification::{ChannelRules, OutboxFilter};
use crate::team::User;
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, Site};
use crate::testing::suite::{beat, report, secs};
use crate::time::Timestamp;

/// The instant `s` seconds after now (`at`), and moving the clock there (`to`).
fn seconds_from_now(fx: &Fixture) -> (impl Fn(u64) -> Timestamp + '_, impl Fn(u64) + '_) {
    let t0 = fx.carewatch.now();
    let at = move |s: u64| t0.saturating_add(secs(s));
    let to = move |s: u64| fx.advance(at(s).since(fx.carewatch.now()));
    (at, to)
}

/// Reseller alpha with two sites (`M01-C01-0001`, `M01-C01-0002`) and its
/// admin, whose channel has the default rules.
async fn two_sites_on_call(fx: &Fixture) -> (ResellerId, Site, Site, User) {
    let alpha = fx.reseller("alpha").await;
    let a = fx.site("alpha", "M01-C01-0001").await;
    let b = fx.site("alpha", "M01-C01-0002").await;
    let (admin, _) = on_call(fx, &alpha, ChannelRules::default()).await;
    (alpha, a, b, admin)
}

/// Maintenance through the facade: nothing is told during a window; a
/// problem whose hold passed during it is told once when it ends, as
/// "after_maintenance" (still unhealthy), and so is a problem told before a
/// window that is still there when the window ends.
pub(crate) async fn maintenance_mutes_notifications_until_it_ends(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let (alpha, a, b, admin) = two_sites_on_call(&fx).await;
    let step = |what: &'static str| {
        let carewatch = fx.carewatch.clone();
        async move {
            carewatch
                .notify_step()
                .await
                .unwrap_or_else(|e| panic!("notifier step ({what}): {e}"))
                .queued
        }
    };
    let told = || async {
        outbox_of(&fx.store, &alpha, OutboxFilter::All)
            .await
            .iter()
            .map(|e| {
                let body = Notification::from_json(&e.body).expect("JSON");
                (
                    body.installation.expect("names it").slc,
                    body.kind,
                    e.created_at,
                )
            })
            .collect::<Vec<_>>()
    };
    let full = [(ConditionCode::StorageFull, "D:", "recording drive full")];
    let (at, to) = seconds_from_now(&fx);
    let window_a = fx
        .carewatch
        .create_maintenance(&admin, Some(&a.slc), at(200), secs(600), None, "disk swap")
        .await
        .expect("a window over a");
    fx.carewatch
        .create_maintenance(&admin, Some(&b.slc), at(300), secs(600), None, "new switch")
        .await
        .expect("a window over b");

    report(&fx, &a, "rs-1", 1, &[]).await;
    report(&fx, &b, "rs-1", 1, &full).await;
    assert_eq!(step("b critical").await, 0);
    to(121);
    assert_eq!(
        step("b critical for 121 s").await,
        1,
        "b told before its window"
    );
    to(250);
    assert_eq!(
        fx.carewatch
            .maintenance_until(&alpha, &a.slc)
            .await
            .expect("maintenance of a"),
        Some(window_a.starts_at.saturating_add(window_a.length))
    );
    report(&fx, &a, "rs-1", 2, &full).await;
    for s in [250, 300, 400, 600, 799] {
        to(s);
        assert_eq!(step("during the windows").await, 0, "nothing at {s} s");
    }
    to(800);
    assert_eq!(step("a's window over").await, 1);
    to(850);
    assert_eq!(step("b's window still on").await, 0);
    to(900);
    assert_eq!(step("b's window over").await, 1);
    to(2000);
    assert_eq!(step("long after").await, 0);
    assert_eq!(
        told().await,
        vec![
            (b.slc.to_string(), "after_maintenance".to_owned(), at(900)),
            (a.slc.to_string(), "after_maintenance".to_owned(), at(800)),
            (b.slc.to_string(), "problem".to_owned(), at(121)),
        ],
        "newest first"
    );
}

/// A window made after a problem was told still mutes it and tells once
/// after it ends that the installation is still unhealthy, whether it names
/// the installation or covers all of them: the problem's next look had
/// been set (to never, without reminders) before the window existed.
pub(crate) async fn a_window_made_after_a_problem_was_told_tells_after_it(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let (alpha, a, b, admin) = two_sites_on_call(&fx).await;
    let step = || async { fx.carewatch.notify_step().await.expect("step").queued };
    let full = [(ConditionCode::StorageFull, "D:", "recording drive full")];
    let (at, to) = seconds_from_now(&fx);
    report(&fx, &a, "rs-1", 1, &full).await;
    assert_eq!(step().await, 0);
    to(121);
    assert_eq!(step().await, 1, "a told");
    report(&fx, &b, "rs-1", 1, &full).await;
    assert_eq!(step().await, 0);
    to(242);
    assert_eq!(step().await, 1, "b told");

    fx.carewatch
        .create_maintenance(&admin, Some(&a.slc), at(300), secs(600), None, "disk swap")
        .await
        .expect("a window over a");
    fx.carewatch
        .create_maintenance(&admin, None, at(400), secs(600), None, "move")
        .await
        .expect("a window over everything");
    for s in [250, 300, 400, 700, 899] {
        to(s);
        assert_eq!(step().await, 0, "nothing at {s} s");
    }
    to(900);
    assert_eq!(step().await, 0, "a still in the window over everything");
    to(1000);
    assert_eq!(
        step().await,
        2,
        "both windows over: a and b still unhealthy"
    );
    to(5000);
    assert_eq!(step().await, 0, "once");
    let told = outbox_of(&fx.store, &alpha, OutboxFilter::All).await;
    let mut after: Vec<(String, String)> = told
        .iter()
        .map(|e| {
            let body = Notification::from_json(&e.body).expect("JSON");
            (body.installation.expect("names it").slc, body.kind)
        })
        .filter(|(_, kind)| kind == "after_maintenance")
        .collect();
    after.sort();
    assert_eq!(
        after,
        [
            (a.slc.to_string(), "after_maintenance".to_owned()),
            (b.slc.to_string(), "after_maintenance".to_owned()),
        ]
    );
}

/// Deleting a window tells at once what it muted: a problem whose hold
/// passed during it was due at the window's end (seven days away here) and
/// stayed untold until then.
pub(crate) async fn deleting_a_window_tells_what_it_muted_at_once(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let (alpha, a, b, admin) = two_sites_on_call(&fx).await;
    let step = || async { fx.carewatch.notify_step().await.expect("step").queued };
    let full = [(ConditionCode::StorageFull, "D:", "recording drive full")];
    let week = secs(7 * 24 * 3600);
    let everything = fx
        .carewatch
        .create_maintenance(&admin, None, fx.carewatch.now(), week, None, "move")
        .await
        .expect("a window over everything");
    let over_b = fx
        .carewatch
        .create_maintenance(&admin, Some(&b.slc), fx.carewatch.now(), week, None, "b")
        .await
        .expect("a window over b");
    report(&fx, &a, "rs-1", 1, &full).await;
    report(&fx, &b, "rs-1", 1, &full).await;
    assert_eq!(step().await, 0);
    fx.advance(secs(600));
    assert_eq!(step().await, 0, "muted");
    fx.carewatch
        .delete_maintenance(&admin, &everything.id)
        .await
        .expect("deleted");
    fx.advance(secs(1));
    assert_eq!(step().await, 1, "a told at once; b still in its own window");
    fx.carewatch
        .delete_maintenance(&admin, &over_b.id)
        .await
        .expect("deleted");
    fx.advance(secs(1));
    assert_eq!(step().await, 1, "b told at once");
    let told: Vec<(String, String)> = outbox_of(&fx.store, &alpha, OutboxFilter::All)
        .await
        .iter()
        .map(|e| {
            let body = Notification::from_json(&e.body).expect("JSON");
            (body.installation.expect("names it").slc, body.kind)
        })
        .collect();
    assert_eq!(
        told,
        [
            (b.slc.to_string(), "after_maintenance".to_owned()),
            (a.slc.to_string(), "problem".to_owned()),
        ],
        "newest first: a's problem was not judged during the window, b's \
         was judged muted under its own window when the first went"
    );
}

/// An installation whose messages are refused tells nothing: no reminder
/// while its consent is withdrawn (its servers are not judged), and no
/// "resolved" when its reported data is deleted after the retention (its
/// line turns Pending, which is no recovery). Both were told.
pub(crate) async fn a_refused_installation_tells_nothing(backend: &(impl TestBackend + ?Sized)) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let alpha = fx.reseller("alpha").await;
    let a = fx.site("alpha", "M01-C01-0001").await;
    let rules = ChannelRules {
        reminder: Some(secs(3600)),
        ..ChannelRules::default()
    };
    on_call(&fx, &alpha, rules).await;
    let settle = || settle(&fx);
    let full = [(ConditionCode::StorageFull, "D:", "recording drive full")];
    report(&fx, &a, "rs-1", 1, &full).await;
    assert_eq!(settle().await, 0);
    fx.advance(secs(121));
    assert_eq!(settle().await, 1, "the problem");
    fx.carewatch
        .set_consent(&a.slc, false)
        .await
        .expect("withdrawn");
    fx.advance(secs(3601));
    assert_eq!(settle().await, 0, "no reminder while refused");
    fx.advance(secs(31 * 24 * 3600));
    assert_eq!(settle().await, 0, "still none");
    assert_eq!(fx.carewatch.delete_withdrawn_data().await.expect("runs"), 1);
    assert_eq!(settle().await, 0);
    fx.advance(secs(121));
    assert_eq!(settle().await, 0, "no resolved for the deleted data");
    assert_eq!(told_kinds(&fx.store, &alpha).await, ["problem"]);
}

/// A problem whose hold passed while the installation's messages were
/// refused is told once consent is given back (it is still unhealthy), and
/// its recovery after it: the untold problem was kept as told, so nothing
/// was said until a "resolved" for a problem never told.
pub(crate) async fn a_problem_held_while_refused_is_told_when_accepted_again(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let (alpha, a) = one_site_on_call(&fx, ChannelRules::default()).await;
    let settle = || settle(&fx);
    let full = [(ConditionCode::StorageFull, "D:", "recording drive full")];
    report(&fx, &a, "rs-1", 1, &full).await;
    assert_eq!(settle().await, 0, "held");
    fx.advance(secs(60));
    fx.carewatch
        .set_consent(&a.slc, false)
        .await
        .expect("withdrawn");
    fx.advance(secs(61));
    assert_eq!(settle().await, 0, "held past its hold, but refused");
    fx.advance(secs(3600));
    assert_eq!(settle().await, 0, "still refused");
    fx.carewatch
        .set_consent(&a.slc, true)
        .await
        .expect("given back");
    assert_eq!(settle().await, 1, "the problem, owed");
    report(&fx, &a, "rs-1", 2, &[]).await;
    fx.advance(secs(121));
    assert_eq!(settle().await, 1, "its recovery");
    assert_eq!(told_kinds(&fx.store, &alpha).await, ["resolved", "problem"]);
}

/// Found by review: windows were unbounded, and every report and tick
/// expands each one's occurrences. At most 20 over one installation, and
/// 20 over all of them, to come or repeating; a refused one changes
/// nothing; one-off windows that have ended do not count.
pub(crate) async fn windows_are_bounded_per_installation(backend: &(impl TestBackend + ?Sized)) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let (alpha, a, b, admin) = two_sites_on_call(&fx).await;
    let t0 = fx.carewatch.now();
    let made = |slc: Option<&crate::ids::Slc>, n: u64| {
        let starts = t0.saturating_add(secs(3600 * n));
        let slc = slc.cloned();
        let (fx, admin) = (&fx, &admin);
        async move {
            fx.carewatch
                .create_maintenance(admin, slc.as_ref(), starts, secs(600), None, "x")
                .await
        }
    };
    for n in 0..20 {
        made(Some(&a.slc), n).await.expect("up to 20 over a");
        made(None, n).await.expect("up to 20 over all");
    }
    for scope in [Some(&a.slc), None] {
        let refused = made(scope, 99).await;
        assert!(
            matches!(refused, Err(crate::Error::InvalidInput { .. })),
            "{scope:?}: {refused:?}"
        );
    }
    made(Some(&b.slc), 0).await.expect("b has its own 20");
    fx.carewatch
        .create_maintenance(
            &admin,
            Some(&b.slc),
            t0,
            secs(600),
            Some(secs(7200)),
            "weekly",
        )
        .await
        .expect("a repeating window over b");
    // One-off windows that have ended are not counted: a reseller making
    // one per job is never told to delete old ones.
    fx.advance(secs(3600 * 25));
    made(Some(&a.slc), 30).await.expect("a's 20 have ended");
    let kept = fx
        .carewatch
        .maintenance_windows(&alpha)
        .await
        .expect("windows");
    assert_eq!(kept.len(), 43, "nothing made by the refusals");

    // Reports keep what a deleted window excluded, so one deleted in the
    // last day counts: making and deleting windows in a loop is bounded
    // too. One deleted before it began excluded nothing and does not.
    for _ in 0..19 {
        let now = fx.carewatch.now();
        let w = fx
            .carewatch
            .create_maintenance(&admin, Some(&a.slc), now, secs(600), None, "x")
            .await
            .expect("a window that begins now");
        fx.advance(secs(1));
        fx.carewatch
            .delete_maintenance(&admin, &w.id)
            .await
            .expect("deleted after it began");
    }
    let future = made(Some(&a.slc), 40).await;
    assert!(
        matches!(future, Err(crate::Error::InvalidInput { .. })),
        "19 deleted today and 1 to come: {future:?}"
    );
    // A day later they count no more; deleting windows that have ended,
    // or before they began, counts nothing.
    fx.advance(secs(86_400));
    for w in fx
        .carewatch
        .maintenance_windows(&alpha)
        .await
        .expect("windows")
    {
        fx.carewatch
            .delete_maintenance(&admin, &w.id)
            .await
            .expect("an old window deleted");
    }
    let later = made(Some(&a.slc), 70).await.expect("a day later");
    fx.carewatch
        .delete_maintenance(&admin, &later.id)
        .await
        .expect("deleted before it began");
    for n in 71..91 {
        made(Some(&a.slc), n)
            .await
            .unwrap_or_else(|e| panic!("window {n}: deleted old or unbegun windows count: {e}"));
    }
    let full = made(Some(&a.slc), 91).await;
    assert!(
        matches!(full, Err(crate::Error::InvalidInput { .. })),
        "20 to come: {full:?}"
    );
    // b's old repeating window, deleted above, does not count either.
    for n in 71..91 {
        made(Some(&b.slc), n)
            .await
            .unwrap_or_else(|e| panic!("b's window {n}: an old repeating window counts: {e}"));
    }
    // A one-off window that has ended already would exclude nothing.
    let now = fx.carewatch.now();
    let ended = fx
        .carewatch
        .create_maintenance(
            &admin,
            None,
            now.saturating_sub(secs(7200)),
            secs(3600),
            None,
            "x",
        )
        .await;
    assert!(
        matches!(ended, Err(crate::Error::InvalidInput { .. })),
        "{ended:?}"
    );
}

/// Care Plus running out during a window over the installation is queued
/// at once but held until the window ends (never handed to the node that
/// queued it to send at once). Deleting a window releases what it held, at
/// once, unless another window made before it was queued still holds it.
pub(crate) async fn an_expiry_during_maintenance_is_sent_when_the_window_ends(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let (alpha, a, b, admin) = two_sites_on_call(&fx).await;
    let (at, to) = seconds_from_now(&fx);
    for site in [&a, &b] {
        fx.carewatch
            .set_subscription(&site.slc, Some(at(100)))
            .await
            .expect("Care Plus until 100 s");
        beat(&fx, site, "rs-1", 1).await;
    }
    let mut windows = Vec::new();
    for (slc, from, length) in [
        (Some(&a.slc), 50, 600),
        (Some(&b.slc), 50, 600),
        (None, 100, 300),
    ] {
        let window = fx
            .carewatch
            .create_maintenance(&admin, slc, at(from), secs(length), None, "works")
            .await
            .expect("a window");
        windows.push(window);
    }
    to(110);
    fx.carewatch.sweep().await.expect("sweep");
    let step = fx
        .carewatch
        .notify_step_on(None, Some(secs(60)))
        .await
        .expect("step");
    assert_eq!(step.queued, 2, "both expiries queued");
    assert!(step.claimed.is_empty(), "held: not sent at once");
    let held = || async {
        outbox_of(&fx.store, &alpha, OutboxFilter::Pending)
            .await
            .iter()
            .map(|e| (e.next_attempt_at, e.attempts))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        held().await,
        [(at(650), 0), (at(650), 0)],
        "held until the windows end"
    );
    // A long claim, so nothing claimed here is claimed again below.
    let store = &fx.store;
    let at = &at;
    let claim = |s: u64| async move {
        store
            .claim_deliveries("node-x", at(s), secs(3600), 100)
            .await
            .expect("claims")
            .into_iter()
            .map(|e| e.slc.expect("about an installation"))
            .collect::<Vec<_>>()
    };
    assert!(claim(110).await.is_empty(), "nothing during the windows");
    // A window made after they were queued does not hold them (as for any
    // notification queued before a window), even once another is deleted.
    to(120);
    fx.carewatch
        .create_maintenance(&admin, Some(&a.slc), at(120), secs(900), None, "more works")
        .await
        .expect("a later window over a");
    // The window over all of them goes: each is still in its own.
    to(150);
    fx.carewatch
        .delete_maintenance(&admin, &windows[2].id)
        .await
        .expect("the window over all deleted");
    assert_eq!(held().await, [(at(650), 0), (at(650), 0)]);
    assert!(claim(150).await.is_empty(), "still in their own windows");
    to(200);
    fx.carewatch
        .delete_maintenance(&admin, &windows[1].id)
        .await
        .expect("b's window deleted");
    assert_eq!(claim(200).await, vec![b.slc.clone()], "b's at once");
    assert!(claim(649).await.is_empty(), "a's window still on");
    assert_eq!(claim(650).await, vec![a.slc.clone()], "a's when it ends");
}

/// Care Plus renewed while its notice that it ended is held for
/// maintenance: the notice is no longer true and is given up unsent, with
/// why; a change that leaves it ended keeps the notice.
pub(crate) async fn a_renewal_gives_up_the_held_notice_that_care_plus_ended(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let (alpha, a, _, admin) = two_sites_on_call(&fx).await;
    let (at, to) = seconds_from_now(&fx);
    fx.carewatch
        .set_subscription(&a.slc, Some(at(100)))
        .await
        .expect("Care Plus until 100 s");
    beat(&fx, &a, "rs-1", 1).await;
    fx.carewatch
        .create_maintenance(&admin, Some(&a.slc), at(50), secs(600), None, "works")
        .await
        .expect("a window from 50 to 650 s");
    to(110);
    fx.carewatch.sweep().await.expect("sweep");
    assert_eq!(
        fx.carewatch.notify_step().await.expect("step").queued,
        1,
        "the notice, held"
    );
    to(150);
    fx.carewatch
        .set_subscription(&a.slc, Some(at(120)))
        .await
        .expect("a change that leaves it ended");
    assert_eq!(
        outbox_of(&fx.store, &alpha, OutboxFilter::Pending)
            .await
            .len(),
        1,
        "still true: still held"
    );
    to(200);
    fx.carewatch
        .set_subscription(&a.slc, Some(at(86_400)))
        .await
        .expect("renewed");
    assert!(
        outbox_of(&fx.store, &alpha, OutboxFilter::Pending)
            .await
            .is_empty(),
        "nothing left to send"
    );
    let failed = outbox_of(&fx.store, &alpha, OutboxFilter::Failed).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].failed_at, Some(at(200)));
    assert_eq!(
        failed[0].last_error.as_deref(),
        Some(crate::notification::maintenance::RENEWED_WHILE_HELD)
    );
    assert!(
        fx.store
            .claim_deliveries("node-x", at(650), secs(60), 100)
            .await
            .expect("claims")
            .is_empty(),
        "nothing sent when the window ends"
    );
}

/// Tenant isolation of a window's deletion: it moves only its own
/// reseller's held notices, never another's held by a window of its own.
pub(crate) async fn deleting_a_window_leaves_another_resellers_held_notices(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let ours = fx.site("alpha", "M01-C01-0001").await;
    let theirs = fx.site("beta", "M02-C01-0001").await;
    let (at, to) = seconds_from_now(&fx);
    let mut admins = Vec::new();
    for site in [&ours, &theirs] {
        let (admin, _) = on_call(&fx, &site.reseller, ChannelRules::default()).await;
        fx.carewatch
            .set_subscription(&site.slc, Some(at(100)))
            .await
            .expect("Care Plus until 100 s");
        beat(&fx, site, "rs-1", 1).await;
        admins.push(admin);
    }
    let mut windows = Vec::new();
    for admin in &admins {
        let window = fx
            .carewatch
            .create_maintenance(admin, None, at(50), secs(600), None, "works")
            .await
            .expect("a window over all of its installations");
        windows.push(window);
    }
    to(110);
    fx.carewatch.sweep().await.expect("sweep");
    assert_eq!(fx.carewatch.notify_step().await.expect("step").queued, 2);
    to(200);
    fx.carewatch
        .delete_maintenance(&admins[0], &windows[0].id)
        .await
        .expect("alpha's window deleted");
    let store = &fx.store;
    let due = |reseller| async move {
        outbox_of(store, reseller, OutboxFilter::Pending)
            .await
            .iter()
            .map(|e| e.next_attempt_at)
            .collect::<Vec<_>>()
    };
    assert_eq!(due(&ours.reseller).await, [at(200)], "alpha's released");
    assert_eq!(due(&theirs.reseller).await, [at(650)], "beta's still held");
}
