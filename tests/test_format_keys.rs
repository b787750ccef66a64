//! The independent check of FORMAT.md version 2's per-aggregate keys.
//!
//! A flow with every kind of record (an aggregate type with per-aggregate
//! keys, one of whose events is public; one under the application key; a
//! public type; snapshots of each; a forgotten aggregate) runs against a
//! SQLite file, compressed or not, with a key and without. Then the file
//! is read by the reader in `format_reader/` alone: the data keys are
//! unwrapped from `aggregate_keys` with the application key (checking the
//! fingerprint), each row is opened by its flags (`0x00`/`0x01`,
//! `0x02`/`0x03`, `0x06`/`0x07`), every readable chain is checked link by
//! link, and the forgotten aggregate is what FORMAT.md says: no key row,
//! no snapshot, its older rows in place, and a last plaintext record
//! `{}` chained to the head it had.

mod format_reader;

use std::collections::HashMap;

use eventsourcing::prelude::*;
use eventsourcing::{Cipher, Compression};
use format_reader::{
    Keys, check_schema, open_bytes, open_state, pre_image_hash, read_data_keys, read_rows,
};

#[aggregate(key = per_aggregate)]
#[derive(Debug, Default)]
struct Patient {
    name: String,
    ward: Option<String>,
}

#[aggregate]
impl Patient {
    #[created(Admitted)]
    fn admit(&mut self, name: String) {
        self.name = name;
    }

    #[event(Renamed)]
    fn rename(&mut self, name: String) {
        self.name = name;
    }

    #[event(Discharged, public)]
    fn discharge(&mut self, ward: String) {
        self.ward = Some(ward);
    }
}

#[aggregate]
#[derive(Debug, Default)]
struct Ledger {
    lines: u32,
}

#[aggregate]
impl Ledger {
    #[created(Opened)]
    fn open(&mut self) {}

    #[event(Written)]
    fn write(&mut self) {
        self.lines += 1;
    }
}

#[aggregate(public)]
#[derive(Debug, Default)]
struct Notice {
    text: String,
}

#[aggregate]
impl Notice {
    #[created(Posted)]
    fn post(&mut self, text: String) {
        self.text = text;
    }

    #[event(Edited)]
    fn edit(&mut self, text: String) {
        self.text = text;
    }
}

const KEY: [u8; 32] = [0x5a; 32];

/// What the flow left: each aggregate's head as the application had it,
/// and the forgotten one's id with its head before the forget.
struct Flow {
    heads: HashMap<Uuid, Hash>,
    forgotten: Uuid,
    forgotten_head: Hash,
}

fn flow(app: &Application) -> Flow {
    let mut heads = HashMap::new();
    let mut kept = Patient::admit("Ada".into());
    kept.rename("Ada L.".into());
    kept.discharge("East".into());
    kept.rename("Ada Lovelace".into());
    let mut gone = Patient::admit("Bob".into());
    gone.rename("Robert".into());
    gone.rename("Bobby".into());
    gone.rename("Bob".into());
    let mut ledger = Ledger::open();
    ledger.write();
    ledger.write();
    let mut notice = Notice::post("Open on Sunday".into());
    notice.edit("Closed on Sunday".into());
    app.save((&mut kept, &mut gone, &mut ledger, &mut notice))
        .unwrap();
    for (id, head) in [
        (kept.id(), kept.head()),
        (ledger.id(), ledger.head()),
        (notice.id(), notice.head()),
    ] {
        heads.insert(id, head);
    }
    let forgotten_head = gone.head();
    match app.forget::<Patient>(gone.id()) {
        Ok(_) => {}
        // Without a key there is no data key, and nothing to forget.
        Err(Error::NoDataKey { .. }) => {
            heads.insert(gone.id(), forgotten_head);
        }
        Err(error) => panic!("{error}"),
    }
    Flow {
        heads,
        forgotten: gone.id(),
        forgotten_head,
    }
}

/// The flags a record of `topic` must have, before compression.
fn expected_flags(topic: &str, keyed: bool) -> u8 {
    if !keyed || topic.starts_with("Notice") || topic == "Patient.Discharged" {
        0x00
    } else if topic.starts_with("Patient") {
        0x06
    } else {
        0x02
    }
}

