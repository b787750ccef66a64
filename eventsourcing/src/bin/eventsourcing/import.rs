//! `import`: an export checked in full (every record's hash, every
//! aggregate's chain, the count of events), then written into an empty
//! store in one transaction: all of it or, on any fault, nothing.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;

use eventsourcing::json::json;
use eventsourcing::{Chain, Mapper, StoredEvent, Uuid};

use crate::dump::{self, Line};
use crate::failure::{Failure, Kind};
use crate::output::Output;
use crate::progress;
use crate::store::{Open, StoreArgs};

/// `import`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Read from this file instead of standard input.
    #[arg(long, short, value_name = "FILE")]
    input: Option<PathBuf>,
}

/// The events of an export, in its order, with their notification ids.
struct Export {
    events: Vec<StoredEvent>,
    notification_ids: Vec<u64>,
}

/// Reads and checks the export, then writes it into the store, which must
/// be empty (it is created when missing, after the export checked out). Encrypted records need the key
/// they were written with, to check their hashes.
pub(crate) fn run(store: &StoreArgs, args: &Args, out: &mut Output) -> Result<(), Failure> {
    let export = match &args.input {
        Some(path) => {
            let name = path.display().to_string();
            let file = File::open(path).map_err(|e| Failure::io(&e, &name))?;
            read(BufReader::new(file), &name)?
        }
        None => read(io::stdin().lock(), "standard input")?,
    };
    let (mapper, keyed) = store.mapper()?;
    let aggregates = check(&mapper, keyed, &export.events, out.is_json())?;
    let store = store.open(Open::Create)?;
    let head = store.head()?;
    if head != 0 {
        return Err(Failure::usage(format!(
            "the target store is not empty (its notification log reaches {head}); \
             import only into an empty store"
        )));
    }
    let ids = store
        .recorder
        .insert_events(&export.events)
        .map_err(|e| store.failure(e))?;
    let events = ids.len();
    let same_ids = ids == export.notification_ids;
    out.either(
        || {
            json!({
                "ok": true,
                "events": events,
                "aggregates": aggregates,
                "same_notification_ids": same_ids,
            })
        },
        || {
            let renumbered = if same_ids {
                ""
            } else {
                " (notification ids renumbered)"
            };
            format!("imported {events} events of {aggregates} aggregates{renumbered}")
        },
    )
}

/// A fault in the export: exit 1.
fn bad(name: &str, line: usize, reason: impl std::fmt::Display) -> Failure {
    Failure::new(Kind::Verification, format!("{name}, line {line}: {reason}"))
}

/// Parses every line: the header, the events, the trailer and its count.
fn read(reader: impl BufRead, name: &str) -> Result<Export, Failure> {
    let mut export = Export {
        events: Vec::new(),
        notification_ids: Vec::new(),
    };
    let mut header = false;
    let mut ended = false;
    let mut number = 0;
    for text in reader.lines() {
        number += 1;
        let text = text.map_err(|e| Failure::io(&e, name))?;
        if ended {
            return Err(bad(name, number, "a line after the end line"));
        }
        let line: Line = eventsourcing::json::from_str(&text).map_err(|e| bad(name, number, e))?;
        match line {
            Line::Header { format, version } => {
                if header || number != 1 {
                    return Err(bad(name, number, "a header that is not the first line"));
                }
                if format != dump::FORMAT || version != dump::VERSION {
                    return Err(bad(
                        name,
                        number,
                        format!(
                            "`{format}` version {version} is not what this tool reads \
                             (`{}` version {})",
                            dump::FORMAT,
                            dump::VERSION
                        ),
                    ));
                }
                header = true;
            }
            _ if !header => return Err(bad(name, number, "no header line first")),
            Line::Event {
                notification_id,
                originator_id,
                originator_version,
                topic,
                state,
            } => {
                let event = dump::stored(originator_id, originator_version, topic, &state)
                    .map_err(|e| bad(name, number, format!("`state` is not base64: {e}")))?;
                export.events.push(event);
                export.notification_ids.push(notification_id);
            }
            Line::End { events } => {
                if events != export.events.len() as u64 {
                    return Err(bad(
                        name,
                        number,
                        format!(
                            "the end line counts {events} events, the file holds {}",
                            export.events.len()
                        ),
                    ));
                }
                ended = true;
            }
        }
    }
    if !ended {
        return Err(bad(name, number, "no end line: the export is cut off"));
    }
    Ok(export)
}

/// Checks each aggregate's chain (versions 1, 2, ... without gaps or
/// repeats, every hash and link) and returns how many aggregates there are.
fn check(
    mapper: &Mapper,
    keyed: bool,
    events: &[StoredEvent],
    json: bool,
) -> Result<usize, Failure> {
    let mut by_aggregate: HashMap<Uuid, Vec<&StoredEvent>> = HashMap::new();
    for event in events {
        by_aggregate
            .entry(event.originator_id)
            .or_default()
            .push(event);
    }
    let bar = progress::bar(events.len() as u64, "checking", json);
    for (id, mut rows) in by_aggregate
        .iter_mut()
        .map(|(id, rows)| (*id, std::mem::take(rows)))
    {
        rows.sort_by_key(|row| row.originator_version);
        let mut chain = Chain::new(id);
        for row in rows {
            let checked = mapper
                .decode((*row).clone())
                .and_then(|event| chain.check_next(&event));
            if let Err(error) = checked {
                bar.abandon();
                let failure = Failure::from_error(error, keyed);
                return Err(Failure {
                    message: format!(
                        "the export is refused, nothing was written: {}",
                        failure.message
                    ),
                    ..failure
                });
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(by_aggregate.len())
}
