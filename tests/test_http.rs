//! The notification log server (`eventsourcing::http::NotificationServer`)
//! on SQLite files and PostgreSQL schemas: sections and pages across
//! section boundaries, caching of full sections only, bearer tokens,
//! refusals with reasons, stored bytes served as stored, and a graceful
//! stop.

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, mpsc};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use eventsourcing::http::{NotificationServer, RemoteRecorder, RunningServer};
use eventsourcing::recorder::{
    Batch, EventQuery, MemoryRecorder, Parked, Position, Recorder, Registration, TrackingKey,
};
use eventsourcing::{
    Application, ApplicationBuilder, Cipher, Error, Mapper, Notification, StoredEvent, StoredRow,
    Uuid,
};
use serde_json::Value;
use support::account::Account;
use support::http::get_with as get;
use support::ledger::fill;
use support::pg::Scratch;
use support::sqlite::FileDb;

/// A store that outlives the applications opened on it.
enum Store {
    Sqlite(FileDb),
    Postgres(Scratch),
}

impl Store {
    fn builder(&self) -> ApplicationBuilder {
        match self {
            Store::Sqlite(file) => file.builder(),
            Store::Postgres(scratch) => scratch.builder(),
        }
        .name("Accounts")
    }
}

/// Runs `test` on a SQLite file and, when the PostgreSQL tests run, on a
/// scratch schema.
fn each_store(test: impl Fn(&str, &Store)) {
    test("sqlite file", &Store::Sqlite(FileDb::new()));
    if let Some(scratch) = Scratch::new() {
        test("postgres", &Store::Postgres(scratch));
    }
}

/// Serves `app`'s log on a free loopback port.
fn serve(server: NotificationServer) -> RunningServer {
    server.bind("127.0.0.1:0").expect("the server starts")
}

/// The ids of a JSON list of items.
fn item_ids(items: &Value) -> Vec<u64> {
    items
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["id"].as_u64().expect("id"))
        .collect()
}

#[test]
fn sections_and_pages_cross_section_boundaries() {
    each_store(|store_name, store| {
        let app = store.builder().section_size(5).build().expect("app");
        let ids = fill(&app, 3, 7); // 3 openings and 21 deposits: 24 notifications
        let server = serve(NotificationServer::new(&app).max_limit(7));
        let base = server.url();

        // Forwards through the sections, as the links lead.
        let mut seen = Vec::new();
        let mut next = Some("1,5".to_owned());
        let mut sections = Vec::new();
        while let Some(id) = next {
            let reply = get(&format!("{base}/notifications/{id}"), &[]);
            assert_eq!(reply.status, 200, "{store_name}: {}", reply.body);
            let section = reply.json();
            assert_eq!(section["id"], Value::from(id.clone()));
            seen.extend(item_ids(&section["items"]));
            next = section["next_id"].as_str().map(str::to_owned);
            sections.push((id, section["previous_id"].as_str().map(str::to_owned)));
        }
        assert_eq!(seen, (1..=24).collect::<Vec<_>>(), "{store_name}");
        assert_eq!(
            sections,
            [
                ("1,5".to_owned(), None),
                ("6,10".to_owned(), Some("1,5".to_owned())),
                ("11,15".to_owned(), Some("6,10".to_owned())),
                ("16,20".to_owned(), Some("11,15".to_owned())),
                ("21,25".to_owned(), Some("16,20".to_owned())),
            ],
            "{store_name}"
        );

        // The same rows in pages of 7 that cross the sections' bounds.
        let mut paged = Vec::new();
        let mut after = 0;
        loop {
            let reply = get(&format!("{base}/notifications?after={after}&limit=7"), &[]);
            assert_eq!(reply.status, 200, "{store_name}: {}", reply.body);
            let page = reply.json();
            assert_eq!(page["head"], Value::from(24), "{store_name}");
            let ids = item_ids(&page["items"]);
            assert!(ids.len() <= 7);
            let Some(&last) = ids.last() else { break };
            paged.extend(ids);
            after = last;
        }
        assert_eq!(paged, seen, "{store_name}");

        // Topics filter the rows; the default limit is the section size.
        let opened = get(&format!("{base}/notifications?topics=Account.Opened"), &[]).json();
        let mut openings: Vec<u64> = ids.values().map(|ids| ids[0]).collect();
        openings.sort_unstable();
        assert_eq!(item_ids(&opened["items"]), openings, "{store_name}");
        let first = get(&format!("{base}/notifications"), &[]).json();
        assert_eq!(item_ids(&first["items"]), [1, 2, 3, 4, 5], "{store_name}");

        // The remote reader reads the same rows, in several requests when
        // asked for more than a page (the server allows 7).
        let remote = RemoteRecorder::new(&base).expect("url").page_limit(7);
        let local = app.event_store().recorder();
        assert_eq!(remote.max_notification_id().expect("head"), 24);
        assert_eq!(
            remote.select_notifications(3, 20, &[]).expect("rows"),
            local.select_notifications(3, 20, &[]).expect("rows"),
            "{store_name}"
        );
        assert_eq!(
            remote
                .select_page(10, 100, &["Account.Deposited"])
                .expect("page"),
            local
                .select_page(10, 100, &["Account.Deposited"])
                .expect("page"),
            "{store_name}"
        );
        assert!(
            remote
                .select_notifications(1, 0, &[])
                .expect("none")
                .is_empty()
        );
        assert_eq!(
            remote.section("21,25").expect("section"),
            app.notification_log().section("21,25").expect("section"),
            "{store_name}"
        );
        server.stop().expect("stops");
    });
}

