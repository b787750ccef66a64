//! Opening the store the environment (or the flags) name, and reading all
//! of its rows in notification order.

use std::path::PathBuf;
use std::sync::Arc;

use eventsourcing::recorder::{Notification, Recorder};
use eventsourcing::{Application, Cipher, DbUri, Mapper};

use crate::failure::Failure;

/// Rows read per query when scanning the whole log.
const PAGE: usize = 1000;

/// Where the store is, and the key to read it: the variables an
/// application reads, or the flags.
#[derive(Debug, clap::Args)]
pub(crate) struct StoreArgs {
    /// The store, as in `DB_URI`: `sqlite:///relative.db`,
    /// `sqlite:////absolute.db` or `postgres://...`.
    #[arg(long, env = "DB_URI", hide_env_values = true, global = true)]
    db_uri: Option<String>,
    /// The application key (base64 of 32 bytes), as in `CIPHER_KEY`; prefer
    /// the variable, since arguments are visible to other users. Empty is
    /// the same as unset: no key.
    #[arg(long, env = "CIPHER_KEY", hide_env_values = true, global = true)]
    cipher_key: Option<String>,
    /// Previous application keys still accepted for unwrapping data keys
    /// (comma-separated), as in `CIPHER_KEY_PREVIOUS`: during a key
    /// rotation.
    #[arg(
        long,
        env = "CIPHER_KEY_PREVIOUS",
        hide_env_values = true,
        global = true
    )]
    cipher_key_previous: Option<String>,
    /// With a key, also read records that are not encrypted (a store that
    /// began without a key); without this, such a record fails as it does
    /// in an application.
    #[arg(long, global = true)]
    allow_plaintext: bool,
    /// The prefix of the store's table names, when the application uses one.
    #[arg(long, default_value = "", global = true)]
    table_prefix: String,
}

/// Whether a subcommand may create the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Open {
    /// Only an existing store: a SQLite file that is missing is an error,
    /// not a new empty database.
    Existing,
    /// Create the store (its file, its tables) when missing.
    Create,
}

/// An open store: its rows, and the mapper that reads them.
pub(crate) struct Store {
    pub(crate) uri: DbUri,
    pub(crate) recorder: Arc<dyn Recorder>,
    /// Decrypts with the key when one was given; reads plaintext always.
    pub(crate) mapper: Mapper,
    /// Whether a key was given.
    pub(crate) keyed: bool,
}

impl StoreArgs {
    /// The mapper for the key given, if any, and whether there was one.
    pub(crate) fn mapper(&self) -> Result<(Mapper, bool), Failure> {
        match self.cipher_key.as_deref() {
            None | Some("") => Ok((Mapper::new(), false)),
            Some(key) => {
                let cipher = Cipher::from_base64(key).map_err(|e| Failure::usage(e.to_string()))?;
                let mapper = Mapper::new()
                    .with_cipher(cipher)
                    .allow_plaintext(self.allow_plaintext);
                Ok((mapper, true))
            }
        }
    }

    /// Opens the store.
    pub(crate) fn open(&self, open: Open) -> Result<Store, Failure> {
        let Some(written) = &self.db_uri else {
            return Err(Failure::usage(
                "no store given: set DB_URI (or pass --db-uri), e.g. DB_URI=sqlite:///app.db",
            ));
        };
        let uri = DbUri::parse(written).map_err(|e| Failure::usage(e.to_string()))?;
        if let (Open::Existing, Some(path)) = (open, sqlite_file(&uri))
            && !path.exists()
        {
            return Err(Failure::usage(format!(
                "{}: no such database file",
                path.display()
            )));
        }
        let (mapper, keyed) = self.mapper()?;
        let recorder = uri
            .open_with_prefix(&self.table_prefix)
            .map_err(|e| Failure::from_error(e, keyed))?;
        Ok(Store {
            uri,
            recorder,
            mapper,
            keyed,
        })
    }
}

impl StoreArgs {
    /// An application over the open `store`, with the key given, if any:
    /// for what reads through an application (the HTTP server).
    pub(crate) fn application(&self, store: &Store) -> Result<Application, Failure> {
        let mut builder = Application::builder()
            .recorder(Arc::clone(&store.recorder))
            .allow_plaintext(self.allow_plaintext);
        if let Some(key) = self.cipher_key.as_deref().filter(|k| !k.is_empty()) {
            builder = builder.cipher_key(key);
        }
        for key in self
            .cipher_key_previous
            .iter()
            .flat_map(|keys| keys.split(','))
            .map(str::trim)
            .filter(|k| !k.is_empty())
        {
            builder = builder.previous_cipher_key(key);
        }
        builder.build().map_err(|e| store.failure(e))
    }
}

/// The database file of a SQLite URI.
pub(crate) fn sqlite_file(uri: &DbUri) -> Option<&PathBuf> {
    match uri {
        DbUri::Sqlite {
            path: Some(path), ..
        } => Some(path),
        _ => None,
    }
}

impl Store {
    /// The failure a library error amounts to, given whether a key was
    /// given.
    pub(crate) fn failure(&self, error: eventsourcing::Error) -> Failure {
        Failure::from_error(error, self.keyed)
    }

    /// The greatest notification id.
    pub(crate) fn head(&self) -> Result<u64, Failure> {
        self.recorder
            .max_notification_id()
            .map_err(|e| self.failure(e))
    }

    /// Calls `each` with every row from notification `start` on, in
    /// notification order, a page at a time, until it returns `false`.
    pub(crate) fn scan(
        &self,
        start: u64,
        mut each: impl FnMut(Notification) -> Result<bool, Failure>,
    ) -> Result<(), Failure> {
        let mut next = start.max(1);
        loop {
            let page = self
                .recorder
                .select_notifications(next, PAGE, &[])
                .map_err(|e| self.failure(e))?;
            let Some(last) = page.last().map(|n| n.id) else {
                return Ok(());
            };
            for notification in page {
                if !each(notification)? {
                    return Ok(());
                }
            }
            next = last.saturating_add(1);
        }
    }
}
