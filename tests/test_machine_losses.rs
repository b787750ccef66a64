//! The machine runner's count of lost units (`SystemRunning::lost`) and
//! `MachineOptions::stop_taking_after_loss`: a node whose leases are made
//! to lapse (by the test, in the lease table) counts them lost; with the
//! option it takes none again, not even in the round that noticed the
//! loss, and leaves them to the other nodes; without it, it takes them
//! again. And a node whose lease lapsed (and went to another node) while
//! it started the unit's follower does not run that follower. Needs
//! PostgreSQL (skipped without it, unless it is required).

use std::time::{Duration, Instant};

use eventsourcing::Metadata;
use eventsourcing::system::{MachineOptions, Runner, SystemRunning};
use support::orders;
use support::pg::{self, Decision, Scratch};

/// The system's units: `Reservations` and `Payments` in two partitions
/// each, and `Orders`.
const UNITS: usize = 5;

/// Leases of 3 s: none lapses by itself while the test watches.
fn options(name: &str) -> MachineOptions {
    MachineOptions::new(name)
        .lease(Duration::from_secs(3))
        .poll_interval(Duration::from_millis(20))
}

fn start(scratch: &Scratch, options: MachineOptions) -> SystemRunning {
    orders::system(2)
        .unwrap()
        .start_with(
            Runner::Machines(options),
            orders::factory(scratch.db_uri(), Metadata::new()),
        )
        .unwrap()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_mins(1);
    while !done() {
        assert!(Instant::now() < deadline, "waited too long for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Makes every unit's lease lapse, as if its node had not renewed it.
fn expire_units(scratch: &Scratch) -> u64 {
    scratch
        .client()
        .execute(
            "UPDATE orders_system_leases SET expires = now() - interval '1 second' \
             WHERE unit NOT LIKE 'node:%'",
            &[],
        )
        .unwrap()
}

fn scratch() -> Option<Scratch> {
    let url = pg::url();
    if let Decision::Skip(reason) = pg::decide(&url, pg::required()) {
        eprintln!("skipped: {reason}");
        return None;
    }
    Some(Scratch::new().expect("scratch schema"))
}

#[test]
fn a_node_told_to_stop_taking_after_a_loss_takes_nothing_again() {
    let Some(scratch) = scratch() else { return };
    let first = start(&scratch, options("first").stop_taking_after_loss(true));
    wait_until("the first node to take every unit", || {
        first.held().len() == UNITS
    });
    assert_eq!(first.lost(), 0);
    assert_eq!(expire_units(&scratch), UNITS as u64);
    wait_until("the first node to notice its losses", || {
        first.lost() >= UNITS as u64
    });
    // The round that counted the losses is over once `held` answers: the
    // units were free for the taking in it, and it took none.
    assert_eq!(first.held(), Vec::<String>::new());
    // No longer one of the live nodes: a second one takes every unit, not
    // its share of two.
    let second = start(&scratch, options("second"));
    wait_until("the second node to take every unit", || {
        second.held().len() == UNITS
    });
    assert_eq!(first.held(), Vec::<String>::new());
    assert_eq!(first.lost(), UNITS as u64);
    assert_eq!(second.lost(), 0);
    first.stop().unwrap();
    second.stop().unwrap();
}

#[test]
fn a_node_takes_its_units_again_after_a_loss_unless_told_not_to() {
    let Some(scratch) = scratch() else { return };
    let node = start(&scratch, options("node"));
    wait_until("the node to take every unit", || node.held().len() == UNITS);
    assert_eq!(expire_units(&scratch), UNITS as u64);
    wait_until("the node to notice its losses", || {
        node.lost() >= UNITS as u64
    });
    wait_until("the node to take its units again", || {
        node.held().len() == UNITS
    });
    assert_eq!(node.lost(), UNITS as u64);
    node.stop().unwrap();
}

#[test]
fn a_node_whose_lease_lapsed_while_its_follower_started_does_not_run_it() {
    let Some(scratch) = scratch() else { return };
    // A first node brings the partitions level and makes every tracking
    // row, then gives its units up.
    let warm = start(&scratch, options("warm"));
    wait_until("the first node to take every unit", || {
        warm.held().len() == UNITS
    });
    warm.stop().unwrap();
    // Every tracking row locked: a follower's start, raising its epochs,
    // waits, its node having taken the unit's lease.
    let mut locker = scratch.client();
    let mut tx = locker.transaction().unwrap();
    for table in [
        "orders_tracking",
        "reservations_tracking",
        "payments_tracking",
    ] {
        tx.execute(&format!("SELECT 1 FROM {table} FOR UPDATE"), &[])
            .unwrap();
    }
    let node = start(&scratch, options("taker"));
    let mut client = scratch.client();
    let mut unit = None;
    // (`held` would wait for the node's round, which waits for the lock.)
    wait_until("the node to take a lease", || {
        unit = client
            .query_opt(
                "SELECT unit FROM orders_system_leases \
                 WHERE node = 'taker' AND unit NOT LIKE 'node:%'",
                &[],
            )
            .unwrap()
            .map(|row| row.get::<_, String>(0));
        unit.is_some()
    });
    let unit = unit.unwrap();
    // Meanwhile its lease lapsed and another node took the unit over.
    let stolen = client
        .execute(
            "UPDATE orders_system_leases SET node = 'thief', \
             expires = now() + interval '1 minute' WHERE unit = $1",
            &[&unit],
        )
        .unwrap();
    assert_eq!(stolen, 1);
    tx.rollback().unwrap();
    // `held` answers once that round is over: it took every other unit,
    // and gave up the one whose follower it started too late.
    let held = node.held();
    assert!(!held.contains(&unit), "{unit} is run by {held:?}");
    assert_eq!(held.len(), UNITS - 1, "{held:?}");
    assert_eq!(node.lost(), 1);
    node.stop().unwrap();
}
