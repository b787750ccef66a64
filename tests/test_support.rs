//! The one rule for PostgreSQL in every test: with
//! `EVENTSOURCING_REQUIRE_POSTGRES` set and no server reachable, a
//! PostgreSQL test fails (so CI cannot skip them silently); without it, it
//! passes without running and says why.

use std::ffi::OsStr;

use support::pg::{REQUIRE_VAR, URL_VAR};

/// Set in the child process.
const CHILD: &str = "EVENTSOURCING_SUPPORT_CHILD";
/// Nothing listens on port 1 of loopback.
const NOWHERE: &str = "postgres://postgres@127.0.0.1:1/test?connect_timeout=2";

/// A PostgreSQL test as every test file writes one: a scratch schema, or a
/// skip.
#[test]
fn postgres_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    if let Some(scratch) = support::pg::Scratch::new() {
        println!("ran on {}", scratch.schema);
    }
}

fn run(require: &str) -> std::process::Output {
    support::child::output(
        "postgres_child",
        CHILD,
        &[
            (URL_VAR, OsStr::new(NOWHERE)),
            (REQUIRE_VAR, OsStr::new(require)),
        ],
    )
}

#[test]
fn an_unreachable_server_fails_the_tests_when_required() {
    let output = run("1");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "the child passed:\n{printed}");
    assert!(
        printed.contains("is unreachable") && printed.contains(REQUIRE_VAR),
        "{printed}"
    );
}

#[test]
fn an_unreachable_server_skips_the_tests_when_not_required() {
    for require in ["", "0"] {
        let output = run(require);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        assert!(stderr.contains("skipping the PostgreSQL tests"), "{stderr}");
        assert!(!String::from_utf8_lossy(&output.stdout).contains("ran on"));
    }
}
