//! Rotating the application key: every data key is re-wrapped under the
//! new key, a hundred rows per transaction. A rotation killed with SIGKILL
//! after its first batch (the child process kills itself at the crash
//! point `after_rewrap_batch`) leaves some rows done and the others as
//! they were, all readable with both keys configured; run again, it
//! finishes, and a third run changes nothing. Afterwards every aggregate
//! loads with the new key alone, except records encrypted directly under
//! the old application key, which still need it.

use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use eventsourcing::prelude::*;
use eventsourcing::{Cipher, Compression};
use support::sqlite::FileDb;

#[aggregate(key = per_aggregate)]
#[derive(Debug, Default)]
struct Member {
    email: String,
}

#[aggregate]
impl Member {
    #[created(Joined)]
    fn join(&mut self, email: String) {
        self.email = email;
    }
}

/// Under the application key: its records stay under the old key.
#[aggregate]
#[derive(Debug, Default)]
struct Club {
    members: u32,
}

#[aggregate]
impl Club {
    #[created(Founded)]
    fn found(&mut self) {}

    #[event(Grew)]
    fn grow(&mut self) {
        self.members += 1;
    }
}

const OLD: [u8; 32] = [0x11; 32];
const NEW: [u8; 32] = [0x22; 32];
/// More than two batches of a rotation.
const MEMBERS: usize = 250;

const CHILD: &str = "ES_TEST_ROTATION_CHILD";

fn fingerprint_counts(db: &FileDb) -> (usize, usize) {
    let count = |key: [u8; 32]| -> usize {
        db.conn()
            .query_row(
                "SELECT count(*) FROM aggregate_keys WHERE key_fingerprint = ?1",
                [Cipher::new(key).fingerprint().as_str()],
                |row| row.get::<_, i64>(0),
            )
            .map(|n| usize::try_from(n).unwrap())
            .unwrap()
    };
    (count(OLD), count(NEW))
}

fn app(db: &FileDb, key: [u8; 32], previous: Option<[u8; 32]>) -> Application {
    let mut builder = db
        .builder()
        .cipher(Cipher::new(key))
        .compression(Some(Compression::Zlib));
    if let Some(previous) = previous {
        builder = builder.previous_cipher(Cipher::new(previous));
    }
    builder.build().unwrap()
}

/// How many of `members` load with `app`, and the error of one that does
/// not (if any).
fn loadable(app: &Application, members: &[Uuid]) -> (usize, Option<Error>) {
    let mut loaded = 0;
    let mut failed = None;
    for id in members {
        match app.repository().get::<Member>(*id) {
            Ok(member) => {
                assert!(member.email.ends_with("@example.org"));
                loaded += 1;
            }
            Err(error) => failed = Some(error),
        }
    }
    (loaded, failed)
}

fn kill_myself(point: &'static str) {
    static DONE: AtomicBool = AtomicBool::new(false);
    if point == "after_rewrap_batch" && !DONE.swap(true, Ordering::SeqCst) {
        // The first batch is committed; die before the second.
        let _ = support::child::signal(std::process::id(), "-KILL");
        std::thread::sleep(std::time::Duration::from_mins(1));
    }
}

/// The rotation, configured from the environment like a command-line tool
/// would be: `CIPHER_KEY` the new key, `CIPHER_KEY_PREVIOUS` the old one.
#[test]
fn rotation_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    eventsourcing::__private::set_crash_hook(kill_myself);
    let app = Application::from_env().unwrap();
    let rotation = app.rotate_keys().unwrap();
    println!("rotated {}", rotation.rewrapped);
}

#[test]
fn a_rotation_killed_halfway_completes_when_run_again() {
    let db = FileDb::new();
    let before = app(&db, OLD, None);
    let members: Vec<Uuid> = (0..MEMBERS)
        .map(|n| {
            let mut member = Member::join(format!("member{n}@example.org"));
            before.save(&mut member).unwrap();
            member.id()
        })
        .collect();
    let mut club = Club::found();
    club.grow();
    before.save(&mut club).unwrap();
    drop(before);
    assert_eq!(fingerprint_counts(&db), (MEMBERS, 0));

    let uri = db.uri();
    let (new, old) = (STANDARD.encode(NEW), STANDARD.encode(OLD));
    let killed = support::child::output(
        "rotation_child",
        CHILD,
        &[
            ("DB_URI", uri.as_ref()),
            ("CIPHER_KEY", new.as_ref()),
            ("CIPHER_KEY_PREVIOUS", old.as_ref()),
        ],
    );
    assert!(!killed.status.success(), "the child was to be killed");
    assert!(!String::from_utf8_lossy(&killed.stdout).contains("rotated"));
    // One batch done, the rest as it was.
    assert_eq!(fingerprint_counts(&db), (MEMBERS - 100, 100));

    // Halfway, both keys are needed, and both together read everything.
    let both = app(&db, NEW, Some(OLD));
    assert_eq!(loadable(&both, &members).0, MEMBERS);
    let (only_new, error) = loadable(&app(&db, NEW, None), &members);
    assert_eq!(only_new, 100);
    assert!(matches!(error, Some(Error::DataKey { .. })), "{error:?}");
    assert_eq!(loadable(&app(&db, OLD, None), &members).0, MEMBERS - 100);

    // Run again: it finishes; once more: nothing left to do.
    let rotation = both.rotate_keys().unwrap();
    assert_eq!(rotation.rewrapped, MEMBERS - 100);
    assert_eq!(
        rotation.fingerprint,
        Cipher::new(NEW).fingerprint().as_str()
    );
    assert_eq!(both.rotate_keys().unwrap().rewrapped, 0);
    assert_eq!(fingerprint_counts(&db), (0, MEMBERS));

    // The new key alone reads every member; the club's records were
    // encrypted under the old application key itself, and need it.
    let after = app(&db, NEW, None);
    let (loaded, error) = loadable(&after, &members);
    assert_eq!(loaded, MEMBERS, "{error:?}");
    assert!(matches!(
        after.repository().get::<Club>(club.id()),
        Err(Error::Decryption { .. })
    ));
    let club_again: Club = both.repository().get(club.id()).unwrap();
    assert_eq!(club_again.members, 1);
    // New members made during or after the rotation take the new key.
    let mut late = Member::join("late@example.org".into());
    both.save(&mut late).unwrap();
    assert_eq!(fingerprint_counts(&db), (0, MEMBERS + 1));
}

#[test]
fn a_previous_key_needs_a_current_one_and_rotation_needs_a_key() {
    let error = Application::builder()
        .previous_cipher_key(STANDARD.encode(OLD))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Config {
                variable: "CIPHER_KEY_PREVIOUS",
                ..
            }
        ),
        "{error}"
    );
    let error = Application::builder()
        .cipher(Cipher::new(NEW))
        .previous_cipher_key("not base64!")
        .build()
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Config {
                variable: "CIPHER_KEY_PREVIOUS",
                ..
            }
        ),
        "{error}"
    );
    let plain = Application::builder().build().unwrap();
    assert!(matches!(plain.rotate_keys(), Err(Error::Config { .. })));
}
