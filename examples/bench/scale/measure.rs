//! The measurements of `--scale` at one level: W1, the loads and the page
//! reads on the big store and the control in turns, the raw baseline's W1,
//! and the figures printed from them.

use std::time::Duration;

use eventsourcing::prelude::*;

use super::super::data_keys::median_ratio;
use super::super::workloads::{
    line, median, per_second, stored_rows, timed, w1_accounts, w2_replay,
};
use super::super::{Codec, Durability, Raw, RawRow, Result, Target};
use super::{PROBE_EVENTS, Sizes, Store};
use support::account::Account;

/// Reads `page` notifications from `start` and decodes each.
fn read_page(app: &Application, start: u64, page: usize) -> Result<usize> {
    let log = app.notification_log();
    let batch = log.select(start, page, &[])?;
    let count = batch.len();
    for notification in batch {
        std::hint::black_box(log.decode(notification)?);
    }
    Ok(count)
}

/// The samples of one store at one level.
#[derive(Default)]
struct Samples {
    w1: Vec<Duration>,
    load: Vec<Duration>,
    load_old: Vec<Duration>,
    page_end: Vec<Duration>,
    page_mid: Vec<Duration>,
}

/// Samples as whole microseconds, for `BENCH_SAMPLES`.
fn micros(samples: &[Duration]) -> String {
    samples
        .iter()
        .map(|d| d.as_micros().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The figures of one store at one level, as rates.
#[derive(Clone, Copy)]
pub(super) struct Figures {
    w1: f64,
    load: f64,
    load_old: Option<f64>,
    page_end: f64,
    page_mid: f64,
    page: f64,
}

impl Samples {
    /// With `BENCH_SAMPLES`, prints every sample (µs).
    fn print(&self, prefix: &str, name: &str) {
        if std::env::var_os("BENCH_SAMPLES").is_none() {
            return;
        }
        let us = micros;
        println!("# {prefix} {name} samples (us): w1 {}", us(&self.w1));
        println!("# {prefix} {name} samples (us): load {}", us(&self.load));
        println!(
            "# {prefix} {name} samples (us): load_old {}",
            us(&self.load_old)
        );
        println!(
            "# {prefix} {name} samples (us): page_end {}",
            us(&self.page_end)
        );
        println!(
            "# {prefix} {name} samples (us): page_mid {}",
            us(&self.page_mid)
        );
    }

    /// Both pages' samples, the end's then the middle's.
    fn pages(&self) -> Vec<Duration> {
        [self.page_end.as_slice(), &self.page_mid].concat()
    }

    fn figures(&self, w1_saves: usize) -> Figures {
        let rate = |count: usize, samples: &[Duration]| per_second(count, median(samples.to_vec()));
        Figures {
            w1: rate(w1_saves, &self.w1),
            load: rate(1, &self.load),
            load_old: (!self.load_old.is_empty()).then(|| rate(1, &self.load_old)),
            page_end: rate(1, &self.page_end),
            page_mid: rate(1, &self.page_mid),
            page: rate(1, &self.pages()),
        }
    }

    /// Prints `scale_*_ratio_<name>`: the median over pairs of samples
    /// taken one right after the other, on this store and on `control`, of
    /// the control's time ÷ this store's (a ratio of rates). A burst of
    /// work elsewhere on the machine slows both of a pair alike.
    fn print_ratios(&self, control: &Samples, name: &str) {
        let ratio = |what: &str, big: &[Duration], control: &[Duration]| {
            line(
                &format!("scale_{what}_ratio_{name}"),
                format_args!("{:.3}", median_ratio(control, big)),
            );
        };
        ratio("w1", &self.w1, &control.w1);
        ratio("load", &self.load, &control.load);
        if !self.load_old.is_empty() {
            // Against the control's loads of fresh accounts: it has no
            // build of its own.
            ratio("load_old", &self.load_old, &control.load);
        }
        ratio("page", &self.pages(), &control.pages());
    }
}

/// Times `f`, a measurement on store `i` (0: the big store, 1: the
/// control), through a function of that store's own that is never
/// inlined, so that a profiler can tell the two apart
/// (`valgrind --tool=callgrind --toggle-collect='bench::scale::measure::on_big*'`).
fn on<T>(i: usize, f: impl FnOnce() -> Result<T>) -> Result<(T, Duration)> {
    if i == 0 { on_big(f) } else { on_control(f) }
}

// The two bodies differ (by the constant each passes to `black_box`), else
// the compiler would merge the two functions into one.

#[inline(never)]
fn on_big<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, Duration)> {
    std::hint::black_box(0_u8);
    timed(f)
}

#[inline(never)]
fn on_control<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, Duration)> {
    std::hint::black_box(1_u8);
    timed(f)
}

