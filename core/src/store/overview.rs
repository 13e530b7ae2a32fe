//! What an overview page asks for and returns: filters, the order, and the
//! keyset cursor where the next page starts. Backends seek from the cursor
//! (no OFFSET), so page 2000 costs what page 1 does, in either order.

use crate::error::{Error, Result};
use crate::health::{Health, HealthSummary};
use crate::ids::Slc;
use crate::installation::{Product, Refusal, refusal};
use crate::labels::{LabelOrder, Labels};
use crate::time::Timestamp;

/// How an overview is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OverviewOrder {
    /// Worst health first, then by SLC (the default: what needs attention
    /// on top).
    #[default]
    WorstFirst,
    /// By customer name, then site, then SLC (see [`Labels::order_key`]).
    Customer,
    /// By site name, then customer, then SLC.
    Site,
}

impl OverviewOrder {
    /// Every order, the default first.
    pub const ALL: [Self; 3] = [Self::WorstFirst, Self::Customer, Self::Site];

    /// Its stable name in URLs and the CLI: `health`, `customer` or `site`.
    pub fn name(self) -> &'static str {
        match self {
            Self::WorstFirst => "health",
            Self::Customer => "customer",
            Self::Site => "site",
        }
    }

    /// The order of this name.
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|o| o.name() == name.trim())
            .ok_or_else(|| Error::InvalidInput {
                field: "sort",
                reason: format!("{name:?}: use health, customer or site"),
            })
    }

    /// The label it sorts by, if it sorts by one.
    pub fn label_order(self) -> Option<LabelOrder> {
        match self {
            Self::WorstFirst => None,
            Self::Customer => Some(LabelOrder::Customer),
            Self::Site => Some(LabelOrder::Site),
        }
    }
}

/// Where an overview page starts: after the last row of the previous page,
/// as that page's order placed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageCursor {
    /// Worst first: after this (health, SLC).
    Health {
        /// The health of the last row of the previous page.
        health: Health,
        /// Its SLC.
        slc: Slc,
    },
    /// By a label: after this ([`Labels::order_key`], SLC).
    Label {
        /// The label sorted by.
        order: LabelOrder,
        /// The last row's order key.
        key: String,
        /// Its SLC.
        slc: Slc,
    },
}

/// Longest page token [`PageCursor::from_token`] reads: the longest it
/// makes. Labels are at most 120 bytes each, but their order key is
/// folded (NFKD), which can make one character of 3 bytes 33 (U+FDFA): two
/// such labels give a key of about 2,650 bytes, 5,300 in hex.
const MAX_TOKEN_LEN: usize = 16 * 1024;

impl PageCursor {
    /// Where the page after `row` starts, in `order`.
    pub fn after(order: OverviewOrder, row: &OverviewRow) -> Self {
        match order.label_order() {
            None => Self::Health {
                health: row.summary.health,
                slc: row.slc.clone(),
            },
            Some(label) => Self::Label {
                order: label,
                key: row.labels.order_key(label),
                slc: row.slc.clone(),
            },
        }
    }

    /// The order it continues.
    pub fn order(&self) -> OverviewOrder {
        match self {
            Self::Health { .. } => OverviewOrder::WorstFirst,
            Self::Label {
                order: LabelOrder::Customer,
                ..
            } => OverviewOrder::Customer,
            Self::Label {
                order: LabelOrder::Site,
                ..
            } => OverviewOrder::Site,
        }
    }

    /// An opaque text form for clients, URL-safe: `<rank>.<SLC>` worst
    /// first, `c.<SLC>.<key as hex>` or `s.<SLC>.<key as hex>` by a label.
    pub fn to_token(&self) -> String {
        match self {
            Self::Health { health, slc } => format!("{}.{slc}", health.rank()),
            Self::Label { order, key, slc } => {
                let prefix = match order {
                    LabelOrder::Customer => 'c',
                    LabelOrder::Site => 's',
                };
                let mut token = format!("{prefix}.{slc}.");
                for byte in key.bytes() {
                    token.push_str(&format!("{byte:02x}"));
                }
                token
            }
        }
    }

