//! Starting a system on a runner, and the handle of a running system.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::definition::{System, SystemError};
use super::processes::{self, ProcessOptions, Supervisor};
use super::single::Single;
use super::worker::{How, Spawned, Worker};
use super::{App, quiescence};
use crate::application::Application;
use crate::error::{Error, Result};
use crate::follower::Partition;

/// Where a system's followers run.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Runner {
    /// On the thread that saves: a save returns after every follower
    /// downstream has handled what it recorded, and what that recorded,
    /// and so on. Deterministic; the runner for tests.
    ///
    /// On a SQLite file, the save and all it causes downstream are one
    /// transaction, each follower's batch a savepoint in it (a failing
    /// follower undoes only its batch; the save stands, and the error is
    /// kept for [`SystemRunning::check`]). Commit hooks other than the
    /// runner's are told once it committed; other threads' writes to the
    /// file wait for it.
    SingleThread,
    /// One thread per follower and partition in this process, woken by
    /// commits.
    Threads,
    /// One operating-system process per following application, on this
    /// machine, sharing a SQLite file or a PostgreSQL database: this
    /// program runs itself again once per application (see
    /// [`ProcessOptions`]), restarts a child that dies, and stops them
    /// all on [`SystemRunning::stop`].
    Processes(ProcessOptions),
    /// One node of several (on one machine or many) sharing a PostgreSQL
    /// database: the nodes share the work by leases (see
    /// [`MachineOptions`](super::MachineOptions)).
    #[cfg(feature = "postgres")]
    Machines(super::MachineOptions),
}

/// Makes the [`Application`] of the system's application with a given
/// name: [`System::start`] uses the environment (`DB_URI` and the rest,
/// each application with a table prefix of its own).
pub type AppFactory = Arc<dyn Fn(&str) -> Result<Application> + Send + Sync>;

/// The table prefix of a system's application `name` when the
/// applications are made from the environment: its name in lower case,
/// then `_`.
#[must_use]
pub fn table_prefix(name: &str) -> String {
    let mut prefix: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    prefix.push('_');
    prefix
}

fn from_env(name: &str) -> Result<Application> {
    Application::builder()
        .env()?
        .name(name)
        .table_prefix(table_prefix(name))
        .build()
}

impl System {
    /// Starts the system on `runner`, its applications made from the
    /// environment (`DB_URI` and the rest; each with the table prefix
    /// [`table_prefix`] gives, so that they can share one database).
    ///
    /// Under [`Runner::Processes`], in a child this program started for
    /// one application, this call does not return: the child follows
    /// until its parent stops it, then exits.
    pub fn start(&self, runner: Runner) -> Result<SystemRunning> {
        self.start_with(runner, from_env)
    }

    /// [`System::start`] with applications made by `factory`, from each
    /// application's name. Every process and node must make them alike.
    pub fn start_with(
        &self,
        runner: Runner,
        factory: impl Fn(&str) -> Result<Application> + Send + Sync + 'static,
    ) -> Result<SystemRunning> {
        let factory: AppFactory = Arc::new(factory);
        if let Runner::Processes(_) = &runner
            && let Some(role) = processes::role()
        {
            processes::run_child(self, &factory, &role)
        }
        let apps = self
            .inner
            .apps
            .iter()
            .map(|spec| factory(spec.name()))
            .collect::<Result<Vec<_>>>()?;
        let mode = match runner {
            Runner::SingleThread => {
                super::repartition::level(self, &apps)?;
                Mode::Single(Single::start(self, &apps)?)
            }
            Runner::Threads => {
                super::repartition::level(self, &apps)?;
                let workers = self
                    .workers(&apps, None, None)?
                    .into_iter()
                    .map(Worker::spawn)
                    .collect();
                Mode::Threads(workers)
            }
            Runner::Processes(options) => {
                if apps.iter().any(|app| !app.is_shared()) {
                    return Err(SystemError::Runner(
                        "the process runner needs a database all processes share: set DB_URI \
                         to a SQLite file or PostgreSQL"
                            .to_owned(),
                    )
                    .into());
                }
                super::repartition::level(self, &apps)?;
                Mode::Processes(Supervisor::start(self, &options)?)
            }
            #[cfg(feature = "postgres")]
            Runner::Machines(options) => {
                Mode::Machines(super::machines::Node::start(self, &apps, options)?)
            }
        };
        Ok(SystemRunning {
            system: self.clone(),
            apps,
            mode,
        })
    }

    /// Every follower of the system over `apps`, started: one per
    /// following application and partition, or only those of
    /// application `only`.
    pub(crate) fn workers(
        &self,
        apps: &[Application],
        only: Option<usize>,
        poll_max: Option<Duration>,
    ) -> Result<Vec<Box<dyn Worker>>> {
        self.inner
            .units()
            .into_iter()
            .filter(|&(app, _)| only.is_none_or(|o| o == app))
            .map(|(app, partition)| self.worker(apps, app, partition, None, poll_max))
            .collect()
    }

    /// The follower of application `app`, partition `partition` of its
    /// count.
    pub(crate) fn worker(
        &self,
        apps: &[Application],
        app: usize,
        partition: u32,
        until: Option<u64>,
        poll_max: Option<Duration>,
    ) -> Result<Box<dyn Worker>> {
        let count = self.inner.partitions[app];
        self.worker_of(
            apps,
            app,
            &self.inner.upstreams(app),
            partition,
            count,
            until,
            poll_max,
        )
    }

