//! Running a follower until it is told to stop: woken right after commits
//! in this process (commit hooks), by the database's notifications where
//! it has them (PostgreSQL's LISTEN/NOTIFY), and otherwise by polling with
//! backoff; on a thread of its own with [`Follower::spawn`].

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::runner::Follower;
use super::target::Target;
use super::watch::{Shared, Watch};
use crate::error::{Error, Result};
use crate::store::CommitHook;

/// How far a follower is behind one upstream log.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Lag {
    /// The upstream.
    pub upstream: String,
    /// Notifications recorded upstream and not yet passed by the
    /// follower (whether or not it has handlers for them).
    pub events: u64,
    /// How long ago the oldest event the follower still has to handle was
    /// recorded; 0 when it has none.
    pub seconds: f64,
}

impl<P, T: Target<P>> Follower<P, T> {
    /// A view of this follower's progress for other threads.
    #[must_use]
    pub fn watch(&self) -> Watch {
        Watch {
            shared: Arc::clone(&self.shared),
        }
    }

    /// How far the follower is behind each upstream log, in events and in
    /// seconds (reads each log's head and its oldest event not handled
    /// yet).
    pub fn lag(&self) -> Result<Vec<Lag>> {
        let topics = self.topics.as_deref().unwrap_or(&[]);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        self.upstreams
            .iter()
            .map(|upstream| {
                let at = self
                    .shared
                    .position(&upstream.name)
                    .unwrap_or(upstream.at.notification_id);
                let head = upstream.log.max_id()?;
                let events = head.saturating_sub(at);
                let mut seconds = 0.0;
                if events > 0
                    && let Some(next) = upstream.log.select(at + 1, 1, topics)?.into_iter().next()
                    && next.id <= head
                {
                    // A forgotten aggregate's record has no readable time.
                    if let Some(event) = forgotten_as_none(upstream.log.decode(next))? {
                        #[allow(
                            clippy::cast_precision_loss,
                            reason = "seconds for display and alerts"
                        )]
                        {
                            seconds = (now.saturating_sub(event.timestamp)).max(0) as f64 / 1e6;
                        }
                    }
                }
                Ok(Lag {
                    upstream: upstream.name.to_string(),
                    events,
                    seconds,
                })
            })
            .collect()
    }

    /// Follows the upstream logs until [`Running::stop`] (or a call of
    /// `stop` on a [`Watch`]'s follower) says to, or an error: catches up,
    /// then waits to be woken (by a commit through an upstream
    /// application of this process, a PostgreSQL notification, or the
    /// poll interval), and so on. A stop request ends it after the batch
    /// in progress has committed.
    pub fn run_forever(&mut self) -> Result<()> {
        self.shared
            .resume(self.upstreams.iter().map(|u| u.read).collect());
        self.serve()
    }

    /// [`run_forever`](Follower::run_forever) once resumed: a stop asked
    /// for since then is kept (a follower spawned and stopped at once
    /// stops before it starts).
    fn serve(&mut self) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        let _hooks: Vec<CommitHook> = self
            .upstreams
            .iter()
            .map(|upstream| {
                let shared = Arc::downgrade(&shared);
                upstream.app.on_commit(move |_| ring(&shared))
            })
            .collect();
        let _listeners = super::listen::start(&self.upstreams, &shared);
        if self.options.partition.count() > 1 {
            super::causal::join(&self.name, &shared);
        }
        let (min, max) = (self.options.poll_min, self.options.poll_max);
        let mut wait = min;
        let result = loop {
            if shared.stop.load(Ordering::SeqCst) {
                break Ok(());
            }
            match self.run_until_caught_up() {
                Ok(progress) if progress.batches > 0 => wait = min,
                Ok(_) => {}
                Err(error) => break Err(error),
            }
            if shared.stop.load(Ordering::SeqCst) {
                break Ok(());
            }
            wait = if shared.doorbell.wait(wait) {
                min
            } else {
                (wait * 2).min(max)
            };
        };
        shared.halt(match &result {
            Ok(()) => "it was told to stop".to_owned(),
            Err(error) => error.to_string(),
        });
        result
    }
}

fn ring(shared: &Weak<Shared>) {
    if let Some(shared) = shared.upgrade() {
        shared.doorbell.ring();
    }
}

impl<P: Send + 'static, T: Target<P>> Follower<P, T> {
    /// Runs the follower on a thread of its own ([`run_forever`]) and
    /// returns the handle that watches and stops it.
    ///
    /// [`run_forever`]: Follower::run_forever
    pub fn spawn(mut self) -> Running<P, T> {
        let shared = Arc::clone(&self.shared);
        shared.resume(self.upstreams.iter().map(|u| u.read).collect());
        let thread = thread::Builder::new()
            .name(format!("follower {}", self.name))
            .spawn(move || {
                let result = self.serve();
                (self, result)
            });
        Running {
            thread: thread.ok(),
            shared,
        }
    }
}

/// What a follower's thread ends with: the follower, and how it ended.
type Ended<P, T> = (Follower<P, T>, Result<()>);

/// A follower running on its own thread ([`Follower::spawn`]).
#[must_use = "dropping the handle leaves the follower running until the process ends; call `stop`"]
pub struct Running<P, T> {
    thread: Option<JoinHandle<Ended<P, T>>>,
    shared: Arc<Shared>,
}

impl<P, T> std::fmt::Debug for Running<P, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl<P, T> Running<P, T> {
    /// A view of the follower's progress.
    #[must_use]
    pub fn watch(&self) -> Watch {
        Watch {
            shared: Arc::clone(&self.shared),
        }
    }

    /// [`Watch::wait_for`]: waits until the follower has recorded the
    /// effects of notification `notification_id` of `upstream`.
    pub fn wait_for(
        &self,
        upstream: &str,
        notification_id: u64,
        timeout: Duration,
    ) -> Result<bool> {
        self.watch().wait_for(upstream, notification_id, timeout)
    }

    /// Whether the follower's thread has ended (it failed, or was told to
    /// stop).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Tells the follower to stop after the batch in progress, waits for
    /// it, and gives it back (to run again, or to inspect); the error it
    /// stopped with, if it failed.
    pub fn stop(mut self) -> Result<Follower<P, T>> {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.doorbell.ring();
        let Some(thread) = self.thread.take() else {
            return Err(Error::Stopped {
                follower: self.shared.follower().to_owned(),
                reason: "its thread could not be started".to_owned(),
            });
        };
        match thread.join() {
            Ok((follower, Ok(()))) => Ok(follower),
            Ok((_, Err(error))) => Err(error),
            Err(_) => Err(Error::Stopped {
                follower: self.shared.follower().to_owned(),
                reason: "its thread panicked".to_owned(),
            }),
        }
    }
}

/// `None` for a record of a forgotten aggregate, which nobody can read.
fn forgotten_as_none<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(crate::Error::Forgotten { .. }) => Ok(None),
        Err(error) => Err(error),
    }
}
