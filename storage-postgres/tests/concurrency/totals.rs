//! The overview's health totals under concurrent changes: exact, and never waiting for a lock.

use std::time::Duration;

use carewatch_core::ConditionCode;
use carewatch_core::availability::Availability;
use carewatch_core::condition::{ReportedCondition, StatusSnapshot};
use carewatch_core::health::Health;
use carewatch_core::ids::{ResellerId, Slc};
use carewatch_core::store::{
    AvailabilityChange, DowntimeEpoch, OverviewQuery, StatusWrite, Store, WriteOutcome,
};
use carewatch_storage_postgres::PostgresStore;
use futures::future::join_all;
use sqlx_core::connection::{ConnectOptions, Connection};
use sqlx_core::query::query;
use sqlx_core::query_as::query_as;
use sqlx_core::query_scalar::query_scalar;

use crate::common::Schema;
use crate::common::sign_of_life as sign;
use crate::support::{at, installations, nodes, rs};

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
