//! What a reseller calls an installation: the customer, the site, notes and
//! tags. Only the reseller's own words: nothing here changes a verdict.
//!
//! Both backends store [`Labels::search_text`] beside the labels and match
//! an overview search against it, so "Müller" is found as "müller" the same
//! way on SQLite (whose `upper()` only knows ASCII) and PostgreSQL.

use crate::error::{Error, Result};
use crate::ids::{Slc, checked_text};

/// Longest customer or site name, in bytes.
pub const MAX_NAME_BYTES: usize = 120;
/// Longest notes, in bytes.
pub const MAX_NOTES_BYTES: usize = 4000;
/// Most tags on one installation.
pub const MAX_TAGS: usize = 16;
/// Longest tag, in bytes.
pub const MAX_TAG_BYTES: usize = 32;

/// An installation's labels, checked. The default is no labels.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Labels {
    customer: String,
    site: String,
    notes: String,
    tags: Vec<String>,
}

impl Labels {
    /// Checks and normalises labels: names and tags trimmed, without control
    /// characters; notes may span lines; tags lower case, sorted, each once,
    /// letters, digits, `-`, `_`, `.` and `/` only (so a list of them reads
    /// back unambiguously).
    pub fn new(customer: &str, site: &str, notes: &str, tags: &[String]) -> Result<Self> {
        let customer = checked_text("customer", customer, MAX_NAME_BYTES)?;
        let site = checked_text("site", site, MAX_NAME_BYTES)?;
        let notes = notes.trim().replace("\r\n", "\n");
        if notes.len() > MAX_NOTES_BYTES {
            return Err(invalid(
                "notes",
                format!("{} bytes; at most {MAX_NOTES_BYTES}", notes.len()),
            ));
        }
        if notes
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(invalid(
                "notes",
                "only line breaks and tabs among control characters".into(),
            ));
        }
        let mut checked = Vec::with_capacity(tags.len());
        for tag in tags {
            let tag = tag.trim().to_lowercase();
            if tag.is_empty() {
                continue;
            }
            if tag.len() > MAX_TAG_BYTES {
                return Err(invalid(
                    "tag",
                    format!("{tag:?} is {} bytes; at most {MAX_TAG_BYTES}", tag.len()),
                ));
            }
            if !tag
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
            {
                return Err(invalid(
                    "tag",
                    format!("{tag:?}: letters, digits, '-', '_', '.' and '/' only"),
                ));
            }
            checked.push(tag);
        }
        checked.sort();
        checked.dedup();
        if checked.len() > MAX_TAGS {
            return Err(invalid(
                "tags",
                format!("{} tags; at most {MAX_TAGS}", checked.len()),
            ));
        }
        Ok(Self {
            customer,
            site,
            notes,
            tags: checked,
        })
    }

    /// The customer's name ("" if not given).
    pub fn customer(&self) -> &str {
        &self.customer
    }

    /// The site's name ("" if not given).
    pub fn site(&self) -> &str {
        &self.site
    }

    /// Free-text notes ("" if none).
    pub fn notes(&self) -> &str {
        &self.notes
    }

    /// Tags, lower case, sorted, each once.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.customer.is_empty()
            && self.site.is_empty()
            && self.notes.is_empty()
            && self.tags.is_empty()
    }

    /// "Customer — Site", or whichever is given ("" if neither).
    pub fn title(&self) -> String {
        match (self.customer.is_empty(), self.site.is_empty()) {
            (false, false) => format!("{} — {}", self.customer, self.site),
            (false, true) => self.customer.clone(),
            (true, false) => self.site.clone(),
            (true, true) => String::new(),
        }
    }

    /// The tags as stored: space-separated (tags hold no spaces).
    pub fn encode_tags(&self) -> String {
        self.tags.join(" ")
    }

    /// Labels as stored (read back from a backend's columns).
    pub fn decode(customer: String, site: String, notes: String, tags: &str) -> Result<Self> {
        let tags: Vec<String> = tags.split_whitespace().map(str::to_owned).collect();
        Self::new(&customer, &site, &notes, &tags).map_err(|e| Error::StorageCorrupt {
            message: format!("stored labels: {e}"),
            source: None,
        })
    }

    /// What an overview search matches for an installation: its SLC, the
    /// customer, the site and the tags, upper case (Unicode), separated by a
    /// character no search holds. Backends store it and test whether it
    /// contains [`crate::store::OverviewQuery::search_pattern`].
    pub fn search_text(&self, slc: &Slc) -> String {
        let mut text = String::with_capacity(
            slc.as_str().len() + self.customer.len() + self.site.len() + 8 * self.tags.len(),
        );
        text.push_str(slc.as_str());
        for part in [&self.customer, &self.site]
            .into_iter()
            .chain(self.tags.iter())
        {
            if !part.is_empty() {
                text.push('\u{1f}');
                text.push_str(&part.to_uppercase());
            }
        }
        text
    }
}

/// Which label an overview sorted by name orders installations by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabelOrder {
    /// Customer, then site.
    Customer,
    /// Site, then customer.
    Site,
}

/// The order key of an installation without the label sorted by (and
/// without the other either): after every named one. Migration 0011 of both
/// backends writes it as the column default; a test holds them together.
pub const UNLABELED_ORDER_KEY: &str = "2";

