//! The backends the recorder conformance suites run against, and the
//! `conformance!` macro that runs a list of behaviours against each.
//!
//! A behaviour is a function taking a [`Backend`], written once in a suite
//! (`test_recorders.rs`, `test_tracking.rs`); `conformance!(a, b, ...)` at
//! the bottom of the suite makes one module per backend with one test per
//! behaviour. Adding a backend is one entry here, in [`Backend`] and in the
//! macro.
//!
//! The PostgreSQL backend runs each test in a schema of its own, dropped
//! afterwards; without a reachable server its tests are skipped (see
//! `pg/mod.rs`). A suite that uses this module declares `mod pg;` too.

use std::sync::Arc;

use eventsourcing::recorder::{MemoryRecorder, Recorder};
use eventsourcing::{StoredEvent, Uuid};

/// A recorder under test, and whatever must outlive it.
pub(crate) struct Backend {
    pub(crate) recorder: Arc<dyn Recorder>,
    _dir: Option<tempfile::TempDir>,
    #[cfg(feature = "postgres")]
    _schema: Option<crate::pg::Scratch>,
}

impl Backend {
    fn new(recorder: Arc<dyn Recorder>) -> Self {
        Self {
            recorder,
            _dir: None,
            #[cfg(feature = "postgres")]
            _schema: None,
        }
    }

    pub(crate) fn memory() -> Self {
        Self::new(Arc::new(MemoryRecorder::new()))
    }

    #[cfg(feature = "sqlite")]
    pub(crate) fn sqlite_memory() -> Self {
        use eventsourcing::recorder::{SqliteOptions, SqliteRecorder};
        Self::new(Arc::new(
            SqliteRecorder::open(SqliteOptions::memory()).unwrap(),
        ))
    }

    #[cfg(feature = "sqlite")]
    pub(crate) fn sqlite_file() -> Self {
        use eventsourcing::recorder::{SqliteOptions, SqliteRecorder};
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteOptions::file(dir.path().join("events.db"));
        Self {
            _dir: Some(dir),
            ..Self::new(Arc::new(SqliteRecorder::open(options).unwrap()))
        }
    }

    /// A recorder in a schema of its own; `None` when the PostgreSQL tests
    /// are skipped.
    #[cfg(feature = "postgres")]
    pub(crate) fn postgres() -> Option<Self> {
        let schema = crate::pg::Scratch::new()?;
        let recorder = Arc::new(schema.recorder());
        Some(Self {
            _schema: Some(schema),
            ..Self::new(recorder)
        })
    }
}

/// An event whose state is distinct for every (id, version, topic) and
/// holds bytes that are not valid UTF-8.
pub(crate) fn event(id: Uuid, version: u64, topic: &str) -> StoredEvent {
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
macro_rules! conformance {
    (@tests $make:expr; $($test:ident),*) => {
        $(
            #[test]
            fn $test() {
                // `None`: a backend whose server is not there (and not required).
                let backend: Option<$crate::backends::Backend> = $make;
                if let Some(backend) = backend {
                    super::$test(&backend);
                }
            }
        )*
    };
    ($($test:ident),* $(,)?) => {
        mod memory {
            $crate::backends::conformance!(@tests
                Some($crate::backends::Backend::memory()); $($test),*);
        }
        #[cfg(feature = "sqlite")]
        mod sqlite_memory {
            $crate::backends::conformance!(@tests
                Some($crate::backends::Backend::sqlite_memory()); $($test),*);
        }
        #[cfg(feature = "sqlite")]
        mod sqlite_file {
            $crate::backends::conformance!(@tests
                Some($crate::backends::Backend::sqlite_file()); $($test),*);
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $crate::backends::conformance!(@tests
                $crate::backends::Backend::postgres(); $($test),*);
        }
    };
}

pub(crate) use conformance;
