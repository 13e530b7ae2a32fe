//! The records the [`Store`](super::Store) reads and writes: resellers,
//! installations' servers and keys, admissions, signs of life, outcomes of
//! conditional writes, sweeps' changes, downtime and history.

use std::time::Duration;

use super::OverviewRow;
use crate::auth::SequenceCursor;
use crate::availability::{Availability, DowntimeWindow};
use crate::catalogue::ConditionCode;
use crate::condition::{ConditionRecord, StatusSnapshot};
use crate::health::{Health, HealthSummary};
use crate::ids::{RecordingServerId, ResellerId, Slc};
use crate::installation::{Installation, Product};
use crate::labels::Labels;
use crate::notification::ChannelId;
use crate::seal::{KeyId, WrappedKey};
use crate::time::Timestamp;

/// A reseller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reseller {
    /// Its id.
    pub id: ResellerId,
    /// Its display name.
    pub name: String,
    /// When it was created.
    pub created_at: Timestamp,
}

/// The operator moving an installation to another reseller (the
/// registration centre moved its SLC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The installation.
    pub slc: Slc,
    /// The reseller it goes to.
    pub to: ResellerId,
    /// When.
    pub at: Timestamp,
    /// Whether the new reseller may see what happened before the transfer
    /// (its history, uptime, feed); otherwise only the operator can.
    pub share_history: bool,
}

/// A change an operator makes to an installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallationUpdate {
    /// Care Plus ends at this instant; `None` removes the subscription.
    Subscription(Option<Timestamp>),
    /// The owner accepted (`true`) or withdrew (`false`) consent.
    Consent(bool),
    /// What the installation runs.
    Product(Product),
}

/// An installation key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// The wrapped key.
    pub wrapped: WrappedKey,
    /// When it was issued.
    pub created_at: Timestamp,
    /// When it was retired; a retired key opens nothing.
    pub retired_at: Option<Timestamp>,
}

/// A secret stored sealed under a master key, named for re-sealing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealedItem {
    /// An installation key (a retired one too).
    InstallationKey {
        /// Its installation.
        slc: Slc,
        /// Its id.
        id: KeyId,
    },
    /// A notification channel's destination and signing secret.
    Channel(ChannelId),
    /// The master-key check ([`Store::master_key_check`]).
    ///
    /// [`Store::master_key_check`]: crate::store::Store::master_key_check
    MasterKeyCheck,
}

/// Replaces a sealed value, only if it still holds `old` (a rotation never
/// overwrites what changed since it read it).
#[derive(Clone, PartialEq, Eq)]
pub struct Reseal {
    /// What to replace.
    pub item: SealedItem,
    /// The sealed bytes read.
    pub old: Vec<u8>,
    /// The same secret sealed under the current master key.
    pub new: Vec<u8>,
}

impl std::fmt::Debug for Reseal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Reseal({:?}, {} → {} bytes)",
            self.item,
            self.old.len(),
            self.new.len()
        )
    }
}

/// A recording server as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRecord {
    /// Its installation.
    pub slc: Slc,
    /// Its id.
    pub server: RecordingServerId,
    /// When Carewatch first heard from it.
    pub first_seen_at: Timestamp,
    /// When its last accepted message was received (never moves backwards).
    pub last_seen_at: Timestamp,
    /// The heartbeat interval it was told to keep.
    pub interval: Duration,
    /// Its last accepted message.
    pub cursor: SequenceCursor,
    /// Its availability as last evaluated.
    pub availability: Availability,
    /// When its availability must be evaluated again; `None` while
    /// unavailable, decommissioned, or while its installation's messages are
    /// refused.
    pub next_check_at: Option<Timestamp>,
    /// Missed heartbeats count from here rather than from `last_seen_at`
    /// when it is later: the end of a time its messages were refused
    /// (renewed Care Plus, consent given again), its grace.
    pub counted_from: Option<Timestamp>,
}

impl ServerRecord {
    /// Where missed heartbeats count from: its last message, or the end of
    /// a refusal if later.
    pub fn counted_since(&self) -> Timestamp {
        self.counted_from
            .map_or(self.last_seen_at, |from| from.max(self.last_seen_at))
    }
}

