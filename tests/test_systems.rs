//! Systems: the definition's checks, one command log run on every runner
//! ending in the same state, and the process and machine runners under
//! kill -9, counted by the orders oracle (every order reserved and paid
//! exactly once; every tracking row at its upstream's head).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventsourcing::prelude::*;
use eventsourcing::system::{
    MachineOptions, ProcessOptions, ROLE_VARIABLE, Runner, System, SystemError, SystemRunning,
};
use support::orders::{self, Orders, Payments, Reservations};
use support::pg::{self, Decision};
use support::sqlite::FileDb;

const SETTLE: Duration = Duration::from_mins(2);

fn refused(builder: eventsourcing::system::SystemBuilder) -> SystemError {
    match builder.build() {
        Err(eventsourcing::Error::System(error)) => error,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_definition_is_checked_when_built() {
    assert_eq!(refused(System::builder().app(Orders)), SystemError::NoPipes);
    assert_eq!(
        refused(
            System::builder()
                .app(Orders)
                .app(Reservations)
                .pipe::<(Orders, Payments)>()
        ),
        SystemError::Undefined {
            name: "Payments".into()
        }
    );
    assert_eq!(
        refused(
            System::builder()
                .app(Orders)
                .app(Orders)
                .pipe::<(Orders, Orders)>()
        ),
        SystemError::NameUsedTwice {
            name: "Orders".into()
        }
    );
    assert_eq!(
        refused(System::builder().app(Orders).pipe::<(Orders, Orders)>()),
        SystemError::FollowsItself {
            name: "Orders".into()
        }
    );
    // Payments handles an order event; Reservations records none.
    assert_eq!(
        refused(
            System::builder()
                .app(Reservations)
                .app(Payments)
                .pipe::<(Reservations, Payments)>()
        ),
        SystemError::NothingToFollow {
            follower: "Payments".into(),
            upstream: "Reservations".into()
        }
    );
    let zero = refused(
        System::builder()
            .app(Orders)
            .app(Reservations)
            .pipe::<(Orders, Reservations)>()
            .partitions::<Reservations>(0),
    );
    assert!(matches!(zero, SystemError::Partitions { .. }), "{zero:?}");
    let source = refused(
        System::builder()
            .app(Orders)
            .app(Reservations)
            .pipe::<(Orders, Reservations)>()
            .partitions::<Orders>(2),
    );
    assert!(
        matches!(source, SystemError::Partitions { .. }),
        "{source:?}"
    );

    let system = orders::system(3).unwrap();
    assert_eq!(system.names(), ["Orders", "Reservations", "Payments"]);
    assert_eq!(system.upstreams_of("Orders"), ["Reservations", "Payments"]);
    assert_eq!(system.partitions_of("Payments"), 3);
}

#[test]
fn the_process_runner_needs_a_shared_database() {
    let error = orders::system(1)
        .unwrap()
        .start_with(Runner::Processes(ProcessOptions::new()), |name| {
            Application::builder().name(name).build()
        })
        .unwrap_err();
    assert!(
        matches!(error, eventsourcing::Error::System(SystemError::Runner(_))),
        "{error}"
    );
}

type State = BTreeMap<String, BTreeMap<Uuid, Vec<String>>>;

/// Places orders 0..40 in three saves, waits, checks with the oracle and
/// returns the state.
fn run_the_log(mut running: SystemRunning) -> State {
    let mut ids = Vec::new();
    for chunk in [0..10, 10..25, 25..40] {
        ids.extend(orders::place(&running, chunk).unwrap());
    }
    assert!(running.wait_until_quiescent(SETTLE).unwrap());
    let report = orders::check(&running, &ids).unwrap();
    assert_eq!(report.orders, 40);
    let state = orders::state(&running).unwrap();
    running.stop().unwrap();
    state
}

fn in_memory(name: &str) -> eventsourcing::Result<Application> {
    Application::builder().name(name).build()
}

/// The child of the process runner: does nothing unless started by it.
#[test]
fn child_of_the_process_runner() {
    if std::env::var_os(ROLE_VARIABLE).is_none() {
        return;
    }
    if let Ok(log) = std::env::var("ES_SYSTEM_CRASH_LOG") {
        let pid = std::process::id();
        let point = POINTS[usize::try_from(pid).unwrap_or(0) % POINTS.len()];
        CRASH
            .set((log, point, 1 + u64::from(pid / 4 % 40)))
            .unwrap();
        eventsourcing::__private::set_crash_hook(crash_hook);
    }
    let partitions = std::env::var("ES_SYSTEM_PARTITIONS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(1);
    // Does not return in a child.
    let _ = orders::system(partitions)
        .unwrap()
        .start(Runner::Processes(ProcessOptions::new()));
    unreachable!("the process runner's child returned");
}

/// The named points a child of the crash test kills itself at.
const POINTS: [&str; 4] = [
    "after_handler",
    "after_insert",
    "before_commit",
    "after_commit",
];

/// Where this child writes the point it dies at, which point, and at
/// which time of reaching it.
static CRASH: std::sync::OnceLock<(String, &'static str, u64)> = std::sync::OnceLock::new();
static HITS: AtomicU64 = AtomicU64::new(0);

/// Notes the point in the log, then kills this process with SIGKILL.
fn crash_hook(point: &'static str) {
    let Some((log, at, nth)) = CRASH.get() else {
        return;
    };
    if point == *at && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(log)
        {
            let _ = writeln!(file, "{point}");
        }
        let _ = kill(std::process::id());
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

fn process_runner(uri: &str, partitions: u32) -> Runner {
    process_runner_with(uri, partitions, ProcessOptions::new())
}

fn process_runner_with(uri: &str, partitions: u32, options: ProcessOptions) -> Runner {
    Runner::Processes(
        options
            .args([
                "--exact",
                "child_of_the_process_runner",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("DB_URI", uri)
            .env("ES_SYSTEM_PARTITIONS", partitions.to_string()),
    )
}

fn factory(uri: String) -> impl Fn(&str) -> eventsourcing::Result<Application> + Send + Sync {
    orders::factory(uri, eventsourcing::Metadata::new())
}

#[test]
fn one_command_log_ends_in_one_state_on_every_runner() {
    let system = orders::system(1).unwrap();
    let single = run_the_log(system.start_with(Runner::SingleThread, in_memory).unwrap());
    assert_eq!(single["Orders"].len(), 40);
    assert_eq!(single["Reservations"].len(), 40);
    assert_eq!(single["Payments"].len(), 40);

    let threads = run_the_log(system.start_with(Runner::Threads, in_memory).unwrap());
    assert_eq!(threads, single, "threads");

    let partitioned = orders::system(3).unwrap();
    let threads3 = run_the_log(partitioned.start_with(Runner::Threads, in_memory).unwrap());
    assert_eq!(threads3, single, "threads, three partitions");

    // On a SQLite file, the single runner drains in one transaction.
    let file = FileDb::new();
    let single_file = run_the_log(
        system
            .start_with(Runner::SingleThread, factory(file.uri()))
            .unwrap(),
    );
    assert_eq!(single_file, single, "single thread on a SQLite file");
    let file = FileDb::new();
    let single_file3 = run_the_log(
        partitioned
            .start_with(Runner::SingleThread, factory(file.uri()))
            .unwrap(),
    );
    assert_eq!(
        single_file3, single,
        "single thread on a SQLite file, three partitions"
    );

    let db = FileDb::new();
    let processes = run_the_log(
        partitioned
            .start_with(process_runner(&db.uri(), 3), factory(db.uri()))
            .unwrap(),
    );
    assert_eq!(processes, single, "processes on a SQLite file");

    let url = pg::url();
    if let Decision::Skip(reason) = pg::decide(&url, pg::required()) {
        eprintln!("skipped the machine runner: {reason}");
        return;
    }
    let scratch = pg::Scratch::new().expect("scratch schema");
    let uri = scratch.db_uri();
    let nodes: Vec<SystemRunning> = (1..3)
        .map(|i| {
            system
                .start_with(
                    Runner::Machines(node(&format!("n{i}"))),
                    factory(uri.clone()),
                )
                .unwrap()
        })
        .collect();
    let machines = run_the_log(
        system
            .start_with(Runner::Machines(node("n0")), factory(uri.clone()))
            .unwrap(),
    );
    for node in nodes {
        node.stop().unwrap();
    }
    assert_eq!(machines, single, "machines on PostgreSQL");
}

fn node(name: &str) -> MachineOptions {
    MachineOptions::new(name)
        .lease(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(20))
}

/// Places orders until told to stop; returns the ids.
fn keep_placing(running: &SystemRunning, stop: &AtomicBool, first: u64) -> Vec<Uuid> {
    orders::keep_placing(running, stop, first, Duration::from_millis(5))
}

fn kill(pid: u32) -> bool {
    support::child::signal(pid, "-KILL")
}

/// A cheap random number (no dependency for it).
fn random(bound: usize) -> usize {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    usize::try_from(nanos).unwrap_or(0) % bound.max(1)
}

#[test]
fn the_process_runner_survives_kill_9_of_its_children() {
    kill_children(50);
}

/// The soak: `cargo test --test test_systems -- --ignored`.
#[test]
#[ignore = "a soak of 1,000 kills (minutes); run by hand"]
fn the_process_runner_survives_1000_kills() {
    kill_children(1000);
}

/// Kills random children of the process runner `kills` times while
/// orders keep coming, then checks every order with the oracle.
fn kill_children(kills: usize) {
    let db = FileDb::new();
    let system = orders::system(2).unwrap();
    let mut running = system
        .start_with(process_runner(&db.uri(), 2), factory(db.uri()))
        .unwrap();
    let stop = AtomicBool::new(false);
    let mut killed = 0;
    // A child killed but not yet reaped by the supervisor is still listed
    // (and a zombie accepts SIGKILL): each pid is killed once.
    let mut dead = std::collections::HashSet::new();
    let ids = std::thread::scope(|scope| {
        let placing = scope.spawn(|| keep_placing(&running, &stop, 0));
        while killed < kills {
            std::thread::sleep(Duration::from_millis(20 + 5 * random(20) as u64));
            let children = running.children();
            let (_, pid) = &children[random(children.len())];
            if !dead.contains(pid) && kill(*pid) {
                dead.insert(*pid);
                killed += 1;
            }
        }
        stop.store(true, Ordering::SeqCst);
        placing.join().unwrap()
    });
    assert!(running.wait_until_quiescent(SETTLE).unwrap(), "settles");
    let report = orders::check(&running, &ids).unwrap();
    let restarts = running.restarts();
    println!(
        "process runner: {killed} children killed with SIGKILL, {restarts} restarts; \
         {} orders each reserved and paid exactly once; every tracking row at its head",
        report.orders
    );
    assert!(restarts >= u64::try_from(kills).unwrap());
    running.stop().unwrap();
}

/// A node of the machine runner in a process of its own: runs until its
/// standard input closes.
#[test]
fn child_machine_node() {
    let Ok(name) = std::env::var("ES_SYSTEM_NODE") else {
        return;
    };
    let uri = std::env::var("ES_SYSTEM_URI").unwrap();
    let running = orders::system(2)
        .unwrap()
        .start_with(Runner::Machines(node(&name)), factory(uri))
        .unwrap();
    println!("node {name} up");
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    running.stop().unwrap();
}

fn spawn_node(name: &str, uri: &str, prefix: &[&OsStr]) -> Child {
    let exe = std::env::current_exe().unwrap();
    let mut command = if prefix.is_empty() {
        Command::new(exe)
    } else {
        let mut command = Command::new(prefix[0]);
        command.args(&prefix[1..]).arg(exe);
        command
    };
    command
        .args([
            "--exact",
            "child_machine_node",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("ES_SYSTEM_NODE", name)
        .env("ES_SYSTEM_URI", uri)
        .env_remove("DB_URI")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn the_machine_runner_takes_over_from_a_node_killed_with_kill_9() {
    let url = pg::url();
    if let Decision::Skip(reason) = pg::decide(&url, pg::required()) {
        eprintln!("skipped: {reason}");
        return;
    }
    let scratch = pg::Scratch::new().expect("scratch schema");
    let uri = scratch.db_uri();
    let system = orders::system(2).unwrap();
    let mut running = system
        .start_with(Runner::Machines(node("main")), factory(uri.clone()))
        .unwrap();
    let children = Arc::new(Mutex::new(vec![
        spawn_node("a", &uri, &[]),
        spawn_node("b", &uri, &[]),
    ]));
    let stop = AtomicBool::new(false);
    let killed = AtomicU64::new(0);
    let ids = std::thread::scope(|scope| {
        let placing = scope.spawn(|| keep_placing(&running, &stop, 0));
        // Let the work spread over the three nodes, then kill one, and
        // later the other, while orders keep coming.
        for victim in 0..2 {
            std::thread::sleep(Duration::from_millis(1500));
            let mut children = children.lock().unwrap();
            if kill(children[victim].id()) {
                killed.fetch_add(1, Ordering::SeqCst);
            }
            let _ = children[victim].wait();
        }
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::SeqCst);
        placing.join().unwrap()
    });
    assert_eq!(killed.load(Ordering::SeqCst), 2);
    assert!(running.wait_until_quiescent(SETTLE).unwrap(), "settles");
    let report = orders::check(&running, &ids).unwrap();
    // The survivor took every unit over.
    assert_eq!(running.held().len(), 5);
    println!(
        "machine runner: 2 of 3 nodes killed with SIGKILL; {} orders each reserved and paid \
         exactly once",
        report.orders
    );
    running.stop().unwrap();
}

#[test]
fn the_process_runner_survives_children_killed_at_named_points() {
    let crashes: usize = std::env::var("ES_SYSTEM_CRASHES")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(40);
    let db = FileDb::new();
    let log = db.path.with_extension("crashes");
    let system = orders::system(2).unwrap();
    let options = ProcessOptions::new().env("ES_SYSTEM_CRASH_LOG", &log);
    let mut running = system
        .start_with(
            process_runner_with(&db.uri(), 2, options),
            factory(db.uri()),
        )
        .unwrap();
    let stop = AtomicBool::new(false);
    let logged = || std::fs::read_to_string(&log).map_or(0, |text| text.lines().count());
    let ids = std::thread::scope(|scope| {
        let placing = scope.spawn(|| keep_placing(&running, &stop, 0));
        while logged() < crashes {
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::SeqCst);
        placing.join().unwrap()
    });
    assert!(running.wait_until_quiescent(SETTLE).unwrap(), "settles");
    let report = orders::check(&running, &ids).unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let counts: Vec<(&str, usize)> = POINTS
        .iter()
        .map(|p| (*p, text.lines().filter(|l| l == p).count()))
        .collect();
    println!(
        "process runner: {} children killed at named points {counts:?}, {} restarts; {} orders \
         each reserved and paid exactly once; every tracking row at its head",
        text.lines().count(),
        running.restarts(),
        report.orders
    );
    assert!(
        counts.iter().all(|&(_, n)| n > 0),
        "every point reached: {counts:?}"
    );
    running.stop().unwrap();
}

#[test]
fn lazy_moves_commit_with_the_next_batch() {
    use eventsourcing::follower::Follower;
    use eventsourcing::recorder::TrackingKey;
    let orders_app = Application::builder().name("Orders").build().unwrap();
    let reservations = Application::builder().name("Reservations").build().unwrap();
    let mut follower = Follower::process(Reservations, &reservations)
        .follow(&orders_app)
        .lazy_moves(true)
        .start()
        .unwrap();
    let recorded = |follower: &str| {
        reservations
            .event_store()
            .recorder()
            .select_tracking(&TrackingKey::new(follower, "Orders"))
            .unwrap()
            .map_or(0, |at| at.notification_id)
    };
    let mut order = orders::Order::create(1);
    orders_app.save(&mut order).unwrap();
    assert_eq!(follower.run_until_caught_up().unwrap().events, 1);
    assert_eq!(recorded("Reservations"), 1);
    // Events Reservations has no handler for: read past in memory only.
    order.set_reserved(Uuid::nil());
    order.set_paid(Uuid::nil());
    orders_app.save(&mut order).unwrap();
    let progress = follower.run_until_caught_up().unwrap();
    assert_eq!((progress.events, progress.batches), (0, 0));
    assert_eq!(follower.position("Orders"), Some(3));
    assert_eq!(recorded("Reservations"), 1);
    // The next batch with an event commits the move with it.
    orders_app.save(&mut orders::Order::create(2)).unwrap();
    assert_eq!(follower.run_until_caught_up().unwrap().events, 1);
    assert_eq!(recorded("Reservations"), 4);
}

#[test]
fn changing_the_partition_count_handles_nothing_twice() {
    let db = FileDb::new();
    let mut ids = Vec::new();
    let mut next = 0;
    for count in [2, 3, 1, 2] {
        let system = orders::system(count).unwrap();
        let running = system
            .start_with(Runner::Threads, factory(db.uri()))
            .unwrap();
        ids.extend(orders::place(&running, next..next + 60).unwrap());
        next += 60;
        // Stopped in the middle of the work: the partitions stand at
        // different places.
        running.stop().unwrap();
    }
    let mut running = orders::system(2)
        .unwrap()
        .start_with(Runner::Threads, factory(db.uri()))
        .unwrap();
    assert!(running.wait_until_quiescent(SETTLE).unwrap());
    let report = orders::check(&running, &ids).unwrap();
    assert_eq!(report.orders, 240);
    running.stop().unwrap();
}

#[test]
fn a_follower_stopped_right_after_it_is_spawned_stops() {
    use eventsourcing::follower::Follower;
    let orders_app = Application::builder().name("Orders").build().unwrap();
    let reservations = Application::builder().name("Reservations").build().unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for _ in 0..200 {
            let running = Follower::process(Reservations, &reservations)
                .follow(&orders_app)
                .start()
                .unwrap()
                .spawn();
            running.stop().unwrap();
        }
        done.send(()).unwrap();
    });
    // A stop asked for before the follower's thread began must not be
    // lost (it was: the thread cleared it as it started, and ran on).
    assert!(
        finished.recv_timeout(Duration::from_mins(2)).is_ok(),
        "a spawned follower did not stop"
    );
}

#[test]
fn a_machine_node_dropped_without_stop_gives_its_units_up() {
    let url = pg::url();
    if let Decision::Skip(reason) = pg::decide(&url, pg::required()) {
        eprintln!("skipped: {reason}");
        return;
    }
    let scratch = pg::Scratch::new().expect("scratch schema");
    let uri = scratch.db_uri();
    let system = orders::system(2).unwrap();
    // A lease far longer than the test: only giving it up frees a unit.
    let long = |name: &str| node(name).lease(Duration::from_mins(10));
    let first = system
        .start_with(Runner::Machines(long("first")), factory(uri.clone()))
        .unwrap();
    let deadline = std::time::Instant::now() + SETTLE;
    while first.held().len() < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first node took its units"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(first);
    let second = system
        .start_with(Runner::Machines(long("second")), factory(uri))
        .unwrap();
    while second.held().len() < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "the units were given up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    second.stop().unwrap();
}