#[test]
fn full_sections_are_cached_and_the_open_one_is_not() {
    each_store(|store_name, store| {
        let app = store.builder().section_size(4).build().expect("app");
        let _ = fill(&app, 2, 2); // 6 notifications: "1,4" is full, "5,8" open
        let server = serve(NotificationServer::new(&app));
        let base = server.url();

        let full = get(&format!("{base}/notifications/1,4"), &[]);
        assert_eq!(full.status, 200);
        let etag = full
            .header("etag")
            .expect("a full section has an ETag")
            .to_owned();
        let cache = full.header("cache-control").expect("cache-control");
        assert!(
            cache.contains("max-age=31536000") && cache.contains("immutable"),
            "{cache}"
        );
        assert!(cache.starts_with("public"), "{cache}");

        // The tag (also weak, also in a list) gets 304 and no body.
        for tag in [
            etag.clone(),
            format!("W/{etag}"),
            format!("\"other\", {etag}"),
        ] {
            let again = get(
                &format!("{base}/notifications/1,4"),
                &[("If-None-Match", &tag)],
            );
            assert_eq!(again.status, 304, "{store_name}: {tag}");
            assert!(again.body.is_empty());
            assert_eq!(again.header("etag"), Some(etag.as_str()));
        }
        let other = get(
            &format!("{base}/notifications/1,4"),
            &[("If-None-Match", "\"x\"")],
        );
        assert_eq!(other.status, 200);
        assert_eq!(other.body, full.body, "a full section does not change");

        // The open section is not cached, and has no tag to revalidate.
        let open = get(&format!("{base}/notifications/5,8"), &[]);
        assert_eq!(open.status, 200);
        assert_eq!(
            open.header("cache-control"),
            Some("no-store"),
            "{store_name}"
        );
        assert_eq!(open.header("etag"), None);
        assert_eq!(open.json()["next_id"], Value::Null);
        assert_eq!(item_ids(&open.json()["items"]), [5, 6]);
        // Pages are never cached either.
        let page = get(&format!("{base}/notifications?after=0"), &[]);
        assert_eq!(page.header("cache-control"), Some("no-store"));

        // Once filled, the section is full, tagged and cached.
        let mut account = Account::open("late".into());
        account.deposit(1, "x".into());
        app.save(&mut account).expect("save");
        let filled = get(&format!("{base}/notifications/5,8"), &[]);
        assert!(filled.header("etag").is_some(), "{store_name}");
        assert_eq!(filled.json()["next_id"], Value::from("9,12"));
        assert_eq!(item_ids(&filled.json()["items"]), [5, 6, 7, 8]);
        server.stop().expect("stops");
    });
}

