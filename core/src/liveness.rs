//! When Carewatch was receiving: the rule that turns liveness marks into
//! own-downtime windows. Backends call [`gap_before`] inside the transaction
//! that writes a mark, so a gap is recorded atomically with the mark that
//! found it and every node sees both or neither.
//!
//! Every node marks itself alive about once a second while it receives
//! messages. The fleet is receiving while *any* node is. A node's receiving
//! ends
//! - at its clean stop: the moment its listener stopped taking messages,
//!   recorded exactly ([`NodeLiveness::stopped`]);
//! - at a crash: bounded by its last mark (it was alive then);
//! - in a storage outage: at the first refused write (the node remembers it
//!   and hands it over with the first mark that succeeds again).
//!
//! A window is recorded when no other node is live: from the latest instant
//! any node was receiving to the mark. When the marking node is starting or
//! coming back from a storage outage the gap counts at any length; while it
//! runs, a gap counts only past the tolerance (a stall of the process, not
//! the scheduling jitter of its one-second timer).

use std::time::Duration;

use crate::availability::DowntimeWindow;
use crate::time::Timestamp;

/// One node's liveness as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLiveness {
    /// The node's name.
    pub node: String,
    /// Its last mark: when it was last known to be receiving, or the exact
    /// moment it stopped if [`NodeLiveness::stopped`].
    pub alive_at: Timestamp,
    /// Whether it stopped cleanly at `alive_at`.
    pub stopped: bool,
}

/// Why a node marks itself alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkReason {
    /// The node has just started: whatever time passed since the fleet last
    /// received was own downtime.
    Starting,
    /// Its storage refused writes since this instant and now works again.
    StorageRecovered {
        /// The first refused write.
        since: Timestamp,
    },
    /// The regular mark of a running node.
    Running,
}

/// A liveness mark to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LivenessMark {
    /// The marking node.
    pub node: String,
    /// When (the service clock).
    pub at: Timestamp,
    /// Why.
    pub reason: MarkReason,
    /// How old another node's mark may be for that node to count as
    /// receiving; and the longest gap a running node's timer may leave.
    pub tolerance: Duration,
}

