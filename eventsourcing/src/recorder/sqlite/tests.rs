//! The SQLite recorder's crate-internal transactions (`transact`,
//! `rebuild`), its crash points, and the rows of the followers' tables it
//! refuses to read. The conformance suites in `tests/` cover the rest.

use rusqlite::Transaction;
use uuid::Uuid;

use std::sync::Arc;

use super::{SqliteRecorder, Store};
use crate::crash;
use crate::error::{Error, Result};
use crate::mapper::StoredEvent;
use crate::recorder::{
    Batch, EventQuery, ParkChange, Parked, Position, Recorder, Registration, SqliteOptions,
    TrackingKey, TrackingUpdate,
};

/// A recorder in memory with a follower's own table, `counts`.
fn recorder() -> SqliteRecorder {
    let recorder = SqliteRecorder::open(SqliteOptions::memory()).unwrap();
    recorder
        .writer()
        .unwrap()
        .execute_batch("CREATE TABLE counts (name TEXT PRIMARY KEY, n INTEGER NOT NULL)")
        .unwrap();
    recorder
}

/// The rows of `counts`.
fn counts(recorder: &SqliteRecorder) -> Vec<(String, i64)> {
    let conn = recorder.writer().unwrap();
    let mut select = conn
        .prepare("SELECT name, n FROM counts ORDER BY name")
        .unwrap();
    select
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A follower's own statement: one row of `counts`.
fn count(tx: &Transaction<'_>, name: &str, n: i64) -> Result<()> {
    tx.execute("INSERT INTO counts (name, n) VALUES (?1, ?2)", (name, n))
        .map_err(super::db)?;
    Ok(())
}

fn key() -> TrackingKey {
    TrackingKey::new("projection", "bank")
}

fn parked(notification_id: u64) -> Parked {
    Parked {
        follower: "projection".to_owned(),
        upstream: "bank".to_owned(),
        notification_id,
        originator_id: Uuid::from_u128(7),
        topic: "Account.Opened".to_owned(),
        reason: "no such customer".to_owned(),
    }
}

fn event(id: Uuid, version: u64) -> StoredEvent {
    StoredEvent {
        originator_id: id,
        originator_version: version,
        topic: "Test.Happened".to_owned(),
        state: vec![1, 2, 3],
    }
}

fn at(notification_id: u64, epoch: u64) -> Position {
    Position {
        notification_id,
        epoch,
    }
}

#[test]
fn transact_commits_the_work_with_the_batch() {
    let r = recorder();
    let update = TrackingUpdate::new(key(), 0, 0, 5);
    let park = [ParkChange::Park(parked(3))];
    let events = [event(Uuid::from_u128(1), 1)];
    let batch = Batch::new(&events)
        .with_tracking(&update)
        .with_parked(&park);
    let (value, ids) = r
        .transact(&batch, |tx| {
            count(tx, "a", 1)?;
            count(tx, "b", 2)?;
            Ok("done")
        })
        .unwrap();
    assert_eq!((value, ids), ("done", vec![1]));
    assert_eq!(counts(&r), [("a".to_owned(), 1), ("b".to_owned(), 2)]);
    assert_eq!(r.select_tracking(&key()).unwrap(), Some(at(5, 0)));
    assert_eq!(r.select_parked("projection").unwrap(), [parked(3)]);
    assert_eq!(r.max_notification_id().unwrap(), 1);

    // An empty batch commits the work alone.
    let ((), ids) = r
        .transact(&Batch::default(), |tx| count(tx, "c", 3))
        .unwrap();
    assert!(ids.is_empty());
    assert_eq!(counts(&r).len(), 3);
}

#[test]
fn a_tracking_conflict_rolls_back_what_the_work_wrote() {
    let r = recorder();
    let first = TrackingUpdate::new(key(), 0, 0, 5);
    r.transact(&Batch::default().with_tracking(&first), |tx| {
        count(tx, "a", 1)
    })
    .unwrap();

    // A stale update: the work's row, the events and the park go too.
    let park = [ParkChange::Park(parked(9))];
    let events = [event(Uuid::from_u128(1), 1)];
    let batch = Batch::new(&events).with_tracking(&first).with_parked(&park);
    let result = r.transact(&batch, |tx| count(tx, "b", 2));
    assert!(
        matches!(result, Err(Error::TrackingConflict { expected: 0, .. })),
        "{result:?}"
    );
    assert_eq!(counts(&r), [("a".to_owned(), 1)]);
    assert_eq!(r.select_tracking(&key()).unwrap(), Some(at(5, 0)));
    assert!(r.select_parked("projection").unwrap().is_empty());
    assert_eq!(r.max_notification_id().unwrap(), 0);

    // So does a release of a notification that is not parked.
    let next = TrackingUpdate::new(key(), 0, 5, 6);
    let release = [ParkChange::Release {
        follower: "projection".to_owned(),
        upstream: "bank".to_owned(),
        notification_ids: vec![4],
    }];
    let batch = Batch::default().with_tracking(&next).with_parked(&release);
    let result = r.transact(&batch, |tx| count(tx, "c", 3));
    assert!(
        matches!(
            result,
            Err(Error::NotParked {
                notification_id: 4,
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(counts(&r).len(), 1);
    assert_eq!(r.select_tracking(&key()).unwrap(), Some(at(5, 0)));
}

#[test]
fn an_error_of_the_work_rolls_back_and_writes_no_batch() {
    let r = recorder();
    let update = TrackingUpdate::new(key(), 0, 0, 5);
    let result: Result<((), Vec<u64>)> =
        r.transact(&Batch::default().with_tracking(&update), |tx| {
            count(tx, "a", 1)?;
            Err(Error::InvalidArgument {
                name: "test",
                reason: "the handler failed".to_owned(),
            })
        });
    assert!(matches!(
        result,
        Err(Error::InvalidArgument { name: "test", .. })
    ));
    assert!(counts(&r).is_empty());
    assert_eq!(r.select_tracking(&key()).unwrap(), None);

    // A statement of the work that fails (a duplicate key) likewise.
    let result = r.transact(&Batch::default().with_tracking(&update), |tx| {
        count(tx, "a", 1)?;
        count(tx, "a", 2)
    });
    assert!(matches!(result, Err(Error::Database(_))), "{result:?}");
    assert!(counts(&r).is_empty());

    // Work that ends the transaction itself is refused: no batch follows.
    let result = r.transact(&Batch::default().with_tracking(&update), |tx| {
        tx.execute_batch("COMMIT").map_err(super::db)
    });
    assert!(matches!(
        result,
        Err(Error::InvalidArgument { name: "work", .. })
    ));
    assert_eq!(r.select_tracking(&key()).unwrap(), None);

    // The writer is fine afterwards.
    r.transact(&Batch::default().with_tracking(&update), |tx| {
        count(tx, "a", 1)
    })
    .unwrap();
    assert_eq!(counts(&r).len(), 1);
}

#[test]
fn writes_reach_the_crash_points_in_order() {
    let r = recorder();
    let events = [event(Uuid::from_u128(1), 1)];
    crash::testing::start();
    r.insert(&Batch::new(&events)).unwrap();
    assert_eq!(crash::testing::reached(), ["after_insert", "before_commit"]);

    crash::testing::start();
    r.transact(&Batch::default(), |tx| count(tx, "a", 1))
        .unwrap();
    assert_eq!(crash::testing::reached(), ["after_insert", "before_commit"]);

    // A refused batch stops before them.
    crash::testing::start();
    assert!(r.insert(&Batch::new(&events)).is_err());
    assert!(crash::testing::reached().is_empty());
}

/// A follower with two tracking rows, parked notifications and an old
/// registration.
fn rebuildable() -> (SqliteRecorder, TrackingKey, Position) {
    let r = recorder();
    let other = TrackingKey::new("projection", "shop");
    let mine = r.raise_epoch(&key()).unwrap();
    let update = TrackingUpdate::new(key(), mine.epoch, 0, 8);
    let park = [
        ParkChange::Park(parked(3)),
        ParkChange::Park(Parked {
            upstream: "shop".to_owned(),
            ..parked(2)
        }),
    ];
    r.transact(
        &Batch::default().with_tracking(&update).with_parked(&park),
        |tx| count(tx, "a", 1),
    )
    .unwrap();
    r.insert(&Batch::default().with_tracking(&TrackingUpdate::new(other.clone(), 0, 0, 4)))
        .unwrap();
    r.update_follower(&Registration::new("projection", "Stats", 1))
        .unwrap();
    // Another follower's parked notification stays.
    let theirs = [ParkChange::Park(Parked {
        follower: "audit".to_owned(),
        ..parked(3)
    })];
    r.insert(&Batch::default().with_parked(&theirs)).unwrap();
    (r, other, mine)
}

#[test]
fn rebuild_rewinds_deletes_parked_and_stores_the_registration() {
    let (r, other, mine) = rebuildable();
    let registration = Registration::new("projection", "Stats", 2);
    r.rebuild(
        &[(key(), mine.epoch), (other.clone(), 0)],
        &registration,
        |tx| {
            tx.execute_batch("DELETE FROM counts; INSERT INTO counts VALUES ('fresh', 0)")
                .map_err(super::db)
        },
    )
    .unwrap();
    assert_eq!(counts(&r), [("fresh".to_owned(), 0)]);
    assert_eq!(r.select_tracking(&key()).unwrap(), Some(at(0, mine.epoch)));
    assert_eq!(r.select_tracking(&other).unwrap(), Some(at(0, 0)));
    assert!(r.select_parked("projection").unwrap().is_empty());
    assert_eq!(r.select_parked("audit").unwrap().len(), 1);
    assert_eq!(r.register_follower(&registration).unwrap(), registration);

    // A row that was never written stands at 0 with epoch 0 already.
    let never = TrackingKey::new("projection", "nowhere");
    r.rebuild(&[(never.clone(), 0)], &registration, |_| Ok(()))
        .unwrap();
    assert_eq!(r.select_tracking(&never).unwrap(), None);
}

#[test]
fn rebuild_at_a_stale_epoch_rolls_back_everything() {
    let (r, other, mine) = rebuildable();
    let before = r.select_parked("projection").unwrap();
    // Another worker took the row over meanwhile.
    r.raise_epoch(&key()).unwrap();
    let result = r.rebuild(
        &[(other.clone(), 0), (key(), mine.epoch)],
        &Registration::new("projection", "Stats", 2),
        |tx| tx.execute_batch("DELETE FROM counts").map_err(super::db),
    );
    match result {
        Err(Error::TrackingConflict {
            follower,
            upstream,
            expected,
            epoch,
            ..
        }) => assert_eq!(
            (follower.as_str(), upstream.as_str(), expected, epoch),
            ("projection", "bank", 0, mine.epoch)
        ),
        other => panic!("expected a tracking conflict, got {other:?}"),
    }
    assert_eq!(counts(&r).len(), 1);
    assert_eq!(r.select_tracking(&other).unwrap(), Some(at(4, 0)));
    assert_eq!(
        r.select_tracking(&key()).unwrap(),
        Some(at(8, mine.epoch + 1))
    );
    assert_eq!(r.select_parked("projection").unwrap(), before);
    let stored = r
        .register_follower(&Registration::new("projection", "Other", 9))
        .unwrap();
    assert_eq!(stored, Registration::new("projection", "Stats", 1));

    // A missing row at an epoch other than 0 conflicts too; values beyond
    // the columns are refused before anything runs.
    let never = TrackingKey::new("projection", "nowhere");
    let registration = Registration::new("projection", "Stats", 2);
    let result = r.rebuild(&[(never, 1)], &registration, |_| Ok(()));
    assert!(matches!(result, Err(Error::TrackingConflict { .. })));
    let result = r.rebuild(&[(key(), 1 << 63)], &registration, |_| {
        panic!("the work must not run")
    });
    assert!(matches!(
        result,
        Err(Error::InvalidArgument { name: "epoch", .. })
    ));
    let result = r.rebuild(&[(key().partition(1 << 31), 1)], &registration, |_| {
        panic!("the work must not run")
    });
    assert!(matches!(
        result,
        Err(Error::InvalidArgument {
            name: "partition",
            ..
        })
    ));
}

#[test]
fn transact_writes_events_in_order_with_the_work() {
    let r = recorder();
    let id = Uuid::from_u128(1);
    let events = [event(id, 1), event(id, 2)];
    let ((), ids) = r
        .transact(&Batch::new(&events), |tx| count(tx, "a", 1))
        .unwrap();
    assert_eq!(ids, [1, 2]);
    // A concurrency conflict rolls the work back.
    let result = r.transact(&Batch::new(&events[1..]), |tx| count(tx, "b", 1));
    assert!(matches!(result, Err(Error::Concurrency { version: 2, .. })));
    assert_eq!(counts(&r).len(), 1);
    assert_eq!(r.events(&EventQuery::new(id)).unwrap().len(), 2);
}

#[test]
fn impossible_stored_values_are_corrupt() {
    let r = recorder();
    r.writer()
        .unwrap()
        .execute_batch(
            "INSERT INTO followers VALUES ('negative', 'K', -1), ('huge', 'K', 4294967296);
             INSERT INTO parked VALUES ('p', 'bank', -5, '00000000-0000-0000-0000-000000000007', 'T', 'r');
             INSERT INTO parked VALUES ('q', 'bank', 5, 'not a uuid', 'T', 'r');
             INSERT INTO parked VALUES ('s', 'bank', 'five', '00000000-0000-0000-0000-000000000007', 'T', 'r');",
        )
        .unwrap();
    for name in ["negative", "huge"] {
        let result = r.register_follower(&Registration::new(name, "K", 1));
        assert!(matches!(result, Err(Error::Corrupt { .. })), "{result:?}");
    }
    for follower in ["p", "q", "s"] {
        let result = r.select_parked(follower);
        assert!(matches!(result, Err(Error::Corrupt { .. })), "{result:?}");
    }
}

/// Connections opening the same new file at once all succeed: switching it
/// to WAL mode, which SQLite refuses at once while another connection is
/// doing the same, waits its turn like any other lock.
#[test]
fn concurrent_opens_of_a_new_file_succeed() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..40 {
        let path = dir.path().join(format!("open-{round}.db"));
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
        let opens: Vec<_> = ["a_", "b_", "a_", "b_"]
            .into_iter()
            .map(|prefix| {
                let (path, barrier) = (path.clone(), std::sync::Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    SqliteRecorder::open(SqliteOptions::file(path).table_prefix(prefix)).map(drop)
                })
            })
            .collect();
        for open in opens {
            open.join().unwrap().unwrap();
        }
    }
}

#[test]
fn recorders_of_one_file_share_connections_and_a_nested_write_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let open = |prefix: &str| {
        SqliteRecorder::open(crate::recorder::SqliteOptions::file(&path).table_prefix(prefix))
            .unwrap()
    };
    let (a, b) = (open("a_"), open("b_"));
    let (Store::File(first), Store::File(second)) = (&a.connections, &b.connections) else {
        panic!("file recorders");
    };
    assert!(
        Arc::ptr_eq(first, second),
        "one set of connections per file"
    );
    // Other settings, other connections.
    let full = SqliteRecorder::open(
        crate::recorder::SqliteOptions::file(&path)
            .table_prefix("c_")
            .synchronous(crate::recorder::Synchronous::Full),
    )
    .unwrap();
    let Store::File(third) = &full.connections else {
        panic!("a file recorder");
    };
    assert!(!Arc::ptr_eq(first, third));

    // Writing to `b` from inside a write of `a` would wait for itself:
    // it is refused, and `a`'s work rolls back.
    let result: Result<((), Vec<u64>)> = a.transact(&Batch::default(), |_| {
        b.insert_events(&[StoredEvent {
            originator_id: Uuid::new_v4(),
            originator_version: 1,
            topic: "T".into(),
            state: vec![0],
        }])
        .map(drop)
    });
    assert!(matches!(result, Err(Error::Database(_))), "{result:?}");
    assert_eq!(b.max_notification_id().unwrap(), 0);
}

#[test]
fn wal_autocheckpoint_is_set_on_the_writer_and_keeps_its_own_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint.db");
    let threshold = |recorder: &SqliteRecorder| -> Option<u32> {
        let Store::File(shared) = &recorder.connections else {
            panic!("a file recorder");
        };
        shared.checkpointer.as_ref().map(|c| c.threshold)
    };
    // SQLite's own checkpoints stay off: the writer's WAL hook replaces them.
    let sqlite_pages = |recorder: &SqliteRecorder| -> i64 {
        recorder
            .writer()
            .unwrap()
            .query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0))
            .unwrap()
    };
    let default = SqliteRecorder::open(SqliteOptions::file(&path)).unwrap();
    assert_eq!(threshold(&default), Some(1000), "SQLite's own default");
    assert_eq!(sqlite_pages(&default), 0);
    let tuned = SqliteRecorder::open(
        SqliteOptions::file(&path)
            .table_prefix("t_")
            .wal_autocheckpoint(10_000),
    )
    .unwrap();
    assert_eq!(threshold(&tuned), Some(10_000));
    let never = SqliteRecorder::open(
        SqliteOptions::file(&path)
            .table_prefix("n_")
            .wal_autocheckpoint(0),
    )
    .unwrap();
    assert_eq!(threshold(&never), None);
    assert_eq!(sqlite_pages(&never), 0);
    let (Store::File(first), Store::File(second)) = (&default.connections, &tuned.connections)
    else {
        panic!("file recorders");
    };
    assert!(
        !Arc::ptr_eq(first, second),
        "other settings, other connections"
    );
}
