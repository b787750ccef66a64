//! The PostgreSQL recorder: see [`PostgresRecorder`] for the tables, the
//! gap-free reading method and the behaviour under faults.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, Statement};
use uuid::Uuid;

use super::{EventQuery, Notification, Recorder, clamp, corrupt, signed_version};
use crate::error::{Error, Result};
use crate::mapper::StoredEvent;

/// How concurrent writers are ordered; see [`PostgresRecorder`].
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

/// How to open a [`PostgresRecorder`].
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
    /// [`PostgresRecorder::schema`]).
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
}

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
/// A batch of events is written by one call of a PL/pgSQL function that the
/// recorder installs beside the tables (`{prefix}stored_events_insert`): one
/// round trip and one `INSERT ... SELECT ... FROM unnest(...)` statement,
/// whatever the batch's size. Rows must only be inserted through it (or by
/// a writer that follows the same protocol): the reading rule below depends
/// on it.
///
/// # The gap-free notification log
///
/// Notification ids come from a sequence, and transactions commit in any
/// order, so a reader can see id 8 while id 7 is still being written by a
/// transaction that has not committed. FORMAT.md requires that a reader
/// following ids upwards never passes over such an id. The classic answer
/// is `LOCK TABLE stored_events IN EXCLUSIVE MODE` in every writing
/// transaction ([`Sequencing::TableLock`]): commits then happen in id
/// order, but one at a time, each waiting for the previous one's WAL flush,
/// so concurrent writers cannot share a flush (group commit). The default,
/// [`Sequencing::Concurrent`], keeps writers concurrent and makes readers
/// stop below any id that a running transaction may still fill.
///
/// **Writers.** The insert function first takes a transaction-scoped
/// advisory lock per aggregate of the batch (in a fixed order) and checks
/// that none of the batch's versions is recorded; a conflict fails here,
/// before any id is drawn. Then, in a short section serialised by a
/// session-level advisory lock for the table, it gets the transaction's id
/// (`pg_current_xact_id()`, which must not have been assigned before:
/// inserting events must be the transaction's first write) and draws the
/// batch's ids from the sequence (`CACHE 1`); it releases that lock and
/// only then inserts the rows, each with the transaction id, and commits.
/// The serialised section holds no row, takes microseconds, and excludes the
/// insert and the commit's flush. Its consequence, the **invariant**: for
/// any two writers, the one that drew its ids first has the smaller
/// transaction id, because both its transaction id and its ids were taken
/// before the other writer took either. So among the rows of the table,
/// notification-id order and transaction-id order agree.
///
/// **Readers.** A read runs as one statement, so in one snapshot `S`; it
/// takes `S` itself with `pg_current_snapshot()`. Let `M` be the greatest
/// id visible in `S`. For each transaction `t` that `S` lists as in
/// progress (`pg_snapshot_xip`) with `t` below the transaction id of the
/// row `M`, the reader looks up, through the index on `transaction_id`,
/// the visible row `below(t)` with the greatest transaction id under `t`
/// and the visible row `above(t)` with the least over `t`. If their ids are
/// not adjacent, the ids between them may belong to `t`: the safe bound `B`
/// is the least such `below(t)` (0 if there is none), and `M` when no `t`
/// leaves such a gap. [`Recorder::select_notifications`] returns visible
/// rows with ids in `start..=B`; [`Recorder::max_notification_id`] returns
/// `B`, so that a reader that reads up to the reported maximum never has to
/// come back below it.
///
/// **Why a reader cannot skip.** Suppose a row with id `h <= B` is not
/// visible in `S` but becomes visible later, written by transaction `O`.
/// `O` had not committed when `S` was taken. If `O` drew its ids after `S`
/// was taken, they exceed every id drawn before, `M` included (the row `M`
/// committed before `S`), so `h > M >= B`: impossible. So `O` drew `h`
/// before `S`, and by the protocol had its transaction id `o` by then.
/// Since `h < M` (`M` is visible, `h` is not), there is a least visible id
/// `q` above `h`; its writer drew after `O` did, so by the invariant
/// `o < xid(q)`, and `xid(q)` committed before `S`, hence is below the
/// snapshot's `xmax`. A transaction below `xmax` that has not finished is in
/// the snapshot's in-progress list: `o` is listed, and `o < xid(q) <=
/// xid(M)`, so the reader examined `t = o`. Every visible row with a
/// transaction id under `o` drew before `O` and every one over `o` drew
/// after it, so `below(o) < h < above(o)`: a gap, and `B <= below(o) < h`,
/// which contradicts `h <= B`.
///
/// The same argument shows the lemma it rests on: a transaction that is not
/// in the snapshot's in-progress list cannot later make visible an id below
/// a visible one. Such a transaction has either finished (its rows are
/// visible, or gone for good), or has a transaction id at or above the
/// snapshot's `xmax` (or none yet). In the second case its transaction id
/// exceeds that of every visible row, so by the invariant it drew its ids
/// after all of them: above every visible id.
///
/// **Failed writes and holes.** A concurrency conflict is found before any
/// id is drawn, so it leaves no trace. A write that fails after drawing
/// (the connection dropped, the server restarted or crashed, a statement
/// error) rolls back, and its ids are never used: a permanent hole. (After
/// a crash, PostgreSQL may also skip up to 32 sequence values.) Readers
/// pass a hole as soon as no transaction that the snapshot lists as in
/// progress (in any database of the server) has a transaction id between
/// those of the rows around the hole: the hole's owner has then finished,
/// so the hole is final. Only
/// transactions that got their ids in that short window can hold a reader
/// back, and only while they run; continuous load of new writers never
/// does, because their transaction ids are above the window.
///
/// **Assumptions.** Rows are written only by this protocol; the sequence
/// keeps `CACHE 1` (checked when the recorder opens); reads go to the
/// primary server (a standby's snapshots do not list the primary's running
/// transactions the same way). PostgreSQL 13 or later (`xid8`).
///
/// # Connections and faults
///
/// Connections come from a small pool of its own
/// ([`PostgresOptions::pool_size`]), each with its prepared statements. A
/// save is one statement in its own transaction, so a dropped connection or
/// a server restart in the middle of one leaves nothing partial: the save
/// fails with [`Error::Database`], and it either committed whole or not at
/// all (as with any database, a commit whose answer was lost cannot be told
/// from one that did not happen; load the aggregate to see, and a second
/// save of the same version is refused as a conflict). A connection that
/// failed is closed rather than reused, and all idle ones with it when it
/// had lost its server, so the next call opens fresh connections. Before a
/// write, a connection that served earlier calls is checked with a round
/// trip, so that a server that went away between calls costs no failed
/// save; a read that fails for that reason runs once more on a fresh
/// connection.
pub struct PostgresRecorder {
    pool: Pool,
    sql: Sql,
    schema: String,
    table_prefix: String,
    sequencing: Sequencing,
    drop_schema_on_drop: bool,
}

