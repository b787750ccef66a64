//! The application: an event store (mapper + recorder), a repository of
//! aggregates, the notification log and snapshots, configured from the
//! environment or a builder.

use std::collections::HashMap;
use std::fmt;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, PoisonError};

use uuid::Uuid;

use crate::cipher::Cipher;
use crate::config::{DbUri, env_var, parse_compress};
use crate::domain::{Aggregate, Hash, RecordedEvent, Root};
use crate::error::{Error, IntegrityFault, Result};
use crate::mapper::{Compression, Mapper};
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
    snapshots: Arc<SnapshotPolicy>,
    /// The error of the last automatic snapshot that failed, until taken.
    snapshot_error: Arc<Mutex<Option<Error>>>,
}

impl fmt::Debug for Application {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Application")
            .field("mapper", &self.store.mapper)
            .field("section_size", &self.section_size)
            .field("snapshots", &self.snapshots)
            .finish_non_exhaustive()
    }
}

/// When [`Application::save_all`] takes snapshots by itself.
#[derive(Clone, Debug, Default)]
struct SnapshotPolicy {
    /// The interval of aggregate types without one of their own
    /// (`SNAPSHOT_INTERVAL`); 0 is never.
    default: u64,
    /// Intervals by aggregate type name ([`Root::NAME`]); 0 is never.
    by_type: HashMap<&'static str, u64>,
}

impl SnapshotPolicy {
    /// The interval for the aggregate type `name`, unless it has none.
    fn interval(&self, name: &str) -> Option<u64> {
        let interval = self.by_type.get(name).copied().unwrap_or(self.default);
        (interval > 0).then_some(interval)
    }
}

/// Whether some version in `(before, after]` is a multiple of `interval`
/// (which is not zero).
fn crosses(before: u64, after: u64, interval: u64) -> bool {
    after / interval > before / interval
}

impl Application {
    /// An application configured from `DB_URI`, `CIPHER_KEY`, `COMPRESS`
    /// and `SNAPSHOT_INTERVAL` (see the README's configuration table). A malformed value is
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
    ///
    /// Once the events are committed, every saved aggregate whose type has
    /// a snapshot interval N (see [`ApplicationBuilder::snapshot_every`])
    /// and whose version passed a multiple of N in this save is snapshotted
    /// at its new version, from the live aggregate. That snapshot is written
    /// after the events' transaction: if writing it fails, the save still
    /// succeeds (its events are stored, and a snapshot is only a cache that
    /// makes loading faster), and the error is kept for
    /// [`Application::take_snapshot_error`]. The next save that passes a
    /// multiple of N tries again.
    pub fn save_all(&self, aggregates: &mut [&mut dyn Unsaved]) -> Result<Vec<u64>> {
        let mut rows = Vec::new();
        let mut due = Vec::new();
        for (index, aggregate) in aggregates.iter().enumerate() {
            let pending = aggregate.unsaved()?;
            if let (Some(first), Some(last)) = (pending.first(), pending.last())
                && let Some(interval) = self.snapshots.interval(aggregate.aggregate_name())
                && crosses(
                    first.originator_version.saturating_sub(1),
                    last.originator_version,
                    interval,
                )
            {
                due.push(index);
            }
            rows.reserve(pending.len());
            for event in pending {
                rows.push(self.store.mapper.encode(event)?);
            }
        }
        let ids = self.store.recorder.insert_events(&rows)?;
        for aggregate in aggregates.iter_mut() {
            aggregate.mark_saved();
        }
        for index in due {
            if let Some(aggregate) = aggregates.get(index)
                && let Err(error) = self.snapshot_saved(&**aggregate)
            {
                *self
                    .snapshot_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(error);
            }
        }
        Ok(ids)
    }

    /// Records a snapshot of an aggregate whose events were just committed.
    fn snapshot_saved(&self, aggregate: &dyn Unsaved) -> Result<()> {
        if let Some(snapshot) = aggregate.snapshot_record()? {
            self.store.insert_snapshot(&snapshot)?;
        }
        Ok(())
    }