fn check(path: &std::path::Path, keyed: bool, zlib: bool, flow: &Flow) {
    check_schema(path);
    let keys = Keys {
        application: keyed.then_some(KEY),
        data: if keyed {
            read_data_keys(path, &KEY)
        } else {
            HashMap::new()
        },
    };
    let forgotten = *flow.forgotten.as_bytes();
    assert_eq!(
        keys.data.len(),
        usize::from(keyed),
        "one key, the kept patient's"
    );
    assert!(
        !keys.data.contains_key(&forgotten),
        "the forgotten key is deleted"
    );

    let mut heads: HashMap<[u8; 16], [u8; 32]> = HashMap::new();
    let mut versions: HashMap<[u8; 16], u64> = HashMap::new();
    for row in read_rows(path) {
        let version = versions.entry(row.id).or_insert(0);
        *version += 1;
        assert_eq!(row.version, *version);
        if keyed && row.id == forgotten {
            if row.topic == "Patient.Forgotten" {
                // Plaintext, uncompressed, `{}`, chained to the head.
                let (flags, body) = open_state(&row, &keys);
                assert_eq!(flags, 0x00);
                assert_eq!(body.data, b"{}");
                assert_eq!(body.previous_hash, flow.forgotten_head.0);
                assert_eq!(pre_image_hash(&row, &body), body.event_hash);
                assert_eq!(row.version, 5);
            } else {
                // Still in its place, under a key nobody has.
                assert_eq!(row.state[0] & !1, 0x06, "row {}", row.notification_id);
            }
            continue;
        }
        let (flags, body) = open_state(&row, &keys);
        // Compressed only where that makes the record smaller.
        assert!(
            flags & 0x01 <= u8::from(zlib),
            "row {}",
            row.notification_id
        );
        let compressed = flags & 0x01;
        assert_eq!(
            flags,
            expected_flags(&row.topic, keyed) | compressed,
            "row {} ({})",
            row.notification_id,
            row.topic
        );
        let previous = heads.get(&row.id).copied().unwrap_or([0; 32]);
        assert_eq!(body.previous_hash, previous, "row {}", row.notification_id);
        assert_eq!(pre_image_hash(&row, &body), body.event_hash);
        heads.insert(row.id, body.event_hash);
    }
    assert_eq!(heads.len(), flow.heads.len());
    for (id, head) in &flow.heads {
        assert_eq!(heads[id.as_bytes()], head.0, "head of {id}");
    }
    check_snapshots(path, &keys, keyed, zlib, forgotten);
}

/// Every snapshot opens by its flags with the same keys, and the forgotten
/// aggregate has none.
fn check_snapshots(
    path: &std::path::Path,
    keys: &Keys,
    keyed: bool,
    zlib: bool,
    forgotten: [u8; 16],
) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut select = conn
        .prepare("SELECT originator_id, originator_version, topic, state FROM snapshots")
        .unwrap();
    let rows: Vec<(String, i64, String, Vec<u8>)> = select
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut topics = Vec::new();
    for (id_text, version, topic, state) in rows {
        let id = format_reader::parse_uuid_text(&id_text);
        if keyed {
            assert_ne!(
                id, forgotten,
                "a snapshot of the forgotten aggregate is left"
            );
        }
        let version = u64::try_from(version).unwrap();
        let (flags, body) = open_bytes(-1, id, version, &state, keys);
        let expected = match topic.as_str() {
            "Patient" if keyed => 0x06,
            "Ledger" if keyed => 0x02,
            _ => 0x00,
        };
        assert!(flags & 0x01 <= u8::from(zlib), "snapshot of {topic}");
        assert_eq!(flags, expected | (flags & 0x01), "snapshot of {topic}");
        assert!(
            serde_json::from_slice::<serde_json::Value>(&body.data)
                .unwrap()
                .is_object()
        );
        topics.push(topic);
    }
    topics.sort();
    let expected: &[&str] = if keyed {
        &["Ledger", "Notice", "Patient"]
    } else {
        &["Ledger", "Notice", "Patient", "Patient"]
    };
    assert_eq!(topics, expected, "one snapshot of each kept aggregate");
}

fn run(keyed: bool, zlib: bool) {
    let db = support::sqlite::FileDb::new();
    let mut builder = db
        .builder()
        .snapshot_every::<Patient>(4)
        .snapshot_every::<Ledger>(3)
        .snapshot_every::<Notice>(2);
    if keyed {
        builder = builder.cipher(Cipher::new(KEY));
    }
    if zlib {
        builder = builder.compression(Some(Compression::Zlib));
    }
    let app = builder.build().unwrap();
    let flow = flow(&app);
    assert!(app.take_snapshot_error().is_none());
    if !keyed {
        // Nothing was forgotten: Bob is still there.
        let bob: Patient = app.repository().get(flow.forgotten).unwrap();
        assert_eq!(bob.name, "Bob");
    }
    drop(app);
    check(&db.path, keyed, zlib, &flow);
}

#[test]
fn keyed_rows_follow_format_md_version_2() {
    run(true, false);
}

#[test]
fn keyed_and_compressed_rows_follow_format_md_version_2() {
    run(true, true);
}

#[test]
fn without_a_key_every_type_is_plaintext() {
    run(false, false);
    run(false, true);
}