impl fmt::Debug for PostgresRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresRecorder")
            .field("schema", &self.schema)
            .field("table_prefix", &self.table_prefix)
            .field("sequencing", &self.sequencing)
            .field("pool_size", &self.pool.size)
            .finish_non_exhaustive()
    }
}

// ------------------------------------------------------------------ the SQL

/// The statements a connection prepares, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Query {
    InsertEvents,
    SelectEventsAscending,
    SelectEventsDescending,
    SelectNotifications,
    SelectNotificationsWithTopics,
    MaxNotificationId,
    InsertSnapshot,
    SelectSnapshot,
    FindConflict,
}

/// The SQL of every statement, built once for the schema and prefix.
#[derive(Debug)]
struct Sql {
    create_tables: String,
    insert_function_name: String,
    insert_function_body: String,
    create_insert_function: String,
    sequence_cache: String,
    insert_events: String,
    select_events_ascending: String,
    select_events_descending: String,
    select_notifications: String,
    select_notifications_with_topics: String,
    max_notification_id: String,
    insert_snapshot: String,
    select_snapshot: String,
    find_conflict: String,
}

const EVENT_COLUMNS: &str = "originator_id, originator_version, topic, state";

/// The text of a unique violation on `(originator_id, originator_version)`,
/// as PostgreSQL words it and as the insert function raises it.
const CONFLICT_DETAIL_PREFIX: &str = "Key (originator_id, originator_version)=(";

/// Serialises the recorders' `CREATE ... IF NOT EXISTS` statements, which
/// are not safe to run concurrently (bigint form of the advisory lock).
const DDL_LOCK_KEY: i64 = 0x6576_7473_7263_6464;

