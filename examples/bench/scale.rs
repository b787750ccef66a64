//! Cost as the store grows (`--scale`): W1's saves, a 100-event
//! aggregate's load and a page of the notification log, measured on a
//! store built up to each level (0, 1 M and 10 M events by default).
//!
//! The store is built through the library's batched path: `save` of many
//! W1-shaped accounts at once (10 events each; one account of 100 events
//! per batch), 10,000 events per transaction, the same records as any save
//! writes. At each level the figures are taken on that store and, in
//! turns with it, on a control: a new, empty store, that is, the store at
//! level 0 measured at the same time. The machine's speed drifts by more
//! than the costs measured here over the minutes a build takes (other
//! processes, the host), and a drift hits both stores alike.
//!
//! - `scale_w1_saves_per_s_<level>`: W1 (new accounts, one save per event);
//! - `scale_load_per_s_<level>`: loads per second of 100-event accounts
//!   written just before (round after round, one event per save, so that
//!   their rows are interleaved), each loaded with `Repository::get`;
//! - `scale_load_old_per_s_<level>`: the same for the build's 100-event
//!   accounts, taken from all over the store;
//! - `scale_page_per_s_<level>`: pages of notifications per second, each
//!   read with the notification log's `select` from near the end of the
//!   log and from its middle, and every notification decoded.
//!
//! Each `scale_*_ratio_<level>` compares that level with the control
//! (`scale_control_*_<level>`): the median, over pairs of samples taken
//! one right after the other, of the control's time ÷ the store's; each
//! `scale_*_vs_first_<level>` is the figure at that level ÷ the same figure
//! at the first level, minutes earlier. The 100-event accounts of the
//! build are compared with the control's fresh ones (`load_old`). The store's size on disk
//! (`scale_db_*_bytes_<level>`), the time its build took and the load
//! average are printed at each level.
//!
//! `BENCH_SCALE_STORE` names a store to keep (a file for SQLite, a schema
//! for PostgreSQL), reused and topped up by later runs: build it once, then
//! measure it again under a profiler, e.g. with `--smoke` sizes and
//! `valgrind --tool=callgrind --toggle-collect='bench::scale::measure::on_big*'`
//! (or `on_control*`). `BENCH_SCALE_BUILD_LIMIT_S` stops a build that takes
//! longer, and no figure is taken at the level it did not reach.

use std::time::{Duration, Instant};

use eventsourcing::prelude::*;

use super::workloads::{line, per_second, timed};
use super::{Codec, Durability, NOTE, Result, Target};
use support::account::Account;

mod measure;

use self::measure::{Figures, print_vs_first};

/// Events per transaction when the store is built.
const BUILD_BATCH: usize = 10_000;

/// Events of each account of the build but one per batch.
const BUILD_EVENTS: usize = 10;

/// Events of the accounts whose loads are measured.
const PROBE_EVENTS: usize = 100;

/// The levels of a release build, in stored events.
pub(super) const LEVELS: &[u64] = &[0, 1_000_000, 10_000_000];

/// The levels of a debug build (a smoke run: its figures mean nothing).
pub(super) const SMOKE_LEVELS: &[u64] = &[0, 20_000];

/// The sizes of the measurements at each level.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sizes {
    /// W1: accounts, and events of each (one save per event).
    w1_aggregates: usize,
    w1_events: usize,
    /// W1 when every commit waits for the disk: accounts.
    w1_synced_aggregates: usize,
    /// Repetitions of W1 (the median is reported).
    w1_reps: usize,
    /// Accounts whose loads are measured, and rounds of loading them all
    /// (after one untimed round).
    probes: usize,
    load_reps: usize,
    /// Notifications per page, and reads of each page (after one untimed
    /// read).
    page: usize,
    page_reps: usize,
}

