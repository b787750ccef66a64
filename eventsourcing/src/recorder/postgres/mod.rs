//! The PostgreSQL recorder: see [`PostgresRecorder`] for the tables, the
//! gap-free reading method and the behaviour under faults.
//!
//! One job per file: `options` (how to open it), `sql` (names, quoting, the
//! tables, the statements, the safe bound), `function` (the insert
//! function), `pool` (connections and leases), `errors` (what the server's
//! errors mean), `rows` (decoding), `setup` (creating the tables and
//! installing the function), `tracking` (reading and taking over tracking
//! rows), `insert` (writing a batch), `load` (a load's rows, a page at a
//! time), `followers` (the `followers` and
//! `parked` tables), `transact` (transactions that run a follower's own
//! statements), `listener` (waiting for notifications).

use std::fmt;
use std::ops::ControlFlow;
use std::str::FromStr;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use uuid::Uuid;

use self::errors::{Call, Failure, db, is_connection_lost, sent_nothing};
use self::options::validate_name;
use self::pool::{Connection, Lease, Pool};
use self::rows::{read_event, read_notification, read_notification_row};
use self::sql::{Query, Sql, quote_ident};
use super::{
    Batch, DataKeyRow, EventQuery, LoadRows, Notification, Parked, Position, Recorder,
    Registration, Rewrap, TrackingKey, clamp, corrupt, signed_version,
};
use crate::error::{Error, Result};
use crate::mapper::{StoredEvent, StoredRow};

mod errors;
mod followers;
mod function;
mod insert;
mod keys;
mod listener;
mod load;
mod notifications;
mod options;
mod pool;
mod rows;
mod setup;
mod sql;
#[cfg(test)]
mod tests;
mod tracking;
mod transact;

pub use self::listener::Listener;
pub use self::options::{PostgresOptions, Sequencing};

