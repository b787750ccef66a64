//! Followers facing bad upstream records and slow writers: a record that
//! fails its hash or its decryption stops the follower with a typed error
//! before it (it is never skipped), and on PostgreSQL a writer whose
//! transaction is still open holds the follower back, however long it
//! takes, rather than being passed.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use eventsourcing::Cipher;
use eventsourcing::follower::{Envelope, Follower, HandleError, InMemory, Policy};
use eventsourcing::prelude::*;
use eventsourcing::recorder::Recorder;
use support::account::{Account, AccountEvent};

/// The notification ids of the deposits it saw, in order.
#[derive(Debug, Default)]
struct Seen {
    ids: Vec<u64>,
}

struct Watcher;

impl Policy<Seen> for Watcher {
    const NAME: &'static str = "Watcher";

    fn topics() -> Option<Vec<&'static str>> {
        None
    }

    fn handle(&mut self, cx: &mut Seen, envelope: &Envelope) -> Result<bool, HandleError> {
        if let Some(AccountEvent::Deposited { .. }) = envelope.decode::<AccountEvent>()? {
            cx.ids.push(envelope.notification_id());
            return Ok(true);
        }
        Ok(false)
    }
}

/// The deposits an in-memory watcher has seen.
fn seen(follower: &Follower<Watcher, InMemory<Seen>>) -> Vec<u64> {
    follower.state().lock().unwrap().ids.clone()
}

#[test]
fn a_record_that_fails_its_hash_stops_the_follower_before_it() {
    let db = support::sqlite::FileDb::new();
    let bank = db.builder().name("Bank").build().unwrap();
    let mut account = Account::open("a".into());
    for amount in 1..=4 {
        account.deposit(amount, "n".into());
    }
    bank.save(&mut account).unwrap();
    // Change one byte of the third deposit's data (a plain record: flags
    // byte, previous hash, timestamp, JSON, hash).
    let conn = db.conn();
    let state: Vec<u8> = conn
        .query_row(
            "SELECT state FROM stored_events WHERE notification_id = 4",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let mut tampered = state.clone();
    let needle = b"\"amount\":3";
    let at = tampered
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the amount 3 in the JSON");
    tampered[at + needle.len() - 1] = b'9';
    conn.execute(
        "UPDATE stored_events SET state = ?1 WHERE notification_id = 4",
        [&tampered],
    )
    .unwrap();

    let mut follower = Follower::in_memory(Watcher, Seen::default())
        .follow(&bank)
        .start()
        .unwrap();
    let error = follower.run_until_caught_up().unwrap_err();
    assert!(
        matches!(error, Error::Integrity { version: 4, .. }),
        "{error:?}"
    );
    assert_eq!(seen(&follower), [2, 3]);
    assert_eq!(follower.position("Bank"), Some(3));
    // Never skipped: it stops there each time.
    assert!(matches!(
        follower.run_until_caught_up(),
        Err(Error::Integrity { .. })
    ));
    assert_eq!(follower.position("Bank"), Some(3));
    // Repaired, it goes on.
    conn.execute(
        "UPDATE stored_events SET state = ?1 WHERE notification_id = 4",
        [&state],
    )
    .unwrap();
    follower.run_until_caught_up().unwrap();
    assert_eq!(seen(&follower), [2, 3, 4, 5]);
}

#[test]
fn a_record_that_cannot_be_decrypted_stops_the_follower_before_it() {
    let db = support::sqlite::FileDb::new();
    let writer = db
        .builder()
        .name("Bank")
        .cipher(Cipher::new([1; 32]))
        .build()
        .unwrap();
    let mut account = Account::open("a".into());
    account.deposit(1, "n".into());
    writer.save(&mut account).unwrap();
    // The follower reads with another key.
    let reader = db
        .builder()
        .name("Bank")
        .cipher(Cipher::new([2; 32]))
        .build()
        .unwrap();
    let mut follower = Follower::in_memory(Watcher, Seen::default())
        .follow(&reader)
        .start()
        .unwrap();
    let error = follower.run_until_caught_up().unwrap_err();
    assert!(
        matches!(error, Error::Decryption { version: 1, .. }),
        "{error:?}"
    );
    assert_eq!(follower.position("Bank"), Some(0));
    assert!(seen(&follower).is_empty());
}

#[test]
fn an_open_writer_transaction_holds_the_follower_back_on_postgres() {
    let Some(scratch) = support::pg::Scratch::new() else {
        return;
    };
    let recorder: Arc<dyn Recorder> = Arc::new(scratch.recorder());
    let bank = Application::builder()
        .name("Bank")
        .recorder(Arc::clone(&recorder))
        .build()
        .unwrap();
    let mut first = Account::open("first".into());
    first.deposit(1, "n".into());
    bank.save(&mut first).unwrap(); // ids 1, 2

    // A writer opens a transaction, draws id 3 and waits there.
    let mut holder = scratch.client();
    let mut held = Account::open("held".into());
    held.deposit(2, "n".into());
    let rows: Vec<_> = held
        .pending_events()
        .iter()
        .map(|e| bank.event_store().mapper().encode(e).unwrap())
        .collect();
    let ids: Vec<Uuid> = rows.iter().map(|r| r.originator_id).collect();
    let versions: Vec<i64> = rows
        .iter()
        .map(|r| i64::try_from(r.originator_version).unwrap())
        .collect();
    let topics: Vec<&str> = rows.iter().map(|r| r.topic.as_str()).collect();
    let states: Vec<&[u8]> = rows.iter().map(|r| r.state.as_slice()).collect();
    holder.batch_execute("BEGIN").unwrap();
    holder
        .query(
            "SELECT stored_events_insert(false, $1, $2, $3, $4, NULL::text, NULL::text, \
             NULL::integer, NULL::bigint, NULL::bigint, NULL::bigint, true)",
            &[&ids, &versions, &topics, &states],
        )
        .unwrap();

    // Later saves commit ids 5 and 6 meanwhile.
    let mut later = Account::open("later".into());
    later.deposit(3, "n".into());
    assert_eq!(bank.save(&mut later).unwrap(), [5, 6]);

    let mut follower = Follower::in_memory(Watcher, Seen::default())
        .follow(&bank)
        .start()
        .unwrap();
    let started = Instant::now();
    let mut runs = 0;
    // However long it waits, the follower never passes the open one.
    while started.elapsed() < Duration::from_millis(500) {
        follower.run_until_caught_up().unwrap();
        runs += 1;
        assert_eq!(
            follower.position("Bank"),
            Some(2),
            "passed an open transaction"
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert!(runs > 1);
    assert_eq!(seen(&follower), [2]);

    holder.batch_execute("COMMIT").unwrap();
    follower.run_until_caught_up().unwrap();
    assert_eq!(seen(&follower), [2, 4, 6]);
    assert_eq!(follower.position("Bank"), Some(6));
}
