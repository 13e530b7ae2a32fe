//! The `Store` implementation, by area. Every call is one transaction
//! (see [`PostgresStore::write`] and [`PostgresStore::read`]).

mod admin;
mod audit;
mod availability;
mod feed;
mod first_sight;
mod history;
mod ingest;
mod lifecycle;
mod maintenance;
mod notifications;
mod outbox;
mod reads;
mod report;
mod retention;
mod rotation;
mod summary;
mod team;
mod transfer;

use async_trait::async_trait;
use carewatch_core::Result;
use carewatch_core::audit::{AuditEntry, AuditQuery, AuditRecord};
use carewatch_core::auth::TokenHash;
use carewatch_core::availability::DowntimeWindow;
use carewatch_core::feed::{ChangeEvent, EventId};

use carewatch_core::ids::{RecordingServerId, ResellerId, Slc};
use carewatch_core::installation::Installation;
use carewatch_core::labels::Labels;
use carewatch_core::liveness::LivenessMark;
use carewatch_core::notification::maintenance::{MaintenanceWindow, WindowId};
use carewatch_core::notification::{
    ChannelId, ChannelRecord, Committed, DeliveryOutcome, NewOutboxEntry, NotificationState,
    NotifierCommit, NotifierMark, OutboxEntry, OutboxFilter,
};
use carewatch_core::report::{InstallationHistory, Period};
use carewatch_core::seal::{KeyId, WrappedKey};
use carewatch_core::store::{
    Admission, AdmissionQuery, AvailabilityChange, AvailabilityOutcome, DowntimeEpoch, DowntimeLog,
    HistoryEvent, InstallationDetail, InstallationUpdate, OverviewPage, OverviewQuery, Reseal,
    Reseller, ServerRecord, SignOfLife, StatusWrite, Store, StoredKey, Transfer, WriteOutcome,
};
use carewatch_core::team::{ApiTokenRecord, InvitationRecord, Login, SessionRecord, User};
use carewatch_core::time::Timestamp;

use crate::PostgresStore;

#[async_trait]
impl Store for PostgresStore {
    async fn create_reseller(&self, reseller: &Reseller, token: &TokenHash) -> Result<()> {
        self.write(&(reseller, token), |c, (r, t)| {
            Box::pin(admin::create_reseller(c, r, t))
        })
        .await
    }

    async fn set_reseller_token(&self, id: &ResellerId, token: &TokenHash) -> Result<()> {
        self.write(&(id, token), |c, (id, t)| {
            Box::pin(admin::set_reseller_token(c, id, t))
        })
        .await
    }

    async fn reseller_token(&self, id: &ResellerId) -> Result<Option<TokenHash>> {
        self.read(id, |c, id| Box::pin(admin::reseller_token(c, id)))
            .await
    }

    async fn resellers(&self) -> Result<Vec<Reseller>> {
        self.read(&(), |c, ()| Box::pin(admin::resellers(c))).await
    }

    async fn set_operator_token(&self, name: &ResellerId, token: &TokenHash) -> Result<()> {
        self.write(&(name, token), |c, (n, t)| {
            Box::pin(admin::set_operator_token(c, n, t))
        })
        .await
    }

    async fn operator_token(&self, name: &ResellerId) -> Result<Option<TokenHash>> {
        self.read(name, |c, n| Box::pin(admin::operator_token(c, n)))
            .await
    }

    async fn has_operator(&self) -> Result<bool> {
        self.read(&(), |c, ()| Box::pin(admin::has_operator(c)))
            .await
    }

    async fn add_first_operator(&self, name: &ResellerId, token: &TokenHash) -> Result<bool> {
        self.write(&(name, token), |c, (n, t)| {
            Box::pin(admin::add_first_operator(c, n, t))
        })
        .await
    }

    async fn register_installation(&self, installation: &Installation) -> Result<()> {
        self.write(installation, |c, i| {
            Box::pin(admin::register_installation(c, i))
        })
        .await
    }

    async fn update_installation(
        &self,
        slc: &Slc,
        update: &InstallationUpdate,
        at: Timestamp,
    ) -> Result<Installation> {
        self.write(&(slc, update, at), |c, (s, u, at)| {
            Box::pin(admin::update_installation(c, s, u, *at))
        })
        .await
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        self.write(record, |c, r| Box::pin(audit::append_audit(c, r)))
            .await
    }

