//! Snapshots and time travel: snapshots on demand and every N events,
//! loading from the latest snapshot (equal to a full replay), `get_at`
//! around snapshot versions, `get_as_of` by timestamp, tampered and forged
//! snapshots, discards after a snapshot, snapshots that this code cannot
//! read, a failed snapshot write, and `SNAPSHOT_INTERVAL`.
//!
//! Every behaviour runs against `memory://`, SQLite in memory and a SQLite
//! file (plain, and encrypted and compressed), and against PostgreSQL when
//! `EVENTSOURCING_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`)
//! is reachable. Each test runs with two aggregates: one built by the
//! macros, and one whose `Root` is written by hand.

use std::fmt::Debug;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use eventsourcing::prelude::*;

use eventsourcing::recorder::{
    Batch, EventQuery, MemoryRecorder, Notification, Parked, Position, Recorder, Registration,
    TrackingKey,
};
use eventsourcing::{ApplicationBuilder, IntegrityFault, Snapshot, StoredEvent, StoredRow};
use support::fixtures::World;
use support::sqlite::FileDb;

// ---------------------------------------------------------------------------
// Two aggregates: one from the macros, one written by hand.
// ---------------------------------------------------------------------------

#[derive(Event, Debug, Clone, PartialEq)]
enum TallyEvent {
    Started { label: String },
    Added { amount: u64 },
}

/// An aggregate in the explicit style (its `Aggregate` written by hand),
/// with state schema version 2: version 1 called `total` `sum`.
#[aggregate(version = 2)]
#[derive(Debug, Default, Clone, PartialEq)]
struct Tally {
    label: String,
    total: u64,
    count: u64,
}

impl Aggregate for Tally {
    type Event = TallyEvent;

    fn apply(&mut self, event: TallyEvent) {
        match event {
            TallyEvent::Started { label } => self.label = label,
            TallyEvent::Added { amount } => {
                self.total += amount;
                self.count += 1;
            }
        }
    }

    fn upcast_state(from: u32, state: &mut JsonObject) -> bool {
        if from != 1 {
            return false;
        }
        if let Some(sum) = state.remove("sum") {
            state.insert("total".into(), sum);
        }
        true
    }
}

/// What the tests need of an aggregate type.
trait Model: Aggregate<Id = Uuid> + Clone + PartialEq + Debug {
    /// A new aggregate (version 1).
    fn make() -> Self;
    /// Records the `i`th event after the first.
    fn step(&mut self, i: u64);
}

impl Model for World {
    fn make() -> Self {
        World::create()
    }

    fn step(&mut self, i: u64) {
        self.make_it_so(format!("event {i}"));
    }
}

impl Model for Tally {
    fn make() -> Self {
        Tally::start(TallyEvent::Started {
            label: "tally".into(),
        })
    }

    fn step(&mut self, i: u64) {
        self.trigger(TallyEvent::Added { amount: i });
    }
}

/// Runs `$test::<World>` and `$test::<Tally>` on `$app`.
macro_rules! both {
    ($test:ident, $app:expr) => {{
        $test::<World>($app);
        $test::<Tally>($app);
    }};
}

// ---------------------------------------------------------------------------
// Stores.
// ---------------------------------------------------------------------------

/// Raw access to the snapshots of a test database file.
trait SnapshotRows {
    fn snapshot_rows(&self, id: Uuid) -> Vec<u64>;
    fn tamper_snapshot(&self, id: Uuid, version: u64, change: impl FnOnce(&mut Vec<u8>));
}

impl SnapshotRows for FileDb {
    /// The number of rows of `snapshots` for `id`, by raw SQL.
    fn snapshot_rows(&self, id: Uuid) -> Vec<u64> {
        let conn = self.conn();
        let mut select = conn
            .prepare(
                "SELECT originator_version FROM snapshots WHERE originator_id = ?1 \
                 ORDER BY originator_version",
            )
            .unwrap();
        select
            .query_map([id.to_string()], |row| row.get::<_, i64>(0))
            .unwrap()
            .map(|version| u64::try_from(version.unwrap()).unwrap())
            .collect()
    }

