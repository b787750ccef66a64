//! The hash chain of one aggregate, checked in one place.
//!
//! Every rule that makes an aggregate's history tamper-evident is here:
//! versions 1, 2, 3, ... without gaps, each record's hash recomputed from
//! its bytes, each `previous_hash` equal to the hash before it, every
//! record of the one aggregate. Replay, loading after a snapshot,
//! [`EventStore::verify`](crate::EventStore::verify) and the test harness
//! all go through [`Chain`].

use uuid::Uuid;

use crate::domain::{EventView, RecordedEvent};
use crate::error::{Error, IntegrityFault, Result};
use crate::format::Hash;

/// Where an aggregate's hash chain stands: its id, the version of its last
/// event and that event's hash (the head).
///
/// ```
/// use eventsourcing::{Chain, Hash, RecordedEvent, Uuid};
///
/// let id = Uuid::new_v4();
/// let first = RecordedEvent::new(id, 1, "Cat.Born".into(), 0, Hash::ZERO, b"{}".to_vec());
/// let second = RecordedEvent::new(id, 2, "Cat.Fed".into(), 1, first.event_hash, b"{}".to_vec());
///
/// let mut chain = Chain::new(id);
/// chain.check_next(&first)?;
/// chain.check_next(&second)?;
/// assert_eq!((chain.version(), chain.head()), (2, second.event_hash));
///
/// // The same event again is not the next link.
/// assert!(chain.check_next(&second).is_err());
/// # Ok::<(), eventsourcing::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Chain {
    id: Uuid,
    version: u64,
    head: Hash,
}

impl Chain {
    /// The chain of aggregate `id` before its first event: version 0, head
    /// [`Hash::ZERO`].
    #[must_use]
    pub const fn new(id: Uuid) -> Chain {
        Chain {
            id,
            version: 0,
            head: Hash::ZERO,
        }
    }

    /// The chain of aggregate `id` as it stood after the event at `version`
    /// whose hash is `head`: where a snapshot, or a prefix already checked,
    /// leaves it.
    #[must_use]
    pub const fn resume(id: Uuid, version: u64, head: Hash) -> Chain {
        Chain { id, version, head }
    }

    /// The aggregate whose chain this is.
    #[must_use]
    pub const fn id(&self) -> Uuid {
        self.id
    }

    /// The version of the last event checked (0 before the first).
    #[must_use]
    pub const fn version(&self) -> u64 {
        self.version
    }

    /// The hash of the last event checked: the aggregate's head.
    #[must_use]
    pub const fn head(&self) -> Hash {
        self.head
    }

    /// Checks that `event` is the next link of this chain (same aggregate,
    /// the next version, linked to the head, its hash matching its bytes)
    /// and moves the chain on to it.
    ///
    /// [`Error::Integrity`] names the aggregate, the version and the fault;
    /// the chain does not move then.
    pub fn check_next(&mut self, event: &RecordedEvent) -> Result<()> {
        self.check_next_view(&event.view())
    }

    /// [`Chain::check_next`] of a borrowed record.
    pub(crate) fn check_next_view(&mut self, event: &EventView<'_>) -> Result<()> {
        let fault = if event.originator_id != self.id {
            Some(IntegrityFault::WrongOriginator)
        } else if Some(event.originator_version) != self.version.checked_add(1) {
            Some(IntegrityFault::VersionGap)
        } else if event.previous_hash != self.head {
            Some(IntegrityFault::BrokenLink)
        } else {
            None
        };
        self.fail_on(fault, event.originator_version)?;
        event.check_hash()?;
        self.version = event.originator_version;
        self.head = event.event_hash;
        Ok(())
    }

    /// Checks that `event` is the event this chain stands on: the one at
    /// its version, authentic, with the head as its hash. This is how a
    /// snapshot is tied to the events: the event at the snapshot's version
    /// is read again and must be the snapshot's head.
    pub fn check_head(&self, event: &RecordedEvent) -> Result<()> {
        self.check_head_view(&event.view())
    }

