//! The benchmark program: the workloads of BENCHMARKS.md, each measured
//! next to a raw baseline that does the same transactions with the same
//! bytes and no framework around them, in the same run.
//!
//! ```text
//! cargo run --release --example bench                   # the full run, about 90 s
//! cargo run --release --example bench -- --quick        # the same workloads, fewer repetitions
//! cargo run --release --example bench -- --db postgres  # on PostgreSQL (DB_URI or the local server)
//! nice -n 10 target/release/examples/bench --scale      # cost as the store grows: 0, 1 M, 10 M events
//! target/release/examples/bench --scale 0,100k,1m --db postgres
//! cargo run --release --example bench -- --replay-million build /tmp/million.db
//! /usr/bin/time -v target/release/examples/bench --replay-million load /tmp/million.db
//! ```
//!
//! Every figure is one `name: value` line; `BENCH_SAMPLES=1` adds the
//! samples behind each median. A debug build without arguments (as CI runs
//! every example) does a smoke run with tiny sizes: it prints every line,
//! but its figures mean nothing. `--profile <workload>` runs one workload
//! of the framework alone, for a profiler.
//!
//! `--scale [LEVELS]` (the `scale` module) builds one store up to each
//! level of stored events in turn (`0,1000000,10000000` unless given, as a
//! list such as `0,500k,2m` or in `BENCH_SCALE_LEVELS`; `0,20000` in a debug
//! build) and measures W1's saves, a 100-event aggregate's load and a page
//! of 1,000 notifications at each, in turns with an empty store (level 0
//! at the same moment), with the ratios to it (`BENCH_SCALE_STORE`,
//! `BENCH_SCALE_BUILD_LIMIT_S`: see the module). It never runs without the
//! flag.
//!
//! Workloads, for each codec (plain, AES-256-GCM, AES-256-GCM + zlib):
//!
//! - W1: 1,000 aggregates x 10 events, one save per command (SQLite in WAL
//!   mode with `synchronous` NORMAL, then FULL);
//! - W2: one aggregate, 10,000 events saved in batches of 100, then
//!   replayed in full (every hash and link checked);
//! - W3: the whole notification log of W1's database read and decoded
//!   (decrypted, decompressed, hash checked);
//! - `w1_data_key_cost`, `w2_replay_data_key_cost`: W1 and W2's replay
//!   with a data key per aggregate, against the application key.
//!
//! The raw baselines insert the rows the framework stored (read back from
//! its database: the same id text, version, topic and state bytes) with
//! prepared statements in the same transaction shapes, and select them with
//! the same shapes, reading every column without copying it.

use std::path::Path;
use std::time::Instant;

use eventsourcing::prelude::*;
use eventsourcing::{Cipher, Compression, Notification};

type BoxError = Box<dyn std::error::Error>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

mod data_keys;
mod followers;
mod million;
mod postgres;
mod scale;
mod sqlite;
mod systems;
mod workloads;

use self::million::million;
use self::postgres::PostgresTarget;
use self::sqlite::SqliteTarget;
use self::workloads::{
    line, median, per_second, run, run_writes, timed, w1_ours, w2_append, w2_replay, w3_ours,
};

/// The note every deposit carries.
const NOTE: &str = "monthly salary";

/// How records are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Codec {
    Plain,
    Cipher,
    CipherZlib,
}

impl Codec {
    const ALL: [Codec; 3] = [Codec::Plain, Codec::Cipher, Codec::CipherZlib];

    /// The suffix of this codec's lines (none for the primary, plain).
    fn suffix(self) -> &'static str {
        match self {
            Codec::Plain => "",
            Codec::Cipher => "_cipher",
            Codec::CipherZlib => "_cipher_zlib",
        }
    }
}

/// How hard a commit works to reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Durability {
    /// SQLite `synchronous=NORMAL` (PostgreSQL's defaults).
    Normal,
    /// SQLite `synchronous=FULL`.
    Full,
}

impl Durability {
    fn suffix(self) -> &'static str {
        match self {
            Durability::Normal => "",
            Durability::Full => "_full",
        }
    }
}

