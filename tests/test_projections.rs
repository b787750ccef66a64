//! Projections into SQL tables: the handlers write rows with the driver's
//! own transaction, in the same transaction as the follower's position,
//! so that the read model never holds an event twice or misses one; a
//! failing handler rolls its rows back; a new version rebuilds the read
//! model from the start of the log and reports how fast; parked events
//! leave no rows until they are retried.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use eventsourcing::follower::{BoxError, Envelope, Follower};
use eventsourcing::prelude::*;
use eventsourcing::recorder::{Recorder, SqliteOptions, SqliteRecorder, TrackingKey};
use eventsourcing::rusqlite::{self, OptionalExtension, Transaction};
use support::account::{Account, AccountEvent};

/// Balances per account, one row per deposit in `deposits`.
#[derive(Clone, Default)]
struct Balances {
    fail_negative: Arc<AtomicBool>,
}

#[policy]
impl Balances {
    #[setup]
    fn create_tables(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS balances (
                 account TEXT PRIMARY KEY, owner TEXT NOT NULL, balance INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS deposits (
                 notification_id INTEGER NOT NULL, account TEXT NOT NULL, amount INTEGER NOT NULL);",
        )
    }

    #[reset]
    fn drop_tables(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch("DROP TABLE IF EXISTS balances; DROP TABLE IF EXISTS deposits;")
    }

    #[on(AccountEvent::Opened)]
    fn opened(
        &self,
        tx: &Transaction<'_>,
        envelope: &Envelope,
        owner: String,
    ) -> rusqlite::Result<()> {
        tx.execute(
            "INSERT INTO balances (account, owner, balance) VALUES (?1, ?2, 0)",
            (envelope.originator_id().to_string(), owner),
        )?;
        Ok(())
    }

    #[on(AccountEvent::Deposited)]
    fn deposited(
        &self,
        tx: &Transaction<'_>,
        envelope: &Envelope,
        amount: i64,
    ) -> Result<(), BoxError> {
        let account = envelope.originator_id().to_string();
        // The row goes in first, so that a failure below has something to
        // roll back.
        tx.execute(
            "INSERT INTO deposits (notification_id, account, amount) VALUES (?1, ?2, ?3)",
            (i64::try_from(envelope.notification_id())?, &account, amount),
        )?;
        if amount < 0 && self.fail_negative.load(Ordering::SeqCst) {
            return Err(format!("negative deposit {amount}").into());
        }
        tx.execute(
            "UPDATE balances SET balance = balance + ?1 WHERE account = ?2",
            (amount, &account),
        )?;
        Ok(())
    }
}

/// The same projection, version 2: balances in cents.
struct BalancesInCents;

#[policy(name = "Balances", version = 2)]
impl BalancesInCents {
    #[setup]
    fn create_tables(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS balances (
                 account TEXT PRIMARY KEY, owner TEXT NOT NULL, balance INTEGER NOT NULL);",
        )
    }

    #[reset]
    fn drop_tables(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch("DROP TABLE IF EXISTS balances; DROP TABLE IF EXISTS deposits;")
    }

    #[on(AccountEvent::Opened)]
    fn opened(
        &self,
        tx: &Transaction<'_>,
        envelope: &Envelope,
        owner: String,
    ) -> rusqlite::Result<()> {
        tx.execute(
            "INSERT INTO balances (account, owner, balance) VALUES (?1, ?2, 0)",
            (envelope.originator_id().to_string(), owner),
        )?;
        Ok(())
    }

    #[on(AccountEvent::Deposited)]
    fn deposited(
        &self,
        tx: &Transaction<'_>,
        envelope: &Envelope,
        amount: i64,
    ) -> rusqlite::Result<()> {
        tx.execute(
            "UPDATE balances SET balance = balance + ?1 WHERE account = ?2",
            (amount * 100, envelope.originator_id().to_string()),
        )?;
        Ok(())
    }
}

fn database() -> (support::sqlite::FileDb, Application, Arc<SqliteRecorder>) {
    let db = support::sqlite::FileDb::new();
    let bank = db.builder().name("Bank").build().unwrap();
    let recorder = bank.event_store().recorder_as::<SqliteRecorder>().unwrap();
    (db, bank, recorder)
}