/// `"name"`, with any `"` doubled.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'`, with any `'` doubled (standard-conforming strings).
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A 64-bit FNV-1a hash: stable across builds and platforms, unlike
/// `std`'s hashers, because every process must derive the same lock keys.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The statements that create what is missing, under a lock that keeps
/// two processes from creating the same things at once. `schema` is the
/// quoted schema to create, if any.
fn create_tables(
    schema: Option<&str>,
    events: &str,
    sequence: &str,
    index: &str,
    snapshots: &str,
    tracking: &str,
) -> String {
    let create_schema = schema.map_or_else(String::new, |schema| {
        format!("CREATE SCHEMA IF NOT EXISTS {schema};")
    });
    format!(
        "SELECT pg_advisory_xact_lock({DDL_LOCK_KEY});
             {create_schema}
             CREATE TABLE IF NOT EXISTS {events} (
                 notification_id BIGINT NOT NULL PRIMARY KEY,
                 originator_id UUID NOT NULL,
                 originator_version BIGINT NOT NULL,
                 topic TEXT NOT NULL,
                 state BYTEA NOT NULL,
                 transaction_id XID8 NOT NULL,
                 UNIQUE (originator_id, originator_version)
             );
             CREATE SEQUENCE IF NOT EXISTS {sequence} AS BIGINT MINVALUE 1 START WITH 1 CACHE 1
                 OWNED BY {events}.notification_id;
             CREATE INDEX IF NOT EXISTS {index} ON {events} (transaction_id, notification_id);
             CREATE TABLE IF NOT EXISTS {snapshots} (
                 originator_id UUID NOT NULL,
                 originator_version BIGINT NOT NULL,
                 topic TEXT NOT NULL,
                 state BYTEA NOT NULL,
                 PRIMARY KEY (originator_id, originator_version)
             );
             CREATE TABLE IF NOT EXISTS {tracking} (
                 application_name TEXT NOT NULL,
                 upstream_name TEXT NOT NULL,
                 notification_id BIGINT NOT NULL,
                 UNIQUE (application_name, upstream_name, notification_id)
             );"
    )
}

/// The body of the insert function: the writer's side of the protocol in
/// [`PostgresRecorder`]'s docs.
fn insert_function_body(
    events: &str,
    sequence: &str,
    aggregate_class: i32,
    sequence_key: i64,
) -> String {
    let sequence_literal = quote_literal(sequence);
    format!(
            "
DECLARE
    conflict record;
    writer xid8;
    new_ids bigint[];
BEGIN
    -- Writers of one aggregate take turns (keys in ascending order, so no
    -- deadlock); each statement below sees what the previous holder committed.
    PERFORM pg_advisory_xact_lock({aggregate_class}, k)
        FROM (SELECT DISTINCT hashtext(i::text) AS k FROM unnest(ids) AS i ORDER BY 1) AS keys;
    IF lock_table THEN
        LOCK TABLE {events} IN EXCLUSIVE MODE;
    END IF;
    -- A conflict is reported before any notification id is drawn, naming
    -- the batch's first recorded row.
    SELECT e.originator_id, e.originator_version INTO conflict
        FROM {events} AS e JOIN unnest(ids, versions) WITH ORDINALITY AS b(i, v, o)
            ON e.originator_id = b.i AND e.originator_version = b.v
        ORDER BY b.o LIMIT 1;
    IF FOUND THEN
        RAISE unique_violation USING
            MESSAGE = 'stored event already recorded',
            DETAIL = format('{CONFLICT_DETAIL_PREFIX}%s, %s) already exists.',
                conflict.originator_id, conflict.originator_version);
    END IF;
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'stored events must be the first write of their transaction'
            USING ERRCODE = 'invalid_transaction_state';
    END IF;
    -- The serialised section: transaction id first, then the ids.
    PERFORM pg_advisory_lock({sequence_key});
    BEGIN
        writer := pg_current_xact_id();
        new_ids := ARRAY(SELECT nextval({sequence_literal}) FROM generate_series(1, cardinality(ids)));
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        PERFORM pg_advisory_unlock({sequence_key});
        RAISE;
    END;
    PERFORM pg_advisory_unlock({sequence_key});
    INSERT INTO {events} (notification_id, {EVENT_COLUMNS}, transaction_id)
        SELECT b.n, b.i, b.v, b.t, b.s, writer
        FROM unnest(new_ids, ids, versions, topics, states) AS b(n, i, v, t, s);
    RETURN new_ids;
END
"
        )
}

