//! Exclusions (own downtime, maintenance) and the uptime figures of one
//! subject over a period. The rules are in the [module documentation](super).

use std::fmt;
use std::time::Duration;

use super::interval::{Interval, covered_millis, merge, subtract};
use super::outage::{Outage, OutageEnd, Timeline};
use super::period::Period;
use crate::availability::Downtime;
use crate::ids::Slc;
use crate::notification::maintenance::MaintenanceWindow;
use crate::time::{Timestamp, duration_millis};

/// The occurrences of a maintenance window that overlap `within`, clipped
/// to it, sorted. A repeating window's first occurrence overlapping
/// `within` is found by arithmetic, so one begun long ago costs nothing
/// extra, and one that began before `within` is included from its start.
/// A window that repeats no less often than it lasts (which
/// [`MaintenanceWindow::validate`] refuses) is one continuous stretch from
/// its first start.
pub fn maintenance_occurrences(window: &MaintenanceWindow, within: Interval) -> Vec<Interval> {
    let mut out = Vec::new();
    if within.is_empty() {
        return out;
    }
    let first = window.starts_at.as_millis();
    let length = duration_millis(window.length);
    let (from, to) = (within.start.as_millis(), within.end.as_millis());
    let clip = |start: i64, end: i64| {
        Interval::new(Timestamp::from_millis(start), Timestamp::from_millis(end))
            .intersection(&within)
    };
    let every = match window.every {
        None => {
            out.extend(clip(first, first.saturating_add(length)));
            return out;
        }
        Some(every) => duration_millis(every).max(1),
    };
    if every <= length {
        out.extend(clip(first, i64::MAX));
        return out;
    }
    // The first occurrence k ≥ 0 that ends after `from`:
    // first + k·every + length > from.
    let behind = from.saturating_sub(first).saturating_sub(length);
    let mut k = if behind < 0 { 0 } else { behind / every + 1 };
    while let Some(start) = k
        .checked_mul(every)
        .and_then(|offset| first.checked_add(offset))
    {
        if start >= to {
            break;
        }
        out.extend(clip(start, start.saturating_add(length)));
        k += 1;
    }
    out
}

/// Carewatch's own downtime within `within`, clipped to it (a binary
/// search in the sorted windows).
pub fn own_downtime_within(own: &Downtime, within: Interval) -> Vec<Interval> {
    let windows = own.windows();
    let first = windows.partition_point(|w| w.end() <= within.start);
    windows[first..]
        .iter()
        .take_while(|w| w.start() < within.end)
        .filter_map(|w| Interval::new(w.start(), w.end()).intersection(&within))
        .collect()
}

/// The interval over which an installation's exclusions are needed: the
/// period, reaching back to the start of the earliest outage that lasts
/// into it (for its MTTR).
pub fn exclusion_horizon<'a>(
    period: Period,
    outages: impl IntoIterator<Item = &'a Outage>,
) -> Interval {
    let start = outages
        .into_iter()
        .filter(|o| o.span.end > period.start() && o.span.start < period.end())
        .map(|o| o.span.start)
        .fold(period.start(), Timestamp::min);
    Interval::new(start, period.end())
}

/// The time excluded from one installation's (and its servers') figures
/// over a horizon: Carewatch's own downtime, and the maintenance windows
/// covering it, except where it was own downtime too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exclusions {
    own: Vec<Interval>,
    maintenance: Vec<Interval>,
    all: Vec<Interval>,
}

impl Exclusions {
    /// The exclusions of installation `slc` over `horizon` (see
    /// [`exclusion_horizon`]; time outside it counts as not excluded).
    /// Windows that do not cover `slc` are ignored; windows of another
    /// reseller must not be passed.
    pub fn new<'a>(
        horizon: Interval,
        slc: &Slc,
        own: &Downtime,
        maintenance: impl IntoIterator<Item = &'a MaintenanceWindow>,
    ) -> Self {
        let own = own_downtime_within(own, horizon);
        // A window excludes time from its creation on only, and until it
        // was deleted: one made (or dated) after an outage does not excuse
        // it, and deleting one does not change a past period's report.
        let occurrences: Vec<Interval> = maintenance
            .into_iter()
            .filter(|w| w.covers(slc))
            .flat_map(|w| {
                let from = horizon.start.max(w.created_at);
                let to = w.deleted_at.map_or(horizon.end, |d| d.min(horizon.end));
                maintenance_occurrences(w, Interval::new(from, to.max(from)))
            })
            .collect();
        let maintenance = subtract(&merge(occurrences), &own);
        let all = merge(own.iter().chain(&maintenance).copied().collect());
        Self {
            own,
            maintenance,
            all,
        }
    }

    /// Own downtime: sorted, disjoint.
    pub fn own_downtime(&self) -> &[Interval] {
        &self.own
    }

    /// Maintenance that was not own downtime: sorted, disjoint.
    pub fn maintenance(&self) -> &[Interval] {
        &self.maintenance
    }

    /// Both: sorted, disjoint.
    pub fn all(&self) -> &[Interval] {
        &self.all
    }
}

/// An availability figure: the share of the observed time that was not
/// down, exact. Shown rounded down (so "100.00%" means no down time at
/// all): `{}` with 2 decimals, e.g. `99.95%`; `{:.3}` with 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvailabilityPercent {
    up_ms: u64,
    observed_ms: u64,
}

impl AvailabilityPercent {
    /// `observed − down` of `observed`; `None` when nothing was observed.
    pub fn new(observed: Duration, down: Duration) -> Option<Self> {
        let observed_ms = u64::try_from(observed.as_millis()).unwrap_or(u64::MAX);
        let down_ms = u64::try_from(down.as_millis()).unwrap_or(u64::MAX);
        (observed_ms > 0).then(|| Self {
            up_ms: observed_ms.saturating_sub(down_ms),
            observed_ms,
        })
    }

