//! Rebuilding aggregates: from their first event, or from a snapshot and
//! the events after it. Every event goes through the aggregate's
//! [`Chain`] before its body runs.

use std::cmp::Ordering;

use uuid::Uuid;

use crate::domain::{
    Aggregate, Bookkeeping, Chain, Event, JsonObject, Meta, RecordedEvent, Snapshot,
};
use crate::error::{Error, Result};
use crate::format::split_topic;

/// Rebuilds an aggregate from its first recorded event: checks that it
/// starts the chain of `id`, then builds the aggregate from it (its
/// creation method returning `Self`), or applies it to the blank state.
/// [`Error::Unconstructible`] when the type has neither.
pub(crate) fn replay_first<A: Aggregate>(id: Uuid, recorded: &RecordedEvent) -> Result<A> {
    let mut chain = Chain::new(id);
    chain.check_next(recorded)?;
    if recorded.topic == A::DISCARDED_TOPIC {
        // A history cannot begin with its end: no creation event.
        return Err(Error::UnknownTopic {
            aggregate: A::NAME,
            topic: recorded.topic.to_string(),
            id,
            version: recorded.originator_version,
        });
    }
    let event = decode::<A>(recorded)?;
    let topic = event.topic();
    match A::__new(event) {
        Ok(mut aggregate) => {
            *aggregate.meta_mut() = Meta::started(chain);
            Ok(aggregate)
        }
        Err(event) => {
            let Some(mut aggregate) = <A as Bookkeeping>::blank() else {
                return Err(Error::Unconstructible {
                    aggregate: A::NAME,
                    id,
                });
            };
            let meta = aggregate.meta_mut();
            *meta = Meta::started(chain);
            meta.applying(topic, true);
            aggregate.apply(event);
            aggregate.meta_mut().applied();
            Ok(aggregate)
        }
    }
}

/// Starts a new aggregate from its creation event, as a live trigger does:
/// records the event, then builds the aggregate from it or applies it to
/// the blank state. [`Error::Unconstructible`] when the type has neither.
pub(crate) fn start<A: Aggregate>(id: Uuid, event: A::Event) -> Result<A> {
    let topic = event.topic();
    let mut meta = Meta::started(Chain::new(id));
    let recorded = record_event::<A>(&mut meta, topic, &event);
    match A::__new(event) {
        Ok(mut aggregate) => {
            *aggregate.meta_mut() = meta;
            Ok(aggregate)
        }
        Err(event) => {
            let Some(mut aggregate) = <A as Bookkeeping>::blank() else {
                return Err(Error::Unconstructible {
                    aggregate: A::NAME,
                    id,
                });
            };
            *aggregate.meta_mut() = meta;
            if recorded {
                aggregate.meta_mut().applying(topic, false);
                aggregate.apply(event);
                aggregate.meta_mut().applied();
            }
            Ok(aggregate)
        }
    }
}

/// Records `event` in `meta` (serialised, stamped, linked, hashed), unless
/// it is refused or cannot be encoded (then `meta` remembers why). Returns
/// whether it was recorded.
pub(crate) fn record_event<A: Aggregate>(
    meta: &mut Meta,
    topic: &'static str,
    event: &A::Event,
) -> bool {
    let encode = |out: &mut Vec<u8>| {
        if topic == A::DISCARDED_TOPIC {
            return Err(json_error(
                "the topic is reserved for the event that `discard()` records",
            ));
        }
        event.encode(out)?;
        check_decodes::<A::Event>(topic, out)
    };
    meta.admit(topic) && meta.record(topic, encode)
}

/// Checks that `recorded` is the next link of the aggregate's chain, then
/// applies it (or marks the aggregate discarded).
pub(crate) fn replay_next<A: Aggregate>(aggregate: &mut A, recorded: &RecordedEvent) -> Result<()> {
    let meta = aggregate.meta_mut();
    // Checked against a copy: the chain moves only once the event is known
    // to decode, so a failed replay leaves the aggregate as it was.
    let mut chain = *meta.chain_mut();
    chain.check_next(recorded)?;
    if recorded.topic == A::DISCARDED_TOPIC {
        *meta.chain_mut() = chain;
        meta.mark_discarded();
        return Ok(());
    }
    let event = decode::<A>(recorded)?;
    let topic = event.topic();
    let meta = aggregate.meta_mut();
    *meta.chain_mut() = chain;
    meta.applying(topic, true);
    aggregate.apply(event);
    aggregate.meta_mut().applied();
    Ok(())
}

/// The aggregate's event that `recorded` holds.
fn decode<A: Aggregate>(recorded: &RecordedEvent) -> Result<A::Event> {
    let decode_error = |source| Error::Decode {
        topic: recorded.topic.to_string(),
        id: recorded.originator_id,
        version: recorded.originator_version,
        source,
    };
    A::Event::decode(&recorded.topic, &recorded.data)
        .map_err(decode_error)?
        .ok_or_else(|| Error::UnknownTopic {
            aggregate: A::NAME,
            topic: recorded.topic.to_string(),
            id: recorded.originator_id,
            version: recorded.originator_version,
        })
}

/// Rebuilds an aggregate from a snapshot record, checking its hash and
/// topic and upcasting old state data step by step. The events after the
/// snapshot are then replayed with [`replay_next`], the first of which must
/// link to the snapshot's head.
pub(crate) fn restore<A: Aggregate>(snapshot: &Snapshot) -> Result<A> {
    snapshot.check_hash()?;
    let id = snapshot.originator_id;
    let version = snapshot.originator_version;
    let unknown = || Error::UnknownTopic {
        aggregate: A::NAME,
        topic: snapshot.topic.clone(),
        id,
        version,
    };
    let stored_version = match split_topic(&snapshot.topic) {
        Some((base, v)) if base == A::NAME => v,
        _ => return Err(unknown()),
    };
    let decode_error = |source| Error::Decode {
        topic: snapshot.topic.clone(),
        id,
        version,
        source,
    };
    let mut aggregate = match stored_version.cmp(&A::STATE_VERSION) {
        Ordering::Equal => A::decode_state(&snapshot.data).map_err(decode_error)?,
        Ordering::Less => {
            let mut state: JsonObject =
                serde_json::from_slice(&snapshot.data).map_err(decode_error)?;
            for from in stored_version..A::STATE_VERSION {
                if !A::upcast_state(from, &mut state) {
                    return Err(Error::Upcast {
                        topic: snapshot.topic.clone(),
                        id,
                        version,
                        from,
                    });
                }
            }
            let data = serde_json::to_vec(&state).map_err(decode_error)?;
            A::decode_state(&data).map_err(decode_error)?
        }
        Ordering::Greater => return Err(unknown()),
    };
    // FORMAT.md: a snapshot's previous_hash is the head at its version.
    *aggregate.meta_mut() = Meta::started(Chain::resume(id, version, snapshot.head));
    Ok(aggregate)
}

pub(crate) fn json_error(message: &str) -> serde_json::Error {
    <serde_json::Error as serde::ser::Error>::custom(message)
}

/// Checks that freshly encoded data decodes back. Only data containing
/// `null` can fail to (a non-finite float is written as `null`), so other
/// data skips the second parse.
pub(crate) fn check_decodes<E: Event>(topic: &str, data: &[u8]) -> Result<(), serde_json::Error> {
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
