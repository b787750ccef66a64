//! The SQLite target of the bench program: fresh files per measurement,
//! and rusqlite alone as the raw baseline.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use eventsourcing::Application;
use eventsourcing::recorder::{SqliteOptions, SqliteRecorder, Synchronous};

use super::{Codec, Durability, Raw, RawRow, Result, Target, builder};

/// The tables of FORMAT.md as the SQLite recorder creates them.
pub(super) const SQLITE_SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS stored_events (
        notification_id INTEGER PRIMARY KEY AUTOINCREMENT,
        originator_id TEXT NOT NULL,
        originator_version INTEGER NOT NULL,
        topic TEXT NOT NULL,
        state BLOB NOT NULL,
        UNIQUE (originator_id, originator_version)
    );";

pub(super) struct SqliteTarget {
    dir: tempfile::TempDir,
    files: Vec<PathBuf>,
    next: usize,
    /// The file of the latest `app`.
    latest_app: Option<PathBuf>,
}

impl SqliteTarget {
    pub(super) fn new() -> Result<SqliteTarget> {
        Ok(SqliteTarget {
            dir: tempfile::Builder::new().prefix("es-bench-").tempdir()?,
            files: Vec::new(),
            next: 0,
            latest_app: None,
        })
    }

    fn fresh_path(&mut self) -> PathBuf {
        self.next += 1;
        let path = self.dir.path().join(format!("db-{}.sqlite", self.next));
        self.files.push(path.clone());
        path
    }
}

pub(super) fn synchronous(durability: Durability) -> Synchronous {
    match durability {
        Durability::Normal => Synchronous::Normal,
        Durability::Full => Synchronous::Full,
    }
}

impl Target for SqliteTarget {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn durabilities(&self) -> &'static [Durability] {
        &[Durability::Normal, Durability::Full]
    }

    fn synced(&self, durability: Durability) -> bool {
        durability == Durability::Full
    }

    fn app(&mut self, codec: Codec, durability: Durability) -> Result<Application> {
        let path = self.fresh_path();
        self.latest_app = Some(path.clone());
        let options = SqliteOptions::file(path).synchronous(synchronous(durability));
        let recorder = Arc::new(SqliteRecorder::open(options)?);
        Ok(builder(codec)?.recorder(recorder).build()?)
    }

    fn kept_app(
        &mut self,
        codec: Codec,
        durability: Durability,
        name: &str,
    ) -> Result<Application> {
        let path = PathBuf::from(name);
        self.latest_app = Some(path.clone());
        let options = SqliteOptions::file(path).synchronous(synchronous(durability));
        let recorder = Arc::new(SqliteRecorder::open(options)?);
        Ok(builder(codec)?.recorder(recorder).build()?)
    }

    fn latest(&self) -> Option<String> {
        let path = self.latest_app.as_ref()?;
        Some(path.to_string_lossy().into_owned())
    }

    fn footprint(&mut self, name: &str) -> Result<Vec<(&'static str, u64)>> {
        let path = Path::new(name);
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let file = std::fs::metadata(path)?.len();
        let wal = match std::fs::metadata(wal) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e.into()),
        };
        Ok(vec![("file", file), ("wal", wal), ("total", file + wal)])
    }

    fn raw(&mut self, durability: Durability) -> Result<Box<dyn Raw>> {
        Ok(Box::new(RawSqlite::open(&self.fresh_path(), durability)?))
    }

    fn raw_copy(&mut self, name: &str, durability: Durability) -> Result<Box<dyn Raw>> {
        // The file and its WAL, while nothing writes to them: the copy
        // opens as the database was.
        let copy = self.fresh_path();
        std::fs::copy(name, &copy)?;
        let mut wal = std::ffi::OsString::from(name);
        wal.push("-wal");
        if Path::new(&wal).exists() {
            let mut copy_wal = copy.clone().into_os_string();
            copy_wal.push("-wal");
            std::fs::copy(&wal, copy_wal)?;
        }
        Ok(Box::new(RawSqlite::open(&copy, durability)?))
    }

    fn clear(&mut self) -> Result<()> {
        for file in self.files.drain(..) {
            for suffix in ["", "-wal", "-shm"] {
                let mut name = file.clone().into_os_string();
                name.push(suffix);
                match std::fs::remove_file(&name) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// rusqlite alone: prepared statements, `BEGIN IMMEDIATE` ... `COMMIT`.
pub(super) struct RawSqlite {
    conn: rusqlite::Connection,
}

impl RawSqlite {
    fn open(path: &Path, durability: Durability) -> Result<RawSqlite> {
        let conn = rusqlite::Connection::open(path)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!("journal mode is {mode}, not WAL").into());
        }
        let level = match durability {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        };
        conn.pragma_update(None, "synchronous", level)?;
        conn.execute_batch(SQLITE_SCHEMA)?;
        Ok(RawSqlite { conn })
    }
}

impl Raw for RawSqlite {
    fn insert(&mut self, rows: &[RawRow], batch: usize) -> Result<()> {
        let conn = &self.conn;
        let mut begin = conn.prepare_cached("BEGIN IMMEDIATE")?;
        let mut commit = conn.prepare_cached("COMMIT")?;
        let mut insert = conn.prepare_cached(
            "INSERT INTO stored_events (originator_id, originator_version, topic, state) \
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        for chunk in rows.chunks(batch) {
            begin.execute([])?;
            for row in chunk {
                insert.execute((&row.id, row.version, &row.topic, &row.state))?;
                black_box(conn.last_insert_rowid());
            }
            commit.execute([])?;
        }
        Ok(())
    }

    fn replay(&mut self, id: &str) -> Result<usize> {
        let mut select = self.conn.prepare_cached(
            "SELECT originator_id, originator_version, topic, state FROM stored_events \
             WHERE originator_id = ?1 ORDER BY originator_version",
        )?;
        let mut rows = select.query([id])?;
        let mut count = 0;
        while let Some(row) = rows.next()? {
            black_box((
                row.get_ref(0)?.as_str()?,
                row.get_ref(1)?.as_i64()?,
                row.get_ref(2)?.as_str()?,
                row.get_ref(3)?.as_blob()?,
            ));
            count += 1;
        }
        Ok(count)
    }

    fn read_log(&mut self, page: usize) -> Result<usize> {
        let mut select = self.conn.prepare_cached(
            "SELECT notification_id, originator_id, originator_version, topic, state \
             FROM stored_events WHERE notification_id >= ?1 \
             ORDER BY notification_id LIMIT ?2",
        )?;
        let limit = i64::try_from(page)?;
        let mut start = 1;
        let mut count = 0;
        loop {
            let mut rows = select.query((start, limit))?;
            let mut in_page = 0;
            while let Some(row) = rows.next()? {
                let id = row.get_ref(0)?.as_i64()?;
                black_box((
                    row.get_ref(1)?.as_str()?,
                    row.get_ref(2)?.as_i64()?,
                    row.get_ref(3)?.as_str()?,
                    row.get_ref(4)?.as_blob()?,
                ));
                start = id + 1;
                in_page += 1;
            }
            count += in_page;
            if in_page < page {
                return Ok(count);
            }
        }
    }
}
