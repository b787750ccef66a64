//! A projection: bank account balances kept in a SQL table, written by
//! handlers that get the database driver's own transaction, in the same
//! transaction as the projection's position in the accounts' log. Queried
//! after `wait_for`, the table holds every deposit once.
//!
//! The projection lives in the application's database: the same SQLite
//! file, or the same PostgreSQL database. With `DB_URI=memory://` (or no
//! `DB_URI`) the accounts are in memory and the table in a SQLite database
//! in memory.
//!
//! ```text
//! cargo run --example projection
//! DB_URI=sqlite:////tmp/bank.db cargo run --example projection
//! DB_URI=postgres://postgres@127.0.0.1:5432/test cargo run --example projection
//! ```

use std::sync::Arc;
use std::time::Duration;

use eventsourcing::follower::Follower;
use eventsourcing::prelude::*;
use eventsourcing::recorder::{PostgresRecorder, SqliteOptions, SqliteRecorder};

/// A bank account.
#[aggregate]
#[derive(Debug, Default)]
pub struct Account {
    owner: String,
    balance: i64,
}

#[aggregate]
impl Account {
    /// Opens an account.
    #[created(Opened)]
    pub fn open(&mut self, owner: String) {
        self.owner = owner;
    }

    /// Pays money in (cents).
    #[event(Deposited)]
    pub fn deposit(&mut self, amount: i64) {
        self.balance += amount;
    }

    /// Takes money out (cents).
    #[event(Withdrawn)]
    pub fn withdraw(&mut self, amount: i64) {
        self.balance -= amount;
    }
}

/// The projection on SQLite.
mod sqlite {
    use eventsourcing::follower::Envelope;
    use eventsourcing::prelude::*;
    use eventsourcing::rusqlite::{self, Transaction};

    use super::AccountEvent;

    /// One row per account: its owner and balance.
    pub(crate) struct Balances;

    #[policy]
    impl Balances {
        #[setup]
        fn create_table(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS balances (
                     account TEXT PRIMARY KEY, owner TEXT NOT NULL, balance INTEGER NOT NULL)",
            )
        }

        #[on(AccountEvent::Opened)]
        fn opened(
            &self,
            tx: &Transaction<'_>,
            envelope: &Envelope,
            owner: &str,
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
            add(tx, envelope, amount)
        }

        #[on(AccountEvent::Withdrawn)]
        fn withdrawn(
            &self,
            tx: &Transaction<'_>,
            envelope: &Envelope,
            amount: i64,
        ) -> rusqlite::Result<()> {
            add(tx, envelope, -amount)
        }
    }

    fn add(tx: &Transaction<'_>, envelope: &Envelope, amount: i64) -> rusqlite::Result<()> {
        tx.execute(
            "UPDATE balances SET balance = balance + ?1 WHERE account = ?2",
            (amount, envelope.originator_id().to_string()),
        )?;
        Ok(())
    }

    /// The balance of `account`, read from the table.
    pub(crate) fn balance(conn: &rusqlite::Connection, account: Uuid) -> rusqlite::Result<i64> {
        conn.query_row(
            "SELECT balance FROM balances WHERE account = ?1",
            [account.to_string()],
            |row| row.get(0),
        )
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bank = Application::builder()
        .env()?
        .name("Bank")
        .table_prefix("bank_")
        .build()?;
    let store = bank.event_store();
    if let Some(database) = store.recorder_as::<PostgresRecorder>() {
        return postgres::run(&bank, &database);
    }
    // The accounts' own SQLite database, or one in memory beside them.
    let database = match store.recorder_as::<SqliteRecorder>() {
        Some(database) => database,
        None => Arc::new(SqliteRecorder::open(SqliteOptions::memory())?),
    };
    let running = Follower::sqlite(sqlite::Balances, Arc::clone(&database))
        .follow(&bank)
        .start()?
        .spawn();

    let mut alice = Account::open("alice".into());
    alice.deposit(10_000);
    alice.withdraw(2_500);
    let ids = bank.save(&mut alice)?;
    assert!(running.wait_for("Bank", *ids.last().unwrap_or(&0), Duration::from_secs(30))?);

    // Read the table through the recorder's own connection: a database in
    // memory has no other.
    let balance = database.read_with(|conn| Ok(sqlite::balance(conn, alice.id())?))?;
    assert_eq!(balance, alice.balance);
    let follower = running.stop()?;
    println!(
        "projection: alice has {balance} cents, projected from {} events (follower at {})",
        alice.version(),
        follower.position("Bank").unwrap_or_default()
    );
    Ok(())
}

/// The projection on PostgreSQL, in the application's database.
mod postgres {
    use std::sync::Arc;
    use std::time::Duration;

    use eventsourcing::follower::{Envelope, Follower};
    use eventsourcing::postgres::{self, Transaction};
    use eventsourcing::prelude::*;
    use eventsourcing::recorder::PostgresRecorder;

    use super::{Account, AccountEvent};

    /// One row per account: its owner and balance.
    pub(crate) struct Balances;

    #[policy]
    impl Balances {
        #[setup]
        fn create_table(&self, tx: &mut Transaction<'_>) -> Result<(), postgres::Error> {
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS bank_balances (
                     account UUID PRIMARY KEY, owner TEXT NOT NULL, balance BIGINT NOT NULL)",
            )
        }

        #[on(AccountEvent::Opened)]
        fn opened(
            &self,
            tx: &mut Transaction<'_>,
            envelope: &Envelope,
            owner: &str,
        ) -> Result<(), postgres::Error> {
            let account = envelope.originator_id();
            tx.execute(
                "INSERT INTO bank_balances (account, owner, balance) VALUES ($1, $2, 0)",
                &[&account, &owner],
            )?;
            Ok(())
        }

        #[on(AccountEvent::Deposited)]
        fn deposited(
            &self,
            tx: &mut Transaction<'_>,
            envelope: &Envelope,
            amount: i64,
        ) -> Result<(), postgres::Error> {
            add(tx, envelope, amount)
        }

        #[on(AccountEvent::Withdrawn)]
        fn withdrawn(
            &self,
            tx: &mut Transaction<'_>,
            envelope: &Envelope,
            amount: i64,
        ) -> Result<(), postgres::Error> {
            add(tx, envelope, -amount)
        }
    }

    fn add(
        tx: &mut Transaction<'_>,
        envelope: &Envelope,
        amount: i64,
    ) -> Result<(), postgres::Error> {
        let account = envelope.originator_id();
        tx.execute(
            "UPDATE bank_balances SET balance = balance + $1 WHERE account = $2",
            &[&amount, &account],
        )?;
        Ok(())
    }

    pub(crate) fn run(
        bank: &Application,
        database: &Arc<PostgresRecorder>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let running = Follower::postgres(Balances, Arc::clone(database))
            .follow(bank)
            .start()?
            .spawn();
        let mut bob = Account::open("bob".into());
        bob.deposit(7_000);
        bob.withdraw(500);
        let ids = bank.save(&mut bob)?;
        assert!(running.wait_for("Bank", *ids.last().unwrap_or(&0), Duration::from_secs(30))?);
        let balance: i64 = database.read_with(|client| {
            Ok(client
                .query_one(
                    "SELECT balance FROM bank_balances WHERE account = $1",
                    &[&bob.id()],
                )?
                .get(0))
        })?;
        assert_eq!(balance, bob.balance);
        let follower = running.stop()?;
        println!(
            "projection: bob has {balance} cents, projected from {} events (follower at {})",
            bob.version(),
            follower.position("Bank").unwrap_or_default()
        );
        Ok(())
    }
}
