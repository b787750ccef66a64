//! Typed history: an aggregate's events as its own event enum, with
//! version, timestamp and metadata; pending events decoded the same way;
//! decoding errors that are this crate's `Error`, so `?` works.

use eventsourcing::prelude::*;
use eventsourcing::{IntegrityFault, Metadata, Recorded};
use support::fixtures::{World, WorldEvent};
use support::sqlite::FileDb;
use support::stores::each_store;

#[aggregate]
#[derive(Debug, Default)]
struct Dog {
    tricks: Vec<String>,
}

#[aggregate]
impl Dog {
    #[created(Registered)]
    fn register(&mut self) {}

    #[event(TrickAdded)]
    fn add_trick(&mut self, trick: String) {
        self.tricks.push(trick);
    }
}

fn events(history: &[Recorded<WorldEvent>]) -> Vec<&WorldEvent> {
    history.iter().map(|r| &r.event).collect()
}

#[test]
fn the_history_is_the_aggregates_own_events_on_every_store() {
    each_store(
        |builder| builder,
        |store, app| {
            let mut world = World::create();
            world.make_it_so("a".into());
            app.save_with(&Metadata::new().with_user("ann"), &mut world)
                .unwrap();
            world.make_it_so("b".into());
            app.save(&mut world).unwrap();

            let history = app.repository().events::<World>(world.id()).unwrap();
            assert_eq!(
                events(&history),
                [
                    &WorldEvent::Created {},
                    &WorldEvent::SomethingHappened { what: "a".into() },
                    &WorldEvent::SomethingHappened { what: "b".into() },
                ],
                "{store}"
            );
            let versions: Vec<u64> = history.iter().map(|r| r.originator_version).collect();
            assert_eq!(versions, [1, 2, 3], "{store}");
            assert!(history.iter().all(|r| r.originator_id == world.id()));
            assert!(history.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
            assert_eq!(history[0].metadata.user(), Some("ann"), "{store}");
            assert!(history[2].metadata.is_empty(), "{store}");
        },
    );
}

#[test]
fn a_discarded_aggregate_keeps_its_history_without_the_discard_record() {
    let app = Application::builder().build().unwrap();
    let mut world = World::create();
    world.make_it_so("a".into());
    world.discard();
    app.save(&mut world).unwrap();
    assert!(!app.repository().contains(world.id()).unwrap());
    let history = app.repository().events::<World>(world.id()).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].originator_version, 2);
}

#[test]
fn reading_the_history_as_another_type_or_of_nothing_is_a_typed_error() {
    let app = Application::builder().build().unwrap();
    let mut world = World::create();
    app.save(&mut world).unwrap();
    match app.repository().events::<Dog>(world.id()) {
        Err(Error::UnknownTopic {
            aggregate, topic, ..
        }) => assert_eq!((aggregate, topic.as_str()), ("Dog", "World.Created")),
        other => panic!("expected an unknown topic, got {other:?}"),
    }
    let nobody = Uuid::new_v4();
    assert!(matches!(
        app.repository().events::<World>(nobody),
        Err(Error::NotFound { id }) if id == nobody
    ));
}

#[test]
fn the_history_is_checked_before_it_is_returned() {
    let db = FileDb::new();
    let app = db.app();
    let mut world = World::create();
    world.make_it_so("a".into());
    world.make_it_so("b".into());
    app.save(&mut world).unwrap();
    db.conn()
        .execute(
            "DELETE FROM stored_events WHERE originator_id = ?1 AND originator_version = 2",
            [world.id().to_string()],
        )
        .unwrap();
    assert!(matches!(
        app.repository().events::<World>(world.id()),
        Err(Error::Integrity {
            version: 3,
            fault: IntegrityFault::VersionGap,
            ..
        })
    ));
}

#[test]
fn pending_events_decode_and_errors_propagate_with_the_question_mark() -> Result<()> {
    let mut dog = Dog::register();
    dog.add_trick("sit".into());
    let pending = dog.decode_pending()?;
    assert_eq!(
        pending.iter().map(|r| &r.event).collect::<Vec<_>>(),
        [
            &DogEvent::Registered {},
            &DogEvent::TrickAdded {
                trick: "sit".into()
            }
        ]
    );
    // A record of another type is this crate's error, not serde's.
    let world = World::create();
    let error = world.pending_events()[0].decode::<DogEvent>().unwrap_err();
    assert!(matches!(error, Error::UnknownTopic { .. }), "{error}");
    // A refused event is reported as a save would report it.
    dog.discard();
    dog.add_trick("late".into());
    assert!(matches!(dog.decode_pending(), Err(Error::Refused { .. })));
    Ok(())
}

/// Events and states with more fields than the runtime's tuple reader
/// takes (twelve) are read by a derived helper instead; both round-trip.
#[aggregate]
#[derive(Debug, Default, Clone, PartialEq)]
struct Wide {
    a: u8,
    b: u8,
    c: u8,
    d: u8,
    e: u8,
    f: u8,
    g: u8,
    h: u8,
    i: u8,
    j: u8,
    k: u8,
    l: u8,
    m: Option<String>,
}

#[aggregate]
impl Wide {
    #[created(Made)]
    fn make(&mut self) {}

    #[event(Filled)]
    #[allow(clippy::too_many_arguments, clippy::many_single_char_names)]
    fn fill(
        &mut self,
        a: u8,
        b: u8,
        c: u8,
        d: u8,
        e: u8,
        f: u8,
        g: u8,
        h: u8,
        i: u8,
        j: u8,
        k: u8,
        l: u8,
        m: Option<String>,
    ) {
        *self = Wide {
            a,
            b,
            c,
            d,
            e,
            f,
            g,
            h,
            i,
            j,
            k,
            l,
            m,
            ..std::mem::take(self)
        };
    }
}

#[test]
fn events_and_states_wider_than_twelve_fields_round_trip() {
    let app = Application::builder()
        .snapshot_every::<Wide>(2)
        .build()
        .unwrap();
    let mut wide = Wide::make();
    wide.fill(
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
        9,
        10,
        11,
        12,
        Some("thirteen".into()),
    );
    app.save(&mut wide).unwrap();
    let loaded: Wide = app.repository().get(wide.id()).unwrap();
    assert_eq!(loaded, wide);
    assert_eq!(
        app.event_store()
            .latest_snapshot(wide.id(), None)
            .unwrap()
            .map(|s| s.originator_version),
        Some(2)
    );
    let history = app.repository().events::<Wide>(wide.id()).unwrap();
    assert!(
        matches!(&history[1].event, WideEvent::Filled { l: 12, m: Some(m), .. } if m == "thirteen")
    );
    // A missing optional field reads as None, on either reader.
    let event = WideEvent::decode(
        "Wide.Filled",
        br#"{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12}"#,
    )
    .unwrap();
    assert!(matches!(event, Some(WideEvent::Filled { m: None, .. })));
}
