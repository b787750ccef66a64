//! The application: the one object a program holds. It saves aggregates,
//! hands out the repository, the event store and the notification log,
//! takes snapshots, and tells listeners about commits. Each of those jobs
//! lives in its own module; this is the facade over them.

mod builder;
mod erasure;
mod unsaved;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

pub use self::builder::ApplicationBuilder;
#[cfg(feature = "http-client")]
pub(crate) use self::builder::DEFAULT_SECTION_SIZE;
pub use self::unsaved::Unsaved;
pub(crate) use self::unsaved::{Pending, Visit};
use crate::domain::{Aggregate, Metadata, RecordedEvent, Root, scoped_metadata};
use crate::error::{Error, Result};
use crate::mapper::Seal;
use crate::notification::NotificationLog;
use crate::recorder::{Batch, ParkChange, TrackingUpdate};
use crate::repository::Repository;
use crate::snapshot::SnapshotPolicy;
use crate::store::{CommitHook, EventStore};

/// An event-sourced application: saves aggregates' new events, rebuilds
/// aggregates from their events, and publishes every event in a total
/// order through its [`NotificationLog`].
///
/// Cloning is cheap (the parts are shared), and an `Application` is
/// `Send + Sync`: threads may save and load at the same time.
#[derive(Clone)]
pub struct Application {
    name: Arc<str>,
    store: EventStore,
    section_size: usize,
    snapshots: Arc<SnapshotPolicy>,
    /// Stamped on every event this application saves.
    metadata: Arc<Metadata>,
    /// The error of the last automatic snapshot that failed, until taken.
    snapshot_error: Arc<Mutex<Option<Error>>>,
}

impl fmt::Debug for Application {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Application")
            .field("name", &self.name)
            .field("store", &self.store)
            .field("section_size", &self.section_size)
            .field("snapshots", &self.snapshots)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// An application configured from `DB_URI`, `CIPHER_KEY`, `COMPRESS`
    /// and `SNAPSHOT_INTERVAL` (see the README's configuration table). A
    /// malformed value is [`Error::Config`] naming the variable, here rather
    /// than at the first write.
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

    pub(crate) fn new(
        name: String,
        store: EventStore,
        section_size: usize,
        snapshots: SnapshotPolicy,
        metadata: Metadata,
    ) -> Self {
        Application {
            name: name.into(),
            store,
            section_size,
            snapshots: Arc::new(snapshots),
            metadata: Arc::new(metadata),
            snapshot_error: Arc::new(Mutex::new(None)),
        }
    }

    /// The application's name ([`ApplicationBuilder::name`]): what its
    /// followers call it.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name, shared.
    /// Whether other processes can open the application's database (a
    /// SQLite file, PostgreSQL).
    pub(crate) fn is_shared(&self) -> bool {
        #[cfg(feature = "postgres")]
        if self
            .store
            .recorder_as::<crate::recorder::PostgresRecorder>()
            .is_some()
        {
            return true;
        }
        #[cfg(feature = "sqlite")]
        if let Some(sqlite) = self.store.recorder_as::<crate::recorder::SqliteRecorder>() {
            return sqlite.is_file();
        }
        false
    }

    pub(crate) fn shared_name(&self) -> Arc<str> {
        Arc::clone(&self.name)
    }

    /// Saves the pending events of one aggregate, or of several of any
    /// types (see [`Unsaved`]), in one transaction, and returns their
    /// notification ids in order.
    ///
    /// All are written, or none: if another writer saved one of the same
    /// versions first, this fails with [`Error::Concurrency`] and writes
    /// nothing, and the pending events stay in the aggregates. An event
    /// refused at trigger time fails the save with [`Error::Refused`] or
    /// [`Error::Encode`].
    ///
    /// ```
    /// # use eventsourcing::prelude::*;
    /// # #[aggregate] #[derive(Default)] struct Account { balance: u64 }
    /// # #[aggregate] impl Account {
    /// #     #[created(Opened)] fn open(&mut self) {}
    /// #     #[event(Credited)] fn credit(&mut self, amount: u64) { self.balance += amount }
    /// #     #[event(Debited)] fn debit(&mut self, amount: u64) { self.balance -= amount }
    /// # }
    /// let app = Application::builder().build()?;
    /// let (mut from, mut to) = (Account::open(), Account::open());
    /// from.credit(10);
    /// app.save((&mut from, &mut to))?;
    ///
    /// // A transfer: both accounts change, or neither.
    /// from.debit(4);
    /// to.credit(4);
    /// assert_eq!(app.save((&mut from, &mut to))?, [4, 5]);
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
    pub fn save<U: Unsaved>(&self, aggregates: U) -> Result<Vec<u64>> {
        self.save_with(&Metadata::new(), aggregates)
    }

