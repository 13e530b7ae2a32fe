//! Master-key rotation: the store pages through every installation key and
//! replaces sealed values only where they still hold what was read; the
//! facade re-seals every secret an earlier key sealed, online, and a node
//! given only the new key then opens everything.

use std::sync::Arc;

use super::notifications::{channel, create_channel};
use super::{open_node_accepting, reseller_id, slc, t};
use crate::Config;
use crate::notification::{ChannelRecord, ChannelRules, Destination};
use crate::seal::{KeyId, MasterKey, WrappedKey};
use crate::store::{Reseal, SealedItem, Store};
use crate::team::{Login, Role, User};
use crate::testing::TestBackend;
use crate::testing::TestDatabase;
use crate::testing::fixture::{Fixture, START, Site};
use crate::time::ManualClock;

fn wrapped(n: u8) -> WrappedKey {
    WrappedKey {
        id: KeyId::new(u32::from(n)),
        sealed: vec![n; 60],
    }
}

async fn all_keys_in_pages(store: &Arc<dyn Store>, limit: u32) -> Vec<(String, u32)> {
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .wrapped_keys(after.as_ref().map(|(s, id)| (s, *id)), limit)
            .await
            .expect("keys read");
        assert!(
            page.len() <= limit as usize,
            "a page holds at most its limit"
        );
        seen.extend(
            page.iter()
                .map(|(s, k)| (s.as_str().to_owned(), k.id.get())),
        );
        match page.last() {
            Some((s, k)) => after = Some((s.clone(), k.id)),
            None => return seen,
        }
    }
}

/// Every installation's keys, retired ones too, in (SLC, id) order across
/// resellers, page by page with nothing skipped or repeated; the sealed
/// bytes as stored.
pub(crate) async fn installation_keys_page_in_order_for_a_rotation(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let store = &fx.store;
    for (reseller, text) in [
        ("beta", "M02-C01-0001"),
        ("alpha", "M01-C01-0002"),
        ("alpha", "M01-C01-0001"),
    ] {
        fx.reseller(reseller).await;
        let product = crate::installation::Product::new("XProtect", "2024 R1").expect("product");
        fx.carewatch
            .register_installation(&slc(text), &reseller_id(reseller), product)
            .await
            .expect("registers");
    }
    for (text, n) in [
        ("M01-C01-0002", 2),
        ("M02-C01-0001", 1),
        ("M01-C01-0001", 3),
        ("M01-C01-0002", 1),
    ] {
        store
            .add_installation_key(&slc(text), &wrapped(n), t(n.into()))
            .await
            .expect("key stored");
    }
    store
        .retire_installation_key(&slc("M01-C01-0002"), KeyId::new(1), t(9))
        .await
        .expect("retired");
    let expected: Vec<(String, u32)> = [
        ("M01-C01-0001", 3),
        ("M01-C01-0002", 1),
        ("M01-C01-0002", 2),
        ("M02-C01-0001", 1),
    ]
    .iter()
    .map(|(s, n)| ((*s).to_owned(), *n))
    .collect();
    for limit in [1, 2, 3, 500] {
        assert_eq!(
            all_keys_in_pages(store, limit).await,
            expected,
            "pages of {limit}"
        );
    }
    let first = store.wrapped_keys(None, 10).await.expect("keys read");
    assert_eq!(first[0].1, wrapped(3), "sealed bytes as stored");
    let after_last = store
        .wrapped_keys(Some((&slc("M02-C01-0001"), KeyId::new(1))), 10)
        .await
        .expect("keys read");
    assert!(after_last.is_empty(), "nothing after the last key");
}

