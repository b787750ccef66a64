//! The rows of the notification log, read in one statement.

use postgres::Row;

use super::PostgresRecorder;
use super::errors::Call;
use super::sql::Query;
use crate::error::Result;

impl PostgresRecorder {
    /// At most `limit` rows from notification id `start` on, of `topics`
    /// unless it is empty, received whole (`Client::query` waits once for
    /// the result rather than once per row).
    pub(super) fn notification_rows(
        &self,
        start: u64,
        limit: usize,
        topics: &[&str],
    ) -> Result<Vec<Row>> {
        let Ok(start) = i64::try_from(start) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(Call::Read, |connection| {
            let rows = if topics.is_empty() {
                let statement = connection.statement(&self.sql, Query::SelectNotifications)?;
                connection.client.query(&statement, &[&start, &limit])?
            } else {
                let statement =
                    connection.statement(&self.sql, Query::SelectNotificationsWithTopics)?;
                connection
                    .client
                    .query(&statement, &[&start, &limit, &topics])?
            };
            Ok(rows)
        })
    }
}
