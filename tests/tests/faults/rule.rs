//! The availability rule, written here again rather than taken from the
//! server.

use crate::{INTERVAL, JITTER, ms};

/// When a server silent since `last` becomes Unavailable and with how many
/// missed heartbeats, by the rule (written here again, not taken from the
/// server): each stretch of receiving after `last` is counted on its own
/// schedule; the first stretch with 3 missed makes it Unavailable, 3
/// intervals after that stretch began.
pub(crate) fn expected_unavailable(last: i64, windows: &[(i64, i64)]) -> (i64, u32) {
    let (i, j) = (ms(INTERVAL), ms(JITTER));
    let missed = |stretch: i64| {
        if stretch >= i + j {
            u32::try_from((stretch - j) / i).expect("small count")
        } else {
            0
        }
    };
    let mut start = last;
    let mut before = 0;
    for &(ws, we) in windows {
        if we <= start {
            continue;
        }
        let n = missed(ws.max(start) - start);
        if n >= 3 {
            break;
        }
        before += n;
        start = we;
    }
    (start + 3 * i, before + 3)
}
