//! The recorder conformance suite: events, notifications and snapshots
//! (tracking rows have their own suite, `test_tracking.rs`).
//!
//! Each behaviour is one function taking a [`Backend`]; the `conformance!`
//! list at the bottom runs every function against every backend (the
//! backends are listed once, in `backends/mod.rs`).
//!
//! The PostgreSQL backend runs each test in a schema of its own, dropped
//! afterwards; without a reachable server its tests are skipped (see
//! `pg/mod.rs`).

use std::collections::{BTreeSet, HashMap};
use std::ops::ControlFlow;
use std::sync::{Arc, Barrier};
use std::thread;

use eventsourcing::recorder::{Batch, EventQuery, MemoryRecorder, Notification, Recorder};
use eventsourcing::{Error, StoredEvent, Uuid};

use support::conformance;
use support::recorders::{Backend, event};

fn notification(id: u64, event: &StoredEvent) -> Notification {
    Notification {
        id,
        originator_id: event.originator_id,
        originator_version: event.originator_version,
        topic: event.topic.clone(),
        state: event.state.clone(),
    }
}

fn versions(events: &[StoredEvent]) -> Vec<u64> {
    events.iter().map(|e| e.originator_version).collect()
}

fn all_notifications(recorder: &dyn Recorder) -> Vec<Notification> {
    recorder.select_notifications(1, usize::MAX, &[]).unwrap()
}

fn assert_concurrency(result: eventsourcing::Result<Vec<u64>>, id: Uuid, version: u64) {
    match result {
        Err(Error::Concurrency {
            id: got,
            version: got_version,
        }) => {
            assert_eq!((got, got_version), (id, version));
        }
        other => panic!("expected a concurrency error on {id} v{version}, got {other:?}"),
    }
}

// ---------------------------------------------------------------- the suite

fn empty_recorder(backend: &Backend) {
    let r = &*backend.recorder;
    assert_eq!(r.max_notification_id().unwrap(), 0);
    assert!(all_notifications(r).is_empty());
    assert!(
        r.events(&EventQuery::new(Uuid::new_v4()))
            .unwrap()
            .is_empty()
    );
    assert_eq!(r.insert_events(&[]).unwrap(), Vec::<u64>::new());
    assert_eq!(r.insert(&Batch::default()).unwrap(), Vec::<u64>::new());
    assert_eq!(r.max_notification_id().unwrap(), 0);
}

fn insert_and_select(backend: &Backend) {
    let r = &*backend.recorder;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let a1 = event(a, 1, "A.Created");
    let a2 = event(a, 2, "A.Changed");
    let b1 = event(b, 1, "B.Created");
    let a3 = event(a, 3, "A.Changed");

    assert_eq!(r.insert_events(std::slice::from_ref(&a1)).unwrap(), [1]);
    assert_eq!(r.insert_events(&[a2.clone(), b1.clone()]).unwrap(), [2, 3]);
    assert_eq!(r.insert_events(std::slice::from_ref(&a3)).unwrap(), [4]);

    assert_eq!(r.events(&EventQuery::new(a)).unwrap(), [a1, a2, a3]);
    assert_eq!(r.events(&EventQuery::new(b)).unwrap(), [b1]);
    assert!(
        r.events(&EventQuery::new(Uuid::new_v4()))
            .unwrap()
            .is_empty()
    );
    assert_eq!(r.max_notification_id().unwrap(), 4);
}

fn stores_bytes_and_text_exactly(backend: &Backend) {
    let r = &*backend.recorder;
    let id = Uuid::new_v4();
    let all_bytes = StoredEvent {
        originator_id: id,
        originator_version: 1,
        topic: "Wörld.Ünïcode 🦀".to_owned(),
        state: (0..=255).collect(),
    };
    let empty = StoredEvent {
        originator_id: id,
        originator_version: 2,
        topic: String::new(),
        state: Vec::new(),
    };
    r.insert_events(&[all_bytes.clone(), empty.clone()])
        .unwrap();
    assert_eq!(r.events(&EventQuery::new(id)).unwrap(), [all_bytes, empty]);
}

fn select_bounds_order_and_limit(backend: &Backend) {
    let r = &*backend.recorder;
    let id = Uuid::new_v4();
    let events: Vec<_> = (1..=5).map(|v| event(id, v, "T")).collect();
    r.insert_events(&events).unwrap();
    // Another aggregate's events must never leak into the results.
    r.insert_events(&[event(Uuid::new_v4(), 3, "T")]).unwrap();

    let q = EventQuery::new(id);
    let got = |query: EventQuery| versions(&r.events(&query).unwrap());
    assert_eq!(got(q), [1, 2, 3, 4, 5]);
    assert_eq!(got(q.after_version(2)), [3, 4, 5]);
    assert_eq!(got(q.after_version(0)), [1, 2, 3, 4, 5]);
    assert_eq!(got(q.to_version(4)), [1, 2, 3, 4]);
    assert_eq!(got(q.after_version(1).to_version(4)), [2, 3, 4]);
    assert_eq!(got(q.descending(true)), [5, 4, 3, 2, 1]);
    assert_eq!(got(q.descending(true).limit(2)), [5, 4]);
    assert_eq!(got(q.limit(2)), [1, 2]);
    assert_eq!(got(q.descending(true).to_version(3).limit(1)), [3]);
    assert_eq!(got(q.after_version(3).descending(true)), [5, 4]);
    assert_eq!(got(q.after_version(4).to_version(2)), Vec::<u64>::new());
    assert_eq!(got(q.after_version(3).to_version(3)), Vec::<u64>::new());
    assert_eq!(got(q.after_version(5)), Vec::<u64>::new());
    assert_eq!(got(q.after_version(u64::MAX)), Vec::<u64>::new());
    assert_eq!(got(q.to_version(u64::MAX)), [1, 2, 3, 4, 5]);
    assert_eq!(got(q.limit(0)), Vec::<u64>::new());
    assert_eq!(got(q.limit(usize::MAX)), [1, 2, 3, 4, 5]);
    // The rows come back whole, not just their versions.
    assert_eq!(
        r.events(&q.after_version(3).limit(1)).unwrap(),
        [events[3].clone()]
    );
}

fn concurrency_error_on_recorded_version(backend: &Backend) {
    let r = &*backend.recorder;
    let id = Uuid::new_v4();
    r.insert_events(&[event(id, 1, "T"), event(id, 2, "T")])
        .unwrap();
    let before = all_notifications(r);

    // The conflict is on the batch's second row: its first must not stay.
    let result = r.insert_events(&[event(id, 3, "T"), event(id, 2, "Other")]);
    assert_concurrency(result, id, 2);

    assert_eq!(all_notifications(r), before);
    assert_eq!(versions(&r.events(&EventQuery::new(id)).unwrap()), [1, 2]);
    assert_eq!(r.max_notification_id().unwrap(), 2);
    // The failed batch used up no notification ids.
    assert_eq!(r.insert_events(&[event(id, 3, "T")]).unwrap(), [3]);
}

