//! The PostgreSQL recorder's crate-internal transactions (`transact`,
//! `rebuild`), its crash points, its listeners, and the rows of the
//! followers' tables it refuses to read. The conformance suites in
//! `tests/` cover the rest.
//!
//! Each test opens a recorder on a temporary schema of its own (dropped
//! with the recorder) on the server at `EVENTSOURCING_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`). Without a
//! reachable server the tests pass without running, unless
//! `EVENTSOURCING_REQUIRE_POSTGRES` is set (to anything but empty or `0`):
//! then they fail, as the support library's rule has it.

use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls, Transaction};
use uuid::Uuid;

use super::sql::quote_ident;
use super::{Listener, PostgresOptions, PostgresRecorder};
use crate::crash;
use crate::error::{Error, Result};
use crate::mapper::StoredEvent;
use crate::recorder::{
    Batch, EventQuery, ParkChange, Parked, Position, Recorder, Registration, TrackingKey,
    TrackingUpdate,
};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Long enough for anything that does happen; never reached otherwise.
const PATIENCE: Duration = Duration::from_secs(30);

fn url() -> String {
    std::env::var("EVENTSOURCING_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

fn connect() -> std::result::Result<Client, postgres::Error> {
    let mut config: postgres::Config = url().parse()?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(3));
    }
    config.connect(NoTls)
}

/// A recorder on a fresh temporary schema, with a follower's own table
/// `counts` in it; `None` when the tests are skipped.
fn recorder() -> Option<PostgresRecorder> {
    if let Err(error) = connect() {
        let required = std::env::var("EVENTSOURCING_REQUIRE_POSTGRES")
            .is_ok_and(|v| !v.is_empty() && v != "0");
        assert!(
            !required,
            "PostgreSQL at {} is unreachable ({error}) and EVENTSOURCING_REQUIRE_POSTGRES is set",
            url()
        );
        eprintln!(
            "skipping a PostgreSQL test: {} is unreachable ({error})",
            url()
        );
        return None;
    }
    let recorder =
        PostgresRecorder::open(PostgresOptions::new(url()).temporary_schema().pool_size(2))
            .unwrap();
    client(&recorder)
        .batch_execute("CREATE TABLE counts (name TEXT PRIMARY KEY, n BIGINT NOT NULL)")
        .unwrap();
    Some(recorder)
}

/// A connection of the test's own, with the recorder's schema first on its
/// search path.
fn client(recorder: &PostgresRecorder) -> Client {
    let mut client = connect().unwrap();
    client
        .batch_execute(&format!(
            "SET search_path TO {}",
            quote_ident(recorder.schema())
        ))
        .unwrap();
    client
}

/// The qualified name of `counts`, for statements on pooled connections.
fn counts_table(recorder: &PostgresRecorder) -> String {
    format!("{}.counts", quote_ident(recorder.schema()))
}

