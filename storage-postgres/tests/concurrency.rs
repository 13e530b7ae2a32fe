//! What only a shared database has to get right: several nodes (several
//! pools on one schema) writing the same rows at the same moment.

mod common;

use std::sync::Arc;
use std::time::Duration;

use carewatch_core::availability::{Availability, DowntimeWindow};
use carewatch_core::condition::{ReportedCondition, StatusSnapshot};
use carewatch_core::health::Health;
use carewatch_core::ids::{RecordingServerId, ResellerId, Slc};
use carewatch_core::installation::{Installation, Product};
use carewatch_core::liveness::{LivenessMark, MarkReason};
use carewatch_core::store::{
    AvailabilityChange, DowntimeEpoch, HistoryKind, InstallationUpdate, OverviewQuery, StatusWrite,
    Store, WriteOutcome,
};
use carewatch_core::time::Timestamp;
use carewatch_core::{ConditionCode, Error};
use carewatch_storage_postgres::PostgresStore;
use common::Schema;
use futures::future::join_all;
use sqlx_core::connection::{ConnectOptions, Connection};
use sqlx_core::query::query;
use sqlx_core::query_as::query_as;
use sqlx_core::query_scalar::query_scalar;

const START: Timestamp = Timestamp::from_millis(1_767_225_600_000);

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(START.as_millis() + ms)
}

fn rs(id: &str) -> RecordingServerId {
    RecordingServerId::new(id).expect("server id")
}

fn slc(n: u32) -> Slc {
    Slc::new(&format!("M01-C01-{n:04}")).expect("slc")
}

use common::sign_of_life as sign;

async fn nodes(schema: &Schema, n: usize) -> Vec<Arc<PostgresStore>> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(Arc::new(
            schema.open_store(&schema.next_application_name()).await,
        ));
    }
    out
}

