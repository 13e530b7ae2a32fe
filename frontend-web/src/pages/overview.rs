//! The overview: the reseller's installations, by default only those that
//! are not Healthy, worst first, with totals per health, search and paging.
//! `live.js` keeps it current from `/events`; without JavaScript a refresh
//! link does.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use carewatch_core::health::Health;
use carewatch_core::installation::Refusal;
use carewatch_core::notification::maintenance::{MaintenanceWindow, in_maintenance};
use carewatch_core::store::{
    HealthTotals, OverviewOrder, OverviewPage, OverviewQuery, OverviewRow, PageCursor,
};
use carewatch_core::time::Timestamp;
use http::{StatusCode, Uri};
use maud::{Markup, html};

use super::layout::{Nav, page as layout};
use super::{PageResult, error_page, html_response};
use crate::AppState;
use crate::format;
use crate::query::{OverviewParams, PAGE_ROWS, Trail, TrailParam, encode_pairs};
use crate::session::SignedIn;

/// `GET /`.
pub async fn page(
    State(state): State<AppState>,
    user: SignedIn,
    uri: Uri,
    params: Result<Query<OverviewParams>, QueryRejection>,
    trail: Result<Query<TrailParam>, QueryRejection>,
) -> PageResult {
    let bad = |e| error_page(e, Some(&user));
    let (Ok(Query(params)), Ok(Query(trail))) = (params, trail) else {
        return Err(bad(carewatch_core::Error::InvalidInput {
            field: "query",
            reason: "the address's parameters are malformed".into(),
        }));
    };
    let query = params.to_query().map_err(bad)?;
    let trail = Trail::parse(trail.prev.as_deref()).map_err(bad)?;
    // The feed position before the read: the page's live updates start
    // there, so no change between the read and the stream is missed.
    let head = state.carewatch.latest_change().await.map_err(bad)?;
    let overview = state
        .carewatch
        .overview(&user.user().reseller, &query)
        .await
        .map_err(bad)?;
    let windows = state
        .carewatch
        .maintenance_windows(&user.user().reseller)
        .await
        .map_err(bad)?;
    let view = OverviewView {
        query: &query,
        trail: &trail,
        page: &overview,
        windows: &windows,
        now: state.carewatch.now(),
        current: uri.path_and_query().map_or("/", |p| p.as_str()),
        head: head.0,
    };
    Ok(render(&user, &view))
}

/// Everything the overview shows.
struct OverviewView<'a> {
    query: &'a OverviewQuery,
    trail: &'a Trail,
    page: &'a OverviewPage,
    /// The reseller's maintenance windows (core says which rows they cover).
    windows: &'a [MaintenanceWindow],
    now: Timestamp,
    /// This page's own address (for the refresh link).
    current: &'a str,
    /// The change feed's position when the page was read.
    head: u64,
}

fn render(user: &SignedIn, view: &OverviewView<'_>) -> Response {
    let heading = heading(view.query);
    let filters = OverviewParams::filter_pairs(view.query);
    let mut events = vec![("after", view.head.to_string())];
    events.extend(filters.iter().cloned());
    let body = html! {
        h1 { (heading) }
        section #overview data-live="overview" data-events=(format!("/events?{}", encode_pairs(&events))) data-page=(view.current) {
            // The parts live.js swaps when it re-reads the page (never the
            // search form, so typing is not interrupted).
            div data-live-part="totals" { (totals(&view.page.totals, view.query)) }
            (search(view.query))
            (sort_choice(view.query))
            (live_status(view.current))
            div data-live-part="results" {
                @if view.page.rows.is_empty() {
                    p.empty { (empty_text(view.query, &view.page.totals)) }
                } @else {
                    (table(&view.page.rows, view.query.order, view.windows, view.now))
                }
                (pager(view))
            }
        }
    };
    html_response(
        StatusCode::OK,
        layout(&heading, Some(user), Nav::Overview, body),
    )
}

fn heading(query: &OverviewQuery) -> String {
    let base = match (query.health, query.include_healthy) {
        (Some(health), _) => format!("{} installations", health_word(health)),
        (None, true) => "All installations".to_owned(),
        (None, false) => "Installations needing attention".to_owned(),
    };
    match query.search_pattern() {
        Some(search) => format!("{base} matching “{search}”"),
        None => base,
    }
}

/// The one-word name of a health, capitalised.
fn health_word(health: Health) -> &'static str {
    match health {
        Health::Healthy => "Healthy",
        Health::Pending => "Pending",
        Health::Attention => "Attention",
        Health::Critical => "Critical",
        Health::Offline => "Offline",
    }
}

/// The healths a count covers, as `data-counts` for live updates: the
/// script adds or removes one when a row moves into or out of them.
fn counts_attr(query: &OverviewQuery) -> String {
    Health::ALL
        .into_iter()
        .filter(|h| query.lists(*h))
        .map(Health::name)
        .collect::<Vec<_>>()
        .join(" ")
}

