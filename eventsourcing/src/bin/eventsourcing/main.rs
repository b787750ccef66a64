//! `eventsourcing`: the command-line tool for a store of this library.
//!
//! Configured like an application: `DB_URI` names the store and
//! `CIPHER_KEY` the application key (or `--db-uri` and `--cipher-key`).
//! Each subcommand is one module here and one variant of [`Command`].
//!
//! Exit codes, for scripts:
//!
//! - 0: success;
//! - 1: verification failed (a broken chain, a hash that does not match, a
//!   record that cannot be decrypted or decoded);
//! - 2: usage or configuration error (bad arguments, no `DB_URI`, a key
//!   needed but not given, an import into a store that is not empty);
//! - 3: store error (the database cannot be opened or read or written);
//! - 4: not found (`inspect` of an aggregate with no events).

mod dump;
mod export;
mod failure;
mod import;
mod inspect;
mod keygen;
mod log;
mod output;
mod progress;
mod record;
mod rotate_keys;
mod serve;
mod stats;
mod stopping;
mod store;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::Output;
use crate::store::StoreArgs;

/// Checks, reads, copies and counts the events of an event store.
#[derive(Debug, Parser)]
#[command(name = "eventsourcing", version)]
#[command(after_help = "Exit codes: 0 success, 1 verification failed, \
    2 usage or configuration error, 3 store error, 4 not found.")]
struct Cli {
    /// Where the store is and how to read it.
    #[command(flatten)]
    store: StoreArgs,
    /// Print JSON (one object per line for streams) instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Check every aggregate's hash chain and every record's hash.
    Verify(verify::Args),
    /// Show the events of one aggregate.
    Inspect(inspect::Args),
    /// Print notifications in order; with --follow, wait for new ones.
    Log(log::Args),
    /// Write every stored event, byte for byte, as JSON lines.
    Export(export::Args),
    /// Check an export and write it into an empty store.
    Import(import::Args),
    /// Print a new random `CIPHER_KEY`.
    Keygen(keygen::Args),
    /// Count events, aggregates, topics and followers' positions.
    Stats(stats::Args),
    /// Serve the notification log and the event browser over HTTP until
    /// SIGINT.
    Serve(serve::Args),
    /// Re-wrap every data key under `CIPHER_KEY` (the old key in
    /// `CIPHER_KEY_PREVIOUS`); run again to finish an interrupted run.
    RotateKeys(rotate_keys::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = Output::stdout(cli.json);
    let result = match &cli.command {
        Command::Verify(args) => verify::run(&cli.store, args, &mut out),
        Command::Inspect(args) => inspect::run(&cli.store, args, &mut out),
        Command::Log(args) => log::run(&cli.store, args, &mut out),
        Command::Export(args) => export::run(&cli.store, args, &mut out),
        Command::Import(args) => import::run(&cli.store, args, &mut out),
        Command::Keygen(args) => keygen::run(args, &mut out),
        Command::Stats(args) => stats::run(&cli.store, args, &mut out),
        Command::Serve(args) => serve::run(&cli.store, args, &mut out),
        Command::RotateKeys(args) => rotate_keys::run(&cli.store, args, &mut out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(&mut out),
    }
}
