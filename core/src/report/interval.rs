//! Half-open time intervals and sorted, disjoint sets of them.

use std::time::Duration;

use crate::time::Timestamp;

/// The time `[start, end)`: `start` included, `end` excluded. Empty when
/// `end <= start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interval {
    /// The first instant in it.
    pub start: Timestamp,
    /// The first instant after it.
    pub end: Timestamp,
}

impl Interval {
    /// `[start, end)`.
    pub const fn new(start: Timestamp, end: Timestamp) -> Self {
        Self { start, end }
    }

    /// Whether it holds no instant.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// How long it is (zero when empty).
    pub fn length(&self) -> Duration {
        self.end.since(self.start)
    }

    /// Its length in milliseconds (zero when empty).
    pub(crate) fn millis(&self) -> i64 {
        self.end
            .as_millis()
            .saturating_sub(self.start.as_millis())
            .max(0)
    }

    /// Whether `t` is in it.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }

    /// Whether the two share an instant.
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.start.max(other.start) < self.end.min(other.end)
    }

    /// The instants in both, if any.
    pub fn intersection(&self, other: &Interval) -> Option<Interval> {
        let clipped = Interval::new(self.start.max(other.start), self.end.min(other.end));
        (!clipped.is_empty()).then_some(clipped)
    }
}

/// Sorts `intervals` by start and merges those that overlap or touch,
/// dropping empty ones: the result is sorted and disjoint, with a gap
/// between any two.
pub fn merge(mut intervals: Vec<Interval>) -> Vec<Interval> {
    intervals.retain(|i| !i.is_empty());
    intervals.sort_unstable_by_key(|i| (i.start, i.end));
    let mut merged: Vec<Interval> = Vec::with_capacity(intervals.len());
    for i in intervals {
        match merged.last_mut() {
            Some(last) if i.start <= last.end => last.end = last.end.max(i.end),
            _ => merged.push(i),
        }
    }
    merged
}

/// The instants of `set` that are not in `remove`; both sorted and
/// disjoint (as [`merge`] returns them), and so is the result. Linear.
pub fn subtract(set: &[Interval], remove: &[Interval]) -> Vec<Interval> {
    let mut out = Vec::with_capacity(set.len());
    let mut first = 0;
    for interval in set {
        while first < remove.len() && remove[first].end <= interval.start {
            first += 1;
        }
        let mut start = interval.start;
        for cut in remove[first..]
            .iter()
            .take_while(|cut| cut.start < interval.end)
        {
            if cut.start > start {
                out.push(Interval::new(start, cut.start));
            }
            start = start.max(cut.end);
            if start >= interval.end {
                break;
            }
        }
        if start < interval.end {
            out.push(Interval::new(start, interval.end));
        }
    }
    out
}

/// How much of `within` the sorted, disjoint `set` covers, in milliseconds.
pub(crate) fn covered_millis(set: &[Interval], within: Interval) -> i64 {
    if within.is_empty() {
        return 0;
    }
    let first = set.partition_point(|i| i.end <= within.start);
    set[first..]
        .iter()
        .take_while(|i| i.start < within.end)
        .filter_map(|i| i.intersection(&within))
        .map(|i| i.millis())
        .sum()
}

/// How much of `within` the sorted, disjoint `set` covers (a binary search,
/// then the intervals that overlap it).
pub fn covered(set: &[Interval], within: Interval) -> Duration {
    Duration::from_millis(u64::try_from(covered_millis(set, within)).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i(start: i64, end: i64) -> Interval {
        Interval::new(Timestamp::from_millis(start), Timestamp::from_millis(end))
    }

    #[test]
    fn an_interval_is_half_open() {
        let a = i(10, 20);
        assert!(a.contains(Timestamp::from_millis(10)));
        assert!(!a.contains(Timestamp::from_millis(20)));
        assert_eq!(a.length(), Duration::from_millis(10));
        assert!(!a.overlaps(&i(20, 30)), "touching is not overlapping");
        assert!(a.overlaps(&i(19, 30)));
        assert_eq!(a.intersection(&i(15, 30)), Some(i(15, 20)));
        assert_eq!(a.intersection(&i(20, 30)), None);
        assert!(i(5, 5).is_empty() && i(6, 5).is_empty());
        assert_eq!(i(6, 5).length(), Duration::ZERO);
        assert_eq!(i(6, 5).millis(), 0);
    }

    #[test]
    fn merging_sorts_joins_overlapping_and_touching_and_drops_empty() {
        assert_eq!(
            merge(vec![
                i(30, 40),
                i(0, 10),
                i(10, 15),
                i(35, 50),
                i(60, 60),
                i(12, 13)
            ]),
            vec![i(0, 15), i(30, 50)]
        );
        assert_eq!(merge(vec![]), vec![]);
        assert_eq!(merge(vec![i(0, 100), i(10, 20)]), vec![i(0, 100)]);
    }

    #[test]
    fn subtracting_leaves_the_gaps() {
        let set = [i(0, 10), i(20, 30), i(40, 50)];
        assert_eq!(
            subtract(&set, &[i(5, 25), i(28, 29), i(45, 60)]),
            vec![i(0, 5), i(25, 28), i(29, 30), i(40, 45)]
        );
        assert_eq!(subtract(&set, &[]), set.to_vec());
        assert_eq!(subtract(&set, &[i(-5, 100)]), vec![]);
        assert_eq!(subtract(&set, &[i(10, 20)]), set.to_vec(), "touching");
        assert_eq!(subtract(&[], &[i(0, 1)]), vec![]);
    }

    #[test]
    fn covered_counts_only_inside_the_window() {
        let set = [i(0, 10), i(20, 30), i(40, 50)];
        assert_eq!(covered(&set, i(5, 45)), Duration::from_millis(5 + 10 + 5));
        assert_eq!(covered(&set, i(10, 20)), Duration::ZERO);
        assert_eq!(covered(&set, i(-100, 100)), Duration::from_millis(30));
        assert_eq!(covered(&set, i(25, 25)), Duration::ZERO);
        assert_eq!(covered(&[], i(0, 100)), Duration::ZERO);
    }
}
