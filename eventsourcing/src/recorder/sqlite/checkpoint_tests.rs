//! Checkpoints off the committing thread (`checkpoint.rs`): the
//! background thread copies the log back, the committing thread bounds it,
//! 0 switches both off, and dropping the recorder lets the file go.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::INLINE_FACTOR;
use crate::mapper::StoredEvent;
use crate::recorder::sqlite::{SqliteRecorder, Store};
use crate::recorder::{Batch, Recorder, SqliteOptions};

thread_local! {
    /// Commits on this thread do not wake the background thread.
    pub(super) static NO_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Pages per event: each event's state fills about one page, so that
/// commits move the log by a known number of pages.
fn big_event(version: u64) -> StoredEvent {
    StoredEvent {
        originator_id: Uuid::new_v4(),
        originator_version: version,
        topic: "Test.Happened".to_owned(),
        state: vec![u8::try_from(version % 251).unwrap(); 3900],
    }
}

fn open(path: &Path, pages: u32) -> SqliteRecorder {
    SqliteRecorder::open(SqliteOptions::file(path).wal_autocheckpoint(pages)).unwrap()
}

/// A recorder of a new file in a directory of its own (kept while the
/// returned directory lives), checkpointing at `pages`.
fn fresh(pages: u32) -> (tempfile::TempDir, PathBuf, SqliteRecorder) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint.db");
    let recorder = open(&path, pages);
    (dir, path, recorder)
}

/// A frame of the log: its header and one page.
const FRAME: u64 = 4096 + 24;

fn wal(path: &Path) -> PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Records `count` events, one commit each.
fn record(recorder: &SqliteRecorder, count: u64) {
    for version in 1..=count {
        recorder.insert(&Batch::new(&[big_event(version)])).unwrap();
    }
}

#[test]
fn the_background_thread_copies_the_log_into_the_file() {
    let (_dir, path, recorder) = fresh(40);
    let before = len(&path);
    // A page for each row, and a few more per commit: past the threshold,
    // below the inline limit of 160 pages, so only the background thread
    // can have copied the rows' pages into the file.
    record(&recorder, 25);
    let deadline = Instant::now() + Duration::from_mins(1);
    while len(&path) < before + 20 * 4096 {
        assert!(
            Instant::now() < deadline,
            "the file did not grow: {} bytes, {} before, the log {} bytes",
            len(&path),
            before,
            len(&wal(&path))
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_committing_thread_keeps_the_log_bounded() {
    let (_dir, path, recorder) = fresh(20);
    // Many times the inline limit, with no background thread to help (as
    // when it cannot keep up): the log restarts once the committing
    // thread has copied it.
    NO_THREAD.with(|n| n.set(true));
    record(&recorder, 400);
    NO_THREAD.with(|n| n.set(false));
    let limit = u64::from(20 * INLINE_FACTOR + 20) * FRAME;
    assert!(
        len(&wal(&path)) <= limit,
        "log of {} bytes, more than {limit}",
        len(&wal(&path))
    );
    assert_eq!(recorder.max_notification_id().unwrap(), 400);
}

#[test]
fn a_growing_log_asks_the_thread_once_per_threshold_not_per_commit() {
    let (_dir, path, recorder) = fresh(40);
    // No thread to copy anything: the log grows by a few pages a commit
    // from the threshold (40) to 130 pages, short of the inline limit
    // (160), so it never starts again.
    NO_THREAD.with(|n| n.set(true));
    let mut commits = 0;
    while len(&wal(&path)) < 130 * FRAME {
        commits += 1;
        recorder.insert(&Batch::new(&[big_event(commits)])).unwrap();
    }
    NO_THREAD.with(|n| n.set(false));
    assert!(commits > 20, "{commits} commits");
    let Store::File(shared) = &recorder.connections else {
        panic!("a file recorder");
    };
    let checkpointer = shared.checkpointer.as_ref().unwrap();
    let requests = checkpointer
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    // The log passed 40, 80 and 120 pages: one request at each, where
    // asking after every commit past 40 made one per commit.
    assert_eq!(
        requests, 3,
        "requests for {commits} commits of a log grown to 130 pages"
    );
}

#[test]
fn zero_switches_automatic_checkpoints_off() {
    let (_dir, path, recorder) = fresh(0);
    record(&recorder, 200);
    // Two pages per commit, none copied back: the log holds them all.
    assert!(
        len(&wal(&path)) >= 300 * FRAME,
        "log of {} bytes",
        len(&wal(&path))
    );
}

#[test]
fn dropping_the_recorder_ends_the_thread_and_its_connection() {
    let (_dir, path, recorder) = fresh(10);
    record(&recorder, 30);
    let Store::File(shared) = &recorder.connections else {
        panic!("a file recorder");
    };
    assert!(
        shared
            .checkpointer
            .as_ref()
            .is_some_and(|c| c.thread.lock().unwrap().is_some()),
        "the thread was started"
    );
    drop(recorder);
    // The last connection to close copies the log back and deletes it:
    // the writer's and the readers' are closed first, so this is the
    // background thread's, closed before the drop returned.
    assert!(!wal(&path).exists(), "the log is still there");
    let again = open(&path, 10);
    assert_eq!(again.max_notification_id().unwrap(), 30);
}
