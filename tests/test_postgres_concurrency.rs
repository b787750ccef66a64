//! The PostgreSQL notification log under concurrent writers: a gap held
//! open on purpose is not passed until it fills in; readers that follow the
//! log while eight threads save never skip a row, also across the permanent
//! holes that failed writes leave; and writers racing on one aggregate each
//! win a version exactly once.
//!
//! Each test works in a schema of its own; without a reachable server the
//! tests are skipped (see `pg/mod.rs`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use eventsourcing::recorder::{EventQuery, PostgresRecorder, Recorder, Sequencing};
use eventsourcing::{Error, StoredEvent, Uuid};

use support::pg::Scratch;

fn event(id: Uuid, version: u64, topic: &str) -> StoredEvent {
    let mut state = id.as_bytes().to_vec();
    state.extend_from_slice(&version.to_be_bytes());
    StoredEvent {
        originator_id: id,
        originator_version: version,
        topic: topic.to_owned(),
        state,
    }
}

/// Makes every insert of an event with the topic `Fail` fail after its
/// notification ids were drawn: a failed write that leaves a permanent
/// hole, as a dropped connection would.
fn fail_marked_events(scratch: &Scratch) {
    scratch
        .client()
        .batch_execute(
            "CREATE FUNCTION refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.topic = 'Fail' THEN
                     RAISE EXCEPTION 'refused by the test';
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_marked BEFORE INSERT ON stored_events
                 FOR EACH ROW EXECUTE FUNCTION refuse_marked();",
        )
        .unwrap();
}