/// A batch of one aggregate whose versions lie between and above recorded
/// ones, touching none of them, is no conflict (the PostgreSQL recorder
/// looks at the greatest recorded version first).
fn versions_between_recorded_ones_are_no_conflict(backend: &Backend) {
    let r = &*backend.recorder;
    let id = Uuid::new_v4();
    r.insert_events(&[event(id, 1, "T"), event(id, 3, "T")])
        .unwrap();
    assert_eq!(
        r.insert_events(&[event(id, 4, "T"), event(id, 2, "T")])
            .unwrap(),
        [3, 4]
    );
    assert_eq!(
        versions(&r.events(&EventQuery::new(id)).unwrap()),
        [1, 2, 3, 4]
    );
    let result = r.insert_events(&[event(id, 6, "T"), event(id, 5, "T"), event(id, 3, "U")]);
    assert_concurrency(result, id, 3);
    assert_eq!(r.max_notification_id().unwrap(), 4);
}

fn concurrency_error_on_duplicate_within_batch(backend: &Backend) {
    let r = &*backend.recorder;
    let id = Uuid::new_v4();
    let result = r.insert_events(&[event(id, 1, "T"), event(id, 2, "T"), event(id, 1, "U")]);
    assert_concurrency(result, id, 1);
    assert_eq!(r.max_notification_id().unwrap(), 0);
    assert!(r.events(&EventQuery::new(id)).unwrap().is_empty());
    assert!(all_notifications(r).is_empty());
}

fn multi_aggregate_batch_is_atomic(backend: &Backend) {
    let r = &*backend.recorder;
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    r.insert_events(&[event(a, 1, "T")]).unwrap();

    let result = r.insert_events(&[event(b, 1, "T"), event(c, 1, "T"), event(a, 1, "T")]);
    assert_concurrency(result, a, 1);
    assert!(r.events(&EventQuery::new(b)).unwrap().is_empty());
    assert!(r.events(&EventQuery::new(c)).unwrap().is_empty());
    assert_eq!(r.max_notification_id().unwrap(), 1);

    let batch = [event(b, 1, "T"), event(c, 1, "T"), event(a, 2, "T")];
    assert_eq!(r.insert_events(&batch).unwrap(), [2, 3, 4]);
    assert_eq!(r.events(&EventQuery::new(b)).unwrap(), [batch[0].clone()]);
    assert_eq!(r.events(&EventQuery::new(c)).unwrap(), [batch[1].clone()]);
    assert_eq!(versions(&r.events(&EventQuery::new(a)).unwrap()), [1, 2]);
}

fn version_beyond_signed_range_is_refused(backend: &Backend) {
    let r = &*backend.recorder;
    let id = Uuid::new_v4();
    let too_big = 1 << 63;
    let result = r.insert_events(&[event(id, 1, "T"), event(id, too_big, "T")]);
    assert!(
        matches!(result, Err(Error::Corrupt { id: got, version, .. }) if got == id && version == too_big),
        "{result:?}"
    );
    assert_eq!(r.max_notification_id().unwrap(), 0);
    let result = r.insert_snapshot(&event(id, too_big, "S"));
    assert!(matches!(result, Err(Error::Corrupt { .. })), "{result:?}");
}

fn notifications_in_order_with_paging(backend: &Backend) {
    let r = &*backend.recorder;
    let ids: Vec<_> = (0..3).map(|_| Uuid::new_v4()).collect();
    let mut expected = Vec::new();
    for version in 1..=4 {
        let batch: Vec<_> = ids.iter().map(|&id| event(id, version, "T")).collect();
        let assigned = r.insert_events(&batch).unwrap();
        for (n, e) in assigned.into_iter().zip(&batch) {
            expected.push(notification(n, e));
        }
    }
    let numbers: Vec<u64> = expected.iter().map(|n| n.id).collect();
    assert_eq!(numbers, (1..=12).collect::<Vec<_>>());
    assert_eq!(all_notifications(r), expected);
    assert_eq!(r.max_notification_id().unwrap(), 12);

    assert_eq!(r.select_notifications(1, 5, &[]).unwrap(), expected[0..5]);
    assert_eq!(r.select_notifications(6, 5, &[]).unwrap(), expected[5..10]);
    assert_eq!(
        r.select_notifications(11, 5, &[]).unwrap(),
        expected[10..12]
    );
    assert_eq!(
        r.select_notifications(12, 1, &[]).unwrap(),
        expected[11..12]
    );
    assert!(r.select_notifications(13, 5, &[]).unwrap().is_empty());
    assert!(r.select_notifications(u64::MAX, 5, &[]).unwrap().is_empty());
    assert!(r.select_notifications(1, 0, &[]).unwrap().is_empty());
    // Ids start at 1, so start 0 reads from the first.
    assert_eq!(r.select_notifications(0, 2, &[]).unwrap(), expected[0..2]);
}

fn notifications_filtered_by_topic(backend: &Backend) {
    let r = &*backend.recorder;
    let id = Uuid::new_v4();
    let topics = ["A", "B", "C", "A", "B", "A"];
    let batch: Vec<_> = topics
        .iter()
        .zip(1..)
        .map(|(topic, version)| event(id, version, topic))
        .collect();
    r.insert_events(&batch).unwrap();

    let ids = |start, limit, topics: &[&str]| -> Vec<u64> {
        r.select_notifications(start, limit, topics)
            .unwrap()
            .iter()
            .map(|n| n.id)
            .collect()
    };
    assert_eq!(ids(1, 100, &["A"]), [1, 4, 6]);
    assert_eq!(ids(1, 100, &["A", "C"]), [1, 3, 4, 6]);
    assert_eq!(ids(1, 100, &["C", "B", "A"]), [1, 2, 3, 4, 5, 6]);
    assert_eq!(ids(2, 100, &["A"]), [4, 6]);
    assert_eq!(ids(1, 2, &["A", "B"]), [1, 2]);
    assert_eq!(ids(3, 2, &["A", "B"]), [4, 5]);
    assert_eq!(ids(1, 100, &["Nope"]), Vec::<u64>::new());
    assert_eq!(ids(1, 100, &[]), [1, 2, 3, 4, 5, 6]);
    let b = r.select_notifications(1, 100, &["B"]).unwrap();
    assert_eq!(b, [notification(2, &batch[1]), notification(5, &batch[4])]);
}

fn select_events_stops_at_first_callback_error(backend: &Backend) {
    let r = &*backend.recorder;
    let id = Uuid::new_v4();
    let events: Vec<_> = (1..=5).map(|v| event(id, v, "T")).collect();
    r.insert_events(&events).unwrap();

    let marker = Uuid::new_v4();
    let mut seen = Vec::new();
    let result = r.select_events(&EventQuery::new(id), &mut |e| {
        seen.push(e.originator_version);
        if e.originator_version == 3 {
            Err(Error::NotFound { id: marker })
        } else {
            Ok(ControlFlow::Continue(()))
        }
    });
    assert!(
        matches!(result, Err(Error::NotFound { id }) if id == marker),
        "{result:?}"
    );
    assert_eq!(seen, [1, 2, 3]);

    let mut streamed = Vec::new();
    r.select_events(&EventQuery::new(id).descending(true), &mut |e| {
        streamed.push(e.to_owned());
        Ok(ControlFlow::Continue(()))
    })
    .unwrap();
    let mut reversed = events;
    reversed.reverse();
    assert_eq!(streamed, reversed);
    // The recorder is still usable after a stream was cut short.
    r.insert_events(&[event(id, 6, "T")]).unwrap();
    assert_eq!(r.max_notification_id().unwrap(), 6);
}

