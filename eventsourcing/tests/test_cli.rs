//! The command-line tool, run as a child process against real stores: a
//! SQLite file and a scratch PostgreSQL schema, each plain and encrypted.
//!
//! PostgreSQL is found at `EVENTSOURCING_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); without a server its cases
//! are skipped, saying so, unless `EVENTSOURCING_REQUIRE_POSTGRES` is set.

mod cli_support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use eventsourcing::json::Value;
use eventsourcing::prelude::*;
use eventsourcing::recorder::{Batch, TrackingKey, TrackingUpdate};
use eventsourcing::{Cipher, DbUri, generate_cipher_key};

use cli_support::{BIN, Counter, Keep, PATIENCE, Store, bare, populate, run};
// ---------------------------------------------------------------------------
// verify, inspect, log, stats
// ---------------------------------------------------------------------------

#[test]
fn every_reading_subcommand_reads_every_kind_of_store() {
    for store in Store::every_kind() {
        let name = &store.name;
        let aggregates = populate(&store.app());

        let verified = store.cli(&["--json", "verify"]).ok().json();
        assert_eq!(verified["ok"], true, "{name}");
        assert_eq!(verified["aggregates"], 3, "{name}");
        assert_eq!(verified["events"], 9, "{name}");
        let text = store.cli(&["verify"]).ok();
        assert!(
            text.stdout.contains("3 aggregates, 9 events"),
            "{name}: {}",
            text.stdout
        );

        // inspect: every event decoded, the last hash the aggregate's head.
        let (id, head) = aggregates[2];
        let inspected = store
            .cli(&["--json", "inspect", &id.to_string()])
            .ok()
            .json();
        assert_eq!(inspected["head"], head.to_hex(), "{name}");
        let events = inspected["events"].as_array().unwrap();
        let versions: Vec<_> = events
            .iter()
            .map(|e| e["originator_version"].clone())
            .collect();
        assert_eq!(versions, [1, 2, 3, 4], "{name}");
        assert_eq!(
            events[1]["data"],
            eventsourcing::json::json!({"amount": 1}),
            "{name}"
        );
        assert!(events.iter().all(|e| e["hash_ok"] == true), "{name}");
        let flags = if store.key.is_some() {
            vec!["encrypted"]
        } else {
            vec![]
        };
        assert_eq!(
            events[0]["flags"],
            eventsourcing::json::json!(flags),
            "{name}"
        );

        let at = store
            .cli(&["--json", "inspect", &id.to_string(), "--at", "2"])
            .ok()
            .json();
        assert_eq!(at["version"], 2, "{name}");
        assert_eq!(at["events"].as_array().unwrap().len(), 2, "{name}");
        let text = store.cli(&["inspect", &id.to_string(), "--at", "2"]).ok();
        assert_eq!(text.stdout.lines().count(), 2, "{name}");
        assert!(
            text.stdout.contains("Counter.Added"),
            "{name}: {}",
            text.stdout
        );

        // log: every notification from --from on, in order.
        let lines = store
            .cli(&["--json", "log", "--from", "3"])
            .ok()
            .json_lines();
        let ids: Vec<_> = lines.iter().map(|l| l["notification_id"].clone()).collect();
        assert_eq!(ids, [3, 4, 5, 6, 7, 8, 9], "{name}");
        assert!(lines.iter().all(|l| l.get("data").is_some()), "{name}");

        // stats: the counts, and where a follower stands.
        let recorder = store.recorder();
        let key = TrackingKey::new("projection", "counters").partition(1);
        let epoch = recorder.raise_epoch(&key).unwrap().epoch;
        let update = TrackingUpdate::new(key, epoch, 0, 7);
        recorder
            .insert(&Batch::default().with_tracking(&update))
            .unwrap();
        let stats = store.cli(&["--json", "stats"]).ok().json();
        assert_eq!(stats["events"], 9, "{name}");
        assert_eq!(stats["aggregates"], 3, "{name}");
        assert_eq!(stats["notifications_head"], 9, "{name}");
        assert_eq!(stats["topics"]["Counter.Opened"], 3, "{name}");
        assert_eq!(stats["topics"]["Counter.Added"], 6, "{name}");
        let encrypted = if store.key.is_some() { 9 } else { 0 };
        assert_eq!(stats["encrypted_records"], encrypted, "{name}");
        assert!(
            store
                .cli(&["stats"])
                .ok()
                .stdout
                .contains("aggregates:         3")
        );
    }
}