/// The table's notification ids, as a program that reads it directly sees
/// them at the end, and the sequence's last value.
fn final_table(scratch: &Scratch) -> (Vec<u64>, u64) {
    let mut client = scratch.client();
    let ids = client
        .query(
            "SELECT notification_id FROM stored_events ORDER BY notification_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| u64::try_from(row.get::<_, i64>(0)).unwrap())
        .collect();
    let last: i64 = client
        .query_one(
            "SELECT last_value FROM stored_events_notification_id_seq",
            &[],
        )
        .unwrap()
        .get(0);
    (ids, u64::try_from(last).unwrap())
}

/// What one writer thread did: the ids its saves were given, and how many
/// of its saves failed.
struct Written {
    ids: Vec<u64>,
    failed: u64,
}

/// Saves `saves` times into a new aggregate: mostly one event per
/// transaction, every tenth save three, and every 37th save an event that
/// the trigger refuses (when `failing`).
fn write(recorder: &PostgresRecorder, saves: u64, failing: bool) -> Written {
    let id = Uuid::new_v4();
    let mut version = 1;
    let mut written = Written {
        ids: Vec::new(),
        failed: 0,
    };
    for save in 0..saves {
        if failing && save % 37 == 36 {
            let result = recorder.insert_events(&[event(id, version, "Fail")]);
            assert!(matches!(result, Err(Error::Database(_))), "{result:?}");
            written.failed += 1;
            continue;
        }
        let size = if save % 10 == 9 { 3 } else { 1 };
        let batch: Vec<_> = (version..version + size)
            .map(|v| event(id, v, "T"))
            .collect();
        version += size;
        let ids = recorder.insert_events(&batch).unwrap();
        assert_eq!(ids.len(), batch.len());
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
        written.ids.extend(ids);
    }
    written
}

/// How a follower decides how far to read.
#[derive(Clone, Copy)]
enum Follow {
    /// Whatever `select_notifications` returns, a page at a time.
    Pages,
    /// Up to `max_notification_id`, then on from just above it: wrong if
    /// the maximum ever named an id that readers could not yet safely read.
    UpToMax,
}

/// Follows the log until `done` is set and it has read up to `last()`,
/// returning every id it read, in order.
fn follow(
    recorder: &PostgresRecorder,
    how: Follow,
    done: &AtomicBool,
    last: &dyn Fn() -> u64,
) -> Vec<u64> {
    let mut seen: Vec<u64> = Vec::new();
    let mut position = 1;
    let mut finished_at = None;
    loop {
        let read = match how {
            Follow::Pages => recorder.select_notifications(position, 50, &[]).unwrap(),
            Follow::UpToMax => {
                let max = recorder.max_notification_id().unwrap();
                let mut rows = recorder
                    .select_notifications(position, usize::MAX, &[])
                    .unwrap();
                assert!(
                    max < position || rows.last().is_some_and(|n| n.id >= max),
                    "the maximum {max} is above what a read returns: {:?}",
                    rows.last().map(|n| n.id)
                );
                rows.retain(|n| n.id <= max);
                if max >= position {
                    position = max + 1;
                }
                rows
            }
        };
        for notification in &read {
            assert!(
                seen.last().is_none_or(|&last| notification.id > last),
                "ids went backwards: {} after {:?}",
                notification.id,
                seen.last()
            );
            seen.push(notification.id);
        }
        if let (Follow::Pages, Some(last)) = (how, read.last()) {
            position = last.id + 1;
        }
        if done.load(Ordering::SeqCst) {
            let last = last();
            if position > last {
                return seen;
            }
            // A liveness bound, not a timing check: holes must be passed
            // once no writer is left.
            let since = *finished_at.get_or_insert_with(Instant::now);
            assert!(
                since.elapsed() < Duration::from_mins(1),
                "the reader is stuck at {position}, below {last}"
            );
        }
    }
}

/// Eight writers (or `writers` as given, with their sequencing) save while
/// two followers read; both followers must end with exactly the table's
/// rows.
fn followers_never_skip(writers: &[Sequencing], saves: u64, failing: bool) {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    // Opening creates the tables; the trigger goes on them.
    let recorders: HashMap<Sequencing, Arc<PostgresRecorder>> = writers
        .iter()
        .map(|&sequencing| {
            let options = scratch.options().sequencing(sequencing).pool_size(12);
            (
                sequencing,
                Arc::new(PostgresRecorder::open(options).unwrap()),
            )
        })
        .collect();
    if failing {
        fail_marked_events(&scratch);
    }
    let reader = Arc::new(scratch.recorder());
    let done = Arc::new(AtomicBool::new(false));
    let final_max = Arc::new(std::sync::OnceLock::new());
    let start = Arc::new(Barrier::new(writers.len() + 2));

    let followers: Vec<_> = [Follow::Pages, Follow::UpToMax]
        .into_iter()
        .map(|how| {
            let (reader, done, start) =
                (Arc::clone(&reader), Arc::clone(&done), Arc::clone(&start));
            let final_max: Arc<std::sync::OnceLock<u64>> = Arc::clone(&final_max);
            thread::spawn(move || {
                start.wait();
                follow(&reader, how, &done, &|| {
                    final_max.get().copied().unwrap_or(0)
                })
            })
        })
        .collect();
    let handles: Vec<_> = writers
        .iter()
        .map(|sequencing| {
            let recorder = Arc::clone(&recorders[sequencing]);
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                write(&recorder, saves, failing)
            })
        })
        .collect();
    let written: Vec<Written> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let (table, last_drawn) = final_table(&scratch);
    final_max.set(table.last().copied().unwrap_or(0)).unwrap();
    done.store(true, Ordering::SeqCst);
    let followed: Vec<Vec<u64>> = followers.into_iter().map(|h| h.join().unwrap()).collect();

    let mut assigned: Vec<u64> = written.iter().flat_map(|w| w.ids.iter().copied()).collect();
    assigned.sort_unstable();
    assert_eq!(assigned, table, "the saves' ids are the table's ids");
    let failed: u64 = written.iter().map(|w| w.failed).sum();
    // Every failed save drew an id that no row has: permanent holes.
    assert_eq!(last_drawn - table.len() as u64, failed);
    if failing {
        assert!(failed > 0);
    }
    for (n, ids) in followed.iter().enumerate() {
        assert_eq!(
            ids.len(),
            table.len(),
            "follower {n} read {} rows of {}",
            ids.len(),
            table.len()
        );
        assert!(ids == &table, "follower {n} differs from the table");
    }
}

#[test]
fn followers_of_eight_writers_never_skip_a_row() {
    // 8 writers x 1000 saves, 27 of each writer's refused: 7784 saves,
    // 9352 events, 216 permanent holes.
    followers_never_skip(&[Sequencing::Concurrent; 8], 1000, true);
}

#[test]
fn table_lock_writers_and_concurrent_writers_share_a_table() {
    let mut writers = vec![Sequencing::Concurrent; 4];
    writers.extend([Sequencing::TableLock; 4]);
    followers_never_skip(&writers, 300, false);
}

