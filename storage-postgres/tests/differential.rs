//! "Behaves exactly like SQLite": the same long pseudo-random sequence of
//! store calls (heartbeat batches with retries, stale and out-of-order
//! messages, status snapshots, sweeps, liveness marks, reads) against the
//! SQLite reference and this backend; every result must be equal.

mod common;

use std::fmt::Debug;
use std::time::Duration;

use carewatch_core::ConditionCode;
use carewatch_core::auth::{MessageDigest, SequenceCursor, TokenHash};
use carewatch_core::availability::{self, AvailabilityPolicy, Downtime, DowntimeWindow};
use carewatch_core::condition::{ReportedCondition, StatusSnapshot};
use carewatch_core::ids::{RecordingServerId, ResellerId, Slc};
use carewatch_core::installation::{Installation, Product};
use carewatch_core::liveness::{LivenessMark, MarkReason};
use carewatch_core::seal::{KeyId, WrappedKey};
use carewatch_core::store::{
    Admission, AdmissionQuery, AdmissionVersion, AvailabilityChange, InstallationUpdate,
    OverviewQuery, Reseller, SignOfLife, StatusWrite, Store,
};
use carewatch_core::time::Timestamp;
use carewatch_storage_sqlite::SqliteStore;
use common::Schema;

const START: Timestamp = Timestamp::from_millis(1_767_225_600_000);
const INTERVAL: Duration = Duration::from_secs(60);

