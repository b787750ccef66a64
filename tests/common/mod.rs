//! What several integration tests share: the synopsis aggregate, and a way
//! to run one test of the current test binary in a child process with a
//! chosen environment (tests never call `std::env::set_var`, which races
//! with the other test threads).

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use eventsourcing::ApplicationBuilder;
use eventsourcing::prelude::*;

/// The synopsis aggregate: a world with a history of things that happened.
#[aggregate]
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct World {
    pub(crate) history: Vec<String>,
}

#[aggregate]
impl World {
    #[created(Created)]
    pub(crate) fn create(&mut self) {}

    #[event(SomethingHappened)]
    pub(crate) fn make_it_so(&mut self, what: String) {
        self.history.push(what);
    }
}

/// The variables an application reads from the environment: a child
/// process starts without any of them but those it is given.
pub(crate) const CONFIGURATION: [&str; 4] =
    ["DB_URI", "CIPHER_KEY", "COMPRESS", "SNAPSHOT_INTERVAL"];

/// Runs the test `child` of the current test binary in a child process,
/// with `marker` set (so that the child test knows it is the child) and,
/// of the configuration variables, exactly `vars`. Returns its standard
/// output, after asserting that it succeeded.
pub(crate) fn run_child(child: &str, marker: &str, vars: &[(&str, &OsStr)]) -> String {
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args(["--exact", child, "--nocapture", "--test-threads=1"])
        .env(marker, "1")
        .stdin(Stdio::null());
    for name in CONFIGURATION {
        command.env_remove(name);
    }
    for (name, value) in vars {
        command.env(name, value);
    }
    let output = command.output().expect("child runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Prints a child's outcome where [`outcome`] finds it.
pub(crate) fn report(outcome: &str) {
    println!("\nFROM_ENV {outcome}");
}

/// The outcome a child printed with [`report`].
pub(crate) fn outcome(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("FROM_ENV "))
        .unwrap_or_else(|| panic!("no outcome in {stdout}"))
        .to_owned()
}

/// A SQLite database file in a temporary directory, removed on drop.
pub(crate) struct FileDb {
    _dir: tempfile::TempDir,
    pub(crate) path: PathBuf,
}

impl FileDb {
    pub(crate) fn new() -> FileDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.db");
        FileDb { _dir: dir, path }
    }

    /// The file's `DB_URI`.
    pub(crate) fn uri(&self) -> String {
        format!("sqlite:///{}", self.path.display())
    }

    /// An application builder on the file.
    pub(crate) fn builder(&self) -> ApplicationBuilder {
        Application::builder().db_uri(self.uri())
    }

    /// An application on the file, with the defaults.
    pub(crate) fn app(&self) -> Application {
        self.builder().build().expect("application")
    }

    /// A raw connection, for reading and tampering with rows.
    pub(crate) fn conn(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.path).expect("open")
    }
}
