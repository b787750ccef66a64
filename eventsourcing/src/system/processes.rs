//! The process runner: one child process per following application,
//! started by running this program again with [`ROLE_VARIABLE`] naming
//! the application; the parent restarts a child that dies and stops them
//! all by closing their standard input.
//!
//! A child builds the same system (the program's `main` runs again up to
//! [`System::start`](super::System::start)), follows with every partition
//! of its application on threads of its own, and ends when its standard
//! input closes: when the parent stops it, or dies. Exactly-once does not
//! rest on the supervision: a child killed at any moment leaves either a
//! whole batch or nothing, and the child started in its place takes the
//! tracking rows over (raising their epochs) and goes on from them.

use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::definition::{System, SystemError};
use super::run::AppFactory;
use crate::error::{Error, Result};

/// The environment variable that tells a child process which application
/// of the system it runs.
pub const ROLE_VARIABLE: &str = "EVENTSOURCING_SYSTEM_ROLE";

/// How the process runner starts its children: by default this program
/// ([`std::env::current_exe`]) with the arguments it was given.
#[derive(Clone, Debug, Default)]
pub struct ProcessOptions {
    program: Option<PathBuf>,
    args: Option<Vec<OsString>>,
    env: Vec<(OsString, OsString)>,
}

impl ProcessOptions {
    /// Children run this program with this program's arguments.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Children run `program` instead of this program.
    #[must_use]
    pub fn program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = Some(program.into());
        self
    }

    /// Children get these arguments instead of this program's (a test
    /// names the one test the child runs).
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// Children get this environment variable besides this process's.
    #[must_use]
    pub fn env(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    fn command(&self, role: &str) -> Result<Command> {
        let program = match &self.program {
            Some(program) => program.clone(),
            None => std::env::current_exe().map_err(|error| {
                SystemError::Runner(format!("cannot find this program to run it again: {error}"))
            })?,
        };
        let mut command = Command::new(program);
        match &self.args {
            Some(args) => command.args(args),
            None => command.args(std::env::args_os().skip(1)),
        };
        command
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env(ROLE_VARIABLE, role)
            .stdin(Stdio::piped());
        Ok(command)
    }
}

/// The application this process was started to run, if it is a child.
pub(crate) fn role() -> Option<String> {
    std::env::var(ROLE_VARIABLE).ok().filter(|r| !r.is_empty())
}

/// Runs a child: follows until standard input closes, then exits (with 1
/// when a follower failed, so that the parent starts it again).
pub(crate) fn run_child(system: &System, factory: &AppFactory, role: &str) -> ! {
    let code = match child(system, factory, role) {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("eventsourcing: system application `{role}` stopped: {error}");
            1
        }
    };
    std::process::exit(code)
}

fn child(system: &System, factory: &AppFactory, role: &str) -> Result<()> {
    let def = &system.inner;
    let Some(app) = def.index(role) else {
        return Err(SystemError::Runner(format!("the system has no application `{role}`")).into());
    };
    let apps = def
        .apps
        .iter()
        .map(|spec| factory(spec.name()))
        .collect::<Result<Vec<_>>>()?;
    let mut running: Vec<_> = system
        .workers(&apps, Some(app), None)?
        .into_iter()
        .map(super::worker::Worker::spawn)
        .collect();
    let (closed, stdin_closed) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = [0_u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        let _ = closed.send(());
    });
    let ended = loop {
        match stdin_closed.recv_timeout(Duration::from_millis(20)) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break None,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Some(i) = running.iter().position(|w| w.is_finished()) {
            break Some(running.swap_remove(i));
        }
    };
    let mut result = match ended {
        Some(worker) => worker.stop().and(Err(Error::Stopped {
            follower: role.to_owned(),
            reason: "a follower ended".to_owned(),
        })),
        None => Ok(()),
    };
    for worker in running {
        let stopped = worker.stop();
        if result.is_ok() {
            result = stopped;
        }
    }
    result
}

/// The parent's side: starts the children, restarts any that dies,
/// stops them all.
pub(crate) struct Supervisor {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    children: Mutex<Vec<(String, Child)>>,
    options: ProcessOptions,
    stopping: AtomicBool,
    restarts: AtomicU64,
    /// Why the last restart could not start a child.
    failed: Mutex<Option<String>>,
}

impl Supervisor {
    pub(crate) fn start(system: &System, options: &ProcessOptions) -> Result<Supervisor> {
        let def = &system.inner;
        let mut children = Vec::new();
        for app in 0..def.apps.len() {
            if def.upstreams(app).is_empty() {
                continue;
            }
            let name = def.apps[app].name().to_owned();
            let child = spawn(options, &name)?;
            children.push((name, child));
        }
        let shared = Arc::new(Shared {
            children: Mutex::new(children),
            options: options.clone(),
            stopping: AtomicBool::new(false),
            restarts: AtomicU64::new(0),
            failed: Mutex::new(None),
        });
        let watched = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("system supervisor".to_owned())
            .spawn(move || supervise(&watched))
            .map_err(|error| {
                SystemError::Runner(format!("cannot start the supervisor: {error}"))
            })?;
        Ok(Supervisor {
            shared,
            thread: Some(thread),
        })
    }

    pub(crate) fn children(&self) -> Vec<(String, u32)> {
        self.shared
            .children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(name, child)| (name.clone(), child.id()))
            .collect()
    }

    pub(crate) fn restarts(&self) -> u64 {
        self.shared.restarts.load(Ordering::SeqCst)
    }

    pub(crate) fn check(&self) -> Result<()> {
        match &*self
            .shared
            .failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            Some(reason) => Err(SystemError::Runner(reason.clone()).into()),
            None => Ok(()),
        }
    }

    /// Closes every child's standard input, waits up to 30 s for each to
    /// end, and kills any that has not.
    pub(crate) fn stop(mut self) -> Result<()> {
        self.shared.stopping.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let mut children = self
            .shared
            .children
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (_, child) in children.iter_mut() {
            drop(child.stdin.take());
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut failures = Vec::new();
        for (name, child) in children.iter_mut() {
            loop {
                match child.try_wait() {
                    Ok(Some(status)) if status.success() => break,
                    Ok(Some(status)) => {
                        failures.push(format!("`{name}` ended with {status}"));
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Ok(None) | Err(_) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        failures.push(format!("`{name}` did not stop and was killed"));
                        break;
                    }
                }
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(SystemError::Runner(failures.join("; ")).into())
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shared.stopping.store(true, Ordering::SeqCst);
            for (_, child) in self
                .shared
                .children
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter_mut()
            {
                drop(child.stdin.take());
            }
        }
    }
}

fn spawn(options: &ProcessOptions, role: &str) -> Result<Child> {
    options.command(role)?.spawn().map_err(|error| {
        SystemError::Runner(format!("cannot start the process for `{role}`: {error}")).into()
    })
}

/// Restarts children that ended, until the runner stops.
fn supervise(shared: &Shared) {
    while !shared.stopping.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(10));
        let mut children = shared
            .children
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (name, child) in children.iter_mut() {
            if shared.stopping.load(Ordering::SeqCst) {
                return;
            }
            if !matches!(child.try_wait(), Ok(Some(_))) {
                continue;
            }
            match spawn(&shared.options, name) {
                Ok(new) => {
                    *child = new;
                    shared.restarts.fetch_add(1, Ordering::SeqCst);
                }
                Err(error) => {
                    *shared.failed.lock().unwrap_or_else(PoisonError::into_inner) =
                        Some(error.to_string());
                }
            }
        }
    }
}
