//! Telling whoever listens that new events were committed: the wake-up of
//! followers in the same process. A hint only: a listener that misses one
//! finds the events in the notification log all the same.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};

/// What a commit hook is called with: the notification ids of the events
/// just committed, in order.
pub(crate) type Hook = dyn Fn(&[u64]) + Send + Sync;

/// The hooks of one event store, shared by its clones.
#[derive(Default)]
pub(crate) struct Commits {
    hooks: RwLock<Vec<(u64, Arc<Hook>)>>,
    /// How many hooks there are, read without the lock so that a store
    /// without listeners pays one atomic load per commit.
    count: AtomicUsize,
    next_key: AtomicU64,
}

impl Commits {
    /// Adds `hook`; it stays until the returned handle is dropped.
    pub(crate) fn subscribe(self: &Arc<Self>, hook: Arc<Hook>) -> CommitHook {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let mut hooks = self.hooks.write().unwrap_or_else(PoisonError::into_inner);
        hooks.push((key, hook));
        self.count.store(hooks.len(), Ordering::Release);
        CommitHook {
            commits: Arc::downgrade(self),
            key,
        }
    }

    /// Calls every hook with `ids`, outside the lock (a hook may subscribe
    /// or drop a handle itself).
    pub(crate) fn notify(&self, ids: &[u64]) {
        if ids.is_empty() || self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let hooks: Vec<Arc<Hook>> = self
            .hooks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(_, hook)| Arc::clone(hook))
            .collect();
        for hook in hooks {
            hook(ids);
        }
    }

    fn unsubscribe(&self, key: u64) {
        let mut hooks = self.hooks.write().unwrap_or_else(PoisonError::into_inner);
        hooks.retain(|(k, _)| *k != key);
        self.count.store(hooks.len(), Ordering::Release);
    }
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
