//! Uptime reports (issue 18): per installation and per recording server,
//! the availability over a period (a day, the last 30 days, a calendar
//! month), computed from the history with Carewatch's own downtime and the
//! reseller's maintenance windows excluded and shown as such; the number and
//! total length of outages; the mean time to recovery (MTTR). A report per
//! reseller as CSV and JSON ([`UptimeReport`]).
//!
//! Pure rules: no I/O, no SQL. Storage reads the history, the own-downtime
//! windows and the maintenance windows; front ends format the result.
//!
//! # The rules
//!
//! **Time** is half-open: an [`Interval`] or a [`Period`] `[start, end)`
//! holds `start` and not `end`, so consecutive days share no instant and
//! their lengths add up. Durations are exact to the millisecond.
//!
//! **A server's timeline** ([`Timeline::of_server`]) comes from its
//! history, given in any order (sorted here by time; at one instant in the
//! order of a server's life: unavailable, recovered, decommissioned,
//! recommissioned, parked, resumed):
//! - it is *monitored* from its `first_seen_at` on, except while retired:
//!   from a [`HistoryKind::Decommissioned`] to the next
//!   [`HistoryKind::Recommissioned`], and while Carewatch refused its
//!   installation's messages (Care Plus ended, consent withdrawn): from a
//!   [`HistoryKind::Parked`] to the next [`HistoryKind::Resumed`].
//!   Unmonitored time is not judged: a server cannot be seen while its
//!   messages are refused, so that time is neither up nor down;
//! - a [`HistoryKind::BecameUnavailable`] at `t` opens an outage at `t`,
//!   Carewatch's verdict time: the store records it at the instant the
//!   server counted as unavailable (when the threshold-th missed heartbeat
//!   fell due), so the heartbeats it was merely late for are not down time;
//!   another one while an outage is open, or while retired, changes
//!   nothing;
//! - the next [`HistoryKind::Recovered`] ends it ([`OutageEnd::Recovered`],
//!   at the message that ended it); being decommissioned ends it too
//!   ([`OutageEnd::Retired`]: it counts as an outage, not for MTTR), and so
//!   does being parked ([`OutageEnd::Refused`], the same); a server still
//!   unavailable when it is resumed is in a new outage from then on (the
//!   dashboard still shows it unavailable);
//! - a `Recovered` (`Recommissioned`, `Resumed`) with no open outage
//!   (retirement, refusal), because its start is older than the history
//!   given, reaches back by its `unavailable_for` (`decommissioned_for`,
//!   `parked_for`); never before the server was first seen or the previous
//!   change;
//! - an outage still open at the end of the period ends there,
//!   [`OutageEnd::Ongoing`]. Events after the period only tell whether an
//!   outage begun in it was still going on at its end.
//!
//! So that the state at the period's start is known, the caller passes
//! history from before it, at least back to each server's latest
//! `BecameUnavailable` and `Decommissioned` before it, and its latest
//! `Parked` or `Resumed`; older entries do no harm.
//!
//! **An installation's timeline** ([`Timeline::of_installation`]): it is
//! monitored while any of its counted servers is, and *out* while every one
//! of its servers that is monitored is in an outage: the dashboard's
//! Offline rule ([`crate::health::summarize`]), where a server not yet seen
//! or retired does not count. So a server first seen, or brought back,
//! while the others are out ends the installation's outage (the site is
//! reachable again: Recovered), and retiring the last server that was up
//! while the others are out begins one; retiring the last monitored server
//! while out ends it as Retired (parking them, as Refused). Changes at one instant are applied
//! together, so one server taking over from another at the same
//! millisecond is no outage. The servers to count are the caller's.
//!
//! **Exclusions** ([`Exclusions`]) are Carewatch's own downtime (the
//! [`DowntimeWindow`]s) and every occurrence of the reseller's maintenance
//! windows that cover the installation ([`MaintenanceWindow::covers`]),
//! including occurrences that began before the period (clipped to it),
//! from the window's creation on and until its deletion: a window made
//! during or after an outage, or dated back, excludes nothing before it
//! was made, and a deleted one still excludes what it did before it was
//! deleted ([`MaintenanceWindow::deleted_at`]), so a report of a past
//! period cannot be changed by a window made or deleted later.
//! Where own downtime and maintenance overlap, the time counts once, as
//! own downtime: Carewatch saw nothing then, maintenance or not.
//!
//! **The figures** ([`Uptime`]) partition the period, each instant in the
//! first class that applies:
//! 1. *unmonitored*: not monitored (above);
//! 2. *excluded own downtime*;
//! 3. *excluded maintenance*;
//! 4. *observed*: the rest.
//!
//! *Down* is outage time within observed time. An outage *counts* for the
//! period when some of its time is observed in the period (an outage wholly
//! inside maintenance does not count); *outages* is their number and
//! *outage time* their length within the period, excluded stretches
//! included (so `outage_time − down` is excluded time that fell inside
//! outages). *Ongoing* says whether a counted outage was still in progress
//! at the end of the period. *MTTR* is the mean length, without its
//! excluded time, of the counted outages that ended with a recovery within
//! the period, each over its whole extent (one that began before the
//! period counts its excluded and observed time before it too); `None` if
//! none did. *Availability* is
//! `(observed − down) / observed` as a percentage; `None` when nothing was
//! observed. Shown rounded down ([`AvailabilityPercent`]), so "100.00%"
//! means no down time at all.
//!
//! # The report formats
//!
//! [`UptimeReport::to_csv`] writes RFC 4180 CSV in UTF-8 (the web page's
//! download puts a byte-order mark before it, for spreadsheet programs;
//! CRLF line ends; a field
//! holding a comma, a quote, CR or LF is quoted, quotes doubled): the header
//! [`CSV_HEADER`], then for each installation (by SLC) its line and its
//! servers' lines (by server id). The columns, in this order:
//!
//! | column | value |
//! |---|---|
//! | `kind` | `installation` or `server` |
//! | `slc` | the installation |
//! | `customer`, `site` | its labels ("" when not set); one that starts with `=`, `+`, `-`, `@`, a tab or CR gets a `'` in front, so a spreadsheet shows it as text instead of running it as a formula (the JSON has them as typed) |
//! | `server` | the recording server ("" on installation lines) |
//! | `period_start`, `period_end` | RFC 3339 UTC, the period `[start, end)` |
//! | `availability_percent` | rounded down to 3 decimals, e.g. `99.950`; "" when nothing was observed |
//! | `observed_s` | observed time, seconds |
//! | `down_s` | down time, seconds |
//! | `outages` | number of outages counted |
//! | `outage_time_s` | their length within the period, exclusions included |
//! | `mttr_s` | MTTR, seconds; "" when no outage ended |
//! | `ongoing` | `true` or `false` |
//! | `excluded_own_downtime_s`, `excluded_maintenance_s`, `unmonitored_s` | the other parts of the period |
//!
//! Seconds are exact: whole numbers, with up to 3 decimals only when the
//! time is not a whole number of seconds (`1800`, `0.25`).
//!
//! [`UptimeReport::to_json`] writes one object with the same names:
//!
//! ```json
//! {"version": 1, "reseller": "acme",
//!  "period": {"start": "2026-11-01T00:00:00.000Z", "end": "2026-12-01T00:00:00.000Z"},
//!  "installations": [
//!    {"slc": "M01-C01-123-45", "customer": "…", "site": "…",
//!     "uptime": {"availability_percent": 99.95, "observed_s": 2592000.0, "down_s": 1296.0,
//!                "outages": 2, "outage_time_s": 1296.0, "mttr_s": 648.0, "ongoing": false,
//!                "excluded_own_downtime_s": 0.0, "excluded_maintenance_s": 0.0,
//!                "unmonitored_s": 0.0},
//!     "servers": [{"server": "rs-1", "uptime": {…}}]}]}
//! ```
//!
//! Seconds are JSON numbers (exact to the millisecond); `availability_percent`
//! is the CSV's value (rounded down to 3 decimals) and, like `mttr_s`,
//! `null` when there is none. A change that breaks readers gets a new
//! `version`.
//!
//! [`HistoryKind::BecameUnavailable`]: crate::store::HistoryKind::BecameUnavailable
//! [`HistoryKind::Recovered`]: crate::store::HistoryKind::Recovered
//! [`HistoryKind::Decommissioned`]: crate::store::HistoryKind::Decommissioned
//! [`HistoryKind::Recommissioned`]: crate::store::HistoryKind::Recommissioned
//! [`HistoryKind::Parked`]: crate::store::HistoryKind::Parked
//! [`HistoryKind::Resumed`]: crate::store::HistoryKind::Resumed
//! [`DowntimeWindow`]: crate::availability::DowntimeWindow
//! [`MaintenanceWindow::covers`]: crate::notification::maintenance::MaintenanceWindow::covers

mod export;
mod interval;
mod outage;
mod period;
mod uptime;

pub use export::{
    CSV_HEADER, InstallationHistory, InstallationUptime, JSON_VERSION, MonitoredServer,
    ServerUptime, UptimeReport,
};
pub use interval::{Interval, covered, merge, subtract};
pub use outage::{Outage, OutageEnd, Timeline, server_outages};
pub use period::{MAX_LAST_DAYS, Period};
pub use uptime::{
    AvailabilityPercent, Exclusions, Uptime, exclusion_horizon, maintenance_occurrences,
    own_downtime_within,
};

#[cfg(test)]
mod tests;
