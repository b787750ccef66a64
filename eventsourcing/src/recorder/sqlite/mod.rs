//! The SQLite recorder: see [`SqliteRecorder`].
//!
//! One job per file: `options` (how to open it), `access` (taking the
//! writer or a reader, joining a transaction held open), `statements` (the SQL),
//! `rows` (decoding), `readers` (the reader connections of a file
//! database), `setup` (creating the tables, migrating older ones),
//! `tracking` (the tracking table), `followers` (the `followers` and
//! `parked` tables), `transact` (transactions that run a follower's own
//! statements with a batch).

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use rusqlite::types::ValueRef;
use uuid::Uuid;

use self::options::validate_prefix;
use self::rows::{KnownId, read_event, read_notification, read_notification_row};
use self::statements::Statements;
use super::{
    Batch, DataKeyRow, EventQuery, LoadRows, Notification, Parked, Position, Recorder,
    Registration, Rewrap, SignedChange, SignedUpdate, TrackingKey, TrackingUpdate, clamp, corrupt,
    signed_changes, signed_partition, signed_update, signed_version,
};
use crate::crash;
use crate::error::{Error, Result};
use crate::mapper::{StoredEvent, StoredRow};

mod access;
mod checkpoint;
mod followers;
mod keys;
mod options;
mod readers;
mod rows;
mod scope;
#[cfg(test)]
mod scope_tests;
mod setup;
mod shared;
mod statements;
#[cfg(test)]
mod tests;
mod tracking;
mod transact;

pub use self::options::{SqliteOptions, SqlitePath};
pub(crate) use self::scope::{in_one_transaction, in_scope, on_failure};
pub(crate) use self::shared::reading_on_writer;

/// Room for every fixed statement of a few applications sharing one
/// connection (each with its table prefix), plus topic-filter variants.
const STATEMENT_CACHE_CAPACITY: usize = 128;

/// A recorder backed by an embedded SQLite database.
///
/// Tables are created if missing, with FORMAT.md's column types. Writes go
/// through one connection behind a mutex, each batch in a `BEGIN IMMEDIATE`
/// transaction (its events, then its parked changes, then its tracking
/// update's compare-and-set), so notification ids are assigned and
/// committed in the same order and a reader never sees a gap that fills in
/// later. For a file
/// database, reads use a small pool of separate connections, which in WAL
/// mode neither wait for nor block the writer; an in-memory database uses
/// its one connection for everything.
///
/// Several processes may open the same file: SQLite's locks serialise their
/// writes, and [`SqliteOptions::busy_timeout`] bounds the wait.
///
/// # Followers' tables
///
/// Besides FORMAT.md's tables, two that only followers use (outside the
/// stored format: a reader of the events may ignore them), with the same
/// table prefix:
///
/// - `{prefix}followers (application_name TEXT NOT NULL PRIMARY KEY, kind
///   TEXT NOT NULL, version INTEGER NOT NULL)`: who holds each follower's
///   name ([`Registration`]);
/// - `{prefix}parked (application_name TEXT NOT NULL, upstream_name TEXT
///   NOT NULL, notification_id INTEGER NOT NULL, originator_id TEXT NOT NULL,
///   topic TEXT NOT NULL, reason TEXT NOT NULL, PRIMARY KEY
///   (application_name, upstream_name, notification_id))`: the
///   notifications each follower set aside ([`Parked`]; `originator_id` as
///   36 lowercase hyphenated characters, like `stored_events`).
#[derive(Debug)]
pub struct SqliteRecorder {
    connections: Store,
    sql: Statements,
}

/// Where a recorder's connections are: its own database in memory, or a
/// file's connections, shared by every recorder of the file in this
/// process (`shared.rs`).
#[derive(Debug)]
enum Store {
    Memory(Mutex<Connection>),
    File(Arc<shared::Connections>),
}

/// A batch whose values were checked against the columns, before anything
/// is written.
struct Checked<'a> {
    events: &'a [StoredEvent],
    tracking: Option<(&'a TrackingUpdate, SignedUpdate)>,
    parked: Vec<SignedChange<'a>>,
    data_keys: &'a [DataKeyRow],
    forgotten: &'a [Uuid],
}

