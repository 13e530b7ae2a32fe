//! Notifications through the facade: a reseller admin's channels and
//! maintenance windows, what the outbox holds, and what delivery needs
//! (claims, outcomes, a channel's opened destination).

use zeroize::Zeroizing;

use super::Carewatch;
use crate::audit::Action;
use crate::error::{Error, Result};
use crate::ids::{ResellerId, Slc};
use crate::notification::maintenance::{MaintenanceWindow, WindowId};
use crate::notification::{
    ChannelId, ChannelRecord, ChannelRules, DeliveryOutcome, DeliveryStatus, Destination,
    NewOutboxEntry, OutboxEntry, OutboxFilter, payload,
};
use crate::team::{self, User};
use crate::time::Timestamp;

/// A channel as its admin sees it: the record and where it delivers
/// (described without secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelView {
    /// As stored.
    pub record: ChannelRecord,
    /// E.g. "webhook to hooks.example.net", "email to ops@acme.example".
    pub destination: String,
}

/// What delivery needs to send on a channel: its destination and, for a
/// webhook, its signing secret (never printed: see the `Debug` below).
pub struct OpenedChannel {
    /// The channel.
    pub record: ChannelRecord,
    /// Where to send.
    pub destination: Destination,
    /// The webhook signing secret.
    pub signing_secret: Option<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for OpenedChannel {
    /// The record and the destination's description: the URL and the
    /// signing secret are what a receiver trusts, and logs are not theirs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedChannel")
            .field("record", &self.record)
            .field("destination", &self.destination.describe())
            .field(
                "signing_secret",
                &self.signing_secret.as_ref().map(|_| "(hidden)"),
            )
            .finish()
    }
}

/// The sealed part of a channel: its destination, a newline, its signing
/// secret in hex (empty for non-webhooks).
fn seal_channel(
    carewatch: &Carewatch,
    id: &ChannelId,
    destination: &Destination,
    secret: Option<&str>,
) -> Vec<u8> {
    let plain = Zeroizing::new(format!(
        "{}\n{}",
        secret.unwrap_or_default(),
        destination.encode()
    ));
    carewatch
        .inner
        .config
        .master_keys
        .current()
        .seal_secret(id.as_str().as_bytes(), plain.as_bytes())
}

impl Carewatch {
    /// Creates a channel for the acting admin's reseller. Returns it and,
    /// for a webhook, the signing secret, shown this once (the receiver
    /// checks signatures with it). `NotFound` for a chosen installation that
    /// is missing or another reseller's.
    pub async fn create_channel(
        &self,
        acting: &User,
        name: &str,
        destination: Destination,
        rules: ChannelRules,
    ) -> Result<(ChannelRecord, Option<Zeroizing<String>>)> {
        team::require_admin(acting)?;
        let destination = destination.validate()?;
        let rules = rules.validate()?;
        if let Some(only) = &rules.installations {
            // As a window over one installation: a missing one, or another
            // reseller's, is NotFound (it would never be notified about).
            for slc in only {
                self.require_owned(&acting.reseller, slc).await?;
            }
        }
        let id = ChannelId::generate();
        let secret = matches!(destination, Destination::Webhook { .. })
            .then(|| team::issue_secret("whsec").token);
        let record = ChannelRecord {
            sealed: seal_channel(
                self,
                &id,
                &destination,
                secret.as_deref().map(|s| s.as_str()),
            ),
            kind: destination.kind().to_owned(),
            id,
            reseller: acting.reseller.clone(),
            name: team::check_name(name)?,
            rules,
            created_at: self.now(),
            created_by: acting.login.clone(),
            status: DeliveryStatus::default(),
        };
        self.inner.store.create_channel(&record).await?;
        tracing::info!(reseller = %record.reseller, channel = %record.id, kind = %record.kind, by = %acting.login, "channel created");
        self.audited(
            Some(acting),
            Action::ChannelCreated,
            &record.id,
            format!("{} {:?}", record.kind, record.name),
        )
        .await;
        Ok((record, secret))
    }

    /// A reseller's channels, their destinations described without secrets.
    /// A channel that cannot be opened (sealed under another master key, or
    /// damaged) is listed with that error as its destination, so the others
    /// still show.
    pub async fn channels(&self, reseller: &ResellerId) -> Result<Vec<ChannelView>> {
        let records = self.inner.store.channels(Some(reseller)).await?;
        Ok(records
            .into_iter()
            .map(|record| match self.open_channel(record.clone()) {
                Ok(opened) => ChannelView {
                    destination: opened.destination.describe(),
                    record: opened.record,
                },
                Err(e) => ChannelView {
                    destination: format!("{} (cannot be opened: {e})", record.kind),
                    record,
                },
            })
            .collect())
    }

