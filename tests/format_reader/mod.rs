//! The independent reader of FORMAT.md (version 2), shared by
//! `test_format.rs` and `test_format_keys.rs`: built from `sha2`,
//! `aes-gcm` and `flate2` directly, never the library's mapper.

#![allow(dead_code, reason = "each test binary uses part of the reader")]

use std::collections::HashMap;
use std::io::Read;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use sha2::{Digest, Sha256};

/// One row of `stored_events`, read with raw SQL.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) notification_id: i64,
    pub(crate) id: [u8; 16],
    pub(crate) id_text: String,
    pub(crate) version: u64,
    pub(crate) topic: String,
    pub(crate) state: Vec<u8>,
}

/// The plaintext record body.
#[derive(Debug)]
pub(crate) struct Body {
    pub(crate) previous_hash: [u8; 32],
    pub(crate) timestamp: i64,
    pub(crate) data: Vec<u8>,
    pub(crate) event_hash: [u8; 32],
}

/// Parses 36 characters, lowercase, hyphenated, into the UUID's raw bytes
/// (RFC 4122 order: the hex digits in the order written).
pub(crate) fn parse_uuid_text(text: &str) -> [u8; 16] {
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

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        write!(s, "{b:02x}").unwrap();
        s
    })
}

/// Reads every row of `stored_events`, checking the column storage classes.
pub(crate) fn read_rows(path: &std::path::Path) -> Vec<Row> {
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
pub(crate) fn check_schema(path: &std::path::Path) {
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
    assert_eq!(
        columns("aggregate_keys"),
        owned(&[
            ("originator_id", "TEXT"),
            ("wrapped_key", "BLOB"),
            ("key_fingerprint", "TEXT"),
            ("created_at", "INTEGER"),
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

/// The keys a reader has: the application key, if any, and the data keys
/// it unwrapped from `aggregate_keys` ([`read_data_keys`]).
#[derive(Default)]
pub(crate) struct Keys {
    pub(crate) application: Option<[u8; 32]>,
    pub(crate) data: HashMap<[u8; 16], [u8; 32]>,
}

impl Keys {
    /// The application key alone (or none).
    pub(crate) fn application(key: Option<&[u8; 32]>) -> Keys {
        Keys {
            application: key.copied(),
            data: HashMap::new(),
        }
    }
}

/// The fingerprint of an application key: the first 16 lowercase hex
/// digits of its SHA-256.
pub(crate) fn fingerprint(key: &[u8; 32]) -> String {
    hex(&Sha256::digest(key))[..16].to_owned()
}

/// Reads every row of `aggregate_keys` (checking the storage classes and
/// the fingerprint) and unwraps each data key with `application`: AES-GCM,
/// nonce first, AAD `eventsourcing-data-key` ‖ the raw id.
pub(crate) fn read_data_keys(
    path: &std::path::Path,
    application: &[u8; 32],
) -> HashMap<[u8; 16], [u8; 32]> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut select = conn
        .prepare(
            "SELECT originator_id, wrapped_key, key_fingerprint, created_at, \
             typeof(originator_id), typeof(wrapped_key), typeof(key_fingerprint), \
             typeof(created_at) FROM aggregate_keys",
        )
        .unwrap();
    let rows = select
        .query_map([], |r| {
            let types: [String; 4] = [r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?];
            Ok((
                types,
                r.get::<_, String>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let cipher = Aes256Gcm::new_from_slice(application).unwrap();
    let mut keys = HashMap::new();
    for (types, id_text, wrapped, fingerprint_text, created_at) in rows {
        assert_eq!(
            types,
            ["text", "blob", "text", "integer"],
            "aggregate_keys of {id_text}"
        );
        assert_eq!(
            fingerprint_text,
            fingerprint(application),
            "fingerprint of {id_text}"
        );
        assert!(created_at > 0, "created_at of {id_text}");
        let id = parse_uuid_text(&id_text);
        assert_eq!(wrapped.len(), 12 + 32 + 16, "wrapped key of {id_text}");
        let (nonce, ciphertext) = wrapped.split_at(12);
        let mut aad = b"eventsourcing-data-key".to_vec();
        aad.extend_from_slice(&id);
        let key = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .unwrap_or_else(|_| panic!("the data key of {id_text} does not unwrap"));
        keys.insert(id, key.try_into().unwrap());
    }
    keys
}

/// Opens a stored `state`: flags, then decrypt, then inflate, then split.
/// Returns the flags byte and the body.
pub(crate) fn open_state(row: &Row, keys: &Keys) -> (u8, Body) {
    open_bytes(row.notification_id, row.id, row.version, &row.state, keys)
}

/// [`open_state`] of any `state` (an event's or a snapshot's) of the row
/// `(id, version)`; `label` names it in messages.
pub(crate) fn open_bytes(
    label: i64,
    id: [u8; 16],
    version: u64,
    state: &[u8],
    keys: &Keys,
) -> (u8, Body) {
    let (&flags, payload) = state.split_first().expect("state has a flags byte");
    assert_eq!(flags & !0x07, 0, "row {label}: unknown flag bits");
    assert!(
        flags & 0x04 == 0 || flags & 0x02 != 0,
        "row {label}: the data key bit without the encrypted bit"
    );
    let mut body = payload.to_vec();
    if flags & 0x02 != 0 {
        let key = if flags & 0x04 != 0 {
            keys.data
                .get(&id)
                .unwrap_or_else(|| panic!("row {label}: no data key"))
        } else {
            keys.application
                .as_ref()
                .expect("an encrypted row, but no key")
        };
        assert!(body.len() >= 12 + 16, "encrypted payload too short");
        let (nonce, ciphertext) = body.split_at(12);
        let mut aad = id.to_vec();
        aad.extend_from_slice(&version.to_be_bytes());
        let cipher = Aes256Gcm::new_from_slice(key).unwrap();
        body = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .unwrap_or_else(|_| panic!("row {label}: does not decrypt"));
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
            "row {label}: bytes after the zlib stream"
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
pub(crate) fn pre_image_hash(row: &Row, body: &Body) -> [u8; 32] {
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
