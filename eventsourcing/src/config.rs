//! Configuration: every environment variable the library reads, how each
//! value is parsed and checked, and opening the recorder a `DB_URI` names
//! (DESIGN.md, "Configuration from the environment").
//!
//! A malformed value is [`Error::Config`] naming the variable, returned
//! when the application is built, never at the first write.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::mapper::Compression;
use crate::recorder::{MemoryRecorder, Recorder};

/// Where events are stored: `memory://`, `sqlite:///...`, `postgres://...`.
pub(crate) const DB_URI: &str = "DB_URI";
/// The application key: standard base64 of 32 random bytes.
pub(crate) const CIPHER_KEY: &str = "CIPHER_KEY";
/// Previous application keys, still accepted for reading records and
/// unwrapping data keys during a rotation: comma-separated, each like
/// `CIPHER_KEY`.
pub(crate) const CIPHER_KEY_PREVIOUS: &str = "CIPHER_KEY_PREVIOUS";
/// `zlib`, or unset for no compression.
pub(crate) const COMPRESS: &str = "COMPRESS";
/// Snapshot every N events, for every aggregate type without its own
/// interval.
pub(crate) const SNAPSHOT_INTERVAL: &str = "SNAPSHOT_INTERVAL";

/// Where an application keeps its events, as named by `DB_URI`.
///
/// ```
/// use eventsourcing::{DbUri, recorder::Synchronous};
///
/// let uri = DbUri::parse("sqlite:////tmp/app.db?synchronous=full")?;
/// assert!(matches!(uri, DbUri::Sqlite { synchronous: Some(Synchronous::Full), .. }));
/// assert!(DbUri::parse("mysql://x").is_err());
/// # Ok::<(), eventsourcing::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DbUri {
    /// `memory://`: the in-process [`MemoryRecorder`].
    Memory,
    /// `sqlite:///:memory:` (a private in-memory database),
    /// `sqlite:///relative.db` or `sqlite:////absolute.db`, optionally
    /// followed by `?synchronous=off|normal|full|extra` and
    /// `wal_autocheckpoint=<pages>` (joined by `&`).
    Sqlite {
        /// `None` for `:memory:`, else the database file.
        path: Option<PathBuf>,
        /// The `synchronous` query parameter, if given.
        synchronous: Option<Synchronous>,
        /// The `wal_autocheckpoint` query parameter, if given
        /// ([`SqliteOptions::wal_autocheckpoint`](crate::recorder::SqliteOptions::wal_autocheckpoint)).
        wal_autocheckpoint: Option<u32>,
    },
    /// `postgres://...` or `postgresql://...`, kept as written.
    Postgres(String),
}

/// SQLite's `synchronous` setting: how hard each commit works to reach the
/// disk (see `SqliteOptions` for what each level guarantees). Set with
/// `?synchronous=` in a SQLite `DB_URI`, or on `SqliteOptions`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Synchronous {
    /// No syncing at all: a committed save can be lost, and the database
    /// corrupted, on power loss or an operating system crash.
    Off,
    /// Sync at checkpoints only (the default with WAL): a committed save
    /// survives a process crash; the last few may be lost on power loss.
    #[default]
    Normal,
    /// Sync the WAL on every commit: a committed save survives power loss.
    Full,
    /// Like `Full`, and also syncs the directory after deleting a journal.
    Extra,
}

impl Synchronous {
    /// The level named `off`, `normal`, `full` or `extra`, in any case.
    fn parse(value: &str) -> Option<Synchronous> {
        match value.to_ascii_lowercase().as_str() {
            "off" => Some(Synchronous::Off),
            "normal" => Some(Synchronous::Normal),
            "full" => Some(Synchronous::Full),
            "extra" => Some(Synchronous::Extra),
            _ => None,
        }
    }

    /// The value of SQLite's `PRAGMA synchronous`.
    #[cfg(feature = "sqlite")]
    pub(crate) fn pragma_value(self) -> &'static str {
        match self {
            Self::Off => "OFF",
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
            Self::Extra => "EXTRA",
        }
    }
}

impl DbUri {
    /// The default when `DB_URI` is unset: a private SQLite database in memory.
    #[must_use]
    pub fn default_uri() -> DbUri {
        DbUri::Sqlite {
            path: None,
            synchronous: None,
            wal_autocheckpoint: None,
        }
    }

