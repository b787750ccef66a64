//! Telling whoever listens that new events were committed: the wake-up of
//! followers in the same process. A hint only: a listener that misses one
//! finds the events in the notification log all the same.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};

/// What a commit hook is called with: the notification ids of the events
/// just committed, in order.
pub(crate) type Hook = dyn Fn(&[u64]) + Send + Sync;

/// The hooks of one event store, shared by its clones.
#[derive(Default)]
pub(crate) struct Commits {
    /// Each hook, and whether it is told at once inside [`deferring`].
    hooks: RwLock<Vec<(u64, Arc<Hook>, bool)>>,
    /// How many hooks there are, read without the lock so that a store
    /// without listeners pays one atomic load per commit.
    count: AtomicUsize,
    /// How many of them are immediate.
    immediate: AtomicUsize,
    next_key: AtomicU64,
}

impl Commits {
    /// Adds `hook`; it stays until the returned handle is dropped. Inside
    /// [`deferring`], it is told at once when `immediate` (it runs the
    /// scope's work), after the scope otherwise.
    pub(crate) fn subscribe(self: &Arc<Self>, hook: Arc<Hook>, immediate: bool) -> CommitHook {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let mut hooks = self.hooks.write().unwrap_or_else(PoisonError::into_inner);
        hooks.push((key, hook, immediate));
        self.count_hooks(&hooks);
        CommitHook {
            commits: Arc::downgrade(self),
            key,
        }
    }

    /// Calls every hook with `ids`, outside the lock (a hook may subscribe
    /// or drop a handle itself); inside [`deferring`], only the immediate
    /// ones now, the others when the scope ends.
    pub(crate) fn notify(self: &Arc<Self>, ids: &[u64]) {
        if ids.is_empty() || self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let deferred = DEFERRED.with(|d| d.borrow().is_some());
        let mut later = false;
        let hooks: Vec<Arc<Hook>> = self
            .hooks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, _, immediate)| {
                later |= deferred && !immediate;
                !deferred || *immediate
            })
            .map(|(_, hook, _)| Arc::clone(hook))
            .collect();
        if later {
            DEFERRED.with(|d| {
                if let Some(queue) = d.borrow_mut().as_mut() {
                    queue.push((Arc::clone(self), ids.to_vec()));
                }
            });
        }
        for hook in hooks {
            hook(ids);
        }
    }

    fn count_hooks(&self, hooks: &[(u64, Arc<Hook>, bool)]) {
        self.count.store(hooks.len(), Ordering::Release);
        let immediate = hooks.iter().filter(|(_, _, immediate)| *immediate).count();
        self.immediate.store(immediate, Ordering::Release);
    }

    /// Whether an immediate hook listens (a single-thread runner follows
    /// the store).
    pub(crate) fn has_immediate(&self) -> bool {
        self.immediate.load(Ordering::Acquire) > 0
    }

    /// Calls the hooks that [`Commits::notify`] left for after a scope.
    fn notify_deferred(&self, ids: &[u64]) {
        let hooks: Vec<Arc<Hook>> = self
            .hooks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, _, immediate)| !immediate)
            .map(|(_, hook, _)| Arc::clone(hook))
            .collect();
        for hook in hooks {
            hook(ids);
        }
    }

    fn unsubscribe(&self, key: u64) {
        let mut hooks = self.hooks.write().unwrap_or_else(PoisonError::into_inner);
        hooks.retain(|(k, _, _)| *k != key);
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