    /// Parses [`PageCursor::to_token`]'s form.
    pub fn from_token(token: &str) -> Result<Self> {
        let invalid = || Error::InvalidInput {
            field: "page token",
            reason: "not a token returned by overview".into(),
        };
        if token.len() > MAX_TOKEN_LEN {
            return Err(invalid());
        }
        let (head, rest) = token.split_once('.').ok_or_else(invalid)?;
        let order = match head {
            "c" => LabelOrder::Customer,
            "s" => LabelOrder::Site,
            rank => {
                let rank = rank.parse::<u8>().map_err(|_| invalid())?;
                return Ok(Self::Health {
                    health: Health::from_rank(rank).map_err(|_| invalid())?,
                    slc: Slc::new(rest).map_err(|_| invalid())?,
                });
            }
        };
        let (slc, hex) = rest.split_once('.').ok_or_else(invalid)?;
        if hex.is_empty() || hex.len() % 2 != 0 {
            return Err(invalid());
        }
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(invalid)?;
        Ok(Self::Label {
            order,
            key: String::from_utf8(bytes).map_err(|_| invalid())?,
            slc: Slc::new(slc).map_err(|_| invalid())?,
        })
    }
}

/// Most rows one overview page may hold.
pub const MAX_PAGE_SIZE: u32 = 500;

/// Which installations an overview lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverviewQuery {
    /// List Healthy installations too (by default only those needing attention).
    pub include_healthy: bool,
    /// Only installations of this health (then `include_healthy` is moot).
    pub health: Option<Health>,
    /// Only installations whose SLC, customer, site or a tag contains this
    /// text (any case).
    pub search: Option<String>,
    /// Rows per page, 1 to [`MAX_PAGE_SIZE`].
    pub page_size: u32,
    /// How the rows are sorted.
    pub order: OverviewOrder,
    /// Continue after this position (a cursor of the same order).
    pub after: Option<PageCursor>,
}

impl Default for OverviewQuery {
    fn default() -> Self {
        Self {
            include_healthy: false,
            health: None,
            search: None,
            page_size: 50,
            order: OverviewOrder::WorstFirst,
            after: None,
        }
    }
}

/// Longest overview search text, in characters.
pub const MAX_SEARCH_CHARS: usize = 64;

impl OverviewQuery {
    /// Checks the page size, the search text and that the cursor continues
    /// this order.
    pub fn validate(&self) -> Result<()> {
        if let Some(after) = &self.after
            && after.order() != self.order
        {
            return Err(self.cursor_mismatch());
        }
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            return Err(Error::InvalidInput {
                field: "page size",
                reason: format!("{} rows; use 1 to {MAX_PAGE_SIZE}", self.page_size),
            });
        }
        if let Some(search) = &self.search {
            if search.chars().count() > MAX_SEARCH_CHARS {
                return Err(Error::InvalidInput {
                    field: "search",
                    reason: format!("at most {MAX_SEARCH_CHARS} characters"),
                });
            }
            if search.chars().any(char::is_control) {
                return Err(Error::InvalidInput {
                    field: "search",
                    reason: "control characters are not allowed".into(),
                });
            }
        }
        Ok(())
    }

    /// The search text as backends match it against the stored
    /// [`Labels::search_text`] (or the SLC when there are no labels):
    /// trimmed, upper case, `None` if empty.
    pub fn search_pattern(&self) -> Option<String> {
        self.search
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_uppercase)
    }

    /// The error for a cursor of another order than the query's.
    pub fn cursor_mismatch(&self) -> Error {
        let from = self.after.as_ref().map_or(self.order, PageCursor::order);
        Error::InvalidInput {
            field: "page token",
            reason: format!(
                "it continues the overview sorted by {}, not by {}",
                from.name(),
                self.order.name()
            ),
        }
    }

    /// The healths listed, lowest and highest: always one range of ranks
    /// (see [`OverviewQuery::lists`]), which backends test as one.
    pub fn health_range(&self) -> (Health, Health) {
        match self.health {
            Some(only) => (only, only),
            None if self.include_healthy => (Health::Healthy, Health::Offline),
            None => (Health::Pending, Health::Offline),
        }
    }

    /// A page from the rows a backend read: at most `page_size + 1` of them
    /// in this query's order, the one more telling whether a next page
    /// exists.
    pub fn page(&self, mut rows: Vec<OverviewRow>, totals: HealthTotals) -> OverviewPage {
        let limit = self.page_size as usize;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|row| PageCursor::after(self.order, row))
        } else {
            None
        };
        OverviewPage { rows, next, totals }
    }

    /// How many rows a backend reads: one more than the page holds.
    pub fn read_limit(&self) -> i64 {
        i64::from(self.page_size) + 1
    }

    /// Whether a row of this health is listed (before paging and search).
    pub fn lists(&self, health: Health) -> bool {
        match self.health {
            Some(only) => health == only,
            None => self.include_healthy || health != Health::Healthy,
        }
    }
}

