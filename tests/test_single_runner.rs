//! The single-thread runner on a SQLite file, where a save and everything
//! the system's followers record because of it are one transaction: a
//! failing follower undoes only its own batch, and commit hooks of other
//! listeners are told once the transaction has committed.

use std::sync::{Arc, Mutex};

use eventsourcing::follower::{Envelope, Processing};
use eventsourcing::prelude::*;
use eventsourcing::system::{App, Runner, System, SystemRunning};
use support::sqlite::FileDb;

#[aggregate]
#[derive(Debug, Default)]
struct Trigger {
    n: u64,
}

#[aggregate]
impl Trigger {
    #[created(Fired)]
    fn fire(&mut self, n: u64) {
        self.n = n;
    }
}

#[aggregate]
#[derive(Debug, Default)]
struct Thing {
    n: u64,
}

#[aggregate]
impl Thing {
    #[created(Made, id = id)]
    fn make(&mut self, id: Uuid, n: u64) {
        let _ = id;
        self.n = n;
    }
}

#[derive(Clone)]
struct Feed;

eventsourcing::source_app!(Feed: Trigger);

/// Makes a thing for each trigger, under the trigger's id; refuses 13.
#[derive(Clone)]
struct Maker;

#[policy]
impl Maker {
    #[on(TriggerEvent::Fired)]
    fn fired(&self, cx: &mut Processing, envelope: &Envelope, n: u64) -> Result<()> {
        if n == 13 {
            return Err(Error::InvalidArgument {
                name: "n",
                reason: "13 is refused".into(),
            });
        }
        cx.collect(Thing::make(envelope.originator_id(), n))?;
        Ok(())
    }
}

impl App for Maker {
    type Aggregates = (Thing,);
}

fn start(db: &FileDb) -> SystemRunning {
    let system = System::builder()
        .app(Feed)
        .app(Maker)
        .pipe::<(Feed, Maker)>()
        .build()
        .unwrap();
    let uri = db.uri();
    system
        .start_with(Runner::SingleThread, move |name| {
            Application::builder()
                .db_uri(uri.clone())
                .name(name)
                .table_prefix(format!("{}_", name.to_lowercase()))
                .build()
        })
        .unwrap()
}

fn fire(running: &SystemRunning, n: u64) -> Uuid {
    let mut trigger = Trigger::fire(n);
    running.app::<Feed>().save(&mut trigger).unwrap();
    trigger.id()
}

#[test]
fn a_failing_follower_undoes_only_its_own_batch() {
    let db = FileDb::new();
    let mut running = start(&db);
    let (one, two) = (fire(&running, 1), fire(&running, 2));
    // The save stands although its follower fails.
    let thirteen = fire(&running, 13);
    assert!(running.check().is_err(), "the runner keeps the failure");

    // Read back through applications of their own on the file.
    let feed = db.builder().table_prefix("feed_").build().unwrap();
    let maker = db.builder().table_prefix("maker_").build().unwrap();
    let trigger: Trigger = feed.repository().get(thirteen).unwrap();
    assert_eq!(trigger.n, 13);
    for (id, n) in [(one, 1), (two, 2)] {
        let thing: Thing = maker.repository().get(id).unwrap();
        assert_eq!(thing.n, n);
    }
    assert!(
        maker
            .repository()
            .find::<Thing>(thirteen)
            .unwrap()
            .is_none(),
        "nothing of the failed batch"
    );
    assert_eq!(maker.notification_log().max_id().unwrap(), 2);
    assert!(running.stop().is_err());
}

/// Which application's hook was told, of which ids, and which of them it
/// found in the log.
type Told = (String, Vec<u64>, Vec<u64>);

#[test]
fn other_listeners_are_told_once_the_transaction_committed() {
    let db = FileDb::new();
    let running = start(&db);
    // Each hook reads the notifications it is told of, on the reader
    // connections another thread would use: told inside the open
    // transaction, it would not find them.
    let found: Arc<Mutex<Vec<Told>>> = Arc::default();
    let hooks: Vec<_> = [
        ("Feed", running.app::<Feed>()),
        ("Maker", running.app::<Maker>()),
    ]
    .into_iter()
    .map(|(name, app)| {
        let found = Arc::clone(&found);
        let log = app.notification_log();
        app.on_commit(move |ids| {
            let seen = log
                .select(ids[0], ids.len(), &[])
                .unwrap()
                .iter()
                .map(|n| n.id)
                .collect();
            found
                .lock()
                .unwrap()
                .push((name.to_owned(), ids.to_vec(), seen));
        })
    })
    .collect();
    for n in 1..=3 {
        fire(&running, n);
    }
    drop(hooks);
    let found = found.lock().unwrap();
    let told: Vec<&str> = found.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(told, ["Feed", "Maker", "Feed", "Maker", "Feed", "Maker"]);
    for (name, ids, seen) in found.iter() {
        assert_eq!(ids, seen, "{name}'s hook found what it was told of");
    }
    running.stop().unwrap();
}
