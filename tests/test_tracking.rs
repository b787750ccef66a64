//! The tracking conformance suite: where followers stand in upstream logs
//! (FORMAT.md, `tracking`), moved by a compare-and-set in the same
//! transaction as a batch's events, and taken over by raising the epoch.
//!
//! Each behaviour is one function taking a [`Backend`]; the `conformance!`
//! list below them runs every function against every backend (listed once,
//! in `backends/mod.rs`). Backend specifics (migration from version 1, the
//! PostgreSQL insert function) follow.

use std::sync::{Arc, Barrier};
use std::thread;

use eventsourcing::recorder::{Batch, EventQuery, Position, Recorder, TrackingKey, TrackingUpdate};
use eventsourcing::{Error, Result, Uuid};

use support::conformance;
use support::recorders::{Backend, event};

/// The row of `follower` in the log of `upstream`, partition 0.
fn key(follower: &str) -> TrackingKey {
    TrackingKey::new(follower, "upstream")
}

fn at(notification_id: u64, epoch: u64) -> Position {
    Position {
        notification_id,
        epoch,
    }
}

/// Moves the row of `key`, held at `epoch`, from `expected` to `next`, with
/// no events.
fn track(
    recorder: &dyn Recorder,
    key: &TrackingKey,
    epoch: u64,
    expected: u64,
    next: u64,
) -> Result<Vec<u64>> {
    let update = TrackingUpdate::new(key.clone(), epoch, expected, next);
    recorder.insert(&Batch::default().with_tracking(&update))
}

fn assert_tracking_conflict(result: Result<Vec<u64>>, update: &TrackingUpdate) {
    match result {
        Err(Error::TrackingConflict {
            follower,
            upstream,
            partition,
            expected,
            epoch,
        }) => assert_eq!(
            (follower, upstream, partition, expected, epoch),
            (
                update.key.follower.clone(),
                update.key.upstream.clone(),
                update.key.partition,
                update.expected,
                update.epoch
            )
        ),
        other => panic!("expected a tracking conflict for {update:?}, got {other:?}"),
    }
}

fn assert_invalid<T: std::fmt::Debug>(result: Result<T>, field: &str) {
    match result {
        Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, field),
        other => panic!("expected an invalid {field}, got {other:?}"),
    }
}

// ---------------------------------------------------------------- the suite

fn position_of_an_unknown_follower_is_none(backend: &Backend) {
    let r = &*backend.recorder;
    assert_eq!(r.select_tracking(&key("nobody")).unwrap(), None);
    // Reading creates nothing.
    assert_eq!(r.select_tracking(&key("nobody")).unwrap(), None);
    assert_eq!(r.max_notification_id().unwrap(), 0);
}

fn a_missing_row_is_created_by_an_update_from_zero_at_epoch_zero(backend: &Backend) {
    let r = &*backend.recorder;
    let k = key("projection");
    assert_eq!(track(r, &k, 0, 0, 4).unwrap(), Vec::<u64>::new());
    assert_eq!(r.select_tracking(&k).unwrap(), Some(at(4, 0)));
    // From there it moves on at epoch 0.
    track(r, &k, 0, 4, 9).unwrap();
    assert_eq!(r.select_tracking(&k).unwrap(), Some(at(9, 0)));
    // A second creation finds the row.
    let again = TrackingUpdate::new(k.clone(), 0, 0, 4);
    assert_tracking_conflict(r.insert(&Batch::default().with_tracking(&again)), &again);

    // A missing row is at notification 0, epoch 0: anything else conflicts
    // and leaves it missing.
    let other = key("other");
    for (epoch, expected) in [(0, 1), (1, 0), (2, 5)] {
        let update = TrackingUpdate::new(other.clone(), epoch, expected, expected + 1);
        assert_tracking_conflict(r.insert(&Batch::default().with_tracking(&update)), &update);
        assert_eq!(r.select_tracking(&other).unwrap(), None);
    }
}

fn a_tracking_only_batch_moves_the_position_and_draws_no_ids(backend: &Backend) {
    let r = &*backend.recorder;
    let k = key("projection");
    let mine = r.raise_epoch(&k).unwrap();
    // Staying put is a move too: it checks the row is still this worker's.
    for (expected, next) in [(0, 1), (1, 5), (5, 5)] {
        let update = TrackingUpdate::new(k.clone(), mine.epoch, expected, next);
        let batch = Batch::new(&[]).with_tracking(&update);
        assert!(!batch.is_empty());
        assert_eq!(r.insert(&batch).unwrap(), Vec::<u64>::new());
        assert_eq!(r.select_tracking(&k).unwrap(), Some(at(next, 1)));
    }
    assert_eq!(r.max_notification_id().unwrap(), 0);
    assert!(r.select_notifications(1, 10, &[]).unwrap().is_empty());
    // No notification id was used up: the first event gets 1.
    assert_eq!(
        r.insert_events(&[event(Uuid::new_v4(), 1, "T")]).unwrap(),
        [1]
    );
}