    /// Opens a stored channel (delivery only: it holds the secrets).
    pub fn open_channel(&self, record: ChannelRecord) -> Result<OpenedChannel> {
        let (plain, _) = self
            .inner
            .config
            .master_keys
            .open_secret(record.id.as_str().as_bytes(), &record.sealed)?;
        let text = std::str::from_utf8(&plain)
            .map_err(|e| crate::store::columns::corrupt("channel", e))?;
        let (secret, destination) = text
            .split_once('\n')
            .ok_or_else(|| crate::store::columns::corrupt("channel", "no secret line"))?;
        Ok(OpenedChannel {
            destination: Destination::decode(destination)?,
            signing_secret: (!secret.is_empty())
                .then(|| Zeroizing::new(secret.as_bytes().to_vec())),
            record,
        })
    }

    /// Deletes a channel of the acting admin's reseller.
    pub async fn delete_channel(&self, acting: &User, id: &ChannelId) -> Result<()> {
        team::require_admin(acting)?;
        self.inner
            .store
            .delete_channel(&acting.reseller, id, self.now())
            .await?;
        tracing::info!(reseller = %acting.reseller, channel = %id, by = %acting.login, "channel deleted");
        self.audited(Some(acting), Action::ChannelDeleted, id, "")
            .await;
        Ok(())
    }

    /// Queues a test notification on a channel of the acting admin's
    /// reseller ("send a test"); its result shows as the channel's last
    /// delivery.
    pub async fn test_channel(&self, acting: &User, id: &ChannelId) -> Result<()> {
        team::require_admin(acting)?;
        let channel = self
            .inner
            .store
            .channels(Some(&acting.reseller))
            .await?
            .into_iter()
            .find(|c| c.id == *id)
            .ok_or_else(|| Error::NotFound {
                what: format!("channel {id}"),
            })?;
        let now = self.now();
        // Two tests in one millisecond are two tests: a random part keeps
        // the second key from colliding with the first (left alone).
        let mut nonce = [0u8; 4];
        crate::seal::fill_random_bytes(&mut nonce);
        let nonce = u32::from_be_bytes(nonce);
        let key = format!(
            "{}{}.{nonce:08x}",
            crate::store::limits::test_key_prefix(id),
            now.as_millis()
        );
        let body = payload::test(key.clone(), channel.reseller.as_str(), &channel.name, now);
        self.inner
            .store
            .enqueue_channel_test(&NewOutboxEntry {
                channel: channel.id,
                reseller: channel.reseller,
                slc: None,
                key,
                body: body.to_json(),
                created_at: now,
                first_attempt_at: now,
            })
            .await?;
        self.audited(Some(acting), Action::ChannelTested, id, &channel.name)
            .await;
        Ok(())
    }

    /// Sets a maintenance window for the acting admin's reseller (one of
    /// its installations, or all). `NotFound` for an installation that is
    /// missing or another reseller's.
    #[allow(clippy::too_many_arguments)] // a window's fields
    pub async fn create_maintenance(
        &self,
        acting: &User,
        slc: Option<&Slc>,
        starts_at: Timestamp,
        length: std::time::Duration,
        every: Option<std::time::Duration>,
        reason: &str,
    ) -> Result<MaintenanceWindow> {
        team::require_admin(acting)?;
        if let Some(slc) = slc {
            self.require_owned(&acting.reseller, slc).await?;
        }
        let window = MaintenanceWindow {
            id: WindowId::generate(),
            reseller: acting.reseller.clone(),
            slc: slc.cloned(),
            starts_at,
            length,
            every,
            reason: reason.trim().to_owned(),
            created_by: acting.login.clone(),
            created_at: self.now(),
            deleted_at: None,
        }
        .validate()?;
        // The bound on windows (store::limits) is checked by the store, in
        // the transaction that stores it. A one-off window that has ended
        // is one interval: refused, it would exclude nothing.
        let now = window.created_at;
        if window.every.is_none() && window.starts_at.saturating_add(window.length) <= now {
            return Err(Error::InvalidInput {
                field: "maintenance window",
                reason: "it has ended already: a window excludes nothing before it is made".into(),
            });
        }
        self.inner.store.create_maintenance(&window).await?;
        let scope = window
            .slc
            .as_ref()
            .map_or("all installations".to_owned(), |s| s.to_string());
        self.audited(
            Some(acting),
            Action::MaintenanceCreated,
            &window.id,
            format!(
                "{scope}, from {} for {} s{}: {}",
                window.starts_at,
                window.length.as_secs(),
                window
                    .every
                    .map_or(String::new(), |e| format!(", every {} s", e.as_secs())),
                window.reason
            ),
        )
        .await;
        Ok(window)
    }

