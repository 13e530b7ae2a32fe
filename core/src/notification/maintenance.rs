//! Maintenance windows: a reseller mutes one installation (or all of its
//! installations) for a period, once or repeating. Nothing notifies during
//! a window; the dashboard shows "in maintenance".

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::ids::{ResellerId, Slc};
use crate::team::Login;
use crate::time::Timestamp;

/// A window's public id (16 hex digits).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WindowId(Box<str>);

impl WindowId {
    /// A new random id.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 8];
        crate::seal::fill_random_bytes(&mut bytes);
        Self(
            bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into(),
        )
    }

    /// Parses an id: 16 hex digits.
    pub fn new(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.len() != 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidInput {
                field: "maintenance window id",
                reason: "16 hex digits".into(),
            });
        }
        Ok(Self(text.to_ascii_lowercase().into()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WindowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for WindowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WindowId({})", self.0)
    }
}

/// A maintenance window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceWindow {
    /// Its id.
    pub id: WindowId,
    /// Whose it is.
    pub reseller: ResellerId,
    /// One installation, or `None` for every installation of the reseller.
    pub slc: Option<Slc>,
    /// When the (first) window starts.
    pub starts_at: Timestamp,
    /// How long each window lasts.
    pub length: Duration,
    /// Repeats this often (e.g. weekly), or happens once.
    pub every: Option<Duration>,
    /// Why (shown on the dashboard).
    pub reason: String,
    /// Who set it, and when.
    pub created_by: Login,
    /// When it was set.
    pub created_at: Timestamp,
    /// When it was deleted: it mutes nothing and is listed nowhere, but it
    /// excluded time from uptime reports until then (only
    /// [`Store::report_maintenance_windows`] returns deleted windows).
    ///
    /// [`Store::report_maintenance_windows`]: crate::store::Store::report_maintenance_windows
    pub deleted_at: Option<Timestamp>,
}

impl MaintenanceWindow {
    /// Checks it: starting in 1970 to 9999, 1 minute to 30 days long,
    /// repeating every 1 hour to 366 days and not more often than it lasts,
    /// a reason of at most 200 characters.
    pub fn validate(self) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidInput {
            field: "maintenance window",
            reason: reason.into(),
        };
        if !(Timestamp::EPOCH..=Timestamp::LAST_CALENDAR).contains(&self.starts_at) {
            return Err(invalid("starts between 1970 and the end of 9999"));
        }
        if !(Duration::from_secs(60)..=Duration::from_secs(30 * 86_400)).contains(&self.length) {
            return Err(invalid("lasts 1 minute to 30 days"));
        }
        if let Some(every) = self.every
            && (every < self.length
                || !(Duration::from_secs(3600)..=Duration::from_secs(366 * 86_400))
                    .contains(&every))
        {
            return Err(invalid(
                "repeats every 1 hour to 366 days, and not more often than it lasts",
            ));
        }
        if self.reason.chars().count() > 200 || self.reason.chars().any(char::is_control) {
            return Err(invalid(
                "the reason has at most 200 characters, no control characters",
            ));
        }
        Ok(self)
    }

    /// Whether it applies to `slc`.
    pub fn covers(&self, slc: &Slc) -> bool {
        self.slc.as_ref().is_none_or(|s| s == slc)
    }

    /// When the first occurrence that begins after `at` begins, if any.
    pub fn next_start_after(&self, at: Timestamp) -> Option<Timestamp> {
        let start = self.starts_at.as_millis();
        let t = at.as_millis();
        if t < start {
            return Some(self.starts_at);
        }
        let every = i64::try_from(self.every?.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        // Checked: a window stored before starts were bounded may lie
        // anywhere in i64.
        let elapsed = t.checked_sub(start)?;
        let next = (start + elapsed / every * every).checked_add(every)?;
        Some(Timestamp::from_millis(next))
    }

    /// The occurrence `[start, end)` that contains `at`, if any.
    pub fn occurrence_at(&self, at: Timestamp) -> Option<(Timestamp, Timestamp)> {
        let start = self.starts_at.as_millis();
        let length = i64::try_from(self.length.as_millis()).unwrap_or(i64::MAX);
        let t = at.as_millis();
        if t < start {
            return None;
        }
        let begin = match self.every {
            None => start,
            Some(every) => {
                let every = i64::try_from(every.as_millis()).unwrap_or(i64::MAX).max(1);
                start + t.checked_sub(start)? / every * every
            }
        };
        let end = begin.saturating_add(length);
        (t < end).then(|| (Timestamp::from_millis(begin), Timestamp::from_millis(end)))
    }
}