fn totals(totals: &HealthTotals, query: &OverviewQuery) -> Markup {
    let attention_needed = OverviewQuery::default();
    let all = OverviewQuery {
        include_healthy: true,
        ..OverviewQuery::default()
    };
    let count_of = |q: &OverviewQuery| -> u32 {
        Health::ALL
            .into_iter()
            .filter(|h| q.lists(*h))
            .map(|h| totals.get(h))
            .sum()
    };
    let is_current = |health: Option<Health>, include_healthy: bool| {
        query.health == health && (health.is_some() || query.include_healthy == include_healthy)
    };
    let link = |href: String, label: &str, count: u32, counts: String, current: bool| {
        html! {
            li {
                a href=(href) aria-current=[current.then_some("true")] {
                    span.count data-counts=(counts) { (count) }
                    " " (label)
                }
            }
        }
    };
    html! {
        nav.totals aria-label="Installations by health" {
            ul {
                (link("/".into(), "need attention", count_of(&attention_needed),
                    counts_attr(&attention_needed), is_current(None, false)))
                @for health in Health::ALL.into_iter().rev() {
                    (link(format!("/?health={}", health.name()), health_word(health),
                        totals.get(health),
                        health.name().to_owned(), is_current(Some(health), false)))
                }
                (link("/?all=true".into(), "in all", count_of(&all), counts_attr(&all),
                    is_current(None, true)))
            }
        }
    }
}

fn search(query: &OverviewQuery) -> Markup {
    html! {
        form.search role="search" method="get" action="/" {
            @if let Some(health) = query.health {
                input type="hidden" name="health" value=(health.name());
            } @else if query.include_healthy {
                input type="hidden" name="all" value="true";
            }
            @if query.order != OverviewOrder::default() {
                input type="hidden" name="sort" value=(query.order.name());
            }
            label for="q" { "Search by SLC, customer, site or tag" }
            input #q name="q" type="search" maxlength="64" spellcheck="false"
                value=[query.search.as_deref()];
            button type="submit" { "Search" }
            @if query.search_pattern().is_some() {
                a href=(clear_search(query)) { "Clear search" }
            }
        }
    }
}

/// "Sort by: worst first · customer · site", the current one marked; a
/// new order starts from its first page, with the filters kept.
fn sort_choice(query: &OverviewQuery) -> Markup {
    html! {
        nav.sort aria-label="Sort" {
            "Sort by: "
            @for (i, order) in OverviewOrder::ALL.into_iter().enumerate() {
                @if i > 0 { " · " }
                @if order == query.order {
                    strong aria-current="true" { (order_label(order)) }
                } @else {
                    a href=(link_to(&OverviewQuery { order, after: None, ..query.clone() }, None, &Trail::default())) {
                        (order_label(order))
                    }
                }
            }
        }
    }
}

fn order_label(order: OverviewOrder) -> &'static str {
    match order {
        OverviewOrder::WorstFirst => "worst first",
        OverviewOrder::Customer => "customer",
        OverviewOrder::Site => "site",
    }
}

fn clear_search(query: &OverviewQuery) -> String {
    let without = OverviewQuery {
        search: None,
        ..query.clone()
    };
    link_to(&without, None, &Trail::default())
}

/// Where the live state shows; without JavaScript, a refresh link.
pub fn live_status(current: &str) -> Markup {
    html! {
        p #live-status.live-status role="status" {
            "Live updates need JavaScript: "
            a href=(current) { "refresh" }
            " to see the latest state."
        }
    }
}

fn empty_text(query: &OverviewQuery, totals: &HealthTotals) -> String {
    if totals.total() == 0 {
        "No installations are registered to you yet.".to_owned()
    } else if query.search_pattern().is_some() || query.health.is_some() || query.include_healthy {
        "No installation matches.".to_owned()
    } else {
        format!(
            "Nothing needs attention: all {} installations are healthy.",
            totals.total()
        )
    }
}

fn table(
    rows: &[OverviewRow],
    order: OverviewOrder,
    windows: &[MaintenanceWindow],
    now: Timestamp,
) -> Markup {
    html! {
        table.overview {
            caption.visually-hidden {
                @if order == OverviewOrder::WorstFirst { "Installations, worst first" }
                @else { "Installations, by " (order_label(order)) }
            }
            thead {
                tr {
                    th scope="col" { "Installation" }
                    th scope="col" { "Customer" }
                    th scope="col" { "Health" }
                    th scope="col" { "Worst condition" }
                    th scope="col" { "Servers" }
                    th scope="col" { "Last seen" }
                    th scope="col" { "Product" }
                }
            }
            tbody #overview-rows {
                @for r in rows { (row(r, in_maintenance(windows, &r.slc, now), now)) }
            }
        }
    }
}

