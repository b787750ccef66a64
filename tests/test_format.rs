//! The independent check of FORMAT.md.
//!
//! The synopsis's flow runs in-process against a SQLite file in each of the
//! four configurations (plain, zlib, cipher, cipher + zlib), and once more
//! through `Application::from_env()` in a child process. Then the file is
//! opened with raw `rusqlite`, and every row is read by the minimal reader
//! in `format_reader/` (shared with `test_format_keys.rs`, which checks
//! version 2's per-aggregate keys). It follows FORMAT.md alone and is built
//! from `sha2`, `aes-gcm` and `flate2` directly (never the library's
//! mapper): flags byte, AES-GCM with the row's AAD, zlib, the body's split,
//! the hash pre-image, the links of each aggregate's chain, and the heads
//! the application reported.

mod format_reader;

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use eventsourcing::prelude::*;

use eventsourcing::{Compression, RecordedEvent};
use format_reader::{Body, Keys, Row, check_schema, hex, open_state, pre_image_hash, read_rows};
use sha2::{Digest, Sha256};
use support::fixtures::World;

/// What the flow saved, as the application had it in memory.
struct Saved {
    /// Every saved event, in the order of the saves (= notification order).
    events: Vec<RecordedEvent>,
    /// The head of each aggregate after its last save.
    heads: HashMap<Uuid, Hash>,
}

impl Saved {
    fn new() -> Saved {
        Saved {
            events: Vec::new(),
            heads: HashMap::new(),
        }
    }

    /// Notes the aggregate's pending events and head, just before a save
    /// that is expected to succeed.
    fn note(&mut self, world: &World) {
        self.events.extend(world.pending_events().iter().cloned());
        self.heads.insert(world.id(), world.head());
    }

    /// Notes the events of a save that stamped metadata on them (which
    /// changes their data and hashes), as the application reads them back,
    /// and the head the aggregate reports after the save.
    fn note_stamped(&mut self, app: &Application, world: &World, first_version: u64) {
        let stored = app.event_store().recorded_events(world.id()).unwrap();
        self.events.extend(
            stored
                .into_iter()
                .filter(|e| e.originator_version >= first_version),
        );
        self.heads.insert(world.id(), world.head());
    }
}

/// The synopsis's flow (as in `examples/world.rs`), noting what is saved.
fn world_flow(app: &Application) -> Saved {
    let repository = app.repository();
    let mut saved = Saved::new();

    let mut world = World::create();
    assert!(!repository.contains(world.id()).unwrap());
    world.make_it_so("dinosaurs".into());
    world.make_it_so("trucks".into());
    let version = world.version();
    world.make_it_so("internet".into());
    saved.note(&world);
    assert_eq!(app.save(&mut world).unwrap(), [1, 2, 3, 4]);
    assert!(repository.contains(world.id()).unwrap());

    let copy: World = repository.get(world.id()).unwrap();
    assert_eq!(copy, world);
    assert_eq!(copy.head(), world.head());

    world.discard();
    saved.note(&world);
    assert_eq!(app.save(&mut world).unwrap(), [5]);
    assert!(matches!(
        repository.get::<World>(world.id()),
        Err(Error::NotFound { id }) if id == world.id()
    ));

    let mut old: World = repository.get_at(world.id(), version).unwrap();
    assert_eq!(old.history, ["dinosaurs", "trucks"]);
    old.make_it_so("future".into());
    assert!(matches!(
        app.save(&mut old),
        Err(Error::Concurrency { id, .. }) if id == world.id()
    ));

    // Events with metadata: `"$meta"` is a member of the data, covered by
    // the hash like any other.
    let mut fourth = World::create();
    fourth.make_it_so("audited".into());
    let metadata = eventsourcing::Metadata::new()
        .with_user("auditor")
        .with_correlation_id(Uuid::from_u128(42));
    assert_eq!(app.save_with(&metadata, &mut fourth).unwrap(), [6, 7]);
    saved.note_stamped(app, &fourth, 1);

    // Two more aggregates in one atomic save, one of them with a longer,
    // compressible history and non-ASCII text.
    let mut second = World::create();
    let mut third = World::create();
    third.make_it_so("ünïcödé ✓ \"quoted\" \\ back\nslash".into());
    for _ in 0..19 {
        third.make_it_so("again and again and again".into());
    }
    third.make_it_so("and again ".repeat(100));
    saved.note(&second);
    saved.note(&third);
    assert_eq!(
        app.save((&mut second, &mut third)).unwrap(),
        (8..=30).collect::<Vec<u64>>()
    );

    saved
}

