//! One reseller's fleet for the storage and scale benchmarks, seeded into a store.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use carewatch_core::ConditionCode;
use carewatch_core::Result;
use carewatch_core::auth::{MessageDigest, SequenceCursor, TokenHash};
use carewatch_core::availability::{self, Availability, AvailabilityPolicy, Downtime};
use carewatch_core::condition::{ReportedCondition, StatusSnapshot};
use carewatch_core::ids::{RecordingServerId, ResellerId, Slc};
use carewatch_core::installation::{Installation, Product};
use carewatch_core::store::{
    AvailabilityChange, Reseller, SignOfLife, StatusWrite, Store, WriteOutcome,
};
use carewatch_core::time::Timestamp;
use futures::{StreamExt, TryStreamExt, stream};

/// The interval every seeded server keeps (the service's default).
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(60);

/// When the fleet was registered and its healthy servers last heard from.
const SEEDED_AT: Timestamp = Timestamp::from_millis(1_767_225_600_000);
/// How long before the seeding time the servers that are now unavailable were
/// last heard from: more than three intervals.
const SILENT_FOR: Duration = Duration::from_secs(5 * 60);
/// How long the seeded Care Plus subscriptions run.
const ONE_YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
/// Servers per installation, cycled: 10 on average, as small and large sites mix.
const SERVERS_PER_INSTALLATION: [usize; 5] = [2, 4, 8, 12, 24];
/// Store calls seeding keeps in flight: PostgreSQL runs them in parallel,
/// SQLite queues them on its single writer.
const CONCURRENT_WRITES: usize = 8;
/// Installations per seeding batch of heartbeats (about 1,000 recording servers).
const INSTALLATIONS_PER_BATCH: usize = 100;
/// Availability changes per seeding batch.
const AVAILABILITY_CHANGES_PER_BATCH: usize = 1_000;
/// The sequence number of every server's first heartbeat.
const FIRST_HEARTBEAT: u64 = 1;
/// The sequence number of the seeded status reports; [`MessageSource`]
/// continues after it.
const CONDITION_REPORT: u64 = 2;

/// What a seeded installation shows its reseller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeededHealth {
    /// Every server available, nothing reported.
    Healthy,
    /// Its first server reports an unreachable camera (a warning).
    Attention,
    /// Its first server reports a full recording drive (critical).
    CriticalCondition,
    /// Its first server missed three heartbeats; the others are fine.
    OneServerDown,
    /// Every server missed three heartbeats: the site looks unreachable.
    Offline,
}

impl SeededHealth {
    /// Per thousand installations: 20 Attention, 15 critical conditions,
    /// 10 with one server down and 5 Offline, so 5 % need attention.
    fn of_installation(index: usize) -> Self {
        match index % 1000 {
            0..20 => Self::Attention,
            20..35 => Self::CriticalCondition,
            35..45 => Self::OneServerDown,
            45..50 => Self::Offline,
            _ => Self::Healthy,
        }
    }

    /// Whether the server at `position` within its installation is seeded unavailable.
    fn is_down(self, position: usize) -> bool {
        match self {
            Self::Offline => true,
            Self::OneServerDown => position == 0,
            _ => false,
        }
    }
}

/// One seeded installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededInstallation {
    /// Its SLC.
    pub slc: Slc,
    /// Its recording servers; the first one is the one with a condition or
    /// down, if any.
    pub servers: Vec<RecordingServerId>,
    /// What it shows once seeded.
    pub health: SeededHealth,
}

impl SeededInstallation {
    /// Its servers not seeded unavailable, with its SLC.
    pub fn live_servers(&self) -> impl Iterator<Item = (&Slc, &RecordingServerId)> {
        self.servers
            .iter()
            .enumerate()
            .filter(|&(position, _)| !self.health.is_down(position))
            .map(|(_, server)| (&self.slc, server))
    }
}

/// A reseller with its installations, generated deterministically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    /// The reseller that registered every installation.
    pub reseller: ResellerId,
    /// Its installations, by SLC.
    pub installations: Vec<SeededInstallation>,
}

/// What the Attention installations' first server reports: one camera
/// unreachable.
pub fn camera_unreachable() -> StatusSnapshot {
    snapshot(&[(
        ConditionCode::CameraUnreachable,
        "Camera 7",
        "no response for 30 s",
    )])
}

/// [`camera_unreachable`] plus a license overuse: the installation stays
/// Attention (both are warnings), but a condition opens or resolves.
pub fn camera_unreachable_and_license_overuse() -> StatusSnapshot {
    snapshot(&[
        (
            ConditionCode::CameraUnreachable,
            "Camera 7",
            "no response for 30 s",
        ),
        (
            ConditionCode::LicenseOveruse,
            "camera licenses",
            "26 cameras installed, 24 licensed",
        ),
    ])
}

