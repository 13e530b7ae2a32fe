//! Master-key rotation: re-sealing every stored secret (installation keys,
//! channels) under the current master key, once each node accepts the
//! earlier key too ([`Config::with_previous_master_keys`]). Online and
//! idempotent: a secret is replaced only if it still holds what was read.

use super::{Carewatch, Config};
use crate::audit::Action;
use crate::error::{Error, Result};
use crate::ids::Slc;
use crate::notification::ChannelRecord;
use crate::seal::{KeyId, SealedUnder, WrappedKey};
use crate::store::{Reseal, SealedItem, Store};

/// Installation keys read and re-sealed per transaction.
const KEYS_PER_STEP: u32 = 500;

/// How many names of secrets no key opens a report keeps.
const NAMED_UNOPENABLE: usize = 20;

/// Installation keys [`Config::check_master_keys`] tries.
const KEYS_CHECKED_AT_START: u32 = 16;

/// What [`Carewatch::reseal_secrets`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResealReport {
    /// The fingerprint ([`MasterKey::fingerprint`](crate::seal::MasterKey::fingerprint))
    /// of the key everything was re-sealed under.
    pub current_key: String,
    /// How many earlier master keys the node holds (none: nothing can be
    /// moved).
    pub previous_keys: u32,
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
    /// With `expected_current_key` (a fingerprint), refuses unless that is
    /// this node's current key: a node still on the old key would move
    /// everything back to it. Operator only (it reaches every reseller's
    /// secrets).
    pub async fn reseal_secrets(&self, expected_current_key: Option<&str>) -> Result<ResealReport> {
        self.reseal_in_steps(expected_current_key, KEYS_PER_STEP)
            .await
    }

    /// [`Carewatch::reseal_secrets`], reading `keys_per_step` keys at a time.
    pub(crate) async fn reseal_in_steps(
        &self,
        expected_current_key: Option<&str>,
        keys_per_step: u32,
    ) -> Result<ResealReport> {
        let config = &self.inner.config;
        let current_key = config.master_keys.current().fingerprint();
        if let Some(expected) = expected_current_key.filter(|e| *e != current_key) {
            return Err(Error::InvalidInput {
                field: "expected master key",
                reason: format!(
                    "this node's current master key is {current_key}, not {expected}: \
                     re-seal on a node started with the new key as its master key"
                ),
            });
        }
        let store = &self.inner.store;
        let mut report = ResealReport {
            current_key,
            previous_keys: u32::try_from(config.master_keys.previous_count()).unwrap_or(u32::MAX),
            ..ResealReport::default()
        };
        // Keys that do not open what the database holds are refused before
        // anything is moved.
        let check = config.checked_master_key_check(store.as_ref()).await?;
        let mut after: Option<(Slc, KeyId)> = None;
        loop {
            let page = store
                .wrapped_keys(after.as_ref().map(|(slc, id)| (slc, *id)), keys_per_step)
                .await?;
            let changes = reseal_keys(config, &page, &mut report);
            let replaced = store.reseal(&changes).await?;
            report.keys_resealed += replaced;
            report.changed_meanwhile += changes.len() as u64 - replaced;
            match page.last() {
                Some((slc, wrapped)) if page.len() == keys_per_step as usize => {
                    after = Some((slc.clone(), wrapped.id));
                }
                _ => break,
            }
        }
        let changes = reseal_channels(config, store.channels(None).await?, &mut report);
        let replaced = store.reseal(&changes).await?;
        report.channels_resealed += replaced;
        report.changed_meanwhile += changes.len() as u64 - replaced;
        // The master-key check last, and only once every secret these keys
        // open is under the current key (what none opens stays unopenable
        // either way): it is what lets a node with only that key start.
        if report.changed_meanwhile == 0
            && let Ok((_, SealedUnder::Previous)) = config
                .master_keys
                .open_secret(MASTER_KEY_CHECK_CONTEXT, &check)
        {
            let change = Reseal {
                item: SealedItem::MasterKeyCheck,
                old: check,
                new: config.seal_master_key_check(),
            };
            report.changed_meanwhile += 1 - store.reseal(&[change]).await?;
        }
        tracing::info!(
            current_key = %report.current_key,
            keys_resealed = report.keys_resealed,
            channels_resealed = report.channels_resealed,
            changed_meanwhile = report.changed_meanwhile,
            unopenable = report.unopenable,
            "secrets re-sealed under the current master key"
        );
        self.audited(
            None,
            Action::SecretsResealed,
            format!("master key {}", report.current_key),
            format!(
                "{} installation keys and {} channels re-sealed; {} changed meanwhile, {} open under no key",
                report.keys_resealed,
                report.channels_resealed,
                report.changed_meanwhile,
                report.unopenable
            ),
        )
        .await;
        Ok(report)
    }
}