    /// Saves as [`Application::save`] does, with `metadata` stamped on every
    /// event of the save (over the application's and the thread's; see
    /// [`Metadata`]).
    ///
    /// Metadata is part of each event's data, so its hash covers it:
    /// stamping happens here, and the aggregate's `head()` after the save
    /// is the hash of its last event as stored.
    ///
    /// ```
    /// # use eventsourcing::prelude::*;
    /// # #[aggregate] #[derive(Default)] struct Cat {}
    /// # #[aggregate] impl Cat { #[created(Born)] fn born(&mut self) {} }
    /// use eventsourcing::Metadata;
    ///
    /// let app = Application::builder().build()?;
    /// let mut cat = Cat::born();
    /// let request = Uuid::new_v4();
    /// app.save_with(&Metadata::new().with_correlation_id(request), &mut cat)?;
    /// let events = app.event_store().recorded_events(cat.id())?;
    /// assert_eq!(events[0].metadata()?.correlation_id(), Some(request));
    /// assert_eq!(app.event_store().verify(cat.id())?, cat.head());
    /// # Ok::<(), eventsourcing::Error>(())
    /// ```
    pub fn save_with<U: Unsaved>(
        &self,
        metadata: &Metadata,
        mut aggregates: U,
    ) -> Result<Vec<u64>> {
        self.save_batch(metadata, None, &mut aggregates, None, &[])
    }

    /// Saves the aggregates' pending events with a tracking update and
    /// changes to parked notifications, in one transaction: what a
    /// follower's processing records.
    pub(crate) fn save_batch<U: Visit + ?Sized>(
        &self,
        metadata: &Metadata,
        per_aggregate: Option<&dyn Fn(uuid::Uuid) -> Option<Metadata>>,
        aggregates: &mut U,
        tracking: Option<&TrackingUpdate>,
        parked: &[ParkChange],
    ) -> Result<Vec<u64>> {
        let span = crate::trace::timed_span!("save", app = %self.name;
            aggregate_id, version, aggregates, events, first_notification_id, last_notification_id);
        let _entered = span.enter();
        let stamp = self.stamp_for(metadata);
        let mapper = self.store.mapper();
        let mut rows = Vec::new();
        let mut due = Vec::new();
        let mut heads = Vec::new();
        let mut new_keys = Vec::new();
        let mut key_rows = Vec::new();
        let mut index = 0_usize;
        // Whether the span names an aggregate yet: the first with events.
        let mut named = false;
        aggregates.visit(&mut |aggregate| {
            let pending = aggregate.events()?;
            if !named
                && span.enabled()
                && let Some(last) = pending.last()
            {
                span.record_id("aggregate_id", last.originator_id);
                span.record_u64("version", last.originator_version);
                named = true;
            }
            if let (Some(first), Some(last)) = (pending.first(), pending.last())
                && self.snapshots.is_due(
                    aggregate.type_name(),
                    first.originator_version.saturating_sub(1),
                    last.originator_version,
                )
            {
                due.push(index);
            }
            index += 1;
            rows.reserve(pending.len());
            let Some(first) = pending.first() else {
                heads.push(None);
                return Ok(());
            };
            let sealing = self.sealing(aggregate, first, &mut new_keys, &mut key_rows)?;
            let seal = |event: &RecordedEvent| match &sealing {
                Some(key) if !aggregate.is_public(&event.topic) => Seal::DataKey(key),
                _ if mapper.encrypts() && aggregate.is_public(&event.topic) => Seal::Plain,
                _ => Seal::Application,
            };
            let own = per_aggregate.and_then(|of| of(first.originator_id));
            let stamp = with_own(stamp.as_ref(), own);
            let mut head = None;
            // The nonces of this aggregate's records in one draw, when
            // they are encrypted.
            let encrypted = sealing.is_some() || mapper.encrypts();
            let sealed = if encrypted { pending.len() } else { 0 };
            crate::nonces::drawn_ahead(sealed, || {
                match stamp.as_deref() {
                    None => {
                        for event in pending {
                            rows.push(mapper.encode_with(event, seal(event))?);
                        }
                    }
                    Some(metadata) => {
                        for event in pending {
                            let previous = head.unwrap_or(event.previous_hash);
                            let stamped: RecordedEvent = event.stamped(metadata, previous)?;
                            head = Some(stamped.event_hash);
                            rows.push(mapper.encode_with(&stamped, seal(&stamped))?);
                        }
                    }
                }
                Ok(())
            })?;
            heads.push(head);
            Ok(())
        })?;
        let mut batch = Batch::new(&rows)
            .with_parked(parked)
            .with_data_keys(&key_rows);
        if let Some(update) = tracking {
            batch = batch.with_tracking(update);
        }
        let ids = self
            .store
            .write(&batch)
            .inspect_err(crate::trace::save_failed)?;
        if let Some(keys) = mapper.data_keys() {
            for (id, key) in new_keys {
                keys.remember(id, key);
            }
        }
        crate::trace::saved(&span, index, &ids);
        let mut index = 0_usize;
        let mut due = due.into_iter().peekable();
        aggregates.visit(&mut |aggregate| {
            aggregate.mark_saved(heads.get(index).copied().flatten());
            if due.next_if_eq(&index).is_some() {
                self.snapshot_saved(aggregate);
            }
            index += 1;
            Ok(())
        })?;
        Ok(ids)
    }