/// The common table expressions that compute the safe bound `B` of
/// [`PostgresRecorder`]'s docs, as `safe.last`, in the statement's snapshot.
fn safe_bound(events: &str) -> String {
    format!(
        "WITH snapshot AS MATERIALIZED (SELECT pg_current_snapshot() AS s),
             top AS MATERIALIZED (
                 SELECT e.notification_id, e.transaction_id FROM {events} AS e
                 ORDER BY e.notification_id DESC LIMIT 1),
             edges AS (
                 SELECT
                     COALESCE((SELECT e.notification_id FROM {events} AS e
                               WHERE e.transaction_id < x.t
                               ORDER BY e.transaction_id DESC, e.notification_id DESC LIMIT 1), 0)
                         AS below,
                     (SELECT e.notification_id FROM {events} AS e
                      WHERE e.transaction_id > x.t
                      ORDER BY e.transaction_id, e.notification_id LIMIT 1) AS above
                 FROM snapshot, top, pg_snapshot_xip(snapshot.s) AS x(t)
                 WHERE x.t < top.transaction_id),
             safe AS (
                 SELECT COALESCE(
                     (SELECT min(below) FROM edges WHERE above > below + 1),
                     (SELECT notification_id FROM top),
                     0) AS last)"
    )
}

impl Sql {
    fn new(schema: &str, prefix: &str, create_schema: bool) -> Self {
        let name = |table: &str| {
            format!(
                "{}.{}",
                quote_ident(schema),
                quote_ident(&format!("{prefix}{table}"))
            )
        };
        let events = name("stored_events");
        let snapshots = name("snapshots");
        let tracking = name("tracking");
        let sequence = name("stored_events_notification_id_seq");
        let index = quote_ident(&format!("{prefix}stored_events_transaction_id_idx"));
        let insert_function_name = name("stored_events_insert");

        // The table's lock keys: the bigint key of the section that assigns
        // ids, and the first half of every per-aggregate key.
        let key = fnv1a(format!("eventsourcing\0{schema}\0{prefix}").as_bytes());
        let sequence_key = i64::from_be_bytes(key.to_be_bytes());
        let [a, b, c, d, ..] = key.to_be_bytes();
        let aggregate_class = i32::from_be_bytes([a, b, c, d]);

        let create_schema = create_schema.then(|| quote_ident(schema));
        let create_tables = create_tables(
            create_schema.as_deref(),
            &events,
            &sequence,
            &index,
            &snapshots,
            &tracking,
        );

        let insert_function_body =
            insert_function_body(&events, &sequence, aggregate_class, sequence_key);
        let insert_function_arguments =
            "lock_table boolean, ids uuid[], versions bigint[], topics text[], states bytea[]";
        let create_insert_function = format!(
            "CREATE OR REPLACE FUNCTION {insert_function_name}({insert_function_arguments}) \
             RETURNS bigint[] LANGUAGE plpgsql AS {body}",
            body = quote_literal(&insert_function_body),
        );

        let safe_bound = safe_bound(&events);
        let select_notifications = |filter: &str| {
            format!(
                "{safe_bound}
                 SELECT e.notification_id, {columns} FROM {events} AS e, safe
                 WHERE e.notification_id >= $1 AND e.notification_id <= safe.last{filter}
                 ORDER BY e.notification_id LIMIT $2",
                columns = "e.originator_id, e.originator_version, e.topic, e.state",
            )
        };
        let select_events = |order: &str| {
            format!(
                "SELECT {EVENT_COLUMNS} FROM {events} \
                 WHERE originator_id = $1 AND originator_version > $2 AND originator_version <= $3 \
                 ORDER BY originator_version {order} LIMIT $4"
            )
        };
        Self {
            create_tables,
            sequence_cache: format!(
                "SELECT cache_size FROM pg_catalog.pg_sequences \
                 WHERE schemaname = {} AND sequencename = {}",
                quote_literal(schema),
                quote_literal(&format!("{prefix}stored_events_notification_id_seq"))
            ),
            insert_events: format!("SELECT {insert_function_name}($1, $2, $3, $4, $5)"),
            insert_function_name,
            insert_function_body,
            create_insert_function,
            select_events_ascending: select_events("ASC"),
            select_events_descending: select_events("DESC"),
            select_notifications: select_notifications(""),
            select_notifications_with_topics: select_notifications(" AND e.topic = ANY($3)"),
            max_notification_id: format!("{safe_bound} SELECT last FROM safe"),
            insert_snapshot: format!(
                "INSERT INTO {snapshots} ({EVENT_COLUMNS}) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (originator_id, originator_version) DO NOTHING"
            ),
            select_snapshot: format!(
                "SELECT {EVENT_COLUMNS} FROM {snapshots} \
                 WHERE originator_id = $1 AND originator_version <= $2 \
                 ORDER BY originator_version DESC LIMIT 1"
            ),
            find_conflict: format!(
                "SELECT e.originator_id, e.originator_version FROM {events} AS e \
                 JOIN unnest($1::uuid[], $2::bigint[]) WITH ORDINALITY AS b(i, v, o) \
                 ON e.originator_id = b.i AND e.originator_version = b.v ORDER BY b.o LIMIT 1"
            ),
        }
    }

