//! What the command-line tool's tests share: the stores they run it on (a
//! SQLite file and a scratch PostgreSQL schema, each plain or encrypted),
//! tampering with their rows, and running the tool as a child process.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use eventsourcing::json::Value;
use eventsourcing::prelude::*;
use eventsourcing::recorder::Recorder;
use eventsourcing::{Cipher, DbUri, EventStore, Mapper, generate_cipher_key};

/// The tool, as cargo built it for these tests.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_eventsourcing");
/// How long a test waits for the followed log before it gives up (a guard
/// against hanging, not a measure of speed).
pub(crate) const PATIENCE: Duration = Duration::from_mins(2);

#[aggregate]
#[derive(Debug, Default)]
pub(crate) struct Counter {
    total: u64,
}

#[aggregate]
impl Counter {
    #[created(Opened)]
    pub(crate) fn open(&mut self) {}

    #[event(Added)]
    pub(crate) fn add(&mut self, amount: u64) {
        self.total += amount;
    }
}

// ---------------------------------------------------------------------------
// Stores
// ---------------------------------------------------------------------------

/// What keeps a store alive: its directory, or its schema.
pub(crate) enum Keep {
    Dir(#[allow(dead_code, reason = "removed on drop")] tempfile::TempDir),
    Schema(Scratch),
}

/// A PostgreSQL schema of its own, dropped with everything in it.
pub(crate) struct Scratch {
    pub(crate) url: String,
    pub(crate) schema: String,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Ok(mut client) =
            eventsourcing::postgres::Client::connect(&self.url, eventsourcing::postgres::NoTls)
        {
            let _ = client.batch_execute(&format!(
                "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                self.schema
            ));
        }
    }
}

/// The PostgreSQL server, when its cases should run.
pub(crate) fn postgres_url() -> Option<String> {
    let url = std::env::var("EVENTSOURCING_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let required =
        std::env::var("EVENTSOURCING_REQUIRE_POSTGRES").is_ok_and(|v| !v.is_empty() && v != "0");
    match eventsourcing::postgres::Client::connect(&url, eventsourcing::postgres::NoTls) {
        Ok(_) => Some(url),
        Err(error) if required => panic!("PostgreSQL at {url} is unreachable: {error}"),
        Err(error) => {
            let _ = writeln!(
                std::io::stderr(),
                "skipping the PostgreSQL cases: {url} is unreachable ({error})"
            );
            None
        }
    }
}

/// A store for one case, with the key it is encrypted with, if any.
pub(crate) struct Store {
    pub(crate) name: String,
    pub(crate) db_uri: String,
    pub(crate) key: Option<String>,
    pub(crate) keep: Keep,
}

impl Store {
    pub(crate) fn sqlite(encrypted: bool) -> Store {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        Store {
            name: format!("sqlite{}", if encrypted { ", encrypted" } else { "" }),
            db_uri: format!("sqlite:///{}", path.display()),
            key: encrypted.then(|| generate_cipher_key().unwrap()),
            keep: Keep::Dir(dir),
        }
    }

    pub(crate) fn postgres(encrypted: bool) -> Option<Store> {
        let url = postgres_url()?;
        let schema = format!("es_cli_{}", Uuid::new_v4().simple());
        eventsourcing::postgres::Client::connect(&url, eventsourcing::postgres::NoTls)
            .and_then(|mut client| client.batch_execute(&format!("CREATE SCHEMA \"{schema}\"")))
            .unwrap();
        let separator = if url.contains('?') { '&' } else { '?' };
        Some(Store {
            name: format!("postgres{}", if encrypted { ", encrypted" } else { "" }),
            db_uri: format!("{url}{separator}options=-csearch_path%3D{schema}"),
            key: encrypted.then(|| generate_cipher_key().unwrap()),
            keep: Keep::Schema(Scratch { url, schema }),
        })
    }

    /// The same kind of store, empty, with the same key.
    pub(crate) fn empty_like(&self) -> Store {
        let encrypted = self.key.is_some();
        let mut store = match self.keep {
            Keep::Dir(_) => Store::sqlite(encrypted),
            Keep::Schema(_) => Store::postgres(encrypted).unwrap(),
        };
        store.key.clone_from(&self.key);
        store
    }

    /// Every kind: SQLite and PostgreSQL (when there is a server), plain
    /// and encrypted.
    pub(crate) fn every_kind() -> Vec<Store> {
        let mut stores = vec![Store::sqlite(false), Store::sqlite(true)];
        stores.extend(Store::postgres(false));
        stores.extend(Store::postgres(true));
        stores
    }

    pub(crate) fn app(&self) -> Application {
        let mut builder = Application::builder().db_uri(&self.db_uri);
        if let Some(key) = &self.key {
            builder = builder.cipher_key(key);
        }
        builder.build().unwrap()
    }

    pub(crate) fn recorder(&self) -> Arc<dyn Recorder> {
        DbUri::parse(&self.db_uri).unwrap().open().unwrap()
    }

    pub(crate) fn event_store(&self) -> EventStore {
        let mapper = match &self.key {
            Some(key) => Mapper::new().with_cipher(Cipher::from_base64(key).unwrap()),
            None => Mapper::new(),
        };
        EventStore::new(mapper, self.recorder())
    }

    /// Runs the tool on this store, with its key.
    pub(crate) fn cli(&self, args: &[&str]) -> Run {
        run(self.command(args, true))
    }

    /// Runs the tool on this store, without a key.
    pub(crate) fn cli_without_key(&self, args: &[&str]) -> Run {
        run(self.command(args, false))
    }

    pub(crate) fn command(&self, args: &[&str], with_key: bool) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env_remove("CIPHER_KEY")
            .env_remove("COMPRESS")
            .env("DB_URI", &self.db_uri)
            .stdin(Stdio::null());
        if let (true, Some(key)) = (with_key, &self.key) {
            command.env("CIPHER_KEY", key);
        }
        command
    }

    /// Replaces the stored record of one row, behind the library's back.
    pub(crate) fn set_state(&self, notification_id: u64, state: &[u8]) {
        let id = i64::try_from(notification_id).unwrap();
        match &self.keep {
            Keep::Dir(_) => {
                let path = self.db_uri.strip_prefix("sqlite:///").unwrap();
                let conn = eventsourcing::rusqlite::Connection::open(path).unwrap();
                let changed = conn
                    .execute(
                        "UPDATE stored_events SET state = ?1 WHERE notification_id = ?2",
                        eventsourcing::rusqlite::params![state, id],
                    )
                    .unwrap();
                assert_eq!(changed, 1);
            }
            Keep::Schema(scratch) => {
                let mut client = eventsourcing::postgres::Client::connect(
                    &scratch.url,
                    eventsourcing::postgres::NoTls,
                )
                .unwrap();
                let sql = format!(
                    "UPDATE \"{}\".stored_events SET state = $1 WHERE notification_id = $2",
                    scratch.schema
                );
                assert_eq!(client.execute(&sql, &[&state, &id]).unwrap(), 1);
            }
        }
    }
}

