//! Exactly once under SIGKILL: a follower in a child process is killed
//! again and again, at random moments and at named points of its commit
//! path, while its upstream grows; after each round it is started again.
//! When everything is quiet, a counting oracle holds: every upstream event
//! the policy handles has exactly one effect (none twice, none missing),
//! and the follower's position is the upstream's head.
//!
//! The child is this test binary itself: `follower_child` runs a follower
//! when `ES_EO_CHILD` is set, and returns at once otherwise. CI runs 100
//! kills per backend; `--ignored` runs the longer soak.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use eventsourcing::follower::{Envelope, Follower, HandleError, Policy, Processing};
use eventsourcing::postgres;
use eventsourcing::prelude::*;
use eventsourcing::recorder::{PostgresRecorder, SqliteRecorder, TrackingKey};
use eventsourcing::rusqlite;
use support::account::{Account, AccountEvent};

/// The effect of one upstream event: an aggregate that names it.
#[aggregate]
#[derive(Debug, Default)]
struct Effect {
    upstream_id: u64,
}

#[aggregate]
impl Effect {
    #[created(Made)]
    fn make(&mut self, upstream_id: u64) {
        self.upstream_id = upstream_id;
    }
}

/// Makes one `Effect` per deposit; ignores openings (their topic is not
/// read at all).
struct Effects;

impl Policy<Processing> for Effects {
    const NAME: &'static str = "Effects";

    fn topics() -> Option<Vec<&'static str>> {
        eventsourcing::follower::variant_topics::<AccountEvent>("Deposited")
    }

    fn handle(&mut self, cx: &mut Processing, envelope: &Envelope) -> Result<bool, HandleError> {
        let Some(AccountEvent::Deposited { .. }) = envelope.decode::<AccountEvent>()? else {
            return Ok(false);
        };
        cx.collect(Effect::make(envelope.notification_id()))
            .map_err(|error| HandleError::Handler(error.into()))?;
        Ok(true)
    }
}

/// One row per deposit in a SQLite table (no key: a second row for one
/// deposit would show).
struct SqliteRows;

#[policy(name = "Effects")]
impl SqliteRows {
    #[setup]
    fn create(&self, tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch("CREATE TABLE IF NOT EXISTS effect_rows (upstream_id INTEGER NOT NULL)")
    }

    #[on(AccountEvent::Deposited)]
    fn deposited(
        &self,
        tx: &rusqlite::Transaction<'_>,
        envelope: &Envelope,
    ) -> rusqlite::Result<()> {
        let id = i64::try_from(envelope.notification_id()).unwrap();
        tx.execute("INSERT INTO effect_rows (upstream_id) VALUES (?1)", [id])?;
        Ok(())
    }
}

/// The same on PostgreSQL.
struct PostgresRows;

#[policy(name = "Effects")]
impl PostgresRows {
    #[setup]
    fn create(&self, tx: &mut postgres::Transaction<'_>) -> Result<(), postgres::Error> {
        tx.batch_execute("CREATE TABLE IF NOT EXISTS effect_rows (upstream_id BIGINT NOT NULL)")
    }

    #[on(AccountEvent::Deposited)]
    fn deposited(
        &self,
        tx: &mut postgres::Transaction<'_>,
        envelope: &Envelope,
    ) -> Result<(), postgres::Error> {
        let id = i64::try_from(envelope.notification_id()).unwrap();
        tx.execute("INSERT INTO effect_rows (upstream_id) VALUES ($1)", &[&id])?;
        Ok(())
    }
}

/// What the follower makes of each deposit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A process application: an `Effect` aggregate.
    Process,
    /// A projection: a row in a table of the downstream database.
    Projection,
}

const KIND: &str = "ES_EO_KIND";
const CHILD: &str = "ES_EO_CHILD";
const UP: &str = "ES_EO_UP";
const DOWN: &str = "ES_EO_DOWN";
const KILL_AT: &str = "ES_EO_KILL_AT";
const KILL_AFTER: &str = "ES_EO_KILL_AFTER";

