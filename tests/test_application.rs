//! Application behaviour: the repository, optimistic concurrency, atomic
//! multi-aggregate saves, threads, the notification log, and typed errors
//! for bad stored data and bad configuration.

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};
use std::thread;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use eventsourcing::prelude::*;

use eventsourcing::{ApplicationBuilder, Compression, IntegrityFault, RecordedEvent};
use support::fixtures::World;
use support::sqlite::FileDb;

#[aggregate]
#[derive(Debug, Default, Clone, PartialEq)]
struct Counter {
    label: String,
    total: u64,
}

#[aggregate]
impl Counter {
    #[created(Opened)]
    fn open(&mut self, label: String) {
        self.label = label;
    }

    #[event(Added)]
    fn add(&mut self, amount: u64) {
        self.total += amount;
    }
}

/// A world with three things that happened, not yet saved.
fn world() -> World {
    let mut world = World::create();
    for what in ["dinosaurs", "trucks", "internet"] {
        world.make_it_so(what.into());
    }
    world
}

/// A world whose events after the first carry enough data (64 bytes and
/// more) for zlib to be used when compression is configured.
fn long_world() -> World {
    let mut world = World::create();
    for what in ["dinosaurs", "trucks", "internet"] {
        world.make_it_so(format!("{what}, {what}, {what}, {what}, {what} and {what}"));
    }
    world
}

/// Raw access to the rows of a test database file.
trait RawRows {
    fn rows(&self) -> i64;
    fn state(&self, id: Uuid, version: u64) -> Vec<u8>;
    fn set_state(&self, id: Uuid, version: u64, state: &[u8]);
    fn tamper(&self, id: Uuid, version: u64, change: impl FnOnce(&mut Vec<u8>));
}

impl RawRows for FileDb {
    fn rows(&self) -> i64 {
        self.conn()
            .query_row("SELECT COUNT(*) FROM stored_events", [], |r| r.get(0))
            .unwrap()
    }

    fn state(&self, id: Uuid, version: u64) -> Vec<u8> {
        self.conn()
            .query_row(
                "SELECT state FROM stored_events WHERE originator_id = ?1 AND originator_version = ?2",
                (id.to_string(), i64::try_from(version).unwrap()),
                |r| r.get(0),
            )
            .unwrap()
    }

    fn set_state(&self, id: Uuid, version: u64, state: &[u8]) {
        let changed = self
            .conn()
            .execute(
                "UPDATE stored_events SET state = ?3 WHERE originator_id = ?1 AND originator_version = ?2",
                (id.to_string(), i64::try_from(version).unwrap(), state),
            )
            .unwrap();
        assert_eq!(changed, 1);
    }

    /// Applies `change` to the stored state of `(id, version)`.
    fn tamper(&self, id: Uuid, version: u64, change: impl FnOnce(&mut Vec<u8>)) {
        let mut state = self.state(id, version);
        change(&mut state);
        self.set_state(id, version, &state);
    }
}

/// Every notification id in the application, in order.
fn notification_ids(app: &Application) -> Vec<u64> {
    app.notification_log()
        .select(1, usize::MAX, &[])
        .unwrap()
        .iter()
        .map(|n| n.id)
        .collect()
}

fn key(seed: u8) -> String {
    STANDARD.encode([seed; 32])
}

// ---------------------------------------------------------------------------
// The repository.
// ---------------------------------------------------------------------------

/// An application on a fresh PostgreSQL schema, and the schema; `None`
/// when the PostgreSQL tests are skipped.
fn postgres_app() -> Option<(Application, support::pg::Scratch)> {
    let scratch = support::pg::Scratch::new()?;
    Some((scratch.builder().build().unwrap(), scratch))
}

fn each_store(test: impl Fn(&Application)) {
    support::stores::each_store(|builder| builder, |_, app| test(app));
}

#[test]
fn save_get_contains_and_get_at() {
    each_store(|app| {
        let repository = app.repository();
        let mut world = World::create();
        assert_eq!(world.version(), 1);
        assert!(!repository.contains(world.id()).unwrap());
        world.make_it_so("dinosaurs".into());
        world.make_it_so("trucks".into());
        assert_eq!(world.pending_events().len(), 3);
        assert_eq!(app.save(&mut world).unwrap(), [1, 2, 3]);
        assert!(world.pending_events().is_empty());
        assert!(repository.contains(world.id()).unwrap());
        // Saving with nothing pending writes nothing.
        assert_eq!(app.save(&mut world).unwrap(), Vec::<u64>::new());

        world.make_it_so("internet".into());
        assert_eq!(app.save(&mut world).unwrap(), [4]);

        let copy: World = repository.get(world.id()).unwrap();
        assert_eq!(copy, world);
        assert_eq!(copy.history, ["dinosaurs", "trucks", "internet"]);
        assert_eq!(copy.version(), 4);
        assert_eq!(copy.head(), world.head());
        assert!(copy.pending_events().is_empty());

        for version in 1..=4 {
            let old: World = repository.get_at(world.id(), version).unwrap();
            assert_eq!(old.version(), version);
            assert_eq!(
                old.history,
                copy.history[..usize::try_from(version).unwrap() - 1]
            );
        }
        // No such versions.
        for version in [0, 5, u64::MAX] {
            assert!(matches!(
                repository.get_at::<World>(world.id(), version),
                Err(Error::NotFound { id }) if id == world.id()
            ));
        }

        // A loaded aggregate continues the chain.
        let mut loaded: World = repository.get(world.id()).unwrap();
        loaded.make_it_so("moon".into());
        assert_eq!(app.save(&mut loaded).unwrap(), [5]);
        assert_eq!(repository.get::<World>(world.id()).unwrap(), loaded);
    });
}

#[test]
fn unknown_and_discarded_ids_are_not_found() {
    each_store(|app| {
        let repository = app.repository();
        let unknown = Uuid::new_v4();
        assert!(!repository.contains(unknown).unwrap());
        assert!(matches!(
            repository.get::<World>(unknown),
            Err(Error::NotFound { id }) if id == unknown
        ));
        assert!(matches!(
            repository.get_at::<World>(unknown, 1),
            Err(Error::NotFound { id }) if id == unknown
        ));

        let mut world = world();
        app.save(&mut world).unwrap();
        world.discard();
        assert!(world.is_discarded());
        assert_eq!(world.version(), 5);
        app.save(&mut world).unwrap();

        assert!(!repository.contains(world.id()).unwrap());
        assert!(matches!(
            repository.get::<World>(world.id()),
            Err(Error::NotFound { id }) if id == world.id()
        ));
        // Before the discard, time travel still works; at it, not.
        let old: World = repository.get_at(world.id(), 4).unwrap();
        assert_eq!(old.history, ["dinosaurs", "trucks", "internet"]);
        assert!(!old.is_discarded());
        assert!(matches!(
            repository.get_at::<World>(world.id(), 5),
            Err(Error::NotFound { .. })
        ));
        // The discard event is stored like any other.
        let events = app.event_store().recorded_events(world.id()).unwrap();
        assert_eq!(events.len(), 5);
        assert_eq!(events[4].topic, "World.Discarded");
        assert_eq!(events[4].data, b"{}");
    });
}