    async fn audit_log(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        self.read(query, |c, q| Box::pin(audit::audit_log(c, q)))
            .await
    }

    async fn prune_audit(&self, before: Timestamp, limit: u32) -> Result<u64> {
        self.write(&(before, limit), |c, (before, limit)| {
            Box::pin(retention::prune_audit(c, *before, *limit))
        })
        .await
    }

    async fn full_history(&self, slc: &Slc, limit: u32) -> Result<Vec<HistoryEvent>> {
        self.read(&(slc, limit), |c, (slc, limit)| {
            Box::pin(history::full_history(c, slc, *limit))
        })
        .await
    }

    async fn transfer_installation(&self, transfer: &Transfer) -> Result<Installation> {
        self.write(transfer, |c, t| {
            Box::pin(transfer::transfer_installation(c, t))
        })
        .await
    }

    async fn installation(&self, slc: &Slc) -> Result<Option<Installation>> {
        self.read(slc, |c, s| Box::pin(admin::installation(c, s)))
            .await
    }

    async fn park_expired(&self, now: Timestamp) -> Result<u32> {
        self.write(&now, |c, now| Box::pin(lifecycle::park_expired(c, *now)))
            .await
    }

    async fn delete_withdrawn_data(&self, before: Timestamp, at: Timestamp) -> Result<u32> {
        self.write(&(before, at), |c, (before, at)| {
            Box::pin(lifecycle::delete_withdrawn_data(c, *before, *at))
        })
        .await
    }

    async fn decommission_server(
        &self,
        reseller: Option<&ResellerId>,
        slc: &Slc,
        server: &RecordingServerId,
        at: Timestamp,
    ) -> Result<bool> {
        self.write(&(reseller, slc, server, at), |c, (r, s, v, at)| {
            Box::pin(lifecycle::decommission_server(c, *r, s, v, *at))
        })
        .await
    }

    async fn set_labels(
        &self,
        reseller: &ResellerId,
        slc: &Slc,
        labels: &Labels,
        at: Timestamp,
    ) -> Result<()> {
        self.write(&(reseller, slc, labels, at), |c, (r, s, l, at)| {
            Box::pin(admin::set_labels(c, r, s, l, *at))
        })
        .await
    }

    async fn add_installation_key(&self, slc: &Slc, key: &WrappedKey, at: Timestamp) -> Result<()> {
        self.write(&(slc, key, at), |c, (s, k, at)| {
            Box::pin(admin::add_installation_key(c, s, k, *at))
        })
        .await
    }

    async fn installation_keys(&self, slc: &Slc) -> Result<Vec<StoredKey>> {
        self.read(slc, |c, s| Box::pin(admin::installation_keys(c, s)))
            .await
    }

    async fn retire_installation_key(&self, slc: &Slc, id: KeyId, at: Timestamp) -> Result<()> {
        self.write(&(slc, id, at), |c, (s, id, at)| {
            Box::pin(admin::retire_installation_key(c, s, *id, *at))
        })
        .await
    }

    async fn wrapped_keys(
        &self,
        after: Option<(&Slc, KeyId)>,
        limit: u32,
    ) -> Result<Vec<(Slc, WrappedKey)>> {
        self.read(&(after, limit), |c, (after, limit)| {
            Box::pin(rotation::wrapped_keys(c, *after, *limit))
        })
        .await
    }

    async fn master_key_check(&self, proposed: &[u8]) -> Result<Vec<u8>> {
        self.write(proposed, |c, proposed| {
            Box::pin(rotation::master_key_check(c, proposed))
        })
        .await
    }

    async fn reseal(&self, changes: &[Reseal]) -> Result<u64> {
        self.write(changes, |c, changes| Box::pin(rotation::reseal(c, changes)))
            .await
    }

    async fn admission(
        &self,
        slc: &Slc,
        server: &RecordingServerId,
        key: KeyId,
    ) -> Result<Option<Admission>> {
        self.single(&(slc, server, key), |c, (s, r, k)| {
            Box::pin(ingest::admission(c, s, r, *k))
        })
        .await
    }

    /// One statement for the whole batch (one round trip, one snapshot)
    /// instead of one lookup per query.
    async fn admissions(
        &self,
        queries: &[AdmissionQuery],
    ) -> Result<Vec<Result<Option<Admission>>>> {
        match queries {
            [] => Ok(Vec::new()),
            [q] => Ok(vec![self.admission(&q.slc, &q.server, q.key).await]),
            _ => {
                self.single(queries, |c, q| Box::pin(ingest::admissions(c, q)))
                    .await
            }
        }
    }

