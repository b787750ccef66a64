//! Where a follower records: a [`Target`] runs the policy's handlers on a
//! batch of upstream events in its context and commits what they did with
//! the follower's new position, in one transaction where it has them.
//!
//! - [`Processing`] targets: a process application's own application
//!   ([`Follower::process`](super::Follower::process)); effects are events.
//! - [`InMemory`]: state of the user's own in this process, for tests and
//!   caches ([`Follower::in_memory`](super::Follower::in_memory)).
//! - SQL projections (see `sql.rs`): a driver transaction.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::policy::{Envelope, HandleError, Policy};

use super::causal::Causal;
use super::processing::{Cache, Processing};
use crate::application::Application;
use crate::error::{Error, Result};
use crate::recorder::{
    MemoryRecorder, ParkChange, Recorder, Registration, TrackingKey, TrackingUpdate,
};

pub(crate) use self::sealed::{Commit, Failure};

impl Failure {
    /// The error follower `follower` stops with for this failure: a
    /// handler's names `envelope`, the event it failed on; a setup's (or a
    /// handler's without an event) names `step`.
    pub(crate) fn into_error(
        self,
        follower: &str,
        step: &'static str,
        envelope: Option<&Envelope>,
    ) -> Error {
        let setup = |source| Error::Setup {
            follower: follower.to_owned(),
            step,
            source,
        };
        match self {
            Failure::Store(error) => error,
            Failure::Setup(source) => setup(source),
            Failure::Handler { error, .. } => match (*error, envelope) {
                (HandleError::Event(error), _) => error,
                (HandleError::Handler(source), None) => setup(source),
                (HandleError::Handler(source), Some(envelope)) => Error::Handler {
                    follower: follower.to_owned(),
                    upstream: envelope.upstream().to_owned(),
                    notification_id: envelope.notification_id(),
                    topic: envelope.topic().to_owned(),
                    originator_id: envelope.originator_id(),
                    originator_version: envelope.originator_version(),
                    source,
                },
            },
        }
    }
}

pub(crate) mod sealed {
    use super::{
        Envelope, Error, HandleError, ParkChange, Recorder, Registration, Result, TrackingKey,
        TrackingUpdate,
    };

    /// Why a batch was not recorded.
    #[derive(Debug)]
    pub enum Failure {
        /// The handler of the batch's `index`th event failed; nothing of the
        /// batch is recorded (but see [`Sink::TRANSACTIONAL`]).
        Handler {
            index: usize,
            error: Box<HandleError>,
        },
        /// Writing failed; nothing of the batch is recorded.
        Store(Error),
        /// The policy's setup or reset failed.
        Setup(crate::follower::BoxError),
    }

    impl From<Error> for Failure {
        fn from(error: Error) -> Self {
            Failure::Store(error)
        }
    }

    /// What a batch commits besides its effects.
    #[derive(Clone, Copy, Debug)]
    pub struct Commit<'a> {
        pub tracking: Option<&'a TrackingUpdate>,
        pub parked: &'a [ParkChange],
    }

    /// The target's side of following, for a policy of type `P`.
    pub trait Sink<P> {
        /// Whether a failed batch leaves nothing behind. A target that is
        /// not transactional is given one event per batch, so that a
        /// failure leaves at most what the failing handler itself did.
        const TRANSACTIONAL: bool;

        /// The policy's `NAME`, `VERSION` and `topics()`, for the context
        /// this target gives its handlers.
        fn policy_name() -> &'static str;
        fn policy_version() -> u32;
        fn policy_topics() -> Option<Vec<&'static str>>;

        /// Where the follower's positions, registration and parked
        /// notifications are kept.
        fn recorder(&self) -> &dyn Recorder;

        /// Handles `batch` with `policy` and records what the handlers did
        /// with `commit`, in one transaction.
        fn process(
            &mut self,
            policy: &mut P,
            batch: &[Envelope],
            commit: Commit<'_>,
        ) -> Result<Vec<u64>, Failure>;

        /// Runs the policy's setup (creating what is missing).
        fn setup(&mut self, policy: &mut P) -> Result<(), Failure>;

        /// Resets and sets up again what the policy made, moves the
        /// follower's rows in `rewind` (held with these epochs) back to the
        /// start, forgets its parked notifications and stores
        /// `registration`, in one transaction; `false` when this target
        /// has nothing to rebuild.
        fn rebuild(
            &mut self,
            policy: &mut P,
            rewind: &[(TrackingKey, u64)],
            registration: &Registration,
        ) -> Result<bool, Failure>;

        /// The application whose commits this target makes, if any: a
        /// process application's downstream followers are woken by them.
        fn application(&self) -> Option<&crate::Application> {
            None
        }

        /// What the target records about causes (a process application
        /// stamps its partition and dependencies; others record nothing).
        fn set_causal(&mut self, causal: crate::follower::causal::Causal) {
            let _ = causal;
        }
    }
}

/// Where a follower of policy `P` records what it does. Implemented by
/// this crate for [`ProcessTarget`], [`InMemory`] and the SQL targets; the
/// follower's constructors pick it.
pub trait Target<P>: sealed::Sink<P> + Send + 'static {}

