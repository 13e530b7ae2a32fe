//! What a reseller reads: overview and installation detail (the live watch
//! is in `feed`).
//! Another reseller's installation is indistinguishable from a missing one.

use super::Carewatch;
use crate::error::{Error, Result};
use crate::ids::{ResellerId, Slc};
use crate::store::{InstallationDetail, OverviewPage, OverviewQuery};

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
}