/// A recorder backed by a PostgreSQL database, shared by any number of
/// threads and processes.
///
/// # Tables
///
/// The tables of FORMAT.md, created if missing, in the configured schema
/// (the connection's current schema by default) and with the optional table
/// prefix: `stored_events` (`notification_id BIGINT` from the sequence
/// `{prefix}stored_events_notification_id_seq`, `originator_id UUID`,
/// `originator_version BIGINT`, `topic TEXT`, `state BYTEA`), `snapshots`
/// and `tracking`. `stored_events` has one column more than FORMAT.md
/// lists, `transaction_id XID8`: the id of the transaction that wrote the
/// row, with an index, used by readers as explained below. A reader that
/// follows FORMAT.md alone ignores it.
///
/// Two more tables are only for followers (outside the stored format: a
/// reader of the events may ignore them), with the same schema and prefix:
///
/// - `{prefix}followers (application_name TEXT NOT NULL PRIMARY KEY, kind
///   TEXT NOT NULL, version BIGINT NOT NULL)`: who holds each follower's
///   name ([`Registration`]);
/// - `{prefix}parked (application_name TEXT NOT NULL, upstream_name TEXT
///   NOT NULL, notification_id BIGINT NOT NULL, originator_id UUID NOT NULL,
///   topic TEXT NOT NULL, reason TEXT NOT NULL, PRIMARY KEY
///   (application_name, upstream_name, notification_id))`: the
///   notifications each follower set aside ([`Parked`]).
///
/// A batch is written by one call of a PL/pgSQL function that the recorder
/// installs beside the tables (`{prefix}stored_events_insert`): one round
/// trip and one `INSERT ... SELECT ... FROM unnest(...)` statement, whatever
/// the batch's size, with the tracking update's compare-and-set in the same
/// call. Rows must only be inserted through it (or by a writer that follows
/// the same protocol): the reading rule below depends on it. A batch with
/// parked changes is one explicit transaction: that call first (inserting
/// the events must be the transaction's first write), then a statement per
/// change, then `COMMIT`; a batch without them stays one statement.
///
/// # Notifications
///
/// When the function inserts events it also notifies the tables' channel
/// (`pg_notify`), which PostgreSQL delivers to the sessions that listen
/// on it when, and only if, the transaction commits: a [`Listener`]
/// ([`PostgresRecorder::listener`]) wakes a follower in another process as
/// soon as there is something new to read. [`PostgresOptions::notify`]
/// turns this off for a recorder's writes (it costs concurrent writers
/// their shared flushes).
///
/// # Tracking updates
///
/// The function checks the tracking row with a plain read before it draws
/// any notification id, so that a worker that lost its row (a stale
/// position or epoch) fails with [`Error::TrackingConflict`] without leaving
/// a hole in the ids. The authoritative compare-and-set comes after the
/// events are inserted, because inserting them must be the transaction's
/// first write; when another worker moved the row in between, the batch
/// fails there, and its ids become a hole. A batch with no events takes no
/// lock of the events and draws no id.
///
/// # The gap-free notification log
///
/// Notification ids come from a sequence and transactions commit in any
/// order, so a reader could see id 8 while id 7 is still being written.
/// Rather than make writers commit one at a time (the classic `LOCK TABLE
/// ... IN EXCLUSIVE MODE`, kept as [`Sequencing::TableLock`]), the default
/// [`Sequencing::Concurrent`] serialises only the moment a writer takes its
/// transaction id and its notification ids, so that notification-id order
/// and transaction-id order agree; a reader then takes its snapshot's list
/// of running transactions and stops below any id that one of them may
/// still fill ([`Recorder::select_notifications`] and
/// [`Recorder::max_notification_id`] never go past that safe bound).
///
/// A failed write leaves a permanent hole in the ids, which readers pass as
/// soon as its transaction has finished. The full argument (writers,
/// readers, why a reader cannot skip a row, the lemma it rests on, failed
/// writes and holes, and the assumptions) is in `docs/gap-free-log.md` in
/// the repository.
///
/// # Connections and faults
///
/// Connections come from a small pool of its own
/// ([`PostgresOptions::pool_size`]), each with its prepared statements. A
/// save is one statement in its own transaction (or one explicit
/// transaction), so a dropped connection or a server restart in the middle
/// of one leaves nothing partial: the save fails with [`Error::Database`],
/// and it either committed whole or not at all (as with any database, a
/// commit whose answer was lost cannot be told from one that did not
/// happen; load the aggregate to see, and a second save of the same
/// version is refused as a conflict). A connection that
/// failed is closed rather than reused, and all idle ones with it when it
/// had lost its server, so the next call opens fresh connections. A server
/// that went away between calls costs no failed save: a batch whose
/// connection the server had ended meanwhile (and said so) is written on a
/// fresh connection, since nothing of it was sent; a connection idle for
/// [`PostgresOptions::check_after_idle`] or longer is checked with a round
/// trip first, as is a reused connection before any other write; and a
/// read that fails for that reason runs once more on a fresh connection.
pub struct PostgresRecorder {
    pool: Pool,
    sql: Sql,
    schema: String,
    table_prefix: String,
    sequencing: Sequencing,
    notify: bool,
    check_after_idle: Duration,
    drop_schema_on_drop: bool,
}

impl fmt::Debug for PostgresRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresRecorder")
            .field("schema", &self.schema)
            .field("table_prefix", &self.table_prefix)
            .field("sequencing", &self.sequencing)
            .field("notify", &self.notify)
            .field("pool_size", &self.pool.size)
            .finish_non_exhaustive()
    }
}

// ------------------------------------------------------------ the recorder