/// What ingest needs to judge one message, read in one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The installation.
    pub installation: Installation,
    /// Its active (not retired) key with the id the envelope names, if any.
    pub key: Option<WrappedKey>,
    /// The recording server, if heard from before.
    pub server: Option<ServerRecord>,
    /// The sequence cursor the server had when its installation's reported
    /// data was deleted (consent withdrawn), if it is not known now
    /// (`server` is `None`) but was then: its messages must still be newer,
    /// or one captured before the deletion could be replayed once consent
    /// is given again.
    pub deleted_server_cursor: Option<crate::auth::SequenceCursor>,
    /// The version of what admission reads of the installation (the
    /// installation's row and its keys); any change to them gives a new one.
    pub version: AdmissionVersion,
}

/// The version of an installation's admission: its row and its keys as
/// ingest reads them. The store gives a new one whenever either changes, so
/// a write made under a remembered admission can check, in the same
/// statement, that nothing it was judged on has changed since, on any node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AdmissionVersion(pub i64);

/// One message's [`Admission`] to look up: the installation, the recording
/// server and the key id its envelope names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionQuery {
    /// The installation the message claims to come from.
    pub slc: Slc,
    /// The recording server.
    pub server: RecordingServerId,
    /// The key id in its envelope.
    pub key: KeyId,
}

/// An accepted message's effect on its recording server: a sign of life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignOfLife {
    /// Installation.
    pub slc: Slc,
    /// Recording server.
    pub server: RecordingServerId,
    /// The message's sequence number and digest.
    pub cursor: SequenceCursor,
    /// When it was received (service clock).
    pub received_at: Timestamp,
    /// The interval acknowledged to the server.
    pub interval: Duration,
    /// When its availability must next be evaluated.
    pub next_check_at: Timestamp,
    /// Heartbeats missed before this message (recorded if it ends an unavailability).
    pub missed_before: u32,
    /// Set when ingest judged the message on an admission it remembered
    /// rather than read: the store then applies it only in the common case
    /// (a known, available server; a newer sequence; the installation's
    /// admission still at this version) and otherwise answers
    /// [`WriteOutcome::Readmit`], having changed nothing.
    pub remembered: Option<AdmissionVersion>,
}

/// A status report to apply: a sign of life plus the snapshot of conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusWrite {
    /// The sign of life it also is.
    pub sign: SignOfLife,
    /// The server's current conditions.
    pub snapshot: StatusSnapshot,
}

/// The effect of a write on an installation's overview line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryChange {
    /// Installation.
    pub slc: Slc,
    /// Its reseller (whose watchers hear of it).
    pub reseller: ResellerId,
    /// Health before the change.
    pub previous: Health,
    /// Summary after the change.
    pub summary: HealthSummary,
    /// When it changed.
    pub at: Timestamp,
}

/// What a conditional write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Applied; if the installation's summary changed, how.
    Applied(Option<SummaryChange>),
    /// The same sequence number and digest were applied before: nothing changed.
    Duplicate,
    /// A newer (or different) message holds this sequence number: nothing changed.
    Stale {
        /// The sequence number in the store.
        last_accepted: u64,
    },
    /// A sign judged on a remembered admission ([`SignOfLife::remembered`])
    /// that is not the common case, or whose admission has changed: nothing
    /// changed; ingest reads the admission and judges the message again.
    Readmit,
}

/// A time-driven availability change found by the sweeper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvailabilityChange {
    /// Installation.
    pub slc: Slc,
    /// Recording server.
    pub server: RecordingServerId,
    /// Applied only if the server's `last_seen_at` still equals this (no
    /// message arrived since it was evaluated).
    pub expected_last_seen: Timestamp,
    /// The new availability.
    pub availability: Availability,
    /// When to evaluate it again.
    pub next_check_at: Option<Timestamp>,
    /// When it was evaluated (the sweep's clock): the time of the change.
    pub evaluated_at: Timestamp,
}

