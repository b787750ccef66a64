//! The `aggregate_keys` table on PostgreSQL (FORMAT.md, "Per-aggregate
//! keys"): its SQL, the rows a batch creates or deletes in its explicit
//! transaction, the reads, and the re-wrapping of a rotation.
//!
//! A deleted row stays in the table's pages until `VACUUM` reclaims them
//! (and in the write-ahead log and its archives): the README's section on
//! erasure says what that means.

use postgres::Transaction;
use postgres::error::SqlState;
use uuid::Uuid;

use super::PostgresRecorder;
use super::errors::{Call, Failure};
use crate::error::{Error, Result};
use crate::recorder::{DataKeyRow, Rewrap};

/// The SQL of the `aggregate_keys` table for one schema and prefix.
#[derive(Debug)]
pub(super) struct KeySql {
    pub(super) create_table: String,
    insert: String,
    select: String,
    select_except: String,
    delete: String,
    delete_snapshots: String,
    rewrap: String,
}

const KEY_COLUMNS: &str = "originator_id, wrapped_key, key_fingerprint, created_at";

impl KeySql {
    /// `keys` and `snapshots` are the qualified table names.
    pub(super) fn new(keys: &str, snapshots: &str) -> Self {
        Self {
            create_table: format!(
                "CREATE TABLE IF NOT EXISTS {keys} (
                     originator_id UUID NOT NULL PRIMARY KEY,
                     wrapped_key BYTEA NOT NULL,
                     key_fingerprint TEXT NOT NULL,
                     created_at BIGINT NOT NULL
                 );"
            ),
            insert: format!("INSERT INTO {keys} ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4)"),
            select: format!("SELECT {KEY_COLUMNS} FROM {keys} WHERE originator_id = $1"),
            select_except: format!(
                "SELECT {KEY_COLUMNS} FROM {keys} \
                 WHERE ($2::uuid IS NULL OR originator_id > $2) AND key_fingerprint <> $1 \
                 ORDER BY originator_id LIMIT $3"
            ),
            delete: format!("DELETE FROM {keys} WHERE originator_id = $1"),
            delete_snapshots: format!("DELETE FROM {snapshots} WHERE originator_id = $1"),
            rewrap: format!(
                "UPDATE {keys} SET wrapped_key = $2, key_fingerprint = $3 \
                 WHERE originator_id = $1 AND key_fingerprint = $4"
            ),
        }
    }
}

fn read_key(row: &postgres::Row) -> Result<DataKeyRow, postgres::Error> {
    Ok(DataKeyRow {
        originator_id: row.try_get(0)?,
        wrapped_key: row.try_get(1)?,
        key_fingerprint: row.try_get(2)?,
        created_at: row.try_get(3)?,
    })
}

impl PostgresRecorder {
    /// Inserts `rows` and deletes the keys and snapshots of `forgotten`,
    /// in the open transaction `tx`. A key already there is a concurrency
    /// conflict at version 1: another writer created the aggregate first.
    pub(super) fn write_keys(
        &self,
        tx: &mut Transaction<'_>,
        rows: &[DataKeyRow],
        forgotten: &[Uuid],
    ) -> Result<(), Failure> {
        let sql = &self.sql.keys;
        for row in rows {
            let inserted = tx.execute(
                &sql.insert,
                &[
                    &row.originator_id,
                    &row.wrapped_key,
                    &row.key_fingerprint,
                    &row.created_at,
                ],
            );
            match inserted {
                Ok(_) => {}
                Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    return Err(Failure::Other(Error::Concurrency {
                        id: row.originator_id,
                        version: 1,
                    }));
                }
                Err(error) => return Err(error.into()),
            }
        }
        for id in forgotten {
            tx.execute(&sql.delete, &[id])?;
            tx.execute(&sql.delete_snapshots, &[id])?;
        }
        Ok(())
    }

    pub(super) fn data_key(&self, id: Uuid) -> Result<Option<DataKeyRow>> {
        self.run(Call::Read, |connection| {
            let row = connection.client.query_opt(&self.sql.keys.select, &[&id])?;
            Ok(row.as_ref().map(read_key).transpose()?)
        })
    }

    pub(super) fn data_keys_except(
        &self,
        except: &str,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<DataKeyRow>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(Call::Read, |connection| {
            let rows = connection
                .client
                .query(&self.sql.keys.select_except, &[&except, &after, &limit])?;
            Ok(rows.iter().map(read_key).collect::<Result<_, _>>()?)
        })
    }

    pub(super) fn rewrap(&self, rewraps: &[Rewrap]) -> Result<usize> {
        self.run(Call::Write, |connection| {
            let mut tx = connection.client.transaction()?;
            let mut changed = 0;
            for rewrap in rewraps {
                changed += tx.execute(
                    &self.sql.keys.rewrap,
                    &[
                        &rewrap.row.originator_id,
                        &rewrap.row.wrapped_key,
                        &rewrap.row.key_fingerprint,
                        &rewrap.expected,
                    ],
                )?;
            }
            tx.commit()?;
            Ok(usize::try_from(changed).unwrap_or(usize::MAX))
        })
    }
}
