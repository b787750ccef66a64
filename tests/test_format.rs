//! The independent check of FORMAT.md.
//!
//! The synopsis's flow runs in-process against a SQLite file in each of the
//! four configurations (plain, zlib, cipher, cipher + zlib), and once more
//! through `Application::from_env()` in a child process. Then the file is
//! opened with raw `rusqlite`, and every row is read by the minimal reader
//! below, which follows FORMAT.md alone and is built from `sha2`, `aes-gcm`
//! and `flate2` directly (never the library's mapper): flags byte, AES-GCM
//! with the row's AAD, zlib, the body's split, the hash pre-image, the links
//! of each aggregate's chain, and the heads the application reported.

use std::collections::HashMap;
use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use eventsourcing::prelude::*;

use eventsourcing::{Compression, RecordedEvent};
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

// ---------------------------------------------------------------------------
// The independent reader: FORMAT.md only.
// ---------------------------------------------------------------------------

/// One row of `stored_events`, read with raw SQL.
#[derive(Debug)]
struct Row {
    notification_id: i64,
    id: [u8; 16],
    id_text: String,
    version: u64,
    topic: String,
    state: Vec<u8>,
}

/// The plaintext record body.
#[derive(Debug)]
struct Body {
    previous_hash: [u8; 32],
    timestamp: i64,
    data: Vec<u8>,
    event_hash: [u8; 32],
}

/// Parses 36 characters, lowercase, hyphenated, into the UUID's raw bytes
/// (RFC 4122 order: the hex digits in the order written).
fn parse_uuid_text(text: &str) -> [u8; 16] {
    assert_eq!(text.len(), 36, "originator_id {text:?} is not 36 chars");
    let mut hex = String::new();
    for (i, c) in text.chars().enumerate() {
        if [8, 13, 18, 23].contains(&i) {
            assert_eq!(c, '-', "originator_id {text:?}: no hyphen at {i}");
        } else {
            assert!(
                c.is_ascii_digit() || ('a'..='f').contains(&c),
                "originator_id {text:?}: {c:?} is not a lowercase hex digit"
            );
            hex.push(c);
        }
    }
    let mut bytes = [0u8; 16];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    bytes
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        write!(s, "{b:02x}").unwrap();
        s
    })
}

