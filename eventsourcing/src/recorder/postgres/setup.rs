//! Setting up a schema for the PostgreSQL recorder: the tables, the insert
//! function and the checks they rely on, in one transaction.

use postgres::Client;

use super::errors::db;
use super::sql::Sql;
use crate::error::{Error, Result};
use crate::recorder::is_version_1;

/// Creates what is missing and migrates a version-1 tracking table, in one
/// transaction under the DDL lock, installs the insert function, and checks
/// the sequence.
pub(super) fn create_tables(client: &mut Client, sql: &Sql) -> Result<()> {
    let mut tx = client.transaction().map_err(db)?;
    tx.batch_execute(&sql.create_tables).map_err(db)?;
    // `create_tables` took the DDL lock and left an existing tracking table
    // as it was: one of version 1 is migrated now, under that lock and in
    // this transaction.
    let columns: Vec<String> = tx
        .query(&sql.tracking.layout, &[])
        .map_err(db)?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(db)?;
    if is_version_1(&columns) {
        tx.batch_execute(&sql.tracking.migrate).map_err(db)?;
    }
    // Replaced only when its text differs, so that processes opening the
    // same tables do not rewrite the catalogue each time. Earlier versions
    // took other arguments (version 1 no tracking update, the next one no
    // `notify`): they are dropped, so that no stale overload lingers for a
    // writer to call.
    let function = &sql.function;
    let installed: Option<String> = tx
        .query_one(
            "SELECT (SELECT prosrc FROM pg_catalog.pg_proc WHERE oid = to_regprocedure($1))",
            &[&function.signature],
        )
        .and_then(|row| row.try_get(0))
        .map_err(db)?;
    if installed.as_deref() != Some(function.body.as_str()) {
        tx.batch_execute(&function.create).map_err(db)?;
    }
    for old in &function.old_signatures {
        let found: bool = tx
            .query_one("SELECT to_regprocedure($1) IS NOT NULL", &[old])
            .and_then(|row| row.try_get(0))
            .map_err(db)?;
        if found {
            tx.batch_execute(&format!("DROP FUNCTION {old}"))
                .map_err(db)?;
        }
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
