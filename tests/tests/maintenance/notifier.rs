//! The notifier step against an installation transferred in the middle of it.

use std::time::Duration;

use carewatch_core::health::Health;
use carewatch_core::ids::ResellerId;
use carewatch_core::notification::{ChannelRules, Destination, OutboxFilter};
use carewatch_core::store::{Store, Transfer};
use carewatch_core::team::{Login, Role, User};
use tokio::time::{Instant, sleep_until};

use crate::support::{EVERY, beat_every_second, fast_config, open_with, site};

/// An installation moved to another reseller between the notifier's read of
/// the feed and its read of the installations it tells about: the step
/// carries on (it used to fail, reading the moved installation as the old
/// reseller's, until the next step read the change as the new owner's), the
/// old reseller's channel is told nothing, and no state about the moved
/// installation is kept.
#[tokio::test(start_paused = true)]
async fn a_transfer_during_a_notifier_step_tells_nothing_and_keeps_no_state() {
    let (_dir, store, service) = open_with(Duration::ZERO, fast_config()).await;
    let (slc, key) = site(&service).await;
    let alpha = ResellerId::new("alpha").expect("id");
    let beta = ResellerId::new("beta").expect("id");
    service
        .create_reseller(&beta, "Beta")
        .await
        .expect("reseller");
    let admin = User {
        reseller: alpha.clone(),
        login: Login::new("admin@alpha.example").expect("login"),
        name: "Admin".into(),
        role: Role::Admin,
        created_at: service.now(),
    };
    let (channel, _) = service
        .create_channel(
            &admin,
            "on call",
            Destination::Webhook {
                url: "https://hooks.example.net/carewatch".into(),
            },
            ChannelRules {
                hold: Duration::ZERO,
                ..ChannelRules::default()
            },
        )
        .await
        .expect("channel");
    // Beats for 5 s, then falls silent until it is Offline.
    let start = Instant::now();
    let at = |s: u64| start + Duration::from_secs(s);
    let run = service.run_maintenance(EVERY, sleep_until(at(30)));
    let beats = beat_every_second(&service, &slc, &key, "rs-1", at(0), at(5));
    tokio::join!(run, beats);
    let health = service
        .installation(&alpha, &slc)
        .await
        .expect("detail")
        .summary
        .health;
    assert_eq!(health, Health::Offline);

    *store.transfer_before_details.lock().expect("hook") = Some(Transfer {
        slc: slc.clone(),
        to: beta,
        at: service.now(),
        share_history: false,
    });
    let step = service.notify_step().await.expect("the step carries on");
    assert!(
        store
            .transfer_before_details
            .lock()
            .expect("hook")
            .is_none(),
        "moved during the step"
    );
    assert_eq!(step.queued, 0, "nothing told");
    let told = store
        .outbox(&alpha, OutboxFilter::All, 10)
        .await
        .expect("outbox");
    assert!(told.is_empty(), "{told:#?}");
    let kept = store
        .notification_states(&[(channel.id.clone(), slc.clone())])
        .await
        .expect("states");
    assert!(kept.is_empty(), "no state about it: {kept:#?}");
}
