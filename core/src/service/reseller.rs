//! What a reseller reads: overview, installation detail and the live watch.
//! Another reseller's installation is indistinguishable from a missing one.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::Carewatch;
use crate::error::{Error, Result};
use crate::health::{Health, HealthSummary};
use crate::ids::{ResellerId, Slc};
use crate::store::{InstallationDetail, OverviewPage, OverviewQuery, SummaryChange};
use crate::time::Timestamp;

/// A change to one of the watching reseller's installations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationChange {
    /// Installation.
    pub slc: Slc,
    /// Health before.
    pub previous: Health,
    /// Overview line after.
    pub summary: HealthSummary,
    /// When.
    pub at: Timestamp,
}

/// What a watch stream yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// An installation's overview line changed.
    Changed(InstallationChange),
    /// The watcher fell behind and missed `skipped` changes: re-read the overview.
    Lagged {
        /// How many changes were dropped.
        skipped: u64,
    },
}

/// A live stream of changes for one reseller (optionally one installation).
pub struct WatchStream {
    inner: BroadcastStream<Arc<SummaryChange>>,
    reseller: ResellerId,
    only: Option<Slc>,
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream")
            .field("reseller", &self.reseller)
            .field("only", &self.only)
            .finish()
    }
}

impl Stream for WatchStream {
    type Item = WatchEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchEvent>> {
        loop {
            let item = match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(item)) => item,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            match item {
                Err(BroadcastStreamRecvError::Lagged(skipped)) => {
                    return Poll::Ready(Some(WatchEvent::Lagged { skipped }));
                }
                Ok(change)
                    if change.reseller == self.reseller
                        && self.only.as_ref().is_none_or(|s| *s == change.slc) =>
                {
                    return Poll::Ready(Some(WatchEvent::Changed(InstallationChange {
                        slc: change.slc.clone(),
                        previous: change.previous,
                        summary: change.summary.clone(),
                        at: change.at,
                    })));
                }
                Ok(_) => continue,
            }
        }
    }
}

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

    /// Follows changes to the reseller's installations, or to one of them
    /// (`NotFound` if it is missing or another reseller's).
    pub async fn watch(&self, reseller: &ResellerId, only: Option<&Slc>) -> Result<WatchStream> {
        // Subscribe first so no change between the check and the stream is lost.
        let receiver = self.inner.changes.subscribe();
        if let Some(slc) = only {
            match self.inner.store.installation(slc).await? {
                Some(inst) if inst.reseller == *reseller => {}
                _ => return Err(Error::installation_not_found(slc)),
            }
        }
        Ok(WatchStream {
            inner: BroadcastStream::new(receiver),
            reseller: reseller.clone(),
            only: only.cloned(),
        })
    }
}
