//! The tracking table in SQLite: the compare-and-set written with a batch,
//! a follower's position, taking a row over, and moving it back for a
//! rebuild.

use rusqlite::Connection;
use rusqlite::types::ValueRef;

use super::rows::read_position;
use super::{SqliteRecorder, db};
use crate::error::Result;
use crate::recorder::{
    Position, SignedUpdate, TrackingKey, TrackingUpdate, corrupt_tracking, epoch_exhausted,
    listed_position, rewind_conflict, tracking_conflict,
};

impl SqliteRecorder {
    /// Moves the row of `update` inside the writer's open transaction, after
    /// the batch's events; [`Error::TrackingConflict`] when the row is
    /// elsewhere, and the caller rolls everything back.
    ///
    /// [`Error::TrackingConflict`]: crate::Error::TrackingConflict
    pub(super) fn track(
        &self,
        conn: &Connection,
        update: &TrackingUpdate,
        signed: SignedUpdate,
    ) -> Result<()> {
        let key = &update.key;
        let (follower, upstream) = (key.follower.as_str(), key.upstream.as_str());
        let moved = conn
            .prepare_cached(&self.sql.update_tracking)
            .and_then(|mut update| {
                update.execute((
                    follower,
                    upstream,
                    signed.partition,
                    signed.notification_id,
                    signed.expected,
                    signed.epoch,
                ))
            })
            .map_err(db)?;
        if moved == 1 {
            return Ok(());
        }
        // A follower without a row stands at notification 0, epoch 0.
        if signed.expected == 0 && signed.epoch == 0 {
            let created = conn
                .prepare_cached(&self.sql.insert_tracking)
                .and_then(|mut insert| {
                    insert.execute((follower, upstream, signed.partition, signed.notification_id))
                })
                .map_err(db)?;
            if created == 1 {
                return Ok(());
            }
        }
        Err(tracking_conflict(update))
    }

    /// The row of `key`, if there is one.
    pub(super) fn position(
        &self,
        conn: &Connection,
        key: &TrackingKey,
        partition: i32,
    ) -> Result<Option<Position>> {
        let mut select = conn.prepare_cached(&self.sql.select_tracking).map_err(db)?;
        let mut rows = select
            .query((key.follower.as_str(), key.upstream.as_str(), partition))
            .map_err(db)?;
        match rows.next().map_err(db)? {
            Some(row) => read_position(row, key).map(Some),
            None => Ok(None),
        }
    }

    /// Every tracking row, by follower, upstream and partition.
    pub(super) fn positions(&self, conn: &Connection) -> Result<Vec<(TrackingKey, Position)>> {
        let mut select = conn
            .prepare_cached(&self.sql.select_all_tracking)
            .map_err(db)?;
        let mut rows = select.query(()).map_err(db)?;
        let mut positions = Vec::new();
        while let Some(row) = rows.next().map_err(db)? {
            let follower: String = row.get(0).map_err(db)?;
            let upstream: String = row.get(1).map_err(db)?;
            let key = TrackingKey::new(follower.as_str(), upstream.as_str());
            let integer = |index: usize, name: &str| match row.get_ref(index).map_err(db)? {
                ValueRef::Integer(value) => Ok(value),
                _ => Err(corrupt_tracking(&key, name)),
            };
            positions.push(listed_position(
                follower,
                upstream,
                integer(2, "partition")?,
                integer(3, "notification_id")?,
                integer(4, "epoch")?,
            )?);
        }
        Ok(positions)
    }

    /// Creates the row of `key` at epoch 1, or raises its epoch by one,
    /// inside the writer's open transaction.
    pub(super) fn take_over(
        &self,
        conn: &Connection,
        key: &TrackingKey,
        partition: i32,
    ) -> Result<Position> {
        let mut raise = conn.prepare_cached(&self.sql.raise_epoch).map_err(db)?;
        let mut rows = raise
            .query((key.follower.as_str(), key.upstream.as_str(), partition))
            .map_err(db)?;
        let position = match rows.next().map_err(db)? {
            Some(row) => read_position(row, key)?,
            None => return Err(epoch_exhausted(key)),
        };
        // Run the statement to its end before the transaction commits.
        while rows.next().map_err(db)?.is_some() {}
        Ok(position)
    }

    /// Moves the row of `key` back to notification 0, inside the writer's
    /// open transaction, provided that it still has `epoch` (the signed
    /// values are the checked `partition` and `epoch`); a missing row is at
    /// notification 0, epoch 0 already. Otherwise
    /// [`Error::TrackingConflict`], and the caller rolls everything back.
    ///
    /// [`Error::TrackingConflict`]: crate::Error::TrackingConflict
    pub(super) fn rewind(
        &self,
        conn: &Connection,
        key: &TrackingKey,
        epoch: u64,
        (partition, signed_epoch): (i32, i64),
    ) -> Result<()> {
        let moved = conn
            .prepare_cached(&self.sql.rewind_tracking)
            .and_then(|mut rewind| {
                rewind.execute((
                    key.follower.as_str(),
                    key.upstream.as_str(),
                    partition,
                    signed_epoch,
                ))
            })
            .map_err(db)?;
        if moved == 1 || (epoch == 0 && self.position(conn, key, partition)?.is_none()) {
            return Ok(());
        }
        Err(rewind_conflict(key, epoch))
    }
}