    /// How many events apart aggregates of type `A` are snapshotted
    /// automatically: its own interval
    /// ([`ApplicationBuilder::snapshot_every`]), else the default
    /// ([`ApplicationBuilder::snapshot_interval`], `SNAPSHOT_INTERVAL`);
    /// `None` when they are not.
    #[must_use]
    pub fn snapshot_interval<A: Root>(&self) -> Option<u64> {
        self.snapshots.interval(A::NAME)
    }

    /// The error of the last automatic snapshot that failed (see
    /// [`Application::save_all`]), if any failed since the last call; the
    /// error is taken, so the next call returns `None` unless another
    /// snapshot failed in between.
    ///
    /// A failed snapshot loses nothing: the events were stored, and loading
    /// replays them from the snapshot before or from the first event.
    #[must_use]
    pub fn take_snapshot_error(&self) -> Option<Error> {
        self.snapshot_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Records a snapshot of the aggregate as it is now (its latest
    /// version), so that loading it replays only the events recorded after
    /// this one. Returns the snapshot's version.
    ///
    /// The aggregate is loaded from the store first: the snapshot is of what
    /// was saved, never of unsaved changes. Taking a snapshot at a version
    /// that already has one keeps the existing one (they are equal).
    /// [`Error::NotFound`] when the aggregate has no events or was discarded.
    ///
    /// ```
    /// # use eventsourcing::prelude::*;
    /// # #[aggregate] #[derive(Default)] struct Cat { lives: u8 }
    /// # #[aggregate] impl Cat {
    /// #     #[created(Born)] fn born(&mut self) { self.lives = 9 }
    /// #     #[event(LostOne)] fn lose_one(&mut self) { self.lives -= 1 }
    /// # }
    /// let app = Application::builder().build()?;
    /// let mut cat = Cat::born();
    /// cat.lose_one();
    /// app.save(&mut cat)?;
    /// assert_eq!(app.take_snapshot::<Cat>(cat.id())?, 2);
    /// let copy: Cat = app.repository().get(cat.id())?; // from the snapshot
    /// assert_eq!(copy.lives, 8);
    /// # Ok::<(), eventsourcing::Error>(())
    /// ```
    pub fn take_snapshot<A: Aggregate>(&self, id: Uuid) -> Result<u64> {
        let aggregate: A = self.repository().get(id)?;
        self.record_snapshot(&aggregate)
    }

    /// Records a snapshot of the aggregate as it was at `version`, and
    /// returns `version`. [`Error::NotFound`] when the aggregate has no such
    /// version, or was discarded at or before it.
    pub fn take_snapshot_at<A: Aggregate>(&self, id: Uuid, version: u64) -> Result<u64> {
        let aggregate: A = self.repository().get_at(id, version)?;
        self.record_snapshot(&aggregate)
    }

    fn record_snapshot<A: Root>(&self, aggregate: &A) -> Result<u64> {
        let snapshot = aggregate.snapshot()?;
        self.store.insert_snapshot(&snapshot)?;
        Ok(snapshot.originator_version)
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

    /// The aggregate type's name ([`Root::NAME`]): what snapshot intervals
    /// are configured by.
    fn aggregate_name(&self) -> &'static str;

    /// The aggregate's state now, as a snapshot record ([`Root::snapshot`]);
    /// `None` when there is nothing to snapshot: the aggregate was
    /// discarded, or never created.
    fn snapshot_record(&self) -> Result<Option<RecordedEvent>>;
}

impl<A: Root> Unsaved for A {
    fn unsaved(&self) -> Result<&[RecordedEvent]> {
        self.meta().pending_checked()
    }

    fn mark_saved(&mut self) {
        self.meta_mut().clear_pending();
    }

    fn aggregate_name(&self) -> &'static str {
        A::NAME
    }

    fn snapshot_record(&self) -> Result<Option<RecordedEvent>> {
        if self.is_discarded() || self.version() == 0 {
            return Ok(None);
        }
        self.snapshot().map(Some)
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
                Ok(ControlFlow::Continue(()))
            })?;
        Ok(events)
    }

