//! The event store: the mapper and the recorder together. Writes recorded
//! events as rows and tells listeners; reads rows back as recorded events,
//! checks an aggregate's chain, and rebuilds aggregates (from their first
//! event, or from a snapshot and the events after it; as of a version or
//! a moment).

mod commits;
mod load;

use std::fmt;
use std::ops::ControlFlow;
use std::sync::Arc;

use uuid::Uuid;

pub use self::commits::CommitHook;
pub(crate) use self::commits::deferring;
use self::commits::{Commits, Hook, Immediate};
pub(crate) use self::load::Until;
use crate::domain::{Chain, EventView, RecordedEvent, Snapshot};
use crate::error::{Error, Result};
use crate::format::{FORGOTTEN_SUFFIX, Hash};
use crate::keys::Encryption;
use crate::mapper::{DataKey, Mapper, Scratch, Seal};
use crate::recorder::{Batch, EventQuery, Recorder};

/// The mapper and the recorder: stores and reads recorded events.
///
/// Cloning is cheap; clones share the recorder and the commit hooks.
#[derive(Clone)]
pub struct EventStore {
    mapper: Mapper,
    recorder: Arc<dyn Recorder>,
    commits: Arc<Commits>,
}

impl fmt::Debug for EventStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStore")
            .field("mapper", &self.mapper)
            .finish_non_exhaustive()
    }
}

impl EventStore {
    /// An event store over the given mapper and recorder. A mapper with
    /// an application key keeps the aggregates' data keys in this
    /// recorder's `aggregate_keys` (unless it was given a place already).
    #[must_use]
    pub fn new(mapper: Mapper, recorder: Arc<dyn Recorder>) -> EventStore {
        let mapper = if mapper.encrypts() && mapper.data_keys().is_none() {
            mapper.with_data_keys(Arc::clone(&recorder), crate::keys::DEFAULT_CACHE)
        } else {
            mapper
        };
        EventStore {
            mapper,
            recorder,
            commits: Arc::default(),
        }
    }

    /// The recorder: the stored rows themselves, as the database holds them.
    #[must_use]
    pub fn recorder(&self) -> &Arc<dyn Recorder> {
        &self.recorder
    }

    /// The recorder as its backend's type, when it is one: the SQLite
    /// recorder of an application opened on a SQLite `DB_URI`, say, for a
    /// projection into the same database.
    ///
    /// ```
    /// use eventsourcing::Application;
    /// use eventsourcing::recorder::{MemoryRecorder, SqliteRecorder};
    ///
    /// let app = Application::builder().db_uri("sqlite:///:memory:").build()?;
    /// assert!(app.event_store().recorder_as::<SqliteRecorder>().is_some());
    /// assert!(app.event_store().recorder_as::<MemoryRecorder>().is_none());
    /// # Ok::<(), eventsourcing::Error>(())
    /// ```
    #[must_use]
    pub fn recorder_as<R: Recorder>(&self) -> Option<Arc<R>> {
        let any: Arc<dyn std::any::Any + Send + Sync> = Arc::clone(&self.recorder) as _;
        any.downcast::<R>().ok()
    }

    /// The mapper between recorded events and stored rows.
    #[must_use]
    pub fn mapper(&self) -> &Mapper {
        &self.mapper
    }