impl Config {
    /// Whether these master keys open what `store` holds: of its first
    /// installation keys, at least one must open (a store without any
    /// passes), and so must its master-key check ([`Store::master_key_check`]),
    /// which the first node to start on a database stores. A node started
    /// with another deployment's master key, or a new random one beside an
    /// existing PostgreSQL database (or one that another node, started at
    /// the same time on a new database, made up too), would refuse every
    /// recording server and seal channels the other nodes cannot open:
    /// `carewatch serve` refuses to start instead. A check sealed under an
    /// earlier key passes (a rotation); [`Carewatch::reseal_secrets`]
    /// seals it again under the current one.
    pub async fn check_master_keys(&self, store: &dyn Store) -> Result<()> {
        self.checked_master_key_check(store).await.map(|_| ())
    }

    /// [`Config::check_master_keys`], returning the check it opened.
    async fn checked_master_key_check(&self, store: &dyn Store) -> Result<Vec<u8>> {
        let sample = store.wrapped_keys(None, KEYS_CHECKED_AT_START).await?;
        let opens =
            |(slc, wrapped): &(Slc, WrappedKey)| self.master_keys.unwrap_key(slc, wrapped).is_ok();
        if !(sample.is_empty() || sample.iter().any(opens)) {
            return Err(self.wrong_master_key(format!(
                "opens none of the first {} installation keys this database holds",
                sample.len()
            )));
        }
        let proposed = self.seal_master_key_check();
        let stored = store.master_key_check(&proposed).await?;
        match self
            .master_keys
            .open_secret(MASTER_KEY_CHECK_CONTEXT, &stored)
        {
            Ok((text, _)) if text.as_slice() == MASTER_KEY_CHECK_TEXT => Ok(stored),
            _ => Err(self.wrong_master_key(
                "does not open the master-key check this database holds".to_owned(),
            )),
        }
    }

    /// The master-key check sealed under the current key.
    fn seal_master_key_check(&self) -> Vec<u8> {
        self.master_keys
            .current()
            .seal_secret(MASTER_KEY_CHECK_CONTEXT, MASTER_KEY_CHECK_TEXT)
    }

    fn wrong_master_key(&self, what: String) -> Error {
        Error::InvalidInput {
            field: "master key",
            reason: format!(
                "master key {} {what}: its secrets were sealed under another key. Use the \
                 master.key the database was made with (with PostgreSQL, the other nodes'); \
                 during a rotation give the earlier key as a previous master key",
                self.master_keys.current().fingerprint(),
            ),
        }
    }
}

/// What the master-key check seals, and the context it is bound to (no
/// channel id holds a NUL, so it opens as nothing else).
const MASTER_KEY_CHECK_CONTEXT: &[u8] = b"\0master-key-check";
const MASTER_KEY_CHECK_TEXT: &[u8] = b"carewatch master key check v1";

/// The installation keys of `page` an earlier key sealed, sealed again
/// under the current one.
fn reseal_keys(
    config: &Config,
    page: &[(Slc, WrappedKey)],
    report: &mut ResealReport,
) -> Vec<Reseal> {
    let mut changes = Vec::new();
    for (slc, wrapped) in page {
        match config.master_keys.unwrap_key(slc, wrapped) {
            Ok((_, SealedUnder::Current)) => report.keys_current += 1,
            Ok((key, SealedUnder::Previous)) => changes.push(Reseal {
                item: SealedItem::InstallationKey {
                    slc: slc.clone(),
                    id: wrapped.id,
                },
                old: wrapped.sealed.clone(),
                new: config.master_keys.current().wrap(slc, &key).sealed,
            }),
            Err(_) => report.refuse(format!("key {} of installation {slc}", wrapped.id)),
        }
    }
    changes
}

/// The channels an earlier key sealed, sealed again under the current one.
fn reseal_channels(
    config: &Config,
    channels: Vec<ChannelRecord>,
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
