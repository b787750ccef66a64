//! The followers' conformance suite: registrations (`followers`) and
//! parked notifications (`parked`), written atomically with a batch's
//! events and tracking compare-and-set.
//!
//! Each behaviour is one function taking a [`Backend`]; the `conformance!`
//! list below runs every function against every backend.

use std::sync::{Arc, Barrier};
use std::thread;

use eventsourcing::recorder::{
    Batch, EventQuery, ParkChange, Parked, Position, Recorder, Registration, TrackingKey,
    TrackingUpdate,
};
use eventsourcing::{Error, Result, Uuid};

use support::conformance;
use support::recorders::{Backend, event};

fn key(follower: &str) -> TrackingKey {
    TrackingKey::new(follower, "bank")
}

fn at(notification_id: u64, epoch: u64) -> Position {
    Position {
        notification_id,
        epoch,
    }
}

/// Notification `id` of `upstream`, parked by `follower`.
fn parked(follower: &str, upstream: &str, id: u64) -> Parked {
    Parked {
        follower: follower.to_owned(),
        upstream: upstream.to_owned(),
        notification_id: id,
        originator_id: Uuid::from_u128(u128::from(id) + 1),
        topic: format!("Account.Event{id}"),
        reason: format!("handler failed: «{id}» ✗"),
    }
}

fn park(follower: &str, upstream: &str, id: u64) -> ParkChange {
    ParkChange::Park(parked(follower, upstream, id))
}

fn release(follower: &str, upstream: &str, ids: &[u64]) -> ParkChange {
    ParkChange::Release {
        follower: follower.to_owned(),
        upstream: upstream.to_owned(),
        notification_ids: ids.to_vec(),
    }
}

fn ids(parked: &[Parked]) -> Vec<(String, u64)> {
    parked
        .iter()
        .map(|p| (p.upstream.clone(), p.notification_id))
        .collect()
}

fn assert_not_parked(result: Result<Vec<u64>>, follower: &str, upstream: &str, id: u64) {
    match result {
        Err(Error::NotParked {
            follower: f,
            upstream: u,
            notification_id,
        }) => assert_eq!(
            (f.as_str(), u.as_str(), notification_id),
            (follower, upstream, id)
        ),
        other => panic!("expected notification {id} not parked, got {other:?}"),
    }
}

fn assert_invalid<T: std::fmt::Debug>(result: Result<T>, field: &str) {
    match result {
        Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, field),
        other => panic!("expected an invalid {field}, got {other:?}"),
    }
}

// ---------------------------------------------------------------- the suite

fn registration_is_inserted_if_absent_then_updated(backend: &Backend) {
    let r = &*backend.recorder;
    let first = Registration::new("statistics", "app::Statistics", 1);
    assert_eq!(r.register_follower(&first).unwrap(), first);
    // Another kind claiming the name gets the stored registration back,
    // which it leaves unchanged.
    let other = Registration::new("statistics", "app::Other", 7);
    assert_eq!(r.register_follower(&other).unwrap(), first);
    assert_eq!(r.register_follower(&first).unwrap(), first);

    // An update replaces it; a later registration finds the update.
    let second = Registration::new("statistics", "app::Statistics", 2);
    r.update_follower(&second).unwrap();
    assert_eq!(r.register_follower(&other).unwrap(), second);

    // An update of a follower without a registration is its first one;
    // followers are independent, and the whole range of versions is kept.
    let fresh = Registration::new("audit", "app::Audit", u32::MAX);
    r.update_follower(&fresh).unwrap();
    assert_eq!(r.register_follower(&other).unwrap(), second);
    assert_eq!(
        r.register_follower(&Registration::new("audit", "x", 0))
            .unwrap(),
        fresh
    );
    let zero = Registration::new("zero", "", 0);
    assert_eq!(r.register_follower(&zero).unwrap(), zero);
}

fn racing_registrations_agree_on_one(backend: &Backend) {
    let recorder: &Arc<dyn Recorder> = &backend.recorder;
    let threads = 6;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (recorder, barrier) = (Arc::clone(recorder), Arc::clone(&barrier));
            thread::spawn(move || {
                let mine = Registration::new("contested", format!("kind{i}"), 1);
                barrier.wait();
                recorder.register_follower(&mine).unwrap()
            })
        })
        .collect();
    let stored: Vec<Registration> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(stored.iter().all(|s| *s == stored[0]), "{stored:?}");
}

