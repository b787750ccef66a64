//! The SQLite recorder.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, Row};
use uuid::Uuid;

use super::{EventQuery, Notification, Recorder, clamp, corrupt, signed_version};
use crate::config::Synchronous;
use crate::error::{Error, Result};
use crate::mapper::StoredEvent;

/// Where a SQLite database lives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SqlitePath {
    /// A private database in memory, gone when the recorder is dropped.
    #[default]
    Memory,
    /// A database file, created if missing.
    File(PathBuf),
}

/// How to open a [`SqliteRecorder`].
///
/// ```
/// use eventsourcing::recorder::{SqliteOptions, Synchronous};
///
/// let options = SqliteOptions::file("app.db")
///     .table_prefix("bank_")
///     .synchronous(Synchronous::Full);
/// assert_eq!(options.table_prefix, "bank_");
/// ```
///
/// # Durability
///
/// File databases are opened in write-ahead-log mode (`journal_mode=WAL`).
///
/// - With [`Synchronous::Normal`] (the default), a save that returned `Ok`
///   survives a crash of the process, but the last transactions before a
///   power loss or an operating system crash may be lost (the database
///   itself stays consistent: it rolls back to an earlier commit).
/// - With [`Synchronous::Full`] or [`Synchronous::Extra`], a save that
///   returned `Ok` survives power loss too, at the cost of a sync of the WAL
///   file on every commit.
/// - With [`Synchronous::Off`], neither holds after an operating system
///   crash or power loss.
///
/// In-memory databases keep nothing beyond the recorder's lifetime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Where the database lives; in memory by default.
    pub path: SqlitePath,
    /// Prepended to every table name (`{prefix}stored_events`, ...), so that
    /// several applications can share one database. Only ASCII letters,
    /// digits and `_`; empty by default.
    pub table_prefix: String,
    /// How hard each commit works to reach the disk; `Normal` by default.
    pub synchronous: Synchronous,
    /// How long a connection waits for another process's lock before it
    /// fails with a database error; 5 seconds by default.
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            path: SqlitePath::Memory,
            table_prefix: String::new(),
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

impl SqliteOptions {
    /// Default options for a private in-memory database.
    #[must_use]
    pub fn memory() -> Self {
        Self::default()
    }

    /// Default options for the database file at `path`.
    #[must_use]
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::default().path(SqlitePath::File(path.into()))
    }

    /// Sets where the database lives.
    #[must_use]
    pub fn path(mut self, path: SqlitePath) -> Self {
        self.path = path;
        self
    }

    /// Sets the prefix of every table name.
    #[must_use]
    pub fn table_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.table_prefix = prefix.into();
        self
    }

    /// Sets the `synchronous` level.
    #[must_use]
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// Sets how long to wait for another connection's lock.
    #[must_use]
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }
}

/// At most this many idle reader connections are kept for reuse.
const MAX_IDLE_READERS: usize = 8;

/// Room for every fixed statement plus a few topic-filter variants.
const STATEMENT_CACHE_CAPACITY: usize = 32;

/// A recorder backed by an embedded SQLite database.
///
/// Tables are created if missing, with FORMAT.md's column types. Writes go
/// through one connection behind a mutex, each batch in a `BEGIN IMMEDIATE`
/// transaction, so notification ids are assigned and committed in the same
/// order and a reader never sees a gap that fills in later. For a file
/// database, reads use a small pool of separate connections, which in WAL
/// mode neither wait for nor block the writer; an in-memory database uses
/// its one connection for everything.
///
/// Several processes may open the same file: SQLite's locks serialise their
/// writes, and [`SqliteOptions::busy_timeout`] bounds the wait.
#[derive(Debug)]
pub struct SqliteRecorder {
    writer: Mutex<Connection>,
    readers: Option<ReaderPool>,
    sql: Statements,
}

/// Reader connections of a file database, opened on demand.
#[derive(Debug)]
struct ReaderPool {
    path: PathBuf,
    busy_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
}

impl ReaderPool {
    fn checkout(&self) -> Result<Connection> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        if let Some(conn) = idle {
            return Ok(conn);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags).map_err(db)?;
        conn.busy_timeout(self.busy_timeout).map_err(db)?;
        conn.pragma_update(None, "query_only", true).map_err(db)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
    }
}

/// The SQL of every fixed statement, built once for the table prefix.
#[derive(Debug)]
struct Statements {
    create_tables: String,
    insert_event: String,
    select_events_ascending: String,
    select_events_descending: String,
    select_notifications: String,
    stored_events: String,
    max_notification_id: String,
    insert_snapshot: String,
    select_snapshot: String,
}

