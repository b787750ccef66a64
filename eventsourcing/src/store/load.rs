//! Loading an aggregate: find the newest usable snapshot within the wanted
//! range (by version, or by time with a bisection over the snapshots), tie
//! it to the events through the chain, and replay the events after it.

use std::cell::RefCell;
use std::ops::ControlFlow;

use uuid::Uuid;

use super::EventStore;
use crate::domain::replay::{replay_first, replay_next, restore};
use crate::domain::{Aggregate, Chain, EventView, RecordedEvent, Root, Snapshot};
use crate::error::{Error, IntegrityFault, Result};
use crate::mapper::{DataKey, Scratch, StoredEvent};
use crate::recorder::EventQuery;

/// How far a rebuild goes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Until {
    /// Every event.
    End,
    /// The events up to and including this version.
    Version(u64),
    /// The events up to the first one recorded after this time
    /// (microseconds since the Unix epoch).
    Time(i64),
}

impl EventStore {
    /// Rebuilds an aggregate as of `until`: from the newest snapshot that
    /// lies within it when there is one, else from the first event.
    ///
    /// `None` when there is no event within `until`, or the aggregate was
    /// discarded within it.
    pub(crate) fn load<A: Aggregate>(&self, id: Uuid, until: Until) -> Result<Option<A>> {
        let span = crate::trace::timed_span!("load", aggregate = %A::NAME, aggregate_id = %id;
            snapshot_version, events, version, found);
        let _entered = span.enter();
        self.mapper.public_topics().learn::<A>();
        let (from, loaded) = self.load_from_snapshot::<A>(id, until)?;
        if span.enabled() {
            if from > 0 {
                span.record_u64("snapshot_version", from);
            }
            let version = loaded.as_ref().map_or(0, Root::version);
            span.record_u64("version", version);
            span.record_u64("events", version.saturating_sub(from));
            span.record_bool("found", loaded.is_some());
        }
        Ok(loaded)
    }

    /// The aggregate as of `until`, and the version of the snapshot it was
    /// rebuilt from (0 for none).
    ///
    /// By version (or to the end), the snapshot and the events come from
    /// one read of the recorder ([`Recorder::select_snapshot_and_events`]);
    /// by time, or when records may be under data keys (whose lookup must
    /// not run inside the recorder's callback), the snapshot is found
    /// first and the events read after.
    ///
    /// [`Recorder::select_snapshot_and_events`]: crate::recorder::Recorder::select_snapshot_and_events
    fn load_from_snapshot<A: Aggregate>(&self, id: Uuid, until: Until) -> Result<(u64, Option<A>)> {
        let to_version = match until {
            Until::End => None,
            Until::Version(version) => Some(version),
            Until::Time(time) => {
                return self.load_in_two_reads(id, self.snapshot_as_of(id, time)?, until);
            }
        };
        if self.mapper.data_keys().is_some() {
            return self.load_in_two_reads(id, self.latest_snapshot(id, to_version)?, until);
        }
        // Both callbacks move the one replayer on, one after the other.
        let replayer = RefCell::new(Replayer::<A>::new(id, until));
        let mut unusable = false;
        let mut scratch = Scratch::default();
        self.recorder.select_snapshot_and_events(
            id,
            to_version,
            &mut |row| {
                let snapshot = self.mapper.decode_snapshot(row.to_owned())?;
                if let Some(restored) = usable::<A>(id, &snapshot)? {
                    replayer.borrow_mut().restored(restored);
                    return Ok(ControlFlow::Continue(()));
                }
                unusable = true;
                Ok(ControlFlow::Break(()))
            },
            &mut |row| {
                let recorded = self.mapper.open_row(row, DataKey::Ask, &mut scratch)?;
                replayer.borrow_mut().next(recorded)
            },
        )?;
        if unusable {
            return self.load_in_two_reads(id, None, until);
        }
        let replayer = replayer.into_inner();
        let from = replayer.from;
        Ok((from, replayer.finish()?))
    }