impl PostgresRecorder {
    /// Connects, and creates the schema (when one is named), the tables,
    /// the sequence and the insert function if they are missing. A
    /// `tracking` table of FORMAT.md version 1 (one row per processed
    /// notification) is migrated to version 2, one row per follower and
    /// upstream at the greatest notification recorded, in the same
    /// transaction.
    ///
    /// Fails with [`Error::Config`] for a malformed URL, schema or table
    /// prefix, or a pool size of 0, and with [`Error::Database`] when the
    /// server cannot be reached or refuses the setup.
    pub fn open(options: PostgresOptions) -> Result<Self> {
        validate_name("table prefix", &options.table_prefix, 30)?;
        if let Some(schema) = &options.schema {
            validate_name("schema", schema, 63)?;
            if schema.is_empty() || schema.starts_with("pg_") {
                return Err(Error::Config {
                    variable: "schema",
                    reason: format!("`{schema}` is empty or reserved (`pg_` prefix)"),
                });
            }
        }
        if options.pool_size == 0 {
            return Err(Error::Config {
                variable: "pool size",
                reason: "a pool holds at least one connection".to_owned(),
            });
        }
        if !(options.url.starts_with("postgres://") || options.url.starts_with("postgresql://")) {
            return Err(Error::Config {
                variable: "DB_URI",
                reason: "a PostgreSQL URL starts with `postgres://` or `postgresql://`".to_owned(),
            });
        }
        let mut config =
            postgres::Config::from_str(&options.url).map_err(|error| Error::Config {
                variable: "DB_URI",
                reason: format!("not a valid PostgreSQL URL: {error}"),
            })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("eventsourcing");
        }
        let pool = Pool::new(config, options.pool_size, options.pool_timeout);

        let mut lease = pool.get()?;
        let connection = lease.connection()?;
        let schema = if let Some(schema) = &options.schema {
            schema.clone()
        } else {
            let current: Option<String> = connection
                .client
                .query_one("SELECT current_schema()", &[])
                .and_then(|row| row.try_get(0))
                .map_err(db)?;
            current.ok_or_else(|| Error::Config {
                variable: "schema",
                reason: "the connection's search_path names no existing schema; \
                         create one or set the schema option"
                    .to_owned(),
            })?
        };
        let sql = Sql::new(
            &schema,
            &options.table_prefix,
            options.schema.is_some(),
            options.notify,
        );
        setup::create_tables(&mut connection.client, &sql)?;
        drop(lease);

