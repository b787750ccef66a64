//! Per-aggregate data keys and forgetting (FORMAT.md, "Per-aggregate
//! keys") on every store: the flags each kind of record is stored with,
//! what forgetting deletes and records, what reading a forgotten aggregate
//! gives, followers passing over its older notifications, and the bytes of
//! a SQLite file and its write-ahead log after a forget.

use std::collections::HashMap;
use std::ops::ControlFlow;

use eventsourcing::follower::{Envelope, Follower, HandleError, Policy};
use eventsourcing::prelude::*;
use eventsourcing::recorder::EventQuery;
use eventsourcing::{ApplicationBuilder, Cipher, Hash};
use support::stores::each_store;

/// Personal data: each patient under a data key of its own.
#[aggregate(key = per_aggregate)]
#[derive(Debug, Default)]
struct Patient {
    name: String,
    notes: Vec<String>,
    ward: Option<String>,
}

#[aggregate]
impl Patient {
    #[created(Admitted)]
    fn admit(&mut self, name: String) {
        self.name = name;
    }

    #[event(NoteAdded)]
    fn add_note(&mut self, note: String) {
        self.notes.push(note);
    }

    /// Which ward discharged the patient: not personal, kept readable.
    #[event(Discharged, public)]
    fn discharge(&mut self, ward: String) {
        self.ward = Some(ward);
    }
}

/// Under the application key.
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

const KEY: [u8; 32] = [42; 32];

fn keyed(builder: ApplicationBuilder) -> ApplicationBuilder {
    builder
        .cipher(Cipher::new(KEY))
        .snapshot_every::<Patient>(2)
}

fn flags(app: &Application, id: Uuid) -> Vec<u8> {
    app.event_store()
        .recorder()
        .events(&EventQuery::new(id))
        .unwrap()
        .iter()
        .map(|row| row.state[0])
        .collect()
}

fn patient(app: &Application, name: &str, notes: usize) -> Patient {
    let mut patient = Patient::admit(name.into());
    for n in 0..notes {
        patient.add_note(format!("{name} note {n}"));
    }
    app.save(&mut patient).unwrap();
    patient
}

#[test]
fn each_kind_of_record_has_its_flags_and_loads() {
    each_store(keyed, |store, app| {
        let mut ada = patient(app, "Ada", 2);
        ada.discharge("East".into());
        app.save(&mut ada).unwrap();
        let mut ledger = Ledger::open();
        ledger.write();
        app.save(&mut ledger).unwrap();

        // Under the data key (0x06, or 0x07 compressed), but the public
        // event in plaintext (0x00 or 0x01); the ledger under the
        // application key.
        let ada_flags = flags(app, ada.id());
        assert!(
            ada_flags[..3].iter().all(|f| f & !1 == 0x06),
            "{store}: {ada_flags:?}"
        );
        assert_eq!(ada_flags[3] & !1, 0x00, "{store}");
        assert!(
            flags(app, ledger.id()).iter().all(|f| f & !1 == 0x02),
            "{store}"
        );
        let snapshot = app
            .event_store()
            .recorder()
            .select_snapshot(ada.id(), None)
            .unwrap()
            .expect("a snapshot every 2 events");
        assert_eq!(
            snapshot.state[0] & !1,
            0x06,
            "{store}: the snapshot uses the data key"
        );

        let loaded: Patient = app.repository().get(ada.id()).unwrap();
        assert_eq!(loaded.notes, ["Ada note 0", "Ada note 1"], "{store}");
        assert_eq!(loaded.ward.as_deref(), Some("East"), "{store}");
        assert_eq!(
            app.event_store().verify(ada.id()).unwrap(),
            ada.head(),
            "{store}"
        );
        let first: Patient = app.repository().get_at(ada.id(), 1).unwrap();
        assert_eq!(first.name, "Ada", "{store}");
        assert!(
            app.event_store()
                .recorder()
                .select_data_key(ada.id())
                .unwrap()
                .is_some(),
            "{store}"
        );
    });
}

