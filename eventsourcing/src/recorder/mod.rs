//! Recorders: where stored rows live.
//!
//! A [`Recorder`] keeps the rows of FORMAT.md's `stored_events`,
//! `snapshots` and `tracking` tables. It knows nothing about aggregates,
//! hashes or encryption: it inserts rows under the `(originator_id,
//! originator_version)` uniqueness rule that is the optimistic concurrency
//! control, reads one aggregate's rows back by version, reads all rows in
//! notification order, and keeps where each follower stands in each
//! upstream log. Outside the stored format, it also keeps which follower
//! holds each name ([`Registration`]) and the notifications each follower
//! set aside ([`Parked`]), changed only with a batch ([`ParkChange`]).
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
//! Every backend passes the same conformance suites
//! (`tests/test_recorders.rs`, `tests/test_tracking.rs` and
//! `tests/test_follower_tables.rs`).
//!
//! # Tracking
//!
//! A follower (a process application or a projection) records the effects
//! of an upstream notification and its new position in one transaction: a
//! [`Batch`] of events with a [`TrackingUpdate`], a compare-and-set of the
//! follower's row. Processing is exactly-once because the position moves
//! with the effects or not at all, and a worker that lost the row to
//! another (which raised its epoch with [`Recorder::raise_epoch`]) can
//! write nothing more.
//!
//! ```
//! use eventsourcing::recorder::{
//!     Batch, MemoryRecorder, Position, Recorder, TrackingKey, TrackingUpdate,
//! };
//! use eventsourcing::Error;
//!
//! let recorder = MemoryRecorder::new();
//! let key = TrackingKey::new("statistics", "bank");
//! assert_eq!(recorder.select_tracking(&key)?, None);
//!
//! // A worker takes the row over, then records notifications 1 to 3.
//! let mine = recorder.raise_epoch(&key)?;
//! assert_eq!(mine, Position { notification_id: 0, epoch: 1 });
//! let update = TrackingUpdate::new(key.clone(), mine.epoch, 0, 3);
//! assert!(recorder.insert(&Batch::default().with_tracking(&update))?.is_empty());
//!
//! // Replaying the same update finds the row elsewhere.
//! let again = recorder.insert(&Batch::default().with_tracking(&update));
//! assert!(matches!(again, Err(Error::TrackingConflict { expected: 0, .. })));
//! assert_eq!(
//!     recorder.select_tracking(&key)?,
//!     Some(Position { notification_id: 3, epoch: 1 })
//! );
//! # Ok::<(), Error>(())
//! ```

use std::any::Any;
use std::ops::ControlFlow;

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::mapper::{StoredEvent, StoredRow};

mod followers;
mod keys;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod query;
#[cfg(feature = "sqlite")]
mod sqlite;
mod tracking;

pub use self::followers::{ParkChange, Parked, Registration};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use self::followers::{SignedChange, parked, registration};
pub(crate) use self::followers::{already_parked, not_parked, signed_changes};
pub use self::keys::{DataKeyRow, Rewrap};
pub(crate) use self::keys::{check_key_rows, no_data_keys};
pub use self::memory::MemoryRecorder;
#[cfg(feature = "postgres")]
pub use self::postgres::{Listener, PostgresOptions, PostgresRecorder, Sequencing};
pub use self::query::EventQuery;
pub(crate) use self::query::LoadRows;
#[cfg(feature = "sqlite")]
pub use self::sqlite::{SqliteOptions, SqlitePath, SqliteRecorder};
#[cfg(feature = "sqlite")]
pub(crate) use self::sqlite::{in_one_transaction, in_scope, on_failure, reading_on_writer};
pub use self::tracking::{Position, TrackingKey, TrackingUpdate};
#[cfg(feature = "sqlite")]
pub(crate) use self::tracking::{SignedUpdate, corrupt_tracking};
pub(crate) use self::tracking::{
    epoch_exhausted, signed_partition, signed_update, tracking_conflict,
};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use self::tracking::{
    is_version_1, listed_position, position, rewind_conflict, signed_rewind,
};
#[cfg(feature = "sqlite")]
pub use crate::config::Synchronous;

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

    /// The stored event lent, without its notification id.
    #[must_use]
    pub fn as_row(&self) -> StoredRow<'_> {
        StoredRow {
            originator_id: self.originator_id,
            originator_version: self.originator_version,
            topic: &self.topic,
            state: &self.state,
        }
    }
}

