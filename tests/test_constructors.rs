//! Aggregates without `Default`: the creation method takes no `self` and
//! returns `Self`, building the state from the creation event's fields, so
//! a field like `origin: Location` needs no fake default. Such aggregates
//! save, load, snapshot and replay like any other.

use eventsourcing::prelude::*;
use eventsourcing::testing::Scenario;
use support::stores::each_store;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
enum Location {
    Hongkong,
    Stockholm,
    Helsinki,
}

#[aggregate]
#[derive(Debug, Clone, PartialEq)]
struct Cargo {
    origin: Location,
    destination: Location,
    legs: Vec<Location>,
}

#[aggregate]
impl Cargo {
    #[created(Booked)]
    fn book(origin: Location, destination: Location) -> Self {
        Self {
            origin,
            destination,
            legs: Vec::new(),
        }
    }

    #[event(LegAdded)]
    fn add_leg(&mut self, to: Location) {
        self.legs.push(to);
    }

    #[event(Rerouted)]
    fn reroute(&mut self, destination: Location) {
        self.destination = destination;
    }
}

#[test]
fn an_aggregate_without_default_is_built_by_its_creation_method() {
    let mut cargo = Cargo::book(Location::Hongkong, Location::Stockholm);
    assert_eq!(cargo.version(), 1);
    assert_eq!(cargo.origin, Location::Hongkong);
    cargo.add_leg(Location::Helsinki);
    let events = cargo.decode_pending().unwrap();
    assert_eq!(
        events[0].event,
        CargoEvent::Booked {
            origin: Location::Hongkong,
            destination: Location::Stockholm
        }
    );
    let id = Uuid::from_u128(5);
    let other = Cargo::book_with_id(id, Location::Helsinki, Location::Hongkong);
    assert_eq!(other.id(), id);
}

#[test]
fn it_saves_loads_snapshots_and_replays_on_every_store() {
    each_store(
        |builder| builder.snapshot_every::<Cargo>(2),
        |store, app| {
            let mut cargo = Cargo::book(Location::Hongkong, Location::Stockholm);
            cargo.add_leg(Location::Helsinki);
            cargo.reroute(Location::Helsinki);
            app.save(&mut cargo).unwrap();
            let loaded: Cargo = app.repository().get(cargo.id()).unwrap();
            assert_eq!(loaded, cargo, "{store}");
            let first: Cargo = app.repository().get_at(cargo.id(), 1).unwrap();
            assert_eq!(first.destination, Location::Stockholm, "{store}");
            assert!(first.legs.is_empty(), "{store}");
            assert_eq!(
                app.event_store().verify(cargo.id()).unwrap(),
                cargo.head(),
                "{store}"
            );
            let events = cargo.pending_events().to_vec();
            assert!(events.is_empty(), "{store}");
            let history: Vec<_> = app.event_store().recorded_events(cargo.id()).unwrap();
            let replayed = Cargo::replay(cargo.id(), history.into_iter().map(Ok))
                .unwrap()
                .unwrap();
            assert_eq!(replayed, cargo, "{store}");
        },
    );
}

#[test]
fn the_test_harness_takes_it() {
    Scenario::<Cargo>::given([
        CargoEvent::Booked {
            origin: Location::Hongkong,
            destination: Location::Stockholm,
        },
        CargoEvent::LegAdded {
            to: Location::Helsinki,
        },
    ])
    .when(|cargo| cargo.reroute(Location::Helsinki))
    .then_events([CargoEvent::Rerouted {
        destination: Location::Helsinki,
    }])
    .then_replay_matches();
}

/// With `Default` as well, the explicit `start` and the generated creation
/// method agree: applying the creation event to a started aggregate
/// replaces its state and keeps its bookkeeping.
#[test]
fn with_default_too_applying_the_creation_event_replaces_the_state() {
    #[aggregate]
    #[derive(Debug, Default, Clone, PartialEq)]
    struct Note {
        text: String,
    }

    #[aggregate]
    impl Note {
        #[created(Written)]
        fn write(text: String) -> Self {
            Note { text }
        }
    }

    let built = Note::write("hello".into());
    let started = Note::start_with_id(
        built.id(),
        NoteEvent::Written {
            text: "hello".into(),
        },
    );
    assert_eq!(started.text, "hello");
    assert_eq!(started.version(), 1);
    assert_eq!(started.id(), built.id());
}
