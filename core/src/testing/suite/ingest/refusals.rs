//! Refusals: every way a message is refused has its own error, and a
//! refused message changes nothing.

use futures::StreamExt;

use crate::catalogue::ConditionCode;
use crate::error::Error;
use crate::feed::Change;
use crate::seal::payload::encode_status;
use crate::seal::{Binding, HEADER_LEN, InstallationKey, KeyId, MessageKind, SealError, TAG_LEN};
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, snapshot};
use crate::testing::suite::{
    WATCH_QUIET, accept, beat, detail, heartbeat_msg, observable, refused, report, report_msg, rs,
    sealed_msg, secs, server, slc,
};

/// Every refusal has its own error, and a refused message changes nothing:
/// not the installation, its servers, conditions, history, nor the overview.
pub(crate) async fn every_refusal_has_its_own_error_and_changes_nothing(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    let other = fx.site("beta", "M02-C01-0001").await;
    beat(&fx, &site, "rs-1", 1).await;
    report(
        &fx,
        &site,
        "rs-1",
        2,
        &[(ConditionCode::CameraUnreachable, "Camera 7", "timeout")],
    )
    .await;
    // Later than the last message, so a wrongly applied refusal would show.
    fx.advance(secs(5));
    let mut watch = fx
        .carewatch
        .watch(&site.reseller, None, None)
        .await
        .expect("watch");
    let before = observable(&fx, &site).await;
    let hb = |server: &str, sequence| heartbeat_msg(&site, server, sequence);

    // Unknown installation.
    let ghost = slc("M99-C99-9999");
    let err = refused(
        fx.carewatch
            .ingest(sealed_msg(
                &site.key,
                &ghost,
                "rs-1",
                MessageKind::Heartbeat,
                3,
                b"",
            ))
            .await,
        "a message for an unregistered SLC",
    );
    assert!(
        matches!(&err, Error::UnknownInstallation { slc } if *slc == ghost),
        "expected UnknownInstallation({ghost}), got {err:?}"
    );
    assert!(
        err.to_string().contains(ghost.as_str()),
        "the message must name the SLC: {err}"
    );
    assert_eq!(
        fx.store.installation(&ghost).await.expect("reading"),
        None,
        "a message for an unknown SLC created an installation"
    );
    assert_eq!(
        observable(&fx, &site).await,
        before,
        "an unknown-SLC message changed something"
    );

    // Consent missing.
    fx.carewatch
        .set_consent(&site.slc, false)
        .await
        .expect("withdrawing consent");
    let without_consent = observable(&fx, &site).await;
    for message in [
        hb("rs-1", 3),
        report_msg(
            &site,
            "rs-9",
            1,
            &[(ConditionCode::StorageFull, "E:", "100%")],
        ),
    ] {
        let server = message.server.clone();
        let err = refused(
            fx.carewatch.ingest(message).await,
            "a message without consent",
        );
        assert!(
            matches!(&err, Error::ConsentMissing { slc } if *slc == site.slc),
            "a message from {server} without consent must be ConsentMissing, got {err:?}"
        );
        assert_eq!(
            observable(&fx, &site).await,
            without_consent,
            "a message from {server} without consent changed something"
        );
    }
    fx.carewatch
        .set_consent(&site.slc, true)
        .await
        .expect("restoring consent");

    // Subscription not active.
    let original_expiry = before.0.installation.subscription_expires_at;
    let now = fx.carewatch.now();
    for (expiry, what) in [
        (Some(now.saturating_sub(secs(1))), "expired a second ago"),
        (Some(now), "ending exactly now"),
        (None, "no subscription"),
    ] {
        fx.carewatch
            .set_subscription(&site.slc, expiry)
            .await
            .expect("setting the subscription");
        let state = observable(&fx, &site).await;
        let err = refused(fx.carewatch.ingest(hb("rs-1", 3)).await, what);
        match (&err, expiry) {
            (Error::SubscriptionExpired { slc, expired_at }, Some(end)) => assert!(
                *slc == site.slc && *expired_at == Some(end),
                "subscription {what}: wrong details in {err:?}"
            ),
            (Error::SubscriptionExpired { slc, .. }, None) => {
                assert_eq!(*slc, site.slc, "subscription {what}: wrong SLC in {err:?}")
            }
            _ => panic!("subscription {what}: expected SubscriptionExpired, got {err:?}"),
        }
        assert_eq!(
            observable(&fx, &site).await,
            state,
            "a message with the subscription {what} changed something"
        );
    }
    fx.carewatch
        .set_subscription(&site.slc, original_expiry)
        .await
        .expect("restoring the subscription");
    let restored_at = fx.carewatch.now();
    let (mut restored, page) = observable(&fx, &site).await;
    // Accepted again: each server is judged again from now (its grace).
    for server in &mut restored.servers {
        assert_eq!(server.counted_from, Some(restored_at), "{server:?}");
        assert_eq!(server.next_check_at, Some(restored_at), "{server:?}");
    }
    // Each withdrawal and expiry above parked its servers and each
    // restoration resumed them: the history says so, and nothing else.
    let refusal = |k: &crate::store::HistoryKind| {
        matches!(
            k,
            crate::store::HistoryKind::Parked | crate::store::HistoryKind::Resumed { .. }
        )
    };
    assert!(
        restored.history.iter().any(|e| refusal(&e.kind)),
        "{:#?}",
        restored.history
    );
    let unjudged = |mut d: crate::store::InstallationDetail| {
        for server in &mut d.servers {
            (server.counted_from, server.next_check_at) = (None, None);
        }
        d.history.retain(|e| !refusal(&e.kind));
        d
    };
    assert_eq!(
        (unjudged(restored), page),
        (unjudged(before.0.clone()), before.1.clone()),
        "restoring consent and subscription must give back the same installation"
    );
    // From here on, the installation as restored is the reference.
    let before = observable(&fx, &site).await;

    // Cannot decrypt.
    let auth_failed = SealError::AuthenticationFailed;
    let mut flipped_tag = hb("rs-1", 3);
    let last = flipped_tag.sealed.len() - 1;
    flipped_tag.sealed[last] ^= 0x01;
    let mut flipped_body = report_msg(&site, "rs-1", 3, &[]);
    flipped_body.sealed[HEADER_LEN] ^= 0x80;
    let wrong_key = InstallationKey::generate(site.key.id());
    let unknown_key = InstallationKey::generate(KeyId::new(site.key.id().get() + 7));
    let moved = |slc: &crate::ids::Slc, server: &str, kind, sequence| {
        let server = rs(server);
        let binding = Binding {
            slc,
            server: &server,
            kind,
            sequence,
        };
        crate::IncomingMessage {
            sealed: crate::seal::seal(&site.key, &binding, b""),
            ..hb("rs-1", 3)
        }
    };
    let mut truncated = hb("rs-1", 3);
    truncated.sealed.truncate(10);
    let mut bad_version = hb("rs-1", 3);
    bad_version.sealed[0] = 9;
    let cases = [
        (
            flipped_tag,
            auth_failed.clone(),
            "a flipped byte in the tag",
        ),
        (
            flipped_body,
            auth_failed.clone(),
            "a flipped byte in the ciphertext",
        ),
        (
            sealed_msg(
                &wrong_key,
                &site.slc,
                "rs-1",
                MessageKind::Heartbeat,
                3,
                b"",
            ),
            auth_failed.clone(),
            "a wrong key with the right id",
        ),
        (
            sealed_msg(
                &unknown_key,
                &site.slc,
                "rs-1",
                MessageKind::Heartbeat,
                3,
                b"",
            ),
            SealError::UnknownKey(unknown_key.id()),
            "a key id the installation does not have",
        ),
        (
            moved(&site.slc, "rs-2", MessageKind::Heartbeat, 3),
            auth_failed.clone(),
            "sealed for another recording server",
        ),
        (
            moved(&other.slc, "rs-1", MessageKind::Heartbeat, 3),
            auth_failed.clone(),
            "sealed for another installation",
        ),
        (
            moved(&site.slc, "rs-1", MessageKind::StatusReport, 3),
            auth_failed.clone(),
            "sealed as a status report, sent as a heartbeat",
        ),
        (
            moved(&site.slc, "rs-1", MessageKind::Heartbeat, 4),
            auth_failed.clone(),
            "sealed for another sequence number",
        ),
        (
            truncated,
            SealError::Truncated { len: 10 },
            "a truncated envelope",
        ),
        (
            bad_version,
            SealError::UnsupportedVersion(9),
            "an unknown envelope version",
        ),
    ];
    for (message, reason, what) in cases {
        let err = refused(fx.carewatch.ingest(message).await, what);
        assert!(
            matches!(&err, Error::CannotDecrypt { slc, reason: r } if *slc == site.slc && *r == reason),
            "{what}: expected CannotDecrypt({reason:?}), got {err:?}"
        );
        assert_eq!(
            observable(&fx, &site).await,
            before,
            "{what} changed something"
        );
    }

    // Replayed.
    for (sequence, what) in [
        (2, "the last sequence number, other bytes"),
        (1, "an older sequence number"),
    ] {
        let err = refused(fx.carewatch.ingest(hb("rs-1", sequence)).await, what);
        assert!(
            matches!(&err, Error::Replayed { slc, sequence: s, last_accepted: 2, .. }
                if *slc == site.slc && *s == sequence),
            "{what}: expected Replayed({sequence}, last accepted 2), got {err:?}"
        );
        assert_eq!(
            observable(&fx, &site).await,
            before,
            "{what} changed something"
        );
    }

    // Malformed: opens, but the content is wrong.
    let unavailable_reported = {
        let mut p = vec![1u8, 0, 1, 18];
        p.extend_from_slice(b"SERVER_UNAVAILABLE");
        p.extend_from_slice(&[0, 4]);
        p.extend_from_slice(b"rs-1");
        p.extend_from_slice(&[0, 0]);
        p
    };
    let trailing = {
        let mut p = encode_status(&snapshot(&[]));
        p.push(0);
        p
    };
    let malformed = [
        (
            MessageKind::Heartbeat,
            b"not empty".to_vec(),
            "a heartbeat with a payload",
        ),
        (
            MessageKind::StatusReport,
            b"garbage".to_vec(),
            "a status report of garbage",
        ),
        (MessageKind::StatusReport, vec![], "an empty status report"),
        (
            MessageKind::StatusReport,
            vec![1, 0, 5],
            "a status report announcing 5 conditions and holding none",
        ),
        (
            MessageKind::StatusReport,
            trailing,
            "a status report with trailing bytes",
        ),
        (
            MessageKind::StatusReport,
            unavailable_reported,
            "a status report claiming SERVER_UNAVAILABLE",
        ),
    ];
    for (kind, plaintext, what) in malformed {
        let err = refused(
            fx.carewatch
                .ingest(sealed_msg(
                    &site.key, &site.slc, "rs-1", kind, 3, &plaintext,
                ))
                .await,
            what,
        );
        assert!(
            matches!(err, Error::Malformed { .. }),
            "{what}: expected Malformed, got {err:?}"
        );
        assert_eq!(
            observable(&fx, &site).await,
            before,
            "{what} changed something"
        );
    }

    // Too large: the limit itself is allowed (then judged on content).
    let limit = fx.carewatch.config().max_message_bytes();
    assert_eq!(
        limit,
        crate::seal::MAX_SEALED_MESSAGE_BYTES,
        "the default limit is the largest valid sealed report"
    );
    let fill = limit - HEADER_LEN - TAG_LEN;
    let at_limit = sealed_msg(
        &site.key,
        &site.slc,
        "rs-1",
        MessageKind::Heartbeat,
        3,
        &vec![0; fill],
    );
    assert_eq!(at_limit.sealed.len(), limit);
    let err = refused(
        fx.carewatch.ingest(at_limit).await,
        "a message of exactly the limit",
    );
    assert!(
        matches!(err, Error::Malformed { .. }),
        "a message of exactly {limit} bytes is not too large (a non-empty heartbeat is Malformed), got {err:?}"
    );
    let over = sealed_msg(
        &site.key,
        &site.slc,
        "rs-1",
        MessageKind::StatusReport,
        3,
        &vec![0; fill + 1],
    );
    let err = refused(
        fx.carewatch.ingest(over).await,
        "a message one byte over the limit",
    );
    assert!(
        matches!(err, Error::TooLarge { size, limit: l } if size == limit + 1 && l == limit),
        "expected TooLarge({} > {limit}), got {err:?}",
        limit + 1
    );
    assert_eq!(
        observable(&fx, &site).await,
        before,
        "a too-large message changed something"
    );

    // The operator's own changes are in the feed, with the refusals and
    // resumptions they caused; the refused messages are not.
    let mut operator_changes = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout(WATCH_QUIET, watch.next()).await {
        let event = event.expect("watch");
        assert!(
            matches!(
                event.change,
                Change::Consent { .. }
                    | Change::Subscription { .. }
                    | Change::Server {
                        event: crate::store::HistoryKind::Parked
                            | crate::store::HistoryKind::Resumed { .. },
                        ..
                    }
            ),
            "refused messages: expected nothing but the operator's changes, got {event:?}"
        );
        operator_changes.push(event.change.name());
    }
    assert_eq!(
        operator_changes,
        [
            "consent",
            "parked",
            "consent",
            "resumed",
            "subscription",
            "parked",
            "subscription",
            "subscription",
            "subscription",
            "resumed"
        ],
        "the consent and subscription changes, in order, each refusal and resumption after the operator's change that caused it"
    );

    // No refusal consumed sequence number 3.
    let ack = accept(
        &fx,
        hb("rs-1", 3),
        "a valid heartbeat with the sequence every refusal used",
    )
    .await;
    let d = detail(&fx, &site).await;
    assert_eq!(
        (
            server(&d, "rs-1").cursor.sequence,
            server(&d, "rs-1").last_seen_at
        ),
        (3, ack.received_at)
    );
    assert_eq!(
        d.servers.len(),
        1,
        "no refused message may create a recording server"
    );
    assert_eq!(
        fx.carewatch
            .sweep()
            .await
            .expect("sweep")
            .installations_changed,
        0,
        "nothing is due"
    );
}
