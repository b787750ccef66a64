//! How to open a [`PostgresRecorder`](super::PostgresRecorder): the options
//! and their checks.

use std::fmt;
use std::time::Duration;

use uuid::Uuid;

use crate::error::{Error, Result};

/// How concurrent writers are ordered; see [`PostgresRecorder`](super::PostgresRecorder).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Sequencing {
    /// Writers serialise only the moment they take their transaction id and
    /// notification ids; they insert and commit concurrently, sharing WAL
    /// flushes. Readers stop below any id a running transaction may still
    /// fill.
    #[default]
    Concurrent,
    /// The classic method: every write also holds `LOCK TABLE ... IN
    /// EXCLUSIVE MODE` until it commits, so writes commit one at a time, in
    /// id order. Kept as the benchmark's baseline; it follows the same
    /// protocol, so both kinds of writer may share a table.
    TableLock,
}

/// How to open a [`PostgresRecorder`](super::PostgresRecorder).
///
/// ```
/// use eventsourcing::recorder::{PostgresOptions, Sequencing};
///
/// let options = PostgresOptions::new("postgres://postgres@127.0.0.1:5432/test")
///     .schema("bank")
///     .table_prefix("accounts_")
///     .pool_size(4);
/// assert_eq!(options.schema.as_deref(), Some("bank"));
/// assert_eq!(options.sequencing, Sequencing::Concurrent);
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// The server and database, as a `postgres://` or `postgresql://` URL
    /// (libpq's URL syntax, including query parameters such as
    /// `connect_timeout` or `options=-csearch_path%3Dapp`).
    pub url: String,
    /// The schema that holds the tables, created if missing; `None` (the
    /// default) uses the connection's current schema (the first existing
    /// one of its `search_path`, usually `public`). Only ASCII letters,
    /// digits and `_`, at most 63 of them.
    pub schema: Option<String>,
    /// Prepended to every table name (`{prefix}stored_events`, ...), so that
    /// several applications can share a schema. Only ASCII letters, digits
    /// and `_`, at most 30 of them; empty by default.
    pub table_prefix: String,
    /// How concurrent writers are ordered; [`Sequencing::Concurrent`] by
    /// default.
    pub sequencing: Sequencing,
    /// At most this many connections are open at once; 10 by default.
    pub pool_size: usize,
    /// How long a call waits for a free connection when all are busy
    /// before it fails with [`Error::Database`]; 30 seconds by default.
    pub pool_timeout: Duration,
    /// How long opening a connection may take, unless the URL sets
    /// `connect_timeout`; 10 seconds by default.
    pub connect_timeout: Duration,
    /// Drop the schema, and everything in it, when the recorder is
    /// dropped; see [`PostgresOptions::temporary_schema`].
    pub drop_schema_on_drop: bool,
    /// Whether this recorder's batches of events notify the tables'
    /// channel, waking [`Listener`](super::Listener)s; true by default.
    /// See [`PostgresOptions::notify`].
    pub notify: bool,
    /// How long a pooled connection must have been idle before a batch is
    /// written on it only after a round trip that checks it; 1 second by
    /// default. See [`PostgresOptions::check_after_idle`].
    pub check_after_idle: Duration,
}

impl fmt::Debug for PostgresOptions {
    // The URL may hold a password: it is left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("schema", &self.schema)
            .field("table_prefix", &self.table_prefix)
            .field("sequencing", &self.sequencing)
            .field("pool_size", &self.pool_size)
            .field("pool_timeout", &self.pool_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("drop_schema_on_drop", &self.drop_schema_on_drop)
            .field("notify", &self.notify)
            .field("check_after_idle", &self.check_after_idle)
            .finish_non_exhaustive()
    }
}