/// A small deterministic generator (the sequence must be the same for both stores).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Runs one call on both stores and insists on the same result.
async fn both<'a, T, F, Fut>(
    step: usize,
    what: &str,
    sqlite: &'a dyn Store,
    pg: &'a dyn Store,
    call: F,
) -> Option<T>
where
    T: PartialEq + Debug,
    F: Fn(&'a dyn Store) -> Fut,
    Fut: Future<Output = carewatch_core::Result<T>>,
{
    let expected = call(sqlite).await;
    let actual = call(pg).await;
    match (expected, actual) {
        (Ok(e), Ok(a)) => {
            assert_eq!(a, e, "step {step}: {what} differs from SQLite");
            Some(a)
        }
        (Err(e), Err(a)) => {
            assert_eq!(
                a.to_string(),
                e.to_string(),
                "step {step}: {what} fails differently from SQLite"
            );
            None
        }
        (e, a) => panic!("step {step}: {what}: SQLite gave {e:?}, PostgreSQL {a:?}"),
    }
}

/// [`Store::admissions`], each answer unwrapped (none may fail here).
async fn admissions(
    store: &dyn Store,
    queries: &[AdmissionQuery],
) -> carewatch_core::Result<Vec<Option<Admission>>> {
    store
        .admissions(queries)
        .await?
        .into_iter()
        .collect::<carewatch_core::Result<Vec<_>>>()
}

fn slc(n: u64) -> Slc {
    Slc::new(&format!("M01-C01-{n:04}")).expect("slc")
}

fn rs(n: u64) -> RecordingServerId {
    RecordingServerId::new(&format!("rs-{n}")).expect("server id")
}

fn digest(sequence: u64, variant: u64) -> MessageDigest {
    let mut d = [0u8; 32];
    d[..8].copy_from_slice(&sequence.to_be_bytes());
    d[8] = u8::try_from(variant % 2).expect("0 or 1");
    MessageDigest(d)
}

/// What status reports pick from: known codes, and two unknown ones from a
/// newer recording server (equally bad, so the order they are read in decides
/// which one is the installation's worst).
fn conditions() -> Vec<(ConditionCode, &'static str)> {
    vec![
        (ConditionCode::CameraUnreachable, "Camera 1"),
        (ConditionCode::CameraUnreachable, "Camera 2"),
        (ConditionCode::StorageFull, "D:"),
        (ConditionCode::LicenseOveruse, ""),
        (
            ConditionCode::parse("ZETA_SENSOR_FAULT").expect("well formed"),
            "Sensor",
        ),
        (
            ConditionCode::parse("ALPHA_FAN_FAILED").expect("well formed"),
            "Fan 2",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_calls_give_the_same_results_as_sqlite() {
    for seed in [0x5eed, 7, 1_000_003] {
        same_results_as_sqlite(seed).await;
    }
}

async fn same_results_as_sqlite(seed: u64) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let sqlite = SqliteStore::open(dir.path().join("reference.db"))
        .await
        .expect("opens SQLite");
    let schema = Schema::create().await;
    let pg = schema.open_store("cw_test_differential").await;
    let pg: &dyn Store = &pg;
    let sqlite: &dyn Store = &sqlite;

    let resellers = [
        ResellerId::new("alpha").expect("id"),
        ResellerId::new("beta").expect("id"),
    ];
    for (i, id) in resellers.iter().enumerate() {
        let reseller = Reseller {
            id: id.clone(),
            name: format!("Reseller {i}"),
            created_at: START,
        };
        let token = TokenHash::from_slice(&[u8::try_from(i).expect("small"); 32]).expect("hash");
        both(0, "create_reseller", sqlite, pg, |s| {
            let (reseller, token) = (reseller.clone(), token.clone());
            async move { s.create_reseller(&reseller, &token).await }
        })
        .await;
    }
    const SITES: u64 = 6;
    const SERVERS: u64 = 3;
    for n in 1..=SITES {
        let installation = Installation {
            slc: slc(n),
            reseller: resellers[usize::from(n % 2 == 0)].clone(),
            product: Product::new("XProtect Corporate", "2016 R3").expect("product"),
            subscription_expires_at: Some(START.saturating_add(Duration::from_secs(86_400))),
            consent: true,
            registered_at: START,
        };
        both(0, "register_installation", sqlite, pg, |s| {
            let i = installation.clone();
            async move { s.register_installation(&i).await }
        })
        .await;
        let key = WrappedKey {
            id: KeyId::new(1),
            sealed: vec![u8::try_from(n).expect("small"); 44],
        };
        both(0, "add_installation_key", sqlite, pg, |s| {
            let key = key.clone();
            async move { s.add_installation_key(&slc(n), &key, START).await }
        })
        .await;
    }

    let policy = AvailabilityPolicy::default();
    let catalogue = conditions();
    let mut rng = Lcg(seed);
    // Its own stream, so the calls drawn from `rng` stay what they were.
    let mut remembering = Lcg(seed ^ 0x5eed);
    let mut now = START;
    // Sequence numbers handed out so far, per (site, server).
    let mut sequences = std::collections::HashMap::<(u64, u64), u64>::new();
    let mut sign = |rng: &mut Lcg, now: Timestamp| {
        let (site, server) = (1 + rng.below(SITES), 1 + rng.below(SERVERS));
        let last = sequences.entry((site, server)).or_insert(0);
        // Mostly newer; sometimes a retry, an older one, or a changed digest.
        let sequence = match rng.below(10) {
            0 => last.saturating_sub(1),
            1 | 2 => *last,
            _ => *last + 1 + rng.below(2),
        };
        *last = (*last).max(sequence);
        let received_at = Timestamp::from_millis(
            now.as_millis() - i64::try_from(rng.below(3000)).expect("small"),
        );
        SignOfLife {
            slc: slc(site),
            server: rs(server),
            cursor: SequenceCursor {
                sequence,
                digest: digest(sequence, u64::from(rng.below(8) == 0)),
            },
            received_at,
            interval: INTERVAL,
            next_check_at: received_at.saturating_add(INTERVAL + Duration::from_secs(2)),
            missed_before: u32::try_from(rng.below(4)).expect("small"),
            remembered: None,
        }
    };

    for step in 1..=600 {
        match rng.below(20) {
            0..=6 => {
                let batch: Vec<SignOfLife> =
                    (0..1 + rng.below(6)).map(|_| sign(&mut rng, now)).collect();
                // What ingest reads first, batched as it batches them.
                let queries: Vec<AdmissionQuery> = batch
                    .iter()
                    .map(|sign| AdmissionQuery {
                        slc: sign.slc.clone(),
                        server: sign.server.clone(),
                        key: KeyId::new(
                            1 + u32::try_from(sign.cursor.sequence % 2).expect("0 or 1"),
                        ),
                    })
                    .collect();
                let read = both(step, "admissions", sqlite, pg, |s| {
                    let queries = queries.clone();
                    async move { admissions(s, &queries).await }
                })
                .await;
                // Some signs as if judged on a remembered admission: the
                // current version, or one a change has since replaced.
                let mut batch = batch;
                for (sign, admission) in batch.iter_mut().zip(read.unwrap_or_default()) {
                    if let Some(admission) = admission
                        && remembering.below(3) == 0
                    {
                        let behind = i64::try_from(remembering.below(2)).expect("0 or 1");
                        sign.remembered = Some(AdmissionVersion(admission.version.0 - behind));
                    }
                }
                both(step, "record_signs_of_life", sqlite, pg, |s| {
                    let batch = batch.clone();
                    async move { s.record_signs_of_life(&batch).await }
                })
                .await;
            }
            7..=10 => {
                let mut conditions = Vec::new();
                for (code, subject) in &catalogue {
                    if rng.below(2) == 0 {
                        let detail = format!("detail {}", rng.below(2));
                        conditions.push(
                            ReportedCondition::new(code.clone(), subject, &detail)
                                .expect("condition"),
                        );
                    }
                }
                let report = StatusWrite {
                    sign: sign(&mut rng, now),
                    snapshot: StatusSnapshot::new(conditions).expect("snapshot"),
                };
                both(step, "apply_status_report", sqlite, pg, |s| {
                    let report = report.clone();
                    async move { s.apply_status_report(&report).await }
                })
                .await;
            }
            11..=13 => now = now.saturating_add(Duration::from_secs(rng.below(150))),
            14 | 15 => {
                let downtime = Downtime::new(Vec::new());
                let due = both(step, "due_servers", sqlite, pg, |s| async move {
                    s.due_servers(now, 1000).await
                })
                .await
                .unwrap_or_default();
                let changes: Vec<AvailabilityChange> = due
                    .iter()
                    .map(|server| {
                        let e = availability::evaluate(
                            Some(server.last_seen_at),
                            server.interval,
                            &policy,
                            &downtime,
                            now,
                        );
                        AvailabilityChange {
                            slc: server.slc.clone(),
                            server: server.server.clone(),
                            expected_last_seen: server.last_seen_at,
                            availability: e.availability,
                            next_check_at: e.next_change_at,
                            evaluated_at: now,
                        }
                    })
                    .collect();
                both(step, "apply_availability", sqlite, pg, |s| {
                    let changes = changes.clone();
                    // Each backend numbers its own windows.
                    async move {
                        let epoch = s.downtime(Timestamp::EPOCH).await?.epoch;
                        s.apply_availability(&changes, epoch).await
                    }
                })
                .await;
            }
            16 => {
                let node = format!("node-{}", rng.below(3));
                let mark = LivenessMark {
                    node,
                    at: now,
                    reason: match rng.below(3) {
                        0 => MarkReason::Starting,
                        1 => MarkReason::StorageRecovered {
                            since: now.saturating_sub(Duration::from_secs(5)),
                        },
                        _ => MarkReason::Running,
                    },
                    tolerance: Duration::from_secs(3),
                };
                both(step, "mark_alive", sqlite, pg, |s| {
                    let mark = mark.clone();
                    async move { s.mark_alive(&mark).await }
                })
                .await;
                if rng.below(4) == 0 {
                    both(step, "mark_stopped", sqlite, pg, |s| {
                        let node = mark.node.clone();
                        async move { s.mark_stopped(&node, now).await }
                    })
                    .await;
                }
                if rng.below(2) == 0 {
                    let window =
                        DowntimeWindow::new(now.saturating_sub(Duration::from_secs(30)), now)
                            .expect("window");
                    both(step, "record_downtime", sqlite, pg, |s| async move {
                        s.record_downtime(window).await
                    })
                    .await;
                }
            }
            17 => {
                let update = match rng.below(3) {
                    0 => InstallationUpdate::Consent(rng.below(2) == 0),
                    1 => InstallationUpdate::Subscription(Some(
                        now.saturating_add(Duration::from_secs(3600)),
                    )),
                    _ => {
                        InstallationUpdate::Product(Product::new("Husky", "M50").expect("product"))
                    }
                };
                let target = slc(1 + rng.below(SITES + 1)); // sometimes one that does not exist
                both(step, "update_installation", sqlite, pg, |s| {
                    let (target, update) = (target.clone(), update.clone());
                    async move { s.update_installation(&target, &update, now).await }
                })
                .await;
            }
            _ => {
                let query = OverviewQuery {
                    include_healthy: rng.below(2) == 0,
                    page_size: u32::try_from(1 + rng.below(4)).expect("small"),
                    after: None,
                    ..OverviewQuery::default()
                };
                let reseller = resellers[usize::try_from(rng.below(2)).expect("0 or 1")].clone();
                let mut page = both(step, "overview", sqlite, pg, |s| {
                    let (reseller, query) = (reseller.clone(), query.clone());
                    async move { s.overview(&reseller, &query).await }
                })
                .await;
                while let Some(next) = page.as_ref().and_then(|p| p.next.clone()) {
                    let query = OverviewQuery {
                        after: Some(next),
                        ..query.clone()
                    };
                    page = both(step, "overview page", sqlite, pg, |s| {
                        let (reseller, query) = (reseller.clone(), query.clone());
                        async move { s.overview(&reseller, &query).await }
                    })
                    .await;
                }
                let site = slc(1 + rng.below(SITES));
                both(step, "installation_detail", sqlite, pg, |s| {
                    let (reseller, site) = (reseller.clone(), site.clone());
                    async move { s.installation_detail(&reseller, &site, 20).await }
                })
                .await;
            }
        }
    }
    // Everything, at the end.
    for reseller in &resellers {
        for n in 1..=SITES {
            both(9999, "final detail", sqlite, pg, |s| {
                let reseller = reseller.clone();
                async move { s.installation_detail(&reseller, &slc(n), 1000).await }
            })
            .await;
        }
    }
    // Every server of every site (and of a site and a server that do not
    // exist), with the active key id and two never issued, in one batch.
    let queries: Vec<AdmissionQuery> = (1..=SITES + 1)
        .flat_map(|n| (1..=SERVERS + 1).map(move |server| (n, server)))
        .flat_map(|(n, server)| {
            (1..=3).map(move |key| AdmissionQuery {
                slc: slc(n),
                server: rs(server),
                key: KeyId::new(key),
            })
        })
        .collect();
    both(9999, "final admissions", sqlite, pg, |s| {
        let queries = queries.clone();
        async move { admissions(s, &queries).await }
    })
    .await;
    both(9999, "downtime", sqlite, pg, |s| async move {
        s.downtime(Timestamp::EPOCH).await.map(|log| log.windows)
    })
    .await;
    both(9999, "the change feed", sqlite, pg, |s| async move {
        s.changes(carewatch_core::feed::EventId(0), 1_000_000).await
    })
    .await;
    both(9999, "resellers", sqlite, pg, |s| async move {
        s.resellers().await
    })
    .await;
}
