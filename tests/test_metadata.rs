//! Event metadata (`"$meta"` in an event's data, FORMAT.md): set per
//! application, per thread and per save, merged in that order, stamped at
//! the save and covered by the hash; readable on every recorded event and
//! notification; events carrying it load, snapshot and replay like any
//! other, on every store.

use eventsourcing::prelude::*;
use eventsourcing::{Metadata, RecordedEvent, with_metadata};
use support::fixtures::World;
use support::stores::each_store;

fn metadata_of(events: &[RecordedEvent]) -> Vec<Metadata> {
    events.iter().map(|e| e.metadata().unwrap()).collect()
}

#[test]
fn metadata_round_trips_through_save_load_snapshots_and_the_log() {
    let request = Uuid::new_v4();
    each_store(
        |builder| {
            builder
                .metadata(
                    Metadata::new()
                        .with("service", "orders")
                        .with_user("system"),
                )
                .snapshot_every::<World>(3)
        },
        |store, app| {
            let mut world = World::create();
            world.make_it_so("a".into());
            // The save's metadata wins `user`; the application's `service`
            // stays.
            let ids = app
                .save_with(
                    &Metadata::new()
                        .with_user("alice")
                        .with_correlation_id(request),
                    &mut world,
                )
                .unwrap();
            assert_eq!(ids.len(), 2, "{store}");
            world.make_it_so("b".into());
            world.make_it_so("c".into());
            app.save(&mut world).unwrap(); // versions 3 and 4 pass 3: a snapshot at 4

            let events = app.event_store().recorded_events(world.id()).unwrap();
            let metadata = metadata_of(&events);
            for first in &metadata[..2] {
                assert_eq!(first.user(), Some("alice"), "{store}");
                assert_eq!(first.correlation_id(), Some(request), "{store}");
                assert_eq!(
                    first.get("service").and_then(|v| v.as_str()),
                    Some("orders")
                );
            }
            for later in &metadata[2..] {
                assert_eq!(later.user(), Some("system"), "{store}");
                assert_eq!(later.correlation_id(), None, "{store}");
            }

            // The hash covers it, and the head the aggregate reports is the
            // stored one.
            assert_eq!(
                app.event_store().verify(world.id()).unwrap(),
                world.head(),
                "{store}"
            );
            // Loading: from the snapshot, and as of an earlier version.
            let snapshot = app.event_store().latest_snapshot(world.id(), None).unwrap();
            assert_eq!(snapshot.map(|s| s.originator_version), Some(4), "{store}");
            let loaded: World = app.repository().get(world.id()).unwrap();
            assert_eq!(loaded, world, "{store}");
            let earlier: World = app.repository().get_at(world.id(), 2).unwrap();
            assert_eq!(earlier.history, ["a"], "{store}");

            // The notification log shows it.
            let log = app.notification_log();
            let first = log.select(ids[0], 1, &[]).unwrap().remove(0);
            let decoded = log.decode(first).unwrap();
            assert_eq!(decoded.metadata().unwrap().user(), Some("alice"));
        },
    );
}

#[test]
fn the_thread_scope_sits_between_the_application_and_the_save() {
    let app = Application::builder()
        .metadata(Metadata::new().with("layer", "app").with("a", 1))
        .build()
        .unwrap();
    let mut world = World::create();
    let saved = with_metadata(Metadata::new().with("layer", "thread").with("t", 2), || {
        with_metadata(Metadata::new().with("inner", 3), || {
            app.save_with(&Metadata::new().with("layer", "save"), &mut world)
        })
    });
    saved.unwrap();
    let meta = app.event_store().recorded_events(world.id()).unwrap()[0]
        .metadata()
        .unwrap();
    let value = |k: &str| meta.get(k).cloned();
    assert_eq!(value("layer"), Some("save".into()));
    assert_eq!(value("a"), Some(1.into()));
    assert_eq!(value("t"), Some(2.into()));
    assert_eq!(value("inner"), Some(3.into()));

    // Outside the scope, only the application's.
    let mut other = World::create();
    app.save(&mut other).unwrap();
    let meta = app.event_store().recorded_events(other.id()).unwrap()[0]
        .metadata()
        .unwrap();
    assert_eq!(meta.get("layer"), Some(&"app".into()));
    assert_eq!(meta.get("t"), None);
}

