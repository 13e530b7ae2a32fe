//! How times and durations read on the page.

use std::time::Duration;

use carewatch_core::Error;
use carewatch_core::time::Timestamp;
use maud::{Markup, html};

/// `2026-01-01 12:00:05 UTC`: the RFC 3339 form, shortened for people.
pub fn instant(at: Timestamp) -> String {
    let text = at.to_string();
    // `2026-01-01T12:00:05.123Z`: drop the milliseconds.
    match text.split_once('T') {
        Some((date, time)) => format!("{date} {} UTC", time.get(..8).unwrap_or(time)),
        None => text,
    }
}

/// A `<time>` element with the exact instant in `datetime`.
pub fn time(at: Timestamp) -> Markup {
    html! { time datetime=(at.to_string()) { (instant(at)) } }
}

/// A `<time>` element with how long ago, e.g. "3 min ago", and the instant
/// as its title.
pub fn ago(at: Timestamp, now: Timestamp) -> Markup {
    let text = if at > now {
        "just now".to_owned()
    } else {
        let since = now.since(at);
        if since < Duration::from_secs(5) {
            "just now".to_owned()
        } else {
            format!("{} ago", duration(since))
        }
    };
    html! { time datetime=(at.to_string()) title=(instant(at)) { (text) } }
}

/// A duration in the two largest units that matter: `45 s`, `3 min 20 s`,
/// `2 h 5 min`, `3 d 4 h`.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (days, hours, minutes) {
        (0, 0, 0) if secs == 0 && d.subsec_millis() > 0 => format!("{} ms", d.subsec_millis()),
        (0, 0, 0) => format!("{seconds} s"),
        (0, 0, _) if seconds == 0 => format!("{minutes} min"),
        (0, 0, _) => format!("{minutes} min {seconds} s"),
        (0, _, 0) => format!("{hours} h"),
        (0, _, _) => format!("{hours} h {minutes} min"),
        (_, 0, _) => format!("{days} d"),
        _ => format!("{days} d {hours} h"),
    }
}

/// "1 heartbeat", "3 heartbeats".
pub fn heartbeats(n: u32) -> String {
    if n == 1 {
        "1 heartbeat".to_owned()
    } else {
        format!("{n} heartbeats")
    }
}

/// `2026-01-01T12:00`: an instant as an `<input type="datetime-local">`
/// value, in UTC, to the minute.
pub fn datetime_local(at: Timestamp) -> String {
    let text = at.to_string();
    text.get(..16).unwrap_or(&text).to_owned()
}

/// Parses what an `<input type="datetime-local">` sends, read as UTC
/// (see [`Timestamp::parse_utc`] for what else it accepts).
pub fn parse_datetime_local(field: &'static str, text: &str) -> Result<Timestamp, Error> {
    Timestamp::parse_utc(text).ok_or_else(|| Error::InvalidInput {
        field,
        reason: format!(
            "{:?} is not a date and time like 2026-03-01T22:00",
            text.trim()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_two_units() {
        let s = Duration::from_secs;
        assert_eq!(duration(s(0)), "0 s");
        assert_eq!(duration(Duration::from_millis(250)), "250 ms");
        assert_eq!(duration(s(45)), "45 s");
        assert_eq!(duration(s(180)), "3 min");
        assert_eq!(duration(s(200)), "3 min 20 s");
        assert_eq!(duration(s(7200)), "2 h");
        assert_eq!(duration(s(7500)), "2 h 5 min");
        assert_eq!(duration(s(3 * 86_400 + 4 * 3600 + 5)), "3 d 4 h");
        assert_eq!(duration(s(2 * 86_400 + 60)), "2 d");
    }

    #[test]
    fn instants_read_in_utc() {
        let at = Timestamp::from_millis(1_767_225_605_123);
        assert_eq!(instant(at), "2026-01-01 00:00:05 UTC");
        assert_eq!(
            ago(at, at.saturating_add(Duration::from_secs(120))).into_string(),
            "<time datetime=\"2026-01-01T00:00:05.123Z\" title=\"2026-01-01 00:00:05 UTC\">2 min ago</time>"
        );
    }

    #[test]
    fn datetime_local_values_read_as_utc_and_round_trip() {
        let at = Timestamp::from_millis(1_767_225_600_000); // 2026-01-01T00:00Z
        assert_eq!(datetime_local(at), "2026-01-01T00:00");
        let parse = |t: &str| parse_datetime_local("starts", t);
        assert_eq!(parse("2026-01-01T00:00").ok(), Some(at));
        assert_eq!(parse(&datetime_local(at)).ok(), Some(at));
        assert_eq!(
            parse("2026-01-01T12:30:15").ok(),
            Some(Timestamp::from_millis(1_767_225_600_000 + 45_015_000))
        );
        assert_eq!(parse("2026-01-01 00:00Z").ok(), Some(at));
        assert_eq!(
            parse("2024-02-29T00:00")
                .ok()
                .map(datetime_local)
                .as_deref(),
            Some("2024-02-29T00:00")
        );
        for bad in [
            "",
            "tomorrow",
            "2026-02-29T00:00",
            "2026-13-01T00:00",
            "2026-01-01T24:00",
            "2026-01-01T00:00:00:00",
            "+2026-01-01T00:00",
            "2026-1-1T-1:00",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