/// The sizes of a run.
#[derive(Clone, Copy, Debug)]
struct Plan {
    name: &'static str,
    /// W1: aggregates, and events per aggregate (one save each).
    w1_aggregates: usize,
    w1_events: usize,
    /// W1 when every commit waits for the disk (SQLite `synchronous=FULL`,
    /// PostgreSQL with `fsync` and `synchronous_commit` on): aggregates.
    w1_synced_aggregates: usize,
    /// W2: events of the one aggregate, and events per save.
    w2_events: usize,
    w2_batch: usize,
    /// Repetitions of each write measurement (the median is reported).
    reps: usize,
    /// Repetitions of each read measurement (the median is reported).
    read_reps: usize,
    /// Repetitions of W1 when every commit waits for the disk.
    synced_reps: usize,
    /// Notifications per query when W3 reads the log.
    w3_page: usize,
    /// P1 and P2: upstream deposits a follower catches up with, and
    /// repetitions (the median is reported).
    p_events: usize,
    p_reps: usize,
}

const FULL_PLAN: Plan = Plan {
    name: "full",
    w1_aggregates: 1_000,
    w1_events: 10,
    w1_synced_aggregates: 1_000,
    w2_events: 10_000,
    w2_batch: 100,
    reps: 9,
    read_reps: 9,
    synced_reps: 3,
    w3_page: 1_000,
    p_events: 100_000,
    p_reps: 5,
};

const QUICK_PLAN: Plan = Plan {
    name: "quick",
    w1_synced_aggregates: 200,
    reps: 3,
    read_reps: 5,
    synced_reps: 1,
    p_events: 50_000,
    p_reps: 3,
    ..FULL_PLAN
};

const SMOKE_PLAN: Plan = Plan {
    name: "smoke",
    w1_aggregates: 20,
    w1_events: 10,
    w1_synced_aggregates: 5,
    w2_events: 500,
    w2_batch: 100,
    reps: 1,
    read_reps: 1,
    synced_reps: 1,
    w3_page: 1_000,
    p_events: 300,
    p_reps: 1,
};

/// A row as the raw baselines insert it: the framework's stored bytes, with
/// the id already rendered as the text the table holds.
struct RawRow {
    uuid: Uuid,
    id: String,
    version: i64,
    topic: String,
    state: Vec<u8>,
}

impl RawRow {
    fn from_notification(n: &Notification) -> Result<RawRow> {
        Ok(RawRow {
            uuid: n.originator_id,
            id: n.originator_id.hyphenated().to_string(),
            version: i64::try_from(n.originator_version)?,
            topic: n.topic.clone(),
            state: n.state.clone(),
        })
    }
}

/// A database to benchmark: fresh applications and fresh raw twins.
trait Target {
    /// The name printed in the `db` line.
    fn name(&self) -> &'static str;

    /// The durability settings W1 runs with.
    fn durabilities(&self) -> &'static [Durability];

    /// Whether each commit at `durability` waits for the disk (W1 then
    /// runs with the plan's smaller synced sizes).
    fn synced(&self, durability: Durability) -> bool;

    /// A fresh, empty database behind an application with `codec`.
    fn app(&mut self, codec: Codec, durability: Durability) -> Result<Application>;

    /// A fresh, empty database with the same tables and settings, for the
    /// raw baseline.
    fn raw(&mut self, durability: Durability) -> Result<Box<dyn Raw>>;

    /// An application on the database `name` (a file for SQLite, a schema
    /// for PostgreSQL), created if missing; `clear` leaves it alone.
    fn kept_app(&mut self, codec: Codec, durability: Durability, name: &str)
    -> Result<Application>;

    /// A raw baseline on a copy of the database `name` (as `latest` gives
    /// it): its rows in a table of the raw baseline's, in the same order.
    fn raw_copy(&mut self, name: &str, durability: Durability) -> Result<Box<dyn Raw>>;

    /// Forgets the databases made so far (deletes their files).
    fn clear(&mut self) -> Result<()>;

    /// The name of the latest `app`'s (or `kept_app`'s) database: its file
    /// or schema.
    fn latest(&self) -> Option<String>;

    /// The bytes on disk of the database `name` (as `latest` gives it),
    /// by part, the total last.
    fn footprint(&mut self, name: &str) -> Result<Vec<(&'static str, u64)>>;
}

/// The raw baseline: the same transactions, without the framework.
trait Raw {
    /// Inserts `rows` in order, `batch` rows per transaction.
    fn insert(&mut self, rows: &[RawRow], batch: usize) -> Result<()>;

    /// Reads every row of one aggregate in version order; returns how many.
    fn replay(&mut self, id: &str) -> Result<usize>;