    /// The metadata a save stamps: the application's, the thread's and
    /// the save's, merged; `None` when there is none.
    fn stamp_for(&self, metadata: &Metadata) -> Option<Metadata> {
        let scoped = scoped_metadata();
        if self.metadata.is_empty() && scoped.is_none() && metadata.is_empty() {
            return None;
        }
        let mut merged = (*self.metadata).clone();
        if let Some(scoped) = scoped {
            merged.merge(&scoped);
        }
        merged.merge(metadata);
        Some(merged)
    }

    /// Records a snapshot of an aggregate whose events were just committed;
    /// a failure is kept for [`Application::take_snapshot_error`].
    fn snapshot_saved(&self, aggregate: &dyn Pending) {
        let result = aggregate.snapshot().and_then(|snapshot| match snapshot {
            Some(snapshot) => self
                .store
                .insert_snapshot(&snapshot, aggregate.encryption())
                .map(drop),
            None => Ok(()),
        });
        if let Err(error) = result {
            crate::trace::trace_event!(
                warn,
                aggregate = aggregate.type_name(),
                error = %error,
                "an automatic snapshot failed (the save stands)"
            );
            *self
                .snapshot_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(error);
        }
    }

    /// How many events apart aggregates of type `A` are snapshotted
    /// automatically: its own interval
    /// ([`ApplicationBuilder::snapshot_every`]), else the default
    /// ([`ApplicationBuilder::default_snapshot_interval`],
    /// `SNAPSHOT_INTERVAL`); `None` when they are not.
    #[must_use]
    pub fn snapshot_interval<A: Root>(&self) -> Option<u64> {
        self.snapshots.interval(A::NAME)
    }

    /// The error of the last automatic snapshot that failed (see
    /// [`Application::save`]), if any failed since the last call; the error
    /// is taken, so the next call returns `None` unless another snapshot
    /// failed in between.
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

