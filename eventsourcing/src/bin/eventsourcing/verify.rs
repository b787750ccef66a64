//! `verify`: every aggregate's hash chain and every record's hash, its
//! snapshots' included.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use eventsourcing::json::json;
use eventsourcing::recorder::EventQuery;
use eventsourcing::{Chain, EventStore, Hash, RecordedEvent, Uuid};

use crate::failure::{Failure, Kind};
use crate::output::Output;
use crate::progress;
use crate::store::{Open, Store, StoreArgs};

/// `verify`'s arguments: none beyond the store's.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Lists the aggregates from the notification log, then reads each one's
/// events in version order and checks its chain, then its snapshots;
/// stops at the first fault (exit 1, naming the aggregate and version).
pub(crate) fn run(store: &StoreArgs, _args: &Args, out: &mut Output) -> Result<(), Failure> {
    let store = store.open(Open::Existing)?;
    let mut ids = Vec::new();
    let mut seen = HashSet::new();
    let mut rows = 0_u64;
    store.scan(1, |notification| {
        rows += 1;
        if seen.insert(notification.originator_id) {
            ids.push(notification.originator_id);
        }
        Ok(true)
    })?;

    let bar = progress::bar(rows, "verifying", out.is_json());
    let mut events = 0_u64;
    let mut checked = Vec::with_capacity(ids.len());
    let mut snapshots = 0;
    for id in ids {
        let mut hashes = Vec::new();
        let checked_one = check_chain(&store, id, &mut |event| {
            hashes.push(event.event_hash);
            events += 1;
            bar.inc(1);
        })
        .and_then(|chain| {
            snapshots += check_snapshots(&store, id, &hashes)?;
            Ok(chain)
        });
        match checked_one {
            Ok(chain) => checked.push(chain),
            Err(failure) => {
                bar.abandon();
                return Err(failure);
            }
        }
    }
    bar.finish_and_clear();
    let aggregates = checked.len();
    out.either(
        || {
            json!({
                "ok": true,
                "aggregates": aggregates,
                "events": events,
                "snapshots": snapshots,
            })
        },
        || {
            format!(
                "ok: {aggregates} aggregates, {events} events and {snapshots} snapshots verified"
            )
        },
    )
}

/// Checks every snapshot of aggregate `id`: its hash matches its record,
/// and its head is the hash of the event at its version (`hashes[v - 1]`,
/// from the chain just checked). Returns how many there are.
fn check_snapshots(store: &Store, id: Uuid, hashes: &[Hash]) -> Result<usize, Failure> {
    let snapshots = EventStore::new(store.mapper.clone(), Arc::clone(&store.recorder))
        .snapshots(id)
        .map_err(|e| store.failure(e))?;
    for snapshot in &snapshots {
        let version = snapshot.originator_version;
        let broken = |reason: &str| {
            Failure::verification(
                id,
                version,
                format!("aggregate {id} has a broken snapshot at version {version}: {reason}"),
            )
        };
        if snapshot.check_hash().is_err() {
            return Err(broken("its hash does not match its record"));
        }
        let event = usize::try_from(version)
            .ok()
            .and_then(|v| v.checked_sub(1))
            .and_then(|index| hashes.get(index));
        match event {
            None => return Err(broken("there is no event at its version")),
            Some(hash) if *hash != snapshot.head => {
                return Err(broken(
                    "its head is not the hash of the event at its version",
                ));
            }
            Some(_) => {}
        }
    }
    Ok(snapshots.len())
}

/// Checks the chain of aggregate `id`, calling `each` after each event
/// that checks out; returns where the chain ends.
fn check_chain(
    store: &Store,
    id: Uuid,
    each: &mut dyn FnMut(&RecordedEvent),
) -> Result<Chain, Failure> {
    let mut chain = Chain::new(id);
    let result = store
        .recorder
        .select_events(&EventQuery::new(id), &mut |row| {
            let event = store.mapper.decode(row.to_owned())?;
            chain.check_next(&event)?;
            each(&event);
            Ok(ControlFlow::Continue(()))
        });
    match result {
        Ok(()) => Ok(chain),
        Err(error) => {
            let failure = store.failure(error);
            if failure.kind == Kind::Verification {
                Err(Failure {
                    message: format!(
                        "aggregate {id} is broken at version {}: {}",
                        failure.at.map_or(0, |(_, version)| version),
                        failure.message
                    ),
                    ..failure
                })
            } else {
                Err(failure)
            }
        }
    }
}
