//! Recorders: where stored rows live.
//!
//! A [`Recorder`] keeps the rows of FORMAT.md's `stored_events` and
//! `snapshots` tables. It knows nothing about aggregates, hashes or
//! encryption: it inserts rows under the `(originator_id,
//! originator_version)` uniqueness rule that is the optimistic concurrency
//! control, reads one aggregate's rows back by version, and reads all rows
//! in notification order.
//!
//! Backends:
//!
//! - [`MemoryRecorder`]: in the process's memory, for tests and prototypes;
//! - [`SqliteRecorder`] (feature `sqlite`): an embedded SQLite database, in
//!   memory or in a file.
//! - [`PostgresRecorder`] (feature `postgres`): a PostgreSQL server shared by
//!   many processes, with a gap-free notification log under concurrent
//!   writers.
//!
//! Every backend passes the same conformance suite
//! (`tests/test_recorders.rs`).

use std::ops::ControlFlow;

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::mapper::StoredEvent;

mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use self::memory::MemoryRecorder;
#[cfg(feature = "postgres")]
pub use self::postgres::{PostgresOptions, PostgresRecorder, Sequencing};
#[cfg(feature = "sqlite")]
pub use self::sqlite::{SqliteOptions, SqlitePath, SqliteRecorder, Synchronous};

/// One row of `stored_events` as read in notification order: a stored
/// event with its place in the application's total order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Position in the application's total order, starting at 1, without
    /// gaps that fill in later.
    pub id: u64,
    /// The aggregate the event belongs to.
    pub originator_id: Uuid,
    /// The event's version within its aggregate.
    pub originator_version: u64,
    /// The event's stable type name.
    pub topic: String,
    /// The stored record (FORMAT.md, "The stored `state`").
    pub state: Vec<u8>,
}

impl Notification {
    /// The stored event, without its notification id.
    #[must_use]
    pub fn into_event(self) -> StoredEvent {
        StoredEvent {
            originator_id: self.originator_id,
            originator_version: self.originator_version,
            topic: self.topic,
            state: self.state,
        }
    }
}

/// Which events of one aggregate [`Recorder::select_events`] returns.
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

/// A malformed stored row of aggregate `id` at `version`.
pub(crate) fn corrupt(id: Uuid, version: u64, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        id,
        version,
        reason: reason.into(),
    }
}

/// A version or id bound of a query, clamped to what a signed 64-bit
/// column (SQLite `INTEGER`, PostgreSQL `BIGINT`) can hold.
pub(crate) fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The version of `event` as the signed 64-bit integer that database
/// columns hold; a version beyond `i64::MAX` is refused by every backend
/// alike, with [`Error::Corrupt`].
pub(crate) fn signed_version(event: &StoredEvent) -> Result<i64> {
    i64::try_from(event.originator_version).map_err(|_| {
        corrupt(
            event.originator_id,
            event.originator_version,
            "originator_version does not fit in a signed 64-bit column",
        )
    })
}

/// Where stored rows live: the contract every backend fulfils.
///
/// Object safe, and shared between threads as `Arc<dyn Recorder>`.
///
/// Callbacks (`each` in [`select_events`](Recorder::select_events)) must not
/// call back into the same recorder: a backend may hold a lock or a
/// connection while it runs them.
pub trait Recorder: Send + Sync {
    /// Inserts `events` in one transaction and returns the notification ids
    /// they were given, in the same order.
    ///
    /// The events may belong to several aggregates: the batch is written
    /// whole or not at all. If any `(originator_id, originator_version)`
    /// is already recorded, or occurs twice in the batch, the result is
    /// [`Error::Concurrency`] naming that row's id
    /// and version, and nothing of the batch is written. An empty batch
    /// returns an empty list without touching the database.
    fn insert_events(&self, events: &[StoredEvent]) -> Result<Vec<u64>>;

    /// Calls `each` with the events of one aggregate that match `query`, in
    /// version order (ascending unless `query.descending`), without first
    /// loading them all where the backend can stream.
    ///
    /// When `each` returns [`ControlFlow::Break`], the scan ends there,
    /// successfully, and no further row is handed over (say, a replay that
    /// reached the first event after a point in time). When `each` returns
    /// an error, the scan ends there too and that error is returned.
    fn select_events(
        &self,
        query: &EventQuery,
        each: &mut dyn FnMut(StoredEvent) -> Result<ControlFlow<()>>,
    ) -> Result<()>;

    /// The events of one aggregate that match `query`, collected in a list.
    fn events(&self, query: &EventQuery) -> Result<Vec<StoredEvent>> {
        let mut events = Vec::new();
        self.select_events(query, &mut |event| {
            events.push(event);
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(events)
    }

    /// At most `limit` rows with a notification id of `start` or more, in
    /// ascending order of notification id; only rows whose topic is one of
    /// `topics`, unless `topics` is empty.
    fn select_notifications(
        &self,
        start: u64,
        limit: usize,
        topics: &[&str],
    ) -> Result<Vec<Notification>>;

    /// The greatest notification id recorded, or 0 when there is none.
    fn max_notification_id(&self) -> Result<u64>;

    /// Records a snapshot (a row of `snapshots`; its `state` has the same
    /// format as an event's).
    ///
    /// Returns `false`, and keeps the existing row, when a snapshot of this
    /// aggregate at this version is already recorded: a snapshot is
    /// determined by the events before it, so a second one at the same
    /// version adds nothing and is not a conflict.
    fn insert_snapshot(&self, snapshot: &StoredEvent) -> Result<bool>;

    /// The aggregate's latest snapshot, or its latest at or before
    /// `to_version` when given; `None` when there is none.
    fn select_snapshot(
        &self,
        originator_id: Uuid,
        to_version: Option<u64>,
    ) -> Result<Option<StoredEvent>>;
}
