//! The domain layer: the traits aggregates and events implement, the
//! bookkeeping every aggregate carries, and the recorded form of an event
//! with its place in the hash chain (FORMAT.md).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{Error, IntegrityFault, Result};

/// A SHA-256 digest: an event's hash, or an aggregate's head.
///
/// Shown (with `Display`) as 64 lowercase hex digits.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The 32 zero bytes that stand as `previous_hash` of an aggregate's
    /// first event.
    pub const ZERO: Hash = Hash([0; 32]);

    /// The 64 lowercase hex digits of the hash.
    #[must_use]
    pub fn to_hex(&self) -> String {
        self.to_string()
    }

    /// Parses 64 hex digits (either case).
    #[must_use]
    pub fn from_hex(hex: &str) -> Option<Hash> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = char::from(pair[0]).to_digit(16)?;
            let lo = char::from(pair[1]).to_digit(16)?;
            out[i] = u8::try_from(hi * 16 + lo).ok()?;
        }
        Some(Hash(out))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

impl PartialEq<str> for Hash {
    fn eq(&self, other: &str) -> bool {
        Hash::from_hex(other).is_some_and(|h| h == *self)
    }
}

impl PartialEq<&str> for Hash {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

/// A domain event as recorded: serialised once when it was triggered,
/// timestamped, linked to the previous event of its aggregate and hashed.
///
/// These are the bytes that are stored (FORMAT.md, "The record body"); the
/// mapper only frames, compresses and encrypts them.
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
    /// the stored one.
    pub fn check_hash(&self) -> Result<()> {
        let expected = event_hash(
            self.originator_id,
            self.originator_version,
            &self.topic,
            &self.previous_hash,
            self.timestamp,
            &self.data,
        );
        if expected == self.event_hash {
            Ok(())
        } else {
            Err(Error::Integrity {
                id: self.originator_id,
                version: self.originator_version,
                fault: IntegrityFault::HashMismatch,
            })
        }
    }
}

/// The `event_hash` of FORMAT.md: SHA-256 over the originator id, version,
/// length-prefixed topic, previous hash, timestamp and data.
#[must_use]
pub fn event_hash(
    originator_id: Uuid,
    originator_version: u64,
    topic: &str,
    previous_hash: &Hash,
    timestamp: i64,
    data: &[u8],
) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(originator_id.as_bytes());
    hasher.update(originator_version.to_be_bytes());
    // A topic longer than 4 GiB cannot be stored; saturating keeps the
    // function total, and such a topic fails on the way into any database.
    let topic_len = u32::try_from(topic.len()).unwrap_or(u32::MAX);
    hasher.update(topic_len.to_be_bytes());
    hasher.update(topic.as_bytes());
    hasher.update(previous_hash.0);
    hasher.update(timestamp.to_be_bytes());
    hasher.update(data);
    Hash(hasher.finalize().into())
}

/// Microseconds since the Unix epoch, now.
#[must_use]
pub fn now_micros() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

/// The end of every `Root::DISCARDED_TOPIC`: the topic of the event that
/// `discard()` records is the aggregate's name followed by this.
pub(crate) const DISCARDED_SUFFIX: &str = ".Discarded";

/// A type of domain event: the enum generated by `#[aggregate]`, or one
/// written by hand with `#[derive(Event)]`.
///
/// The stored form of an event is its topic plus its fields as one JSON
/// object; [`Event::encode`] and [`Event::decode`] convert between the two.
pub trait Event: Sized + Send + Sync + 'static {
    /// Every topic this type can decode.
    const TOPICS: &'static [&'static str];

    /// The stable type name of this event, such as `World.SomethingHappened`.
    fn topic(&self) -> &'static str;

    /// Appends the event's fields to `out` as one JSON object.
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error>;

    /// Decodes an event from its topic and JSON data. Returns `Ok(None)` when
    /// the topic is not one of [`Event::TOPICS`].
    fn decode(topic: &str, data: &[u8]) -> Result<Option<Self>, serde_json::Error>;

    /// The current schema of every event of this type: name, topic, schema
    /// version and fields, as the macros read them from the source.
    const SCHEMA: &'static [EventSchema] = &[];
}