impl<'a> Checked<'a> {
    fn new(batch: &Batch<'a>) -> Result<Self> {
        Ok(Self {
            events: batch.events,
            tracking: batch
                .tracking
                .map(|update| Ok::<_, Error>((update, signed_update(update)?)))
                .transpose()?,
            parked: signed_changes(batch.parked)?,
            data_keys: batch.data_keys,
            forgotten: batch.forgotten,
        })
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

impl SqliteRecorder {
    /// Opens (creating if needed) the database and its tables; a
    /// `tracking` table of FORMAT.md version 1 (one row per processed
    /// notification) is migrated to version 2, one row per follower and
    /// upstream at the greatest notification recorded.
    ///
    /// A file database is switched to WAL mode with the chosen
    /// `synchronous` level. Fails with [`Error::Config`] for a table prefix
    /// with characters other than ASCII letters, digits and `_`, and with
    /// [`Error::Database`] when SQLite cannot open or set up the database.
    pub fn open(options: SqliteOptions) -> Result<Self> {
        validate_prefix(&options.table_prefix)?;
        let sql = Statements::new(&options.table_prefix);
        let connections = match options.path {
            SqlitePath::Memory => {
                let conn = Connection::open_in_memory().map_err(db)?;
                conn.pragma_update(None, "secure_delete", true)
                    .map_err(db)?;
                conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
                setup::stable_plans(&conn)?;
                Store::Memory(Mutex::new(conn))
            }
            SqlitePath::File(path) => Store::File(shared::open(
                &path,
                options.synchronous,
                options.busy_timeout,
                options.wal_autocheckpoint,
            )?),
        };
        let recorder = Self { connections, sql };
        setup::create_tables(&*recorder.writer()?, &recorder.sql)?;
        Ok(recorder)
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

    /// Writes a checked batch inside the writer's open transaction: its
    /// events, then its parked changes, then its tracking update's
    /// compare-and-set; returns the events' notification ids. On an error
    /// the caller rolls everything back.
    fn write_batch(&self, conn: &Connection, batch: &Checked<'_>) -> Result<Vec<u64>> {
        let ids = self.insert_rows(conn, batch.events)?;
        self.write_keys(conn, batch.data_keys, batch.forgotten)?;
        self.write_parked(conn, &batch.parked)?;
        if let Some((update, signed)) = batch.tracking {
            self.track(conn, update, signed)?;
        }
        Ok(ids)
    }
}

impl SqliteRecorder {
    /// The greatest notification id, read on `conn`.
    fn max_on(&self, conn: &Connection) -> Result<u64> {
        let max: Option<i64> = conn
            .prepare_cached(&self.sql.max_notification_id)
            .and_then(|mut select| select.query_row([], |row| row.get(0)))
            .map_err(db)?;
        u64::try_from(max.unwrap_or(0))
            .map_err(|_| corrupt(Uuid::nil(), 0, "notification_id is negative"))
    }

    /// At most `limit` rows from notification `start` of the given topics,
    /// read on `conn`.
    fn notifications_on(
        &self,
        conn: &Connection,
        start: u64,
        limit: usize,
        topics: &[&str],
    ) -> Result<Vec<Notification>> {
        let mut notifications = Vec::with_capacity(limit.min(1024));
        self.notification_rows_on(conn, start, limit, topics, &mut |row| {
            notifications.push(read_notification(row)?);
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(notifications)
    }

    /// The rows of [`Recorder::select_notifications`], each handed to
    /// `each` as SQLite has it until `each` breaks.
    fn notification_rows_on(
        &self,
        conn: &Connection,
        start: u64,
        limit: usize,
        topics: &[&str],
        each: &mut dyn FnMut(&rusqlite::Row<'_>) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        let Ok(start) = i64::try_from(start) else {
            return Ok(());
        };
        if limit == 0 {
            return Ok(());
        }
        let filtered;
        let sql = if topics.is_empty() {
            &self.sql.select_notifications
        } else {
            filtered = self.sql.select_notifications_with_topics(topics.len());
            &filtered
        };
        let mut select = conn.prepare_cached(sql).map_err(db)?;
        select.raw_bind_parameter(1, start).map_err(db)?;
        select
            .raw_bind_parameter(2, i64::try_from(limit).unwrap_or(-1))
            .map_err(db)?;
        for (i, topic) in topics.iter().enumerate() {
            select.raw_bind_parameter(i + 3, *topic).map_err(db)?;
        }
        let mut rows = select.raw_query();
        while let Some(row) = rows.next().map_err(db)? {
            if each(row)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// Whether the database is a file (other processes can open it).
    pub(crate) fn is_file(&self) -> bool {
        matches!(self.connections, Store::File(_))
    }
}

impl Recorder for SqliteRecorder {
    fn insert(&self, batch: &Batch<'_>) -> Result<Vec<u64>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let checked = Checked::new(batch)?;
        let ids = self.write(|conn| {
            let ids = self.write_batch(conn, &checked)?;
            crash::point("after_insert");
            // `write` commits as soon as this returns: nothing runs
            // between the two points.
            crash::point("before_commit");
            Ok(ids)
        })?;
        if !batch.forgotten.is_empty() {
            self.scrub_log()?;
        }
        Ok(ids)
    }

    fn select_data_key(&self, id: Uuid) -> Result<Option<DataKeyRow>> {
        self.data_key(id)
    }

    fn select_data_keys(
        &self,
        except: &str,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<DataKeyRow>> {
        self.data_keys_except(except, after, limit)
    }

    fn rewrap_data_keys(&self, rewraps: &[Rewrap]) -> Result<usize> {
        self.rewrap(rewraps)
    }

    fn select_events(
        &self,
        query: &EventQuery,
        each: &mut dyn FnMut(StoredRow<'_>) -> Result<ControlFlow<()>>,
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
                if each(read_event(row, 0, Some(known))?)?.is_break() {
                    break;
                }
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
        self.read(|conn| self.notifications_on(conn, start, limit, topics))
    }

    fn select_notification_rows(
        &self,
        start: u64,
        limit: usize,
        topics: &[&str],
        each: &mut dyn FnMut(u64, StoredRow<'_>) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        self.read(|conn| {
            self.notification_rows_on(conn, start, limit, topics, &mut |row| {
                let (id, event) = read_notification_row(row)?;
                each(id, event)
            })
        })
    }

    fn select_page(
        &self,
        after: u64,
        limit: usize,
        topics: &[&str],
    ) -> Result<(u64, Vec<Notification>)> {
        // One read transaction: the head and the rows of one snapshot.
        self.read(|conn| {
            let run = |sql: &str| {
                conn.prepare_cached(sql)
                    .and_then(|mut statement| statement.execute([]))
                    .map_err(db)
            };
            // Inside a transaction already (one held open), it is that one.
            let own = conn.is_autocommit();
            if own {
                run("BEGIN")?;
            }
            let result = self.max_on(conn).and_then(|head| {
                if head <= after {
                    return Ok((head, Vec::new()));
                }
                let rows = self.notifications_on(conn, after + 1, limit, topics)?;
                Ok((head, rows))
            });
            if own {
                run("COMMIT")?;
            }
            result
        })
    }

    fn max_notification_id(&self) -> Result<u64> {
        self.read(|conn| self.max_on(conn))
    }

    fn select_notification_of(
        &self,
        originator_id: Uuid,
        originator_version: u64,
    ) -> Result<Option<Notification>> {
        let Ok(version) = i64::try_from(originator_version) else {
            return Ok(None);
        };
        let mut buffer = Uuid::encode_buffer();
        let id = originator_id.hyphenated().encode_lower(&mut buffer);
        self.read(|conn| {
            let mut select = conn
                .prepare_cached(&self.sql.select_notification_of)
                .map_err(db)?;
            let mut rows = select.query((&*id, version)).map_err(db)?;
            match rows.next().map_err(db)? {
                Some(row) => Ok(Some(read_notification(row)?)),
                None => Ok(None),
            }
        })
    }

    fn insert_snapshot(&self, snapshot: &StoredEvent) -> Result<bool> {
        // One statement: in the transaction held open, if any.
        let (conn, _) = self.writer_joining()?;
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
                Some(row) => read_event(row, 0, None).map(|lent| Some(lent.to_owned())),
                None => Ok(None),
            }
        })
    }

    fn select_snapshot_and_events(
        &self,
        originator_id: Uuid,
        to_version: Option<u64>,
        snapshot: &mut dyn FnMut(StoredRow<'_>) -> Result<ControlFlow<()>>,
        each: &mut dyn FnMut(StoredRow<'_>) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        let mut buffer = Uuid::encode_buffer();
        let id = &*originator_id.hyphenated().encode_lower(&mut buffer);
        let params = (id, to_version.map_or(i64::MAX, clamp));
        let known = KnownId {
            id: originator_id,
            text: id.as_bytes(),
        };
        self.read(|conn| {
            let mut select = conn
                .prepare_cached(&self.sql.select_snapshot_and_events)
                .map_err(db)?;
            let mut rows = select.query(params).map_err(db)?;
            let mut load = LoadRows::new(snapshot, each);
            while let Some(row) = rows.next().map_err(db)? {
                let is_event = matches!(row.get_ref(0).map_err(db)?, ValueRef::Integer(1));
                if load
                    .hand(is_event, read_event(row, 1, Some(known))?)?
                    .is_break()
                {
                    break;
                }
            }
            Ok(())
        })
    }

    fn select_positions(&self) -> Result<Option<Vec<(TrackingKey, Position)>>> {
        self.read(|conn| self.positions(conn)).map(Some)
    }

    fn select_tracking(&self, key: &TrackingKey) -> Result<Option<Position>> {
        let partition = signed_partition(key)?;
        self.read(|conn| self.position(conn, key, partition))
    }

    fn raise_epoch(&self, key: &TrackingKey) -> Result<Position> {
        let partition = signed_partition(key)?;
        self.write(|conn| self.take_over(conn, key, partition))
    }

    fn register_follower(&self, registration: &Registration) -> Result<Registration> {
        self.register(registration)
    }

    fn update_follower(&self, registration: &Registration) -> Result<()> {
        self.store_registration(&*self.writer()?, registration)
    }

    fn select_parked(&self, follower: &str) -> Result<Vec<Parked>> {
        self.parked_by(follower)
    }
}