fn storage_full() -> StatusSnapshot {
    snapshot(&[(
        ConditionCode::StorageFull,
        "D:\\Recordings",
        "the drive is full: recording stopped",
    )])
}

fn snapshot(conditions: &[(ConditionCode, &str, &str)]) -> StatusSnapshot {
    let conditions = conditions
        .iter()
        .map(|(code, subject, detail)| ReportedCondition::new(code.clone(), subject, detail))
        .collect::<Result<Vec<_>>>()
        .expect("valid bench conditions");
    StatusSnapshot::new(conditions).expect("valid bench snapshot")
}

impl Fleet {
    /// `installations` installations (SLCs `CW-000000`, `CW-000001` …) of
    /// reseller `bench-reseller`, with 10 recording servers each on average
    /// and the health mix of [`SeededHealth`].
    pub fn generate(installations: usize) -> Self {
        let installations = (0..installations)
            .map(|index| {
                let slc = Slc::new(&format!("CW-{index:06}")).expect("valid bench SLC");
                let servers = (0..SERVERS_PER_INSTALLATION[index % SERVERS_PER_INSTALLATION.len()])
                    .map(|position| {
                        // GUID-shaped, as XProtect recording servers are named.
                        RecordingServerId::new(&format!(
                            "{{{index:08X}-0000-4000-8000-{position:012X}}}"
                        ))
                        .expect("valid bench server id")
                    })
                    .collect();
                SeededInstallation {
                    slc,
                    servers,
                    health: SeededHealth::of_installation(index),
                }
            })
            .collect();
        Self {
            reseller: ResellerId::new("bench-reseller").expect("valid bench reseller id"),
            installations,
        }
    }

    /// Recording servers in the fleet.
    pub fn server_count(&self) -> usize {
        self.installations.iter().map(|i| i.servers.len()).sum()
    }

    /// Installations seeded with `health`.
    pub fn installations_with(
        &self,
        health: SeededHealth,
    ) -> impl Iterator<Item = &SeededInstallation> {
        self.installations
            .iter()
            .filter(move |i| i.health == health)
    }

    /// Every server of the installations seeded with `health`, in fleet order.
    pub fn servers_with(&self, health: SeededHealth) -> Vec<(&Slc, &RecordingServerId)> {
        self.installations_with(health)
            .flat_map(|i| i.servers.iter().map(move |server| (&i.slc, server)))
            .collect()
    }

    /// Writes the fleet into an empty store through the store's own API (so
    /// every row is as the product writes it), batched where the API allows:
    /// the reseller, every installation (one call each: the store has no bulk
    /// registration), a first heartbeat of every server in batches of about
    /// 1,000, the conditions' status reports, and the unavailable servers in
    /// batches of availability changes.
    pub async fn seed(&self, store: &dyn Store) -> Result<()> {
        let token = TokenHash::from_slice(&[0x5A; 32]).expect("32 bytes");
        self.seed_at(store, &token, SEEDED_AT).await
    }

    /// [`Fleet::seed`] as of `at` (registrations, heartbeats and outages are
    /// stamped relative to it), with the reseller's token hash `token`, so a
    /// real server can be asked for the fleet's overview with that token.
    pub async fn seed_at(&self, store: &dyn Store, token: &TokenHash, at: Timestamp) -> Result<()> {
        let reseller = Reseller {
            id: self.reseller.clone(),
            name: "Bench Security".into(),
            created_at: at,
        };
        store.create_reseller(&reseller, token).await?;
        let mut phase = Phase::start();
        self.register_installations(store, at).await?;
        phase.done("installations registered");
        self.send_first_heartbeats(store, at).await?;
        phase.done("first heartbeats (new servers)");
        self.report_conditions(store, at).await?;
        phase.done("status reports with conditions");
        self.take_servers_down(store, at).await?;
        phase.done("servers taken down");
        Ok(())
    }

