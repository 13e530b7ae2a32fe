//! The same rows written through several nodes at once: applied once, in order, as domain errors.

use carewatch_core::condition::{ReportedCondition, StatusSnapshot};
use carewatch_core::ids::{ResellerId, Slc};
use carewatch_core::installation::{Installation, Product};
use carewatch_core::store::{HistoryKind, StatusWrite, Store, WriteOutcome};
use carewatch_core::time::Timestamp;
use carewatch_core::{ConditionCode, Error};
use futures::future::join_all;

use crate::common::Schema;
use crate::common::sign_of_life as sign;
use crate::support::{START, at, installations, nodes, rs, slc};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_report_through_four_nodes_at_once_is_applied_once() {
    let schema = Schema::create().await;
    let nodes = nodes(&schema, 4).await;
    let site = installations(&nodes[0], 1).await.remove(0);
    for sequence in 1..=20u64 {
        // New every time: the camera of this report (so each report opens one
        // condition and resolves the previous one).
        let camera = format!("Camera {sequence}");
        let condition =
            ReportedCondition::new(ConditionCode::CameraUnreachable, &camera, "timeout")
                .expect("valid");
        let report = StatusWrite {
            sign: sign(
                &site,
                "rs-1",
                sequence,
                at(i64::try_from(sequence).expect("small") * 1000),
            ),
            snapshot: StatusSnapshot::new(vec![condition]).expect("snapshot"),
        };
        let outcomes = join_all(nodes.iter().map(|n| n.apply_status_report(&report))).await;
        let applied = outcomes
            .iter()
            .filter(|o| matches!(o, Ok(WriteOutcome::Applied(_))))
            .count();
        let duplicates = outcomes
            .iter()
            .filter(|o| matches!(o, Ok(WriteOutcome::Duplicate)))
            .count();
        assert_eq!(
            (applied, duplicates),
            (1, 3),
            "report {sequence}: one node applies it, {outcomes:?}"
        );
    }
    let reseller = ResellerId::new("alpha").expect("id");
    let detail = nodes[1]
        .installation_detail(&reseller, &site, 1000)
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(
        detail.active_conditions.len(),
        1,
        "only the last report's camera is active"
    );
    assert_eq!(detail.active_conditions[0].subject, "Camera 20");
    let opened = detail
        .history
        .iter()
        .filter(|e| matches!(e.kind, HistoryKind::ConditionOpened { .. }))
        .count();
    let resolved = detail
        .history
        .iter()
        .filter(|e| matches!(e.kind, HistoryKind::ConditionResolved { .. }))
        .count();
    let first_seen = detail
        .history
        .iter()
        .filter(|e| matches!(e.kind, HistoryKind::FirstSeen))
        .count();
    assert_eq!(
        (first_seen, opened, resolved),
        (1, 20, 19),
        "each report applied exactly once"
    );
    assert_eq!(detail.servers[0].cursor.sequence, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_seen_never_moves_backwards_between_nodes() {
    let schema = Schema::create().await;
    let nodes = nodes(&schema, 2).await;
    let site = installations(&nodes[0], 1).await.remove(0);
    let reseller = ResellerId::new("alpha").expect("id");
    let mut latest = Timestamp::EPOCH;
    for round in 0..30u64 {
        // Node 0's clock runs ahead of node 1's: the newer sequence (through
        // node 1) carries the earlier receipt time.
        let base = i64::try_from(round).expect("small") * 10_000;
        let ahead = sign(&site, "rs-1", 2 * round + 1, at(base + 5_000));
        let behind = sign(&site, "rs-1", 2 * round + 2, at(base + 1_000));
        let (a, b) = tokio::join!(
            nodes[0].record_signs_of_life(std::slice::from_ref(&ahead)),
            nodes[1].record_signs_of_life(std::slice::from_ref(&behind))
        );
        for (outcome, s) in [(a, &ahead), (b, &behind)] {
            if let Ok([WriteOutcome::Applied(_)]) = outcome.as_deref() {
                latest = latest.max(s.received_at);
            } else {
                assert!(
                    matches!(outcome.as_deref(), Ok([WriteOutcome::Stale { .. }])),
                    "only a stale refusal is allowed: {outcome:?}"
                );
            }
        }
        let detail = nodes[0]
            .installation_detail(&reseller, &site, 1)
            .await
            .expect("reads")
            .expect("exists");
        assert_eq!(
            detail.servers[0].last_seen_at, latest,
            "round {round}: last seen is the latest receipt"
        );
        assert_eq!(
            detail.servers[0].cursor.sequence,
            2 * round + 2,
            "the newest sequence always wins"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequences_above_i64_max_compare_as_unsigned() {
    let schema = Schema::create().await;
    let store = schema.open_store("cw_test_u64").await;
    let site = installations(&store, 1).await.remove(0);
    let max = i64::MAX as u64;
    let mut t = 0;
    let mut send = async |sequence: u64| {
        t += 1000;
        store
            .record_signs_of_life(&[sign(&site, "rs-1", sequence, at(t))])
            .await
            .expect("writes")
            .remove(0)
    };
    assert!(matches!(send(max).await, WriteOutcome::Applied(_)));
    assert!(
        matches!(send(max + 1).await, WriteOutcome::Applied(_)),
        "i64::MAX + 1 is newer"
    );
    assert_eq!(
        send(max).await,
        WriteOutcome::Stale {
            last_accepted: max + 1
        },
        "i64::MAX is older"
    );
    assert_eq!(
        send(5).await,
        WriteOutcome::Stale {
            last_accepted: max + 1
        }
    );
    assert!(matches!(send(u64::MAX).await, WriteOutcome::Applied(_)));
    assert_eq!(
        send(u64::MAX - 1).await,
        WriteOutcome::Stale {
            last_accepted: u64::MAX
        }
    );
    let admission = store
        .admission(&site, &rs("rs-1"), carewatch_core::seal::KeyId::new(1))
        .await
        .expect("reads");
    assert_eq!(
        admission.and_then(|a| a.server).map(|s| s.cursor.sequence),
        Some(u64::MAX),
        "stored bit for bit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_in_opposite_orders_do_not_fail() {
    let schema = Schema::create().await;
    let nodes = nodes(&schema, 2).await;
    let sites = installations(&nodes[0], 5).await;
    let servers: Vec<(Slc, String)> = sites
        .iter()
        .flat_map(|s| (1..=3).map(move |n| (s.clone(), format!("rs-{n}"))))
        .collect();
    for round in 0..15u64 {
        let t = at(i64::try_from(round).expect("small") * 1000);
        // Odd sequences forwards through node 0, even ones backwards through node 1.
        let forwards: Vec<_> = servers
            .iter()
            .map(|(slc, s)| sign(slc, s, 2 * round + 1, t))
            .collect();
        let backwards: Vec<_> = servers
            .iter()
            .rev()
            .map(|(slc, s)| sign(slc, s, 2 * round + 2, t))
            .collect();
        let (a, b) = tokio::join!(
            nodes[0].record_signs_of_life(&forwards),
            nodes[1].record_signs_of_life(&backwards)
        );
        let (a, b) = (a.expect("forward batch"), b.expect("backward batch"));
        assert_eq!((a.len(), b.len()), (servers.len(), servers.len()));
    }
    let reseller = ResellerId::new("alpha").expect("id");
    for site in &sites {
        let detail = nodes[0]
            .installation_detail(&reseller, site, 1000)
            .await
            .expect("reads")
            .expect("exists");
        assert!(
            detail.servers.iter().all(|s| s.cursor.sequence == 30),
            "{:?}",
            detail.servers
        );
        assert_eq!(
            detail.summary.servers, 3,
            "the summary counts every server once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constraint_violations_are_domain_errors() {
    let schema = Schema::create().await;
    let store = schema.open_store("cw_test_errors").await;
    let site = installations(&store, 1).await.remove(0);
    let orphan = Installation {
        slc: slc(99),
        reseller: ResellerId::new("nobody").expect("id"),
        product: Product::new("Husky", "M50").expect("product"),
        subscription_expires_at: None,
        consent: false,
        registered_at: START,
    };
    let err = store
        .register_installation(&orphan)
        .await
        .expect_err("unknown reseller");
    assert!(
        matches!(&err, Error::NotFound { what } if what == "reseller nobody"),
        "{err:?}"
    );
    let again = Installation {
        slc: site.clone(),
        ..orphan
    };
    let again = Installation {
        reseller: ResellerId::new("alpha").expect("id"),
        ..again
    };
    let err = store
        .register_installation(&again)
        .await
        .expect_err("registered twice");
    assert!(
        matches!(&err, Error::AlreadyExists { what } if *what == format!("installation {site}")),
        "{err:?}"
    );
    // The failed statements left nothing half done: the store still works.
    assert!(store.installation(&site).await.expect("reads").is_some());
}