impl Labels {
    /// What an overview sorted by `order` compares, byte for byte (both
    /// backends store it beside the labels, in a bytewise collation): the
    /// installations named by that label first, A to Z ignoring case and
    /// accents ("Ärzte" beside "Arzte", before "Bäcker"), then those with only
    /// the other label, then the unlabeled; backends break ties by SLC.
    pub fn order_key(&self, order: LabelOrder) -> String {
        let (first, second) = match order {
            LabelOrder::Customer => (&self.customer, &self.site),
            LabelOrder::Site => (&self.site, &self.customer),
        };
        let mut key = String::with_capacity(first.len() + second.len() + 2);
        if !first.is_empty() {
            key.push('0');
            fold_into(&mut key, first);
            // Below every character a name may hold: "Ab" before "Ab C".
            key.push('\u{1f}');
            fold_into(&mut key, second);
        } else if !second.is_empty() {
            key.push('1');
            fold_into(&mut key, second);
        } else {
            key.push_str(UNLABELED_ORDER_KEY);
        }
        key
    }
}

/// Appends `name` without accents (compatibility decomposition, combining
/// marks dropped) in lower case.
fn fold_into(key: &mut String, name: &str) {
    use unicode_normalization::UnicodeNormalization;
    use unicode_normalization::char::is_combining_mark;
    for c in name.nfkd().filter(|c| !is_combining_mark(*c)) {
        key.extend(c.to_lowercase());
    }
}

fn invalid(field: &'static str, reason: String) -> Error {
    Error::InvalidInput { field, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn labels_are_trimmed_and_tags_normalised() {
        let labels = Labels::new(
            "  Müller GmbH ",
            "Warehouse 3",
            "gate code at reception\r\n2nd line",
            &tags(&["VIP", "north", " vip ", ""]),
        )
        .expect("valid");
        assert_eq!(labels.customer(), "Müller GmbH");
        assert_eq!(labels.tags(), ["north", "vip"]);
        assert_eq!(labels.notes(), "gate code at reception\n2nd line");
        assert_eq!(labels.title(), "Müller GmbH — Warehouse 3");
        let back = Labels::decode(
            labels.customer().into(),
            labels.site().into(),
            labels.notes().into(),
            &labels.encode_tags(),
        )
        .expect("reads back");
        assert_eq!(back, labels);
    }

    #[test]
    fn bad_labels_are_refused_with_the_field() {
        for (customer, notes, tag, field) in [
            ("a\u{7}b", "", "ok", "customer"),
            ("", "bell\u{7}", "ok", "notes"),
            ("", "", "two words", "tag"),
            ("", "", "comma,separated", "tag"),
        ] {
            let err = Labels::new(customer, "", notes, &tags(&[tag])).expect_err("refused");
            assert!(
                matches!(err, Error::InvalidInput { field: f, .. } if f == field),
                "{err}"
            );
        }
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        assert!(Labels::new(&long, "", "", &[]).is_err());
        let many: Vec<String> = (0..=MAX_TAGS).map(|n| format!("t{n}")).collect();
        assert!(Labels::new("", "", "", &many).is_err());
        assert!(Labels::new("", "", &"n".repeat(MAX_NOTES_BYTES + 1), &[]).is_err());
    }

    #[test]
    fn the_search_text_matches_unicode_case_insensitively() {
        let slc = Slc::new("M01-C01-123-45").expect("slc");
        let labels = Labels::new("Müller GmbH", "Hafen", "", &tags(&["nord"])).expect("valid");
        let text = labels.search_text(&slc);
        for search in ["müller", "MÜLLER", "hafen", "NORD", "c01-123"] {
            assert!(text.contains(&search.trim().to_uppercase()), "{search}");
        }
        assert!(!text.contains("GMBH\u{1f}HAFEN ") && !text.contains("NOTES"));
        assert_eq!(Labels::default().search_text(&slc), slc.as_str());
    }

    #[test]
    fn order_keys_sort_by_name_ignoring_case_and_accents_unlabeled_last() {
        let named =
            |customer: &str, site: &str| Labels::new(customer, site, "", &[]).expect("valid");
        let by_customer = [
            named("Ärzte am Markt", "Zentrale"),
            named("arzte am markt", "Zweigstelle"),
            named("Bäcker", ""),
            named("Bäcker Süd", "Halle"),
            named("ﬁsh & Co", ""), // the ligature decomposes to "fi"
            named("Zoo", "Alpha"),
            named("", "Aachen"),
            named("", "zeche"),
            Labels::default(),
        ];
        let keys: Vec<String> = by_customer
            .iter()
            .map(|l| l.order_key(LabelOrder::Customer))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, keys, "customer, then site; the unlabeled last");
        assert_eq!(
            Labels::default().order_key(LabelOrder::Site),
            UNLABELED_ORDER_KEY
        );
        // By site: the site named first, then only a customer.
        assert!(
            named("Zoo", "Alpha").order_key(LabelOrder::Site)
                < named("", "Beta").order_key(LabelOrder::Site)
        );
        assert!(
            named("", "Zulu").order_key(LabelOrder::Site)
                < named("Aaron", "").order_key(LabelOrder::Site)
        );
        assert_eq!(
            named("Ärzte", "").order_key(LabelOrder::Customer),
            named("ARZTE", "").order_key(LabelOrder::Customer)
        );
    }
}