fn balance(db: &support::sqlite::FileDb, account: Uuid) -> Option<i64> {
    db.conn()
        .query_row(
            "SELECT balance FROM balances WHERE account = ?1",
            [account.to_string()],
            |row| row.get(0),
        )
        .optional()
        .unwrap()
}

fn deposit_rows(db: &support::sqlite::FileDb) -> Vec<u64> {
    let conn = db.conn();
    let mut select = conn
        .prepare("SELECT notification_id FROM deposits ORDER BY rowid")
        .unwrap();
    select
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn save(bank: &Application, owner: &str, amounts: &[i64]) -> Account {
    let mut account = Account::open(owner.into());
    for &amount in amounts {
        account.deposit(amount, "n".into());
    }
    bank.save(&mut account).unwrap();
    account
}

#[test]
fn rows_and_position_commit_together() {
    let (db, bank, recorder) = database();
    let alice = save(&bank, "alice", &[10, 20]);
    let bob = save(&bank, "bob", &[5]);
    let mut follower = Follower::sqlite(Balances::default(), recorder)
        .follow(&bank)
        .batch_size(2)
        .start()
        .unwrap();
    follower.run_until_caught_up().unwrap();
    assert_eq!(balance(&db, alice.id()), Some(30));
    assert_eq!(balance(&db, bob.id()), Some(5));
    assert_eq!(deposit_rows(&db), [2, 3, 5]);
    let position: i64 = db
        .conn()
        .query_row(
            "SELECT notification_id FROM tracking WHERE application_name = 'Balances'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(position, 5);
    assert_eq!(follower.run_until_caught_up().unwrap().events, 0);
}

#[test]
fn a_failing_handler_leaves_no_row_of_its_event() {
    let (db, bank, recorder) = database();
    let policy = Balances::default();
    policy.fail_negative.store(true, Ordering::SeqCst);
    let account = save(&bank, "carol", &[1, -2, 3]);
    let mut follower = Follower::sqlite(policy.clone(), Arc::clone(&recorder))
        .follow(&bank)
        .start()
        .unwrap();
    let error = follower.run_until_caught_up().unwrap_err();
    assert!(
        matches!(
            error,
            Error::Handler {
                notification_id: 3,
                ..
            }
        ),
        "{error:?}"
    );
    // The deposit before it is there; its own row was rolled back.
    assert_eq!(deposit_rows(&db), [2]);
    assert_eq!(balance(&db, account.id()), Some(1));
    assert_eq!(follower.position("Bank"), Some(2));
    policy.fail_negative.store(false, Ordering::SeqCst);
    follower.run_until_caught_up().unwrap();
    assert_eq!(deposit_rows(&db), [2, 3, 4]);
    assert_eq!(balance(&db, account.id()), Some(2));
}

#[test]
fn parked_events_leave_no_rows_until_retried() {
    let (db, bank, recorder) = database();
    let policy = Balances::default();
    policy.fail_negative.store(true, Ordering::SeqCst);
    let bad = save(&bank, "dave", &[1, -2, 3]);
    let good = save(&bank, "erin", &[4]);
    let mut follower = Follower::sqlite(policy.clone(), recorder)
        .follow(&bank)
        .park_failures(true)
        .start()
        .unwrap();
    follower.run_until_caught_up().unwrap();
    let parked: Vec<u64> = follower
        .parked()
        .unwrap()
        .iter()
        .map(|p| p.notification_id)
        .collect();
    assert_eq!(parked, [3, 4]);
    assert_eq!(deposit_rows(&db), [2, 6]);
    assert_eq!(balance(&db, good.id()), Some(4));
    policy.fail_negative.store(false, Ordering::SeqCst);
    assert_eq!(follower.retry_parked("Bank", bad.id()).unwrap(), 2);
    assert_eq!(deposit_rows(&db), [2, 6, 3, 4]);
    assert_eq!(balance(&db, bad.id()), Some(2));
}

#[test]
fn a_new_version_rebuilds_from_the_start_and_says_how_fast() {
    let (db, bank, recorder) = database();
    let alice = save(&bank, "alice", &[1, 2, 3]);
    let mut v1 = Follower::sqlite(Balances::default(), Arc::clone(&recorder))
        .follow(&bank)
        .start()
        .unwrap();
    v1.run_until_caught_up().unwrap();
    assert!(v1.rebuild().is_none());
    assert_eq!(balance(&db, alice.id()), Some(6));
    drop(v1);

    let mut v2 = Follower::sqlite(BalancesInCents, Arc::clone(&recorder))
        .kind(std::any::type_name::<Balances>())
        .follow(&bank)
        .start()
        .unwrap();
    // Reset and set up at once: the old rows are gone, the position is 0.
    assert_eq!(balance(&db, alice.id()), None);
    assert_eq!(v2.position("Bank"), Some(0));
    let tables: i64 = db
        .conn()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'deposits'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0);
    v2.run_until_caught_up().unwrap();
    assert_eq!(balance(&db, alice.id()), Some(600));
    let rebuild = v2.rebuild().unwrap();
    assert_eq!((rebuild.from_version, rebuild.version), (1, 2));
    assert_eq!(rebuild.events, 4);
    assert!(rebuild.events_per_second() > 0.0);
    // The registration says version 2 now: a restart does not rebuild.
    drop(v2);
    let v2 = Follower::sqlite(BalancesInCents, recorder)
        .kind(std::any::type_name::<Balances>())
        .follow(&bank)
        .start()
        .unwrap();
    assert_eq!(v2.position("Bank"), Some(4));
    assert!(v2.rebuild().is_none());
}

#[test]
fn a_projection_may_live_in_another_database_than_its_upstream() {
    let bank = Application::builder()
        .name("Bank")
        .db_uri("memory://")
        .build()
        .unwrap();
    let read_model = Arc::new(SqliteRecorder::open(SqliteOptions::memory()).unwrap());
    let alice = save(&bank, "alice", &[7]);
    let mut follower = Follower::sqlite(Balances::default(), Arc::clone(&read_model))
        .follow(&bank)
        .start()
        .unwrap();
    follower.run_until_caught_up().unwrap();
    let position = read_model
        .select_tracking(&TrackingKey::new("Balances", "Bank"))
        .unwrap()
        .unwrap();
    assert_eq!(position.notification_id, 2);
    let _ = alice;
}

/// A projection whose setup fails.
struct Broken;

#[policy]
impl Broken {
    #[setup]
    fn create(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch("CREATE TABLE broken (")
    }

    #[on(AccountEvent::Opened)]
    fn opened(&self, _tx: &Transaction<'_>) {}
}

#[test]
fn a_setup_that_fails_stops_the_start_and_leaves_nothing() {
    let (db, bank, recorder) = database();
    let error = Follower::sqlite(Broken, recorder)
        .follow(&bank)
        .start()
        .unwrap_err();
    match error {
        Error::Setup {
            follower,
            step,
            source,
        } => {
            assert_eq!((follower.as_str(), step), ("Broken", "setup"));
            assert!(source.to_string().contains("incomplete input"), "{source}");
        }
        other => panic!("{other:?}"),
    }
    let tables: i64 = db
        .conn()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'broken'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0);
}

/// The same projection on PostgreSQL.
mod on_postgres {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use eventsourcing::follower::{BoxError, Envelope, Follower};
    use eventsourcing::postgres::{self, Transaction};
    use eventsourcing::prelude::*;
    use eventsourcing::recorder::PostgresRecorder;
    use support::account::AccountEvent;
    use support::pg::Scratch;

    use super::save;

    #[derive(Clone, Default)]
    struct Balances {
        fail_negative: Arc<AtomicBool>,
    }

    #[policy]
    impl Balances {
        #[setup]
        fn create_tables(&self, tx: &mut Transaction<'_>) -> Result<(), postgres::Error> {
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS balances (
                     account UUID PRIMARY KEY, owner TEXT NOT NULL, balance BIGINT NOT NULL);
                 CREATE TABLE IF NOT EXISTS deposits (
                     notification_id BIGINT NOT NULL, account UUID NOT NULL, amount BIGINT NOT NULL);",
            )
        }

        #[reset]
        fn drop_tables(&self, tx: &mut Transaction<'_>) -> Result<(), postgres::Error> {
            tx.batch_execute("DROP TABLE IF EXISTS balances; DROP TABLE IF EXISTS deposits;")
        }

        #[on(AccountEvent::Opened)]
        fn opened(
            &self,
            tx: &mut Transaction<'_>,
            envelope: &Envelope,
            owner: &str,
        ) -> Result<(), postgres::Error> {
            tx.execute(
                "INSERT INTO balances (account, owner, balance) VALUES ($1, $2, 0)",
                &[&envelope.originator_id(), &owner],
            )?;
            Ok(())
        }

        #[on(AccountEvent::Deposited)]
        fn deposited(
            &self,
            tx: &mut Transaction<'_>,
            envelope: &Envelope,
            amount: i64,
        ) -> Result<(), BoxError> {
            let id = i64::try_from(envelope.notification_id())?;
            tx.execute(
                "INSERT INTO deposits (notification_id, account, amount) VALUES ($1, $2, $3)",
                &[&id, &envelope.originator_id(), &amount],
            )?;
            if amount < 0 && self.fail_negative.load(Ordering::SeqCst) {
                return Err(format!("negative deposit {amount}").into());
            }
            tx.execute(
                "UPDATE balances SET balance = balance + $1 WHERE account = $2",
                &[&amount, &envelope.originator_id()],
            )?;
            Ok(())
        }
    }

    fn balance(scratch: &Scratch, account: Uuid) -> Option<i64> {
        scratch
            .client()
            .query_opt(
                "SELECT balance FROM balances WHERE account = $1",
                &[&account],
            )
            .unwrap()
            .map(|row| row.get(0))
    }

    fn deposits(scratch: &Scratch) -> Vec<i64> {
        scratch
            .client()
            .query(
                "SELECT notification_id FROM deposits ORDER BY notification_id",
                &[],
            )
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    #[test]
    fn rows_and_position_commit_together_and_roll_back_together() {
        let Some(scratch) = Scratch::new() else {
            return;
        };
        let bank = scratch.builder().name("Bank").build().unwrap();
        let database = bank
            .event_store()
            .recorder_as::<PostgresRecorder>()
            .unwrap();
        let policy = Balances::default();
        policy.fail_negative.store(true, Ordering::SeqCst);
        let account = save(&bank, "alice", &[10, -1, 5]);
        let mut follower = Follower::postgres(policy.clone(), Arc::clone(&database))
            .follow(&bank)
            .start()
            .unwrap();
        let error = follower.run_until_caught_up().unwrap_err();
        assert!(
            matches!(
                error,
                Error::Handler {
                    notification_id: 3,
                    ..
                }
            ),
            "{error:?}"
        );
        // The deposit before it is there with the position; its own row is not.
        assert_eq!(deposits(&scratch), [2]);
        assert_eq!(balance(&scratch, account.id()), Some(10));
        assert_eq!(follower.position("Bank"), Some(2));
        policy.fail_negative.store(false, Ordering::SeqCst);
        follower.run_until_caught_up().unwrap();
        assert_eq!(deposits(&scratch), [2, 3, 4]);
        assert_eq!(balance(&scratch, account.id()), Some(14));
        drop(follower);

        // A new worker of the same version starts where the last one ended.
        let mut again = Follower::postgres(policy, database)
            .follow(&bank)
            .start()
            .unwrap();
        assert!(again.rebuild().is_none(), "same version: no rebuild");
        assert_eq!(again.position("Bank"), Some(4));
        assert_eq!(again.run_until_caught_up().unwrap().events, 0);
    }

    /// A follower that polls once an hour is still woken at once by a
    /// commit from another recorder (as from another process): the
    /// database notifies it.
    #[test]
    fn a_commit_elsewhere_wakes_a_running_projection() {
        let Some(scratch) = Scratch::new() else {
            return;
        };
        let bank = scratch.builder().name("Bank").build().unwrap();
        let writer = scratch.builder().name("Bank").build().unwrap();
        let database = bank
            .event_store()
            .recorder_as::<PostgresRecorder>()
            .unwrap();
        let running = Follower::postgres(Balances::default(), database)
            .follow(&bank)
            .poll_interval(Duration::from_hours(1), Duration::from_hours(1))
            .start()
            .unwrap()
            .spawn();
        // Give the follower time to catch up and wait on its doorbell (it
        // listens before it first reads, so an earlier commit is read too).
        std::thread::sleep(Duration::from_millis(300));
        let account = save(&writer, "bob", &[7]);
        assert!(
            running.wait_for("Bank", 2, Duration::from_mins(1)).unwrap(),
            "no notification woke the follower"
        );
        assert_eq!(balance(&scratch, account.id()), Some(7));
        running.stop().unwrap();
    }
}
