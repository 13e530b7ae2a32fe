//! What a reseller reads: overview and installation detail (the live watch
//! is in `feed`).
//! Another reseller's installation is indistinguishable from a missing one.

use super::Carewatch;
use crate::audit::Action;
use crate::availability::Availability;
use crate::error::{Error, Result};
use crate::ids::{RecordingServerId, ResellerId, Slc};
use crate::labels::Labels;
use crate::store::{InstallationDetail, OverviewPage, OverviewQuery};
use crate::team::{self, User};

impl Carewatch {
    /// A page of the reseller's installations, worst first. By default only
    /// those that are not Healthy.
    pub async fn overview(
        &self,
        reseller: &ResellerId,
        query: &OverviewQuery,
    ) -> Result<OverviewPage> {
        query.validate()?;
        self.inner.store.overview(reseller, query).await
    }

    /// `NotFound` unless `slc` is one of `reseller`'s installations (another
    /// reseller's reads like a missing one): for what names an installation
    /// (a watch, a window, a channel's chosen ones).
    pub(crate) async fn require_owned(&self, reseller: &ResellerId, slc: &Slc) -> Result<()> {
        match self.inner.store.installation(slc).await? {
            Some(installation) if installation.reseller == *reseller => Ok(()),
            _ => Err(Error::installation_not_found(slc)),
        }
    }

    /// One of the reseller's installations: servers, active conditions,
    /// recent history. `NotFound` if missing or another reseller's.
    pub async fn installation(
        &self,
        reseller: &ResellerId,
        slc: &Slc,
    ) -> Result<InstallationDetail> {
        self.inner
            .store
            .installation_detail(reseller, slc, self.inner.config.history_limit)
            .await?
            .ok_or_else(|| Error::installation_not_found(slc))
    }

    /// Sets what the acting admin's reseller calls one of its installations
    /// (customer, site, notes, tags). `NotFound` if missing or another
    /// reseller's; `PermissionDenied` for a viewer.
    pub async fn set_labels(&self, acting: &User, slc: &Slc, labels: &Labels) -> Result<()> {
        team::require_admin(acting)?;
        self.inner
            .store
            .set_labels(&acting.reseller, slc, labels, self.now())
            .await?;
        self.feed_written();
        self.audited(
            Some(acting),
            Action::LabelsChanged,
            slc,
            format!("customer {:?}, site {:?}", labels.customer(), labels.site()),
        )
        .await;
        Ok(())
    }

    /// Retires one of the acting admin's reseller's recording servers (it
    /// was removed at the site): it stops counting for health and Offline,
    /// its open conditions are resolved, its history stays; a message from
    /// it brings it back. `Ok(false)` if it was retired already. `NotFound`
    /// for an installation missing or another reseller's, or a server never
    /// heard from; `PermissionDenied` for a viewer.
    pub async fn decommission_server(
        &self,
        acting: &User,
        slc: &Slc,
        server: &RecordingServerId,
    ) -> Result<bool> {
        team::require_admin(acting)?;
        let changed = self
            .inner
            .store
            .decommission_server(Some(&acting.reseller), slc, server, self.now())
            .await?;
        self.feed_written();
        if changed {
            self.audited(
                Some(acting),
                Action::ServerDecommissioned,
                slc,
                format!("recording server {server}"),
            )
            .await;
        }
        Ok(changed)
    }

    /// Whether a server of this availability is shown as "probably
    /// removed" now ([`super::Config::with_probably_removed_after`]).
    pub fn probably_removed(&self, availability: &Availability) -> bool {
        availability.probably_removed(self.now(), self.inner.config.probably_removed_after())
    }
}