/// What one transaction writes: events, a tracking update, changes to
/// parked notifications, or any of these together.
///
/// ```
/// use eventsourcing::recorder::{Batch, TrackingKey, TrackingUpdate};
///
/// let update = TrackingUpdate::new(TrackingKey::new("statistics", "bank"), 1, 6, 7);
/// let batch = Batch::new(&[]).with_tracking(&update);
/// assert!(!batch.is_empty());
/// assert!(Batch::default().is_empty());
/// ```
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct Batch<'a> {
    /// The events, possibly of several aggregates, in the order they are
    /// given notification ids.
    pub events: &'a [StoredEvent],
    /// The tracking row to move with them, if any.
    pub tracking: Option<&'a TrackingUpdate>,
    /// Notifications to park or release with them.
    pub parked: &'a [ParkChange],
    /// Data keys to create with them (rows of `aggregate_keys`), each with
    /// its aggregate's first event.
    pub data_keys: &'a [DataKeyRow],
    /// Aggregates forgotten with them: their data keys and snapshots are
    /// deleted in the same transaction as the `Forgotten` events.
    pub forgotten: &'a [Uuid],
}

impl<'a> Batch<'a> {
    /// The events, without a tracking update.
    #[must_use]
    pub fn new(events: &'a [StoredEvent]) -> Self {
        Self {
            events,
            tracking: None,
            parked: &[],
            data_keys: &[],
            forgotten: &[],
        }
    }

    /// The same batch, with data keys created in the same transaction.
    #[must_use]
    pub fn with_data_keys(mut self, rows: &'a [DataKeyRow]) -> Self {
        self.data_keys = rows;
        self
    }

    /// The same batch, with the data keys and snapshots of `ids` deleted
    /// in the same transaction.
    #[must_use]
    pub fn with_forgotten(mut self, ids: &'a [Uuid]) -> Self {
        self.forgotten = ids;
        self
    }

    /// The same events, with `update` written in the same transaction.
    #[must_use]
    pub fn with_tracking(mut self, update: &'a TrackingUpdate) -> Self {
        self.tracking = Some(update);
        self
    }

    /// The same batch, with `changes` to the parked notifications written
    /// in the same transaction.
    #[must_use]
    pub fn with_parked(mut self, changes: &'a [ParkChange]) -> Self {
        self.parked = changes;
        self
    }

