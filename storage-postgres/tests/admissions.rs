//! Admissions read in one statement per batch answer every query exactly as
//! its own lookup does, in order, and a stored row that does not decode
//! fails only the queries that read it.

mod common;

use std::time::Duration;

use carewatch_core::auth::{MessageDigest, SequenceCursor};
use carewatch_core::ids::{RecordingServerId, Slc};
use carewatch_core::installation::{Installation, Product};
use carewatch_core::seal::{KeyId, WrappedKey};
use carewatch_core::store::{AdmissionQuery, SignOfLife, Store};
use carewatch_core::time::Timestamp;
use carewatch_storage_postgres::PostgresStore;
use common::Schema;
use sqlx_core::query::query;

const START: Timestamp = Timestamp::from_millis(1_767_225_600_000);

fn slc(n: u32) -> Slc {
    Slc::new(&format!("M01-C01-{n:04}")).expect("slc")
}

fn rs(n: u32) -> RecordingServerId {
    RecordingServerId::new(&format!("rs-{n}")).expect("server id")
}

/// Three sites: keys 1 (active) and 2 (retired) each; servers rs-1 and rs-2
/// heard from (rs-3 never).
async fn populate(store: &PostgresStore) {
    let reseller = common::create_alpha_reseller(store, START).await;
    let mut signs = Vec::new();
    for n in 1..=3 {
        store
            .register_installation(&Installation {
                slc: slc(n),
                reseller: reseller.clone(),
                product: Product::new("XProtect Corporate", "2016 R3").expect("product"),
                subscription_expires_at: Some(START.saturating_add(Duration::from_secs(86_400))),
                consent: n != 2,
                registered_at: START,
            })
            .await
            .expect("registers");
        for key in 1..=2u32 {
            let sealed = vec![u8::try_from(n * 10 + key).expect("small"); 44];
            store
                .add_installation_key(
                    &slc(n),
                    &WrappedKey {
                        id: KeyId::new(key),
                        sealed,
                    },
                    START,
                )
                .await
                .expect("adds key");
        }
        store
            .retire_installation_key(&slc(n), KeyId::new(2), START)
            .await
            .expect("retires key 2");
        for server in 1..=2 {
            let sequence = u64::from(n * 10 + server);
            signs.push(SignOfLife {
                slc: slc(n),
                server: rs(server),
                cursor: SequenceCursor {
                    sequence,
                    digest: MessageDigest([u8::try_from(sequence).expect("small"); 32]),
                },
                received_at: START,
                interval: Duration::from_secs(60),
                next_check_at: START.saturating_add(Duration::from_secs(62)),
                missed_before: 0,
                remembered: None,
            });
        }
    }
    store
        .record_signs_of_life(&signs)
        .await
        .expect("records heartbeats");
}