/// The rows of `counts`.
fn counts(recorder: &PostgresRecorder) -> Vec<(String, i64)> {
    client(recorder)
        .query("SELECT name, n FROM counts ORDER BY name", &[])
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

/// A follower's own statement: one row of `counts`.
fn count(recorder: &PostgresRecorder, tx: &mut Transaction<'_>, name: &str, n: i64) -> Result<()> {
    let insert = format!(
        "INSERT INTO {} (name, n) VALUES ($1, $2)",
        counts_table(recorder)
    );
    tx.execute(&insert, &[&name, &n])
        .map_err(|error| Error::Database(Box::new(error)))?;
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

fn release(ids: &[u64]) -> ParkChange {
    ParkChange::Release {
        follower: "projection".to_owned(),
        upstream: "bank".to_owned(),
        notification_ids: ids.to_vec(),
    }
}

// ------------------------------------------------------------- transact

#[test]
fn transact_commits_the_work_with_tracking_and_parked_changes() {
    let Some(r) = recorder() else { return };
    let update = TrackingUpdate::new(key(), 0, 0, 5);
    let park = [ParkChange::Park(parked(3))];
    let batch = Batch::default().with_tracking(&update).with_parked(&park);
    let (value, ids) = r
        .transact(&batch, |tx| {
            count(&r, tx, "a", 1)?;
            count(&r, tx, "b", 2)?;
            Ok("done")
        })
        .unwrap();
    assert_eq!((value, ids), ("done", vec![]));
    assert_eq!(counts(&r), [("a".to_owned(), 1), ("b".to_owned(), 2)]);
    assert_eq!(r.select_tracking(&key()).unwrap(), Some(at(5, 0)));
    assert_eq!(r.select_parked("projection").unwrap(), [parked(3)]);

    // An empty batch commits the work alone.
    let ((), _) = r
        .transact(&Batch::default(), |tx| count(&r, tx, "c", 3))
        .unwrap();
    assert_eq!(counts(&r).len(), 3);
    // No transaction id was taken ahead of the log, nor a notification id.
    assert_eq!(r.max_notification_id().unwrap(), 0);
    assert_eq!(r.insert_events(&[event(Uuid::new_v4(), 1)]).unwrap(), [1]);
}

#[test]
fn a_tracking_conflict_rolls_back_what_the_work_wrote() {
    let Some(r) = recorder() else { return };
    let first = TrackingUpdate::new(key(), 0, 0, 5);
    r.transact(&Batch::default().with_tracking(&first), |tx| {
        count(&r, tx, "a", 1)
    })
    .unwrap();

    let park = [ParkChange::Park(parked(9))];
    let batch = Batch::default().with_tracking(&first).with_parked(&park);
    let result = r.transact(&batch, |tx| count(&r, tx, "b", 2));
    assert!(
        matches!(result, Err(Error::TrackingConflict { expected: 0, .. })),
        "{result:?}"
    );
    assert_eq!(counts(&r), [("a".to_owned(), 1)]);
    assert_eq!(r.select_tracking(&key()).unwrap(), Some(at(5, 0)));
    assert!(r.select_parked("projection").unwrap().is_empty());

    // So does a release of a notification that is not parked.
    let next = TrackingUpdate::new(key(), 0, 5, 6);
    let changes = [release(&[4])];
    let batch = Batch::default().with_tracking(&next).with_parked(&changes);
    let result = r.transact(&batch, |tx| count(&r, tx, "c", 3));
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
    let Some(r) = recorder() else { return };
    let update = TrackingUpdate::new(key(), 0, 0, 5);
    let batch = Batch::default().with_tracking(&update);
    let result: Result<((), Vec<u64>)> = r.transact(&batch, |tx| {
        count(&r, tx, "a", 1)?;
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
    let result = r.transact(&batch, |tx| {
        count(&r, tx, "a", 1)?;
        count(&r, tx, "a", 2)
    });
    assert!(matches!(result, Err(Error::Database(_))), "{result:?}");
    assert!(counts(&r).is_empty());
    assert_eq!(r.select_tracking(&key()).unwrap(), None);

    // The pool is fine afterwards.
    r.transact(&batch, |tx| count(&r, tx, "a", 1)).unwrap();
    assert_eq!(counts(&r).len(), 1);
}

#[test]
fn transact_refuses_events() {
    let Some(r) = recorder() else { return };
    let events = [event(Uuid::new_v4(), 1)];
    let result = r.transact(&Batch::new(&events), |_| -> Result<()> {
        panic!("the work must not run")
    });
    assert!(matches!(
        result,
        Err(Error::InvalidArgument { name: "batch", .. })
    ));
    assert_eq!(r.max_notification_id().unwrap(), 0);
}

#[test]
fn explicit_transactions_reach_the_crash_points() {
    let Some(r) = recorder() else { return };
    let events = [event(Uuid::new_v4(), 1)];
    // One statement: no point between its insert and its commit.
    crash::testing::start();
    r.insert(&Batch::new(&events)).unwrap();
    assert!(crash::testing::reached().is_empty());

    let park = [ParkChange::Park(parked(1))];
    let events = [event(Uuid::new_v4(), 1)];
    crash::testing::start();
    r.insert(&Batch::new(&events).with_parked(&park)).unwrap();
    assert_eq!(crash::testing::reached(), ["after_insert", "before_commit"]);

    crash::testing::start();
    r.transact(&Batch::default(), |tx| count(&r, tx, "a", 1))
        .unwrap();
    assert_eq!(crash::testing::reached(), ["after_insert", "before_commit"]);

    // A refused batch stops before them.
    crash::testing::start();
    let again = r.insert(&Batch::default().with_parked(&park));
    assert!(matches!(
        again,
        Err(Error::InvalidArgument { name: "parked", .. })
    ));
    assert!(crash::testing::reached().is_empty());
}

// -------------------------------------------------------------- rebuild

/// A follower with two tracking rows, parked notifications and an old
/// registration; returns the other row's key and this worker's position.
fn rebuildable(r: &PostgresRecorder) -> (TrackingKey, Position) {
    let other = TrackingKey::new("projection", "shop");
    let mine = r.raise_epoch(&key()).unwrap();
    let update = TrackingUpdate::new(key(), mine.epoch, 0, 8);
    let park = [
        ParkChange::Park(parked(3)),
        ParkChange::Park(Parked {
            upstream: "shop".to_owned(),
            ..parked(2)
        }),
        // Another follower's stays.
        ParkChange::Park(Parked {
            follower: "audit".to_owned(),
            ..parked(3)
        }),
    ];
    r.transact(
        &Batch::default().with_tracking(&update).with_parked(&park),
        |tx| count(r, tx, "a", 1),
    )
    .unwrap();
    let update = TrackingUpdate::new(other.clone(), 0, 0, 4);
    r.insert(&Batch::default().with_tracking(&update)).unwrap();
    r.update_follower(&Registration::new("projection", "Stats", 1))
        .unwrap();
    (other, mine)
}

#[test]
fn rebuild_rewinds_deletes_parked_and_stores_the_registration() {
    let Some(r) = recorder() else { return };
    let (other, mine) = rebuildable(&r);
    let registration = Registration::new("projection", "Stats", 2);
    let table = counts_table(&r);
    r.rebuild(
        &[(key(), mine.epoch), (other.clone(), 0)],
        &registration,
        |tx| {
            tx.batch_execute(&format!(
                "DELETE FROM {table}; INSERT INTO {table} VALUES ('fresh', 0)"
            ))
            .map_err(|error| Error::Database(Box::new(error)))
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
    let Some(r) = recorder() else { return };
    let (other, mine) = rebuildable(&r);
    let before = r.select_parked("projection").unwrap();
    // Another worker took the row over meanwhile.
    r.raise_epoch(&key()).unwrap();
    let table = counts_table(&r);
    let result = r.rebuild(
        &[(other.clone(), 0), (key(), mine.epoch)],
        &Registration::new("projection", "Stats", 2),
        |tx| {
            tx.batch_execute(&format!("DELETE FROM {table}"))
                .map_err(|error| Error::Database(Box::new(error)))
        },
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

    let registration = Registration::new("projection", "Stats", 2);
    let never = TrackingKey::new("projection", "nowhere");
    let result = r.rebuild(&[(never, 1)], &registration, |_| Ok(()));
    assert!(matches!(result, Err(Error::TrackingConflict { .. })));
    let result = r.rebuild(&[(key(), 1 << 63)], &registration, |_| {
        panic!("the work must not run")
    });
    assert!(matches!(
        result,
        Err(Error::InvalidArgument { name: "epoch", .. })
    ));
}

// ------------------------------------------------------------- listener

/// Sends `payload` on the listener's channel from another connection, then
/// returns the payloads the listener receives up to and including it, in
/// order: notifications of transactions that committed before are among
/// them, since PostgreSQL delivers them in commit order.
fn payloads_until_marker(r: &PostgresRecorder, listener: &mut Listener) -> Vec<String> {
    client(r)
        .batch_execute(&format!("NOTIFY {}, 'marker'", quote_ident(&r.sql.channel)))
        .unwrap();
    let mut payloads = Vec::new();
    let mut notifications = listener.client.notifications();
    let mut arriving = notifications.timeout_iter(PATIENCE);
    while let Some(notification) = arriving.next().unwrap() {
        assert_eq!(notification.channel(), r.sql.channel);
        payloads.push(notification.payload().to_owned());
        if notification.payload() == "marker" {
            return payloads;
        }
    }
    panic!("the marker did not arrive: {payloads:?}");
}

#[test]
fn a_commit_wakes_the_listener() {
    let Some(r) = recorder() else { return };
    let mut listener = r.listener().unwrap();
    let id = Uuid::new_v4();
    r.insert_events(&[event(id, 1), event(id, 2)]).unwrap();
    assert!(listener.wait(PATIENCE).unwrap());
    // One notification per transaction, whatever its size.
    r.insert_events(&[event(id, 3)]).unwrap();
    assert_eq!(payloads_until_marker(&r, &mut listener), ["", "marker"]);

    // A batch with parked changes is an explicit transaction: its commit.
    let park = [ParkChange::Park(parked(1))];
    r.insert(&Batch::new(&[event(id, 4)]).with_parked(&park))
        .unwrap();
    assert!(listener.wait(PATIENCE).unwrap());
}

#[test]
fn failed_and_rolled_back_writes_do_not_wake_the_listener() {
    let Some(r) = recorder() else { return };
    let id = Uuid::new_v4();
    r.insert_events(&[event(id, 1)]).unwrap();
    let mut listener = r.listener().unwrap();

    // A concurrency conflict.
    assert!(matches!(
        r.insert_events(&[event(id, 1)]),
        Err(Error::Concurrency { .. })
    ));
    // Events inserted, then rolled back: the release fails after the
    // insert function ran.
    let changes = [release(&[9])];
    let result = r.insert(&Batch::new(&[event(id, 2)]).with_parked(&changes));
    assert!(matches!(result, Err(Error::NotParked { .. })), "{result:?}");
    // A tracking conflict, and a batch of a tracking update alone.
    let stale = TrackingUpdate::new(key(), 3, 0, 1);
    let result = r.insert(&Batch::new(&[event(id, 2)]).with_tracking(&stale));
    assert!(matches!(result, Err(Error::TrackingConflict { .. })));
    let update = TrackingUpdate::new(key(), 0, 0, 1);
    r.insert(&Batch::default().with_tracking(&update)).unwrap();
    // A follower's own transaction writes no events either.
    r.transact(&Batch::default(), |tx| count(&r, tx, "a", 1))
        .unwrap();

    assert_eq!(payloads_until_marker(&r, &mut listener), ["marker"]);
    assert_eq!(r.max_notification_id().unwrap(), 1);
}

#[test]
fn a_recorder_that_does_not_notify_wakes_no_listener() {
    let Some(r) = recorder() else { return };
    let quiet =
        PostgresRecorder::open(PostgresOptions::new(url()).schema(r.schema()).notify(false))
            .unwrap();
    let mut listener = r.listener().unwrap();
    let id = Uuid::new_v4();
    quiet.insert_events(&[event(id, 1)]).unwrap();
    let park = [ParkChange::Park(parked(1))];
    quiet
        .insert(&Batch::new(&[event(id, 2)]).with_parked(&park))
        .unwrap();
    assert_eq!(payloads_until_marker(&r, &mut listener), ["marker"]);
    // The tables' other recorder still does: they share the function.
    r.insert_events(&[event(id, 3)]).unwrap();
    assert_eq!(payloads_until_marker(&r, &mut listener), ["", "marker"]);
    assert_eq!(quiet.max_notification_id().unwrap(), 3);
}

#[test]
fn waiting_without_a_commit_times_out() {
    let Some(r) = recorder() else { return };
    let mut listener = r.listener().unwrap();
    assert!(!listener.wait(Duration::from_millis(50)).unwrap());
    assert!(!listener.wait(Duration::ZERO).unwrap());
}

#[test]
fn a_lost_listener_connection_is_a_database_error() {
    let Some(r) = recorder() else { return };
    let mut listener = r.listener().unwrap();
    let pid: i32 = listener
        .client
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let terminated: bool = client(&r)
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap()
        .get(0);
    assert!(terminated);
    let result = listener.wait(PATIENCE);
    assert!(matches!(result, Err(Error::Database(_))), "{result:?}");
    assert!(matches!(listener.wait(PATIENCE), Err(Error::Database(_))));
    // A new listener works.
    let mut listener = r.listener().unwrap();
    r.insert_events(&[event(Uuid::new_v4(), 1)]).unwrap();
    assert!(listener.wait(PATIENCE).unwrap());
}

// ---------------------------------------------------------- stored rows

#[test]
fn impossible_stored_values_are_corrupt() {
    let Some(r) = recorder() else { return };
    client(&r)
        .batch_execute(
            "INSERT INTO followers VALUES ('negative', 'K', -1), ('huge', 'K', 4294967296);
             INSERT INTO parked VALUES
                 ('p', 'bank', -5, '00000000-0000-0000-0000-000000000007', 'T', 'r');",
        )
        .unwrap();
    for name in ["negative", "huge"] {
        let result = r.register_follower(&Registration::new(name, "K", 1));
        assert!(matches!(result, Err(Error::Corrupt { .. })), "{result:?}");
    }
    let result = r.select_parked("p");
    assert!(matches!(result, Err(Error::Corrupt { .. })), "{result:?}");
    // Nothing else is disturbed.
    assert!(r.events(&EventQuery::new(Uuid::nil())).unwrap().is_empty());
}
