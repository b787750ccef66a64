//! Followers of a notification log read over HTTP
//! (`FollowerBuilder::follow_remote`): a process application following an
//! encrypted upstream through a server that holds no key ends exactly as
//! one following the log locally; a follower rides out the server
//! restarting mid-read, or gives up and resumes from its own position,
//! without skipping or repeating an event; a follower reaches a server in
//! another network namespace. The oracle is `support::ledger`: each
//! account's tally lists the upstream notifications handled for it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use eventsourcing::follower::{Envelope, Follower};
use eventsourcing::http::{NotificationServer, RemoteRecorder, RunningServer};
use eventsourcing::policy;
use eventsourcing::{Application, ApplicationBuilder, Cipher, Error, Mapper, Uuid};
use support::account::AccountEvent;
use support::ledger::{Ledger, Tally, fill, tallies};
use support::netns::Node;
use support::pg::Scratch;
use support::sqlite::FileDb;

/// The upstream's name, as both followers call it.
const UPSTREAM: &str = "Accounts";

/// A store that outlives the applications opened on it.
enum Store {
    Sqlite(FileDb),
    Postgres(Scratch),
}

impl Store {
    fn sqlite() -> Store {
        Store::Sqlite(FileDb::new())
    }

    fn builder(&self) -> ApplicationBuilder {
        match self {
            Store::Sqlite(file) => file.builder(),
            Store::Postgres(scratch) => scratch.builder(),
        }
    }
}

/// The key upstream and downstream share (the server does not have it).
fn key() -> Cipher {
    Cipher::new([42; 32])
}

/// Runs `test` with stores of one kind: SQLite files, then PostgreSQL
/// schemas when the PostgreSQL tests run.
fn each_kind(test: impl Fn(&str, &dyn Fn() -> Store)) {
    test("sqlite", &Store::sqlite);
    if support::pg::server().is_some() {
        test("postgres", &|| {
            Store::Postgres(Scratch::new().expect("PostgreSQL runs"))
        });
    }
}

/// Checks the tallies against the upstream's notification ids: every
/// event handled once, in order, none skipped.
fn assert_seen(what: &str, ids: &BTreeMap<Uuid, Vec<u64>>, tallies: &BTreeMap<Uuid, Tally>) {
    assert_eq!(tallies.len(), ids.len(), "{what}");
    for (account, tally) in tallies {
        assert_eq!(&tally.seen, &ids[account], "{what}: account {account}");
    }
}

/// What two tallies are compared by: their state, not their hashes
/// (which cover the times they were recorded).
fn states(tallies: &BTreeMap<Uuid, Tally>) -> Vec<(Uuid, i64, Vec<u64>)> {
    tallies
        .values()
        .map(|t| (t.account, t.total, t.seen.clone()))
        .collect()
}

/// What a downstream application recorded, in order, without the
/// timestamps: (originator, version, topic).
fn recorded(app: &Application) -> Vec<(Uuid, u64, String)> {
    app.notification_log()
        .select(1, 100_000, &[])
        .expect("downstream rows")
        .into_iter()
        .map(|n| (n.originator_id, n.originator_version, n.topic))
        .collect()
}

#[test]
fn a_remote_follower_ends_as_a_local_one_through_a_server_without_the_key() {
    each_kind(|kind, store| {
        let upstream_store = store();
        let upstream = upstream_store
            .builder()
            .name(UPSTREAM)
            .cipher(key())
            .build()
            .expect("upstream");
        let mut ids = fill(&upstream, 4, 6);
        let relay = upstream_store
            .builder()
            .name(UPSTREAM)
            .build()
            .expect("keyless");
        let server = NotificationServer::new(&relay)
            .token("t0ken")
            .max_limit(7)
            .bind("127.0.0.1:0")
            .expect("server");

        let (local_store, remote_store) = (store(), store());
        let local_app = local_store.builder().cipher(key()).build().expect("local");
        let remote_app = remote_store
            .builder()
            .cipher(key())
            .build()
            .expect("remote");
        let mut local = Follower::process(Ledger, &local_app)
            .follow(&upstream)
            .batch_size(10)
            .start()
            .expect("local follower");
        let remote_log = RemoteRecorder::new(server.url())
            .expect("url")
            .token("t0ken")
            .page_limit(7);
        let mut remote = Follower::process(Ledger, &remote_app)
            .follow_remote(UPSTREAM, remote_log)
            .batch_size(10)
            .start()
            .expect("remote follower");

        local.run_until_caught_up().expect("local run");
        let progress = remote.run_until_caught_up().expect("remote run");
        assert_eq!(progress.events, 28, "{kind}: every event, once");
        let remote_tallies = tallies(&remote_app, ids.keys());
        assert_eq!(
            states(&remote_tallies),
            states(&tallies(&local_app, ids.keys())),
            "{kind}"
        );
        assert_seen(kind, &ids, &remote_tallies);
        // Deposits of 1 to 6.
        assert!(
            remote_tallies.values().all(|tally| tally.total == 21),
            "{kind}"
        );
        assert_eq!(recorded(&remote_app), recorded(&local_app), "{kind}");
        assert_eq!(remote.position(UPSTREAM), local.position(UPSTREAM));
        assert_eq!(remote.lag().expect("lag")[0].events, 0, "{kind}");

        // More upstream: both catch up again, still alike.
        let more = fill(&upstream, 2, 3);
        ids.extend(more);
        local.run_until_caught_up().expect("local run");
        remote.run_until_caught_up().expect("remote run");
        let remote_tallies = tallies(&remote_app, ids.keys());
        assert_eq!(
            states(&remote_tallies),
            states(&tallies(&local_app, ids.keys())),
            "{kind}"
        );
        assert_eq!(recorded(&remote_app), recorded(&local_app), "{kind}");
        assert_eq!(remote.position(UPSTREAM), Some(36), "{kind}");
        server.stop().expect("server stops");
    });
}

