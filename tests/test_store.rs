//! The event store's own calls: verifying an aggregate's stored chain, the
//! shapes `Application::save` takes, and the hook told after each commit.

use std::sync::{Arc, Mutex};

use eventsourcing::prelude::*;
use eventsourcing::{IntegrityFault, Snapshot};

use support::fixtures::World;
use support::sqlite::FileDb;

#[aggregate]
#[derive(Debug, Default, Clone, PartialEq)]
struct Counter {
    total: u64,
}

#[aggregate]
impl Counter {
    #[created(Opened)]
    fn open(&mut self) {}

    #[event(Added)]
    fn add(&mut self, amount: u64) {
        self.total += amount;
    }
}

#[aggregate]
#[derive(Debug, Default, Clone, PartialEq)]
struct Tag {
    name: String,
}

#[aggregate]
impl Tag {
    #[created(Named)]
    fn name(&mut self, name: String) {
        self.name = name;
    }
}

fn world(things: &[&str]) -> World {
    let mut world = World::create();
    for what in things {
        world.make_it_so((*what).into());
    }
    world
}

fn integrity(result: Result<Hash>) -> (u64, IntegrityFault) {
    match result {
        Err(Error::Integrity { version, fault, .. }) => (version, fault),
        other => panic!("expected an integrity error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// verify
// ---------------------------------------------------------------------------

#[test]
fn verify_returns_the_head_of_an_intact_chain() {
    for uri in ["memory://", "sqlite:///:memory:"] {
        let app = Application::builder().db_uri(uri).build().unwrap();
        let mut world = world(&["dinosaurs", "trucks"]);
        app.save(&mut world).unwrap();
        world.make_it_so("internet".into());
        world.discard();
        app.save(&mut world).unwrap();
        assert_eq!(app.event_store().verify(world.id()).unwrap(), world.head());
    }
}

#[test]
fn verify_of_an_unknown_aggregate_is_not_found() {
    let app = Application::builder().build().unwrap();
    let id = Uuid::new_v4();
    assert!(matches!(
        app.event_store().verify(id),
        Err(Error::NotFound { id: missing }) if missing == id
    ));
}

#[test]
fn verify_names_the_first_broken_version() {
    let db = FileDb::new();
    let app = db.app();
    let mut world = world(&["a", "b", "c", "d"]);
    app.save(&mut world).unwrap();
    let id = world.id();
    let text = id.to_string();
    let conn = db.conn();

    // A flipped byte in the data of version 3: its hash no longer matches.
    let state: Vec<u8> = conn
        .query_row(
            "SELECT state FROM stored_events WHERE originator_id = ?1 AND originator_version = 3",
            [&text],
            |row| row.get(0),
        )
        .unwrap();
    let mut tampered = state.clone();
    // flags(1) ‖ previous_hash(32) ‖ timestamp(8) ‖ data: flip the data's first byte.
    tampered[41] ^= 0x20;
    let set =
        "UPDATE stored_events SET state = ?2 WHERE originator_id = ?1 AND originator_version = ?3";
    conn.execute(set, (&text, &tampered, 3)).unwrap();
    assert_eq!(
        integrity(app.event_store().verify(id)),
        (3, IntegrityFault::HashMismatch)
    );
    conn.execute(set, (&text, &state, 3)).unwrap();
    assert_eq!(app.event_store().verify(id).unwrap(), world.head());

    // A missing version: the next one does not follow.
    conn.execute(
        "DELETE FROM stored_events WHERE originator_id = ?1 AND originator_version = 2",
        [&text],
    )
    .unwrap();
    assert_eq!(
        integrity(app.event_store().verify(id)),
        (3, IntegrityFault::VersionGap)
    );
}

#[test]
fn verify_reads_the_events_not_the_snapshots() {
    let app = Application::builder().build().unwrap();
    let mut world = world(&["a", "b"]);
    app.save(&mut world).unwrap();
    // A snapshot that claims another head does not change the events' account.
    let real = world.to_snapshot().unwrap();
    let forged = Snapshot::new(
        real.originator_id,
        real.originator_version,
        real.topic,
        real.timestamp,
        Hash([9; 32]),
        real.data,
    );
    let row = app.event_store().mapper().encode_snapshot(&forged).unwrap();
    app.event_store().recorder().insert_snapshot(&row).unwrap();
    assert_eq!(app.event_store().verify(world.id()).unwrap(), world.head());
    assert!(matches!(
        app.repository().get::<World>(world.id()),
        Err(Error::Integrity {
            fault: IntegrityFault::BrokenLink,
            ..
        })
    ));
}

// ---------------------------------------------------------------------------
// What save takes
// ---------------------------------------------------------------------------

#[test]
fn save_takes_one_aggregate_a_tuple_a_vec_an_array_and_a_slice() {
    let app = Application::builder().build().unwrap();
    let mut world = world(&["a"]);
    assert_eq!(app.save(&mut world).unwrap(), [1, 2]);

    let (mut counter, mut tag) = (Counter::open(), Tag::name("x".into()));
    counter.add(2);
    world.make_it_so("b".into());
    assert_eq!(
        app.save((&mut world, &mut counter, &mut tag)).unwrap(),
        [3, 4, 5, 6]
    );

    let mut counters = vec![Counter::open(), Counter::open()];
    assert_eq!(app.save(&mut counters).unwrap(), [7, 8]);
    let mut pair = [Tag::name("y".into()), Tag::name("z".into())];
    assert_eq!(app.save(&mut pair).unwrap(), [9, 10]);
    let mut more = vec![Counter::open(), Counter::open(), Counter::open()];
    assert_eq!(app.save(&mut more[1..]).unwrap(), [11, 12]);
    assert_eq!(app.save(&mut more[..1]).unwrap(), [13]);

    // Nothing pending: nothing written, no ids.
    let mut nobody: Vec<Counter> = Vec::new();
    assert!(app.save(&mut nobody).unwrap().is_empty());
    assert!(app.save((&mut world, &mut counter)).unwrap().is_empty());

    for counter in counters.iter().chain(&more) {
        assert!(counter.pending_events().is_empty());
        let loaded: Counter = app.repository().get(counter.id()).unwrap();
        assert_eq!(&loaded, counter);
    }
    let loaded: Tag = app.repository().get(pair[1].id()).unwrap();
    assert_eq!(loaded.name, "z");
}

#[test]
fn a_refused_member_fails_the_whole_save_and_keeps_every_pending_event() {
    let app = Application::builder().build().unwrap();
    let mut gone = Counter::open();
    gone.discard();
    app.save(&mut gone).unwrap();
    gone.add(1); // refused: discarded

    let mut world = world(&["a"]);
    let mut counter = Counter::open();
    let result = app.save((&mut world, (&mut counter, &mut gone)));
    assert!(matches!(result, Err(Error::Refused { .. })), "{result:?}");
    assert_eq!(world.pending_events().len(), 2);
    assert_eq!(counter.pending_events().len(), 1);
    assert!(!app.repository().contains(world.id()).unwrap());
    assert_eq!(app.notification_log().max_id().unwrap(), 2);
}

#[test]
fn a_conflict_in_one_member_writes_nothing_of_the_others() {
    let app = Application::builder().build().unwrap();
    let mut original = world(&["a"]);
    app.save(&mut original).unwrap();
    let mut stale: World = app.repository().get(original.id()).unwrap();
    original.make_it_so("b".into());
    app.save(&mut original).unwrap();

    stale.make_it_so("c".into());
    let mut fresh = Counter::open();
    let result = app.save((&mut fresh, &mut stale));
    assert!(
        matches!(result, Err(Error::Concurrency { .. })),
        "{result:?}"
    );
    assert!(!app.repository().contains(fresh.id()).unwrap());
    assert_eq!(fresh.pending_events().len(), 1);
}

// ---------------------------------------------------------------------------
// Commit hooks
// ---------------------------------------------------------------------------

type Seen = Arc<Mutex<Vec<Vec<u64>>>>;

fn record_into(seen: &Seen) -> impl Fn(&[u64]) + Send + Sync + 'static {
    let seen = Arc::clone(seen);
    move |ids| seen.lock().unwrap().push(ids.to_vec())
}

#[test]
fn hooks_hear_every_commit_through_the_application_and_its_clones() {
    let app = Application::builder().build().unwrap();
    let seen = Seen::default();
    let hook = app.on_commit(record_into(&seen));

    app.save(&mut world(&["a"])).unwrap();
    let clone = app.clone();
    std::thread::spawn(move || clone.save(&mut Counter::open()).unwrap())
        .join()
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), [vec![1, 2], vec![3]]);

    drop(hook);
    app.save(&mut Counter::open()).unwrap();
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[test]
fn hooks_are_not_told_of_saves_that_commit_nothing() {
    let app = Application::builder().build().unwrap();
    let mut original = world(&[]);
    app.save(&mut original).unwrap();
    let seen = Seen::default();
    let _hook = app.on_commit(record_into(&seen));

    // Nothing pending.
    app.save(&mut original).unwrap();
    // A conflict.
    let mut stale: World = app.repository().get(original.id()).unwrap();
    original.make_it_so("a".into());
    app.save(&mut original).unwrap();
    stale.make_it_so("b".into());
    assert!(app.save(&mut stale).is_err());

    assert_eq!(*seen.lock().unwrap(), [vec![2]]);
}

#[test]
fn several_hooks_each_hear_a_commit_and_a_hook_may_add_another() {
    let app = Application::builder().build().unwrap();
    let (first, second) = (Seen::default(), Seen::default());
    let _a = app.on_commit(record_into(&first));
    let added = Arc::new(Mutex::new(Vec::new()));
    let _b = {
        let app = app.clone();
        let added = Arc::clone(&added);
        let second = Arc::clone(&second);
        app.clone().on_commit(move |ids: &[u64]| {
            second.lock().unwrap().push(ids.to_vec());
            // Subscribing from inside a hook must not deadlock.
            added.lock().unwrap().push(app.on_commit(|_| {}));
        })
    };
    app.save(&mut Counter::open()).unwrap();
    app.save(&mut Counter::open()).unwrap();
    assert_eq!(*first.lock().unwrap(), [vec![1], vec![2]]);
    assert_eq!(*second.lock().unwrap(), [vec![1], vec![2]]);
    assert_eq!(added.lock().unwrap().len(), 2);
}

// ---------------------------------------------------------------------------
// Listing snapshots
// ---------------------------------------------------------------------------

#[test]
fn every_snapshot_of_an_aggregate_is_listed_oldest_first_on_every_store() {
    support::stores::each_store(
        |builder| builder.snapshot_every::<World>(3),
        |store, app| {
            let mut world = World::create();
            app.save(&mut world).unwrap();
            assert!(app.event_store().snapshots(world.id()).unwrap().is_empty());
            for i in 0..10 {
                world.make_it_so(format!("thing {i}"));
                app.save(&mut world).unwrap();
            }
            let snapshots = app.event_store().snapshots(world.id()).unwrap();
            let versions: Vec<u64> = snapshots.iter().map(|s| s.originator_version).collect();
            assert_eq!(versions, [3, 6, 9], "{store}");
            for snapshot in &snapshots {
                snapshot.check_hash().unwrap();
                assert_eq!(snapshot.originator_id, world.id());
            }
            let other = World::create();
            assert!(app.event_store().snapshots(other.id()).unwrap().is_empty());
        },
    );
}
