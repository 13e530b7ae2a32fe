//! The audit log (issue 18): records round-trip, newest first, paged; a
//! reseller's admins read only their team's; and the facade records every
//! operator and admin action, by whom.

use std::collections::BTreeSet;

use super::team::member;
use super::{refused, rs, secs, t};
use crate::audit::{Action, Actor, AuditEntry, AuditQuery, AuditRecord, as_operator};
use crate::error::Error;
use crate::ids::ResellerId;
use crate::labels::Labels;
use crate::notification::{ChannelRules, Destination};
use crate::team::{Login, Role};
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, START};

fn operator(name: &str) -> Actor {
    Actor::Operator { name: name.into() }
}

fn user(reseller: &ResellerId, login: &str) -> Actor {
    Actor::User {
        reseller: reseller.clone(),
        login: Login::new(login).expect("login"),
    }
}

pub(crate) async fn the_audit_log_is_kept_newest_first_and_read_per_team(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let store = &fx.store;
    let alpha = ResellerId::new("alpha").expect("id");
    let beta = ResellerId::new("beta").expect("id");
    let records = [
        AuditRecord::new(
            t(1),
            operator("ops"),
            Action::ResellerCreated,
            "alpha",
            "Alpha Ltd",
        ),
        AuditRecord::new(
            t(2),
            user(&alpha, "admin@alpha"),
            Action::ChannelCreated,
            "0000000000000001",
            "webhook \"ops\" — ünïcode",
        ),
        AuditRecord::new(
            t(3),
            user(&beta, "admin@beta"),
            Action::UserRemoved,
            "bob",
            "",
        ),
        AuditRecord::new(
            t(4),
            user(&alpha, "lead@alpha"),
            Action::LabelsChanged,
            "M01",
            "x",
        ),
    ];
    for record in &records {
        store.append_audit(record).await.expect("appends");
    }
    let read = |team: Option<&ResellerId>, before: Option<u64>, limit: u32| {
        let query = AuditQuery {
            team: team.cloned(),
            before,
            limit,
        };
        async move { store.audit_log(&query).await.expect("reads") }
    };
    let all: Vec<AuditEntry> = read(None, None, 10).await;
    assert_eq!(
        all.iter().map(|e| e.record.clone()).collect::<Vec<_>>(),
        records.iter().rev().cloned().collect::<Vec<_>>(),
        "every field round-trips, newest first"
    );
    assert!(all.windows(2).all(|w| w[0].id > w[1].id));
    let alphas = read(Some(&alpha), None, 10).await;
    assert_eq!(
        alphas.iter().map(|e| e.record.at).collect::<Vec<_>>(),
        [t(4), t(2)],
        "alpha's team only, never the operator's or beta's"
    );
    // Pages: the next starts before the last id seen.
    let first = read(None, None, 3).await;
    assert_eq!(first.len(), 3);
    let rest = read(None, Some(first[2].id), 3).await;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].record, records[0]);
    assert!(read(Some(&alpha), Some(alphas[1].id), 10).await.is_empty());
    assert!(
        read(Some(&ResellerId::new("gamma").expect("id")), None, 10)
            .await
            .is_empty()
    );
}

