//! A recording server's availability as its row stores it.

use super::corrupt;
use crate::availability::Availability;
use crate::error::Error;
use crate::time::Timestamp;

/// A recording server's availability as `(state, missed, unavailable_since)`:
/// state 0 available, 1 late, 2 unavailable. Pending servers have no row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvailabilityColumns {
    /// 0 available, 1 late, 2 unavailable, 3 decommissioned.
    pub state: i16,
    /// Heartbeats missed.
    pub missed: i64,
    /// When it became unavailable or was decommissioned (milliseconds),
    /// only for states 2 and 3.
    pub unavailable_since: Option<i64>,
}

impl From<&Availability> for AvailabilityColumns {
    fn from(a: &Availability) -> Self {
        let (state, missed, unavailable_since) = match *a {
            Availability::Pending | Availability::Available => (0, 0, None),
            Availability::Late { missed } => (1, missed, None),
            Availability::Unavailable { since, missed } => (2, missed, Some(since.as_millis())),
            Availability::Decommissioned { since } => (3, 0, Some(since.as_millis())),
        };
        Self {
            state,
            missed: i64::from(missed),
            unavailable_since,
        }
    }
}

impl AvailabilityColumns {
    /// Decodes the columns.
    pub fn decode(self) -> Result<Availability, Error> {
        let missed = u32::try_from(self.missed).map_err(|e| corrupt("missed count", e))?;
        match (self.state, self.unavailable_since) {
            (0, _) => Ok(Availability::Available),
            (1, _) => Ok(Availability::Late { missed }),
            (2, Some(since)) => Ok(Availability::Unavailable {
                since: Timestamp::from_millis(since),
                missed,
            }),
            (3, Some(since)) => Ok(Availability::Decommissioned {
                since: Timestamp::from_millis(since),
            }),
            (state, _) => Err(corrupt("server state", format!("state {state}"))),
        }
    }
}
