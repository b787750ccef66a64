//! Schema versions: events and snapshot states recorded by older code are
//! upcast step by step when read, and never rewritten.

use eventsourcing::format::{split_topic, versioned_topic};
use eventsourcing::prelude::*;
use eventsourcing::{RecordedEvent, Snapshot};

/// Version 1 of `Parcel`, as older code wrote it: a weight in grams and no
/// destination.
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
        pub(crate) fn register(&mut self, grams: u32) {
            self.grams = grams;
        }

        #[event(Weighed)]
        pub(crate) fn weigh(&mut self, grams: u32) {
            self.grams = grams;
        }
    }
}

/// Version 3 of `Parcel`: `Weighed` became kilograms (version 2) and then
/// gained a scale id (version 3); the state gained a destination.
mod v3 {
    use eventsourcing::prelude::*;

    #[aggregate(version = 2)]
    #[derive(Debug, Default, Clone, PartialEq)]
    pub(crate) struct Parcel {
        pub(crate) kilograms: f64,
        pub(crate) scale: String,
        pub(crate) destination: String,
        #[serde(skip)]
        pub(crate) cache: Vec<u8>,
    }

    #[aggregate]
    impl Parcel {
        #[created(Registered)]
        pub(crate) fn register(&mut self, grams: u32) {
            self.kilograms = f64::from(grams) / 1000.0;
            self.destination = "unknown".into();
        }

        #[event(Weighed, version = 3)]
        pub(crate) fn weigh(&mut self, kilograms: f64, scale: String) {
            self.kilograms = kilograms;
            self.scale = scale;
        }

        #[upcast(Weighed, from = 1)]
        fn weighed_grams_to_kilograms(data: &mut JsonObject) {
            let grams = data.remove("grams").and_then(|g| g.as_f64()).unwrap_or(0.0);
            data.insert("kilograms".into(), (grams / 1000.0).into());
        }

        #[upcast(Weighed, from = 2)]
        fn weighed_gains_scale(data: &mut JsonObject) {
            data.insert("scale".into(), "legacy".into());
        }

        #[upcast(state, from = 1)]
        fn state_gains_destination(state: &mut JsonObject) {
            let grams = state
                .remove("grams")
                .and_then(|g| g.as_f64())
                .unwrap_or(0.0);
            state.insert("kilograms".into(), (grams / 1000.0).into());
            state.insert("scale".into(), "legacy".into());
            state.insert("destination".into(), "unknown".into());
        }
    }
}

fn old_events() -> (Uuid, Vec<RecordedEvent>) {
    let mut parcel = v1::Parcel::register(1500);
    parcel.weigh(2500);
    let id = parcel.id();
    (id, parcel.take_pending_events().expect("no fault"))
}

#[test]
fn old_events_are_upcast_step_by_step() {
    let (id, events) = old_events();
    assert_eq!(events[1].topic, "Parcel.Weighed");
    let parcel = v3::Parcel::replay(id, events.into_iter().map(Ok))
        .expect("replays")
        .expect("has events");
    assert!((parcel.kilograms - 2.5).abs() < f64::EPSILON);
    assert_eq!(parcel.scale, "legacy");
    assert_eq!(parcel.version(), 2);
}

#[test]
fn new_events_carry_their_version_in_the_topic() {
    let mut parcel = v3::Parcel::register(100);
    parcel.weigh(0.25, "scale-7".into());
    let events = parcel.pending_events();
    assert_eq!(events[0].topic, "Parcel.Registered");
    assert_eq!(events[1].topic, "Parcel.Weighed@3");
    assert_eq!(split_topic(&events[1].topic), Some(("Parcel.Weighed", 3)));
    assert_eq!(versioned_topic("Parcel.Weighed", 1), "Parcel.Weighed");
    let copy = v3::Parcel::replay(parcel.id(), events.iter().cloned().map(Ok))
        .expect("replays")
        .expect("has events");
    assert_eq!(copy, parcel);
}

#[test]
fn every_version_is_a_topic_of_the_event_type() {
    use eventsourcing::Event;
    let topics = <v3::ParcelEvent as Event>::TOPICS;
    for topic in [
        "Parcel.Registered",
        "Parcel.Weighed",
        "Parcel.Weighed@2",
        "Parcel.Weighed@3",
    ] {
        assert!(topics.contains(&topic), "{topic} missing from {topics:?}");
    }
    let schema = <v3::ParcelEvent as Event>::SCHEMA;
    let weighed = schema.iter().find(|s| s.name == "Weighed").expect("schema");
    assert_eq!(weighed.version, 3);
    assert_eq!(weighed.topic, "Parcel.Weighed@3");
    assert_eq!(weighed.fields, [("kilograms", "f64"), ("scale", "String")]);
}

