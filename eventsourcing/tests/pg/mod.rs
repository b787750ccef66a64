//! PostgreSQL for the tests: where the server is, whether to skip, and
//! scratch schemas that are dropped afterwards.
//!
//! - `EVENTSOURCING_POSTGRES_URL` names the server and database
//!   (default `postgres://postgres@127.0.0.1:5432/test`).
//! - Without a reachable server the PostgreSQL tests pass without running,
//!   and the first of them prints why. `EVENTSOURCING_REQUIRE_POSTGRES=1`
//!   (CI sets it) turns that into a failure.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

use eventsourcing::Uuid;
use eventsourcing::recorder::{PostgresOptions, PostgresRecorder};
use postgres::{Client, NoTls};

pub(crate) const URL_VAR: &str = "EVENTSOURCING_POSTGRES_URL";
pub(crate) const REQUIRE_VAR: &str = "EVENTSOURCING_REQUIRE_POSTGRES";
pub(crate) const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Connects to `url`, giving up after a few seconds.
pub(crate) fn connect(url: &str) -> Result<Client, postgres::Error> {
    let mut config: postgres::Config = url.parse()?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(3));
    }
    config.connect(NoTls)
}

/// What to do about the PostgreSQL tests.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
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
pub(crate) fn decide(url: &str, required: bool) -> Decision {
    let reached = connect(url).map_err(|error| chain(&error));
    match reached {
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
/// should be skipped (the first call says why). Panics when the server is
/// required but unreachable.
pub(crate) fn server() -> Option<String> {
    static DECISION: OnceLock<(String, Decision)> = OnceLock::new();
    let (url, decision) = DECISION.get_or_init(|| {
        let url = std::env::var(URL_VAR).unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let required = std::env::var(REQUIRE_VAR).is_ok_and(|v| !v.is_empty() && v != "0");
        let decision = decide(&url, required);
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
pub(crate) struct Scratch {
    pub(crate) url: String,
    pub(crate) schema: String,
}

impl Scratch {
    /// A fresh schema, or `None` when the PostgreSQL tests are skipped.
    pub(crate) fn new() -> Option<Scratch> {
        let url = server()?;
        let schema = format!("es_test_{}", Uuid::new_v4().simple());
        connect(&url)
            .unwrap()
            .batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
            .unwrap();
        Some(Scratch { url, schema })
    }

    /// Options for a recorder on this schema.
    pub(crate) fn options(&self) -> PostgresOptions {
        PostgresOptions::new(self.url.as_str()).schema(self.schema.as_str())
    }

    /// A recorder on this schema, with the default options.
    pub(crate) fn recorder(&self) -> PostgresRecorder {
        PostgresRecorder::open(self.options()).unwrap()
    }

    /// A connection of its own, with the schema first on its search path.
    pub(crate) fn client(&self) -> Client {
        let mut client = connect(&self.url).unwrap();
        client
            .batch_execute(&format!("SET search_path TO \"{}\"", self.schema))
            .unwrap();
        client
    }

    /// The URL with this schema as the connection's search path, for
    /// `DB_URI`.
    pub(crate) fn db_uri(&self) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options=-csearch_path%3D{}",
            self.url, self.schema
        )
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
