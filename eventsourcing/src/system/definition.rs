//! Declaring a system: its applications, its pipelines and partitions,
//! and the checks a definition passes before it runs.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use super::worker::{Spec, Typed};
use super::{App, Pipe};
use crate::error::Result;

/// Why a system definition was refused ([`SystemBuilder::build`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SystemError {
    /// The system has no pipeline.
    #[error("the system has no pipeline; add one with `pipe`")]
    NoPipes,
    /// A pipeline names an application the system does not define.
    #[error("application `{name}` is in a pipeline but not defined; add it with `app`")]
    Undefined {
        /// Its name.
        name: String,
    },
    /// Two applications of the system have one name.
    #[error("two applications are named `{name}`; give one another name (`#[policy(name)]`)")]
    NameUsedTwice {
        /// The name.
        name: String,
    },
    /// An application follows itself.
    #[error("application `{name}` follows itself")]
    FollowsItself {
        /// Its name.
        name: String,
    },
    /// A follower's policy handles none of the events its upstream can
    /// record.
    #[error(
        "`{follower}` follows `{upstream}` but handles none of its events \
         (its policy has no handler for any event of `{upstream}`'s aggregates)"
    )]
    NothingToFollow {
        /// The follower.
        follower: String,
        /// The upstream.
        upstream: String,
    },
    /// A partition count of zero, or partitions for an application that
    /// follows nothing.
    #[error("application `{name}`: {reason}")]
    Partitions {
        /// The application.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The runner cannot run this system as configured.
    #[error("{0}")]
    Runner(String),
}

/// Declares a [`System`]: [`app`](Self::app) for each application,
/// [`pipe`](Self::pipe) for each pipeline, then [`build`](Self::build).
#[must_use = "a system builder does nothing until it is built"]
#[derive(Default)]
pub struct SystemBuilder {
    apps: Vec<Arc<dyn Spec>>,
    pipes: Vec<Vec<&'static str>>,
    partitions: Vec<(&'static str, u32)>,
}

impl fmt::Debug for SystemBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemBuilder")
            .field(
                "apps",
                &self.apps.iter().map(|a| a.name()).collect::<Vec<_>>(),
            )
            .field("pipes", &self.pipes)
            .field("partitions", &self.partitions)
            .finish()
    }
}

impl SystemBuilder {
    /// Defines an application of the system; `app` is its policy, cloned
    /// for each worker (each partition, each process).
    pub fn app<A: App>(mut self, app: A) -> Self {
        self.apps.push(Arc::new(Typed(app)));
        self
    }

    /// Adds a pipeline: a tuple of application types, each following the
    /// one before it.
    pub fn pipe<P: Pipe>(mut self) -> Self {
        self.pipes.push(P::names());
        self
    }

    /// Splits application `A`'s following into `count` partitions by the
    /// upstream aggregate id, run side by side, each with its own
    /// tracking rows. Changing the count between runs is supported: the
    /// old partitions are first brought level, so nothing is handled
    /// twice.
    pub fn partitions<A: App>(mut self, count: u32) -> Self {
        self.partitions.push((A::name(), count));
        self
    }

