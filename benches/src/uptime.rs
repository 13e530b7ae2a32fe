//! The uptime report benchmark's population (issue 18): one reseller's
//! installations with a realistic history of outages, written through the
//! public [`Store`] API exactly as the product writes it.
//!
//! Every recording server is first heard from at the history's start and
//! then has, per 30 days, 0 to 4 outages of its own (2 on average, 3
//! minutes to 2 hours, a few of 6 hours), each written as the product
//! writes one: its last heartbeat, the sweeper's verdict three intervals
//! later (`BecameUnavailable` and a `SERVER_UNAVAILABLE` condition), and
//! the message that ends it (`Recovered`, the condition resolved). One
//! installation in 20 also loses its site link once a month (every server
//! out at once), the first server of each reports a full drive once a
//! month (a condition opened and resolved), and one server in 100 is still
//! out at the end. Carewatch itself was down three times a month for a few
//! minutes, and the reseller has a weekly maintenance window for all its
//! installations plus a one-off window for one installation in ten.

use std::time::Duration;

use carewatch_core::auth::{MessageDigest, SequenceCursor, TokenHash};
use carewatch_core::availability::{Availability, DowntimeWindow};
use carewatch_core::catalogue::ConditionCode;
use carewatch_core::condition::{ReportedCondition, StatusSnapshot};
use carewatch_core::ids::{RecordingServerId, ResellerId, Slc};
use carewatch_core::installation::{Installation, Product};
use carewatch_core::notification::maintenance::{MaintenanceWindow, WindowId};
use carewatch_core::store::{AvailabilityChange, Reseller, SignOfLife, StatusWrite, Store};
use carewatch_core::team::Login;
use carewatch_core::time::Timestamp;
use carewatch_core::{Error, Result};
use futures::{StreamExt, TryStreamExt, stream};

use crate::rng::SplitMix64;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;
/// The heartbeat interval every server keeps.
const INTERVAL: Duration = Duration::from_secs(60);
/// Signs of life per `record_signs_of_life` call.
const SIGNS_PER_BATCH: usize = 1_000;
/// Availability changes per `apply_availability` call.
const CHANGES_PER_BATCH: usize = 1_000;
/// Store calls seeding keeps in flight.
const CONCURRENT_WRITES: usize = 8;
/// No two episodes of one server come closer than this.
const GAP_MS: i64 = 10 * MINUTE_MS;

/// One stretch of a server's life that writes history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Episode {
    /// Last heard from at `last`, unavailable three intervals later, back
    /// at `back` (`None`: still out at the end).
    Outage {
        last: Timestamp,
        back: Option<Timestamp>,
    },
    /// A full drive reported at `open`, cleared at `resolve`.
    Condition { open: Timestamp, resolve: Timestamp },
}

impl Episode {
    fn span(&self, end: Timestamp) -> (i64, i64) {
        match *self {
            Self::Outage { last, back } => (last.as_millis(), back.unwrap_or(end).as_millis()),
            Self::Condition { open, resolve } => (open.as_millis(), resolve.as_millis()),
        }
    }
}

/// One seeded installation.
#[derive(Debug, Clone)]
pub struct UptimeInstallation {
    /// Its SLC.
    pub slc: Slc,
    /// Its recording servers.
    pub servers: Vec<RecordingServerId>,
    /// Each server's episodes, in time order.
    episodes: Vec<Vec<Episode>>,
}

/// What seeding wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeedCounts {
    /// Signs of life (heartbeats and recoveries).
    pub signs: usize,
    /// Servers that became unavailable.
    pub outages: usize,
    /// Status reports.
    pub reports: usize,
}