#[test]
fn racing_on_one_aggregate_exactly_one_writer_wins_each_version() {
    const THREADS: usize = 8;
    const VERSIONS: u64 = 300;
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let recorder = Arc::new(scratch.recorder());
    let id = Uuid::new_v4();
    let start = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|n| {
            let (recorder, start) = (Arc::clone(&recorder), Arc::clone(&start));
            thread::spawn(move || {
                let topic = format!("Writer{n}");
                let (mut wins, mut conflicts) = (Vec::new(), 0_u64);
                start.wait();
                loop {
                    let query = EventQuery::new(id).descending(true).limit(1);
                    let last = recorder
                        .events(&query)
                        .unwrap()
                        .first()
                        .map_or(0, |e| e.originator_version);
                    if last >= VERSIONS {
                        return (topic, wins, conflicts);
                    }
                    match recorder.insert_events(&[event(id, last + 1, &topic)]) {
                        Ok(ids) => wins.push((last + 1, ids[0])),
                        Err(Error::Concurrency { id: got, version }) => {
                            assert_eq!((got, version), (id, last + 1));
                            conflicts += 1;
                        }
                        Err(other) => panic!("unexpected error: {other}"),
                    }
                }
            })
        })
        .collect();
    let mut winner_of = BTreeMap::new();
    let mut conflicts = 0;
    for handle in handles {
        let (topic, wins, lost) = handle.join().unwrap();
        conflicts += lost;
        for (version, notification_id) in wins {
            let previous = winner_of.insert(version, (topic.clone(), notification_id));
            assert!(previous.is_none(), "two writers won version {version}");
        }
    }
    assert_eq!(
        winner_of.keys().copied().collect::<Vec<_>>(),
        (1..=VERSIONS).collect::<Vec<_>>()
    );
    // What is stored is what each winner wrote.
    let stored = recorder.events(&EventQuery::new(id)).unwrap();
    assert_eq!(stored.len() as u64, VERSIONS);
    for event in &stored {
        assert_eq!(event.topic, winner_of[&event.originator_version].0);
    }
    // A lost race draws no notification id: the log has no holes.
    let log = recorder.select_notifications(1, usize::MAX, &[]).unwrap();
    let ids: Vec<u64> = log.iter().map(|n| n.id).collect();
    assert_eq!(ids, (1..=VERSIONS).collect::<Vec<_>>());
    for notification in &log {
        assert_eq!(
            winner_of[&notification.originator_version].1,
            notification.id
        );
    }
    let (_, last_drawn) = final_table(&scratch);
    assert_eq!(last_drawn, VERSIONS, "{conflicts} conflicts drew ids");
}

#[test]
fn a_gap_that_fills_in_later_is_never_skipped() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let recorder = Arc::new(scratch.recorder());
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());

    // An uncommitted row with the key (a, 1), written around the recorder:
    // a save of (a, 1) passes its conflict check (the row is invisible),
    // draws id 1, then waits at the unique index for this transaction.
    let mut holder = scratch.client();
    holder
        .batch_execute(&format!(
            "BEGIN; INSERT INTO stored_events VALUES \
             (1000000, '{a}', 1, 'Held', '\\x00', pg_current_xact_id())"
        ))
        .unwrap();
    let held = {
        let recorder = Arc::clone(&recorder);
        thread::spawn(move || recorder.insert_events(&[event(a, 1, "T")]))
    };
    let mut admin = scratch.client();
    let drawn = || -> i64 {
        scratch
            .client()
            .query_one(
                "SELECT last_value FROM stored_events_notification_id_seq",
                &[],
            )
            .unwrap()
            .get(0)
    };
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
    assert_eq!(drawn(), 1);

    // A later save commits id 2 while id 1 is still being written.
    assert_eq!(recorder.insert_events(&[event(b, 1, "T")]).unwrap(), [2]);
    // Readers see row 2 but do not pass id 1, and the maximum agrees.
    assert!(
        recorder
            .select_notifications(1, 10, &[])
            .unwrap()
            .is_empty()
    );
    assert_eq!(recorder.max_notification_id().unwrap(), 0);
    let visible: i64 = admin
        .query_one("SELECT count(*) FROM stored_events", &[])
        .unwrap()
        .get(0);
    assert_eq!(visible, 1, "row 2 is visible to a plain query");

    // Once the held save commits, both are read, in order.
    holder.batch_execute("ROLLBACK").unwrap();
    assert_eq!(held.join().unwrap().unwrap(), [1]);
    let ids: Vec<u64> = recorder
        .select_notifications(1, 10, &[])
        .unwrap()
        .iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(ids, [1, 2]);
    assert_eq!(recorder.max_notification_id().unwrap(), 2);
}