#[test]
fn a_stale_copy_fails_with_concurrency_and_writes_nothing() {
    let db = FileDb::new();
    let app = db.app();
    let repository = app.repository();
    let mut world = world();
    app.save(&mut world).unwrap();

    let mut stale: World = repository.get(world.id()).unwrap();
    world.make_it_so("moon".into());
    app.save(&mut world).unwrap();

    // Two new events; the first already conflicts.
    stale.make_it_so("mars".into());
    stale.make_it_so("venus".into());
    let rows = db.rows();
    let max = app.notification_log().max_id().unwrap();
    match app.save(&mut stale) {
        Err(Error::Concurrency { id, version }) => {
            assert_eq!(id, world.id());
            assert_eq!(version, 5);
        }
        other => panic!("expected a concurrency error, got {other:?}"),
    }
    assert_eq!(db.rows(), rows);
    assert_eq!(app.notification_log().max_id().unwrap(), max);
    // The failed save keeps the pending events, and retrying fails alike.
    assert_eq!(stale.pending_events().len(), 2);
    assert!(matches!(
        app.save(&mut stale),
        Err(Error::Concurrency { .. })
    ));
    assert_eq!(db.rows(), rows);

    let stored: World = repository.get(world.id()).unwrap();
    assert_eq!(stored, world);
    assert_eq!(stored.history.last().unwrap(), "moon");

    // The store keeps working after the conflict.
    world.make_it_so("sun".into());
    app.save(&mut world).unwrap();
    assert_eq!(db.rows(), rows + 1);
    assert_eq!(repository.get::<World>(world.id()).unwrap().version(), 6);
}

#[test]
fn saving_several_is_atomic_across_aggregate_types() {
    each_store(|app| {
        let repository = app.repository();
        let mut world = world();
        let mut counter = Counter::open("apples".into());
        counter.add(3);
        let ids = app.save((&mut world, &mut counter)).unwrap();
        assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
        assert_eq!(repository.get::<World>(world.id()).unwrap(), world);
        assert_eq!(repository.get::<Counter>(counter.id()).unwrap(), counter);

        // A conflict on the second aggregate leaves the first unwritten:
        // a new aggregate and new events of an existing one.
        let mut stale: Counter = repository.get(counter.id()).unwrap();
        counter.add(4);
        app.save(&mut counter).unwrap();
        let before = notification_ids(app);

        let mut fresh = World::create();
        fresh.make_it_so("never".into());
        world.make_it_so("not this either".into());
        stale.add(100);
        let result = app.save((&mut fresh, &mut world, &mut stale));
        match result {
            Err(Error::Concurrency { id, version }) => {
                assert_eq!(id, counter.id());
                assert_eq!(version, 3);
            }
            other => panic!("expected a concurrency error, got {other:?}"),
        }
        assert_eq!(notification_ids(app), before);
        assert!(!repository.contains(fresh.id()).unwrap());
        assert_eq!(repository.get::<World>(world.id()).unwrap().version(), 4);
        assert_eq!(repository.get::<Counter>(counter.id()).unwrap().total, 7);
        // Nothing was marked saved.
        assert_eq!(fresh.pending_events().len(), 2);
        assert_eq!(world.pending_events().len(), 1);
        assert_eq!(stale.pending_events().len(), 1);

        // With a fresh copy of the counter, the same batch goes through.
        let mut current: Counter = repository.get(counter.id()).unwrap();
        current.add(100);
        let ids = app.save((&mut fresh, &mut world, &mut current)).unwrap();
        assert_eq!(ids.len(), 4);
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(repository.get::<World>(fresh.id()).unwrap(), fresh);
        assert_eq!(repository.get::<World>(world.id()).unwrap(), world);
        assert_eq!(repository.get::<Counter>(counter.id()).unwrap().total, 107);
    });
}

#[test]
fn an_id_loaded_as_the_wrong_type_is_unknown_topic() {
    each_store(|app| {
        let mut world = world();
        let mut counter = Counter::open("pears".into());
        app.save((&mut world, &mut counter)).unwrap();
        match app.repository().get::<Counter>(world.id()) {
            Err(Error::UnknownTopic {
                aggregate,
                topic,
                id,
                version,
            }) => {
                assert_eq!(aggregate, "Counter");
                assert_eq!(topic, "World.Created");
                assert_eq!(id, world.id());
                assert_eq!(version, 1);
            }
            other => panic!("expected UnknownTopic, got {other:?}"),
        }
        assert!(matches!(
            app.repository().get::<World>(counter.id()),
            Err(Error::UnknownTopic { aggregate: "World", ref topic, .. }) if topic == "Counter.Opened"
        ));
        assert!(matches!(
            app.repository().get_at::<World>(counter.id(), 1),
            Err(Error::UnknownTopic { .. })
        ));
    });
}