/// Identifies the set of own-downtime windows recorded so far: it changes
/// whenever a window is recorded. A sweep's verdicts are applied only if
/// the windows they were computed with are still the latest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DowntimeEpoch(pub i64);

/// The own-downtime windows and the epoch they belong to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DowntimeLog {
    /// Windows, by start.
    pub windows: Vec<DowntimeWindow>,
    /// The epoch these windows are current for.
    pub epoch: DowntimeEpoch,
}

/// What [`Store::apply_availability`](super::Store::apply_availability) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AvailabilityOutcome {
    /// Applied; the installations whose overview line changed.
    Applied(Vec<SummaryChange>),
    /// A downtime window was recorded since the verdicts were computed:
    /// nothing was applied (evaluate again with the new windows).
    DowntimeChanged,
}

/// One entry of an installation's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEvent {
    /// When it happened.
    pub at: Timestamp,
    /// The recording server concerned.
    pub server: RecordingServerId,
    /// What happened.
    pub kind: HistoryKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryKind {
    /// A recording server reported for the first time.
    FirstSeen,
    /// A condition appeared in a snapshot.
    ConditionOpened {
        /// Its code.
        code: ConditionCode,
        /// Its subject.
        subject: String,
    },
    /// A condition disappeared from the snapshots.
    ConditionResolved {
        /// Its code.
        code: ConditionCode,
        /// Its subject.
        subject: String,
        /// How long it was open.
        open_for: Duration,
    },
    /// The server missed `missed` heartbeats in a row.
    BecameUnavailable {
        /// Heartbeats missed.
        missed: u32,
    },
    /// The server reported again.
    Recovered {
        /// How long it was unavailable.
        unavailable_for: Duration,
        /// Heartbeats it missed.
        missed: u32,
    },
    /// The reseller or the operator retired the server (removed at the
    /// site); its open conditions were resolved at the same instant.
    Decommissioned,
    /// A message came from a retired server: it counts again.
    Recommissioned {
        /// How long it was retired.
        decommissioned_for: Duration,
    },
    /// Carewatch began refusing its installation's messages (Care Plus
    /// ended, consent withdrawn): the server is not judged, and an uptime
    /// report does not count the time, until [`HistoryKind::Resumed`].
    Parked,
    /// Its installation's messages are accepted again.
    Resumed {
        /// How long they were refused.
        parked_for: Duration,
    },
}

impl HistoryKind {
    /// Its stable lower-case name, the one every interface and the history
    /// table use, e.g. `condition_opened`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::FirstSeen => "first_seen",
            Self::ConditionOpened { .. } => "condition_opened",
            Self::ConditionResolved { .. } => "condition_resolved",
            Self::BecameUnavailable { .. } => "became_unavailable",
            Self::Recovered { .. } => "recovered",
            Self::Decommissioned => "decommissioned",
            Self::Recommissioned { .. } => "recommissioned",
            Self::Parked => "parked",
            Self::Resumed { .. } => "resumed",
        }
    }
}

/// Everything about one installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationDetail {
    /// The installation.
    pub installation: Installation,
    /// Its overview line.
    pub summary: HealthSummary,
    /// Its recording servers, by id.
    pub servers: Vec<ServerRecord>,
    /// Active conditions, oldest first.
    pub active_conditions: Vec<ConditionRecord>,
    /// Recent history, newest first.
    pub history: Vec<HistoryEvent>,
    /// What the reseller calls it.
    pub labels: Labels,
}

impl InstallationDetail {
    /// The latest message from any of its servers (the overview's "last seen").
    pub fn last_seen_at(&self) -> Option<Timestamp> {
        self.servers.iter().map(|s| s.last_seen_at).max()
    }

    /// Its overview line, as [`Store::overview`](super::Store::overview) lists it.
    pub fn overview_row(&self) -> OverviewRow {
        OverviewRow {
            slc: self.installation.slc.clone(),
            product: self.installation.product.clone(),
            summary: self.summary.clone(),
            last_seen_at: self.last_seen_at(),
            labels: self.labels.clone(),
            consent: self.installation.consent,
            subscription_expires_at: self.installation.subscription_expires_at,
        }
    }
}
