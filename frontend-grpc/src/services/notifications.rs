//! Notifications: a reseller's channels, maintenance windows and outbox,
//! authenticated by the reseller token.
//!
//! The reseller token stands for the reseller's admin (it is an admin
//! credential): each call acts as an admin user of that reseller whose
//! login is `api-token`, so core's rules (only admins manage, another
//! reseller's things are `NotFound`) apply as they do on the web page.
//! Read-only API tokens are refused: `authenticate_reseller` accepts
//! reseller tokens only.

use std::time::Duration;

use carewatch_core::Carewatch;
use carewatch_core::ChannelView;
use carewatch_core::notification::maintenance::{MaintenanceWindow, WindowId};
use carewatch_core::notification::payload::Notification as Payload;
use carewatch_core::notification::{
    ChannelId, ChannelRules, Destination, OutboxEntry, OutboxFilter,
};
use carewatch_core::team::User;
use carewatch_core::time::Timestamp;
use carewatch_core::{Error, Result};
use tonic::{Request, Response, Status};

use crate::auth::token_admin;
use crate::convert;
use crate::proto::notifications_server::Notifications;
use crate::proto::{self, create_channel_request};
use crate::status::to_status;

/// Notifications listed when the request asks for 0.
const DEFAULT_LIMIT: u32 = 50;

/// Serves [`Notifications`].
#[derive(Debug, Clone)]
pub struct NotificationsService {
    carewatch: Carewatch,
}

impl NotificationsService {
    /// Over a Carewatch service.
    pub fn new(carewatch: Carewatch) -> Self {
        Self { carewatch }
    }

    /// The reseller's admin the token stands for.
    async fn admin<T>(&self, request: &Request<T>) -> Result<User, Status> {
        token_admin(&self.carewatch, request).await
    }
}

/// The destination of a create request.
fn destination(d: Option<create_channel_request::Destination>) -> Result<Destination> {
    use create_channel_request::Destination as D;
    Ok(match d {
        Some(D::Webhook(w)) => Destination::Webhook { url: w.url },
        Some(D::Email(e)) => Destination::Email { to: e.to },
        Some(D::Slack(s)) => Destination::Slack { url: s.url },
        Some(D::Teams(t)) => Destination::Teams { url: t.url },
        None => {
            return Err(Error::InvalidInput {
                field: "destination",
                reason: "give a webhook, email, slack or teams destination".into(),
            });
        }
    })
}

/// A request's rules (unset: the defaults).
fn rules(r: Option<proto::ChannelRules>) -> Result<ChannelRules> {
    let defaults = ChannelRules::default();
    let Some(r) = r else {
        return Ok(defaults);
    };
    let installations = if r.installations.is_empty() {
        None
    } else {
        Some(
            r.installations
                .iter()
                .map(|s| convert::slc(s))
                .collect::<Result<Vec<_>>>()?,
        )
    };
    Ok(ChannelRules {
        attention: r.attention,
        installations,
        hold: r
            .hold
            .as_ref()
            .map_or(Ok(defaults.hold), |d| convert::from_duration("hold", d))?,
        reminder: r
            .reminder
            .as_ref()
            .map(|d| convert::from_duration("reminder", d))
            .transpose()?,
    })
}

fn rules_message(r: &ChannelRules) -> proto::ChannelRules {
    proto::ChannelRules {
        attention: r.attention,
        installations: r
            .installations
            .iter()
            .flatten()
            .map(ToString::to_string)
            .collect(),
        hold: Some(convert::duration(r.hold)),
        reminder: r.reminder.map(convert::duration),
    }
}

fn channel(view: &ChannelView) -> proto::Channel {
    let r = &view.record;
    proto::Channel {
        id: r.id.to_string(),
        name: r.name.clone(),
        kind: r.kind.clone(),
        destination: view.destination.clone(),
        rules: Some(rules_message(&r.rules)),
        created_at: Some(convert::timestamp(r.created_at)),
        created_by: r.created_by.to_string(),
        last_attempt_at: r.status.last_attempt_at.map(convert::timestamp),
        last_error: r.status.last_error.clone().unwrap_or_default(),
        failures_in_a_row: r.status.failures_in_a_row,
        failing: r.status.failing(),
    }
}

