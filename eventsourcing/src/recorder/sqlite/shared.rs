//! One set of connections per SQLite file in a process: recorders of
//! several applications on one file (each with its table prefix) share
//! its writer connection and its readers.
//!
//! With a connection each, every commit of one application emptied the
//! page cache of the others' connections (in WAL mode a connection starts
//! a read afresh whenever another connection wrote), so a system of
//! applications on one file spent most of its time reading pages back.
//! Shared, writes of the applications are serialised by a mutex instead
//! of SQLite's file lock, and reads run on the writer connection when it
//! is free, whose cache its own commits keep warm.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::checkpoint::{self, Checkpointer};
use super::readers::ReaderPool;
use super::scope::Holder;
use super::{STATEMENT_CACHE_CAPACITY, db, setup};
use crate::error::{Error, Result};
use crate::recorder::Synchronous;

/// The connections of one database file.
#[derive(Debug)]
pub(super) struct Connections {
    pub(super) writer: Mutex<Connection>,
    pub(super) readers: ReaderPool,
    /// The thread holding the writer's transaction open, if any
    /// (`scope.rs`).
    pub(super) holder: Holder,
    /// Copies the write-ahead log back into the file in the background
    /// (`None`: automatic checkpoints were switched off).
    pub(super) checkpointer: Option<Checkpointer>,
}

impl Connections {
    /// Takes the writer connection ([`lock_writer`]).
    pub(super) fn lock_writer(&self) -> Result<WriterGuard<'_>> {
        lock_writer(&self.writer, self.checkpointer.as_ref())
    }
}

/// What a set of connections was opened with: recorders share it only
/// when they ask for the same.
#[derive(Debug, PartialEq)]
struct Key {
    path: PathBuf,
    synchronous: Synchronous,
    busy_timeout: Duration,
    wal_autocheckpoint: Option<u32>,
}

static OPEN: Mutex<Vec<(Key, Weak<Connections>)>> = Mutex::new(Vec::new());

/// The connections of the file at `path`: those a live recorder of this
/// process opened with the same settings, or new ones.
pub(super) fn open(
    path: &Path,
    synchronous: Synchronous,
    busy_timeout: Duration,
    wal_autocheckpoint: Option<u32>,
) -> Result<Arc<Connections>> {
    let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
    open.retain(|(_, weak)| weak.strong_count() > 0);
    // The file exists once it has been opened; before, it has no shared
    // connections to find.
    let canonical = std::fs::canonicalize(path).ok();
    if let Some(canonical) = &canonical {
        let key = Key {
            path: canonical.clone(),
            synchronous,
            busy_timeout,
            wal_autocheckpoint,
        };
        if let Some(shared) = open
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, weak)| weak.upgrade())
        {
            return Ok(shared);
        }
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(db)?;
    conn.busy_timeout(busy_timeout).map_err(db)?;
    setup::switch_to_wal(&conn, path, busy_timeout)?;
    conn.pragma_update(None, "synchronous", synchronous.pragma_value())
        .map_err(db)?;
    // What a delete frees is overwritten, so that a forgotten aggregate's
    // data key does not stay readable in free pages.
    conn.pragma_update(None, "secure_delete", true)
        .map_err(db)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    setup::stable_plans(&conn)?;
    let canonical = match canonical {
        Some(path) => path,
        None => std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned()),
    };
    let checkpointer = match wal_autocheckpoint.unwrap_or(checkpoint::DEFAULT_PAGES) {
        0 => {
            conn.pragma_update(None, "wal_autocheckpoint", 0)
                .map_err(db)?;
            None
        }
        pages => Some(Checkpointer::install(
            &conn,
            canonical.clone(),
            synchronous,
            pages,
        )),
    };
    let shared = Arc::new(Connections {
        writer: Mutex::new(conn),
        readers: ReaderPool::new(path.to_owned(), busy_timeout),
        holder: Holder::default(),
        checkpointer,
    });
    let path = canonical;
    open.push((
        Key {
            path,
            synchronous,
            busy_timeout,
            wal_autocheckpoint,
        },
        Arc::downgrade(&shared),
    ));
    Ok(shared)
}

thread_local! {
    /// Whether this thread's reads go to the writer connection when it is
    /// free.
    static WRITER_READS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread's reads go to the writer connection when it is
/// free.
pub(super) fn writer_reads() -> bool {
    WRITER_READS.with(std::cell::Cell::get)
}

/// Runs `f` with this thread's reads of SQLite files going to the writer
/// connection when it is free: for a thread that does all of a process's
/// work in turn (the single-thread runner), whose reads then find the
/// pages its writes left in the cache. Other threads' writes wait while
/// such a read runs, so threads working side by side should not.
pub(crate) fn reading_on_writer<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            WRITER_READS.with(|w| w.set(self.0));
        }
    }
    let _reset = Reset(WRITER_READS.with(|w| w.replace(true)));
    f()
}

thread_local! {
    /// The writer connections this thread holds (by address).
    static HELD: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A writer connection held by this thread.
pub(super) struct WriterGuard<'a> {
    guard: MutexGuard<'a, Connection>,
    key: usize,
    checkpointer: Option<&'a Checkpointer>,
}

impl std::ops::Deref for WriterGuard<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.guard
    }
}

impl std::ops::DerefMut for WriterGuard<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.guard
    }
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        if let Some(checkpointer) = self.checkpointer {
            checkpointer.after_write(&self.guard);
        }
        let _ = HELD.try_with(|held| held.borrow_mut().retain(|&k| k != self.key));
    }
}

/// Takes the writer connection `writer`, waiting for other threads; an
/// error instead of waiting forever when this thread holds it already (a
/// write from inside another write on the same file, say a SQL
/// projection's handler saving to an application on its file). Letting it
/// go tells `checkpointer`, if any, how large this thread's commits left
/// the write-ahead log.
pub(super) fn lock_writer<'a>(
    writer: &'a Mutex<Connection>,
    checkpointer: Option<&'a Checkpointer>,
) -> Result<WriterGuard<'a>> {
    let key = std::ptr::from_ref(writer) as usize;
    if HELD.with(|held| held.borrow().contains(&key)) {
        return Err(Error::Database(
            "this thread is already writing to this SQLite database (a write from inside \
             another write on the same file would wait for itself)"
                .into(),
        ));
    }
    let guard = writer.lock().unwrap_or_else(PoisonError::into_inner);
    HELD.with(|held| held.borrow_mut().push(key));
    Ok(WriterGuard {
        guard,
        key,
        checkpointer,
    })
}
