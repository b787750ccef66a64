//! Checkpoints of a SQLite file's write-ahead log, off the committing
//! thread.
//!
//! SQLite's own automatic checkpoint runs inside the commit that takes the
//! log past `wal_autocheckpoint` pages: that commit copies the pages back
//! into the database file and waits for two disk syncs before it returns.
//! With many small commits (a system's single-thread runner: one commit per
//! order) those syncs were half of the elapsed time on a disk whose syncs
//! take milliseconds. Here the writer connection only notes the log's size
//! after each commit (a WAL hook, which replaces SQLite's automatic
//! checkpoint); past the threshold, a thread of the file's own, with a
//! connection of its own, runs a passive checkpoint, which neither waits
//! for nor blocks the writer or readers.
//!
//! A passive checkpoint copies what was committed when it began; the log
//! starts again from its beginning only once it is copied entirely and a
//! new write begins, which a writer that never pauses can keep from
//! happening. So the committing thread checkpoints itself, as SQLite would
//! have, once the log reaches [`INLINE_FACTOR`] times the threshold: the
//! log stays bounded whatever the background thread manages, and that
//! checkpoint has little left to copy.
//!
//! While the log stays past the threshold, the background thread is asked
//! again only each time the log has grown by another threshold's worth of
//! pages, not after every commit: every checkpoint syncs the disk twice,
//! and a thread asked after every commit checkpointed without pause,
//! syncing the log while the writer was writing it (8,037 syncs for 6,000
//! orders of a system's single-thread runner; 117 since).

use std::cell::Cell;
use std::ffi::c_int;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use rusqlite::hooks::Wal;
use rusqlite::{Connection, OpenFlags};

use crate::recorder::Synchronous;

/// SQLite's default `wal_autocheckpoint`, kept as the default threshold.
pub(super) const DEFAULT_PAGES: u32 = 1000;

/// The committing thread checkpoints itself once the log holds this many
/// times the threshold.
pub(super) const INLINE_FACTOR: u32 = 4;

thread_local! {
    /// Pages in the log after this thread's latest commit on a writer
    /// connection, noted by the WAL hook and taken when the writer is let
    /// go.
    static WAL_PAGES: Cell<u32> = const { Cell::new(0) };
}

/// The WAL hook of writer connections: notes the log's size.
#[allow(clippy::unnecessary_wraps)] // The hook's signature.
fn note_pages(_: &Wal, pages: c_int) -> rusqlite::Result<()> {
    WAL_PAGES.with(|p| p.set(u32::try_from(pages).unwrap_or(0)));
    Ok(())
}

/// The background checkpoints of one database file.
#[derive(Debug)]
pub(super) struct Checkpointer {
    path: PathBuf,
    synchronous: Synchronous,
    pub(super) threshold: u32,
    /// The log's size at which the background thread is next asked for a
    /// checkpoint: the threshold, or a threshold past the size at which it
    /// was last asked while the log has not started again.
    next_wake: AtomicU32,
    /// How many times the background thread was asked for a checkpoint
    /// (for the tests).
    #[cfg(test)]
    pub(super) requests: AtomicU32,
    /// Held by whoever checkpoints (the thread or a committing thread):
    /// one passive checkpoint fails outright while another runs, so the
    /// committing thread waits for the thread's to end instead.
    running: Arc<Mutex<()>>,
    /// The thread, started at the first checkpoint it is asked for, and
    /// how to wake it; dropping the sender ends it.
    thread: Mutex<Option<(SyncSender<()>, JoinHandle<()>)>>,
}

impl Checkpointer {
    /// Takes over automatic checkpoints of the file at `path` from the
    /// writer connection `conn` at `threshold` pages.
    pub(super) fn install(
        conn: &Connection,
        path: PathBuf,
        synchronous: Synchronous,
        threshold: u32,
    ) -> Self {
        conn.wal_hook(Some(note_pages));
        Self {
            path,
            synchronous,
            threshold,
            next_wake: AtomicU32::new(threshold),
            #[cfg(test)]
            requests: AtomicU32::new(0),
            running: Arc::new(Mutex::new(())),
            thread: Mutex::new(None),
        }
    }

