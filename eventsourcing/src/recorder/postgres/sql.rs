//! The SQL of the PostgreSQL recorder: names and quoting, the tables, the
//! statements, and the safe bound (the reader's side of the gap-free log),
//! built once per schema and table prefix. The insert function (the
//! writer's side) is in `function.rs`, the followers' tables' SQL in
//! `followers.rs`.

// ------------------------------------------------------------------ the SQL

use super::followers::FollowersSql;
use super::function::{InsertFunction, Keys, Tables};

/// The statements a connection prepares, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Query {
    InsertEvents,
    InsertBatch,
    SelectEventsAscending,
    SelectEventsDescending,
    SelectNotifications,
    SelectNotificationsWithTopics,
    MaxNotificationId,
    SelectNotificationOf,
    InsertSnapshot,
    SelectSnapshot,
    SelectSnapshotAndEvents,
    FindConflict,
    SelectTracking,
    SelectAllTracking,
    RaiseEpoch,
    RewindTracking,
    RegisterFollower,
    SelectFollower,
    UpdateFollower,
    InsertParked,
    ReleaseParked,
    DeleteParkedOfFollower,
    SelectParked,
}

/// The SQL of every statement, built once for the schema and prefix.
#[derive(Debug)]
pub(super) struct Sql {
    pub(super) create_tables: String,
    pub(super) tracking: TrackingSql,
    followers: FollowersSql,
    pub(super) keys: super::keys::KeySql,
    /// The channel the insert function notifies when it inserted events.
    pub(super) channel: String,
    pub(super) function: InsertFunction,
    pub(super) sequence_cache: String,
    select_events_ascending: String,
    select_events_descending: String,
    select_notifications: String,
    select_notifications_with_topics: String,
    max_notification_id: String,
    select_notification_of: String,
    insert_snapshot: String,
    select_snapshot: String,
    select_snapshot_and_events: String,
    find_conflict: String,
}

/// The SQL of the tracking table, but for its compare-and-set, which is
/// part of the insert function.
#[derive(Debug)]
pub(super) struct TrackingSql {
    /// The columns of the table, to recognise version 1's.
    pub(super) layout: String,
    /// Turns a version-1 table into version 2's.
    pub(super) migrate: String,
    select: String,
    select_all: String,
    raise_epoch: String,
    rewind: String,
}

impl TrackingSql {
    /// `tracking` is the table's qualified name.
    fn new(schema: &str, prefix: &str, tracking: &str) -> Self {
        let key = "application_name = $1 AND upstream_name = $2 AND \"partition\" = $3";
        Self {
            layout: catalogue_query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = $schema AND table_name = $name ORDER BY ordinal_position",
                schema,
                &format!("{prefix}tracking"),
            ),
            migrate: migrate_tracking(
                tracking,
                &format!(
                    "{}.{}",
                    quote_ident(schema),
                    quote_ident(&format!("{prefix}tracking_v1"))
                ),
                &quote_ident(&format!("{prefix}tracking_v1")),
            ),
            select: format!("SELECT notification_id, epoch FROM {tracking} WHERE {key}"),
            select_all: format!("SELECT {TRACKING_COLUMNS} FROM {tracking} ORDER BY 1, 2, 3"),
            // Atomic under concurrency: of two callers racing on a missing
            // row, one inserts it and the other then raises it. No row comes
            // back when the epoch cannot grow.
            raise_epoch: format!(
                "INSERT INTO {tracking} AS t ({TRACKING_COLUMNS}) VALUES ($1, $2, $3, 0, 1) \
                 ON CONFLICT (application_name, upstream_name, \"partition\") \
                 DO UPDATE SET epoch = t.epoch + 1 WHERE t.epoch < {max} \
                 RETURNING t.notification_id, t.epoch",
                max = i64::MAX
            ),
            // A rebuild's rewind: $4 the epoch the row must still have.
            rewind: format!("UPDATE {tracking} SET notification_id = 0 WHERE {key} AND epoch = $4"),
        }
    }
}

pub(super) const EVENT_COLUMNS: &str = "originator_id, originator_version, topic, state";

/// The text of a unique violation on `(originator_id, originator_version)`,
/// as PostgreSQL words it and as the insert function raises it.
pub(super) const CONFLICT_DETAIL_PREFIX: &str = "Key (originator_id, originator_version)=(";