    /// A reseller's maintenance windows.
    pub async fn maintenance_windows(
        &self,
        reseller: &ResellerId,
    ) -> Result<Vec<MaintenanceWindow>> {
        self.inner.store.maintenance_windows(Some(reseller)).await
    }

    /// Deletes a maintenance window of the acting admin's reseller.
    pub async fn delete_maintenance(&self, acting: &User, id: &WindowId) -> Result<()> {
        team::require_admin(acting)?;
        self.inner
            .store
            .delete_maintenance(&acting.reseller, id, self.now())
            .await?;
        self.audited(Some(acting), Action::MaintenanceDeleted, id, "")
            .await;
        Ok(())
    }

    /// When `slc` of `reseller` is in maintenance now, until when.
    pub async fn maintenance_until(
        &self,
        reseller: &ResellerId,
        slc: &Slc,
    ) -> Result<Option<Timestamp>> {
        let windows = self.maintenance_windows(reseller).await?;
        Ok(crate::notification::maintenance::in_maintenance(
            &windows,
            slc,
            self.now(),
        ))
    }

    /// A reseller's notifications, newest first (pending, failed or all).
    pub async fn outbox(
        &self,
        reseller: &ResellerId,
        filter: OutboxFilter,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>> {
        self.inner
            .store
            .outbox(reseller, filter, limit.clamp(1, 500))
            .await
    }

    /// Claims notifications due now for this node (delivery).
    pub async fn claim_deliveries(
        &self,
        lease: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>> {
        self.inner
            .store
            .claim_deliveries(&self.inner.config.node_id, self.now(), lease, limit)
            .await
    }

    /// Ends this node's claims on these entries, those still pending
    /// (delivery, when it stops, gives those it claimed and did not
    /// finish): another node, or this one restarted, sends them at once
    /// instead of after their lease. Returns how many.
    pub async fn release_deliveries(&self, ids: &[u64]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.inner
            .store
            .release_claims(&self.inner.config.node_id, ids)
            .await
    }

    /// Ends every claim this node holds: its previous run's, as delivery
    /// starts (a node id names one running node), so that what a killed run
    /// claimed, or a stopped one could not release, is sent at once instead
    /// of after its lease. Returns how many.
    pub async fn release_own_claims(&self) -> Result<u64> {
        self.inner
            .store
            .release_every_claim(&self.inner.config.node_id)
            .await
    }

    /// Ends this node's notifier lease, if it holds it (the notifier
    /// stopping cleanly): another node's notifier carries on at its next
    /// step, not once the lease runs out. Returns whether it held it.
    pub async fn release_notifier(&self) -> Result<bool> {
        self.inner
            .store
            .release_notifier_lease(&self.inner.config.node_id)
            .await
    }

    /// Records how an attempt ended (delivery).
    pub async fn finish_delivery(&self, id: u64, outcome: &DeliveryOutcome) -> Result<()> {
        self.inner
            .store
            .finish_delivery(id, &self.inner.config.node_id, outcome, self.now())
            .await
    }

    /// Records how attempts ended, in the order they ended, in one write
    /// (delivery records a batch's outcomes together).
    pub async fn finish_deliveries(&self, finished: &[(u64, DeliveryOutcome)]) -> Result<()> {
        if finished.is_empty() {
            return Ok(());
        }
        self.inner
            .store
            .finish_deliveries(&self.inner.config.node_id, self.now(), finished)
            .await
    }

    /// Every channel, each opened on its own (delivery looks channels up by
    /// id). One that cannot be opened (sealed under another master key, or
    /// damaged) comes with its error instead, so it holds up only its own
    /// notifications; an error of the whole call means the channels could
    /// not be read at all.
    pub async fn delivery_channels(&self) -> Result<Vec<(ChannelId, Result<OpenedChannel>)>> {
        Ok(self
            .inner
            .store
            .channels(None)
            .await?
            .into_iter()
            .map(|record| (record.id.clone(), self.open_channel(record)))
            .collect())
    }
}
