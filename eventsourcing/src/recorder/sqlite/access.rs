//! How the recorder takes its connections: the writer (with no
//! transaction left open, or joining the one this thread holds open in
//! `scope.rs`), writes in a transaction or a savepoint, and reads on a
//! reader, the writer, or the transaction held open.

use rusqlite::Connection;

use super::statements::{BEGIN_IMMEDIATE, COMMIT};
use super::{SqliteRecorder, Store, db, scope, shared};
use crate::error::{Error, Result};

/// Runs `write` in a savepoint of the transaction open on `conn`: what it
/// wrote stays in the transaction when it succeeds, and is undone when it
/// fails.
pub(super) fn in_savepoint<T>(
    conn: &Connection,
    write: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    let run = |sql: &str| {
        conn.prepare_cached(sql)
            .and_then(|mut statement| statement.execute([]))
            .map(drop)
            .map_err(db)
    };
    run("SAVEPOINT es_write")?;
    match write(conn) {
        Ok(value) => {
            run("RELEASE es_write")?;
            Ok(value)
        }
        Err(error) => {
            // Should undoing fail, the error is the write's all the same,
            // and the scope's end rolls everything back when its commit
            // fails.
            let _ = run("ROLLBACK TO es_write").and_then(|()| run("RELEASE es_write"));
            Err(error)
        }
    }
}

impl SqliteRecorder {
    /// The writer connection, with no transaction left open: one that
    /// this thread held open ([`in_one_transaction`]) is committed first.
    pub(super) fn writer(&self) -> Result<shared::WriterGuard<'_>> {
        let conn = match &self.connections {
            Store::Memory(conn) => shared::lock_writer(conn, None)?,
            Store::File(shared) => {
                let (conn, held) = scope::writer(shared)?;
                if held {
                    scope::let_go(shared, &conn)?;
                }
                conn
            }
        };
        // A panic while the lock was held (only possible in a caller's
        // callback, outside any transaction) leaves the connection usable.
        if !conn.is_autocommit() {
            conn.execute_batch("ROLLBACK").map_err(db)?;
        }
        Ok(conn)
    }

    /// The writer connection and whether it is in the transaction this
    /// thread holds open: inside [`in_one_transaction`], a file's writer
    /// begins one if it has none; otherwise no transaction is left open.
    pub(super) fn writer_joining(&self) -> Result<(shared::WriterGuard<'_>, bool)> {
        let Store::File(shared) = &self.connections else {
            return Ok((self.writer()?, false));
        };
        let (conn, held) = scope::writer(shared)?;
        if held {
            return Ok((conn, true));
        }
        if !conn.is_autocommit() {
            conn.execute_batch("ROLLBACK").map_err(db)?;
        }
        let held = scope::hold(shared, &conn)?;
        Ok((conn, held))
    }

    /// Runs `write` on the writer connection in a `BEGIN IMMEDIATE`
    /// transaction, committed when `write` succeeds and rolled back, so
    /// that nothing of it stays, when anything fails. Inside
    /// [`in_one_transaction`], in a savepoint of the transaction held open
    /// instead, released or rolled back the same way.
    pub(super) fn write<T>(&self, write: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let (conn, held) = self.writer_joining()?;
        if held {
            return in_savepoint(&conn, write);
        }
        // `BEGIN IMMEDIATE` and `COMMIT` are prepared once and cached like
        // the insert: parsing them anew costs more than a one-row insert.
        conn.prepare_cached(BEGIN_IMMEDIATE)
            .and_then(|mut begin| begin.execute([]))
            .map_err(db)?;
        let result = write(&conn).and_then(|value| {
            conn.prepare_cached(COMMIT)
                .and_then(|mut commit| commit.execute([]))
                .map_err(db)?;
            Ok(value)
        });
        if result.is_err() && !conn.is_autocommit() {
            // Should the rollback itself fail, `writer()` rolls back before
            // the connection's next use.
            let _ = conn.execute_batch("ROLLBACK");
        }
        result
    }

    /// Runs `read` with a connection to the database, outside any
    /// transaction of the recorder's: for querying a projection's tables
    /// (a database in memory has no other connection). A file database
    /// lends one of its reader connections; one in memory, its only one,
    /// so `read` must not write. `read`'s error comes back as
    /// [`Error::Database`].
    ///
    /// ```
    /// use eventsourcing::recorder::{SqliteOptions, SqliteRecorder};
    ///
    /// let recorder = SqliteRecorder::open(SqliteOptions::memory())?;
    /// let tables: i64 = recorder.read_with(|conn| {
    ///     Ok(conn.query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))?)
    /// })?;
    /// assert!(tables > 0);
    /// # Ok::<(), eventsourcing::Error>(())
    /// ```
    pub fn read_with<T>(
        &self,
        read: impl FnOnce(&Connection) -> std::result::Result<T, crate::follower::BoxError>,
    ) -> Result<T> {
        self.read(|conn| read(conn).map_err(Error::Database))
    }

    /// Runs `read` on a reader connection (the writer for a database in
    /// memory).
    pub(super) fn read<T>(&self, read: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        match &self.connections {
            Store::Memory(_) => read(&*self.writer()?),
            // Inside the transaction this thread holds open: it sees what
            // the scope wrote.
            Store::File(_) if scope::in_scope() => read(&self.writer_joining()?.0),
            Store::File(shared) => {
                // The writer's cache is warm with what it wrote; a reader's
                // starts afresh after every commit. On a thread that asked
                // for it (the single-thread runner), reads go to the writer
                // when it is free.
                if shared::writer_reads()
                    && let Ok(conn) = shared.writer.try_lock()
                    && conn.is_autocommit()
                {
                    return read(&conn);
                }
                let pool = &shared.readers;
                let conn = pool.checkout()?;
                let result = read(&conn);
                pool.give_back(conn);
                result
            }
        }
    }
}
