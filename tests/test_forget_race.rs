//! A forget that commits between a save and the automatic snapshot that
//! save calls for: the snapshot is refused (`Error::Forgotten`, kept for
//! `take_snapshot_error`), never stored under the application key, where
//! the forgotten aggregate's state would stay readable. The forget runs
//! from the crash hook at `after_commit`, between the two, as another
//! process's would; this binary holds that one test, since the hook is
//! the whole process's.
//!
//! The saving application caches no data key here, so that it looks for
//! the key after the forget, as a process that did not create the
//! aggregate would. (One that still holds the key in its cache seals the
//! snapshot under it, the destroyed key: a row nobody else can open.)

use std::path::PathBuf;
use std::sync::Mutex;

use eventsourcing::Cipher;
use eventsourcing::prelude::*;

#[aggregate(key = per_aggregate)]
#[derive(Debug, Default)]
struct Patient {
    notes: Vec<String>,
}

#[aggregate]
impl Patient {
    #[created(Admitted)]
    fn admit(&mut self) {}

    #[event(NoteAdded)]
    fn add_note(&mut self, note: String) {
        self.notes.push(note);
    }
}

/// The database and the aggregate the hook forgets, once.
static FORGET: Mutex<Option<(PathBuf, Uuid)>> = Mutex::new(None);

fn forget_now(point: &'static str) {
    if point != "after_commit" {
        return;
    }
    let Some((path, id)) = FORGET.lock().unwrap().take() else {
        return;
    };
    let other = Application::builder()
        .db_uri(format!("sqlite:///{}", path.display()))
        .cipher(Cipher::new([8; 32]))
        .build()
        .unwrap();
    other.forget::<Patient>(id).unwrap();
}

#[test]
fn a_snapshot_due_after_a_forget_is_refused() {
    eventsourcing::__private::set_crash_hook(forget_now);
    let db = support::sqlite::FileDb::new();
    let app = db
        .builder()
        .cipher(Cipher::new([8; 32]))
        .snapshot_every::<Patient>(3)
        .data_key_cache(0)
        .build()
        .unwrap();
    let mut patient = Patient::admit();
    patient.add_note("first".into());
    app.save(&mut patient).unwrap();

    *FORGET.lock().unwrap() = Some((db.path.clone(), patient.id()));
    patient.add_note("secret".into());
    app.save(&mut patient).unwrap(); // version 3: a snapshot is due
    assert!(FORGET.lock().unwrap().is_none(), "the hook ran");

    let error = app.take_snapshot_error();
    assert!(matches!(error, Some(Error::Forgotten { .. })), "{error:?}");
    let snapshot = app
        .event_store()
        .recorder()
        .select_snapshot(patient.id(), None)
        .unwrap();
    assert!(snapshot.is_none(), "no snapshot of a forgotten aggregate");
    assert!(matches!(
        app.repository().get::<Patient>(patient.id()),
        Err(Error::Forgotten { .. })
    ));
}
