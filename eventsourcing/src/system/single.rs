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
use crate::follower::inbox::Inbox;
use crate::mapper::StoredEvent;
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
    /// Per unit: how many commits of its upstreams held an event it has a
    /// handler for, counted by the hooks.
    wanted: Vec<AtomicU64>,
    /// Per application: the units following it, and the topics each
    /// handles (`None`: it cannot tell, so every commit counts).
    routes: Vec<Vec<Route>>,
    failed: Arc<Mutex<Option<Error>>>,
    hooks: Mutex<Vec<CommitHook>>,
}

/// A unit following an application, the topics it handles (`None`:
/// every commit counts), and its inbox of what the application commits.
#[derive(Clone)]
struct Route {
    unit: usize,
    topics: Option<Vec<&'static str>>,
    inbox: Arc<Inbox>,
}

/// One follower and how many commits it wanted it had seen when it last
/// ran: it runs again only when one of its upstreams has committed an
/// event it handles since, or when it stopped at a dependency. (Its
/// position does not move over what it has no handler for until it
/// reads again: a system's followers do not commit such moves anyway.)
struct Unit {
    worker: Box<dyn Worker>,
    seen: u64,
    blocked: bool,
}

impl Single {
    pub(crate) fn start(system: &System, apps: &[Application]) -> Result<Arc<Single>> {
        let def = &system.inner;
        let mut routes = vec![Vec::new(); apps.len()];
        for (unit, (app, _)) in def.units().into_iter().enumerate() {
            for upstream in def.upstreams(app) {
                routes[upstream].push(Route {
                    unit,
                    topics: def.apps[app].handles(),
                    inbox: Arc::default(),
                });
            }
        }
        let mut units: Vec<Unit> = system
            .workers(apps, None, None)?
            .into_iter()
            .map(|worker| Unit {
                worker,
                seen: 0,
                // What was recorded before the system started.
                blocked: true,
            })
            .collect();
        for (upstream, routes) in routes.iter().enumerate() {
            for route in routes {
                units[route.unit]
                    .worker
                    .attach_inbox(def.apps[upstream].name(), &route.inbox);
            }
        }
        let single = Arc::new(Single {
            wanted: units.iter().map(|_| AtomicU64::new(0)).collect(),
            workers: Mutex::new(units),
            routes,
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
                app.event_store().on_commit_immediate(Arc::new(
                    move |ids: &[u64], events: &[StoredEvent]| {
                        if let Some(single) = weak.upgrade() {
                            single.committed(index, ids, events);
                            single.drain();
                        }
                    },
                ))
            })
            .collect();
        *single.hooks.lock().unwrap_or_else(PoisonError::into_inner) = hooks;
        // What was recorded before the system started.
        single.drain();
        single.check()?;
        Ok(single)
    }

    /// Counts a commit of `events` (notification ids `ids`) by application
    /// `app` for each unit that has a handler for one of them, and puts it
    /// in the units' inboxes.
    fn committed(&self, app: usize, ids: &[u64], events: &[StoredEvent]) {
        for route in &self.routes[app] {
            let topics = route.topics.as_deref();
            // Served only inside a SQLite transaction this thread holds
            // (`follower/inbox.rs`); a commit outside one leaves a gap,
            // which empties the inbox.
            #[cfg(feature = "sqlite")]
            if crate::recorder::in_scope() {
                route.inbox.push(ids, events, topics);
            }
            let wanted = topics.is_none_or(|topics| {
                events
                    .iter()
                    .any(|event| topics.contains(&event.topic.as_str()))
            });
            if wanted {
                self.wanted[route.unit].fetch_add(1, Ordering::SeqCst);
            }
        }
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
            for (index, unit) in workers.iter_mut().enumerate() {
                let now = self.wanted[index].load(Ordering::SeqCst);
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
