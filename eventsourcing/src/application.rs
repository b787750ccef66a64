//! The application: an event store (mapper + recorder), a repository of
//! aggregates, and the notification log, configured from the environment
//! or a builder.

use std::fmt;
use std::sync::Arc;

use uuid::Uuid;

use crate::cipher::Cipher;
use crate::config::{DbUri, env_var, parse_compress};
use crate::domain::{Aggregate, RecordedEvent, Root};
use crate::error::{Error, Result};
use crate::mapper::{Compression, Mapper, StoredEvent};
use crate::notification::NotificationLog;
use crate::recorder::{EventQuery, MemoryRecorder, Recorder};

/// An event-sourced application: saves aggregates' new events, rebuilds
/// aggregates from their events, and publishes every event in a total
/// order through its [`NotificationLog`].
///
/// Cloning is cheap (the parts are shared), and an `Application` is
/// `Send + Sync`: threads may save and load at the same time.
#[derive(Clone)]
pub struct Application {
    store: EventStore,
    section_size: usize,
}

impl fmt::Debug for Application {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Application")
            .field("mapper", &self.store.mapper)
            .field("section_size", &self.section_size)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// An application configured from `DB_URI`, `CIPHER_KEY` and `COMPRESS`
    /// (see the README's configuration table). A malformed value is
    /// [`Error::Config`] naming the variable, here rather than at the first
    /// write.
    pub fn from_env() -> Result<Application> {
        Application::builder().env()?.build()
    }

    /// A builder with the defaults: a private SQLite database in memory (or
    /// the in-memory recorder without the `sqlite` feature), no encryption,
    /// no compression.
    #[must_use]
    pub fn builder() -> ApplicationBuilder {
        ApplicationBuilder::default()
    }

    /// Saves the aggregate's pending events in one transaction, and returns
    /// their notification ids.
    ///
    /// If another writer saved the same versions first, this fails with
    /// [`Error::Concurrency`] and writes nothing; the pending events stay in
    /// the aggregate. An event refused at trigger time fails the save with
    /// [`Error::Refused`] or [`Error::Encode`].
    pub fn save<A: Root>(&self, aggregate: &mut A) -> Result<Vec<u64>> {
        self.save_all(&mut [aggregate])
    }

    /// Saves the pending events of several aggregates, of any types, in one
    /// atomic transaction: all are written, or none.
    ///
    /// ```
    /// # use eventsourcing::prelude::*;
    /// # #[aggregate] #[derive(Default)] struct Cat { lives: u8 }
    /// # #[aggregate] impl Cat { #[created(Born)] fn born(&mut self) { self.lives = 9 } }
    /// # #[aggregate] #[derive(Default)] struct Dog {}
    /// # #[aggregate] impl Dog { #[created(Born)] fn born(&mut self) {} }
    /// let app = Application::builder().build()?;
    /// let (mut cat, mut dog) = (Cat::born(), Dog::born());
    /// let ids = app.save_all(&mut [&mut cat, &mut dog])?;
    /// assert_eq!(ids, [1, 2]);
    /// # Ok::<(), eventsourcing::Error>(())
    /// ```
    pub fn save_all(&self, aggregates: &mut [&mut dyn Unsaved]) -> Result<Vec<u64>> {
        let mut rows = Vec::new();
        for aggregate in aggregates.iter() {
            let pending = aggregate.unsaved()?;
            rows.reserve(pending.len());
            for event in pending {
                rows.push(self.store.mapper.encode(event)?);
            }
        }
        let ids = self.store.recorder.insert_events(&rows)?;
        for aggregate in aggregates.iter_mut() {
            aggregate.mark_saved();
        }
        Ok(ids)
    }

