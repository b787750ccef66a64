//! Reading and taking over tracking rows in PostgreSQL. (Moving a row is
//! part of the insert function: see `function.rs`.)

use super::PostgresRecorder;
use super::errors::Call;
use super::rows::read_position;
use super::sql::Query;
use crate::error::Result;
use crate::recorder::{Position, TrackingKey, epoch_exhausted, signed_partition};

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