/// One line of the overview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverviewRow {
    /// Installation.
    pub slc: Slc,
    /// What it runs.
    pub product: Product,
    /// Health, worst condition and counts.
    pub summary: HealthSummary,
    /// The latest message from any of its servers.
    pub last_seen_at: Option<Timestamp>,
    /// What the reseller calls it.
    pub labels: Labels,
    /// Whether the owner accepts the service.
    pub consent: bool,
    /// When Care Plus ends.
    pub subscription_expires_at: Option<Timestamp>,
}

impl OverviewRow {
    /// Why its messages are refused at `at`, if they are.
    pub fn refusal_at(&self, at: Timestamp) -> Option<Refusal> {
        refusal(self.consent, self.subscription_expires_at, at)
    }
}

/// Installations per health for one reseller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HealthTotals([u32; 5]);

impl HealthTotals {
    /// How many installations have this health.
    pub fn get(&self, health: Health) -> u32 {
        self.0[usize::from(health.rank())]
    }

    /// Sets the count for a health.
    pub fn set(&mut self, health: Health, count: u32) {
        self.0[usize::from(health.rank())] = count;
    }

    /// All installations.
    pub fn total(&self) -> u32 {
        self.0.iter().sum()
    }
}

/// One page of the overview, in its query's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverviewPage {
    /// The rows.
    pub rows: Vec<OverviewRow>,
    /// Where the next page starts, if there is one.
    pub next: Option<PageCursor>,
    /// Counts per health over all the reseller's installations.
    pub totals: HealthTotals,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by review: the longest labels, folded, made a token over the
    /// 4,096 characters the server read back, so the overview sorted by
    /// customer could not page past such a row.
    #[test]
    fn a_page_token_of_the_longest_folded_labels_reads_back() {
        let longest = "\u{fdfa}".repeat(40);
        let labels = Labels::new(&longest, &longest, "", &[]).expect("labels within their limits");
        for order in [LabelOrder::Customer, LabelOrder::Site] {
            let cursor = PageCursor::Label {
                order,
                key: labels.order_key(order),
                slc: Slc::new("M01-C01-123-45").expect("slc"),
            };
            let token = cursor.to_token();
            assert!(token.len() > 4096, "as long as found: {}", token.len());
            assert_eq!(PageCursor::from_token(&token).expect("parses"), cursor);
        }
    }

    #[test]
    fn page_tokens_read_back_in_every_order() {
        let slc = Slc::new("M01-C01-123-45").expect("slc");
        let cursors = [
            PageCursor::Health {
                health: Health::Critical,
                slc: slc.clone(),
            },
            PageCursor::Label {
                order: LabelOrder::Customer,
                key: "0müller gmbh\u{1f}hafen".into(),
                slc: slc.clone(),
            },
            PageCursor::Label {
                order: LabelOrder::Site,
                key: "2".into(),
                slc,
            },
        ];
        for cursor in cursors {
            let token = cursor.to_token();
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'),
                "{token}"
            );
            assert_eq!(PageCursor::from_token(&token).expect("parses"), cursor);
        }
        assert_eq!(
            PageCursor::from_token("3.M01-C01-123-45")
                .expect("the worst-first form is unchanged")
                .order(),
            OverviewOrder::WorstFirst
        );
    }

    #[test]
    fn bad_tokens_and_a_cursor_of_another_order_are_refused() {
        for token in [
            "",
            "9.M01-C01",
            "c.M01-C01-123-45",
            "c.M01-C01-123-45.",
            "c.M01-C01-123-45.3",
            "c.M01-C01-123-45.zz",
            "c.M01-C01-123-45.ff",
            "x.M01-C01-123-45.32",
            "c.bad slc.32",
        ] {
            let err = PageCursor::from_token(token).expect_err(token);
            assert!(
                matches!(
                    err,
                    Error::InvalidInput {
                        field: "page token",
                        ..
                    }
                ),
                "{token}: {err}"
            );
        }
        assert!(
            PageCursor::from_token(&format!("c.M01-C01-123-45.{}", "32".repeat(9000))).is_err()
        );
        let query = OverviewQuery {
            order: OverviewOrder::Customer,
            after: Some(PageCursor::Health {
                health: Health::Offline,
                slc: Slc::new("M01-C01-123-45").expect("slc"),
            }),
            ..OverviewQuery::default()
        };
        let err = query.validate().expect_err("another order's cursor");
        assert!(err.to_string().contains("sorted by health"), "{err}");
        assert_eq!(
            OverviewOrder::from_name(" site ").expect("known"),
            OverviewOrder::Site
        );
        assert!(OverviewOrder::from_name("price").is_err());
    }
}