    /// Parses a `DB_URI` value; a malformed one is [`Error::Config`] naming
    /// `DB_URI` and saying what is expected.
    pub fn parse(uri: &str) -> Result<DbUri> {
        let bad = |reason: String| Error::Config {
            variable: DB_URI,
            reason,
        };
        if uri == "memory://" || uri == "memory:" {
            return Ok(DbUri::Memory);
        }
        if uri.starts_with("postgres://") || uri.starts_with("postgresql://") {
            return Ok(DbUri::Postgres(uri.to_owned()));
        }
        let Some(rest) = uri.strip_prefix("sqlite:///") else {
            return Err(bad(format!(
                "`{uri}` is not a supported database URI; expected `memory://`, \
                 `sqlite:///:memory:`, `sqlite:///relative.db`, `sqlite:////absolute.db` \
                 or `postgres://...`"
            )));
        };
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let mut synchronous = None;
        let mut wal_autocheckpoint = None;
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            match pair.split_once('=') {
                Some(("synchronous", value)) => match Synchronous::parse(value) {
                    Some(level) => synchronous = Some(level),
                    None => {
                        return Err(bad(format!(
                            "`{pair}` in `{uri}`: expected `synchronous=off|normal|full|extra`"
                        )));
                    }
                },
                Some(("wal_autocheckpoint", value)) => match value.parse::<u32>() {
                    Ok(pages) => wal_autocheckpoint = Some(pages),
                    Err(_) => {
                        return Err(bad(format!(
                            "`{pair}` in `{uri}`: expected a number of pages, \
                             `wal_autocheckpoint=0` to {max}",
                            max = u32::MAX
                        )));
                    }
                },
                _ => {
                    return Err(bad(format!(
                        "unknown SQLite option `{pair}` in `{uri}`; expected \
                         `synchronous=off|normal|full|extra` or `wal_autocheckpoint=<pages>`"
                    )));
                }
            }
        }
        if path.is_empty() {
            return Err(bad(format!(
                "`{uri}` names no database; use `sqlite:///:memory:` or a file path"
            )));
        }
        let path = (path != ":memory:").then(|| PathBuf::from(path));
        Ok(DbUri::Sqlite {
            path,
            synchronous,
            wal_autocheckpoint,
        })
    }

    /// Opens (creating if needed) the database this URI names, as a
    /// recorder. [`Error::Config`] when this build lacks the backend's
    /// feature; [`Error::Database`] when the database cannot be opened.
    pub fn open(&self) -> Result<Arc<dyn Recorder>> {
        self.open_with_prefix("")
    }

    /// Opens the database as [`DbUri::open`] does, with every table name
    /// prefixed by `prefix` (ASCII letters, digits and `_`), so that
    /// several applications can share one database. The in-memory backend
    /// has no tables and ignores it.
    pub fn open_with_prefix(&self, prefix: &str) -> Result<Arc<dyn Recorder>> {
        #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
        let _ = prefix;
        match self {
            DbUri::Memory => Ok(Arc::new(MemoryRecorder::new())),
            #[cfg(feature = "sqlite")]
            DbUri::Sqlite {
                path,
                synchronous,
                wal_autocheckpoint,
            } => {
                use crate::recorder::{SqliteOptions, SqliteRecorder};
                let mut options = match path {
                    Some(path) => SqliteOptions::file(path),
                    None => SqliteOptions::memory(),
                }
                .table_prefix(prefix);
                if let Some(level) = synchronous {
                    options = options.synchronous(*level);
                }
                if let Some(pages) = wal_autocheckpoint {
                    options = options.wal_autocheckpoint(*pages);
                }
                Ok(Arc::new(SqliteRecorder::open(options)?))
            }
            #[cfg(not(feature = "sqlite"))]
            DbUri::Sqlite { .. } => Err(Error::Config {
                variable: DB_URI,
                reason: "this build has no SQLite support; enable the `sqlite` feature".to_owned(),
            }),
            #[cfg(feature = "postgres")]
            DbUri::Postgres(url) => {
                use crate::recorder::{PostgresOptions, PostgresRecorder};
                Ok(Arc::new(PostgresRecorder::open(
                    PostgresOptions::new(url.as_str()).table_prefix(prefix),
                )?))
            }
            #[cfg(not(feature = "postgres"))]
            DbUri::Postgres(_) => Err(Error::Config {
                variable: DB_URI,
                reason: "this build has no PostgreSQL support; enable the `postgres` feature"
                    .to_owned(),
            }),
        }
    }
}

/// What the environment says, each variable parsed; `None` where unset.
#[derive(Debug, Default)]
pub(crate) struct Environment {
    /// Checked, and kept as written.
    pub(crate) db_uri: Option<String>,
    pub(crate) cipher_key: Option<String>,
    pub(crate) cipher_key_previous: Option<Vec<String>>,
    #[allow(
        clippy::option_option,
        reason = "unset, set to no compression, or set to one"
    )]
    pub(crate) compression: Option<Option<Compression>>,
    pub(crate) snapshot_interval: Option<u64>,
}

impl Environment {
    /// Reads and checks every variable.
    pub(crate) fn read() -> Result<Environment> {
        Ok(Environment {
            db_uri: env_var(DB_URI)?
                .map(|uri| DbUri::parse(&uri).map(|_| uri))
                .transpose()?,
            cipher_key: env_var(CIPHER_KEY)?,
            cipher_key_previous: env_var(CIPHER_KEY_PREVIOUS)?.map(|keys| {
                keys.split(',')
                    .filter(|key| !key.is_empty())
                    .map(str::to_owned)
                    .collect()
            }),
            compression: env_var(COMPRESS)?
                .map(|value| parse_compress(&value))
                .transpose()?,
            snapshot_interval: env_var(SNAPSHOT_INTERVAL)?
                .map(|value| parse_snapshot_interval(&value))
                .transpose()?,
        })
    }
}