pub(crate) async fn every_operator_and_admin_action_is_audited_with_its_actor(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let cw = &fx.carewatch;
    let ops = ResellerId::new("ops-anna").expect("name");
    // The operator, named by its front end.
    let site = as_operator(ops.clone(), fx.site("alpha", "M01-C01-0001")).await;
    let beta = as_operator(ops.clone(), fx.reseller("beta")).await;
    let alpha = site.reseller.clone();
    let admin = member(&fx, &alpha, "admin@alpha", Role::Admin, START).await;
    let viewer = member(&fx, &alpha, "viewer@alpha", Role::Viewer, START).await;
    let other = member(&fx, &alpha, "other@alpha", Role::Viewer, START).await;
    super::beat(&fx, &site, "rs-1", 1).await;
    let (channel, _) = cw
        .create_channel(
            &admin,
            "ops hook",
            Destination::Webhook {
                url: "https://hooks.example.net/x".into(),
            },
            ChannelRules::default(),
        )
        .await
        .expect("channel");
    cw.test_channel(&admin, &channel.id)
        .await
        .expect("a test queued");
    cw.delete_channel(&admin, &channel.id)
        .await
        .expect("deleted");
    let window = cw
        .create_maintenance(&admin, Some(&site.slc), t(60), secs(600), None, "firmware")
        .await
        .expect("window");
    cw.delete_maintenance(&admin, &window.id)
        .await
        .expect("deleted");
    let labels = Labels::new("Harbour Mall", "Gate 2", "", &[]).expect("labels");
    cw.set_labels(&admin, &site.slc, &labels)
        .await
        .expect("labels");
    cw.decommission_server(&admin, &site.slc, &rs("rs-1"))
        .await
        .expect("retired");
    let token = cw
        .create_api_token(&admin, "grafana", None)
        .await
        .expect("token");
    cw.revoke_api_token(&admin, &token.record.id)
        .await
        .expect("revoked");
    cw.invite_user(
        &alpha,
        &Login::new("new@alpha").expect("login"),
        "New",
        Role::Viewer,
        Some(&admin),
    )
    .await
    .expect("invited by the admin");
    cw.remove_user(&admin, &other.login).await.expect("removed");
    // The operator again, unnamed (the CLI on the server, an embedding).
    cw.invite_user(
        &beta,
        &Login::new("admin@beta").expect("login"),
        "Beta's first admin",
        Role::Admin,
        None,
    )
    .await
    .expect("invited by the operator");
    cw.set_consent(&site.slc, false).await.expect("consent");
    cw.set_subscription(&site.slc, None)
        .await
        .expect("subscription");
    cw.rotate_reseller_token(&alpha).await.expect("rotated");
    cw.transfer_installation(&site.slc, &beta, false)
        .await
        .expect("transferred");
    // Refused actions are not recorded.
    let before = cw.audit_log(None, None, 500).await.expect("log").len();
    refused(
        cw.transfer_installation(&site.slc, &beta, false).await,
        "a second transfer to beta",
    );
    refused(
        cw.create_api_token(&viewer, "nope", None).await,
        "a viewer creating a token",
    );
    assert_eq!(
        cw.audit_log(None, None, 500).await.expect("log").len(),
        before
    );

    let log = cw.audit_log(None, None, 500).await.expect("log");
    let seen: BTreeSet<(String, &'static str)> = log
        .iter()
        .map(|e| (e.record.actor.to_string(), e.record.action.name()))
        .collect();
    let expected: BTreeSet<(String, &'static str)> = [
        ("operator ops-anna", Action::ResellerCreated),
        ("operator ops-anna", Action::InstallationRegistered),
        ("operator ops-anna", Action::ConsentChanged),
        ("operator ops-anna", Action::SubscriptionChanged),
        ("operator ops-anna", Action::KeyIssued),
        ("operator local", Action::UserInvited),
        ("admin@alpha (alpha)", Action::ChannelCreated),
        ("admin@alpha (alpha)", Action::ChannelTested),
        ("admin@alpha (alpha)", Action::ChannelDeleted),
        ("admin@alpha (alpha)", Action::MaintenanceCreated),
        ("admin@alpha (alpha)", Action::MaintenanceDeleted),
        ("admin@alpha (alpha)", Action::LabelsChanged),
        ("admin@alpha (alpha)", Action::ServerDecommissioned),
        ("admin@alpha (alpha)", Action::ApiTokenCreated),
        ("admin@alpha (alpha)", Action::ApiTokenRevoked),
        ("admin@alpha (alpha)", Action::UserRemoved),
        ("admin@alpha (alpha)", Action::UserInvited),
        ("operator local", Action::ConsentChanged),
        ("operator local", Action::SubscriptionChanged),
        ("operator local", Action::ResellerTokenRotated),
        ("operator local", Action::InstallationTransferred),
    ]
    .into_iter()
    .map(|(who, action)| (who.to_owned(), action.name()))
    .collect();
    assert_eq!(seen, expected, "{log:#?}");
    let transfer = &log[0].record;
    assert_eq!(transfer.action, Action::InstallationTransferred);
    assert_eq!(transfer.target, site.slc.to_string());
    assert!(transfer.detail.contains("to beta"), "{}", transfer.detail);
    assert!(
        log.iter()
            .all(|e| !e.record.detail.contains(token.secret.token.as_str())),
        "no secret in the log"
    );

    // A reseller's admin reads its team's actions; a viewer nothing.
    let team = cw
        .team_audit_log(&admin, None, 500)
        .await
        .expect("team log");
    assert_eq!(team.len(), 11, "{team:#?}");
    assert!(
        team.iter()
            .all(|e| e.record.actor.reseller() == Some(&alpha))
    );
    let denied = refused(
        cw.team_audit_log(&viewer, None, 500).await,
        "a viewer reading the audit log",
    );
    assert!(
        matches!(denied, Error::PermissionDenied { .. }),
        "{denied:?}"
    );
}

/// Sign-ins are recorded for the user's team, with the address, at most
/// once per login and address every 10 minutes; a wrong password for one
/// of its logins too, at most once per login every 10 s (a burst of
/// guesses: one record), and one for a login nobody has is recorded
/// nowhere. Another team's log shows none of it.
pub(crate) async fn sign_ins_and_wrong_passwords_are_audited_for_the_team(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let cw = &fx.carewatch;
    let alpha = fx.reseller("alpha").await;
    let beta = fx.reseller("beta").await;
    let jane = Login::new("jane@alpha").expect("login");
    let invited = cw
        .invite_user(&alpha, &jane, "Jane", Role::Admin, None)
        .await
        .expect("invited");
    cw.accept_invitation(
        &invited.secret.token,
        crate::team::Password::new("correct horse battery").expect("valid"),
        None,
    )
    .await
    .expect("accepted");
    let from: std::net::IpAddr = "192.0.2.7".parse().expect("address");

    cw.sign_in("jane@alpha", "correct horse battery", Some(from))
        .await
        .expect("signed in");
    for _ in 0..3 {
        refused(
            cw.sign_in("jane@alpha", "a wrong guess", Some(from)).await,
            "a wrong password",
        );
    }
    refused(
        cw.sign_in("nobody@alpha", "a wrong guess", Some(from))
            .await,
        "a login nobody has",
    );

    // A wrong password is recorded in the background: a failure for a
    // login that exists takes no longer than one for a login nobody has.
    let mut log = Vec::new();
    for _ in 0..100 {
        log = cw.audit_log(Some(&alpha), None, 500).await.expect("log");
        if log.iter().any(|e| e.record.action == Action::SignInFailed) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Signing in again soon after is not recorded again.
    cw.sign_in("jane@alpha", "correct horse battery", Some(from))
        .await
        .expect("signed in again");
    let again = cw.audit_log(Some(&alpha), None, 500).await.expect("log");
    assert_eq!(
        again.len(),
        log.len(),
        "a second sign-in within 10 min is not recorded"
    );
    let signs: Vec<(Actor, Action, &str, &str)> = log
        .iter()
        .filter(|e| matches!(e.record.action, Action::SignedIn | Action::SignInFailed))
        .map(|e| {
            (
                e.record.actor.clone(),
                e.record.action,
                e.record.target.as_str(),
                e.record.detail.as_str(),
            )
        })
        .collect();
    assert_eq!(
        signs,
        [
            (
                user(&alpha, "jane@alpha"),
                Action::SignInFailed,
                "jane@alpha",
                "1 wrong password from 192.0.2.7"
            ),
            (
                user(&alpha, "jane@alpha"),
                Action::SignedIn,
                "jane@alpha",
                "1 sign-in from 192.0.2.7"
            ),
        ],
        "newest first"
    );
    let everyone = cw.audit_log(None, None, 500).await.expect("log");
    assert!(
        !everyone.iter().any(|e| e.record.target.contains("nobody")),
        "a login nobody has is recorded nowhere"
    );
    let theirs = cw.audit_log(Some(&beta), None, 500).await.expect("log");
    assert!(theirs.is_empty(), "{theirs:?}");
}

/// Audit entries older than the retention are deleted oldest first, in
/// batches, and nothing recorded since; through the facade, the default
/// retention (400 days) keeps a year's entries, and a retention of a few
/// seconds still keeps a day's.
pub(crate) async fn audit_entries_past_the_retention_are_deleted_oldest_first(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let store = &fx.store;
    let alpha = ResellerId::new("alpha").expect("id");
    const DAY: u64 = 86_400;
    let ats = [t(0), t(10), t(20), t(30), t(365 * DAY)];
    for at in ats {
        let record = AuditRecord::new(
            at,
            user(&alpha, "admin@alpha"),
            Action::LabelsChanged,
            "M01",
            "",
        );
        store.append_audit(&record).await.expect("appends");
    }
    let kept = || async {
        let query = AuditQuery {
            team: None,
            before: None,
            limit: 100,
        };
        let mut ats: Vec<_> = store
            .audit_log(&query)
            .await
            .expect("reads")
            .into_iter()
            .map(|e| e.record.at)
            .collect();
        ats.reverse();
        ats
    };
    assert_eq!(store.prune_audit(t(25), 2).await.expect("prunes"), 2);
    assert_eq!(kept().await, [t(20), t(30), t(365 * DAY)], "the oldest two");
    assert_eq!(store.prune_audit(t(25), 10).await.expect("prunes"), 1);
    assert_eq!(store.prune_audit(t(25), 10).await.expect("prunes"), 0);
    assert_eq!(kept().await, [t(30), t(365 * DAY)], "nothing since t(25)");

    // The facade: 400 days by default, so at 395 days t(30) is kept…
    fx.advance(secs(395 * DAY));
    assert_eq!(fx.carewatch.prune_audit().await.expect("prunes"), 0);
    // … and at 401 days it is not; the entry of day 365 is.
    fx.advance(secs(6 * DAY));
    assert_eq!(fx.carewatch.prune_audit().await.expect("prunes"), 1);
    assert_eq!(kept().await, [t(365 * DAY)]);

    // A retention of seconds keeps a day; none keeps everything.
    let db = backend.fresh().await;
    let clock = std::sync::Arc::new(crate::time::ManualClock::new(START));
    let key = crate::seal::MasterKey::generate();
    let short = Fixture::open_configured(db.as_ref(), clock.clone(), key.clone(), |c| {
        c.with_audit_retention(Some(secs(5)))
    })
    .await;
    for at in [START, t(DAY - 10)] {
        let record = AuditRecord::new(at, operator("ops"), Action::ResellerCreated, "x", "");
        short.store.append_audit(&record).await.expect("appends");
    }
    // A day and a second later: the entry of the start only.
    clock.advance(secs(DAY + 1));
    assert_eq!(short.carewatch.prune_audit().await.expect("prunes"), 1);
    let forever = Fixture::open_configured(db.as_ref(), clock.clone(), key, |c| {
        c.with_audit_retention(None)
    })
    .await;
    clock.advance(secs(10_000 * DAY));
    assert_eq!(forever.carewatch.prune_audit().await.expect("prunes"), 0);
    assert_eq!(short.carewatch.prune_audit().await.expect("prunes"), 1);
}
