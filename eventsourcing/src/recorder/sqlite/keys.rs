//! The `aggregate_keys` table on SQLite (FORMAT.md, "Per-aggregate keys"):
//! its SQL, the rows a batch creates or deletes, the reads, and the
//! re-wrapping of a rotation.
//!
//! Deleted rows must not stay readable in the file: the writer connection
//! runs with `secure_delete`, which overwrites what a delete frees, and a
//! batch that forgets aggregates is followed by a checkpoint that copies
//! the write-ahead log into the database and truncates the log.

use rusqlite::Connection;
use rusqlite::types::ValueRef;
use uuid::Uuid;

use super::{SqliteRecorder, db, is_unique_violation};
use crate::error::{Error, Result};
use crate::recorder::{DataKeyRow, Rewrap, check_key_rows, corrupt};

/// The SQL of the `aggregate_keys` table, built once for the table prefix.
#[derive(Debug)]
pub(super) struct KeyStatements {
    pub(super) create_table: String,
    insert: String,
    select: String,
    select_except: String,
    delete: String,
    delete_snapshots: String,
    rewrap: String,
}

const KEY_COLUMNS: &str = "originator_id, wrapped_key, key_fingerprint, created_at";

impl KeyStatements {
    pub(super) fn new(prefix: &str) -> Self {
        let keys = format!("\"{prefix}aggregate_keys\"");
        let snapshots = format!("\"{prefix}snapshots\"");
        Self {
            create_table: format!(
                "CREATE TABLE IF NOT EXISTS {keys} (
                     originator_id TEXT NOT NULL PRIMARY KEY,
                     wrapped_key BLOB NOT NULL,
                     key_fingerprint TEXT NOT NULL,
                     created_at INTEGER NOT NULL
                 );"
            ),
            insert: format!("INSERT INTO {keys} ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4)"),
            select: format!("SELECT {KEY_COLUMNS} FROM {keys} WHERE originator_id = ?1"),
            select_except: format!(
                "SELECT {KEY_COLUMNS} FROM {keys} \
                 WHERE originator_id > ?2 AND key_fingerprint <> ?1 \
                 ORDER BY originator_id LIMIT ?3"
            ),
            delete: format!("DELETE FROM {keys} WHERE originator_id = ?1"),
            delete_snapshots: format!("DELETE FROM {snapshots} WHERE originator_id = ?1"),
            rewrap: format!(
                "UPDATE {keys} SET wrapped_key = ?2, key_fingerprint = ?3 \
                 WHERE originator_id = ?1 AND key_fingerprint = ?4"
            ),
        }
    }
}

/// Reads a row of `aggregate_keys`.
fn read_key(row: &rusqlite::Row<'_>) -> Result<DataKeyRow> {
    let originator_id = match row.get_ref(0).map_err(db)? {
        ValueRef::Text(text) => std::str::from_utf8(text)
            .ok()
            .and_then(|text| Uuid::try_parse(text).ok()),
        _ => None,
    }
    .ok_or_else(|| corrupt(Uuid::nil(), 0, "aggregate_keys.originator_id is not a UUID"))?;
    let bad = |what: &str| Error::DataKey {
        id: originator_id,
        reason: format!("the aggregate_keys row's {what}"),
    };
    let wrapped_key = match row.get_ref(1).map_err(db)? {
        ValueRef::Blob(blob) => blob.to_vec(),
        _ => return Err(bad("wrapped_key is not a blob")),
    };
    let key_fingerprint = match row.get_ref(2).map_err(db)? {
        ValueRef::Text(text) => {
            String::from_utf8(text.to_vec()).map_err(|_| bad("key_fingerprint is not UTF-8"))?
        }
        _ => return Err(bad("key_fingerprint is not text")),
    };
    let ValueRef::Integer(created_at) = row.get_ref(3).map_err(db)? else {
        return Err(bad("created_at is not an integer"));
    };
    Ok(DataKeyRow {
        originator_id,
        wrapped_key,
        key_fingerprint,
        created_at,
    })
}

