//! P1 and P2: followers catching up with an upstream log on SQLite
//! (`synchronous=NORMAL`), each next to rusqlite doing the same writes in
//! the same transactions.
//!
//! - P1, a projection: one SQL row per deposit (notification id, account,
//!   amount) in the upstream's own database, with the tracking update.
//! - P2, a process application: a line on the account's statement for
//!   each deposit (one aggregate per account, opened with its first
//!   deposit, kept between batches by the aggregate cache), in the same
//!   database under a table prefix;
//! - P2n, the same with one new aggregate per deposit, whose event names
//!   the deposit (every event a new key in the index).
//!
//! The raw side reads the same upstream rows in the same pages (every
//! column by reference, no decoding), and per page writes the same rows
//! (P2: the exact bytes the framework stored) and moves a tracking row by
//! compare-and-set, in one `BEGIN IMMEDIATE` ... `COMMIT`.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use eventsourcing::follower::{Envelope, Follower, Processing};
use eventsourcing::prelude::*;
use eventsourcing::recorder::{SqliteOptions, SqliteRecorder, Synchronous};
use eventsourcing::rusqlite::{self, Transaction};
use support::account::AccountEvent;

use super::sqlite::SQLITE_SCHEMA;
use super::workloads::{Pair, line, stored_rows, timed};
use super::{NOTE, Plan, RawRow, Result};
use support::account::Account;

/// The projection of P1: one row per deposit.
struct Ledger;

#[policy]
impl Ledger {
    #[setup]
    fn create(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch(LEDGER_TABLE)
    }

    #[on(AccountEvent::Deposited)]
    fn deposited(
        &self,
        tx: &Transaction<'_>,
        envelope: &Envelope,
        amount: i64,
    ) -> Result<(), BoxError> {
        let mut buffer = Uuid::encode_buffer();
        let account = envelope
            .originator_id()
            .hyphenated()
            .encode_lower(&mut buffer);
        tx.prepare_cached(INSERT_LEDGER)?.execute((
            i64::try_from(envelope.notification_id())?,
            &*account,
            amount,
        ))?;
        Ok(())
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const LEDGER_TABLE: &str = "CREATE TABLE IF NOT EXISTS ledger (
    notification_id INTEGER NOT NULL, account TEXT NOT NULL, amount INTEGER NOT NULL)";
const INSERT_LEDGER: &str =
    "INSERT INTO ledger (notification_id, account, amount) VALUES (?1, ?2, ?3)";

/// The aggregate P2 creates for each deposit.
#[aggregate]
#[derive(Debug, Default)]
struct Receipt {
    deposit: u64,
}

#[aggregate]
impl Receipt {
    #[created(Issued)]
    fn issue(&mut self, deposit: u64) {
        self.deposit = deposit;
    }
}

/// The policy of P2.
struct Receipts;

#[policy]
impl Receipts {
    #[on(AccountEvent::Deposited)]
    fn deposited(&self, cx: &mut Processing, envelope: &Envelope) -> eventsourcing::Result<()> {
        cx.collect(Receipt::issue(envelope.notification_id()))?;
        Ok(())
    }
}

/// The aggregate P2 keeps per account: a statement with a line per
/// deposit. Its id is derived from the account's.
#[aggregate]
#[derive(Debug, Default)]
struct Statement {
    lines: u64,
}

fn statement_id(account: Uuid) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_OID, account.as_bytes())
}

#[aggregate]
impl Statement {
    #[created(Opened, id = statement_id(account))]
    fn open(&mut self, account: Uuid) {
        let _ = account;
    }

    #[event(Line)]
    fn line(&mut self, deposit: u64, amount: i64) {
        let _ = (deposit, amount);
        self.lines += 1;
    }
}

/// The policy of P2: a line on the account's statement for each deposit
/// (the statement is opened with the first one).
struct Statements;

#[policy]
impl Statements {
    #[on(AccountEvent::Deposited)]
    fn deposited(
        &self,
        cx: &mut Processing,
        envelope: &Envelope,
        amount: i64,
    ) -> eventsourcing::Result<()> {
        let account = envelope.originator_id();
        let statement = match cx.find::<Statement>(statement_id(account))? {
            Some(statement) => statement,
            None => cx.collect(Statement::open(account))?,
        };
        statement.line(envelope.notification_id(), amount);
        Ok(())
    }
}

/// Runs a process application with `policy` over `bank` until caught up,
/// in a database of its own beside the upstream's; returns how long it
/// took and every row it stored.
fn process<P: eventsourcing::follower::Policy<Processing>>(
    policy: P,
    bank: &Application,
    path: &Path,
    prefix: &str,
    events: usize,
) -> Result<(std::time::Duration, Vec<RawRow>)> {
    let down = Arc::new(SqliteRecorder::open(options(path, prefix))?);
    let app = Application::builder().name(prefix).recorder(down).build()?;
    let (processed, elapsed) = timed(|| {
        let mut follower = Follower::process(policy, &app)
            .follow(bank)
            .cache_aggregates(1_000)
            .start()?;
        Ok(follower.run_until_caught_up()?.events)
    })?;
    check(processed, events)?;
    Ok((elapsed, stored_rows(&app)?))
}