    /// Reads every row in notification order, `page` rows per query;
    /// returns how many.
    fn read_log(&mut self, page: usize) -> Result<usize>;
}

fn cipher() -> Result<Cipher> {
    Ok(Cipher::from_base64(&eventsourcing::generate_cipher_key()?)?)
}

fn builder(codec: Codec) -> Result<eventsourcing::ApplicationBuilder> {
    let builder = Application::builder();
    Ok(match codec {
        Codec::Plain => builder,
        Codec::Cipher => builder.cipher(cipher()?),
        Codec::CipherZlib => builder
            .cipher(cipher()?)
            .compression(Some(Compression::Zlib)),
    })
}

// ---------------------------------------------------------------- main

const USAGE: &str =
    "usage: bench [--quick | --smoke | --full] [--db sqlite|postgres] [--followers | --systems | --data-keys | --writes]
       bench --scale [LEVELS, e.g. 0,1m,10m] [--db sqlite|postgres]
       bench --replay-million build|load|load-one PATH
       bench [--db sqlite|postgres] --profile w1|w1-data-keys|w2-append|w2-replay|w3 [plain|cipher|cipher-zlib]";

/// The target named by `--db`.
fn target(db: &str) -> Result<Box<dyn Target>> {
    Ok(match db {
        "sqlite" => Box::new(SqliteTarget::new()?),
        "postgres" => Box::new(PostgresTarget::new()?),
        other => {
            return Err(format!("unknown database `{other}`; expected sqlite or postgres").into());
        }
    })
}

/// Runs one workload of the framework, for a profiler, on `db` (SQLite
/// with `synchronous=NORMAL`, or PostgreSQL), with the full plan's sizes;
/// W1 and W2's appends are then repeated by the raw baseline on the rows
/// the framework stored (`bench::profiled_raw_insert`), so that one
/// profile holds both sides.
fn profile(db: &str, workload: &str, codec: &str) -> Result<()> {
    let codec = match codec {
        "plain" => Codec::Plain,
        "cipher" => Codec::Cipher,
        "cipher-zlib" => Codec::CipherZlib,
        other => return Err(format!("unknown codec `{other}`\n{USAGE}").into()),
    };
    let plan = FULL_PLAN;
    let mut target = target(db)?;
    let app = target.app(codec, Durability::Normal)?;
    let start = Instant::now();
    match workload {
        "w1" => {
            profiled_w1(&app, &plan)?;
            profiled_raw(&mut *target, &app, 1)?;
        }
        "w1-data-keys" => data_keys::w1_keyed(&app, plan.w1_aggregates, plan.w1_events)?,
        "w2-append" => {
            for _ in 0..5 {
                profiled_w2_append(&app, &plan)?;
            }
            profiled_raw(&mut *target, &app, plan.w2_batch)?;
        }
        "w2-replay" => {
            let id = w2_append(&app, plan.w2_events, plan.w2_batch)?;
            let mut times = Vec::new();
            for _ in 0..50 {
                let ((), t) = timed(|| profiled_w2_replay(&app, id, &plan))?;
                times.push(t);
            }
            let best = times.iter().min().copied().unwrap_or_default();
            line(
                "replay_median_events_per_s",
                format_args!("{:.0}", per_second(plan.w2_events, median(times))),
            );
            line(
                "replay_best_events_per_s",
                format_args!("{:.0}", per_second(plan.w2_events, best)),
            );
        }
        "w3" => {
            w1_ours(&app, plan.w1_aggregates, plan.w1_events)?;
            let mut times = Vec::new();
            for _ in 0..30 {
                let ((), t) = timed(|| profiled_w3(&app, plan.w3_page))?;
                times.push(t);
            }
            let count = plan.w1_aggregates * plan.w1_events;
            let best = times.iter().min().copied().unwrap_or_default();
            line(
                "w3_median_per_s",
                format_args!("{:.0}", per_second(count, median(times))),
            );
            line(
                "w3_best_per_s",
                format_args!("{:.0}", per_second(count, best)),
            );
        }
        other => return Err(format!("unknown workload `{other}`\n{USAGE}").into()),
    }
    line(
        "elapsed_s",
        format_args!("{:.2}", start.elapsed().as_secs_f64()),
    );
    drop(app);
    target.clear()
}

/// The raw baseline inserts the rows `app` stored, `batch` per
/// transaction, into a fresh database; prints its time.
fn profiled_raw(target: &mut dyn Target, app: &Application, batch: usize) -> Result<()> {
    let rows = workloads::stored_rows(app)?;
    let mut raw = target.raw(Durability::Normal)?;
    let ((), t) = timed(|| profiled_raw_insert(&mut *raw, &rows, batch))?;
    line("raw_elapsed_s", format_args!("{:.2}", t.as_secs_f64()));
    Ok(())
}

// Separate, never-inlined functions, so that a profiler can collect
// exactly these (valgrind `--toggle-collect=bench::profiled_*`).

#[inline(never)]
fn profiled_w1(app: &Application, plan: &Plan) -> Result<()> {
    w1_ours(app, plan.w1_aggregates, plan.w1_events)
}

#[inline(never)]
fn profiled_raw_insert(raw: &mut dyn Raw, rows: &[RawRow], batch: usize) -> Result<()> {
    raw.insert(rows, batch)
}

#[inline(never)]
fn profiled_w2_append(app: &Application, plan: &Plan) -> Result<()> {
    w2_append(app, plan.w2_events, plan.w2_batch).map(drop)
}

#[inline(never)]
fn profiled_w2_replay(app: &Application, id: Uuid, plan: &Plan) -> Result<()> {
    w2_replay(app, id, plan.w2_events)
}

#[inline(never)]
fn profiled_w3(app: &Application, page: usize) -> Result<()> {
    w3_ours(app, page).map(drop)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // A debug build has no meaningful figures: without arguments it only
    // checks that every workload runs (CI runs every example this way).
    let mut plan = if cfg!(debug_assertions) {
        SMOKE_PLAN
    } else {
        FULL_PLAN
    };
    let mut db = "sqlite".to_owned();
    let mut only_followers = false;
    let mut only_systems = false;
    let mut only_data_keys = false;
    let mut scale_levels: Option<Vec<u64>> = None;
    let mut only_writes = false;
    let mut args = args.iter().peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => plan = QUICK_PLAN,
            "--followers" => only_followers = true,
            "--systems" => only_systems = true,
            "--data-keys" => only_data_keys = true,
            "--scale" => {
                let levels = match args.next_if(|a| !a.starts_with("--")) {
                    Some(list) => scale::parse_levels(list)?,
                    None => match std::env::var("BENCH_SCALE_LEVELS") {
                        Ok(list) => scale::parse_levels(&list)?,
                        Err(_) if cfg!(debug_assertions) => scale::SMOKE_LEVELS.to_vec(),
                        Err(_) => scale::LEVELS.to_vec(),
                    },
                };
                scale_levels = Some(levels);
            }
            "--writes" => only_writes = true,
            systems::CHILD => return systems::child(),
            "--smoke" => plan = SMOKE_PLAN,
            "--full" => plan = FULL_PLAN,
            "--db" => db.clone_from(args.next().ok_or(USAGE)?),
            "--replay-million" => {
                let phase = args.next().ok_or(USAGE)?;
                let path = args.next().ok_or(USAGE)?;
                return million(phase, Path::new(path));
            }
            "--profile" => {
                let workload = args.next().ok_or(USAGE)?;
                let codec = args.next().map_or("plain", String::as_str);
                return profile(&db, workload, codec);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument `{other}`\n{USAGE}").into()),
        }
    }
    if cfg!(debug_assertions) {
        line(
            "note",
            "debug build: the figures below are not meaningful, use --release",
        );
    }
    if let Some(levels) = scale_levels {
        let sizes = if plan.name == "smoke" {
            scale::SMOKE_SIZES
        } else {
            scale::SIZES
        };
        return match db.as_str() {
            "sqlite" => scale::run(&mut SqliteTarget::new()?, &levels, &sizes),
            "postgres" => scale::run(&mut PostgresTarget::new()?, &levels, &sizes),
            other => Err(format!("unknown database `{other}`; expected sqlite or postgres").into()),
        };
    }
    if only_followers {
        return followers::run(&plan);
    }
    if only_data_keys {
        return data_keys::run(&mut SqliteTarget::new()?, &plan);
    }
    if only_systems {
        let (count, repeats) = match plan.name {
            "full" => (2000, 3),
            "quick" => (500, 1),
            _ => (20, 1),
        };
        return systems::run(&db, count, repeats);
    }
    let mut target: Box<dyn Target> = match db.as_str() {
        "sqlite" => Box::new(SqliteTarget::new()?),
        "postgres" => Box::new(PostgresTarget::new()?),
        other => {
            return Err(format!("unknown database `{other}`; expected sqlite or postgres").into());
        }
    };
    if only_writes {
        run_writes(&mut *target, &plan)
    } else {
        run(&mut *target, &plan)
    }
}
