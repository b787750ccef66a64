//! Fencing under the machine runner: a node that lost its leases commits
//! nothing more, and the system ends exactly-once.
//!
//! - For real: a node in a network namespace of its own reaches PostgreSQL
//!   over a veth link; the link is cut (the node is not killed) until its
//!   leases expire and another node takes its units over; then it is
//!   restored. Skipped, with the reason printed, where namespaces cannot
//!   be made (not root, no `ip`).
//! - Paused: a node is stopped with SIGSTOP in the middle of its work
//!   until the other node has taken its units over, then continued: its
//!   followers resume where they were, batches handled and about to
//!   commit, and only the raised epochs stop them.
//!
//! Both need PostgreSQL (skipped without it, unless it is required).

use std::io::Read;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use eventsourcing::prelude::*;
use eventsourcing::system::{MachineOptions, Runner, SystemRunning, table_prefix};
use eventsourcing::{Metadata, Result};
use support::netns::Node;
use support::orders;
use support::pg::{self, Decision};

/// The applications of node `node` on `uri`, every event they record
/// marked with the node's name.
fn factory(uri: String, node: String) -> impl Fn(&str) -> Result<Application> + Send + Sync {
    move |name| {
        Application::builder()
            .db_uri(uri.clone())
            .name(name)
            .table_prefix(table_prefix(name))
            .metadata(Metadata::new().with("node", node.clone()))
            .build()
    }
}

fn options(name: &str) -> MachineOptions {
    MachineOptions::new(name)
        .lease(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(20))
}

/// A node in a process of its own: runs until it has lost every unit it held
/// (then stops, so that it does not take units again once its link is
/// back: what it commits after that would be under new leases), or its
/// standard input closes.
#[test]
fn child_node() {
    let (Ok(uri), Ok(name)) = (
        std::env::var("ES_FENCED_URI"),
        std::env::var("ES_FENCED_NAME"),
    ) else {
        return;
    };
    let running = orders::system(2)
        .unwrap()
        .start_with(Runner::Machines(options(&name)), factory(uri, name.clone()))
        .unwrap();
    let closed = std::sync::Arc::new(AtomicBool::new(false));
    let stdin_closed = std::sync::Arc::clone(&closed);
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        stdin_closed.store(true, Ordering::SeqCst);
    });
    let mut held_some = false;
    while !closed.load(Ordering::SeqCst) {
        let held = !running.held().is_empty();
        if held_some && !held {
            eprintln!("node {name}: lost every unit");
            break;
        }
        held_some |= held;
        std::thread::sleep(Duration::from_millis(5));
    }
    // Its followers may have ended fenced; stopping reports nothing then.
    running.stop().unwrap();
}