#[test]
fn without_the_key_encrypted_records_stay_opaque() {
    let mut stores = vec![Store::sqlite(true)];
    stores.extend(Store::postgres(true));
    for store in stores {
        let name = &store.name;
        let aggregates = populate(&store.app());
        let id = aggregates[0].0.to_string();

        let inspected = store
            .cli_without_key(&["--json", "inspect", &id])
            .ok()
            .json();
        let events = inspected["events"].as_array().unwrap();
        assert_eq!(events.len(), 2, "{name}");
        for event in events {
            assert_eq!(
                event["topic"].as_str().map(|t| t.starts_with("Counter.")),
                Some(true)
            );
            assert!(event["size"].as_u64().unwrap() > 0, "{name}");
            assert_eq!(
                event["flags"],
                eventsourcing::json::json!(["encrypted"]),
                "{name}"
            );
            assert!(event.get("data").is_none(), "{name}: {event}");
            assert!(event.get("opaque").is_some(), "{name}");
        }

        // Hashes cannot be checked without the key: a usage error, exit 2.
        let verify = store.cli_without_key(&["verify"]);
        assert_eq!(verify.code, Some(2), "{name}");
        assert!(
            verify.stderr.contains("CIPHER_KEY"),
            "{name}: {}",
            verify.stderr
        );
    }
}

/// Flips one byte in the middle of a record.
fn flip_a_byte(state: &[u8]) -> Vec<u8> {
    let mut state = state.to_vec();
    let middle = state.len() / 2;
    state[middle] ^= 0x20;
    state
}

#[test]
fn verify_names_the_aggregate_and_version_of_a_tampered_body_or_hash() {
    for store in Store::every_kind() {
        let name = &store.name;
        let aggregates = populate(&store.app());
        let (id, _) = aggregates[1];
        let recorder = store.recorder();
        let row = recorder.select_notification_of(id, 2).unwrap().unwrap();
        let mapper = store.event_store().mapper().clone();

        // A byte of the stored body.
        store.set_state(row.id, &flip_a_byte(&row.state));
        let broken = store.cli(&["verify"]);
        assert_eq!(broken.code, Some(1), "{name}: {}", broken.stderr);
        let expected = format!("aggregate {id} is broken at version 2");
        assert!(
            broken.stderr.contains(&expected),
            "{name}: {}",
            broken.stderr
        );
        let json = store.cli(&["--json", "verify"]).json();
        assert_eq!(json["error"]["exit_code"], 1, "{name}");
        assert_eq!(json["error"]["aggregate"], id.to_string(), "{name}");
        assert_eq!(json["error"]["version"], 2, "{name}");

        // Then, with the body back, the hash: a valid record (encrypted
        // with the right key, when there is one) whose stored hash is off.
        store.set_state(row.id, &row.state);
        store.cli(&["verify"]).ok();
        let mut event = mapper.decode(row.clone().into_event()).unwrap();
        event.event_hash.0[0] ^= 1;
        store.set_state(row.id, &mapper.encode(&event).unwrap().state);
        let broken = store.cli(&["verify"]);
        assert_eq!(broken.code, Some(1), "{name}: {}", broken.stderr);
        assert!(
            broken.stderr.contains(&expected),
            "{name}: {}",
            broken.stderr
        );
        assert!(
            broken.stderr.contains("event hash does not match"),
            "{name}: {}",
            broken.stderr
        );
    }
}

#[test]
fn verify_checks_snapshots_too() {
    let mut stores = vec![Store::sqlite(false)];
    stores.extend(Store::postgres(true));
    for store in stores {
        let name = &store.name;
        let mut builder = Application::builder()
            .db_uri(&store.db_uri)
            .snapshot_every::<Counter>(2);
        if let Some(key) = &store.key {
            builder = builder.cipher_key(key);
        }
        let aggregates = populate(&builder.build().unwrap());
        let events = store.event_store();
        let taken: usize = aggregates
            .iter()
            .map(|(id, _)| events.snapshots(*id).unwrap().len())
            .sum();
        assert!(taken > 0, "{name}");
        let verified = store.cli(&["--json", "verify"]).ok().json();
        assert_eq!(verified["snapshots"], taken, "{name}");

        let (id, _) = aggregates[2];
        let row = store.recorder().select_snapshot(id, None).unwrap().unwrap();
        store.set_snapshot_state(id, row.originator_version, &flip_a_byte(&row.state));
        let broken = store.cli(&["--json", "verify"]);
        assert_eq!(broken.code, Some(1), "{name}: {}", broken.stderr);
        let error = &broken.json()["error"];
        assert_eq!(error["aggregate"], id.to_string(), "{name}");
        assert_eq!(error["version"], row.originator_version, "{name}");
    }
}