/// A key for the tests: standard base64 (with padding) of 32 bytes.
fn key_bytes(seed: &str) -> [u8; 32] {
    Sha256::digest(seed.as_bytes()).into()
}

fn now_micros() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros(),
    )
    .unwrap()
}

/// Every row with its body, and each aggregate's head by raw id.
type Checked = (Vec<(Row, Body)>, HashMap<[u8; 16], [u8; 32]>);

/// Checks every row of the database at `path` with the reader above, and
/// returns the rows and bodies in notification order with the head of
/// each aggregate's chain.
fn check_database(
    path: &std::path::Path,
    key: Option<&[u8; 32]>,
    expected_flags: u8,
    window: (i64, i64),
) -> Checked {
    check_schema(path);
    let rows = read_rows(path);
    assert!(!rows.is_empty());
    let mut heads: HashMap<[u8; 16], [u8; 32]> = HashMap::new();
    let mut versions: HashMap<[u8; 16], u64> = HashMap::new();
    let mut out = Vec::new();
    let mut compressed = 0;
    for (i, row) in rows.into_iter().enumerate() {
        // Notification ids start at 1 and, in this single-writer flow with
        // no failed SQLite insert of a new id, have no holes.
        assert_eq!(row.notification_id, i64::try_from(i).unwrap() + 1);
        assert_eq!(row.id_text, row.id_text.to_ascii_lowercase());
        let (flags, body) = open_state(&row, &Keys::application(key));
        // The writer compresses a record only when that makes it smaller
        // (the flag is per record); never when not configured to.
        assert_eq!(
            flags & !0x01,
            expected_flags & !0x01,
            "flags byte of row {}",
            row.notification_id
        );
        assert!(
            flags & 0x01 <= expected_flags & 0x01,
            "row {}",
            row.notification_id
        );
        compressed += usize::from(flags & 0x01);

        // Versions 1, 2, 3 ... per aggregate; the chain links.
        let version = versions.entry(row.id).or_insert(0);
        *version += 1;
        assert_eq!(row.version, *version, "row {}", row.notification_id);
        let previous = heads.get(&row.id).copied().unwrap_or([0; 32]);
        if row.version == 1 {
            assert_eq!(body.previous_hash, [0; 32], "version 1 links to zeros");
        }
        assert_eq!(
            body.previous_hash, previous,
            "row {}: previous_hash does not link",
            row.notification_id
        );
        assert_eq!(
            pre_image_hash(&row, &body),
            body.event_hash,
            "row {}: event_hash is not the SHA-256 of the pre-image",
            row.notification_id
        );
        heads.insert(row.id, body.event_hash);

        // The data: one UTF-8 JSON object.
        let text = std::str::from_utf8(&body.data).expect("data is UTF-8");
        let value: serde_json::Value = serde_json::from_str(text).expect("data is JSON");
        assert!(value.is_object(), "data is a JSON object: {text}");

        // The timestamp: microseconds since the epoch, during this test.
        assert!(
            (window.0..=window.1).contains(&body.timestamp),
            "timestamp {} is not within the test's run {window:?}",
            body.timestamp
        );
        out.push((row, body));
    }
    if expected_flags & 0x01 != 0 {
        assert!(compressed > 0, "no record went through zlib");
    }
    (out, heads)
}

/// Checks the rows against what the application saved, field by field.
fn check_against_saved(rows: &[(Row, Body)], heads: &HashMap<[u8; 16], [u8; 32]>, saved: &Saved) {
    assert_eq!(rows.len(), saved.events.len());
    for ((row, body), event) in rows.iter().zip(&saved.events) {
        assert_eq!(&row.id, event.originator_id.as_bytes());
        assert_eq!(row.id_text, event.originator_id.hyphenated().to_string());
        assert_eq!(row.version, event.originator_version);
        assert_eq!(row.topic, event.topic);
        assert_eq!(body.previous_hash, event.previous_hash.0);
        assert_eq!(body.timestamp, event.timestamp);
        assert_eq!(body.data, event.data);
        assert_eq!(body.event_hash, event.event_hash.0);
    }
    assert_eq!(heads.len(), saved.heads.len());
    for (id, head) in &saved.heads {
        assert_eq!(heads[id.as_bytes()], head.0, "head of {id}");
        assert_eq!(hex(&heads[id.as_bytes()]), head.to_hex());
    }
}