impl SqliteRecorder {
    /// Inserts a batch's data keys and deletes the keys and snapshots of
    /// its forgotten aggregates, inside the writer's open transaction.
    pub(super) fn write_keys(
        &self,
        conn: &Connection,
        rows: &[DataKeyRow],
        forgotten: &[Uuid],
    ) -> Result<()> {
        check_key_rows(rows)?;
        if !rows.is_empty() {
            let mut insert = conn.prepare_cached(&self.sql.keys.insert).map_err(db)?;
            for row in rows {
                let mut buffer = Uuid::encode_buffer();
                let id = row.originator_id.hyphenated().encode_lower(&mut buffer);
                let params = (
                    &*id,
                    row.wrapped_key.as_slice(),
                    row.key_fingerprint.as_str(),
                    row.created_at,
                );
                match insert.execute(params) {
                    Ok(_) => {}
                    Err(error) if is_unique_violation(&error) => {
                        return Err(Error::Concurrency {
                            id: row.originator_id,
                            version: 1,
                        });
                    }
                    Err(error) => return Err(db(error)),
                }
            }
        }
        for id in forgotten {
            let mut buffer = Uuid::encode_buffer();
            let id = &*id.hyphenated().encode_lower(&mut buffer);
            conn.prepare_cached(&self.sql.keys.delete)
                .and_then(|mut delete| delete.execute([id]))
                .map_err(db)?;
            conn.prepare_cached(&self.sql.keys.delete_snapshots)
                .and_then(|mut delete| delete.execute([id]))
                .map_err(db)?;
        }
        Ok(())
    }

    /// After a batch that forgot aggregates: copies the write-ahead log
    /// into the database and truncates it, so that the deleted keys stay
    /// in neither file. Readers that hold an older snapshot of the
    /// database can keep the checkpoint from completing; it is then left
    /// to SQLite's next checkpoint, as for any write.
    pub(super) fn scrub_log(&self) -> Result<()> {
        if !self.is_file() {
            return Ok(());
        }
        let conn = self.writer()?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(db)
    }

    pub(super) fn data_key(&self, id: Uuid) -> Result<Option<DataKeyRow>> {
        let mut buffer = Uuid::encode_buffer();
        let text = &*id.hyphenated().encode_lower(&mut buffer);
        self.read(|conn| {
            let mut select = conn.prepare_cached(&self.sql.keys.select).map_err(db)?;
            let mut rows = select.query([text]).map_err(db)?;
            match rows.next().map_err(db)? {
                Some(row) => read_key(row).map(Some),
                None => Ok(None),
            }
        })
    }

    pub(super) fn data_keys_except(
        &self,
        except: &str,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<DataKeyRow>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Every id's text sorts after the empty text.
        let after = after.map_or_else(String::new, |id| id.hyphenated().to_string());
        self.read(|conn| {
            let mut select = conn
                .prepare_cached(&self.sql.keys.select_except)
                .map_err(db)?;
            let mut rows = select.query((except, after.as_str(), limit)).map_err(db)?;
            let mut found = Vec::new();
            while let Some(row) = rows.next().map_err(db)? {
                found.push(read_key(row)?);
            }
            Ok(found)
        })
    }

    pub(super) fn rewrap(&self, rewraps: &[Rewrap]) -> Result<usize> {
        self.write(|conn| {
            let mut update = conn.prepare_cached(&self.sql.keys.rewrap).map_err(db)?;
            let mut changed = 0;
            for rewrap in rewraps {
                let mut buffer = Uuid::encode_buffer();
                let id = rewrap
                    .row
                    .originator_id
                    .hyphenated()
                    .encode_lower(&mut buffer);
                changed += update
                    .execute((
                        &*id,
                        rewrap.row.wrapped_key.as_slice(),
                        rewrap.row.key_fingerprint.as_str(),
                        rewrap.expected.as_str(),
                    ))
                    .map_err(db)?;
            }
            Ok(changed)
        })
    }
}
