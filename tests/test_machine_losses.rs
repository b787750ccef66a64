//! The machine runner's count of lost units (`SystemRunning::lost`) and
//! `MachineOptions::stop_taking_after_loss`: a node whose leases are made
//! to lapse (by the test, in the lease table) counts them lost; with the
//! option it takes none again, not even in the round that noticed the
//! loss, and leaves them to the other nodes; without it, it takes them
//! again. Needs PostgreSQL (skipped without it, unless it is required).

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
