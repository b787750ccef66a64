//! The snapshot benchmark: how long loading a long-lived aggregate takes
//! when it is snapshotted every 100 events, next to loading a 100-event
//! aggregate without snapshots, in the same run.
//!
//! ```text
//! cargo run --release --example snapshot_bench -- --full   # the real run
//! cargo run --example snapshot_bench                       # a quick smoke run
//! ```
//!
//! Without `--full` (as CI runs every example, in a debug build) the sizes
//! and repetitions are tiny: every line is printed, but the figures mean
//! nothing.
//!
//! For each store (a SQLite file, plain and then encrypted and compressed;
//! SQLite in memory; the in-memory recorder) it builds, in batches of 100
//! events per save:
//!
//! - `small`: 100 events, no snapshots;
//! - `big+0`, `big+50`, `big+99`: 10,000 events with a snapshot every 100
//!   (the last at 10,000), then 0, 50 or 99 more: the best, middle and
//!   worst distance from the latest snapshot;
//! - `big_plain`: 10,000 events, no snapshots (a full replay, for contrast).
//!
//! Each figure is the median of many loads (`Repository::get`, every hash
//! and link checked), taken in turns so that drift hits every case alike.
//! Every line is `name: value`; times in microseconds.

use std::hint::black_box;
use std::time::{Duration, Instant};

use eventsourcing::prelude::*;
use eventsourcing::{ApplicationBuilder, Compression, generate_cipher_key};

type BoxError = Box<dyn std::error::Error>;

use support::account::Account;

/// The sizes of one run.
struct Plan {
    /// Events of the big aggregates before the extra ones.
    big: u64,
    /// Events between snapshots.
    interval: u64,
    /// Events of the small aggregate.
    small: u64,
    /// Loads measured per case (the full replay of `big_plain` gets fewer).
    runs: usize,
    /// Loads before measuring.
    warmup: usize,
}

const FULL: Plan = Plan {
    big: 10_000,
    interval: 100,
    small: 100,
    runs: 301,
    warmup: 30,
};

const QUICK: Plan = Plan {
    big: 300,
    interval: 100,
    small: 100,
    runs: 5,
    warmup: 1,
};

/// Extra events after the last snapshot of the big aggregates.
const EXTRAS: [u64; 3] = [0, 50, 99];

fn main() -> Result<(), BoxError> {
    let full = std::env::args().skip(1).any(|arg| arg == "--full");
    let plan = if full { &FULL } else { &QUICK };
    println!("mode: {}", if full { "full" } else { "quick" });
    println!(
        "build: {}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    println!("big_events: {}", plan.big);
    println!("small_events: {}", plan.small);
    println!("snapshot_interval: {}", plan.interval);
    println!("runs: {}", plan.runs);

    let dir = tempfile::tempdir()?;
    let file = |name: &str| format!("sqlite:///{}", dir.path().join(name).display());
    let key = generate_cipher_key()?;
    let stores: [(&str, ApplicationBuilder); 4] = [
        (
            "sqlite_file",
            Application::builder().db_uri(file("plain.db")),
        ),
        (
            "sqlite_file_aes_zlib",
            Application::builder()
                .db_uri(file("aes.db"))
                .cipher_key(key)
                .compression(Some(Compression::Zlib)),
        ),
        (
            "sqlite_memory",
            Application::builder().db_uri("sqlite:///:memory:"),
        ),
        ("memory", Application::builder().db_uri("memory://")),
    ];
    for (name, builder) in stores {
        bench_store(name, builder, plan)?;
    }
    Ok(())
}

/// Builds the aggregates in one store and prints its figures.
fn bench_store(name: &str, builder: ApplicationBuilder, plan: &Plan) -> Result<(), BoxError> {
    // One application, so that the in-memory stores hold every aggregate;
    // automatic snapshots are left off, and the big aggregates take theirs
    // on demand as they grow, at exactly every `interval` events.
    let app = builder.build()?;
    let small = build(&app, plan.small, None)?;
    let mut cases = vec![(String::from("small"), small)];
    for extra in EXTRAS {
        let id = build(&app, plan.big + extra, Some(plan.interval))?;
        cases.push((format!("big+{extra}"), id));
    }
    let replay_all = build(&app, plan.big, None)?;

    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(plan.runs); cases.len()];
    for round in 0..plan.warmup + plan.runs {
        for ((_, id), times) in cases.iter().zip(&mut samples) {
            let elapsed = time_load(&app, *id)?;
            if round >= plan.warmup {
                times.push(elapsed);
            }
        }
    }
    let medians: Vec<f64> = samples.iter_mut().map(|times| median_us(times)).collect();
    for ((case, _), median) in cases.iter().zip(&medians) {
        println!(
            "{name}.load_{}_us: {median:.1}",
            case.replace('+', "_plus_")
        );
    }
    let small_us = medians[0];
    for ((case, _), median) in cases.iter().zip(&medians).skip(1) {
        println!(
            "{name}.ratio_{}_vs_small: {:.2}",
            case.replace('+', "_plus_"),
            median / small_us
        );
    }

    // The full replay, for contrast: fewer runs, it is a hundred times the work.
    let mut times = Vec::new();
    for round in 0..(plan.warmup / 10 + plan.runs / 10).max(3) {
        let elapsed = time_load(&app, replay_all)?;
        if round > 0 {
            times.push(elapsed);
        }
    }
    let plain_us = median_us(&mut times);
    println!("{name}.load_big_plain_us: {plain_us:.1}");
    println!(
        "{name}.ratio_big_plain_vs_small: {:.2}",
        plain_us / small_us
    );
    Ok(())
}

/// Saves an account with `events` events in batches of 100, taking a
/// snapshot every `interval` events when given; returns its id.
fn build(app: &Application, events: u64, interval: Option<u64>) -> Result<Uuid, BoxError> {
    let mut account = Account::open("Ada".into());
    for i in 2..=events {
        let amount = i64::try_from(i % 97)?;
        account.deposit(amount, format!("deposit number {i}"));
        if i % 100 == 0 {
            app.save(&mut account)?;
        }
        if interval.is_some_and(|n| i % n == 0) {
            app.save(&mut account)?;
            app.save_snapshot::<Account>(account.id())?;
        }
    }
    app.save(&mut account)?;
    let loaded: Account = app.repository().get(account.id())?;
    if loaded.version() != events || loaded.head() != account.head() {
        return Err(format!("{events}-event account did not load back").into());
    }
    Ok(account.id())
}

/// The time one load of the account takes.
fn time_load(app: &Application, id: Uuid) -> Result<Duration, BoxError> {
    let start = Instant::now();
    let account: Account = app.repository().get(id)?;
    let elapsed = start.elapsed();
    black_box(&account);
    Ok(elapsed)
}

/// The median, in microseconds.
fn median_us(times: &mut [Duration]) -> f64 {
    times.sort_unstable();
    times
        .get(times.len() / 2)
        .map_or(f64::NAN, |median| median.as_secs_f64() * 1e6)
}