    async fn record_signs_of_life(&self, batch: &[SignOfLife]) -> Result<Vec<WriteOutcome>> {
        ingest::record_batch(self, batch).await
    }

    async fn apply_status_report(&self, report: &StatusWrite) -> Result<WriteOutcome> {
        if report.sign.remembered.is_some() {
            return Ok(WriteOutcome::Readmit);
        }
        self.write(report, |c, r| Box::pin(ingest::apply_status_report(c, r)))
            .await
    }

    async fn due_servers(&self, now: Timestamp, limit: u32) -> Result<Vec<ServerRecord>> {
        self.read(&(now, limit), |c, (now, limit)| {
            Box::pin(availability::due_servers(c, *now, *limit))
        })
        .await
    }

    async fn apply_availability(
        &self,
        changes: &[AvailabilityChange],
        epoch: DowntimeEpoch,
    ) -> Result<AvailabilityOutcome> {
        if changes.is_empty() {
            return Ok(AvailabilityOutcome::Applied(Vec::new()));
        }
        self.write(&(changes, epoch), |c, (ch, epoch)| {
            Box::pin(availability::apply_availability(c, ch, *epoch))
        })
        .await
    }

    async fn mark_alive(&self, mark: &LivenessMark) -> Result<Option<DowntimeWindow>> {
        self.write(mark, |c, m| Box::pin(availability::mark_alive(c, m)))
            .await
    }

    async fn mark_stopped(&self, node: &str, at: Timestamp) -> Result<()> {
        self.write(&(node, at), |c, (n, at)| {
            Box::pin(availability::mark_stopped(c, n, *at))
        })
        .await
    }

    async fn record_downtime(&self, window: DowntimeWindow) -> Result<()> {
        self.write(&window, |c, w| {
            Box::pin(availability::record_downtime(c, *w))
        })
        .await
    }

    async fn downtime(&self, after: Timestamp) -> Result<DowntimeLog> {
        self.read(&after, |c, after| {
            Box::pin(availability::downtime(c, *after))
        })
        .await
    }

    async fn changes(&self, after: EventId, limit: u32) -> Result<Vec<ChangeEvent>> {
        self.read(&(after, limit), |c, (after, limit)| {
            Box::pin(feed::changes(c, *after, *limit))
        })
        .await
    }

    async fn latest_change(&self) -> Result<EventId> {
        self.read(&(), |c, ()| Box::pin(feed::head(c))).await
    }

    async fn prune_changes(&self, before: Timestamp, through: EventId) -> Result<u64> {
        self.write(&(before, through), |c, (before, through)| {
            Box::pin(feed::prune(c, *before, *through))
        })
        .await
    }