/// The schema of one event type, exposed by the macros for schema checks
/// (see [`crate::schema::Schemas`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventSchema {
    /// The event's name (its variant).
    pub name: &'static str,
    /// The topic new events are recorded with (versioned when above 1).
    pub topic: &'static str,
    /// The schema version; 1 unless declared otherwise.
    pub version: u32,
    /// Each field's name and type, as written in the source.
    pub fields: &'static [(&'static str, &'static str)],
}

/// A JSON object: what upcasters receive and change.
pub type JsonObject = serde_json::Map<String, serde_json::Value>;

/// Splits a stored topic into its unversioned part and its schema version:
/// `World.Moved@3` is `("World.Moved", 3)`, `World.Moved` is version 1.
/// `None` when the part after `@` is not a version above 1.
#[must_use]
pub fn split_topic(topic: &str) -> Option<(&str, u32)> {
    match topic.rsplit_once('@') {
        None => Some((topic, 1)),
        Some((base, version)) => match version.parse::<u32>() {
            Ok(v) if v > 1 && !version.starts_with('0') && !version.starts_with('+') => {
                Some((base, v))
            }
            _ => None,
        },
    }
}

/// The stored topic of `base` at schema `version`: unchanged at version 1
/// (so version 1 records are exactly FORMAT.md's), `base@version` above.
#[must_use]
pub fn versioned_topic(base: &str, version: u32) -> String {
    if version <= 1 {
        base.to_owned()
    } else {
        format!("{base}@{version}")
    }
}

/// The bookkeeping of an aggregate: generated by `#[aggregate]` on the
/// aggregate's struct, which adds a hidden [`Meta`] field.
///
/// Its provided methods are the aggregate's identity and history; the
/// struct also gets inherent copies of the common ones, so that calling them
/// needs no import.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an aggregate",
    label = "not an aggregate",
    note = "put `#[aggregate]` on `struct {Self}`, above its `#[derive(...)]`"
)]
pub trait Root: Default + Send + 'static {
    /// The aggregate type's name, the first part of its topics.
    const NAME: &'static str;

    /// The topic of the event that [`Root::discard`] records.
    const DISCARDED_TOPIC: &'static str;

    /// The schema version of the aggregate's state (snapshot data): 1
    /// unless `#[aggregate(version = N)]` says otherwise.
    const STATE_VERSION: u32 = 1;

    /// The state's fields and their types, as written in the source.
    const STATE_SCHEMA: &'static [(&'static str, &'static str)] = &[];

    /// The aggregate's bookkeeping.
    fn meta(&self) -> &Meta;

    /// Appends the aggregate's state (every field but the bookkeeping) as
    /// one JSON object: the data of a snapshot.
    fn encode_state(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        let _ = out;
        Err(json_error("this aggregate type cannot be snapshotted"))
    }

    /// Builds an aggregate from state data of the current
    /// [`STATE_VERSION`](Root::STATE_VERSION), with empty bookkeeping.
    fn decode_state(data: &[u8]) -> Result<Self, serde_json::Error> {
        let _ = data;
        Err(json_error("this aggregate type cannot be snapshotted"))
    }

    /// The aggregate's bookkeeping, mutably.
    fn meta_mut(&mut self) -> &mut Meta;

    /// The aggregate's id (nil before it is created).
    fn id(&self) -> Uuid {
        self.meta().id
    }

    /// The version of the aggregate's last event (0 before it is created).
    fn version(&self) -> u64 {
        self.meta().version
    }

    /// The hash of the aggregate's last event: the head of its hash chain.
    fn head(&self) -> Hash {
        self.meta().head
    }

    /// Whether the aggregate has been discarded.
    fn is_discarded(&self) -> bool {
        self.meta().discarded
    }

    /// Records the end of the aggregate's life. After the discard is saved
    /// the repository no longer finds it; events triggered afterwards are
    /// refused (see [`Error::Refused`]).
    fn discard(&mut self) {
        let topic = Self::DISCARDED_TOPIC;
        let meta = self.meta_mut();
        if meta.admit(topic) {
            meta.record(topic, |out| {
                out.extend_from_slice(b"{}");
                Ok(())
            });
            meta.discarded = true;
        }
    }

    /// The aggregate's current state as a snapshot record: the state as
    /// JSON, linked to the head at this version (FORMAT.md, `snapshots`).
    fn snapshot(&self) -> Result<RecordedEvent> {
        let meta = self.meta();
        let mut data = Vec::with_capacity(128);
        self.encode_state(&mut data)
            .map_err(|source| Error::Encode {
                topic: Self::NAME,
                id: meta.id,
                source,
            })?;
        Ok(RecordedEvent::new(
            meta.id,
            meta.version,
            Cow::Owned(versioned_topic(Self::NAME, Self::STATE_VERSION)),
            now_micros(),
            meta.head,
            data,
        ))
    }

    /// The events recorded since the aggregate was last saved.
    fn pending_events(&self) -> &[RecordedEvent] {
        &self.meta().pending
    }

    /// Takes the pending events out of the aggregate, for a caller that
    /// stores them itself.
    fn take_pending_events(&mut self) -> Result<Vec<RecordedEvent>> {
        self.meta_mut().take_pending()
    }
}