fn select_events_stops_early_on_break(backend: &Backend) {
    let r = &*backend.recorder;
    let id = Uuid::new_v4();
    let events: Vec<_> = (1..=2000).map(|v| event(id, v, "T")).collect();
    r.insert_events(&events).unwrap();

    // Past a chunk of the memory recorder and a page of any stream: the
    // callback is not called again after it said stop.
    for (query, stop_at, expected) in [
        (EventQuery::new(id), 3, vec![1, 2, 3]),
        (
            EventQuery::new(id).descending(true),
            1998,
            vec![2000, 1999, 1998],
        ),
        (
            EventQuery::new(id).after_version(1500),
            1502,
            vec![1501, 1502],
        ),
    ] {
        let mut calls = 0;
        let mut seen = Vec::new();
        r.select_events(&query, &mut |e| {
            calls += 1;
            seen.push(e.originator_version);
            Ok(if e.originator_version == stop_at {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })
        .unwrap();
        assert_eq!(seen, expected);
        assert_eq!(calls, expected.len());
    }
    // Stopping at the last row is the same as reading to the end.
    let mut calls = 0;
    r.select_events(&EventQuery::new(id).after_version(1999), &mut |_| {
        calls += 1;
        Ok(ControlFlow::Break(()))
    })
    .unwrap();
    assert_eq!(calls, 1);
    // The recorder is still usable after a stream was stopped early.
    assert_eq!(r.insert_events(&[event(id, 2001, "T")]).unwrap(), [2001]);
    assert_eq!(r.events(&EventQuery::new(id)).unwrap().len(), 2001);
}

fn snapshots(backend: &Backend) {
    let r = &*backend.recorder;
    let (id, other) = (Uuid::new_v4(), Uuid::new_v4());
    assert_eq!(r.select_snapshot(id, None).unwrap(), None);

    let s2 = event(id, 2, "Snapshot");
    let s5 = event(id, 5, "Snapshot");
    assert!(r.insert_snapshot(&s2).unwrap());
    assert!(r.insert_snapshot(&s5).unwrap());
    // A second snapshot at a recorded version keeps the first.
    assert!(!r.insert_snapshot(&event(id, 2, "Replacement")).unwrap());
    assert!(r.insert_snapshot(&event(other, 1, "Snapshot")).unwrap());

    assert_eq!(r.select_snapshot(id, None).unwrap(), Some(s5.clone()));
    assert_eq!(r.select_snapshot(id, Some(5)).unwrap(), Some(s5));
    assert_eq!(r.select_snapshot(id, Some(4)).unwrap(), Some(s2.clone()));
    assert_eq!(r.select_snapshot(id, Some(2)).unwrap(), Some(s2));
    assert_eq!(r.select_snapshot(id, Some(1)).unwrap(), None);
    assert_eq!(r.select_snapshot(Uuid::new_v4(), None).unwrap(), None);
    // Snapshots are not events.
    assert_eq!(r.max_notification_id().unwrap(), 0);
    assert!(r.events(&EventQuery::new(id)).unwrap().is_empty());
}

/// What a load reads: `(snapshot, event versions)` of one
/// `select_snapshot_and_events`, or `None` for the events when the
/// snapshot callback breaks.
fn load_rows(r: &dyn Recorder, id: Uuid, to: Option<u64>, keep: bool) -> (Option<u64>, Vec<u64>) {
    let (mut snapshot, mut events) = (None, Vec::new());
    r.select_snapshot_and_events(
        id,
        to,
        &mut |row| {
            assert_eq!((row.originator_id, row.topic), (id, "Snapshot"));
            snapshot = Some(row.originator_version);
            Ok(if keep {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            })
        },
        &mut |row| {
            assert_eq!(row.originator_id, id);
            events.push(row.originator_version);
            Ok(ControlFlow::Continue(()))
        },
    )
    .unwrap();
    (snapshot, events)
}

fn snapshot_and_events_in_one_read(backend: &Backend) {
    let r = &*backend.recorder;
    let (id, other) = (Uuid::new_v4(), Uuid::new_v4());
    assert_eq!(load_rows(r, id, None, true), (None, vec![]));
    let events: Vec<_> = (1..=7).map(|v| event(id, v, "T")).collect();
    r.insert_events(&events).unwrap();
    r.insert_events(&[event(other, 1, "T"), event(other, 2, "T")])
        .unwrap();
    // No snapshot: every event, or those up to the version asked for.
    assert_eq!(load_rows(r, id, None, true), (None, (1..=7).collect()));
    assert_eq!(load_rows(r, id, Some(3), true), (None, vec![1, 2, 3]));

    r.insert_snapshot(&event(id, 2, "Snapshot")).unwrap();
    r.insert_snapshot(&event(id, 5, "Snapshot")).unwrap();
    r.insert_snapshot(&event(other, 2, "Snapshot")).unwrap();
    // The latest snapshot within the version, then the events from its
    // own version on (the chain is tied to it), within the version.
    assert_eq!(load_rows(r, id, None, true), (Some(5), vec![5, 6, 7]));
    assert_eq!(load_rows(r, id, Some(6), true), (Some(5), vec![5, 6]));
    assert_eq!(load_rows(r, id, Some(5), true), (Some(5), vec![5]));
    assert_eq!(load_rows(r, id, Some(4), true), (Some(2), vec![2, 3, 4]));
    assert_eq!(load_rows(r, id, Some(1), true), (None, vec![1]));
    // A snapshot refused by the reader ends the read there.
    assert_eq!(load_rows(r, id, None, false), (Some(5), vec![]));
    // The rows are what the two separate reads give.
    let (mut lent, mut lent_events) = (Vec::new(), Vec::new());
    r.select_snapshot_and_events(
        id,
        None,
        &mut |row| {
            lent.push(row.to_owned());
            Ok(ControlFlow::Continue(()))
        },
        &mut |row| {
            lent_events.push(row.to_owned());
            Ok(ControlFlow::Continue(()))
        },
    )
    .unwrap();
    lent.append(&mut lent_events);
    let mut separate = vec![r.select_snapshot(id, None).unwrap().unwrap()];
    separate.extend(r.events(&EventQuery::new(id).after_version(4)).unwrap());
    assert_eq!(lent, separate);
}

/// A load longer than the PostgreSQL recorder's page of 1,000 events (read
/// a page per statement): every event once, in order, across the pages'
/// edges, from a snapshot in the middle of a page, and no further than a
/// callback that breaks.
fn long_loads_read_every_event_once(backend: &Backend) {
    const LENGTH: u64 = 2_500;
    let r = &*backend.recorder;
    let id = Uuid::new_v4();
    let events: Vec<_> = (1..=LENGTH).map(|v| event(id, v, "T")).collect();
    r.insert_events(&events).unwrap();
    r.insert_events(&[event(Uuid::new_v4(), 1, "T")]).unwrap();
    assert_eq!(load_rows(r, id, None, true), (None, (1..=LENGTH).collect()));
    for to in [999, 1_000, 1_001, 2_000, 2_001] {
        assert_eq!(load_rows(r, id, Some(to), true), (None, (1..=to).collect()));
    }
    // An event callback that breaks ends the read, in a later page too.
    assert_eq!(seen_until(r, id, 1_200), (1..=1_200).collect::<Vec<_>>());
    r.insert_snapshot(&event(id, 1_500, "Snapshot")).unwrap();
    assert_eq!(
        load_rows(r, id, None, true),
        (Some(1_500), (1_500..=LENGTH).collect())
    );
    assert_eq!(
        load_rows(r, id, Some(2_499), true),
        (Some(1_500), (1_500..=2_499).collect())
    );
    assert_eq!(
        seen_until(r, id, 2_499),
        (1_500..=2_499).collect::<Vec<_>>()
    );
}

/// The versions a load of `id` hands on when its event callback breaks at
/// version `stop`.
fn seen_until(r: &dyn Recorder, id: Uuid, stop: u64) -> Vec<u64> {
    let mut seen = Vec::new();
    r.select_snapshot_and_events(
        id,
        None,
        &mut |_| Ok(ControlFlow::Continue(())),
        &mut |row| {
            seen.push(row.originator_version);
            Ok(if row.originator_version == stop {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        },
    )
    .unwrap();
    seen
}

fn concurrent_inserts_get_unique_gap_free_ids(backend: &Backend) {
    const THREADS: usize = 8;
    const SAVES: u64 = 25;
    let start = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let recorder = Arc::clone(&backend.recorder);
            let start = Arc::clone(&start);
            thread::spawn(move || {
                let id = Uuid::new_v4();
                let mut assigned = Vec::new();
                start.wait();
                let mut version = 1;
                for save in 0..SAVES {
                    // Alternate single-event saves with two-event saves.
                    let size = 1 + save % 2;
                    let batch: Vec<_> = (version..version + size)
                        .map(|v| event(id, v, "T"))
                        .collect();
                    version += size;
                    let ids = recorder.insert_events(&batch).unwrap();
                    assert_eq!(ids.len(), batch.len());
                    assigned.extend(ids.into_iter().zip(batch));
                }
                (id, version - 1, assigned)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();

    let r = &*backend.recorder;
    let all = all_notifications(r);
    let total: usize = results.iter().map(|(_, _, assigned)| assigned.len()).sum();
    assert_eq!(all.len(), total);
    let numbers: Vec<u64> = all.iter().map(|n| n.id).collect();
    assert_eq!(numbers, (1..=total as u64).collect::<Vec<_>>());
    assert_eq!(r.max_notification_id().unwrap(), total as u64);

    let by_id: HashMap<u64, &Notification> = all.iter().map(|n| (n.id, n)).collect();
    for (id, last_version, assigned) in &results {
        for (n, e) in assigned {
            assert_eq!(*by_id[n], notification(*n, e));
        }
        let stored = r.events(&EventQuery::new(*id)).unwrap();
        assert_eq!(versions(&stored), (1..=*last_version).collect::<Vec<_>>());
        // A thread's ids grow with its versions: one writer commits at a time.
        let ids: Vec<u64> = assigned.iter().map(|(n, _)| *n).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    }
}

fn racing_writers_of_one_version_exactly_one_wins(backend: &Backend) {
    const THREADS: usize = 8;
    let id = Uuid::new_v4();
    let start = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|n| {
            let recorder = Arc::clone(&backend.recorder);
            let start = Arc::clone(&start);
            thread::spawn(move || {
                let mine = event(id, 1, &format!("Writer{n}"));
                start.wait();
                (mine.clone(), recorder.insert_events(&[mine]))
            })
        })
        .collect();
    let mut winners = Vec::new();
    for handle in handles {
        let (mine, result) = handle.join().unwrap();
        match result {
            Ok(ids) => winners.push((mine, ids)),
            Err(Error::Concurrency { id: got, version }) => assert_eq!((got, version), (id, 1)),
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer must win");
    let (winner, ids) = winners.pop().unwrap();
    assert_eq!(ids, [1]);
    let r = &*backend.recorder;
    assert_eq!(r.events(&EventQuery::new(id)).unwrap(), [winner]);
    assert_eq!(r.max_notification_id().unwrap(), 1);
}

fn ids_distinct_across_aggregates(backend: &Backend) {
    // Same version numbers under different aggregates never conflict.
    let r = &*backend.recorder;
    let batch: Vec<_> = (0..20).map(|_| event(Uuid::new_v4(), 1, "T")).collect();
    let ids = r.insert_events(&batch).unwrap();
    let unique: BTreeSet<_> = ids.iter().copied().collect();
    assert_eq!(unique.len(), 20);
    assert_eq!(ids, (1..=20).collect::<Vec<_>>());
}

// ------------------------------------------------------ backends x the suite

conformance!(
    empty_recorder,
    snapshot_and_events_in_one_read,
    long_loads_read_every_event_once,
    insert_and_select,
    stores_bytes_and_text_exactly,
    select_bounds_order_and_limit,
    concurrency_error_on_recorded_version,
    concurrency_error_on_duplicate_within_batch,
    versions_between_recorded_ones_are_no_conflict,
    multi_aggregate_batch_is_atomic,
    version_beyond_signed_range_is_refused,
    notifications_in_order_with_paging,
    notifications_filtered_by_topic,
    select_events_stops_at_first_callback_error,
    select_events_stops_early_on_break,
    snapshots,
    concurrent_inserts_get_unique_gap_free_ids,
    racing_writers_of_one_version_exactly_one_wins,
    ids_distinct_across_aggregates,
);

#[test]
fn recorders_are_send_and_sync() {
    fn send_sync<T: Send + Sync + ?Sized>() {}
    send_sync::<dyn Recorder>();
    send_sync::<MemoryRecorder>();
    send_sync::<eventsourcing::recorder::SqliteRecorder>();
    send_sync::<eventsourcing::recorder::PostgresRecorder>();
    // And the trait is object safe: the suite above runs on `Arc<dyn Recorder>`.
    let recorder: Arc<dyn Recorder> = Arc::new(MemoryRecorder::default());
    assert_eq!(recorder.max_notification_id().unwrap(), 0);
}

// ------------------------------------------------------- SQLite specifics

mod sqlite {
    use std::path::Path;
    use std::time::Duration;

    use eventsourcing::recorder::{
        EventQuery, Recorder, SqliteOptions, SqlitePath, SqliteRecorder, Synchronous,
    };
    use eventsourcing::{Error, Uuid};
    use rusqlite::Connection;

    use super::event;

    fn open(path: &Path, prefix: &str) -> SqliteRecorder {
        SqliteRecorder::open(SqliteOptions::file(path).table_prefix(prefix)).unwrap()
    }

    fn raw(path: &Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        conn
    }

    #[test]
    fn bad_table_prefix_is_a_config_error() {
        for prefix in ["bad-prefix", "x\"; DROP TABLE y; --", "é", "a b", "x."] {
            let result = SqliteRecorder::open(SqliteOptions::memory().table_prefix(prefix));
            assert!(
                matches!(
                    result,
                    Err(Error::Config {
                        variable: "table prefix",
                        ..
                    })
                ),
                "{prefix:?}: {result:?}"
            );
        }
        for prefix in ["", "app_", "App1_", "_", "1st_"] {
            let recorder =
                SqliteRecorder::open(SqliteOptions::memory().table_prefix(prefix)).unwrap();
            assert_eq!(
                recorder
                    .insert_events(&[event(Uuid::new_v4(), 1, "T")])
                    .unwrap(),
                [1]
            );
        }
    }

    #[test]
    fn options_default_and_builders() {
        let options = SqliteOptions::default();
        assert_eq!(options.path, SqlitePath::Memory);
        assert_eq!(options.table_prefix, "");
        assert_eq!(options.synchronous, Synchronous::Normal);
        assert_eq!(options.busy_timeout, Duration::from_secs(5));
        let options = SqliteOptions::memory()
            .path(SqlitePath::File("x.db".into()))
            .table_prefix("p_")
            .synchronous(Synchronous::Extra)
            .busy_timeout(Duration::from_millis(10));
        assert_eq!(options.path, SqlitePath::File("x.db".into()));
        assert_eq!(options.table_prefix, "p_");
        assert_eq!(options.synchronous, Synchronous::Extra);
        assert_eq!(options.busy_timeout, Duration::from_millis(10));
    }

    #[test]
    fn file_layout_follows_the_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("format.db");
        let recorder = open(&path, "app_");
        let id = Uuid::new_v4();
        recorder
            .insert_events(&[event(id, 1, "World.Created")])
            .unwrap();
        recorder.insert_snapshot(&event(id, 1, "World")).unwrap();

        let conn = raw(&path);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let columns = |table: &str| -> Vec<(String, String, bool, i64)> {
            let mut stmt = conn
                .prepare(&format!("PRAGMA table_info(\"{table}\")"))
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get(3)?, r.get(5)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        let s = |x: &str| x.to_owned();
        assert_eq!(
            columns("app_stored_events"),
            [
                (s("notification_id"), s("INTEGER"), false, 1),
                (s("originator_id"), s("TEXT"), true, 0),
                (s("originator_version"), s("INTEGER"), true, 0),
                (s("topic"), s("TEXT"), true, 0),
                (s("state"), s("BLOB"), true, 0),
            ]
        );
        assert_eq!(
            columns("app_snapshots"),
            [
                (s("originator_id"), s("TEXT"), true, 1),
                (s("originator_version"), s("INTEGER"), true, 2),
                (s("topic"), s("TEXT"), true, 0),
                (s("state"), s("BLOB"), true, 0),
            ]
        );
        assert_eq!(
            columns("app_tracking"),
            [
                (s("application_name"), s("TEXT"), true, 1),
                (s("upstream_name"), s("TEXT"), true, 2),
                (s("partition"), s("INTEGER"), true, 3),
                (s("notification_id"), s("INTEGER"), true, 0),
                (s("epoch"), s("INTEGER"), true, 0),
            ]
        );
        let autoincrement: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'app_stored_events'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(autoincrement.contains("AUTOINCREMENT"), "{autoincrement}");

        let (stored_id, id_type, state_type): (String, String, String) = conn
            .query_row(
                "SELECT originator_id, typeof(originator_id), typeof(state) FROM app_stored_events",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(stored_id, id.hyphenated().to_string());
        assert_eq!(stored_id.len(), 36);
        assert_eq!((id_type.as_str(), state_type.as_str()), ("text", "blob"));
    }

    #[test]
    fn prefixed_tables_are_independent_and_reopening_keeps_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.db");
        let id = Uuid::new_v4();
        {
            let a = open(&path, "a_");
            let b = open(&path, "b_");
            assert_eq!(
                a.insert_events(&[event(id, 1, "T"), event(id, 2, "T")])
                    .unwrap(),
                [1, 2]
            );
            assert_eq!(b.insert_events(&[event(id, 1, "T")]).unwrap(), [1]);
            assert_eq!(b.max_notification_id().unwrap(), 1);
        }
        let a = open(&path, "a_");
        assert_eq!(a.max_notification_id().unwrap(), 2);
        assert_eq!(
            a.events(&EventQuery::new(id)).unwrap(),
            [event(id, 1, "T"), event(id, 2, "T")]
        );
        assert_eq!(a.insert_events(&[event(id, 3, "T")]).unwrap(), [3]);
        assert!(matches!(
            a.insert_events(&[event(id, 3, "T")]),
            Err(Error::Concurrency { version: 3, .. })
        ));
    }

    #[test]
    fn two_recorders_on_one_file_see_each_others_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("two.db");
        let (first, second) = (open(&path, ""), open(&path, ""));
        super::two_recorders_share_one_store(&first, &second);
    }

    #[test]
    fn reads_proceed_while_another_connection_holds_the_write_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locked.db");
        let options = SqliteOptions::file(&path).busy_timeout(Duration::from_millis(50));
        let recorder = SqliteRecorder::open(options).unwrap();
        let id = Uuid::new_v4();
        recorder.insert_events(&[event(id, 1, "T")]).unwrap();

        let other = raw(&path);
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        // WAL readers are not blocked by a writer...
        assert_eq!(recorder.events(&EventQuery::new(id)).unwrap().len(), 1);
        assert_eq!(recorder.select_notifications(1, 10, &[]).unwrap().len(), 1);
        // ...but a second writer gives up after the busy timeout.
        let result = recorder.insert_events(&[event(id, 2, "T")]);
        assert!(matches!(result, Err(Error::Database(_))), "{result:?}");
        other.execute_batch("ROLLBACK").unwrap();

        assert_eq!(recorder.max_notification_id().unwrap(), 1);
        assert_eq!(recorder.insert_events(&[event(id, 2, "T")]).unwrap(), [2]);
    }

    /// Inserts one raw row with `values`, reads it back through the
    /// recorder (in notification order, and by aggregate when `by_aggregate`
    /// names the aggregate), then removes it.
    fn read_raw_row(
        path: &Path,
        recorder: &SqliteRecorder,
        values: &str,
        by_aggregate: Option<Uuid>,
    ) -> Vec<Error> {
        let conn = raw(path);
        conn.execute_batch(&format!(
            "INSERT INTO stored_events (notification_id, originator_id, originator_version, topic, state) \
             VALUES (100, {values})"
        ))
        .unwrap();
        let mut errors = vec![recorder.select_notifications(1, 1000, &[]).unwrap_err()];
        errors.push(recorder.select_notifications(100, 1, &[]).unwrap_err());
        if let Some(id) = by_aggregate {
            errors.push(recorder.events(&EventQuery::new(id)).unwrap_err());
        }
        conn.execute_batch("DELETE FROM stored_events WHERE notification_id = 100")
            .unwrap();
        errors
    }

    #[test]
    fn corrupt_rows_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corrupt.db");
        let recorder = open(&path, "");
        let good = Uuid::new_v4();
        recorder.insert_events(&[event(good, 1, "T")]).unwrap();
        let id = good.hyphenated().to_string();
        let upper = id.to_uppercase();
        let simple = good.simple().to_string();
        let visible = Some(good);

        let cases = [
            (
                "'not-a-uuid', 1, 'T', x'00'".to_owned(),
                "originator_id",
                None,
            ),
            (format!("'{upper}', 2, 'T', x'00'"), "originator_id", None),
            (format!("'{simple}', 2, 'T', x'00'"), "originator_id", None),
            ("x'0011', 2, 'T', x'00'".to_owned(), "originator_id", None),
            (format!("'{id}', -1, 'T', x'00'"), "negative", visible),
            (format!("'{id}', 'two', 'T', x'00'"), "not an integer", None),
            (
                format!("'{id}', 2.5, 'T', x'00'"),
                "not an integer",
                visible,
            ),
            (format!("'{id}', 2, x'ff', x'00'"), "topic", visible),
            (
                format!("'{id}', 2, CAST(x'ff' AS TEXT), x'00'"),
                "UTF-8",
                visible,
            ),
            (format!("'{id}', 2, 'T', 'text'"), "state", visible),
        ];
        for (values, reason_part, by_aggregate) in cases {
            let errors = read_raw_row(&path, &recorder, &values, by_aggregate);
            assert_eq!(errors.len(), 2 + usize::from(by_aggregate.is_some()));
            for error in errors {
                match error {
                    Error::Corrupt { reason, .. } => {
                        assert!(reason.contains(reason_part), "{values}: {reason}");
                    }
                    other => panic!("{values}: expected Error::Corrupt, got {other:?}"),
                }
            }
        }
        // A bad id names no aggregate; a bad version names the aggregate.
        let errors = read_raw_row(&path, &recorder, "'not-a-uuid', 4, 'T', x'00'", None);
        assert!(
            matches!(&errors[0], Error::Corrupt { id, version: 4, .. } if id.is_nil()),
            "{errors:?}"
        );
        let errors = read_raw_row(&path, &recorder, &format!("'{id}', -1, 'T', x'00'"), None);
        assert!(
            matches!(&errors[0], Error::Corrupt { id, .. } if *id == good),
            "{errors:?}"
        );

        // With the bad rows gone, everything reads again.
        assert_eq!(recorder.select_notifications(1, 10, &[]).unwrap().len(), 1);
        assert_eq!(
            recorder.events(&EventQuery::new(good)).unwrap(),
            [event(good, 1, "T")]
        );
    }

    #[test]
    fn every_synchronous_level_opens() {
        let dir = tempfile::tempdir().unwrap();
        for (n, level) in [
            Synchronous::Off,
            Synchronous::Normal,
            Synchronous::Full,
            Synchronous::Extra,
        ]
        .into_iter()
        .enumerate()
        {
            let options =
                SqliteOptions::file(dir.path().join(format!("{n}.db"))).synchronous(level);
            let recorder = SqliteRecorder::open(options).unwrap();
            assert_eq!(
                recorder
                    .insert_events(&[event(Uuid::new_v4(), 1, "T")])
                    .unwrap(),
                [1]
            );
        }
    }

    #[test]
    fn unopenable_path_is_a_database_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("dir").join("x.db");
        let result = SqliteRecorder::open(SqliteOptions::file(path));
        assert!(matches!(result, Err(Error::Database(_))), "{result:?}");
    }
}

// ---------------------------------------------------- PostgreSQL specifics

mod postgres_specifics {
    use std::ops::ControlFlow;
    use std::sync::Arc;
    use std::time::Duration;

    use eventsourcing::recorder::{
        EventQuery, PostgresOptions, PostgresRecorder, Recorder, Sequencing,
    };
    use eventsourcing::{Application, Error, Uuid};

    use super::{event, notification};
    use support::pg::{self, Scratch};

    /// A URL where nothing listens.
    const NOWHERE: &str = "postgres://postgres@127.0.0.1:1/test";

    fn config_variable<T: std::fmt::Debug>(result: eventsourcing::Result<T>) -> &'static str {
        match result {
            Err(Error::Config { variable, .. }) => variable,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn bad_options_are_config_errors_before_connecting() {
        // All of these fail before any connection is attempted: NOWHERE
        // would be a database error.
        let open = |options: PostgresOptions| PostgresRecorder::open(options);
        for prefix in ["bad-prefix", "x\"; DROP TABLE y; --", "é", "a b", "x."] {
            let options = PostgresOptions::new(NOWHERE).table_prefix(prefix);
            assert_eq!(config_variable(open(options)), "table prefix", "{prefix:?}");
        }
        let long = PostgresOptions::new(NOWHERE).table_prefix("p".repeat(31));
        assert_eq!(config_variable(open(long)), "table prefix");
        for schema in ["", "pg_mine", "my-schema", "a\"b", &"s".repeat(64)] {
            let options = PostgresOptions::new(NOWHERE).schema(schema);
            assert_eq!(config_variable(open(options)), "schema", "{schema:?}");
        }
        let options = PostgresOptions::new(NOWHERE).pool_size(0);
        assert_eq!(config_variable(open(options)), "pool size");
        for url in [
            "mysql://x",
            "postgres://u@h:notaport/db",
            "postgres://u@h/db?frobnicate=1",
        ] {
            assert_eq!(config_variable(open(PostgresOptions::new(url))), "DB_URI");
        }
    }

    #[test]
    fn unreachable_server_is_a_database_error() {
        let options = PostgresOptions::new(NOWHERE).connect_timeout(Duration::from_secs(2));
        let result = PostgresRecorder::open(options);
        assert!(matches!(result, Err(Error::Database(_))), "{result:?}");
        let result = Application::builder().db_uri(NOWHERE).build();
        assert!(matches!(result, Err(Error::Database(_))), "{result:?}");
    }

    #[test]
    fn unreachable_server_skips_or_fails_as_configured() {
        match pg::decide(NOWHERE, false) {
            pg::Decision::Skip(reason) => {
                assert!(reason.contains(NOWHERE) && reason.contains(pg::REQUIRE_VAR));
            }
            other => panic!("expected to skip, got {other:?}"),
        }
        match pg::decide(NOWHERE, true) {
            pg::Decision::Fail(reason) => assert!(reason.contains(pg::REQUIRE_VAR), "{reason}"),
            other => panic!("expected to fail, got {other:?}"),
        }
        if let Some(url) = pg::server() {
            assert_eq!(pg::decide(&url, true), pg::Decision::Run);
        }
    }

    #[test]
    fn options_default_and_builders() {
        let options = PostgresOptions::new("postgres://h/db");
        assert_eq!(options.url, "postgres://h/db");
        assert_eq!(options.schema, None);
        assert_eq!(options.table_prefix, "");
        assert_eq!(options.sequencing, Sequencing::Concurrent);
        assert_eq!(options.pool_size, 10);
        assert_eq!(options.pool_timeout, Duration::from_secs(30));
        assert_eq!(options.connect_timeout, Duration::from_secs(10));
        assert_eq!(options.check_after_idle, Duration::from_secs(1));
        assert!(!options.drop_schema_on_drop);
        let options = options
            .schema("s")
            .table_prefix("p_")
            .sequencing(Sequencing::TableLock)
            .pool_size(3)
            .pool_timeout(Duration::from_millis(5))
            .connect_timeout(Duration::from_millis(6))
            .check_after_idle(Duration::ZERO);
        assert_eq!(options.schema.as_deref(), Some("s"));
        assert_eq!(options.table_prefix, "p_");
        assert_eq!(options.sequencing, Sequencing::TableLock);
        assert_eq!(options.pool_size, 3);
        assert_eq!(options.pool_timeout, Duration::from_millis(5));
        assert_eq!(options.connect_timeout, Duration::from_millis(6));
        assert_eq!(options.check_after_idle, Duration::ZERO);
        let temporary = PostgresOptions::new("postgres://h/db").temporary_schema();
        assert!(temporary.drop_schema_on_drop);
        let name = temporary.schema.unwrap();
        assert!(name.starts_with("es_tmp_") && name.len() == 39, "{name}");
        // The URL may hold a password: Debug leaves it out.
        let secret = PostgresOptions::new("postgres://u:hunter2@h/db");
        assert!(!format!("{secret:?}").contains("hunter2"));
    }

    #[test]
    fn layout_follows_the_format() {
        let Some(scratch) = Scratch::new() else {
            return;
        };
        let recorder = PostgresRecorder::open(scratch.options().table_prefix("app_")).unwrap();
        assert_eq!(recorder.schema(), scratch.schema);
        assert_eq!(recorder.table_prefix(), "app_");
        let id = Uuid::new_v4();
        let stored = event(id, 1, "World.Created");
        recorder
            .insert_events(std::slice::from_ref(&stored))
            .unwrap();
        recorder.insert_snapshot(&event(id, 1, "World")).unwrap();

        let mut client = scratch.client();
        let columns = |client: &mut postgres::Client, table: &str| -> Vec<(String, String, bool)> {
            client
                .query(
                    "SELECT column_name::text, udt_name::text, is_nullable = 'YES' \
                     FROM information_schema.columns \
                     WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
                    &[&scratch.schema, &table],
                )
                .unwrap()
                .iter()
                .map(|row| (row.get(0), row.get(1), row.get(2)))
                .collect()
        };
        let c = |name: &str, kind: &str| (name.to_owned(), kind.to_owned(), false);
        assert_eq!(
            columns(&mut client, "app_stored_events"),
            [
                c("notification_id", "int8"),
                c("originator_id", "uuid"),
                c("originator_version", "int8"),
                c("topic", "text"),
                c("state", "bytea"),
                c("transaction_id", "xid8"),
            ]
        );
        assert_eq!(
            columns(&mut client, "app_snapshots"),
            [
                c("originator_id", "uuid"),
                c("originator_version", "int8"),
                c("topic", "text"),
                c("state", "bytea"),
            ]
        );
        assert_eq!(
            columns(&mut client, "app_tracking"),
            [
                c("application_name", "text"),
                c("upstream_name", "text"),
                c("partition", "int4"),
                c("notification_id", "int8"),
                c("epoch", "int8"),
            ]
        );
        // The ids come from a sequence, owned by the column, one at a time.
        let row = client
            .query_one(
                "SELECT pg_get_serial_sequence('app_stored_events', 'notification_id'), \
                 (SELECT cache_size FROM pg_sequences WHERE sequencename = \
                  'app_stored_events_notification_id_seq' AND schemaname = $1)",
                &[&scratch.schema],
            )
            .unwrap();
        let sequence: String = row.get(0);
        assert!(
            sequence.ends_with("app_stored_events_notification_id_seq"),
            "{sequence}"
        );
        assert_eq!(row.get::<_, i64>(1), 1);
        // Uniqueness of (originator_id, originator_version) is the database's too.
        let unique: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_indexes WHERE tablename = 'app_stored_events' \
                 AND indexdef LIKE 'CREATE UNIQUE INDEX%(originator_id, originator_version)'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(unique, 1);
        let row = client
            .query_one(
                "SELECT notification_id, originator_id, originator_version, topic, state \
                 FROM app_stored_events",
                &[],
            )
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), 1);
        assert_eq!(row.get::<_, Uuid>(1), id);
        assert_eq!(row.get::<_, i64>(2), 1);
        assert_eq!(row.get::<_, String>(3), "World.Created");
        assert_eq!(row.get::<_, Vec<u8>>(4), stored.state);
    }

    #[test]
    fn prefixed_tables_are_independent_and_reopening_keeps_rows() {
        let Some(scratch) = Scratch::new() else {
            return;
        };
        let open =
            |prefix: &str| PostgresRecorder::open(scratch.options().table_prefix(prefix)).unwrap();
        let id = Uuid::new_v4();
        {
            let (a, b) = (open("a_"), open("b_"));
            assert_eq!(
                a.insert_events(&[event(id, 1, "T"), event(id, 2, "T")])
                    .unwrap(),
                [1, 2]
            );
            assert_eq!(b.insert_events(&[event(id, 1, "T")]).unwrap(), [1]);
            assert_eq!(b.max_notification_id().unwrap(), 1);
        }
        let a = open("a_");
        assert_eq!(a.max_notification_id().unwrap(), 2);
        assert_eq!(
            a.events(&EventQuery::new(id)).unwrap(),
            [event(id, 1, "T"), event(id, 2, "T")]
        );
        assert_eq!(a.insert_events(&[event(id, 3, "T")]).unwrap(), [3]);
        assert!(matches!(
            a.insert_events(&[event(id, 3, "T")]),
            Err(Error::Concurrency { version: 3, .. })
        ));
        // Mixed-case prefixes keep their case.
        let mixed = open("App1_");
        assert_eq!(mixed.insert_events(&[event(id, 1, "T")]).unwrap(), [1]);
        let tables: i64 = scratch
            .client()
            .query_one(
                "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename LIKE 'App1_%'",
                &[&scratch.schema],
            )
            .unwrap()
            .get(0);
        // stored_events, snapshots, tracking, aggregate_keys, and the
        // followers' two.
        assert_eq!(tables, 6);
    }

    #[test]
    fn two_recorders_on_one_schema_see_each_others_writes() {
        let Some(scratch) = Scratch::new() else {
            return;
        };
        let (first, second) = (scratch.recorder(), scratch.recorder());
        let id = super::two_recorders_share_one_store(&first, &second);
        // A table-lock writer follows the same protocol and shares the table.
        let locking =
            PostgresRecorder::open(scratch.options().sequencing(Sequencing::TableLock)).unwrap();
        assert_eq!(locking.sequencing(), Sequencing::TableLock);
        assert_eq!(locking.insert_events(&[event(id, 3, "T")]).unwrap(), [3]);
        assert!(matches!(
            locking.insert_events(&[event(id, 3, "T")]),
            Err(Error::Concurrency { version: 3, .. })
        ));
        let all = first.select_notifications(1, 10, &[]).unwrap();
        assert_eq!(
            all,
            [
                notification(1, &event(id, 1, "T")),
                notification(2, &event(id, 2, "T")),
                notification(3, &event(id, 3, "T")),
            ]
        );
    }

    #[test]
    fn schema_comes_from_the_search_path_when_not_named() {
        let Some(scratch) = Scratch::new() else {
            return;
        };
        let recorder = PostgresRecorder::open(PostgresOptions::new(scratch.db_uri())).unwrap();
        assert_eq!(recorder.schema(), scratch.schema);
        let missing = format!(
            "{}{}options=-csearch_path%3Dno_such_schema_{}",
            scratch.url,
            if scratch.url.contains('?') { '&' } else { '?' },
            Uuid::new_v4().simple()
        );
        assert_eq!(
            config_variable(PostgresRecorder::open(PostgresOptions::new(missing))),
            "schema"
        );
    }

    #[test]
    fn db_uri_selects_postgres_under_both_schemes() {
        let Some(scratch) = Scratch::new() else {
            return;
        };
        let uri = scratch.db_uri();
        let other = uri.replacen("postgres://", "postgresql://", 1);
        assert_ne!(uri, other);
        for (n, uri) in [uri, other].into_iter().enumerate() {
            let app = Application::builder().db_uri(uri).build().unwrap();
            let id = Uuid::new_v4();
            let ids = app
                .event_store()
                .recorder()
                .insert_events(&[event(id, 1, "T")])
                .unwrap();
            assert_eq!(ids, [n as u64 + 1]);
        }
        let rows: i64 = scratch
            .client()
            .query_one("SELECT count(*) FROM stored_events", &[])
            .unwrap()
            .get(0);
        assert_eq!(rows, 2);
    }

    #[test]
    fn temporary_schema_is_dropped_with_the_recorder() {
        let Some(url) = pg::server() else { return };
        let recorder =
            PostgresRecorder::open(PostgresOptions::new(url.as_str()).temporary_schema()).unwrap();
        recorder
            .insert_events(&[event(Uuid::new_v4(), 1, "T")])
            .unwrap();
        let schema = recorder.schema().to_owned();
        let exists = |client: &mut postgres::Client| -> bool {
            client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                    &[&schema],
                )
                .unwrap()
                .get(0)
        };
        let mut client = pg::connect(&url).unwrap();
        assert!(exists(&mut client));
        drop(recorder);
        assert!(!exists(&mut client));
    }

    #[test]
    fn inserting_events_must_be_the_first_write_of_a_transaction() {
        let Some(scratch) = Scratch::new() else {
            return;
        };
        let recorder = scratch.recorder();
        recorder
            .insert_events(&[event(Uuid::new_v4(), 1, "T")])
            .unwrap();
        let mut client = scratch.client();
        let mut tx = client.transaction().unwrap();
        tx.execute("INSERT INTO tracking VALUES ('a', 'b', 0, 1, 0)", &[])
            .unwrap();
        let error = tx
            .query_one(
                "SELECT stored_events_insert(false, ARRAY[gen_random_uuid()], ARRAY[1::bigint], \
                 ARRAY['T'], ARRAY['\\x00'::bytea], NULL, NULL, NULL, NULL, NULL, NULL, true)",
                &[],
            )
            .unwrap_err();
        assert_eq!(
            error.code(),
            Some(&postgres::error::SqlState::INVALID_TRANSACTION_STATE),
            "{error}"
        );
    }

    #[test]
    fn a_sequence_that_caches_ids_is_refused() {
        let Some(scratch) = Scratch::new() else {
            return;
        };
        drop(scratch.recorder());
        scratch
            .client()
            .batch_execute("ALTER SEQUENCE stored_events_notification_id_seq CACHE 20")
            .unwrap();
        match PostgresRecorder::open(scratch.options()) {
            Err(Error::Database(error)) => {
                assert!(error.to_string().contains("CACHE 1"), "{error}");
            }
            other => panic!("expected a database error, got {other:?}"),
        }
    }

    #[test]
    fn an_exhausted_pool_is_an_error_after_the_timeout() {
        let Some(scratch) = Scratch::new() else {
            return;
        };
        let options = scratch
            .options()
            .pool_size(1)
            .pool_timeout(Duration::from_millis(100));
        let recorder = Arc::new(PostgresRecorder::open(options).unwrap());
        let id = Uuid::new_v4();
        recorder.insert_events(&[event(id, 1, "T")]).unwrap();
        // The callback runs while the only connection streams its rows: a
        // second call cannot get one.
        let mut inner = None;
        recorder
            .select_events(&EventQuery::new(id), &mut |_| {
                inner = Some(recorder.max_notification_id());
                Ok(ControlFlow::Continue(()))
            })
            .unwrap();
        match inner {
            Some(Err(Error::Database(error))) => {
                assert!(
                    error.to_string().contains("no PostgreSQL connection"),
                    "{error}"
                );
            }
            other => panic!("expected a pool timeout, got {other:?}"),
        }
        // The connection went back to the pool afterwards.
        assert_eq!(recorder.max_notification_id().unwrap(), 1);
    }

    /// Inserts one raw row, reads it back through the recorder (in
    /// notification order from its id, and by aggregate unless the row's
    /// event columns are fine), then removes it.
    fn read_raw_row(
        scratch: &Scratch,
        recorder: &PostgresRecorder,
        id: i64,
        row: (Uuid, i64),
    ) -> Vec<Error> {
        let mut client = scratch.client();
        client
            .execute(
                "INSERT INTO stored_events (notification_id, originator_id, originator_version, \
                 topic, state, transaction_id) VALUES ($1, $2, $3, 'T', '\\x00', pg_current_xact_id())",
                &[&id, &row.0, &row.1],
            )
            .unwrap();
        let start = u64::try_from(id).unwrap_or(0);
        let mut errors = vec![recorder.select_notifications(start, 1000, &[]).unwrap_err()];
        if row.1 < 0 {
            errors.push(recorder.events(&EventQuery::new(row.0)).unwrap_err());
        }
        client
            .execute(
                "DELETE FROM stored_events WHERE notification_id = $1",
                &[&id],
            )
            .unwrap();
        errors
    }

    #[test]
    fn corrupt_rows_are_errors_not_panics() {
        let Some(scratch) = Scratch::new() else {
            return;
        };
        let recorder = scratch.recorder();
        let good = Uuid::new_v4();
        recorder.insert_events(&[event(good, 1, "T")]).unwrap();

        // Next to the good row: a hole below it could be one that a
        // transaction of another test might still fill, and readers would
        // (rightly) not go past it yet.
        let errors = read_raw_row(&scratch, &recorder, 2, (good, -1));
        assert_eq!(errors.len(), 2);
        for error in errors {
            match error {
                Error::Corrupt { id, reason, .. } => {
                    assert_eq!(id, good);
                    assert!(reason.contains("negative"), "{reason}");
                }
                other => panic!("expected Error::Corrupt, got {other:?}"),
            }
        }
        let other = Uuid::new_v4();
        let errors = read_raw_row(&scratch, &recorder, 0, (other, 1));
        match &errors[0] {
            Error::Corrupt {
                id,
                version,
                reason,
                ..
            } => {
                assert_eq!((*id, *version), (other, 1));
                assert!(reason.contains("notification_id"), "{reason}");
            }
            unexpected => panic!("expected Error::Corrupt, got {unexpected:?}"),
        }
        // With the bad rows gone, everything reads again.
        assert_eq!(
            recorder.select_notifications(1, 10, &[]).unwrap(),
            [notification(1, &event(good, 1, "T"))]
        );
        assert_eq!(recorder.max_notification_id().unwrap(), 1);
    }
}

/// Two recorders opened on one store (file or schema) see each other's
/// writes, conflicts and notification ids. Both start empty; returns the
/// aggregate written, at version 2.
fn two_recorders_share_one_store(first: &dyn Recorder, second: &dyn Recorder) -> Uuid {
    let id = Uuid::new_v4();
    first.insert_events(&[event(id, 1, "T")]).unwrap();
    assert_eq!(
        second.events(&EventQuery::new(id)).unwrap(),
        [event(id, 1, "T")]
    );
    assert!(matches!(
        second.insert_events(&[event(id, 1, "U")]),
        Err(Error::Concurrency { version: 1, .. })
    ));
    assert_eq!(second.insert_events(&[event(id, 2, "T")]).unwrap(), [2]);
    assert_eq!(first.max_notification_id().unwrap(), 2);
    id
}