pub(super) const SIZES: Sizes = Sizes {
    w1_aggregates: 1_000,
    w1_events: 10,
    w1_synced_aggregates: 200,
    w1_reps: 5,
    probes: 10,
    load_reps: 9,
    page: 1_000,
    page_reps: 25,
};

pub(super) const SMOKE_SIZES: Sizes = Sizes {
    w1_aggregates: 20,
    w1_events: 10,
    w1_synced_aggregates: 5,
    w1_reps: 1,
    probes: 2,
    load_reps: 1,
    page: 1_000,
    page_reps: 1,
};

/// Reads levels such as `0,1000000,10m,500k`.
pub(super) fn parse_levels(text: &str) -> Result<Vec<u64>> {
    let mut levels = Vec::new();
    for item in text.split(',').map(str::trim) {
        let (digits, unit) = match item.as_bytes().last() {
            Some(b'k' | b'K') => (&item[..item.len() - 1], 1_000),
            Some(b'm' | b'M') => (&item[..item.len() - 1], 1_000_000),
            _ => (item, 1),
        };
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("`{item}` is not a number of events"))?;
        levels.push(n.checked_mul(unit).ok_or("level too large")?);
    }
    if levels.windows(2).any(|w| w[0] >= w[1]) {
        return Err("levels must grow: `0,1000000,10000000`".into());
    }
    Ok(levels)
}