fn window(w: &MaintenanceWindow, now: Timestamp) -> proto::MaintenanceWindow {
    proto::MaintenanceWindow {
        id: w.id.to_string(),
        slc: w.slc.as_ref().map(ToString::to_string).unwrap_or_default(),
        starts_at: Some(convert::timestamp(w.starts_at)),
        length: Some(convert::duration(w.length)),
        every: w.every.map(convert::duration),
        reason: w.reason.clone(),
        created_by: w.created_by.to_string(),
        created_at: Some(convert::timestamp(w.created_at)),
        in_force_until: w.occurrence_at(now).map(|(_, end)| convert::timestamp(end)),
        next_starts_at: w.next_start_after(now).map(convert::timestamp),
    }
}

fn notification(e: &OutboxEntry) -> proto::Notification {
    let payload = Payload::from_json(&e.body).ok();
    let state = if e.delivered_at.is_some() {
        proto::DeliveryState::Delivered
    } else if e.failed_at.is_some() {
        proto::DeliveryState::Failed
    } else {
        proto::DeliveryState::Pending
    };
    proto::Notification {
        id: e.id,
        channel_id: e.channel.to_string(),
        slc: e.slc.as_ref().map(ToString::to_string).unwrap_or_default(),
        key: e.key.clone(),
        kind: payload.as_ref().map(|p| p.kind.clone()).unwrap_or_default(),
        title: payload.map(|p| p.title).unwrap_or_default(),
        body: e.body.clone(),
        state: state.into(),
        created_at: Some(convert::timestamp(e.created_at)),
        attempts: e.attempts,
        next_attempt_at: Some(convert::timestamp(e.next_attempt_at)),
        last_error: e.last_error.clone().unwrap_or_default(),
        delivered_at: e.delivered_at.map(convert::timestamp),
        failed_at: e.failed_at.map(convert::timestamp),
    }
}

fn filter(f: i32) -> OutboxFilter {
    match proto::NotificationFilter::try_from(f).unwrap_or(proto::NotificationFilter::All) {
        proto::NotificationFilter::Pending => OutboxFilter::Pending,
        proto::NotificationFilter::Failed => OutboxFilter::Failed,
        proto::NotificationFilter::All | proto::NotificationFilter::Unspecified => {
            OutboxFilter::All
        }
    }
}

fn required<T>(field: &'static str, value: Option<T>) -> Result<T> {
    value.ok_or_else(|| Error::InvalidInput {
        field,
        reason: "required".into(),
    })
}

#[tonic::async_trait]
impl Notifications for NotificationsService {
    async fn create_channel(
        &self,
        request: Request<proto::CreateChannelRequest>,
    ) -> Result<Response<proto::CreateChannelResponse>, Status> {
        let admin = self.admin(&request).await?;
        let r = request.into_inner();
        let destination = destination(r.destination).map_err(to_status)?;
        let rules = rules(r.rules).map_err(to_status)?;
        // Described here, not read back: a failed read after the channel
        // was made would lose its secret, shown only in this answer.
        let described = destination.describe();
        let (record, secret) = self
            .carewatch
            .create_channel(&admin, &r.name, destination, rules)
            .await
            .map_err(to_status)?;
        let view = ChannelView {
            record,
            destination: described,
        };
        Ok(Response::new(proto::CreateChannelResponse {
            channel: Some(channel(&view)),
            signing_secret: secret.map(|s| s.to_string()).unwrap_or_default(),
        }))
    }

