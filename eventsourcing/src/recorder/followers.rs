//! What the recorders keep about followers besides their positions: who
//! holds each follower's name and which version of its handlers last ran
//! (table `followers`), and upstream notifications set aside because their
//! handler failed (table `parked`). Neither table is part of FORMAT.md's
//! stored format: a reader of the events may ignore both.

use uuid::Uuid;

use crate::error::{Error, Result};

/// Who holds a follower's name, and the version of the handlers that last
/// ran under it: a row of the `followers` table.
///
/// A follower registers its name the first time it runs; a follower of
/// another kind that later claims the same name is refused, so that two
/// different policies never share one tracking row and split an upstream
/// log between them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Registration {
    /// The follower's name (the column `application_name`).
    pub follower: String,
    /// What the follower is: the Rust type of its policy, by default.
    pub kind: String,
    /// The version of the follower's handlers (a projection's, which it is
    /// rebuilt for when it changes); 1 when it has none.
    pub version: u32,
}

impl Registration {
    /// The registration of `follower` as `kind` at `version`.
    #[must_use]
    pub fn new(follower: impl Into<String>, kind: impl Into<String>, version: u32) -> Self {
        Registration {
            follower: follower.into(),
            kind: kind.into(),
            version,
        }
    }
}

/// An upstream notification whose handler failed and that a follower set
/// aside to go on with the others: a row of the `parked` table.
///
/// Once one notification of an aggregate is parked, the follower parks
/// that aggregate's later notifications too, so that its events are never
/// handled out of order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Parked {
    /// The follower that parked it.
    pub follower: String,
    /// The upstream log it came from.
    pub upstream: String,
    /// Its notification id in that log.
    pub notification_id: u64,
    /// The aggregate whose event it is.
    pub originator_id: Uuid,
    /// The event's topic.
    pub topic: String,
    /// Why it was parked: the handler's error, or that an earlier event of
    /// the same aggregate is parked.
    pub reason: String,
}

/// A change to the parked notifications, written in the same transaction
/// as a batch's events and tracking update.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParkChange {
    /// Sets a notification aside. Parking one that is already parked fails
    /// the batch with [`Error::InvalidArgument`]
    /// naming `parked`.
    Park(Parked),
    /// Takes parked notifications back: each of `notification_ids` of
    /// `upstream` parked by `follower` is removed. When one of them is not
    /// parked (any more), nothing of the batch is written and the result is
    /// [`Error::NotParked`]: two workers that
    /// retry the same notifications cannot both record their effects.
    Release {
        /// The follower that parked them.
        follower: String,
        /// The upstream log they came from.
        upstream: String,
        /// Their notification ids.
        notification_ids: Vec<u64>,
    },
}

/// The error of parking a notification that is already parked.
pub(crate) fn already_parked(parked: &Parked) -> Error {
    Error::InvalidArgument {
        name: "parked",
        reason: format!(
            "notification {} of `{}` is already parked by follower `{}`",
            parked.notification_id, parked.upstream, parked.follower
        ),
    }
}

/// The error of releasing a notification that is not parked.
pub(crate) fn not_parked(follower: &str, upstream: &str, notification_id: u64) -> Error {
    Error::NotParked {
        follower: follower.to_owned(),
        upstream: upstream.to_owned(),
        notification_id,
    }
}

/// A [`ParkChange`] with its notification ids as the signed 64-bit column
/// (SQLite `INTEGER`, PostgreSQL `BIGINT`) holds them.
#[derive(Clone, Debug)]
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    allow(dead_code, reason = "only the database backends bind the values")
)]
pub(crate) enum SignedChange<'a> {
    /// Insert this row.
    Park {
        parked: &'a Parked,
        notification_id: i64,
    },
    /// Delete these rows; `notification_ids` and `signed` have the same
    /// order.
    Release {
        follower: &'a str,
        upstream: &'a str,
        notification_ids: &'a [u64],
        signed: Vec<i64>,
    },
}

/// Checks every notification id of `changes` against the signed 64-bit
/// column and converts it; refused by every backend alike, before anything
/// is written, with [`Error::InvalidArgument`] naming `notification_id`.
pub(crate) fn signed_changes(changes: &[ParkChange]) -> Result<Vec<SignedChange<'_>>> {
    changes
        .iter()
        .map(|change| match change {
            ParkChange::Park(parked) => Ok(SignedChange::Park {
                parked,
                notification_id: signed_notification_id(
                    &parked.follower,
                    &parked.upstream,
                    parked.notification_id,
                )?,
            }),
            ParkChange::Release {
                follower,
                upstream,
                notification_ids,
            } => Ok(SignedChange::Release {
                follower,
                upstream,
                notification_ids,
                signed: notification_ids
                    .iter()
                    .map(|&id| signed_notification_id(follower, upstream, id))
                    .collect::<Result<_>>()?,
            }),
        })
        .collect()
}

fn signed_notification_id(follower: &str, upstream: &str, id: u64) -> Result<i64> {
    i64::try_from(id).map_err(|_| Error::InvalidArgument {
        name: "notification_id",
        reason: format!(
            "{id} (of `{upstream}`, parked by follower `{follower}`) does not fit in a \
             signed 64-bit column (at most {})",
            i64::MAX
        ),
    })
}

/// What the database backends read back from the `followers` and `parked`
/// tables: a value outside the type's range is [`Error::Corrupt`] (with
/// the nil id, or the parked event's aggregate, naming the follower).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod columns {
    use uuid::Uuid;

    use super::{Parked, Registration};
    use crate::error::Result;
    use crate::recorder::corrupt;

    /// A `followers` row of `follower`.
    pub(crate) fn registration(follower: &str, kind: String, version: i64) -> Result<Registration> {
        let version = u32::try_from(version).map_err(|_| {
            corrupt(
                Uuid::nil(),
                0,
                format!(
                    "the registration of follower `{follower}` has version {version}, \
                     outside 0..={}",
                    u32::MAX
                ),
            )
        })?;
        Ok(Registration::new(follower, kind, version))
    }

    /// A `parked` row of `follower`.
    pub(crate) fn parked(
        follower: &str,
        upstream: String,
        notification_id: i64,
        originator_id: Uuid,
        topic: String,
        reason: String,
    ) -> Result<Parked> {
        let notification_id = u64::try_from(notification_id).map_err(|_| {
            corrupt(
                originator_id,
                0,
                format!(
                    "the notification of `{upstream}` parked by follower `{follower}` has a \
                     negative notification_id ({notification_id})"
                ),
            )
        })?;
        Ok(Parked {
            follower: follower.to_owned(),
            upstream,
            notification_id,
            originator_id,
            topic,
            reason,
        })
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use self::columns::{parked, registration};