/// A reseal replaces each value only where it still holds the bytes read,
/// in one call: a stale read, a missing key or channel change nothing, and
/// the rest of the row (retirement, a channel's rules) stays as it was.
pub(crate) async fn reseals_replace_only_what_still_holds_what_was_read(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let store = &fx.store;
    let site = fx.site("alpha", "M01-C01-0001").await;
    let alpha = site.reseller.clone();
    store
        .add_installation_key(&site.slc, &wrapped(7), t(1))
        .await
        .expect("key stored");
    store
        .add_installation_key(&site.slc, &wrapped(6), t(1))
        .await
        .expect("key stored");
    store
        .retire_installation_key(&site.slc, KeyId::new(7), t(2))
        .await
        .expect("retired");
    let (one, two) = (channel(1, &alpha, t(3)), channel(2, &alpha, t(4)));
    create_channel(store, &one).await;
    create_channel(store, &two).await;
    let key = |id: u32| SealedItem::InstallationKey {
        slc: site.slc.clone(),
        id: KeyId::new(id),
    };
    let change = |item, old: &[u8], new: &[u8]| Reseal {
        item,
        old: old.to_vec(),
        new: new.to_vec(),
    };
    let replaced = store
        .reseal(&[
            change(key(7), &wrapped(7).sealed, b"key 7 resealed"),
            change(key(8), &wrapped(7).sealed, b"no such key"),
            change(key(6), b"read before a change", b"stale"),
            change(
                SealedItem::Channel(one.id.clone()),
                &one.sealed,
                b"channel 1 resealed",
            ),
            change(
                SealedItem::Channel(two.id.clone()),
                b"read before a change",
                b"stale",
            ),
            change(
                SealedItem::Channel(super::notifications::channel(9, &alpha, t(5)).id),
                b"",
                b"missing",
            ),
        ])
        .await
        .expect("reseal");
    assert_eq!(replaced, 2, "key 7 and channel 1 only");
    let keys = store.installation_keys(&site.slc).await.expect("keys");
    let seven = keys
        .iter()
        .find(|k| k.wrapped.id == KeyId::new(7))
        .expect("key 7");
    assert_eq!(seven.wrapped.sealed, b"key 7 resealed");
    assert_eq!(
        (seven.created_at, seven.retired_at),
        (t(1), Some(t(2))),
        "only the sealed bytes change"
    );
    let six = keys
        .iter()
        .find(|k| k.wrapped.id == KeyId::new(6))
        .expect("key 6");
    assert_eq!(
        six.wrapped,
        wrapped(6),
        "key 6's stale read changed nothing"
    );
    assert_eq!(keys.len(), 3, "no key added");
    let channels = store.channels(Some(&alpha)).await.expect("channels");
    let expected_one = ChannelRecord {
        sealed: b"channel 1 resealed".to_vec(),
        ..one
    };
    assert_eq!(
        channels,
        vec![expected_one, two],
        "channel 2's stale read changed nothing"
    );
    assert_eq!(store.reseal(&[]).await.expect("empty reseal"), 0);
}

fn admin_of(site: &Site) -> User {
    User {
        reseller: site.reseller.clone(),
        login: Login::new("admin@alpha.example").expect("login"),
        name: "Admin".into(),
        role: Role::Admin,
        created_at: START,
    }
}

/// A node on the same database and clock with `current` and `previous` keys.
async fn node(
    db: &dyn TestDatabase,
    clock: &Arc<ManualClock>,
    current: &MasterKey,
    previous: &[MasterKey],
    node_id: &str,
) -> Fixture {
    open_node_accepting(db, clock.clone(), current.clone(), previous, node_id).await
}

/// A node's master keys must open what the database holds before it
/// starts: another deployment's key, or one made up beside an existing
/// database, opens none of its installation keys and is refused; so is one
/// made up by a second node started on a new database that holds no
/// secret yet (the first start stored a check under its key); the right
/// key, or the new key with the earlier one during a rotation, pass.
pub(crate) async fn a_master_key_that_opens_no_stored_key_is_refused_at_start(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let (old, new) = (MasterKey::generate(), MasterKey::generate());
    let clock = Arc::new(ManualClock::new(START));
    let first = node(db.as_ref(), &clock, &old, &[], "node-first").await;
    let store = first.store.as_ref();
    Config::new(old.clone())
        .check_master_keys(store)
        .await
        .expect("the first start on a new database");
    Config::new(old.clone())
        .check_master_keys(store)
        .await
        .expect("and the next with the same key");
    let refused = Config::new(new.clone())
        .check_master_keys(store)
        .await
        .expect_err("another key, though the database holds no secret yet");
    assert_eq!(refused.code(), "invalid_input", "{refused}");
    assert!(
        refused.to_string().contains(&new.fingerprint()),
        "{refused}"
    );
    first.site("alpha", "M01-C01-0001").await;
    let refused = Config::new(new.clone())
        .check_master_keys(store)
        .await
        .expect_err("another key opens none");
    assert_eq!(refused.code(), "invalid_input", "{refused}");
    assert!(
        refused.to_string().contains(&new.fingerprint()),
        "{refused}"
    );
    Config::new(old.clone())
        .check_master_keys(store)
        .await
        .expect("the key it was made with");
    Config::new(new)
        .with_previous_master_keys(vec![old])
        .check_master_keys(store)
        .await
        .expect("during a rotation");
}

