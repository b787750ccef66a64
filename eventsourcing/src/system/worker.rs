//! The system's applications with their types erased: how a runner makes
//! a follower of one, runs it and stops it without knowing its policy.

use std::sync::Arc;
use std::time::Duration;

use super::App;
use crate::application::Application;
use crate::error::Result;
use crate::follower::inbox::Inbox;
use crate::follower::{Follower, Partition, ProcessTarget, Progress, Running};

/// An application of a system, typed once when it is defined.
pub(crate) trait Spec: Send + Sync {
    fn name(&self) -> &'static str;
    /// The topics its aggregates' events can have.
    fn emits(&self) -> Vec<&'static str>;
    /// The topics its policy handles (`None`: it cannot tell).
    fn handles(&self) -> Option<Vec<&'static str>>;
    /// A started follower of this application over `own`, following
    /// `upstreams` (name and application).
    fn worker(
        &self,
        own: &Application,
        upstreams: &[(&str, &Application)],
        how: How,
    ) -> Result<Box<dyn Worker>>;
}

/// How many aggregates each follower of a system keeps between batches (a
/// process application often changes again what it changed last).
const AGGREGATE_CACHE: usize = 10_000;

/// How a worker is to follow.
#[derive(Clone, Copy, Debug)]
pub(crate) struct How {
    pub(crate) partition: Partition,
    pub(crate) record_dependencies: bool,
    pub(crate) until: Option<u64>,
    pub(crate) poll_max: Option<Duration>,
}

pub(crate) struct Typed<A>(pub(crate) A);

impl<A: App> Spec for Typed<A> {
    fn name(&self) -> &'static str {
        A::name()
    }

    fn emits(&self) -> Vec<&'static str> {
        <A::Aggregates as super::Aggregates>::topics()
    }

    fn handles(&self) -> Option<Vec<&'static str>> {
        <A as crate::follower::Policy<crate::follower::Processing>>::topics()
    }

    fn worker(
        &self,
        own: &Application,
        upstreams: &[(&str, &Application)],
        how: How,
    ) -> Result<Box<dyn Worker>> {
        let mut builder = Follower::process(self.0.clone(), own)
            .name(A::name())
            .partition(how.partition)
            .record_dependencies(how.record_dependencies)
            .lazy_moves(true)
            .cache_aggregates(AGGREGATE_CACHE);
        for (name, app) in upstreams {
            builder = builder.follow_as(name, app);
        }
        if let Some(until) = how.until {
            builder = builder.until(until);
        }
        if let Some(max) = how.poll_max {
            builder = builder.poll_interval(Duration::from_millis(1).min(max), max);
        }
        Ok(Box::new(builder.start()?))
    }
}

/// A started follower of some policy.
pub(crate) trait Worker: Send {
    fn run_until_caught_up(&mut self) -> Result<Progress>;
    /// Whether the last run stopped at an event whose dependencies another
    /// partition has not handled yet.
    fn is_blocked(&self) -> bool;
    /// Runs it on a thread of its own.
    fn spawn(self: Box<Self>) -> Box<dyn Spawned>;
    /// Reads what upstream `name` commits from `inbox` when it can.
    fn attach_inbox(&mut self, name: &str, inbox: &Arc<Inbox>);
}

impl<A: App> Worker for Follower<A, ProcessTarget> {
    fn run_until_caught_up(&mut self) -> Result<Progress> {
        Follower::run_until_caught_up(self)
    }

    fn is_blocked(&self) -> bool {
        self.blocked
    }

    fn spawn(self: Box<Self>) -> Box<dyn Spawned> {
        Box::new(Follower::spawn(*self))
    }

    fn attach_inbox(&mut self, name: &str, inbox: &Arc<Inbox>) {
        Follower::attach_inbox(self, name, inbox);
    }
}

/// A follower running on a thread of its own.
pub(crate) trait Spawned: Send + Sync {
    fn is_finished(&self) -> bool;
    /// Stops it after the batch in progress; the error it failed with, if
    /// it failed.
    fn stop(self: Box<Self>) -> Result<()>;
}

impl<A: App> Spawned for Running<A, ProcessTarget> {
    fn is_finished(&self) -> bool {
        Running::is_finished(self)
    }

    fn stop(self: Box<Self>) -> Result<()> {
        Running::stop(*self).map(drop)
    }
}