    /// Stores a snapshot of the aggregate as it is now (its latest
    /// version), so that loading it replays only the events recorded after
    /// this one. Returns the snapshot's version.
    ///
    /// The aggregate is loaded from the store first: the snapshot is of what
    /// was saved, never of unsaved changes. Saving a snapshot at a version
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
    /// assert_eq!(app.save_snapshot::<Cat>(cat.id())?, 2);
    /// let copy: Cat = app.repository().get(cat.id())?; // from the snapshot
    /// assert_eq!(copy.lives, 8);
    /// # Ok::<(), eventsourcing::Error>(())
    /// ```
    pub fn save_snapshot<A: Aggregate>(&self, id: A::Id) -> Result<u64> {
        let aggregate: A = self.repository().get(id)?;
        self.store_snapshot(&aggregate)
    }

    /// Stores a snapshot of the aggregate as it was at `version`, and
    /// returns `version`. [`Error::NotFound`] when the aggregate has no such
    /// version, or was discarded at or before it.
    pub fn save_snapshot_at<A: Aggregate>(&self, id: A::Id, version: u64) -> Result<u64> {
        let aggregate: A = self.repository().get_at(id, version)?;
        self.store_snapshot(&aggregate)
    }

    fn store_snapshot<A: Root>(&self, aggregate: &A) -> Result<u64> {
        let snapshot = aggregate.to_snapshot()?;
        self.store.insert_snapshot(&snapshot, A::ENCRYPTION)?;
        Ok(snapshot.originator_version)
    }

    /// The repository: aggregates rebuilt from their events.
    #[must_use]
    pub fn repository(&self) -> Repository<'_> {
        Repository::new(&self.store)
    }

    /// The event store: recorded events by aggregate, the check of their
    /// chain, and the recorder below.
    #[must_use]
    pub fn event_store(&self) -> &EventStore {
        &self.store
    }

    /// The notification log: every stored event in the application's total
    /// order, in sections.
    #[must_use]
    pub fn notification_log(&self) -> NotificationLog {
        NotificationLog::new(
            Arc::clone(self.store.recorder()),
            self.store.mapper().clone(),
            self.section_size,
        )
    }

    /// Calls `hook` after each commit of new events through this
    /// application or its clones, with their notification ids in order,
    /// on the thread that saved them, once the save's transaction has
    /// committed. The hook stays until the returned handle is dropped.
    ///
    /// This is how followers in the same process learn that there is more
    /// to read; it is a hint, not a delivery: the events are in the
    /// notification log whether or not a hook ran. A hook should be quick
    /// (wake a thread, send on a channel); it must not save through the
    /// application that calls it.
    ///
    /// ```
    /// # use eventsourcing::prelude::*;
    /// # #[aggregate] #[derive(Default)] struct Cat {}
    /// # #[aggregate] impl Cat { #[created(Born)] fn born(&mut self) {} }
    /// use std::sync::mpsc;
    ///
    /// let app = Application::builder().build()?;
    /// let (sender, commits) = mpsc::channel();
    /// let hook = app.on_commit(move |ids| {
    ///     let _ = sender.send(ids.to_vec());
    /// });
    /// app.save(&mut Cat::born())?;
    /// assert_eq!(commits.try_recv().ok(), Some(vec![1]));
    /// drop(hook);
    /// app.save(&mut Cat::born())?;
    /// assert!(commits.try_recv().is_err());
    /// # Ok::<(), eventsourcing::Error>(())
    /// ```
    pub fn on_commit(&self, hook: impl Fn(&[u64]) + Send + Sync + 'static) -> CommitHook {
        self.store.on_commit(Arc::new(hook))
    }
}

/// The metadata stamped on one aggregate's events: the save's `stamp`
/// with the aggregate's `own` merged over it.
fn with_own(
    stamp: Option<&Metadata>,
    own: Option<Metadata>,
) -> Option<std::borrow::Cow<'_, Metadata>> {
    use std::borrow::Cow;
    match (stamp, own) {
        (stamp, None) => stamp.map(Cow::Borrowed),
        (None, Some(own)) => Some(Cow::Owned(own)),
        (Some(stamp), Some(own)) => {
            let mut both = stamp.clone();
            both.merge(&own);
            Some(Cow::Owned(both))
        }
    }
}