/// A reseller's installations and their history from `start` to `end`.
#[derive(Debug, Clone)]
pub struct UptimeFleet {
    /// The reseller.
    pub reseller: ResellerId,
    /// Its installations, by SLC.
    pub installations: Vec<UptimeInstallation>,
    /// When every server was first heard from.
    pub start: Timestamp,
    /// The end of the history.
    pub end: Timestamp,
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// Keeps the episodes that do not come within [`GAP_MS`] of an earlier
/// kept one (by start), in time order.
fn without_overlaps(mut episodes: Vec<Episode>, end: Timestamp) -> Vec<Episode> {
    episodes.sort_by_key(|e| e.span(end));
    let mut kept: Vec<Episode> = Vec::with_capacity(episodes.len());
    let mut free_from = i64::MIN;
    for e in episodes {
        let (from, to) = e.span(end);
        if from >= free_from {
            free_from = to.saturating_add(GAP_MS);
            kept.push(e);
        }
    }
    kept
}

impl UptimeFleet {
    /// `installations` installations (SLCs `UP-000000` …) of `servers`
    /// recording servers each, with a history from `start` to `end`,
    /// generated from a fixed seed.
    pub fn generate(
        installations: usize,
        servers: usize,
        start: Timestamp,
        end: Timestamp,
    ) -> Self {
        let mut rng = SplitMix64::new(0x0018_u64 << 32 | 0x5EED);
        let (from, to) = (start.as_millis(), end.as_millis());
        let span = (to - from).max(DAY_MS);
        let months = (span / (30 * DAY_MS)).max(1);
        // Outages need an hour of history before the end to begin in.
        let latest =
            |rng: &mut SplitMix64, room: i64| from + GAP_MS + rng.below((span - room).max(1));
        let installations = (0..installations)
            .map(|index| {
                let slc = Slc::new(&format!("UP-{index:06}")).expect("valid bench SLC");
                let ids: Vec<RecordingServerId> = (0..servers)
                    .map(|position| {
                        RecordingServerId::new(&format!("rs-{position}"))
                            .expect("valid bench server id")
                    })
                    .collect();
                // The site's link: every server out at once, once a month.
                let site_outages: Vec<(i64, i64)> = if index % 20 == 7 {
                    (0..months)
                        .map(|_| {
                            let length = (10 + rng.below(170)) * MINUTE_MS;
                            let last = latest(&mut rng, length + 2 * GAP_MS);
                            (last, last + length)
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                let episodes = (0..servers)
                    .map(|position| {
                        let mut mine: Vec<Episode> = site_outages
                            .iter()
                            .map(|&(last, back)| Episode::Outage {
                                last: at(last),
                                // The servers come back a few seconds apart.
                                back: Some(at(back + 1000 * position as i64)),
                            })
                            .collect();
                        for _ in 0..months {
                            for _ in 0..rng.below(5) {
                                let minutes = if rng.below(20) == 0 {
                                    360
                                } else {
                                    3 + rng.below(118)
                                };
                                let length = minutes * MINUTE_MS;
                                let last = latest(&mut rng, length + 2 * GAP_MS);
                                mine.push(Episode::Outage {
                                    last: at(last),
                                    back: Some(at(last + length)),
                                });
                            }
                            if position == 0 {
                                let length = (10 + rng.below(590)) * MINUTE_MS;
                                let open = latest(&mut rng, length + 2 * GAP_MS);
                                mine.push(Episode::Condition {
                                    open: at(open),
                                    resolve: at(open + length),
                                });
                            }
                        }
                        // One server in 100 goes silent near the end for good.
                        if (index * servers + position) % 100 == 42 {
                            let last = to - (2 + rng.below(48)) * 3_600_000;
                            mine.push(Episode::Outage {
                                last: at(last),
                                back: None,
                            });
                        }
                        let mut kept = without_overlaps(mine, end);
                        // A silent server never reports again.
                        if let Some(pos) = kept
                            .iter()
                            .position(|e| matches!(e, Episode::Outage { back: None, .. }))
                        {
                            kept.truncate(pos + 1);
                        }
                        kept
                    })
                    .collect();
                UptimeInstallation {
                    slc,
                    servers: ids,
                    episodes,
                }
            })
            .collect();
        Self {
            reseller: ResellerId::new("uptime-bench").expect("valid bench reseller id"),
            installations,
            start,
            end,
        }
    }

    /// Recording servers in the fleet.
    pub fn server_count(&self) -> usize {
        self.installations.iter().map(|i| i.servers.len()).sum()
    }

    /// Carewatch's own downtime: three windows of 2 to 10 minutes per 30
    /// days, at fixed offsets.
    pub fn own_downtime(&self) -> Vec<DowntimeWindow> {
        let mut rng = SplitMix64::new(0xD0D0);
        let (from, to) = (self.start.as_millis(), self.end.as_millis());
        let windows = 3 * ((to - from) / (30 * DAY_MS)).max(1);
        (0..windows)
            .map(|k| {
                let start = from + (k + 1) * (to - from) / (windows + 1) + rng.below(3_600_000);
                let length = (2 + rng.below(9)) * MINUTE_MS;
                DowntimeWindow::new(at(start), at(start + length)).expect("a window")
            })
            .collect()
    }

    /// The reseller's maintenance windows: Sundays 02:00–03:00 for every
    /// installation, from before the history, and a one-off two hours for
    /// one installation in ten.
    pub fn maintenance(&self) -> Vec<MaintenanceWindow> {
        let login = Login::new("admin@uptime-bench.example").expect("valid login");
        // 2026-09-06 was a Sunday.
        let sunday = Timestamp::parse_utc("2026-09-06T02:00").expect("a time");
        let mut rng = SplitMix64::new(0x3A17);
        let mut windows = vec![MaintenanceWindow {
            id: WindowId::generate(),
            reseller: self.reseller.clone(),
            slc: None,
            starts_at: sunday,
            length: Duration::from_secs(3600),
            every: Some(Duration::from_secs(7 * 86_400)),
            reason: "weekly updates".into(),
            created_by: login.clone(),
            created_at: sunday,
            deleted_at: None,
        }];
        let span = self.end.as_millis() - self.start.as_millis();
        for installation in self.installations.iter().step_by(10) {
            let starts_at = at(self.start.as_millis() + rng.below(span));
            windows.push(MaintenanceWindow {
                id: WindowId::generate(),
                reseller: self.reseller.clone(),
                slc: Some(installation.slc.clone()),
                starts_at,
                length: Duration::from_secs(2 * 3600),
                every: None,
                reason: "drive swap".into(),
                created_by: login.clone(),
                created_at: self.start,
                deleted_at: None,
            });
        }
        windows
    }

    /// Writes everything into an empty store: the reseller, its
    /// installations, every server's first heartbeat at the start, own
    /// downtime, maintenance windows, then each server's episodes in time
    /// order (the k-th episode of every server together: last heartbeats,
    /// verdicts and reports, then recoveries and cleared reports).
    pub async fn seed(&self, store: &dyn Store) -> Result<SeedCounts> {
        let reseller = Reseller {
            id: self.reseller.clone(),
            name: "Uptime Bench Security".into(),
            created_at: self.start,
        };
        let token = TokenHash::from_slice(&[0x18; 32]).expect("32 bytes");
        store.create_reseller(&reseller, &token).await?;
        let product = Product::new("XProtect Corporate", "2016 R3").expect("valid product");
        stream::iter(&self.installations)
            .map(Ok)
            .try_for_each_concurrent(CONCURRENT_WRITES, |i| {
                let installation = Installation {
                    slc: i.slc.clone(),
                    reseller: self.reseller.clone(),
                    product: product.clone(),
                    subscription_expires_at: Some(at(self.end.as_millis() + 365 * DAY_MS)),
                    consent: true,
                    registered_at: self.start,
                };
                async move { store.register_installation(&installation).await }
            })
            .await?;
        for window in self.own_downtime() {
            store.record_downtime(window).await?;
        }
        for window in self.maintenance() {
            store.create_maintenance(&window).await?;
        }

        let mut counts = SeedCounts::default();
        // Sequence numbers per (installation, server): the next to use.
        let mut sequences: Vec<Vec<u64>> = self
            .installations
            .iter()
            .map(|i| vec![1; i.servers.len()])
            .collect();
        let first: Vec<SignOfLife> = self
            .installations
            .iter()
            .enumerate()
            .flat_map(|(n, i)| {
                i.servers
                    .iter()
                    .enumerate()
                    .map(move |(s, server)| (n, s, &i.slc, server))
            })
            .map(|(n, s, slc, server)| sign(slc, server, next(&mut sequences, n, s), self.start, 0))
            .collect();
        counts.signs += self.write_signs(store, &first).await?;

        let epoch = store.downtime(Timestamp::EPOCH).await?.epoch;
        let rounds = self
            .installations
            .iter()
            .flat_map(|i| i.episodes.iter().map(Vec::len))
            .max()
            .unwrap_or(0);
        for round in 0..rounds {
            let (mut before, mut changes, mut after) = (Vec::new(), Vec::new(), Vec::new());
            let (mut opened, mut cleared) = (Vec::new(), Vec::new());
            for (n, i) in self.installations.iter().enumerate() {
                for (s, server) in i.servers.iter().enumerate() {
                    let Some(episode) = i.episodes[s].get(round) else {
                        continue;
                    };
                    match *episode {
                        Episode::Outage { last, back } => {
                            before.push(sign(&i.slc, server, next(&mut sequences, n, s), last, 0));
                            let since = last.saturating_add(3 * INTERVAL);
                            changes.push(AvailabilityChange {
                                slc: i.slc.clone(),
                                server: server.clone(),
                                expected_last_seen: last,
                                availability: Availability::Unavailable { since, missed: 3 },
                                next_check_at: None,
                                evaluated_at: since,
                            });
                            if let Some(back) = back {
                                let missed = u32::try_from(back.since(last).as_secs() / 60)
                                    .unwrap_or(u32::MAX);
                                after.push(sign(
                                    &i.slc,
                                    server,
                                    next(&mut sequences, n, s),
                                    back,
                                    missed,
                                ));
                            }
                        }
                        Episode::Condition { open, resolve } => {
                            opened.push(StatusWrite {
                                sign: sign(&i.slc, server, next(&mut sequences, n, s), open, 0),
                                snapshot: full_drive(),
                            });
                            cleared.push(StatusWrite {
                                sign: sign(&i.slc, server, next(&mut sequences, n, s), resolve, 0),
                                snapshot: StatusSnapshot::new(Vec::new()).expect("empty"),
                            });
                        }
                    }
                }
            }
            counts.signs += self.write_signs(store, &before).await?;
            counts.reports += write_reports(store, &opened).await?;
            for batch in changes.chunks(CHANGES_PER_BATCH) {
                store.apply_availability(batch, epoch).await?;
            }
            counts.outages += changes.len();
            counts.signs += self.write_signs(store, &after).await?;
            counts.reports += write_reports(store, &cleared).await?;
        }
        Ok(counts)
    }

    async fn write_signs(&self, store: &dyn Store, signs: &[SignOfLife]) -> Result<usize> {
        stream::iter(signs.chunks(SIGNS_PER_BATCH))
            .map(Ok)
            .try_for_each_concurrent(CONCURRENT_WRITES, |batch| async move {
                let outcomes = store.record_signs_of_life(batch).await?;
                match outcomes
                    .iter()
                    .position(|o| !matches!(o, carewatch_core::store::WriteOutcome::Applied(_)))
                {
                    Some(k) => Err(Error::storage(
                        "seeding",
                        format!("sign of life {:?} not applied: {:?}", batch[k], outcomes[k]),
                    )),
                    None => Ok(()),
                }
            })
            .await?;
        Ok(signs.len())
    }
}

fn next(sequences: &mut [Vec<u64>], installation: usize, server: usize) -> u64 {
    let sequence = sequences[installation][server];
    sequences[installation][server] += 1;
    sequence
}

async fn write_reports(store: &dyn Store, reports: &[StatusWrite]) -> Result<usize> {
    stream::iter(reports)
        .map(Ok)
        .try_for_each_concurrent(CONCURRENT_WRITES, |report| async move {
            store.apply_status_report(report).await.map(drop)
        })
        .await?;
    Ok(reports.len())
}

fn full_drive() -> StatusSnapshot {
    let condition = ReportedCondition::new(ConditionCode::StorageFull, "D:", "100% used")
        .expect("valid condition");
    StatusSnapshot::new(vec![condition]).expect("valid snapshot")
}

/// A message's sign of life, as ingest builds it (`missed`: heartbeats
/// missed before it, for a recovery).
fn sign(
    slc: &Slc,
    server: &RecordingServerId,
    sequence: u64,
    received_at: Timestamp,
    missed: u32,
) -> SignOfLife {
    SignOfLife {
        slc: slc.clone(),
        server: server.clone(),
        cursor: SequenceCursor {
            sequence,
            digest: MessageDigest::sha256(&sequence.to_be_bytes()),
        },
        received_at,
        interval: INTERVAL,
        next_check_at: received_at.saturating_add(INTERVAL + Duration::from_secs(2)),
        missed_before: missed,
        remembered: None,
    }
}