    #[allow(clippy::too_many_arguments, reason = "an internal constructor")]
    pub(crate) fn worker_of(
        &self,
        apps: &[Application],
        app: usize,
        upstreams: &[usize],
        partition: u32,
        count: u32,
        until: Option<u64>,
        poll_max: Option<Duration>,
    ) -> Result<Box<dyn Worker>> {
        let def = &self.inner;
        let upstreams: Vec<(&str, &Application)> = upstreams
            .iter()
            .map(|&u| (def.apps[u].name(), &apps[u]))
            .collect();
        let partition = Partition::new(partition, count).unwrap_or_else(Partition::whole);
        def.apps[app].worker(
            &apps[app],
            &upstreams,
            How {
                partition,
                record_dependencies: def.feeds_partitions(app),
                until,
                poll_max,
            },
        )
    }
}

enum Mode {
    Single(Arc<Single>),
    Threads(Vec<Box<dyn Spawned>>),
    Processes(Supervisor),
    #[cfg(feature = "postgres")]
    Machines(super::machines::Node),
}

/// A running system: its applications (save to them as usual), and its
/// followers on the runner it was started on.
pub struct SystemRunning {
    system: System,
    apps: Vec<Application>,
    mode: Mode,
}

impl fmt::Debug for SystemRunning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemRunning")
            .field("system", &self.system)
            .finish_non_exhaustive()
    }
}

impl SystemRunning {
    /// The system.
    #[must_use]
    pub fn system(&self) -> &System {
        &self.system
    }

    /// The application of type `A`.
    ///
    /// # Panics
    ///
    /// When `A` is not an application of this system (a programming
    /// error: the system's definition names its types).
    #[must_use]
    pub fn app<A: App>(&self) -> &Application {
        match self.application(A::name()) {
            Some(app) => app,
            None => panic!("`{}` is not an application of this system", A::name()),
        }
    }

    /// The application named `name`, if the system has one.
    #[must_use]
    pub fn application(&self, name: &str) -> Option<&Application> {
        self.system.inner.index(name).map(|i| &self.apps[i])
    }

    /// The error a follower failed with, if one did (the single-thread
    /// runner keeps the first; the others report a follower that ended).
    pub fn check(&mut self) -> Result<()> {
        match &mut self.mode {
            Mode::Single(single) => single.check(),
            Mode::Threads(workers) => {
                if let Some(i) = workers.iter().position(|w| w.is_finished()) {
                    let worker = workers.swap_remove(i);
                    worker.stop()?;
                    return Err(Error::Stopped {
                        follower: "a follower of the system".to_owned(),
                        reason: "it ended".to_owned(),
                    });
                }
                Ok(())
            }
            Mode::Processes(supervisor) => supervisor.check(),
            #[cfg(feature = "postgres")]
            Mode::Machines(node) => node.check(),
        }
    }

    /// Waits until every follower of the system has handled everything
    /// its upstreams recorded, and nothing new was recorded meanwhile:
    /// `true` then, `false` when `timeout` passed first. A follower's
    /// failure is returned as an error.
    pub fn wait_until_quiescent(&mut self, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_micros(200);
        loop {
            self.check()?;
            if quiescence::is_quiescent(&self.system, &self.apps)? {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// Under the process runner: each child's application and process
    /// id, as now (a restarted child has a new one).
    #[must_use]
    pub fn children(&self) -> Vec<(String, u32)> {
        match &self.mode {
            Mode::Processes(supervisor) => supervisor.children(),
            _ => Vec::new(),
        }
    }

    /// Under the process runner: how many children were restarted after
    /// they died.
    #[must_use]
    pub fn restarts(&self) -> u64 {
        match &self.mode {
            Mode::Processes(supervisor) => supervisor.restarts(),
            _ => 0,
        }
    }

    /// Under the machine runner: the work units (`application/partition`)
    /// this node holds leases for now.
    #[must_use]
    pub fn held(&self) -> Vec<String> {
        match &self.mode {
            #[cfg(feature = "postgres")]
            Mode::Machines(node) => node.held(),
            _ => Vec::new(),
        }
    }

    /// Under the machine runner: how many times this node lost a unit it
    /// held, that is stopped running it other than by giving it up (to
    /// share the units out fairly, or on [`SystemRunning::stop`]): its
    /// lease expired or went to another node, could not be renewed in
    /// time, or lapsed while its follower was starting; or its follower
    /// ended (fenced by the node that took the unit over, or failed). A
    /// count that grows tells of a node cut off, paused, or too slow to
    /// renew; see also
    /// [`MachineOptions::stop_taking_after_loss`](super::MachineOptions::stop_taking_after_loss).
    /// Always 0 under the other runners.
    #[must_use]
    pub fn lost(&self) -> u64 {
        match &self.mode {
            #[cfg(feature = "postgres")]
            Mode::Machines(node) => node.lost(),
            _ => 0,
        }
    }

    /// Stops every follower after the batch in progress (children and
    /// nodes cleanly; leases are given up); the first error one failed
    /// with, if any.
    pub fn stop(self) -> Result<()> {
        match self.mode {
            Mode::Single(single) => single.stop(),
            Mode::Threads(workers) => {
                let mut first = Ok(());
                for worker in workers {
                    let result = worker.stop();
                    if first.is_ok() {
                        first = result;
                    }
                }
                first
            }
            Mode::Processes(supervisor) => supervisor.stop(),
            #[cfg(feature = "postgres")]
            Mode::Machines(node) => {
                node.stop();
                Ok(())
            }
        }
    }
}