#[test]
fn a_store_that_began_without_a_key_verifies_with_allow_plaintext() {
    let mut store = Store::sqlite(false);
    populate(&store.app());
    let key = generate_cipher_key().unwrap();
    let later = Application::builder()
        .db_uri(&store.db_uri)
        .cipher_key(&key)
        .allow_plaintext(true)
        .build()
        .unwrap();
    populate(&later);
    store.key = Some(key);

    let refused = store.cli(&["verify"]);
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    let verified = store
        .cli(&["--json", "verify", "--allow-plaintext"])
        .ok()
        .json();
    assert_eq!(verified["aggregates"], 6);
    assert_eq!(verified["events"], 18);
}

// ---------------------------------------------------------------------------
// export and import
// ---------------------------------------------------------------------------

fn export_to(store: &Store, dir: &Path) -> PathBuf {
    let path = dir.join("export.jsonl");
    let summary = store
        .cli(&["--json", "export", "--output", path.to_str().unwrap()])
        .ok()
        .json();
    assert_eq!(summary["ok"], true);
    path
}

#[test]
fn export_then_import_into_an_empty_store_keeps_every_record_and_head() {
    for source in Store::every_kind() {
        let name = &source.name;
        let aggregates = populate(&source.app());
        let dir = tempfile::tempdir().unwrap();
        let path = export_to(&source, dir.path());

        // Into the same kind of store, and across to the other kind.
        let mut targets = vec![source.empty_like()];
        let mut other = match source.keep {
            Keep::Dir(_) => Store::postgres(false),
            Keep::Schema(_) => Some(Store::sqlite(false)),
        };
        if let Some(other) = other.as_mut() {
            other.key.clone_from(&source.key);
        }
        targets.extend(other);
        for target in targets {
            let imported = target
                .cli(&["--json", "import", "--input", path.to_str().unwrap()])
                .ok()
                .json();
            assert_eq!(imported["events"], 9, "{name} -> {}", target.name);
            assert_eq!(imported["aggregates"], 3, "{name} -> {}", target.name);
            assert_eq!(imported["same_notification_ids"], true, "{name}");
            assert_eq!(target.cli(&["--json", "verify"]).ok().json()["ok"], true);
            let store = target.event_store();
            for (id, head) in &aggregates {
                assert_eq!(
                    store.verify(*id).unwrap(),
                    *head,
                    "{name} -> {}",
                    target.name
                );
            }
            // The records themselves, byte for byte, in the same order.
            let before = source.recorder().select_notifications(1, 100, &[]).unwrap();
            let after = target.recorder().select_notifications(1, 100, &[]).unwrap();
            assert_eq!(before, after, "{name} -> {}", target.name);
        }
    }
}

#[test]
fn export_to_standard_output_pipes_into_import() {
    let source = Store::sqlite(true);
    let aggregates = populate(&source.app());
    let exported = source.cli(&["export"]).ok();
    let target = source.empty_like();
    let mut child = target
        .command(&["import"], true)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exported.stdout.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for (id, head) in aggregates {
        assert_eq!(target.event_store().verify(id).unwrap(), head);
    }
}

/// The export's lines, its fourth event line (notification 4, version 2
/// of the second counter) changed by `edit`.
fn edit_line(path: &Path, edit: impl Fn(&mut Value)) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut line: Value = eventsourcing::json::from_str(&lines[4]).unwrap();
    assert_eq!(line["kind"], "event");
    edit(&mut line);
    lines[4] = line.to_string();
    lines.join("\n") + "\n"
}

