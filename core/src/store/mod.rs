//! The storage contract. Backends implement [`Store`]; the facade uses it as
//! `Arc<dyn Store>`. Every behaviour here is exercised by the shared
//! conformance suite (`carewatch_core::store_conformance_tests!`).
//!
//! Rules stay in core: where a write must derive something inside its
//! transaction (the sequence rule, which conditions a snapshot opens and
//! resolves, what becoming unavailable opens, an installation's health,
//! a downtime gap, the change-feed events), the backend calls the pure
//! functions of [`rules`], [`crate::health::summarize`],
//! [`crate::liveness::gap_before`] and [`crate::feed`].

use std::fmt;

pub mod columns;
pub mod hidden_history;
pub mod limits;
mod overview;
mod records;
pub mod rules;
mod runtime;

pub use overview::{
    HealthTotals, MAX_PAGE_SIZE, MAX_SEARCH_CHARS, OverviewOrder, OverviewPage, OverviewQuery,
    OverviewRow, PageCursor,
};
pub use records::{
    Admission, AdmissionQuery, AdmissionVersion, AvailabilityChange, AvailabilityOutcome,
    DowntimeEpoch, DowntimeLog, HistoryEvent, HistoryKind, InstallationDetail, InstallationUpdate,
    Reseal, Reseller, SealedItem, ServerRecord, SignOfLife, StatusWrite, StoredKey, SummaryChange,
    Transfer, WriteOutcome,
};
pub use runtime::run_on;

use crate::audit::{AuditEntry, AuditQuery, AuditRecord};
use async_trait::async_trait;

use crate::auth::TokenHash;
use crate::availability::DowntimeWindow;
use crate::error::Result;
use crate::feed::{ChangeEvent, EventId};
use crate::ids::{RecordingServerId, ResellerId, Slc};
use crate::installation::Installation;
use crate::labels::Labels;
use crate::liveness::LivenessMark;
use crate::notification::maintenance::{MaintenanceWindow, WindowId};
use crate::notification::{
    ChannelId, ChannelRecord, Committed, DeliveryOutcome, NewOutboxEntry, NotificationState,
    NotifierCommit, NotifierMark, OutboxEntry, OutboxFilter,
};
use crate::report::{InstallationHistory, Period};
use crate::seal::{KeyId, WrappedKey};
use crate::team::{ApiTokenRecord, InvitationRecord, Login, SessionRecord, User};
use crate::time::Timestamp;

