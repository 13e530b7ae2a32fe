//! The overview's filters as they arrive in a URL (`health`, `q`, `all`,
//! `sort`, `after`, `limit`), for the page, the live feed and the JSON API alike.

use carewatch_core::Error;
use carewatch_core::health::Health;
use carewatch_core::store::{OverviewOrder, OverviewQuery, PageCursor};
use serde::Deserialize;
use utoipa::IntoParams;

/// Rows per page on the web page.
pub const PAGE_ROWS: u32 = 50;

/// Overview filters, as text; [`OverviewParams::to_query`] checks them.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OverviewParams {
    /// Only installations of this health: `healthy`, `pending`,
    /// `attention`, `critical` or `offline`.
    #[param(example = "critical")]
    pub health: Option<String>,
    /// Only installations whose SLC, customer, site or tags contain this
    /// text (any case, at most 64 characters).
    #[param(example = "M01-C01")]
    pub q: Option<String>,
    /// `true` lists Healthy installations too; by default only those that
    /// need attention are listed. Read as text (so that a bad value is a
    /// clear `invalid_input`), described as the boolean it is.
    #[param(value_type = Option<bool>, example = true)]
    pub all: Option<String>,
    /// Sort by `health` (worst first, the default), `customer` (customer
    /// name, then site, A to Z ignoring case and accents; unnamed last) or
    /// `site` (site, then customer).
    #[param(example = "customer")]
    pub sort: Option<String>,
    /// Continue after this page token (`next` of the previous page, in the
    /// same sort).
    pub after: Option<String>,
    /// Rows per page, 1 to 500 (default 50). Read as text (so that a bad
    /// value is a clear `invalid_input`), described as the integer it is.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500, example = 50)]
    pub limit: Option<String>,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        field,
        reason: reason.into(),
    }
}

/// A yes/no parameter; an empty value is no.
fn parse_flag(field: &'static str, value: &str) -> Result<bool, Error> {
    match value.trim() {
        "" | "0" | "false" | "no" | "off" => Ok(false),
        "1" | "true" | "yes" | "on" => Ok(true),
        _ => Err(invalid(field, "use true or false")),
    }
}

fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.trim().is_empty())
}

impl OverviewParams {
    /// The query core answers; core checks the page size and the search.
    pub fn to_query(&self) -> Result<OverviewQuery, Error> {
        let query = OverviewQuery {
            include_healthy: match &self.all {
                Some(all) => parse_flag("all", all)?,
                None => false,
            },
            health: present(&self.health).map(Health::from_name).transpose()?,
            search: present(&self.q).map(str::to_owned),
            page_size: match present(&self.limit) {
                Some(limit) => limit
                    .trim()
                    .parse()
                    .map_err(|_| invalid("limit", "use a number of rows from 1 to 500"))?,
                None => PAGE_ROWS,
            },
            order: present(&self.sort)
                .map(OverviewOrder::from_name)
                .transpose()?
                .unwrap_or_default(),
            after: present(&self.after)
                .map(|t| PageCursor::from_token(t.trim()))
                .transpose()?,
        };
        query.validate()?;
        Ok(query)
    }

    /// The same filters as URL parameters (without `after` and `limit`),
    /// for links that keep them: `health=critical&q=M01`.
    pub fn filter_pairs(query: &OverviewQuery) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if let Some(health) = query.health {
            pairs.push(("health", health.name().to_owned()));
        } else if query.include_healthy {
            pairs.push(("all", "true".to_owned()));
        }
        if let Some(search) = query
            .search
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            pairs.push(("q", search.to_owned()));
        }
        if query.order != OverviewOrder::default() {
            pairs.push(("sort", query.order.name().to_owned()));
        }
        pairs
    }
}