impl<P, T: sealed::Sink<P> + Send + 'static> Target<P> for T {}

/// A process application's target: its own application, whose aggregates
/// the handlers change through [`Processing`].
#[derive(Debug)]
pub struct ProcessTarget {
    app: Application,
    pub(crate) cache: Cache,
    causal: Causal,
}

impl ProcessTarget {
    pub(crate) fn new(app: Application) -> Self {
        ProcessTarget {
            app,
            cache: Cache::default(),
            causal: Causal::default(),
        }
    }

    /// The process application that records the effects.
    #[cfg(feature = "http-client")]
    pub(crate) fn app(&self) -> &Application {
        &self.app
    }
}

impl<P: Policy<Processing>> sealed::Sink<P> for ProcessTarget {
    const TRANSACTIONAL: bool = true;

    fn policy_name() -> &'static str {
        P::NAME
    }

    fn policy_version() -> u32 {
        P::VERSION
    }

    fn policy_topics() -> Option<Vec<&'static str>> {
        P::topics()
    }

    fn recorder(&self) -> &dyn Recorder {
        &**self.app.event_store().recorder()
    }

    fn process(
        &mut self,
        policy: &mut P,
        batch: &[Envelope],
        commit: Commit<'_>,
    ) -> Result<Vec<u64>, Failure> {
        let mut cx = Processing::new(
            self.app.clone(),
            std::mem::take(&mut self.cache),
            self.causal,
        );
        for (index, envelope) in batch.iter().enumerate() {
            if let Err(error) = policy.handle(&mut cx, envelope) {
                // What the batch collected goes; the rest of the cache stays.
                self.cache = cx.into_cache();
                return Err(Failure::Handler {
                    index,
                    error: Box::new(error),
                });
            }
            cx.end_handler();
            crate::crash::point("after_handler");
        }
        let (result, cache) = cx.commit(commit.tracking, commit.parked);
        self.cache = cache;
        Ok(result?)
    }

    fn setup(&mut self, _policy: &mut P) -> Result<(), Failure> {
        Ok(())
    }

    fn rebuild(
        &mut self,
        _policy: &mut P,
        _rewind: &[(TrackingKey, u64)],
        registration: &Registration,
    ) -> Result<bool, Failure> {
        // A process application's events are facts once recorded: a new
        // version of its policy applies from where it stands.
        self.app
            .event_store()
            .recorder()
            .update_follower(registration)?;
        Ok(false)
    }

    fn application(&self) -> Option<&Application> {
        Some(&self.app)
    }

    fn set_causal(&mut self, causal: Causal) {
        self.causal = causal;
    }
}

/// A projection into state held in this process (for tests and caches):
/// the handlers take `&mut S`. Positions are kept in memory too, so the
/// state is rebuilt from the start of the upstream logs in each process.
///
/// There is no transaction here: a batch is one event, and a handler that
/// fails should leave the state as it found it (check, then change).
pub struct InMemory<S> {
    state: Arc<Mutex<S>>,
    positions: MemoryRecorder,
}

impl<S> fmt::Debug for InMemory<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemory").finish_non_exhaustive()
    }
}

impl<S> InMemory<S> {
    pub(crate) fn new(state: S) -> Self {
        InMemory {
            state: Arc::new(Mutex::new(state)),
            positions: MemoryRecorder::new(),
        }
    }

    /// The state, shared with whoever reads it.
    pub(crate) fn state(&self) -> Arc<Mutex<S>> {
        Arc::clone(&self.state)
    }

    fn lock(&self) -> MutexGuard<'_, S> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<S: Send + 'static, P: Policy<S>> sealed::Sink<P> for InMemory<S> {
    const TRANSACTIONAL: bool = false;

    fn policy_name() -> &'static str {
        P::NAME
    }

    fn policy_version() -> u32 {
        P::VERSION
    }

    fn policy_topics() -> Option<Vec<&'static str>> {
        P::topics()
    }

    fn recorder(&self) -> &dyn Recorder {
        &self.positions
    }

    fn process(
        &mut self,
        policy: &mut P,
        batch: &[Envelope],
        commit: Commit<'_>,
    ) -> Result<Vec<u64>, Failure> {
        {
            let mut state = self.lock();
            for (index, envelope) in batch.iter().enumerate() {
                policy
                    .handle(&mut state, envelope)
                    .map_err(|error| Failure::Handler {
                        index,
                        error: Box::new(error),
                    })?;
            }
        }
        let mut batch = crate::recorder::Batch::default().with_parked(commit.parked);
        if let Some(update) = commit.tracking {
            batch = batch.with_tracking(update);
        }
        Ok(self.positions.insert(&batch)?)
    }

    fn setup(&mut self, policy: &mut P) -> Result<(), Failure> {
        let mut state = self.lock();
        policy.setup(&mut state).map_err(Failure::Setup)
    }

    fn rebuild(
        &mut self,
        _policy: &mut P,
        _rewind: &[(TrackingKey, u64)],
        registration: &Registration,
    ) -> Result<bool, Failure> {
        // Nothing outlives the process: every run starts from the start.
        self.positions.update_follower(registration)?;
        Ok(false)
    }
}