    /// The aggregate's latest snapshot, or its latest at or before
    /// `to_version`, decoded but not checked (loading an aggregate checks
    /// its hash, and that it is the head of the event at its version).
    pub fn snapshot(&self, id: Uuid, to_version: Option<u64>) -> Result<Option<RecordedEvent>> {
        self.recorder
            .select_snapshot(id, to_version)?
            .map(|row| self.mapper.decode(row))
            .transpose()
    }

    /// Encodes and records a snapshot; `false` when one was already
    /// recorded at its version.
    fn insert_snapshot(&self, snapshot: &RecordedEvent) -> Result<bool> {
        self.recorder
            .insert_snapshot(&self.mapper.encode(snapshot)?)
    }

    /// The event of `id` at `version`, decoded but not checked.
    fn event_at(&self, id: Uuid, version: u64) -> Result<Option<RecordedEvent>> {
        let Some(before) = version.checked_sub(1) else {
            return Ok(None);
        };
        let query = EventQuery::new(id)
            .after_version(before)
            .to_version(version);
        let mut found = None;
        self.recorder.select_events(&query, &mut |row| {
            found = Some(self.mapper.decode(row)?);
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(found)
    }

    /// Rebuilds an aggregate as of `until`: from the newest snapshot that
    /// lies within it when there is one, else from the first event.
    ///
    /// `None` when there is no event within `until`, or the aggregate was
    /// discarded within it.
    fn load<A: Aggregate>(&self, id: Uuid, until: Until) -> Result<Option<A>> {
        let snapshot = match until {
            Until::End => self.snapshot(id, None)?,
            Until::Version(version) => self.snapshot(id, Some(version))?,
            Until::Time(time) => self.snapshot_as_of(id, time)?,
        };
        let start = match snapshot {
            Some(snapshot) => restore::<A>(id, snapshot)?,
            None => None,
        };
        self.replay(id, start, until)
    }

    /// The newest snapshot of `id` whose version's event was recorded at or
    /// before `time`.
    ///
    /// Tries the newest snapshot first, then bisects the versions below the
    /// first one that is too new: a few queries, however many snapshots
    /// there are. This assumes that an aggregate's event timestamps do not
    /// decrease with its versions (they come from the clock at each
    /// trigger).
    fn snapshot_as_of(&self, id: Uuid, time: i64) -> Result<Option<RecordedEvent>> {
        // Versions at or below `low` are searched; `high` is the version of
        // the oldest snapshot known to be too new.
        let mut low = 0;
        let mut high = u64::MAX;
        let mut best = None;
        let mut probe = None;
        loop {
            let found = self
                .recorder
                .select_snapshot(id, probe)?
                .filter(|row| row.originator_version > low);
            if let Some(row) = found {
                let version = row.originator_version;
                let Some(event) = self.event_at(id, version)? else {
                    return Err(Error::Integrity {
                        id,
                        version,
                        fault: IntegrityFault::VersionGap,
                    });
                };
                if event.timestamp <= time {
                    best = Some(row);
                    low = probe.unwrap_or(u64::MAX);
                } else {
                    high = version;
                }
            } else {
                low = probe.unwrap_or(u64::MAX);
            }
            if high - low <= 1 {
                break;
            }
            probe = Some(low + (high - low) / 2);
        }
        best.map(|row| self.mapper.decode(row)).transpose()
    }

    /// Replays the events within `until` onto `start` (an aggregate
    /// restored from a snapshot) or, without one, onto a blank aggregate.
    ///
    /// After a snapshot, its own event is read again first: it must be the
    /// next event of the store's chain whose hash is the snapshot's head,
    /// else the store was tampered with ([`Error::Integrity`]); if it is
    /// the discard event, the aggregate is gone.
    fn replay<A: Aggregate>(&self, id: Uuid, start: Option<A>, until: Until) -> Result<Option<A>> {
        let mut query = EventQuery::new(id);
        let mut link = None;
        if let Some(restored) = &start {
            let version = restored.version();
            query = query.after_version(version.saturating_sub(1));
            link = Some((version, restored.head()));
        }
        if let Until::Version(version) = until {
            query = query.to_version(version);
        }
        let mut aggregate = start;
        let mut discarded = false;
        self.recorder.select_events(&query, &mut |row| {
            let recorded = self.mapper.decode(row)?;
            if let Some((version, head)) = link.take() {
                check_link(id, version, head, &recorded)?;
                discarded = recorded.topic == A::DISCARDED_TOPIC;
                return Ok(ControlFlow::Continue(()));
            }
            if let Until::Time(time) = until
                && recorded.timestamp > time
            {
                // Ends the scan at the first event after `time`, without
                // reading the rest.
                return Ok(ControlFlow::Break(()));
            }
            aggregate
                .get_or_insert_with(|| A::blank(id))
                .replay_one(recorded)?;
            Ok(ControlFlow::Continue(()))
        })?;
        if let Some((version, _)) = link {
            // The snapshot's version has no event.
            return Err(Error::Integrity {
                id,
                version,
                fault: IntegrityFault::VersionGap,
            });
        }
        if discarded {
            return Ok(None);
        }
        Ok(aggregate)
    }
}

/// How far a rebuild goes.
#[derive(Clone, Copy, Debug)]
enum Until {
    /// Every event.
    End,
    /// The events up to and including this version.
    Version(u64),
    /// The events up to the first one recorded after this time
    /// (microseconds since the Unix epoch).
    Time(i64),
}

/// An aggregate rebuilt from a snapshot, or `None` when the snapshot cannot
/// be used and the events must be replayed from the first.
///
/// A snapshot whose hash does not check is an [`Error::Integrity`], as a
/// tampered event would be. One that is authentic but that this code cannot
/// read (state of a newer schema version, an old one with no upcaster, or
/// data that does not decode into the current state type) is passed over:
/// a snapshot is a cache of what the events say, and they can always be
/// replayed instead.
fn restore<A: Aggregate>(id: Uuid, snapshot: RecordedEvent) -> Result<Option<A>> {
    let version = snapshot.originator_version;
    let fault = if snapshot.originator_id != id {
        Some(IntegrityFault::WrongOriginator)
    } else if version == 0 {
        Some(IntegrityFault::VersionGap)
    } else {
        None
    };
    if let Some(fault) = fault {
        return Err(Error::Integrity { id, version, fault });
    }
    match A::from_snapshot(snapshot) {
        Ok(aggregate) => Ok(Some(aggregate)),
        Err(Error::UnknownTopic { .. } | Error::Decode { .. } | Error::Upcast { .. }) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Checks that `event`, read again after a snapshot at `version`, is the
/// event at that version, is authentic, and has the snapshot's head as its
/// hash.
fn check_link(id: Uuid, version: u64, head: Hash, event: &RecordedEvent) -> Result<()> {
    let fault = if event.originator_id != id {
        Some(IntegrityFault::WrongOriginator)
    } else if event.originator_version != version {
        Some(IntegrityFault::VersionGap)
    } else {
        event.check_hash()?;
        (event.event_hash != head).then_some(IntegrityFault::BrokenLink)
    };
    match fault {
        Some(fault) => Err(Error::Integrity { id, version, fault }),
        None => Ok(()),
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

    /// The aggregate rebuilt from its events: from its latest snapshot and
    /// the events after it when it has one, else from all its events.
    ///
    /// [`Error::NotFound`] when it has no events or was discarded;
    /// [`Error::UnknownTopic`] when the id belongs to another type of
    /// aggregate; [`Error::Integrity`] when a hash or link does not check,
    /// the snapshot's included (its head must be the hash of the event at
    /// its version).
    pub fn get<A: Aggregate>(&self, id: Uuid) -> Result<A> {
        found(id, self.store.load::<A>(id, Until::End)?)
    }

    /// The aggregate as it was at `version` (time travel): rebuilt from its
    /// latest snapshot at or before that version and the events after it
    /// up to and including that version, or from its first event when no
    /// snapshot lies at or before it.
    ///
    /// [`Error::NotFound`] when the aggregate has no such version, or was
    /// discarded at or before it.
    pub fn get_at<A: Aggregate>(&self, id: Uuid, version: u64) -> Result<A> {
        match self.store.load::<A>(id, Until::Version(version))? {
            Some(aggregate) if aggregate.version() == version => found(id, Some(aggregate)),
            _ => Err(Error::NotFound { id }),
        }
    }

    /// The aggregate as it was at a moment (time travel by the clock): the
    /// state after its last event recorded at or before `timestamp_micros`
    /// (microseconds since 1970-01-01T00:00:00Z, as in
    /// [`RecordedEvent::timestamp`]). Replay stops at the first event
    /// recorded after that moment.
    ///
    /// Starts from the newest snapshot whose own event was recorded at or
    /// before the moment, if there is one. [`Error::NotFound`] when the
    /// aggregate's first event is later than the moment, or it was
    /// discarded by then.
    ///
    /// ```
    /// # use eventsourcing::prelude::*;
    /// # #[aggregate] #[derive(Default)] struct Cat { lives: u8 }
    /// # #[aggregate] impl Cat {
    /// #     #[created(Born)] fn born(&mut self) { self.lives = 9 }
    /// #     #[event(LostOne)] fn lose_one(&mut self) { self.lives -= 1 }
    /// # }
    /// let app = Application::builder().build()?;
    /// let mut cat = Cat::born();
    /// app.save(&mut cat)?;
    /// cat.lose_one();
    /// app.save(&mut cat)?;
    /// cat.lose_one();
    /// app.save(&mut cat)?;
    /// let events = app.event_store().recorded_events(cat.id())?;
    /// let then: Cat = app.repository().get_as_of(cat.id(), events[1].timestamp)?;
    /// assert_eq!(then.lives, 8);
    /// let before = app.repository().get_as_of::<Cat>(cat.id(), events[0].timestamp - 1);
    /// assert!(matches!(before, Err(Error::NotFound { .. })));
    /// # Ok::<(), eventsourcing::Error>(())
    /// ```
    pub fn get_as_of<A: Aggregate>(&self, id: Uuid, timestamp_micros: i64) -> Result<A> {
        found(id, self.store.load::<A>(id, Until::Time(timestamp_micros))?)
    }
}

/// The loaded aggregate, unless it is missing or was discarded.
fn found<A: Aggregate>(id: Uuid, loaded: Option<A>) -> Result<A> {
    match loaded {
        Some(aggregate) if !aggregate.is_discarded() => Ok(aggregate),
        _ => Err(Error::NotFound { id }),
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
    snapshots: SnapshotPolicy,
}

impl ApplicationBuilder {
    /// Takes `DB_URI`, `CIPHER_KEY`, `COMPRESS` and `SNAPSHOT_INTERVAL`
    /// from the environment where they are set.
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
        if let Some(interval) = env_var(SNAPSHOT_INTERVAL)? {
            self.snapshots.default = parse_snapshot_interval(&interval)?;
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

    /// Snapshots aggregates of type `A` automatically every `interval`
    /// events: a save that takes such an aggregate to or past a multiple
    /// of `interval` also records a snapshot at its new version (see
    /// [`Application::save_all`]). Loading then replays only the events
    /// after the latest snapshot. `0` turns automatic snapshots off for
    /// `A`. Overrides [`snapshot_interval`](Self::snapshot_interval) and
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
    /// let snapshot = app.event_store().snapshot(cat.id(), None)?;
    /// assert_eq!(snapshot.map(|s| s.originator_version), Some(3));
    /// # Ok::<(), eventsourcing::Error>(())
    /// ```
    #[must_use]
    pub fn snapshot_every<A: Root>(mut self, interval: u64) -> ApplicationBuilder {
        self.snapshots.by_type.insert(A::NAME, interval);
        self
    }

    /// Snapshots aggregates of every type automatically every `interval`
    /// events, as [`snapshot_every`](Self::snapshot_every) does for one
    /// type (which takes precedence); `0`, the default, turns this off. The
    /// same as `SNAPSHOT_INTERVAL`.
    #[must_use]
    pub fn snapshot_interval(mut self, interval: u64) -> ApplicationBuilder {
        self.snapshots.default = interval;
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
            snapshots: Arc::new(self.snapshots),
            snapshot_error: Arc::new(Mutex::new(None)),
        })
    }
}

const SNAPSHOT_INTERVAL: &str = "SNAPSHOT_INTERVAL";

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