/// The named points of the commit path.
const POINTS: [&str; 4] = [
    "after_handler",
    "after_insert",
    "before_commit",
    "after_commit",
];

fn random_below(n: u64) -> u64 {
    RandomState::new().hash_one(Instant::now()) % n.max(1)
}

/// The upstream and downstream applications of a database URI each:
/// one SQLite file with two table prefixes, or one PostgreSQL schema.
fn apps(up: &str, down: &str) -> (Application, Application) {
    let bank = Application::builder()
        .name("Bank")
        .db_uri(up)
        .table_prefix("bank_")
        .build()
        .unwrap();
    let effects = Application::builder()
        .name("EffectsApp")
        .db_uri(down)
        .table_prefix("effects_")
        .build()
        .unwrap();
    (bank, effects)
}

static KILL: OnceLock<(String, u32)> = OnceLock::new();
static HITS: AtomicU32 = AtomicU32::new(0);

/// Kills this process with SIGKILL at the chosen point's nth hit.
fn crash_hook(point: &'static str) {
    let Some((at, nth)) = KILL.get() else { return };
    if point == at && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
        let _ = Command::new("kill")
            .args(["-KILL", &std::process::id().to_string()])
            .status();
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// The follower process: catches up, in small batches, and exits.
#[test]
fn follower_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let up = std::env::var(UP).unwrap();
    let down = std::env::var(DOWN).unwrap();
    if let (Ok(at), Ok(nth)) = (std::env::var(KILL_AT), std::env::var(KILL_AFTER)) {
        KILL.set((at, nth.parse().unwrap())).unwrap();
        eventsourcing::__private::set_crash_hook(crash_hook);
    }
    let (bank, effects) = apps(&up, &down);
    let batch = 1 + usize::try_from(random_below(16)).unwrap();
    let store = effects.event_store();
    match (
        std::env::var(KIND).as_deref(),
        store.recorder_as::<SqliteRecorder>(),
    ) {
        (Ok("projection"), Some(sqlite)) => {
            let mut follower = Follower::sqlite(SqliteRows, sqlite)
                .follow(&bank)
                .batch_size(batch)
                .start()
                .unwrap();
            follower.run_until_caught_up().unwrap();
        }
        (Ok("projection"), None) => {
            let pg = store.recorder_as::<PostgresRecorder>().unwrap();
            let mut follower = Follower::postgres(PostgresRows, pg)
                .follow(&bank)
                .batch_size(batch)
                .start()
                .unwrap();
            follower.run_until_caught_up().unwrap();
        }
        _ => {
            let mut follower = Follower::process(Effects, &effects)
                .follow(&bank)
                .batch_size(batch)
                .start()
                .unwrap();
            follower.run_until_caught_up().unwrap();
        }
    }
}

/// Deposits `n` times into a few accounts, in saves of up to five.
fn write_upstream(bank: &Application, accounts: &mut Vec<Account>, n: usize) {
    if accounts.is_empty() {
        for i in 0..4 {
            let mut account = Account::open(format!("owner {i}"));
            bank.save(&mut account).unwrap();
            accounts.push(account);
        }
    }
    let mut left = n;
    while left > 0 {
        let index = usize::try_from(random_below(accounts.len() as u64)).unwrap();
        let account = &mut accounts[index];
        let count = left.min(1 + usize::try_from(random_below(5)).unwrap());
        for _ in 0..count {
            account.deposit(1, "n".into());
        }
        bank.save(account).unwrap();
        left -= count;
    }
}

/// How one child ended.
enum End {
    Killed,
    Finished,
}