    /// The repository: aggregates rebuilt from their events.
    #[must_use]
    pub fn repository(&self) -> Repository<'_> {
        Repository { store: &self.store }
    }

    /// The event store: recorded events by aggregate, and the recorder below.
    #[must_use]
    pub fn event_store(&self) -> &EventStore {
        &self.store
    }

    /// The notification log: every stored event in the application's total
    /// order, in sections.
    #[must_use]
    pub fn notification_log(&self) -> NotificationLog {
        NotificationLog::new(
            Arc::clone(&self.store.recorder),
            self.store.mapper.clone(),
            self.section_size,
        )
    }
}

/// An aggregate whose pending events can be saved; implemented for every
/// [`Root`], so that [`Application::save_all`] takes aggregates of several
/// types at once.
pub trait Unsaved {
    /// The events to save, or the fault that makes the aggregate unsavable.
    fn unsaved(&self) -> Result<&[RecordedEvent]>;

    /// Forgets the pending events once they are stored.
    fn mark_saved(&mut self);
}

impl<A: Root> Unsaved for A {
    fn unsaved(&self) -> Result<&[RecordedEvent]> {
        self.meta().pending_checked()
    }

    fn mark_saved(&mut self) {
        self.meta_mut().clear_pending();
    }
}

/// The mapper and the recorder: stores and reads recorded events.
#[derive(Clone)]
pub struct EventStore {
    mapper: Mapper,
    recorder: Arc<dyn Recorder>,
}

impl EventStore {
    /// An event store over the given mapper and recorder.
    #[must_use]
    pub fn new(mapper: Mapper, recorder: Arc<dyn Recorder>) -> EventStore {
        EventStore { mapper, recorder }
    }

    /// The recorder: the stored rows themselves, as the database holds them.
    #[must_use]
    pub fn recorder(&self) -> &Arc<dyn Recorder> {
        &self.recorder
    }

    /// The mapper between recorded events and stored rows.
    #[must_use]
    pub fn mapper(&self) -> &Mapper {
        &self.mapper
    }

    /// The recorded events of an aggregate, decoded but not checked: call
    /// [`RecordedEvent::check_hash`] and follow the `previous_hash` links to
    /// verify them (loading an aggregate does both).
    pub fn recorded_events(&self, id: Uuid) -> Result<Vec<RecordedEvent>> {
        let mut events = Vec::new();
        self.recorder
            .select_events(&EventQuery::new(id), &mut |row| {
                events.push(self.mapper.decode(row)?);
                Ok(())
            })?;
        Ok(events)
    }

    /// Streams an aggregate's events up to `to_version` into a new
    /// aggregate, checking every hash and link on the way.
    fn load<A: Aggregate>(&self, id: Uuid, to_version: Option<u64>) -> Result<Option<A>> {
        let mut query = EventQuery::new(id);
        if let Some(version) = to_version {
            query = query.to_version(version);
        }
        let mut aggregate: Option<A> = None;
        self.recorder
            .select_events(&query, &mut |row: StoredEvent| {
                let recorded = self.mapper.decode(row)?;
                aggregate
                    .get_or_insert_with(|| A::blank(id))
                    .replay_one(recorded)
            })?;
        Ok(aggregate)
    }
}

/// Reads aggregates back from the event store.
#[derive(Clone, Copy)]
pub struct Repository<'a> {
    store: &'a EventStore,
}

impl Repository<'_> {
    /// Whether an aggregate with this id has events and was not discarded.
    pub fn contains(&self, id: Uuid) -> Result<bool> {
        let last = self
            .store
            .recorder
            .events(&EventQuery::new(id).descending(true).limit(1))?;
        Ok(last
            .first()
            .is_some_and(|row| !row.topic.ends_with(crate::domain::DISCARDED_SUFFIX)))
    }

    /// The aggregate rebuilt from all its events.
    ///
    /// [`Error::NotFound`] when it has no events or was discarded;
    /// [`Error::UnknownTopic`] when the id belongs to another type of
    /// aggregate; [`Error::Integrity`] when a hash or link does not check.
    pub fn get<A: Aggregate>(&self, id: Uuid) -> Result<A> {
        match self.store.load::<A>(id, None)? {
            Some(aggregate) if !aggregate.is_discarded() => Ok(aggregate),
            _ => Err(Error::NotFound { id }),
        }
    }

    /// The aggregate as it was at `version` (time travel): rebuilt from its
    /// events up to and including that version.
    ///
    /// [`Error::NotFound`] when the aggregate has no such version, or was
    /// discarded at or before it.
    pub fn get_at<A: Aggregate>(&self, id: Uuid, version: u64) -> Result<A> {
        match self.store.load::<A>(id, Some(version))? {
            Some(aggregate) if aggregate.version() == version && !aggregate.is_discarded() => {
                Ok(aggregate)
            }
            _ => Err(Error::NotFound { id }),
        }
    }
}