    fn change_signals(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.listen_for_changes())
    }

    async fn create_invitation(&self, invitation: &InvitationRecord) -> Result<()> {
        self.write(invitation, |c, i| Box::pin(team::create_invitation(c, i)))
            .await
    }

    async fn accept_invitation(
        &self,
        hash: &TokenHash,
        password_hash: &str,
        at: Timestamp,
    ) -> Result<User> {
        self.write(&(hash, password_hash, at), |c, (h, p, at)| {
            Box::pin(team::accept_invitation(c, h, p, *at))
        })
        .await
    }

    async fn invitation_open(&self, hash: &TokenHash, at: Timestamp) -> Result<bool> {
        self.read(&(hash, at), |c, (h, at)| {
            Box::pin(team::invitation_open(c, h, *at))
        })
        .await
    }

    async fn user_credentials(&self, login: &Login) -> Result<Option<(User, String)>> {
        self.read(login, |c, l| Box::pin(team::user_credentials(c, l)))
            .await
    }

    async fn users(&self, reseller: &ResellerId) -> Result<Vec<User>> {
        self.read(reseller, |c, r| Box::pin(team::users(c, r)))
            .await
    }

    async fn remove_user(&self, reseller: &ResellerId, login: &Login) -> Result<()> {
        self.write(&(reseller, login), |c, (r, l)| {
            Box::pin(team::remove_user(c, r, l))
        })
        .await
    }

    async fn create_session(&self, session: &SessionRecord) -> Result<()> {
        self.write(session, |c, s| Box::pin(team::create_session(c, s)))
            .await
    }

    async fn session(&self, hash: &TokenHash, now: Timestamp) -> Result<Option<SessionRecord>> {
        self.read(&(hash, now), |c, (h, now)| {
            Box::pin(team::session(c, h, *now))
        })
        .await
    }

    async fn delete_session(&self, hash: &TokenHash) -> Result<()> {
        self.write(hash, |c, h| Box::pin(team::delete_session(c, h)))
            .await
    }

    async fn prune_sessions(&self, now: Timestamp, tokens_ended_before: Timestamp) -> Result<u64> {
        self.write(&(now, tokens_ended_before), |c, (now, ended)| {
            Box::pin(team::prune_sessions(c, *now, *ended))
        })
        .await
    }

    async fn create_api_token(&self, token: &ApiTokenRecord) -> Result<()> {
        self.write(token, |c, t| Box::pin(team::create_api_token(c, t)))
            .await
    }

    async fn api_token(&self, id: &str) -> Result<Option<ApiTokenRecord>> {
        self.read(id, |c, id| Box::pin(team::api_token(c, id)))
            .await
    }

    async fn api_tokens(&self, reseller: &ResellerId) -> Result<Vec<ApiTokenRecord>> {
        self.read(reseller, |c, r| Box::pin(team::api_tokens(c, r)))
            .await
    }

    async fn revoke_api_token(&self, reseller: &ResellerId, id: &str, at: Timestamp) -> Result<()> {
        self.write(&(reseller, id, at), |c, (r, id, at)| {
            Box::pin(team::revoke_api_token(c, r, id, *at))
        })
        .await
    }

    async fn create_channel(&self, channel: &ChannelRecord) -> Result<()> {
        self.write(channel, |c, ch| {
            Box::pin(notifications::create_channel(c, ch))
        })
        .await
    }

    async fn channels(&self, reseller: Option<&ResellerId>) -> Result<Vec<ChannelRecord>> {
        self.read(&reseller, |c, r| Box::pin(notifications::channels(c, *r)))
            .await
    }

    async fn delete_channel(
        &self,
        reseller: &ResellerId,
        id: &ChannelId,
        at: Timestamp,
    ) -> Result<()> {
        self.write(&(reseller, id, at), |c, (r, id, at)| {
            Box::pin(notifications::delete_channel(c, r, id, *at))
        })
        .await
    }

    async fn create_maintenance(&self, window: &MaintenanceWindow) -> Result<()> {
        self.write(window, |c, w| {
            Box::pin(maintenance::create_maintenance(c, w))
        })
        .await
    }

    async fn maintenance_windows(
        &self,
        reseller: Option<&ResellerId>,
    ) -> Result<Vec<MaintenanceWindow>> {
        self.read(&reseller, |c, r| {
            Box::pin(maintenance::maintenance_windows(c, *r, None))
        })
        .await
    }

    async fn report_maintenance_windows(
        &self,
        reseller: &ResellerId,
        since: Timestamp,
    ) -> Result<Vec<MaintenanceWindow>> {
        self.read(&(reseller, since), |c, (r, since)| {
            Box::pin(maintenance::maintenance_windows(c, Some(r), Some(*since)))
        })
        .await
    }

    async fn delete_maintenance(
        &self,
        reseller: &ResellerId,
        id: &WindowId,
        at: Timestamp,
    ) -> Result<()> {
        self.write(&(reseller, id, at), |c, (r, id, at)| {
            Box::pin(maintenance::delete_maintenance(c, r, id, *at))
        })
        .await
    }

    async fn notifier_lease(
        &self,
        node: &str,
        now: Timestamp,
        lease: std::time::Duration,
    ) -> Result<Option<NotifierMark>> {
        self.write(&(node, now, lease), |c, (node, now, lease)| {
            Box::pin(notifications::notifier_lease(c, node, *now, *lease))
        })
        .await
    }

    async fn release_notifier_lease(&self, node: &str) -> Result<bool> {
        self.write(node, |c, node| {
            Box::pin(notifications::release_notifier_lease(c, node))
        })
        .await
    }

    async fn notifier_position(&self) -> Result<NotifierMark> {
        self.read(&(), |c, ()| Box::pin(notifications::notifier_position(c)))
            .await
    }

    async fn notification_states(
        &self,
        keys: &[(ChannelId, Slc)],
    ) -> Result<Vec<NotificationState>> {
        self.read(keys, |c, k| {
            Box::pin(notifications::notification_states(c, k))
        })
        .await
    }

    async fn due_notification_states(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<NotificationState>> {
        self.read(&(now, limit), |c, (now, limit)| {
            Box::pin(notifications::due_notification_states(c, *now, *limit))
        })
        .await
    }

    async fn commit_notifications(&self, commit: NotifierCommit) -> Result<Committed> {
        let ids = self
            .write(&commit, |c, commit| {
                Box::pin(notifications::commit_notifications(c, commit))
            })
            .await?;
        Ok(match ids {
            None => Committed::Refused,
            Some(ids) => Committed::Written {
                claimed: commit.into_claimed(ids),
            },
        })
    }

    async fn enqueue_notifications(&self, entries: &[NewOutboxEntry]) -> Result<()> {
        self.write(entries, |c, e| {
            Box::pin(notifications::enqueue_notifications(c, e))
        })
        .await
    }

    async fn enqueue_channel_test(&self, entry: &NewOutboxEntry) -> Result<()> {
        self.write(entry, |c, e| {
            Box::pin(notifications::enqueue_channel_test(c, e))
        })
        .await
    }

    async fn claim_deliveries(
        &self,
        node: &str,
        now: Timestamp,
        lease: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>> {
        self.write(
            &(node, now, lease, limit),
            |c, (node, now, lease, limit)| {
                Box::pin(outbox::claim_deliveries(c, node, *now, *lease, *limit))
            },
        )
        .await
    }

    async fn release_every_claim(&self, node: &str) -> Result<u64> {
        // One statement, changing nothing the second time: safe to retry.
        self.single(node, |c, node| {
            Box::pin(outbox::release_every_claim(c, node))
        })
        .await
    }

    async fn release_claims(&self, node: &str, ids: &[u64]) -> Result<u64> {
        // An id past i64 names no row.
        let ids: Vec<i64> = ids
            .iter()
            .filter_map(|&id| i64::try_from(id).ok())
            .collect();
        // One statement, changing nothing the second time: safe to retry.
        self.single(&(node, ids), |c, (node, ids)| {
            Box::pin(outbox::release_claims(c, node, ids))
        })
        .await
    }

    async fn finish_deliveries(
        &self,
        node: &str,
        at: Timestamp,
        finished: &[(u64, DeliveryOutcome)],
    ) -> Result<()> {
        self.write(&(node, at, finished), |c, (node, at, finished)| {
            Box::pin(outbox::finish_deliveries(c, node, *at, finished))
        })
        .await
    }

    async fn outbox(
        &self,
        reseller: &ResellerId,
        filter: OutboxFilter,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>> {
        self.read(&(reseller, filter, limit), |c, (r, f, l)| {
            Box::pin(outbox::outbox(c, r, *f, *l))
        })
        .await
    }

    async fn prune_outbox(&self, before: Timestamp, limit: u32) -> Result<u64> {
        self.write(&(before, limit), |c, (before, limit)| {
            Box::pin(retention::prune_outbox(c, *before, *limit))
        })
        .await
    }

    async fn overview(&self, reseller: &ResellerId, query: &OverviewQuery) -> Result<OverviewPage> {
        self.read(&(reseller, query), |c, (r, q)| {
            Box::pin(reads::overview(c, r, q))
        })
        .await
    }

    async fn installation_detail(
        &self,
        reseller: &ResellerId,
        slc: &Slc,
        history_limit: u32,
    ) -> Result<Option<InstallationDetail>> {
        self.read(&(reseller, slc, history_limit), |c, (r, s, limit)| {
            Box::pin(reads::installation_detail(c, r, s, *limit))
        })
        .await
    }

    async fn installation_details(
        &self,
        reseller: &ResellerId,
        slcs: &[Slc],
    ) -> Result<Vec<InstallationDetail>> {
        self.read(&(reseller, slcs), |c, (r, s)| {
            Box::pin(reads::installation_details(c, r, s))
        })
        .await
    }

    async fn uptime_histories(
        &self,
        reseller: &ResellerId,
        only: Option<&Slc>,
        period: Period,
    ) -> Result<Vec<InstallationHistory>> {
        self.read(&(reseller, only, period), |c, (r, o, p)| {
            Box::pin(report::uptime_histories(c, r, *o, *p))
        })
        .await
    }
}
