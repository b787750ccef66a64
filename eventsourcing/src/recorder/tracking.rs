//! Tracking rows: their key, position and update, and what every backend
//! does alike with them: checking an update's values against the columns,
//! the errors, reading a row into a [`Position`], and recognising a
//! version-1 table.

use crate::error::{Error, Result};

#[cfg(feature = "sqlite")]
pub(crate) use self::columns::corrupt_tracking;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use self::columns::{is_version_1, listed_position, position};

/// Identifies one tracking row: a follower's place in one upstream log.
///
/// ```
/// use eventsourcing::recorder::TrackingKey;
///
/// let key = TrackingKey::new("statistics", "bank").partition(2);
/// assert_eq!(key.follower, "statistics");
/// assert_eq!(key.upstream, "bank");
/// assert_eq!(key.partition, 2);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TrackingKey {
    /// The follower, a process application or a projection (the column
    /// `application_name`).
    pub follower: String,
    /// The application whose notification log it follows (the column
    /// `upstream_name`).
    pub upstream: String,
    /// Which of the follower's partitions; 0 when it is not partitioned.
    /// The column is a signed 32-bit integer: a partition beyond
    /// `i32::MAX` is refused with [`Error::InvalidArgument`].
    pub partition: u32,
}

impl TrackingKey {
    /// The row of `follower` in the log of `upstream`, partition 0.
    #[must_use]
    pub fn new(follower: impl Into<String>, upstream: impl Into<String>) -> Self {
        Self {
            follower: follower.into(),
            upstream: upstream.into(),
            partition: 0,
        }
    }

    /// The same follower and upstream, partition `p`.
    #[must_use]
    pub fn partition(mut self, p: u32) -> Self {
        self.partition = p;
        self
    }
}

/// Where a follower stands: the last upstream notification whose effects
/// are recorded (0 before the first) and the row's fencing epoch.
///
/// A follower with no row yet stands at `Position::default()`: notification
/// 0, epoch 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Position {
    /// The last upstream notification whose effects are recorded; 0 before
    /// the first.
    pub notification_id: u64,
    /// The fencing token: raised by one each time a worker takes the row
    /// over ([`Recorder::raise_epoch`](super::Recorder::raise_epoch)).
    pub epoch: u64,
}

/// A compare-and-set of one tracking row, written in the same transaction
/// as a batch's events.
///
/// It moves the row of `key` from `expected` to `notification_id`, provided
/// that the row is still at `expected` with this `epoch`; otherwise the
/// whole batch fails with [`Error::TrackingConflict`]. A follower with no
/// row yet is at notification 0, epoch 0: an update with `expected` 0 and
/// `epoch` 0 creates its row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackingUpdate {
    /// The row to move.
    pub key: TrackingKey,
    /// The notification id the row must be at.
    pub expected: u64,
    /// The notification id to move it to; not below `expected`.
    pub notification_id: u64,
    /// The epoch the row must have: the one the worker got when it took the
    /// row over, or 0 when no worker ever did.
    pub epoch: u64,
}

impl TrackingUpdate {
    /// Moves the row of `key`, held at `epoch`, from `expected` to
    /// `notification_id`.
    #[must_use]
    pub fn new(key: TrackingKey, epoch: u64, expected: u64, notification_id: u64) -> Self {
        Self {
            key,
            expected,
            notification_id,
            epoch,
        }
    }
}

/// `follower `f` of `u` (partition p)`, for messages.
fn describe(key: &TrackingKey) -> String {
    format!(
        "follower `{}` of `{}` (partition {})",
        key.follower, key.upstream, key.partition
    )
}

/// The partition of `key` as the signed 32-bit integer its column holds.
pub(crate) fn signed_partition(key: &TrackingKey) -> Result<i32> {
    i32::try_from(key.partition).map_err(|_| Error::InvalidArgument {
        name: "partition",
        reason: format!(
            "{} of {} does not fit in a signed 32-bit column (at most {})",
            key.partition,
            describe(key),
            i32::MAX
        ),
    })
}

/// A tracking update's values as the signed columns hold them.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    allow(dead_code, reason = "only the database backends bind the values")
)]
pub(crate) struct SignedUpdate {
    pub(crate) partition: i32,
    pub(crate) expected: i64,
    pub(crate) notification_id: i64,
    pub(crate) epoch: i64,
}

/// Checks `update` and converts its values for the columns; refused by
/// every backend alike, with [`Error::InvalidArgument`] naming the field,
/// before anything is written: a position that would move back, a value
/// beyond `i64::MAX` or a partition beyond `i32::MAX`.
pub(crate) fn signed_update(update: &TrackingUpdate) -> Result<SignedUpdate> {
    let key = &update.key;
    if update.notification_id < update.expected {
        return Err(Error::InvalidArgument {
            name: "notification_id",
            reason: format!(
                "{} is below the expected position {} of {}: a follower never moves back",
                update.notification_id,
                update.expected,
                describe(key)
            ),
        });
    }
    let column = |name: &'static str, value: u64| {
        i64::try_from(value).map_err(|_| Error::InvalidArgument {
            name,
            reason: format!(
                "{value} for {} does not fit in a signed 64-bit column (at most {})",
                describe(key),
                i64::MAX
            ),
        })
    };
    Ok(SignedUpdate {
        partition: signed_partition(key)?,
        expected: column("expected", update.expected)?,
        notification_id: column("notification_id", update.notification_id)?,
        epoch: column("epoch", update.epoch)?,
    })
}