    /// Applies `change` to the stored state of the snapshot `(id, version)`.
    fn tamper_snapshot(&self, id: Uuid, version: u64, change: impl FnOnce(&mut Vec<u8>)) {
        let conn = self.conn();
        let version = i64::try_from(version).unwrap();
        let mut state: Vec<u8> = conn
            .query_row(
                "SELECT state FROM snapshots WHERE originator_id = ?1 AND originator_version = ?2",
                (id.to_string(), version),
                |row| row.get(0),
            )
            .unwrap();
        change(&mut state);
        let changed = conn
            .execute(
                "UPDATE snapshots SET state = ?3 WHERE originator_id = ?1 AND originator_version = ?2",
                (id.to_string(), version, state),
            )
            .unwrap();
        assert_eq!(changed, 1);
    }
}

fn key() -> String {
    STANDARD.encode([9; 32])
}

/// Runs `test` on a fresh application of each store, configured by
/// `configure`.
fn each_store(
    configure: impl Fn(ApplicationBuilder) -> ApplicationBuilder,
    test: impl Fn(&Application),
) {
    support::stores::each_store(configure, |_, app| test(app));
}

// ---------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------

/// A saved aggregate with `events` events, saved whenever its version is a
/// multiple of `per_save`, and at the end.
fn saved<M: Model>(app: &Application, events: u64, per_save: u64) -> M {
    let mut aggregate = M::make();
    for i in 2..=events {
        aggregate.step(i);
        if i % per_save == 0 {
            app.save(&mut aggregate).unwrap();
        }
    }
    app.save(&mut aggregate).unwrap();
    assert_eq!(aggregate.version(), events);
    aggregate
}

/// The aggregate rebuilt from all its events up to `to`, without snapshots.
fn full_replay<M: Model>(app: &Application, id: Uuid, to: u64) -> Option<M> {
    let events = app.event_store().recorded_events(id).unwrap();
    M::replay(
        id,
        events
            .into_iter()
            .filter(|event| event.originator_version <= to)
            .map(Ok),
    )
    .unwrap()
}

/// The versions of the aggregate's snapshots, oldest first, as the recorder
/// reports them.
fn snapshot_versions(app: &Application, id: Uuid) -> Vec<u64> {
    let recorder = app.event_store().recorder();
    let mut versions = Vec::new();
    let mut to = None;
    while let Some(row) = recorder.select_snapshot(id, to).unwrap() {
        versions.push(row.originator_version);
        match row.originator_version.checked_sub(1) {
            Some(below) => to = Some(below),
            None => break,
        }
    }
    versions.reverse();
    versions
}

/// Records `snapshot` as it is, bypassing the application.
fn insert_raw_snapshot(app: &Application, snapshot: &Snapshot) {
    let row = app
        .event_store()
        .mapper()
        .encode_snapshot(snapshot)
        .unwrap();
    assert!(app.event_store().recorder().insert_snapshot(&row).unwrap());
}

#[track_caller]
fn assert_integrity(error: &Error, id: Uuid, version: u64, expected: IntegrityFault) {
    match error {
        Error::Integrity {
            id: i,
            version: v,
            fault,
        } => assert_eq!((*i, *v, *fault), (id, version, expected), "{error}"),
        other => panic!("expected Integrity {expected:?} at {version}, got {other:?}"),
    }
}