    /// Called when this thread lets the writer `conn` go: past the
    /// threshold, asks the background thread for a checkpoint, or, past
    /// [`INLINE_FACTOR`] times it, checkpoints on `conn` itself (unless a
    /// transaction is still open on it).
    pub(super) fn after_write(&self, conn: &Connection) {
        let pages = WAL_PAGES.with(|p| p.replace(0));
        if pages == 0 {
            // No commit since the last call (a read, or a rollback).
            return;
        }
        // One writer at a time holds the connection: relaxed order is enough.
        if pages < self.threshold {
            // The log started again: the next request is at the threshold.
            self.next_wake.store(self.threshold, Ordering::Relaxed);
            return;
        }
        if pages >= self.threshold.saturating_mul(INLINE_FACTOR) && conn.is_autocommit() {
            // As SQLite's own automatic checkpoint: a failure leaves the
            // log as it was, to be copied by a later checkpoint.
            let _running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = passive_checkpoint(conn);
            return;
        }
        if pages < self.next_wake.load(Ordering::Relaxed) {
            // Asked already for the log as it was a few commits ago.
            return;
        }
        self.next_wake
            .store(pages.saturating_add(self.threshold), Ordering::Relaxed);
        #[cfg(test)]
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.wake();
    }

    /// Wakes the background thread, starting it the first time.
    fn wake(&self) {
        #[cfg(test)]
        if tests::NO_THREAD.with(Cell::get) {
            return;
        }
        let mut thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner);
        if thread.is_none() {
            // Room for one request: one pending is as good as several.
            let (sender, receiver) = sync_channel(1);
            let path = self.path.clone();
            let synchronous = self.synchronous;
            let running = Arc::clone(&self.running);
            let spawned = std::thread::Builder::new()
                .name("es-sqlite-checkpoint".into())
                .spawn(move || run(&path, synchronous, &running, &receiver));
            match spawned {
                Ok(handle) => *thread = Some((sender, handle)),
                // No thread: the committing thread checkpoints once the
                // log reaches the inline limit.
                Err(_) => return,
            }
        }
        if let Some((sender, _)) = thread.as_ref() {
            // Full: a wake-up is pending already. Disconnected: the thread
            // ended (it panicked), and the inline limit still holds.
            let _ = sender.try_send(());
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let thread = self
            .thread
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((sender, handle)) = thread {
            drop(sender);
            // The thread ends after the checkpoint in progress, if any, and
            // closes its connection: the file is let go when this returns.
            let _ = handle.join();
        }
    }
}

/// The background thread: a passive checkpoint for each wake-up, on a
/// connection of its own, until the sender is dropped.
fn run(
    path: &std::path::Path,
    synchronous: Synchronous,
    running: &Mutex<()>,
    wakes: &Receiver<()>,
) {
    let mut conn = None;
    while wakes.recv().is_ok() {
        if conn.is_none() {
            conn = open(path, synchronous);
        }
        let _running = running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = &conn
            && passive_checkpoint(c).is_err()
        {
            // Opened afresh at the next wake-up.
            conn = None;
        }
    }
}

/// The background thread's connection: the writer's `synchronous`, so
/// that a checkpoint syncs the disk as one by the writer would.
fn open(path: &std::path::Path, synchronous: Synchronous) -> Option<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).ok()?;
    conn.pragma_update(None, "synchronous", synchronous.pragma_value())
        .ok()?;
    Some(conn)
}

/// A passive checkpoint on `conn`: copies what it can without waiting for
/// any other connection.
fn passive_checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}

#[cfg(test)]
#[path = "checkpoint_tests.rs"]
mod tests;
