//! The `Store` implementation, by area.

mod admin;
mod audit;
mod availability;
mod feed;
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

use std::sync::Arc;

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
use carewatch_core::store::rules;
use carewatch_core::store::{
    Admission, AdmissionQuery, AvailabilityChange, AvailabilityOutcome, DowntimeEpoch, DowntimeLog,
    HistoryEvent, InstallationDetail, InstallationUpdate, OverviewPage, OverviewQuery, Reseal,
    Reseller, ServerRecord, SignOfLife, StatusWrite, Store, StoredKey, Transfer, WriteOutcome,
};
use carewatch_core::team::{ApiTokenRecord, InvitationRecord, Login, SessionRecord, User};
use carewatch_core::time::Timestamp;

use crate::SqliteStore;

#[async_trait]
impl Store for SqliteStore {
    fn for_background_reads(&self) -> Option<Arc<dyn Store>> {
        Some(Arc::new(SqliteStore::for_background_reads(self)))
    }

    async fn create_reseller(&self, reseller: &Reseller, token: &TokenHash) -> Result<()> {
        let (reseller, token) = (reseller.clone(), token.clone());
        self.write(move |tx| admin::create_reseller(tx, &reseller, &token))
            .await
    }

    async fn set_reseller_token(&self, id: &ResellerId, token: &TokenHash) -> Result<()> {
        let (id, token) = (id.clone(), token.clone());
        self.write(move |tx| admin::set_reseller_token(tx, &id, &token))
            .await
    }

    async fn reseller_token(&self, id: &ResellerId) -> Result<Option<TokenHash>> {
        let id = id.clone();
        self.read(move |tx| admin::reseller_token(tx, &id)).await
    }

    async fn resellers(&self) -> Result<Vec<Reseller>> {
        self.read(admin::resellers).await
    }

    async fn set_operator_token(&self, name: &ResellerId, token: &TokenHash) -> Result<()> {
        let (name, token) = (name.clone(), token.clone());
        self.write(move |tx| admin::set_operator_token(tx, &name, &token))
            .await
    }

    async fn operator_token(&self, name: &ResellerId) -> Result<Option<TokenHash>> {
        let name = name.clone();
        self.read(move |tx| admin::operator_token(tx, &name)).await
    }

    async fn has_operator(&self) -> Result<bool> {
        self.read(admin::has_operator).await
    }

    async fn add_first_operator(&self, name: &ResellerId, token: &TokenHash) -> Result<bool> {
        let (name, token) = (name.clone(), token.clone());
        self.write(move |tx| admin::add_first_operator(tx, &name, &token))
            .await
    }

    async fn register_installation(&self, installation: &Installation) -> Result<()> {
        let installation = installation.clone();
        self.write(move |tx| admin::register_installation(tx, &installation))
            .await
    }

    async fn update_installation(
        &self,
        slc: &Slc,
        update: &InstallationUpdate,
        at: Timestamp,
    ) -> Result<Installation> {
        let (slc, update) = (slc.clone(), update.clone());
        self.write(move |tx| admin::update_installation(tx, &slc, &update, at))
            .await
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        let record = record.clone();
        self.write(move |tx| audit::append_audit(tx, &record)).await
    }

    async fn audit_log(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let query = query.clone();
        self.read(move |tx| audit::audit_log(tx, &query)).await
    }

    async fn prune_audit(&self, before: Timestamp, limit: u32) -> Result<u64> {
        self.write(move |tx| retention::prune_audit(tx, before, limit))
            .await
    }

    async fn full_history(&self, slc: &Slc, limit: u32) -> Result<Vec<HistoryEvent>> {
        let slc = slc.clone();
        self.read(move |tx| history::full_history(tx, &slc, limit))
            .await
    }

    async fn transfer_installation(&self, transfer: &Transfer) -> Result<Installation> {
        let transfer = transfer.clone();
        self.write(move |tx| transfer::transfer_installation(tx, &transfer))
            .await
    }