/// One overview row: on the page and, live, in `/events`. `maintenance`:
/// the end of the maintenance the installation is in, if it is.
pub fn row(row: &OverviewRow, maintenance: Option<Timestamp>, now: Timestamp) -> Markup {
    let summary = &row.summary;
    html! {
        tr id=(format!("row-{}", row.slc)) data-health=(summary.health.name()) {
            th scope="row" data-label="Installation" {
                a href=(format!("/installations/{}", row.slc)) { (row.slc) }
            }
            td data-label="Customer" {
                @if row.labels.customer().is_empty() && row.labels.site().is_empty() {
                    span.muted { "—" }
                } @else {
                    (row.labels.customer())
                    @if !row.labels.site().is_empty() { span.detail { (row.labels.site()) } }
                }
                @for tag in row.labels.tags() { " " span.tag { (tag) } }
            }
            td data-label="Health" {
                @match row.refusal_at(now) {
                    Some(refusal) => (refusal_badge(refusal)),
                    None => (health_badge(summary.health)),
                }
                @if let Some(until) = maintenance { (maintenance_note(until)) }
            }
            td data-label="Worst condition" {
                @match &summary.worst {
                    Some(code) => {
                        code { (code.as_str()) }
                        span.detail { (code.description()) }
                    },
                    None => span.muted { "—" },
                }
            }
            td data-label="Servers" { (servers_text(summary.servers, summary.unavailable, summary.late)) }
            td data-label="Last seen" {
                @match row.last_seen_at {
                    Some(at) => (format::ago(at, now)),
                    None => span.muted { "never" },
                }
            }
            td data-label="Product" { (row.product.name()) " " (row.product.version()) }
        }
    }
}

/// Why an installation's messages are refused, as a badge in place of its
/// health: its servers are not judged meanwhile.
pub fn refusal_badge(refusal: Refusal) -> Markup {
    html! {
        span class=(format!("health health-refused refused-{}", refusal.name())) { (refusal.label()) }
        span.detail { "messages refused; servers not judged" }
    }
}

/// A health as a badge: the words say it, the colour only repeats it.
pub fn health_badge(health: Health) -> Markup {
    html! { span class=(format!("health health-{}", health.name())) { (health.label()) } }
}

/// "in maintenance until …", under a health badge.
pub fn maintenance_note(until: Timestamp) -> Markup {
    html! {
        span.in-maintenance title=(format!("until {}", format::instant(until))) {
            "in maintenance until " (format::time(until))
        }
    }
}

/// "1 down · 2 late of 5", "all 3 up", "none reported yet".
pub fn servers_text(servers: u32, unavailable: u32, late: u32) -> String {
    if servers == 0 {
        return "none reported yet".to_owned();
    }
    let mut parts = Vec::new();
    if unavailable > 0 {
        parts.push(format!("{unavailable} down"));
    }
    if late > 0 {
        parts.push(format!("{late} late"));
    }
    if parts.is_empty() {
        return if servers == 1 {
            "1 up".to_owned()
        } else {
            format!("all {servers} up")
        };
    }
    format!("{} of {servers}", parts.join(" · "))
}

fn pager(view: &OverviewView<'_>) -> Markup {
    let query = view.query;
    let previous = view.trail.pop();
    let next = view.page.next.as_ref();
    html! {
        @if query.after.is_some() || next.is_some() {
            nav.pager aria-label="Pages" {
                @if query.after.is_some() {
                    a href=(link_to(query, None, &Trail::default())) { "First page" }
                }
                @if let Some((start, trail)) = &previous {
                    a rel="prev" href=(link_to(query, start.as_ref(), trail)) { "Previous page" }
                }
                @if let Some(next) = next {
                    a rel="next" href=(link_to(query, Some(next), &view.trail.push(query.after.as_ref()))) {
                        "Next page"
                    }
                }
            }
        }
    }
}

/// The overview's address with `query`'s filters, starting after `after`.
fn link_to(query: &OverviewQuery, after: Option<&PageCursor>, trail: &Trail) -> String {
    let mut pairs = OverviewParams::filter_pairs(query);
    if query.page_size != PAGE_ROWS {
        pairs.push(("limit", query.page_size.to_string()));
    }
    if let Some(after) = after {
        pairs.push(("after", after.to_token()));
    }
    let prev = trail.to_param();
    if !prev.is_empty() {
        pairs.push(("prev", prev));
    }
    if pairs.is_empty() {
        "/".to_owned()
    } else {
        format!("/?{}", encode_pairs(&pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_counts_read_plainly() {
        assert_eq!(servers_text(0, 0, 0), "none reported yet");
        assert_eq!(servers_text(1, 0, 0), "1 up");
        assert_eq!(servers_text(3, 0, 0), "all 3 up");
        assert_eq!(servers_text(5, 1, 2), "1 down · 2 late of 5");
        assert_eq!(servers_text(2, 2, 0), "2 down of 2");
    }

    #[test]
    fn counts_cover_what_each_total_lists() {
        assert_eq!(
            counts_attr(&OverviewQuery::default()),
            "pending attention critical offline"
        );
        let all = OverviewQuery {
            include_healthy: true,
            ..OverviewQuery::default()
        };
        assert_eq!(
            counts_attr(&all),
            "healthy pending attention critical offline"
        );
    }
}