/// Names by patient, deleted when a patient is forgotten; counts the
/// forgotten events it saw.
#[derive(Default)]
struct Names {
    names: HashMap<Uuid, String>,
    forgotten: usize,
}

struct NamesPolicy;

impl Policy<Names> for NamesPolicy {
    const NAME: &'static str = "Names";

    fn topics() -> Option<Vec<&'static str>> {
        None
    }

    fn handle(&mut self, names: &mut Names, envelope: &Envelope) -> Result<bool, HandleError> {
        if envelope.is_forgotten() {
            names.names.remove(&envelope.originator_id());
            names.forgotten += 1;
            return Ok(true);
        }
        if let Some(PatientEvent::Admitted { name }) = envelope.decode::<PatientEvent>()? {
            names.names.insert(envelope.originator_id(), name);
            return Ok(true);
        }
        Ok(false)
    }
}

#[test]
fn forgetting_destroys_the_key_and_leaves_a_chained_plaintext_record() {
    each_store(keyed, |store, app| {
        let mut early = Follower::in_memory(NamesPolicy, Names::default())
            .follow(app)
            .start()
            .unwrap();
        let ada = patient(app, "Ada", 3);
        let bob = patient(app, "Bob", 1);
        let mut ledger = Ledger::open();
        app.save(&mut ledger).unwrap();
        early.run_until_caught_up().unwrap();
        assert_eq!(early.state().lock().unwrap().names.len(), 2, "{store}");
        let head = app.event_store().verify(ada.id()).unwrap();

        let id = app.forget::<Patient>(ada.id()).unwrap();

        // The Forgotten record: last, plaintext, `{}`, chained to the head.
        let rows = app
            .event_store()
            .recorder()
            .events(&EventQuery::new(ada.id()))
            .unwrap();
        let last = rows.last().unwrap();
        assert_eq!(last.topic, "Patient.Forgotten", "{store}");
        assert_eq!(last.originator_version, 5, "{store}");
        assert_eq!(last.state[0], 0x00, "{store}");
        assert_eq!(&last.state[1..33], &head.0, "{store}: chained to the head");
        assert_eq!(&last.state[41..43], b"{}", "{store}");
        let notification = app
            .event_store()
            .recorder()
            .select_notification_of(ada.id(), 5);
        assert_eq!(notification.unwrap().map(|n| n.id), Some(id), "{store}");
        let forgotten = app.notification_log().decode(
            app.event_store()
                .recorder()
                .select_notification_of(ada.id(), 5)
                .unwrap()
                .unwrap(),
        );
        assert_eq!(forgotten.unwrap().previous_hash, head, "{store}");

        // Key and snapshots gone, with the rows of the events kept.
        let recorder = app.event_store().recorder();
        assert!(
            recorder.select_data_key(ada.id()).unwrap().is_none(),
            "{store}"
        );
        assert!(
            recorder.select_snapshot(ada.id(), None).unwrap().is_none(),
            "{store}"
        );
        assert_eq!(rows.len(), 5, "{store}");

        every_read_is_forgotten(store, app, ada.id());
        // A second forget, and one of an aggregate without a data key.
        assert!(matches!(
            app.forget::<Patient>(ada.id()),
            Err(Error::Forgotten { .. })
        ));
        assert!(matches!(
            app.forget::<Ledger>(ledger.id()),
            Err(Error::NoDataKey { .. })
        ));
        assert!(matches!(
            app.forget::<Patient>(Uuid::new_v4()),
            Err(Error::NotFound { .. })
        ));

        // Every other aggregate still loads and verifies.
        let bob_again: Patient = app.repository().get(bob.id()).unwrap();
        assert_eq!(bob_again.notes, ["Bob note 0"], "{store}");
        assert_eq!(
            app.event_store().verify(bob.id()).unwrap(),
            bob.head(),
            "{store}"
        );
        assert_eq!(
            app.event_store().verify(ledger.id()).unwrap(),
            ledger.head(),
            "{store}"
        );

        followers_learn_of_it(store, app, &mut early, id);
    });
}