/// Rotation, online: a node given the new key and the old one admits
/// heartbeats and opens channels sealed under either; re-sealing moves
/// every installation key (retired ones too) and channel to the new key,
/// leaves what it cannot open named and untouched, and is idempotent;
/// afterwards a node with only the new key opens everything, and the old
/// key opens nothing.
pub(crate) async fn a_master_key_rotation_reseals_every_secret(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let (old, new, stranger) = (
        MasterKey::generate(),
        MasterKey::generate(),
        MasterKey::generate(),
    );
    let clock = Arc::new(ManualClock::new(START));
    let before = node(db.as_ref(), &clock, &old, &[], "node-old").await;
    Config::new(old.clone())
        .check_master_keys(before.store.as_ref())
        .await
        .expect("the master-key check, under the old key");
    let one = before.site("alpha", "M01-C01-0001").await;
    let mut two = before.site("alpha", "M01-C01-0002").await;
    let first_of_two = two.key.id();
    two.key = before
        .carewatch
        .issue_installation_key(&two.slc)
        .await
        .expect("second key");
    before
        .carewatch
        .retire_installation_key(&two.slc, first_of_two)
        .await
        .expect("retired");
    let admin = admin_of(&one);
    let hook = Destination::Webhook {
        url: "https://hooks.example/alpha".into(),
    };
    let (old_channel, secret) = before
        .carewatch
        .create_channel(&admin, "ops", hook.clone(), ChannelRules::default())
        .await
        .expect("channel");
    before
        .heartbeat(&one, "rs-1", 1)
        .await
        .expect("heartbeat under the old key");

    let rotating = node(
        db.as_ref(),
        &clock,
        &new,
        std::slice::from_ref(&old),
        "node-rotating",
    )
    .await;
    rotating
        .heartbeat(&one, "rs-1", 2)
        .await
        .expect("an earlier key's installation key opens");
    rotating
        .heartbeat(&two, "rs-1", 1)
        .await
        .expect("and after a retirement");
    let opened = rotating
        .carewatch
        .open_channel(old_channel.clone())
        .expect("an earlier key's channel opens");
    assert_eq!(opened.destination, hook);
    let fresh_key = rotating
        .carewatch
        .issue_installation_key(&one.slc)
        .await
        .expect("new key");
    let _channel_under_the_new_key = rotating
        .carewatch
        .create_channel(&admin, "ops 2", hook.clone(), ChannelRules::default())
        .await
        .expect("channel under the new key");
    let mut foreign = channel(9, &one.reseller, t(1));
    foreign.sealed = stranger.seal_secret(
        foreign.id.as_str().as_bytes(),
        b"x\nwebhook https://x.example",
    );
    create_channel(&rotating.store, &foreign).await;

    // A node whose current key is not the one expected moves nothing: one
    // still on the old key would move everything back to it.
    let still_old = node(
        db.as_ref(),
        &clock,
        &old,
        std::slice::from_ref(&new),
        "node-still-old",
    )
    .await;
    let refused = still_old
        .carewatch
        .reseal_secrets(Some(&new.fingerprint()))
        .await
        .expect_err("the old key is current there");
    assert_eq!(refused.code(), "invalid_input", "{refused}");
    assert!(
        refused.to_string().contains(&old.fingerprint()),
        "{refused}"
    );
    let stored = rotating
        .store
        .installation_keys(&one.slc)
        .await
        .expect("keys");
    old.unwrap_key(&one.slc, &stored[0].wrapped)
        .expect("still under the old key");

    // One key per step: every page boundary is crossed.
    let report = rotating
        .carewatch
        .reseal_in_steps(Some(&new.fingerprint()), 1)
        .await
        .expect("reseal");
    assert_eq!(
        (report.current_key.as_str(), report.previous_keys),
        (new.fingerprint().as_str(), 1)
    );
    assert_eq!(
        (
            report.keys_resealed,
            report.keys_current,
            report.channels_resealed,
            report.channels_current
        ),
        (3, 1, 1, 1),
        "one's first key, two's retired and current keys; one's new key and the new channel were current: {report:?}"
    );
    assert_eq!(report.unopenable, 1);
    assert_eq!(report.changed_meanwhile, 0);
    assert!(
        report.unopenable_named[0].contains(foreign.id.as_str()),
        "{report:?}"
    );
    assert!(!report.complete(), "a secret no key opens is left over");
    let again = rotating
        .carewatch
        .reseal_secrets(None)
        .await
        .expect("reseal again");
    assert_eq!(
        (
            again.keys_resealed,
            again.keys_current,
            again.channels_resealed,
            again.channels_current
        ),
        (0, 4, 0, 2)
    );
    let stored_foreign = rotating
        .store
        .channels(Some(&one.reseller))
        .await
        .expect("channels");
    assert!(
        stored_foreign.contains(&foreign),
        "the unopenable channel is left as it was"
    );

    // The master-key check moved too: a node with the new key alone starts.
    Config::new(new.clone())
        .check_master_keys(rotating.store.as_ref())
        .await
        .expect("the new key alone, after the rotation");
    let after = node(db.as_ref(), &clock, &new, &[], "node-new").await;
    after
        .heartbeat(&one, "rs-1", 3)
        .await
        .expect("one's first key opens under the new key alone");
    after
        .heartbeat(&two, "rs-1", 2)
        .await
        .expect("two's key opens under the new key alone");
    let one_fresh = Site {
        key: fresh_key,
        ..one.clone()
    };
    after
        .heartbeat(&one_fresh, "rs-2", 1)
        .await
        .expect("the key issued during the rotation");
    for record in after
        .store
        .channels(Some(&one.reseller))
        .await
        .expect("channels")
    {
        if record.id == foreign.id {
            continue;
        }
        let opened = after
            .carewatch
            .open_channel(record.clone())
            .expect("opens under the new key alone");
        assert_eq!(opened.destination, hook);
        if record.id == old_channel.id {
            assert_eq!(
                opened.signing_secret.as_deref().map(|s| s.as_slice()),
                secret.as_deref().map(|s| s.as_bytes()),
                "the same signing secret, sealed again"
            );
        }
        assert!(
            old.open_secret(record.id.as_str().as_bytes(), &record.sealed)
                .is_err()
        );
    }
    for (slc, key) in after.store.wrapped_keys(None, 100).await.expect("keys") {
        assert!(
            old.unwrap_key(&slc, &key).is_err(),
            "key {} of {slc} still opens under the old key",
            key.id
        );
        new.unwrap_key(&slc, &key).expect("opens under the new key");
    }
    let retired = after.store.installation_keys(&two.slc).await.expect("keys");
    let retired = retired
        .iter()
        .find(|k| k.wrapped.id == first_of_two)
        .expect("the retired key is kept");
    assert!(retired.retired_at.is_some());
    new.unwrap_key(&two.slc, &retired.wrapped)
        .expect("the retired key is re-sealed too");
    let log = after
        .carewatch
        .audit_log(None, None, 10)
        .await
        .expect("audit log");
    let resealed: Vec<_> = log
        .iter()
        .filter(|e| e.record.action == crate::audit::Action::SecretsResealed)
        .collect();
    assert_eq!(
        resealed.len(),
        2,
        "each re-seal is audited, a refused one not: {log:#?}"
    );
    assert!(resealed[1].record.target.contains(&new.fingerprint()));
    assert!(
        resealed[1]
            .record
            .detail
            .starts_with("3 installation keys and 1 channels"),
        "{:?}",
        resealed[1].record.detail
    );
}