/// Which store goes first in round `rep`, and which second.
fn turns(rep: usize) -> [usize; 2] {
    [rep % 2, (rep + 1) % 2]
}

/// Parts of each W1 repetition's rows the raw baseline times apart.
const RAW_PARTS: usize = 5;

/// W1 of the raw baseline (one row per transaction, `chunk` rows per
/// sample, `samples` of them) on `copy`, the big store's rows in a raw
/// table, and on an empty database, in turns: what the database itself
/// pays as the store grows.
fn raw_w1(
    target: &mut dyn Target,
    copy: Box<dyn Raw>,
    rows: &[RawRow],
    chunk: usize,
    samples: usize,
) -> Result<[Vec<Duration>; 2]> {
    let mut databases = [copy, target.raw(Durability::Normal)?];
    let mut times = [Vec::new(), Vec::new()];
    for (rep, chunk) in rows.chunks(chunk.max(1)).take(samples).enumerate() {
        for i in turns(rep) {
            let ((), t) = timed(|| databases[i].insert(chunk, 1))?;
            times[i].push(t);
        }
    }
    Ok(times)
}

/// Loads one of the build's 100-event accounts (`w2_replay` under a name
/// of its own, for a profiler).
#[inline(never)]
fn load_built(app: &Application, id: Uuid) -> Result<()> {
    w2_replay(app, id, PROBE_EVENTS)
}

/// W1, the loads and the page reads on both stores, taking turns.
fn measure(stores: [&Store; 2], sizes: &Sizes, w1_aggregates: usize) -> Result<[Samples; 2]> {
    let mut samples = [Samples::default(), Samples::default()];
    for rep in 0..sizes.w1_reps {
        for i in turns(rep) {
            let ((), t) = on(i, || {
                w1_accounts(&stores[i].app, w1_aggregates, sizes.w1_events).map(drop)
            })?;
            samples[i].w1.push(t);
        }
    }
    // Fresh 100-event accounts, and some of the build's from all over the store.
    let mut fresh = Vec::new();
    let mut old = Vec::new();
    for store in stores {
        let accounts = w1_accounts(&store.app, sizes.probes, PROBE_EVENTS)?;
        fresh.push(accounts.iter().map(Account::id).collect::<Vec<Uuid>>());
        let n = store.built.len();
        old.push(
            (0..sizes.probes.min(n))
                .filter_map(|k| store.built.get(k * n / sizes.probes.min(n)).copied())
                .collect::<Vec<Uuid>>(),
        );
    }
    // Round 0 warms the caches up and is not timed; the stores take turns
    // at every load.
    let load = |i: usize, id: Uuid| on(i, || w2_replay(&stores[i].app, id, PROBE_EVENTS));
    let load_old = |i: usize, id: Uuid| on(i, || load_built(&stores[i].app, id));
    for rep in 0..=sizes.load_reps {
        for k in 0..sizes.probes {
            for i in turns(rep + k) {
                if let Some(&id) = fresh[i].get(k) {
                    let ((), t) = load(i, id)?;
                    if rep > 0 {
                        samples[i].load.push(t);
                    }
                }
                if let Some(&id) = old[i].get(k) {
                    let ((), t) = load_old(i, id)?;
                    if rep > 0 {
                        samples[i].load_old.push(t);
                    }
                }
            }
        }
    }
    // Where each store's pages start (near the end of the log, and in its
    // middle), and how many notifications each holds (fewer than a page
    // only in a smoke run's small store).
    let page = u64::try_from(sizes.page)?;
    let mut positions = Vec::new();
    for store in stores {
        let last = store.app.notification_log().max_id()?;
        let at = |start: u64| -> Result<(u64, usize)> {
            let start = start.max(1);
            Ok((start, usize::try_from(page.min(last + 1 - start))?))
        };
        positions.push([at(last.saturating_sub(page + 10))?, at(last / 2)?]);
    }
    // As the loads: round 0 untimed, turns at every read.
    for rep in 0..=sizes.page_reps {
        for k in [0, 1] {
            for i in turns(rep + k) {
                let (start, expected) = positions[i][k];
                let (n, t) = on(i, || read_page(&stores[i].app, start, sizes.page))?;
                if n != expected {
                    return Err(
                        format!("read {n} notifications from {start}, not {expected}").into(),
                    );
                }
                let samples = &mut samples[i];
                match (rep, k) {
                    (0, _) => {}
                    (_, 0) => samples.page_end.push(t),
                    _ => samples.page_mid.push(t),
                }
            }
        }
    }
    Ok(samples)
}