#[test]
fn events_triggered_on_a_discarded_aggregate_are_refused() {
    let db = FileDb::new();
    let app = db.app();
    let mut world = world();
    app.save(&mut world).unwrap();
    world.discard();
    world.make_it_so("afterlife".into());
    // Neither recorded nor applied.
    assert_eq!(world.version(), 5);
    assert_eq!(world.history.len(), 3);
    let rows = db.rows();
    match app.save(&mut world) {
        Err(Error::Refused { topic, id, state }) => {
            assert_eq!(topic, "World.SomethingHappened");
            assert_eq!(id, world.id());
            assert_eq!(state, "discarded");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    // Nothing of the save was written, not even the discard.
    assert_eq!(db.rows(), rows);
    assert!(app.repository().contains(world.id()).unwrap());
    // The refusal sticks: the aggregate cannot be saved any more.
    assert!(matches!(app.save(&mut world), Err(Error::Refused { .. })));
    // In a batch it fails the whole batch.
    let mut other = World::create();
    assert!(matches!(
        app.save((&mut other, &mut world)),
        Err(Error::Refused { .. })
    ));
    assert_eq!(db.rows(), rows);

    // A discard saved on its own, then a command: refused too.
    let mut second = world_saved_then_discarded(&app);
    second.make_it_so("zombie".into());
    assert!(matches!(
        app.save(&mut second),
        Err(Error::Refused {
            state: "discarded",
            ..
        })
    ));

    // An aggregate that was never created refuses its events.
    let mut never = World::default();
    never.make_it_so("nothing".into());
    assert_eq!(never.version(), 0);
    assert!(matches!(
        app.save(&mut never),
        Err(Error::Refused {
            state: "not created",
            ..
        })
    ));
}

fn world_saved_then_discarded(app: &Application) -> World {
    let mut world = world();
    world.discard();
    app.save(&mut world).unwrap();
    assert!(!app.repository().contains(world.id()).unwrap());
    world
}

// ---------------------------------------------------------------------------
// Threads.
// ---------------------------------------------------------------------------

#[test]
fn application_is_send_sync_clone() {
    const fn assert_traits<T: Send + Sync + Clone + 'static>() {}
    const _: () = assert_traits::<Application>();
    const _: () = assert_traits::<eventsourcing::NotificationLog>();
    const _: () = assert_traits::<eventsourcing::EventStore>();
    // A clone shares the store.
    let app = Application::builder().build().unwrap();
    let clone = app.clone();
    let mut world = world();
    clone.save(&mut world).unwrap();
    assert_eq!(app.repository().get::<World>(world.id()).unwrap(), world);
}

const THREADS: usize = 8;

/// Each thread saves its own aggregates, many times; then every aggregate
/// loads and the notification ids are exactly 1..=N.
fn threads_save_their_own_aggregates(app: &Application) {
    threads_save_their_own_aggregates_with(app, |_| app.clone());
}

/// As above, thread `t` saving through `app_for(t)`.
fn threads_save_their_own_aggregates_with(
    app: &Application,
    app_for: impl Fn(usize) -> Application,
) {
    const AGGREGATES: usize = 12;
    const SAVES: u64 = 4;
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let app = app_for(t);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                let mut ids = Vec::new();
                let mut saved = Vec::new();
                for a in 0..AGGREGATES {
                    let mut counter = Counter::open(format!("{t}-{a}"));
                    ids.extend(app.save(&mut counter).unwrap());
                    for s in 1..=SAVES {
                        // One to three events per save.
                        for _ in 0..=(s % 3) {
                            counter.add(s);
                        }
                        ids.extend(app.save(&mut counter).unwrap());
                    }
                    saved.push(counter);
                }
                (ids, saved)
            })
        })
        .collect();
    let mut all_ids = Vec::new();
    let mut all = Vec::new();
    for handle in handles {
        let (ids, saved) = handle.join().unwrap();
        all_ids.extend(ids);
        all.extend(saved);
    }
    all_ids.sort_unstable();
    let n = u64::try_from(all_ids.len()).unwrap();
    assert_eq!(all_ids, (1..=n).collect::<Vec<_>>());
    assert_eq!(notification_ids(app), all_ids);
    assert_eq!(all.len(), THREADS * AGGREGATES);
    let events_per_aggregate: u64 = 1 + (1..=SAVES).map(|s| s % 3 + 1).sum::<u64>();
    assert_eq!(n, events_per_aggregate * u64::try_from(all.len()).unwrap());
    for counter in &all {
        let loaded: Counter = app.repository().get(counter.id()).unwrap();
        assert_eq!(&loaded, counter);
        assert_eq!(loaded.version(), events_per_aggregate);
    }
    // The log's versions of each aggregate are in order.
    let mut last: BTreeMap<Uuid, u64> = BTreeMap::new();
    for notification in app.notification_log().select(1, usize::MAX, &[]).unwrap() {
        let previous = last.insert(notification.originator_id, notification.originator_version);
        assert_eq!(previous.unwrap_or(0) + 1, notification.originator_version);
    }
}

#[test]
fn threads_save_concurrently_into_a_sqlite_file() {
    let db = FileDb::new();
    threads_save_their_own_aggregates(&db.app());
    // And a second application on the same file sees it all.
    let again = db.app();
    assert_eq!(
        again.notification_log().max_id().unwrap(),
        u64::try_from(db.rows()).unwrap()
    );
}

#[test]
fn threads_save_concurrently_in_memory_and_on_postgres() {
    threads_save_their_own_aggregates(&Application::builder().db_uri("memory://").build().unwrap());
    if let Some((app, _schema)) = postgres_app() {
        threads_save_their_own_aggregates(&app);
    }
    threads_save_their_own_aggregates(
        &Application::builder()
            .db_uri("sqlite:///:memory:")
            .build()
            .unwrap(),
    );
}

/// Eight threads race on one aggregate: each loads it, triggers, saves.
/// Exactly one save wins each version; the others get `Concurrency`.
fn threads_race_on_one_aggregate(app: &Application) {
    threads_race_on_one_aggregate_with(app, |_| app.clone());
}

/// As above, thread `t` working through `app_for(t)`.
fn threads_race_on_one_aggregate_with(app: &Application, app_for: impl Fn(usize) -> Application) {
    const ATTEMPTS: usize = 40;
    let mut world = World::create();
    app.save(&mut world).unwrap();
    let id = world.id();
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let app = app_for(t);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                let mut wins = Vec::new();
                let mut losses = 0;
                for i in 0..ATTEMPTS {
                    let mut copy: World = app.repository().get(id).unwrap();
                    let what = format!("{t}-{i}");
                    copy.make_it_so(what.clone());
                    match app.save(&mut copy) {
                        Ok(ids) => {
                            assert_eq!(ids.len(), 1);
                            wins.push((copy.version(), what));
                        }
                        Err(Error::Concurrency {
                            id: conflict,
                            version,
                        }) => {
                            assert_eq!(conflict, id);
                            assert_eq!(version, copy.version());
                            losses += 1;
                        }
                        Err(other) => panic!("unexpected error: {other:?}"),
                    }
                }
                (wins, losses)
            })
        })
        .collect();
    let mut wins: BTreeMap<u64, String> = BTreeMap::new();
    let mut losses = 0;
    for handle in handles {
        let (won, lost) = handle.join().unwrap();
        losses += lost;
        for (version, what) in won {
            assert!(
                wins.insert(version, what).is_none(),
                "version {version} was won twice"
            );
        }
    }
    let successes = u64::try_from(wins.len()).unwrap();
    assert_eq!(wins.len() + losses, THREADS * ATTEMPTS);
    assert!(successes >= u64::try_from(ATTEMPTS).unwrap());
    let last: World = app.repository().get(id).unwrap();
    assert_eq!(last.version(), successes + 1);
    assert_eq!(
        wins.keys().copied().collect::<Vec<_>>(),
        (2..=successes + 1).collect::<Vec<_>>()
    );
    assert_eq!(last.history, wins.into_values().collect::<Vec<_>>());
    assert_eq!(
        notification_ids(app).len(),
        usize::try_from(successes + 1).unwrap()
    );
}