/// An event-sourced aggregate: state that changes only by applying events.
///
/// `#[aggregate]` on an `impl` block implements this trait; in the explicit
/// style the user implements it by hand with a `match` over their event enum.
pub trait Aggregate: Root {
    /// The aggregate's event type.
    type Event: Event;

    /// Applies one event to the state. This is a fact being applied, so it
    /// must not fail: check commands before triggering their events.
    fn apply(&mut self, event: Self::Event);

    /// Upcasts snapshot state data from schema version `from` to `from + 1`;
    /// returns `false` when there is no such upcaster. Generated from
    /// `#[upcast(state, from = N)]` methods.
    fn upcast_state(from: u32, state: &mut JsonObject) -> bool {
        let _ = (from, state);
        false
    }

    /// Rebuilds an aggregate from a snapshot record, checking its hash and
    /// topic and upcasting old state data step by step. Events after the
    /// snapshot are then replayed with [`Aggregate::replay_one`], the first
    /// of which must link to the snapshot's head.
    fn from_snapshot(snapshot: RecordedEvent) -> Result<Self> {
        snapshot.check_hash()?;
        let id = snapshot.originator_id;
        let version = snapshot.originator_version;
        let unknown = || Error::UnknownTopic {
            aggregate: Self::NAME,
            topic: snapshot.topic.to_string(),
            id,
            version,
        };
        let stored_version = match split_topic(&snapshot.topic) {
            Some((base, v)) if base == Self::NAME => v,
            _ => return Err(unknown()),
        };
        let decode_error = |source| Error::Decode {
            topic: snapshot.topic.to_string(),
            id,
            version,
            source,
        };
        let mut aggregate = match stored_version.cmp(&Self::STATE_VERSION) {
            Ordering::Equal => Self::decode_state(&snapshot.data).map_err(decode_error)?,
            Ordering::Less => {
                let mut state: JsonObject =
                    serde_json::from_slice(&snapshot.data).map_err(decode_error)?;
                for from in stored_version..Self::STATE_VERSION {
                    if !Self::upcast_state(from, &mut state) {
                        return Err(Error::Upcast {
                            topic: snapshot.topic.to_string(),
                            id,
                            version,
                            from,
                        });
                    }
                }
                let data = serde_json::to_vec(&state).map_err(decode_error)?;
                Self::decode_state(&data).map_err(decode_error)?
            }
            Ordering::Greater => return Err(unknown()),
        };
        let meta = aggregate.meta_mut();
        meta.id = id;
        meta.started = true;
        meta.version = version;
        // FORMAT.md: a snapshot's previous_hash is the head at its version.
        meta.head = snapshot.previous_hash;
        Ok(aggregate)
    }