fn parked_changes_commit_with_events_and_tracking(backend: &Backend) {
    let r = &*backend.recorder;
    let k = key("process");
    let id = Uuid::new_v4();
    let events = [event(id, 1, "A.Created")];
    let update = TrackingUpdate::new(k.clone(), 0, 0, 5);
    let changes = [park("process", "bank", 3), park("process", "bank", 5)];
    let batch = Batch::new(&events)
        .with_tracking(&update)
        .with_parked(&changes);
    assert!(!Batch::default().with_parked(&changes).is_empty());
    assert_eq!(r.insert(&batch).unwrap(), [1]);
    assert_eq!(r.select_tracking(&k).unwrap(), Some(at(5, 0)));
    assert_eq!(
        r.select_parked("process").unwrap(),
        [parked("process", "bank", 3), parked("process", "bank", 5)]
    );

    // A release with the next position and the follower's new events.
    let update = TrackingUpdate::new(k.clone(), 0, 5, 6);
    let events = [event(id, 2, "A.Changed")];
    let changes = [release("process", "bank", &[5, 3])];
    let batch = Batch::new(&events)
        .with_tracking(&update)
        .with_parked(&changes);
    assert_eq!(r.insert(&batch).unwrap(), [2]);
    assert_eq!(r.select_tracking(&k).unwrap(), Some(at(6, 0)));
    assert!(r.select_parked("process").unwrap().is_empty());

    // Parked changes alone.
    r.insert(&Batch::default().with_parked(&[park("process", "shop", 1)]))
        .unwrap();
    assert_eq!(
        ids(&r.select_parked("process").unwrap()),
        [("shop".into(), 1)]
    );
    assert_eq!(r.max_notification_id().unwrap(), 2);
}

fn a_tracking_conflict_writes_no_parked_row(backend: &Backend) {
    let r = &*backend.recorder;
    let k = key("process");
    let mine = r.raise_epoch(&k).unwrap();
    let id = Uuid::new_v4();
    // Another worker takes the row over.
    r.raise_epoch(&k).unwrap();

    let stale = TrackingUpdate::new(k.clone(), mine.epoch, 0, 1);
    let events = [event(id, 1, "A.Created")];
    let changes = [park("process", "bank", 1)];
    for batch in [
        Batch::new(&events)
            .with_tracking(&stale)
            .with_parked(&changes),
        Batch::default().with_tracking(&stale).with_parked(&changes),
    ] {
        assert!(matches!(
            r.insert(&batch),
            Err(Error::TrackingConflict { .. })
        ));
        assert!(r.select_parked("process").unwrap().is_empty());
        assert_eq!(r.select_tracking(&k).unwrap(), Some(at(0, mine.epoch + 1)));
        assert!(r.events(&EventQuery::new(id)).unwrap().is_empty());
        assert_eq!(r.max_notification_id().unwrap(), 0);
    }
}

fn not_parked_writes_no_event_and_leaves_tracking(backend: &Backend) {
    let r = &*backend.recorder;
    let k = key("process");
    let update = TrackingUpdate::new(k.clone(), 0, 0, 4);
    let changes = [park("process", "bank", 2), park("process", "bank", 3)];
    r.insert(
        &Batch::default()
            .with_tracking(&update)
            .with_parked(&changes),
    )
    .unwrap();

    let id = Uuid::new_v4();
    let events = [event(id, 1, "A.Created")];
    let next = TrackingUpdate::new(k.clone(), 0, 4, 5);
    // 2 is parked, 7 is not: nothing of the batch is written, 2 included.
    let cases = [
        (vec![release("process", "bank", &[2, 7])], "bank", 7),
        (vec![release("process", "shop", &[2])], "shop", 2),
        // Released twice in one batch, in one change or in two.
        (vec![release("process", "bank", &[3, 3])], "bank", 3),
        (
            vec![
                release("process", "bank", &[2]),
                release("process", "bank", &[2]),
            ],
            "bank",
            2,
        ),
        // Parked earlier in the batch, released, released again.
        (
            vec![
                park("process", "bank", 9),
                release("process", "bank", &[9]),
                release("process", "bank", &[9]),
            ],
            "bank",
            9,
        ),
    ];
    for (changes, upstream, missing) in &cases {
        let batch = Batch::new(&events)
            .with_tracking(&next)
            .with_parked(changes);
        assert_not_parked(r.insert(&batch), "process", upstream, *missing);
        let batch = Batch::default().with_parked(changes);
        assert_not_parked(r.insert(&batch), "process", upstream, *missing);
        assert_eq!(r.select_tracking(&k).unwrap(), Some(at(4, 0)));
        assert!(r.events(&EventQuery::new(id)).unwrap().is_empty());
        assert_eq!(r.max_notification_id().unwrap(), 0);
        assert_eq!(
            ids(&r.select_parked("process").unwrap()),
            [("bank".into(), 2), ("bank".into(), 3)]
        );
    }

    // Within one batch, changes apply in order: a notification parked and
    // released, or released and parked again, is fine.
    let changes = [
        park("process", "bank", 9),
        release("process", "bank", &[9, 2]),
        park("process", "bank", 2),
    ];
    let batch = Batch::new(&events)
        .with_tracking(&next)
        .with_parked(&changes);
    // (PostgreSQL's failed batches above left holes in the ids.)
    assert_eq!(r.insert(&batch).unwrap().len(), 1);
    assert_eq!(r.select_tracking(&k).unwrap(), Some(at(5, 0)));
    assert_eq!(
        ids(&r.select_parked("process").unwrap()),
        [("bank".into(), 2), ("bank".into(), 3)]
    );
}

