//! Which events of one aggregate a recorder returns: [`EventQuery`], and
//! how the rows of a load's one query reach their callbacks.

use std::ops::ControlFlow;

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::mapper::StoredRow;

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

/// Hands the rows of the one query a backend makes for
/// [`Recorder::select_snapshot_and_events`](super::Recorder::select_snapshot_and_events)
/// to their callbacks: the snapshot's row (kind 0) first, then the events
/// (kind 1). The statement's two arms run in order; a snapshot row after an
/// event would mean they did not, and is refused rather than applied out
/// of order.
pub(crate) struct LoadRows<'c> {
    snapshot: &'c mut dyn FnMut(StoredRow<'_>) -> Result<ControlFlow<()>>,
    each: &'c mut dyn FnMut(StoredRow<'_>) -> Result<ControlFlow<()>>,
    events_begun: bool,
}

impl<'c> LoadRows<'c> {
    pub(crate) fn new(
        snapshot: &'c mut dyn FnMut(StoredRow<'_>) -> Result<ControlFlow<()>>,
        each: &'c mut dyn FnMut(StoredRow<'_>) -> Result<ControlFlow<()>>,
    ) -> Self {
        LoadRows {
            snapshot,
            each,
            events_begun: false,
        }
    }

    /// Hands over one row, an event's when `is_event`, else the snapshot's.
    pub(crate) fn hand(&mut self, is_event: bool, row: StoredRow<'_>) -> Result<ControlFlow<()>> {
        if is_event {
            self.events_begun = true;
            (self.each)(row)
        } else if self.events_begun {
            Err(Error::Database(
                "the snapshot came after the events in a load's query".into(),
            ))
        } else {
            (self.snapshot)(row)
        }
    }
}
