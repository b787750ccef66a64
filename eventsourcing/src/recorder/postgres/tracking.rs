//! Reading and taking over tracking rows in PostgreSQL. (Moving a row is
//! part of the insert function: see `function.rs`.)

use super::PostgresRecorder;
use super::errors::Call;
use super::rows::read_position;
use super::sql::Query;
use crate::error::Result;
use crate::recorder::{Position, TrackingKey, epoch_exhausted, listed_position, signed_partition};

impl PostgresRecorder {
    /// The row of `key`, if there is one.
    pub(super) fn position(&self, key: &TrackingKey) -> Result<Option<Position>> {
        let partition = signed_partition(key)?;
        self.run(Call::Read, |connection| {
            let statement = connection.statement(&self.sql, Query::SelectTracking)?;
            let row = connection
                .client
                .query_opt(&statement, &[&key.follower, &key.upstream, &partition])?;
            Ok(row.map(|row| read_position(&row, key)).transpose()?)
        })
    }

    /// Every tracking row, by follower, upstream and partition.
    pub(super) fn positions(&self) -> Result<Vec<(TrackingKey, Position)>> {
        self.run(Call::Read, |connection| {
            let statement = connection.statement(&self.sql, Query::SelectAllTracking)?;
            let rows = connection.client.query(&statement, &[])?;
            let mut positions = Vec::with_capacity(rows.len());
            for row in &rows {
                let partition: i32 = row.try_get(2)?;
                positions.push(listed_position(
                    row.try_get(0)?,
                    row.try_get(1)?,
                    i64::from(partition),
                    row.try_get(3)?,
                    row.try_get(4)?,
                )?);
            }
            Ok(positions)
        })
    }

    /// Creates the row of `key` at epoch 1, or raises its epoch by one, in
    /// one statement.
    pub(super) fn take_over(&self, key: &TrackingKey) -> Result<Position> {
        let partition = signed_partition(key)?;
        let row = self.run(Call::Write, |connection| {
            let statement = connection.statement(&self.sql, Query::RaiseEpoch)?;
            Ok(connection
                .client
                .query_opt(&statement, &[&key.follower, &key.upstream, &partition])?)
        })?;
        match row {
            Some(row) => read_position(&row, key),
            None => Err(epoch_exhausted(key)),
        }
    }
}