/// The raw side of a process application: the rows it stored, inserted
/// again page by page, on a database of its own with the same upstream.
fn raw_process(
    path: &Path,
    upstream: &[RawRow],
    rows: &[RawRow],
    batch: usize,
) -> Result<(usize, std::time::Duration)> {
    let down_schema = SQLITE_SCHEMA.replace("stored_events", "down_stored_events");
    let mut raw = RawFollower::open(
        path,
        upstream,
        &down_schema,
        "INSERT INTO down_stored_events (originator_id, originator_version, topic, state) \
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    // A statement's opening shares its deposit's page.
    let mut next = rows.iter().peekable();
    timed(|| {
        raw.follow(batch, &mut |insert, _, _| {
            let row = next.next().ok_or("more deposits than rows")?;
            insert.execute((&row.id, row.version, &row.topic, &row.state))?;
            if row.version == 1
                && let Some(line) = next.next_if(|line| line.uuid == row.uuid)
            {
                insert.execute((&line.id, line.version, &line.topic, &line.state))?;
            }
            Ok(())
        })
    })
}

fn options(path: &Path, prefix: &str) -> SqliteOptions {
    SqliteOptions::file(path)
        .synchronous(Synchronous::Normal)
        .table_prefix(prefix)
}

/// The upstream: 100 accounts, then `events` deposits saved 100 at a time
/// (one per account).
fn upstream(path: &Path, events: usize) -> Result<Application> {
    let recorder = Arc::new(SqliteRecorder::open(options(path, ""))?);
    let bank = Application::builder()
        .name("Bank")
        .recorder(recorder)
        .build()?;
    let mut accounts: Vec<Account> = (0..100)
        .map(|i| Account::open(format!("owner {i}")))
        .collect();
    bank.save(&mut accounts)?;
    for round in 0..events.div_ceil(100) {
        for account in &mut accounts {
            account.deposit(i64::try_from(round)?, NOTE.to_owned());
        }
        bank.save(&mut accounts)?;
    }
    Ok(bank)
}

/// A raw database with the upstream's rows already in it, and what the
/// raw follower writes next to them.
struct RawFollower {
    conn: rusqlite::Connection,
    insert: &'static str,
}

impl RawFollower {
    fn open(
        path: &Path,
        upstream: &[RawRow],
        extra_schema: &str,
        insert: &'static str,
    ) -> Result<Self> {
        let conn = rusqlite::Connection::open(path)?;
        conn.query_row("PRAGMA journal_mode = WAL", [], |row| {
            row.get::<_, String>(0)
        })?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SQLITE_SCHEMA)?;
        conn.execute_batch(extra_schema)?;
        conn.execute_batch(
            "CREATE TABLE tracking (application_name TEXT, upstream_name TEXT, \
             partition INTEGER, notification_id INTEGER, epoch INTEGER, \
             PRIMARY KEY (application_name, upstream_name, partition));
             INSERT INTO tracking VALUES ('raw', 'Bank', 0, 0, 1);",
        )?;
        conn.execute_batch("BEGIN")?;
        {
            let mut insert = conn.prepare(
                "INSERT INTO stored_events (notification_id, originator_id, originator_version, topic, state) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (i, row) in upstream.iter().enumerate() {
                insert.execute((
                    i64::try_from(i + 1)?,
                    &row.id,
                    row.version,
                    &row.topic,
                    &row.state,
                ))?;
            }
        }
        conn.execute_batch("COMMIT")?;
        Ok(RawFollower { conn, insert })
    }

    /// Follows the upstream table in pages of `batch` deposits: per page,
    /// the rows read, then `write` binds and runs the insert for each, and
    /// the tracking row moves, in one transaction.
    fn follow(
        &mut self,
        batch: usize,
        write: &mut dyn FnMut(&mut rusqlite::CachedStatement<'_>, i64, &str) -> Result<()>,
    ) -> Result<usize> {
        let conn = &self.conn;
        let mut select = conn.prepare_cached(
            "SELECT notification_id, originator_id, originator_version, topic, state \
             FROM stored_events WHERE notification_id > ?1 AND topic IN ('Account.Deposited') \
             ORDER BY notification_id LIMIT ?2",
        )?;
        let mut begin = conn.prepare_cached("BEGIN IMMEDIATE")?;
        let mut commit = conn.prepare_cached("COMMIT")?;
        let mut track = conn.prepare_cached(
            "UPDATE tracking SET notification_id = ?1 WHERE application_name = 'raw' \
             AND upstream_name = 'Bank' AND partition = 0 AND notification_id = ?2 AND epoch = 1",
        )?;
        let mut insert = conn.prepare_cached(self.insert)?;
        let mut position = 0_i64;
        let mut count = 0;
        loop {
            let mut page = Vec::with_capacity(batch);
            let mut rows = select.query((position, i64::try_from(batch)?))?;
            while let Some(row) = rows.next()? {
                let id = row.get_ref(0)?.as_i64()?;
                let account = row.get_ref(1)?.as_str()?.to_owned();
                black_box((
                    row.get_ref(2)?.as_i64()?,
                    row.get_ref(3)?.as_str()?,
                    row.get_ref(4)?.as_blob()?,
                ));
                page.push((id, account));
            }
            drop(rows);
            let Some(&(last, _)) = page.last() else {
                return Ok(count);
            };
            begin.execute([])?;
            for (id, account) in &page {
                write(&mut insert, *id, account)?;
            }
            if track.execute((last, position))? != 1 {
                return Err("the raw tracking row moved".into());
            }
            commit.execute([])?;
            position = last;
            count += page.len();
        }
    }
}

/// Runs P1 and P2 `plan.p_reps` times each, in a temporary directory,
/// and prints their lines.
pub(crate) fn run(plan: &Plan) -> Result<()> {
    let dir = tempfile::Builder::new().prefix("es-bench-p-").tempdir()?;
    let dir = dir.path();
    let events = plan.p_events;
    let mut p1 = Pair::new();
    let mut p2 = Pair::new();
    let mut p2n = Pair::new();
    let batch = eventsourcing::follower::DEFAULT_BATCH_SIZE;
    for rep in 0..plan.p_reps {
        let up = dir.join(format!("p-{rep}.sqlite"));
        let bank = upstream(&up, events)?;
        let upstream_rows = stored_rows(&bank)?;

        // P1, ours: a projection into the upstream's database.
        let recorder = bank
            .event_store()
            .recorder_as::<SqliteRecorder>()
            .ok_or("not SQLite")?;
        let (projected, elapsed) = timed(|| {
            let mut follower = Follower::sqlite(Ledger, recorder).follow(&bank).start()?;
            Ok(follower.run_until_caught_up()?.events)
        })?;
        check(projected, events)?;
        p1.ours.push(elapsed);
        let amounts: Vec<i64> = {
            let conn = rusqlite::Connection::open(&up)?;
            let mut select = conn.prepare("SELECT amount FROM ledger ORDER BY rowid")?;
            select
                .query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()?
        };

        // P2, ours: process applications beside it: a line on each
        // account's statement (P2), a new aggregate per deposit (P2n).
        let (elapsed, statement_rows) = process(Statements, &bank, &up, "statements_", events)?;
        p2.ours.push(elapsed);
        let (elapsed, receipt_rows) = process(Receipts, &bank, &up, "receipts_", events)?;
        p2n.ours.push(elapsed);
        drop(bank);

        // The raw sides, each on a database of its own with the same
        // upstream rows.
        let raw_path = dir.join(format!("p1-raw-{rep}.sqlite"));
        let mut raw = RawFollower::open(&raw_path, &upstream_rows, LEDGER_TABLE, INSERT_LEDGER)?;
        let mut next = amounts.iter();
        let (count, elapsed) = timed(|| {
            raw.follow(batch, &mut |insert, id, account| {
                let amount = next.next().ok_or("more deposits than amounts")?;
                insert.execute((id, account, amount))?;
                Ok(())
            })
        })?;
        check(count, events)?;
        p1.raw.push(elapsed);

        let raw_path = dir.join(format!("p2-raw-{rep}.sqlite"));
        let (count, elapsed) = raw_process(&raw_path, &upstream_rows, &statement_rows, batch)?;
        check(count, events)?;
        p2.raw.push(elapsed);
        let raw_path = dir.join(format!("p2n-raw-{rep}.sqlite"));
        let (count, elapsed) = raw_process(&raw_path, &upstream_rows, &receipt_rows, batch)?;
        check(count, events)?;
        p2n.raw.push(elapsed);
    }
    line(
        "p_sizes",
        format_args!(
            "{events} deposits of 100 accounts, batches of {batch}, median of {}",
            plan.p_reps
        ),
    );
    p1.print(
        events,
        "p1_projection_events_per_s",
        "p1_raw_events_per_s",
        "p1_vs_raw",
    );
    p2.print(
        events,
        "p2_process_events_per_s",
        "p2_raw_events_per_s",
        "p2_vs_raw",
    );
    p2n.print(
        events,
        "p2n_new_aggregates_events_per_s",
        "p2n_raw_events_per_s",
        "p2n_vs_raw",
    );
    Ok(())
}

fn check(count: impl TryInto<usize>, events: usize) -> Result<()> {
    let count: usize = count.try_into().map_err(|_| "count")?;
    if count == events {
        Ok(())
    } else {
        Err(format!("followed {count} deposits, not {events}").into())
    }
}