/// The error of a tracking update that found its row elsewhere.
pub(crate) fn tracking_conflict(update: &TrackingUpdate) -> Error {
    Error::TrackingConflict {
        follower: update.key.follower.clone(),
        upstream: update.key.upstream.clone(),
        partition: update.key.partition,
        expected: update.expected,
        epoch: update.epoch,
    }
}

/// The values of a rewind of the row of `key` held at `epoch` (a
/// projection's rebuild, which moves the row back to notification 0), as
/// the columns hold them; [`Error::InvalidArgument`] for a partition beyond
/// `i32::MAX` or an epoch beyond `i64::MAX`.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn signed_rewind(key: &TrackingKey, epoch: u64) -> Result<(i32, i64)> {
    let partition = signed_partition(key)?;
    let epoch = i64::try_from(epoch).map_err(|_| Error::InvalidArgument {
        name: "epoch",
        reason: format!(
            "{epoch} for {} does not fit in a signed 64-bit column (at most {})",
            describe(key),
            i64::MAX
        ),
    })?;
    Ok((partition, epoch))
}

/// The error of a rewind that found the row of `key` at another epoch than
/// `epoch` (another worker took it over): a [`Error::TrackingConflict`]
/// whose `expected` is 0, the position the rewind was to move it to.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn rewind_conflict(key: &TrackingKey, epoch: u64) -> Error {
    tracking_conflict(&TrackingUpdate::new(key.clone(), epoch, 0, 0))
}

/// The error of [`Recorder::raise_epoch`](super::Recorder::raise_epoch) on a row whose epoch is already
/// the greatest a signed 64-bit column holds.
pub(crate) fn epoch_exhausted(key: &TrackingKey) -> Error {
    Error::InvalidArgument {
        name: "key",
        reason: format!(
            "the epoch of {} is already {}, the greatest a signed 64-bit column holds",
            describe(key),
            i64::MAX
        ),
    }
}

/// What the database backends read back from their tracking tables.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod columns {
    use uuid::Uuid;

    use super::describe;
    #[cfg(feature = "sqlite")]
    use crate::error::Error;
    use crate::error::Result;
    use crate::recorder::{Position, TrackingKey, corrupt};

    /// A whole tracking row (as [`Recorder::select_positions`] lists it)
    /// as its key and position; a corrupt-record error (with the nil id,
    /// naming the follower) when the partition or a position is negative.
    ///
    /// [`Recorder::select_positions`]: crate::recorder::Recorder::select_positions
    pub(crate) fn listed_position(
        follower: String,
        upstream: String,
        partition: i64,
        notification_id: i64,
        epoch: i64,
    ) -> Result<(TrackingKey, Position)> {
        let key = TrackingKey::new(follower, upstream);
        let Ok(partition) = u32::try_from(partition) else {
            return Err(corrupt(
                Uuid::nil(),
                0,
                format!(
                    "the tracking row of {} has a negative partition ({partition})",
                    describe(&key)
                ),
            ));
        };
        let key = key.partition(partition);
        let at = position(&key, notification_id, epoch)?;
        Ok((key, at))
    }

    /// A tracking row's columns as a [`Position`]; a corrupt-record error
    /// (with the nil id, naming the follower) when one is negative.
    pub(crate) fn position(
        key: &TrackingKey,
        notification_id: i64,
        epoch: i64,
    ) -> Result<Position> {
        let column = |name: &str, value: i64| {
            u64::try_from(value).map_err(|_| {
                corrupt(
                    Uuid::nil(),
                    0,
                    format!(
                        "the tracking row of {} has a negative {name} ({value})",
                        describe(key)
                    ),
                )
            })
        };
        Ok(Position {
            notification_id: column("notification_id", notification_id)?,
            epoch: column("epoch", epoch)?,
        })
    }

    /// A tracking row whose column `name` is not an integer.
    #[cfg(feature = "sqlite")]
    pub(crate) fn corrupt_tracking(key: &TrackingKey, name: &str) -> Error {
        corrupt(
            Uuid::nil(),
            0,
            format!(
                "the tracking row of {} has a {name} that is not an integer",
                describe(key)
            ),
        )
    }

    /// Whether a `tracking` table with these columns has version 1's layout
    /// (one row per processed notification: `application_name`,
    /// `upstream_name`, `notification_id`), which opening a database migrates.
    pub(crate) fn is_version_1(columns: &[String]) -> bool {
        let mut names: Vec<&str> = columns.iter().map(String::as_str).collect();
        names.sort_unstable();
        names == ["application_name", "notification_id", "upstream_name"]
    }
}