#[track_caller]
fn assert_not_found<T: Debug>(result: Result<T>, id: Uuid) {
    match result {
        Err(Error::NotFound { id: i }) => assert_eq!(i, id),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

/// Whether `$load` (of type `M`) equals the full replay to `$version`.
#[track_caller]
fn assert_same<M: Model>(loaded: &M, reference: &M) {
    assert_eq!(loaded, reference);
    assert_eq!(loaded.version(), reference.version());
    assert_eq!(loaded.head(), reference.head());
    assert!(loaded.pending_events().is_empty());
}

// ---------------------------------------------------------------------------
// Snapshots on demand.
// ---------------------------------------------------------------------------

fn on_demand<M: Model>(app: &Application) {
    let repository = app.repository();
    let mut live: M = saved(app, 10, 3);
    let id = live.id();
    assert!(snapshot_versions(app, id).is_empty());

    assert_eq!(app.save_snapshot::<M>(id).unwrap(), 10);
    assert_eq!(snapshot_versions(app, id), [10]);
    // Again at the same version: the existing one stays.
    assert_eq!(app.save_snapshot::<M>(id).unwrap(), 10);
    assert_eq!(snapshot_versions(app, id), [10]);

    // The record is FORMAT.md's: its hash checks, its previous_hash is the
    // head at its version, its data the state as a JSON object.
    let snapshot = app
        .event_store()
        .latest_snapshot(id, None)
        .unwrap()
        .unwrap();
    snapshot.check_hash().unwrap();
    assert_eq!(snapshot.originator_version, 10);
    assert_eq!(snapshot.head, live.head());
    assert_eq!(
        eventsourcing::format::split_topic(&snapshot.topic),
        Some((M::NAME, M::STATE_VERSION))
    );
    let state: JsonObject = serde_json::from_slice(&snapshot.data).unwrap();
    assert!(!state.is_empty());

    let loaded: M = repository.get(id).unwrap();
    assert_same(&loaded, &live);

    // More events after the snapshot.
    for i in 11..=15 {
        live.step(i);
    }
    app.save(&mut live).unwrap();
    let loaded: M = repository.get(id).unwrap();
    assert_same(&loaded, &live);
    assert_same(&loaded, &full_replay::<M>(app, id, 15).unwrap());

    // A snapshot at an earlier version.
    assert_eq!(app.save_snapshot_at::<M>(id, 5).unwrap(), 5);
    assert_eq!(snapshot_versions(app, id), [5, 10]);
    assert_eq!(
        app.event_store()
            .latest_snapshot(id, Some(9))
            .unwrap()
            .map(|s| s.originator_version),
        Some(5)
    );

    // get_at below, at, between and above the snapshots' versions.
    for version in 1..=15 {
        let old: M = repository.get_at(id, version).unwrap();
        assert_same(&old, &full_replay::<M>(app, id, version).unwrap());
    }
    for version in [0, 16, u64::MAX] {
        assert_not_found(repository.get_at::<M>(id, version), id);
    }

    // Nothing to snapshot: no such aggregate, no such version.
    let unknown = Uuid::new_v4();
    assert_not_found(app.save_snapshot::<M>(unknown), unknown);
    assert_not_found(app.save_snapshot_at::<M>(id, 16), id);
    assert_not_found(app.save_snapshot_at::<M>(id, 0), id);
}

#[test]
fn snapshots_on_demand() {
    each_store(|b| b, |app| both!(on_demand, app));
}

// ---------------------------------------------------------------------------
// Automatic snapshots.
// ---------------------------------------------------------------------------

fn every_five<M: Model>(app: &Application) {
    let mut live = M::make();
    let id = live.id();
    let save_to = |live: &mut M, version: u64| {
        for i in live.version() + 1..=version {
            live.step(i);
        }
        app.save(live).unwrap();
    };
    // Versions 1-3: no multiple of 5.
    save_to(&mut live, 3);
    assert!(snapshot_versions(app, id).is_empty());
    // 4-7 passes 5: a snapshot at 7, the version the save reached.
    save_to(&mut live, 7);
    assert_eq!(snapshot_versions(app, id), [7]);
    // 8-10 reaches 10 exactly.
    save_to(&mut live, 10);
    assert_eq!(snapshot_versions(app, id), [7, 10]);
    // One at a time up to 16: a snapshot at 15 only.
    for version in 11..=16 {
        save_to(&mut live, version);
    }
    assert_eq!(snapshot_versions(app, id), [7, 10, 15]);
    // 17-31 passes 20, 25 and 30: one snapshot, at 31.
    save_to(&mut live, 31);
    assert_eq!(snapshot_versions(app, id), [7, 10, 15, 31]);
    assert!(app.take_snapshot_error().is_none());

    // Each snapshot is the state at its version.
    for version in [7, 10, 15, 31] {
        let snapshot = app
            .event_store()
            .latest_snapshot(id, Some(version))
            .unwrap()
            .unwrap();
        let restored = M::from_snapshot(&snapshot).unwrap();
        assert_same(&restored, &full_replay::<M>(app, id, version).unwrap());
    }
    let loaded: M = app.repository().get(id).unwrap();
    assert_same(&loaded, &live);
    for version in 1..=31 {
        let old: M = app.repository().get_at(id, version).unwrap();
        assert_same(&old, &full_replay::<M>(app, id, version).unwrap());
    }
}

#[test]
fn snapshots_every_n_events() {
    each_store(
        |b| b.snapshot_every::<World>(5).snapshot_every::<Tally>(5),
        |app| both!(every_five, app),
    );
    // The default interval, for every type.
    each_store(
        |b| b.default_snapshot_interval(5),
        |app| both!(every_five, app),
    );
    // A type's own interval wins over the default, in either order.
    each_store(
        |b| {
            b.snapshot_every::<World>(5)
                .default_snapshot_interval(3)
                .snapshot_every::<Tally>(5)
        },
        |app| both!(every_five, app),
    );
}

#[test]
fn snapshots_only_for_the_configured_types() {
    each_store(
        |b| b.snapshot_every::<World>(2).snapshot_every::<Tally>(0),
        |app| {
            let mut world: World = World::make();
            let mut tally: Tally = Tally::make();
            for i in 2..=6 {
                world.step(i);
                tally.step(i);
            }
            app.save((&mut world, &mut tally)).unwrap();
            assert_eq!(snapshot_versions(app, world.id()), [6]);
            assert!(snapshot_versions(app, tally.id()).is_empty());
        },
    );
    each_store(
        |b| b.default_snapshot_interval(2).snapshot_every::<World>(0),
        |app| {
            let world: World = saved(app, 6, 1);
            let tally: Tally = saved(app, 6, 1);
            assert!(snapshot_versions(app, world.id()).is_empty());
            assert_eq!(snapshot_versions(app, tally.id()), [2, 4, 6]);
        },
    );
    // No interval configured: no snapshots.
    each_store(
        |b| b,
        |app| {
            let world: World = saved(app, 30, 1);
            assert!(snapshot_versions(app, world.id()).is_empty());
        },
    );
}

#[test]
fn snapshot_rows_in_a_sqlite_file() {
    let db = FileDb::new();
    let app = db.builder().default_snapshot_interval(4).build().unwrap();
    let world: World = saved(&app, 13, 1);
    let tally: Tally = saved(&app, 9, 3);
    assert_eq!(db.snapshot_rows(world.id()), [4, 8, 12]);
    assert_eq!(db.snapshot_rows(tally.id()), [6, 9]);
    let topics: Vec<String> = db
        .conn()
        .prepare("SELECT DISTINCT topic FROM snapshots ORDER BY topic")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(topics, ["Tally@2", "World"]);
}

// ---------------------------------------------------------------------------
// Loading reads only the events after the snapshot.
// ---------------------------------------------------------------------------

/// A memory recorder that counts the events it hands out, and can be told
/// to fail snapshot writes.
#[derive(Default)]
struct Instrumented {
    inner: MemoryRecorder,
    events_read: AtomicUsize,
    fail_snapshots: AtomicBool,
}

impl Instrumented {
    fn take_count(&self) -> usize {
        self.events_read.swap(0, Ordering::SeqCst)
    }
}

impl Recorder for Instrumented {
    fn insert(&self, batch: &Batch<'_>) -> Result<Vec<u64>> {
        self.inner.insert(batch)
    }

    fn select_events(
        &self,
        query: &EventQuery,
        each: &mut dyn FnMut(StoredRow<'_>) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        self.inner.select_events(query, &mut |event| {
            self.events_read.fetch_add(1, Ordering::SeqCst);
            each(event)
        })
    }

    fn select_notifications(
        &self,
        start: u64,
        limit: usize,
        topics: &[&str],
    ) -> Result<Vec<Notification>> {
        self.inner.select_notifications(start, limit, topics)
    }

    fn max_notification_id(&self) -> Result<u64> {
        self.inner.max_notification_id()
    }

    fn select_notification_of(
        &self,
        originator_id: Uuid,
        originator_version: u64,
    ) -> Result<Option<eventsourcing::recorder::Notification>> {
        self.inner
            .select_notification_of(originator_id, originator_version)
    }

    fn insert_snapshot(&self, snapshot: &StoredEvent) -> Result<bool> {
        if self.fail_snapshots.load(Ordering::SeqCst) {
            return Err(Error::Database("the disk is full".into()));
        }
        self.inner.insert_snapshot(snapshot)
    }

    fn select_snapshot(
        &self,
        originator_id: Uuid,
        to_version: Option<u64>,
    ) -> Result<Option<StoredEvent>> {
        self.inner.select_snapshot(originator_id, to_version)
    }

    fn select_tracking(&self, key: &TrackingKey) -> Result<Option<Position>> {
        self.inner.select_tracking(key)
    }

    fn raise_epoch(&self, key: &TrackingKey) -> Result<Position> {
        self.inner.raise_epoch(key)
    }

    fn register_follower(&self, registration: &Registration) -> Result<Registration> {
        self.inner.register_follower(registration)
    }

    fn update_follower(&self, registration: &Registration) -> Result<()> {
        self.inner.update_follower(registration)
    }

    fn select_parked(&self, follower: &str) -> Result<Vec<Parked>> {
        self.inner.select_parked(follower)
    }
}

fn reads_after_the_snapshot<M: Model>(_: &Application) {
    let recorder = Arc::new(Instrumented::default());
    let app = Application::builder()
        .recorder(recorder.clone())
        .default_snapshot_interval(100)
        .build()
        .unwrap();
    let live: M = saved(&app, 250, 10);
    assert_eq!(snapshot_versions(&app, live.id()), [100, 200]);
    recorder.take_count();

    // The snapshot's own event (to check its head), then 201 to 250.
    let loaded: M = app.repository().get(live.id()).unwrap();
    assert_same(&loaded, &live);
    assert_eq!(recorder.take_count(), 51);

    // get_at between, at and below the snapshots.
    for (version, read) in [(150, 51), (100, 1), (99, 99), (200, 1), (201, 2)] {
        let old: M = app.repository().get_at(live.id(), version).unwrap();
        assert_eq!(recorder.take_count(), read, "get_at {version}");
        assert_same(&old, &full_replay::<M>(&app, live.id(), version).unwrap());
        recorder.take_count();
    }
}

#[test]
fn loading_reads_only_the_events_after_the_snapshot() {
    both!(
        reads_after_the_snapshot,
        &Application::builder().build().unwrap()
    );
}

// ---------------------------------------------------------------------------
// A failed snapshot write does not fail the save.
// ---------------------------------------------------------------------------

fn failed_write<M: Model>(_: &Application) {
    let recorder = Arc::new(Instrumented::default());
    recorder.fail_snapshots.store(true, Ordering::SeqCst);
    let app = Application::builder()
        .recorder(recorder.clone())
        .default_snapshot_interval(2)
        .build()
        .unwrap();
    let mut live = M::make();
    live.step(2);
    live.step(3);
    // The events are committed, and the save says so.
    assert_eq!(app.save(&mut live).unwrap(), [1, 2, 3]);
    assert!(live.pending_events().is_empty());
    assert_eq!(
        app.event_store().recorded_events(live.id()).unwrap().len(),
        3
    );
    // The snapshot's error is kept once.
    assert!(matches!(
        app.take_snapshot_error(),
        Some(Error::Database(_))
    ));
    assert!(app.take_snapshot_error().is_none());
    assert!(snapshot_versions(&app, live.id()).is_empty());
    // Loading replays the events.
    let loaded: M = app.repository().get(live.id()).unwrap();
    assert_same(&loaded, &live);
    // Asked for, a snapshot that cannot be written is an error.
    assert!(matches!(
        app.save_snapshot::<M>(live.id()),
        Err(Error::Database(_))
    ));

    // Once writes work again, the next save past a multiple takes one.
    recorder.fail_snapshots.store(false, Ordering::SeqCst);
    live.step(4);
    app.save(&mut live).unwrap();
    assert_eq!(snapshot_versions(&app, live.id()), [4]);
    assert!(app.take_snapshot_error().is_none());
}

#[test]
fn a_failed_snapshot_write_does_not_fail_the_save() {
    both!(failed_write, &Application::builder().build().unwrap());
}

// ---------------------------------------------------------------------------
// Discarded after a snapshot.
// ---------------------------------------------------------------------------

fn discarded<M: Model>(app: &Application) {
    let mut live: M = saved(app, 10, 10);
    let id = live.id();
    app.save_snapshot::<M>(id).unwrap();
    live.step(11);
    live.discard();
    app.save(&mut live).unwrap();
    // The discard (version 12) is after the snapshot (version 10).
    assert!(!app.repository().contains(id).unwrap());
    assert_not_found(app.repository().get::<M>(id), id);
    assert_not_found(app.repository().get_at::<M>(id, 12), id);
    assert_not_found(app.save_snapshot::<M>(id), id);
    assert_not_found(app.save_snapshot_at::<M>(id, 12), id);
    for version in [9, 10, 11] {
        let old: M = app.repository().get_at(id, version).unwrap();
        assert_same(&old, &full_replay::<M>(app, id, version).unwrap());
    }
    // A discard that passes a multiple of the interval takes no snapshot of
    // the discarded aggregate.
    let mut gone = M::make();
    gone.discard();
    app.save(&mut gone).unwrap();
    assert!(snapshot_versions(app, gone.id()).is_empty());
    assert_not_found(app.repository().get::<M>(gone.id()), gone.id());
}

#[test]
fn discarded_after_a_snapshot_is_not_found() {
    each_store(
        |b| b.default_snapshot_interval(2),
        |app| both!(discarded, app),
    );
}

// ---------------------------------------------------------------------------
// Tampered and forged snapshots.
// ---------------------------------------------------------------------------

fn tampered<M: Model>(encrypted: bool) {
    let db = FileDb::new();
    let builder = if encrypted {
        db.builder().cipher_key(key())
    } else {
        db.builder()
    };
    let app = builder.build().unwrap();
    let mut live: M = saved(&app, 12, 4);
    let id = live.id();
    app.save_snapshot_at::<M>(id, 8).unwrap();
    live.step(13);
    app.save(&mut live).unwrap();
    assert_same(&app.repository().get::<M>(id).unwrap(), &live);

    // Flip a bit of one byte of the state's JSON data: flags (1) and, in a
    // plain record, previous_hash (32) and timestamp (8) come before it; in
    // an encrypted one the nonce (12) and the ciphertext.
    let at = if encrypted { 1 + 12 + 45 } else { 1 + 40 + 2 };
    db.tamper_snapshot(id, 8, |state| state[at] ^= 0x01);
    let error = app.repository().get::<M>(id).unwrap_err();
    if encrypted {
        assert!(
            matches!(error, Error::Decryption { version: 8, .. }),
            "{error:?}"
        );
    } else {
        assert_integrity(&error, id, 8, IntegrityFault::HashMismatch);
    }
    assert!(app.repository().get_at::<M>(id, 10).is_err());
    // Versions before the snapshot do not read it.
    let old: M = app.repository().get_at(id, 7).unwrap();
    assert_same(&old, &full_replay::<M>(&app, id, 7).unwrap());
}

#[test]
fn a_tampered_snapshot_is_an_error() {
    tampered::<World>(false);
    tampered::<Tally>(false);
    tampered::<World>(true);
    tampered::<Tally>(true);
}

fn forged<M: Model>(app: &Application) {
    let mut live: M = saved(app, 10, 10);
    let id = live.id();
    let events = app.event_store().recorded_events(id).unwrap();
    // A self-consistent snapshot at version 10 whose previous_hash is not
    // the head at 10 (it is the head at 9).
    let real = live.to_snapshot().unwrap();
    let forged = Snapshot::new(
        id,
        10,
        real.topic.clone(),
        real.timestamp,
        events[8].event_hash,
        real.data.clone(),
    );
    forged.check_hash().unwrap();
    insert_raw_snapshot(app, &forged);
    // Broken at once, although no event follows it yet ...
    assert_integrity(
        &app.repository().get::<M>(id).unwrap_err(),
        id,
        10,
        IntegrityFault::BrokenLink,
    );
    // ... and when events follow it.
    live.step(11);
    live.step(12);
    app.save(&mut live).unwrap();
    for result in [
        app.repository().get::<M>(id),
        app.repository().get_at::<M>(id, 11),
        app.repository().get_as_of::<M>(id, i64::MAX),
    ] {
        assert_integrity(&result.unwrap_err(), id, 10, IntegrityFault::BrokenLink);
    }
    let old: M = app.repository().get_at(id, 9).unwrap();
    assert_same(&old, &full_replay::<M>(app, id, 9).unwrap());

    // A snapshot at a version that has no event.
    let mut other: M = saved(app, 3, 3);
    let beyond = Snapshot::new(
        other.id(),
        5,
        real.topic.clone(),
        real.timestamp,
        other.head(),
        real.data.clone(),
    );
    insert_raw_snapshot(app, &beyond);
    assert_integrity(
        &app.repository().get::<M>(other.id()).unwrap_err(),
        other.id(),
        5,
        IntegrityFault::VersionGap,
    );
    // Once versions 4 and 5 exist, the snapshot's head is not 5's hash.
    other.step(4);
    other.step(5);
    app.save(&mut other).unwrap();
    assert_integrity(
        &app.repository().get::<M>(other.id()).unwrap_err(),
        other.id(),
        5,
        IntegrityFault::BrokenLink,
    );
}

#[test]
fn a_snapshot_that_does_not_link_is_an_integrity_error() {
    each_store(|b| b, |app| both!(forged, app));
}

// ---------------------------------------------------------------------------
// Snapshots this code cannot read: passed over.
// ---------------------------------------------------------------------------

fn unreadable<M: Model>(app: &Application) {
    let live: M = saved(app, 6, 6);
    let id = live.id();
    let forge = |version: u64, topic: String, data: &[u8]| {
        let events = app.event_store().recorded_events(id).unwrap();
        let head = events[usize::try_from(version).unwrap() - 1].event_hash;
        insert_raw_snapshot(
            app,
            &Snapshot::new(id, version, topic, 0, head, data.to_vec()),
        );
    };
    // An authentic snapshot of a newer state schema than this code knows,
    forge(
        6,
        eventsourcing::format::versioned_topic(M::NAME, M::STATE_VERSION + 1),
        br#"{"from":"the future"}"#,
    );
    // ... and one of this schema whose data does not decode.
    forge(
        4,
        eventsourcing::format::versioned_topic(M::NAME, M::STATE_VERSION),
        b"[1, 2, 3]",
    );
    // Both are passed over: the events are replayed from the first.
    let loaded: M = app.repository().get(id).unwrap();
    assert_same(&loaded, &live);
    let old: M = app.repository().get_at(id, 5).unwrap();
    assert_same(&old, &full_replay::<M>(app, id, 5).unwrap());
    let old: M = app.repository().get_as_of(id, i64::MAX).unwrap();
    assert_same(&old, &live);
}

#[test]
fn a_snapshot_this_code_cannot_read_is_passed_over() {
    each_store(|b| b, |app| both!(unreadable, app));
}

#[test]
fn an_old_state_schema_is_upcast() {
    each_store(
        |b| b,
        |app| {
            let live: Tally = saved(app, 5, 5);
            // Version 1 of Tally's state called `total` `sum`.
            let old_state = format!(
                r#"{{"label":"{}","sum":{},"count":{}}}"#,
                live.label, live.total, live.count
            );
            insert_raw_snapshot(
                app,
                &Snapshot::new(
                    live.id(),
                    5,
                    "Tally".into(),
                    0,
                    live.head(),
                    old_state.into_bytes(),
                ),
            );
            let loaded: Tally = app.repository().get(live.id()).unwrap();
            assert_same(&loaded, &live);
            assert_eq!(loaded.total, 2 + 3 + 4 + 5);
        },
    );
}

#[test]
fn an_id_of_another_type_is_unknown_topic() {
    each_store(
        |b| b.default_snapshot_interval(2),
        |app| {
            let world: World = saved(app, 4, 4);
            assert_eq!(snapshot_versions(app, world.id()), [4]);
            match app.repository().get::<Tally>(world.id()) {
                Err(Error::UnknownTopic { aggregate, .. }) => assert_eq!(aggregate, "Tally"),
                other => panic!("expected UnknownTopic, got {other:?}"),
            }
        },
    );
}

// ---------------------------------------------------------------------------
// Time travel by timestamp.
// ---------------------------------------------------------------------------

fn as_of<M: Model>(app: &Application) {
    let repository = app.repository();
    let mut live: M = saved(app, 20, 1);
    let id = live.id();
    live.discard();
    app.save(&mut live).unwrap();
    let events = app.event_store().recorded_events(id).unwrap();
    let times: Vec<i64> = events.iter().map(|e| e.timestamp).collect();

    // The version as of `t`: the events up to the first one after `t`.
    let expected = |t: i64| u64::try_from(times.iter().take_while(|&&at| at <= t).count()).unwrap();

    let mut moments = vec![i64::MIN, times[0] - 1, i64::MAX];
    for &at in &times {
        moments.extend([at - 1, at, at + 1]);
    }
    for t in moments {
        let version = expected(t);
        let result = repository.get_as_of::<M>(id, t);
        if version == 0 || version == 21 {
            // Before the first event, or after the discard.
            assert_not_found(result, id);
        } else {
            let then = result.unwrap();
            assert_eq!(then.version(), version, "as of {t}");
            assert_same(&then, &full_replay::<M>(app, id, version).unwrap());
        }
    }
    let unknown = Uuid::new_v4();
    assert_not_found(repository.get_as_of::<M>(unknown, i64::MAX), unknown);
}

#[test]
fn get_as_of_a_timestamp() {
    // Without snapshots, with a snapshot every 3 events (the bisection over
    // snapshots), and with one on every event.
    each_store(|b| b, |app| both!(as_of, app));
    each_store(|b| b.default_snapshot_interval(3), |app| both!(as_of, app));
    each_store(|b| b.default_snapshot_interval(1), |app| both!(as_of, app));
}

fn as_of_reads<M: Model>(_: &Application) {
    let recorder = Arc::new(Instrumented::default());
    let app = Application::builder()
        .recorder(recorder.clone())
        .default_snapshot_interval(10)
        .build()
        .unwrap();
    let live: M = saved(&app, 100, 1);
    let events = app.event_store().recorded_events(live.id()).unwrap();
    // A moment just after version 55 (timestamps may repeat: take the last
    // version with that timestamp).
    let t = events[54].timestamp;
    let version = u64::try_from(events.iter().take_while(|e| e.timestamp <= t).count()).unwrap();
    recorder.take_count();
    let then: M = app.repository().get_as_of(live.id(), t).unwrap();
    assert_eq!(then.version(), version);
    // A few probes of snapshots' events, then the snapshot's event and the
    // events after it up to the first one after `t`: far fewer than 55.
    let read = recorder.take_count();
    assert!(read < 30, "read {read} events");
}

#[test]
fn get_as_of_starts_from_a_snapshot_before_the_moment() {
    both!(as_of_reads, &Application::builder().build().unwrap());
}

// ---------------------------------------------------------------------------
// SNAPSHOT_INTERVAL.
// ---------------------------------------------------------------------------

const ENV_CHILD: &str = "ES_TEST_SNAPSHOTS_FROM_ENV_CHILD";

/// In a child process (when `ES_TEST_SNAPSHOTS_FROM_ENV_CHILD` is set),
/// builds an application from the environment, saves a world of 5 events
/// and prints its snapshots' versions, or the configuration error.
#[test]
fn from_env_child() {
    if std::env::var_os(ENV_CHILD).is_none() {
        return;
    }
    let outcome = match Application::from_env() {
        Ok(app) => {
            let world: World = saved(&app, 5, 5);
            format!("ok {:?}", snapshot_versions(&app, world.id()))
        }
        Err(Error::Config { variable, .. }) => format!("config {variable}"),
        Err(other) => format!("other {other:?}"),
    };
    support::child::report(&outcome);
}

/// Runs `from_env_child` with `SNAPSHOT_INTERVAL` set to `value` (or unset).
fn from_env(value: Option<&str>) -> String {
    let value = value.map(std::ffi::OsStr::new);
    let vars: Vec<(&str, &std::ffi::OsStr)> =
        value.iter().map(|v| ("SNAPSHOT_INTERVAL", *v)).collect();
    support::child::outcome(&support::child::run_child(
        "from_env_child",
        ENV_CHILD,
        &vars,
    ))
}

#[test]
fn snapshot_interval_from_the_environment() {
    let cases = [
        (None, "ok []"),
        (Some("2"), "ok [5]"),
        (Some("5"), "ok [5]"),
        (Some("6"), "ok []"),
        (Some(" 1 "), "ok [5]"),
        (Some("0"), "ok []"),
        (Some(""), "ok []"),
        (Some("ten"), "config SNAPSHOT_INTERVAL"),
        (Some("-1"), "config SNAPSHOT_INTERVAL"),
        (Some("1.5"), "config SNAPSHOT_INTERVAL"),
        (Some("99999999999999999999999"), "config SNAPSHOT_INTERVAL"),
    ];
    for (value, expected) in cases {
        assert_eq!(from_env(value), expected, "SNAPSHOT_INTERVAL={value:?}");
    }
}