async fn installations(store: &PostgresStore, count: u32) -> Vec<Slc> {
    let reseller = common::create_alpha_reseller(store, START).await;
    let mut out = Vec::new();
    for n in 1..=count {
        let installation = Installation {
            slc: slc(n),
            reseller: reseller.clone(),
            product: Product::new("XProtect Corporate", "2016 R3").expect("product"),
            subscription_expires_at: None,
            consent: true,
            registered_at: START,
        };
        store
            .register_installation(&installation)
            .await
            .expect("registers");
        out.push(installation.slc);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once() {
    let schema = Schema::create().await;
    let names: Vec<String> = (0..4).map(|_| schema.next_application_name()).collect();
    let opened = join_all(names.iter().map(|name| schema.open_store(name))).await;
    let sites = installations(&opened[0], 1).await;
    for store in &opened {
        assert!(
            store
                .installation(&sites[0])
                .await
                .expect("reads")
                .is_some(),
            "every node sees one schema"
        );
    }
}

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
async fn marks_of_nodes_at_the_same_moment_take_turns() {
    let schema = Schema::create().await;
    let nodes = nodes(&schema, 4).await;
    let mark = |node: &str, at, reason| LivenessMark {
        node: node.to_owned(),
        at,
        reason,
        tolerance: Duration::from_secs(3),
    };
    assert_eq!(
        nodes[0]
            .mark_alive(&mark("node-0", START, MarkReason::Starting))
            .await
            .expect("marks"),
        None
    );
    // node-0 crashed; four nodes start together a minute later.
    let later = at(60_000);
    let names = ["node-1", "node-2", "node-3", "node-4"];
    let windows = join_all(nodes.iter().zip(names).map(|(n, name)| async move {
        n.mark_alive(&mark(name, later, MarkReason::Starting)).await
    }))
    .await;
    let windows: Vec<_> = windows.into_iter().map(|w| w.expect("marks")).collect();
    let gap = DowntimeWindow::new(START, later).expect("window");
    assert_eq!(
        windows.iter().filter(|w| **w == Some(gap)).count(),
        1,
        "only the first of nodes starting together records the gap: {windows:?}"
    );
    assert!(
        windows.iter().all(|w| *w == Some(gap) || w.is_none()),
        "{windows:?}"
    );
    assert_eq!(
        nodes[0]
            .downtime(Timestamp::EPOCH)
            .await
            .expect("downtime")
            .windows,
        vec![gap],
        "one window, recorded with the mark that found it"
    );
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

/// Installations per health as the overview's totals give them, and as a
/// fresh `count(*) ... GROUP BY` over the installations gives them.
async fn totals_and_counts(
    schema: &Schema,
    store: &PostgresStore,
) -> (Vec<(i16, i64)>, Vec<(i16, i64)>) {
    let reseller = ResellerId::new("alpha").expect("id");
    let page = store
        .overview(
            &reseller,
            &OverviewQuery {
                include_healthy: true,
                ..OverviewQuery::default()
            },
        )
        .await
        .expect("reads the overview");
    let totals = Health::ALL
        .iter()
        .filter(|h| page.totals.get(**h) > 0)
        .map(|h| (i16::from(h.rank()), i64::from(page.totals.get(*h))))
        .collect();
    let mut conn = schema
        .config("cw_test_count")
        .connect_options()
        .connect()
        .await
        .expect("connects");
    let counts = query_as(
        "SELECT health, count(*) FROM installations WHERE reseller_id = 'alpha'
         GROUP BY health ORDER BY health",
    )
    .fetch_all(&mut conn)
    .await
    .expect("counts");
    let _ = conn.close().await;
    (totals, counts)
}

/// Four nodes change the health of one reseller's installations at once:
/// batches of first heartbeats (Pending to Healthy, many installations per
/// transaction, in opposite orders), then two streams of status reports per
/// node moving each installation between Healthy, Attention and Critical,
/// while a sweep moves a server of every installation between Available and
/// Late (refreshing one installation after another in one transaction, the
/// pattern that deadlocks counters updated in place). The totals the
/// overview reads (kept by triggers, migration 0002) then equal a fresh
/// count, and no call failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_health_changes_keep_the_overview_totals_exact() {
    const SITES: u32 = 24;
    const ROUNDS: u64 = 6;
    let schema = Schema::create().await;
    let nodes = nodes(&schema, 4).await;
    let sites = installations(&nodes[0], SITES).await;

    let first_seen = join_all(nodes.iter().enumerate().map(|(n, node)| {
        let mut signs: Vec<_> = sites
            .iter()
            .map(|slc| sign(slc, &format!("rs-{n}"), 1, at(0)))
            .collect();
        if n % 2 == 1 {
            signs.reverse();
        }
        async move { node.record_signs_of_life(&signs).await }
    }))
    .await;
    for outcomes in first_seen {
        assert!(
            outcomes
                .expect("batch commits")
                .iter()
                .all(|o| matches!(o, WriteOutcome::Applied(_))),
            "every first heartbeat applies"
        );
    }

    let sweep_server = rs("rs-sweep");
    let first_sweep: Vec<_> = sites
        .iter()
        .map(|slc| sign(slc, sweep_server.as_str(), 1, at(0)))
        .collect();
    nodes[0]
        .record_signs_of_life(&first_sweep)
        .await
        .expect("first heartbeats of the swept servers");
    let sweep_to = |late: bool| -> Vec<AvailabilityChange> {
        sites
            .iter()
            .map(|slc| AvailabilityChange {
                slc: slc.clone(),
                server: sweep_server.clone(),
                expected_last_seen: at(0),
                availability: if late {
                    Availability::Late { missed: 1 }
                } else {
                    Availability::Available
                },
                next_check_at: Some(at(60_000)),
                evaluated_at: at(60_000),
            })
            .collect()
    };
    let stop_sweeping = std::sync::atomic::AtomicBool::new(false);
    let sweeps = async {
        let mut late = true;
        let mut sweeps = 0u32;
        while !stop_sweeping.load(std::sync::atomic::Ordering::Relaxed) {
            nodes[3]
                .apply_availability(&sweep_to(late), DowntimeEpoch::default())
                .await
                .expect("sweep commits");
            late = !late;
            sweeps += 1;
        }
        sweeps
    };

    let conditions = [
        vec![],
        vec![
            ReportedCondition::new(ConditionCode::CameraUnreachable, "Camera 1", "timeout")
                .expect("valid"),
        ],
        vec![
            ReportedCondition::new(ConditionCode::StorageFull, "D:", "100 % used").expect("valid"),
        ],
    ];
    // Node n, stream s reports for server rs-n of every other installation,
    // in an order of its own, so the streams of all nodes overlap on the
    // reseller (and on installations) but never on one server's sequence.
    let streams = nodes.iter().enumerate().flat_map(|(n, node)| {
        let (sites, conditions) = (&sites, &conditions);
        (0..2usize).map(move |s| async move {
            let mut mine: Vec<(usize, &Slc)> =
                sites.iter().enumerate().skip(s).step_by(2).collect();
            if (n + s) % 2 == 1 {
                mine.reverse();
            }
            for round in 1..=ROUNDS {
                for &(i, slc) in &mine {
                    // The last round leaves installation i with conditions[i % 3].
                    let pick = if round == ROUNDS {
                        i
                    } else {
                        i + n + usize::try_from(round).expect("small")
                    } % conditions.len();
                    let report = StatusWrite {
                        sign: sign(
                            slc,
                            &format!("rs-{n}"),
                            round + 1,
                            at(i64::try_from(round).expect("small") * 1000),
                        ),
                        snapshot: StatusSnapshot::new(conditions[pick].clone()).expect("snapshot"),
                    };
                    let outcome = node.apply_status_report(&report).await;
                    assert!(
                        matches!(outcome, Ok(WriteOutcome::Applied(_))),
                        "node {n} round {round} {slc}: {outcome:?}"
                    );
                }
            }
        })
    });
    let reports = async {
        join_all(streams).await;
        stop_sweeping.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    let (sweeps, ()) = tokio::join!(sweeps, reports);
    assert!(sweeps > 1, "the sweep ran during the reports");
    nodes[3]
        .apply_availability(&sweep_to(false), DowntimeEpoch::default())
        .await
        .expect("last sweep commits");

    let (totals, counts) = totals_and_counts(&schema, &nodes[1]).await;
    assert_eq!(
        totals.iter().map(|(_, n)| n).sum::<i64>(),
        i64::from(SITES),
        "every installation counted once: {totals:?}"
    );
    assert_eq!(
        totals, counts,
        "totals kept by triggers equal a fresh count"
    );
    let third = i64::from(SITES / 3);
    assert_eq!(
        counts,
        vec![(0, third), (2, third), (3, third)],
        "the last reports left a third each Healthy, Attention and Critical"
    );
}

/// The interleaving that deadlocks counters updated in place: T2 locks
/// installation X (as a summary refresh does); T1 changes A's health (the
/// same reseller's totals) and then waits for X; only then does T2 change
/// X's health. With the totals taken only when free (else parked), T2 does
/// not wait for T1 and neither is rolled back. Raw transactions, no retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_totals_never_wait_for_a_lock() {
    let schema = Schema::create().await;
    let store = schema.open_store("cw_test_totals_locks").await;
    let sites = installations(&store, 2).await;
    let (a, x) = (sites[0].as_str(), sites[1].as_str());
    let options = schema.config("cw_test_totals_locks").connect_options();
    let (mut c1, mut c2, mut watch) = (
        options.connect().await.expect("connects"),
        options.connect().await.expect("connects"),
        options.connect().await.expect("connects"),
    );
    let t1_pid: i32 = query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut c1)
        .await
        .expect("reads pid");
    query("BEGIN").execute(&mut c2).await.expect("T2 begins");
    query("SELECT 1 FROM installations WHERE slc = $1 FOR NO KEY UPDATE")
        .bind(x)
        .execute(&mut c2)
        .await
        .expect("T2 locks X");
    let t1 = async {
        query("BEGIN").execute(&mut c1).await?;
        for slc in [a, x] {
            query("UPDATE installations SET health = 3 WHERE slc = $1")
                .bind(slc)
                .execute(&mut c1)
                .await?;
        }
        query("COMMIT").execute(&mut c1).await.map(|_| ())
    };
    let t2 = async {
        // Until T1 (holding A's totals) waits for X's lock.
        loop {
            let waiting: bool = query_scalar(
                "SELECT coalesce(wait_event_type = 'Lock', false) FROM pg_stat_activity WHERE pid = $1",
            )
            .bind(t1_pid)
            .fetch_one(&mut watch)
            .await?;
            if waiting {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        query("UPDATE installations SET health = 0 WHERE slc = $1")
            .bind(x)
            .execute(&mut c2)
            .await?;
        query("COMMIT").execute(&mut c2).await.map(|_| ())
    };
    let (r1, r2) = tokio::time::timeout(Duration::from_secs(30), async { tokio::join!(t1, t2) })
        .await
        .expect("neither waits for long");
    r1.expect("T1 commits (no deadlock)");
    r2.expect("T2 commits (no deadlock)");
    let (totals, counts) = totals_and_counts(&schema, &store).await;
    assert_eq!(counts, vec![(3, 2)], "T1 changed X last");
    assert_eq!(totals, counts);
}

/// Another node's event wakes this node's feed reader (LISTEN/NOTIFY at the
/// other node's COMMIT), and events committed by concurrent transactions are
/// numbered in commit order: a reader polling meanwhile never sees a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_nodes_events_wake_listeners_and_arrive_without_gaps() {
    let schema = Schema::create().await;
    let nodes = nodes(&schema, 2).await;
    let mut signals = nodes[0].listen_for_changes();
    // Let the listener connect and LISTEN before the first event.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sites = installations(&nodes[1], 16).await;
    tokio::time::timeout(Duration::from_secs(2), signals.changed())
        .await
        .expect("node 0 is woken by node 1's commit")
        .expect("listener alive");

    let head = nodes[0].latest_change().await.expect("head");
    let writers = join_all(sites.iter().enumerate().map(|(n, slc)| {
        let store = nodes[n % 2].clone();
        async move {
            for k in 0..10 {
                let accepted = k % 2 == 0;
                store
                    .update_installation(slc, &InstallationUpdate::Consent(accepted), at(k))
                    .await
                    .expect("consent");
            }
        }
    }));
    let reader = async {
        let mut last = head;
        let mut seen = 0;
        while seen < 160 {
            for event in nodes[0].changes(last, 100).await.expect("read") {
                assert_eq!(event.id.0, last.0 + 1, "a gap before {}", event.id);
                last = event.id;
                seen += 1;
            }
            tokio::task::yield_now().await;
        }
        seen
    };
    let (_, seen) = tokio::join!(writers, reader);
    assert_eq!(seen, 160);
}