    fn text(&self, query: Query) -> &str {
        match query {
            Query::InsertEvents => &self.insert_events,
            Query::SelectEventsAscending => &self.select_events_ascending,
            Query::SelectEventsDescending => &self.select_events_descending,
            Query::SelectNotifications => &self.select_notifications,
            Query::SelectNotificationsWithTopics => &self.select_notifications_with_topics,
            Query::MaxNotificationId => &self.max_notification_id,
            Query::InsertSnapshot => &self.insert_snapshot,
            Query::SelectSnapshot => &self.select_snapshot,
            Query::FindConflict => &self.find_conflict,
        }
    }
}

// ----------------------------------------------------------------- the pool

/// A connection and the statements prepared on it.
struct Connection {
    client: Client,
    prepared: HashMap<Query, Statement>,
}

impl Connection {
    fn statement(&mut self, sql: &Sql, query: Query) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.prepared.get(&query) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql.text(query))?;
        self.prepared.insert(query, statement.clone());
        Ok(statement)
    }
}

#[derive(Default)]
struct PoolState {
    idle: Vec<Connection>,
    open: usize,
}

/// At most `size` connections, handed out one caller at a time.
struct Pool {
    config: postgres::Config,
    size: usize,
    wait: Duration,
    state: Mutex<PoolState>,
    freed: Condvar,
}

/// A connection taken from the pool; given back when dropped, unless
/// [`Lease::discard`]ed.
struct Lease<'a> {
    pool: &'a Pool,
    connection: Option<Connection>,
    /// Whether the connection had served earlier calls (so may have lost
    /// its server meanwhile), rather than being opened for this one.
    reused: bool,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // The state is a list and a counter, each updated in one step: a
        // panic elsewhere cannot leave it half written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self) -> Result<Lease<'_>> {
        let deadline = Instant::now() + self.wait;
        let mut state = self.lock();
        loop {
            // A connection known to be closed is dropped here; one whose
            // server went away unnoticed is caught by the first use (see
            // `PostgresRecorder::lease`).
            while let Some(connection) = state.idle.pop() {
                if !connection.client.is_closed() {
                    return Ok(Lease {
                        pool: self,
                        connection: Some(connection),
                        reused: true,
                    });
                }
                state.open -= 1;
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                return match self.config.connect(NoTls) {
                    Ok(client) => Ok(Lease {
                        pool: self,
                        connection: Some(Connection {
                            client,
                            prepared: HashMap::new(),
                        }),
                        reused: false,
                    }),
                    Err(error) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(Error::Database(Box::new(ConnectError(error))))
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Database(
                    format!(
                        "no PostgreSQL connection became free within {:?} ({} in use)",
                        self.wait, self.size
                    )
                    .into(),
                ));
            }
            state = self
                .freed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Closes every idle connection: called when one has lost its server,
    /// as the others most likely have too.
    fn purge_idle(&self) {
        let idle = {
            let mut state = self.lock();
            let idle = std::mem::take(&mut state.idle);
            state.open -= idle.len();
            idle
        };
        drop(idle);
        self.freed.notify_all();
    }
}

