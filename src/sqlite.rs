//! SQLite database files for tests, in temporary directories.

use std::path::PathBuf;

use eventsourcing::{Application, ApplicationBuilder};

/// A SQLite database file in a temporary directory, removed on drop.
#[derive(Debug)]
pub struct FileDb {
    _dir: tempfile::TempDir,
    /// The file (not created until an application or connection opens it).
    pub path: PathBuf,
}

impl FileDb {
    /// A fresh file name in a fresh directory.
    ///
    /// # Panics
    ///
    /// When no temporary directory can be made.
    #[must_use]
    pub fn new() -> FileDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.db");
        FileDb { _dir: dir, path }
    }

    /// The file's `DB_URI`.
    #[must_use]
    pub fn uri(&self) -> String {
        format!("sqlite:///{}", self.path.display())
    }

    /// An application builder on the file.
    #[must_use]
    pub fn builder(&self) -> ApplicationBuilder {
        Application::builder().db_uri(self.uri())
    }

    /// An application on the file, with the defaults.
    ///
    /// # Panics
    ///
    /// When the file cannot be opened.
    #[must_use]
    pub fn app(&self) -> Application {
        self.builder().build().expect("application")
    }

    /// A raw connection, for reading and tampering with rows.
    ///
    /// # Panics
    ///
    /// When the file cannot be opened.
    #[must_use]
    pub fn conn(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.path).expect("open")
    }
}

impl Default for FileDb {
    fn default() -> Self {
        FileDb::new()
    }
}