/// Every combination of four sites (one unknown), three servers (one never
/// heard from) and three key ids (active, retired, missing), twice over.
fn queries() -> Vec<AdmissionQuery> {
    let mut out = Vec::new();
    for _ in 0..2 {
        for n in [3, 1, 4, 2] {
            for server in 1..=3 {
                for key in 1..=3 {
                    out.push(AdmissionQuery {
                        slc: slc(n),
                        server: rs(server),
                        key: KeyId::new(key),
                    });
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answers_like_single_lookups_in_order() {
    let schema = Schema::create().await;
    let store = schema.open_store("cw_test_admissions").await;
    populate(&store).await;
    let queries = queries();
    let together = store.admissions(&queries).await.expect("admissions");
    assert_eq!(together.len(), queries.len(), "one answer per query");
    for (q, answer) in queries.iter().zip(together) {
        let alone = store
            .admission(&q.slc, &q.server, q.key)
            .await
            .expect("admission");
        let answer = answer.expect("each admission");
        assert_eq!(answer, alone, "{q:?}");
        if let Some(a) = &answer {
            assert_eq!(a.installation.slc, q.slc, "answers are in query order");
            assert_eq!(a.key.is_some(), q.key.get() == 1, "{q:?}: only key 1 opens");
            assert_eq!(a.server.is_some(), q.server != rs(3), "{q:?}");
        } else {
            assert_eq!(q.slc, slc(4), "only the unknown SLC is missing");
        }
    }
    assert!(
        store.admissions(&[]).await.expect("empty batch").is_empty(),
        "no queries, no answers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_that_does_not_decode_fails_only_its_queries() {
    let schema = Schema::create().await;
    let store = schema.open_store("cw_test_admissions_corrupt").await;
    populate(&store).await;
    // An availability state no version writes: rs-2 of site 3 cannot be read.
    query("UPDATE servers SET state = 9 WHERE slc = $1 AND server_id = 'rs-2'")
        .bind(slc(3).as_str())
        .execute(store.pool())
        .await
        .expect("corrupts one server row");
    let queries = queries();
    let together = store.admissions(&queries).await.expect("the batch is read");
    let mut failed = 0;
    for (q, answer) in queries.iter().zip(together) {
        let alone = store.admission(&q.slc, &q.server, q.key).await;
        match (answer, alone) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{q:?}"),
            (Err(a), Err(b)) => {
                assert_eq!(a.to_string(), b.to_string(), "{q:?}");
                assert_eq!((q.slc.clone(), q.server.clone()), (slc(3), rs(2)));
                failed += 1;
            }
            (a, b) => panic!("{q:?}: batched {a:?}, alone {b:?}"),
        }
    }
    assert_eq!(
        failed, 6,
        "rs-2 of site 3, with each of three key ids, twice"
    );
}

/// Not a check but a timing, ignored by default: batches of 10, 100 and
/// 1,000 admissions over 10,000 installations with 10 servers each, read as
/// the trait's default does (one lookup each, concurrently, on a pool of 16)
/// and in one statement. Run with
/// `cargo test --release -p carewatch-storage-postgres --test admissions -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a timing, not a check"]
async fn timing_one_statement_against_one_lookup_each() {
    const INSTALLATIONS: u32 = 10_000;
    let schema = Schema::create().await;
    let store = PostgresStore::open(
        schema
            .config("cw_test_admissions_timing")
            .max_connections(16),
    )
    .await
    .expect("opens");
    common::create_alpha_reseller(&store, START).await;
    for sql in [
        "INSERT INTO installations
             SELECT 'M01-C01-' || lpad(g::text, 5, '0'), 'alpha', 'XProtect Corporate', '2016 R3',
                 NULL, true, 0, 0, NULL, 10, 0, 0, 0
             FROM generate_series(1, 10000) g",
        "INSERT INTO installation_keys
             SELECT slc, 1, decode(repeat('ab', 44), 'hex'), 0, NULL FROM installations",
        "INSERT INTO servers
             SELECT slc, 'rs-' || s, 0, 0, 60000, 1, decode(repeat('cd', 32), 'hex'), 0, 0, NULL, 60000
             FROM installations, generate_series(1, 10) s",
        "VACUUM ANALYZE",
    ] {
        query(sql).execute(store.pool()).await.expect(sql);
    }
    for (size, rounds) in [(10u32, 400), (100, 200), (1000, 40)] {
        let queries: Vec<AdmissionQuery> = (0..size)
            .map(|i| AdmissionQuery {
                slc: Slc::new(&format!("M01-C01-{:05}", (i * 7919) % INSTALLATIONS + 1))
                    .expect("slc"),
                server: rs(i % 10 + 1),
                key: KeyId::new(1),
            })
            .collect();
        let (mut each, mut batched) = (Vec::new(), Vec::new());
        for round in 0..rounds + 10 {
            let started = std::time::Instant::now();
            let answers = futures::future::join_all(
                queries
                    .iter()
                    .map(|q| store.admission(&q.slc, &q.server, q.key)),
            )
            .await;
            let lookups = started.elapsed();
            assert!(answers.iter().all(|a| matches!(a, Ok(Some(_)))));
            let started = std::time::Instant::now();
            let answers = store.admissions(&queries).await.expect("admissions");
            let together = started.elapsed();
            assert!(answers.iter().all(|a| matches!(a, Ok(Some(_)))));
            // The first rounds warm the pool and the statement caches.
            if round >= 10 {
                each.push(lookups);
                batched.push(together);
            }
        }
        let stats = |samples: &mut Vec<Duration>| {
            samples.sort();
            let at = |q: usize| samples[(samples.len() - 1) * q / 100];
            format!("median {:.2?} p90 {:.2?}", at(50), at(90))
        };
        println!(
            "{size:>5} admissions: one lookup each {} | one statement {}",
            stats(&mut each),
            stats(&mut batched)
        );
    }
}