#[test]
fn snapshots_round_trip_and_skip_marked_fields() {
    let mut parcel = v3::Parcel::register(100);
    parcel.weigh(0.5, "s".into());
    parcel.cache = vec![1, 2, 3];
    let snapshot = parcel.to_snapshot().expect("snapshot");
    assert_eq!(snapshot.topic, "Parcel@2");
    assert_eq!(snapshot.head, parcel.head());
    let data = std::str::from_utf8(&snapshot.data).expect("utf-8");
    assert!(!data.contains("cache"), "{data}");
    let loaded = v3::Parcel::from_snapshot(&snapshot).expect("loads");
    assert!((loaded.kilograms - parcel.kilograms).abs() < f64::EPSILON);
    assert_eq!(loaded.head(), parcel.head());
    assert_eq!(loaded.version(), parcel.version());
    assert!(loaded.cache.is_empty());
    assert_eq!(<v3::Parcel as Root>::STATE_VERSION, 2);
    assert_eq!(
        <v3::Parcel as Root>::STATE_SCHEMA,
        [
            ("kilograms", "f64"),
            ("scale", "String"),
            ("destination", "String")
        ]
    );
}

#[test]
fn old_snapshots_are_upcast() {
    let mut old = v1::Parcel::register(4000);
    old.weigh(3000);
    let snapshot = old.to_snapshot().expect("snapshot");
    assert_eq!(snapshot.topic, "Parcel");
    let loaded = v3::Parcel::from_snapshot(&snapshot).expect("upcast");
    assert!((loaded.kilograms - 3.0).abs() < f64::EPSILON);
    assert_eq!(loaded.destination, "unknown");
    assert_eq!(loaded.version(), 2);
}

#[test]
fn a_snapshot_of_another_type_is_refused() {
    let snapshot = v3::Parcel::register(1).to_snapshot().expect("snapshot");
    let mut forged = snapshot.clone();
    forged.topic = "Crate".into();
    let forged = Snapshot::new(
        forged.originator_id,
        forged.originator_version,
        forged.topic,
        forged.timestamp,
        forged.head,
        forged.data,
    );
    assert!(matches!(
        v3::Parcel::from_snapshot(&forged),
        Err(Error::UnknownTopic { .. })
    ));
    let mut tampered = snapshot;
    tampered.data[0] ^= 1;
    assert!(matches!(
        v3::Parcel::from_snapshot(&tampered),
        Err(Error::Integrity { .. })
    ));
}

/// `Parcel` with `Weighed` changed but not versioned: the mistake the
/// schema check exists for.
mod drifted {
    use eventsourcing::prelude::*;

    #[aggregate]
    #[derive(Debug, Default)]
    pub(crate) struct Parcel {
        pub(crate) grams: u64,
    }

    #[aggregate]
    impl Parcel {
        #[created(Registered)]
        pub(crate) fn register(&mut self, grams: u32) {
            self.grams = u64::from(grams);
        }

        #[event(Weighed)]
        pub(crate) fn weigh(&mut self, grams: u64) {
            self.grams = grams;
        }
    }
}

mod drift {
    use eventsourcing::schema::Schemas;

    fn committed_v1() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("parcel.txt");
        std::fs::write(
            &path,
            Schemas::new().aggregate::<super::v1::Parcel>().render(),
        )
        .expect("write");
        (dir, path)
    }

    fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
        let payload = std::panic::catch_unwind(f).expect_err("must panic");
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default()
    }

    #[test]
    fn the_same_schemas_pass() {
        let (_dir, path) = committed_v1();
        Schemas::new()
            .aggregate::<super::v1::Parcel>()
            .assert_file(&path);
    }

    #[test]
    fn an_unversioned_change_fails_with_a_diff() {
        let (_dir, path) = committed_v1();
        let message = panic_message(move || {
            Schemas::new()
                .aggregate::<super::drifted::Parcel>()
                .assert_file(&path);
        });
        assert!(message.contains("Parcel.Weighed"), "{message}");
        assert!(
            message.contains("- event Parcel.Weighed v1 { grams: u32 }"),
            "{message}"
        );
        assert!(
            message.contains("+ event Parcel.Weighed v1 { grams: u64 }"),
            "{message}"
        );
        assert!(message.contains("version = 2"), "{message}");
    }

    #[test]
    fn a_versioned_change_asks_for_the_file_to_be_updated() {
        let (_dir, path) = committed_v1();
        let current = Schemas::new().aggregate::<super::v3::Parcel>();
        let drifts = current.drift_from(
            &Schemas::parse(&std::fs::read_to_string(&path).expect("read")).expect("parse"),
        );
        assert!(!drifts.is_empty());
        assert!(drifts.iter().all(|d| !d.breaking), "{drifts:?}");
        let message = panic_message(move || current.assert_file(&path));
        assert!(message.contains("UPDATE_SCHEMAS=1 cargo test"), "{message}");
    }
}
