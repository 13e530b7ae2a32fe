//! The period a report covers: a UTC day, the last N days, a calendar month.

use std::fmt;
use std::time::Duration;

use super::interval::Interval;
use crate::error::{Error, Result};
use crate::time::Timestamp;

const DAY_MS: i64 = 86_400_000;

/// Most days [`Period::last_days`] reaches back.
pub const MAX_LAST_DAYS: u32 = 366;

/// A reporting period `[start, end)`, never empty. Days and months are UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Period {
    start: Timestamp,
    end: Timestamp,
}

fn invalid(field: &'static str, reason: String) -> Error {
    Error::InvalidInput { field, reason }
}

fn days_in_month(year: i32, month: u32) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Whether `text` is `len` ASCII digits.
fn digits(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_digit())
}

impl Period {
    /// `[start, end)`; `start` must be before `end`.
    pub fn new(start: Timestamp, end: Timestamp) -> Result<Self> {
        if start >= end {
            return Err(invalid(
                "period",
                format!("starts at {start}, not before its end {end}"),
            ));
        }
        Ok(Self { start, end })
    }

    /// The UTC day `year-month-day`, midnight to midnight.
    pub fn day(year: i32, month: u32, day: u32) -> Result<Self> {
        let start = Timestamp::parse_utc(&format!("{year:04}-{month:02}-{day:02}")).ok_or_else(
            || {
                invalid(
                    "day",
                    format!(
                        "{year:04}-{month:02}-{day:02} is not a date between 1970-01-01 and 9999-12-31"
                    ),
                )
            },
        )?;
        Ok(Self::day_containing(start))
    }

    /// The UTC day that contains `t`.
    pub fn day_containing(t: Timestamp) -> Self {
        let start = t.as_millis().div_euclid(DAY_MS) * DAY_MS;
        Self {
            start: Timestamp::from_millis(start),
            end: Timestamp::from_millis(start.saturating_add(DAY_MS)),
        }
    }

    /// Reads a day as `YYYY-MM-DD`, e.g. `2026-11-03`.
    pub fn parse_day(text: &str) -> Result<Self> {
        let text = text.trim();
        let shape = || {
            invalid(
                "day",
                format!("{text:?} is not a day: write YYYY-MM-DD, e.g. 2026-11-03"),
            )
        };
        let mut parts = text.split('-');
        let (Some(y), Some(m), Some(d), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(shape());
        };
        if !digits(y, 4) || !digits(m, 2) || !digits(d, 2) {
            return Err(shape());
        }
        let number = |part: &str| part.parse::<u32>().map_err(|_| shape());
        let year = i32::try_from(number(y)?).map_err(|_| shape())?;
        Self::day(year, number(m)?, number(d)?)
    }

    /// The `days` × 24 hours before `end`: `[end − days, end)`, 1 to
    /// [`MAX_LAST_DAYS`] days (the rolling figure uses 30).
    pub fn last_days(end: Timestamp, days: u32) -> Result<Self> {
        if !(1..=MAX_LAST_DAYS).contains(&days) {
            return Err(invalid(
                "days",
                format!("{days} days; use 1 to {MAX_LAST_DAYS}"),
            ));
        }
        let start = end.saturating_sub(Duration::from_secs(u64::from(days) * 86_400));
        Self::new(start, end)
    }

    /// The UTC calendar month `month` (1 to 12) of `year` (1970 to 9999).
    pub fn month(year: i32, month: u32) -> Result<Self> {
        if !(1..=12).contains(&month) {
            return Err(invalid(
                "month",
                format!("{year:04}-{month:02}: there is no month {month}; use 01 to 12"),
            ));
        }
        let start = Timestamp::parse_utc(&format!("{year:04}-{month:02}-01")).ok_or_else(|| {
            invalid(
                "month",
                format!("{year:04}-{month:02}: the year must be 1970 to 9999"),
            )
        })?;
        let end = start.as_millis() + days_in_month(year, month) * DAY_MS;
        Self::new(start, Timestamp::from_millis(end))
    }

    /// Reads a month as `YYYY-MM`, e.g. `2026-11` (what
    /// `carewatch report --month` takes).
    pub fn parse_month(text: &str) -> Result<Self> {
        let text = text.trim();
        let shape = || {
            invalid(
                "month",
                format!("{text:?} is not a month: write YYYY-MM, e.g. 2026-11"),
            )
        };
        let (y, m) = text.split_once('-').ok_or_else(shape)?;
        if !digits(y, 4) || !digits(m, 2) {
            return Err(shape());
        }
        let year = y.parse::<i32>().map_err(|_| shape())?;
        let month = m.parse::<u32>().map_err(|_| shape())?;
        Self::month(year, month)
    }