fn events_and_tracking_commit_together(backend: &Backend) {
    let r = &*backend.recorder;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let k = key("process");
    let update = TrackingUpdate::new(k.clone(), 0, 0, 7);
    let events = [
        event(a, 1, "A.Created"),
        event(b, 1, "B.Created"),
        event(a, 2, "A.Changed"),
    ];
    let ids = r
        .insert(&Batch::new(&events).with_tracking(&update))
        .unwrap();
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(r.select_tracking(&k).unwrap(), Some(at(7, 0)));
    assert_eq!(
        r.events(&EventQuery::new(a)).unwrap(),
        [events[0].clone(), events[2].clone()]
    );
    assert_eq!(r.events(&EventQuery::new(b)).unwrap(), [events[1].clone()]);
    let log: Vec<_> = r
        .select_notifications(1, 10, &[])
        .unwrap()
        .into_iter()
        .map(|n| (n.id, n.into_event()))
        .collect();
    assert_eq!(log, [1, 2, 3].into_iter().zip(events).collect::<Vec<_>>());

    // The next batch carries on from there.
    let update = TrackingUpdate::new(k.clone(), 0, 7, 8);
    let next = [event(b, 2, "B.Changed")];
    assert_eq!(
        r.insert(&Batch::new(&next).with_tracking(&update)).unwrap(),
        [4]
    );
    assert_eq!(r.select_tracking(&k).unwrap(), Some(at(8, 0)));
    assert_eq!(r.max_notification_id().unwrap(), 4);
}

fn a_wrong_expected_position_fails_and_writes_nothing(backend: &Backend) {
    let r = &*backend.recorder;
    let (id, other) = (Uuid::new_v4(), Uuid::new_v4());
    assert_eq!(r.insert_events(&[event(id, 1, "T")]).unwrap(), [1]);
    let k = key("process");
    let mine = r.raise_epoch(&k).unwrap();
    track(r, &k, mine.epoch, 0, 5).unwrap();
    let before = r.select_notifications(1, 10, &[]).unwrap();

    let batch = [event(id, 2, "T"), event(other, 1, "T")];
    for expected in [0, 4, 6] {
        let update = TrackingUpdate::new(k.clone(), mine.epoch, expected, 9);
        assert_tracking_conflict(
            r.insert(&Batch::new(&batch).with_tracking(&update)),
            &update,
        );
    }
    assert_eq!(r.select_tracking(&k).unwrap(), Some(at(5, 1)));
    assert_eq!(r.select_notifications(1, 10, &[]).unwrap(), before);
    assert_eq!(r.events(&EventQuery::new(id)).unwrap(), [event(id, 1, "T")]);
    assert!(r.events(&EventQuery::new(other)).unwrap().is_empty());
    assert_eq!(r.max_notification_id().unwrap(), 1);

    // The versions stayed free and no id was used up: with the right
    // position the same batch is recorded.
    let update = TrackingUpdate::new(k.clone(), mine.epoch, 5, 9);
    assert_eq!(
        r.insert(&Batch::new(&batch).with_tracking(&update))
            .unwrap(),
        [2, 3]
    );
    assert_eq!(r.select_tracking(&k).unwrap(), Some(at(9, 1)));
    assert_eq!(
        r.events(&EventQuery::new(other)).unwrap(),
        [batch[1].clone()]
    );
}

fn a_stale_epoch_fails_after_another_worker_takes_over(backend: &Backend) {
    let r = &*backend.recorder;
    let k = key("process");
    let mine = r.raise_epoch(&k).unwrap();
    assert_eq!(mine, at(0, 1));
    track(r, &k, mine.epoch, 0, 3).unwrap();
    let theirs = r.raise_epoch(&k).unwrap();
    assert_eq!(theirs, at(3, 2));

    // The first worker still believes it is at 3: with events or without,
    // it writes nothing.
    let id = Uuid::new_v4();
    let events = [event(id, 1, "T")];
    let stale = TrackingUpdate::new(k.clone(), mine.epoch, 3, 4);
    assert_tracking_conflict(r.insert(&Batch::new(&events).with_tracking(&stale)), &stale);
    assert_tracking_conflict(r.insert(&Batch::default().with_tracking(&stale)), &stale);
    assert!(r.events(&EventQuery::new(id)).unwrap().is_empty());
    assert_eq!(r.max_notification_id().unwrap(), 0);
    assert_eq!(r.select_tracking(&k).unwrap(), Some(at(3, 2)));

    // The new owner records the same event from the same position.
    let current = TrackingUpdate::new(k.clone(), theirs.epoch, 3, 4);
    assert_eq!(
        r.insert(&Batch::new(&events).with_tracking(&current))
            .unwrap(),
        [1]
    );
    assert_eq!(r.select_tracking(&k).unwrap(), Some(at(4, 2)));
}