    async fn installation(&self, slc: &Slc) -> Result<Option<Installation>> {
        let slc = slc.clone();
        self.read(move |tx| admin::installation(tx, &slc)).await
    }

    async fn park_expired(&self, now: Timestamp) -> Result<u32> {
        // Every sweep asks; almost always nothing ran out. Looked up on a
        // reader first, so such a sweep does not take the writer's turn
        // from the heartbeats (the write finds them again itself).
        if !self.read(move |tx| lifecycle::any_expired(tx, now)).await? {
            return Ok(0);
        }
        self.write(move |tx| lifecycle::park_expired(tx, now)).await
    }

    async fn delete_withdrawn_data(&self, before: Timestamp, at: Timestamp) -> Result<u32> {
        self.write(move |tx| lifecycle::delete_withdrawn_data(tx, before, at))
            .await
    }

    async fn decommission_server(
        &self,
        reseller: Option<&ResellerId>,
        slc: &Slc,
        server: &RecordingServerId,
        at: Timestamp,
    ) -> Result<bool> {
        let (reseller, slc, server) = (reseller.cloned(), slc.clone(), server.clone());
        self.write(move |tx| {
            lifecycle::decommission_server(tx, reseller.as_ref(), &slc, &server, at)
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
        let (reseller, slc, labels) = (reseller.clone(), slc.clone(), labels.clone());
        self.write(move |tx| admin::set_labels(tx, &reseller, &slc, &labels, at))
            .await
    }

    async fn add_installation_key(&self, slc: &Slc, key: &WrappedKey, at: Timestamp) -> Result<()> {
        let (slc, key) = (slc.clone(), key.clone());
        self.write(move |tx| admin::add_installation_key(tx, &slc, &key, at))
            .await
    }

    async fn installation_keys(&self, slc: &Slc) -> Result<Vec<StoredKey>> {
        let slc = slc.clone();
        self.read(move |tx| admin::installation_keys(tx, &slc))
            .await
    }

    async fn retire_installation_key(&self, slc: &Slc, id: KeyId, at: Timestamp) -> Result<()> {
        let slc = slc.clone();
        self.write(move |tx| admin::retire_installation_key(tx, &slc, id, at))
            .await
    }

    async fn wrapped_keys(
        &self,
        after: Option<(&Slc, KeyId)>,
        limit: u32,
    ) -> Result<Vec<(Slc, WrappedKey)>> {
        let after = after.map(|(slc, id)| (slc.clone(), id));
        self.read(move |tx| {
            rotation::wrapped_keys(tx, after.as_ref().map(|(s, id)| (s, *id)), limit)
        })
        .await
    }

    async fn master_key_check(&self, proposed: &[u8]) -> Result<Vec<u8>> {
        let proposed = proposed.to_vec();
        self.write(move |tx| rotation::master_key_check(tx, &proposed))
            .await
    }

    async fn reseal(&self, changes: &[Reseal]) -> Result<u64> {
        let changes = changes.to_vec();
        self.write(move |tx| rotation::reseal(tx, &changes)).await
    }

    async fn admission(
        &self,
        slc: &Slc,
        server: &RecordingServerId,
        key: KeyId,
    ) -> Result<Option<Admission>> {
        let (slc, server) = (slc.clone(), server.clone());
        self.read(move |tx| ingest::admission(tx, &slc, &server, key))
            .await
    }

    async fn admissions(
        &self,
        queries: &[AdmissionQuery],
    ) -> Result<Vec<Result<Option<Admission>>>> {
        // One blocking task and one read transaction for the whole batch.
        let queries = queries.to_vec();
        self.read(move |tx| {
            Ok(queries
                .iter()
                .map(|q| ingest::admission(tx, &q.slc, &q.server, q.key))
                .collect())
        })
        .await
    }

    async fn record_signs_of_life(&self, batch: &[SignOfLife]) -> Result<Vec<WriteOutcome>> {
        let batch = batch.to_vec();
        self.write(move |tx| {
            let shared = rules::shares_its_server(&batch);
            let mut in_place = ingest::InPlace::new();
            batch
                .iter()
                .zip(shared)
                .map(|(sign, shared)| {
                    if shared && sign.remembered.is_some() {
                        return Ok(WriteOutcome::Readmit);
                    }
                    ingest::record_sign_of_life(tx, &mut in_place, sign)
                })
                .collect()
        })
        .await
    }

    async fn apply_status_report(&self, report: &StatusWrite) -> Result<WriteOutcome> {
        let report = report.clone();
        self.write(move |tx| ingest::apply_status_report(tx, &report))
            .await
    }

    async fn due_servers(&self, now: Timestamp, limit: u32) -> Result<Vec<ServerRecord>> {
        self.read(move |tx| availability::due_servers(tx, now, limit))
            .await
    }

    async fn apply_availability(
        &self,
        changes: &[AvailabilityChange],
        epoch: DowntimeEpoch,
    ) -> Result<AvailabilityOutcome> {
        let changes = changes.to_vec();
        self.write(move |tx| availability::apply_availability(tx, &changes, epoch))
            .await
    }

    async fn mark_alive(&self, mark: &LivenessMark) -> Result<Option<DowntimeWindow>> {
        let mark = mark.clone();
        self.write(move |tx| availability::mark_alive(tx, &mark))
            .await
    }

    async fn mark_stopped(&self, node: &str, at: Timestamp) -> Result<()> {
        let node = node.to_owned();
        self.write(move |tx| availability::mark_stopped(tx, &node, at))
            .await
    }

    async fn record_downtime(&self, window: DowntimeWindow) -> Result<()> {
        self.write(move |tx| availability::record_downtime(tx, window))
            .await
    }

    async fn downtime(&self, after: Timestamp) -> Result<DowntimeLog> {
        self.read(move |tx| availability::downtime(tx, after)).await
    }

    async fn changes(&self, after: EventId, limit: u32) -> Result<Vec<ChangeEvent>> {
        self.read(move |tx| feed::changes(tx, after, limit)).await
    }

    async fn latest_change(&self) -> Result<EventId> {
        self.read(feed::head).await
    }

    async fn prune_changes(&self, before: Timestamp, through: EventId) -> Result<u64> {
        self.write(move |tx| feed::prune(tx, before, through)).await
    }

    async fn create_invitation(&self, invitation: &InvitationRecord) -> Result<()> {
        let invitation = invitation.clone();
        self.write(move |tx| team::create_invitation(tx, &invitation))
            .await
    }

    async fn accept_invitation(
        &self,
        hash: &TokenHash,
        password_hash: &str,
        at: Timestamp,
    ) -> Result<User> {
        let (hash, password_hash) = (hash.clone(), password_hash.to_owned());
        self.write(move |tx| team::accept_invitation(tx, &hash, &password_hash, at))
            .await
    }

    async fn invitation_open(&self, hash: &TokenHash, at: Timestamp) -> Result<bool> {
        let hash = hash.clone();
        self.read(move |tx| team::invitation_open(tx, &hash, at))
            .await
    }

    async fn user_credentials(&self, login: &Login) -> Result<Option<(User, String)>> {
        let login = login.clone();
        self.read(move |tx| team::user_credentials(tx, &login))
            .await
    }

    async fn users(&self, reseller: &ResellerId) -> Result<Vec<User>> {
        let reseller = reseller.clone();
        self.read(move |tx| team::users(tx, &reseller)).await
    }

    async fn remove_user(&self, reseller: &ResellerId, login: &Login) -> Result<()> {
        let (reseller, login) = (reseller.clone(), login.clone());
        self.write(move |tx| team::remove_user(tx, &reseller, &login))
            .await
    }

    async fn create_session(&self, session: &SessionRecord) -> Result<()> {
        let session = session.clone();
        self.write(move |tx| team::create_session(tx, &session))
            .await
    }

    async fn session(&self, hash: &TokenHash, now: Timestamp) -> Result<Option<SessionRecord>> {
        let hash = hash.clone();
        self.read(move |tx| team::session(tx, &hash, now)).await
    }

    async fn delete_session(&self, hash: &TokenHash) -> Result<()> {
        let hash = hash.clone();
        self.write(move |tx| team::delete_session(tx, &hash)).await
    }

    async fn prune_sessions(&self, now: Timestamp, tokens_ended_before: Timestamp) -> Result<u64> {
        self.write(move |tx| team::prune_sessions(tx, now, tokens_ended_before))
            .await
    }

    async fn create_api_token(&self, token: &ApiTokenRecord) -> Result<()> {
        let token = token.clone();
        self.write(move |tx| team::create_api_token(tx, &token))
            .await
    }

    async fn api_token(&self, id: &str) -> Result<Option<ApiTokenRecord>> {
        let id = id.to_owned();
        self.read(move |tx| team::api_token(tx, &id)).await
    }

    async fn api_tokens(&self, reseller: &ResellerId) -> Result<Vec<ApiTokenRecord>> {
        let reseller = reseller.clone();
        self.read(move |tx| team::api_tokens(tx, &reseller)).await
    }

    async fn revoke_api_token(&self, reseller: &ResellerId, id: &str, at: Timestamp) -> Result<()> {
        let (reseller, id) = (reseller.clone(), id.to_owned());
        self.write(move |tx| team::revoke_api_token(tx, &reseller, &id, at))
            .await
    }

    async fn create_channel(&self, channel: &ChannelRecord) -> Result<()> {
        let channel = channel.clone();
        self.write(move |tx| notifications::create_channel(tx, &channel))
            .await
    }

    async fn channels(&self, reseller: Option<&ResellerId>) -> Result<Vec<ChannelRecord>> {
        let reseller = reseller.cloned();
        self.read(move |tx| notifications::channels(tx, reseller.as_ref()))
            .await
    }

    async fn delete_channel(
        &self,
        reseller: &ResellerId,
        id: &ChannelId,
        at: Timestamp,
    ) -> Result<()> {
        let (reseller, id) = (reseller.clone(), id.clone());
        self.write(move |tx| notifications::delete_channel(tx, &reseller, &id, at))
            .await
    }

    async fn create_maintenance(&self, window: &MaintenanceWindow) -> Result<()> {
        let window = window.clone();
        self.write(move |tx| maintenance::create_maintenance(tx, &window))
            .await
    }

    async fn maintenance_windows(
        &self,
        reseller: Option<&ResellerId>,
    ) -> Result<Vec<MaintenanceWindow>> {
        let reseller = reseller.cloned();
        self.read(move |tx| maintenance::maintenance_windows(tx, reseller.as_ref(), None))
            .await
    }

    async fn report_maintenance_windows(
        &self,
        reseller: &ResellerId,
        since: Timestamp,
    ) -> Result<Vec<MaintenanceWindow>> {
        let reseller = reseller.clone();
        self.read(move |tx| maintenance::maintenance_windows(tx, Some(&reseller), Some(since)))
            .await
    }

    async fn delete_maintenance(
        &self,
        reseller: &ResellerId,
        id: &WindowId,
        at: Timestamp,
    ) -> Result<()> {
        let (reseller, id) = (reseller.clone(), id.clone());
        self.write(move |tx| maintenance::delete_maintenance(tx, &reseller, &id, at))
            .await
    }

    async fn notifier_lease(
        &self,
        node: &str,
        now: Timestamp,
        lease: std::time::Duration,
    ) -> Result<Option<NotifierMark>> {
        let node = node.to_owned();
        self.write(move |tx| notifications::notifier_lease(tx, &node, now, lease))
            .await
    }

    async fn release_notifier_lease(&self, node: &str) -> Result<bool> {
        let node = node.to_owned();
        self.write(move |tx| notifications::release_notifier_lease(tx, &node))
            .await
    }

    async fn notifier_position(&self) -> Result<NotifierMark> {
        self.read(notifications::notifier_position).await
    }

    async fn notification_states(
        &self,
        keys: &[(ChannelId, Slc)],
    ) -> Result<Vec<NotificationState>> {
        let keys = keys.to_vec();
        self.read(move |tx| notifications::notification_states(tx, &keys))
            .await
    }

    async fn due_notification_states(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<NotificationState>> {
        self.read(move |tx| notifications::due_notification_states(tx, now, limit))
            .await
    }

    async fn commit_notifications(&self, commit: NotifierCommit) -> Result<Committed> {
        self.write(move |tx| {
            Ok(match notifications::commit_notifications(tx, &commit)? {
                None => Committed::Refused,
                Some(ids) => Committed::Written {
                    claimed: commit.into_claimed(ids),
                },
            })
        })
        .await
    }

    async fn enqueue_notifications(&self, entries: &[NewOutboxEntry]) -> Result<()> {
        let entries = entries.to_vec();
        self.write(move |tx| notifications::enqueue_notifications(tx, &entries))
            .await
    }

    async fn enqueue_channel_test(&self, entry: &NewOutboxEntry) -> Result<()> {
        let entry = entry.clone();
        self.write(move |tx| notifications::enqueue_channel_test(tx, &entry))
            .await
    }

    async fn claim_deliveries(
        &self,
        node: &str,
        now: Timestamp,
        lease: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>> {
        let node = node.to_owned();
        self.write(move |tx| outbox::claim_deliveries(tx, &node, now, lease, limit))
            .await
    }

    async fn release_claims(&self, node: &str, ids: &[u64]) -> Result<u64> {
        let (node, ids) = (node.to_owned(), ids.to_vec());
        self.write(move |tx| outbox::release_claims(tx, &node, &ids))
            .await
    }

    async fn release_every_claim(&self, node: &str) -> Result<u64> {
        let node = node.to_owned();
        self.write(move |tx| outbox::release_every_claim(tx, &node))
            .await
    }

    async fn finish_deliveries(
        &self,
        node: &str,
        at: Timestamp,
        finished: &[(u64, DeliveryOutcome)],
    ) -> Result<()> {
        let (node, finished) = (node.to_owned(), finished.to_vec());
        self.write(move |tx| outbox::finish_deliveries(tx, &node, at, &finished))
            .await
    }

    async fn outbox(
        &self,
        reseller: &ResellerId,
        filter: OutboxFilter,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>> {
        let reseller = reseller.clone();
        self.read(move |tx| outbox::outbox(tx, &reseller, filter, limit))
            .await
    }

    async fn prune_outbox(&self, before: Timestamp, limit: u32) -> Result<u64> {
        self.write(move |tx| retention::prune_outbox(tx, before, limit))
            .await
    }

    async fn overview(&self, reseller: &ResellerId, query: &OverviewQuery) -> Result<OverviewPage> {
        let (reseller, query) = (reseller.clone(), query.clone());
        self.read(move |tx| reads::overview(tx, &reseller, &query))
            .await
    }

    async fn installation_detail(
        &self,
        reseller: &ResellerId,
        slc: &Slc,
        history_limit: u32,
    ) -> Result<Option<InstallationDetail>> {
        let (reseller, slc) = (reseller.clone(), slc.clone());
        self.read(move |tx| reads::installation_detail(tx, &reseller, &slc, history_limit))
            .await
    }

    async fn installation_details(
        &self,
        reseller: &ResellerId,
        slcs: &[Slc],
    ) -> Result<Vec<InstallationDetail>> {
        let (reseller, slcs) = (reseller.clone(), slcs.to_vec());
        self.read(move |tx| reads::installation_details(tx, &reseller, &slcs))
            .await
    }

    async fn uptime_histories(
        &self,
        reseller: &ResellerId,
        only: Option<&Slc>,
        period: Period,
    ) -> Result<Vec<InstallationHistory>> {
        let (reseller, only) = (reseller.clone(), only.cloned());
        self.read(move |tx| report::uptime_histories(tx, &reseller, only.as_ref(), period))
            .await
    }
}