#[test]
fn a_token_is_required_when_configured() {
    let file = FileDb::new();
    let app = file.builder().build().expect("app");
    let ids = fill(&app, 1, 1);
    let account = ids.keys().next().expect("account").to_string();
    let server = serve(NotificationServer::new(&app).token("correct horse"));
    let base = server.url();

    for headers in [
        vec![],
        vec![("Authorization", "Bearer wrong horse")],
        vec![("Authorization", "Bearer correct hors")],
        vec![("Authorization", "Basic correct horse")],
    ] {
        for path in [
            "/notifications/1,10",
            "/notifications?after=0",
            "/notifications/x",
        ] {
            let refused = get(&format!("{base}{path}"), &headers);
            assert_eq!(refused.status, 401, "{path} with {headers:?}");
            assert!(
                refused
                    .header("www-authenticate")
                    .is_some_and(|v| v.starts_with("Bearer"))
            );
            let body = refused.json();
            assert!(
                body["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("bearer token"))
            );
            assert_eq!(
                body.as_object().map(serde_json::Map::len),
                Some(1),
                "no data"
            );
            assert!(!refused.body.contains(&account), "no data");
        }
    }
    let admitted = get(
        &format!("{base}/notifications/1,10"),
        &[("Authorization", "Bearer correct horse")],
    );
    assert_eq!(admitted.status, 200);
    assert_eq!(item_ids(&admitted.json()["items"]), [1, 2]);
    let cache = admitted.header("cache-control").expect("cache-control");
    // Behind a token, shared caches keep nothing (the section is open here).
    assert_eq!(cache, "no-store");

    // The remote reader: refused at once (a refusal is not retried), then
    // admitted with the token.
    let wrong = RemoteRecorder::new(&base).expect("url").token("nope");
    let error = wrong.max_notification_id().expect_err("refused");
    assert!(
        matches!(&error, Error::Remote { reason, .. } if reason.contains("401")),
        "{error}"
    );
    let right = RemoteRecorder::new(&base)
        .expect("url")
        .token("correct horse");
    assert_eq!(right.max_notification_id().expect("head"), 2);
    server.stop().expect("stops");
}

#[test]
fn bad_requests_get_400_with_a_reason() {
    let file = FileDb::new();
    let app = file.builder().build().expect("app");
    let _ = fill(&app, 1, 3);
    let server = serve(NotificationServer::new(&app).max_limit(50));
    let base = server.url();
    let cases = [
        ("/notifications/abc", "section id"),
        ("/notifications/1", "section id"),
        ("/notifications/0,5", "section id"),
        ("/notifications/9,3", "section id"),
        ("/notifications/-1,3", "section id"),
        ("/notifications/1,99999999999999999999999", "section id"),
        ("/notifications/%FF,2", ""),
        ("/notifications?limit=51", "from 1 to 50"),
        ("/notifications?limit=18446744073709551616", "limit"),
        ("/notifications?limit=0", "from 1 to 50"),
        ("/notifications?limit=ten", "limit"),
        ("/notifications?after=-1", "after"),
        ("/notifications?after=9223372036854775808", "after"),
        ("/notifications?topics=", "empty"),
        (
            "/notifications?topics=Account.Opened,,Account.Deposited",
            "empty",
        ),
        ("/notifications?topics=Account%01Opened", "control"),
        ("/notifications?after=1&after=2", "more than once"),
        ("/notifications?page=2", "unknown parameter"),
    ];
    for (path, reason) in cases {
        let reply = get(&format!("{base}{path}"), &[]);
        assert_eq!(reply.status, 400, "{path}: {}", reply.body);
        let error = reply.json()["error"].as_str().expect("a reason").to_owned();
        assert!(error.contains(reason), "{path}: {error}");
        assert!(!error.is_empty());
    }
    // Still serving: nothing above broke the server.
    assert_eq!(get(&format!("{base}/notifications/1,10"), &[]).status, 200);
    // A range longer than a section is cut to one, not refused.
    let long = get(&format!("{base}/notifications/2,1000"), &[]).json();
    assert_eq!(long["id"], Value::from("2,11"));
    // The remote reader reports the reason.
    let remote = RemoteRecorder::new(&base).expect("url");
    let error = remote.section("5,1").expect_err("inverted");
    assert!(
        matches!(&error, Error::Remote { reason, .. } if reason.contains("400") && reason.contains("section id")),
        "{error}"
    );
    server.stop().expect("stops");
}

#[test]
fn encrypted_records_are_served_as_stored_by_a_server_without_the_key() {
    each_store(|store_name, store| {
        let cipher = Cipher::new([7; 32]);
        let writer = store.builder().cipher(cipher.clone()).build().expect("app");
        let _ = fill(&writer, 2, 3);
        // The server's application is opened without a key.
        let keyless = store.builder().build().expect("app");
        let relay = serve(NotificationServer::new(&keyless));
        let section = get(&format!("{}/notifications/1,10", relay.url()), &[]).json();
        assert!(
            !section.to_string().contains("secret note"),
            "{store_name}: plaintext served"
        );

        let stored = writer
            .event_store()
            .recorder()
            .select_notifications(1, 100, &[])
            .expect("rows");
        let served: Vec<Notification> = section["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| Notification {
                id: item["id"].as_u64().expect("id"),
                originator_id: item["originator_id"]
                    .as_str()
                    .expect("id")
                    .parse()
                    .expect("uuid"),
                originator_version: item["originator_version"].as_u64().expect("version"),
                topic: item["topic"].as_str().expect("topic").to_owned(),
                state: STANDARD
                    .decode(item["state"].as_str().expect("state"))
                    .expect("base64"),
            })
            .collect();
        // The exact stored rows, byte for byte.
        assert_eq!(served, stored, "{store_name}");
        // A reader with the key decrypts them and their hashes check out;
        // without it, they cannot be read.
        let with_key = Mapper::new().with_cipher(cipher.clone());
        for row in &served {
            let event = with_key.decode(row.clone().into_event()).expect("decrypts");
            event.check_hash().expect("the hash checks out");
            assert!(Mapper::new().decode(row.clone().into_event()).is_err());
        }
        relay.stop().expect("stops");
    });
}