#[test]
fn threads_racing_on_one_aggregate_in_a_sqlite_file() {
    let db = FileDb::new();
    threads_race_on_one_aggregate(&db.app());
}

#[test]
fn threads_racing_on_one_aggregate_in_memory_and_on_postgres() {
    threads_race_on_one_aggregate(&Application::builder().db_uri("memory://").build().unwrap());
    if let Some((app, _schema)) = postgres_app() {
        threads_race_on_one_aggregate(&app);
    }
    threads_race_on_one_aggregate(
        &Application::builder()
            .db_uri("sqlite:///:memory:")
            .build()
            .unwrap(),
    );
}

// ---------------------------------------------------------------------------
// The notification log.
// ---------------------------------------------------------------------------

/// Saves `n` single-event aggregates, noting the recorded events.
fn save_worlds(app: &Application, n: usize) -> Vec<RecordedEvent> {
    let mut events = Vec::new();
    for _ in 0..n {
        let mut world = World::create();
        events.extend(world.pending_events().iter().cloned());
        app.save(&mut world).unwrap();
    }
    events
}

fn ids(items: &[eventsourcing::Notification]) -> Vec<u64> {
    items.iter().map(|n| n.id).collect()
}

#[test]
fn sections_have_ids_and_links() {
    let app = Application::builder().section_size(5).build().unwrap();
    let log = app.notification_log();
    assert_eq!(log.section_size(), 5);
    // An empty log: an empty first section with no links.
    let empty = log.section("1,5").unwrap();
    assert_eq!(empty.id, "1,5");
    assert!(empty.items.is_empty());
    assert_eq!(empty.previous_id, None);
    assert_eq!(empty.next_id, None);

    save_worlds(&app, 12);
    let first = log.section("1,5").unwrap();
    assert_eq!(first.id, "1,5");
    assert_eq!(ids(&first.items), [1, 2, 3, 4, 5]);
    assert_eq!(first.previous_id, None);
    assert_eq!(first.next_id.as_deref(), Some("6,10"));

    let second = log.section(first.next_id.as_deref().unwrap()).unwrap();
    assert_eq!(second.id, "6,10");
    assert_eq!(ids(&second.items), [6, 7, 8, 9, 10]);
    assert_eq!(second.previous_id.as_deref(), Some("1,5"));
    assert_eq!(second.next_id.as_deref(), Some("11,15"));

    let third = log.section("11,15").unwrap();
    assert_eq!(ids(&third.items), [11, 12]);
    assert_eq!(third.previous_id.as_deref(), Some("6,10"));
    assert_eq!(third.next_id, None, "the last section is not full yet");

    // A longer range is cut to the section size.
    let cut = log.section("1,10").unwrap();
    assert_eq!(cut.id, "1,5");
    assert_eq!(ids(&cut.items), [1, 2, 3, 4, 5]);

    // Beyond the end: empty, no next.
    let beyond = log.section("16,20").unwrap();
    assert!(beyond.items.is_empty());
    assert_eq!(beyond.next_id, None);

    // Once the last section fills up it links to the next one.
    save_worlds(&app, 3);
    let full = log.section("11,15").unwrap();
    assert_eq!(ids(&full.items), [11, 12, 13, 14, 15]);
    assert_eq!(full.next_id.as_deref(), Some("16,20"));

    // Following next links from the first section reads everything once.
    let mut all = Vec::new();
    let mut next = Some("1,5".to_owned());
    while let Some(id) = next {
        let section = log.section(&id).unwrap();
        all.extend(ids(&section.items));
        next = section.next_id;
    }
    assert_eq!(all, (1..=15).collect::<Vec<_>>());
}

#[test]
fn the_default_section_size_is_ten() {
    let app = Application::builder().build().unwrap();
    let log = app.notification_log();
    assert_eq!(log.section_size(), 10);
    save_worlds(&app, 12);
    let first = log.section("1,10").unwrap();
    assert_eq!(ids(&first.items), (1..=10).collect::<Vec<_>>());
    assert_eq!(first.next_id.as_deref(), Some("11,20"));
    let second = log.section("11,20").unwrap();
    assert_eq!(ids(&second.items), [11, 12]);
    assert_eq!(second.previous_id.as_deref(), Some("1,10"));
    assert_eq!(second.next_id, None);
    assert!(matches!(
        Application::builder().section_size(0).build(),
        Err(Error::Config { .. })
    ));
}

#[test]
fn malformed_section_ids_are_invalid_arguments() {
    let app = Application::builder().build().unwrap();
    save_worlds(&app, 3);
    let log = app.notification_log();
    for bad in [
        "0,5",
        "5,1",
        "x",
        "1",
        "",
        ",",
        "1,",
        ",5",
        "-1,5",
        "1,x",
        "1,5,9",
        "a,b",
        "18446744073709551616,18446744073709551617",
    ] {
        match log.section(bad) {
            Err(Error::InvalidArgument { name, reason }) => {
                assert_eq!(name, "section id", "{bad:?}");
                assert!(!reason.is_empty());
            }
            other => panic!("{bad:?}: expected InvalidArgument, got {other:?}"),
        }
    }
    // The widest well-formed range is cut to one section.
    let wide = log.section(&format!("1,{}", u64::MAX)).unwrap();
    assert_eq!(wide.id, "1,10");
    assert_eq!(ids(&wide.items), [1, 2, 3]);
}

/// Section ids at the top of the `u64` range are well formed: they must
/// give an empty section or `InvalidArgument`, never a panic (nor, in a
/// release build, a wrapped-around section id).
#[test]
fn section_ids_at_the_end_of_the_range_do_not_overflow() {
    let app = Application::builder().section_size(5).build().unwrap();
    save_worlds(&app, 3);
    let log = app.notification_log();
    for (first, last) in [
        (u64::MAX, u64::MAX),
        (u64::MAX - 1, u64::MAX),
        (u64::MAX - 2, u64::MAX),
        (u64::MAX - 4, u64::MAX),
    ] {
        match log.section(&format!("{first},{last}")) {
            Ok(section) => {
                assert!(section.items.is_empty());
                assert_eq!(section.id, format!("{first},{last}"));
                assert_eq!(section.next_id, None);
            }
            Err(Error::InvalidArgument { .. }) => {}
            Err(other) => panic!("{first},{last}: {other:?}"),
        }
    }
}