#[test]
fn a_follower_with_another_key_records_nothing() {
    let upstream_store = Store::sqlite();
    let upstream = upstream_store
        .builder()
        .cipher(key())
        .build()
        .expect("upstream");
    let _ = fill(&upstream, 1, 1);
    let server = NotificationServer::new(&upstream)
        .bind("127.0.0.1:0")
        .expect("server");
    let downstream_store = Store::sqlite();
    let downstream = downstream_store
        .builder()
        .cipher(Cipher::new([1; 32]))
        .build()
        .expect("downstream");
    let mut follower = Follower::process(Ledger, &downstream)
        .follow_remote(UPSTREAM, RemoteRecorder::new(server.url()).expect("url"))
        .start()
        .expect("follower");
    let error = follower.run_until_caught_up().expect_err("cannot decrypt");
    assert!(matches!(error, Error::Decryption { .. }), "{error}");
    assert_eq!(follower.position(UPSTREAM), Some(0));
    assert!(recorded(&downstream).is_empty());
    server.stop().expect("server stops");
}

#[test]
fn a_tampered_record_stops_the_follower_before_it() {
    let upstream_store = FileDb::new();
    let upstream = upstream_store.builder().build().expect("upstream");
    let _ = fill(&upstream, 1, 3);
    // The third record's stored bytes change after the fact.
    let conn = upstream_store.conn();
    let mut state: Vec<u8> = conn
        .query_row(
            "SELECT state FROM stored_events WHERE notification_id = 3",
            [],
            |row| row.get(0),
        )
        .expect("row 3");
    let at = state
        .windows(13)
        .position(|w| w == b"secret note 1")
        .expect("the plaintext record holds the note");
    state[at + 12] = b'X';
    conn.execute(
        "UPDATE stored_events SET state = ?1 WHERE notification_id = 3",
        [&state],
    )
    .expect("tamper");
    let server = NotificationServer::new(&upstream)
        .bind("127.0.0.1:0")
        .expect("server");
    let downstream_store = Store::sqlite();
    let downstream = downstream_store.builder().build().expect("downstream");
    let mut follower = Follower::process(Ledger, &downstream)
        .follow_remote(UPSTREAM, RemoteRecorder::new(server.url()).expect("url"))
        .batch_size(1)
        .start()
        .expect("follower");
    let error = follower
        .run_until_caught_up()
        .expect_err("the hash is wrong");
    assert!(matches!(error, Error::Integrity { .. }), "{error}");
    assert_eq!(
        follower.position(UPSTREAM),
        Some(2),
        "stops before the record"
    );
    server.stop().expect("server stops");
}

/// An in-memory projection: the deposits seen, by account.
#[derive(Debug, Default, PartialEq, Eq)]
struct Deposits(BTreeMap<Uuid, Vec<u64>>);

struct DepositCounter;

#[policy]
impl DepositCounter {
    #[on(AccountEvent::Deposited)]
    fn deposited(&self, deposits: &mut Deposits, envelope: &Envelope) {
        deposits
            .0
            .entry(envelope.originator_id())
            .or_default()
            .push(envelope.notification_id());
    }
}