        Ok(Self {
            pool,
            sql,
            schema,
            table_prefix: options.table_prefix,
            sequencing: options.sequencing,
            notify: options.notify,
            check_after_idle: options.check_after_idle,
            drop_schema_on_drop: options.drop_schema_on_drop,
        })
    }

    /// The schema that holds the tables.
    #[must_use]
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The prefix of every table name.
    #[must_use]
    pub fn table_prefix(&self) -> &str {
        &self.table_prefix
    }

    /// How concurrent writers are ordered.
    #[must_use]
    pub fn sequencing(&self) -> Sequencing {
        self.sequencing
    }

    /// A pooled connection for `call`. For a write, a connection that
    /// served earlier calls is first checked with a round trip (a `Sync`
    /// message), so that a write is not sent down a connection whose server
    /// went away meanwhile: its failure could not be told from a failure of
    /// the write itself. A batch skips the check unless the connection sat
    /// idle for `check_after_idle`: a server that ended the connection in
    /// the meantime said so, and the batch then runs again (see `run`).
    fn lease(&self, call: Call) -> Result<Lease<'_>> {
        loop {
            let mut lease = self.pool.get()?;
            let check = match call {
                Call::Read => false,
                Call::Batch => lease.reused && lease.idle >= self.check_after_idle,
                Call::Write => lease.reused,
            };
            if !check {
                return Ok(lease);
            }
            if lease.connection()?.client.check_connection().is_ok() {
                return Ok(lease);
            }
            lease.discard();
            self.pool.purge_idle();
        }
    }

    /// Runs the read `which` and hands its rows to `each` as they arrive,
    /// until it breaks or fails. Once a row was handed over, a lost
    /// connection is not retried: `each` would see rows twice.
    fn stream(
        &self,
        which: Query,
        params: &[&(dyn ToSql + Sync)],
        each: &mut dyn FnMut(&postgres::Row) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        self.run(Call::Read, |connection| {
            let statement = connection.statement(&self.sql, which)?;
            let mut rows = connection
                .client
                .query_raw(&statement, params.iter().copied())?;
            let mut delivered = false;
            loop {
                match rows.next() {
                    Ok(Some(row)) => {
                        delivered = true;
                        if each(&row)?.is_break() {
                            // Dropping the iterator leaves the rest unread;
                            // the connection discards them.
                            return Ok(());
                        }
                    }
                    Ok(None) => return Ok(()),
                    Err(error) if delivered => return Err(Failure::Final(error)),
                    Err(error) => return Err(Failure::Database(error)),
                }
            }
        })
    }

    /// Runs `step` on a pooled connection. A database error closes the
    /// connection (and every idle one, if the server was lost); a read
    /// whose reused connection had lost its server runs once more on a
    /// fresh one, and so does a batch whose reused connection the server
    /// had ended before anything of the batch was sent. (A server that
    /// ends the session while the batch runs answers it with the same
    /// error, and the client may have closed the connection by the time it
    /// is looked at: the batch then runs again too. The error answered the
    /// batch, so its transaction did not commit; and were it to have, the
    /// versions and the tracking row it recorded would refuse the second
    /// run, which records nothing twice.)
    fn run<T>(
        &self,
        call: Call,
        mut step: impl FnMut(&mut Connection) -> Result<T, Failure>,
    ) -> Result<T> {
        let mut tries = if call == Call::Write { 1 } else { 2 };
        loop {
            tries -= 1;
            let mut lease = self.lease(call)?;
            let result = step(lease.connection()?);
            let (error, retryable) = match result {
                Ok(value) => return Ok(value),
                Err(Failure::Other(error)) => return Err(error),
                Err(Failure::Database(error)) => (error, true),
                Err(Failure::Final(error)) => (error, false),
            };
            let lost = is_connection_lost(&error);
            let unsent = lease
                .connection()
                .is_ok_and(|connection| sent_nothing(&error, &connection.client));
            let reused = lease.reused;
            lease.discard();
            if lost || unsent {
                self.pool.purge_idle();
            }
            let again = match call {
                Call::Read => lost,
                Call::Batch => unsent,
                Call::Write => false,
            };
            if !(again && reused && retryable && tries > 0) {
                return Err(db(error));
            }
        }
    }

    /// Finds which of the batch's rows is already recorded, when the
    /// server's message did not say.
    fn find_conflict(&self, ids: &[Uuid], versions: &[i64]) -> Result<Option<(Uuid, u64)>> {
        self.run(Call::Read, |connection| {
            let statement = connection.statement(&self.sql, Query::FindConflict)?;
            let row = connection
                .client
                .query_opt(&statement, &[&ids, &versions])?;
            let Some(row) = row else {
                return Ok(None);
            };
            let id: Uuid = row.try_get(0)?;
            let version: i64 = row.try_get(1)?;
            Ok(u64::try_from(version).ok().map(|version| (id, version)))
        })
    }
}

impl Drop for PostgresRecorder {
    fn drop(&mut self) {
        if !self.drop_schema_on_drop {
            return;
        }
        // Best effort: a schema that cannot be dropped now stays behind.
        let drop_schema = format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            quote_ident(&self.schema)
        );
        if let Ok(mut lease) = self.pool.get()
            && let Ok(connection) = lease.connection()
        {
            let _ = connection.client.batch_execute(&drop_schema);
        }
    }
}

impl Recorder for PostgresRecorder {
    fn insert(&self, batch: &Batch<'_>) -> Result<Vec<u64>> {
        self.insert_batch(batch)
    }

    fn select_events(
        &self,
        query: &EventQuery,
        each: &mut dyn FnMut(StoredRow<'_>) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        let which = if query.descending {
            Query::SelectEventsDescending
        } else {
            Query::SelectEventsAscending
        };
        let after = query.after_version.map_or(i64::MIN, clamp);
        let to = query.to_version.map_or(i64::MAX, clamp);
        let limit: Option<i64> = query
            .limit
            .map(|limit| i64::try_from(limit).unwrap_or(i64::MAX));
        let params: [&(dyn ToSql + Sync); 4] = [&query.originator_id, &after, &to, &limit];
        self.stream(which, &params, &mut |row| each(read_event(row, 0)?))
    }

