//! The recorders the conformance suites run against, and the
//! [`conformance!`](crate::conformance) macro that runs a list of
//! behaviours against each.
//!
//! A behaviour is a function taking a [`Backend`], written once in a suite
//! (`tests/test_recorders.rs`, `tests/test_tracking.rs`,
//! `tests/test_followers.rs`);
//! `conformance!(a, b, ...)` at the bottom of the suite makes one module
//! per backend with one test per behaviour. Adding a backend is one entry
//! here, in [`Backend`] and in the macro.
//!
//! The PostgreSQL backend runs each test in a schema of its own, dropped
//! afterwards; whether it runs, skips or fails is [`pg::server`]'s rule.

use std::sync::Arc;

use eventsourcing::recorder::{MemoryRecorder, Recorder, SqliteOptions, SqliteRecorder};
use eventsourcing::{StoredEvent, Uuid};

use crate::pg;

/// A recorder under test, and whatever must outlive it.
pub struct Backend {
    /// The recorder.
    pub recorder: Arc<dyn Recorder>,
    _dir: Option<tempfile::TempDir>,
    _schema: Option<pg::Scratch>,
    kind: Kind,
}

/// Which backend, and where its database is.
#[derive(Clone)]
enum Kind {
    Memory,
    SqliteMemory,
    SqliteFile(std::path::PathBuf),
    Postgres(eventsourcing::recorder::PostgresOptions),
}

impl Backend {
    fn new(recorder: Arc<dyn Recorder>, kind: Kind) -> Self {
        Self {
            recorder,
            _dir: None,
            _schema: None,
            kind,
        }
    }

    /// Another recorder of the same kind, on the same database where the
    /// backend has one (a SQLite file, a PostgreSQL schema), with its
    /// tables' names prefixed by `prefix`: for a second application
    /// beside the first. SQLite in memory and the in-memory recorder give
    /// a database of its own.
    ///
    /// # Panics
    ///
    /// When the recorder cannot open.
    #[must_use]
    pub fn another(&self, prefix: &str) -> Arc<dyn Recorder> {
        match &self.kind {
            Kind::Memory => Arc::new(MemoryRecorder::new()),
            Kind::SqliteMemory => Arc::new(
                SqliteRecorder::open(SqliteOptions::memory().table_prefix(prefix))
                    .expect("SQLite in memory"),
            ),
            Kind::SqliteFile(path) => Arc::new(
                SqliteRecorder::open(SqliteOptions::file(path).table_prefix(prefix))
                    .expect("SQLite file"),
            ),
            Kind::Postgres(options) => Arc::new(
                eventsourcing::recorder::PostgresRecorder::open(
                    options.clone().table_prefix(prefix),
                )
                .expect("PostgreSQL"),
            ),
        }
    }

    /// The backend's name, for messages.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Memory => "memory",
            Kind::SqliteMemory => "sqlite in memory",
            Kind::SqliteFile(_) => "sqlite file",
            Kind::Postgres(_) => "postgres",
        }
    }

    /// The in-memory recorder.
    #[must_use]
    pub fn memory() -> Self {
        Self::new(Arc::new(MemoryRecorder::new()), Kind::Memory)
    }

    /// SQLite in memory.
    ///
    /// # Panics
    ///
    /// When SQLite cannot open it.
    #[must_use]
    pub fn sqlite_memory() -> Self {
        Self::new(
            Arc::new(SqliteRecorder::open(SqliteOptions::memory()).expect("SQLite in memory")),
            Kind::SqliteMemory,
        )
    }

    /// A SQLite file in a temporary directory.
    ///
    /// # Panics
    ///
    /// When SQLite cannot open it.
    #[must_use]
    pub fn sqlite_file() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.db");
        let options = SqliteOptions::file(&path);
        Self {
            _dir: Some(dir),
            ..Self::new(
                Arc::new(SqliteRecorder::open(options).expect("SQLite file")),
                Kind::SqliteFile(path),
            )
        }
    }

    /// A recorder in a schema of its own; `None` when the PostgreSQL tests
    /// are skipped.
    #[must_use]
    pub fn postgres() -> Option<Self> {
        let schema = pg::Scratch::new()?;
        let recorder = Arc::new(schema.recorder());
        let options = schema.options();
        Some(Self {
            _schema: Some(schema),
            ..Self::new(recorder, Kind::Postgres(options))
        })
    }
}

/// An event whose state is distinct for every (id, version, topic) and
/// holds bytes that are not valid UTF-8.
#[must_use]
pub fn event(id: Uuid, version: u64, topic: &str) -> StoredEvent {
    let mut state = vec![0x00, 0xff, 0xfe];
    state.extend_from_slice(id.as_bytes());
    state.extend_from_slice(&version.to_be_bytes());
    state.extend_from_slice(topic.as_bytes());
    StoredEvent {
        originator_id: id,
        originator_version: version,
        topic: topic.to_owned(),
        state,
    }
}

/// `conformance!(a, b, ...)`: runs the behaviours `a`, `b`, ... (functions
/// of the calling file that take `&Backend`) against every backend.
#[macro_export]
macro_rules! conformance {
    (@tests $make:expr; $($test:ident),*) => {
        $(
            #[test]
            fn $test() {
                // `None`: a backend whose server is not there (and not required).
                let backend: ::core::option::Option<$crate::recorders::Backend> = $make;
                if let ::core::option::Option::Some(backend) = backend {
                    super::$test(&backend);
                }
            }
        )*
    };
    ($($test:ident),* $(,)?) => {
        mod memory {
            $crate::conformance!(@tests
                Some($crate::recorders::Backend::memory()); $($test),*);
        }
        mod sqlite_memory {
            $crate::conformance!(@tests
                Some($crate::recorders::Backend::sqlite_memory()); $($test),*);
        }
        mod sqlite_file {
            $crate::conformance!(@tests
                Some($crate::recorders::Backend::sqlite_file()); $($test),*);
        }
        mod postgres {
            $crate::conformance!(@tests
                $crate::recorders::Backend::postgres(); $($test),*);
        }
    };
}