impl Lease<'_> {
    fn connection(&mut self) -> Result<&mut Connection> {
        self.connection
            .as_mut()
            .ok_or_else(|| Error::Database("the PostgreSQL connection was discarded".into()))
    }

    /// Closes the connection instead of giving it back.
    fn discard(mut self) {
        if let Some(connection) = self.connection.take() {
            drop(connection);
            self.pool.lock().open -= 1;
            self.pool.freed.notify_one();
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            let mut state = self.pool.lock();
            if connection.client.is_closed() {
                state.open -= 1;
            } else {
                state.idle.push(connection);
            }
            drop(state);
            self.pool.freed.notify_one();
        }
    }
}

// ---------------------------------------------------------------- helpers

/// A failure to connect, shown with its cause ("connection refused"...),
/// which the client's own message leaves to `source()`.
#[derive(Debug)]
struct ConnectError(postgres::Error);

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot connect to PostgreSQL: {}", self.0)?;
        let mut cause = std::error::Error::source(&self.0);
        while let Some(inner) = cause {
            write!(f, ": {inner}")?;
            cause = inner.source();
        }
        Ok(())
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Wraps a database error.
fn db(error: postgres::Error) -> Error {
    Error::Database(Box::new(error))
}

/// Whether `error` means the connection, or the server, is gone.
fn is_connection_lost(error: &postgres::Error) -> bool {
    error.is_closed()
        || error.code().is_some_and(|code| {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                ]
                .contains(code)
        })
}

/// A unique violation on `(originator_id, originator_version)`.
enum Conflict {
    /// The server's message names the row.
    Named(Uuid, u64),
    /// It does not (a translated message, say): look it up.
    Unnamed,
}

/// The conflict that `error` reports, if it is one.
fn conflict_in(error: &postgres::Error) -> Option<Conflict> {
    let db_error = error.as_db_error()?;
    if db_error.code() != &SqlState::UNIQUE_VIOLATION {
        return None;
    }
    let named = db_error.detail().and_then(|detail| {
        let rest = detail.strip_prefix(CONFLICT_DETAIL_PREFIX)?;
        let (values, _) = rest.split_once(')')?;
        let (id, version) = values.split_once(", ")?;
        Some((Uuid::parse_str(id).ok()?, version.parse().ok()?))
    });
    if named.is_none()
        && db_error
            .constraint()
            .is_some_and(|constraint| constraint.ends_with("_pkey"))
    {
        // A duplicate notification id is not a concurrency conflict.
        return None;
    }
    Some(named.map_or(Conflict::Unnamed, |(id, version)| {
        Conflict::Named(id, version)
    }))
}

/// Reads `originator_id, originator_version, topic, state` from the row,
/// starting at column `first`.
fn read_event(row: &Row, first: usize) -> Result<StoredEvent> {
    let version: Result<i64, _> = row.try_get(first + 1);
    let originator_id: Uuid = row.try_get(first).map_err(|error| {
        let version = version
            .as_ref()
            .ok()
            .and_then(|v| u64::try_from(*v).ok())
            .unwrap_or(0);
        corrupt(
            Uuid::nil(),
            version,
            format!("originator_id is not a UUID: {error}"),
        )
    })?;
    let version = version
        .map_err(|error| corrupt(originator_id, 0, format!("originator_version: {error}")))?;
    let originator_version = u64::try_from(version).map_err(|_| {
        corrupt(
            originator_id,
            0,
            format!("originator_version is negative ({version})"),
        )
    })?;
    let topic: String = row.try_get(first + 2).map_err(|error| {
        corrupt(
            originator_id,
            originator_version,
            format!("topic is not UTF-8 text: {error}"),
        )
    })?;
    let state: Vec<u8> = row.try_get(first + 3).map_err(|error| {
        corrupt(
            originator_id,
            originator_version,
            format!("state is not bytes: {error}"),
        )
    })?;
    Ok(StoredEvent {
        originator_id,
        originator_version,
        topic,
        state,
    })
}

