//! The single-thread runner: every follower runs on the thread that
//! saved, right after the commit, in the order the system defines them,
//! again and again until none has anything left; so a save returns once
//! everything it caused downstream is recorded. On a SQLite file, all of
//! it is one transaction (see [`Single::drain`]).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use super::definition::System;
use super::worker::Worker;
use crate::application::Application;
use crate::error::{Error, Result};
use crate::store::CommitHook;

thread_local! {
    /// Whether this thread is running the system's followers already (a
    /// commit they make rings the hook again; the loop in progress picks
    /// it up).
    static DRAINING: Cell<bool> = const { Cell::new(false) };
}

/// Says this thread no longer drains, however the drain ends.
struct Reset;

impl Drop for Reset {
    fn drop(&mut self) {
        DRAINING.with(|d| d.set(false));
    }
}

pub(crate) struct Single {
    workers: Mutex<Vec<Unit>>,
    /// Commits of each application so far, counted by its hook.
    commits: Vec<AtomicU64>,
    failed: Arc<Mutex<Option<Error>>>,
    hooks: Mutex<Vec<CommitHook>>,
}

/// One follower, the applications it follows, and how many commits of
/// each it had seen when it last ran: it runs again only when one of them
/// has committed since, or when it stopped at a dependency.
struct Unit {
    worker: Box<dyn Worker>,
    upstreams: Vec<usize>,
    seen: Vec<u64>,
    blocked: bool,
}

impl Single {
    pub(crate) fn start(system: &System, apps: &[Application]) -> Result<Arc<Single>> {
        let units = system
            .inner
            .units()
            .into_iter()
            .zip(system.workers(apps, None, None)?)
            .map(|((app, _), worker)| {
                let upstreams = system.inner.upstreams(app);
                Unit {
                    worker,
                    seen: vec![0; upstreams.len()],
                    upstreams,
                    // What was recorded before the system started.
                    blocked: true,
                }
            })
            .collect();
        let single = Arc::new(Single {
            workers: Mutex::new(units),
            commits: apps.iter().map(|_| AtomicU64::new(0)).collect(),
            failed: Arc::new(Mutex::new(None)),
            hooks: Mutex::new(Vec::new()),
        });
        let hooks = apps
            .iter()
            .enumerate()
            .map(|(index, app)| {
                let weak: Weak<Single> = Arc::downgrade(&single);
                // Told at once inside the drain's transaction, where the
                // commits it counts are the followers' own writes.
                app.event_store()
                    .on_commit_immediate(Arc::new(move |_: &[u64]| {
                        if let Some(single) = weak.upgrade() {
                            single.commits[index].fetch_add(1, Ordering::SeqCst);
                            single.drain();
                        }
                    }))
            })
            .collect();
        *single.hooks.lock().unwrap_or_else(PoisonError::into_inner) = hooks;
        // What was recorded before the system started.
        single.drain();
        single.check()?;
        Ok(single)
    }

    /// Runs every follower until none has anything left, unless this
    /// thread is doing so already, or a follower failed before.
    ///
    /// On SQLite files, the save that rang the hook and the whole drain
    /// are one transaction per file (`recorder::in_one_transaction`): each
    /// follower's batch is a savepoint in it, its reads run inside it, and
    /// one commit ends it; the commit hooks of other listeners are told
    /// after that commit.
    /// Should the commit fail, nothing of the drain stays and the runner
    /// keeps the error, as for a follower's (the followers' positions in
    /// memory are past what the database holds, so none runs again).
    fn drain(&self) {
        if DRAINING.with(Cell::get) {
            return;
        }
        DRAINING.with(|d| d.set(true));
        let _reset = Reset;
        #[cfg(feature = "sqlite")]
        crate::store::deferring(|| {
            // The save that rang the hook began the transaction already
            // (`EventStore::write`), unless the runner is starting.
            let ((), _) = crate::recorder::in_one_transaction(|| {
                let failed = Arc::clone(&self.failed);
                crate::recorder::on_failure(move |error| {
                    failed
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get_or_insert(Error::Database(
                            format!("the followers' transaction did not commit: {error}").into(),
                        ));
                });
                crate::recorder::reading_on_writer(|| self.drain_here());
            });
        });
        #[cfg(not(feature = "sqlite"))]
        self.drain_here();
    }

    /// [`Single::drain`] on this thread, which is not draining already.
    fn drain_here(&self) {
        let mut workers = self.workers.lock().unwrap_or_else(PoisonError::into_inner);
        let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        if failed.is_some() {
            return;
        }
        loop {
            let mut moved = false;
            for unit in workers.iter_mut() {
                let now: Vec<u64> = unit
                    .upstreams
                    .iter()
                    .map(|&u| self.commits[u].load(Ordering::SeqCst))
                    .collect();
                if now == unit.seen && !unit.blocked {
                    continue;
                }
                unit.seen = now;
                match unit.worker.run_until_caught_up() {
                    Ok(progress) => {
                        moved |= progress.batches > 0;
                        // Run again next round while waiting for a
                        // sibling partition, which makes the round move.
                        unit.blocked = unit.worker.is_blocked();
                    }
                    Err(error) => {
                        *failed = Some(error);
                        return;
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// The error a follower failed with, if one did (then no follower runs
    /// any more).
    pub(crate) fn check(&self) -> Result<()> {
        match &*self.failed.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(error) => Err(Error::Stopped {
                follower: "a follower of the system".to_owned(),
                reason: error.to_string(),
            }),
            None => Ok(()),
        }
    }

    pub(crate) fn stop(&self) -> Result<()> {
        self.hooks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let failed = self
            .failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        failed.map_or(Ok(()), Err)
    }
}
