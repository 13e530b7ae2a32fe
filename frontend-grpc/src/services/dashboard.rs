//! Dashboard: what a reseller reads, authenticated by its bearer token.

use std::pin::Pin;
use std::time::Duration;

use carewatch_core::feed::EventId;
use carewatch_core::ids::{RecordingServerId, ResellerId, Slc};
use carewatch_core::notification::maintenance::in_maintenance;
use carewatch_core::report::{Period, UptimeReport};
use carewatch_core::store::{OverviewQuery, PageCursor};
use carewatch_core::{Carewatch, Error};
use futures::{FutureExt, Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::auth::{bearer, token_admin};
use crate::convert;
use crate::proto::dashboard_server::Dashboard;
use crate::proto::{self};
use crate::status::{to_status, until_stopped};

/// How often an open Watch checks that its token still authenticates its
/// reseller (a rotated token's streams end within this).
pub const TOKEN_RECHECK: Duration = Duration::from_secs(30);

/// Resolves once `token` no longer authenticates `reseller` (rotated, or
/// the reseller gone), checked every [`TOKEN_RECHECK`]; a failing store is
/// not taken for a refusal.
async fn token_withdrawn(carewatch: Carewatch, token: String, reseller: ResellerId) {
    let token = zeroize::Zeroizing::new(token);
    loop {
        tokio::time::sleep(TOKEN_RECHECK).await;
        match carewatch.authenticate_reseller(&token, None).await {
            Ok(id) if id == reseller => {}
            Ok(_) | Err(Error::Unauthenticated { .. }) => return,
            Err(_) => {}
        }
    }
}

/// Serves [`Dashboard`].
#[derive(Debug, Clone)]
pub struct DashboardService {
    carewatch: Carewatch,
}

impl DashboardService {
    /// Over a Carewatch service; watch streams end with UNAVAILABLE when it
    /// stops receiving.
    pub fn new(carewatch: Carewatch) -> Self {
        Self { carewatch }
    }

    async fn reseller<T>(&self, request: &Request<T>) -> Result<ResellerId, Status> {
        let token = bearer(request).map_err(to_status)?;
        self.carewatch
            .authenticate_reseller(token, request.remote_addr().map(|a| a.ip()))
            .await
            .map_err(to_status)
    }

    /// Until when each of these installations is in maintenance (core's
    /// rule over the reseller's windows, read once).
    async fn maintenance<'a>(
        &self,
        reseller: &ResellerId,
        slcs: impl Iterator<Item = &'a Slc>,
    ) -> Result<Vec<Option<prost_types::Timestamp>>, Status> {
        let windows = self
            .carewatch
            .maintenance_windows(reseller)
            .await
            .map_err(to_status)?;
        let now = self.carewatch.now();
        Ok(slcs
            .map(|slc| in_maintenance(&windows, slc, now).map(convert::timestamp))
            .collect())
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<proto::WatchEvent, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Dashboard for DashboardService {
    async fn list_installations(
        &self,
        request: Request<proto::ListInstallationsRequest>,
    ) -> Result<Response<proto::ListInstallationsResponse>, Status> {
        let reseller = self.reseller(&request).await?;
        let r = request.into_inner();
        let after = match r.page_token.as_str() {
            "" => None,
            token => Some(PageCursor::from_token(token).map_err(to_status)?),
        };
        let query = OverviewQuery {
            include_healthy: r.include_healthy,
            page_size: if r.page_size == 0 {
                OverviewQuery::default().page_size
            } else {
                r.page_size
            },
            search: Some(r.search).filter(|s| !s.trim().is_empty()),
            order: convert::overview_order(r.order).map_err(to_status)?,
            health: convert::from_health(proto::Health::try_from(r.health).map_err(|_| {
                to_status(Error::InvalidInput {
                    field: "health",
                    reason: format!("{} is not a known health", r.health),
                })
            })?),
            after,
        };
        let page = self
            .carewatch
            .overview(&reseller, &query)
            .await
            .map_err(to_status)?;
        let until = self
            .maintenance(&reseller, page.rows.iter().map(|r| &r.slc))
            .await?;
        let now = self.carewatch.now();
        Ok(Response::new(proto::ListInstallationsResponse {
            installations: page
                .rows
                .iter()
                .zip(until)
                .map(|(r, until)| proto::InstallationRow {
                    maintenance_until: until,
                    refused: r
                        .refusal_at(now)
                        .map(|refusal| refusal.name().to_owned())
                        .unwrap_or_default(),
                    ..convert::row(r)
                })
                .collect(),
            next_page_token: page.next.map(|c| c.to_token()).unwrap_or_default(),
            totals: Some(convert::totals(&page.totals)),
        }))
    }

    async fn get_installation(
        &self,
        request: Request<proto::GetInstallationRequest>,
    ) -> Result<Response<proto::InstallationDetail>, Status> {
        let reseller = self.reseller(&request).await?;
        let slc = convert::slc(&request.get_ref().slc).map_err(to_status)?;
        let detail = self
            .carewatch
            .installation(&reseller, &slc)
            .await
            .map_err(to_status)?;
        let mut reply = convert::detail(&detail, |a| self.carewatch.probably_removed(a));
        let until = self.maintenance(&reseller, std::iter::once(&slc)).await?;
        if let Some(row) = reply.installation.as_mut() {
            row.maintenance_until = until.into_iter().next().flatten();
            row.refused = detail
                .installation
                .refusal_at(self.carewatch.now())
                .map(|refusal| refusal.name().to_owned())
                .unwrap_or_default();
        }
        Ok(Response::new(reply))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<proto::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let reseller = self.reseller(&request).await?;
        let only = match request.get_ref().slc.as_str() {
            "" => None,
            text => Some(convert::slc(text).map_err(to_status)?),
        };
        let after = request.get_ref().after_event_id.map(EventId);
        let stream = self
            .carewatch
            .watch(&reseller, only.as_ref(), after)
            .await
            .map_err(to_status)?;
        let events = stream.map(|event| {
            event
                .map(|event| convert::watch_event(&event))
                .map_err(to_status)
        });
        // The token was checked once, above: a stream opened with it must
        // not outlive it (a leaked token's Watch kept reading after the
        // rotation that was to lock it out).
        let token = bearer(&request).map_err(to_status)?.to_owned();
        let withdrawn = token_withdrawn(self.carewatch.clone(), token, reseller)
            .boxed()
            .shared();
        let told = withdrawn.clone();
        let events = events.take_until(withdrawn).chain(
            futures::stream::once(async move { told.peek().is_some() }).filter_map(
                |gone| async move {
                    gone.then(|| {
                        Err(to_status(Error::Unauthenticated {
                            reason: "the token no longer authenticates: it was rotated",
                        }))
                    })
                },
            ),
        );
        Ok(Response::new(Box::pin(until_stopped(
            events,
            &self.carewatch,
        ))))
    }

    async fn set_labels(
        &self,
        request: Request<proto::SetLabelsRequest>,
    ) -> Result<Response<proto::SetLabelsResponse>, Status> {
        let acting = token_admin(&self.carewatch, &request).await?;
        let r = request.into_inner();
        let slc = Slc::new(&r.slc).map_err(to_status)?;
        let labels = convert::labels_from(r.labels).map_err(to_status)?;
        self.carewatch
            .set_labels(&acting, &slc, &labels)
            .await
            .map_err(to_status)?;
        Ok(Response::new(proto::SetLabelsResponse {
            labels: Some(convert::labels(&labels)),
        }))
    }

    async fn decommission_server(
        &self,
        request: Request<proto::DecommissionServerRequest>,
    ) -> Result<Response<proto::DecommissionServerResponse>, Status> {
        let acting = token_admin(&self.carewatch, &request).await?;
        let r = request.into_inner();
        let slc = Slc::new(&r.slc).map_err(to_status)?;
        let server = RecordingServerId::new(&r.recording_server_id).map_err(to_status)?;
        let changed = self
            .carewatch
            .decommission_server(&acting, &slc, &server)
            .await
            .map_err(to_status)?;
        Ok(Response::new(proto::DecommissionServerResponse { changed }))
    }

    async fn get_uptime_report(
        &self,
        request: Request<proto::GetUptimeReportRequest>,
    ) -> Result<Response<proto::UptimeReport>, Status> {
        use proto::get_uptime_report_request::Period as Asked;
        let reseller = self.reseller(&request).await?;
        let r = request.into_inner();
        let period = match r.period {
            Some(Asked::Month(month)) => Period::parse_month(&month),
            Some(Asked::LastDays(days)) => Period::last_days(self.carewatch.now(), days),
            None => Err(Error::InvalidInput {
                field: "period",
                reason: "give a month (YYYY-MM) or a number of days".into(),
            }),
        }
        .map_err(to_status)?;
        let report = if r.slc.is_empty() {
            self.carewatch
                .uptime_report(&reseller, period)
                .await
                .map_err(to_status)?
        } else {
            let slc = convert::slc(&r.slc).map_err(to_status)?;
            let one = self
                .carewatch
                .installation_uptime(&reseller, &slc, period)
                .await
                .map_err(to_status)?;
            UptimeReport {
                reseller,
                period: one.uptime.period,
                installations: vec![one],
            }
        };
        Ok(Response::new(convert::uptime_report(&report)))
    }
}