fn run_child(
    up: &str,
    down: &str,
    kind: Kind,
    kill: Option<(&str, u32)>,
    delay: Option<Duration>,
) -> End {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "follower_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env(UP, up)
        .env(DOWN, down)
        .env(
            KIND,
            if kind == Kind::Process {
                "process"
            } else {
                "projection"
            },
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some((point, nth)) = kill {
        command.env(KILL_AT, point).env(KILL_AFTER, nth.to_string());
    }
    let mut child = command.spawn().unwrap();
    if let Some(delay) = delay {
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL; it may have finished already
    }
    let output = child.wait_with_output().unwrap();
    if output.status.success() {
        return End::Finished;
    }
    assert_eq!(
        output.status.signal(),
        Some(9),
        "the follower failed instead of being killed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    End::Killed
}

/// Where a follower's effects are: the events of a process
/// application, or rows that `read` reads.
enum Made<'a> {
    Events,
    Rows(&'a dyn Fn() -> Vec<u64>),
}

/// The upstream notification id each effect names, one per effect.
fn effects_of(effects: &Application, made: &Made<'_>) -> Vec<u64> {
    match made {
        Made::Rows(read) => read(),
        Made::Events => {
            let log = effects.notification_log();
            log.reader()
                .read()
                .unwrap()
                .into_iter()
                .map(|n| {
                    let EffectEvent::Made { upstream_id } = log
                        .decode(n)
                        .unwrap()
                        .decode::<EffectEvent>()
                        .unwrap()
                        .event;
                    upstream_id
                })
                .collect()
        }
    }
}

/// Kills followers `kills` times (alternating random moments and named
/// points), with the upstream growing between rounds, then lets one
/// finish and checks the oracle.
fn killed_followers_leave_exactly_one_effect(
    up: &str,
    down: &str,
    kind: Kind,
    made: &Made<'_>,
    kills: usize,
    points: &[&str],
) {
    let (bank, effects) = apps(up, down);
    let mut accounts = Vec::new();
    write_upstream(&bank, &mut accounts, 200);
    let mut killed = 0;
    let mut by_point = BTreeMap::<&str, usize>::new();
    let mut rounds = 0;
    while killed < kills {
        rounds += 1;
        assert!(
            rounds < kills * 20,
            "only {killed} kills in {rounds} rounds"
        );
        write_upstream(&bank, &mut accounts, 20);
        let end = if rounds % 2 == 0 {
            // Each point in turn, so that every one is reached.
            let point = points[(rounds / 2) % points.len()];
            let nth = 1 + u32::try_from(random_below(3)).unwrap();
            let end = run_child(up, down, kind, Some((point, nth)), None);
            if matches!(end, End::Killed) {
                *by_point.entry(point).or_default() += 1;
            }
            end
        } else {
            let delay = Duration::from_millis(5 + random_below(60));
            run_child(up, down, kind, None, Some(delay))
        };
        if matches!(end, End::Killed) {
            killed += 1;
        }
    }
    // Quiet now: one last follower runs to the end.
    assert!(matches!(
        run_child(up, down, kind, None, None),
        End::Finished
    ));
    eprintln!("{killed} kills in {rounds} rounds; at named points: {by_point:?}");

    // The oracle.
    let mut wanted = Vec::new();
    for notification in bank.notification_log().reader().read().unwrap() {
        let id = notification.id;
        let event = bank.notification_log().decode(notification).unwrap();
        if let AccountEvent::Deposited { .. } = event.decode::<AccountEvent>().unwrap().event {
            wanted.push(id);
        }
    }
    let mut seen = BTreeMap::<u64, usize>::new();
    for upstream_id in effects_of(&effects, made) {
        *seen.entry(upstream_id).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "effects recorded twice: {twice:?}");
    let missing: Vec<_> = wanted.iter().filter(|id| !seen.contains_key(id)).collect();
    assert!(missing.is_empty(), "effects missing: {missing:?}");
    assert_eq!(seen.len(), wanted.len(), "effects of events not handled");
    let head = bank.notification_log().max_id().unwrap();
    let position = effects
        .event_store()
        .recorder()
        .select_tracking(&TrackingKey::new("Effects", "Bank"))
        .unwrap()
        .unwrap();
    assert_eq!(position.notification_id, head);
    eprintln!(
        "{} upstream events, {} effects, position {head}",
        wanted.len(),
        seen.len()
    );
    for point in points {
        assert!(
            by_point.contains_key(point),
            "never killed at {point}: {by_point:?}"
        );
    }
}

const WRITER: &str = "ES_EO_WRITER";
const FOLLOWER: &str = "ES_EO_FOLLOWER";
/// Deposits the writer process makes.
const WRITTEN: u64 = 600;

/// The writer process: opens four accounts, then deposits `WRITTEN`
/// times, in saves of one to five, pausing now and then.
#[test]
fn writer_child() {
    if std::env::var_os(WRITER).is_none() {
        return;
    }
    let (bank, _) = apps(&std::env::var(UP).unwrap(), &std::env::var(DOWN).unwrap());
    let mut accounts = Vec::new();
    let mut written = 0;
    write_upstream(&bank, &mut accounts, 0);
    while written < WRITTEN {
        let n = (1 + random_below(5)).min(WRITTEN - written);
        write_upstream(&bank, &mut accounts, usize::try_from(n).unwrap());
        written += n;
        if random_below(4) == 0 {
            std::thread::sleep(Duration::from_millis(random_below(5)));
        }
    }
}

/// The follower process: runs until it has handled the writer's last
/// event, woken by polling (SQLite) or notifications (PostgreSQL).
#[test]
fn running_follower_child() {
    if std::env::var_os(FOLLOWER).is_none() {
        return;
    }
    let (bank, effects) = apps(&std::env::var(UP).unwrap(), &std::env::var(DOWN).unwrap());
    let running = Follower::process(Effects, &effects)
        .follow(&bank)
        .poll_interval(Duration::from_millis(1), Duration::from_millis(50))
        .start()
        .unwrap()
        .spawn();
    let last = 4 + WRITTEN;
    assert!(
        running
            .wait_for("Bank", last, Duration::from_mins(2))
            .unwrap()
    );
    running.stop().unwrap();
}

fn spawn_child(role: &str, up: &str, down: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", role, "--nocapture", "--test-threads=1"])
        .env(
            if role == "writer_child" {
                WRITER
            } else {
                FOLLOWER
            },
            "1",
        )
        .env(UP, up)
        .env(DOWN, down)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A writer process and a follower process at once: the follower sees
/// every event once, in order.
fn follower_in_another_process_sees_every_event_once_in_order(up: &str, down: &str) {
    let follower = spawn_child("running_follower_child", up, down);
    let writer = spawn_child("writer_child", up, down);
    for (name, child) in [("writer", writer), ("follower", follower)] {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "the {name} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let (bank, effects) = apps(up, down);
    let wanted: Vec<u64> = bank
        .notification_log()
        .reader()
        .read()
        .unwrap()
        .into_iter()
        .filter(|n| n.topic == "Account.Deposited")
        .map(|n| n.id)
        .collect();
    assert_eq!(wanted.len(), usize::try_from(WRITTEN).unwrap());
    let log = effects.notification_log();
    let made: Vec<u64> = log
        .reader()
        .read()
        .unwrap()
        .into_iter()
        .map(|n| {
            let EffectEvent::Made { upstream_id } = log
                .decode(n)
                .unwrap()
                .decode::<EffectEvent>()
                .unwrap()
                .event;
            upstream_id
        })
        .collect();
    assert_eq!(made, wanted, "not every event once, in order");
}

#[test]
fn follower_and_writer_in_two_processes_on_sqlite() {
    let db = support::sqlite::FileDb::new();
    follower_in_another_process_sees_every_event_once_in_order(&db.uri(), &db.uri());
}

#[test]
fn follower_and_writer_in_two_processes_on_postgres() {
    let Some(scratch) = support::pg::Scratch::new() else {
        return;
    };
    follower_in_another_process_sees_every_event_once_in_order(
        &scratch.db_uri(),
        &scratch.db_uri(),
    );
}

/// The points a SQLite follower passes, and those a PostgreSQL process
/// application passes (its batch is one statement that commits alone).
const POSTGRES_PROCESS_POINTS: [&str; 2] = ["after_handler", "after_commit"];

/// The upstream ids of the rows in `effect_rows` of a SQLite file.
fn sqlite_rows(path: &std::path::Path) -> Vec<u64> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut select = conn.prepare("SELECT upstream_id FROM effect_rows").unwrap();
    select
        .query_map([], |row| row.get::<_, i64>(0))
        .unwrap()
        .map(|id| u64::try_from(id.unwrap()).unwrap())
        .collect()
}

#[test]
fn exactly_once_of_a_process_application_on_sqlite_under_kill() {
    let db = support::sqlite::FileDb::new();
    let uri = db.uri();
    killed_followers_leave_exactly_one_effect(
        &uri,
        &uri,
        Kind::Process,
        &Made::Events,
        100,
        &POINTS,
    );
}

#[test]
fn exactly_once_of_a_projection_on_sqlite_under_kill() {
    let db = support::sqlite::FileDb::new();
    let uri = db.uri();
    let rows = || sqlite_rows(&db.path);
    killed_followers_leave_exactly_one_effect(
        &uri,
        &uri,
        Kind::Projection,
        &Made::Rows(&rows),
        100,
        &POINTS,
    );
}

#[test]
fn exactly_once_of_a_process_application_on_postgres_under_kill() {
    let Some(scratch) = support::pg::Scratch::new() else {
        return;
    };
    let uri = scratch.db_uri();
    killed_followers_leave_exactly_one_effect(
        &uri,
        &uri,
        Kind::Process,
        &Made::Events,
        100,
        &POSTGRES_PROCESS_POINTS,
    );
}

/// The upstream ids of the rows in `effect_rows` of a PostgreSQL schema.
fn postgres_rows(scratch: &support::pg::Scratch) -> Vec<u64> {
    scratch
        .client()
        .query("SELECT upstream_id FROM effect_rows", &[])
        .unwrap()
        .iter()
        .map(|row| u64::try_from(row.get::<_, i64>(0)).unwrap())
        .collect()
}

#[test]
fn exactly_once_of_a_projection_on_postgres_under_kill() {
    let Some(scratch) = support::pg::Scratch::new() else {
        return;
    };
    let uri = scratch.db_uri();
    let rows = || postgres_rows(&scratch);
    killed_followers_leave_exactly_one_effect(
        &uri,
        &uri,
        Kind::Projection,
        &Made::Rows(&rows),
        100,
        &POINTS,
    );
}

#[test]
#[ignore = "a soak of 1,000 kills per backend and kind; run by hand"]
fn exactly_once_soak() {
    let db = support::sqlite::FileDb::new();
    let uri = db.uri();
    killed_followers_leave_exactly_one_effect(
        &uri,
        &uri,
        Kind::Process,
        &Made::Events,
        1000,
        &POINTS,
    );
    let db = support::sqlite::FileDb::new();
    let uri = db.uri();
    let rows = || sqlite_rows(&db.path);
    killed_followers_leave_exactly_one_effect(
        &uri,
        &uri,
        Kind::Projection,
        &Made::Rows(&rows),
        1000,
        &POINTS,
    );
    if let Some(scratch) = support::pg::Scratch::new() {
        let uri = scratch.db_uri();
        killed_followers_leave_exactly_one_effect(
            &uri,
            &uri,
            Kind::Process,
            &Made::Events,
            1000,
            &POSTGRES_PROCESS_POINTS,
        );
    }
    if let Some(scratch) = support::pg::Scratch::new() {
        let uri = scratch.db_uri();
        let rows = || postgres_rows(&scratch);
        killed_followers_leave_exactly_one_effect(
            &uri,
            &uri,
            Kind::Projection,
            &Made::Rows(&rows),
            1000,
            &POINTS,
        );
    }
}