impl PostgresOptions {
    /// Default options for the database at `url`.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: None,
            table_prefix: String::new(),
            sequencing: Sequencing::Concurrent,
            pool_size: 10,
            pool_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            drop_schema_on_drop: false,
            notify: true,
            check_after_idle: Duration::from_secs(1),
        }
    }

    /// Sets the schema that holds the tables.
    #[must_use]
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// A private schema with a fresh name (`es_tmp_` and 32 hex digits),
    /// dropped with everything in it when the recorder is dropped: the
    /// PostgreSQL counterpart of an in-memory SQLite database, for tests
    /// and benchmarks. Other recorders may open it by name meanwhile (see
    /// [`PostgresRecorder::schema`](super::PostgresRecorder::schema)).
    #[must_use]
    pub fn temporary_schema(mut self) -> Self {
        self.schema = Some(format!("es_tmp_{}", Uuid::new_v4().simple()));
        self.drop_schema_on_drop = true;
        self
    }

    /// Sets the prefix of every table name.
    #[must_use]
    pub fn table_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.table_prefix = prefix.into();
        self
    }

    /// Sets how concurrent writers are ordered.
    #[must_use]
    pub fn sequencing(mut self, sequencing: Sequencing) -> Self {
        self.sequencing = sequencing;
        self
    }

    /// Sets the greatest number of open connections (at least 1).
    #[must_use]
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// Sets how long a call waits for a free connection.
    #[must_use]
    pub fn pool_timeout(mut self, timeout: Duration) -> Self {
        self.pool_timeout = timeout;
        self
    }

    /// Sets how long opening a connection may take.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets whether this recorder's batches of events notify listeners
    /// (true by default).
    ///
    /// With `true`, each transaction that inserts events runs `pg_notify`
    /// on the tables' channel, so that a [`Listener`](super::Listener) in
    /// any process wakes when it commits. The cost is in the commit:
    /// PostgreSQL lets the transactions that notify commit one at a time
    /// (it queues their notifications in commit order under one lock for
    /// the whole server, held through the commit's flush), so concurrent
    /// writers no longer share flushes. A single writer loses almost
    /// nothing; 8 concurrent writers on one server were measured at about
    /// half the saves per second (BENCHMARKS.md). Turn it off when nothing
    /// listens (followers that poll), or when many writers' throughput
    /// matters more than waking followers at once; the setting is per
    /// recorder, and recorders with either setting share the tables.
    #[must_use]
    pub fn notify(mut self, notify: bool) -> Self {
        self.notify = notify;
        self
    }

    /// Sets how long a pooled connection must have been idle before a
    /// batch of events is written on it only after a check (1 second by
    /// default).
    ///
    /// The check is a round trip (a `Sync` message), so that a server that
    /// went away while the connection sat in the pool costs no failed
    /// write. A connection used more recently is not checked: when its
    /// server ended it meanwhile in the usual ways (a restart or shutdown,
    /// `pg_terminate_backend`, `idle_session_timeout`), the server said so
    /// before closing it, the client sees that before it sends anything,
    /// and the batch is written on a fresh connection instead. A server
    /// that vanished without a word (a crash, a lost network) within that
    /// time, or whose word crossed the batch on the wire, costs the batch:
    /// it fails with [`Error::Database`], nothing of it is stored, and the
    /// pool closes its idle connections. `Duration::ZERO` checks before
    /// every batch: one more round trip each, 40 to 90 µs on a local
    /// server where a one-event save takes 0.2 to 0.4 ms (BENCHMARKS.md).
    /// Other writes (snapshots, registrations, tracking take-overs) check
    /// a reused connection every time.
    #[must_use]
    pub fn check_after_idle(mut self, idle: Duration) -> Self {
        self.check_after_idle = idle;
        self
    }
}

/// Checks a schema name or table prefix: ASCII letters, digits and `_`, at
/// most `max` of them.
pub(super) fn validate_name(variable: &'static str, name: &str, max: usize) -> Result<()> {
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        return Err(Error::Config {
            variable,
            reason: format!("{c:?} is not allowed; use only ASCII letters, digits and `_`"),
        });
    }
    if name.len() > max {
        return Err(Error::Config {
            variable,
            reason: format!("`{name}` is longer than {max} characters"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(validate_name("schema", "app_1", 63).is_ok());
        assert!(validate_name("schema", "", 63).is_ok());
        for bad in ["a-b", "a b", "é", "a\"b", "a;b"] {
            assert!(matches!(
                validate_name("table prefix", bad, 30),
                Err(Error::Config {
                    variable: "table prefix",
                    ..
                })
            ));
        }
        assert!(validate_name("table prefix", &"x".repeat(31), 30).is_err());
    }
}
