//! PostgreSQL for the tests, examples and benchmarks: where the server is,
//! whether to run, skip or fail, and scratch schemas dropped afterwards.
//!
//! - `EVENTSOURCING_POSTGRES_URL` names the server and database (default
//!   [`DEFAULT_URL`]).
//! - Without a reachable server the PostgreSQL tests pass without running,
//!   and the first of them prints why, unless
//!   `EVENTSOURCING_REQUIRE_POSTGRES` is set (to anything but empty or
//!   `0`): then they fail. CI sets it.
//!
//! Every program decides through [`server`], so the rule is the same
//! everywhere.

use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

use eventsourcing::recorder::{PostgresOptions, PostgresRecorder};
use eventsourcing::{Application, ApplicationBuilder, Uuid};
use postgres::{Client, NoTls};

/// The variable that names the server.
pub const URL_VAR: &str = "EVENTSOURCING_POSTGRES_URL";
/// The variable that turns an unreachable server into a failure.
pub const REQUIRE_VAR: &str = "EVENTSOURCING_REQUIRE_POSTGRES";
/// The server when [`URL_VAR`] is unset.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The server's URL: [`URL_VAR`], or [`DEFAULT_URL`].
#[must_use]
pub fn url() -> String {
    std::env::var(URL_VAR).unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// Whether [`REQUIRE_VAR`] is set to anything but empty or `0`.
#[must_use]
pub fn required() -> bool {
    std::env::var(REQUIRE_VAR).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Connects to `url`, giving up after a few seconds.
pub fn connect(url: &str) -> Result<Client, postgres::Error> {
    let mut config: postgres::Config = url.parse()?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(3));
    }
    config.connect(NoTls)
}

/// What to do about the PostgreSQL tests.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// The server is there: run them.
    Run,
    /// Skip them, for this reason.
    Skip(String),
    /// Fail, for this reason.
    Fail(String),
}

/// An error with its causes, `: `-separated.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// Whether the server at `url` is there, and what follows.
#[must_use]
pub fn decide(url: &str, required: bool) -> Decision {
    match connect(url).map_err(|error| chain(&error)) {
        Ok(_) => Decision::Run,
        Err(error) if required => Decision::Fail(format!(
            "PostgreSQL at {url} is unreachable ({error}) and {REQUIRE_VAR} is set"
        )),
        Err(error) => Decision::Skip(format!(
            "skipping the PostgreSQL tests: {url} is unreachable ({error}); \
             set {URL_VAR} to another server, or {REQUIRE_VAR}=1 to fail instead"
        )),
    }
}

/// The server's URL when the PostgreSQL tests should run; `None` when they
/// should be skipped (the first call in the process says why).
///
/// # Panics
///
/// When the server is required but unreachable.
#[must_use]
pub fn server() -> Option<String> {
    static DECISION: OnceLock<(String, Decision)> = OnceLock::new();
    let (url, decision) = DECISION.get_or_init(|| {
        let url = url();
        let decision = decide(&url, required());
        if let Decision::Skip(reason) = &decision {
            // Straight to the stream: the test harness captures `eprintln!`
            // of passing tests, and this must be seen.
            let _ = writeln!(std::io::stderr(), "{reason}");
        }
        (url, decision)
    });
    match decision {
        Decision::Run => Some(url.clone()),
        Decision::Skip(_) => None,
        Decision::Fail(reason) => panic!("{reason}"),
    }
}

/// A uniquely named schema, created now and dropped (with everything in
/// it) when this is dropped, also when a test panics.
#[derive(Debug)]
pub struct Scratch {
    /// The server.
    pub url: String,
    /// The schema's name.
    pub schema: String,
}

impl Scratch {
    /// A fresh schema, or `None` when the PostgreSQL tests are skipped.
    ///
    /// # Panics
    ///
    /// When the server is required but unreachable, or refuses the schema.
    #[must_use]
    pub fn new() -> Option<Scratch> {
        let url = server()?;
        let schema = format!("es_test_{}", Uuid::new_v4().simple());
        connect(&url)
            .and_then(|mut client| client.batch_execute(&format!("CREATE SCHEMA \"{schema}\"")))
            .unwrap_or_else(|error| panic!("cannot create schema {schema}: {error}"));
        Some(Scratch { url, schema })
    }

    /// Options for a recorder on this schema.
    #[must_use]
    pub fn options(&self) -> PostgresOptions {
        PostgresOptions::new(self.url.as_str()).schema(self.schema.as_str())
    }

    /// A recorder on this schema, with the default options.
    ///
    /// # Panics
    ///
    /// When the recorder cannot open.
    #[must_use]
    pub fn recorder(&self) -> PostgresRecorder {
        PostgresRecorder::open(self.options())
            .unwrap_or_else(|error| panic!("cannot open a recorder on {}: {error}", self.schema))
    }

    /// A connection of its own, with the schema first on its search path.
    ///
    /// # Panics
    ///
    /// When the server cannot be reached.
    #[must_use]
    pub fn client(&self) -> Client {
        let mut client = connect(&self.url).expect("connect to PostgreSQL");
        client
            .batch_execute(&format!("SET search_path TO \"{}\"", self.schema))
            .expect("set the search path");
        client
    }

    /// The URL with this schema as the connection's search path, for
    /// `DB_URI`.
    #[must_use]
    pub fn db_uri(&self) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options=-csearch_path%3D{}",
            self.url, self.schema
        )
    }

    /// An application builder on this schema (through `DB_URI`).
    #[must_use]
    pub fn builder(&self) -> ApplicationBuilder {
        Application::builder().db_uri(self.db_uri())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Ok(mut client) = connect(&self.url) {
            let _ = client.batch_execute(&format!(
                "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                self.schema
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Port 1 on loopback: nothing listens there.
    const NOWHERE: &str = "postgres://postgres@127.0.0.1:1/test?connect_timeout=2";

    #[test]
    fn an_unreachable_server_skips_unless_required() {
        assert!(
            matches!(decide(NOWHERE, false), Decision::Skip(reason) if reason.contains(REQUIRE_VAR))
        );
        assert!(
            matches!(decide(NOWHERE, true), Decision::Fail(reason) if reason.contains("unreachable"))
        );
    }
}