#[test]
fn stopping_lets_go_of_the_port() {
    let file = FileDb::new();
    let app = file.builder().build().expect("app");
    let server = serve(NotificationServer::new(&app));
    let addr = server.local_addr();
    assert_eq!(
        get(&format!("http://{addr}/notifications"), &[]).status,
        200
    );
    server.stop().expect("stops cleanly");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still listening"
    );
    // The same address can be served again at once.
    let again = NotificationServer::new(&app).bind(addr).expect("rebinds");
    assert_eq!(
        get(&format!("http://{addr}/notifications"), &[]).status,
        200
    );
    again.stop().expect("stops");
}

/// A recorder whose page reads wait at a gate: a request held in flight.
struct Gated {
    inner: MemoryRecorder,
    reading: Mutex<Option<mpsc::Sender<()>>>,
    gate: Mutex<mpsc::Receiver<()>>,
}

impl Recorder for Gated {
    fn insert(&self, batch: &Batch<'_>) -> eventsourcing::Result<Vec<u64>> {
        self.inner.insert(batch)
    }
    fn select_events(
        &self,
        query: &EventQuery,
        each: &mut dyn FnMut(StoredRow<'_>) -> eventsourcing::Result<ControlFlow<()>>,
    ) -> eventsourcing::Result<()> {
        self.inner.select_events(query, each)
    }
    fn select_notifications(
        &self,
        start: u64,
        limit: usize,
        topics: &[&str],
    ) -> eventsourcing::Result<Vec<Notification>> {
        self.inner.select_notifications(start, limit, topics)
    }
    fn max_notification_id(&self) -> eventsourcing::Result<u64> {
        self.inner.max_notification_id()
    }
    fn select_page(
        &self,
        after: u64,
        limit: usize,
        topics: &[&str],
    ) -> eventsourcing::Result<(u64, Vec<Notification>)> {
        if let Some(reading) = self.reading.lock().expect("lock").take() {
            let _ = reading.send(());
            let _ = self.gate.lock().expect("lock").recv();
        }
        self.inner.select_page(after, limit, topics)
    }
    fn select_notification_of(
        &self,
        id: Uuid,
        version: u64,
    ) -> eventsourcing::Result<Option<Notification>> {
        self.inner.select_notification_of(id, version)
    }
    fn insert_snapshot(&self, snapshot: &StoredEvent) -> eventsourcing::Result<bool> {
        self.inner.insert_snapshot(snapshot)
    }
    fn select_snapshot(
        &self,
        id: Uuid,
        to_version: Option<u64>,
    ) -> eventsourcing::Result<Option<StoredEvent>> {
        self.inner.select_snapshot(id, to_version)
    }
    fn select_tracking(&self, key: &TrackingKey) -> eventsourcing::Result<Option<Position>> {
        self.inner.select_tracking(key)
    }
    fn raise_epoch(&self, key: &TrackingKey) -> eventsourcing::Result<Position> {
        self.inner.raise_epoch(key)
    }
    fn register_follower(
        &self,
        registration: &Registration,
    ) -> eventsourcing::Result<Registration> {
        self.inner.register_follower(registration)
    }
    fn update_follower(&self, registration: &Registration) -> eventsourcing::Result<()> {
        self.inner.update_follower(registration)
    }
    fn select_parked(&self, follower: &str) -> eventsourcing::Result<Vec<Parked>> {
        self.inner.select_parked(follower)
    }
}

#[test]
fn stopping_lets_the_requests_in_flight_finish() {
    let (reading, read_started) = mpsc::channel();
    let (open_gate, gate) = mpsc::channel();
    let recorder = Arc::new(Gated {
        inner: MemoryRecorder::new(),
        reading: Mutex::new(Some(reading)),
        gate: Mutex::new(gate),
    });
    let app = Application::builder()
        .recorder(recorder)
        .build()
        .expect("app");
    let _ = fill(&app, 2, 2);
    let server = serve(NotificationServer::new(&app));
    let url = format!("{}/notifications?after=0&limit=100", server.url());
    let request = std::thread::spawn(move || get(&url, &[]));
    read_started.recv().expect("the request is being served");
    // Stop while the request waits in the recorder; let it go on a moment
    // later.
    let stopping = std::thread::spawn(move || server.stop());
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(
        !stopping.is_finished(),
        "stop waits for the request in flight"
    );
    open_gate.send(()).expect("open the gate");
    let reply = request.join().expect("request thread");
    assert_eq!(reply.status, 200);
    assert_eq!(item_ids(&reply.json()["items"]), [1, 2, 3, 4, 5, 6]);
    stopping
        .join()
        .expect("stop thread")
        .expect("stops cleanly");
}
