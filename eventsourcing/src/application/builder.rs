//! Building an application: where it stores events, how it encodes them,
//! and when it snapshots, from code or from the environment.

use std::fmt;
use std::sync::Arc;

use crate::application::Application;
use crate::cipher::Cipher;
use crate::config::{CIPHER_KEY_PREVIOUS, DbUri, Environment};
use crate::domain::{Aggregate, Metadata, Root};
use crate::error::{Error, Result};
use crate::keys::{DEFAULT_CACHE, PublicTopics};
use crate::mapper::{Compression, Mapper};
use crate::recorder::Recorder;
use crate::snapshot::SnapshotPolicy;
use crate::store::EventStore;

/// How many notifications a section of the notification log holds unless
/// [`ApplicationBuilder::section_size`] says otherwise.
pub(crate) const DEFAULT_SECTION_SIZE: usize = 10;

/// The name of an application that was not given one.
const DEFAULT_NAME: &str = "Application";

/// The last path segment of `T`'s name, without generic arguments:
/// `BankAccounts` for `my_crate::bank::BankAccounts<u8>`.
pub(crate) fn short_type_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    let path = full.split('<').next().unwrap_or(full);
    path.rsplit("::").next().unwrap_or(path)
}

/// Builds an [`Application`]; see [`Application::builder`].
#[derive(Default)]
pub struct ApplicationBuilder {
    name: Option<String>,
    db_uri: Option<String>,
    table_prefix: String,
    recorder: Option<Arc<dyn Recorder>>,
    cipher_key: Option<String>,
    cipher: Option<Cipher>,
    previous_keys: Vec<String>,
    previous_ciphers: Vec<Cipher>,
    data_key_cache: Option<usize>,
    learn: Vec<fn(&PublicTopics)>,
    compression: Option<Compression>,
    allow_plaintext: bool,
    section_size: Option<usize>,
    snapshots: SnapshotPolicy,
    metadata: Metadata,
}

impl fmt::Debug for ApplicationBuilder {
    // The key is left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApplicationBuilder")
            .field("name", &self.name)
            .field("db_uri", &self.db_uri)
            .field("compression", &self.compression)
            .field("allow_plaintext", &self.allow_plaintext)
            .field("section_size", &self.section_size)
            .field("snapshots", &self.snapshots)
            .finish_non_exhaustive()
    }
}

impl ApplicationBuilder {
    /// Takes `DB_URI`, `CIPHER_KEY`, `CIPHER_KEY_PREVIOUS`, `COMPRESS` and
    /// `SNAPSHOT_INTERVAL` from the environment where they are set. A malformed value is
    /// [`Error::Config`] naming the variable.
    pub fn env(mut self) -> Result<ApplicationBuilder> {
        let env = Environment::read()?;
        if let Some(uri) = env.db_uri {
            self.db_uri = Some(uri);
        }
        if let Some(key) = env.cipher_key {
            self.cipher_key = Some(key);
        }
        if let Some(keys) = env.cipher_key_previous {
            self.previous_keys = keys;
        }
        if let Some(compression) = env.compression {
            self.compression = compression;
        }
        if let Some(interval) = env.snapshot_interval {
            self.snapshots.default = interval;
        }
        Ok(self)
    }

    /// Where to store events, as a `DB_URI` value (checked by `build`).
    #[must_use]
    pub fn db_uri(mut self, uri: impl Into<String>) -> ApplicationBuilder {
        self.db_uri = Some(uri.into());
        self
    }

    /// Stores events in this recorder (instead of `db_uri`).
    #[must_use]
    pub fn recorder(mut self, recorder: Arc<dyn Recorder>) -> ApplicationBuilder {
        self.recorder = Some(recorder);
        self
    }

    /// Encrypts every record with this key: base64 of 32 bytes, as in
    /// `CIPHER_KEY` (checked by `build`).
    #[must_use]
    pub fn cipher_key(mut self, key: impl Into<String>) -> ApplicationBuilder {
        self.cipher_key = Some(key.into());
        self
    }

    /// Encrypts every record with this cipher.
    #[must_use]
    pub fn cipher(mut self, cipher: Cipher) -> ApplicationBuilder {
        self.cipher = Some(cipher);
        self
    }

