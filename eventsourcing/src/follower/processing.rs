//! The context of a process application's handlers: [`Processing`] gets,
//! creates and changes the follower's own aggregates and collects them, so
//! that everything they record is saved with the follower's new position
//! in one transaction.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;

use uuid::Uuid;

use super::causal::{Causal, Gathered};
use crate::application::{Application, Pending, Visit};
use crate::domain::{Aggregate, AggregateId};
use crate::error::{Error, Result};
use crate::recorder::{ParkChange, TrackingUpdate};

/// What a process application's handlers work with: the follower's own
/// application, and the aggregates they changed or created so far in this
/// batch of upstream events.
///
/// Aggregates are collected, not saved: when the batch has been handled,
/// their new events, the follower's new position in the upstream log and
/// any parked notifications are written in one transaction. If that
/// transaction meets a concurrency conflict (another writer changed one of
/// the aggregates), the batch is handled again in a fresh context.
///
/// ```
/// # use eventsourcing::prelude::*;
/// # use eventsourcing::follower::Processing;
/// # #[aggregate] #[derive(Default)] struct Tally { count: u64 }
/// # #[aggregate] impl Tally {
/// #     #[created(Started)] fn start(&mut self) {}
/// #     #[event(Counted)] fn count(&mut self) { self.count += 1 }
/// # }
/// fn on_something(cx: &mut Processing, tally: Uuid) -> eventsourcing::Result<()> {
///     match cx.find::<Tally>(tally)? {
///         Some(tally) => tally.count(),
///         None => cx.collect(Tally::start())?.count(),
///     }
///     Ok(())
/// }
/// ```
pub struct Processing {
    app: Application,
    collected: Vec<Box<dyn Collected>>,
    by_id: HashMap<Uuid, usize>,
    cache: Cache,
    gathered: Gathered,
}

/// Aggregates as a process application last saved them, kept from one
/// batch to the next so that they need not be loaded again
/// ([`FollowerBuilder::cache_aggregates`](super::FollowerBuilder::cache_aggregates)).
///
/// A cached aggregate may be stale when another writer changed it since:
/// then the batch that changes it meets a concurrency conflict, its
/// aggregates leave the cache, and the batch is handled again on fresh
/// loads. Correctness never depends on the cache.
#[derive(Default)]
pub(crate) struct Cache {
    pub(crate) capacity: usize,
    aggregates: HashMap<Uuid, Box<dyn Collected>>,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("capacity", &self.capacity)
            .field("len", &self.aggregates.len())
            .finish()
    }
}

impl Cache {
    fn keep(&mut self, uuid: Uuid, aggregate: Box<dyn Collected>) {
        if self.capacity == 0 {
            return;
        }
        if self.aggregates.len() >= self.capacity {
            // No recency to track: a full cache starts again.
            self.aggregates.clear();
        }
        self.aggregates.insert(uuid, aggregate);
    }
}

