//! The two kinds of record an aggregate leaves: its events, and snapshots
//! of its state. Both are serialised, timestamped, linked and hashed once,
//! when they are made; the mapper only frames, compresses and encrypts the
//! bytes (FORMAT.md, "The record body").

use std::borrow::Cow;

use uuid::Uuid;

use crate::domain::{Event, Metadata};
use crate::error::{Error, IntegrityFault, Result};
use crate::format::{Hash, event_hash};

/// A domain event as recorded: serialised once when it was triggered,
/// timestamped, linked to the previous event of its aggregate and hashed.
///
/// These are the bytes that are stored (FORMAT.md, "The record body").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    /// The aggregate the event belongs to.
    pub originator_id: Uuid,
    /// 1 for the aggregate's first event, then +1 for each event.
    pub originator_version: u64,
    /// The event's stable type name, such as `World.SomethingHappened`.
    pub topic: Cow<'static, str>,
    /// Microseconds since 1970-01-01T00:00:00Z.
    pub timestamp: i64,
    /// The `event_hash` of the aggregate's previous event ([`Hash::ZERO`] for version 1).
    pub previous_hash: Hash,
    /// The event's fields as one UTF-8 JSON object.
    pub data: Vec<u8>,
    /// SHA-256 of the pre-image in FORMAT.md.
    pub event_hash: Hash,
}

impl RecordedEvent {
    /// Builds a recorded event and computes its hash.
    #[must_use]
    pub fn new(
        originator_id: Uuid,
        originator_version: u64,
        topic: Cow<'static, str>,
        timestamp: i64,
        previous_hash: Hash,
        data: Vec<u8>,
    ) -> Self {
        let event_hash = event_hash(
            originator_id,
            originator_version,
            &topic,
            &previous_hash,
            timestamp,
            &data,
        );
        RecordedEvent {
            originator_id,
            originator_version,
            topic,
            timestamp,
            previous_hash,
            data,
            event_hash,
        }
    }

    /// Recomputes the hash from the record's fields and compares it with
    /// the stored one: [`Error::Integrity`] with
    /// [`IntegrityFault::HashMismatch`] when they differ.
    ///
    /// This checks one record alone; whether it belongs where it was found
    /// is the chain's question ([`Chain`](crate::Chain)).
    pub fn check_hash(&self) -> Result<()> {
        self.view().check_hash()
    }

    /// The record with its topic and data borrowed: what replay and the
    /// chain read.
    pub(crate) fn view(&self) -> EventView<'_> {
        EventView {
            originator_id: self.originator_id,
            originator_version: self.originator_version,
            topic: &self.topic,
            timestamp: self.timestamp,
            previous_hash: self.previous_hash,
            data: &self.data,
            event_hash: self.event_hash,
        }
    }
}

/// A recorded event whose topic and data are borrowed: from a row a
/// recorder lends, or from a [`RecordedEvent`]. Replay reads these, so
/// that loading an aggregate copies nothing per event.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EventView<'a> {
    pub(crate) originator_id: Uuid,
    pub(crate) originator_version: u64,
    pub(crate) topic: &'a str,
    pub(crate) timestamp: i64,
    pub(crate) previous_hash: Hash,
    pub(crate) data: &'a [u8],
    pub(crate) event_hash: Hash,
}

impl EventView<'_> {
    /// [`RecordedEvent::check_hash`] of the borrowed record.
    pub(crate) fn check_hash(&self) -> Result<()> {
        check(
            self.originator_id,
            self.originator_version,
            self.event_hash,
            event_hash(
                self.originator_id,
                self.originator_version,
                self.topic,
                &self.previous_hash,
                self.timestamp,
                self.data,
            ),
        )
    }

    /// A copy of the record that owns its topic and data.
    pub(crate) fn to_owned(self) -> RecordedEvent {
        RecordedEvent {
            originator_id: self.originator_id,
            originator_version: self.originator_version,
            topic: Cow::Owned(self.topic.to_owned()),
            timestamp: self.timestamp,
            previous_hash: self.previous_hash,
            data: self.data.to_vec(),
            event_hash: self.event_hash,
        }
    }
}