/// How many events in the system the node named `node` recorded.
fn recorded_by(running: &SystemRunning, node: &str) -> usize {
    let mut count = 0;
    for name in running.system().names() {
        let app = running.application(name).unwrap();
        let log = app.notification_log();
        let rows = app
            .event_store()
            .recorder()
            .select_notifications(1, usize::MAX, &[])
            .unwrap();
        for row in rows {
            let event = log.decode(row).unwrap();
            let meta = event.metadata().unwrap();
            if meta.get("node").and_then(|n| n.as_str()) == Some(node) {
                count += 1;
            }
        }
    }
    count
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "waited too long for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_node_cut_off_until_its_leases_expire_commits_nothing_after() {
    let url = pg::url();
    if let Decision::Skip(reason) = pg::decide(&url, pg::required()) {
        eprintln!("skipped: {reason}");
        return;
    }
    let node = match Node::create("sys", 0) {
        Ok(node) => node,
        Err(skip) => {
            eprintln!("skipped: {skip}");
            return;
        }
    };
    let scratch = pg::Scratch::new().expect("scratch schema");
    // A transaction the cut node left open is ended by the server, so that
    // the node taking over is not held up by its row locks.
    let uri = format!(
        "{}%20-cidle_in_transaction_session_timeout%3D1000",
        scratch.db_uri()
    );
    let mut child = node
        .command(std::env::current_exe().unwrap())
        .args(["--exact", "child_node", "--nocapture", "--test-threads=1"])
        .env("ES_FENCED_URI", node.postgres_url(&uri))
        .env("ES_FENCED_NAME", "cut")
        .env_remove("DB_URI")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // The two nodes share the units out.
    let system = orders::system(2).unwrap();
    let mut running = system
        .start_with(
            Runner::Machines(options("main")),
            factory(uri.clone(), "main".to_owned()),
        )
        .unwrap();
    let mut ids = orders::place(&running, 0..20).unwrap();
    let stop = AtomicBool::new(false);
    let (before, after) = std::thread::scope(|scope| {
        let placing = scope.spawn(|| {
            let mut placed = Vec::new();
            let mut number = 1000;
            while !stop.load(Ordering::SeqCst) {
                placed.extend(orders::place(&running, number..number + 2).unwrap());
                number += 2;
                std::thread::sleep(Duration::from_millis(10));
            }
            placed
        });
        wait_until("the cut node to work", Duration::from_mins(1), || {
            recorded_by(&running, "cut") > 0
        });
        node.cut().unwrap();
        // Its leases expire; the main node takes every unit over.
        wait_until("the main node to take over", Duration::from_mins(1), || {
            running.held().len() == 5
        });
        let before = recorded_by(&running, "cut");
        node.restore().unwrap();
        // Restored, while orders keep coming, for several leases.
        std::thread::sleep(Duration::from_secs(4));
        let after = recorded_by(&running, "cut");
        stop.store(true, Ordering::SeqCst);
        ids.extend(placing.join().unwrap());
        (before, after)
    });
    drop(child.stdin.take());
    let _ = child.wait();
    assert!(
        running
            .wait_until_quiescent(Duration::from_mins(2))
            .unwrap()
    );
    let report = orders::check(&running, &ids).unwrap();
    println!(
        "netns: node cut off until its leases expired; it had recorded {before} events, and \
         {after} after it was restored; {} orders each reserved and paid exactly once",
        report.orders
    );
    assert_eq!(
        after, before,
        "the cut node committed after losing its leases"
    );
    running.stop().unwrap();
}

fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

#[test]
fn a_node_paused_until_its_leases_expire_commits_nothing_after() {
    let url = pg::url();
    if let Decision::Skip(reason) = pg::decide(&url, pg::required()) {
        eprintln!("skipped: {reason}");
        return;
    }
    let scratch = pg::Scratch::new().expect("scratch schema");
    let uri = format!(
        "{}%20-cidle_in_transaction_session_timeout%3D1000",
        scratch.db_uri()
    );
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_node", "--nocapture", "--test-threads=1"])
        .env("ES_FENCED_URI", &uri)
        .env("ES_FENCED_NAME", "paused")
        .env_remove("DB_URI")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let system = orders::system(2).unwrap();
    let mut running = system
        .start_with(
            Runner::Machines(options("main")),
            factory(uri.clone(), "main".to_owned()),
        )
        .unwrap();
    let mut ids = orders::place(&running, 0..20).unwrap();
    let stop = AtomicBool::new(false);
    let (before, after) = std::thread::scope(|scope| {
        let placing = scope.spawn(|| {
            let mut placed = Vec::new();
            let mut number = 1000;
            while !stop.load(Ordering::SeqCst) {
                placed.extend(orders::place(&running, number..number + 2).unwrap());
                number += 2;
                std::thread::sleep(Duration::from_millis(5));
            }
            placed
        });
        wait_until("the paused node to work", Duration::from_mins(1), || {
            recorded_by(&running, "paused") > 10
        });
        signal(child.id(), "-STOP");
        wait_until("the main node to take over", Duration::from_mins(1), || {
            running.held().len() == 5
        });
        let before = recorded_by(&running, "paused");
        signal(child.id(), "-CONT");
        std::thread::sleep(Duration::from_secs(3));
        let after = recorded_by(&running, "paused");
        stop.store(true, Ordering::SeqCst);
        ids.extend(placing.join().unwrap());
        (before, after)
    });
    drop(child.stdin.take());
    let _ = child.wait();
    assert!(
        running
            .wait_until_quiescent(Duration::from_mins(2))
            .unwrap()
    );
    let report = orders::check(&running, &ids).unwrap();
    println!(
        "paused: node stopped until its leases expired; it had recorded {before} events, and \
         {after} after it was continued; {} orders each reserved and paid exactly once",
        report.orders
    );
    assert_eq!(
        after, before,
        "the paused node committed after losing its leases"
    );
    running.stop().unwrap();
}