/// Every way of reading forgotten `ada` is a typed error, not a decryption
/// one.
fn every_read_is_forgotten(store: &str, app: &Application, ada: Uuid) {
    let recorder = app.event_store().recorder();
    // Every way of reading it is a typed error, not a decryption one.
    let is_forgotten = |result: Result<Patient, Error>| matches!(result, Err(Error::Forgotten { id }) if id == ada);
    let got = app.repository().get::<Patient>(ada);
    assert!(
        is_forgotten(got),
        "{store}: {:?}",
        app.repository().get::<Patient>(ada)
    );
    assert!(is_forgotten(app.repository().get_at(ada, 2)), "{store}");
    assert!(
        is_forgotten(app.repository().get_as_of(ada, i64::MAX)),
        "{store}"
    );
    assert!(
        matches!(app.event_store().verify(ada), Err(Error::Forgotten { .. })),
        "{store}"
    );
    assert!(matches!(
        app.repository().events::<Patient>(ada),
        Err(Error::Forgotten { .. })
    ));
    let older = recorder.select_notification_of(ada, 2).unwrap().unwrap();
    assert!(
        matches!(
            app.notification_log().decode(older),
            Err(Error::Forgotten { .. })
        ),
        "{store}"
    );
    assert!(!app.repository().contains(ada).unwrap(), "{store}");
    assert!(app.is_forgotten(ada).unwrap(), "{store}");
}

/// A follower that had read the forgotten patient deletes its copy; one
/// that starts after the forget passes over the unreadable notifications
/// and still gets the Forgotten event (notification `id`, the last).
fn followers_learn_of_it(
    store: &str,
    app: &Application,
    early: &mut Follower<NamesPolicy, eventsourcing::follower::InMemory<Names>>,
    id: u64,
) {
    // A follower that had read the patient deletes its copy; one that
    // starts now passes over the unreadable notifications and still
    // gets the Forgotten event.
    early.run_until_caught_up().unwrap();
    let state = early.state();
    let names = state.lock().unwrap();
    assert_eq!(names.forgotten, 1, "{store}");
    assert_eq!(names.names.values().collect::<Vec<_>>(), ["Bob"], "{store}");
    drop(names);
    let mut late = Follower::in_memory(NamesPolicy, Names::default())
        .name("LateNames")
        .follow(app)
        .start()
        .unwrap();
    late.run_until_caught_up().unwrap();
    let state = late.state();
    let names = state.lock().unwrap();
    assert_eq!((names.names.len(), names.forgotten), (1, 1), "{store}");
    assert_eq!(
        late.position(app.name()),
        Some(id),
        "{store}: read to the head"
    );
}

