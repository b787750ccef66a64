//! `export`: every stored event, byte for byte, as JSON lines (see
//! [`crate::dump`]).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use eventsourcing::json::json;

use crate::dump::Line;
use crate::failure::Failure;
use crate::output::Output;
use crate::progress;
use crate::store::{Open, StoreArgs};

/// `export`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Write to this file instead of standard output (then a summary goes
    /// to standard output).
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Writes the events recorded when it starts, in notification order. No
/// key is needed: records are copied as stored, encrypted or not.
/// Snapshots (caches the application rebuilds) and followers' positions
/// are not exported.
pub(crate) fn run(store: &StoreArgs, args: &Args, out: &mut Output) -> Result<(), Failure> {
    let store = store.open(Open::Existing)?;
    let head = store.head()?;
    let target = args
        .output
        .as_ref()
        .map_or("standard output".to_owned(), |p| p.display().to_string());
    let mut writer: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(BufWriter::new(
            File::create(path).map_err(|e| Failure::io(&e, &target))?,
        )),
        None => Box::new(BufWriter::new(io::stdout().lock())),
    };
    let bar = progress::bar(head, "exporting", out.is_json());
    let mut write = |line: &Line| -> Result<(), Failure> {
        let text = eventsourcing::json::to_string(line)
            .map_err(|e| Failure::store(format!("cannot write a line: {e}")))?;
        writeln!(writer, "{text}").map_err(|e| Failure::io(&e, &target))
    };
    write(&Line::header())?;
    let mut events = 0_u64;
    store.scan(1, |notification| {
        if notification.id > head {
            return Ok(false);
        }
        bar.set_position(notification.id);
        events += 1;
        write(&Line::event(&notification))?;
        Ok(true)
    })?;
    write(&Line::End { events })?;
    writer.flush().map_err(|e| Failure::io(&e, &target))?;
    bar.finish_and_clear();
    if args.output.is_some() {
        out.either(
            || json!({ "ok": true, "events": events, "head": head, "output": target }),
            || format!("exported {events} events (notifications up to {head}) to {target}"),
        )?;
    }
    Ok(())
}
