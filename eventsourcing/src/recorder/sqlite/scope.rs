//! One transaction for a run of writes on one thread: inside
//! [`in_one_transaction`], the first read or write of a file database on
//! this thread begins a `BEGIN IMMEDIATE` transaction on its writer
//! connection and keeps it open; every later read and write of the file on
//! this thread joins it (each write in a savepoint of its own, so a failed
//! write undoes only itself); the scope's end commits it.
//!
//! The single-thread runner drains a system's followers in one such scope:
//! one commit where each follower's batch made its own, and reads that
//! run inside the open transaction instead of starting one each. Other
//! threads' writes to the file wait for the scope to end; their reads, on
//! reader connections, see the file as it was before the scope began.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, ThreadId};

use rusqlite::Connection;

use super::db;
use super::shared::{Connections, WriterGuard};
use super::statements::{BEGIN_IMMEDIATE, COMMIT};
use crate::error::{Error, Result};
use crate::signal::Signal;

/// What to do when a scope's commit fails (or a panic ends it): told
/// the error.
type OnFailure = Box<dyn FnOnce(&Error)>;

/// A scope of this thread.
#[derive(Default)]
struct State {
    /// The files whose writer transaction this thread holds open.
    held: Vec<Arc<Connections>>,
    on_failure: Vec<OnFailure>,
}

thread_local! {
    /// This thread's scope; `None` outside any.
    static HELD_OPEN: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// Which thread, if any, holds a file's writer transaction open.
#[derive(Debug, Default)]
pub(super) struct Holder {
    thread: Mutex<Option<ThreadId>>,
    released: Signal,
}

impl Holder {
    fn set(&self, holder: Option<ThreadId>) {
        *self.thread.lock().unwrap_or_else(PoisonError::into_inner) = holder;
        if holder.is_none() {
            self.released.notify_all();
        }
    }
}

/// Whether this thread is inside [`in_one_transaction`].
pub(crate) fn in_scope() -> bool {
    HELD_OPEN.with(|held| held.borrow().is_some())
}

/// Runs `f` in one scope (see the module's docs) and commits what it
/// wrote; returns what `f` returned and whether the commit succeeded
/// (when it failed, nothing `f` wrote to a file database stays, and the
/// [`on_failure`] calls made in `f` are told). Inside a scope already,
/// `f` just runs: the outer scope commits.
pub(crate) fn in_one_transaction<R>(f: impl FnOnce() -> R) -> (R, Result<()>) {
    if in_scope() {
        return (f(), Ok(()));
    }
    HELD_OPEN.with(|held| *held.borrow_mut() = Some(State::default()));
    // Rolls back and lets go, should `f` panic.
    let scope = Scope { finished: false };
    let value = f();
    (value, scope.finish())
}

struct Scope {
    finished: bool,
}

impl Scope {
    fn finish(mut self) -> Result<()> {
        self.finished = true;
        end(true)
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if !self.finished {
            let _ = end(false);
        }
    }
}

/// Calls `f` with the error, should the scope this thread is in fail to
/// commit (or a panic end it); outside a scope, never.
pub(crate) fn on_failure(f: impl FnOnce(&Error) + 'static) {
    HELD_OPEN.with(|held| {
        if let Some(state) = held.borrow_mut().as_mut() {
            state.on_failure.push(Box::new(f));
        }
    });
}

/// Leaves the scope: commits (or rolls back) every transaction it holds
/// open and lets the files go; the first error, if any.
fn end(commit: bool) -> Result<()> {
    let state = HELD_OPEN.with(|held| held.borrow_mut().take().unwrap_or_default());
    let mut result = if commit {
        Ok(())
    } else {
        Err(Error::Database("a panic ended the transaction".into()))
    };
    for connections in state.held {
        let outcome = connections
            .lock_writer()
            .and_then(|conn| finish(&conn, commit));
        connections.holder.set(None);
        if result.is_ok() {
            result = outcome;
        }
    }
    if let Err(error) = &result {
        for f in state.on_failure {
            f(error);
        }
    }
    result
}

/// Commits (or rolls back) the transaction open on `conn`.
fn finish(conn: &Connection, commit: bool) -> Result<()> {
    if conn.is_autocommit() {
        return Ok(());
    }
    let committed = if commit {
        conn.prepare_cached(COMMIT)
            .and_then(|mut statement| statement.execute([]))
            .map(drop)
            .map_err(db)
    } else {
        Ok(())
    };
    if committed.is_err() || !commit {
        let _ = conn.execute_batch("ROLLBACK");
    }
    committed
}

/// The writer connection of `connections` for this thread, and whether
/// this thread holds its transaction open. Waits while another thread
/// holds it open.
pub(super) fn writer(connections: &Connections) -> Result<(WriterGuard<'_>, bool)> {
    let me = thread::current().id();
    loop {
        let conn = connections.lock_writer()?;
        let holder = *connections
            .holder
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match holder {
            None => return Ok((conn, false)),
            Some(thread) if thread == me => return Ok((conn, true)),
            Some(_) => {
                drop(conn);
                let mut holder = connections
                    .holder
                    .thread
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                while holder.is_some() {
                    holder = connections.holder.released.wait(holder);
                }
            }
        }
    }
}

/// Inside a scope, begins the transaction that this thread then holds
/// open on `conn` (the writer of `connections`, locked by this thread, no
/// transaction open) and says `true`; outside one, does nothing.
pub(super) fn hold(connections: &Arc<Connections>, conn: &Connection) -> Result<bool> {
    if !in_scope() {
        return Ok(false);
    }
    conn.prepare_cached(BEGIN_IMMEDIATE)
        .and_then(|mut begin| begin.execute([]))
        .map_err(db)?;
    connections.holder.set(Some(thread::current().id()));
    HELD_OPEN.with(|held| {
        if let Some(state) = held.borrow_mut().as_mut() {
            state.held.push(Arc::clone(connections));
        }
    });
    Ok(true)
}

/// Commits now the transaction this thread holds open on `conn` (the
/// writer of `connections`) and lets the file go: for a write that needs
/// a transaction of its own. The scope goes on; a later read or write
/// begins another.
pub(super) fn let_go(connections: &Arc<Connections>, conn: &Connection) -> Result<()> {
    HELD_OPEN.with(|held| {
        if let Some(state) = held.borrow_mut().as_mut() {
            state.held.retain(|c| !Arc::ptr_eq(c, connections));
        }
    });
    let result = finish(conn, true);
    connections.holder.set(None);
    result
}