/// Checks what the flow's events hold, as plain JSON.
fn check_contents(rows: &[(Row, Body)]) {
    let topics: Vec<&str> = rows.iter().map(|(row, _)| row.topic.as_str()).collect();
    assert_eq!(
        topics[..10],
        [
            "World.Created",
            "World.SomethingHappened",
            "World.SomethingHappened",
            "World.SomethingHappened",
            "World.Discarded",
            "World.Created",
            "World.SomethingHappened",
            "World.Created",
            "World.Created",
            "World.SomethingHappened",
        ]
    );
    let json = |i: usize| -> serde_json::Value { serde_json::from_slice(&rows[i].1.data).unwrap() };
    assert_eq!(json(0), serde_json::json!({}));
    assert_eq!(json(1), serde_json::json!({"what": "dinosaurs"}));
    assert_eq!(json(2), serde_json::json!({"what": "trucks"}));
    assert_eq!(json(3), serde_json::json!({"what": "internet"}));
    assert_eq!(json(4), serde_json::json!({}));
    assert_eq!(
        json(9),
        serde_json::json!({"what": "ünïcödé ✓ \"quoted\" \\ back\nslash"})
    );
    let meta = serde_json::json!({
        "user": "auditor",
        "correlation_id": "00000000-0000-0000-0000-00000000002a",
    });
    assert_eq!(json(5), serde_json::json!({"$meta": meta}));
    assert_eq!(
        json(6),
        serde_json::json!({"$meta": meta, "what": "audited"})
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// One of the four configurations.
struct Config {
    name: &'static str,
    key: Option<[u8; 32]>,
    zlib: bool,
    flags: u8,
}

fn configurations() -> [Config; 4] {
    [
        Config {
            name: "plain",
            key: None,
            zlib: false,
            flags: 0x00,
        },
        Config {
            name: "zlib",
            key: None,
            zlib: true,
            flags: 0x01,
        },
        Config {
            name: "cipher",
            key: Some(key_bytes("cipher")),
            zlib: false,
            flags: 0x02,
        },
        Config {
            name: "cipher+zlib",
            key: Some(key_bytes("cipher+zlib")),
            zlib: true,
            flags: 0x03,
        },
    ]
}

fn run_configuration(config: &Config) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir
        .path()
        .join(format!("{}.db", config.name.replace('+', "_")));
    let mut builder = Application::builder().db_uri(format!("sqlite:///{}", path.display()));
    if let Some(key) = &config.key {
        builder = builder.cipher_key(STANDARD.encode(key));
    }
    if config.zlib {
        builder = builder.compression(Some(Compression::Zlib));
    }
    let start = now_micros();
    let app = builder.build().unwrap();
    let saved = world_flow(&app);
    let end = now_micros();
    drop(app);

    let (rows, heads) = check_database(&path, config.key.as_ref(), config.flags, (start, end));
    check_against_saved(&rows, &heads, &saved);
    check_contents(&rows);

    // What is visible in the file: the values in plain rows, none of them
    // once encrypted.
    for (row, _) in &rows[1..4] {
        let visible = ["dinosaurs", "trucks", "internet"]
            .iter()
            .any(|what| contains(&row.state, what.as_bytes()));
        match config.flags {
            0x00 => assert!(visible, "{}: plain data is stored as is", config.name),
            0x02 | 0x03 => assert!(!visible, "{}: plaintext in an encrypted row", config.name),
            _ => {}
        }
    }
    // Two encryptions of the same body differ (fresh nonces): the two
    // `World.Created` events of the last save have equal data, and their
    // nonces differ.
    if config.key.is_some() {
        let nonces: Vec<&[u8]> = rows.iter().map(|(row, _)| &row.state[1..13]).collect();
        let mut unique = nonces.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), nonces.len(), "a nonce was reused");
    }
    // Compression pays for a repetitive body (the last event's 1000 bytes
    // of data); without it the state is the body plus fixed overheads.
    let (last, body) = rows.last().unwrap();
    let body_len = 72 + body.data.len();
    assert_eq!(body.data.len(), 1000 + r#"{"what":""}"#.len());
    let overhead = if config.key.is_some() { 1 + 12 + 16 } else { 1 };
    if config.zlib {
        assert!(
            last.state.len() < body_len / 2,
            "{}: {} bytes for a {body_len}-byte body",
            config.name,
            last.state.len()
        );
    } else {
        assert_eq!(last.state.len(), overhead + body_len, "{}", config.name);
    }

    // The unique constraint is the database's own: a raw duplicate insert
    // of (originator_id, originator_version) fails.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let (row, _) = &rows[0];
    let duplicate = conn.execute(
        "INSERT INTO stored_events (originator_id, originator_version, topic, state) \
         VALUES (?1, ?2, 'x', x'00')",
        (&row.id_text, i64::try_from(row.version).unwrap()),
    );
    assert!(duplicate.is_err(), "duplicate (id, version) was accepted");
}

