//! Fault-injection points for crash tests.
//!
//! A crash test installs a hook with
//! [`__private::set_crash_hook`](crate::__private::set_crash_hook) (in a
//! child process it then kills, say); the database recorders call
//! [`point`] at named moments of a write, and the hook decides what to do
//! there (nothing, record the name, abort the process). Without a hook, a
//! point costs one atomic load.
//!
//! The points, in the order a follower's batch reaches them:
//!
//! - `"after_handler"`: a handler has run on one upstream event (a
//!   process application's effects are collected, a projection's rows are
//!   written in its open transaction; nothing is committed);
//! - `"after_insert"`: the transaction's statements (events, parked
//!   changes, the tracking compare-and-set, and a follower's own
//!   statements) have run, nothing is committed;
//! - `"before_commit"`: the next statement is `COMMIT`;
//! - `"after_commit"`: the batch is committed, and nobody has been told
//!   (no commit hook has run, the follower's position in memory has not
//!   moved): in `EventStore::write` (every save, a process application's
//!   batches included) and after a projection's transaction.
//!
//! - `"after_rewrap_batch"`: a key rotation's batch of re-wrapped data
//!   keys is committed, and the next is not read yet
//!   (`Application::rotate_keys`).
//!
//! Where the recorders' are: every write of a batch by the SQLite recorder
//! (`Recorder::insert`, and its crate-internal `transact`); on PostgreSQL,
//! the writes that run as an explicit transaction (`transact`, and
//! `Recorder::insert` of a batch with parked changes). A PostgreSQL batch
//! without parked changes is one statement that commits by itself, so it
//! has no moment between its insert and its commit, and no point.

use std::sync::OnceLock;

static HOOK: OnceLock<fn(&'static str)> = OnceLock::new();

/// Calls the crash hook, if one is installed, with the point's `name`.
#[inline]
pub(crate) fn point(name: &'static str) {
    if let Some(hook) = HOOK.get() {
        hook(name);
    }
}

/// Installs `hook`, which every fault-injection point of this process then
/// calls with its name (`"after_handler"`, `"after_insert"`,
/// `"before_commit"`, `"after_commit"`). For crash
/// tests only; not part of the public API.
///
/// A process has at most one hook: the first one installed stays, and
/// later calls change nothing.
#[doc(hidden)]
pub fn set_crash_hook(hook: fn(&'static str)) {
    // A second hook is ignored, as documented.
    let _ = HOOK.set(hook);
}

/// A hook for the crate's own tests: it records each point reached on the
/// calling thread, so that tests running in parallel do not see each
/// other's points.
#[cfg(test)]
pub(crate) mod testing {
    use std::cell::RefCell;

    thread_local! {
        static REACHED: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
    }

    fn record(name: &'static str) {
        REACHED.with(|reached| reached.borrow_mut().push(name));
    }

    /// Installs the recording hook (once per process) and forgets the
    /// points this thread reached so far.
    pub(crate) fn start() {
        super::set_crash_hook(record);
        REACHED.with(|reached| reached.borrow_mut().clear());
    }

    /// The points this thread reached since [`start`], in order.
    pub(crate) fn reached() -> Vec<&'static str> {
        REACHED.with(|reached| reached.borrow().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn other(_: &'static str) {}

    #[test]
    fn points_call_the_hook_once_installed() {
        testing::start();
        point("after_insert");
        point("before_commit");
        assert_eq!(testing::reached(), ["after_insert", "before_commit"]);
        // The first hook stays.
        set_crash_hook(other);
        point("after_insert");
        assert_eq!(testing::reached().len(), 3);
    }
}