    /// [`EventStore::load_from_snapshot`] from a snapshot already read (or
    /// none), the events read after it.
    fn load_in_two_reads<A: Aggregate>(
        &self,
        id: Uuid,
        snapshot: Option<Snapshot>,
        until: Until,
    ) -> Result<(u64, Option<A>)> {
        let start = match snapshot {
            Some(snapshot) => usable::<A>(id, &snapshot)?,
            None => None,
        };
        let mut query = EventQuery::new(id);
        let mut replayer = Replayer::new(id, until);
        if let Some(restored) = start {
            query = query.after_version(restored.version().saturating_sub(1));
            replayer.restored(restored);
        }
        if let Until::Version(version) = until {
            query = query.to_version(version);
        }
        self.each_event(&query, |recorded| replayer.next(recorded))?;
        let from = replayer.from;
        Ok((from, replayer.finish()?))
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
        self.each_event(&query, |event| {
            found = Some(event.to_owned());
            Ok(ControlFlow::Break(()))
        })?;
        Ok(found)
    }

    /// The newest snapshot of `id` whose version's event was recorded at or
    /// before `time`.
    ///
    /// Tries the newest snapshot first, then bisects the versions below the
    /// first one that is too new: a few queries, however many snapshots
    /// there are. This assumes that an aggregate's event timestamps do not
    /// decrease with its versions (they come from the clock at each
    /// trigger).
    fn snapshot_as_of(&self, id: Uuid, time: i64) -> Result<Option<Snapshot>> {
        // Versions at or below `low` are searched; `high` is the version of
        // the oldest snapshot known to be too new.
        let mut low = 0;
        let mut high = u64::MAX;
        let mut best: Option<StoredEvent> = None;
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
        best.map(|row| self.mapper.decode_snapshot(row)).transpose()
    }
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
fn usable<A: Aggregate>(id: Uuid, snapshot: &Snapshot) -> Result<Option<A>> {
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
    match restore::<A>(snapshot) {
        Ok(aggregate) => Ok(Some(aggregate)),
        Err(Error::UnknownTopic { .. } | Error::Decode { .. } | Error::Upcast { .. }) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Replays events within `until` onto an aggregate restored from a
/// snapshot or, without one, onto a blank aggregate.
///
/// After a snapshot, its own event comes first: the chain must stand on it
/// ([`Chain::check_head`]), else the store was tampered with
/// ([`Error::Integrity`]); if it is the discard event, the aggregate is
/// gone.
struct Replayer<A> {
    id: Uuid,
    until: Until,
    /// The chain the snapshot's event must be the head of, until it came.
    link: Option<Chain>,
    /// The version of the snapshot restored from (0 for none).
    from: u64,
    aggregate: Option<A>,
    discarded: bool,
}

impl<A: Aggregate> Replayer<A> {
    fn new(id: Uuid, until: Until) -> Self {
        Replayer {
            id,
            until,
            link: None,
            from: 0,
            aggregate: None,
            discarded: false,
        }
    }

    /// Starts from an aggregate restored from a snapshot.
    fn restored(&mut self, restored: A) {
        let version = restored.version();
        self.link = Some(Chain::resume(self.id, version, restored.head()));
        self.from = version;
        self.aggregate = Some(restored);
    }

    /// Checks and applies the next event.
    fn next(&mut self, recorded: EventView<'_>) -> Result<ControlFlow<()>> {
        let id = self.id;
        if recorded.topic == A::FORGOTTEN_TOPIC {
            return Err(Error::Forgotten { id });
        }
        if let Some(chain) = self.link.take() {
            chain.check_head_view(&recorded)?;
            self.discarded = recorded.topic == A::DISCARDED_TOPIC;
            if let Some(restored) = &mut self.aggregate {
                restored.meta_mut().set_recorded_at(recorded.timestamp);
            }
            return Ok(ControlFlow::Continue(()));
        }
        if let Until::Time(time) = self.until
            && recorded.timestamp > time
        {
            return Ok(ControlFlow::Break(()));
        }
        match &mut self.aggregate {
            Some(aggregate) => replay_next(aggregate, &recorded)?,
            None => self.aggregate = Some(replay_first(id, &recorded)?),
        }
        Ok(ControlFlow::Continue(()))
    }

    /// The aggregate replayed; `None` when there was no event, or it was
    /// discarded.
    fn finish(self) -> Result<Option<A>> {
        if let Some(chain) = self.link {
            // The snapshot's version has no event.
            return Err(Error::Integrity {
                id: self.id,
                version: chain.version(),
                fault: IntegrityFault::VersionGap,
            });
        }
        if self.discarded {
            return Ok(None);
        }
        Ok(self.aggregate)
    }
}