/// Reads a notification row: `notification_id` then the event columns.
fn read_notification(row: &Row) -> Result<Notification> {
    let id: Result<i64, _> = row.try_get(0);
    let event = read_event(row, 1)?;
    let id = id
        .ok()
        .and_then(|id| u64::try_from(id).ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            corrupt(
                event.originator_id,
                event.originator_version,
                "notification_id is not a positive integer",
            )
        })?;
    Ok(Notification {
        id,
        originator_id: event.originator_id,
        originator_version: event.originator_version,
        topic: event.topic,
        state: event.state,
    })
}

/// Checks a schema name or table prefix: ASCII letters, digits and `_`.
fn validate_name(variable: &'static str, name: &str, max: usize) -> Result<()> {
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

/// What a call does, which decides how a lost connection is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    /// Reads only: safe to run again.
    Read,
    /// Writes: never run twice.
    Write,
}

/// A failed step of a call: a database error (which condemns the
/// connection), one that must not be retried either, or any other error
/// (which leaves the connection usable).
enum Failure {
    Database(postgres::Error),
    Final(postgres::Error),
    Other(Error),
}

impl From<postgres::Error> for Failure {
    fn from(error: postgres::Error) -> Self {
        Failure::Database(error)
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Other(error)
    }
}

// ------------------------------------------------------------ the recorder

impl PostgresRecorder {
    /// Connects, and creates the schema (when one is named), the tables,
    /// the sequence and the insert function if they are missing.
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
        let pool = Pool {
            config,
            size: options.pool_size,
            wait: options.pool_timeout,
            state: Mutex::new(PoolState::default()),
            freed: Condvar::new(),
        };

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
        let sql = Sql::new(&schema, &options.table_prefix, options.schema.is_some());
        Self::create_tables(&mut connection.client, &sql)?;
        drop(lease);