    /// The percentage, 0 to 100.
    pub fn value(&self) -> f64 {
        self.up_ms as f64 * 100.0 / self.observed_ms as f64
    }

    /// The percentage rounded down to `decimals` (at most 9) places, as an
    /// integer: 99.95% to 2 places is 9995.
    pub fn scaled_down(&self, decimals: u32) -> u128 {
        let scale = 10u128.pow(decimals.min(9));
        u128::from(self.up_ms) * 100 * scale / u128::from(self.observed_ms)
    }

    /// The percentage rounded down to `decimals` (at most 9) places,
    /// without a sign: `99.950` to 3 places (the CSV's form).
    pub fn to_fixed(&self, decimals: u32) -> String {
        let decimals = decimals.min(9);
        let scaled = self.scaled_down(decimals);
        if decimals == 0 {
            return scaled.to_string();
        }
        let scale = 10u128.pow(decimals);
        format!(
            "{}.{:0width$}",
            scaled / scale,
            scaled % scale,
            width = decimals as usize
        )
    }
}

impl fmt::Display for AvailabilityPercent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let decimals = f.precision().map_or(2, |p| u32::try_from(p).unwrap_or(9));
        write!(f, "{}%", self.to_fixed(decimals))
    }
}

/// One subject's (an installation's or a recording server's) figures over
/// a period. `unmonitored + excluded_own_downtime + excluded_maintenance +
/// observed` is the period's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uptime {
    /// The period.
    pub period: Period,
    /// Time it was not monitored: before it was first seen, while retired,
    /// while its installation's messages were refused (an installation:
    /// while none of its servers was monitored).
    pub unmonitored: Duration,
    /// Carewatch's own downtime (while monitored).
    pub excluded_own_downtime: Duration,
    /// Maintenance (while monitored) that was not own downtime.
    pub excluded_maintenance: Duration,
    /// The rest: the time availability is judged on.
    pub observed: Duration,
    /// Outage time within the observed time.
    pub down: Duration,
    /// Outages with observed time in the period.
    pub outages: u32,
    /// Their length within the period, excluded stretches included.
    pub outage_time: Duration,
    /// Whether one of them was still in progress at the period's end.
    pub ongoing: bool,
    /// Mean length, without excluded time, of the counted outages that
    /// ended with a recovery within the period (each over its whole
    /// extent); `None` if none did.
    pub mttr: Option<Duration>,
}

fn duration(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

impl Uptime {
    /// The figures of a subject with this timeline (built for the period's
    /// end, [`Timeline::of_server`] or [`Timeline::of_installation`]) and
    /// its installation's exclusions (built over at least
    /// [`exclusion_horizon`]).
    pub fn compute(period: Period, timeline: &Timeline, exclusions: &Exclusions) -> Self {
        let whole = period.interval();
        let monitored: Vec<Interval> = timeline
            .monitored()
            .iter()
            .filter_map(|m| m.intersection(&whole))
            .collect();
        let monitored_ms: i64 = monitored.iter().map(Interval::millis).sum();
        let within =
            |set: &[Interval]| -> i64 { monitored.iter().map(|m| covered_millis(set, *m)).sum() };
        let own_ms = within(&exclusions.own);
        let maintenance_ms = within(&exclusions.maintenance);
        let observed_ms = monitored_ms - own_ms - maintenance_ms;

        let (mut down_ms, mut outage_ms, mut count) = (0i64, 0i64, 0u32);
        let (mut repaired_ms, mut repaired) = (0i64, 0i64);
        let mut ongoing = false;
        let outages = timeline.outages();
        let first = outages.partition_point(|o| o.span.end <= period.start());
        for outage in outages[first..]
            .iter()
            .take_while(|o| o.span.start < period.end())
        {
            // Outages lie within the monitored time.
            let Some(inside) = outage.span.intersection(&whole) else {
                continue;
            };
            let observed = inside.millis() - covered_millis(&exclusions.all, inside);
            if observed <= 0 {
                continue;
            }
            count += 1;
            down_ms += observed;
            outage_ms += inside.millis();
            let ended_inside = outage.span.end <= period.end();
            match outage.end {
                OutageEnd::Recovered if ended_inside => {
                    repaired_ms +=
                        outage.span.millis() - covered_millis(&exclusions.all, outage.span);
                    repaired += 1;
                }
                OutageEnd::Retired | OutageEnd::Refused if ended_inside => {}
                _ => ongoing = true,
            }
        }
        Self {
            period,
            unmonitored: duration(whole.millis() - monitored_ms),
            excluded_own_downtime: duration(own_ms),
            excluded_maintenance: duration(maintenance_ms),
            observed: duration(observed_ms),
            down: duration(down_ms),
            outages: count,
            outage_time: duration(outage_ms),
            ongoing,
            mttr: (repaired > 0).then(|| duration(repaired_ms / repaired)),
        }
    }

    /// The availability; `None` when nothing was observed.
    pub fn availability(&self) -> Option<AvailabilityPercent> {
        AvailabilityPercent::new(self.observed, self.down)
    }

    /// The availability as a percentage, 0 to 100; `None` when nothing was
    /// observed.
    pub fn availability_percent(&self) -> Option<f64> {
        self.availability().map(|a| a.value())
    }
}

/// The availability (`99.95%`, rounded down), or `n/a` when nothing was
/// observed.
impl fmt::Display for Uptime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.availability() {
            Some(a) => fmt::Display::fmt(&a, f),
            None => f.write_str("n/a"),
        }
    }
}