/// Parses a `COMPRESS` value: `zlib` (any case), or empty for none.
fn parse_compress(value: &str) -> Result<Option<Compression>> {
    match value.to_ascii_lowercase().as_str() {
        "" | "none" => Ok(None),
        "zlib" => Ok(Some(Compression::Zlib)),
        other => Err(Error::Config {
            variable: COMPRESS,
            reason: format!("`{other}` is not a supported compression; expected `zlib`"),
        }),
    }
}

/// Parses a `SNAPSHOT_INTERVAL` value: a number of events, `0` or empty for
/// no automatic snapshots.
fn parse_snapshot_interval(value: &str) -> Result<u64> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(0);
    }
    value.parse::<u64>().map_err(|_| Error::Config {
        variable: SNAPSHOT_INTERVAL,
        reason: format!(
            "`{value}` is not a number of events; expected a whole number such as `100`, \
             or `0` for no automatic snapshots"
        ),
    })
}

/// Reads an environment variable; unset is `None`, and a value that is not
/// Unicode is an error naming the variable.
fn env_var(name: &'static str) -> Result<Option<String>> {
    match std::env::var(name) {
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(Error::Config {
            variable: name,
            reason: "the value is not valid Unicode".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(DbUri::parse("memory://").unwrap(), DbUri::Memory);
        assert_eq!(
            DbUri::parse("sqlite:///:memory:").unwrap(),
            DbUri::default_uri()
        );
        assert_eq!(
            DbUri::parse("sqlite:///relative.db").unwrap(),
            DbUri::Sqlite {
                path: Some(PathBuf::from("relative.db")),
                synchronous: None,
                wal_autocheckpoint: None,
            }
        );
        assert_eq!(
            DbUri::parse("sqlite:////tmp/abs.db?synchronous=FULL").unwrap(),
            DbUri::Sqlite {
                path: Some(PathBuf::from("/tmp/abs.db")),
                synchronous: Some(Synchronous::Full),
                wal_autocheckpoint: None,
            }
        );
        assert_eq!(
            DbUri::parse("sqlite:////tmp/abs.db?synchronous=normal&wal_autocheckpoint=10000")
                .unwrap(),
            DbUri::Sqlite {
                path: Some(PathBuf::from("/tmp/abs.db")),
                synchronous: Some(Synchronous::Normal),
                wal_autocheckpoint: Some(10_000),
            }
        );
        for (name, level) in [
            ("off", Synchronous::Off),
            ("normal", Synchronous::Normal),
            ("full", Synchronous::Full),
            ("Extra", Synchronous::Extra),
        ] {
            let uri = DbUri::parse(&format!("sqlite:///a.db?synchronous={name}")).unwrap();
            assert!(
                matches!(uri, DbUri::Sqlite { synchronous: Some(l), .. } if l == level),
                "{name}"
            );
        }
        assert!(matches!(
            DbUri::parse("postgresql://u@h/db").unwrap(),
            DbUri::Postgres(_)
        ));
    }

    #[test]
    fn malformed_uris_name_the_variable() {
        for bad in [
            "",
            "sqlite://relative.db",
            "sqlite:///",
            "mysql://x",
            "sqlite:///a.db?sync=full",
            "sqlite:///a.db?synchronous=sometimes",
            "sqlite:///a.db?synchronous",
            "sqlite:///a.db?wal_autocheckpoint=-1",
            "sqlite:///a.db?wal_autocheckpoint=many",
            "sqlite:///a.db?wal_autocheckpoint=99999999999",
        ] {
            match DbUri::parse(bad) {
                Err(Error::Config { variable, .. }) => assert_eq!(variable, DB_URI, "{bad}"),
                other => panic!("{bad}: expected a DB_URI error, got {other:?}"),
            }
        }
    }

    #[test]
    fn compress_values() {
        assert_eq!(parse_compress("zlib").unwrap(), Some(Compression::Zlib));
        assert_eq!(parse_compress("ZLIB").unwrap(), Some(Compression::Zlib));
        assert_eq!(parse_compress("").unwrap(), None);
        assert!(matches!(
            parse_compress("lz4"),
            Err(Error::Config {
                variable: COMPRESS,
                ..
            })
        ));
    }

    #[test]
    fn snapshot_interval_values() {
        assert_eq!(parse_snapshot_interval(" 100 ").unwrap(), 100);
        assert_eq!(parse_snapshot_interval("").unwrap(), 0);
        assert!(matches!(
            parse_snapshot_interval("ten"),
            Err(Error::Config {
                variable: SNAPSHOT_INTERVAL,
                ..
            })
        ));
    }
}