#[test]
fn without_metadata_the_data_is_the_events_fields_alone() {
    let app = Application::builder().build().unwrap();
    let mut world = World::create();
    world.make_it_so("plain".into());
    let head_before = world.head();
    app.save(&mut world).unwrap();
    assert_eq!(world.head(), head_before);
    let events = app.event_store().recorded_events(world.id()).unwrap();
    assert_eq!(events[1].data, br#"{"what":"plain"}"#);
    assert!(events[1].metadata().unwrap().is_empty());
}

#[test]
fn a_failed_save_leaves_the_events_unstamped_for_the_next_try() {
    let app = Application::builder().build().unwrap();
    let mut world = World::create();
    app.save(&mut world).unwrap();
    let mut stale: World = app.repository().get(world.id()).unwrap();
    world.make_it_so("first".into());
    app.save(&mut world).unwrap();

    stale.make_it_so("second".into());
    let head = stale.head();
    let result = app.save_with(&Metadata::new().with_user("bob"), &mut stale);
    assert!(matches!(result, Err(Error::Concurrency { .. })));
    // Nothing changed in the aggregate: same head, same unstamped event.
    assert_eq!(stale.head(), head);
    assert!(stale.pending_events()[0].metadata().unwrap().is_empty());
}

#[test]
fn stamping_re_links_every_event_of_the_save() {
    let app = Application::builder().build().unwrap();
    let mut world = World::create();
    for what in ["a", "b", "c"] {
        world.make_it_so(what.into());
    }
    let unstamped_head = world.head();
    app.save_with(&Metadata::new().with_user("ann"), &mut world)
        .unwrap();
    assert_ne!(world.head(), unstamped_head);
    let events = app.event_store().recorded_events(world.id()).unwrap();
    for pair in events.windows(2) {
        assert_eq!(pair[1].previous_hash, pair[0].event_hash);
    }
    assert_eq!(events.last().unwrap().event_hash, world.head());
    // The aggregate goes on from the stamped head.
    world.make_it_so("d".into());
    app.save(&mut world).unwrap();
    assert_eq!(app.event_store().verify(world.id()).unwrap(), world.head());
}

/// A `Parcel` written by older code: `Weighed` in grams.
mod v1 {
    use eventsourcing::prelude::*;

    #[aggregate]
    #[derive(Debug, Default, Clone, PartialEq)]
    pub(crate) struct Parcel {
        pub(crate) grams: u32,
    }

    #[aggregate]
    impl Parcel {
        #[created(Registered)]
        pub(crate) fn register(&mut self) {}

        #[event(Weighed)]
        pub(crate) fn weigh(&mut self, grams: u32) {
            self.grams = grams;
        }
    }
}

/// Today's `Parcel`: `Weighed` in kilograms, version 2.
mod v2 {
    use std::sync::atomic::{AtomicBool, Ordering};

    use eventsourcing::prelude::*;

    /// Set if an upcaster ever sees metadata among the event's fields.
    pub(crate) static SAW_META: AtomicBool = AtomicBool::new(false);

    #[aggregate]
    #[derive(Debug, Default, Clone, PartialEq)]
    pub(crate) struct Parcel {
        pub(crate) kilograms: f64,
    }

    #[aggregate]
    impl Parcel {
        #[created(Registered)]
        pub(crate) fn register(&mut self) {}

        #[event(Weighed, version = 2)]
        pub(crate) fn weigh(&mut self, kilograms: f64) {
            self.kilograms = kilograms;
        }

        #[upcast(Weighed, from = 1)]
        fn grams_to_kilograms(data: &mut JsonObject) {
            if data.contains_key("$meta") {
                SAW_META.store(true, Ordering::SeqCst);
            }
            let grams = data.remove("grams").and_then(|g| g.as_f64()).unwrap_or(0.0);
            data.insert("kilograms".into(), (grams / 1000.0).into());
        }
    }
}

#[test]
fn metadata_stays_with_events_that_are_upcast() {
    each_store(
        |builder| builder,
        |store, app| {
            let mut old = v1::Parcel::register();
            old.weigh(2500);
            app.save_with(&Metadata::new().with_user("scales"), &mut old)
                .unwrap();

            let parcel: v2::Parcel = app.repository().get(old.id()).unwrap();
            assert!((parcel.kilograms - 2.5).abs() < f64::EPSILON, "{store}");
            assert!(
                !v2::SAW_META.load(std::sync::atomic::Ordering::SeqCst),
                "{store}: an upcaster saw the metadata"
            );
            let history = app.repository().events::<v2::Parcel>(old.id()).unwrap();
            assert_eq!(history[1].metadata.user(), Some("scales"), "{store}");
            assert_eq!(
                history[1].event,
                v2::ParcelEvent::Weighed { kilograms: 2.5 },
                "{store}"
            );
        },
    );
}
