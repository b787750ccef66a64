//! Parsing of `DB_URI`, `CIPHER_KEY` and `COMPRESS` (DESIGN.md,
//! "Configuration from the environment").

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::mapper::Compression;

/// Where an application keeps its events, as named by `DB_URI`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DbUri {
    /// `memory://`: the in-process [`MemoryRecorder`](crate::recorder::MemoryRecorder).
    Memory,
    /// `sqlite:///:memory:` (a private in-memory database),
    /// `sqlite:///relative.db` or `sqlite:////absolute.db`, optionally
    /// followed by `?synchronous=off|normal|full|extra`.
    Sqlite {
        /// `None` for `:memory:`, else the database file.
        path: Option<PathBuf>,
        /// The `synchronous` query parameter, if given.
        synchronous: Option<String>,
    },
    /// `postgres://...` or `postgresql://...`, kept as written.
    Postgres(String),
}

const DB_URI: &str = "DB_URI";

impl DbUri {
    /// The default when `DB_URI` is unset: a private SQLite database in memory.
    #[must_use]
    pub fn default_uri() -> DbUri {
        DbUri::Sqlite {
            path: None,
            synchronous: None,
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
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            match pair.split_once('=') {
                Some(("synchronous", value))
                    if ["off", "normal", "full", "extra"]
                        .contains(&value.to_ascii_lowercase().as_str()) =>
                {
                    synchronous = Some(value.to_ascii_lowercase());
                }
                _ => {
                    return Err(bad(format!(
                        "unknown SQLite option `{pair}` in `{uri}`; expected \
                         `synchronous=off|normal|full|extra`"
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
        Ok(DbUri::Sqlite { path, synchronous })
    }
}

/// Parses a `COMPRESS` value: `zlib` (any case), or empty for none.
pub(crate) fn parse_compress(value: &str) -> Result<Option<Compression>> {
    match value.to_ascii_lowercase().as_str() {
        "" | "none" => Ok(None),
        "zlib" => Ok(Some(Compression::Zlib)),
        other => Err(Error::Config {
            variable: "COMPRESS",
            reason: format!("`{other}` is not a supported compression; expected `zlib`"),
        }),
    }
}

/// Reads an environment variable; unset is `None`, and a value that is not
/// Unicode is an error naming the variable.
pub(crate) fn env_var(name: &'static str) -> Result<Option<String>> {
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
                synchronous: None
            }
        );
        assert_eq!(
            DbUri::parse("sqlite:////tmp/abs.db?synchronous=FULL").unwrap(),
            DbUri::Sqlite {
                path: Some(PathBuf::from("/tmp/abs.db")),
                synchronous: Some("full".to_owned())
            }
        );
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
        ] {
            match DbUri::parse(bad) {
                Err(Error::Config { variable, .. }) => assert_eq!(variable, "DB_URI", "{bad}"),
                other => panic!("{bad}: expected a DB_URI error, got {other:?}"),
            }
        }
    }

    #[test]
    fn compress_values() {
        assert_eq!(parse_compress("zlib").unwrap(), Some(Compression::Zlib));
        assert_eq!(parse_compress("").unwrap(), None);
        assert!(matches!(
            parse_compress("lz4"),
            Err(Error::Config {
                variable: "COMPRESS",
                ..
            })
        ));
    }
}
