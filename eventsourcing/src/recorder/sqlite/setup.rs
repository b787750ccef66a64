//! Setting up a SQLite database: the tables, and the migration of a
//! version-1 tracking table, in one transaction.

use rusqlite::Connection;

use super::db;
use super::statements::{BEGIN_IMMEDIATE, COMMIT, Statements};
use crate::error::Result;
use crate::recorder::is_version_1;

/// Creates what is missing, after migrating a version-1 `tracking` table,
/// in one `BEGIN IMMEDIATE` transaction: another process opening the same
/// file waits, then finds everything done.
pub(super) fn create_tables(conn: &Connection, sql: &Statements) -> Result<()> {
    conn.execute_batch(BEGIN_IMMEDIATE).map_err(db)?;
    let result =
        migrate_and_create(conn, sql).and_then(|()| conn.execute_batch(COMMIT).map_err(db));
    if result.is_err() && !conn.is_autocommit() {
        // Nothing half done may stay; should the rollback fail, the
        // connection is dropped with the failed open.
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

fn migrate_and_create(conn: &Connection, sql: &Statements) -> Result<()> {
    let columns = conn
        .prepare(&sql.tracking_layout)
        .and_then(|mut select| {
            select
                .query_map([], |row| row.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(db)?;
    if is_version_1(&columns) {
        conn.execute_batch(&sql.migrate_tracking).map_err(db)?;
    }
    conn.execute_batch(&sql.create_tables).map_err(db)
}
