//! The SQL of the SQLite recorder, built once for the table prefix.

/// The SQL of every fixed statement, built once for the table prefix.
#[derive(Debug)]
pub(super) struct Statements {
    pub(super) create_tables: String,
    pub(super) tracking_layout: String,
    pub(super) migrate_tracking: String,
    pub(super) insert_event: String,
    pub(super) select_events_ascending: String,
    pub(super) select_events_descending: String,
    pub(super) select_notifications: String,
    stored_events: String,
    pub(super) max_notification_id: String,
    pub(super) select_notification_of: String,
    pub(super) insert_snapshot: String,
    pub(super) select_snapshot: String,
    pub(super) select_snapshot_and_events: String,
    pub(super) select_tracking: String,
    pub(super) select_all_tracking: String,
    pub(super) update_tracking: String,
    pub(super) insert_tracking: String,
    pub(super) raise_epoch: String,
    pub(super) rewind_tracking: String,
    pub(super) followers: FollowerStatements,
    pub(super) keys: super::keys::KeyStatements,
}

/// The SQL of the `followers` and `parked` tables.
#[derive(Debug)]
pub(super) struct FollowerStatements {
    create_tables: String,
    pub(super) register: String,
    pub(super) select: String,
    pub(super) update: String,
    pub(super) insert_parked: String,
    pub(super) delete_parked: String,
    pub(super) delete_parked_of_follower: String,
    pub(super) select_parked: String,
}

pub(super) const EVENT_COLUMNS: &str = "originator_id, originator_version, topic, state";

/// The key of a tracking row, bound as `?1`, `?2`, `?3` (`partition` is a
/// keyword of SQLite's window functions, hence quoted).
const TRACKING_KEY: &str = "application_name = ?1 AND upstream_name = ?2 AND \"partition\" = ?3";

/// The columns of a tracking row, in FORMAT.md's order.
const TRACKING_COLUMNS: &str =
    "application_name, upstream_name, \"partition\", notification_id, epoch";

/// The columns of a `followers` row.
const FOLLOWER_COLUMNS: &str = "application_name, kind, version";

/// The columns of a `parked` row.
const PARKED_COLUMNS: &str =
    "application_name, upstream_name, notification_id, originator_id, topic, reason";

/// Starts a write transaction, taking the write lock at once.
pub(super) const BEGIN_IMMEDIATE: &str = "BEGIN IMMEDIATE";
/// Ends a write transaction.
pub(super) const COMMIT: &str = "COMMIT";

/// Every row of the `tracking` table, by follower, upstream and partition.
fn select_all_tracking(tracking: &str) -> String {
    format!("SELECT {TRACKING_COLUMNS} FROM {tracking} ORDER BY 1, 2, 3")
}

/// Creates the `tracking` table (FORMAT.md version 2) if missing.
fn create_tracking(tracking: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {tracking} (
             application_name TEXT NOT NULL,
             upstream_name TEXT NOT NULL,
             \"partition\" INTEGER NOT NULL,
             notification_id INTEGER NOT NULL,
             epoch INTEGER NOT NULL,
             PRIMARY KEY (application_name, upstream_name, \"partition\")
         );"
    )
}

impl Statements {
    pub(super) fn new(prefix: &str) -> Self {
        let events = format!("\"{prefix}stored_events\"");
        let snapshots = format!("\"{prefix}snapshots\"");
        let tracking = format!("\"{prefix}tracking\"");
        let old_tracking = format!("\"{prefix}tracking_v1\"");
        let followers = FollowerStatements::new(prefix);
        let create_tracking = create_tracking(&tracking);
        let select_events = |order: &str| {
            format!(
                "SELECT {EVENT_COLUMNS} FROM {events} \
                 WHERE originator_id = ?1 AND originator_version > ?2 AND originator_version <= ?3 \
                 ORDER BY originator_version {order} LIMIT ?4"
            )
        };
        Self {
            // Run in the transaction that opens the database (see `setup`).
            create_tables: format!(
                "CREATE TABLE IF NOT EXISTS {events} (
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
                 {create_tracking}
                 {create_followers}",
                create_followers = followers.create_tables,
            ),
            tracking_layout: format!(
                "SELECT name FROM pragma_table_info('{prefix}tracking') ORDER BY cid"
            ),
            // Version 1 kept one row per processed notification; version 2
            // keeps where each follower stands: the greatest of them, in
            // partition 0 at epoch 0.
            migrate_tracking: format!(
                "ALTER TABLE {tracking} RENAME TO {old_tracking};
                 {create_tracking}
                 INSERT INTO {tracking} ({TRACKING_COLUMNS})
                     SELECT application_name, upstream_name, 0, MAX(notification_id), 0
                     FROM {old_tracking} GROUP BY application_name, upstream_name;
                 DROP TABLE {old_tracking};"
            ),
            insert_event: format!("INSERT INTO {events} ({EVENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4)"),
            select_events_ascending: select_events("ASC"),
            select_events_descending: select_events("DESC"),
            select_notifications: format!(
                "SELECT notification_id, {EVENT_COLUMNS} FROM {events} \
                 WHERE notification_id >= ?1 ORDER BY notification_id LIMIT ?2"
            ),
            max_notification_id: format!("SELECT MAX(notification_id) FROM {events}"),
            select_notification_of: format!(
                "SELECT notification_id, {EVENT_COLUMNS} FROM {events} \
                 WHERE originator_id = ?1 AND originator_version = ?2"
            ),
            insert_snapshot: format!(
                "INSERT INTO {snapshots} ({EVENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (originator_id, originator_version) DO NOTHING"
            ),
            select_snapshot: format!(
                "SELECT {EVENT_COLUMNS} FROM {snapshots} \
                 WHERE originator_id = ?1 AND originator_version <= ?2 \
                 ORDER BY originator_version DESC LIMIT 1"
            ),
            select_snapshot_and_events: select_snapshot_and_events(&events, &snapshots),
            select_tracking: format!(
                "SELECT notification_id, epoch FROM {tracking} WHERE {TRACKING_KEY}"
            ),
            // The compare-and-set: ?4 the new position, ?5 the expected
            // one, ?6 the epoch.
            update_tracking: format!(
                "UPDATE {tracking} SET notification_id = ?4 \
                 WHERE {TRACKING_KEY} AND notification_id = ?5 AND epoch = ?6"
            ),
            // A missing row, created at epoch 0 unless another was first.
            insert_tracking: format!(
                "INSERT INTO {tracking} ({TRACKING_COLUMNS}) VALUES (?1, ?2, ?3, ?4, 0) \
                 ON CONFLICT DO NOTHING"
            ),
            // No row comes back when the epoch cannot grow.
            raise_epoch: format!(
                "INSERT INTO {tracking} ({TRACKING_COLUMNS}) VALUES (?1, ?2, ?3, 0, 1) \
                 ON CONFLICT (application_name, upstream_name, \"partition\") \
                 DO UPDATE SET epoch = epoch + 1 WHERE epoch < {max} \
                 RETURNING notification_id, epoch",
                max = i64::MAX
            ),
            select_all_tracking: select_all_tracking(&tracking),
            // A rebuild's rewind: ?4 the epoch the row must still have.
            rewind_tracking: format!(
                "UPDATE {tracking} SET notification_id = 0 WHERE {TRACKING_KEY} AND epoch = ?4"
            ),
            followers,
            keys: super::keys::KeyStatements::new(prefix),
            stored_events: events,
        }
    }