    /// The recorded events of an aggregate, decoded but not checked: see
    /// [`EventStore::verify`] for the check.
    pub fn recorded_events(&self, id: impl Into<Uuid>) -> Result<Vec<RecordedEvent>> {
        let id = id.into();
        let mut events = Vec::new();
        self.each_event(&EventQuery::new(id), |event| {
            events.push(event.to_owned());
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(events)
    }

    /// Checks the whole stored chain of aggregate `id` (every record
    /// decrypts and decodes, every hash matches its bytes, every version
    /// follows the one before and links to its hash) and returns its head:
    /// the hash of its last event, which equals the live aggregate's
    /// `head()` after a save.
    ///
    /// Snapshots are not read: this is the events' own account. The first
    /// fault is [`Error::Integrity`] (or [`Error::Decryption`],
    /// [`Error::Corrupt`]) naming the aggregate and version;
    /// [`Error::NotFound`] when there is no event. A forgotten aggregate
    /// is [`Error::Forgotten`]: not broken, but its records before the
    /// `Forgotten` event can no longer be checked by anyone.
    ///
    /// ```
    /// # use eventsourcing::prelude::*;
    /// # #[aggregate] #[derive(Default)] struct Cat { lives: u8 }
    /// # #[aggregate] impl Cat { #[created(Born)] fn born(&mut self) { self.lives = 9 } }
    /// let app = Application::builder().build()?;
    /// let mut cat = Cat::born();
    /// app.save(&mut cat)?;
    /// assert_eq!(app.event_store().verify(cat.id())?, cat.head());
    /// # Ok::<(), eventsourcing::Error>(())
    /// ```
    pub fn verify(&self, id: impl Into<Uuid>) -> Result<Hash> {
        let id = id.into();
        let mut chain = Chain::new(id);
        let mut forgotten = false;
        self.each_event(&EventQuery::new(id), |event| {
            chain.check_next_view(&event)?;
            forgotten = event.topic.ends_with(FORGOTTEN_SUFFIX);
            Ok(ControlFlow::Continue(()))
        })?;
        if chain.version() == 0 {
            return Err(Error::NotFound { id });
        }
        if forgotten {
            return Err(Error::Forgotten { id });
        }
        Ok(chain.head())
    }

    /// The aggregate's latest snapshot, or its latest at or before
    /// `to_version`, decoded but not checked (loading an aggregate checks
    /// its hash, and that it is the head of the event at its version).
    pub fn latest_snapshot(
        &self,
        id: impl Into<Uuid>,
        to_version: Option<u64>,
    ) -> Result<Option<Snapshot>> {
        let id = id.into();
        self.recorder
            .select_snapshot(id, to_version)?
            .map(|row| self.mapper.decode_snapshot(row))
            .transpose()
    }

    /// Every snapshot of the aggregate, oldest first, decoded but not
    /// checked.
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
    /// for _ in 0..4 {
    ///     cat.lose_one();
    ///     app.save(&mut cat)?;
    /// }
    /// let versions: Vec<u64> = app
    ///     .event_store()
    ///     .snapshots(cat.id())?
    ///     .iter()
    ///     .map(|s| s.originator_version)
    ///     .collect();
    /// assert_eq!(versions, [2, 4]);
    /// # Ok::<(), eventsourcing::Error>(())
    /// ```
    pub fn snapshots(&self, id: impl Into<Uuid>) -> Result<Vec<Snapshot>> {
        let id = id.into();
        let mut snapshots = Vec::new();
        let mut below = None;
        while let Some(row) = self.recorder.select_snapshot(id, below)? {
            let version = row.originator_version;
            snapshots.push(self.mapper.decode_snapshot(row)?);
            match version.checked_sub(1) {
                Some(next) if Some(next) != below => below = Some(next),
                _ => break,
            }
        }
        snapshots.reverse();
        Ok(snapshots)
    }

    /// Writes a batch of encoded events (with its tracking update and
    /// parked changes, if any) in one transaction, then tells the commit
    /// hooks. Returns the events' notification ids.
    ///
    /// When a single-thread runner follows the store (an immediate hook),
    /// the write, and everything the runner's followers record because of
    /// it, is one transaction on a SQLite file
    /// (`recorder::in_one_transaction`): this returns once it committed.
    pub(crate) fn write(&self, batch: &Batch<'_>) -> Result<Vec<u64>> {
        #[cfg(feature = "sqlite")]
        if self.commits.has_immediate() && !crate::recorder::in_scope() {
            return deferring(|| {
                let (ids, committed) =
                    crate::recorder::in_one_transaction(|| self.write_now(batch));
                let ids = ids?;
                committed.map(|()| ids)
            });
        }
        self.write_now(batch)
    }

    /// [`EventStore::write`], in the scope the caller is in, if any.
    fn write_now(&self, batch: &Batch<'_>) -> Result<Vec<u64>> {
        let ids = self.recorder.insert(batch)?;
        crate::crash::point("after_commit");
        self.commits.notify(&ids, batch.events);
        Ok(ids)
    }

    /// Adds a hook called after each commit of new events through this
    /// store or its clones.
    pub(crate) fn on_commit(&self, hook: Arc<Hook>) -> CommitHook {
        self.commits.subscribe(hook)
    }

    /// [`EventStore::on_commit`], for a hook that runs the work of a
    /// [`deferring`] scope: told at once inside one, with the events
    /// committed.
    pub(crate) fn on_commit_immediate(&self, hook: Arc<Immediate>) -> CommitHook {
        self.commits.subscribe_immediate(hook)
    }

    /// Encodes and records a snapshot of an aggregate whose type is
    /// encrypted as `encryption` (under its data key when it has one);
    /// `false` when one was already recorded at its version.
    pub(crate) fn insert_snapshot(
        &self,
        snapshot: &Snapshot,
        encryption: Encryption,
    ) -> Result<bool> {
        let span = crate::trace::timed_span!("snapshot", topic = %snapshot.topic;
            aggregate_id, version, inserted);
        let _entered = span.enter();
        if span.enabled() {
            span.record_id("aggregate_id", snapshot.originator_id);
            span.record_u64("version", snapshot.originator_version);
        }
        let id = snapshot.originator_id;
        let data_key = match (encryption, self.mapper.data_keys()) {
            (Encryption::PerAggregate, Some(keys)) => match keys.find(id)? {
                Some(key) => Some(key),
                // No key: recorded before its type took per-aggregate keys
                // (it never will have one), or forgotten meanwhile, which
                // the Forgotten event committed with the key's deletion
                // says. Its state must not go under the application key.
                None => match keys.missing(id)? {
                    forgotten @ Error::Forgotten { .. } => return Err(forgotten),
                    _ => None,
                },
            },
            _ => None,
        };
        let seal = match (&data_key, encryption) {
            (Some(key), _) => Seal::DataKey(key),
            (None, Encryption::Public) => Seal::Plain,
            (None, _) => Seal::Application,
        };
        let inserted = self
            .recorder
            .insert_snapshot(&self.mapper.encode_snapshot_with(snapshot, seal)?)?;
        span.record_bool("inserted", inserted);
        Ok(inserted)
    }

    /// Calls `each` with the decoded events that match `query`, until it
    /// breaks or fails.
    ///
    /// The aggregate's data key is looked up before the scan: a recorder's
    /// callback must not call the recorder. Should the aggregate have had
    /// no key then and one now (it was created meanwhile), and nothing was
    /// handed over yet, the scan runs again with it.
    fn each_event(
        &self,
        query: &EventQuery,
        mut each: impl FnMut(EventView<'_>) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        let mut scratch = Scratch::default();
        let Some(keys) = self.mapper.data_keys() else {
            return self.recorder.select_events(query, &mut |row| {
                each(self.mapper.open_row(row, DataKey::Ask, &mut scratch)?)
            });
        };
        let id = query.originator_id;
        let mut key = keys.find(id)?;
        loop {
            let mut handed = false;
            let result = self.recorder.select_events(query, &mut |row| {
                let event =
                    self.mapper
                        .open_row(row, DataKey::Known(key.as_deref()), &mut scratch)?;
                handed = true;
                each(event)
            });
            match result {
                Err(Error::Forgotten { .. }) if key.is_none() => {
                    key = keys.find(id)?;
                    if key.is_none() {
                        return Err(keys.missing(id)?);
                    }
                    if handed {
                        return result;
                    }
                }
                other => return other,
            }
        }
    }
}