#[test]
fn plain_rows_follow_format_md() {
    run_configuration(&configurations()[0]);
}

#[test]
fn zlib_rows_follow_format_md() {
    run_configuration(&configurations()[1]);
}

#[test]
fn encrypted_rows_follow_format_md() {
    run_configuration(&configurations()[2]);
}

#[test]
fn encrypted_and_compressed_rows_follow_format_md() {
    run_configuration(&configurations()[3]);
}

/// The library's decoding of the same rows agrees with the reader above
/// (the notification log's `decode` checks the hash too).
#[test]
fn the_library_reads_what_the_independent_reader_reads() {
    for config in configurations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let mut builder = Application::builder().db_uri(format!("sqlite:///{}", path.display()));
        if let Some(key) = &config.key {
            builder = builder.cipher_key(STANDARD.encode(key));
        }
        if config.zlib {
            builder = builder.compression(Some(Compression::Zlib));
        }
        let app = builder.build().unwrap();
        let start = now_micros();
        world_flow(&app);
        let (rows, _) = check_database(
            &path,
            config.key.as_ref(),
            config.flags,
            (start, now_micros()),
        );
        let log = app.notification_log();
        let notifications = log.select(1, usize::MAX, &[]).unwrap();
        assert_eq!(notifications.len(), rows.len());
        for (notification, (row, body)) in notifications.into_iter().zip(&rows) {
            assert_eq!(notification.id, u64::try_from(row.notification_id).unwrap());
            assert_eq!(notification.state, row.state);
            let event = log.decode(notification).unwrap();
            assert_eq!(event.previous_hash.0, body.previous_hash);
            assert_eq!(event.timestamp, body.timestamp);
            assert_eq!(event.data, body.data);
            assert_eq!(event.event_hash.0, body.event_hash);
        }
    }
}

// ---------------------------------------------------------------------------
// The same flow configured from the environment, in a child process.
// ---------------------------------------------------------------------------

const CHILD_VAR: &str = "ES_TEST_FORMAT_FROM_ENV_CHILD";

/// In a child process (when `ES_TEST_FORMAT_FROM_ENV_CHILD` is set), runs the
/// flow with `Application::from_env()` and prints each head; otherwise
/// does nothing.
#[test]
fn from_env_child() {
    if std::env::var_os(CHILD_VAR).is_none() {
        return;
    }
    let app = Application::from_env().unwrap();
    let saved = world_flow(&app);
    for (id, head) in &saved.heads {
        println!("head {id} {head}");
    }
}

#[test]
fn a_database_configured_from_the_environment_follows_format_md() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("env.db");
    let key = key_bytes("from the environment");
    let start = now_micros();
    let db_uri = format!("sqlite:///{}", path.display());
    let cipher_key = STANDARD.encode(key);
    let stdout = support::child::run_child(
        "from_env_child",
        CHILD_VAR,
        &[
            ("DB_URI", db_uri.as_ref()),
            ("CIPHER_KEY", cipher_key.as_ref()),
            ("COMPRESS", "zlib".as_ref()),
        ],
    );
    let end = now_micros();
    let reported: HashMap<String, String> = stdout
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_once("head ")?.1.split(' ');
            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect();
    assert_eq!(reported.len(), 4, "{reported:?}");

    let (rows, heads) = check_database(&path, Some(&key), 0x03, (start, end));
    check_contents(&rows);
    assert_eq!(heads.len(), 4);
    for (row, _) in &rows {
        let head = &heads[&row.id];
        assert_eq!(reported[&row.id_text], hex(head), "head of {}", row.id_text);
    }
}
