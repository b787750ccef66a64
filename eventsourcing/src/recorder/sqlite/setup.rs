//! Setting up a SQLite database: WAL mode for a file, then the tables, and
//! the migration of a version-1 tracking table, in one transaction.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode};

use super::db;
use super::statements::{BEGIN_IMMEDIATE, COMMIT, Statements};
use crate::error::{Error, Result};
use crate::recorder::is_version_1;

/// Keeps each statement's query plan once it is prepared. The bundled
/// SQLite is built with STAT4, under which a statement whose parameter is
/// compared with an indexed column is prepared again every time a new
/// value is bound (the plan might depend on it): most of the instructions
/// of a follower's reads went there. Our statements' best plans do not
/// depend on the values.
pub(super) fn stable_plans(conn: &Connection) -> Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map(drop)
    .map_err(db)
}

/// Switches the file database of `conn` (at `path`) to WAL mode.
///
/// Changing the journal mode takes an exclusive lock, and when another
/// connection is opening the same new file at that moment SQLite answers
/// `SQLITE_BUSY` at once, without waiting in its busy handler (to avoid a
/// deadlock between two lock upgrades): so the switch is tried again, with
/// short pauses, for at most `busy_timeout`, as any other lock would be
/// waited for.
pub(super) fn switch_to_wal(conn: &Connection, path: &Path, busy_timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + busy_timeout;
    let mut pause = Duration::from_millis(1);
    let mode: String = loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)) {
            Ok(mode) => break mode,
            Err(rusqlite::Error::SqliteFailure(failure, _))
                if failure.code == ErrorCode::DatabaseBusy && Instant::now() < deadline =>
            {
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(error) => return Err(db(error)),
        }
    };
    if mode.eq_ignore_ascii_case("wal") {
        return Ok(());
    }
    Err(Error::Database(
        format!(
            "cannot switch {} to WAL mode (journal mode is {mode})",
            path.display()
        )
        .into(),
    ))
}

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
    conn.execute_batch(&sql.create_tables).map_err(db)?;
    conn.execute_batch(&sql.keys.create_table).map_err(db)
}