impl Store {
    /// Replaces the stored record of one snapshot, behind the library's
    /// back.
    pub(crate) fn set_snapshot_state(&self, id: Uuid, version: u64, state: &[u8]) {
        let version = i64::try_from(version).unwrap();
        match &self.keep {
            Keep::Dir(_) => {
                let path = self.db_uri.strip_prefix("sqlite:///").unwrap();
                let conn = eventsourcing::rusqlite::Connection::open(path).unwrap();
                let changed = conn
                    .execute(
                        "UPDATE snapshots SET state = ?1 \
                         WHERE originator_id = ?2 AND originator_version = ?3",
                        eventsourcing::rusqlite::params![state, id.to_string(), version],
                    )
                    .unwrap();
                assert_eq!(changed, 1);
            }
            Keep::Schema(scratch) => {
                let mut client = eventsourcing::postgres::Client::connect(
                    &scratch.url,
                    eventsourcing::postgres::NoTls,
                )
                .unwrap();
                let sql = format!(
                    "UPDATE \"{}\".snapshots SET state = $1 \
                     WHERE originator_id = $2 AND originator_version = $3",
                    scratch.schema
                );
                assert_eq!(client.execute(&sql, &[&state, &id, &version]).unwrap(), 1);
            }
        }
    }
}

/// Three counters with 1, 2 and 3 events after their first; returns their
/// ids and heads.
pub(crate) fn populate(app: &Application) -> Vec<(Uuid, Hash)> {
    (0..3_u64)
        .map(|n| {
            let mut counter = Counter::open();
            for amount in 0..=n {
                counter.add(amount + 1);
            }
            app.save(&mut counter).unwrap();
            (counter.id(), counter.head())
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Running the tool
// ---------------------------------------------------------------------------

/// What one run of the tool did.
pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn json(&self) -> Value {
        eventsourcing::json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    pub(crate) fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| {
                eventsourcing::json::from_str(line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
            })
            .collect()
    }

    #[track_caller]
    pub(crate) fn ok(self) -> Run {
        assert_eq!(self.code, Some(0), "stderr: {}", self.stderr);
        self
    }
}

pub(crate) fn run(mut command: Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().unwrap();
    Run {
        code: status.code(),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

/// Runs the tool without any store configured.
pub(crate) fn bare(args: &[&str]) -> Run {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("DB_URI")
        .env_remove("CIPHER_KEY")
        .stdin(Stdio::null());
    run(command)
}
