//! `verify`: every aggregate's hash chain and every record's hash.

use std::collections::HashSet;
use std::ops::ControlFlow;

use eventsourcing::json::json;
use eventsourcing::recorder::EventQuery;
use eventsourcing::{Chain, Uuid};

use crate::failure::{Failure, Kind};
use crate::output::Output;
use crate::progress;
use crate::store::{Open, StoreArgs};

/// `verify`'s arguments: none beyond the store's.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Lists the aggregates from the notification log, then reads each one's
/// events in version order and checks its chain; stops at the first fault
/// (exit 1, naming the aggregate and version).
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
    for id in ids {
        let head = check_chain(&store, id, &mut |_| {
            events += 1;
            bar.inc(1);
        });
        match head {
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
        || json!({ "ok": true, "aggregates": aggregates, "events": events }),
        || format!("ok: {aggregates} aggregates, {events} events verified"),
    )
}

/// Checks the chain of aggregate `id`, calling `each` after each event
/// that checks out; returns where the chain ends.
pub(crate) fn check_chain(
    store: &crate::store::Store,
    id: Uuid,
    each: &mut dyn FnMut(u64),
) -> Result<Chain, Failure> {
    let mut chain = Chain::new(id);
    let result = store
        .recorder
        .select_events(&EventQuery::new(id), &mut |row| {
            let event = store.mapper.decode(row)?;
            chain.check_next(&event)?;
            each(event.originator_version);
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