#[test]
fn a_projection_follows_a_remote_application_with_its_own_mapper() {
    let upstream_store = Store::sqlite();
    let upstream = upstream_store
        .builder()
        .name(UPSTREAM)
        .cipher(key())
        .build()
        .expect("upstream");
    let ids = fill(&upstream, 3, 4);
    let server = serve_at(&upstream_store, "127.0.0.1:0".parse().expect("addr"));
    let remote = RemoteRecorder::new(server.url())
        .expect("url")
        .application(UPSTREAM, Mapper::new().with_cipher(key()));
    assert_eq!(remote.name(), UPSTREAM);
    let mut follower = Follower::in_memory(DepositCounter, Deposits::default())
        .follow(&remote)
        .start()
        .expect("projection");
    assert_eq!(follower.run_until_caught_up().expect("run").events, 12);
    let expected: BTreeMap<Uuid, Vec<u64>> = ids
        .iter()
        .map(|(account, ids)| (*account, ids[1..].to_vec()))
        .collect();
    assert_eq!(follower.state().lock().expect("state").0, expected);
    // The remote application reads notifications only.
    let error = remote
        .repository()
        .get::<Tally>(Uuid::new_v4())
        .expect_err("read-only");
    assert!(
        matches!(
            error,
            Error::InvalidArgument {
                name: "recorder",
                ..
            }
        ),
        "{error}"
    );
    server.stop().expect("server stops");
}

/// Serves the keyless view of `store` at `addr`.
fn serve_at(store: &Store, addr: SocketAddr) -> RunningServer {
    let relay = store.builder().name(UPSTREAM).build().expect("keyless");
    NotificationServer::new(&relay).bind(addr).expect("server")
}

#[test]
fn a_follower_rides_out_the_server_restarting_mid_read() {
    each_kind(|kind, store| {
        let upstream_store = store();
        let upstream = upstream_store
            .builder()
            .name(UPSTREAM)
            .cipher(key())
            .build()
            .expect("upstream");
        let mut ids = fill(&upstream, 3, 40);
        let server = serve_at(&upstream_store, "127.0.0.1:0".parse().expect("addr"));
        let addr = server.local_addr();

        let downstream_store = store();
        let downstream = downstream_store
            .builder()
            .cipher(key())
            .build()
            .expect("downstream");
        // One event a page: many requests, so the restart falls mid-read.
        let remote = RemoteRecorder::new(server.url())
            .expect("url")
            .timeout(Duration::from_secs(2))
            .retries(200, Duration::from_millis(5), Duration::from_millis(50));
        let running = Follower::process(Ledger, &downstream)
            .follow_remote(UPSTREAM, remote)
            .batch_size(1)
            .start()
            .expect("follower")
            .spawn();
        assert!(
            running
                .wait_for(UPSTREAM, 20, Duration::from_mins(1))
                .expect("watch")
        );
        server.stop().expect("server stops");
        let stopped_at = running.watch().position(UPSTREAM);
        // Events the follower can only read after the restart.
        let more = fill(&upstream, 2, 5);
        let head = more.values().flatten().copied().max().expect("ids");
        ids.extend(more);
        std::thread::sleep(Duration::from_millis(300));
        let server = serve_at(&upstream_store, addr);
        assert!(
            running
                .wait_for(UPSTREAM, head, Duration::from_mins(2))
                .expect("watch")
        );
        let follower = running.stop().expect("the follower never failed");
        println!("{kind}: stopped the server at position {stopped_at:?}, resumed to {head}");
        assert_eq!(follower.position(UPSTREAM), Some(head));
        assert_seen(kind, &ids, &tallies(&downstream, ids.keys()));
        server.stop().expect("server stops");
    });
}

#[test]
fn a_follower_that_gave_up_resumes_from_its_own_position() {
    let upstream_store = Store::sqlite();
    let upstream = upstream_store
        .builder()
        .name(UPSTREAM)
        .cipher(key())
        .build()
        .expect("upstream");
    let mut ids = fill(&upstream, 2, 5);
    let server = serve_at(&upstream_store, "127.0.0.1:0".parse().expect("addr"));
    let addr = server.local_addr();
    let downstream_store = Store::sqlite();
    let downstream = downstream_store
        .builder()
        .cipher(key())
        .build()
        .expect("downstream");
    let impatient = || {
        RemoteRecorder::new(format!("http://{addr}"))
            .expect("url")
            .retries(2, Duration::from_millis(1), Duration::from_millis(1))
    };
    let mut follower = Follower::process(Ledger, &downstream)
        .follow_remote(UPSTREAM, impatient())
        .start()
        .expect("follower");
    assert_eq!(follower.run_until_caught_up().expect("run").events, 12);

    server.stop().expect("server stops");
    let more = fill(&upstream, 1, 4);
    ids.extend(more);
    let error = follower.run_until_caught_up().expect_err("no server");
    assert!(
        matches!(&error, Error::Remote { reason, .. } if reason.contains("2 attempts")),
        "{error}"
    );
    assert_eq!(follower.position(UPSTREAM), Some(12));
    drop(follower);

    // A new follower (as after a process restart) starts from the
    // position recorded in its own database.
    let server = serve_at(&upstream_store, addr);
    let mut follower = Follower::process(Ledger, &downstream)
        .follow_remote(UPSTREAM, impatient())
        .start()
        .expect("follower");
    assert_eq!(follower.position(UPSTREAM), Some(12));
    assert_eq!(follower.run_until_caught_up().expect("run").events, 5);
    assert_seen("resumed", &ids, &tallies(&downstream, ids.keys()));
    server.stop().expect("server stops");
}

