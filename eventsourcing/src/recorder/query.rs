//! Which events of one aggregate a recorder returns: [`EventQuery`].

use uuid::Uuid;

/// Which events of one aggregate [`Recorder::select_events`](super::Recorder::select_events) returns.
///
/// ```
/// use eventsourcing::recorder::EventQuery;
/// use eventsourcing::Uuid;
///
/// // The two latest events at or before version 10, newest first.
/// let query = EventQuery::new(Uuid::nil()).to_version(10).descending(true).limit(2);
/// assert_eq!(query.to_version, Some(10));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventQuery {
    /// The aggregate whose events are read.
    pub originator_id: Uuid,
    /// Only versions strictly greater than this one (exclusive lower bound).
    pub after_version: Option<u64>,
    /// Only versions up to and including this one (inclusive upper bound).
    pub to_version: Option<u64>,
    /// Newest first instead of oldest first. With a `limit`, the newest
    /// matching events are the ones returned.
    pub descending: bool,
    /// At most this many events.
    pub limit: Option<usize>,
}

impl EventQuery {
    /// All events of the aggregate, oldest first.
    #[must_use]
    pub fn new(originator_id: Uuid) -> Self {
        Self {
            originator_id,
            after_version: None,
            to_version: None,
            descending: false,
            limit: None,
        }
    }

    /// Only events with a version strictly greater than `version`.
    #[must_use]
    pub fn after_version(mut self, version: u64) -> Self {
        self.after_version = Some(version);
        self
    }

    /// Only events with a version up to and including `version`.
    #[must_use]
    pub fn to_version(mut self, version: u64) -> Self {
        self.to_version = Some(version);
        self
    }

    /// Newest first when `descending` is true.
    #[must_use]
    pub fn descending(mut self, descending: bool) -> Self {
        self.descending = descending;
        self
    }

    /// At most `limit` events.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Whether `version` lies within the query's bounds.
    #[must_use]
    pub fn contains(&self, version: u64) -> bool {
        self.after_version.is_none_or(|after| version > after)
            && self.to_version.is_none_or(|to| version <= to)
    }
}