const EVENT_COLUMNS: &str = "originator_id, originator_version, topic, state";

/// Starts a write transaction, taking the write lock at once.
const BEGIN_IMMEDIATE: &str = "BEGIN IMMEDIATE";
/// Ends a write transaction.
const COMMIT: &str = "COMMIT";

impl Statements {
    fn new(prefix: &str) -> Self {
        let events = format!("\"{prefix}stored_events\"");
        let snapshots = format!("\"{prefix}snapshots\"");
        let tracking = format!("\"{prefix}tracking\"");
        let select_events = |order: &str| {
            format!(
                "SELECT {EVENT_COLUMNS} FROM {events} \
                 WHERE originator_id = ?1 AND originator_version > ?2 AND originator_version <= ?3 \
                 ORDER BY originator_version {order} LIMIT ?4"
            )
        };
        Self {
            create_tables: format!(
                "BEGIN IMMEDIATE;
                 CREATE TABLE IF NOT EXISTS {events} (
                     notification_id INTEGER PRIMARY KEY AUTOINCREMENT,
                     originator_id TEXT NOT NULL,
                     originator_version INTEGER NOT NULL,
                     topic TEXT NOT NULL,
                     state BLOB NOT NULL,
                     UNIQUE (originator_id, originator_version)
                 );
                 CREATE TABLE IF NOT EXISTS {snapshots} (
                     originator_id TEXT NOT NULL,
                     originator_version INTEGER NOT NULL,
                     topic TEXT NOT NULL,
                     state BLOB NOT NULL,
                     PRIMARY KEY (originator_id, originator_version)
                 );
                 CREATE TABLE IF NOT EXISTS {tracking} (
                     application_name TEXT NOT NULL,
                     upstream_name TEXT NOT NULL,
                     notification_id INTEGER NOT NULL,
                     UNIQUE (application_name, upstream_name, notification_id)
                 );
                 COMMIT;"
            ),
            insert_event: format!("INSERT INTO {events} ({EVENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4)"),
            select_events_ascending: select_events("ASC"),
            select_events_descending: select_events("DESC"),
            select_notifications: format!(
                "SELECT notification_id, {EVENT_COLUMNS} FROM {events} \
                 WHERE notification_id >= ?1 ORDER BY notification_id LIMIT ?2"
            ),
            max_notification_id: format!("SELECT MAX(notification_id) FROM {events}"),
            insert_snapshot: format!(
                "INSERT INTO {snapshots} ({EVENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (originator_id, originator_version) DO NOTHING"
            ),
            select_snapshot: format!(
                "SELECT {EVENT_COLUMNS} FROM {snapshots} \
                 WHERE originator_id = ?1 AND originator_version <= ?2 \
                 ORDER BY originator_version DESC LIMIT 1"
            ),
            stored_events: events,
        }
    }

    /// `select_notifications` restricted to `count` topics, bound from `?3` on.
    fn select_notifications_with_topics(&self, count: usize) -> String {
        let mut sql = format!(
            "SELECT notification_id, {EVENT_COLUMNS} FROM {} \
             WHERE notification_id >= ?1 AND topic IN (",
            self.stored_events
        );
        for i in 0..count {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('?');
            sql.push_str(&(i + 3).to_string());
        }
        sql.push_str(") ORDER BY notification_id LIMIT ?2");
        sql
    }
}

/// Wraps a database error.
fn db(error: rusqlite::Error) -> Error {
    Error::Database(Box::new(error))
}

/// Whether `error` is a violation of a `UNIQUE` or `PRIMARY KEY` constraint.
fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

/// An originator id the rows being read are expected to have, with its
/// column text: a row whose text is the same needs no parsing.
#[derive(Clone, Copy)]
struct KnownId<'a> {
    id: Uuid,
    text: &'a [u8],
}

/// Reads `originator_id, originator_version, topic, state` from the row,
/// starting at column `first`.
fn read_event(row: &Row<'_>, first: usize, known: Option<KnownId<'_>>) -> Result<StoredEvent> {
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
            .map_err(|_| corrupt(originator_id, originator_version, "topic is not UTF-8"))?
            .to_owned(),
        _ => {
            return Err(corrupt(
                originator_id,
                originator_version,
                "topic is not text",
            ));
        }
    };
    let state = match row.get_ref(first + 3).map_err(db)? {
        ValueRef::Blob(state) => state.to_vec(),
        _ => {
            return Err(corrupt(
                originator_id,
                originator_version,
                "state is not a blob",
            ));
        }
    };
    Ok(StoredEvent {
        originator_id,
        originator_version,
        topic,
        state,
    })
}

