//! Telling whoever listens that new events were committed: the wake-up of
//! followers in the same process. A hint only: a listener that misses one
//! finds the events in the notification log all the same.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};

use crate::mapper::StoredEvent;

/// What a commit hook is called with: the notification ids of the events
/// just committed, in order.
pub(crate) type Hook = dyn Fn(&[u64]) + Send + Sync;

/// A hook that runs the work of a [`deferring`] scope: told at once inside
/// one, with the events committed as well as their ids.
pub(crate) type Immediate = dyn Fn(&[u64], &[StoredEvent]) + Send + Sync;

/// A hook of either kind.
#[derive(Clone)]
enum Listener {
    Hook(Arc<Hook>),
    Immediate(Arc<Immediate>),
}

/// The hooks of one event store, shared by its clones.
#[derive(Default)]
pub(crate) struct Commits {
    hooks: RwLock<Vec<(u64, Listener)>>,
    /// How many hooks there are, read without the lock so that a store
    /// without listeners pays one atomic load per commit.
    count: AtomicUsize,
    /// How many of them are immediate.
    immediate: AtomicUsize,
    next_key: AtomicU64,
}

impl Commits {
    /// Adds `hook`; it stays until the returned handle is dropped. Inside
    /// [`deferring`], it is told when the scope ends.
    pub(crate) fn subscribe(self: &Arc<Self>, hook: Arc<Hook>) -> CommitHook {
        self.add(Listener::Hook(hook))
    }

    /// Adds `hook`, told at once inside [`deferring`] too; it stays until
    /// the returned handle is dropped.
    pub(crate) fn subscribe_immediate(self: &Arc<Self>, hook: Arc<Immediate>) -> CommitHook {
        self.add(Listener::Immediate(hook))
    }

    fn add(self: &Arc<Self>, listener: Listener) -> CommitHook {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let mut hooks = self.hooks.write().unwrap_or_else(PoisonError::into_inner);
        hooks.push((key, listener));
        self.count_hooks(&hooks);
        CommitHook {
            commits: Arc::downgrade(self),
            key,
        }
    }

    /// Calls every hook with `ids` (the immediate ones with `events` too,
    /// whose ids they are), outside the lock (a hook may subscribe or drop
    /// a handle itself); inside [`deferring`], only the immediate ones
    /// now, the others when the scope ends.
    pub(crate) fn notify(self: &Arc<Self>, ids: &[u64], events: &[StoredEvent]) {
        if ids.is_empty() || self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let deferred = DEFERRED.with(|d| d.borrow().is_some());
        let listeners = self.listeners();
        if deferred && listeners.iter().any(|l| matches!(l, Listener::Hook(_))) {
            DEFERRED.with(|d| {
                if let Some(queue) = d.borrow_mut().as_mut() {
                    queue.push((Arc::clone(self), ids.to_vec()));
                }
            });
        }
        for listener in listeners {
            match listener {
                Listener::Immediate(hook) => hook(ids, events),
                Listener::Hook(hook) if !deferred => hook(ids),
                Listener::Hook(_) => {}
            }
        }
    }

    fn listeners(&self) -> Vec<Listener> {
        self.hooks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(_, listener)| listener.clone())
            .collect()
    }

    fn count_hooks(&self, hooks: &[(u64, Listener)]) {
        self.count.store(hooks.len(), Ordering::Release);
        let immediate = hooks
            .iter()
            .filter(|(_, l)| matches!(l, Listener::Immediate(_)))
            .count();
        self.immediate.store(immediate, Ordering::Release);
    }

    /// Whether an immediate hook listens (a single-thread runner follows
    /// the store).
    pub(crate) fn has_immediate(&self) -> bool {
        self.immediate.load(Ordering::Acquire) > 0
    }

    /// Calls the hooks that [`Commits::notify`] left for after a scope.
    fn notify_deferred(&self, ids: &[u64]) {
        for listener in self.listeners() {
            if let Listener::Hook(hook) = listener {
                hook(ids);
            }
        }
    }

    fn unsubscribe(&self, key: u64) {
        let mut hooks = self.hooks.write().unwrap_or_else(PoisonError::into_inner);
        hooks.retain(|(k, _)| *k != key);
        self.count_hooks(&hooks);
    }
}

/// Commits whose hooks are told when [`deferring`] ends, with their ids.
type Deferred = Vec<(Arc<Commits>, Vec<u64>)>;

thread_local! {
    /// Inside [`deferring`]: what its end tells.
    static DEFERRED: RefCell<Option<Deferred>> = const { RefCell::new(None) };
}

/// Leaves [`deferring`], however it ends.
struct Reset;

impl Drop for Reset {
    fn drop(&mut self) {
        DEFERRED.with(|d| d.borrow_mut().take());
    }
}

/// Runs `f`, telling the hooks of the commits it makes (other than the
/// immediate ones) only once it has returned: for writes that become
/// visible later than they return, in a transaction held open until the
/// end of `f` (`recorder::in_one_transaction`). Nested, `f` just runs.
pub(crate) fn deferring<R>(f: impl FnOnce() -> R) -> R {
    if DEFERRED.with(|d| d.borrow().is_some()) {
        return f();
    }
    DEFERRED.with(|d| *d.borrow_mut() = Some(Vec::new()));
    let reset = Reset;
    let value = f();
    let queue = DEFERRED.with(|d| d.borrow_mut().take().unwrap_or_default());
    drop(reset);
    // Hints: told whether or not the writes committed in the end.
    for (commits, ids) in queue {
        commits.notify_deferred(&ids);
    }
    value
}

/// A commit hook added with
/// [`Application::on_commit`](crate::Application::on_commit); dropping it
/// removes the hook.
#[must_use = "the hook is removed when this handle is dropped"]
pub struct CommitHook {
    commits: Weak<Commits>,
    key: u64,
}

impl Drop for CommitHook {
    fn drop(&mut self) {
        if let Some(commits) = self.commits.upgrade() {
            commits.unsubscribe(self.key);
        }
    }
}

impl fmt::Debug for CommitHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommitHook").finish_non_exhaustive()
    }
}