    /// Its first instant.
    pub fn start(&self) -> Timestamp {
        self.start
    }

    /// The first instant after it.
    pub fn end(&self) -> Timestamp {
        self.end
    }

    /// How long it is.
    pub fn length(&self) -> Duration {
        self.end.since(self.start)
    }

    /// As an [`Interval`].
    pub fn interval(&self) -> Interval {
        Interval::new(self.start, self.end)
    }
}

/// ISO 8601 interval notation: `2026-11-01T00:00:00.000Z/2026-12-01T00:00:00.000Z`.
impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_utc(text).expect("a time")
    }

    fn reason(result: Result<Period>) -> (&'static str, String) {
        match result {
            Err(Error::InvalidInput { field, reason }) => (field, reason),
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn a_day_is_utc_midnight_to_midnight() {
        let day = Period::day(2026, 11, 3).expect("a day");
        assert_eq!(day.start(), at("2026-11-03"));
        assert_eq!(day.end(), at("2026-11-04"));
        assert_eq!(day.length(), Duration::from_secs(86_400));
        assert_eq!(Period::day_containing(at("2026-11-03T23:59:59")), day);
        assert_eq!(Period::day_containing(at("2026-11-03")), day);
        assert_eq!(Period::parse_day(" 2026-11-03 ").expect("parses"), day);
        assert_eq!(
            day.to_string(),
            "2026-11-03T00:00:00.000Z/2026-11-04T00:00:00.000Z"
        );
        assert_eq!(
            Period::day(2028, 2, 29).expect("leap day").end(),
            at("2028-03-01")
        );
        for bad in [
            "",
            "2026-11",
            "2026-11-3",
            "2026-02-30",
            "2026-11-03T10:00",
            "x",
        ] {
            assert_eq!(reason(Period::parse_day(bad)).0, "day", "{bad:?}");
        }
        assert!(reason(Period::day(2026, 2, 30)).1.contains("2026-02-30"));
    }

    #[test]
    fn the_last_days_end_at_the_given_instant() {
        let end = at("2026-11-30T12:00");
        let p = Period::last_days(end, 30).expect("30 days");
        assert_eq!(p.start(), at("2026-10-31T12:00"));
        assert_eq!(p.end(), end);
        assert_eq!(p.length(), Duration::from_secs(30 * 86_400));
        assert_eq!(reason(Period::last_days(end, 0)).0, "days");
        assert!(Period::last_days(end, MAX_LAST_DAYS + 1).is_err());
    }

    #[test]
    fn a_month_is_a_calendar_month() {
        let nov = Period::month(2026, 11).expect("a month");
        assert_eq!(
            (nov.start(), nov.end()),
            (at("2026-11-01"), at("2026-12-01"))
        );
        let dec = Period::parse_month("2026-12").expect("parses");
        assert_eq!(
            (dec.start(), dec.end()),
            (at("2026-12-01"), at("2027-01-01"))
        );
        assert_eq!(
            Period::month(2028, 2).expect("leap").length(),
            Duration::from_secs(29 * 86_400)
        );
        assert_eq!(
            Period::month(2100, 2).expect("not leap").length(),
            Duration::from_secs(28 * 86_400)
        );
        assert_eq!(
            Period::month(9999, 12).expect("last").end().as_millis(),
            at("9999-12-31").as_millis() + DAY_MS
        );
        assert_eq!(Period::parse_month(" 2026-11 ").expect("trimmed"), nov);
    }

    #[test]
    fn a_bad_month_says_what_is_wrong() {
        let (field, why) = reason(Period::parse_month("2026-13"));
        assert_eq!(field, "month");
        assert!(
            why.contains("no month 13") && why.contains("01 to 12"),
            "{why}"
        );
        let (_, why) = reason(Period::parse_month("2026-00"));
        assert!(why.contains("no month 0"), "{why}");
        for bad in [
            "",
            "26-11",
            "2026-1",
            "2026/11",
            "2026-11-01",
            "2026-",
            "-11",
            "２026-11",
        ] {
            let (field, why) = reason(Period::parse_month(bad));
            assert_eq!(field, "month", "{bad:?}");
            assert!(why.contains("YYYY-MM"), "{bad:?}: {why}");
        }
        let (_, why) = reason(Period::parse_month("1969-12"));
        assert!(why.contains("1970 to 9999"), "{why}");
    }

    #[test]
    fn a_period_is_never_empty() {
        let t = at("2026-11-01");
        assert_eq!(reason(Period::new(t, t)).0, "period");
        assert!(Period::new(t, Timestamp::from_millis(t.as_millis() + 1)).is_ok());
    }
}