/// The columns of a tracking row, in FORMAT.md's order (`partition` is a
/// keyword, hence quoted).
pub(super) const TRACKING_COLUMNS: &str =
    "application_name, upstream_name, \"partition\", notification_id, epoch";

/// The SQLSTATE the insert function raises when a tracking update's
/// compare-and-set fails: of the class `ES`, which PostgreSQL leaves to
/// applications, so that it cannot be mistaken for a server error.
pub(super) const TRACKING_CONFLICT: &str = "ES001";

/// Serialises the recorders' `CREATE ... IF NOT EXISTS` statements, which
/// are not safe to run concurrently (bigint form of the advisory lock).
pub(super) const DDL_LOCK_KEY: i64 = 0x6576_7473_7263_6464;

/// `"name"`, with any `"` doubled.
pub(super) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'`, with any `'` doubled (standard-conforming strings).
pub(super) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A 64-bit FNV-1a hash: stable across builds and platforms, unlike
/// `std`'s hashers, because every process must derive the same lock keys.
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
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
pub(super) fn create_tables(
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
             {create_tracking}",
        create_tracking = create_tracking(tracking),
    )
}

/// The statement that creates the tracking table of FORMAT.md version 2.
fn create_tracking(tracking: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {tracking} (
             application_name TEXT NOT NULL,
             upstream_name TEXT NOT NULL,
             \"partition\" INTEGER NOT NULL,
             notification_id BIGINT NOT NULL,
             epoch BIGINT NOT NULL,
             PRIMARY KEY (application_name, upstream_name, \"partition\")
         );"
    )
}

/// The statements that turn a version-1 tracking table (one row per
/// processed notification) into version 2's: one row per follower and
/// upstream, at the greatest notification recorded, in partition 0 at
/// epoch 0. `old` is the qualified name the old table is renamed to, and
/// `old_name` the same name unqualified.
fn migrate_tracking(tracking: &str, old: &str, old_name: &str) -> String {
    format!(
        "ALTER TABLE {tracking} RENAME TO {old_name};
         {create}
         INSERT INTO {tracking} ({TRACKING_COLUMNS})
             SELECT application_name, upstream_name, 0, max(notification_id), 0
             FROM {old} GROUP BY application_name, upstream_name;
         DROP TABLE {old};",
        create = create_tracking(tracking),
    )
}

/// The common table expressions that compute the safe bound `B`
/// (docs/gap-free-log.md, "Readers"), as `safe.last`, in the statement's
/// snapshot.
pub(super) fn safe_bound(events: &str) -> String {
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

/// `query` with `$schema` and `$name` replaced by the quoted literals
/// `schema` and `name`: a look-up in the catalogue of one of our objects.
fn catalogue_query(query: &str, schema: &str, name: &str) -> String {
    query
        .replace("$schema", &quote_literal(schema))
        .replace("$name", &quote_literal(name))
}

impl Sql {
    /// The SQL of the tables of `schema` with `prefix`; `create_schema`:
    /// the schema is created if missing; `notify`: the recorder's batches
    /// of events notify listeners.
    pub(super) fn new(schema: &str, prefix: &str, create_schema: bool, notify: bool) -> Self {
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
        // The notification channel: an identifier of 19 characters, where
        // PostgreSQL allows 63, derived the same way by every process.
        let channel = format!("es_{key:016x}");
        let [a, b, c, d, ..] = key.to_be_bytes();
        let aggregate_class = i32::from_be_bytes([a, b, c, d]);

        let create_schema = create_schema.then(|| quote_ident(schema));
        let followers = FollowersSql::new(&name("followers"), &name("parked"));
        let keys = super::keys::KeySql::new(&name("aggregate_keys"), &snapshots);
        let create_tables = create_tables(
            create_schema.as_deref(),
            &events,
            &sequence,
            &index,
            &snapshots,
            &tracking,
        ) + &followers.create_tables
            + &keys.create_table;

        let function = InsertFunction::new(
            &insert_function_name,
            &Tables {
                events: &events,
                sequence: &sequence,
                tracking: &tracking,
            },
            &Keys {
                channel: &channel,
                aggregate_class,
                sequence_key,
            },
            notify,
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
            tracking: TrackingSql::new(schema, prefix, &tracking),
            followers,
            keys,
            channel,
            sequence_cache: catalogue_query(
                "SELECT cache_size FROM pg_catalog.pg_sequences \
                 WHERE schemaname = $schema AND sequencename = $name",
                schema,
                &format!("{prefix}stored_events_notification_id_seq"),
            ),
            function,
            select_events_ascending: select_events("ASC"),
            select_events_descending: select_events("DESC"),
            select_notifications: select_notifications(""),
            select_notifications_with_topics: select_notifications(" AND e.topic = ANY($3)"),
            max_notification_id: format!("{safe_bound} SELECT last FROM safe"),
            select_notification_of: format!(
                "SELECT notification_id, {EVENT_COLUMNS} FROM {events} \
                 WHERE originator_id = $1 AND originator_version = $2"
            ),
            insert_snapshot: format!(
                "INSERT INTO {snapshots} ({EVENT_COLUMNS}) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (originator_id, originator_version) DO NOTHING"
            ),
            select_snapshot: format!(
                "SELECT {EVENT_COLUMNS} FROM {snapshots} \
                 WHERE originator_id = $1 AND originator_version <= $2 \
                 ORDER BY originator_version DESC LIMIT 1"
            ),
            select_snapshot_and_events: select_snapshot_and_events(&events, &snapshots),
            find_conflict: format!(
                "SELECT e.originator_id, e.originator_version FROM {events} AS e \
                 JOIN unnest($1::uuid[], $2::bigint[]) WITH ORDINALITY AS b(i, v, o) \
                 ON e.originator_id = b.i AND e.originator_version = b.v ORDER BY b.o LIMIT 1"
            ),
        }
    }

    pub(super) fn text(&self, query: Query) -> &str {
        match query {
            Query::InsertEvents => &self.function.insert_events,
            Query::InsertBatch => &self.function.insert_batch,
            Query::SelectEventsAscending => &self.select_events_ascending,
            Query::SelectEventsDescending => &self.select_events_descending,
            Query::SelectNotifications => &self.select_notifications,
            Query::SelectNotificationsWithTopics => &self.select_notifications_with_topics,
            Query::MaxNotificationId => &self.max_notification_id,
            Query::SelectNotificationOf => &self.select_notification_of,
            Query::InsertSnapshot => &self.insert_snapshot,
            Query::SelectSnapshot => &self.select_snapshot,
            Query::SelectSnapshotAndEvents => &self.select_snapshot_and_events,
            Query::FindConflict => &self.find_conflict,
            Query::SelectTracking => &self.tracking.select,
            Query::SelectAllTracking => &self.tracking.select_all,
            Query::RaiseEpoch => &self.tracking.raise_epoch,
            Query::RewindTracking => &self.tracking.rewind,
            Query::RegisterFollower => &self.followers.register,
            Query::SelectFollower => &self.followers.select,
            Query::UpdateFollower => &self.followers.update,
            Query::InsertParked => &self.followers.insert_parked,
            Query::ReleaseParked => &self.followers.release_parked,
            Query::DeleteParkedOfFollower => &self.followers.delete_parked_of_follower,
            Query::SelectParked => &self.followers.select_parked,
        }
    }
}

/// One statement for a load: the latest snapshot within `$2` (kind 0),
/// then the first `$3` events of `$1` within `$2` from that snapshot's
/// version on (kind 1). An `Append` runs its arms in order; the reader
/// checks it.
fn select_snapshot_and_events(events: &str, snapshots: &str) -> String {
    format!(
        "(SELECT 0, {EVENT_COLUMNS} FROM {snapshots} \
             WHERE originator_id = $1 AND originator_version <= $2 \
             ORDER BY originator_version DESC LIMIT 1) \
         UNION ALL \
         (SELECT 1, {EVENT_COLUMNS} FROM {events} \
             WHERE originator_id = $1 AND originator_version <= $2 \
             AND originator_version >= coalesce((SELECT max(originator_version) \
                 FROM {snapshots} WHERE originator_id = $1 AND originator_version <= $2), 1) \
             ORDER BY originator_version LIMIT $3)"
    )
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
        let a = Sql::new("public", "a_", false, true);
        let b = Sql::new("public", "b_", false, true);
        assert_ne!(a.function.body, b.function.body);
        assert_eq!(
            Sql::new("public", "a_", false, true).function.body,
            a.function.body
        );
        // The notification channel likewise, within PostgreSQL's 63 bytes.
        assert_ne!(a.channel, b.channel);
        assert_ne!(a.channel, Sql::new("other", "a_", false, true).channel);
        assert_eq!(Sql::new("public", "a_", false, true).channel, a.channel);
        assert!(a.channel.len() <= 63 && a.channel.starts_with("es_"));
    }
}