    async fn list_channels(
        &self,
        request: Request<proto::ListChannelsRequest>,
    ) -> Result<Response<proto::ListChannelsResponse>, Status> {
        let admin = self.admin(&request).await?;
        let views = self
            .carewatch
            .channels(&admin.reseller)
            .await
            .map_err(to_status)?;
        Ok(Response::new(proto::ListChannelsResponse {
            channels: views.iter().map(channel).collect(),
        }))
    }

    async fn delete_channel(
        &self,
        request: Request<proto::DeleteChannelRequest>,
    ) -> Result<Response<proto::DeleteChannelResponse>, Status> {
        let admin = self.admin(&request).await?;
        let id = ChannelId::new(&request.get_ref().id).map_err(to_status)?;
        self.carewatch
            .delete_channel(&admin, &id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(proto::DeleteChannelResponse {}))
    }

    async fn test_channel(
        &self,
        request: Request<proto::TestChannelRequest>,
    ) -> Result<Response<proto::TestChannelResponse>, Status> {
        let admin = self.admin(&request).await?;
        let id = ChannelId::new(&request.get_ref().id).map_err(to_status)?;
        self.carewatch
            .test_channel(&admin, &id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(proto::TestChannelResponse {}))
    }

    async fn create_maintenance_window(
        &self,
        request: Request<proto::CreateMaintenanceWindowRequest>,
    ) -> Result<Response<proto::MaintenanceWindow>, Status> {
        let admin = self.admin(&request).await?;
        let r = request.into_inner();
        let parsed = (|| {
            let slc = match r.slc.trim() {
                "" => None,
                text => Some(convert::slc(text)?),
            };
            let starts_at =
                convert::from_timestamp("starts_at", required("starts_at", r.starts_at.as_ref())?)?;
            let length = convert::from_duration("length", required("length", r.length.as_ref())?)?;
            let every: Option<Duration> = r
                .every
                .as_ref()
                .map(|d| convert::from_duration("every", d))
                .transpose()?;
            Ok::<_, Error>((slc, starts_at, length, every))
        })();
        let (slc, starts_at, length, every) = parsed.map_err(to_status)?;
        let created = self
            .carewatch
            .create_maintenance(&admin, slc.as_ref(), starts_at, length, every, &r.reason)
            .await
            .map_err(to_status)?;
        Ok(Response::new(window(&created, self.carewatch.now())))
    }

    async fn list_maintenance_windows(
        &self,
        request: Request<proto::ListMaintenanceWindowsRequest>,
    ) -> Result<Response<proto::ListMaintenanceWindowsResponse>, Status> {
        let admin = self.admin(&request).await?;
        let windows = self
            .carewatch
            .maintenance_windows(&admin.reseller)
            .await
            .map_err(to_status)?;
        let now = self.carewatch.now();
        Ok(Response::new(proto::ListMaintenanceWindowsResponse {
            windows: windows.iter().map(|w| window(w, now)).collect(),
        }))
    }

    async fn delete_maintenance_window(
        &self,
        request: Request<proto::DeleteMaintenanceWindowRequest>,
    ) -> Result<Response<proto::DeleteMaintenanceWindowResponse>, Status> {
        let admin = self.admin(&request).await?;
        let id = WindowId::new(&request.get_ref().id).map_err(to_status)?;
        self.carewatch
            .delete_maintenance(&admin, &id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(proto::DeleteMaintenanceWindowResponse {}))
    }

    async fn list_notifications(
        &self,
        request: Request<proto::ListNotificationsRequest>,
    ) -> Result<Response<proto::ListNotificationsResponse>, Status> {
        let admin = self.admin(&request).await?;
        let r = request.get_ref();
        let limit = if r.limit == 0 { DEFAULT_LIMIT } else { r.limit };
        let entries = self
            .carewatch
            .outbox(&admin.reseller, filter(r.filter), limit)
            .await
            .map_err(to_status)?;
        Ok(Response::new(proto::ListNotificationsResponse {
            notifications: entries.iter().map(notification).collect(),
        }))
    }
}