    /// A heartbeat with sequence number `sequence` from every server that is
    /// not seeded unavailable, received at `now()` (read once per batch of
    /// about 1,000), batched as seeding does, each acknowledged with
    /// `interval` (so the server is next due for an availability check
    /// `interval` plus the jitter tolerance later). The fleet then looks as if
    /// it had been reporting until now; `sequence` must exceed every earlier
    /// one (seeding uses 1 and 2). Returns how many were applied: all
    /// [`Fleet::live_server_count`] of them unless `sequence` was too low.
    pub async fn heartbeat(
        &self,
        store: &dyn Store,
        sequence: u64,
        interval: Duration,
        now: &(dyn Fn() -> Timestamp + Sync),
    ) -> Result<usize> {
        let applied = AtomicUsize::new(0);
        let applied_ref = &applied;
        stream::iter(self.installations.chunks(INSTALLATIONS_PER_BATCH))
            .map(Ok)
            .try_for_each_concurrent(CONCURRENT_WRITES, |chunk| async move {
                let at = now();
                let batch: Vec<SignOfLife> = chunk
                    .iter()
                    .flat_map(|installation| installation.live_servers())
                    .map(|(slc, server)| sign_of_life(slc, server, sequence, at, interval))
                    .collect();
                let outcomes = store.record_signs_of_life(&batch).await?;
                let n = outcomes
                    .iter()
                    .filter(|o| matches!(o, WriteOutcome::Applied(_)))
                    .count();
                applied_ref.fetch_add(n, Ordering::Relaxed);
                Ok(())
            })
            .await?;
        Ok(applied.into_inner())
    }

    /// Servers not seeded unavailable: the ones [`Fleet::heartbeat`] writes.
    /// Every live server heard from now, with a sequence later than any
    /// earlier (the clock's milliseconds), due again after `interval`; an
    /// error unless every heartbeat was applied.
    pub async fn refresh(
        &self,
        store: &dyn Store,
        interval: Duration,
    ) -> std::result::Result<(), crate::server::BoxError> {
        use carewatch_core::time::{Clock as _, SystemClock};
        let sequence = u64::try_from(SystemClock.now().as_millis())?;
        let applied = self
            .heartbeat(store, sequence, interval, &|| SystemClock.now())
            .await?;
        if applied != self.live_server_count() {
            return Err(format!(
                "only {applied} of {} refresh heartbeats were applied",
                self.live_server_count()
            )
            .into());
        }
        Ok(())
    }

    pub fn live_server_count(&self) -> usize {
        self.installations
            .iter()
            .map(|i| i.live_servers().count())
            .sum()
    }

    async fn register_installations(&self, store: &dyn Store, at: Timestamp) -> Result<()> {
        stream::iter(&self.installations)
            .map(Ok)
            .try_for_each_concurrent(CONCURRENT_WRITES, |installation| {
                let registration = self.registration(installation, at);
                async move { store.register_installation(&registration).await }
            })
            .await
    }

    async fn send_first_heartbeats(&self, store: &dyn Store, at: Timestamp) -> Result<()> {
        // Batches hold whole installations, so no two lock the same one.
        stream::iter(self.installations.chunks(INSTALLATIONS_PER_BATCH))
            .map(Ok)
            .try_for_each_concurrent(CONCURRENT_WRITES, |chunk| async move {
                let batch: Vec<SignOfLife> = chunk
                    .iter()
                    .flat_map(|installation| first_heartbeats(installation, at))
                    .collect();
                store.record_signs_of_life(&batch).await.map(drop)
            })
            .await
    }

    async fn report_conditions(&self, store: &dyn Store, at: Timestamp) -> Result<()> {
        let reports: Vec<StatusWrite> = self
            .installations
            .iter()
            .filter_map(|installation| {
                let snapshot = match installation.health {
                    SeededHealth::Attention => camera_unreachable(),
                    SeededHealth::CriticalCondition => storage_full(),
                    _ => return None,
                };
                let reporter = &installation.servers[0];
                let sign = sign_of_life(
                    &installation.slc,
                    reporter,
                    CONDITION_REPORT,
                    at,
                    HEARTBEAT_INTERVAL,
                );
                Some(StatusWrite { sign, snapshot })
            })
            .collect();
        stream::iter(&reports)
            .map(Ok)
            .try_for_each_concurrent(CONCURRENT_WRITES, |report| async move {
                store.apply_status_report(report).await.map(drop)
            })
            .await
    }

    async fn take_servers_down(&self, store: &dyn Store, at: Timestamp) -> Result<()> {
        let outages: Vec<AvailabilityChange> = self
            .installations
            .iter()
            .flat_map(|installation| {
                installation
                    .servers
                    .iter()
                    .enumerate()
                    .filter(|&(position, _)| installation.health.is_down(position))
                    .map(|(_, server)| went_unavailable(&installation.slc, server, at))
            })
            .collect();
        let epoch = store.downtime(Timestamp::EPOCH).await?.epoch;
        for batch in outages.chunks(AVAILABILITY_CHANGES_PER_BATCH) {
            store.apply_availability(batch, epoch).await?;
        }
        Ok(())
    }

