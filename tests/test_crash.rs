//! Crash safety: a writer process is killed with SIGKILL at random points,
//! again and again, on one SQLite file (WAL, `synchronous=NORMAL`, the
//! default). After each kill every save the writer reported as committed is
//! there in full, only whole saves exist, every hash chain verifies, and the
//! notification ids are strictly increasing.
//!
//! The writer is this test binary itself: `crash_writer_child` acts as the
//! writer when `ES_TEST_CRASH_WRITER_DB` names the database file, and
//! returns at once otherwise.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use eventsourcing::prelude::*;
use eventsourcing::{Compression, recorder::EventQuery};

/// Written with a single save: created + `STEPS` steps; some are extended
/// later by one more save of `EXTRA` steps.
#[aggregate]
#[derive(Debug, Default)]
struct Thing {
    steps: u64,
    sum: u64,
    notes: usize,
}

#[aggregate]
impl Thing {
    #[created(Made)]
    fn make(&mut self) {}

    #[event(Stepped)]
    fn step(&mut self, n: u64, note: String) {
        self.steps += 1;
        self.sum += n;
        self.notes += note.len();
    }
}

/// Written two at a time with one `save`; both share a key.
#[aggregate]
#[derive(Debug, Default)]
struct Pair {
    key: String,
    notes: u64,
}

#[aggregate]
impl Pair {
    #[created(Paired)]
    fn join(&mut self, key: String) {
        self.key = key;
    }

    #[event(Noted)]
    fn note(&mut self, n: u64) {
        self.notes += n;
    }
}

/// Steps in a new `Thing`'s save (so it has `STEPS + 1` events).
const STEPS: u64 = 4;
/// Steps in the save that extends a `Thing`.
const EXTRA: u64 = 3;
/// Notes in each `Pair` of a pair's save.
const NOTES: u64 = 4;

const WRITER_DB: &str = "ES_TEST_CRASH_WRITER_DB";

/// Base64 of 32 bytes: the records are encrypted and compressed, so that a
/// torn record would fail loudly.
const KEY: &str = "Y3Jhc2gtdGVzdC1rZXktMzItYnl0ZXMtbG9uZyEhISE=";

fn app(path: &Path) -> Application {
    Application::builder()
        .db_uri(format!("sqlite:///{}", path.display()))
        .cipher_key(KEY)
        .compression(Some(Compression::Zlib))
        .build()
        .unwrap()
}

fn random_below(n: u64) -> u64 {
    RandomState::new().hash_one(Instant::now()) % n
}

/// The writer: loops saving, and prints a line after each successful save.
///
/// - `committed <id> <version>` after a new `Thing` (version `STEPS + 1`)
///   or the save that extends one (version `STEPS + EXTRA + 1`);
/// - `pair <id> <id>` after both `Pair`s of one `save`.
#[test]
fn crash_writer_child() {
    let Some(path) = std::env::var_os(WRITER_DB) else {
        return;
    };
    let app = app(Path::new(&path));
    let mut out = std::io::stdout().lock();
    writeln!(out).unwrap();
    let mut previous: Option<Uuid> = None;
    // A bound in case nobody kills the writer.
    for i in 0..100_000_u64 {
        let mut thing = Thing::make();
        for n in 1..=STEPS {
            // Notes of up to some kilobytes, so that saves span pages.
            let note = "x".repeat(usize::try_from(random_below(4000)).unwrap());
            thing.step(n, note);
        }
        app.save(&mut thing).unwrap();
        writeln!(out, "committed {} {}", thing.id(), thing.version()).unwrap();
        out.flush().unwrap();

        if i % 4 == 3
            && let Some(id) = previous
        {
            let mut earlier: Thing = app.repository().get(id).unwrap();
            for n in 1..=EXTRA {
                earlier.step(100 + n, String::new());
            }
            app.save(&mut earlier).unwrap();
            writeln!(out, "committed {} {}", earlier.id(), earlier.version()).unwrap();
            out.flush().unwrap();
        }
        previous = Some(thing.id());

        if i % 3 == 2 {
            let key = Uuid::new_v4().to_string();
            let mut a = Pair::join(key.clone());
            let mut b = Pair::join(key);
            for n in 1..=NOTES {
                a.note(n);
                b.note(n * 2);
            }
            app.save((&mut a, &mut b)).unwrap();
            writeln!(out, "pair {} {}", a.id(), b.id()).unwrap();
            out.flush().unwrap();
        }
    }
}

/// What the writer reported as committed.
#[derive(Debug, Default)]
struct Reported {
    /// The highest version reported for each `Thing`.
    things: HashMap<Uuid, u64>,
    pairs: Vec<(Uuid, Uuid)>,
    lines: usize,
}

