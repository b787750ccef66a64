//! Rebuilding aggregates: from their first event, or from a snapshot and
//! the events after it. Every event goes through the aggregate's
//! [`Chain`] before its body runs.

use std::cmp::Ordering;

use uuid::Uuid;

use crate::domain::{
    Aggregate, Bookkeeping, Chain, Event, EventView, JsonObject, Meta, RecordedEvent, Snapshot,
};
use crate::error::{Error, Result};
use crate::format::split_topic;

/// Rebuilds an aggregate from its first recorded event: checks that it
/// starts the chain of `id`, then builds the aggregate from it (its
/// creation method returning `Self`), or applies it to the blank state.
/// [`Error::Unconstructible`] when the type has neither.
pub(crate) fn replay_first<A: Aggregate>(id: Uuid, recorded: &EventView<'_>) -> Result<A> {
    let mut chain = Chain::new(id);
    chain.check_next_view(recorded)?;
    if recorded.topic == A::FORGOTTEN_TOPIC {
        return Err(Error::Forgotten { id });
    }
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
    let mut meta = Meta::started(Chain::new(id));
    meta.replayed(chain, recorded.timestamp);
    first::<A>(meta, event, Apply::Replaying)
}

/// Starts a new aggregate from its creation event, as a live trigger does:
/// records the event, then builds the aggregate from it or applies it to
/// the blank state. [`Error::Unconstructible`] when the type has neither.
pub(crate) fn start<A: Aggregate>(id: Uuid, event: A::Event) -> Result<A> {
    let mut meta = Meta::started(Chain::new(id));
    let apply = if record_event::<A>(&mut meta, event.topic(), &event) {
        Apply::Live
    } else {
        Apply::Not
    };
    first::<A>(meta, event, apply)
}

/// Whether, and how, the creation event's body runs on the blank state.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Apply {
    /// Live: the event was just recorded.
    Live,
    /// To replay a stored event.
    Replaying,
    /// Not at all: the event was refused at trigger time.
    Not,
}

/// The aggregate of the creation event `event`, with bookkeeping `meta`:
/// built from the event (a creation method returning `Self`), or the blank
/// state with the event applied to it.
fn first<A: Aggregate>(meta: Meta, event: A::Event, apply: Apply) -> Result<A> {
    let topic = event.topic();
    let event = match A::__new(event) {
        Ok(mut aggregate) => {
            *aggregate.meta_mut() = meta;
            return Ok(aggregate);
        }
        Err(event) => event,
    };
    let id = meta.id();
    let Some(mut aggregate) = <A as Bookkeeping>::blank() else {
        return Err(Error::Unconstructible {
            aggregate: A::NAME,
            id,
        });
    };
    *aggregate.meta_mut() = meta;
    if apply != Apply::Not {
        aggregate
            .meta_mut()
            .applying(topic, apply == Apply::Replaying);
        aggregate.apply(event);
        aggregate.meta_mut().applied();
    }
    Ok(aggregate)
}

/// Applies an event just recorded on `aggregate` (its last pending event)
/// as replay would, to a fresh copy of the state before it, as well as
/// live; when the two states differ, the aggregate remembers that its
/// body is not deterministic, and its next save fails. The copy is made
/// through the state's snapshot codec, so what is compared is the state
/// that snapshots store (a list compared regardless of order, since a
/// hash set's order differs between two equal sets).
pub(crate) fn apply_checked<A: Aggregate>(aggregate: &mut A, topic: &'static str, event: A::Event) {
    let copy = check_copy(aggregate);
    aggregate.apply(event);
    aggregate.meta_mut().applied();
    let Some((mut copy, recorded)) = copy else {
        return;
    };
    let Ok(Some(again)) = A::Event::decode(&recorded.topic, &recorded.data) else {
        return;
    };
    copy.apply(again);
    copy.meta_mut().applied();
    if !same_state(aggregate, &copy) {
        let version = recorded.originator_version;
        aggregate.meta_mut().non_deterministic(topic, version);
    }
}

/// A copy of `aggregate`'s state before its last pending event, with its
/// bookkeeping as that event's body sees it, and that event; `None` when
/// the state cannot be encoded and decoded.
fn check_copy<A: Aggregate>(aggregate: &A) -> Option<(A, RecordedEvent)> {
    let mut state = Vec::new();
    aggregate.encode_state(&mut state).ok()?;
    let mut copy = A::decode_state(&state).ok()?;
    *copy.meta_mut() = aggregate.meta().clone();
    let recorded = aggregate.meta().pending().last()?.clone();
    Some((copy, recorded))
}

/// Whether two aggregates' states, as snapshots store them, are equal,
/// lists compared as multisets.
fn same_state<A: Aggregate>(one: &A, other: &A) -> bool {
    let encode = |aggregate: &A| {
        let mut out = Vec::new();
        aggregate.encode_state(&mut out).ok()?;
        serde_json::from_slice::<serde_json::Value>(&out).ok()
    };
    match (encode(one), encode(other)) {
        (Some(a), Some(b)) => canonical(a) == canonical(b),
        _ => true,
    }
}

/// `value` with every list sorted (by its JSON text), for comparing
/// regardless of order.
fn canonical(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Array(items) => {
            let mut items: Vec<Value> = items.into_iter().map(canonical).collect();
            items.sort_by_cached_key(Value::to_string);
            Value::Array(items)
        }
        Value::Object(members) => Value::Object(
            members
                .into_iter()
                .map(|(k, v)| (k, canonical(v)))
                .collect(),
        ),
        other => other,
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
        if topic == A::DISCARDED_TOPIC || topic == A::FORGOTTEN_TOPIC {
            return Err(json_error(
                "the topic is reserved for the event that `discard()` or forgetting records",
            ));
        }
        event.encode(out)?;
        check_decodes::<A::Event>(topic, out)
    };
    meta.admit(topic) && meta.record(topic, encode)
}

/// Checks that `recorded` is the next link of the aggregate's chain, then
/// applies it (or marks the aggregate discarded).
pub(crate) fn replay_next<A: Aggregate>(aggregate: &mut A, recorded: &EventView<'_>) -> Result<()> {
    let meta = aggregate.meta_mut();
    // Checked against a copy: the chain moves only once the event is known
    // to decode, so a failed replay leaves the aggregate as it was.
    let mut chain = meta.chain();
    chain.check_next_view(recorded)?;
    if recorded.topic == A::FORGOTTEN_TOPIC {
        return Err(Error::Forgotten {
            id: recorded.originator_id,
        });
    }
    if recorded.topic == A::DISCARDED_TOPIC {
        meta.replayed(chain, recorded.timestamp);
        meta.mark_discarded();
        return Ok(());
    }
    let event = decode::<A>(recorded)?;
    let topic = event.topic();
    let meta = aggregate.meta_mut();
    meta.replayed(chain, recorded.timestamp);
    meta.applying(topic, true);
    aggregate.apply(event);
    aggregate.meta_mut().applied();
    Ok(())
}

/// The aggregate's event that `recorded` holds.
fn decode<A: Aggregate>(recorded: &EventView<'_>) -> Result<A::Event> {
    let decode_error = |source| Error::Decode {
        topic: recorded.topic.to_string(),
        id: recorded.originator_id,
        version: recorded.originator_version,
        source,
    };
    A::Event::decode(recorded.topic, recorded.data)
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
    // When its event was recorded is not in the snapshot: loading reads that
    // event again, and says.
    let meta = aggregate.meta_mut();
    *meta = Meta::started(Chain::resume(id, version, snapshot.head));
    meta.set_recorded_at(snapshot.timestamp);
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