/// When the next window covering `slc` begins after `at`, if any.
pub fn next_maintenance(
    windows: &[MaintenanceWindow],
    slc: &Slc,
    at: Timestamp,
) -> Option<Timestamp> {
    windows
        .iter()
        .filter(|w| w.covers(slc))
        .filter_map(|w| w.next_start_after(at))
        .min()
}

/// The end of the maintenance that covers `slc` at `at` (the latest end of
/// the windows in force), or `None` if it is not in maintenance.
pub fn in_maintenance(
    windows: &[MaintenanceWindow],
    slc: &Slc,
    at: Timestamp,
) -> Option<Timestamp> {
    windows
        .iter()
        .filter(|w| w.covers(slc))
        .filter_map(|w| w.occurrence_at(at).map(|(_, end)| end))
        .max()
}

/// How far [`maintenance_ends`] follows windows that take over from one
/// another: a window repeating as often as it lasts (allowed) never ends.
const MAINTENANCE_FOLLOWED_FOR: Duration = Duration::from_secs(366 * 86_400);

/// When the maintenance covering `slc` at `at` ends, following windows that
/// begin by the time the one before ends (at most a year and a day past
/// `at`: maintenance with no end ends there); `None` if it is not in
/// maintenance at `at`.
pub fn maintenance_ends(
    windows: &[MaintenanceWindow],
    slc: &Slc,
    at: Timestamp,
) -> Option<Timestamp> {
    let horizon = at.saturating_add(MAINTENANCE_FOLLOWED_FOR);
    let covering: Vec<MaintenanceWindow> =
        windows.iter().filter(|w| w.covers(slc)).cloned().collect();
    let mut end = in_maintenance(&covering, slc, at)?;
    // Each turn moves `end` to the end of an occurrence of a covering
    // window: bounded by their occurrences within the horizon (8,784 for
    // one hourly window).
    while end < horizon {
        match in_maintenance(&covering, slc, end) {
            Some(later) if later > end => end = later,
            _ => break,
        }
    }
    Some(end.min(horizon))
}

/// Until when a notice about `slc` queued at `queued` and held for
/// maintenance is still held at `at`, over `windows` (what is left after a
/// deletion): by the windows made by then (a window made later never held
/// it), `None` when none holds it any more.
pub fn held_until(
    windows: &[MaintenanceWindow],
    slc: &Slc,
    queued: Timestamp,
    at: Timestamp,
) -> Option<Timestamp> {
    let holding: Vec<MaintenanceWindow> = windows
        .iter()
        .filter(|w| w.created_at <= queued && w.covers(slc))
        .cloned()
        .collect();
    maintenance_ends(&holding, slc, at)
}

/// Why a notice held until maintenance ends is given up unsent.
pub const RENEWED_WHILE_HELD: &str =
    "not sent: Care Plus was renewed before the maintenance over the installation ended";

