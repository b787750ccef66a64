//! The `followers` and `parked` tables in PostgreSQL: their SQL,
//! registrations, parked notifications, and the parked changes written in
//! a batch's transaction.

use std::collections::HashSet;

use postgres::{Statement, Transaction};

use super::PostgresRecorder;
use super::errors::{Call, Failure};
use super::pool::Connection;
use super::rows::{read_parked, read_registration};
use super::sql::{Query, Sql};
use crate::error::{Error, Result};
use crate::recorder::{Parked, Registration, SignedChange, already_parked, not_parked};

/// The columns of a `followers` row.
const FOLLOWER_COLUMNS: &str = "application_name, kind, version";

/// The columns of a `parked` row.
const PARKED_COLUMNS: &str =
    "application_name, upstream_name, notification_id, originator_id, topic, reason";

/// The SQL of the `followers` and `parked` tables.
#[derive(Debug)]
pub(super) struct FollowersSql {
    /// Run with the other tables' statements, under the same lock.
    pub(super) create_tables: String,
    pub(super) register: String,
    pub(super) select: String,
    pub(super) update: String,
    pub(super) insert_parked: String,
    pub(super) release_parked: String,
    pub(super) delete_parked_of_follower: String,
    pub(super) select_parked: String,
}

impl FollowersSql {
    /// `followers` and `parked` are the tables' qualified names.
    pub(super) fn new(followers: &str, parked: &str) -> Self {
        Self {
            create_tables: format!(
                "CREATE TABLE IF NOT EXISTS {followers} (
                     application_name TEXT NOT NULL PRIMARY KEY,
                     kind TEXT NOT NULL,
                     version BIGINT NOT NULL
                 );
                 CREATE TABLE IF NOT EXISTS {parked} (
                     application_name TEXT NOT NULL,
                     upstream_name TEXT NOT NULL,
                     notification_id BIGINT NOT NULL,
                     originator_id UUID NOT NULL,
                     topic TEXT NOT NULL,
                     reason TEXT NOT NULL,
                     PRIMARY KEY (application_name, upstream_name, notification_id)
                 );"
            ),
            register: format!(
                "INSERT INTO {followers} ({FOLLOWER_COLUMNS}) VALUES ($1, $2, $3) \
                 ON CONFLICT (application_name) DO NOTHING"
            ),
            select: format!("SELECT kind, version FROM {followers} WHERE application_name = $1"),
            update: format!(
                "INSERT INTO {followers} ({FOLLOWER_COLUMNS}) VALUES ($1, $2, $3) \
                 ON CONFLICT (application_name) \
                 DO UPDATE SET kind = EXCLUDED.kind, version = EXCLUDED.version"
            ),
            // No row is inserted when the notification is already parked.
            insert_parked: format!(
                "INSERT INTO {parked} ({PARKED_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT DO NOTHING"
            ),
            release_parked: format!(
                "DELETE FROM {parked} \
                 WHERE application_name = $1 AND upstream_name = $2 AND notification_id = ANY($3) \
                 RETURNING notification_id"
            ),
            delete_parked_of_follower: format!("DELETE FROM {parked} WHERE application_name = $1"),
            // Byte order (the "C" collation), as Rust orders strings and
            // every backend returns them, whatever the database's
            // collation.
            select_parked: format!(
                "SELECT upstream_name, notification_id, originator_id, topic, reason \
                 FROM {parked} WHERE application_name = $1 \
                 ORDER BY upstream_name COLLATE \"C\", notification_id"
            ),
        }
    }
}

/// The statements that write parked changes, prepared on a connection
/// before its transaction starts.
pub(super) struct ParkedStatements {
    insert: Statement,
    release: Statement,
}

impl ParkedStatements {
    pub(super) fn prepare(connection: &mut Connection, sql: &Sql) -> Result<Self, postgres::Error> {
        Ok(Self {
            insert: connection.statement(sql, Query::InsertParked)?,
            release: connection.statement(sql, Query::ReleaseParked)?,
        })
    }

    /// Writes `changes`, in order, in the open transaction `tx`: a park
    /// inserts its row (one already there is refused), a release deletes
    /// the named rows (one missing, or named twice, is
    /// [`Error::NotParked`]). On an error the caller rolls back.
    pub(super) fn write(
        &self,
        tx: &mut Transaction<'_>,
        changes: &[SignedChange<'_>],
    ) -> Result<(), Failure> {
        for change in changes {
            match change {
                SignedChange::Park {
                    parked,
                    notification_id,
                } => {
                    let inserted = tx.execute(
                        &self.insert,
                        &[
                            &parked.follower,
                            &parked.upstream,
                            notification_id,
                            &parked.originator_id,
                            &parked.topic,
                            &parked.reason,
                        ],
                    )?;
                    if inserted == 0 {
                        return Err(Failure::Other(already_parked(parked)));
                    }
                }
                SignedChange::Release {
                    follower,
                    upstream,
                    notification_ids,
                    signed,
                } => {
                    // One round trip for the whole list; the first id in
                    // the list's order that was not deleted is named.
                    let mut deleted = tx
                        .query(&self.release, &[follower, upstream, signed])?
                        .iter()
                        .map(|row| row.try_get::<_, i64>(0))
                        .collect::<Result<HashSet<i64>, _>>()?;
                    for (&id, signed) in notification_ids.iter().zip(signed) {
                        if !deleted.remove(signed) {
                            return Err(Failure::Other(not_parked(follower, upstream, id)));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl PostgresRecorder {
    /// Inserts `registration` unless its follower has one, then reads back
    /// the one stored: two statements, the second of which sees the row of
    /// any writer that won the race (a conflicting insert waits for it).
    pub(super) fn register(&self, registration: &Registration) -> Result<Registration> {
        let follower = registration.follower.as_str();
        let version = i64::from(registration.version);
        let row = self.run(Call::Write, |connection| {
            let insert = connection.statement(&self.sql, Query::RegisterFollower)?;
            let select = connection.statement(&self.sql, Query::SelectFollower)?;
            connection
                .client
                .execute(&insert, &[&follower, &registration.kind, &version])?;
            Ok(connection.client.query_opt(&select, &[&follower])?)
        })?;
        match row {
            Some(row) => read_registration(&row, follower),
            None => Err(Error::Database(
                format!("the registration of follower `{follower}` vanished").into(),
            )),
        }
    }

    /// Stores `registration` in place of its follower's, or as its first
    /// one, in one statement.
    pub(super) fn store_registration(&self, registration: &Registration) -> Result<()> {
        let version = i64::from(registration.version);
        self.run(Call::Write, |connection| {
            let upsert = connection.statement(&self.sql, Query::UpdateFollower)?;
            connection.client.execute(
                &upsert,
                &[&registration.follower, &registration.kind, &version],
            )?;
            Ok(())
        })
    }

    /// The notifications parked by `follower`, by upstream and id.
    pub(super) fn parked_by(&self, follower: &str) -> Result<Vec<Parked>> {
        self.run(Call::Read, |connection| {
            let select = connection.statement(&self.sql, Query::SelectParked)?;
            Ok(connection
                .client
                .query(&select, &[&follower])?
                .iter()
                .map(|row| read_parked(row, follower))
                .collect::<Result<_>>()?)
        })
    }
}
