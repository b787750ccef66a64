//! The `aggregate_keys` table on every backend, below the mapper: rows
//! created with a batch (all or nothing with its events), a second key for
//! one aggregate refused as a concurrency conflict, a forgotten
//! aggregate's key and snapshots deleted with its last event, and the
//! rotation's reads (a page at a time along the primary key) and
//! compare-and-set.

use eventsourcing::Error;
use eventsourcing::Uuid;
use eventsourcing::recorder::{Batch, DataKeyRow, Rewrap};
use support::conformance;
use support::recorders::{Backend, event};

fn key_row(id: Uuid, fingerprint: &str) -> DataKeyRow {
    DataKeyRow {
        originator_id: id,
        wrapped_key: id.as_bytes().repeat(4)[..60].to_vec(),
        key_fingerprint: fingerprint.to_owned(),
        created_at: 1_700_000_000_000_000,
    }
}

fn keys_are_written_with_their_batch(backend: &Backend) {
    let recorder = &backend.recorder;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let rows = [key_row(a, "aaaaaaaaaaaaaaaa")];
    let events = [event(a, 1, "T.Made")];
    recorder
        .insert(&Batch::new(&events).with_data_keys(&rows))
        .unwrap();
    assert_eq!(recorder.select_data_key(a).unwrap(), Some(rows[0].clone()));
    assert_eq!(recorder.select_data_key(b).unwrap(), None);

    // A second key for `a` (another writer created it first): nothing of
    // the batch is written, `b`'s event and key included.
    let second = [
        key_row(b, "bbbbbbbbbbbbbbbb"),
        key_row(a, "cccccccccccccccc"),
    ];
    let events = [event(b, 1, "T.Made")];
    let error = recorder
        .insert(&Batch::new(&events).with_data_keys(&second))
        .unwrap_err();
    assert!(
        matches!(error, Error::Concurrency { id, version: 1 } if id == a),
        "{error:?}"
    );
    assert_eq!(recorder.select_data_key(b).unwrap(), None);
    assert!(
        recorder
            .events(&eventsourcing::recorder::EventQuery::new(b))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        recorder
            .select_data_key(a)
            .unwrap()
            .unwrap()
            .key_fingerprint,
        "aaaaaaaaaaaaaaaa"
    );
}

fn forgetting_deletes_the_key_and_snapshots_with_the_event(backend: &Backend) {
    let recorder = &backend.recorder;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let rows = [
        key_row(a, "aaaaaaaaaaaaaaaa"),
        key_row(b, "aaaaaaaaaaaaaaaa"),
    ];
    let events = [event(a, 1, "T.Made"), event(b, 1, "T.Made")];
    recorder
        .insert(&Batch::new(&events).with_data_keys(&rows))
        .unwrap();
    assert!(recorder.insert_snapshot(&event(a, 1, "T")).unwrap());

    // A forget that conflicts leaves everything in place.
    let conflicting = [event(a, 1, "T.Forgotten")];
    let error = recorder
        .insert(&Batch::new(&conflicting).with_forgotten(&[a]))
        .unwrap_err();
    assert!(matches!(error, Error::Concurrency { .. }), "{error:?}");
    assert!(recorder.select_data_key(a).unwrap().is_some());
    assert!(recorder.select_snapshot(a, None).unwrap().is_some());

    let forgotten = [event(a, 2, "T.Forgotten")];
    let ids = recorder
        .insert(&Batch::new(&forgotten).with_forgotten(&[a]))
        .unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(recorder.select_data_key(a).unwrap(), None);
    assert_eq!(recorder.select_snapshot(a, None).unwrap(), None);
    assert!(
        recorder.select_data_key(b).unwrap().is_some(),
        "only `a` goes"
    );
}

fn rotation_reads_pages_along_the_key_and_sets_by_fingerprint(backend: &Backend) {
    let recorder = &backend.recorder;
    let ids: Vec<Uuid> = (0..7).map(|_| Uuid::new_v4()).collect();
    let rows: Vec<DataKeyRow> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            key_row(
                *id,
                if i % 3 == 0 {
                    "new0000000000000"
                } else {
                    "old0000000000000"
                },
            )
        })
        .collect();
    let events: Vec<_> = ids.iter().map(|id| event(*id, 1, "T.Made")).collect();
    recorder
        .insert(&Batch::new(&events).with_data_keys(&rows))
        .unwrap();

    // Pages of two, each after the last id of the one before: every row
    // still under the old key, once.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = recorder
            .select_data_keys("new0000000000000", after, 2)
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.originator_id);
        assert!(page.len() <= 2);
        seen.extend(page);
    }
    assert!(
        seen.iter()
            .all(|row| row.key_fingerprint == "old0000000000000")
    );
    let mut expected: Vec<Uuid> = rows
        .iter()
        .filter(|row| row.key_fingerprint == "old0000000000000")
        .map(|row| row.originator_id)
        .collect();
    let mut got: Vec<Uuid> = seen.iter().map(|row| row.originator_id).collect();
    expected.sort();
    got.sort();
    assert_eq!(got, expected);

    // The compare-and-set: a row whose fingerprint moved on is left alone.
    let rewraps: Vec<Rewrap> = seen
        .iter()
        .map(|row| Rewrap {
            row: DataKeyRow {
                wrapped_key: vec![7; 60],
                key_fingerprint: "new0000000000000".to_owned(),
                ..row.clone()
            },
            expected: "old0000000000000".to_owned(),
        })
        .collect();
    assert_eq!(recorder.rewrap_data_keys(&rewraps).unwrap(), rewraps.len());
    assert_eq!(
        recorder.rewrap_data_keys(&rewraps).unwrap(),
        0,
        "done already"
    );
    assert!(
        recorder
            .select_data_keys("new0000000000000", None, 100)
            .unwrap()
            .is_empty()
    );
    let moved = recorder
        .select_data_key(seen[0].originator_id)
        .unwrap()
        .unwrap();
    assert_eq!(moved.wrapped_key, vec![7; 60]);
    assert_eq!(moved.created_at, seen[0].created_at);
}

conformance!(
    keys_are_written_with_their_batch,
    forgetting_deletes_the_key_and_snapshots_with_the_event,
    rotation_reads_pages_along_the_key_and_sets_by_fingerprint,
);