    /// `select_notifications` restricted to `count` topics, bound from `?3` on.
    pub(super) fn select_notifications_with_topics(&self, count: usize) -> String {
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

impl FollowerStatements {
    fn new(prefix: &str) -> Self {
        let followers = format!("\"{prefix}followers\"");
        let parked = format!("\"{prefix}parked\"");
        Self {
            // Run with the other tables' (see `setup`).
            create_tables: format!(
                "CREATE TABLE IF NOT EXISTS {followers} (
                     application_name TEXT NOT NULL PRIMARY KEY,
                     kind TEXT NOT NULL,
                     version INTEGER NOT NULL
                 );
                 CREATE TABLE IF NOT EXISTS {parked} (
                     application_name TEXT NOT NULL,
                     upstream_name TEXT NOT NULL,
                     notification_id INTEGER NOT NULL,
                     originator_id TEXT NOT NULL,
                     topic TEXT NOT NULL,
                     reason TEXT NOT NULL,
                     PRIMARY KEY (application_name, upstream_name, notification_id)
                 );"
            ),
            register: format!(
                "INSERT INTO {followers} ({FOLLOWER_COLUMNS}) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (application_name) DO NOTHING"
            ),
            select: format!("SELECT kind, version FROM {followers} WHERE application_name = ?1"),
            update: format!(
                "INSERT INTO {followers} ({FOLLOWER_COLUMNS}) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (application_name) \
                 DO UPDATE SET kind = excluded.kind, version = excluded.version"
            ),
            // No row is inserted when the notification is already parked.
            insert_parked: format!(
                "INSERT INTO {parked} ({PARKED_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT DO NOTHING"
            ),
            delete_parked: format!(
                "DELETE FROM {parked} \
                 WHERE application_name = ?1 AND upstream_name = ?2 AND notification_id = ?3"
            ),
            delete_parked_of_follower: format!("DELETE FROM {parked} WHERE application_name = ?1"),
            // The default collation compares bytes: the order of Rust's
            // strings, as every backend returns them.
            select_parked: format!(
                "SELECT upstream_name, notification_id, originator_id, topic, reason \
                 FROM {parked} WHERE application_name = ?1 \
                 ORDER BY upstream_name, notification_id"
            ),
        }
    }
}

/// One statement for a load: the latest snapshot within `?2` (kind 0), then
/// the events of `?1` within `?2` from that snapshot's version on (kind 1).
/// SQLite runs the arms of a `UNION ALL` in order; the reader checks it.
fn select_snapshot_and_events(events: &str, snapshots: &str) -> String {
    format!(
        "SELECT * FROM (SELECT 0, {EVENT_COLUMNS} FROM {snapshots} \
             WHERE originator_id = ?1 AND originator_version <= ?2 \
             ORDER BY originator_version DESC LIMIT 1) \
         UNION ALL \
         SELECT * FROM (SELECT 1, {EVENT_COLUMNS} FROM {events} \
             WHERE originator_id = ?1 AND originator_version <= ?2 \
             AND originator_version >= (SELECT coalesce(max(originator_version), 1) \
                 FROM {snapshots} WHERE originator_id = ?1 AND originator_version <= ?2) \
             ORDER BY originator_version)"
    )
}