/// Set in the child that serves from inside a namespace.
const CHILD: &str = "EVENTSOURCING_HTTP_CHILD";
/// The SQLite file the child serves.
const CHILD_DB: &str = "EVENTSOURCING_HTTP_DB";
/// The address the child binds (its namespace's own).
const CHILD_BIND: &str = "EVENTSOURCING_HTTP_BIND";

/// In the child: serves the SQLite file in `CHILD_DB`, without a key, on
/// `CHILD_BIND`, until its standard input closes.
#[test]
fn child_serve() {
    if std::env::var(CHILD).ok().as_deref() != Some("serve") {
        return;
    }
    let path = std::env::var(CHILD_DB).expect("db");
    let bind = std::env::var(CHILD_BIND).expect("bind");
    let relay = Application::builder()
        .db_uri(format!("sqlite:///{path}"))
        .build()
        .expect("keyless");
    let server = NotificationServer::new(&relay)
        .token("netns")
        .bind((bind.as_str(), 0))
        .expect("binds inside the namespace");
    println!("\nHTTP_SERVING {}", server.local_addr());
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    server.stop().expect("stops");
}

#[test]
fn a_follower_reaches_a_server_in_another_network_namespace() {
    let node = match Node::create("http", 0) {
        Ok(node) => node,
        Err(skip) => {
            println!("skipped: {skip}");
            return;
        }
    };
    let upstream_store = FileDb::new();
    let upstream = upstream_store
        .builder()
        .name(UPSTREAM)
        .cipher(key())
        .build()
        .expect("upstream");
    let mut ids = fill(&upstream, 3, 10);
    let mut child = node
        .command(std::env::current_exe().expect("test binary"))
        .args(["--exact", "child_serve", "--nocapture", "--test-threads=1"])
        .env(CHILD, "serve")
        .env(CHILD_DB, &upstream_store.path)
        .env(CHILD_BIND, node.node_addr().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the server starts in the namespace");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr: SocketAddr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("HTTP_SERVING ").map(str::to_owned))
        .expect("the child serves")
        .parse()
        .expect("an address");
    assert_eq!(
        addr.ip(),
        node.node_addr(),
        "bound to the namespace's address"
    );

    // This process, in the host's namespace, follows it across the link,
    // which is cut for a while mid-read.
    let downstream_store = Store::sqlite();
    let downstream = downstream_store
        .builder()
        .cipher(key())
        .build()
        .expect("downstream");
    let remote = RemoteRecorder::new(format!("http://{addr}"))
        .expect("url")
        .token("netns")
        .timeout(Duration::from_secs(1))
        .retries(60, Duration::from_millis(20), Duration::from_millis(500));
    let running = Follower::process(Ledger, &downstream)
        .follow_remote(UPSTREAM, remote)
        .batch_size(1)
        .start()
        .expect("follower")
        .spawn();
    assert!(
        running
            .wait_for(UPSTREAM, 10, Duration::from_mins(1))
            .expect("watch")
    );
    node.cut().expect("cut");
    let more = fill(&upstream, 1, 5);
    let head = more.values().flatten().copied().max().expect("ids");
    ids.extend(more);
    std::thread::sleep(Duration::from_millis(1500));
    node.restore().expect("restore");
    assert!(
        running
            .wait_for(UPSTREAM, head, Duration::from_mins(2))
            .expect("watch")
    );
    let follower = running.stop().expect("the follower never failed");
    assert_eq!(follower.position(UPSTREAM), Some(head));
    assert_seen("netns", &ids, &tallies(&downstream, ids.keys()));

    drop(child.stdin.take());
    let status = child.wait().expect("the child ends");
    assert!(status.success(), "the server stopped cleanly");
}
