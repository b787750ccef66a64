//! A running follower for async code: its waits and its stop as futures.

use std::time::Duration;

use super::run_blocking;
use crate::error::Result;
use crate::follower::{Follower, Running, Watch};

/// A follower running on its own thread ([`Follower::spawn`]), for async
/// code: [`Running::into_async`] makes one. Waiting for it and stopping it
/// are futures, done on tokio's blocking threads.
///
/// ```
/// # use eventsourcing::prelude::*;
/// # use eventsourcing::follower::{Envelope, Follower, Policy, HandleError};
/// # #[aggregate] #[derive(Default)] struct Cat {}
/// # #[aggregate] impl Cat { #[created(Born)] fn born(&mut self) {} }
/// # #[derive(Default)] struct Count(u64);
/// # struct Counter;
/// # #[policy] impl Counter { #[on(CatEvent::Born)] fn born(&self, count: &mut Count) { count.0 += 1 } }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let app = Application::builder().name("Cats").build()?.into_async();
/// let upstream = app.application().clone();
/// let running = app
///     .blocking(move |_| Ok(Follower::in_memory(Counter, Count::default()).follow(&upstream).start()?.spawn()))
///     .await?
///     .into_async();
/// let (_, ids) = app.save(Cat::born()).await?;
/// assert!(running.wait_for("Cats", ids[0], std::time::Duration::from_secs(60)).await?);
/// let follower = running.stop().await?;
/// assert_eq!(follower.state().lock().unwrap().0, 1);
/// # Ok::<(), eventsourcing::Error>(())
/// # }).unwrap();
/// ```
#[must_use = "dropping the handle leaves the follower running until the process ends; call `stop`"]
pub struct AsyncRunning<P, T> {
    running: Running<P, T>,
}

impl<P, T> std::fmt::Debug for AsyncRunning<P, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncRunning")
            .field("running", &self.running)
            .finish()
    }
}

impl<P, T> Running<P, T> {
    /// This handle for async code.
    pub fn into_async(self) -> AsyncRunning<P, T> {
        AsyncRunning { running: self }
    }
}

impl<P, T> AsyncRunning<P, T> {
    /// A view of the follower's progress.
    #[must_use]
    pub fn watch(&self) -> Watch {
        self.running.watch()
    }

    /// Whether the follower's thread has ended (it failed, or was told to
    /// stop).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.running.is_finished()
    }

    /// The blocking handle back.
    pub fn into_blocking(self) -> Running<P, T> {
        self.running
    }

    /// [`Watch::wait_for`] as a future: waits until the follower has
    /// recorded the effects of notification `notification_id` of
    /// `upstream`, or `timeout` has passed; says whether it has.
    ///
    /// [`Error::Stopped`](crate::Error::Stopped) when the follower stopped
    /// before getting there.
    pub async fn wait_for(
        &self,
        upstream: &str,
        notification_id: u64,
        timeout: Duration,
    ) -> Result<bool> {
        let watch = self.running.watch();
        let upstream = upstream.to_owned();
        run_blocking(move || watch.wait_for(&upstream, notification_id, timeout)).await?
    }
}

impl<P: Send + 'static, T: Send + 'static> AsyncRunning<P, T> {
    /// [`Running::stop`] as a future: tells the follower to stop after the
    /// batch in progress, waits for its thread, and gives the follower
    /// back; the error it stopped with, if it failed.
    pub async fn stop(self) -> Result<Follower<P, T>> {
        let running = self.running;
        run_blocking(move || running.stop()).await?
    }
}
