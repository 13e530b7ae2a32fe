//! Time as the service sees it: milliseconds since the Unix epoch, UTC.
//!
//! One integer is cheap to compare, to store in SQL and to scan in bulk; the
//! service clock is the only source (the sender's clock is never trusted).

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An instant, in milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The epoch itself.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// The last millisecond of 9999-12-31 (UTC): the end of the calendar
    /// people type and read.
    pub const LAST_CALENDAR: Timestamp = Timestamp(253_402_300_799_999);

    /// From milliseconds since the epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// This instant plus `d`, saturating instead of overflowing.
    pub fn saturating_add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(duration_millis(d)))
    }

    /// This instant minus `d`, saturating instead of overflowing.
    pub fn saturating_sub(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(duration_millis(d)))
    }

    /// Time from `earlier` to `self`; zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

/// Milliseconds of a duration, saturating at `i64::MAX`.
pub fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Self(duration_millis(d)),
            Err(e) => Self(-duration_millis(e.duration())),
        }
    }
}

impl From<Timestamp> for SystemTime {
    fn from(t: Timestamp) -> Self {
        let magnitude = Duration::from_millis(t.0.unsigned_abs());
        if t.0 >= 0 {
            UNIX_EPOCH + magnitude
        } else {
            UNIX_EPOCH - magnitude
        }
    }
}

impl Timestamp {
    /// Reads a UTC date and time as people type it: `YYYY-MM-DD`, then
    /// optionally `T` (or a space) and `HH:MM`, `:SS`, a fraction (dropped)
    /// and a trailing `Z`. A bare date is midnight. `None` if it is not one,
    /// including impossible dates (2026-02-30) and years outside 1970–9999.
    pub fn parse_utc(text: &str) -> Option<Timestamp> {
        Self::parse_utc_with_time(text).map(|(at, _)| at)
    }

    /// An end as people type it: [`Timestamp::parse_utc`], except that a
    /// bare date covers the whole of that day (it ends at the next
    /// midnight), as a contract's "valid until 31 December" does.
    pub fn parse_utc_end(text: &str) -> Option<Timestamp> {
        let (at, time_given) = Self::parse_utc_with_time(text)?;
        Some(if time_given {
            at
        } else {
            at.saturating_add(Duration::from_secs(24 * 3600))
        })
    }

    /// [`Timestamp::parse_utc`] and whether a time of day was given.
    fn parse_utc_with_time(text: &str) -> Option<(Timestamp, bool)> {
        let text = text.trim();
        let text = text.strip_suffix('Z').unwrap_or(text);
        let (date, time) = match text.split_once('T').or_else(|| text.split_once(' ')) {
            Some((date, time)) => (date, Some(time)),
            None => (text, None),
        };
        let number = |part: &str| -> Option<i64> {
            if part.is_empty() || part.len() > 4 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        let mut date_parts = date.split('-');
        let (Some(y), Some(m), Some(d), None) = (
            date_parts.next(),
            date_parts.next(),
            date_parts.next(),
            date_parts.next(),
        ) else {
            return None;
        };
        let (y, m, d) = (number(y)?, number(m)?, number(d)?);
        let (hh, mm, ss) = match time {
            None => (0, 0, 0),
            Some(time) => {
                // A fraction is digits only: an offset after it
                // (`…59.0-08:00`, what PowerShell's `-Format o` writes) was
                // dropped with it, silently read as UTC.
                let time = match time.split_once('.') {
                    None => time,
                    Some((whole, fraction))
                        if (1..=9).contains(&fraction.len())
                            && fraction.bytes().all(|b| b.is_ascii_digit()) =>
                    {
                        whole
                    }
                    Some(_) => return None,
                };
                let mut parts = time.split(':');
                let (Some(hh), Some(mm), ss, None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return None;
                };
                (number(hh)?, number(mm)?, ss.map(number).unwrap_or(Some(0))?)
            }
        };
        if !(1970..=9999).contains(&y)
            || !(1..=12).contains(&m)
            || !(1..=days_in_month(y, m)).contains(&d)
            || hh > 23
            || mm > 59
            || ss > 59
        {
            return None;
        }
        let seconds = days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss;
        Some((Timestamp(seconds * 1000), time.is_some()))
    }
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a civil date: Howard Hinnant's algorithm.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-11-22T17:02:44.123Z`.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(86_400_000);
        let ms_of_day = self.0.rem_euclid(86_400_000);
        let (y, m, d) = civil_from_days(days);
        let (h, min, s, ms) = (
            ms_of_day / 3_600_000,
            ms_of_day / 60_000 % 60,
            ms_of_day / 1000 % 60,
            ms_of_day % 1000,
        );
        write!(f, "{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{ms:03}Z")
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Days since the epoch to (year, month, day): Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Where the service reads the time. Injected so tests and simulations control it.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        SystemTime::now().into()
    }
}

