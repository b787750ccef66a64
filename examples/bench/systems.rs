//! S1: the seed's orders system (`Orders | Reservations | Orders, Orders |
//! Payments | Orders`, `support::orders`) on each runner: orders placed
//! one save at a time from one thread, then waited for until the system
//! is quiescent. Orders per second over the whole (placing to the last
//! paid), and the latency of each order from its `Created` event to its
//! `Paid` event (p50, p99). The oracle checks every order was reserved and
//! paid exactly once before a figure is printed.
//!
//! SQLite: a fresh file per run (`synchronous=NORMAL`, the library's
//! default); PostgreSQL (`--db postgres`): a fresh schema per run, and the
//! machine runner with three nodes in this process.

use std::time::{Duration, Instant};

use eventsourcing::prelude::*;
use eventsourcing::system::{MachineOptions, ProcessOptions, Runner, System};
use support::orders;

use super::Result;
use super::workloads::{line, per_second};

/// The argument that makes the bench program a child of the process
/// runner.
pub(super) const CHILD: &str = "--systems-child";

/// Where the applications live: the same for parent and children.
fn factory(uri: String) -> impl Fn(&str) -> eventsourcing::Result<Application> + Send + Sync {
    orders::factory(uri, eventsourcing::Metadata::new())
}

/// A child of the process runner: follows until its parent stops it.
pub(super) fn child() -> Result<()> {
    let uri = std::env::var("ES_BENCH_URI")?;
    orders::system(1)?.start_with(Runner::Processes(ProcessOptions::new()), factory(uri))?;
    Ok(())
}

/// One measured run: orders/s, p50 and p99 in milliseconds.
fn measure(
    system: &System,
    runner: Runner,
    uri: &str,
    count: u64,
    nodes: usize,
) -> Result<[f64; 3]> {
    let mut others = Vec::new();
    if let Runner::Machines(_) = &runner {
        for i in 1..nodes {
            let node = MachineOptions::new(format!("bench-{i}")).lease(Duration::from_secs(2));
            others.push(system.start_with(Runner::Machines(node), factory(uri.to_owned()))?);
        }
    }
    let mut running = system.start_with(runner, factory(uri.to_owned()))?;
    let started = Instant::now();
    let ids = orders::place(&running, 0..count)?;
    if !running.wait_until_quiescent(Duration::from_mins(10))? {
        return Err("the system did not settle".into());
    }
    let elapsed = started.elapsed();
    let report = orders::check(&running, &ids)?;
    running.stop()?;
    for node in others {
        node.stop()?;
    }
    Ok([
        per_second(report.orders, elapsed),
        report.quantile(0.5).as_secs_f64() * 1e3,
        report.quantile(0.99).as_secs_f64() * 1e3,
    ])
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn report(name: &str, runs: &[[f64; 3]]) {
    let pick = |i: usize| median(runs.iter().map(|r| r[i]).collect());
    line(
        &format!("s1_orders_per_s_{name}"),
        format!("{:.0}", pick(0)),
    );
    line(&format!("s1_p50_ms_{name}"), format!("{:.2}", pick(1)));
    line(&format!("s1_p99_ms_{name}"), format!("{:.2}", pick(2)));
}

/// Runs S1 on `db` (`sqlite` or `postgres`), `count` orders a run, median
/// of `repeats` runs.
pub(super) fn run(db: &str, count: u64, repeats: usize) -> Result<()> {
    let system = orders::system(1)?;
    let exe = std::env::current_exe()?;
    line("db", db);
    line("s1_orders", count);
    // On SQLite, the single runner once more with a larger WAL checkpoint
    // interval (`wal_autocheckpoint=10000`): its many small commits spend a
    // share of their time in checkpoints.
    let names: &[&str] = if db == "postgres" {
        &["single", "threads", "processes", "machines"]
    } else {
        &["single", "single_ckpt10k", "threads", "processes"]
    };
    for &name in names {
        let mut runs = Vec::new();
        for _ in 0..repeats {
            let dir = tempfile::tempdir()?;
            let scratch;
            let uri = match db {
                "postgres" => {
                    scratch = support::pg::Scratch::new().ok_or("PostgreSQL is not reachable")?;
                    scratch.db_uri()
                }
                _ => format!("sqlite:///{}", dir.path().join("orders.db").display()),
            };
            let uri = if name == "single_ckpt10k" {
                format!("{uri}?wal_autocheckpoint=10000")
            } else {
                uri
            };
            let runner = match name {
                "single" | "single_ckpt10k" => Runner::SingleThread,
                "threads" => Runner::Threads,
                "processes" => Runner::Processes(
                    ProcessOptions::new()
                        .program(&exe)
                        .args([CHILD])
                        .env("ES_BENCH_URI", &uri),
                ),
                _ => Runner::Machines(MachineOptions::new("bench-0").lease(Duration::from_secs(2))),
            };
            runs.push(measure(&system, runner, &uri, count, 3)?);
        }
        report(name, &runs);
    }
    Ok(())
}
