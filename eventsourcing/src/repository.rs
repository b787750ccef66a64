//! The repository: aggregates rebuilt from the event store, now or as they
//! were at a version or a moment.

use uuid::Uuid;

use crate::domain::{Aggregate, AggregateId, Chain, Recorded, Root};
use crate::error::{Error, Result};
use crate::format::{DISCARDED_SUFFIX, FORGOTTEN_SUFFIX};
use crate::recorder::EventQuery;
use crate::store::{EventStore, Until};

/// Reads aggregates back from the event store.
#[derive(Clone, Copy, Debug)]
pub struct Repository<'a> {
    store: &'a EventStore,
}

impl<'a> Repository<'a> {
    pub(crate) fn new(store: &'a EventStore) -> Repository<'a> {
        Repository { store }
    }

    /// Whether an aggregate with this id has events and was neither
    /// discarded nor forgotten.
    pub fn contains(&self, id: impl Into<Uuid>) -> Result<bool> {
        let id = id.into();
        let last = self
            .store
            .recorder()
            .events(&EventQuery::new(id).descending(true).limit(1))?;
        Ok(last.first().is_some_and(|row| {
            !row.topic.ends_with(DISCARDED_SUFFIX) && !row.topic.ends_with(FORGOTTEN_SUFFIX)
        }))
    }

    /// The aggregate rebuilt from its events: from its latest snapshot and
    /// the events after it when it has one, else from all its events.
    ///
    /// [`Error::NotFound`] when it has no events or was discarded;
    /// [`Error::UnknownTopic`] when the id belongs to another type of
    /// aggregate; [`Error::Integrity`] when a hash or link does not check,
    /// the snapshot's included (its head must be the hash of the event at
    /// its version).
    pub fn get<A: Aggregate>(&self, id: A::Id) -> Result<A> {
        let id = id.to_uuid();
        found(id, self.store.load::<A>(id, Until::End)?)
    }

    /// The aggregate, or `None` when it has no events or was discarded:
    /// [`Repository::get`] without the not-found error, for loading or
    /// creating.
    ///
    /// ```
    /// # use eventsourcing::prelude::*;
    /// # #[aggregate] #[derive(Default)] struct Page { title: String }
    /// # #[aggregate] impl Page { #[created(Created)] fn create(&mut self, title: String) { self.title = title } }
    /// let app = Application::builder().build()?;
    /// let id = Uuid::new_v5(&Uuid::NAMESPACE_URL, b"/pages/welcome");
    /// let page = match app.repository().find::<Page>(id)? {
    ///     Some(page) => page,
    ///     None => Page::create_with_id(id, "Welcome".into()),
    /// };
    /// assert_eq!(page.title, "Welcome");
    /// # Ok::<(), eventsourcing::Error>(())
    /// ```
    pub fn find<A: Aggregate>(&self, id: A::Id) -> Result<Option<A>> {
        match self.get::<A>(id) {
            Ok(aggregate) => Ok(Some(aggregate)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The aggregate as it was at `version` (time travel): rebuilt from its
    /// latest snapshot at or before that version and the events after it
    /// up to and including that version, or from its first event when no
    /// snapshot lies at or before it.
    ///
    /// [`Error::NotFound`] when the aggregate has no such version, or was
    /// discarded at or before it.
    pub fn get_at<A: Aggregate>(&self, id: A::Id, version: u64) -> Result<A> {
        let id = id.to_uuid();
        match self.store.load::<A>(id, Until::Version(version))? {
            Some(aggregate) if aggregate.version() == version => found(id, Some(aggregate)),
            _ => Err(Error::NotFound { id }),
        }
    }

    /// The aggregate as it was at a moment (time travel by the clock): the
    /// state after its last event recorded at or before `timestamp_micros`
    /// (microseconds since 1970-01-01T00:00:00Z, as in
    /// [`RecordedEvent::timestamp`](crate::RecordedEvent::timestamp)).
    /// Replay stops at the first event recorded after that moment.
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
    pub fn get_as_of<A: Aggregate>(&self, id: A::Id, timestamp_micros: i64) -> Result<A> {
        let id = id.to_uuid();
        found(id, self.store.load::<A>(id, Until::Time(timestamp_micros))?)
    }
}

impl Repository<'_> {
    /// The aggregate's history as its own event type: every stored event,
    /// decoded, with its version, timestamp and metadata, after checking
    /// the whole chain (as [`EventStore::verify`](crate::EventStore::verify)
    /// does). A discarded aggregate's history is still here; the record
    /// that `discard()` left is not (it is not an event of the type), and
    /// [`Repository::contains`] says whether there was one.
    ///
    /// [`Error::NotFound`] when there is no event; [`Error::UnknownTopic`]
    /// when the id belongs to another type of aggregate.
    ///
    /// ```
    /// # use eventsourcing::prelude::*;
    /// # #[aggregate] #[derive(Default)] struct Dog { tricks: Vec<String> }
    /// # #[aggregate] impl Dog {
    /// #     #[created(Registered)] fn register(&mut self) {}
    /// #     #[event(TrickAdded)] fn add_trick(&mut self, trick: String) { self.tricks.push(trick) }
    /// # }
    /// let app = Application::builder().build()?;
    /// let mut dog = Dog::register();
    /// dog.add_trick("roll over".into());
    /// app.save(&mut dog)?;
    /// let history = app.repository().events::<Dog>(dog.id())?;
    /// assert_eq!(history[1].event, DogEvent::TrickAdded { trick: "roll over".into() });
    /// assert_eq!(history[1].originator_version, 2);
    /// # Ok::<(), eventsourcing::Error>(())
    /// ```
    pub fn events<A: Aggregate>(&self, id: A::Id) -> Result<Vec<Recorded<A::Event>>> {
        let id = id.to_uuid();
        let mut chain = Chain::new(id);
        let mut history = Vec::new();
        for event in self.store.recorded_events(id)? {
            chain.check_next(&event)?;
            if event.topic == A::FORGOTTEN_TOPIC {
                return Err(Error::Forgotten { id });
            }
            if event.topic != A::DISCARDED_TOPIC {
                history.push(event.decode::<A::Event>().map_err(|error| match error {
                    Error::UnknownTopic {
                        topic, id, version, ..
                    } => Error::UnknownTopic {
                        aggregate: A::NAME,
                        topic,
                        id,
                        version,
                    },
                    other => other,
                })?);
            }
        }
        if chain.version() == 0 {
            return Err(Error::NotFound { id });
        }
        Ok(history)
    }
}

/// The loaded aggregate, unless it is missing or was discarded.
fn found<A: Root>(id: Uuid, loaded: Option<A>) -> Result<A> {
    match loaded {
        Some(aggregate) if !aggregate.is_discarded() => Ok(aggregate),
        _ => Err(Error::NotFound { id }),
    }
}