    /// Whether there is nothing to write: no events, no tracking update,
    /// no change to parked notifications.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.tracking.is_none()
            && self.parked.is_empty()
            && self.data_keys.is_empty()
            && self.forgotten.is_empty()
    }

    /// Whether the batch creates or deletes data keys.
    pub(crate) fn touches_keys(&self) -> bool {
        !self.data_keys.is_empty() || !self.forgotten.is_empty()
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
#[cfg(any(feature = "sqlite", feature = "postgres"))]
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
/// Object safe, and shared between threads as `Arc<dyn Recorder>`; an
/// `Arc<dyn Recorder>` converts to `Arc<dyn Any + Send + Sync>` to be
/// downcast to its backend's type.
///
/// Callbacks (`each` in [`select_events`](Recorder::select_events)) must not
/// call back into the same recorder: a backend may hold a lock or a
/// connection while it runs them.
pub trait Recorder: Any + Send + Sync {
    /// Writes `batch` in one transaction, all or nothing, and returns the
    /// notification ids its events were given, in the same order.
    ///
    /// The events may belong to several aggregates. If any `(originator_id,
    /// originator_version)` is already recorded, or occurs twice in the
    /// batch, the result is [`Error::Concurrency`] naming that row's id and
    /// version. A version beyond `i64::MAX` is [`Error::Corrupt`].
    ///
    /// The tracking update, if any, is a compare-and-set of the follower's
    /// row: it moves the row to `notification_id` when the row is at
    /// `expected` with `epoch`, and creates the row (at epoch 0) when there
    /// is none and both `expected` and `epoch` are 0. Otherwise the result
    /// is [`Error::TrackingConflict`]: another worker recorded further, or
    /// took the row over. A position that would move back, or a value too
    /// large for its column, is [`Error::InvalidArgument`] naming the
    /// field. When both the tracking row and an event's version are taken,
    /// either error may be returned.
    ///
    /// The parked changes, if any, are written in the same transaction: a
    /// [`ParkChange::Release`] naming a notification that is not parked is
    /// [`Error::NotParked`].
    ///
    /// So are the data keys (new rows of `aggregate_keys`; an aggregate
    /// that has one already is [`Error::Concurrency`] at version 1) and
    /// the forgotten aggregates (their `aggregate_keys` rows and snapshots
    /// are deleted).
    ///
    /// On any error nothing of the batch is written. An empty batch (no
    /// events, no tracking update, no parked change) returns an empty list
    /// without touching the database; a batch with a tracking update and no
    /// events moves the position and returns an empty list.
    fn insert(&self, batch: &Batch<'_>) -> Result<Vec<u64>>;

    /// Inserts `events` in one transaction, without a tracking update, and
    /// returns the notification ids they were given, in the same order:
    /// [`insert`](Recorder::insert) of [`Batch::new`]`(events)`, with the
    /// same errors.
    fn insert_events(&self, events: &[StoredEvent]) -> Result<Vec<u64>> {
        self.insert(&Batch::new(events))
    }

    /// Calls `each` with the events of one aggregate that match `query`, in
    /// version order (ascending unless `query.descending`), without first
    /// loading them all where the backend can stream.
    ///
    /// Rows are lent ([`StoredRow`]): a backend hands over its own buffers,
    /// and a caller that keeps a row copies it ([`StoredRow::to_owned`]).
    ///
    /// When `each` returns [`ControlFlow::Break`], the scan ends there,
    /// successfully, and no further row is handed over (say, a replay that
    /// reached the first event after a point in time). When `each` returns
    /// an error, the scan ends there too and that error is returned.
    fn select_events(
        &self,
        query: &EventQuery,
        each: &mut dyn FnMut(StoredRow<'_>) -> Result<ControlFlow<()>>,
    ) -> Result<()>;

    /// The events of one aggregate that match `query`, collected in a list.
    fn events(&self, query: &EventQuery) -> Result<Vec<StoredEvent>> {
        let mut events = Vec::new();
        self.select_events(query, &mut |row| {
            events.push(row.to_owned());
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

    /// [`Recorder::select_notifications`], each row lent to `each` with its
    /// notification id until `each` breaks. The default lends the rows of
    /// `select_notifications`; a backend that can lend its own bytes
    /// overrides it.
    fn select_notification_rows(
        &self,
        start: u64,
        limit: usize,
        topics: &[&str],
        each: &mut dyn FnMut(u64, StoredRow<'_>) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        for notification in self.select_notifications(start, limit, topics)? {
            if each(notification.id, notification.as_row())?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// The greatest notification id recorded, or 0 when there is none.
    fn max_notification_id(&self) -> Result<u64>;

    /// The greatest notification id, and, when it is past `after`, at most
    /// `limit` rows after `after` (as [`select_notifications`] with
    /// `after + 1`): what a follower reads for a page, in one read
    /// transaction where the backend has them.
    ///
    /// [`select_notifications`]: Recorder::select_notifications
    fn select_page(
        &self,
        after: u64,
        limit: usize,
        topics: &[&str],
    ) -> Result<(u64, Vec<Notification>)> {
        let head = self.max_notification_id()?;
        if head <= after {
            return Ok((head, Vec::new()));
        }
        Ok((head, self.select_notifications(after + 1, limit, topics)?))
    }

    /// The row of one event of one aggregate, with its notification id;
    /// `None` when there is no such event. A partitioned follower uses it
    /// to learn where the latest event of an aggregate it read sits in the
    /// log, and which partition recorded it (causal dependencies).
    fn select_notification_of(
        &self,
        originator_id: Uuid,
        originator_version: u64,
    ) -> Result<Option<Notification>>;

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

    /// What loading an aggregate reads: its latest snapshot at or before
    /// `to_version` (handed to `snapshot`), then its events up to
    /// `to_version` from that snapshot's version on, the snapshot's own
    /// event first so that the chain can be tied to it (handed to `each`);
    /// every event from the first when there is no snapshot.
    ///
    /// The default makes two reads ([`select_snapshot`], then
    /// [`select_events`]); the crate's SQL backends make one query, so a
    /// load costs one statement, and the snapshot and the events come from
    /// one state of the database. PostgreSQL's reads at most 1,000 events
    /// per statement, all received before they are handed on; a longer
    /// load goes on from the last version read, a statement per 1,000,
    /// so that events appended in between (newer versions) are read too.
    /// When `snapshot` breaks, no event is read; when either callback
    /// fails, the scan ends with its error.
    ///
    /// [`select_snapshot`]: Recorder::select_snapshot
    /// [`select_events`]: Recorder::select_events
    fn select_snapshot_and_events(
        &self,
        originator_id: Uuid,
        to_version: Option<u64>,
        snapshot: &mut dyn FnMut(StoredRow<'_>) -> Result<ControlFlow<()>>,
        each: &mut dyn FnMut(StoredRow<'_>) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        let mut query = EventQuery::new(originator_id);
        if let Some(to) = to_version {
            query = query.to_version(to);
        }
        if let Some(row) = self.select_snapshot(originator_id, to_version)? {
            if snapshot(row.as_row())?.is_break() {
                return Ok(());
            }
            query = query.after_version(row.originator_version.saturating_sub(1));
        }
        self.select_events(&query, each)
    }

    /// Where the follower of `key` stands: its row, or `None` when it has
    /// none yet (which means notification 0, epoch 0).
    ///
    /// Fails with [`Error::InvalidArgument`] for a partition beyond
    /// `i32::MAX`, and with [`Error::Corrupt`] for a row with a negative
    /// column.
    fn select_tracking(&self, key: &TrackingKey) -> Result<Option<Position>>;

    /// Every tracking row: where each follower stands in each upstream
    /// log, ordered by follower, upstream and partition (say, for a report
    /// of a store's followers).
    ///
    /// `Ok(None)` when the recorder cannot list its rows: the default, for
    /// recorders outside this crate; the crate's backends all list them. A
    /// row with a negative column is [`Error::Corrupt`].
    fn select_positions(&self) -> Result<Option<Vec<(TrackingKey, Position)>>> {
        Ok(None)
    }

    /// Takes the row of `key` over for a new worker: creates it at
    /// notification 0, epoch 1 when it is missing, else adds one to its
    /// epoch and keeps its position; returns the new position.
    ///
    /// Atomic: callers racing on one row get distinct epochs, and from then
    /// on a tracking update with an older epoch fails with
    /// [`Error::TrackingConflict`], so that a worker that lost the row
    /// writes nothing more. Fails with [`Error::InvalidArgument`] for a
    /// partition beyond `i32::MAX` or a row whose epoch cannot grow
    /// (`i64::MAX`), changing nothing.
    fn raise_epoch(&self, key: &TrackingKey) -> Result<Position>;

    /// Registers `registration` unless its follower already has a
    /// registration, atomically, and returns the registration now stored:
    /// this one, or the one that was there before (which this call leaves
    /// unchanged).
    fn register_follower(&self, registration: &Registration) -> Result<Registration>;

    /// Stores `registration` in place of its follower's registration, or
    /// as its first one.
    fn update_follower(&self, registration: &Registration) -> Result<()>;

    /// The notifications parked by `follower`, by upstream name and then
    /// notification id.
    fn select_parked(&self, follower: &str) -> Result<Vec<Parked>>;

    /// The data key row of aggregate `id`, or `None` when it has none
    /// (it never had one, or was forgotten). The default, for a recorder
    /// that keeps no data keys, is an error.
    fn select_data_key(&self, id: Uuid) -> Result<Option<DataKeyRow>> {
        let _ = id;
        Err(no_data_keys())
    }

    /// At most `limit` data key rows whose fingerprint is not `except`
    /// and whose aggregate comes after `after` (all when `None`), in the
    /// backend's order of `originator_id` (the order of the hyphenated
    /// lowercase text on SQLite, of the UUID on PostgreSQL, of the bytes in
    /// memory): the rows a rotation to the key of that fingerprint still
    /// has to re-wrap, a page at a time along the primary key.
    fn select_data_keys(
        &self,
        except: &str,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<DataKeyRow>> {
        let _ = (except, after, limit);
        Err(no_data_keys())
    }

    /// Stores each re-wrapped key whose row still has its expected
    /// fingerprint, in one transaction; returns how many rows changed (a
    /// row that changed or went meanwhile is left alone).
    fn rewrap_data_keys(&self, rewraps: &[Rewrap]) -> Result<usize> {
        let _ = rewraps;
        Err(no_data_keys())
    }
}
