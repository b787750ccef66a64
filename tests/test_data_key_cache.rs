//! The data key cache: loads and saves of an aggregate with a data key of
//! its own read and unwrap its key once, not once per record or per load;
//! the cache is bounded; and a recorder without an `aggregate_keys` table
//! refuses such an aggregate with a typed error.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use eventsourcing::prelude::*;
use eventsourcing::recorder::{
    Batch, DataKeyRow, EventQuery, MemoryRecorder, Notification, Parked, Position, Recorder,
    Registration, Rewrap, TrackingKey,
};
use eventsourcing::{Cipher, StoredEvent, StoredRow};

#[aggregate(key = per_aggregate)]
#[derive(Debug, Default)]
struct Diary {
    entries: u32,
}

#[aggregate]
impl Diary {
    #[created(Started)]
    fn start(&mut self) {}

    #[event(Written)]
    fn write(&mut self, text: String) {
        let _ = text;
        self.entries += 1;
    }
}

/// A memory recorder that counts the reads of `aggregate_keys`, and can
/// pretend to have no such table.
#[derive(Default)]
struct Counting {
    inner: MemoryRecorder,
    key_reads: AtomicUsize,
    without_keys: bool,
}

impl Recorder for Counting {
    fn insert(&self, batch: &Batch<'_>) -> Result<Vec<u64>> {
        if self.without_keys && !batch.data_keys.is_empty() {
            return Err(Error::Database("no aggregate_keys here".into()));
        }
        self.inner.insert(batch)
    }

    fn select_events(
        &self,
        query: &EventQuery,
        each: &mut dyn FnMut(StoredRow<'_>) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        self.inner.select_events(query, each)
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

    fn select_notification_of(&self, id: Uuid, version: u64) -> Result<Option<Notification>> {
        self.inner.select_notification_of(id, version)
    }

    fn insert_snapshot(&self, snapshot: &StoredEvent) -> Result<bool> {
        self.inner.insert_snapshot(snapshot)
    }

    fn select_snapshot(&self, id: Uuid, to_version: Option<u64>) -> Result<Option<StoredEvent>> {
        self.inner.select_snapshot(id, to_version)
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

    fn select_data_key(&self, id: Uuid) -> Result<Option<DataKeyRow>> {
        if self.without_keys {
            return Recorder::select_data_key(&MissingTable, id);
        }
        self.key_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.select_data_key(id)
    }

    fn select_data_keys(
        &self,
        except: &str,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<DataKeyRow>> {
        self.inner.select_data_keys(except, after, limit)
    }

    fn rewrap_data_keys(&self, rewraps: &[Rewrap]) -> Result<usize> {
        self.inner.rewrap_data_keys(rewraps)
    }
}

/// A recorder that keeps only what the trait requires: its data key
/// methods are the trait's defaults.
#[derive(Default)]
struct MissingTable;

impl Recorder for MissingTable {
    fn insert(&self, _: &Batch<'_>) -> Result<Vec<u64>> {
        Ok(Vec::new())
    }
    fn select_events(
        &self,
        _: &EventQuery,
        _: &mut dyn FnMut(StoredRow<'_>) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        Ok(())
    }
    fn select_notifications(&self, _: u64, _: usize, _: &[&str]) -> Result<Vec<Notification>> {
        Ok(Vec::new())
    }
    fn max_notification_id(&self) -> Result<u64> {
        Ok(0)
    }
    fn select_notification_of(&self, _: Uuid, _: u64) -> Result<Option<Notification>> {
        Ok(None)
    }
    fn insert_snapshot(&self, _: &StoredEvent) -> Result<bool> {
        Ok(false)
    }
    fn select_snapshot(&self, _: Uuid, _: Option<u64>) -> Result<Option<StoredEvent>> {
        Ok(None)
    }
    fn select_tracking(&self, _: &TrackingKey) -> Result<Option<Position>> {
        Ok(None)
    }
    fn raise_epoch(&self, _: &TrackingKey) -> Result<Position> {
        Ok(Position::default())
    }
    fn register_follower(&self, registration: &Registration) -> Result<Registration> {
        Ok(registration.clone())
    }
    fn update_follower(&self, _: &Registration) -> Result<()> {
        Ok(())
    }
    fn select_parked(&self, _: &str) -> Result<Vec<Parked>> {
        Ok(Vec::new())
    }
}

fn app(recorder: &Arc<Counting>, cache: usize) -> Application {
    Application::builder()
        .recorder(Arc::clone(recorder) as Arc<dyn Recorder>)
        .cipher(Cipher::new([4; 32]))
        .data_key_cache(cache)
        .build()
        .unwrap()
}

fn diary(app: &Application, entries: u32) -> Diary {
    let mut diary = Diary::start();
    for n in 0..entries {
        diary.write(format!("entry {n}"));
    }
    app.save(&mut diary).unwrap();
    diary
}

#[test]
fn a_key_is_read_once_then_served_from_the_cache() {
    let recorder = Arc::new(Counting::default());
    let writer = app(&recorder, 10);
    let mut diary = diary(&writer, 20);
    // Created here: cached once committed, never read back.
    for _ in 0..5 {
        let loaded: Diary = writer.repository().get(diary.id()).unwrap();
        assert_eq!(loaded.entries, diary.entries);
        diary.write("more".into());
        writer.save(&mut diary).unwrap();
    }
    assert_eq!(recorder.key_reads.load(Ordering::SeqCst), 0);

    // Another application (another process, say): one read, for 21
    // records and five loads.
    let reader = app(&recorder, 10);
    for _ in 0..5 {
        let loaded: Diary = reader.repository().get(diary.id()).unwrap();
        assert_eq!(loaded.entries, 25);
    }
    assert_eq!(recorder.key_reads.load(Ordering::SeqCst), 1);

    // Without a cache, once per load (still not once per record).
    let uncached = app(&recorder, 0);
    for _ in 0..3 {
        let _: Diary = uncached.repository().get(diary.id()).unwrap();
    }
    assert_eq!(recorder.key_reads.load(Ordering::SeqCst), 4);
}

#[test]
fn the_cache_is_bounded() {
    let recorder = Arc::new(Counting::default());
    let writer = app(&recorder, 4);
    let diaries: Vec<Diary> = (0..10).map(|_| diary(&writer, 1)).collect();
    let reader = app(&recorder, 4);
    for diary in &diaries {
        let _: Diary = reader.repository().get(diary.id()).unwrap();
    }
    assert_eq!(recorder.key_reads.load(Ordering::SeqCst), 10);
    // The first ones were pushed out by the later ones: read again.
    let _: Diary = reader.repository().get(diaries[0].id()).unwrap();
    assert_eq!(recorder.key_reads.load(Ordering::SeqCst), 11);
    // The last one is still there.
    let _: Diary = reader.repository().get(diaries[9].id()).unwrap();
    assert_eq!(recorder.key_reads.load(Ordering::SeqCst), 11);
}

#[test]
fn a_recorder_without_the_table_refuses_data_keys() {
    let recorder = Arc::new(Counting {
        without_keys: true,
        ..Counting::default()
    });
    let app = app(&recorder, 10);
    let mut diary = Diary::start();
    let error = app.save(&mut diary).unwrap_err();
    assert!(matches!(error, Error::Database(_)), "{error:?}");
    let error = Recorder::select_data_key(&MissingTable, Uuid::nil()).unwrap_err();
    assert!(error.to_string().contains("aggregate_keys"), "{error}");
}