    fn select_notifications(
        &self,
        start: u64,
        limit: usize,
        topics: &[&str],
    ) -> Result<Vec<Notification>> {
        self.notification_rows(start, limit, topics)?
            .iter()
            .map(read_notification)
            .collect()
    }

    fn select_notification_rows(
        &self,
        start: u64,
        limit: usize,
        topics: &[&str],
        each: &mut dyn FnMut(u64, StoredRow<'_>) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        // Received whole first, so that a retried read hands no row twice.
        for row in &self.notification_rows(start, limit, topics)? {
            let (id, event) = read_notification_row(row)?;
            if each(id, event)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    fn max_notification_id(&self) -> Result<u64> {
        let last: i64 = self.run(Call::Read, |connection| {
            let statement = connection.statement(&self.sql, Query::MaxNotificationId)?;
            Ok(connection.client.query_one(&statement, &[])?.try_get(0)?)
        })?;
        u64::try_from(last).map_err(|_| corrupt(Uuid::nil(), 0, "notification_id is negative"))
    }

    fn select_notification_of(
        &self,
        originator_id: Uuid,
        originator_version: u64,
    ) -> Result<Option<Notification>> {
        let Ok(version) = i64::try_from(originator_version) else {
            return Ok(None);
        };
        self.run(Call::Read, |connection| {
            let statement = connection.statement(&self.sql, Query::SelectNotificationOf)?;
            let row = connection
                .client
                .query_opt(&statement, &[&originator_id, &version])?;
            Ok(row.as_ref().map(read_notification).transpose()?)
        })
    }

    fn insert_snapshot(&self, snapshot: &StoredEvent) -> Result<bool> {
        let version = signed_version(snapshot)?;
        let inserted = self.run(Call::Write, |connection| {
            let statement = connection.statement(&self.sql, Query::InsertSnapshot)?;
            Ok(connection.client.execute(
                &statement,
                &[
                    &snapshot.originator_id,
                    &version,
                    &snapshot.topic,
                    &snapshot.state,
                ],
            )?)
        })?;
        Ok(inserted > 0)
    }

    fn select_snapshot(
        &self,
        originator_id: Uuid,
        to_version: Option<u64>,
    ) -> Result<Option<StoredEvent>> {
        let to = to_version.map_or(i64::MAX, clamp);
        self.run(Call::Read, |connection| {
            let statement = connection.statement(&self.sql, Query::SelectSnapshot)?;
            let row = connection
                .client
                .query_opt(&statement, &[&originator_id, &to])?;
            Ok(row
                .map(|row| read_event(&row, 0).map(|lent| lent.to_owned()))
                .transpose()?)
        })
    }

    fn select_snapshot_and_events(
        &self,
        originator_id: Uuid,
        to_version: Option<u64>,
        snapshot: &mut dyn FnMut(StoredRow<'_>) -> Result<ControlFlow<()>>,
        each: &mut dyn FnMut(StoredRow<'_>) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        self.load(
            originator_id,
            to_version,
            &mut LoadRows::new(snapshot, each),
        )
    }

    fn select_positions(&self) -> Result<Option<Vec<(TrackingKey, Position)>>> {
        self.positions().map(Some)
    }

    fn select_tracking(&self, key: &TrackingKey) -> Result<Option<Position>> {
        self.position(key)
    }

    fn raise_epoch(&self, key: &TrackingKey) -> Result<Position> {
        self.take_over(key)
    }

    fn register_follower(&self, registration: &Registration) -> Result<Registration> {
        self.register(registration)
    }

    fn update_follower(&self, registration: &Registration) -> Result<()> {
        self.store_registration(registration)
    }

    fn select_parked(&self, follower: &str) -> Result<Vec<Parked>> {
        self.parked_by(follower)
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
}
