//! Event bodies must be deterministic: replay runs them again on stored
//! events. `#[aggregate(check_replay)]` checks it in debug builds (tests
//! run in them) by applying each live event to a fresh copy too; a body
//! that reads the clock is caught at the save, before anything is stored.
//! `recorded_at()` is the deterministic way to know when an event happened.

use std::sync::atomic::{AtomicU64, Ordering};

use eventsourcing::prelude::*;
use std::collections::HashSet;

/// A body that counts its own runs: a different value each time it runs.
static RUNS: AtomicU64 = AtomicU64::new(0);

#[aggregate(check_replay)]
#[derive(Debug, Default)]
struct Shipment {
    eta: u64,
    tags: HashSet<String>,
    created_on: i64,
    modified_on: i64,
}

#[aggregate]
impl Shipment {
    #[created(Created)]
    fn create(&mut self) {
        self.created_on = self.recorded_at();
        self.modified_on = self.recorded_at();
    }

    /// The mistake: the body computes a value that replay would compute
    /// differently (here a counter; in real code, the clock).
    #[event(Dispatched)]
    fn dispatch(&mut self) {
        self.eta = RUNS.fetch_add(1, Ordering::SeqCst);
        self.modified_on = self.recorded_at();
    }

    /// The right way: the computed value is a field of the event.
    #[event(Scheduled)]
    fn schedule(&mut self, eta: u64) {
        self.eta = eta;
        self.modified_on = self.recorded_at();
    }

    /// Deterministic, though a hash set's order differs between copies.
    #[event(Tagged)]
    fn tag(&mut self, tags: Vec<String>) {
        self.tags.extend(tags);
    }
}

#[test]
fn a_body_that_does_not_replay_as_it_ran_fails_the_save() {
    let app = Application::builder().build().unwrap();
    let mut shipment = Shipment::create();
    shipment.dispatch();
    match app.save(&mut shipment) {
        Err(Error::NonDeterministic { topic, id, version }) => {
            assert_eq!(
                (topic, id, version),
                ("Shipment.Dispatched", shipment.id(), 2)
            );
        }
        other => panic!("expected a non-deterministic body, got {other:?}"),
    }
    assert!(!app.repository().contains(shipment.id()).unwrap());
}

#[test]
fn deterministic_bodies_pass_the_check() {
    let app = Application::builder().build().unwrap();
    let mut shipment = Shipment::create();
    shipment.schedule(42);
    shipment.tag((0..20).map(|i| format!("tag-{i}")).collect());
    app.save(&mut shipment).unwrap();
    let loaded: Shipment = app.repository().get(shipment.id()).unwrap();
    assert_eq!(loaded.eta, 42);
    assert_eq!(loaded.tags, shipment.tags);
}

#[test]
fn recorded_at_is_each_events_own_timestamp_live_and_on_replay() {
    let app = Application::builder()
        .snapshot_every::<Shipment>(2)
        .build()
        .unwrap();
    let mut shipment = Shipment::create();
    shipment.schedule(1);
    shipment.schedule(2);
    app.save(&mut shipment).unwrap();
    let events = app.event_store().recorded_events(shipment.id()).unwrap();
    assert_eq!(shipment.created_on, events[0].timestamp);
    assert_eq!(shipment.modified_on, events[2].timestamp);
    assert_eq!(shipment.recorded_at(), events[2].timestamp);

    // Replayed, from the snapshot at 3 and in full: the same values.
    let loaded: Shipment = app.repository().get(shipment.id()).unwrap();
    assert_eq!(
        (loaded.created_on, loaded.modified_on, loaded.recorded_at()),
        (
            events[0].timestamp,
            events[2].timestamp,
            events[2].timestamp
        )
    );
    let earlier: Shipment = app.repository().get_at(shipment.id(), 2).unwrap();
    assert_eq!(earlier.modified_on, events[1].timestamp);
    assert_eq!(earlier.recorded_at(), events[1].timestamp);
}
