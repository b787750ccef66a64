//! How to open a [`SqliteRecorder`](super::SqliteRecorder): where the
//! database lives, how hard commits work to reach the disk, and the checks.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::Synchronous;
use crate::error::{Error, Result};

/// Where a SQLite database lives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SqlitePath {
    /// A private database in memory, gone when the recorder is dropped.
    #[default]
    Memory,
    /// A database file, created if missing.
    File(PathBuf),
}

/// How to open a [`SqliteRecorder`](super::SqliteRecorder).
///
/// ```
/// use eventsourcing::recorder::{SqliteOptions, Synchronous};
///
/// let options = SqliteOptions::file("app.db")
///     .table_prefix("bank_")
///     .synchronous(Synchronous::Full);
/// assert_eq!(options.table_prefix, "bank_");
/// ```
///
/// # Durability
///
/// File databases are opened in write-ahead-log mode (`journal_mode=WAL`).
///
/// - With [`Synchronous::Normal`] (the default), a save that returned `Ok`
///   survives a crash of the process, but the last transactions before a
///   power loss or an operating system crash may be lost (the database
///   itself stays consistent: it rolls back to an earlier commit).
/// - With [`Synchronous::Full`] or [`Synchronous::Extra`], a save that
///   returned `Ok` survives power loss too, at the cost of a sync of the WAL
///   file on every commit.
/// - With [`Synchronous::Off`], neither holds after an operating system
///   crash or power loss.
///
/// In-memory databases keep nothing beyond the recorder's lifetime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Where the database lives; in memory by default.
    pub path: SqlitePath,
    /// Prepended to every table name (`{prefix}stored_events`, ...), so that
    /// several applications can share one database. Only ASCII letters,
    /// digits and `_`; empty by default.
    pub table_prefix: String,
    /// How hard each commit works to reach the disk; `Normal` by default.
    pub synchronous: Synchronous,
    /// How long a connection waits for another process's lock before it
    /// fails with a database error; 5 seconds by default.
    pub busy_timeout: Duration,
    /// After how many pages in the write-ahead log they are copied back into
    /// the database file (a checkpoint; 0: never on its own). `None`, the
    /// default, keeps SQLite's 1,000 pages (4 MiB). The copy is made by a
    /// thread of the file's own, so that the commit that crossed the
    /// threshold does not wait for the checkpoint's two disk syncs; the
    /// committing thread copies itself only once the log holds four times
    /// the threshold (the thread fell behind). More pages mean fewer
    /// checkpoints at the cost of a larger `-wal` file.
    pub wal_autocheckpoint: Option<u32>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            path: SqlitePath::Memory,
            table_prefix: String::new(),
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(5),
            wal_autocheckpoint: None,
        }
    }
}

impl SqliteOptions {
    /// Default options for a private in-memory database.
    #[must_use]
    pub fn memory() -> Self {
        Self::default()
    }

    /// Default options for the database file at `path`.
    #[must_use]
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::default().path(SqlitePath::File(path.into()))
    }

    /// Sets where the database lives.
    #[must_use]
    pub fn path(mut self, path: SqlitePath) -> Self {
        self.path = path;
        self
    }

    /// Sets the prefix of every table name.
    #[must_use]
    pub fn table_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.table_prefix = prefix.into();
        self
    }

    /// Sets the `synchronous` level.
    #[must_use]
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// Sets how long to wait for another connection's lock.
    #[must_use]
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Sets after how many pages of the write-ahead log a commit copies
    /// them back into the file ([`SqliteOptions::wal_autocheckpoint`]).
    #[must_use]
    pub fn wal_autocheckpoint(mut self, pages: u32) -> Self {
        self.wal_autocheckpoint = Some(pages);
        self
    }
}

pub(super) fn validate_prefix(prefix: &str) -> Result<()> {
    match prefix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        Some(c) => Err(Error::Config {
            variable: "table prefix",
            reason: format!("{c:?} is not allowed; use only ASCII letters, digits and `_`"),
        }),
        None => Ok(()),
    }
}