/// Reads every row of `stored_events`, checking the column storage classes.
fn read_rows(path: &std::path::Path) -> Vec<Row> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut select = conn
        .prepare(
            "SELECT notification_id, originator_id, originator_version, topic, state, \
             typeof(notification_id), typeof(originator_id), typeof(originator_version), \
             typeof(topic), typeof(state) \
             FROM stored_events ORDER BY notification_id",
        )
        .unwrap();
    let rows = select
        .query_map([], |r| {
            let types: [String; 5] = [r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?];
            Ok((
                types,
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Vec<u8>>(4)?,
            ))
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    rows.into_iter()
        .map(|(types, notification_id, id_text, version, topic, state)| {
            assert_eq!(
                types,
                ["integer", "text", "integer", "text", "blob"],
                "storage classes of row {notification_id}"
            );
            Row {
                notification_id,
                id: parse_uuid_text(&id_text),
                id_text,
                version: u64::try_from(version).unwrap(),
                topic,
                state,
            }
        })
        .collect()
}

/// Checks the declared schema of FORMAT.md's tables.
fn check_schema(path: &std::path::Path) {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let columns = |table: &str| -> Vec<(String, String)> {
        conn.prepare("SELECT name, upper(type) FROM pragma_table_info(?1) ORDER BY cid")
            .unwrap()
            .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let owned = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    };
    assert_eq!(
        columns("stored_events"),
        owned(&[
            ("notification_id", "INTEGER"),
            ("originator_id", "TEXT"),
            ("originator_version", "INTEGER"),
            ("topic", "TEXT"),
            ("state", "BLOB"),
        ])
    );
    assert_eq!(
        columns("snapshots"),
        owned(&[
            ("originator_id", "TEXT"),
            ("originator_version", "INTEGER"),
            ("topic", "TEXT"),
            ("state", "BLOB"),
        ])
    );
    assert_eq!(
        columns("tracking"),
        owned(&[
            ("application_name", "TEXT"),
            ("upstream_name", "TEXT"),
            ("partition", "INTEGER"),
            ("notification_id", "INTEGER"),
            ("epoch", "INTEGER"),
        ])
    );
    // notification_id is the rowid alias (INTEGER PRIMARY KEY) with
    // AUTOINCREMENT, so ids are never reused.
    let sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'stored_events'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let sql = sql.to_ascii_uppercase();
    assert!(
        sql.contains("NOTIFICATION_ID INTEGER PRIMARY KEY AUTOINCREMENT"),
        "{sql}"
    );
    // (originator_id, originator_version) is unique: a unique index on
    // exactly those two columns.
    let unique_indexes: Vec<String> = conn
        .prepare("SELECT name FROM pragma_index_list('stored_events') WHERE \"unique\" = 1")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let has_pair = unique_indexes.iter().any(|index| {
        let cols: Vec<String> = conn
            .prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")
            .unwrap()
            .query_map([index], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        cols == ["originator_id", "originator_version"]
    });
    assert!(
        has_pair,
        "no unique index on (originator_id, originator_version)"
    );
}

/// Opens a stored `state`: flags, then decrypt, then inflate, then split.
/// Returns the flags byte and the body.
fn open_state(row: &Row, key: Option<&[u8; 32]>) -> (u8, Body) {
    let (&flags, payload) = row.state.split_first().expect("state has a flags byte");
    assert_eq!(
        flags & !0x03,
        0,
        "row {}: unknown flag bits",
        row.notification_id
    );
    let mut body = payload.to_vec();
    if flags & 0x02 != 0 {
        let key = key.expect("an encrypted row, but no key");
        assert!(body.len() >= 12 + 16, "encrypted payload too short");
        let (nonce, ciphertext) = body.split_at(12);
        let mut aad = row.id.to_vec();
        aad.extend_from_slice(&row.version.to_be_bytes());
        let cipher = Aes256Gcm::new_from_slice(key).unwrap();
        body = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .unwrap_or_else(|_| panic!("row {}: does not decrypt", row.notification_id));
    }
    if flags & 0x01 != 0 {
        // RFC 1950: a zlib header (CM = 8, deflate; FCHECK makes it a
        // multiple of 31), the deflate stream, and the Adler-32 trailer,
        // with nothing after it.
        assert_eq!(body[0] & 0x0f, 8, "zlib CM is deflate");
        assert_eq!(
            (u16::from(body[0]) << 8 | u16::from(body[1])) % 31,
            0,
            "zlib FCHECK"
        );
        let mut decoder = flate2::bufread::ZlibDecoder::new(&body[..]);
        let mut inflated = Vec::new();
        decoder.read_to_end(&mut inflated).unwrap();
        assert!(
            decoder.into_inner().is_empty(),
            "row {}: bytes after the zlib stream",
            row.notification_id
        );
        body = inflated;
    }
    assert!(body.len() >= 72, "body shorter than its fixed parts");
    let (previous_hash, rest) = body.split_at(32);
    let (timestamp, rest) = rest.split_at(8);
    let (data, event_hash) = rest.split_at(rest.len() - 32);
    (
        flags,
        Body {
            previous_hash: previous_hash.try_into().unwrap(),
            timestamp: i64::from_be_bytes(timestamp.try_into().unwrap()),
            data: data.to_vec(),
            event_hash: event_hash.try_into().unwrap(),
        },
    )
}

/// The `event_hash` pre-image of FORMAT.md, hashed.
fn pre_image_hash(row: &Row, body: &Body) -> [u8; 32] {
    let mut sha = Sha256::new();
    sha.update(row.id);
    sha.update(row.version.to_be_bytes());
    sha.update(u32::try_from(row.topic.len()).unwrap().to_be_bytes());
    sha.update(row.topic.as_bytes());
    sha.update(body.previous_hash);
    sha.update(body.timestamp.to_be_bytes());
    sha.update(&body.data);
    sha.finalize().into()
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
    for (i, row) in rows.into_iter().enumerate() {
        // Notification ids start at 1 and, in this single-writer flow with
        // no failed SQLite insert of a new id, have no holes.
        assert_eq!(row.notification_id, i64::try_from(i).unwrap() + 1);
        assert_eq!(row.id_text, row.id_text.to_ascii_lowercase());
        let (flags, body) = open_state(&row, key);
        assert_eq!(
            flags, expected_flags,
            "flags byte of row {}",
            row.notification_id
        );

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
