//! Decoding the rows the SQLite recorder reads.

use rusqlite::Row;
use rusqlite::types::ValueRef;
use uuid::Uuid;

use super::db;
use crate::error::Result;
use crate::mapper::StoredRow;
use crate::recorder::{
    Notification, Parked, Position, Registration, TrackingKey, corrupt, corrupt_tracking, parked,
    position, registration,
};

/// An originator id the rows being read are expected to have, with its
/// column text: a row whose text is the same needs no parsing.
#[derive(Clone, Copy)]
pub(super) struct KnownId<'a> {
    pub(super) id: Uuid,
    pub(super) text: &'a [u8],
}

/// Reads `originator_id, originator_version, topic, state` from the row,
/// starting at column `first`.
pub(super) fn read_event<'r>(
    row: &'r Row<'_>,
    first: usize,
    known: Option<KnownId<'_>>,
) -> Result<StoredRow<'r>> {
    // The version is read first, so that a bad id can still name it.
    let version = match row.get_ref(first + 1).map_err(db)? {
        ValueRef::Integer(version) => u64::try_from(version).map_err(|_| Some(version)),
        _ => Err(None),
    };
    let originator_id = match (row.get_ref(first).map_err(db)?, known) {
        (ValueRef::Text(text), Some(known)) if text == known.text => known.id,
        (value, _) => read_originator_id(value, version.unwrap_or(0))?,
    };
    let originator_version = version.map_err(|version| {
        let reason = match version {
            Some(version) => format!("originator_version is negative ({version})"),
            None => "originator_version is not an integer".to_owned(),
        };
        corrupt(originator_id, 0, reason)
    })?;
    let topic = match row.get_ref(first + 2).map_err(db)? {
        ValueRef::Text(text) => std::str::from_utf8(text)
            .map_err(|_| corrupt(originator_id, originator_version, "topic is not UTF-8"))?,
        _ => {
            return Err(corrupt(
                originator_id,
                originator_version,
                "topic is not text",
            ));
        }
    };
    let ValueRef::Blob(state) = row.get_ref(first + 3).map_err(db)? else {
        return Err(corrupt(
            originator_id,
            originator_version,
            "state is not a blob",
        ));
    };
    Ok(StoredRow {
        originator_id,
        originator_version,
        topic,
        state,
    })
}

/// Parses an `originator_id` column: 36 characters, lowercase, hyphenated.
pub(super) fn read_originator_id(value: ValueRef<'_>, version: u64) -> Result<Uuid> {
    let bad = || {
        corrupt(
            Uuid::nil(),
            version,
            "originator_id is not a lowercase hyphenated UUID",
        )
    };
    let ValueRef::Text(text) = value else {
        return Err(bad());
    };
    // Of the forms the parser accepts, only the hyphenated one is 36
    // characters long; rejecting upper case leaves exactly the canonical
    // form, without encoding the id again to compare.
    if text.len() != 36 || text.iter().any(u8::is_ascii_uppercase) {
        return Err(bad());
    }
    Uuid::try_parse_ascii(text).map_err(|_| bad())
}

/// Reads a notification row: `notification_id` then the event columns.
pub(super) fn read_notification(row: &Row<'_>) -> Result<Notification> {
    let (id, event) = read_notification_row(row)?;
    Ok(Notification {
        id,
        originator_id: event.originator_id,
        originator_version: event.originator_version,
        topic: event.topic.to_owned(),
        state: event.state.to_vec(),
    })
}

/// [`read_notification`], the row lent.
pub(super) fn read_notification_row<'r>(row: &'r Row<'_>) -> Result<(u64, StoredRow<'r>)> {
    let id = match row.get_ref(0).map_err(db)? {
        ValueRef::Integer(id) => u64::try_from(id).ok(),
        _ => None,
    };
    let event = read_event(row, 1, None)?;
    let Some(id) = id else {
        return Err(corrupt(
            event.originator_id,
            event.originator_version,
            "notification_id is not a positive integer",
        ));
    };
    Ok((id, event))
}

/// Reads a tracking row's `notification_id, epoch`, for the follower of
/// `key`.
pub(super) fn read_position(row: &Row<'_>, key: &TrackingKey) -> Result<Position> {
    let column = |index: usize, name: &str| match row.get_ref(index).map_err(db)? {
        ValueRef::Integer(value) => Ok(value),
        _ => Err(corrupt_tracking(key, name)),
    };
    position(key, column(0, "notification_id")?, column(1, "epoch")?)
}

/// A text column of a `followers` or `parked` row of `follower`.
fn follower_text(row: &Row<'_>, index: usize, follower: &str, name: &str) -> Result<String> {
    match row.get_ref(index).map_err(db)? {
        ValueRef::Text(text) => std::str::from_utf8(text).ok().map(str::to_owned),
        _ => None,
    }
    .ok_or_else(|| not_a(follower, name, "UTF-8 text"))
}

/// An integer column of a `followers` or `parked` row of `follower`.
fn follower_integer(row: &Row<'_>, index: usize, follower: &str, name: &str) -> Result<i64> {
    match row.get_ref(index).map_err(db)? {
        ValueRef::Integer(value) => Ok(value),
        _ => Err(not_a(follower, name, "an integer")),
    }
}

fn not_a(follower: &str, name: &str, what: &str) -> crate::Error {
    corrupt(
        Uuid::nil(),
        0,
        format!("a row of follower `{follower}` has a {name} that is not {what}"),
    )
}

/// Reads a `followers` row's `kind, version`, for `follower`.
pub(super) fn read_registration(row: &Row<'_>, follower: &str) -> Result<Registration> {
    registration(
        follower,
        follower_text(row, 0, follower, "kind")?,
        follower_integer(row, 1, follower, "version")?,
    )
}

/// Reads a `parked` row's `upstream_name, notification_id, originator_id,
/// topic, reason`, for `follower`.
pub(super) fn read_parked(row: &Row<'_>, follower: &str) -> Result<Parked> {
    parked(
        follower,
        follower_text(row, 0, follower, "upstream_name")?,
        follower_integer(row, 1, follower, "notification_id")?,
        read_originator_id(row.get_ref(2).map_err(db)?, 0)?,
        follower_text(row, 3, follower, "topic")?,
        follower_text(row, 4, follower, "reason")?,
    )
}