#[test]
fn the_reader_returns_only_new_notifications() {
    for size in [1, 3, 10] {
        let app = Application::builder().section_size(size).build().unwrap();
        let mut reader = app.notification_log().reader();
        assert!(reader.read().unwrap().is_empty());
        let mut world = world();
        app.save(&mut world).unwrap();
        world.make_it_so("moon".into());
        app.save(&mut world).unwrap();
        assert_eq!(ids(&reader.read().unwrap()), [1, 2, 3, 4, 5]);
        assert!(reader.read().unwrap().is_empty());
        assert_eq!(reader.position(), 6);

        save_worlds(&app, 2);
        assert_eq!(ids(&reader.read().unwrap()), [6, 7]);
        assert!(reader.read().unwrap().is_empty());

        // A batch is at most one section.
        save_worlds(&app, 4);
        let batch = reader.read_batch().unwrap();
        assert_eq!(ids(&batch), (8..8 + size.min(4) as u64).collect::<Vec<_>>());
        reader.seek(2);
        assert_eq!(ids(&reader.read().unwrap()), (2..=11).collect::<Vec<_>>());
    }
}

#[test]
fn decode_gives_the_recorded_event() {
    let db = FileDb::new();
    let app = db
        .builder()
        .cipher_key(key(9))
        .compression(Some(Compression::Zlib))
        .build()
        .unwrap();
    let mut recorded = Vec::new();
    let mut world = world();
    recorded.extend(world.pending_events().iter().cloned());
    let mut counter = Counter::open("plums".into());
    counter.add(5);
    recorded.extend(counter.pending_events().iter().cloned());
    app.save((&mut world, &mut counter)).unwrap();

    let log = app.notification_log();
    let notifications = app.notification_log().reader().read().unwrap();
    assert_eq!(notifications.len(), recorded.len());
    for (notification, event) in notifications.into_iter().zip(&recorded) {
        assert_eq!(notification.originator_id, event.originator_id);
        assert_eq!(notification.originator_version, event.originator_version);
        assert_eq!(notification.topic, event.topic);
        assert_eq!(&log.decode(notification).unwrap(), event);
    }
    // Topic filters.
    let added = log.select(1, 10, &["Counter.Added"]).unwrap();
    assert_eq!(ids(&added), [6]);
    assert_eq!(
        log.decode(added[0].clone()).unwrap().data,
        br#"{"amount":5}"#
    );
}

// ---------------------------------------------------------------------------
// Bad stored data: each a typed error, never a panic.
// ---------------------------------------------------------------------------

/// A saved world (4 events) in a file database of the given configuration,
/// and a second one.
fn tamper_fixture(builder: impl Fn(&FileDb) -> ApplicationBuilder) -> (FileDb, Uuid, Uuid) {
    let db = FileDb::new();
    let app = builder(&db).build().unwrap();
    let mut first = long_world();
    let mut second = long_world();
    app.save((&mut first, &mut second)).unwrap();
    (db, first.id(), second.id())
}

fn plain(db: &FileDb) -> ApplicationBuilder {
    db.builder()
}

fn zlib(db: &FileDb) -> ApplicationBuilder {
    db.builder().compression(Some(Compression::Zlib))
}

fn encrypted(db: &FileDb) -> ApplicationBuilder {
    db.builder().cipher_key(key(7))
}

fn encrypted_zlib(db: &FileDb) -> ApplicationBuilder {
    encrypted(db).compression(Some(Compression::Zlib))
}

/// Loads `id` through the repository and through the notification log, and
/// returns the repository's error (both must fail, neither may panic).
fn load_error(app: &Application, id: Uuid) -> Error {
    let log = app.notification_log();
    let decoded: Result<Vec<_>, _> = log
        .select(1, usize::MAX, &[])
        .and_then(|all| all.into_iter().map(|n| log.decode(n)).collect());
    assert!(
        decoded.is_err(),
        "the notification log decoded tampered data"
    );
    app.repository().get::<World>(id).unwrap_err()
}

#[track_caller]
fn assert_integrity(error: &Error, id: Uuid, version: u64, expected: IntegrityFault) {
    match error {
        Error::Integrity {
            id: i,
            version: v,
            fault,
        } => {
            assert_eq!((*i, *v, *fault), (id, version, expected), "{error}");
        }
        other => panic!("expected Integrity {expected:?}, got {other:?}"),
    }
}

