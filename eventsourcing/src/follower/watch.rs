//! What a follower shares with other threads: its positions, for
//! read-your-writes waits ([`Watch::wait_for`]), and its doorbell, rung
//! when an upstream may have new events.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::signal::Signal;

/// The positions a follower has recorded, and whether it still runs.
#[derive(Debug)]
pub(crate) struct Shared {
    follower: String,
    upstreams: Vec<String>,
    state: Mutex<State>,
    moved: Signal,
    pub(crate) doorbell: Doorbell,
    pub(crate) stop: AtomicBool,
}

#[derive(Debug)]
struct State {
    positions: Vec<u64>,
    /// Why the follower stopped, once it has.
    stopped: Option<String>,
}

impl Shared {
    pub(crate) fn new(follower: String, upstreams: Vec<String>, positions: Vec<u64>) -> Self {
        Shared {
            follower,
            upstreams,
            state: Mutex::new(State {
                positions,
                stopped: None,
            }),
            moved: Signal::default(),
            doorbell: Doorbell::default(),
            stop: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The follower's name.
    pub(crate) fn follower(&self) -> &str {
        &self.follower
    }

    /// Where the follower stands in `upstream`.
    pub(crate) fn position(&self, upstream: &str) -> Option<u64> {
        let index = self.upstreams.iter().position(|u| u == upstream)?;
        self.lock().positions.get(index).copied()
    }

    /// Records that upstream `index` is now at `position`.
    pub(crate) fn advance(&self, index: usize, position: u64) {
        let mut state = self.lock();
        if let Some(at) = state.positions.get_mut(index) {
            *at = position;
        }
        drop(state);
        self.moved.notify_all();
    }

    /// Records that the follower runs (again), at these positions.
    pub(crate) fn resume(&self, positions: Vec<u64>) {
        let mut state = self.lock();
        state.positions = positions;
        state.stopped = None;
        self.stop.store(false, Ordering::SeqCst);
    }

    /// Records that the follower stopped, and why.
    pub(crate) fn halt(&self, reason: String) {
        self.lock().stopped = Some(reason);
        self.moved.notify_all();
    }
}

/// Wakes a follower that waits for new upstream events: rung by commit
/// hooks, database notifications and shutdown. A hint only: a follower
/// also polls.
#[derive(Debug, Default)]
pub(crate) struct Doorbell {
    rung: Mutex<bool>,
    bell: Signal,
}

impl Doorbell {
    pub(crate) fn ring(&self) {
        *self.rung.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.bell.notify_all();
    }

    /// Waits until rung or `timeout`; says whether it was rung, and
    /// resets it.
    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        let rung = self.rung.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut rung, _) = self.bell.wait_timeout_while(rung, timeout, |rung| !*rung);
        std::mem::take(&mut *rung)
    }
}

/// A view of a follower's progress from other threads: where it stands in
/// each upstream log, and waits for it to get somewhere.
///
/// Got from [`Follower::watch`](super::Follower::watch) or
/// [`Running::watch`](super::Running::watch); cheap to clone.
#[derive(Clone, Debug)]
pub struct Watch {
    pub(crate) shared: Arc<Shared>,
}

impl Watch {
    /// The follower's name.
    #[must_use]
    pub fn follower(&self) -> &str {
        &self.shared.follower
    }

    /// Where the follower stands in the log of `upstream` (the last
    /// notification whose effects are recorded); `None` for an upstream it
    /// does not follow.
    #[must_use]
    pub fn position(&self, upstream: &str) -> Option<u64> {
        self.shared.position(upstream)
    }

    fn index(&self, upstream: &str) -> Option<usize> {
        self.shared.upstreams.iter().position(|u| u == upstream)
    }

    /// Waits until the follower has recorded the effects of notification
    /// `notification_id` of `upstream` (read-your-writes: pass the id a
    /// save returned), or `timeout` has passed. Returns whether it has.
    ///
    /// [`Error::Stopped`] when the follower stopped before getting there;
    /// [`Error::InvalidArgument`] for an upstream it does not follow.
    pub fn wait_for(
        &self,
        upstream: &str,
        notification_id: u64,
        timeout: Duration,
    ) -> Result<bool> {
        let index = self.index(upstream).ok_or_else(|| Error::InvalidArgument {
            name: "upstream",
            reason: format!(
                "follower `{}` does not follow `{upstream}` (it follows {:?})",
                self.shared.follower, self.shared.upstreams
            ),
        })?;
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            if state
                .positions
                .get(index)
                .is_some_and(|&at| at >= notification_id)
            {
                return Ok(true);
            }
            if let Some(reason) = &state.stopped {
                return Err(Error::Stopped {
                    follower: self.shared.follower.clone(),
                    reason: reason.clone(),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            state = self.shared.moved.wait_timeout(state, deadline - now).0;
        }
    }
}