#[test]
fn import_refuses_a_tampered_export_and_writes_nothing() {
    for source in Store::every_kind() {
        let name = &source.name;
        populate(&source.app());
        let dir = tempfile::tempdir().unwrap();
        let path = export_to(&source, dir.path());

        let tampered_state = edit_line(&path, |line| {
            let state = STANDARD.decode(line["state"].as_str().unwrap()).unwrap();
            line["state"] = STANDARD.encode(flip_a_byte(&state)).into();
        });
        let tampered_version = edit_line(&path, |line| {
            line["originator_version"] = (line["originator_version"].as_u64().unwrap() + 1).into();
        });
        let full = std::fs::read_to_string(&path).unwrap();
        let cut_off = full.lines().take(6).collect::<Vec<_>>().join("\n") + "\n";
        for (what, text, code) in [
            ("a byte of a record", tampered_state, 1),
            ("a version", tampered_version, 1),
            ("the end", cut_off, 1),
        ] {
            let bad = dir.path().join("bad.jsonl");
            std::fs::write(&bad, text).unwrap();
            let target = source.empty_like();
            let refused = target.cli(&["import", "--input", bad.to_str().unwrap()]);
            assert_eq!(
                refused.code,
                Some(code),
                "{name}, {what}: {}",
                refused.stderr
            );
            assert!(refused.stderr.contains("refused") || refused.stderr.contains("line"));
            // Nothing written: the store is empty, or was never made.
            if let Ok(uri) = DbUri::parse(&target.db_uri)
                && let Ok(recorder) = uri.open()
            {
                assert_eq!(recorder.max_notification_id().unwrap(), 0, "{name}, {what}");
            }
        }

        // A store that is not empty is refused too, and left as it was.
        let refused = source.cli(&["import", "--input", path.to_str().unwrap()]);
        assert_eq!(refused.code, Some(2), "{name}: {}", refused.stderr);
        assert!(refused.stderr.contains("not empty"), "{name}");
        assert_eq!(
            source.recorder().max_notification_id().unwrap(),
            9,
            "{name}"
        );
    }
}

// ---------------------------------------------------------------------------
// log --follow
// ---------------------------------------------------------------------------

/// Starts `log --follow --json` and hands its lines over a channel.
fn follow(store: &Store) -> (std::process::Child, mpsc::Receiver<Value>) {
    let mut child = store
        .command(&["--json", "log", "--follow"], true)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let value: Value = eventsourcing::json::from_str(&line).unwrap();
            if send.send(value).is_err() {
                break;
            }
        }
    });
    (child, receive)
}

#[test]
fn log_follow_sees_events_written_after_it_started_and_stops_at_the_end_of_input() {
    let mut stores = vec![Store::sqlite(true)];
    stores.extend(Store::postgres(false));
    for store in stores {
        let name = &store.name;
        let app = store.app();
        populate(&app);
        let (mut child, lines) = follow(&store);
        for expected in 1..=9 {
            let line = lines.recv_timeout(PATIENCE).expect("the log goes on");
            assert_eq!(line["notification_id"], expected, "{name}");
        }

        let mut late = Counter::open();
        late.add(42);
        app.save(&mut late).unwrap();
        for (expected, version) in [(10, 1), (11, 2)] {
            let line = lines
                .recv_timeout(PATIENCE)
                .expect("the new events are seen");
            assert_eq!(line["notification_id"], expected, "{name}");
            assert_eq!(line["originator_id"], late.id().to_string(), "{name}");
            assert_eq!(line["originator_version"], version, "{name}");
        }

        drop(child.stdin.take());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{name}");
    }
}

#[test]
fn log_follow_exits_cleanly_on_sigint() {
    let store = Store::sqlite(false);
    populate(&store.app());
    let (mut child, lines) = follow(&store);
    // Once the first line is out, the handler is in place.
    assert_eq!(
        lines.recv_timeout(PATIENCE).expect("the log starts")["notification_id"],
        1
    );
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    drop(child.stdin.take());
}

// ---------------------------------------------------------------------------
// keygen and usage errors
// ---------------------------------------------------------------------------

#[test]
fn keygen_prints_a_usable_new_key() {
    let first = bare(&["keygen"]).ok().stdout;
    let key = first.trim();
    assert_eq!(STANDARD.decode(key).unwrap().len(), 32);
    Cipher::from_base64(key).unwrap();
    let second = bare(&["--json", "keygen"]).ok().json();
    let other = second["cipher_key"].as_str().unwrap();
    assert_ne!(other, key);
    Cipher::from_base64(other).unwrap();
}