    /// Records `event` (serialised, timestamped, linked and hashed) and
    /// applies it.
    ///
    /// On a discarded aggregate, or one that was never created, the event is
    /// neither recorded nor applied, and the next save fails with
    /// [`Error::Refused`]. If the event cannot be serialised it is likewise
    /// dropped and the save fails with [`Error::Encode`].
    ///
    /// An event that would not replay as recorded is dropped the same way:
    /// one whose topic is the discard topic, or whose data does not decode
    /// back (`serde_json` writes a non-finite float as `null`).
    fn trigger(&mut self, event: Self::Event) {
        let topic = event.topic();
        let meta = self.meta_mut();
        let encode = |out: &mut Vec<u8>| {
            if topic == Self::DISCARDED_TOPIC {
                return Err(json_error(
                    "the topic is reserved for the event that `discard()` records",
                ));
            }
            event.encode(out)?;
            check_decodes::<Self::Event>(topic, out)
        };
        if meta.admit(topic) && meta.record(topic, encode) {
            self.apply(event);
        }
    }

    /// Starts a new aggregate with a fresh random id (UUID v4) and applies
    /// its creation event at version 1.
    #[must_use]
    fn start(event: Self::Event) -> Self {
        Self::start_with_id(Uuid::new_v4(), event)
    }

    /// Starts a new aggregate with the given id and applies its creation
    /// event at version 1.
    #[must_use]
    fn start_with_id(id: Uuid, event: Self::Event) -> Self {
        let mut aggregate = Self::blank(id);
        aggregate.trigger(event);
        aggregate
    }

    /// Rebuilds an aggregate from its recorded events, checking every hash
    /// and link. Returns `Ok(None)` when there are no events.
    ///
    /// The events must be those of one aggregate in version order, starting
    /// at version 1.
    fn replay<I>(id: Uuid, events: I) -> Result<Option<Self>>
    where
        I: IntoIterator<Item = Result<RecordedEvent>>,
    {
        let mut aggregate: Option<Self> = None;
        for event in events {
            aggregate
                .get_or_insert_with(|| Self::blank(id))
                .replay_one(event?)?;
        }
        Ok(aggregate)
    }

    /// The state before the first event is replayed: the default state,
    /// with the given id.
    #[doc(hidden)]
    #[must_use]
    fn blank(id: Uuid) -> Self {
        let mut aggregate = Self::default();
        aggregate.meta_mut().id = id;
        aggregate.meta_mut().started = true;
        aggregate
    }

    /// Applies one recorded event during a rebuild, after checking that it
    /// is the next link of this aggregate's chain.
    fn replay_one(&mut self, recorded: RecordedEvent) -> Result<()> {
        let meta = self.meta_mut();
        meta.check_next(&recorded)?;
        if recorded.topic == Self::DISCARDED_TOPIC {
            meta.advance(&recorded);
            meta.discarded = true;
            return Ok(());
        }
        let decode_error = |source| Error::Decode {
            topic: recorded.topic.to_string(),
            id: recorded.originator_id,
            version: recorded.originator_version,
            source,
        };
        let event = Self::Event::decode(&recorded.topic, &recorded.data)
            .map_err(decode_error)?
            .ok_or_else(|| Error::UnknownTopic {
                aggregate: Self::NAME,
                topic: recorded.topic.to_string(),
                id: recorded.originator_id,
                version: recorded.originator_version,
            })?;
        meta.advance(&recorded);
        self.apply(event);
        Ok(())
    }
}

fn json_error(message: &str) -> serde_json::Error {
    <serde_json::Error as serde::ser::Error>::custom(message)
}

/// Checks that freshly encoded data decodes back. Only data containing
/// `null` can fail to (a non-finite float is written as `null`), so other
/// data skips the second parse.
fn check_decodes<E: Event>(topic: &str, data: &[u8]) -> Result<(), serde_json::Error> {
    if !data.windows(4).any(|window| window == b"null") {
        return Ok(());
    }
    match E::decode(topic, data) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(json_error(
            "the event's topic is not one of its type's topics",
        )),
        Err(e) => Err(json_error(&format!(
            "the event would not replay (a non-finite float is stored as null): {e}"
        ))),
    }
}

