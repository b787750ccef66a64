//! Running one test of the current test binary in a child process with a
//! chosen environment: tests never call `std::env::set_var`, which races
//! with the other test threads.

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};

/// The variables an application reads from the environment: a child
/// process starts without any of them but those it is given.
pub const CONFIGURATION: [&str; 5] = [
    "DB_URI",
    "CIPHER_KEY",
    "CIPHER_KEY_PREVIOUS",
    "COMPRESS",
    "SNAPSHOT_INTERVAL",
];

/// Runs the test `child` of the current test binary in a child process,
/// with `marker` set (so that the child test knows it is the child), none
/// of [`CONFIGURATION`], and then `vars`. Returns what it printed and how
/// it ended.
///
/// # Panics
///
/// When the child cannot be started.
#[must_use]
pub fn output(child: &str, marker: &str, vars: &[(&str, &OsStr)]) -> Output {
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
    command.output().expect("child runs")
}

/// [`output`], asserting that the child succeeded; returns its standard
/// output.
///
/// # Panics
///
/// When the child fails.
#[must_use]
pub fn run_child(child: &str, marker: &str, vars: &[(&str, &OsStr)]) -> String {
    let output = output(child, marker, vars);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Prints a child's outcome where [`outcome`] finds it.
pub fn report(outcome: &str) {
    println!("\nFROM_ENV {outcome}");
}

/// The outcome a child printed with [`report`].
///
/// # Panics
///
/// When the child printed none.
#[must_use]
pub fn outcome(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("FROM_ENV "))
        .unwrap_or_else(|| panic!("no outcome in {stdout}"))
        .to_owned()
}

/// Sends `signal` (`-KILL`, `-STOP`, `-CONT`, ...) to process `pid` with
/// `kill(1)`; whether it was delivered.
#[must_use]
pub fn signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .args([signal, &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
