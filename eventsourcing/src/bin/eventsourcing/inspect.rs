//! `inspect <id> [--at VERSION]`: one aggregate's events, decoded where the
//! key (or the lack of encryption) allows.

use std::ops::ControlFlow;

use eventsourcing::Uuid;
use eventsourcing::json::{Map, json};
use eventsourcing::recorder::EventQuery;

use crate::failure::{Failure, Kind};
use crate::output::Output;
use crate::record::Described;
use crate::store::{Open, StoreArgs};

/// `inspect`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The aggregate's id (a UUID).
    id: Uuid,
    /// Only the events up to and including this version.
    #[arg(long, value_name = "VERSION")]
    at: Option<u64>,
}

/// Prints the aggregate's events in version order: one line each, or with
/// `--json` one object holding them all. Exit 4 when it has none.
pub(crate) fn run(store: &StoreArgs, args: &Args, out: &mut Output) -> Result<(), Failure> {
    let store = store.open(Open::Existing)?;
    let mut query = EventQuery::new(args.id);
    if let Some(version) = args.at {
        query = query.to_version(version);
    }
    let mut events = Vec::new();
    store
        .recorder
        .select_events(&query, &mut |row| {
            events.push(Described::read(&store.mapper, row.to_owned()));
            Ok(ControlFlow::Continue(()))
        })
        .map_err(|e| store.failure(e))?;
    if events.is_empty() {
        return Err(Failure::new(
            Kind::NotFound,
            match args.at {
                Some(version) => format!(
                    "aggregate {} has no events up to version {version}",
                    args.id
                ),
                None => format!("aggregate {} has no events", args.id),
            },
        ));
    }
    if out.is_json() {
        let version = events.last().map(|e| e.row.originator_version);
        let head = events
            .last()
            .and_then(|e| e.event.as_ref())
            .map(|event| event.event_hash.to_hex());
        let listed: Vec<_> = events.iter().map(|e| e.to_json(Map::new())).collect();
        return out.json(&json!({
            "originator_id": args.id,
            "version": version,
            "head": head,
            "events": listed,
        }));
    }
    for event in &events {
        out.line(&event.to_text(""))?;
    }
    Ok(())
}