impl RecordedEvent {
    /// The event this record holds, decoded into its type `E`, with where
    /// it stands in its aggregate's history and its metadata.
    ///
    /// [`Error::UnknownTopic`] when the topic is not one of `E`'s (the
    /// record that `discard()` leaves is not an event of any type);
    /// [`Error::Decode`] when the data does not fit. The hash is not
    /// checked here (see [`RecordedEvent::check_hash`]).
    ///
    /// ```
    /// # use eventsourcing::prelude::*;
    /// # #[aggregate] #[derive(Default)] struct Cat { lives: u8 }
    /// # #[aggregate] impl Cat {
    /// #     #[created(Born)] fn born(&mut self) { self.lives = 9 }
    /// #     #[event(LostOne)] fn lose_one(&mut self) { self.lives -= 1 }
    /// # }
    /// let mut cat = Cat::born();
    /// cat.lose_one();
    /// let recorded = cat.pending_events()[1].decode::<CatEvent>()?;
    /// assert_eq!(recorded.event, CatEvent::LostOne {});
    /// assert_eq!(recorded.originator_version, 2);
    /// # Ok::<(), eventsourcing::Error>(())
    /// ```
    pub fn decode<E: Event>(&self) -> Result<Recorded<E>> {
        let event = E::decode(&self.topic, &self.data)
            .map_err(|source| Error::Decode {
                topic: self.topic.to_string(),
                id: self.originator_id,
                version: self.originator_version,
                source,
            })?
            .ok_or_else(|| Error::UnknownTopic {
                aggregate: std::any::type_name::<E>(),
                topic: self.topic.to_string(),
                id: self.originator_id,
                version: self.originator_version,
            })?;
        Ok(Recorded {
            originator_id: self.originator_id,
            originator_version: self.originator_version,
            timestamp: self.timestamp,
            metadata: self.metadata()?,
            event,
        })
    }
}

/// A recorded event decoded into its type: the event, where it stands in
/// its aggregate's history, when it was recorded, and its metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded<E> {
    /// The aggregate the event belongs to.
    pub originator_id: Uuid,
    /// The event's version within its aggregate.
    pub originator_version: u64,
    /// When the event was triggered, in microseconds since the Unix epoch.
    pub timestamp: i64,
    /// The event's metadata (empty when it has none).
    pub metadata: Metadata,
    /// The event.
    pub event: E,
}

/// An aggregate's state at one version, as stored in `snapshots`: the same
/// record layout as an event (FORMAT.md), with the head at that version in
/// place of the previous hash and the state as JSON in place of the event's
/// fields.
///
/// Made by [`Root::to_snapshot`](crate::Root::to_snapshot); loading an
/// aggregate starts from its newest snapshot and replays only the events
/// after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The aggregate.
    pub originator_id: Uuid,
    /// The version of the aggregate's last event when the snapshot was made.
    pub originator_version: u64,
    /// The aggregate type's name, with its state's schema version above 1
    /// (`Meter`, `Meter@2`).
    pub topic: String,
    /// When the snapshot was made, in microseconds since the Unix epoch.
    pub timestamp: i64,
    /// The aggregate's head at this version: the hash of the event at
    /// `originator_version` (stored in the `previous_hash` position).
    pub head: Hash,
    /// The aggregate's state as one UTF-8 JSON object.
    pub data: Vec<u8>,
    /// SHA-256 of the same pre-image as an event's.
    pub hash: Hash,
}

impl Snapshot {
    /// Builds a snapshot record and computes its hash.
    #[must_use]
    pub fn new(
        originator_id: Uuid,
        originator_version: u64,
        topic: String,
        timestamp: i64,
        head: Hash,
        data: Vec<u8>,
    ) -> Self {
        let hash = event_hash(
            originator_id,
            originator_version,
            &topic,
            &head,
            timestamp,
            &data,
        );
        Snapshot {
            originator_id,
            originator_version,
            topic,
            timestamp,
            head,
            data,
            hash,
        }
    }

    /// Recomputes the hash from the record's fields and compares it with
    /// the stored one, as [`RecordedEvent::check_hash`] does.
    pub fn check_hash(&self) -> Result<()> {
        check(
            self.originator_id,
            self.originator_version,
            self.hash,
            event_hash(
                self.originator_id,
                self.originator_version,
                &self.topic,
                &self.head,
                self.timestamp,
                &self.data,
            ),
        )
    }
}

fn check(id: Uuid, version: u64, stored: Hash, computed: Hash) -> Result<()> {
    if stored == computed {
        Ok(())
    } else {
        Err(Error::Integrity {
            id,
            version,
            fault: IntegrityFault::HashMismatch,
        })
    }
}