/// Parses an `originator_id` column: 36 characters, lowercase, hyphenated.
fn read_originator_id(value: ValueRef<'_>, version: u64) -> Result<Uuid> {
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
fn read_notification(row: &Row<'_>) -> Result<Notification> {
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
    Ok(Notification {
        id,
        originator_id: event.originator_id,
        originator_version: event.originator_version,
        topic: event.topic,
        state: event.state,
    })
}

fn validate_prefix(prefix: &str) -> Result<()> {
    match prefix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        Some(c) => Err(Error::Config {
            variable: "table prefix",
            reason: format!("{c:?} is not allowed; use only ASCII letters, digits and `_`"),
        }),
        None => Ok(()),
    }
}

impl SqliteRecorder {
    /// Opens (creating if needed) the database and its tables.
    ///
    /// A file database is switched to WAL mode with the chosen
    /// `synchronous` level. Fails with [`Error::Config`] for a table prefix
    /// with characters other than ASCII letters, digits and `_`, and with
    /// [`Error::Database`] when SQLite cannot open or set up the database.
    pub fn open(options: SqliteOptions) -> Result<Self> {
        validate_prefix(&options.table_prefix)?;
        let sql = Statements::new(&options.table_prefix);
        let (writer, readers) = match options.path {
            SqlitePath::Memory => (Connection::open_in_memory().map_err(db)?, None),
            SqlitePath::File(path) => {
                let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn = Connection::open_with_flags(&path, flags).map_err(db)?;
                conn.busy_timeout(options.busy_timeout).map_err(db)?;
                let mode: String = conn
                    .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
                    .map_err(db)?;
                if !mode.eq_ignore_ascii_case("wal") {
                    return Err(Error::Database(
                        format!(
                            "cannot switch {} to WAL mode (journal mode is {mode})",
                            path.display()
                        )
                        .into(),
                    ));
                }
                conn.pragma_update(None, "synchronous", options.synchronous.pragma_value())
                    .map_err(db)?;
                let readers = ReaderPool {
                    path,
                    busy_timeout: options.busy_timeout,
                    idle: Mutex::new(Vec::new()),
                };
                (conn, Some(readers))
            }
        };
        writer.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        writer.execute_batch(&sql.create_tables).map_err(db)?;
        Ok(Self {
            writer: Mutex::new(writer),
            readers,
            sql,
        })
    }

    /// The writer connection, with no transaction left open.
    fn writer(&self) -> Result<MutexGuard<'_, Connection>> {
        // A panic while the lock was held (only possible in a caller's
        // callback, outside any transaction) leaves the connection usable.
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if !conn.is_autocommit() {
            conn.execute_batch("ROLLBACK").map_err(db)?;
        }
        Ok(conn)
    }

    /// Inserts `events` inside the writer's open transaction; returns their
    /// notification ids.
    fn insert_rows(&self, conn: &Connection, events: &[StoredEvent]) -> Result<Vec<u64>> {
        let mut insert = conn.prepare_cached(&self.sql.insert_event).map_err(db)?;
        let mut ids = Vec::with_capacity(events.len());
        for event in events {
            let mut buffer = Uuid::encode_buffer();
            let originator_id = event.originator_id.hyphenated().encode_lower(&mut buffer);
            let params = (
                &*originator_id,
                signed_version(event)?,
                event.topic.as_str(),
                event.state.as_slice(),
            );
            match insert.execute(params) {
                Ok(_) => {}
                Err(error) if is_unique_violation(&error) => {
                    return Err(Error::Concurrency {
                        id: event.originator_id,
                        version: event.originator_version,
                    });
                }
                Err(error) => return Err(db(error)),
            }
            let id = u64::try_from(conn.last_insert_rowid()).map_err(|_| {
                corrupt(
                    event.originator_id,
                    event.originator_version,
                    "SQLite assigned a negative notification_id",
                )
            })?;
            ids.push(id);
        }
        Ok(ids)
    }

    /// Runs `read` on a reader connection (the writer for a database in
    /// memory).
    fn read<T>(&self, read: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        match &self.readers {
            None => read(&*self.writer()?),
            Some(pool) => {
                let conn = pool.checkout()?;
                let result = read(&conn);
                pool.give_back(conn);
                result
            }
        }
    }
}