    /// Also accepts `key` (base64 of 32 bytes, as in `CIPHER_KEY`), a
    /// previous application key: records encrypted under it stay readable,
    /// and data keys wrapped under it unwrap, until
    /// [`Application::rotate_keys`] has re-wrapped them under the current
    /// one. The same as `CIPHER_KEY_PREVIOUS`; may be given more than once.
    #[must_use]
    pub fn previous_cipher_key(mut self, key: impl Into<String>) -> ApplicationBuilder {
        self.previous_keys.push(key.into());
        self
    }

    /// Also accepts this previous application key (see
    /// [`ApplicationBuilder::previous_cipher_key`]).
    #[must_use]
    pub fn previous_cipher(mut self, cipher: Cipher) -> ApplicationBuilder {
        self.previous_ciphers.push(cipher);
        self
    }

    /// Keeps at most `keys` unwrapped data keys in memory (default
    /// 10,000), so that loads and saves of aggregates with per-aggregate
    /// keys do not unwrap a key for every record. `0` caches none.
    #[must_use]
    pub fn data_key_cache(mut self, keys: usize) -> ApplicationBuilder {
        self.data_key_cache = Some(keys);
        self
    }

    /// Tells the application about aggregate type `A` before it saves or
    /// loads one: which of its events are public (stored in plaintext
    /// under a key). An application learns this from the types it saves
    /// and loads; one that only reads notifications (a follower in a
    /// fresh process) needs to be told, or it refuses the plaintext
    /// records of public types.
    #[must_use]
    pub fn aggregate<A: Aggregate>(mut self) -> ApplicationBuilder {
        self.learn.push(PublicTopics::learn::<A>);
        self
    }

    /// Compresses every record before encrypting it.
    #[must_use]
    pub fn compression(mut self, compression: Option<Compression>) -> ApplicationBuilder {
        self.compression = compression;
        self
    }

    /// With a cipher configured, also reads records that are not encrypted
    /// (for example while encrypting an existing database). Off by default:
    /// such records are refused with [`Error::Decryption`].
    #[must_use]
    pub fn allow_plaintext(mut self, allow: bool) -> ApplicationBuilder {
        self.allow_plaintext = allow;
        self
    }

    /// How many notifications a section of the notification log holds
    /// (default 10).
    #[must_use]
    pub fn section_size(mut self, size: usize) -> ApplicationBuilder {
        self.section_size = Some(size);
        self
    }

    /// Snapshots aggregates of type `A` automatically every `interval`
    /// events: a save that takes such an aggregate to or past a multiple
    /// of `interval` also records a snapshot at its new version (see
    /// [`Application::save`]). Loading then replays only the events
    /// after the latest snapshot. `0` turns automatic snapshots off for
    /// `A`. Overrides
    /// [`default_snapshot_interval`](Self::default_snapshot_interval) and
    /// `SNAPSHOT_INTERVAL` for this type.
    ///
    /// ```
    /// # use eventsourcing::prelude::*;
    /// # #[aggregate] #[derive(Default)] struct Cat { lives: u8 }
    /// # #[aggregate] impl Cat {
    /// #     #[created(Born)] fn born(&mut self) { self.lives = 9 }
    /// #     #[event(LostOne)] fn lose_one(&mut self) { self.lives -= 1 }
    /// # }
    /// let app = Application::builder().snapshot_every::<Cat>(2).build()?;
    /// let mut cat = Cat::born();
    /// cat.lose_one();
    /// cat.lose_one();
    /// app.save(&mut cat)?; // versions 1 to 3: a snapshot at 3
    /// let snapshot = app.event_store().latest_snapshot(cat.id(), None)?;
    /// assert_eq!(snapshot.map(|s| s.originator_version), Some(3));
    /// # Ok::<(), eventsourcing::Error>(())
    /// ```
    #[must_use]
    pub fn snapshot_every<A: Root>(mut self, interval: u64) -> ApplicationBuilder {
        self.snapshots.by_type.insert(A::NAME, interval);
        self
    }

