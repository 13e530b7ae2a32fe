//! Master-key rotation: re-sealing every stored secret (installation keys,
//! channels) under the current master key, once each node accepts the
//! earlier key too ([`Config::with_previous_master_keys`]). Online and
//! idempotent: a secret is replaced only if it still holds what was read.

use super::{Carewatch, Config};
use crate::error::Result;
use crate::ids::Slc;
use crate::seal::{KeyId, SealedUnder};
use crate::store::{Reseal, SealedItem};

/// Installation keys read and re-sealed per transaction.
const KEYS_PER_STEP: u32 = 500;

/// How many names of secrets no key opens a report keeps.
const NAMED_UNOPENABLE: usize = 20;

/// What [`Carewatch::reseal_secrets`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResealReport {
    /// Installation keys moved to the current master key.
    pub keys_resealed: u64,
    /// Installation keys already under it.
    pub keys_current: u64,
    /// Channels moved to the current master key.
    pub channels_resealed: u64,
    /// Channels already under it.
    pub channels_current: u64,
    /// Secrets left as they were because they changed between the read and
    /// the write (another rotation ran at once): run it again.
    pub changed_meanwhile: u64,
    /// Secrets no configured key opens (sealed under a key this node was
    /// not given, or altered): left as they were.
    pub unopenable: u64,
    /// The first of them, named.
    pub unopenable_named: Vec<String>,
    /// How many earlier master keys the node holds (none: nothing can be
    /// moved).
    pub previous_keys: u32,
}

impl ResealReport {
    /// Whether every secret is now under the current key.
    pub fn complete(&self) -> bool {
        self.changed_meanwhile == 0 && self.unopenable == 0
    }

    fn refuse(&mut self, what: String) {
        self.unopenable += 1;
        if self.unopenable_named.len() < NAMED_UNOPENABLE {
            self.unopenable_named.push(what);
        }
    }
}

impl Carewatch {
    /// Re-seals under the current master key every installation key and
    /// channel that an earlier key (given with
    /// [`Config::with_previous_master_keys`]) sealed. Run it once every
    /// node accepts both keys; afterwards the earlier key can be dropped.
    /// Operator only (it reaches every reseller's secrets).
    pub async fn reseal_secrets(&self) -> Result<ResealReport> {
        let config = &self.inner.config;
        let store = &self.inner.store;
        let mut report = ResealReport {
            previous_keys: u32::try_from(config.master_keys.previous_count()).unwrap_or(u32::MAX),
            ..ResealReport::default()
        };
        let mut after: Option<(Slc, KeyId)> = None;
        loop {
            let page = store
                .wrapped_keys(after.as_ref().map(|(slc, id)| (slc, *id)), KEYS_PER_STEP)
                .await?;
            let changes = page
                .iter()
                .filter_map(
                    |(slc, wrapped)| match config.master_keys.unwrap_key(slc, wrapped) {
                        Ok((_, SealedUnder::Current)) => {
                            report.keys_current += 1;
                            None
                        }
                        Ok((key, SealedUnder::Previous)) => Some(Reseal {
                            item: SealedItem::InstallationKey {
                                slc: slc.clone(),
                                id: wrapped.id,
                            },
                            old: wrapped.sealed.clone(),
                            new: config.master_keys.current().wrap(slc, &key).sealed,
                        }),
                        Err(_) => {
                            report.refuse(format!("key {} of installation {slc}", wrapped.id));
                            None
                        }
                    },
                )
                .collect::<Vec<_>>();
            let replaced = store.reseal(&changes).await?;
            report.keys_resealed += replaced;
            report.changed_meanwhile += changes.len() as u64 - replaced;
            match page.last() {
                Some((slc, wrapped)) if page.len() == KEYS_PER_STEP as usize => {
                    after = Some((slc.clone(), wrapped.id));
                }
                _ => break,
            }
        }
        let changes = reseal_channels(config, store.channels(None).await?, &mut report);
        let replaced = store.reseal(&changes).await?;
        report.channels_resealed += replaced;
        report.changed_meanwhile += changes.len() as u64 - replaced;
        tracing::info!(
            keys_resealed = report.keys_resealed,
            channels_resealed = report.channels_resealed,
            changed_meanwhile = report.changed_meanwhile,
            unopenable = report.unopenable,
            "secrets re-sealed under the current master key"
        );
        Ok(report)
    }
}

/// The channels an earlier key sealed, sealed again under the current one.
fn reseal_channels(
    config: &Config,
    channels: Vec<crate::notification::ChannelRecord>,
    report: &mut ResealReport,
) -> Vec<Reseal> {
    let mut changes = Vec::new();
    for channel in channels {
        let context = channel.id.as_str().as_bytes();
        match config.master_keys.open_secret(context, &channel.sealed) {
            Ok((_, SealedUnder::Current)) => report.channels_current += 1,
            Ok((plain, SealedUnder::Previous)) => changes.push(Reseal {
                new: config.master_keys.current().seal_secret(context, &plain),
                item: SealedItem::Channel(channel.id),
                old: channel.sealed,
            }),
            Err(_) => report.refuse(format!(
                "channel {} of reseller {}",
                channel.id, channel.reseller
            )),
        }
    }
    changes
}