impl Reported {
    fn take(&mut self, line: &str) -> bool {
        if let Some(i) = line.find("committed ") {
            let mut parts = line[i + "committed ".len()..].split(' ');
            let id: Uuid = parts.next().unwrap().parse().unwrap();
            let version: u64 = parts.next().unwrap().parse().unwrap();
            let entry = self.things.entry(id).or_default();
            *entry = (*entry).max(version);
        } else if let Some(i) = line.find("pair ") {
            let mut parts = line[i + "pair ".len()..].split(' ');
            let a: Uuid = parts.next().unwrap().parse().unwrap();
            let b: Uuid = parts.next().unwrap().parse().unwrap();
            self.pairs.push((a, b));
        } else {
            return false;
        }
        self.lines += 1;
        true
    }
}

/// Kills the child if the test fails while it runs.
struct Writer(Child);

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a writer until it has reported `commits` saves, kills it with
/// SIGKILL, and collects everything it reported (lines still in the pipe
/// were also printed after their commit).
fn run_writer(path: &Path, stderr_path: &Path, commits: usize, reported: &mut Reported) {
    let stderr = std::fs::File::create(stderr_path).unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_writer_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WRITER_DB, path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut writer = Writer(child);
    let stdout = writer.0.stdout.take().unwrap();
    let (send, receive) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    let start = reported.lines;
    let stderr_text = || std::fs::read_to_string(stderr_path).unwrap_or_default();
    while reported.lines - start < commits {
        // A bound against a hung writer, not a timed assertion.
        match receive.recv_timeout(Duration::from_mins(2)) {
            Ok(line) => {
                reported.take(&line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("the writer reported nothing for 120 s:\n{}", stderr_text())
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("the writer stopped on its own:\n{}", stderr_text())
            }
        }
    }
    writer.0.kill().unwrap();
    let status = writer.0.wait().unwrap();
    assert!(!status.success(), "the writer was killed");
    reader.join().unwrap();
    for line in receive.try_iter() {
        reported.take(&line);
    }
}

/// What earlier checks established: each aggregate seen and its version.
/// The writer only ever extends aggregates it made itself, so once its
/// process is dead their rows never change.
#[derive(Debug, Default)]
struct Known {
    versions: HashMap<Uuid, u64>,
    /// Notification ids up to this one belong to checked aggregates.
    up_to: u64,
}

/// Checks the database after a kill. Aggregates with rows after
/// `known.up_to` (or all, with `full`) are loaded through the repository,
/// which checks every hash and link; the rest must be as they were.
fn verify(path: &Path, reported: &Reported, known: &mut Known, full: bool) {
    let rows = check_file(path);
    let app = app(path);
    let aggregates = scan_log(&app, rows);

    // What was there before is still there, unchanged.
    for (id, version) in &known.versions {
        let now = aggregates.get(id).map_or(0, |(_, ids)| ids.len());
        assert_eq!(
            u64::try_from(now).unwrap(),
            *version,
            "{id} changed after its writer died"
        );
    }
    let to_load: Vec<Uuid> = aggregates
        .iter()
        .filter(|(_, (_, ids))| full || ids.iter().any(|n| *n > known.up_to))
        .map(|(id, _)| *id)
        .collect();
    check_whole_saves(&app, &aggregates, &to_load);
    check_reported(reported, &aggregates);

    // The recorder's per-aggregate reads agree with the log.
    for id in to_load.iter().take(20) {
        let events = app
            .event_store()
            .recorder()
            .events(&EventQuery::new(*id))
            .unwrap();
        assert_eq!(events.len(), aggregates[id].1.len());
    }
    known.versions = aggregates
        .iter()
        .map(|(id, (_, ids))| (*id, ids.len() as u64))
        .collect();
    known.up_to = app.notification_log().max_id().unwrap();
}

/// Each aggregate's first topic and notification ids, in version order.
type Aggregates = BTreeMap<Uuid, (String, Vec<u64>)>;

/// Checks that the file is a sound WAL database; returns its event count.
fn check_file(path: &Path) -> usize {
    let conn = rusqlite::Connection::open(path).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let journal: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM stored_events", [], |r| r.get(0))
        .unwrap();
    usize::try_from(rows).unwrap()
}

/// Reads the whole notification log: ids strictly increase from 1, and
/// each aggregate's versions appear 1, 2, 3, ... in notification order.
fn scan_log(app: &Application, rows: usize) -> Aggregates {
    let log = app.notification_log();
    let notifications = log.select(1, usize::MAX, &[]).unwrap();
    assert_eq!(notifications.len(), rows);

    // Notification ids strictly increase from 1; each aggregate's versions
    // appear 1, 2, 3, ... in notification order.
    let mut previous = 0;
    let mut aggregates = Aggregates::new();
    for (i, n) in notifications.iter().enumerate() {
        if i == 0 {
            assert_eq!(n.id, 1);
        }
        assert!(n.id > previous, "notification ids not increasing");
        previous = n.id;
        let (_, ids) = aggregates
            .entry(n.originator_id)
            .or_insert_with(|| (n.topic.clone(), Vec::new()));
        ids.push(n.id);
        assert_eq!(
            u64::try_from(ids.len()).unwrap(),
            n.originator_version,
            "{}: versions out of order",
            n.originator_id
        );
    }
    assert_eq!(log.max_id().unwrap(), previous);
    aggregates
}

/// Loads the aggregates `to_load` through the repository (checking every
/// hash and link) and checks their shapes.
fn check_whole_saves(app: &Application, aggregates: &Aggregates, to_load: &[Uuid]) {
    // Only whole saves: a Thing has the events of its first save, or of
    // both saves; each save's events have consecutive notification ids (one
    // transaction of the only writer); pairs come two by two.
    let mut pairs: HashMap<String, Vec<(Uuid, Vec<u64>)>> = HashMap::new();
    for id in to_load {
        let (topic, ids) = &aggregates[id];
        let version = u64::try_from(ids.len()).unwrap();
        match topic.as_str() {
            "Thing.Made" => {
                assert!(
                    version == STEPS + 1 || version == STEPS + EXTRA + 1,
                    "Thing {id} has {version} events: a partial save"
                );
                let first = usize::try_from(STEPS + 1).unwrap();
                assert!(consecutive(&ids[..first]), "Thing {id}: {ids:?}");
                assert!(consecutive(&ids[first..]), "Thing {id}: {ids:?}");
                let thing: Thing = app.repository().get(*id).unwrap();
                assert_eq!(thing.version(), version);
                assert_eq!(thing.steps, version - 1);
                let extra_sum = if version > STEPS + 1 {
                    (1..=EXTRA).map(|n| 100 + n).sum()
                } else {
                    0
                };
                assert_eq!(thing.sum, (1..=STEPS).sum::<u64>() + extra_sum);
            }
            "Pair.Paired" => {
                assert_eq!(version, NOTES + 1, "Pair {id}: a partial save");
                let pair: Pair = app.repository().get(*id).unwrap();
                assert!(pair.notes > 0);
                pairs
                    .entry(pair.key.clone())
                    .or_default()
                    .push((*id, ids.clone()));
            }
            other => panic!("unexpected first topic {other}"),
        }
    }
    for (key, members) in &pairs {
        assert_eq!(members.len(), 2, "pair {key}: one side without the other");
        let mut ids: Vec<u64> = members.iter().flat_map(|(_, ids)| ids.clone()).collect();
        ids.sort_unstable();
        assert!(consecutive(&ids), "pair {key}: not one transaction {ids:?}");
    }
}

/// Checks that every save the writer reported is there in full.
fn check_reported(reported: &Reported, aggregates: &Aggregates) {
    // (The shapes are checked when an aggregate is first seen.)
    let version = |id: &Uuid| aggregates.get(id).map_or(0, |(_, ids)| ids.len() as u64);
    for (id, reported) in &reported.things {
        assert!(
            version(id) >= *reported,
            "Thing {id} was reported at version {reported}, is at {}",
            version(id)
        );
    }
    for (a, b) in &reported.pairs {
        for id in [a, b] {
            assert_eq!(version(id), NOTES + 1, "reported Pair {id} is missing");
        }
        assert_eq!(aggregates[a].0, "Pair.Paired");
        assert_eq!(aggregates[b].0, "Pair.Paired");
    }
}

fn consecutive(ids: &[u64]) -> bool {
    ids.windows(2).all(|w| w[1] == w[0] + 1)
}

#[test]
fn killed_writers_leave_whole_committed_saves() {
    const ROUNDS: usize = 25;
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("crash.db");
    let stderr_path = dir.path().join("writer.stderr");
    let mut reported = Reported::default();
    let mut known = Known::default();
    for _ in 0..ROUNDS {
        let commits = usize::try_from(5 + random_below(196)).unwrap();
        run_writer(&path, &stderr_path, commits, &mut reported);
        verify(&path, &reported, &mut known, false);
    }
    // Once more, loading every aggregate.
    verify(&path, &reported, &mut known, true);
    assert!(reported.lines >= ROUNDS * 5);
    assert!(!reported.pairs.is_empty());
    assert!(reported.things.values().any(|v| *v == STEPS + EXTRA + 1));
}