    /// Snapshots aggregates of every type without an interval of their own
    /// automatically every `interval` events, as
    /// [`snapshot_every`](Self::snapshot_every) does for one type; `0`, the
    /// default, turns this off. The same as `SNAPSHOT_INTERVAL`.
    #[must_use]
    pub fn default_snapshot_interval(mut self, interval: u64) -> ApplicationBuilder {
        self.snapshots.default = interval;
        self
    }

    /// Prefixes the names of the tables the application opens from its
    /// `DB_URI` (FORMAT.md's tables take a prefix so that several
    /// applications can share one database): a process application and
    /// its upstream in one SQLite file or PostgreSQL schema, say. Ignored
    /// with [`ApplicationBuilder::recorder`].
    #[must_use]
    pub fn table_prefix(mut self, prefix: impl Into<String>) -> ApplicationBuilder {
        self.table_prefix = prefix.into();
        self
    }

    /// The application's name: what followers call the upstream whose log
    /// they read (their tracking rows name it). `"Application"` unless set;
    /// see also [`ApplicationBuilder::named`].
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> ApplicationBuilder {
        self.name = Some(name.into());
        self
    }

    /// Names the application after the type `T` (its last path segment,
    /// without generic arguments), for programs that give each application
    /// a type of its own:
    ///
    /// ```
    /// use eventsourcing::Application;
    ///
    /// struct BankAccounts;
    /// let app = Application::builder().named::<BankAccounts>().build()?;
    /// assert_eq!(app.name(), "BankAccounts");
    /// # Ok::<(), eventsourcing::Error>(())
    /// ```
    #[must_use]
    pub fn named<T: ?Sized>(self) -> ApplicationBuilder {
        self.name(short_type_name::<T>())
    }

    /// Stamps `metadata` on every event the application saves (a save's
    /// own and the thread's win a key they also set; see [`Metadata`]).
    #[must_use]
    pub fn metadata(mut self, metadata: Metadata) -> ApplicationBuilder {
        self.metadata = metadata;
        self
    }

    /// Checks the configuration, opens the database and builds the application.
    pub fn build(self) -> Result<Application> {
        let mut mapper = Mapper::new().allow_plaintext(self.allow_plaintext);
        if let Some(compression) = self.compression {
            mapper = mapper.with_compression(compression);
        }
        let cipher = match (self.cipher, self.cipher_key) {
            (Some(cipher), _) => Some(cipher),
            (None, Some(key)) => Some(Cipher::from_base64(&key)?),
            (None, None) => None,
        };
        let has_cipher = cipher.is_some();
        if let Some(cipher) = cipher {
            mapper = mapper.with_cipher(cipher);
        }
        let mut previous = self.previous_ciphers;
        for key in &self.previous_keys {
            previous.push(Cipher::from_base64(key).map_err(|error| match error {
                Error::Config { reason, .. } => Error::Config {
                    variable: CIPHER_KEY_PREVIOUS,
                    reason,
                },
                other => other,
            })?);
        }
        if !previous.is_empty() && !has_cipher {
            return Err(Error::Config {
                variable: CIPHER_KEY_PREVIOUS,
                reason: "a previous key is only accepted beside the current one, CIPHER_KEY"
                    .to_owned(),
            });
        }
        for cipher in previous {
            mapper = mapper.with_previous_cipher(cipher);
        }
        let section_size = self.section_size.unwrap_or(DEFAULT_SECTION_SIZE);
        if section_size == 0 {
            return Err(Error::Config {
                variable: "section size",
                reason: "a section holds at least one notification".to_owned(),
            });
        }
        let recorder = match self.recorder {
            Some(recorder) => recorder,
            None => match self.db_uri {
                Some(uri) => DbUri::parse(&uri)?.open_with_prefix(&self.table_prefix)?,
                None => DbUri::default_uri().open_with_prefix(&self.table_prefix)?,
            },
        };
        let mapper = mapper.with_data_keys(
            Arc::clone(&recorder),
            self.data_key_cache.unwrap_or(DEFAULT_CACHE),
        );
        for learn in &self.learn {
            learn(mapper.public_topics());
        }
        Ok(Application::new(
            self.name.unwrap_or_else(|| DEFAULT_NAME.to_owned()),
            EventStore::new(mapper, recorder),
            section_size,
            self.snapshots,
            self.metadata,
        ))
    }
}