impl fmt::Debug for Processing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Processing")
            .field("application", &self.app.name())
            .field("collected", &self.by_id.keys().collect::<Vec<_>>())
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// One collected aggregate, whatever its type.
trait Collected: Pending + Send {
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<A: Aggregate> Collected for A {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

impl Processing {
    /// An empty context over the follower's application.
    pub(crate) fn new(app: Application, cache: Cache, causal: Causal) -> Processing {
        Processing {
            app,
            collected: Vec::new(),
            by_id: HashMap::new(),
            cache,
            gathered: Gathered::new(causal),
        }
    }

    /// The follower's application, for reading (to change an aggregate,
    /// [`get`](Processing::get) it here, so that it is collected).
    #[must_use]
    pub fn application(&self) -> &Application {
        &self.app
    }

    /// The aggregate with this id, as this batch left it: collected
    /// already, or loaded from the follower's application and collected.
    ///
    /// [`Error::NotFound`] when it has no events (or was discarded);
    /// [`Error::InvalidArgument`] when the id was collected as another type.
    pub fn get<A: Aggregate>(&mut self, id: A::Id) -> Result<&mut A> {
        let uuid = id.to_uuid();
        let index = if let Some(&index) = self.by_id.get(&uuid) {
            self.gathered.got(&self.app, uuid, None)?;
            index
        } else if let Some(cached) = self.cache.aggregates.remove(&uuid) {
            let index = self.push_boxed(uuid, cached);
            let version = self.typed::<A>(uuid, index)?.version();
            self.gathered.got(&self.app, uuid, Some(version))?;
            index
        } else {
            let aggregate: A = self.app.repository().get(id)?;
            self.gathered
                .got(&self.app, uuid, Some(aggregate.version()))?;
            self.push(uuid, aggregate)
        };
        self.typed(uuid, index)
    }

    /// [`Processing::get`], or `None` when the aggregate has no events
    /// (or was discarded): for getting or creating.
    pub fn find<A: Aggregate>(&mut self, id: A::Id) -> Result<Option<&mut A>> {
        match self.get::<A>(id) {
            Ok(aggregate) => Ok(Some(aggregate)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Collects a new aggregate (one made by a creation method), so that
    /// its events are saved with the batch; returns it for more changes.
    ///
    /// [`Error::InvalidArgument`] when an aggregate with its id is already
    /// collected (get that one instead).
    pub fn collect<A: Aggregate>(&mut self, aggregate: A) -> Result<&mut A> {
        let uuid = aggregate.id().to_uuid();
        if self.by_id.contains_key(&uuid) {
            return Err(Error::InvalidArgument {
                name: "aggregate",
                reason: format!(
                    "aggregate {uuid} is already collected in this batch; use `get` to change it"
                ),
            });
        }
        let index = self.push(uuid, aggregate);
        self.gathered.touched(uuid);
        self.typed(uuid, index)
    }

    /// The handler now running has returned (what it recorded depends on
    /// what it read).
    pub(crate) fn end_handler(&mut self) {
        self.gathered.end_handler();
    }

    /// How many aggregates are collected.
    #[must_use]
    pub fn len(&self) -> usize {
        self.collected.len()
    }

    /// Whether no aggregate is collected.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.collected.is_empty()
    }

    fn push<A: Aggregate>(&mut self, uuid: Uuid, aggregate: A) -> usize {
        self.push_boxed(uuid, Box::new(aggregate))
    }

    fn push_boxed(&mut self, uuid: Uuid, aggregate: Box<dyn Collected>) -> usize {
        let index = self.collected.len();
        self.collected.push(aggregate);
        self.by_id.insert(uuid, index);
        index
    }

    fn typed<A: Aggregate>(&mut self, uuid: Uuid, index: usize) -> Result<&mut A> {
        self.collected[index]
            .as_any_mut()
            .downcast_mut::<A>()
            .ok_or_else(|| Error::InvalidArgument {
                name: "aggregate",
                reason: format!(
                    "aggregate {uuid} is collected as another type than `{}`",
                    A::NAME
                ),
            })
    }

    /// The cache, without what this batch collected.
    pub(crate) fn into_cache(self) -> Cache {
        self.cache
    }

    /// Saves every collected aggregate's new events with `tracking` and
    /// `parked` in one transaction; returns the new notification ids, and
    /// the cache with the saved aggregates in it (without any of them
    /// when the save failed).
    pub(crate) fn commit(
        mut self,
        tracking: Option<&TrackingUpdate>,
        parked: &[ParkChange],
    ) -> (Result<Vec<u64>>, Cache) {
        let app = self.app.clone();
        let metadata = self.gathered.metadata();
        let gathered = std::mem::take(&mut self.gathered);
        let of = |id| gathered.metadata_of(id);
        let result = app.save_batch(&metadata, Some(&of), &mut self, tracking, parked);
        let mut cache = self.cache;
        if result.is_ok() && cache.capacity > 0 {
            let mut ids: Vec<(Uuid, usize)> = self.by_id.into_iter().collect();
            ids.sort_unstable_by_key(|&(_, index)| std::cmp::Reverse(index));
            for (uuid, index) in ids {
                let aggregate = self.collected.swap_remove(index);
                cache.keep(uuid, aggregate);
            }
        }
        (result, cache)
    }
}

impl Visit for Processing {
    fn visit(&mut self, each: &mut dyn FnMut(&mut dyn Pending) -> Result<()>) -> Result<()> {
        for aggregate in &mut self.collected {
            each(&mut **aggregate)?;
        }
        Ok(())
    }
}