/// The master-key check is stored by the first caller only (every later
/// caller gets the first one back, as concurrent first starts would), and
/// a reseal replaces it only where it still holds what was read.
pub(crate) async fn the_master_key_check_is_stored_once_and_replaced_only_as_read(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let (store, other_node) = (db.open().await, db.open().await);
    // Two nodes' first starts at once: one value wins, both get it.
    let (a, b) = tokio::join!(
        store.master_key_check(b"first"),
        other_node.master_key_check(b"other")
    );
    let (a, b) = (a.expect("stored"), b.expect("stored"));
    assert_eq!(a, b, "both nodes get the one stored");
    let first = a;
    assert!(first == b"first" || first == b"other", "{first:?}");
    assert_eq!(
        store.master_key_check(b"second").await.expect("read"),
        first,
        "a later start gets it back"
    );
    let stale = Reseal {
        item: SealedItem::MasterKeyCheck,
        old: b"not what is stored".to_vec(),
        new: b"lost".to_vec(),
    };
    assert_eq!(store.reseal(&[stale]).await.expect("reseal"), 0);
    let current = Reseal {
        item: SealedItem::MasterKeyCheck,
        old: first.clone(),
        new: b"resealed".to_vec(),
    };
    assert_eq!(store.reseal(&[current]).await.expect("reseal"), 1);
    assert_eq!(
        store.master_key_check(b"fourth").await.expect("read"),
        b"resealed"
    );
}