fn raise_epoch_creates_then_increments_and_keeps_the_position(backend: &Backend) {
    let r = &*backend.recorder;
    let k = key("process");
    assert_eq!(r.raise_epoch(&k).unwrap(), at(0, 1));
    assert_eq!(r.select_tracking(&k).unwrap(), Some(at(0, 1)));
    track(r, &k, 1, 0, 12).unwrap();
    assert_eq!(r.raise_epoch(&k).unwrap(), at(12, 2));
    assert_eq!(r.raise_epoch(&k).unwrap(), at(12, 3));
    assert_eq!(r.select_tracking(&k).unwrap(), Some(at(12, 3)));

    // A row created by an update at epoch 0 is taken over the same way.
    let other = key("projection");
    track(r, &other, 0, 0, 5).unwrap();
    assert_eq!(r.raise_epoch(&other).unwrap(), at(5, 1));
    assert_eq!(r.select_tracking(&k).unwrap(), Some(at(12, 3)));
    // Taking rows over writes no event.
    assert_eq!(r.max_notification_id().unwrap(), 0);
}

/// Eight workers race to move one row from `expected`, each with an event
/// of its own; returns the winner's thread number.
fn race_once(recorder: &Arc<dyn Recorder>, k: &TrackingKey, epoch: u64, expected: u64) -> u64 {
    const THREADS: u8 = 8;
    let start = Arc::new(Barrier::new(usize::from(THREADS)));
    let handles: Vec<_> = (0..THREADS)
        .map(|n| {
            let n = u64::from(n);
            let recorder = Arc::clone(recorder);
            let start = Arc::clone(&start);
            let update = TrackingUpdate::new(k.clone(), epoch, expected, expected + 1 + n);
            thread::spawn(move || {
                let mine = event(Uuid::new_v4(), 1, &format!("Worker{n}"));
                start.wait();
                let batch = [mine.clone()];
                let result = recorder.insert(&Batch::new(&batch).with_tracking(&update));
                (n, mine, update, result)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for handle in handles {
        let (n, mine, update, result) = handle.join().unwrap();
        if let Ok(ids) = result {
            winners.push((n, mine, ids));
        } else {
            assert_tracking_conflict(result, &update);
            losers.push(mine);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one worker must win");
    let (n, mine, ids) = winners.pop().unwrap();
    assert_eq!(
        recorder.select_tracking(k).unwrap(),
        Some(at(expected + 1 + n, epoch))
    );
    // The winner's event is recorded; no loser's event is. (On PostgreSQL
    // a loser may fail after drawing its id: the log then has a hole,
    // which readers pass only once no older transaction of the server,
    // another test's say, is running; so the log is not read here.)
    assert_eq!(ids.len(), 1);
    assert_eq!(
        recorder
            .events(&EventQuery::new(mine.originator_id))
            .unwrap(),
        [mine]
    );
    for lost in losers {
        assert!(
            recorder
                .events(&EventQuery::new(lost.originator_id))
                .unwrap()
                .is_empty()
        );
    }
    n
}

fn racing_compare_and_sets_exactly_one_wins(backend: &Backend) {
    let r = &backend.recorder;
    let k = key("process");
    // Racing to create the row, then racing to move it.
    let first = race_once(r, &k, 0, 0);
    let expected = first + 1;
    let taken = r.raise_epoch(&k).unwrap();
    assert_eq!(taken, at(expected, 1));
    race_once(r, &k, taken.epoch, expected);
}

fn racing_raise_epoch_gets_distinct_epochs(backend: &Backend) {
    const THREADS: usize = 8;
    const RAISES: usize = 5;
    let k = key("process");
    let start = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let recorder = Arc::clone(&backend.recorder);
            let start = Arc::clone(&start);
            let k = k.clone();
            thread::spawn(move || {
                start.wait();
                (0..RAISES)
                    .map(|_| recorder.raise_epoch(&k).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut epochs = Vec::new();
    for handle in handles {
        let taken = handle.join().unwrap();
        // One worker's epochs grow.
        assert!(
            taken.windows(2).all(|w| w[0].epoch < w[1].epoch),
            "{taken:?}"
        );
        epochs.extend(taken.iter().map(|position| {
            assert_eq!(position.notification_id, 0);
            position.epoch
        }));
    }
    epochs.sort_unstable();
    let total = (THREADS * RAISES) as u64;
    assert_eq!(epochs, (1..=total).collect::<Vec<_>>());
    assert_eq!(
        backend.recorder.select_tracking(&k).unwrap(),
        Some(at(0, total))
    );
}

fn invalid_arguments_are_refused_and_write_nothing(backend: &Backend) {
    let r = &*backend.recorder;
    let k = key("process");
    let too_big = 1 << 63;
    let partition = 1 << 31;
    let id = Uuid::new_v4();
    let events = [event(id, 1, "T")];
    let cases = [
        (TrackingUpdate::new(k.clone(), 0, 5, 4), "notification_id"),
        (
            TrackingUpdate::new(k.clone(), 0, 0, too_big),
            "notification_id",
        ),
        (
            TrackingUpdate::new(k.clone(), 0, too_big, too_big),
            "expected",
        ),
        (TrackingUpdate::new(k.clone(), too_big, 0, 1), "epoch"),
        (
            TrackingUpdate::new(k.clone().partition(partition), 0, 0, 1),
            "partition",
        ),
        (
            TrackingUpdate::new(k.clone().partition(u32::MAX), 0, 0, 1),
            "partition",
        ),
    ];
    for (update, field) in &cases {
        assert_invalid(r.insert(&Batch::new(&events).with_tracking(update)), field);
        assert_invalid(r.insert(&Batch::default().with_tracking(update)), field);
    }
    assert_invalid(
        r.select_tracking(&k.clone().partition(partition)),
        "partition",
    );
    assert_invalid(r.raise_epoch(&k.clone().partition(partition)), "partition");
    assert_eq!(r.max_notification_id().unwrap(), 0);
    assert!(r.events(&EventQuery::new(id)).unwrap().is_empty());
    assert_eq!(r.select_tracking(&k).unwrap(), None);

    // The greatest values the columns hold are accepted.
    let widest = k.clone().partition(i32::MAX.unsigned_abs());
    let greatest = i64::MAX.unsigned_abs();
    track(r, &widest, 0, 0, greatest).unwrap();
    assert_eq!(r.select_tracking(&widest).unwrap(), Some(at(greatest, 0)));
    assert_eq!(r.raise_epoch(&widest).unwrap(), at(greatest, 1));
}

fn separate_keys_are_independent(backend: &Backend) {
    let r = &*backend.recorder;
    let base = TrackingKey::new("follower", "upstream");
    let keys = [
        base.clone(),
        base.clone().partition(1),
        TrackingKey::new("follower", "other upstream"),
        TrackingKey::new("other follower", "upstream"),
    ];
    for (n, k) in (1..).zip(&keys) {
        // Each row gets an epoch and a position of its own.
        for _ in 0..n {
            r.raise_epoch(k).unwrap();
        }
        track(r, k, n, 0, 10 * n).unwrap();
    }
    let positions = |r: &dyn Recorder| -> Vec<Option<Position>> {
        keys.iter().map(|k| r.select_tracking(k).unwrap()).collect()
    };
    let expected: Vec<_> = (1..=4).map(|n| Some(at(10 * n, n))).collect();
    assert_eq!(positions(r), expected);

    // Another row's position and epoch are no good for this one.
    let wrong = TrackingUpdate::new(keys[1].clone(), 1, 10, 11);
    assert_tracking_conflict(r.insert(&Batch::default().with_tracking(&wrong)), &wrong);
    r.raise_epoch(&keys[2]).unwrap();
    track(r, &keys[3], 4, 40, 41).unwrap();
    let expected = [at(10, 1), at(20, 2), at(30, 4), at(41, 4)].map(Some);
    assert_eq!(positions(r), expected);
}

fn select_positions_lists_every_row_by_follower_upstream_and_partition(backend: &Backend) {
    let r = &*backend.recorder;
    assert_eq!(r.select_positions().unwrap(), Some(Vec::new()));
    let keys = [
        TrackingKey::new("b", "upstream").partition(1),
        TrackingKey::new("b", "upstream"),
        TrackingKey::new("a", "upstream 2"),
        TrackingKey::new("a", "upstream 1"),
    ];
    for (n, k) in (1..).zip(&keys) {
        r.raise_epoch(k).unwrap();
        track(r, k, 1, 0, n).unwrap();
    }
    let listed = r.select_positions().unwrap().unwrap();
    let expected = [
        (keys[3].clone(), at(4, 1)),
        (keys[2].clone(), at(3, 1)),
        (keys[1].clone(), at(2, 1)),
        (keys[0].clone(), at(1, 1)),
    ];
    assert_eq!(listed, expected);
}

conformance!(
    position_of_an_unknown_follower_is_none,
    a_missing_row_is_created_by_an_update_from_zero_at_epoch_zero,
    a_tracking_only_batch_moves_the_position_and_draws_no_ids,
    events_and_tracking_commit_together,
    a_wrong_expected_position_fails_and_writes_nothing,
    a_stale_epoch_fails_after_another_worker_takes_over,
    raise_epoch_creates_then_increments_and_keeps_the_position,
    racing_compare_and_sets_exactly_one_wins,
    racing_raise_epoch_gets_distinct_epochs,
    invalid_arguments_are_refused_and_write_nothing,
    separate_keys_are_independent,
    select_positions_lists_every_row_by_follower_upstream_and_partition,
);

#[test]
fn keys_updates_and_batches_are_built_as_documented() {
    let k = TrackingKey::new("follower", String::from("upstream"));
    assert_eq!(
        (k.follower.as_str(), k.upstream.as_str(), k.partition),
        ("follower", "upstream", 0)
    );
    assert_eq!(k.clone().partition(3).partition, 3);
    let update = TrackingUpdate::new(k.clone(), 2, 5, 8);
    assert_eq!(
        (update.epoch, update.expected, update.notification_id),
        (2, 5, 8)
    );
    assert_eq!(update.key, k);
    assert_eq!(Position::default(), at(0, 0));

    let events = [event(Uuid::new_v4(), 1, "T")];
    assert!(Batch::default().is_empty());
    assert!(Batch::new(&[]).is_empty());
    let batch = Batch::new(&events);
    assert!(!batch.is_empty());
    assert_eq!(batch.tracking, None);
    let batch = batch.with_tracking(&update);
    assert_eq!(batch.events, events);
    assert_eq!(batch.tracking, Some(&update));
}

// ------------------------------------------------------- SQLite specifics

mod sqlite_specifics {
    use eventsourcing::recorder::{Recorder, SqliteOptions, SqliteRecorder, TrackingKey};
    use rusqlite::Connection;

    use super::{assert_invalid, at, key, track};

    /// A `tracking` table of version 1 (one row per processed
    /// notification) with rows of two followers of two upstreams.
    fn version_1_database(path: &std::path::Path, prefix: &str) {
        Connection::open(path)
            .unwrap()
            .execute_batch(&format!(
                "CREATE TABLE \"{prefix}tracking\" (
                     application_name TEXT NOT NULL,
                     upstream_name TEXT NOT NULL,
                     notification_id INTEGER NOT NULL,
                     UNIQUE (application_name, upstream_name, notification_id)
                 );
                 INSERT INTO \"{prefix}tracking\" VALUES
                     ('process', 'bank', 1), ('process', 'bank', 7), ('process', 'bank', 3),
                     ('process', 'shop', 2),
                     ('projection', 'bank', 4), ('projection', 'bank', 5);"
            ))
            .unwrap();
    }

    #[test]
    fn a_version_1_tracking_table_is_migrated_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        version_1_database(&path, "app_");
        // Another prefix's tables are not touched.
        version_1_database(&path, "other_");

        let recorder =
            SqliteRecorder::open(SqliteOptions::file(&path).table_prefix("app_")).unwrap();
        let expected = [
            (TrackingKey::new("process", "bank"), Some(at(7, 0))),
            (TrackingKey::new("process", "shop"), Some(at(2, 0))),
            (TrackingKey::new("projection", "bank"), Some(at(5, 0))),
            (TrackingKey::new("projection", "shop"), None),
            (TrackingKey::new("process", "bank").partition(1), None),
        ];
        for (k, position) in &expected {
            assert_eq!(recorder.select_tracking(k).unwrap(), *position, "{k:?}");
        }
        // The migrated rows work as any other: the next update moves on
        // from the old position.
        let k = TrackingKey::new("process", "bank");
        track(&recorder, &k, 0, 7, 8).unwrap();
        assert_eq!(recorder.raise_epoch(&k).unwrap(), at(8, 1));

        let raw = Connection::open(&path).unwrap();
        let columns = |table: &str| -> Vec<String> {
            raw.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
                .unwrap()
                .query_map([table], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert_eq!(
            columns("app_tracking"),
            [
                "application_name",
                "upstream_name",
                "partition",
                "notification_id",
                "epoch"
            ]
        );
        assert!(columns("app_tracking_v1").is_empty());
        assert_eq!(
            columns("other_tracking"),
            ["application_name", "upstream_name", "notification_id"]
        );
        drop(recorder);

        // Opening a migrated database changes nothing.
        let before: Vec<(String, String, i64, i64, i64)> = {
            let mut select = raw
                .prepare("SELECT * FROM app_tracking ORDER BY 1, 2, 3")
                .unwrap();
            select
                .query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert_eq!(before.len(), 3);
        let recorder =
            SqliteRecorder::open(SqliteOptions::file(&path).table_prefix("app_")).unwrap();
        assert_eq!(recorder.select_tracking(&k).unwrap(), Some(at(8, 1)));
        let after: Vec<(String, String, i64, i64, i64)> = raw
            .prepare("SELECT * FROM app_tracking ORDER BY 1, 2, 3")
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(after, before);
    }

    #[test]
    fn a_row_at_the_greatest_epoch_is_not_raised() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tracking.db");
        let recorder = SqliteRecorder::open(SqliteOptions::file(&path)).unwrap();
        let k = key("process");
        track(&recorder, &k, 0, 0, 7).unwrap();
        Connection::open(&path)
            .unwrap()
            .execute("UPDATE tracking SET epoch = ?1", [i64::MAX])
            .unwrap();
        assert_invalid(recorder.raise_epoch(&k), "key");
        let greatest = i64::MAX.unsigned_abs();
        assert_eq!(recorder.select_tracking(&k).unwrap(), Some(at(7, greatest)));
    }

    #[test]
    fn a_corrupt_tracking_row_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tracking.db");
        let recorder = SqliteRecorder::open(SqliteOptions::file(&path)).unwrap();
        let (k, other) = (key("process"), key("projection"));
        track(&recorder, &k, 0, 0, 7).unwrap();
        track(&recorder, &other, 0, 0, 7).unwrap();
        let raw = Connection::open(&path).unwrap();
        raw.execute_batch(
            "UPDATE tracking SET epoch = -2 WHERE application_name = 'process';
             UPDATE tracking SET notification_id = 'seven' WHERE application_name = 'projection';",
        )
        .unwrap();
        for (k, words) in [(&k, "negative epoch"), (&other, "notification_id")] {
            match recorder.select_tracking(k) {
                Err(eventsourcing::Error::Corrupt { reason, .. }) => {
                    assert!(reason.contains(words), "{reason}");
                    assert!(reason.contains(&format!("`{}`", k.follower)), "{reason}");
                }
                other => panic!("expected a corrupt row, got {other:?}"),
            }
        }
        // Listing every row meets the first bad one.
        match recorder.select_positions() {
            Err(eventsourcing::Error::Corrupt { reason, .. }) => {
                assert!(reason.contains("negative epoch"), "{reason}");
                assert!(reason.contains("`process`"), "{reason}");
            }
            other => panic!("expected a corrupt row, got {other:?}"),
        }
    }
}

// --------------------------------------------------- PostgreSQL specifics

mod postgres_specifics {
    use std::sync::Arc;
    use std::thread;
    use std::time::{Duration, Instant};

    use eventsourcing::recorder::{
        Batch, EventQuery, PostgresOptions, PostgresRecorder, Recorder, Sequencing, TrackingKey,
        TrackingUpdate,
    };
    use eventsourcing::{Error, Uuid};

    use super::{assert_invalid, assert_tracking_conflict, at, event, key, track};
    use support::pg::Scratch;

    /// The sequence's last value, and whether it was drawn at all.
    fn drawn(scratch: &Scratch) -> (i64, bool) {
        let row = scratch
            .client()
            .query_one(
                "SELECT last_value, is_called FROM stored_events_notification_id_seq",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    }

    #[test]
    fn a_conflict_found_by_the_pre_check_draws_no_notification_id() {
        let Some(scratch) = Scratch::new() else {
            return;
        };
        let recorder = scratch.recorder();
        let k = key("process");
        let mine = recorder.raise_epoch(&k).unwrap();
        let id = Uuid::new_v4();
        let first = TrackingUpdate::new(k.clone(), mine.epoch, 0, 5);
        let batch = [event(id, 1, "T")];
        assert_eq!(
            recorder
                .insert(&Batch::new(&batch).with_tracking(&first))
                .unwrap(),
            [1]
        );
        assert_eq!(drawn(&scratch), (1, true));

        // A stale position and a stale epoch: refused before any id is drawn.
        let theirs = recorder.raise_epoch(&k).unwrap();
        let next = [event(id, 2, "T")];
        for update in [
            TrackingUpdate::new(k.clone(), theirs.epoch, 4, 6),
            TrackingUpdate::new(k.clone(), mine.epoch, 5, 6),
        ] {
            assert_tracking_conflict(
                recorder.insert(&Batch::new(&next).with_tracking(&update)),
                &update,
            );
        }
        assert_eq!(drawn(&scratch), (1, true));
        // So the next save leaves no hole.
        let current = TrackingUpdate::new(k.clone(), theirs.epoch, 5, 6);
        assert_eq!(
            recorder
                .insert(&Batch::new(&next).with_tracking(&current))
                .unwrap(),
            [2]
        );
        assert_eq!(recorder.max_notification_id().unwrap(), 2);
    }

    #[test]
    fn a_row_moved_after_the_pre_check_still_fails_the_batch() {
        let Some(scratch) = Scratch::new() else {
            return;
        };
        let recorder = Arc::new(scratch.recorder());
        let k = key("process");
        let mine = recorder.raise_epoch(&k).unwrap();
        track(&*recorder, &k, mine.epoch, 0, 5).unwrap();

        // Another transaction moves the row and holds it, uncommitted: the
        // batch's check still sees 5, but its compare-and-set must wait.
        let mut other = scratch.client();
        let mut tx = other.transaction().unwrap();
        tx.execute("UPDATE tracking SET notification_id = 6", &[])
            .unwrap();
        let id = Uuid::new_v4();
        let save = {
            let recorder = Arc::clone(&recorder);
            let k = k.clone();
            thread::spawn(move || {
                let update = TrackingUpdate::new(k, mine.epoch, 5, 6);
                let result =
                    recorder.insert(&Batch::new(&[event(id, 1, "T")]).with_tracking(&update));
                (update, result)
            })
        };
        let mut admin = scratch.client();
        let deadline = Instant::now() + Duration::from_secs(30);
        while admin
            .query_opt(
                "SELECT 1 FROM pg_stat_activity WHERE wait_event = 'transactionid' \
                 AND query LIKE '%' || $1 || '%stored_events_insert%'",
                &[&scratch.schema],
            )
            .unwrap()
            .is_none()
        {
            assert!(Instant::now() < deadline, "the save never blocked");
            thread::sleep(Duration::from_millis(10));
        }
        tx.commit().unwrap();

        let (update, result) = save.join().unwrap();
        assert_tracking_conflict(result, &update);
        assert!(recorder.events(&EventQuery::new(id)).unwrap().is_empty());
        assert_eq!(recorder.select_tracking(&k).unwrap(), Some(at(6, 1)));
        // The batch had drawn id 1 before it failed: a permanent hole.
        // (Readers pass it once no older transaction of the server, another
        // test's say, is running; so the table is read directly.)
        assert_eq!(drawn(&scratch), (1, true));
        assert_eq!(recorder.insert_events(&[event(id, 1, "T")]).unwrap(), [2]);
        let ids: Vec<i64> = scratch
            .client()
            .query("SELECT notification_id FROM stored_events", &[])
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(ids, [2]);
    }

    #[test]
    fn a_tracking_only_batch_draws_no_id_and_takes_no_lock() {
        let Some(scratch) = Scratch::new() else {
            return;
        };
        // A lock that a batch waits for fails it within seconds, rather
        // than hanging the test.
        let separator = if scratch.url.contains('?') { '&' } else { '?' };
        let url = format!("{}{separator}options=-clock_timeout%3D1000", scratch.url);
        let options = PostgresOptions::new(url)
            .schema(scratch.schema.as_str())
            .sequencing(Sequencing::TableLock);
        let recorder = PostgresRecorder::open(options).unwrap();
        let k = key("process");
        let mine = recorder.raise_epoch(&k).unwrap();

        // Writers of events wait for this lock; a tracking-only batch
        // touches neither the events nor their sequence.
        let mut other = scratch.client();
        let mut tx = other.transaction().unwrap();
        tx.batch_execute("LOCK TABLE stored_events IN EXCLUSIVE MODE")
            .unwrap();
        for (expected, next) in [(0, 3), (3, 8)] {
            assert!(
                track(&recorder, &k, mine.epoch, expected, next)
                    .unwrap()
                    .is_empty()
            );
        }
        let blocked = recorder.insert_events(&[event(Uuid::new_v4(), 1, "T")]);
        assert!(matches!(blocked, Err(Error::Database(_))), "{blocked:?}");
        tx.rollback().unwrap();

        assert_eq!(recorder.select_tracking(&k).unwrap(), Some(at(8, 1)));
        assert_eq!(drawn(&scratch), (1, false));
    }

    #[test]
    fn the_old_insert_function_is_dropped_when_opening() {
        let Some(scratch) = Scratch::new() else {
            return;
        };
        // Version 1's function, and the next one (without `notify`), as
        // older recorders left them.
        let mut client = scratch.client();
        client
            .batch_execute(
                "CREATE FUNCTION stored_events_insert(lock_table boolean, ids uuid[], \
                 versions bigint[], topics text[], states bytea[]) RETURNS bigint[] \
                 LANGUAGE sql AS 'SELECT NULL::bigint[]'; \
                 CREATE FUNCTION stored_events_insert(lock_table boolean, ids uuid[], \
                 versions bigint[], topics text[], states bytea[], tracking_follower text, \
                 tracking_upstream text, tracking_partition integer, tracking_expected bigint, \
                 tracking_position bigint, tracking_epoch bigint) RETURNS bigint[] \
                 LANGUAGE sql AS 'SELECT NULL::bigint[]'",
            )
            .unwrap();
        let functions = |client: &mut postgres::Client| -> Vec<(String, u32)> {
            client
                .query(
                    "SELECT pg_get_function_identity_arguments(p.oid), p.xmin::text::oid \
                     FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace \
                     WHERE n.nspname = $1 AND p.proname = 'stored_events_insert'",
                    &[&scratch.schema],
                )
                .unwrap()
                .iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect()
        };
        assert_eq!(functions(&mut client).len(), 2);

        let recorder = scratch.recorder();
        let installed = functions(&mut client);
        assert_eq!(installed.len(), 1, "{installed:?}");
        assert!(
            installed[0]
                .0
                .contains("tracking_epoch bigint, notify boolean"),
            "{installed:?}"
        );
        assert_eq!(
            recorder
                .insert_events(&[event(Uuid::new_v4(), 1, "T")])
                .unwrap(),
            [1]
        );
        // Opening again leaves the catalogue alone, also for a recorder
        // that does not notify: the setting is in its statements.
        drop(scratch.recorder());
        drop(PostgresRecorder::open(scratch.options().notify(false)).unwrap());
        assert_eq!(functions(&mut client), installed);
    }

    #[test]
    fn tracking_table_follows_the_format() {
        let Some(scratch) = Scratch::new() else {
            return;
        };
        let recorder = scratch.recorder();
        track(&recorder, &key("process").partition(2), 0, 0, 7).unwrap();
        let mut client = scratch.client();
        // One row per follower, upstream and partition.
        let primary_key: Vec<String> = client
            .query(
                "SELECT a.attname::text FROM pg_index AS i \
                 JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = 'tracking'::regclass AND i.indisprimary ORDER BY a.attnum",
                &[],
            )
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(
            primary_key,
            ["application_name", "upstream_name", "partition"]
        );
        let row = client
            .query_one(
                "SELECT application_name, upstream_name, \"partition\", notification_id, epoch \
                 FROM tracking",
                &[],
            )
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "process");
        assert_eq!(row.get::<_, String>(1), "upstream");
        assert_eq!(row.get::<_, i32>(2), 2);
        assert_eq!(row.get::<_, i64>(3), 7);
        assert_eq!(row.get::<_, i64>(4), 0);
    }

    #[test]
    fn a_version_1_tracking_table_is_migrated_when_opened() {
        let Some(scratch) = Scratch::new() else {
            return;
        };
        // Another schema has the same tables: they are not looked at.
        let elsewhere = Scratch::new().unwrap();
        let version_1 = |client: &mut postgres::Client, prefix: &str| {
            client
                .batch_execute(&format!(
                    "CREATE TABLE {prefix}tracking (
                         application_name TEXT NOT NULL,
                         upstream_name TEXT NOT NULL,
                         notification_id BIGINT NOT NULL,
                         UNIQUE (application_name, upstream_name, notification_id)
                     );
                     INSERT INTO {prefix}tracking VALUES
                         ('process', 'bank', 1), ('process', 'bank', 7), ('process', 'bank', 3),
                         ('process', 'shop', 2),
                         ('projection', 'bank', 4), ('projection', 'bank', 5);"
                ))
                .unwrap();
        };
        let mut client = scratch.client();
        version_1(&mut client, "app_");
        version_1(&mut client, "other_");
        version_1(&mut elsewhere.client(), "app_");
        let open = || PostgresRecorder::open(scratch.options().table_prefix("app_")).unwrap();
        let recorder = open();
        let expected = [
            (TrackingKey::new("process", "bank"), Some(at(7, 0))),
            (TrackingKey::new("process", "shop"), Some(at(2, 0))),
            (TrackingKey::new("projection", "bank"), Some(at(5, 0))),
            (TrackingKey::new("projection", "shop"), None),
            (TrackingKey::new("process", "bank").partition(1), None),
        ];
        for (k, position) in &expected {
            assert_eq!(recorder.select_tracking(k).unwrap(), *position, "{k:?}");
        }
        let k = TrackingKey::new("process", "bank");
        track(&recorder, &k, 0, 7, 8).unwrap();
        assert_eq!(recorder.raise_epoch(&k).unwrap(), at(8, 1));

        let columns = |client: &mut postgres::Client, table: &str| -> Vec<String> {
            client
                .query(
                    "SELECT column_name::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name = $1 \
                     ORDER BY ordinal_position",
                    &[&table],
                )
                .unwrap()
                .iter()
                .map(|row| row.get(0))
                .collect()
        };
        assert_eq!(
            columns(&mut client, "app_tracking"),
            [
                "application_name",
                "upstream_name",
                "partition",
                "notification_id",
                "epoch"
            ]
        );
        assert!(columns(&mut client, "app_tracking_v1").is_empty());
        for (client, table) in [
            (&mut client, "other_tracking"),
            (&mut elsewhere.client(), "app_tracking"),
        ] {
            assert_eq!(
                columns(client, table),
                ["application_name", "upstream_name", "notification_id"]
            );
        }

        // Opening a migrated schema changes nothing: same rows, same table.
        let rows = |client: &mut postgres::Client| -> Vec<(String, String, i32, i64, i64, u32)> {
            client
                .query(
                    "SELECT application_name, upstream_name, \"partition\", notification_id, \
                     epoch, xmin::text::oid FROM app_tracking ORDER BY 1, 2, 3",
                    &[],
                )
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
                .collect()
        };
        let before = rows(&mut client);
        assert_eq!(before.len(), 3);
        drop(recorder);
        drop(open());
        assert_eq!(rows(&mut client), before);
    }

    #[test]
    fn a_row_at_the_greatest_epoch_is_not_raised() {
        let Some(scratch) = Scratch::new() else {
            return;
        };
        let recorder = scratch.recorder();
        let k = key("process");
        track(&recorder, &k, 0, 0, 7).unwrap();
        scratch
            .client()
            .execute("UPDATE tracking SET epoch = $1", &[&i64::MAX])
            .unwrap();
        assert_invalid(recorder.raise_epoch(&k), "key");
        let greatest = i64::MAX.unsigned_abs();
        assert_eq!(recorder.select_tracking(&k).unwrap(), Some(at(7, greatest)));
    }
}