#[track_caller]
fn assert_corrupt(error: &Error, id: Uuid, version: u64) {
    match error {
        Error::Corrupt {
            id: i, version: v, ..
        } => assert_eq!((*i, *v), (id, version), "{error}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[track_caller]
fn assert_decryption(error: &Error, id: Uuid, version: u64) {
    match error {
        Error::Decryption {
            id: i, version: v, ..
        } => assert_eq!((*i, *v), (id, version), "{error}"),
        other => panic!("expected Decryption, got {other:?}"),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
}

#[test]
fn a_flipped_byte_in_plain_data_breaks_the_hash() {
    let (db, id, other) = tamper_fixture(plain);
    // "dinosaurs" -> "Dinosaurs": still valid JSON of the right shape.
    db.tamper(id, 2, |state| {
        let at = find(state, b"dinosaurs");
        state[at] ^= 0x20;
    });
    let app = db.app();
    assert_integrity(&load_error(&app, id), id, 2, IntegrityFault::HashMismatch);
    // The other aggregate is unaffected.
    assert_eq!(app.repository().get::<World>(other).unwrap().version(), 4);
}

#[test]
fn flipped_bytes_in_each_part_of_a_plain_body() {
    // previous_hash (byte 1..33 of the state) -> the link breaks.
    let (db, id, _) = tamper_fixture(plain);
    db.tamper(id, 3, |state| state[1] ^= 0x01);
    assert_integrity(
        &load_error(&db.app(), id),
        id,
        3,
        IntegrityFault::BrokenLink,
    );

    // timestamp (bytes 33..41) -> the hash no longer matches.
    let (db, id, _) = tamper_fixture(plain);
    db.tamper(id, 3, |state| state[40] ^= 0x01);
    assert_integrity(
        &load_error(&db.app(), id),
        id,
        3,
        IntegrityFault::HashMismatch,
    );

    // event_hash (the last 32 bytes) -> the hash no longer matches.
    let (db, id, _) = tamper_fixture(plain);
    db.tamper(id, 2, |state| *state.last_mut().unwrap() ^= 0x01);
    assert_integrity(
        &load_error(&db.app(), id),
        id,
        2,
        IntegrityFault::HashMismatch,
    );

    // data that is no longer UTF-8 -> corrupt.
    let (db, id, _) = tamper_fixture(plain);
    db.tamper(id, 2, |state| {
        let at = find(state, b"dinosaurs");
        state[at] = 0xff;
    });
    assert_corrupt(&load_error(&db.app(), id), id, 2);
}

#[test]
fn a_flipped_byte_in_an_encrypted_state_fails_to_decrypt() {
    for builder in [encrypted, encrypted_zlib] {
        // In the nonce, the ciphertext and the tag.
        for position in [1, 20, usize::MAX] {
            let (db, id, other) = tamper_fixture(builder);
            db.tamper(id, 2, |state| {
                let at = position.min(state.len() - 1);
                state[at] ^= 0x04;
            });
            let app = builder(&db).build().unwrap();
            assert_decryption(&load_error(&app, id), id, 2);
            assert_eq!(app.repository().get::<World>(other).unwrap().version(), 4);
        }
    }
}

#[test]
fn a_flipped_byte_in_a_compressed_state_is_corrupt() {
    // In the Adler-32 trailer: the stream inflates but does not check.
    let (db, id, _) = tamper_fixture(zlib);
    db.tamper(id, 2, |state| *state.last_mut().unwrap() ^= 0x01);
    assert_corrupt(&load_error(&zlib(&db).build().unwrap(), id), id, 2);

    // In the zlib header.
    let (db, id, _) = tamper_fixture(zlib);
    db.tamper(id, 2, |state| state[1] ^= 0x01);
    assert_corrupt(&load_error(&zlib(&db).build().unwrap(), id), id, 2);

    // Every bit of every byte of the deflate stream: a typed error about
    // that row, unless the flip is in bits the decoder ignores (the padding
    // after the final block), where the record decodes to the very same
    // event.
    let (db, id, _) = tamper_fixture(zlib);
    let app = zlib(&db).build().unwrap();
    let original = db.state(id, 2);
    let events = app.event_store().recorded_events(id).unwrap();
    let mut errors = 0;
    for at in 3..original.len() - 4 {
        for bit in 0..8 {
            let mut state = original.clone();
            state[at] ^= 1 << bit;
            db.set_state(id, 2, &state);
            match app.repository().get::<World>(id) {
                Ok(_) => assert_eq!(
                    app.event_store().recorded_events(id).unwrap(),
                    events,
                    "byte {at} bit {bit}: changed content loaded without an error"
                ),
                Err(
                    Error::Corrupt { version: 2, .. }
                    | Error::Integrity { version: 2, .. }
                    | Error::Decode { version: 2, .. },
                ) => errors += 1,
                Err(other) => panic!("byte {at} bit {bit}: {other:?}"),
            }
        }
    }
    assert!(errors > 8 * (original.len() - 8) * 9 / 10, "{errors}");
}

#[test]
fn a_truncated_state_is_corrupt() {
    // Plain: a body shorter than its fixed parts.
    let (db, id, _) = tamper_fixture(plain);
    db.tamper(id, 2, |state| state.truncate(40));
    assert_corrupt(&load_error(&db.app(), id), id, 2);
    // Plain, cut to the flags byte only.
    let (db, id, _) = tamper_fixture(plain);
    db.tamper(id, 2, |state| state.truncate(1));
    assert_corrupt(&load_error(&db.app(), id), id, 2);
    // Empty: no flags byte.
    let (db, id, _) = tamper_fixture(plain);
    db.set_state(id, 2, b"");
    assert_corrupt(&load_error(&db.app(), id), id, 2);
    // Compressed: the stream ends early.
    let (db, id, _) = tamper_fixture(zlib);
    db.tamper(id, 2, |state| state.truncate(state.len() - 5));
    assert_corrupt(&load_error(&zlib(&db).build().unwrap(), id), id, 2);
    // Encrypted: shorter than nonce and tag.
    let (db, id, _) = tamper_fixture(encrypted);
    db.tamper(id, 2, |state| state.truncate(20));
    assert_corrupt(&load_error(&encrypted(&db).build().unwrap(), id), id, 2);
    // Encrypted, one byte short: indistinguishable from tampering, so it
    // fails to authenticate.
    let (db, id, _) = tamper_fixture(encrypted);
    db.tamper(id, 2, |state| state.truncate(state.len() - 1));
    assert_decryption(&load_error(&encrypted(&db).build().unwrap(), id), id, 2);
}

#[test]
fn an_unknown_flag_bit_is_corrupt() {
    for builder in [plain, zlib, encrypted, encrypted_zlib] {
        for bit in [0x08, 0x80] {
            let (db, id, _) = tamper_fixture(builder);
            db.tamper(id, 3, |state| state[0] |= bit);
            let app = builder(&db).build().unwrap();
            let error = load_error(&app, id);
            assert_corrupt(&error, id, 3);
            assert!(error.to_string().contains("flag"), "{error}");
        }
    }
    // The data key bit (FORMAT.md version 2) without the encrypted bit is
    // corrupt; with it, on an aggregate that has no data key and was not
    // forgotten, the flags were tampered with.
    for builder in [plain, zlib] {
        let (db, id, _) = tamper_fixture(builder);
        db.tamper(id, 3, |state| state[0] |= 0x04);
        assert_corrupt(&load_error(&builder(&db).build().unwrap(), id), id, 3);
    }
    for builder in [encrypted, encrypted_zlib] {
        let (db, id, _) = tamper_fixture(builder);
        db.tamper(id, 3, |state| state[0] |= 0x04);
        let error = load_error(&builder(&db).build().unwrap(), id);
        assert!(
            matches!(error, Error::DataKey { id: at, .. } if at == id),
            "{error:?}"
        );
    }
    // The compressed bit on a body that is not compressed.
    let (db, id, _) = tamper_fixture(plain);
    db.tamper(id, 3, |state| state[0] |= 0x01);
    assert_corrupt(&load_error(&db.app(), id), id, 3);
}

#[test]
fn a_state_that_is_not_a_blob_is_corrupt() {
    let (db, id, _) = tamper_fixture(plain);
    db.conn()
        .execute(
            "UPDATE stored_events SET state = 'text' WHERE originator_id = ?1 AND originator_version = 2",
            [id.to_string()],
        )
        .unwrap();
    assert_corrupt(&load_error(&db.app(), id), id, 2);
}

#[test]
fn a_wrong_cipher_key_fails_to_decrypt() {
    let (db, id, _) = tamper_fixture(encrypted_zlib);
    let app = db.builder().cipher_key(key(8)).build().unwrap();
    assert_decryption(&load_error(&app, id), id, 1);
    // Without any key an encrypted record cannot be read either.
    assert_decryption(&load_error(&db.app(), id), id, 1);
    // The right key still works.
    let app = encrypted_zlib(&db).build().unwrap();
    assert_eq!(app.repository().get::<World>(id).unwrap().version(), 4);
}

#[test]
fn a_ciphertext_moved_to_another_row_fails_to_decrypt() {
    for builder in [encrypted, encrypted_zlib] {
        // Version 3's state in version 2's row.
        let (db, id, other) = tamper_fixture(builder);
        let moved = db.state(id, 3);
        db.set_state(id, 2, &moved);
        let app = builder(&db).build().unwrap();
        assert_decryption(&load_error(&app, id), id, 2);

        // The other aggregate's version 2 in this one's version 2.
        let moved = db.state(other, 2);
        db.set_state(id, 2, &moved);
        assert_decryption(&load_error(&app, id), id, 2);

        // Swapped rows: both fail.
        let (db, id, other) = tamper_fixture(builder);
        let (a, b) = (db.state(id, 4), db.state(other, 4));
        db.set_state(id, 4, &b);
        db.set_state(other, 4, &a);
        let app = builder(&db).build().unwrap();
        assert_decryption(&load_error(&app, id), id, 4);
        assert_decryption(&app.repository().get::<World>(other).unwrap_err(), other, 4);
    }
}

#[test]
fn a_plain_row_moved_to_another_aggregate_breaks_the_chain() {
    let (db, id, other) = tamper_fixture(plain);
    let moved = db.state(other, 2);
    db.set_state(id, 2, &moved);
    // Its previous hash is the other aggregate's version 1.
    assert_integrity(
        &load_error(&db.app(), id),
        id,
        2,
        IntegrityFault::BrokenLink,
    );
}

#[test]
fn a_tampered_topic_breaks_the_hash() {
    // The hash covers the topic and is checked before the event is
    // decoded, so a changed topic is an Integrity error (HashMismatch),
    // whether the new topic is another event of the type or unknown.
    for (builder, topic) in [
        (plain as fn(&FileDb) -> ApplicationBuilder, "World.Created"),
        (plain, "World.Bogus"),
        (plain, "Counter.Added"),
        (encrypted_zlib, "World.Created"),
    ] {
        let (db, id, _) = tamper_fixture(builder);
        let changed = db
            .conn()
            .execute(
                "UPDATE stored_events SET topic = ?2 WHERE originator_id = ?1 AND originator_version = 2",
                (id.to_string(), topic),
            )
            .unwrap();
        assert_eq!(changed, 1);
        let app = builder(&db).build().unwrap();
        assert_integrity(&load_error(&app, id), id, 2, IntegrityFault::HashMismatch);
    }
    // A topic changed to the discarded topic does not make the aggregate
    // vanish silently from `get`: the hash check fails first.
    let (db, id, _) = tamper_fixture(plain);
    db.conn()
        .execute(
            "UPDATE stored_events SET topic = 'World.Discarded' WHERE originator_id = ?1 AND originator_version = 4",
            [id.to_string()],
        )
        .unwrap();
    assert_integrity(
        &load_error(&db.app(), id),
        id,
        4,
        IntegrityFault::HashMismatch,
    );
}

#[test]
fn a_deleted_event_is_a_version_gap() {
    let (db, id, _) = tamper_fixture(encrypted);
    db.conn()
        .execute(
            "DELETE FROM stored_events WHERE originator_id = ?1 AND originator_version = 2",
            [id.to_string()],
        )
        .unwrap();
    let app = encrypted(&db).build().unwrap();
    assert_integrity(
        &app.repository().get::<World>(id).unwrap_err(),
        id,
        3,
        IntegrityFault::VersionGap,
    );
}

#[test]
fn a_malformed_originator_id_column_is_corrupt() {
    let (db, id, _) = tamper_fixture(plain);
    db.conn()
        .execute(
            "UPDATE stored_events SET originator_id = upper(originator_id) WHERE originator_id = ?1 AND originator_version = 2",
            [id.to_string()],
        )
        .unwrap();
    let app = db.app();
    let error = app
        .notification_log()
        .select(1, usize::MAX, &[])
        .unwrap_err();
    assert!(matches!(error, Error::Corrupt { .. }), "{error:?}");
}

// ---------------------------------------------------------------------------
// Plaintext records with a key configured.
// ---------------------------------------------------------------------------

#[test]
fn plaintext_rows_are_refused_with_a_key_unless_allowed() {
    let (db, id, _) = tamper_fixture(plain);
    let keyed = encrypted(&db).build().unwrap();
    assert_decryption(&load_error(&keyed, id), id, 1);
    assert!(keyed.repository().contains(id).unwrap());

    let migrating = encrypted(&db).allow_plaintext(true).build().unwrap();
    let mut world: World = migrating.repository().get(id).unwrap();
    assert_eq!(world.version(), 4);
    world.make_it_so("encrypted now".into());
    migrating.save(&mut world).unwrap();
    // The new row is encrypted; the old ones are not.
    assert_eq!(db.state(id, 4)[0], 0x00);
    assert_eq!(db.state(id, 5)[0], 0x02);
    assert_eq!(migrating.repository().get::<World>(id).unwrap(), world);
    let log = migrating.notification_log();
    for notification in log.select(1, usize::MAX, &[]).unwrap() {
        log.decode(notification).unwrap();
    }
    // Still refused without the allowance, at the first plaintext row.
    assert_decryption(&keyed.repository().get::<World>(id).unwrap_err(), id, 1);
    // Without a key the encrypted row cannot be read.
    assert_decryption(&db.app().repository().get::<World>(id).unwrap_err(), id, 5);
}

// ---------------------------------------------------------------------------
// Configuration.
// ---------------------------------------------------------------------------

#[track_caller]
fn assert_config(result: Result<Application, Error>, variable: &str) -> String {
    match result {
        Err(error @ Error::Config { .. }) => {
            let Error::Config { variable: v, .. } = &error else {
                unreachable!()
            };
            assert_eq!(*v, variable);
            let message = error.to_string();
            assert!(message.contains(variable), "{message}");
            message
        }
        other => panic!("expected a Config error naming {variable}, got {other:?}"),
    }
}

#[test]
fn a_malformed_db_uri_names_db_uri() {
    for bad in [
        "",
        "mysql://localhost/db",
        "sqlite://relative.db",
        "sqlite:/x.db",
        "sqlite:///",
        "sqlite:///a.db?sync=full",
        "sqlite:///a.db?synchronous=sometimes",
        "file:///tmp/x.db",
        "memory",
        "/tmp/x.db",
    ] {
        assert_config(Application::builder().db_uri(bad).build(), "DB_URI");
    }
    // A file that cannot be opened is a database error, not a panic.
    let result = Application::builder()
        .db_uri("sqlite:////nonexistent-directory/for/sure/x.db")
        .build();
    assert!(matches!(result, Err(Error::Database(_))), "{result:?}");
}

#[test]
fn a_bad_cipher_key_names_cipher_key_at_build_time() {
    let secret = STANDARD.encode([0x5a; 32]);
    let bad = [
        ("not base64", "not base64!!".to_owned()),
        ("31 bytes", STANDARD.encode([1; 31])),
        ("33 bytes", STANDARD.encode([1; 33])),
        ("empty", String::new()),
        ("16 bytes", STANDARD.encode([1; 16])),
        ("unpadded", secret.trim_end_matches('=').to_owned()),
        ("whitespace", format!(" {secret}\n")),
        (
            "url-safe alphabet",
            STANDARD
                .encode([0xfb; 32])
                .replace('+', "-")
                .replace('/', "_"),
        ),
    ];
    for (what, value) in bad {
        let message = assert_config(
            Application::builder()
                .db_uri("memory://")
                .cipher_key(value.as_str())
                .build(),
            "CIPHER_KEY",
        );
        if value.len() > 8 {
            assert!(
                !message.contains(value.trim()),
                "{what}: the message repeats the key"
            );
        }
    }
    // The valid key is accepted.
    Application::builder().cipher_key(secret).build().unwrap();
}

const ENV_CHILD: &str = "ES_TEST_APPLICATION_FROM_ENV_CHILD";

/// In a child process (when `ES_TEST_APPLICATION_FROM_ENV_CHILD` is set),
/// builds an application with `Application::from_env()`, saves an
/// aggregate and prints the outcome; otherwise does nothing.
#[test]
fn from_env_child() {
    if std::env::var_os(ENV_CHILD).is_none() {
        return;
    }
    let outcome = match Application::from_env() {
        Ok(app) => {
            let mut world = long_world();
            app.save(&mut world).unwrap();
            // Version 2: `Created` has too little data to compress.
            let flags = app.notification_log().select(2, 1, &[]).unwrap()[0].state[0];
            assert_eq!(app.repository().get::<World>(world.id()).unwrap(), world);
            format!("ok flags={flags}")
        }
        Err(Error::Config { variable, .. }) => format!("config {variable}"),
        Err(other) => format!("other {other:?}"),
    };
    support::child::report(&outcome);
}

/// Runs `from_env_child` with exactly the given configuration variables.
fn from_env(vars: &[(&str, &std::ffi::OsStr)]) -> String {
    support::child::outcome(&support::child::run_child(
        "from_env_child",
        ENV_CHILD,
        vars,
    ))
}

#[test]
fn configuration_from_the_environment() {
    use std::ffi::OsStr;
    let db = FileDb::new();
    let uri = db.uri();
    let good_key = key(3);
    let cases: [(&[(&str, &OsStr)], &str); 9] = [
        (&[], "ok flags=0"),
        (&[("COMPRESS", OsStr::new("lz4"))], "config COMPRESS"),
        (&[("COMPRESS", OsStr::new("zlib"))], "ok flags=1"),
        (&[("DB_URI", OsStr::new("mysql://x"))], "config DB_URI"),
        (&[("DB_URI", OsStr::new("memory://"))], "ok flags=0"),
        (
            &[("CIPHER_KEY", OsStr::new("c2hvcnQ="))],
            "config CIPHER_KEY",
        ),
        (
            &[
                ("CIPHER_KEY", OsStr::new(good_key.as_str())),
                ("COMPRESS", OsStr::new("zlib")),
            ],
            "ok flags=3",
        ),
        (
            &[
                ("DB_URI", OsStr::new(uri.as_str())),
                ("CIPHER_KEY", OsStr::new(good_key.as_str())),
            ],
            "ok flags=2",
        ),
        (
            &[
                ("DB_URI", OsStr::new("memory://")),
                ("CIPHER_KEY", OsStr::new(&good_key[..43])),
            ],
            "config CIPHER_KEY",
        ),
    ];
    for (vars, expected) in cases {
        assert_eq!(from_env(vars), expected, "{vars:?}");
    }
    // The file database written from the environment is there.
    assert_eq!(db.rows(), 4);
    assert_eq!(db.state(db_first_id(&db), 1)[0], 0x02);

    // A value that is not Unicode names its variable.
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let bad = OsStr::from_bytes(b"memory://\xff");
        assert_eq!(from_env(&[("DB_URI", bad)]), "config DB_URI");
        assert_eq!(from_env(&[("COMPRESS", bad)]), "config COMPRESS");
    }
}

fn db_first_id(db: &FileDb) -> Uuid {
    let text: String = db
        .conn()
        .query_row(
            "SELECT originator_id FROM stored_events WHERE notification_id = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    text.parse().unwrap()
}

/// Eight applications on one file, as eight processes would have: each has
/// its own SQLite connections, and SQLite's locks order their writes.
#[test]
fn separate_applications_on_one_sqlite_file() {
    let db = FileDb::new();
    let app = db.app();
    threads_save_their_own_aggregates_with(&app, |_| db.app());
    let db = FileDb::new();
    let app = db.app();
    threads_race_on_one_aggregate_with(&app, |_| db.app());
}

/// A key that serde writes as a list; a map of them has no JSON form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
struct Account(Vec<u8>);

/// A field that `serde_json` cannot write as JSON (a map with non-string
/// keys), which the macros cannot see from its type.
#[aggregate]
#[derive(Debug, Default, Clone, PartialEq)]
struct Ledger {
    entries: usize,
}

#[aggregate]
impl Ledger {
    #[created(Opened)]
    fn open(&mut self) {}

    #[event(Booked)]
    fn book(&mut self, lines: BTreeMap<Account, u64>) {
        self.entries += lines.len();
    }
}

#[test]
fn an_event_that_cannot_be_encoded_fails_the_save() {
    let db = FileDb::new();
    let app = db.app();
    let mut ledger = Ledger::open();
    app.save(&mut ledger).unwrap();
    // Encodable: an empty map.
    ledger.book(BTreeMap::new());
    app.save(&mut ledger).unwrap();
    let rows = db.rows();

    ledger.book(BTreeMap::from([(Account(vec![1, 2]), 3)]));
    // Neither recorded nor applied.
    assert_eq!(ledger.version(), 2);
    assert_eq!(ledger.entries, 0);
    match app.save(&mut ledger) {
        Err(Error::Encode { topic, id, source }) => {
            assert_eq!(topic, "Ledger.Booked");
            assert_eq!(id, ledger.id());
            assert!(!source.to_string().is_empty());
        }
        other => panic!("expected Encode, got {other:?}"),
    }
    assert_eq!(db.rows(), rows);
    assert_eq!(app.repository().get::<Ledger>(ledger.id()).unwrap(), ledger);
}