/// The own-downtime window that `mark` reveals, given every node's liveness
/// as stored before it (the marking node's own row included, if any).
pub fn gap_before(mark: &LivenessMark, nodes: &[NodeLiveness]) -> Option<DowntimeWindow> {
    let outage_began = match mark.reason {
        MarkReason::StorageRecovered { since } => Some(since),
        MarkReason::Starting | MarkReason::Running => None,
    };
    // Nodes share the storage: one whose last mark predates our outage most
    // likely failed with it, however recent that mark still looks.
    let receiving = |n: &NodeLiveness| {
        !n.stopped
            && mark.at.since(n.alive_at) <= mark.tolerance
            && outage_began.is_none_or(|since| n.alive_at > since)
    };
    if nodes.iter().any(|n| n.node != mark.node && receiving(n)) {
        return None;
    }
    // A node whose storage failed or stalled stopped receiving at the first
    // such write, whatever its own marks said meanwhile (a mark may get
    // through while its messages' writes stall).
    let last_receiving = nodes
        .iter()
        .filter(|n| outage_began.is_none() || n.node != mark.node)
        .map(|n| n.alive_at)
        .chain(outage_began)
        .max()?;
    let counts = match mark.reason {
        MarkReason::Starting | MarkReason::StorageRecovered { .. } => true,
        MarkReason::Running => mark.at.since(last_receiving) > mark.tolerance,
    };
    if !counts {
        return None;
    }
    DowntimeWindow::new(last_receiving, mark.at).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOLERANCE: Duration = Duration::from_secs(3);

    fn t(s: i64) -> Timestamp {
        Timestamp::from_millis(1_000_000 + s * 1000)
    }

    fn node(name: &str, alive: i64, stopped: bool) -> NodeLiveness {
        NodeLiveness {
            node: name.into(),
            alive_at: t(alive),
            stopped,
        }
    }

    fn mark(name: &str, at: i64, reason: MarkReason) -> LivenessMark {
        LivenessMark {
            node: name.into(),
            at: t(at),
            reason,
            tolerance: TOLERANCE,
        }
    }

    fn window(from: i64, to: i64) -> Option<DowntimeWindow> {
        Some(DowntimeWindow::new(t(from), t(to)).expect("window"))
    }

    #[test]
    fn a_fresh_database_has_no_gap() {
        assert_eq!(gap_before(&mark("a", 0, MarkReason::Starting), &[]), None);
    }

    #[test]
    fn a_restart_after_a_clean_stop_is_a_gap_from_the_exact_stop_at_any_length() {
        let stopped = [node("a", 10, true)];
        assert_eq!(
            gap_before(&mark("a", 12, MarkReason::Starting), &stopped),
            window(10, 12)
        );
        // Even a restart shorter than the tolerance: nobody received meanwhile.
        let quick = LivenessMark {
            at: Timestamp::from_millis(t(10).as_millis() + 150),
            ..mark("a", 0, MarkReason::Starting)
        };
        assert_eq!(
            gap_before(&quick, &stopped),
            Some(DowntimeWindow::new(t(10), quick.at).expect("window"))
        );
    }

    #[test]
    fn a_crash_is_bounded_by_the_last_mark_even_if_it_looks_recent() {
        // The node's own old row is never "another live node".
        let crashed = [node("a", 10, false)];
        assert_eq!(
            gap_before(&mark("a", 12, MarkReason::Starting), &crashed),
            window(10, 12)
        );
    }

    #[test]
    fn the_fleet_receives_while_any_other_node_is_live() {
        let nodes = [node("a", 10, true), node("b", 19, false)];
        assert_eq!(
            gap_before(&mark("a", 20, MarkReason::Starting), &nodes),
            None
        );
        // b stopped cleanly at 15: the fleet stopped receiving then.
        let nodes = [node("a", 10, true), node("b", 15, true)];
        assert_eq!(
            gap_before(&mark("a", 20, MarkReason::Starting), &nodes),
            window(15, 20)
        );
        // b's mark is too old: b crashed after its mark at 12.
        let nodes = [node("a", 10, true), node("b", 12, false)];
        assert_eq!(
            gap_before(&mark("a", 20, MarkReason::Starting), &nodes),
            window(12, 20)
        );
    }

    #[test]
    fn a_running_node_records_only_stalls_longer_than_the_tolerance() {
        let nodes = [node("a", 10, false)];
        assert_eq!(
            gap_before(&mark("a", 11, MarkReason::Running), &nodes),
            None
        );
        assert_eq!(
            gap_before(&mark("a", 13, MarkReason::Running), &nodes),
            None
        );
        assert_eq!(
            gap_before(&mark("a", 14, MarkReason::Running), &nodes),
            window(10, 14)
        );
    }

    #[test]
    fn a_storage_outage_counts_from_the_first_refused_write() {
        let nodes = [node("a", 10, false)];
        let recovered = mark("a", 14, MarkReason::StorageRecovered { since: t(11) });
        assert_eq!(gap_before(&recovered, &nodes), window(11, 14));
        // Another node marked after the outage began: no fleet downtime.
        let nodes = [node("a", 10, false), node("b", 13, false)];
        assert_eq!(gap_before(&recovered, &nodes), None);
        // b's recent-looking mark is from before the outage: it failed too.
        let nodes = [node("a", 10, false), node("b", 11, false)];
        assert_eq!(gap_before(&recovered, &nodes), window(11, 14));
        // Its own marks got through while its writes stalled: still from 11.
        let nodes = [node("a", 13, false)];
        assert_eq!(gap_before(&recovered, &nodes), window(11, 14));
    }
}