    /// [`Chain::check_head`] of a borrowed record.
    pub(crate) fn check_head_view(&self, event: &EventView<'_>) -> Result<()> {
        let fault = if event.originator_id != self.id {
            Some(IntegrityFault::WrongOriginator)
        } else if event.originator_version != self.version {
            Some(IntegrityFault::VersionGap)
        } else {
            None
        };
        self.fail_on(fault, self.version)?;
        event.check_hash()?;
        self.fail_on(
            (event.event_hash != self.head).then_some(IntegrityFault::BrokenLink),
            self.version,
        )
    }

    /// Moves the chain on to an event built on it (by the aggregate that
    /// just recorded it, so known to fit).
    pub(crate) fn advance(&mut self, event: &RecordedEvent) {
        self.version = event.originator_version;
        self.head = event.event_hash;
    }

    fn fail_on(&self, fault: Option<IntegrityFault>, version: u64) -> Result<()> {
        match fault {
            None => Ok(()),
            Some(fault) => Err(Error::Integrity {
                id: self.id,
                version,
                fault,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: Uuid, version: u64, previous: Hash) -> RecordedEvent {
        RecordedEvent::new(id, version, "T.E".into(), 0, previous, b"{}".to_vec())
    }

    fn fault(result: Result<()>) -> (u64, IntegrityFault) {
        match result {
            Err(Error::Integrity { version, fault, .. }) => (version, fault),
            other => panic!("expected an integrity error, got {other:?}"),
        }
    }

    #[test]
    fn each_fault_is_named_and_the_chain_stays_put() {
        let id = Uuid::from_u128(1);
        let first = event(id, 1, Hash::ZERO);
        let mut chain = Chain::new(id);
        chain.check_next(&first).unwrap();
        let before = chain;

        let other = event(Uuid::from_u128(2), 2, first.event_hash);
        assert_eq!(
            fault(chain.check_next(&other)),
            (2, IntegrityFault::WrongOriginator)
        );
        let gap = event(id, 3, first.event_hash);
        assert_eq!(
            fault(chain.check_next(&gap)),
            (3, IntegrityFault::VersionGap)
        );
        let unlinked = event(id, 2, Hash::ZERO);
        assert_eq!(
            fault(chain.check_next(&unlinked)),
            (2, IntegrityFault::BrokenLink)
        );
        let mut tampered = event(id, 2, first.event_hash);
        tampered.data = b"{\"x\":1}".to_vec();
        assert_eq!(
            fault(chain.check_next(&tampered)),
            (2, IntegrityFault::HashMismatch)
        );
        assert_eq!(chain, before);

        let second = event(id, 2, first.event_hash);
        chain.check_next(&second).unwrap();
        assert_eq!((chain.version(), chain.head()), (2, second.event_hash));
    }

    #[test]
    fn the_version_cannot_overflow() {
        let id = Uuid::from_u128(1);
        let mut chain = Chain::resume(id, u64::MAX, Hash::ZERO);
        let next = event(id, 0, Hash::ZERO);
        assert_eq!(
            fault(chain.check_next(&next)),
            (0, IntegrityFault::VersionGap)
        );
    }

    #[test]
    fn check_head_ties_a_chain_to_the_event_it_stands_on() {
        let id = Uuid::from_u128(1);
        let first = event(id, 1, Hash::ZERO);
        let chain = Chain::resume(id, 1, first.event_hash);
        chain.check_head(&first).unwrap();
        let wrong_head = Chain::resume(id, 1, Hash([7; 32]));
        assert_eq!(
            fault(wrong_head.check_head(&first)),
            (1, IntegrityFault::BrokenLink)
        );
        let later = Chain::resume(id, 2, first.event_hash);
        assert_eq!(
            fault(later.check_head(&first)),
            (2, IntegrityFault::VersionGap)
        );
        let elsewhere = Chain::resume(Uuid::from_u128(3), 1, first.event_hash);
        assert_eq!(
            fault(elsewhere.check_head(&first)),
            (1, IntegrityFault::WrongOriginator)
        );
        let mut tampered = first.clone();
        tampered.timestamp = 5;
        assert_eq!(
            fault(chain.check_head(&tampered)),
            (1, IntegrityFault::HashMismatch)
        );
    }
}