/// A clock that moves only when told to: for tests and deterministic simulations.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self(AtomicI64::new(start.as_millis()))
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(duration_millis(d), Ordering::SeqCst);
    }

    /// Sets the clock to `t`.
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.as_millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_rfc3339() {
        assert_eq!(
            Timestamp::from_millis(0).to_string(),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_millis(1_795_885_364_123).to_string(),
            "2026-11-28T17:02:44.123Z"
        );
        assert_eq!(
            Timestamp::from_millis(951_782_400_000).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_millis(-1).to_string(),
            "1969-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn an_end_given_as_a_date_is_the_whole_of_that_day() {
        let day = Timestamp::parse_utc("2027-12-31").expect("date");
        let next = day.saturating_add(Duration::from_secs(86_400));
        for bare in ["2027-12-31", " 2027-12-31Z "] {
            assert_eq!(Timestamp::parse_utc_end(bare), Some(next), "{bare}");
        }
        for exact in [
            "2027-12-31T12:00:00Z",
            "2027-12-31 12:00",
            "2027-12-31T00:00",
        ] {
            assert_eq!(
                Timestamp::parse_utc_end(exact),
                Timestamp::parse_utc(exact),
                "{exact}"
            );
        }
        assert_eq!(Timestamp::parse_utc_end("2027-12-32"), None);
    }

    #[test]
    fn an_offset_or_anything_after_the_fraction_is_refused_not_dropped() {
        for text in [
            "2027-12-31T23:59:59.0-08:00",
            "2026-03-01T22:00:00.000+02:00",
            "2026-03-01T22:00:00.5x",
            "2026-03-01T22:00:00.",
            "2026-03-01T22:00:00.1234567890",
        ] {
            assert_eq!(Timestamp::parse_utc(text), None, "{text}");
        }
        assert_eq!(
            Timestamp::parse_utc("2027-12-31T23:59:59.123456789Z"),
            Timestamp::parse_utc("2027-12-31T23:59:59Z")
        );
    }

    #[test]
    fn parses_what_people_type_and_round_trips_display() {
        let at = |text| Timestamp::parse_utc(text).map(|t| t.to_string());
        assert_eq!(
            at("2026-03-01T22:00").as_deref(),
            Some("2026-03-01T22:00:00.000Z")
        );
        assert_eq!(
            at("2026-03-01 22:00:05Z").as_deref(),
            Some("2026-03-01T22:00:05.000Z")
        );
        assert_eq!(
            at("2028-02-29").as_deref(),
            Some("2028-02-29T00:00:00.000Z")
        );
        assert_eq!(
            at("2026-11-28T17:02:44.123Z").as_deref(),
            Some("2026-11-28T17:02:44.000Z")
        );
        for ms in [0, 951_782_400_000, 1_795_885_364_000] {
            let t = Timestamp::from_millis(ms);
            assert_eq!(Timestamp::parse_utc(&t.to_string()), Some(t));
        }
        for bad in [
            "",
            "now",
            "2026-02-30",
            "2026-13-01",
            "1969-12-31",
            "2026-03-01T24:00",
            "2026-03-01T22",
            "2026-03-01T22:00:00:00",
            "+2026-03-01",
            "2026-03-01T22:-1",
            "2026-03-01-02",
        ] {
            assert_eq!(Timestamp::parse_utc(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn system_time_round_trip() {
        for ms in [-5_000, 0, 1_700_000_000_123] {
            let t = Timestamp::from_millis(ms);
            assert_eq!(Timestamp::from(SystemTime::from(t)), t);
        }
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp::from_millis(1000));
        assert_eq!(clock.now(), Timestamp::from_millis(1000));
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now(), Timestamp::from_millis(3000));
    }
}
