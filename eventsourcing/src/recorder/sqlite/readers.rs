//! Reader connections of a file database: opened on demand, a few kept
//! for reuse.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{STATEMENT_CACHE_CAPACITY, db};
use crate::error::Result;

/// At most this many idle reader connections are kept for reuse.
pub(super) const MAX_IDLE_READERS: usize = 8;

/// Reader connections of a file database, opened on demand.
#[derive(Debug)]
pub(super) struct ReaderPool {
    path: PathBuf,
    busy_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
}

impl ReaderPool {
    /// No connection yet to the database file at `path`; each one opened
    /// waits at most `busy_timeout` for another connection's lock.
    pub(super) fn new(path: PathBuf, busy_timeout: Duration) -> Self {
        Self {
            path,
            busy_timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn checkout(&self) -> Result<Connection> {
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
        super::setup::stable_plans(&conn)?;
        Ok(conn)
    }

    pub(super) fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
    }
}