/// Whether `update` (giving `after`) at `at` gives up the installation's
/// notices held until maintenance ends (only Care Plus ending is held):
/// Care Plus renewed, the notice that it ended is no longer true.
pub fn gives_up_held_notices(
    update: &crate::store::InstallationUpdate,
    after: &crate::installation::Installation,
    at: Timestamp,
) -> bool {
    matches!(update, crate::store::InstallationUpdate::Subscription(_))
        && after.subscription_expires_at.is_none_or(|end| end > at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_millis(s * 1000)
    }

    fn window(slc: Option<&str>, start: i64, length: u64, every: Option<u64>) -> MaintenanceWindow {
        MaintenanceWindow {
            id: WindowId::generate(),
            reseller: ResellerId::new("acme").unwrap(),
            slc: slc.map(|s| Slc::new(s).unwrap()),
            starts_at: t(start),
            length: Duration::from_secs(length),
            every: every.map(Duration::from_secs),
            reason: "firmware".into(),
            created_by: Login::new("admin@acme.example").unwrap(),
            created_at: t(0),
            deleted_at: None,
        }
    }

    #[test]
    fn once_and_repeating_windows_cover_their_occurrences_only() {
        let slc = Slc::new("M01-C01-0001").unwrap();
        let other = Slc::new("M01-C01-0002").unwrap();
        let once = [window(Some("M01-C01-0001"), 100, 600, None)];
        assert_eq!(in_maintenance(&once, &slc, t(99)), None);
        assert_eq!(in_maintenance(&once, &slc, t(100)), Some(t(700)));
        assert_eq!(in_maintenance(&once, &slc, t(699)), Some(t(700)));
        assert_eq!(in_maintenance(&once, &slc, t(700)), None);
        assert_eq!(in_maintenance(&once, &other, t(200)), None);
        let weekly = [window(None, 0, 3600, Some(7 * 86_400))];
        assert_eq!(
            in_maintenance(&weekly, &other, t(7 * 86_400 + 10)),
            Some(t(7 * 86_400 + 3600))
        );
        assert_eq!(in_maintenance(&weekly, &other, t(7 * 86_400 + 3600)), None);
    }

    #[test]
    fn the_next_occurrence_begins_after_the_instant() {
        let slc = Slc::new("M01-C01-0001").unwrap();
        let once = window(None, 100, 600, None);
        assert_eq!(once.next_start_after(t(99)), Some(t(100)));
        assert_eq!(once.next_start_after(t(100)), None, "begun, not after");
        let daily = window(None, 100, 600, Some(86_400));
        assert_eq!(daily.next_start_after(t(100)), Some(t(86_500)));
        assert_eq!(daily.next_start_after(t(86_499)), Some(t(86_500)));
        let windows = [once, daily, window(Some("M01-C01-0002"), 50, 600, None)];
        assert_eq!(next_maintenance(&windows, &slc, t(0)), Some(t(100)));
        assert_eq!(next_maintenance(&windows, &slc, t(200)), Some(t(86_500)));
    }

    #[test]
    fn maintenance_ends_when_no_window_takes_over() {
        let slc = Slc::new("M01-C01-0001").unwrap();
        // 100–700, then 650–1250 takes over (it begins before 700 ends),
        // then 1250–1850 begins as it ends; 2000–2600 is apart.
        let windows = [
            window(Some("M01-C01-0001"), 100, 600, None),
            window(None, 650, 600, None),
            window(None, 1250, 600, None),
            window(None, 2000, 600, None),
            window(Some("M01-C01-0002"), 1850, 600, None),
        ];
        assert_eq!(maintenance_ends(&windows, &slc, t(50)), None);
        assert_eq!(maintenance_ends(&windows, &slc, t(100)), Some(t(1850)));
        assert_eq!(maintenance_ends(&windows, &slc, t(1300)), Some(t(1850)));
        assert_eq!(maintenance_ends(&windows, &slc, t(1850)), None);
        assert_eq!(maintenance_ends(&windows, &slc, t(2100)), Some(t(2600)));
        // An hour every hour never ends: held for a year and a day (it
        // ended after 65 hours, in the middle of the maintenance).
        let endless = [window(None, 0, 3600, Some(3600))];
        assert_eq!(
            maintenance_ends(&endless, &slc, t(100)),
            Some(t(100 + 366 * 86_400))
        );
    }

    #[test]
    fn windows_are_validated() {
        assert!(window(None, 0, 30, None).validate().is_err(), "too short");
        assert!(
            window(None, 0, 7200, Some(3600)).validate().is_err(),
            "repeats inside itself"
        );
        assert!(window(None, 0, 3600, Some(86_400)).validate().is_ok());
        assert!(
            window(None, 0, 3600, Some(366 * 86_400)).validate().is_ok(),
            "yearly"
        );
        assert!(
            window(None, 0, 3600, Some(367 * 86_400))
                .validate()
                .is_err(),
            "a period longer than a year never repeats: not a recurring window"
        );
    }

    #[test]
    fn a_start_outside_the_calendar_is_refused_and_never_overflows() {
        // A gRPC client may send any instant that fits in milliseconds: one
        // near i64::MIN overflowed `t - start` (a panic in debug builds, on
        // every notifier round, for every reseller).
        let far_past = MaintenanceWindow {
            starts_at: Timestamp::from_millis(i64::MIN + 1),
            ..window(None, 0, 3600, Some(3600))
        };
        let now = t(1_800_000_000);
        assert_eq!(far_past.occurrence_at(now), None);
        assert_eq!(far_past.next_start_after(now), None);
        assert!(far_past.validate().is_err(), "before 1970");
        let far_future = MaintenanceWindow {
            starts_at: Timestamp::from_millis(253_402_300_800_000),
            ..window(None, 0, 3600, None)
        };
        assert!(far_future.validate().is_err(), "after 9999");
        let last_day = MaintenanceWindow {
            starts_at: Timestamp::parse_utc("9999-12-31T23:00").unwrap(),
            ..window(None, 0, 3600, Some(86_400))
        };
        assert!(last_day.validate().is_ok());
    }
}
