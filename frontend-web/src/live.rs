//! Live updates: `GET /events`, server-sent events from the change feed.
//!
//! Each event carries its feed id (`id:`), so the browser's automatic
//! reconnect sends `Last-Event-ID` and the stream resumes where it stopped,
//! without loss, on any node. A health change of an installation comes as
//! `event: row` with the new overview row rendered by the page's own
//! renderer; every other change as `event: change`; a resume point the
//! feed no longer keeps as `event: reset` (the page re-reads itself), whose
//! id is the feed head the stream continues from.
//!
//! Rows are rendered once per event and reseller and shared by every open
//! page (single flight), so a thousand open pages cost one lookup per change.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use carewatch_core::feed::{Change, ChangeEvent, EventId};
use carewatch_core::health::Health;
use carewatch_core::ids::{ResellerId, Slc};
use carewatch_core::notification::maintenance::in_maintenance;
use carewatch_core::store::OverviewQuery;
use carewatch_core::time::Timestamp;
use carewatch_core::{Carewatch, Error};
use futures::{StreamExt, stream};
use http::{HeaderMap, HeaderValue, header};
use serde::Deserialize;
use tokio::sync::OnceCell;

use crate::AppState;
use crate::pages::overview::row as render_row;
use crate::pages::{PageResult, error_page};
use crate::query::OverviewParams;
use crate::session::SignedIn;

/// How often an idle stream sends a comment, so proxies and browsers keep
/// it open and a dead connection is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long the browser waits before reconnecting.
const RETRY: Duration = Duration::from_secs(2);
/// How often an open stream checks its session is still valid (a removed
/// user's or signed-out session's streams end within this).
const SESSION_RECHECK: Duration = Duration::from_secs(30);
/// Rendered rows kept for watchers that read an event a little later.
const ROW_CACHE: usize = 512;

/// Where the stream starts and what it follows.
#[derive(Debug, Default, Deserialize)]
pub struct LiveParams {
    /// Resume after this event id (the page's feed position); the
    /// `Last-Event-ID` header wins over it on reconnects.
    after: Option<String>,
    /// Only this installation (the installation page).
    slc: Option<String>,
}

/// `GET /events`.
pub async fn events(
    State(state): State<AppState>,
    user: SignedIn,
    headers: HeaderMap,
    live: Result<Query<LiveParams>, QueryRejection>,
    filters: Result<Query<OverviewParams>, QueryRejection>,
) -> PageResult {
    let bad = |e| error_page(e, Some(&user));
    let (Ok(Query(live)), Ok(Query(filters))) = (live, filters) else {
        return Err(bad(Error::InvalidInput {
            field: "query",
            reason: "the address's parameters are malformed".into(),
        }));
    };
    let after = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("?").to_owned())
        .or(live.after)
        .filter(|v| !v.trim().is_empty())
        .map(|v| parse_event_id(&v))
        .transpose()
        .map_err(bad)?;
    let only = live.slc.as_deref().map(Slc::new).transpose().map_err(bad)?;
    // The page's filters, to tell whether a changed row belongs on it. The
    // page token and size do not matter here.
    let filter = OverviewParams {
        after: None,
        limit: None,
        ..filters
    }
    .to_query()
    .map_err(bad)?;
    let reseller = user.user().reseller.clone();
    let carewatch = &state.carewatch;
    let (changes, reset) = match carewatch.watch(&reseller, only.as_ref(), after).await {
        Ok(changes) => (changes, None),
        // Too far behind: follow from the feed's head and tell the page to
        // re-read. Reading the head first and resuming after it (rather
        // than watching "from now") gives the exact position the stream
        // continues from, which the reset event carries as its id.
        Err(Error::ResumeTooOld { .. }) => {
            let head = carewatch.latest_change().await.map_err(bad)?;
            let changes = carewatch
                .watch(&reseller, only.as_ref(), Some(head))
                .await
                .map_err(bad)?;
            (changes, Some(head))
        }
        Err(e) => return Err(bad(e)),
    };
    let context = Arc::new(Context {
        carewatch: carewatch.clone(),
        rows: state.rows.clone(),
        reseller,
        filter,
        overview: only.is_none(),
    });
    let opening = Event::default().retry(RETRY).comment("connected");
    // With the head as its id, a reconnect before the next event sends the
    // head back as `Last-Event-ID`, not the too-old id (another reset).
    let reset = reset.map(|head| {
        Event::default()
            .id(head.to_string())
            .event("reset")
            .data("{}")
    });
    let prelude = stream::iter(std::iter::once(opening).chain(reset));
    let updates = changes
        // A storage error ends the stream; the browser reconnects and resumes.
        .take_while(|next| std::future::ready(next.is_ok()))
        .filter_map(|next| std::future::ready(next.ok()))
        .then(move |event| {
            let context = context.clone();
            async move { context.event(&event).await }
        });
    let stream = prelude
        .chain(updates)
        .map(Ok::<_, Infallible>)
        .take_until(carewatch.stopping())
        .take_until(session_ends(
            carewatch.clone(),
            user.secret().to_owned(),
            user.expires_at(),
        ));
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Reverse proxies must pass events on at once.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

