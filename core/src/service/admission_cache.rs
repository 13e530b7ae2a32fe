//! Admissions remembered between messages.
//!
//! Reading an installation, its key and the server for every message was
//! the largest part of a heartbeat's cost (a third of the server's
//! instructions on SQLite, a round trip per batch on PostgreSQL). A node
//! remembers, per installation and key id, the installation as last read,
//! its key already unwrapped, and the admission's version. A heartbeat
//! judged on that is written with the version, and the store applies it only
//! if the version is still current, in the same statement: a change made on
//! any node (consent, Care Plus, keys, a transfer) is seen by the next write,
//! as when every message read its admission. Anything but the common case
//! comes back as `Readmit`, and ingest forgets the entry and reads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::ids::Slc;
use crate::installation::Installation;
use crate::seal::{InstallationKey, KeyId};
use crate::store::AdmissionVersion;

/// What a heartbeat is judged on without reading.
#[derive(Debug)]
pub(super) struct RememberedAdmission {
    pub(super) installation: Installation,
    pub(super) key: InstallationKey,
    pub(super) version: AdmissionVersion,
}

/// Entries by installation and key id. foldhash rather than SipHash (a
/// third of the lookup's cost): only a message opened with its key and
/// admitted adds an entry, so nobody chooses the keys to collide.
type Entries = HashMap<(Slc, KeyId), Arc<RememberedAdmission>, foldhash::fast::RandomState>;

/// Remembered admissions, at most `capacity` of them.
#[derive(Debug)]
pub(super) struct AdmissionCache {
    entries: Mutex<Entries>,
    capacity: usize,
}

impl AdmissionCache {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::default()),
            capacity,
        }
    }

    pub(super) fn get(&self, slc: &Slc, key: KeyId) -> Option<Arc<RememberedAdmission>> {
        if self.capacity == 0 {
            return None;
        }
        // Borrowing the key would need a second map level; an SLC is short.
        self.lock().get(&(slc.clone(), key)).cloned()
    }

    /// Remembers an admission just read, replacing an older one. When full,
    /// everything is forgotten at once: each forgotten entry costs one read
    /// when its installation next sends, and the work stays constant per
    /// entry (evicting one by one from the front of a hash table walks a
    /// growing run of emptied slots under the lock).
    pub(super) fn remember(&self, slc: &Slc, admission: RememberedAdmission) {
        if self.capacity == 0 {
            return;
        }
        let key = (slc.clone(), admission.key.id());
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(key, Arc::new(admission));
    }

    /// Forgets an entry the store found out of date.
    pub(super) fn forget(&self, slc: &Slc, key: KeyId) {
        self.lock().remove(&(slc.clone(), key));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // The map is valid after any panic (each change is one call).
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ResellerId;
    use crate::installation::Product;
    use crate::time::Timestamp;

    fn remembered(slc: &Slc, key: KeyId, version: i64) -> RememberedAdmission {
        RememberedAdmission {
            installation: Installation {
                slc: slc.clone(),
                reseller: ResellerId::new("acme").expect("valid reseller id"),
                product: Product::new("XProtect", "2025 R1").expect("valid product"),
                subscription_expires_at: None,
                consent: true,
                registered_at: Timestamp::from_millis(0),
            },
            key: InstallationKey::generate(key),
            version: AdmissionVersion(version),
        }
    }

    #[test]
    fn holds_at_most_its_capacity_and_keeps_the_newest_version() {
        let cache = AdmissionCache::new(2);
        let slcs: Vec<Slc> = (0..3)
            .map(|i| Slc::new(&format!("SLC-CACHE-{i}")).expect("valid SLC"))
            .collect();
        for slc in &slcs {
            cache.remember(slc, remembered(slc, KeyId::new(1), 1));
        }
        assert_eq!(
            cache.len(),
            1,
            "full at the third: forgotten, then the third kept"
        );
        assert!(cache.get(&slcs[2], KeyId::new(1)).is_some());
        assert!(cache.get(&slcs[0], KeyId::new(1)).is_none());
        cache.remember(&slcs[2], remembered(&slcs[2], KeyId::new(1), 7));
        let entry = cache.get(&slcs[2], KeyId::new(1)).expect("remembered");
        assert_eq!(entry.version, AdmissionVersion(7));
        assert!(cache.get(&slcs[2], KeyId::new(2)).is_none());
        cache.forget(&slcs[2], KeyId::new(1));
        assert!(cache.get(&slcs[2], KeyId::new(1)).is_none());
    }

    #[test]
    fn remembers_nothing_at_capacity_zero() {
        let cache = AdmissionCache::new(0);
        let slc = Slc::new("SLC-CACHE-0").expect("valid SLC");
        cache.remember(&slc, remembered(&slc, KeyId::new(1), 1));
        assert!(cache.get(&slc, KeyId::new(1)).is_none());
    }
}
