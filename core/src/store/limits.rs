//! Bounds on what one reseller keeps that every tenant's work grows with:
//! each channel multiplies the notifier's work per change, each window is
//! expanded by every report and notifier tick, each API token is a way in.
//! A backend checks them inside the transaction that stores the new thing,
//! after locking the reseller against other such stores: a count read
//! before, outside it, lets concurrent requests all pass.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::notification::maintenance::MaintenanceWindow;
use crate::time::Timestamp;

/// The most notification channels a reseller keeps.
pub const MAX_CHANNELS_PER_RESELLER: usize = 100;

/// The most API tokens a reseller keeps in use (revoked and expired ones
/// are kept, for the record, and do not count).
pub const MAX_LIVE_API_TOKENS_PER_RESELLER: usize = 100;

/// The most live views (web pages' and the API's event streams, gRPC
/// Watch, Python's `watch`) one reseller has open on one node at once:
/// every change is filtered for each, on the node's CPU that every tenant
/// shares.
pub const MAX_WATCHERS_PER_RESELLER: usize = 2_000;

/// The most sessions a user keeps: signing in once more ends the oldest
/// (a loop of sign-ins grew the sessions table without end).
pub const MAX_SESSIONS_PER_USER: usize = 20;

/// How long a revoked or expired API token stays listed before
/// maintenance deletes it (the audit log keeps its record).
pub const API_TOKENS_KEPT_AFTER_END: Duration = Duration::from_secs(30 * 86_400);

/// The most test notifications ("send a test") a channel has on their way
/// at once (neither delivered nor given up): every test is a delivery the
/// shared notifier makes, retried like any other. A newer test gives up
/// the oldest instead of being refused: an admin who fixed a receiver can
/// always test again.
pub const MAX_PENDING_TESTS_PER_CHANNEL: usize = 3;

/// The error recorded on a test given up for a newer one.
pub const TEST_REPLACED: &str = "replaced by a newer test of the channel";

/// The most maintenance windows a reseller keeps over one installation,
/// and over all of its installations: those to come or repeating, and
/// those made and deleted in the last [`DELETED_WINDOWS_COUNT_FOR`],
/// deleted after they began and before they ended (reports keep what they
/// excluded).
pub const MAX_WINDOWS_PER_SCOPE: usize = 20;

/// How long a deleted window counts towards [`MAX_WINDOWS_PER_SCOPE`].
pub const DELETED_WINDOWS_COUNT_FOR: Duration = Duration::from_secs(86_400);

/// `Ok` when a reseller with `existing` channels may make another.
pub fn room_for_channel(existing: usize) -> Result<()> {
    room(
        "channels",
        existing,
        MAX_CHANNELS_PER_RESELLER,
        "a reseller has at most {max} channels: delete one first",
    )
}

/// `Ok` when a reseller with `live` API tokens in use (neither revoked nor
/// expired at the new one's creation: [`ApiTokenRecord::in_use_at`]) may
/// issue another.
///
/// [`ApiTokenRecord::in_use_at`]: crate::team::ApiTokenRecord::in_use_at
pub fn room_for_api_token(live: usize) -> Result<()> {
    room(
        "API tokens",
        live,
        MAX_LIVE_API_TOKENS_PER_RESELLER,
        "a reseller has at most {max} API tokens in use (neither revoked nor expired): revoke one first",
    )
}

/// `Ok` below `max`; else `InvalidInput` on `field`, `reason` with its
/// `{max}` filled in.
fn room(field: &'static str, count: usize, max: usize, reason: &str) -> Result<()> {
    if count >= max {
        return Err(Error::InvalidInput {
            field,
            reason: reason.replace("{max}", &max.to_string()),
        });
    }
    Ok(())
}

/// The start of every test notification's idempotency key on `channel`:
/// how a backend counts the channel's tests on their way.
pub fn test_key_prefix(channel: &crate::notification::ChannelId) -> String {
    format!("{channel}.test.")
}

/// How many of a channel's `pending` tests, oldest first, a new one gives
/// up ([`TEST_REPLACED`]).
pub fn tests_to_give_up(pending: usize) -> usize {
    (pending + 1).saturating_sub(MAX_PENDING_TESTS_PER_CHANNEL)
}

/// Since when the windows [`room_for_window`] needs were deleted: read the
/// reseller's windows as an uptime report from this instant would
/// ([`Store::report_maintenance_windows`]).
///
/// [`Store::report_maintenance_windows`]: crate::store::Store::report_maintenance_windows
pub fn windows_counted_since(window: &MaintenanceWindow) -> Timestamp {
    window.created_at.saturating_sub(DELETED_WINDOWS_COUNT_FOR)
}

