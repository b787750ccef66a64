//! The bookkeeping every aggregate carries in the hidden field that
//! `#[aggregate]` adds: where its hash chain stands, whether it is live,
//! and the events recorded since it was last saved.

use std::borrow::Cow;
use std::fmt;

use uuid::Uuid;

use crate::domain::{Chain, RecordedEvent};
use crate::error::{Error, Result};
use crate::format::{Hash, now_micros};

/// The bookkeeping `#[aggregate]` adds to an aggregate's struct: the
/// aggregate's chain (id, version, head), whether it was discarded, and the
/// events not yet saved.
///
/// Two `Meta`s are equal when id, version, head and the discarded flag are
/// equal: pending events are not state, so an aggregate rebuilt from its
/// stored events equals the live one it was saved from.
#[derive(Clone, Default)]
pub struct Meta {
    chain: Chain,
    started: bool,
    discarded: bool,
    pending: Vec<RecordedEvent>,
    fault: Option<Fault>,
    /// The topic of the event whose body is running, if one is.
    applying: Option<&'static str>,
    /// Whether that body runs to replay a stored event (else it runs for an
    /// event just triggered).
    replaying: bool,
    /// When the last event was recorded (the one being applied, during its
    /// body), in microseconds since the Unix epoch.
    recorded_at: i64,
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
    Reentrant {
        topic: &'static str,
        during: &'static str,
    },
    NonDeterministic {
        topic: &'static str,
        version: u64,
    },
}

impl Meta {
    /// The bookkeeping of a live aggregate about to replay or record from
    /// `chain`.
    pub(crate) fn started(chain: Chain) -> Meta {
        Meta {
            chain,
            started: true,
            ..Meta::default()
        }
    }

    pub(crate) fn id(&self) -> Uuid {
        self.chain.id()
    }

    pub(crate) fn version(&self) -> u64 {
        self.chain.version()
    }

    pub(crate) fn head(&self) -> Hash {
        self.chain.head()
    }

    pub(crate) fn is_discarded(&self) -> bool {
        self.discarded
    }

    /// Where the aggregate's chain stands.
    pub(crate) fn chain(&self) -> Chain {
        self.chain
    }

    pub(crate) fn recorded_at(&self) -> i64 {
        self.recorded_at
    }

    /// Moves the bookkeeping on to a replayed event: `chain` has checked
    /// it, and it was recorded at `timestamp`.
    pub(crate) fn replayed(&mut self, chain: Chain, timestamp: i64) {
        self.chain = chain;
        self.recorded_at = timestamp;
    }

    pub(crate) fn set_recorded_at(&mut self, timestamp: i64) {
        self.recorded_at = timestamp;
    }

    /// Remembers that replaying the event at `version` gave another state
    /// than applying it live; the next save reports it.
    pub(crate) fn non_deterministic(&mut self, topic: &'static str, version: u64) {
        if self.fault.is_none() {
            self.fault = Some(Fault::NonDeterministic { topic, version });
        }
    }

    pub(crate) fn mark_discarded(&mut self) {
        self.discarded = true;
    }

    /// Whether an event may be recorded now; if not, remembers why.
    ///
    /// An event triggered while another event's body runs is never
    /// recorded: its effects belong to the event being applied, and
    /// recording it would put a second event inside the first one's
    /// version, which replay could not follow. Triggered live, it fails
    /// the next save ([`Error::Reentrant`]); triggered while a stored event
    /// is replayed (a history written before this rule), it is passed over,
    /// because the stored history holds it as an event of its own.
    ///
    /// Once an event was refused or could not be encoded, no later event is
    /// recorded either: the aggregate stays as it was when that happened,
    /// and the next save reports the first fault, rather than later events
    /// being applied on top of one that was dropped.
    pub(crate) fn admit(&mut self, topic: &'static str) -> bool {
        if let Some(during) = self.applying {
            if !self.replaying && self.fault.is_none() {
                self.fault = Some(Fault::Reentrant { topic, during });
            }
            return false;
        }
        if self.fault.is_some() {
            return false;
        }
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
    pub(crate) fn record(
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
            self.chain.id(),
            self.chain.version() + 1,
            Cow::Borrowed(topic),
            now_micros(),
            self.chain.head(),
            data,
        );
        self.chain.advance(&recorded);
        self.recorded_at = recorded.timestamp;
        self.pending.push(recorded);
        true
    }

    /// Marks the body of the event `topic` as running (`replaying` when it
    /// replays a stored event), until [`Meta::applied`].
    pub(crate) fn applying(&mut self, topic: &'static str, replaying: bool) {
        self.applying = Some(topic);
        self.replaying = replaying;
    }

    /// Marks the running event body as finished.
    pub(crate) fn applied(&mut self) {
        self.applying = None;
        self.replaying = false;
    }

    /// The fault recorded at trigger time, as the error a save reports.
    pub(crate) fn check_fault(&self) -> Result<()> {
        match &self.fault {
            None => Ok(()),
            Some(Fault::Refused { topic, state }) => Err(Error::Refused {
                topic,
                id: self.chain.id(),
                state,
            }),
            Some(Fault::Encode { topic, message }) => Err(Error::Encode {
                topic,
                id: self.chain.id(),
                source: <serde_json::Error as serde::de::Error>::custom(message),
            }),
            Some(Fault::Reentrant { topic, during }) => Err(Error::Reentrant {
                topic,
                during,
                id: self.chain.id(),
            }),
            Some(Fault::NonDeterministic { topic, version }) => Err(Error::NonDeterministic {
                topic,
                id: self.chain.id(),
                version: *version,
            }),
        }
    }

    /// The events recorded since the last save.
    pub(crate) fn pending(&self) -> &[RecordedEvent] {
        &self.pending
    }

    /// The pending events, if no trigger failed.
    pub(crate) fn pending_checked(&self) -> Result<&[RecordedEvent]> {
        self.check_fault()?;
        Ok(&self.pending)
    }

    /// Forgets the pending events after they were stored; `head` is the
    /// hash of the last one as stored, when stamping metadata changed it.
    pub(crate) fn clear_pending(&mut self, head: Option<Hash>) {
        self.pending.clear();
        if let Some(head) = head {
            self.chain = Chain::resume(self.chain.id(), self.chain.version(), head);
        }
    }

    /// Takes the pending events out, if no trigger failed.
    pub(crate) fn take_pending(&mut self) -> Result<Vec<RecordedEvent>> {
        self.check_fault()?;
        Ok(std::mem::take(&mut self.pending))
    }
}

impl PartialEq for Meta {
    fn eq(&self, other: &Self) -> bool {
        self.chain == other.chain && self.discarded == other.discarded
    }
}

impl Eq for Meta {}

impl std::hash::Hash for Meta {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.chain.id().hash(state);
        self.chain.version().hash(state);
        self.chain.head().hash(state);
    }
}

impl fmt::Debug for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Meta")
            .field("id", &self.chain.id())
            .field("version", &self.chain.version())
            .field("head", &format_args!("{}", self.chain.head()))
            .field("discarded", &self.discarded)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}