/// Builds an [`Application`]; see [`Application::builder`].
#[derive(Default)]
pub struct ApplicationBuilder {
    db_uri: Option<String>,
    recorder: Option<Arc<dyn Recorder>>,
    cipher_key: Option<String>,
    cipher: Option<Cipher>,
    compression: Option<Compression>,
    allow_plaintext: bool,
    section_size: Option<usize>,
}

impl ApplicationBuilder {
    /// Takes `DB_URI`, `CIPHER_KEY` and `COMPRESS` from the environment
    /// where they are set.
    pub fn env(mut self) -> Result<ApplicationBuilder> {
        if let Some(uri) = env_var("DB_URI")? {
            self.db_uri = Some(uri);
        }
        if let Some(key) = env_var("CIPHER_KEY")? {
            self.cipher_key = Some(key);
        }
        if let Some(compress) = env_var("COMPRESS")? {
            self.compression = parse_compress(&compress)?;
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
        if let Some(cipher) = cipher {
            mapper = mapper.with_cipher(cipher);
        }
        let section_size = self.section_size.unwrap_or(10);
        if section_size == 0 {
            return Err(Error::Config {
                variable: "section size",
                reason: "a section holds at least one notification".to_owned(),
            });
        }
        let recorder = match self.recorder {
            Some(recorder) => recorder,
            None => match self.db_uri {
                Some(uri) => open_recorder(&DbUri::parse(&uri)?)?,
                None => open_recorder(&DbUri::default_uri())?,
            },
        };
        Ok(Application {
            store: EventStore::new(mapper, recorder),
            section_size,
        })
    }
}

/// Opens the recorder a `DB_URI` names.
fn open_recorder(uri: &DbUri) -> Result<Arc<dyn Recorder>> {
    match uri {
        DbUri::Memory => Ok(Arc::new(MemoryRecorder::new())),
        #[cfg(feature = "sqlite")]
        DbUri::Sqlite { path, synchronous } => {
            use crate::recorder::{SqliteOptions, SqliteRecorder, Synchronous};
            let mut options = match path {
                Some(path) => SqliteOptions::file(path),
                None => SqliteOptions::memory(),
            };
            if let Some(level) = synchronous {
                options = options.synchronous(match level.as_str() {
                    "off" => Synchronous::Off,
                    "full" => Synchronous::Full,
                    "extra" => Synchronous::Extra,
                    _ => Synchronous::Normal,
                });
            }
            Ok(Arc::new(SqliteRecorder::open(options)?))
        }
        #[cfg(not(feature = "sqlite"))]
        DbUri::Sqlite { .. } => Err(Error::Config {
            variable: "DB_URI",
            reason: "this build has no SQLite support; enable the `sqlite` feature".to_owned(),
        }),
        #[cfg(feature = "postgres")]
        DbUri::Postgres(url) => {
            use crate::recorder::{PostgresOptions, PostgresRecorder};
            Ok(Arc::new(PostgresRecorder::open(PostgresOptions::new(
                url.as_str(),
            ))?))
        }
        #[cfg(not(feature = "postgres"))]
        DbUri::Postgres(_) => Err(Error::Config {
            variable: "DB_URI",
            reason: "this build has no PostgreSQL support; enable the `postgres` feature"
                .to_owned(),
        }),
    }
}
