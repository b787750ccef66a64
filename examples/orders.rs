//! The seed's orders system, `Orders | Reservations | Orders, Orders |
//! Payments | Orders`, run on the runner of your choice: it places orders,
//! waits until the system is quiescent, checks that every order was
//! reserved and paid exactly once, and prints orders per second and the
//! latency from placed to paid. The applications and the oracle are in
//! `src/orders.rs`.
//!
//! ```text
//! cargo run --example orders -- --runner single
//! DB_URI=sqlite:////tmp/orders.db cargo run --example orders -- --runner processes
//! DB_URI=postgres://postgres@127.0.0.1:5432/test cargo run --example orders -- --runner machines
//! ```
//!
//! Options: `--runner single|threads|processes|machines` (threads unless
//! given), `--orders N` (1,000), `--partitions N` (1), `--nodes N` (the
//! machine runner's nodes in this process, 3).

use std::error::Error;
use std::time::{Duration, Instant};

use eventsourcing::system::{ProcessOptions, Runner, SystemRunning};
use support::orders;

struct Args {
    runner: String,
    orders: usize,
    partitions: u32,
    nodes: usize,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        runner: "threads".into(),
        orders: 1000,
        partitions: 1,
        nodes: 3,
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let value = given.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--runner" => args.runner.clone_from(&value),
            "--orders" => args.orders = number()?,
            "--partitions" => {
                args.partitions = u32::try_from(number()?).map_err(|e| e.to_string())?;
            }
            "--nodes" => args.nodes = number()?.max(1),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(args)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = args()?;
    let system = orders::system(args.partitions)?;
    let mut nodes: Vec<SystemRunning> = Vec::new();
    let mut running = match args.runner.as_str() {
        "single" => system.start(Runner::SingleThread)?,
        "threads" => system.start(Runner::Threads)?,
        // Children run this program again; `start` does not return in them.
        "processes" => system.start(Runner::Processes(ProcessOptions::new()))?,
        "machines" => start_machines(&system, args.nodes, &mut nodes)?,
        other => return Err(format!("unknown runner {other}").into()),
    };
    // Order numbers of their own for this run, so that runs can share a
    // database: from the microseconds since 1970 (a run that places N
    // orders lasts far more than N microseconds, so the next one starts
    // past its numbers).
    let first = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_micros(),
    )?;
    let started = Instant::now();
    let ids = orders::place(&running, first..first + args.orders as u64)?;
    if !running.wait_until_quiescent(Duration::from_mins(5))? {
        return Err("the system did not settle within 300 s".into());
    }
    let elapsed = started.elapsed();
    let report = orders::check(&running, &ids)?;
    #[allow(clippy::cast_precision_loss, reason = "a rate")]
    let rate = report.orders as f64 / elapsed.as_secs_f64();
    println!(
        "orders: {} orders on the {} runner, each reserved and paid exactly once; \
         {rate:.0} orders/s; placed to paid p50 {:.2} ms, p99 {:.2} ms",
        report.orders,
        args.runner,
        report.quantile(0.5).as_secs_f64() * 1e3,
        report.quantile(0.99).as_secs_f64() * 1e3,
    );
    running.stop()?;
    for node in nodes {
        node.stop()?;
    }
    Ok(())
}

/// The machine runner: `nodes` nodes in this process, as many machines
/// would run one each; the first also takes the orders.
fn start_machines(
    system: &eventsourcing::system::System,
    nodes: usize,
    others: &mut Vec<SystemRunning>,
) -> Result<SystemRunning, Box<dyn Error>> {
    use eventsourcing::system::MachineOptions;
    let node = |i: usize| {
        MachineOptions::new(format!("node-{}-{i}", std::process::id()))
            .lease(Duration::from_secs(2))
    };
    let first = system.start(Runner::Machines(node(0)))?;
    for i in 1..nodes {
        others.push(system.start(Runner::Machines(node(i)))?);
    }
    Ok(first)
}
