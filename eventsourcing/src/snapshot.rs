//! When the application snapshots aggregates by itself: an interval of
//! events per aggregate type, with a default for every other type.

use std::collections::HashMap;

/// Snapshot intervals: a default for every aggregate type (`0` is never)
/// and the intervals of types that have their own.
#[derive(Clone, Debug, Default)]
pub(crate) struct SnapshotPolicy {
    /// The interval of aggregate types without one of their own
    /// (`SNAPSHOT_INTERVAL`); 0 is never.
    pub(crate) default: u64,
    /// Intervals by aggregate type name ([`Root::NAME`](crate::Root::NAME));
    /// 0 is never.
    pub(crate) by_type: HashMap<&'static str, u64>,
}

impl SnapshotPolicy {
    /// The interval for the aggregate type `name`, unless it has none.
    pub(crate) fn interval(&self, name: &str) -> Option<u64> {
        let interval = self.by_type.get(name).copied().unwrap_or(self.default);
        (interval > 0).then_some(interval)
    }

    /// Whether a save that took an aggregate of type `name` from version
    /// `before` to `after` calls for a snapshot: some version in
    /// `(before, after]` is a multiple of the type's interval.
    pub(crate) fn is_due(&self, name: &str, before: u64, after: u64) -> bool {
        self.interval(name)
            .is_some_and(|interval| after / interval > before / interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_when_a_multiple_is_crossed_or_reached() {
        let mut policy = SnapshotPolicy {
            default: 10,
            ..SnapshotPolicy::default()
        };
        policy.by_type.insert("Off", 0);
        policy.by_type.insert("Often", 2);
        assert!(policy.is_due("Any", 9, 10));
        assert!(policy.is_due("Any", 5, 25));
        assert!(!policy.is_due("Any", 10, 19));
        assert!(!policy.is_due("Off", 0, 100));
        assert!(policy.is_due("Often", 1, 2));
        assert_eq!(policy.interval("Off"), None);
        assert_eq!(policy.interval("Any"), Some(10));
    }
}
