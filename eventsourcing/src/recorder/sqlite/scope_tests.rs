//! One transaction for a run of writes on one thread (`scope.rs`): what a
//! scope's readers and other threads see, and what a failure undoes.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::{SqliteRecorder, in_one_transaction, on_failure};
use crate::error::Error;
use crate::mapper::StoredEvent;
use crate::recorder::{Recorder, Registration, SqliteOptions};

fn open(path: &Path, prefix: &str) -> SqliteRecorder {
    SqliteRecorder::open(SqliteOptions::file(path).table_prefix(prefix)).unwrap()
}

fn event(id: Uuid, version: u64) -> StoredEvent {
    StoredEvent {
        originator_id: id,
        originator_version: version,
        topic: "Test.Happened".to_owned(),
        state: version.to_le_bytes().to_vec(),
    }
}

/// The greatest notification id of `prefix`'s table, read on a
/// connection of its own (as another process would).
fn seen_elsewhere(path: &Path, prefix: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(
        &format!("SELECT coalesce(max(notification_id), 0) FROM {prefix}stored_events"),
        [],
        |row| row.get(0),
    )
    .unwrap()
}

#[test]
fn a_scope_commits_every_write_of_the_file_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scope.db");
    let (a, b) = (open(&path, "a_"), open(&path, "b_"));
    let id = Uuid::new_v4();
    let ((), committed) = in_one_transaction(|| {
        a.insert_events(&[event(id, 1)]).unwrap();
        // The scope's own reads see its writes...
        assert_eq!(a.max_notification_id().unwrap(), 1);
        let mut versions = Vec::new();
        a.select_events(&crate::recorder::EventQuery::new(id), &mut |e| {
            versions.push(e.originator_version);
            Ok(std::ops::ControlFlow::Continue(()))
        })
        .unwrap();
        assert_eq!(versions, [1]);
        b.insert_events(&[event(id, 1)]).unwrap();
        // ...no other connection does before the end.
        assert_eq!(seen_elsewhere(&path, "a_"), 0);
        assert_eq!(seen_elsewhere(&path, "b_"), 0);
    });
    committed.unwrap();
    assert_eq!(seen_elsewhere(&path, "a_"), 1);
    assert_eq!(seen_elsewhere(&path, "b_"), 1);
}

#[test]
fn a_failed_write_in_a_scope_undoes_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scope.db");
    let a = open(&path, "");
    let id = Uuid::new_v4();
    let ((), committed) = in_one_transaction(|| {
        a.insert_events(&[event(id, 1)]).unwrap();
        // Version 2 is new, version 1 a conflict: the batch fails whole.
        let conflict = a.insert_events(&[event(id, 2), event(id, 1)]);
        assert!(
            matches!(conflict, Err(Error::Concurrency { .. })),
            "{conflict:?}"
        );
        a.insert_events(&[event(id, 2)]).unwrap();
    });
    committed.unwrap();
    let stored = a.select_notifications(1, 10, &[]).unwrap();
    let versions: Vec<u64> = stored.iter().map(|n| n.originator_version).collect();
    assert_eq!(versions, [1, 2]);
}

#[test]
fn a_panic_in_a_scope_rolls_back_tells_on_failure_and_lets_the_file_go() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scope.db");
    let a = open(&path, "");
    let told = Arc::new(Mutex::new(None));
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        in_one_transaction(|| {
            let told = Arc::clone(&told);
            on_failure(move |error| *told.lock().unwrap() = Some(error.to_string()));
            a.insert_events(&[event(Uuid::new_v4(), 1)]).unwrap();
            panic!("in the middle of a scope");
        })
    }));
    assert!(panicked.is_err());
    assert!(told.lock().unwrap().is_some(), "on_failure was told");
    assert_eq!(a.max_notification_id().unwrap(), 0, "nothing stayed");
    // Another thread can write: the file was let go.
    std::thread::scope(|s| {
        s.spawn(|| a.insert_events(&[event(Uuid::new_v4(), 1)]).unwrap());
    });
    assert_eq!(seen_elsewhere(&path, ""), 1);
}

#[test]
fn a_write_that_needs_its_own_transaction_commits_the_scope_so_far() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scope.db");
    let a = open(&path, "");
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    let told = Arc::new(Mutex::new(false));
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        in_one_transaction(|| {
            let told = Arc::clone(&told);
            on_failure(move |_| *told.lock().unwrap() = true);
            a.insert_events(&[event(first, 1)]).unwrap();
            // Takes the writer without a transaction: what the scope
            // wrote so far is committed first.
            a.update_follower(&Registration {
                follower: "f".into(),
                kind: "process".into(),
                version: 1,
            })
            .unwrap();
            a.insert_events(&[event(second, 1)]).unwrap();
            panic!("after the second write");
        })
    }));
    assert!(*told.lock().unwrap());
    let stored = a.select_notifications(1, 10, &[]).unwrap();
    let ids: Vec<Uuid> = stored.iter().map(|n| n.originator_id).collect();
    assert_eq!(ids, [first], "the first write stayed, the second did not");
}

#[test]
fn another_threads_write_waits_for_the_scope_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scope.db");
    let a = open(&path, "");
    let (before, after) = (Uuid::new_v4(), Uuid::new_v4());
    let other = Uuid::new_v4();
    let (ready, go) = mpsc::channel();
    std::thread::scope(|s| {
        let ((), committed) = in_one_transaction(|| {
            a.insert_events(&[event(before, 1)]).unwrap();
            let (ready, a) = (ready.clone(), &a);
            s.spawn(move || {
                ready.send(()).unwrap();
                a.insert_events(&[event(other, 1)]).unwrap();
            });
            go.recv().unwrap();
            // Give the other thread time to reach the writer (the order
            // below holds however long it takes).
            std::thread::sleep(std::time::Duration::from_millis(50));
            a.insert_events(&[event(after, 1)]).unwrap();
        });
        committed.unwrap();
    });
    let stored = a.select_notifications(1, 10, &[]).unwrap();
    let ids: Vec<Uuid> = stored.iter().map(|n| n.originator_id).collect();
    assert_eq!(
        ids,
        [before, after, other],
        "the other write came after the scope"
    );
}