/// `Ok` when `window` may join `existing`, the reseller's windows read
/// from [`windows_counted_since`]. Counted, over the same scope (the one
/// installation, or all): windows to come or repeating; and those made and
/// cut short by a deletion in the last day (reports keep what they
/// excluded, so making and deleting windows in a loop is bounded too).
/// Deleting an old window, or ending one early that was made before that
/// day, frees its place.
pub fn room_for_window(window: &MaintenanceWindow, existing: &[MaintenanceWindow]) -> Result<()> {
    let now = window.created_at;
    let recent = windows_counted_since(window);
    let same_scope = existing
        .iter()
        .filter(|w| w.reseller == window.reseller && w.slc == window.slc)
        .filter(|w| w.deleted_at.is_none() || w.created_at > recent)
        .filter(|w| {
            let until = w.deleted_at.unwrap_or(now);
            w.every.is_some() || w.starts_at.saturating_add(w.length) > until
        })
        .count();
    room(
        "maintenance window",
        same_scope,
        MAX_WINDOWS_PER_SCOPE,
        "at most {max} windows to come or repeating (or made and cut short by a deletion in the last day) over one installation, and as many over all of them: delete one first, or wait",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ResellerId, Slc};
    use crate::notification::maintenance::WindowId;
    use crate::team::Login;

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(hours: u64) -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000 + i64::try_from(hours * 3_600_000).unwrap())
    }

    fn window(reseller: &str, slc: Option<&str>, starts: u64, made: u64) -> MaintenanceWindow {
        MaintenanceWindow {
            id: WindowId::generate(),
            reseller: ResellerId::new(reseller).unwrap(),
            slc: slc.map(|s| Slc::new(s).unwrap()),
            starts_at: at(starts),
            length: HOUR,
            every: None,
            reason: String::new(),
            created_by: Login::new("boss@acme.example").unwrap(),
            created_at: at(made),
            deleted_at: None,
        }
    }

    fn full_of(w: impl Fn(usize) -> MaintenanceWindow) -> Vec<MaintenanceWindow> {
        (0..MAX_WINDOWS_PER_SCOPE).map(w).collect()
    }

    #[test]
    fn channels_and_tokens_stop_at_their_bound() {
        assert!(room_for_channel(MAX_CHANNELS_PER_RESELLER - 1).is_ok());
        assert!(matches!(
            room_for_channel(MAX_CHANNELS_PER_RESELLER),
            Err(Error::InvalidInput {
                field: "channels",
                ..
            })
        ));
        assert!(room_for_api_token(MAX_LIVE_API_TOKENS_PER_RESELLER - 1).is_ok());
        assert!(matches!(
            room_for_api_token(MAX_LIVE_API_TOKENS_PER_RESELLER),
            Err(Error::InvalidInput {
                field: "API tokens",
                ..
            })
        ));
    }

    #[test]
    fn windows_to_come_fill_their_scope_only() {
        let new = window("acme", Some("M01-C01-0001"), 100, 50);
        let to_come = full_of(|_| window("acme", Some("M01-C01-0001"), 60, 10));
        assert!(room_for_window(&new, &to_come[1..]).is_ok());
        assert!(room_for_window(&new, &to_come).is_err());
        // Another installation's, all installations', another reseller's: not counted.
        for (reseller, slc) in [
            ("acme", Some("M01-C01-0002")),
            ("acme", None),
            ("other", Some("M01-C01-0001")),
        ] {
            let elsewhere = full_of(|_| window(reseller, slc, 60, 10));
            assert!(
                room_for_window(&new, &elsewhere).is_ok(),
                "{reseller} {slc:?}"
            );
        }
    }

    #[test]
    fn ended_windows_free_their_place_and_repeating_ones_never_end() {
        let new = window("acme", None, 100, 50);
        let ended = full_of(|_| window("acme", None, 10, 5));
        assert!(room_for_window(&new, &ended).is_ok());
        let repeating = full_of(|_| MaintenanceWindow {
            every: Some(24 * HOUR),
            ..window("acme", None, 10, 5)
        });
        assert!(room_for_window(&new, &repeating).is_err());
    }

    #[test]
    fn windows_cut_short_in_the_last_day_count() {
        let new = window("acme", None, 100, 50);
        // Made 2 h ago, begun, deleted before it ended: counts.
        let cut_short = full_of(|_| MaintenanceWindow {
            deleted_at: Some(at(48).saturating_add(HOUR / 2)),
            ..window("acme", None, 48, 48)
        });
        assert!(room_for_window(&new, &cut_short).is_err());
        // Made more than a day before: its place is free.
        let old = full_of(|_| MaintenanceWindow {
            deleted_at: Some(at(49)),
            every: Some(24 * HOUR),
            ..window("acme", None, 20, 20)
        });
        assert!(room_for_window(&new, &old).is_ok());
        assert_eq!(windows_counted_since(&new), at(26));
    }
}