fn print_figures(prefix: &str, name: &str, f: &Figures) {
    line(
        &format!("{prefix}_w1_saves_per_s_{name}"),
        format_args!("{:.0}", f.w1),
    );
    line(
        &format!("{prefix}_load_per_s_{name}"),
        format_args!("{:.0}", f.load),
    );
    if let Some(old) = f.load_old {
        line(
            &format!("{prefix}_load_old_per_s_{name}"),
            format_args!("{old:.0}"),
        );
    }
    line(
        &format!("{prefix}_page_end_per_s_{name}"),
        format_args!("{:.1}", f.page_end),
    );
    line(
        &format!("{prefix}_page_mid_per_s_{name}"),
        format_args!("{:.1}", f.page_mid),
    );
    line(
        &format!("{prefix}_page_per_s_{name}"),
        format_args!("{:.1}", f.page),
    );
}

/// Prints `scale_*_vs_first_<name>`: the figures `f` ÷ the first level's.
pub(super) fn print_vs_first(name: &str, f: &Figures, base: &Figures) {
    let ratio = |what: &str, a: f64, b: f64| {
        line(
            &format!("scale_{what}_vs_first_{name}"),
            format_args!("{:.3}", a / b),
        );
    };
    ratio("w1", f.w1, base.w1);
    ratio("load", f.load, base.load);
    if let Some(old) = f.load_old {
        // Against the fresh accounts' loads of the base: the control and
        // the first level have no build of their own.
        ratio("load_old", old, base.load);
    }
    ratio("page", f.page, base.page);
}

/// Everything measured at one level, `name`, on `store` (whose database is
/// `database`) and a new, empty control; returns the big store's figures.
pub(super) fn level(
    target: &mut dyn Target,
    store: &Store,
    database: &str,
    name: &str,
    sizes: &Sizes,
    w1_aggregates: usize,
) -> Result<Figures> {
    // The raw baseline's copy of the store as built, for W1 below.
    let (copy, t) = timed(|| target.raw_copy(database, Durability::Normal))?;
    line(
        &format!("scale_raw_copy_s_{name}"),
        format_args!("{:.1}", t.as_secs_f64()),
    );
    let control = Store {
        app: target.app(Codec::Plain, Durability::Normal)?,
        built: Vec::new(),
    };
    let [big, small] = measure([store, &control], sizes, w1_aggregates)?;
    // The control's first rows are its W1 rows, repetition after
    // repetition: the raw baseline inserts them again.
    let saves = w1_aggregates * sizes.w1_events;
    let rows = stored_rows(&control.app)?;
    drop(control);
    let chunk = saves / RAW_PARTS;
    let [raw_big, raw_small] = raw_w1(target, copy, &rows, chunk, sizes.w1_reps * RAW_PARTS)?;
    if std::env::var_os("BENCH_SAMPLES").is_some() {
        println!("# scale {name} samples (us): raw_w1 {}", micros(&raw_big));
        println!(
            "# scale_control {name} samples (us): raw_w1 {}",
            micros(&raw_small)
        );
    }
    line(
        &format!("scale_raw_w1_saves_per_s_{name}"),
        format_args!("{:.0}", per_second(chunk, median(raw_big.clone()))),
    );
    line(
        &format!("scale_raw_control_w1_saves_per_s_{name}"),
        format_args!("{:.0}", per_second(chunk, median(raw_small.clone()))),
    );
    line(
        &format!("scale_raw_w1_ratio_{name}"),
        format_args!("{:.3}", median_ratio(&raw_small, &raw_big)),
    );
    big.print("scale", name);
    small.print("scale_control", name);
    let figures = big.figures(saves);
    print_figures("scale", name, &figures);
    print_figures("scale_control", name, &small.figures(saves));
    big.print_ratios(&small, name);
    Ok(figures)
}
