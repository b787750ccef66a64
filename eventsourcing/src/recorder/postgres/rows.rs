//! Decoding the rows the PostgreSQL recorder reads.

use postgres::Row;
use uuid::Uuid;

use super::errors::db;
use crate::error::Result;
use crate::mapper::StoredRow;
use crate::recorder::{
    Notification, Parked, Position, Registration, TrackingKey, corrupt, parked, position,
    registration,
};

/// Reads `originator_id, originator_version, topic, state` from the row,
/// starting at column `first`.
pub(super) fn read_event(row: &Row, first: usize) -> Result<StoredRow<'_>> {
    let version: Result<i64, _> = row.try_get(first + 1);
    let originator_id: Uuid = row.try_get(first).map_err(|error| {
        let version = version
            .as_ref()
            .ok()
            .and_then(|v| u64::try_from(*v).ok())
            .unwrap_or(0);
        corrupt(
            Uuid::nil(),
            version,
            format!("originator_id is not a UUID: {error}"),
        )
    })?;
    let version = version
        .map_err(|error| corrupt(originator_id, 0, format!("originator_version: {error}")))?;
    let originator_version = u64::try_from(version).map_err(|_| {
        corrupt(
            originator_id,
            0,
            format!("originator_version is negative ({version})"),
        )
    })?;
    let topic: &str = row.try_get(first + 2).map_err(|error| {
        corrupt(
            originator_id,
            originator_version,
            format!("topic is not UTF-8 text: {error}"),
        )
    })?;
    let state: &[u8] = row.try_get(first + 3).map_err(|error| {
        corrupt(
            originator_id,
            originator_version,
            format!("state is not bytes: {error}"),
        )
    })?;
    Ok(StoredRow {
        originator_id,
        originator_version,
        topic,
        state,
    })
}

/// Reads a notification row: `notification_id` then the event columns.
pub(super) fn read_notification(row: &Row) -> Result<Notification> {
    let (id, event) = read_notification_row(row)?;
    let event = event.to_owned();
    Ok(Notification {
        id,
        originator_id: event.originator_id,
        originator_version: event.originator_version,
        topic: event.topic,
        state: event.state,
    })
}

/// [`read_notification`], the row lent.
pub(super) fn read_notification_row(row: &Row) -> Result<(u64, StoredRow<'_>)> {
    let id: Result<i64, _> = row.try_get(0);
    let event = read_event(row, 1)?;
    let id = id
        .ok()
        .and_then(|id| u64::try_from(id).ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            corrupt(
                event.originator_id,
                event.originator_version,
                "notification_id is not a positive integer",
            )
        })?;
    Ok((id, event))
}

/// Reads a tracking row's `notification_id, epoch`, for the follower of
/// `key`.
pub(super) fn read_position(row: &Row, key: &TrackingKey) -> Result<Position> {
    position(
        key,
        row.try_get(0).map_err(db)?,
        row.try_get(1).map_err(db)?,
    )
}

/// Reads a `followers` row's `kind, version`, for `follower`.
pub(super) fn read_registration(row: &Row, follower: &str) -> Result<Registration> {
    registration(
        follower,
        row.try_get(0).map_err(db)?,
        row.try_get(1).map_err(db)?,
    )
}

/// Reads a `parked` row's `upstream_name, notification_id, originator_id,
/// topic, reason`, for `follower`.
pub(super) fn read_parked(row: &Row, follower: &str) -> Result<Parked> {
    parked(
        follower,
        row.try_get(0).map_err(db)?,
        row.try_get(1).map_err(db)?,
        row.try_get(2).map_err(db)?,
        row.try_get(3).map_err(db)?,
        row.try_get(4).map_err(db)?,
    )
}