/// `0`, `20k`, `1m`, `10m`, or the number itself.
fn level_name(events: u64) -> String {
    match events {
        0 => "0".to_owned(),
        n if n % 1_000_000 == 0 => format!("{}m", n / 1_000_000),
        n if n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// The machine's load averages, as `/proc/loadavg` shows them.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map_or_else(|_| "?".to_owned(), |s| s.trim().to_owned())
}

/// One store, and the 100-event accounts its build wrote.
struct Store {
    app: Application,
    built: Vec<Uuid>,
}

/// Adds accounts to `store` until it holds `level` events (to within one
/// account): `BUILD_BATCH` events per save, W1-shaped accounts and one
/// 100-event account per full batch. Stops early after `limit`.
fn build(store: &mut Store, level: u64, limit: Option<Duration>) -> Result<u64> {
    let start = Instant::now();
    let mut stored = store.app.notification_log().max_id()?;
    let mut reported = stored;
    let mut serial = stored;
    while stored < level {
        if limit.is_some_and(|limit| start.elapsed() > limit) {
            line(
                "scale_build_stopped",
                format_args!(
                    "at {stored} events after {:.0} s",
                    start.elapsed().as_secs_f64()
                ),
            );
            break;
        }
        let remaining = usize::try_from(level - stored)?;
        let full = remaining >= BUILD_BATCH;
        let accounts = if full {
            (BUILD_BATCH - PROBE_EVENTS) / BUILD_EVENTS
        } else {
            remaining.div_ceil(BUILD_EVENTS)
        };
        let mut batch = Vec::with_capacity(accounts + 1);
        for _ in 0..accounts {
            serial += 1;
            batch.push(account(format!("owner {serial}"), BUILD_EVENTS)?);
        }
        if full {
            let id = probe_id(store.built.len());
            let probe = finish(
                Account::open_with_id(id, format!("probe {serial}")),
                PROBE_EVENTS,
            )?;
            store.built.push(id);
            batch.push(probe);
        }
        store.app.save(&mut batch)?;
        stored = store.app.notification_log().max_id()?;
        if stored - reported >= 1_000_000 {
            reported = stored;
            eprintln!(
                "# built {stored} events in {:.0} s, load {}",
                start.elapsed().as_secs_f64(),
                loadavg()
            );
        }
    }
    Ok(stored)
}

/// The id of the 100-event account of the build's `batch`th full batch:
/// spread over the ids as random ones are, and found again when a kept
/// store is reopened.
fn probe_id(batch: usize) -> Uuid {
    let mut x = (batch as u128 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
    x ^= x >> 64;
    x = x.wrapping_mul(0xd6e8_feb8_6659_fd93_a076_1d64_78bd_642f);
    x ^= x >> 61;
    Uuid::from_u128(x)
}

/// An open account with `events` events (the opening and deposits), unsaved.
fn account(owner: String, events: usize) -> Result<Account> {
    finish(Account::open(owner), events)
}

/// `account` with events up to `events`.
fn finish(mut account: Account, events: usize) -> Result<Account> {
    for i in 1..events {
        account.deposit(i64::try_from(i)?, NOTE.to_owned());
    }
    Ok(account)
}

/// The store named `name` (`BENCH_SCALE_STORE`: a file for SQLite, a
/// schema for PostgreSQL), created if missing and kept afterwards: a store
/// built once can be measured again, under a profiler for instance.
fn kept_store(target: &mut dyn Target, name: &str) -> Result<Store> {
    let app = target.kept_app(Codec::Plain, Durability::Normal, name)?;
    let mut built = Vec::new();
    while app.repository().contains(probe_id(built.len()))? {
        built.push(probe_id(built.len()));
    }
    Ok(Store { app, built })
}

/// Runs `--scale` on `target` at `levels` (ascending).
pub(super) fn run(target: &mut dyn Target, levels: &[u64], sizes: &Sizes) -> Result<()> {
    let limit = match std::env::var("BENCH_SCALE_BUILD_LIMIT_S") {
        Ok(s) => Some(Duration::from_secs(s.parse()?)),
        Err(_) => None,
    };
    let w1_aggregates = if target.synced(Durability::Normal) {
        sizes.w1_synced_aggregates
    } else {
        sizes.w1_aggregates
    };
    line("db", target.name());
    line(
        "scale_sizes",
        format_args!(
            "levels {levels:?}; build: {BUILD_BATCH} events per save, accounts of \
             {BUILD_EVENTS} events and one of {PROBE_EVENTS} per save; W1 {w1_aggregates}x{} \
             (median of {}); {} accounts of {PROBE_EVENTS} events loaded {} times each; \
             pages of {} read {} times at the end and the middle; each after an untimed round",
            sizes.w1_events,
            sizes.w1_reps,
            sizes.probes,
            sizes.load_reps,
            sizes.page,
            sizes.page_reps,
        ),
    );
    line("loadavg_start", loadavg());
    let started = Instant::now();
    let mut store = match std::env::var("BENCH_SCALE_STORE") {
        Ok(name) => kept_store(target, &name)?,
        Err(_) => Store {
            app: target.app(Codec::Plain, Durability::Normal)?,
            built: Vec::new(),
        },
    };
    let database = target.latest().ok_or("no database")?;
    let mut first: Option<Figures> = None;
    for &level in levels {
        let name = level_name(level);
        let before = store.app.notification_log().max_id()?;
        let (stored, t) = timed(|| build(&mut store, level, limit))?;
        line(&format!("scale_events_{name}"), stored);
        line(
            &format!("scale_build_s_{name}"),
            format_args!("{:.1}", t.as_secs_f64()),
        );
        line(
            &format!("scale_build_events_per_s_{name}"),
            format_args!("{:.0}", per_second(usize::try_from(stored - before)?, t)),
        );
        for (part, bytes) in target.footprint(&database)? {
            line(&format!("scale_db_{part}_bytes_{name}"), bytes);
        }
        line(&format!("loadavg_{name}"), loadavg());
        if stored < level {
            // The build was stopped: no figures at a level not reached.
            break;
        }
        let big = measure::level(target, &store, &database, &name, sizes, w1_aggregates)?;
        match &first {
            None => first = Some(big),
            Some(base) => print_vs_first(&name, &big, base),
        }
    }
    line("loadavg_end", loadavg());
    line(
        "elapsed_s",
        format_args!("{:.1}", started.elapsed().as_secs_f64()),
    );
    drop(store);
    target.clear()
}
