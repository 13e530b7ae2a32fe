//! Uptime reports (issue 18): a reseller's monthly (or any period's) report,
//! and one installation's figures for its page. The rules are in
//! [`crate::report`]; the store reads the history, and this joins it with
//! Carewatch's own downtime and the reseller's maintenance windows.
//! Another reseller's installation is indistinguishable from a missing one.

use std::time::Duration;

use super::Carewatch;
use crate::availability::{Downtime, DowntimeWindow};
use crate::error::{Error, Result};
use crate::ids::{ResellerId, Slc};
use crate::report::{InstallationHistory, InstallationUptime, Period, UptimeReport};
use crate::store::HistoryKind;
use crate::time::Timestamp;

/// How many days the installation page's rolling figure covers.
pub const ROLLING_DAYS: u32 = 30;

impl Carewatch {
    /// The uptime report of `reseller`'s installations over `period` (a
    /// calendar month: [`Period::parse_month`]), with Carewatch's own
    /// downtime and the reseller's maintenance windows excluded. A period
    /// that has not ended yet is reported up to now (its end is then now);
    /// one that has not begun is `InvalidInput`.
    pub async fn uptime_report(
        &self,
        reseller: &ResellerId,
        period: Period,
    ) -> Result<UptimeReport> {
        let period = self.so_far(period)?;
        let installations = self
            .inner
            .store
            .uptime_histories(reseller, None, period)
            .await?;
        let (own, maintenance) = self.exclusions(reseller, period, &installations).await?;
        Ok(UptimeReport::build(
            reseller,
            period,
            &installations,
            &own,
            &maintenance,
        ))
    }

    /// One of `reseller`'s installations' figures, and its servers', over
    /// `period` (as [`Carewatch::uptime_report`]). `NotFound` if it is
    /// missing or another reseller's.
    pub async fn installation_uptime(
        &self,
        reseller: &ResellerId,
        slc: &Slc,
        period: Period,
    ) -> Result<InstallationUptime> {
        let period = self.so_far(period)?;
        let installations = self
            .inner
            .store
            .uptime_histories(reseller, Some(slc), period)
            .await?;
        let Some(installation) = installations.iter().find(|i| &i.slc == slc) else {
            return Err(Error::installation_not_found(slc));
        };
        let (own, maintenance) = self.exclusions(reseller, period, &installations).await?;
        Ok(InstallationUptime::compute(
            installation,
            period,
            &Downtime::new(own),
            maintenance.iter().filter(|w| &w.reseller == reseller),
        ))
    }

    /// The last [`ROLLING_DAYS`] days up to now.
    pub fn rolling_period(&self) -> Result<Period> {
        Period::last_days(self.now(), ROLLING_DAYS)
    }

    /// `period` up to now.
    fn so_far(&self, period: Period) -> Result<Period> {
        let now = self.now();
        if period.end() <= now {
            return Ok(period);
        }
        Period::new(period.start(), now).map_err(|_| Error::InvalidInput {
            field: "period",
            reason: format!("{period} has not begun yet (it is {now})"),
        })
    }

    /// Carewatch's own downtime and `reseller`'s maintenance windows, as
    /// far back as the outages in `installations` that last into `period`
    /// may begin (their MTTR counts their whole length).
    async fn exclusions(
        &self,
        reseller: &ResellerId,
        period: Period,
        installations: &[InstallationHistory],
    ) -> Result<(
        Vec<DowntimeWindow>,
        Vec<crate::notification::maintenance::MaintenanceWindow>,
    )> {
        let since = installations
            .iter()
            .flat_map(|i| &i.history)
            .map(|e| e.at.saturating_sub(reaches_back(&e.kind)))
            .fold(period.start(), Timestamp::min);
        let mut own = self.inner.store.downtime(since).await?.windows;
        // A storage outage not yet recorded counts up to now.
        if let Some(pending) = self.outage_since()
            && let Ok(window) = DowntimeWindow::new(pending, self.now())
        {
            own.push(window);
        }
        let maintenance = self
            .inner
            .store
            .report_maintenance_windows(reseller, since)
            .await?;
        Ok((own, maintenance))
    }
}

/// How far before its instant an entry may say a stretch began.
fn reaches_back(kind: &HistoryKind) -> Duration {
    match kind {
        HistoryKind::Recovered {
            unavailable_for, ..
        } => *unavailable_for,
        HistoryKind::Recommissioned { decommissioned_for } => *decommissioned_for,
        HistoryKind::Resumed { parked_for } => *parked_for,
        _ => Duration::ZERO,
    }
}