fn parking_a_parked_notification_is_refused(backend: &Backend) {
    let r = &*backend.recorder;
    r.insert(&Batch::default().with_parked(&[park("process", "bank", 2)]))
        .unwrap();
    let id = Uuid::new_v4();
    let events = [event(id, 1, "A.Created")];
    let update = TrackingUpdate::new(key("process"), 0, 0, 3);
    for changes in [
        vec![park("process", "bank", 2)],
        vec![park("process", "bank", 4), park("process", "bank", 4)],
    ] {
        let batch = Batch::new(&events)
            .with_tracking(&update)
            .with_parked(&changes);
        assert_invalid(r.insert(&batch), "parked");
        assert_eq!(r.select_tracking(&key("process")).unwrap(), None);
        assert!(r.events(&EventQuery::new(id)).unwrap().is_empty());
        assert_eq!(
            ids(&r.select_parked("process").unwrap()),
            [("bank".into(), 2)]
        );
    }
    // The same notification of another upstream, or parked by another
    // follower, is another row.
    let changes = [park("process", "shop", 2), park("audit", "bank", 2)];
    r.insert(&Batch::default().with_parked(&changes)).unwrap();
    assert_eq!(r.select_parked("process").unwrap().len(), 2);
    assert_eq!(r.select_parked("audit").unwrap().len(), 1);
}

fn parked_notifications_come_by_upstream_then_id(backend: &Backend) {
    let r = &*backend.recorder;
    // Upstream names whose order differs between byte order and a
    // language's collation, and ids whose order differs as text.
    let changes = [
        park("process", "bank", 100),
        park("process", "Bank", 7),
        park("other", "accounts", 1),
        park("process", "bank", 2),
        park("process", "accounts", 10),
        park("process", "bank", 10),
        park("process", "bank-eu", 1),
        park("process", "accounts", 9),
    ];
    r.insert(&Batch::default().with_parked(&changes)).unwrap();
    let found = r.select_parked("process").unwrap();
    assert_eq!(
        ids(&found),
        [
            ("Bank".into(), 7),
            ("accounts".into(), 9),
            ("accounts".into(), 10),
            ("bank".into(), 2),
            ("bank".into(), 10),
            ("bank".into(), 100),
            ("bank-eu".into(), 1),
        ]
    );
    // Every column reads back as written.
    assert_eq!(found[3], parked("process", "bank", 2));
    assert_eq!(
        ids(&r.select_parked("other").unwrap()),
        [("accounts".into(), 1)]
    );
    assert!(r.select_parked("nobody").unwrap().is_empty());
}

fn values_beyond_the_columns_are_refused(backend: &Backend) {
    let r = &*backend.recorder;
    let too_big = 1 << 63;
    let id = Uuid::new_v4();
    let events = [event(id, 1, "A.Created")];
    let update = TrackingUpdate::new(key("process"), 0, 0, 1);
    for changes in [
        vec![park("process", "bank", too_big)],
        vec![
            park("process", "bank", 1),
            park("process", "bank", u64::MAX),
        ],
        vec![release("process", "bank", &[too_big])],
    ] {
        let batch = Batch::new(&events)
            .with_tracking(&update)
            .with_parked(&changes);
        assert_invalid(r.insert(&batch), "notification_id");
        assert!(r.select_parked("process").unwrap().is_empty());
        assert_eq!(r.select_tracking(&key("process")).unwrap(), None);
        assert_eq!(r.max_notification_id().unwrap(), 0);
    }
    // The greatest id the column holds is accepted, and released.
    let greatest = i64::MAX.unsigned_abs();
    r.insert(&Batch::default().with_parked(&[park("process", "bank", greatest)]))
        .unwrap();
    assert_eq!(
        r.select_parked("process").unwrap(),
        [parked("process", "bank", greatest)]
    );
    r.insert(&Batch::default().with_parked(&[release("process", "bank", &[greatest])]))
        .unwrap();
    assert!(r.select_parked("process").unwrap().is_empty());
}

conformance!(
    registration_is_inserted_if_absent_then_updated,
    racing_registrations_agree_on_one,
    parked_changes_commit_with_events_and_tracking,
    a_tracking_conflict_writes_no_parked_row,
    not_parked_writes_no_event_and_leaves_tracking,
    parking_a_parked_notification_is_refused,
    parked_notifications_come_by_upstream_then_id,
    values_beyond_the_columns_are_refused,
);