#[test]
fn a_new_process_with_the_key_cannot_read_a_forgotten_aggregate() {
    let db = support::sqlite::FileDb::new();
    let app = keyed(db.builder()).build().unwrap();
    let ada = patient(&app, "Ada", 1);
    app.forget::<Patient>(ada.id()).unwrap();
    drop(app);
    let again = keyed(db.builder()).build().unwrap();
    assert!(matches!(
        again.repository().get::<Patient>(ada.id()),
        Err(Error::Forgotten { .. })
    ));
    let mut recorded = Vec::new();
    again
        .event_store()
        .recorder()
        .select_events(&EventQuery::new(ada.id()), &mut |row| {
            recorded.push(
                again
                    .event_store()
                    .mapper()
                    .decode(row.to_owned())
                    .map(|e| e.topic.into_owned()),
            );
            Ok(ControlFlow::Continue(()))
        })
        .unwrap();
    assert!(matches!(recorded[0], Err(Error::Forgotten { .. })));
    assert_eq!(recorded[2].as_deref().ok(), Some("Patient.Forgotten"));
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// The bytes of the database file and of its write-ahead log (when there
/// is one).
fn file_bytes(path: &std::path::Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if let Ok(log) = std::fs::read(wal) {
        bytes.extend(log);
    }
    bytes
}

#[test]
fn after_forget_no_byte_of_the_key_is_left_in_the_sqlite_file_or_its_log() {
    let db = support::sqlite::FileDb::new();
    let app = keyed(db.builder()).build().unwrap();
    let secret = "Ada Lovelace, born 1815-12-10";
    let ada = patient(&app, secret, 4);
    let bob = patient(&app, "Bob", 1);
    let row = app
        .event_store()
        .recorder()
        .select_data_key(ada.id())
        .unwrap()
        .unwrap();
    // The application key opens exactly this: the wrapped data key.
    assert_eq!(row.wrapped_key.len(), 60);
    let before = file_bytes(&db.path);
    assert!(
        contains(&before, &row.wrapped_key),
        "the search finds the key before"
    );
    assert!(
        !contains(&before, secret.as_bytes()),
        "the field is encrypted"
    );

    app.forget::<Patient>(ada.id()).unwrap();
    let after = file_bytes(&db.path);
    assert!(
        !contains(&after, &row.wrapped_key),
        "the wrapped key is gone"
    );
    // Nor any 16-byte piece of it (a torn copy).
    for piece in row.wrapped_key.chunks(16) {
        assert!(
            !contains(&after, piece),
            "a piece of the wrapped key is left"
        );
    }
    assert!(!contains(&after, secret.as_bytes()));
    let loaded: Patient = app.repository().get(bob.id()).unwrap();
    assert_eq!(loaded.name, "Bob");
}

#[test]
fn bad_keys_and_moved_or_tampered_rows_are_typed_errors() {
    let db = support::sqlite::FileDb::new();
    let app = keyed(db.builder()).build().unwrap();
    let ada = patient(&app, "Ada", 1);
    let bob = patient(&app, "Bob", 1);
    drop(app);
    let fresh = |key: [u8; 32]| db.builder().cipher(Cipher::new(key)).build().unwrap();

    // Another application key: its fingerprint names neither.
    let wrong = fresh([7; 32]);
    let error = wrong.repository().get::<Patient>(ada.id()).unwrap_err();
    assert!(matches!(error, Error::DataKey { .. }), "{error:?}");
    assert!(error.to_string().contains("fingerprint"), "{error}");

    // Ada's wrapped key in Bob's row.
    let conn = db.conn();
    let ada_key: Vec<u8> = conn
        .query_row(
            "SELECT wrapped_key FROM aggregate_keys WHERE originator_id = ?1",
            [ada.id().to_string()],
            |row| row.get(0),
        )
        .unwrap();
    let bob_wrapped: Vec<u8> = conn
        .query_row(
            "SELECT wrapped_key FROM aggregate_keys WHERE originator_id = ?1",
            [bob.id().to_string()],
            |row| row.get(0),
        )
        .unwrap();
    conn.execute(
        "UPDATE aggregate_keys SET wrapped_key = ?1 WHERE originator_id = ?2",
        (&ada_key, bob.id().to_string()),
    )
    .unwrap();
    let error = fresh(KEY)
        .repository()
        .get::<Patient>(bob.id())
        .unwrap_err();
    assert!(
        matches!(error, Error::DataKey { id, .. } if id == bob.id().to_uuid()),
        "{error:?}"
    );

    // A tampered fingerprint, and one of another key.
    for fingerprint in ["0123456789abcdef", "'; DROP TABLE --", ""] {
        conn.execute(
            "UPDATE aggregate_keys SET key_fingerprint = ?1 WHERE originator_id = ?2",
            (fingerprint, ada.id().to_string()),
        )
        .unwrap();
        let error = fresh(KEY)
            .repository()
            .get::<Patient>(ada.id())
            .unwrap_err();
        assert!(matches!(error, Error::DataKey { .. }), "{error:?}");
    }
    conn.execute(
        "UPDATE aggregate_keys SET key_fingerprint = ?1, wrapped_key = x'00' WHERE originator_id = ?2",
        (Cipher::new(KEY).fingerprint().as_str(), ada.id().to_string()),
    )
    .unwrap();
    let error = fresh(KEY)
        .repository()
        .get::<Patient>(ada.id())
        .unwrap_err();
    assert!(matches!(error, Error::DataKey { .. }), "{error:?}");

    // The data key bit without the encrypted bit, and an unknown bit (on
    // Bob, his own key back).
    let bob_key = fresh(KEY);
    let bob_row = conn.execute(
        "UPDATE aggregate_keys SET wrapped_key = ?1 WHERE originator_id = ?2",
        (&bob_wrapped, bob.id().to_string()),
    );
    assert_eq!(bob_row.unwrap(), 1);
    assert_eq!(bob_key.event_store().verify(bob.id()).unwrap(), bob.head());
    for flags in [0x04_u8, 0x0e] {
        conn.execute(
            "UPDATE stored_events SET state = ?1 || substr(state, 2) \
             WHERE originator_id = ?2 AND originator_version = 1",
            (vec![flags], bob.id().to_string()),
        )
        .unwrap();
        let error = fresh(KEY).event_store().verify(bob.id()).unwrap_err();
        assert!(matches!(error, Error::Corrupt { .. }), "{error:?}");
    }
    // Without any key: a data-key record cannot be read, nothing panics.
    let plain = db.builder().build().unwrap();
    let error = plain.repository().get::<Patient>(ada.id()).unwrap_err();
    assert!(matches!(error, Error::Decryption { .. }), "{error:?}");
}

#[test]
fn saving_a_stale_copy_after_forget_is_a_conflict() {
    let app = keyed(Application::builder()).build().unwrap();
    let mut ada = patient(&app, "Ada", 0);
    app.forget::<Patient>(ada.id()).unwrap();
    ada.add_note("late".into());
    assert!(matches!(
        app.save(&mut ada),
        Err(Error::Concurrency { version: 2, .. })
    ));
    // A head is a head: the hash chain of the forgotten aggregate holds.
    let rows = app
        .event_store()
        .recorder()
        .events(&EventQuery::new(ada.id()))
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_ne!(Hash::ZERO, ada.head());
}

/// A projection written with `#[policy]`: names by patient, deleted on
/// `PatientEvent::Forgotten`.
struct Directory;

#[policy]
impl Directory {
    #[on(PatientEvent::Admitted)]
    fn admitted(&self, names: &mut Names, envelope: &Envelope, name: String) {
        names.names.insert(envelope.originator_id(), name);
    }

    #[on(PatientEvent::Forgotten)]
    fn forgotten(&self, names: &mut Names, envelope: &Envelope) {
        names.names.remove(&envelope.originator_id());
        names.forgotten += 1;
    }
}

#[test]
fn a_policy_handles_the_forgotten_event_of_the_types_it_follows() {
    assert_eq!(
        <Directory as Policy<Names>>::topics(),
        Some(vec!["Patient.Admitted", "Patient.Forgotten"])
    );
    let app = keyed(Application::builder()).build().unwrap();
    let ada = patient(&app, "Ada", 2);
    let bob = patient(&app, "Bob", 0);
    let mut directory = Follower::in_memory(Directory, Names::default())
        .follow(&app)
        .start()
        .unwrap();
    directory.run_until_caught_up().unwrap();
    app.forget::<Patient>(ada.id()).unwrap();
    directory.run_until_caught_up().unwrap();
    let state = directory.state();
    let names = state.lock().unwrap();
    assert_eq!(names.forgotten, 1);
    assert_eq!(names.names.keys().collect::<Vec<_>>(), [&bob.id()]);
}