#[test]
fn configuration_mistakes_exit_2_and_create_nothing() {
    let missing = bare(&["verify"]);
    assert_eq!(missing.code, Some(2));
    assert!(missing.stderr.contains("DB_URI"), "{}", missing.stderr);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.db");
    let mut command = Command::new(BIN);
    command
        .arg("stats")
        .arg("--db-uri")
        .arg(format!("sqlite:///{}", path.display()))
        .env_remove("DB_URI")
        .env_remove("CIPHER_KEY");
    let absent = run(command);
    assert_eq!(absent.code, Some(2));
    assert!(absent.stderr.contains("no such database file"));
    assert!(!path.exists());

    let store = Store::sqlite(false);
    populate(&store.app());
    let mut command = store.command(&["--json", "verify"], false);
    command.env("CIPHER_KEY", "not a key");
    let bad_key = run(command);
    assert_eq!(bad_key.code, Some(2));
    assert_eq!(bad_key.json()["error"]["kind"], "usage");

    let unknown = bare(&["frobnicate"]);
    assert_eq!(unknown.code, Some(2));

    let nowhere = store.cli(&["inspect", &Uuid::new_v4().to_string()]);
    assert_eq!(nowhere.code, Some(4));
}

// ---------------------------------------------------------------------------
// serve
// ---------------------------------------------------------------------------

/// `GET path` on `addr` (`host:port`) over a plain socket; the body.
fn get(addr: &str, path: &str) -> String {
    use std::io::Read;
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    write!(
        socket,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

#[test]
fn serve_serves_the_log_as_stored_without_the_key_until_sigint() {
    let mut stores = vec![Store::sqlite(true)];
    stores.extend(Store::postgres(true));
    for store in stores {
        let name = &store.name;
        populate(&store.app());
        // No key: the server serves ciphertext as stored.
        let mut child = store
            .command(&["--json", "serve", "--listen", "127.0.0.1:0"], false)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let started: Value = eventsourcing::json::from_str(&first).unwrap();
        let url = started["url"].as_str().unwrap().to_owned();
        let addr = url.trim_start_matches("http://").trim_end_matches('/');

        let page: Value =
            eventsourcing::json::from_str(&get(addr, "/notifications?after=0&limit=100")).unwrap();
        let items = page["items"].as_array().unwrap();
        let rows = store.recorder().select_notifications(1, 100, &[]).unwrap();
        assert_eq!(items.len(), rows.len(), "{name}");
        assert_eq!(rows.len(), 9, "{name}");
        for (item, row) in items.iter().zip(&rows) {
            assert_eq!(item["id"], row.id, "{name}");
            assert_eq!(
                STANDARD.decode(item["state"].as_str().unwrap()).unwrap(),
                row.state,
                "{name}: served as stored"
            );
        }
        // The event browser's first page, beside the log.
        assert!(get(addr, "/").contains("<html"), "{name}");

        let sent = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        assert_eq!(child.wait().unwrap().code(), Some(0), "{name}");
        drop(child.stdin.take());
    }
}

// ---------------------------------------------------------------------------
// rotate-keys
// ---------------------------------------------------------------------------

/// An aggregate whose events go under a data key of its own.
#[aggregate(key = per_aggregate)]
#[derive(Debug, Default)]
struct Secret {
    text: String,
}

#[aggregate]
impl Secret {
    #[created(Written)]
    fn write(&mut self, text: String) {
        self.text = text;
    }
}

#[test]
fn rotate_keys_rewraps_every_data_key_once_and_the_new_key_alone_reads_them() {
    let mut stores = vec![Store::sqlite(true)];
    stores.extend(Store::postgres(true));
    for store in stores {
        let name = &store.name;
        let old = store.key.clone().unwrap();
        let new = generate_cipher_key().unwrap();
        let ids: Vec<Uuid> = (0..3)
            .map(|n| {
                let mut secret = Secret::write(format!("secret {n}"));
                store.app().save(&mut secret).unwrap();
                secret.id()
            })
            .collect();
        let rotate = || {
            let mut command = store.command(&["--json", "rotate-keys"], false);
            command
                .env("CIPHER_KEY", &new)
                .env("CIPHER_KEY_PREVIOUS", &old);
            run(command)
        };
        let first = rotate().ok().json();
        assert_eq!(first["rewrapped"], 3, "{name}");
        assert_eq!(
            first["fingerprint"].as_str().unwrap(),
            Cipher::from_base64(&new).unwrap().fingerprint().to_string(),
            "{name}"
        );
        assert_eq!(rotate().ok().json()["rewrapped"], 0, "{name}: idempotent");

        let with_new = Application::builder()
            .db_uri(&store.db_uri)
            .cipher_key(&new)
            .build()
            .unwrap();
        for (n, id) in ids.iter().enumerate() {
            let secret: Secret = with_new.repository().get(*id).unwrap();
            assert_eq!(secret.text, format!("secret {n}"), "{name}");
        }
        // Without a key there is nothing to rotate to.
        assert_eq!(store.cli_without_key(&["rotate-keys"]).code, Some(2));
    }
}