impl Recorder for SqliteRecorder {
    fn insert_events(&self, events: &[StoredEvent]) -> Result<Vec<u64>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.writer()?;
        // `BEGIN IMMEDIATE` and `COMMIT` are prepared once and cached like
        // the insert: parsing them anew costs more than a one-row insert.
        conn.prepare_cached(BEGIN_IMMEDIATE)
            .and_then(|mut begin| begin.execute([]))
            .map_err(db)?;
        let result = self.insert_rows(&conn, events).and_then(|ids| {
            conn.prepare_cached(COMMIT)
                .and_then(|mut commit| commit.execute([]))
                .map_err(db)?;
            Ok(ids)
        });
        if result.is_err() && !conn.is_autocommit() {
            // Nothing of the batch may stay. Should the rollback itself
            // fail, `writer()` rolls back before the connection's next use.
            let _ = conn.execute_batch("ROLLBACK");
        }
        result
    }

    fn select_events(
        &self,
        query: &EventQuery,
        each: &mut dyn FnMut(StoredEvent) -> Result<()>,
    ) -> Result<()> {
        let sql = if query.descending {
            &self.sql.select_events_descending
        } else {
            &self.sql.select_events_ascending
        };
        let mut buffer = Uuid::encode_buffer();
        let originator_id = &*query.originator_id.hyphenated().encode_lower(&mut buffer);
        let params = (
            originator_id,
            query.after_version.map_or(i64::MIN, clamp),
            query.to_version.map_or(i64::MAX, clamp),
            query
                .limit
                .map_or(-1, |limit| i64::try_from(limit).unwrap_or(-1)),
        );
        let known = KnownId {
            id: query.originator_id,
            text: originator_id.as_bytes(),
        };
        self.read(|conn| {
            let mut select = conn.prepare_cached(sql).map_err(db)?;
            let mut rows = select.query(params).map_err(db)?;
            while let Some(row) = rows.next().map_err(db)? {
                each(read_event(row, 0, Some(known))?)?;
            }
            Ok(())
        })
    }

    fn select_notifications(
        &self,
        start: u64,
        limit: usize,
        topics: &[&str],
    ) -> Result<Vec<Notification>> {
        let Ok(start) = i64::try_from(start) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let filtered;
        let sql = if topics.is_empty() {
            &self.sql.select_notifications
        } else {
            filtered = self.sql.select_notifications_with_topics(topics.len());
            &filtered
        };
        self.read(|conn| {
            let mut select = conn.prepare_cached(sql).map_err(db)?;
            select.raw_bind_parameter(1, start).map_err(db)?;
            select
                .raw_bind_parameter(2, i64::try_from(limit).unwrap_or(-1))
                .map_err(db)?;
            for (i, topic) in topics.iter().enumerate() {
                select.raw_bind_parameter(i + 3, *topic).map_err(db)?;
            }
            let mut rows = select.raw_query();
            let mut notifications = Vec::with_capacity(limit.min(1024));
            while let Some(row) = rows.next().map_err(db)? {
                notifications.push(read_notification(row)?);
            }
            Ok(notifications)
        })
    }

    fn max_notification_id(&self) -> Result<u64> {
        let max: Option<i64> = self.read(|conn| {
            conn.prepare_cached(&self.sql.max_notification_id)
                .and_then(|mut select| select.query_row([], |row| row.get(0)))
                .map_err(db)
        })?;
        u64::try_from(max.unwrap_or(0))
            .map_err(|_| corrupt(Uuid::nil(), 0, "notification_id is negative"))
    }

    fn insert_snapshot(&self, snapshot: &StoredEvent) -> Result<bool> {
        let conn = self.writer()?;
        let mut buffer = Uuid::encode_buffer();
        let originator_id = snapshot
            .originator_id
            .hyphenated()
            .encode_lower(&mut buffer);
        let params = (
            &*originator_id,
            signed_version(snapshot)?,
            snapshot.topic.as_str(),
            snapshot.state.as_slice(),
        );
        let inserted = conn
            .prepare_cached(&self.sql.insert_snapshot)
            .and_then(|mut insert| insert.execute(params))
            .map_err(db)?;
        Ok(inserted > 0)
    }

    fn select_snapshot(
        &self,
        originator_id: Uuid,
        to_version: Option<u64>,
    ) -> Result<Option<StoredEvent>> {
        let mut buffer = Uuid::encode_buffer();
        let id = &*originator_id.hyphenated().encode_lower(&mut buffer);
        let params = (id, to_version.map_or(i64::MAX, clamp));
        self.read(|conn| {
            let mut select = conn.prepare_cached(&self.sql.select_snapshot).map_err(db)?;
            let mut rows = select.query(params).map_err(db)?;
            match rows.next().map_err(db)? {
                Some(row) => read_event(row, 0, None).map(Some),
                None => Ok(None),
            }
        })
    }
}