    fn registration(&self, installation: &SeededInstallation, at: Timestamp) -> Installation {
        Installation {
            slc: installation.slc.clone(),
            reseller: self.reseller.clone(),
            product: Product::new("XProtect Corporate", "2016 R3").expect("valid bench product"),
            subscription_expires_at: Some(at.saturating_add(ONE_YEAR)),
            consent: true,
            registered_at: at,
        }
    }
}

/// Sequence 1 from every server of `installation`; the ones that will go
/// down fell silent earlier.
fn first_heartbeats(
    installation: &SeededInstallation,
    at: Timestamp,
) -> impl Iterator<Item = SignOfLife> + '_ {
    installation
        .servers
        .iter()
        .enumerate()
        .map(move |(position, server)| {
            let heard_at = if installation.health.is_down(position) {
                at.saturating_sub(SILENT_FOR)
            } else {
                at
            };
            sign_of_life(
                &installation.slc,
                server,
                FIRST_HEARTBEAT,
                heard_at,
                HEARTBEAT_INTERVAL,
            )
        })
}

/// What the sweeper writes when a server silent since [`SILENT_FOR`] before
/// the seeding time `at` missed its third heartbeat.
fn went_unavailable(slc: &Slc, server: &RecordingServerId, at: Timestamp) -> AvailabilityChange {
    let went_silent_at = at.saturating_sub(SILENT_FOR);
    let since = went_silent_at.saturating_add(3 * HEARTBEAT_INTERVAL);
    AvailabilityChange {
        slc: slc.clone(),
        server: server.clone(),
        expected_last_seen: went_silent_at,
        availability: Availability::Unavailable { since, missed: 3 },
        next_check_at: None,
        evaluated_at: since,
    }
}

/// A message's sign of life, built as ingest builds it for a server that was
/// available and keeps `interval`: the next check is when its next heartbeat
/// becomes overdue.
fn sign_of_life(
    slc: &Slc,
    server: &RecordingServerId,
    sequence: u64,
    received_at: Timestamp,
    interval: Duration,
) -> SignOfLife {
    let next_check_at = availability::evaluate(
        Some(received_at),
        interval,
        &AvailabilityPolicy::default(),
        &Downtime::default(),
        received_at,
    )
    .next_change_at
    .unwrap_or(received_at);
    SignOfLife {
        slc: slc.clone(),
        server: server.clone(),
        cursor: SequenceCursor {
            sequence,
            // Distinct per message, as ingest's digest of the envelope is.
            digest: MessageDigest::sha256(&sequence.to_be_bytes()),
        },
        received_at,
        interval,
        next_check_at,
        missed_before: 0,
        remembered: None,
    }
}

/// New messages for seeded servers: each has a higher sequence number and a
/// later receive time than every message before it (seeding included), so a
/// store applies it rather than calling it a duplicate or stale.
#[derive(Debug, Clone)]
pub struct MessageSource {
    next_sequence: u64,
    next_received_at: Timestamp,
}

impl MessageSource {
    /// Messages following a [`Fleet::seed`].
    pub fn after_seeding() -> Self {
        Self {
            next_sequence: CONDITION_REPORT + 1,
            next_received_at: SEEDED_AT.saturating_add(Duration::from_secs(1)),
        }
    }

    /// The next heartbeat's sign of life from `server`.
    pub fn heartbeat(&mut self, slc: &Slc, server: &RecordingServerId) -> SignOfLife {
        let sign = sign_of_life(
            slc,
            server,
            self.next_sequence,
            self.next_received_at,
            HEARTBEAT_INTERVAL,
        );
        self.next_sequence += 1;
        self.next_received_at = self
            .next_received_at
            .saturating_add(Duration::from_millis(1));
        sign
    }

    /// The next status report from `server`, carrying `snapshot`.
    pub fn status_report(
        &mut self,
        slc: &Slc,
        server: &RecordingServerId,
        snapshot: StatusSnapshot,
    ) -> StatusWrite {
        // A status report is also a sign of life, with the same sequence rule.
        StatusWrite {
            sign: self.heartbeat(slc, server),
            snapshot,
        }
    }
}

/// Seeding's phases, each timed on standard error (where a slow seed spends
/// its time).
struct Phase(std::time::Instant);

impl Phase {
    fn start() -> Self {
        Self(std::time::Instant::now())
    }

    fn done(&mut self, what: &str) {
        eprintln!("seeding: {what} in {:.1} s", self.0.elapsed().as_secs_f64());
        self.0 = std::time::Instant::now();
    }
}