        Ok(Self {
            pool,
            sql,
            schema,
            table_prefix: options.table_prefix,
            sequencing: options.sequencing,
            drop_schema_on_drop: options.drop_schema_on_drop,
        })
    }

    /// Creates what is missing, in one transaction, and checks the sequence.
    fn create_tables(client: &mut Client, sql: &Sql) -> Result<()> {
        let mut tx = client.transaction().map_err(db)?;
        tx.batch_execute(&sql.create_tables).map_err(db)?;
        // Replaced only when its text differs, so that processes opening the
        // same tables do not rewrite the catalogue each time.
        let installed: Option<String> = tx
            .query_opt(
                "SELECT prosrc FROM pg_catalog.pg_proc \
                 WHERE oid = to_regprocedure($1)",
                &[&format!(
                    "{}(boolean, uuid[], bigint[], text[], bytea[])",
                    sql.insert_function_name
                )],
            )
            .and_then(|row| row.map(|row| row.try_get(0)).transpose())
            .map_err(db)?;
        if installed.as_deref() != Some(sql.insert_function_body.as_str()) {
            tx.batch_execute(&sql.create_insert_function).map_err(db)?;
        }
        let cache: Option<i64> = tx
            .query_opt(&sql.sequence_cache, &[])
            .and_then(|row| row.map(|row| row.try_get(0)).transpose())
            .map_err(db)?;
        if cache != Some(1) {
            return Err(Error::Database(
                format!(
                    "the notification id sequence must have CACHE 1 (found {cache:?}): \
                     readers rely on ids being drawn in order"
                )
                .into(),
            ));
        }
        tx.commit().map_err(db)
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
    /// message), so that a write is never sent down a connection whose
    /// server went away meanwhile: its failure could not be told from a
    /// failure of the write itself.
    fn lease(&self, call: Call) -> Result<Lease<'_>> {
        loop {
            let mut lease = self.pool.get()?;
            if call == Call::Read || !lease.reused {
                return Ok(lease);
            }
            if lease.connection()?.client.check_connection().is_ok() {
                return Ok(lease);
            }
            lease.discard();
            self.pool.purge_idle();
        }
    }

    /// Runs `step` on a pooled connection. A database error closes the
    /// connection (and every idle one, if the server was lost); a read
    /// whose reused connection had lost its server runs once more on a
    /// fresh one.
    fn run<T>(
        &self,
        call: Call,
        mut step: impl FnMut(&mut Connection) -> Result<T, Failure>,
    ) -> Result<T> {
        let mut tries = if call == Call::Read { 2 } else { 1 };
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
            let reused = lease.reused;
            lease.discard();
            if lost {
                self.pool.purge_idle();
            }
            if !(lost && reused && retryable && tries > 0) {
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
    fn insert_events(&self, events: &[StoredEvent]) -> Result<Vec<u64>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids = Vec::with_capacity(events.len());
        let mut versions = Vec::with_capacity(events.len());
        let mut topics = Vec::with_capacity(events.len());
        let mut states = Vec::with_capacity(events.len());
        // A version twice in the batch is refused here, before the server
        // draws ids for it.
        let mut in_batch = HashSet::new();
        for event in events {
            let version = signed_version(event)?;
            if events.len() > 1 && !in_batch.insert((event.originator_id, version)) {
                return Err(Error::Concurrency {
                    id: event.originator_id,
                    version: event.originator_version,
                });
            }
            ids.push(event.originator_id);
            versions.push(version);
            topics.push(event.topic.as_str());
            states.push(event.state.as_slice());
        }
        let lock_table = self.sequencing == Sequencing::TableLock;
        let params: [&(dyn ToSql + Sync); 5] = [&lock_table, &ids, &versions, &topics, &states];

        let mut conflict = None;
        let result = self.run(Call::Write, |connection| {
            let statement = connection.statement(&self.sql, Query::InsertEvents)?;
            match connection.client.query_one(&statement, &params) {
                Ok(row) => Ok(Some(row.try_get::<_, Vec<i64>>(0)?)),
                Err(error) => match conflict_in(&error) {
                    // A refused write: the connection is fine.
                    Some(found) => {
                        conflict = Some(found);
                        Ok(None)
                    }
                    None => Err(Failure::Database(error)),
                },
            }
        })?;
        let Some(assigned) = result else {
            let (id, version) = match conflict {
                Some(Conflict::Named(id, version)) => (id, version),
                _ => self
                    .find_conflict(&ids, &versions)?
                    .unwrap_or((events[0].originator_id, events[0].originator_version)),
            };
            return Err(Error::Concurrency { id, version });
        };
        if assigned.len() != events.len() {
            return Err(Error::Database(
                format!(
                    "the insert function returned {} ids for {} events",
                    assigned.len(),
                    events.len()
                )
                .into(),
            ));
        }
        assigned
            .into_iter()
            .zip(events)
            .map(|(id, event)| {
                u64::try_from(id).map_err(|_| {
                    corrupt(
                        event.originator_id,
                        event.originator_version,
                        format!("the sequence gave a negative notification_id ({id})"),
                    )
                })
            })
            .collect()
    }

    fn select_events(
        &self,
        query: &EventQuery,
        each: &mut dyn FnMut(StoredEvent) -> Result<()>,
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
        // Rows are handed to `each` as they arrive. Once one was, a lost
        // connection is not retried: `each` would see rows twice.
        self.run(Call::Read, |connection| {
            let statement = connection.statement(&self.sql, which)?;
            let mut rows = connection.client.query_raw(&statement, params)?;
            let mut delivered = false;
            loop {
                match rows.next() {
                    Ok(Some(row)) => {
                        delivered = true;
                        each(read_event(&row, 0)?)?;
                    }
                    Ok(None) => return Ok(()),
                    Err(error) if delivered => return Err(Failure::Final(error)),
                    Err(error) => return Err(Failure::Database(error)),
                }
            }
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
            Ok(rows
                .iter()
                .map(read_notification)
                .collect::<Result<Vec<_>>>()?)
        })
    }

    fn max_notification_id(&self) -> Result<u64> {
        let last: i64 = self.run(Call::Read, |connection| {
            let statement = connection.statement(&self.sql, Query::MaxNotificationId)?;
            Ok(connection.client.query_one(&statement, &[])?.try_get(0)?)
        })?;
        u64::try_from(last).map_err(|_| corrupt(Uuid::nil(), 0, "notification_id is negative"))
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
            Ok(row.map(|row| read_event(&row, 0)).transpose()?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_the_quote_character() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn lock_keys_are_stable_and_distinct_per_table() {
        // FNV-1a's published test vector: every process must agree.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        let a = Sql::new("public", "a_", false);
        let b = Sql::new("public", "b_", false);
        assert_ne!(a.insert_function_body, b.insert_function_body);
        assert_eq!(
            Sql::new("public", "a_", false).insert_function_body,
            a.insert_function_body
        );
    }

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