    /// Checks the definition and builds the system.
    ///
    /// [`Error::System`](crate::Error::System) with [`SystemError`]: no pipeline, an application
    /// in a pipeline but not defined, a name used twice, an application
    /// following itself, a follower with no handler for anything its
    /// upstream records, a bad partition count.
    pub fn build(self) -> Result<System> {
        let mut index = HashMap::new();
        for (i, app) in self.apps.iter().enumerate() {
            if index.insert(app.name(), i).is_some() {
                return Err(SystemError::NameUsedTwice {
                    name: app.name().to_owned(),
                }
                .into());
            }
        }
        if self.pipes.is_empty() {
            return Err(SystemError::NoPipes.into());
        }
        let mut edges: Vec<(usize, usize)> = Vec::new();
        for pipe in &self.pipes {
            let mut ids = Vec::with_capacity(pipe.len());
            for name in pipe {
                let Some(&i) = index.get(name) else {
                    return Err(SystemError::Undefined {
                        name: (*name).to_owned(),
                    }
                    .into());
                };
                ids.push(i);
            }
            for pair in ids.windows(2) {
                let (up, down) = (pair[0], pair[1]);
                if up == down {
                    return Err(SystemError::FollowsItself {
                        name: self.apps[up].name().to_owned(),
                    }
                    .into());
                }
                if !edges.contains(&(up, down)) {
                    edges.push((up, down));
                }
            }
        }
        for &(up, down) in &edges {
            let (upstream, follower) = (&self.apps[up], &self.apps[down]);
            if let Some(handles) = follower.handles() {
                let emits: HashSet<&str> = upstream.emits().into_iter().collect();
                if !handles.iter().any(|topic| emits.contains(topic)) {
                    return Err(SystemError::NothingToFollow {
                        follower: follower.name().to_owned(),
                        upstream: upstream.name().to_owned(),
                    }
                    .into());
                }
            }
        }
        let mut partitions = vec![1; self.apps.len()];
        for (name, count) in self.partitions {
            let Some(&i) = index.get(name) else {
                return Err(SystemError::Undefined {
                    name: name.to_owned(),
                }
                .into());
            };
            let problem = if count == 0 {
                Some("a partition count must be at least 1")
            } else if !edges.iter().any(|&(_, down)| down == i) {
                Some("it follows nothing, so it has nothing to partition")
            } else {
                None
            };
            if let Some(reason) = problem {
                return Err(SystemError::Partitions {
                    name: name.to_owned(),
                    reason: reason.to_owned(),
                }
                .into());
            }
            partitions[i] = count;
        }
        Ok(System {
            inner: Arc::new(Definition {
                apps: self.apps,
                edges,
                partitions,
            }),
        })
    }
}

/// A checked system definition: its applications, who follows whom and
/// in how many partitions. Start it with [`System::start`] on a
/// [`Runner`](super::Runner). Cheap to clone.
#[derive(Clone)]
pub struct System {
    pub(crate) inner: Arc<Definition>,
}

impl fmt::Debug for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("System")
            .field("apps", &self.names())
            .field("edges", &self.inner.edges)
            .field("partitions", &self.inner.partitions)
            .finish()
    }
}

pub(crate) struct Definition {
    pub(crate) apps: Vec<Arc<dyn Spec>>,
    /// (upstream, follower) indexes into `apps`, each pair once.
    pub(crate) edges: Vec<(usize, usize)>,
    /// Partitions of each application's following.
    pub(crate) partitions: Vec<u32>,
}

impl Definition {
    /// The indexes of the applications `app` follows.
    pub(crate) fn upstreams(&self, app: usize) -> Vec<usize> {
        self.edges
            .iter()
            .filter(|&&(_, down)| down == app)
            .map(|&(up, _)| up)
            .collect()
    }

    /// Whether a partitioned follower follows `app` (so that `app`'s
    /// events must carry causal dependencies).
    pub(crate) fn feeds_partitions(&self, app: usize) -> bool {
        self.edges
            .iter()
            .any(|&(up, down)| up == app && self.partitions[down] > 1)
    }

    /// The index of the application named `name`.
    pub(crate) fn index(&self, name: &str) -> Option<usize> {
        self.apps.iter().position(|a| a.name() == name)
    }

    /// Every worker of the system: (application, partition of count).
    pub(crate) fn units(&self) -> Vec<(usize, u32)> {
        (0..self.apps.len())
            .filter(|&app| !self.upstreams(app).is_empty())
            .flat_map(|app| (0..self.partitions[app]).map(move |p| (app, p)))
            .collect()
    }
}

impl System {
    /// Starts declaring a system.
    pub fn builder() -> SystemBuilder {
        SystemBuilder::default()
    }

    /// The names of the system's applications, as defined.
    #[must_use]
    pub fn names(&self) -> Vec<&'static str> {
        self.inner.apps.iter().map(|a| a.name()).collect()
    }

    /// The names of the applications `name` follows.
    #[must_use]
    pub fn upstreams_of(&self, name: &str) -> Vec<&'static str> {
        self.inner.index(name).map_or_else(Vec::new, |i| {
            self.inner
                .upstreams(i)
                .into_iter()
                .map(|u| self.inner.apps[u].name())
                .collect()
        })
    }

    /// How many partitions application `name` follows in (1 when not
    /// partitioned; 0 for a name the system does not define).
    #[must_use]
    pub fn partitions_of(&self, name: &str) -> u32 {
        self.inner
            .index(name)
            .map_or(0, |i| self.inner.partitions[i])
    }
}