/// Storage for Carewatch. Implementations must be safe to share between tasks
/// and, for shared databases, between processes.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// This store for the reads of background work that runs on a thread
    /// and runtime of its own, at that thread's CPU priority (the
    /// notifier's, on `carewatch serve`'s low-priority notification
    /// thread); `None` when such reads must go to the server's runtime
    /// ([`run_on`]). `None` is the default: PostgreSQL's pooled connections
    /// belong to the runtime that opened them. A store given here holds
    /// nothing bound to a runtime, and its reads take nothing the server's
    /// own calls wait for (SQLite: a reader connection and turn of their
    /// own), so the scheduler holding them back holds back nothing else.
    /// Only reads are made through it.
    fn for_background_reads(&self) -> Option<std::sync::Arc<dyn Store>> {
        None
    }

    // ----- resellers and operators ---------------------------------------

    /// Creates a reseller with its token hash. `AlreadyExists` if the id is taken.
    async fn create_reseller(&self, reseller: &Reseller, token: &TokenHash) -> Result<()>;
    /// Replaces a reseller's token hash. `NotFound` if no such reseller.
    async fn set_reseller_token(&self, id: &ResellerId, token: &TokenHash) -> Result<()>;
    /// A reseller's token hash.
    async fn reseller_token(&self, id: &ResellerId) -> Result<Option<TokenHash>>;
    /// All resellers, by id.
    async fn resellers(&self) -> Result<Vec<Reseller>>;
    /// Creates or replaces an operator's token hash.
    async fn set_operator_token(&self, name: &ResellerId, token: &TokenHash) -> Result<()>;
    /// An operator's token hash.
    async fn operator_token(&self, name: &ResellerId) -> Result<Option<TokenHash>>;
    /// Whether any operator token exists.
    async fn has_operator(&self) -> Result<bool>;
    /// Stores operator `name` with `token` only if no operator exists yet,
    /// in one statement; whether it did. Of several nodes starting on a
    /// fresh database at once with the same name (`serve` always gives
    /// `admin`), one stores its token and the others none; two different
    /// names at once may both be stored on PostgreSQL.
    async fn add_first_operator(&self, name: &ResellerId, token: &TokenHash) -> Result<bool>;

    // ----- installations -------------------------------------------------

    /// Registers an SLC to a reseller with a Pending summary. `AlreadyExists`
    /// if the SLC is registered; `NotFound` if the reseller does not exist.
    async fn register_installation(&self, installation: &Installation) -> Result<()>;
    /// Changes an installation at `at` (and appends its change-feed event).
    /// A change that makes its messages refused parks its servers (not
    /// judged any more); one that makes them accepted again resumes them
    /// with [`ServerRecord::counted_from`] at `at`: the grace
    /// ([`rules::service_change`]), and makes its notification states due
    /// at `at` (a problem not told while refused is owed). Care Plus
    /// renewed gives up the installation's notices held until maintenance
    /// ends ([`crate::notification::maintenance::gives_up_held_notices`]: the notice that it
    /// ended), failed with [`crate::notification::maintenance::RENEWED_WHILE_HELD`]. `NotFound`
    /// if not registered.
    async fn update_installation(
        &self,
        slc: &Slc,
        update: &InstallationUpdate,
        at: Timestamp,
    ) -> Result<Installation>;
    /// Moves an installation to another reseller at `at`, in one
    /// transaction ([`Transfer`]): from then on the old reseller finds it
    /// nowhere (overview, detail, reports, its feed after one
    /// [`crate::feed::Change::Removed`]), and its labels, the old reseller's
    /// maintenance windows and notification states for it, and its outbox
    /// entries (pending, delivered or given up) are deleted. Unless
    /// `share_history`, what happened before `at` is hidden from the new
    /// reseller: its history, its feed events (it sees a
    /// [`crate::feed::Change::Registered`]), and report time (servers count
    /// from `at`). `NotFound` if the installation or the reseller does not
    /// exist; `InvalidInput` if it already belongs to that reseller.
    async fn transfer_installation(&self, transfer: &Transfer) -> Result<Installation>;
    /// An installation.
    async fn installation(&self, slc: &Slc) -> Result<Option<Installation>>;
    /// An installation's whole history, newest first, at most `limit`:
    /// the operator's view, hiding nothing a transfer hid from resellers.
    /// `NotFound` if it is not registered.
    async fn full_history(&self, slc: &Slc, limit: u32) -> Result<Vec<HistoryEvent>>;

    // ----- the audit log ----------------------------------------------------

    /// Appends one record to the audit log; ids grow with every record.
    async fn append_audit(&self, record: &AuditRecord) -> Result<()>;
    /// Audit entries newest first (by id): all, or only one reseller's
    /// team's (`query.team`), older than `query.before`, at most
    /// `query.limit`.
    async fn audit_log(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>>;
    /// Deletes audit entries recorded before `before` (by their `at`),
    /// oldest first, at most `limit`; returns how many. Maintenance calls
    /// it for the audit retention.
    async fn prune_audit(&self, before: Timestamp, limit: u32) -> Result<u64>;
    /// Retires a recording server at `at` with [`rules::decommission`]: its
    /// open conditions resolved, its history entry, the installation's line
    /// refreshed, all in one transaction. `Ok(false)` if it was retired
    /// already. `NotFound` if the installation is missing (or, given
    /// `reseller`, another reseller's) or the server was never heard from.
    async fn decommission_server(
        &self,
        reseller: Option<&ResellerId>,
        slc: &Slc,
        server: &RecordingServerId,
        at: Timestamp,
    ) -> Result<bool>;
    /// Sets the labels of `reseller`'s installation at `at` (and appends a
    /// [`crate::feed::Change::Labels`] event), storing
    /// [`Labels::search_text`] for the overview's search. `NotFound` if the
    /// installation is missing or another reseller's.
    async fn set_labels(
        &self,
        reseller: &ResellerId,
        slc: &Slc,
        labels: &Labels,
        at: Timestamp,
    ) -> Result<()>;
    /// Stores a new key. `AlreadyExists` if the id is used; `NotFound` if no installation.
    async fn add_installation_key(&self, slc: &Slc, key: &WrappedKey, at: Timestamp) -> Result<()>;
    /// All keys of an installation, retired ones included, by id.
    async fn installation_keys(&self, slc: &Slc) -> Result<Vec<StoredKey>>;
    /// Retires a key. `NotFound` if no such key.
    async fn retire_installation_key(&self, slc: &Slc, id: KeyId, at: Timestamp) -> Result<()>;
    /// Every installation's keys (retired ones too), in (SLC, id) order,
    /// those after `after`; at most `limit`. A master-key rotation pages
    /// through them.
    async fn wrapped_keys(
        &self,
        after: Option<(&Slc, KeyId)>,
        limit: u32,
    ) -> Result<Vec<(Slc, WrappedKey)>>;
    /// The master-key check: a known value sealed under the master key the
    /// database's secrets are sealed with, so that a node started with
    /// another key is refused even before any secret exists (two nodes
    /// each making up a key for one new database). Stores `proposed` if
    /// the database holds none yet, atomically, and returns the one it
    /// holds. A rotation replaces it with [`Store::reseal`].
    async fn master_key_check(&self, proposed: &[u8]) -> Result<Vec<u8>>;
    /// Replaces sealed values in one transaction, each only where it still
    /// holds its `old` bytes (a missing item, or one changed meanwhile, is
    /// left alone). Returns how many were replaced.
    async fn reseal(&self, changes: &[Reseal]) -> Result<u64>;

    // ----- ingest ----------------------------------------------------------

    /// What ingest needs for one message; `None` if the SLC is not registered.
    async fn admission(
        &self,
        slc: &Slc,
        server: &RecordingServerId,
        key: KeyId,
    ) -> Result<Option<Admission>>;
    /// [`Store::admission`] for many messages at once: one result per query,
    /// in order; the outer error fails them all. The default asks for each
    /// concurrently; a backend overrides it to read them all in one go.
    async fn admissions(
        &self,
        queries: &[AdmissionQuery],
    ) -> Result<Vec<Result<Option<Admission>>>> {
        let lookups = queries
            .iter()
            .map(|query| self.admission(&query.slc, &query.server, query.key));
        Ok(futures::future::join_all(lookups).await)
    }
    /// Records signs of life (heartbeats), in one transaction, each applied
    /// only if its sequence number is newer; `last_seen_at` never moves
    /// backwards. Entries apply in order, each seeing the ones before it (the
    /// same sign twice in one batch is `Applied` then `Duplicate`). One outcome
    /// per input, in order. A sign with [`SignOfLife::remembered`] set is
    /// applied only as that field says, else it is `Readmit`.
    async fn record_signs_of_life(&self, batch: &[SignOfLife]) -> Result<Vec<WriteOutcome>>;
    /// Applies a status report in one transaction: the sign of life, the
    /// snapshot diff, history and the installation's summary. Durable when it
    /// returns. Only heartbeats are judged on remembered admissions: a report
    /// whose sign has [`SignOfLife::remembered`] set is `Readmit`.
    async fn apply_status_report(&self, report: &StatusWrite) -> Result<WriteOutcome>;

    // ----- availability ----------------------------------------------------

    /// Stops judging the servers of installations whose Care Plus ended at
    /// or before `now` (their `next_check_at` cleared, the installation
    /// marked as parked), as [`Store::update_installation`] does at once for
    /// consent and subscription changes ([`rules::service_change`]).
    /// Returns how many installations it parked.
    async fn park_expired(&self, now: Timestamp) -> Result<u32>;
    /// Deletes what installations reported (servers, conditions, history)
    /// when their consent was withdrawn at or before `before` and not given
    /// again, keeping their registration and each server's sequence cursor
    /// ([`Admission::deleted_server_cursor`]); their line becomes Pending
    /// (at `at`). Each installation once per withdrawal. Returns how many.
    async fn delete_withdrawn_data(&self, before: Timestamp, at: Timestamp) -> Result<u32>;
    /// Servers whose `next_check_at` is at or before `now`, ordered by
    /// `(next_check_at, slc, server)`, at most `limit`.
    async fn due_servers(&self, now: Timestamp, limit: u32) -> Result<Vec<ServerRecord>>;
    /// Applies time-driven changes computed with the downtime windows of
    /// `epoch`: nothing if a window was recorded since
    /// ([`AvailabilityOutcome::DowntimeChanged`], checked in the same
    /// transaction, so a window and a sweep never interleave). Each change
    /// applies only if no message arrived meanwhile (`last_seen_at` still
    /// equals `expected_last_seen`). Becoming unavailable opens a
    /// `SERVER_UNAVAILABLE` condition whose subject is the server id, and
    /// records `BecameUnavailable`, both at `since`. Returns at most one
    /// summary change per installation, stamped with `evaluated_at`.
    async fn apply_availability(
        &self,
        changes: &[AvailabilityChange],
        epoch: DowntimeEpoch,
    ) -> Result<AvailabilityOutcome>;

    // ----- the service's own downtime -------------------------------------

    /// Records that `mark.node` is receiving at `mark.at` and, in the same
    /// transaction, the own-downtime window that
    /// [`crate::liveness::gap_before`] finds before it given every node's
    /// stored liveness (nodes' marks are read and written one after
    /// another). Returns the window recorded, if any. A node's mark never
    /// moves backwards; marking clears its stopped flag.
    async fn mark_alive(&self, mark: &LivenessMark) -> Result<Option<DowntimeWindow>>;
    /// Records that `node` stopped receiving at exactly `at` (a clean stop):
    /// its receiving ends there, however long the process takes to exit.
    async fn mark_stopped(&self, node: &str, at: Timestamp) -> Result<()>;
    /// Records a window during which no node was receiving.
    async fn record_downtime(&self, window: DowntimeWindow) -> Result<()>;
    /// Windows that end after `after`, by start, with the current epoch.
    async fn downtime(&self, after: Timestamp) -> Result<DowntimeLog>;

    // ----- the change feed ---------------------------------------------------
    //
    // Writes append their events in their own transaction (see
    // [`crate::feed`]); ids grow by one per event and are seen in order.

    /// Events after `after`, oldest first, at most `limit`, each with its
    /// installation's reseller as it is now. `ResumeTooOld` (the rule is
    /// [`crate::feed::check_resume`]) if events after `after` were pruned or
    /// `after` is beyond the newest event.
    async fn changes(&self, after: EventId, limit: u32) -> Result<Vec<ChangeEvent>>;
    /// The newest event's id; 0 when none was ever appended.
    async fn latest_change(&self) -> Result<EventId>;
    /// Deletes the events that happened before `before` whose ids are at
    /// most `through`; returns how many. Maintenance passes the notifier's
    /// position ([`Store::notifier_position`]): an event it has not yet
    /// processed stays, however old.
    async fn prune_changes(&self, before: Timestamp, through: EventId) -> Result<u64>;
    /// Wake-ups when another process may have appended events (PostgreSQL:
    /// LISTEN/NOTIFY): the value changes on each. `None` when the store has
    /// no such channel. Only a hint: a wake-up may be lost, readers poll too.
    fn change_signals(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    // ----- a reseller's team ---------------------------------------------------

    /// Stores an invitation. `NotFound` if the reseller does not exist;
    /// `AlreadyExists` if its login is already a user's.
    async fn create_invitation(&self, invitation: &InvitationRecord) -> Result<()>;
    /// Accepts an invitation, in one transaction: the invitation with this
    /// hash must be unused and unexpired at `at` (else `Unauthenticated`,
    /// the same for a missing, used or expired one); it is marked used and
    /// its user created with `password_hash`, created at `at`
    /// (`AlreadyExists` if the login was taken meanwhile). Returns the user.
    async fn accept_invitation(
        &self,
        hash: &TokenHash,
        password_hash: &str,
        at: Timestamp,
    ) -> Result<User>;
    /// Whether an invitation with this hash may be accepted at `at`
    /// (exists, unused, unexpired): checked before the new password is
    /// hashed, so that a made-up code costs no password work.
    async fn invitation_open(&self, hash: &TokenHash, at: Timestamp) -> Result<bool>;
    /// A user and their password hash, by login.
    async fn user_credentials(&self, login: &Login) -> Result<Option<(User, String)>>;
    /// A reseller's users, by login.
    async fn users(&self, reseller: &ResellerId) -> Result<Vec<User>>;
    /// Removes one of `reseller`'s users and every session of theirs in one
    /// transaction, and cancels `reseller`'s invitations not yet accepted
    /// that they issued or that are for their login (a removed admin must
    /// not keep a way back in; removing a login that is only invited
    /// cancels its invitation). `NotFound` if `reseller` has neither such a
    /// user nor an invitation for the login.
    async fn remove_user(&self, reseller: &ResellerId, login: &Login) -> Result<()>;
    /// Stores a session, and ends the user's sessions older than their
    /// newest [`limits::MAX_SESSIONS_PER_USER`]. `NotFound` if its user does
    /// not exist (any more).
    async fn create_session(&self, session: &SessionRecord) -> Result<()>;
    /// The session with this hash if it has not expired at `now`, with its
    /// user as stored now.
    async fn session(&self, hash: &TokenHash, now: Timestamp) -> Result<Option<SessionRecord>>;
    /// Ends a session (nothing if there is none).
    async fn delete_session(&self, hash: &TokenHash) -> Result<()>;
    /// Deletes sessions and invitations that expired before `now`, and API
    /// tokens revoked or expired before `tokens_ended_before`; how many.
    async fn prune_sessions(&self, now: Timestamp, tokens_ended_before: Timestamp) -> Result<u64>;
    /// Stores an API token. `NotFound` if the reseller does not exist;
    /// `InvalidInput` from [`limits::room_for_api_token`] when it has as
    /// many in use as it may (counted in the same transaction, with the
    /// reseller locked against other such stores).
    async fn create_api_token(&self, token: &ApiTokenRecord) -> Result<()>;
    /// An API token by id, revoked ones included.
    async fn api_token(&self, id: &str) -> Result<Option<ApiTokenRecord>>;
    /// A reseller's API tokens, revoked ones included, newest first.
    async fn api_tokens(&self, reseller: &ResellerId) -> Result<Vec<ApiTokenRecord>>;
    /// Revokes one of `reseller`'s API tokens at `at` (again: nothing).
    /// `NotFound` if `reseller` has no such token.
    async fn revoke_api_token(&self, reseller: &ResellerId, id: &str, at: Timestamp) -> Result<()>;

    // ----- notifications -----------------------------------------------------

    /// Stores a channel. `NotFound` if the reseller does not exist;
    /// `InvalidInput` from [`limits::room_for_channel`] when it has as many
    /// as it may (counted as for [`Store::create_api_token`]).
    async fn create_channel(&self, channel: &ChannelRecord) -> Result<()>;
    /// A reseller's channels by creation, or every reseller's (`None`: the notifier's view).
    async fn channels(&self, reseller: Option<&ResellerId>) -> Result<Vec<ChannelRecord>>;
    /// Deletes one of `reseller`'s channels at `at`, with its states; its
    /// pending outbox entries are given up at `at` ("channel deleted").
    /// `NotFound` if `reseller` has no such channel.
    async fn delete_channel(
        &self,
        reseller: &ResellerId,
        id: &ChannelId,
        at: Timestamp,
    ) -> Result<()>;
    /// Stores a maintenance window and, in the same transaction, makes the
    /// notification states it may mute (the reseller's, of the window's
    /// installation or all) due at its `created_at` if due later or not at
    /// all: a told problem's next look was set without this window.
    /// `NotFound` if the reseller does not exist or the window names an
    /// installation it does not own; `InvalidInput` from
    /// [`limits::room_for_window`] over the reseller's windows read as
    /// [`Store::report_maintenance_windows`] from
    /// [`limits::windows_counted_since`] (counted as for
    /// [`Store::create_api_token`]).
    async fn create_maintenance(&self, window: &MaintenanceWindow) -> Result<()>;
    /// A reseller's maintenance windows, or every reseller's (`None`);
    /// not those deleted.
    async fn maintenance_windows(
        &self,
        reseller: Option<&ResellerId>,
    ) -> Result<Vec<MaintenanceWindow>>;
    /// Every maintenance window of `reseller` an uptime report of time
    /// after `since` needs: those not deleted, and those deleted after
    /// `since` that excluded something first (deleted after they were made
    /// and after they began), with their [`MaintenanceWindow::deleted_at`]
    /// (a window excluded time until it was deleted).
    async fn report_maintenance_windows(
        &self,
        reseller: &ResellerId,
        since: Timestamp,
    ) -> Result<Vec<MaintenanceWindow>>;
    /// Deletes one of `reseller`'s windows (kept for reports, marked
    /// deleted at `at`; a deleted one is `NotFound`) and, in the same transaction,
    /// makes the notification states it may have muted (the reseller's, of
    /// the window's installation or all) due at `at`: they were due at its
    /// end, and would otherwise stay muted until then. Outbox entries held
    /// for maintenance ([`crate::notification::NewOutboxEntry::held`]) of
    /// that scope are moved to the end of the maintenance still in force
    /// over their installation ([`maintenance_ends`] over the windows
    /// left), or to `at`. `NotFound` if it has no such window.
    ///
    /// [`maintenance_ends`]: crate::notification::maintenance::maintenance_ends
    async fn delete_maintenance(
        &self,
        reseller: &ResellerId,
        id: &WindowId,
        at: Timestamp,
    ) -> Result<()>;
    /// Takes or renews the notifier lease for `node` until `now + lease`
    /// (free, expired or already `node`'s), returning where the notifier
    /// stands (the feed position it has processed, and the nudges);
    /// `None` if another node holds it.
    async fn notifier_lease(
        &self,
        node: &str,
        now: Timestamp,
        lease: std::time::Duration,
    ) -> Result<Option<NotifierMark>>;
    /// Ends `node`'s notifier lease if it holds it (a clean stop): another
    /// node takes it at its next step instead of once it runs out; the
    /// position stays. Returns whether it held it.
    async fn release_notifier_lease(&self, node: &str) -> Result<bool>;
    /// Where the notifier stands (the feed position it has processed, and
    /// the nudges), whoever holds the lease (a read: takes nothing).
    async fn notifier_position(&self) -> Result<NotifierMark>;
    /// The stored states of these (channel, installation) pairs (missing: Quiet).
    async fn notification_states(
        &self,
        keys: &[(ChannelId, Slc)],
    ) -> Result<Vec<NotificationState>>;
    /// States due at or before `now`, earliest first, at most `limit`.
    async fn due_notification_states(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<NotificationState>>;
    /// Writes a notifier step in one transaction: only if `commit.node`
    /// still holds the lease and the notifier still stands at `commit.from`
    /// (position and nudges; else [`Committed::Refused`], nothing written); states upserted
    /// (Quiet deleted), outbox entries inserted (an existing key is left
    /// alone), position moved to `commit.to`. States and entries of a
    /// channel deleted meanwhile are not written. With
    /// `commit.claim_until`, the inserted entries are claimed by
    /// `commit.node` until then and returned
    /// ([`NotifierCommit::into_claimed`]).
    async fn commit_notifications(&self, commit: NotifierCommit) -> Result<Committed>;
    /// Puts entries in the outbox as they are (tools and tests); an
    /// existing key is left alone, and so is an entry of a channel that no
    /// longer exists.
    async fn enqueue_notifications(&self, entries: &[NewOutboxEntry]) -> Result<()>;
    /// Puts a channel's test notification in the outbox (its key starts
    /// with [`limits::test_key_prefix`]), first giving up the oldest of
    /// the channel's tests on their way as [`limits::tests_to_give_up`]
    /// says, at `entry.created_at`, with [`limits::TEST_REPLACED`] (claims
    /// on them released: a node sending one records nothing). Counted as
    /// for [`Store::create_api_token`]. `NotFound` if the channel is
    /// missing or not `entry.reseller`'s.
    async fn enqueue_channel_test(&self, entry: &NewOutboxEntry) -> Result<()>;
    /// Claims up to `limit` entries due at `now` (not delivered, not given
    /// up, not claimed by a live lease) for `node` until `now + lease`,
    /// oldest first (by `next_attempt_at`, then id); each entry is claimed
    /// by one node at a time (a node that dies mid-send loses its claim when
    /// the lease ends).
    async fn claim_deliveries(
        &self,
        node: &str,
        now: Timestamp,
        lease: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>>;
    /// Ends `node`'s claims on these entries while they are pending: a
    /// stopping node's unsent ones, whether it never started them or its
    /// stop cut them off. Any node may then claim them at once, as due as
    /// they were (attempts and next attempt unchanged). Entries another
    /// node claims, and delivered and given-up ones, are left alone.
    /// Returns how many were released.
    async fn release_claims(&self, node: &str, ids: &[u64]) -> Result<u64>;
    /// Ends every claim `node` holds on pending entries, as
    /// [`Store::release_claims`] would: a node starting, whose claims are
    /// its previous run's (a node id names one running node), so that what
    /// a killed or stopped run claimed is sent at once, not after its
    /// lease. Other nodes' claims are left alone. Returns how many.
    async fn release_every_claim(&self, node: &str) -> Result<u64>;
    /// Records how attempts ended, in the order they ended, in one
    /// transaction: each only if `node` still claims its entry (no other
    /// node claimed it since) and it is still pending (else nothing):
    /// delivered, retry later, or given up, each counting the attempt and
    /// ending the claim; the entries' channels'
    /// [`crate::notification::DeliveryStatus`] follow (failures in a row
    /// reset by a delivery), as if recorded one by one
    /// ([`crate::notification::delivery::tally_by_channel`]).
    async fn finish_deliveries(
        &self,
        node: &str,
        at: Timestamp,
        finished: &[(u64, DeliveryOutcome)],
    ) -> Result<()>;
    /// [`Store::finish_deliveries`] for one attempt.
    async fn finish_delivery(
        &self,
        id: u64,
        node: &str,
        outcome: &DeliveryOutcome,
        at: Timestamp,
    ) -> Result<()> {
        self.finish_deliveries(node, at, &[(id, outcome.clone())])
            .await
    }
    /// A reseller's outbox entries, newest first.
    async fn outbox(
        &self,
        reseller: &ResellerId,
        filter: OutboxFilter,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>>;
    /// Deletes up to `limit` finished outbox entries (delivered or given
    /// up) that were created and finished before `before`, oldest first;
    /// returns how many. Pending entries stay, however old. Entries are
    /// taken in id order up to the first one made since `before`, so a call
    /// reads the old entries (those it deletes and the few it keeps), not
    /// the whole outbox.
    async fn prune_outbox(&self, before: Timestamp, limit: u32) -> Result<u64>;

    // ----- what resellers read ---------------------------------------------

    /// A page of `reseller`'s installations, worst first, then by SLC.
    async fn overview(&self, reseller: &ResellerId, query: &OverviewQuery) -> Result<OverviewPage>;
    /// One of `reseller`'s installations with `history_limit` newest history
    /// events; `None` if it does not exist *or belongs to another reseller*.
    async fn installation_detail(
        &self,
        reseller: &ResellerId,
        slc: &Slc,
        history_limit: u32,
    ) -> Result<Option<InstallationDetail>>;
    /// `reseller`'s installations among `slcs` as notifications show them
    /// (no history), read together: in any order, each once. Those that do
    /// not exist *or belong to another reseller* are left out.
    async fn installation_details(
        &self,
        reseller: &ResellerId,
        slcs: &[Slc],
    ) -> Result<Vec<InstallationDetail>>;
    /// What an uptime report over `period` needs of `reseller`'s
    /// installations (only `only`, given: none if it is missing *or another
    /// reseller's*), read in one read transaction, in any order: each
    /// installation's SLC and labels, its recording servers (retired ones
    /// included) with their `first_seen_at`, and the history entries of
    /// kinds a report reads (became unavailable, recovered, decommissioned,
    /// recommissioned) of each server that lie before the
    /// period's end and either within the period or at the instant of the
    /// server's latest such entry before its start (its state when the
    /// period begins; see [`crate::report`]). Other entries are left out.
    async fn uptime_histories(
        &self,
        reseller: &ResellerId,
        only: Option<&Slc>,
        period: Period,
    ) -> Result<Vec<InstallationHistory>>;
}