/// The bookkeeping `#[aggregate]` adds to an aggregate's struct: id,
/// version, head, discarded flag and the events not yet saved.
///
/// Two `Meta`s are equal when id, version, head and the discarded flag are
/// equal: pending events are not state, so an aggregate rebuilt from its
/// stored events equals the live one it was saved from.
#[derive(Clone, Default)]
pub struct Meta {
    id: Uuid,
    version: u64,
    head: Hash,
    started: bool,
    discarded: bool,
    pending: Vec<RecordedEvent>,
    fault: Option<Fault>,
}

/// Why an event was dropped at trigger time; reported by the next save.
#[derive(Clone, Debug)]
enum Fault {
    Refused {
        topic: &'static str,
        state: &'static str,
    },
    Encode {
        topic: &'static str,
        message: String,
    },
}

impl Meta {
    /// Whether an event may be recorded now; if not, remembers why.
    fn admit(&mut self, topic: &'static str) -> bool {
        let state = if self.discarded {
            "discarded"
        } else if self.started {
            return true;
        } else {
            "not created"
        };
        if self.fault.is_none() {
            self.fault = Some(Fault::Refused { topic, state });
        }
        false
    }

    /// Serialises, stamps, links and hashes the next event, and adds it to
    /// the pending list. Returns false (and remembers why) if encoding failed.
    fn record(
        &mut self,
        topic: &'static str,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), serde_json::Error>,
    ) -> bool {
        let mut data = Vec::with_capacity(64);
        if let Err(e) = encode(&mut data) {
            if self.fault.is_none() {
                self.fault = Some(Fault::Encode {
                    topic,
                    message: e.to_string(),
                });
            }
            return false;
        }
        let recorded = RecordedEvent::new(
            self.id,
            self.version + 1,
            Cow::Borrowed(topic),
            now_micros(),
            self.head,
            data,
        );
        self.advance(&recorded);
        self.pending.push(recorded);
        true
    }

    /// Moves version and head on to `recorded`.
    fn advance(&mut self, recorded: &RecordedEvent) {
        self.version = recorded.originator_version;
        self.head = recorded.event_hash;
    }

    /// Checks that `recorded` is the next link of this aggregate's chain.
    fn check_next(&self, recorded: &RecordedEvent) -> Result<()> {
        let fault = if recorded.originator_id != self.id {
            Some(IntegrityFault::WrongOriginator)
        } else if recorded.originator_version != self.version + 1 {
            Some(IntegrityFault::VersionGap)
        } else if recorded.previous_hash != self.head {
            Some(IntegrityFault::BrokenLink)
        } else {
            None
        };
        if let Some(fault) = fault {
            return Err(Error::Integrity {
                id: self.id,
                version: recorded.originator_version,
                fault,
            });
        }
        recorded.check_hash()
    }

    /// The fault recorded at trigger time, as the error a save reports.
    pub(crate) fn check_fault(&self) -> Result<()> {
        match &self.fault {
            None => Ok(()),
            Some(Fault::Refused { topic, state }) => Err(Error::Refused {
                topic,
                id: self.id,
                state,
            }),
            Some(Fault::Encode { topic, message }) => Err(Error::Encode {
                topic,
                id: self.id,
                source: <serde_json::Error as serde::de::Error>::custom(message),
            }),
        }
    }

    /// The pending events, if no trigger failed.
    pub(crate) fn pending_checked(&self) -> Result<&[RecordedEvent]> {
        self.check_fault()?;
        Ok(&self.pending)
    }

    /// Forgets the pending events after they were stored.
    pub(crate) fn clear_pending(&mut self) {
        self.pending.clear();
    }

    fn take_pending(&mut self) -> Result<Vec<RecordedEvent>> {
        self.check_fault()?;
        Ok(std::mem::take(&mut self.pending))
    }
}

impl PartialEq for Meta {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.version == other.version
            && self.head == other.head
            && self.discarded == other.discarded
    }
}

impl Eq for Meta {}

impl std::hash::Hash for Meta {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
        self.version.hash(state);
        self.head.hash(state);
    }
}

impl fmt::Debug for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Meta")
            .field("id", &self.id)
            .field("version", &self.version)
            .field("head", &format_args!("{}", self.head))
            .field("discarded", &self.discarded)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}