/// `key=value&…`, percent-encoded.
pub fn encode_pairs(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes everything but unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The pages before the current one, so "previous" works although core
/// pages only forward: the start token of each earlier page (`first` for
/// the first), oldest first, comma-separated in the `prev` parameter. Only
/// the last [`Trail::MAX`] are kept; further back, "first page" still works.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trail(Vec<Option<PageCursor>>);

#[derive(Debug, Default, Deserialize)]
pub struct TrailParam {
    pub prev: Option<String>,
}

impl Trail {
    /// Pages remembered for "previous".
    pub const MAX: usize = 20;
    const FIRST: &'static str = "first";

    /// Parses the `prev` parameter.
    pub fn parse(text: Option<&str>) -> Result<Self, Error> {
        let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(Self::default());
        };
        let entries: Vec<&str> = text.split(',').collect();
        if entries.len() > Self::MAX {
            return Err(invalid("prev", format!("at most {} pages", Self::MAX)));
        }
        entries
            .into_iter()
            .map(|entry| match entry.trim() {
                Self::FIRST => Ok(None),
                token => PageCursor::from_token(token).map(Some),
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The trail of the next page, whose predecessor starts at `current`.
    pub fn push(&self, current: Option<&PageCursor>) -> Self {
        let mut entries = self.0.clone();
        entries.push(current.cloned());
        let excess = entries.len().saturating_sub(Self::MAX);
        entries.drain(..excess);
        Self(entries)
    }

    /// The previous page's start and its trail, if known.
    pub fn pop(&self) -> Option<(Option<PageCursor>, Self)> {
        let mut entries = self.0.clone();
        let last = entries.pop()?;
        Some((last, Self(entries)))
    }

    /// The `prev` parameter's value; empty for none.
    pub fn to_param(&self) -> String {
        self.0
            .iter()
            .map(|entry| {
                entry
                    .as_ref()
                    .map_or_else(|| Self::FIRST.to_owned(), PageCursor::to_token)
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> OverviewParams {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| (*v).to_owned())
        };
        OverviewParams {
            health: get("health"),
            q: get("q"),
            all: get("all"),
            sort: get("sort"),
            after: get("after"),
            limit: get("limit"),
        }
    }

    #[test]
    fn parameters_become_a_checked_query() {
        let query = params(&[("health", "critical"), ("q", " m01 "), ("limit", "10")])
            .to_query()
            .expect("valid");
        assert_eq!(query.health, Some(Health::Critical));
        assert_eq!(query.search_pattern().as_deref(), Some("M01"));
        assert_eq!(query.page_size, 10);
        assert!(
            params(&[("all", "true")])
                .to_query()
                .expect("valid")
                .include_healthy
        );
        assert_eq!(
            params(&[]).to_query().expect("valid"),
            OverviewQuery::default()
        );
        for bad in [
            params(&[("health", "purple")]),
            params(&[("all", "maybe")]),
            params(&[("limit", "0")]),
            params(&[("limit", "many")]),
            params(&[("limit", "501")]),
            params(&[("after", "not-a-token")]),
            params(&[("sort", "price")]),
            // A worst-first token cannot continue a sort by customer.
            params(&[("sort", "customer"), ("after", "3.M01-C01-0050")]),
        ] {
            let error = bad.to_query().expect_err("refused");
            assert_eq!(error.code(), "invalid_input", "{error}");
        }
        let long = "A".repeat(65);
        assert!(params(&[("q", &long)]).to_query().is_err());
        let by_site = params(&[("sort", "site")]).to_query().expect("valid");
        assert_eq!(by_site.order, OverviewOrder::Site);
        assert_eq!(
            OverviewParams::filter_pairs(&by_site),
            vec![("sort", "site".to_owned())]
        );
    }

    #[test]
    fn the_trail_remembers_earlier_pages_up_to_a_bound() {
        let cursor = |slc: &str| PageCursor::Health {
            health: Health::Critical,
            slc: carewatch_core::ids::Slc::new(slc).expect("valid"),
        };
        let first = Trail::default();
        let second = first.push(None);
        assert_eq!(second.to_param(), "first");
        let third = second.push(Some(&cursor("M01-C01-0050")));
        assert_eq!(third.to_param(), "first,3.M01-C01-0050");
        assert_eq!(
            Trail::parse(Some(&third.to_param())).expect("parses"),
            third
        );
        let (back, trail) = third.pop().expect("a previous page");
        assert_eq!(back, Some(cursor("M01-C01-0050")));
        assert_eq!(trail, second);
        let mut long = Trail::default();
        for _ in 0..30 {
            long = long.push(None);
        }
        assert_eq!(long.0.len(), Trail::MAX);
        assert!(Trail::parse(Some("first,zzz")).is_err());
        assert!(Trail::parse(Some(&vec!["first"; 21].join(","))).is_err());
    }

    #[test]
    fn filters_round_trip_through_links() {
        let query = params(&[("health", "offline"), ("q", "a b&c")])
            .to_query()
            .expect("valid");
        assert_eq!(
            encode_pairs(&OverviewParams::filter_pairs(&query)),
            "health=offline&q=a%20b%26c"
        );
    }
}