fn parse_event_id(text: &str) -> Result<EventId, Error> {
    text.trim()
        .parse()
        .map(EventId)
        .map_err(|_| Error::InvalidInput {
            field: "event id",
            reason: "not an event id sent by this server".into(),
        })
}

/// Completes when the session stops being valid (signed out, expired, its
/// user removed).
async fn session_ends(carewatch: Carewatch, secret: String, expires_at: Timestamp) {
    loop {
        let until_expiry = expires_at.since(carewatch.now());
        // At least a second: a failing store must not make this spin.
        let pause = SESSION_RECHECK
            .min(until_expiry)
            .max(Duration::from_secs(1));
        tokio::time::sleep(pause).await;
        if let Err(Error::Unauthenticated { .. }) = carewatch.session(&secret).await {
            return;
        }
    }
}

/// What one stream needs to turn changes into events.
struct Context {
    carewatch: Carewatch,
    rows: Arc<RowCache>,
    reseller: ResellerId,
    filter: OverviewQuery,
    /// The overview page (rows); otherwise the installation page.
    overview: bool,
}

impl Context {
    async fn event(&self, event: &ChangeEvent) -> Event {
        let id = event.id.to_string();
        let generic = || {
            let data =
                serde_json::json!({ "slc": event.slc.as_str(), "kind": event.change.name() });
            Event::default()
                .id(&id)
                .event("change")
                .data(data.to_string())
        };
        // Transferred to another reseller: it leaves the page.
        if event.change == Change::Removed {
            let data = serde_json::json!({ "slc": event.slc.as_str(), "previous": null });
            return Event::default()
                .id(&id)
                .event("gone")
                .data(data.to_string());
        }
        let Change::Health { previous, .. } = &event.change else {
            return generic();
        };
        if !self.overview {
            return generic();
        }
        match self
            .rows
            .get(event.id, &self.reseller, || self.render(event))
            .await
        {
            Ok(Some(row)) => {
                let data = serde_json::json!({
                    "slc": event.slc.as_str(),
                    "previous": previous.name(),
                    "health": row.health.name(),
                    "listed": self.filter.lists(row.health),
                    "html": row.html,
                });
                Event::default().id(&id).event("row").data(data.to_string())
            }
            // Moved to another reseller meanwhile: it leaves the page.
            Ok(None) => {
                let data =
                    serde_json::json!({ "slc": event.slc.as_str(), "previous": previous.name() });
                Event::default()
                    .id(&id)
                    .event("gone")
                    .data(data.to_string())
            }
            // The page re-reads itself instead.
            Err(e) => {
                tracing::debug!(error = %e, "rendering a live row failed");
                generic()
            }
        }
    }

    /// The installation's overview row as it is now.
    async fn render(&self, event: &ChangeEvent) -> Result<Option<RenderedRow>, Error> {
        let detail = match self
            .carewatch
            .installation(&self.reseller, &event.slc)
            .await
        {
            Ok(detail) => detail,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let row = detail.overview_row();
        let windows = self.carewatch.maintenance_windows(&self.reseller).await?;
        let now = self.carewatch.now();
        let maintenance = in_maintenance(&windows, &row.slc, now);
        Ok(Some(RenderedRow {
            health: row.summary.health,
            html: render_row(&row, maintenance, now).into_string(),
        }))
    }
}

/// An overview row rendered for a live update.
#[derive(Debug, Clone)]
struct RenderedRow {
    health: Health,
    html: String,
}

type RowCell = Arc<OnceCell<Option<RenderedRow>>>;

/// Rows rendered per (event, reseller), newest last.
#[derive(Debug, Default)]
pub struct RowCache {
    entries: Mutex<VecDeque<((EventId, ResellerId), RowCell)>>,
}

impl RowCache {
    /// The row of event `id` for `reseller`, rendered by the first caller;
    /// the others wait for it. A failure is not kept (the next one tries).
    async fn get<F, Fut>(
        &self,
        id: EventId,
        reseller: &ResellerId,
        render: F,
    ) -> Result<Option<RenderedRow>, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<RenderedRow>, Error>>,
    {
        let cell = {
            let mut entries = self
                .entries
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let found = entries
                .iter()
                .find(|((i, r), _)| *i == id && r == reseller)
                .map(|(_, cell)| cell.clone());
            match found {
                Some(cell) => cell,
                None => {
                    let cell = RowCell::default();
                    entries.push_back(((id, reseller.clone()), cell.clone()));
                    if entries.len() > ROW_CACHE {
                        entries.pop_front();
                    }
                    cell
                }
            }
        };
        cell.get_or_try_init(render).await.cloned()
    }
}
