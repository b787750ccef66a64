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

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use eventsourcing::prelude::*;
use eventsourcing::system::{MachineOptions, Runner, SystemRunning};
use eventsourcing::{Metadata, Result};
use support::child::signal;
use support::netns::Node;
use support::orders;
use support::pg::{self, Decision};

/// The applications of node `node` on `uri`, every event they record
/// marked with the node's name.
fn factory(uri: String, node: &str) -> impl Fn(&str) -> Result<Application> + Send + Sync + use<> {
    orders::factory(uri, Metadata::new().with("node", node))
}

/// Leases of 1 s, renewed every third of one.
fn options(name: &str) -> MachineOptions {
    MachineOptions::new(name)
        .lease(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(20))
}

/// What a node prints once it has lost units and holds none: every
/// follower it ran has been stopped (waited for), and it takes no unit
/// again, so that it can record nothing more.
const SETTLED: &str = "fenced node settled";

/// A node in a process of its own, until its standard input closes. It
/// takes no unit again once it has lost one (decided in the round that
/// notices the loss), so that whatever it records after its interruption
/// was recorded under a lease it lost, never under one taken anew: on a
/// loaded machine the main node's leases can lapse too, and a node that
/// took units again would record legitimately. Once it has lost units and
/// holds none, it prints [`SETTLED`]; it fails (its process exits
/// unsuccessfully) unless it did, or if it took units again.
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
        .start_with(
            Runner::Machines(options(&name).stop_taking_after_loss(true)),
            factory(uri, &name),
        )
        .unwrap();
    let closed = std::sync::Arc::new(AtomicBool::new(false));
    let stdin_closed = std::sync::Arc::clone(&closed);
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        stdin_closed.store(true, Ordering::SeqCst);
    });
    let mut settled = false;
    while !closed.load(Ordering::SeqCst) {
        // `held` waits for a round in progress, which counts its losses
        // only once it has stopped their followers.
        if !settled && running.held().is_empty() && running.lost() > 0 {
            println!("{SETTLED}");
            std::io::stdout().flush().unwrap();
            settled = true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let held = running.held();
    eprintln!("node {name}: lost {} units, holds {held:?}", running.lost());
    // Its followers may have ended fenced; stopping reports nothing then.
    running.stop().unwrap();
    assert!(settled, "node {name} never lost its units");
    assert!(held.is_empty(), "node {name} took units again: {held:?}");
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

/// The URI the nodes use: a transaction a cut-off or paused node left open
/// is ended by the server, so that the node taking over is not held up by
/// its row locks.
fn node_uri(scratch: &pg::Scratch) -> String {
    format!(
        "{}%20-cidle_in_transaction_session_timeout%3D1000",
        scratch.db_uri()
    )
}

/// Starts `child_node` named `name` with `command` (this test binary, or
/// it inside a namespace) reaching PostgreSQL at `uri`.
fn start_node(mut command: Command, name: &str, uri: &str) -> Child {
    command
        .args(["--exact", "child_node", "--nocapture", "--test-threads=1"])
        .env("ES_FENCED_URI", uri)
        .env("ES_FENCED_NAME", name)
        .env_remove("DB_URI")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Sets its flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The scenario both tests share: the node `name` (started as `child`)
/// and a main node share the units while orders keep coming; once the
/// node has recorded something, `interrupt` takes it away until the main
/// node holds every unit; then `resume` gives it back until it has
/// settled (see [`SETTLED`]). Returns the events the node had recorded
/// before `resume` and once settled,
/// how many orders the oracle checked (every one reserved and paid
/// exactly once), and how many units the main node lost meanwhile (its
/// leases lapsing on a loaded machine, say).
fn fence(
    name: &str,
    uri: &str,
    mut child: Child,
    interrupt: impl FnOnce(&Child),
    resume: impl FnOnce(&Child),
) -> (usize, usize, usize, u64) {
    let system = orders::system(2).unwrap();
    let mut running = system
        .start_with(
            Runner::Machines(options("main")),
            factory(uri.to_owned(), "main"),
        )
        .unwrap();
    let mut ids = orders::place(&running, 0..20).unwrap();
    let (settled, told) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        // (libtest prints `test child_node ... ` first, on the same line.)
        for line in BufReader::new(stdout).lines() {
            if line.is_ok_and(|line| line.ends_with(SETTLED)) {
                let _ = settled.send(());
            }
        }
    });
    let stop = AtomicBool::new(false);
    let (before, after) = std::thread::scope(|scope| {
        let placing =
            scope.spawn(|| orders::keep_placing(&running, &stop, 1000, Duration::from_millis(5)));
        // A panic below must stop the placing too, or the scope waits for
        // it forever.
        let _stop_placing = StopOnDrop(&stop);
        wait_until("the node to work", Duration::from_mins(1), || {
            recorded_by(&running, name) > 0
        });
        interrupt(&child);
        wait_until("the main node to take over", Duration::from_mins(1), || {
            running.held().len() == 5
        });
        let before = recorded_by(&running, name);
        resume(&child);
        // No fixed wait: a node whose link comes back can stay stuck in a
        // TCP retransmission back-off for seconds, and commit only then.
        told.recv_timeout(Duration::from_mins(1))
            .expect("the node to settle after it was resumed");
        let after = recorded_by(&running, name);
        stop.store(true, Ordering::SeqCst);
        ids.extend(placing.join().unwrap());
        (before, after)
    });
    drop(child.stdin.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "the node {name} failed: {status}");
    assert!(
        running
            .wait_until_quiescent(Duration::from_mins(2))
            .unwrap()
    );
    let report = orders::check(&running, &ids).unwrap();
    let lost = running.lost();
    running.stop().unwrap();
    (before, after, report.orders, lost)
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
    let uri = node_uri(&scratch);
    let child = start_node(
        node.command(std::env::current_exe().unwrap()),
        "cut",
        &node.postgres_url(&uri),
    );
    let (before, after, orders, lost) = fence(
        "cut",
        &uri,
        child,
        |_| node.cut().unwrap(),
        |_| node.restore().unwrap(),
    );
    println!(
        "netns: node cut off until its leases expired; it had recorded {before} events, and \
         {after} after it was restored; {orders} orders each reserved and paid exactly once; the \
         main node lost {lost} units"
    );
    assert_eq!(
        after, before,
        "the cut node committed after losing its leases"
    );
}

#[test]
fn a_node_paused_until_its_leases_expire_commits_nothing_after() {
    let url = pg::url();
    if let Decision::Skip(reason) = pg::decide(&url, pg::required()) {
        eprintln!("skipped: {reason}");
        return;
    }
    let scratch = pg::Scratch::new().expect("scratch schema");
    let uri = node_uri(&scratch);
    let child = start_node(
        Command::new(std::env::current_exe().unwrap()),
        "paused",
        &uri,
    );
    let (before, after, orders, lost) = fence(
        "paused",
        &uri,
        child,
        |child| assert!(signal(child.id(), "-STOP")),
        |child| assert!(signal(child.id(), "-CONT")),
    );
    println!(
        "paused: node stopped until its leases expired; it had recorded {before} events, and \
         {after} after it was continued; {orders} orders each reserved and paid exactly once; the \
         main node lost {lost} units"
    );
    assert_eq!(
        after, before,
        "the paused node committed after losing its leases"
    );
}
