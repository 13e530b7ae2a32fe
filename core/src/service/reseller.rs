//! What a reseller reads: overview and installation detail (the live watch
//! is in `feed`).
//! Another reseller's installation is indistinguishable from a missing one.

use super::Carewatch;
use crate::error::{Error, Result};
use crate::ids::{ResellerId, Slc};
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
        Ok(())
    }
}
