//! [`Faulty`] as a [`Store`]: every call as SQLite makes it, after the faults.

use std::sync::atomic::Ordering;
use std::time::Duration;

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
use tokio::time::sleep;

use crate::faulty::Faulty;

#[async_trait]
impl Store for Faulty {
    async fn due_servers(&self, now: Timestamp, limit: u32) -> Result<Vec<ServerRecord>> {
        self.check().await?;
        sleep(self.sweep_delay).await;
        let due = self.inner.due_servers(now, limit).await;
        self.sweeps.fetch_add(1, Ordering::SeqCst);
        due
    }
    async fn mark_alive(&self, mark: &LivenessMark) -> Result<Option<DowntimeWindow>> {
        self.check().await?;
        self.marks.lock().expect("marks").push(mark.at);
        self.inner.mark_alive(mark).await
    }
    async fn mark_stopped(&self, node: &str, at: Timestamp) -> Result<()> {
        self.check().await?;
        self.inner.mark_stopped(node, at).await
    }

    // Everything else as SQLite does it.
    async fn create_reseller(&self, reseller: &Reseller, token: &TokenHash) -> Result<()> {
        self.check().await?;
        self.inner.create_reseller(reseller, token).await
    }
    async fn set_reseller_token(&self, id: &ResellerId, token: &TokenHash) -> Result<()> {
        self.check().await?;
        self.inner.set_reseller_token(id, token).await
    }
    async fn reseller_token(&self, id: &ResellerId) -> Result<Option<TokenHash>> {
        self.check().await?;
        self.inner.reseller_token(id).await
    }
    async fn resellers(&self) -> Result<Vec<Reseller>> {
        self.check().await?;
        self.inner.resellers().await
    }
    async fn set_operator_token(&self, name: &ResellerId, token: &TokenHash) -> Result<()> {
        self.check().await?;
        self.inner.set_operator_token(name, token).await
    }
    async fn operator_token(&self, name: &ResellerId) -> Result<Option<TokenHash>> {
        self.check().await?;
        self.inner.operator_token(name).await
    }
    async fn has_operator(&self) -> Result<bool> {
        self.check().await?;
        self.inner.has_operator().await
    }
    async fn add_first_operator(&self, name: &ResellerId, token: &TokenHash) -> Result<bool> {
        self.check().await?;
        self.inner.add_first_operator(name, token).await
    }
    async fn register_installation(&self, installation: &Installation) -> Result<()> {
        self.check().await?;
        self.inner.register_installation(installation).await
    }
    async fn update_installation(
        &self,
        slc: &Slc,
        update: &InstallationUpdate,
        at: Timestamp,
    ) -> Result<Installation> {
        self.check().await?;
        self.inner.update_installation(slc, update, at).await
    }
    async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        self.check().await?;
        self.inner.append_audit(record).await
    }
    async fn audit_log(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        self.check().await?;
        self.inner.audit_log(query).await
    }
    async fn prune_audit(&self, before: Timestamp, limit: u32) -> Result<u64> {
        self.check().await?;
        self.inner.prune_audit(before, limit).await
    }
    async fn full_history(&self, slc: &Slc, limit: u32) -> Result<Vec<HistoryEvent>> {
        self.check().await?;
        self.inner.full_history(slc, limit).await
    }
    async fn transfer_installation(&self, transfer: &Transfer) -> Result<Installation> {
        self.check().await?;
        self.inner.transfer_installation(transfer).await
    }
    async fn installation(&self, slc: &Slc) -> Result<Option<Installation>> {
        self.check().await?;
        self.inner.installation(slc).await
    }
    async fn park_expired(&self, now: Timestamp) -> Result<u32> {
        self.check().await?;
        self.inner.park_expired(now).await
    }
    async fn delete_withdrawn_data(&self, before: Timestamp, at: Timestamp) -> Result<u32> {
        self.check().await?;
        self.inner.delete_withdrawn_data(before, at).await
    }
    async fn decommission_server(
        &self,
        reseller: Option<&ResellerId>,
        slc: &Slc,
        server: &RecordingServerId,
        at: Timestamp,
    ) -> Result<bool> {
        self.check().await?;
        self.inner
            .decommission_server(reseller, slc, server, at)
            .await
    }
    async fn set_labels(
        &self,
        reseller: &ResellerId,
        slc: &Slc,
        labels: &Labels,
        at: Timestamp,
    ) -> Result<()> {
        self.check().await?;
        self.inner.set_labels(reseller, slc, labels, at).await
    }
    async fn add_installation_key(&self, slc: &Slc, key: &WrappedKey, at: Timestamp) -> Result<()> {
        self.check().await?;
        self.inner.add_installation_key(slc, key, at).await
    }
    async fn installation_keys(&self, slc: &Slc) -> Result<Vec<StoredKey>> {
        self.check().await?;
        self.inner.installation_keys(slc).await
    }
    async fn retire_installation_key(&self, slc: &Slc, id: KeyId, at: Timestamp) -> Result<()> {
        self.check().await?;
        self.inner.retire_installation_key(slc, id, at).await
    }
    async fn wrapped_keys(
        &self,
        after: Option<(&Slc, KeyId)>,
        limit: u32,
    ) -> Result<Vec<(Slc, WrappedKey)>> {
        self.check().await?;
        self.inner.wrapped_keys(after, limit).await
    }
    async fn master_key_check(&self, proposed: &[u8]) -> Result<Vec<u8>> {
        self.check().await?;
        self.inner.master_key_check(proposed).await
    }
    async fn reseal(&self, changes: &[Reseal]) -> Result<u64> {
        self.check().await?;
        self.inner.reseal(changes).await
    }
    async fn admission(
        &self,
        slc: &Slc,
        server: &RecordingServerId,
        key: KeyId,
    ) -> Result<Option<Admission>> {
        self.check().await?;
        self.inner.admission(slc, server, key).await
    }
    async fn admissions(
        &self,
        queries: &[AdmissionQuery],
    ) -> Result<Vec<Result<Option<Admission>>>> {
        self.check().await?;
        self.inner.admissions(queries).await
    }
    async fn record_signs_of_life(&self, batch: &[SignOfLife]) -> Result<Vec<WriteOutcome>> {
        self.check().await?;
        self.inner.record_signs_of_life(batch).await
    }
    async fn apply_status_report(&self, report: &StatusWrite) -> Result<WriteOutcome> {
        self.check().await?;
        self.inner.apply_status_report(report).await
    }
    async fn apply_availability(
        &self,
        changes: &[AvailabilityChange],
        epoch: DowntimeEpoch,
    ) -> Result<AvailabilityOutcome> {
        self.check().await?;
        self.inner.apply_availability(changes, epoch).await
    }
    async fn record_downtime(&self, window: DowntimeWindow) -> Result<()> {
        self.check().await?;
        self.inner.record_downtime(window).await
    }
    async fn downtime(&self, after: Timestamp) -> Result<DowntimeLog> {
        self.check().await?;
        self.inner.downtime(after).await
    }
    async fn changes(&self, after: EventId, limit: u32) -> Result<Vec<ChangeEvent>> {
        self.check().await?;
        self.inner.changes(after, limit).await
    }
    async fn latest_change(&self) -> Result<EventId> {
        self.check().await?;
        self.inner.latest_change().await
    }
    async fn prune_changes(&self, before: Timestamp, through: EventId) -> Result<u64> {
        self.check().await?;
        self.inner.prune_changes(before, through).await
    }
    async fn create_invitation(&self, invitation: &InvitationRecord) -> Result<()> {
        self.check().await?;
        self.inner.create_invitation(invitation).await
    }
    async fn accept_invitation(
        &self,
        hash: &TokenHash,
        password_hash: &str,
        at: Timestamp,
    ) -> Result<User> {
        self.check().await?;
        self.inner.accept_invitation(hash, password_hash, at).await
    }
    async fn invitation_open(&self, hash: &TokenHash, at: Timestamp) -> Result<bool> {
        self.check().await?;
        self.inner.invitation_open(hash, at).await
    }
    async fn user_credentials(&self, login: &Login) -> Result<Option<(User, String)>> {
        self.check().await?;
        self.inner.user_credentials(login).await
    }
    async fn users(&self, reseller: &ResellerId) -> Result<Vec<User>> {
        self.check().await?;
        self.inner.users(reseller).await
    }
    async fn remove_user(&self, reseller: &ResellerId, login: &Login) -> Result<()> {
        self.check().await?;
        self.inner.remove_user(reseller, login).await
    }
    async fn create_session(&self, session: &SessionRecord) -> Result<()> {
        self.check().await?;
        self.inner.create_session(session).await
    }
    async fn session(&self, hash: &TokenHash, now: Timestamp) -> Result<Option<SessionRecord>> {
        self.check().await?;
        self.inner.session(hash, now).await
    }
    async fn delete_session(&self, hash: &TokenHash) -> Result<()> {
        self.check().await?;
        self.inner.delete_session(hash).await
    }
    async fn prune_sessions(&self, now: Timestamp, tokens_ended_before: Timestamp) -> Result<u64> {
        self.check().await?;
        self.inner.prune_sessions(now, tokens_ended_before).await
    }
    async fn create_api_token(&self, token: &ApiTokenRecord) -> Result<()> {
        self.check().await?;
        self.inner.create_api_token(token).await
    }
    async fn api_token(&self, id: &str) -> Result<Option<ApiTokenRecord>> {
        self.check().await?;
        self.inner.api_token(id).await
    }
    async fn api_tokens(&self, reseller: &ResellerId) -> Result<Vec<ApiTokenRecord>> {
        self.check().await?;
        self.inner.api_tokens(reseller).await
    }
    async fn revoke_api_token(&self, reseller: &ResellerId, id: &str, at: Timestamp) -> Result<()> {
        self.check().await?;
        self.inner.revoke_api_token(reseller, id, at).await
    }
    async fn create_channel(&self, channel: &ChannelRecord) -> Result<()> {
        self.check().await?;
        self.inner.create_channel(channel).await
    }
    async fn channels(&self, reseller: Option<&ResellerId>) -> Result<Vec<ChannelRecord>> {
        self.check().await?;
        self.inner.channels(reseller).await
    }
    async fn delete_channel(
        &self,
        reseller: &ResellerId,
        id: &ChannelId,
        at: Timestamp,
    ) -> Result<()> {
        self.check().await?;
        self.inner.delete_channel(reseller, id, at).await
    }
    async fn create_maintenance(&self, window: &MaintenanceWindow) -> Result<()> {
        self.check().await?;
        self.inner.create_maintenance(window).await
    }
    async fn maintenance_windows(
        &self,
        reseller: Option<&ResellerId>,
    ) -> Result<Vec<MaintenanceWindow>> {
        self.check().await?;
        self.inner.maintenance_windows(reseller).await
    }
    async fn report_maintenance_windows(
        &self,
        reseller: &ResellerId,
        since: Timestamp,
    ) -> Result<Vec<MaintenanceWindow>> {
        self.check().await?;
        self.inner.report_maintenance_windows(reseller, since).await
    }
    async fn delete_maintenance(
        &self,
        reseller: &ResellerId,
        id: &WindowId,
        at: Timestamp,
    ) -> Result<()> {
        self.check().await?;
        self.inner.delete_maintenance(reseller, id, at).await
    }
    async fn notifier_lease(
        &self,
        node: &str,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Option<NotifierMark>> {
        self.check().await?;
        self.inner.notifier_lease(node, now, lease).await
    }
    async fn release_notifier_lease(&self, node: &str) -> Result<bool> {
        self.check().await?;
        self.inner.release_notifier_lease(node).await
    }
    async fn notifier_position(&self) -> Result<NotifierMark> {
        self.check().await?;
        self.inner.notifier_position().await
    }
    async fn notification_states(
        &self,
        keys: &[(ChannelId, Slc)],
    ) -> Result<Vec<NotificationState>> {
        self.check().await?;
        self.inner.notification_states(keys).await
    }
    async fn due_notification_states(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<NotificationState>> {
        self.check().await?;
        self.inner.due_notification_states(now, limit).await
    }
    async fn commit_notifications(&self, commit: NotifierCommit) -> Result<Committed> {
        self.check().await?;
        self.window_if_set().await?;
        self.inner.commit_notifications(commit).await
    }
    async fn enqueue_notifications(&self, entries: &[NewOutboxEntry]) -> Result<()> {
        self.check().await?;
        self.inner.enqueue_notifications(entries).await
    }
    async fn enqueue_channel_test(&self, entry: &NewOutboxEntry) -> Result<()> {
        self.check().await?;
        self.inner.enqueue_channel_test(entry).await
    }
    async fn release_claims(&self, node: &str, ids: &[u64]) -> Result<u64> {
        self.check().await?;
        self.inner.release_claims(node, ids).await
    }
    async fn release_every_claim(&self, node: &str) -> Result<u64> {
        self.check().await?;
        self.inner.release_every_claim(node).await
    }
    async fn claim_deliveries(
        &self,
        node: &str,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>> {
        self.check().await?;
        self.inner.claim_deliveries(node, now, lease, limit).await
    }
    async fn finish_deliveries(
        &self,
        node: &str,
        at: Timestamp,
        finished: &[(u64, DeliveryOutcome)],
    ) -> Result<()> {
        self.check().await?;
        self.inner.finish_deliveries(node, at, finished).await
    }
    async fn outbox(
        &self,
        reseller: &ResellerId,
        filter: OutboxFilter,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>> {
        self.check().await?;
        self.inner.outbox(reseller, filter, limit).await
    }
    async fn prune_outbox(&self, before: Timestamp, limit: u32) -> Result<u64> {
        self.check().await?;
        self.inner.prune_outbox(before, limit).await
    }
    async fn overview(&self, reseller: &ResellerId, query: &OverviewQuery) -> Result<OverviewPage> {
        self.check().await?;
        self.inner.overview(reseller, query).await
    }
    async fn installation_detail(
        &self,
        reseller: &ResellerId,
        slc: &Slc,
        history_limit: u32,
    ) -> Result<Option<InstallationDetail>> {
        self.check().await?;
        self.transfer_if_set().await?;
        self.inner
            .installation_detail(reseller, slc, history_limit)
            .await
    }
    async fn installation_details(
        &self,
        reseller: &ResellerId,
        slcs: &[Slc],
    ) -> Result<Vec<InstallationDetail>> {
        self.check().await?;
        self.transfer_if_set().await?;
        self.inner.installation_details(reseller, slcs).await
    }
    async fn uptime_histories(
        &self,
        reseller: &ResellerId,
        only: Option<&Slc>,
        period: Period,
    ) -> Result<Vec<InstallationHistory>> {
        self.check().await?;
        self.inner.uptime_histories(reseller, only, period).await
    }
}
