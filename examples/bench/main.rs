//! The benchmark program: the workloads of BENCHMARKS.md, each measured
//! next to a raw baseline that does the same transactions with the same
//! bytes and no framework around them, in the same run.
//!
//! ```text
//! cargo run --release --example bench                   # the full run, about 90 s
//! cargo run --release --example bench -- --quick        # the same workloads, fewer repetitions
//! cargo run --release --example bench -- --db postgres  # on PostgreSQL (DB_URI or the local server)
//! cargo run --release --example bench -- --replay-million build /tmp/million.db
//! /usr/bin/time -v target/release/examples/bench --replay-million load /tmp/million.db
//! ```
//!
//! Every figure is one `name: value` line; `BENCH_SAMPLES=1` adds the
//! samples behind each median. A debug build without arguments (as CI runs
//! every example) does a smoke run with tiny sizes: it prints every line,
//! but its figures mean nothing. `--profile <workload>` runs one workload
//! of the framework alone, for a profiler.
//!
//! Workloads, for each codec (plain, AES-256-GCM, AES-256-GCM + zlib):
//!
//! - W1: 1,000 aggregates x 10 events, one save per command (SQLite in WAL
//!   mode with `synchronous` NORMAL, then FULL);
//! - W2: one aggregate, 10,000 events saved in batches of 100, then
//!   replayed in full (every hash and link checked);
//! - W3: the whole notification log of W1's database read and decoded
//!   (decrypted, decompressed, hash checked).
//!
//! The raw baselines insert the rows the framework stored (read back from
//! its database: the same id text, version, topic and state bytes) with
//! prepared statements in the same transaction shapes, and select them with
//! the same shapes, reading every column without copying it.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventsourcing::prelude::*;
use eventsourcing::recorder::{SqliteOptions, SqliteRecorder, Synchronous};
use eventsourcing::{Cipher, Compression, Notification};

type BoxError = Box<dyn std::error::Error>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

use support::account::Account;

mod followers;

/// The note every deposit carries.
const NOTE: &str = "monthly salary";

/// How records are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Codec {
    Plain,
    Cipher,
    CipherZlib,
}

impl Codec {
    const ALL: [Codec; 3] = [Codec::Plain, Codec::Cipher, Codec::CipherZlib];

    /// The suffix of this codec's lines (none for the primary, plain).
    fn suffix(self) -> &'static str {
        match self {
            Codec::Plain => "",
            Codec::Cipher => "_cipher",
            Codec::CipherZlib => "_cipher_zlib",
        }
    }
}

/// How hard a commit works to reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Durability {
    /// SQLite `synchronous=NORMAL` (PostgreSQL's defaults).
    Normal,
    /// SQLite `synchronous=FULL`.
    Full,
}

impl Durability {
    fn suffix(self) -> &'static str {
        match self {
            Durability::Normal => "",
            Durability::Full => "_full",
        }
    }
}

/// The sizes of a run.
#[derive(Clone, Copy, Debug)]
struct Plan {
    name: &'static str,
    /// W1: aggregates, and events per aggregate (one save each).
    w1_aggregates: usize,
    w1_events: usize,
    /// W1 when every commit waits for the disk (SQLite `synchronous=FULL`,
    /// PostgreSQL with `fsync` and `synchronous_commit` on): aggregates.
    w1_synced_aggregates: usize,
    /// W2: events of the one aggregate, and events per save.
    w2_events: usize,
    w2_batch: usize,
    /// Repetitions of each write measurement (the median is reported).
    reps: usize,
    /// Repetitions of each read measurement (the median is reported).
    read_reps: usize,
    /// Repetitions of W1 when every commit waits for the disk.
    synced_reps: usize,
    /// Notifications per query when W3 reads the log.
    w3_page: usize,
    /// P1 and P2: upstream deposits a follower catches up with, and
    /// repetitions (the median is reported).
    p_events: usize,
    p_reps: usize,
}

const FULL_PLAN: Plan = Plan {
    name: "full",
    w1_aggregates: 1_000,
    w1_events: 10,
    w1_synced_aggregates: 1_000,
    w2_events: 10_000,
    w2_batch: 100,
    reps: 9,
    read_reps: 9,
    synced_reps: 3,
    w3_page: 1_000,
    p_events: 100_000,
    p_reps: 5,
};

const QUICK_PLAN: Plan = Plan {
    name: "quick",
    w1_synced_aggregates: 200,
    reps: 3,
    read_reps: 5,
    synced_reps: 1,
    p_events: 50_000,
    p_reps: 3,
    ..FULL_PLAN
};

const SMOKE_PLAN: Plan = Plan {
    name: "smoke",
    w1_aggregates: 20,
    w1_events: 10,
    w1_synced_aggregates: 5,
    w2_events: 500,
    w2_batch: 100,
    reps: 1,
    read_reps: 1,
    synced_reps: 1,
    w3_page: 1_000,
    p_events: 300,
    p_reps: 1,
};

/// A row as the raw baselines insert it: the framework's stored bytes, with
/// the id already rendered as the text the table holds.
struct RawRow {
    uuid: Uuid,
    id: String,
    version: i64,
    topic: String,
    state: Vec<u8>,
}

impl RawRow {
    fn from_notification(n: &Notification) -> Result<RawRow> {
        Ok(RawRow {
            uuid: n.originator_id,
            id: n.originator_id.hyphenated().to_string(),
            version: i64::try_from(n.originator_version)?,
            topic: n.topic.clone(),
            state: n.state.clone(),
        })
    }
}

/// A database to benchmark: fresh applications and fresh raw twins.
trait Target {
    /// The name printed in the `db` line.
    fn name(&self) -> &'static str;

    /// The durability settings W1 runs with.
    fn durabilities(&self) -> &'static [Durability];

    /// Whether each commit at `durability` waits for the disk (W1 then
    /// runs with the plan's smaller synced sizes).
    fn synced(&self, durability: Durability) -> bool;

    /// A fresh, empty database behind an application with `codec`.
    fn app(&mut self, codec: Codec, durability: Durability) -> Result<Application>;

    /// A fresh, empty database with the same tables and settings, for the
    /// raw baseline.
    fn raw(&mut self, durability: Durability) -> Result<Box<dyn Raw>>;

    /// Forgets the databases made so far (deletes their files).
    fn clear(&mut self) -> Result<()>;
}

/// The raw baseline: the same transactions, without the framework.
trait Raw {
    /// Inserts `rows` in order, `batch` rows per transaction.
    fn insert(&mut self, rows: &[RawRow], batch: usize) -> Result<()>;

    /// Reads every row of one aggregate in version order; returns how many.
    fn replay(&mut self, id: &str) -> Result<usize>;

    /// Reads every row in notification order, `page` rows per query;
    /// returns how many.
    fn read_log(&mut self, page: usize) -> Result<usize>;
}

fn cipher() -> Result<Cipher> {
    Ok(Cipher::from_base64(&eventsourcing::generate_cipher_key()?)?)
}

fn builder(codec: Codec) -> Result<eventsourcing::ApplicationBuilder> {
    let builder = Application::builder();
    Ok(match codec {
        Codec::Plain => builder,
        Codec::Cipher => builder.cipher(cipher()?),
        Codec::CipherZlib => builder
            .cipher(cipher()?)
            .compression(Some(Compression::Zlib)),
    })
}

// ---------------------------------------------------------------- SQLite

/// The tables of FORMAT.md as the SQLite recorder creates them.
const SQLITE_SCHEMA: &str = "
    CREATE TABLE stored_events (
        notification_id INTEGER PRIMARY KEY AUTOINCREMENT,
        originator_id TEXT NOT NULL,
        originator_version INTEGER NOT NULL,
        topic TEXT NOT NULL,
        state BLOB NOT NULL,
        UNIQUE (originator_id, originator_version)
    );";

struct SqliteTarget {
    dir: tempfile::TempDir,
    files: Vec<PathBuf>,
    next: usize,
}

impl SqliteTarget {
    fn new() -> Result<SqliteTarget> {
        Ok(SqliteTarget {
            dir: tempfile::Builder::new().prefix("es-bench-").tempdir()?,
            files: Vec::new(),
            next: 0,
        })
    }

    fn fresh_path(&mut self) -> PathBuf {
        self.next += 1;
        let path = self.dir.path().join(format!("db-{}.sqlite", self.next));
        self.files.push(path.clone());
        path
    }
}

fn synchronous(durability: Durability) -> Synchronous {
    match durability {
        Durability::Normal => Synchronous::Normal,
        Durability::Full => Synchronous::Full,
    }
}

impl Target for SqliteTarget {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn durabilities(&self) -> &'static [Durability] {
        &[Durability::Normal, Durability::Full]
    }

    fn synced(&self, durability: Durability) -> bool {
        durability == Durability::Full
    }

    fn app(&mut self, codec: Codec, durability: Durability) -> Result<Application> {
        let options = SqliteOptions::file(self.fresh_path()).synchronous(synchronous(durability));
        let recorder = Arc::new(SqliteRecorder::open(options)?);
        Ok(builder(codec)?.recorder(recorder).build()?)
    }

    fn raw(&mut self, durability: Durability) -> Result<Box<dyn Raw>> {
        Ok(Box::new(RawSqlite::open(&self.fresh_path(), durability)?))
    }

    fn clear(&mut self) -> Result<()> {
        for file in self.files.drain(..) {
            for suffix in ["", "-wal", "-shm"] {
                let mut name = file.clone().into_os_string();
                name.push(suffix);
                match std::fs::remove_file(&name) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// rusqlite alone: prepared statements, `BEGIN IMMEDIATE` ... `COMMIT`.
struct RawSqlite {
    conn: rusqlite::Connection,
}

impl RawSqlite {
    fn open(path: &Path, durability: Durability) -> Result<RawSqlite> {
        let conn = rusqlite::Connection::open(path)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!("journal mode is {mode}, not WAL").into());
        }
        let level = match durability {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        };
        conn.pragma_update(None, "synchronous", level)?;
        conn.execute_batch(SQLITE_SCHEMA)?;
        Ok(RawSqlite { conn })
    }
}

impl Raw for RawSqlite {
    fn insert(&mut self, rows: &[RawRow], batch: usize) -> Result<()> {
        let conn = &self.conn;
        let mut begin = conn.prepare_cached("BEGIN IMMEDIATE")?;
        let mut commit = conn.prepare_cached("COMMIT")?;
        let mut insert = conn.prepare_cached(
            "INSERT INTO stored_events (originator_id, originator_version, topic, state) \
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        for chunk in rows.chunks(batch) {
            begin.execute([])?;
            for row in chunk {
                insert.execute((&row.id, row.version, &row.topic, &row.state))?;
                black_box(conn.last_insert_rowid());
            }
            commit.execute([])?;
        }
        Ok(())
    }

    fn replay(&mut self, id: &str) -> Result<usize> {
        let mut select = self.conn.prepare_cached(
            "SELECT originator_id, originator_version, topic, state FROM stored_events \
             WHERE originator_id = ?1 ORDER BY originator_version",
        )?;
        let mut rows = select.query([id])?;
        let mut count = 0;
        while let Some(row) = rows.next()? {
            black_box((
                row.get_ref(0)?.as_str()?,
                row.get_ref(1)?.as_i64()?,
                row.get_ref(2)?.as_str()?,
                row.get_ref(3)?.as_blob()?,
            ));
            count += 1;
        }
        Ok(count)
    }

    fn read_log(&mut self, page: usize) -> Result<usize> {
        let mut select = self.conn.prepare_cached(
            "SELECT notification_id, originator_id, originator_version, topic, state \
             FROM stored_events WHERE notification_id >= ?1 \
             ORDER BY notification_id LIMIT ?2",
        )?;
        let limit = i64::try_from(page)?;
        let mut start = 1;
        let mut count = 0;
        loop {
            let mut rows = select.query((start, limit))?;
            let mut in_page = 0;
            while let Some(row) = rows.next()? {
                let id = row.get_ref(0)?.as_i64()?;
                black_box((
                    row.get_ref(1)?.as_str()?,
                    row.get_ref(2)?.as_i64()?,
                    row.get_ref(3)?.as_str()?,
                    row.get_ref(4)?.as_blob()?,
                ));
                start = id + 1;
                in_page += 1;
            }
            count += in_page;
            if in_page < page {
                return Ok(count);
            }
        }
    }
}

// ---------------------------------------------------------------- PostgreSQL

/// The server the PostgreSQL workloads run on when `DB_URI` names none.
const DEFAULT_POSTGRES_URI: &str = "postgres://postgres@127.0.0.1/test";

/// Each measurement gets a schema of its own, dropped afterwards.
struct PostgresTarget {
    url: String,
    /// Whether a commit waits for the WAL to reach the disk.
    synced: bool,
    /// Schemas of the raw baselines made so far.
    raw_schemas: Vec<String>,
}

impl PostgresTarget {
    fn new() -> Result<PostgresTarget> {
        let url = match std::env::var("DB_URI") {
            Ok(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => url,
            _ => DEFAULT_POSTGRES_URI.to_owned(),
        };
        let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
        let mut synced = true;
        for setting in ["fsync", "synchronous_commit", "server_version"] {
            let value: String = client.query_one(&format!("SHOW {setting}"), &[])?.get(0);
            if setting != "server_version" && value == "off" {
                synced = false;
            }
            line(&format!("pg_{setting}"), value);
        }
        Ok(PostgresTarget {
            url,
            synced,
            raw_schemas: Vec::new(),
        })
    }
}

impl Target for PostgresTarget {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn durabilities(&self) -> &'static [Durability] {
        // The server's own settings (printed as `pg_*` lines).
        &[Durability::Normal]
    }

    fn synced(&self, _: Durability) -> bool {
        self.synced
    }

    fn app(&mut self, codec: Codec, _: Durability) -> Result<Application> {
        use eventsourcing::recorder::{PostgresOptions, PostgresRecorder};
        let options = PostgresOptions::new(self.url.as_str()).temporary_schema();
        let recorder = Arc::new(PostgresRecorder::open(options)?);
        Ok(builder(codec)?.recorder(recorder).build()?)
    }

    fn raw(&mut self, _: Durability) -> Result<Box<dyn Raw>> {
        let schema = format!("es_raw_{}", Uuid::new_v4().simple());
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls)?;
        client.batch_execute(&format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.stored_events (
                 notification_id BIGSERIAL PRIMARY KEY,
                 originator_id UUID NOT NULL,
                 originator_version BIGINT NOT NULL,
                 topic TEXT NOT NULL,
                 state BYTEA NOT NULL,
                 UNIQUE (originator_id, originator_version)
             );"
        ))?;
        let table = format!("{schema}.stored_events");
        self.raw_schemas.push(schema);
        Ok(Box::new(RawPostgres { client, table }))
    }

    fn clear(&mut self) -> Result<()> {
        if self.raw_schemas.is_empty() {
            return Ok(());
        }
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls)?;
        for schema in self.raw_schemas.drain(..) {
            client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))?;
        }
        Ok(())
    }
}

/// The `postgres` crate alone: one prepared statement per transaction, each
/// a batch insert of arrays (one round trip, as the recorder's), committed
/// on its own.
struct RawPostgres {
    client: postgres::Client,
    table: String,
}

impl Raw for RawPostgres {
    fn insert(&mut self, rows: &[RawRow], batch: usize) -> Result<()> {
        let insert = self.client.prepare(&format!(
            "INSERT INTO {} (originator_id, originator_version, topic, state) \
             SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::bytea[]) \
             RETURNING notification_id",
            self.table
        ))?;
        let mut ids = Vec::with_capacity(batch);
        let mut versions = Vec::with_capacity(batch);
        let mut topics = Vec::with_capacity(batch);
        let mut states = Vec::with_capacity(batch);
        for chunk in rows.chunks(batch) {
            ids.clear();
            versions.clear();
            topics.clear();
            states.clear();
            for row in chunk {
                ids.push(row.uuid);
                versions.push(row.version);
                topics.push(row.topic.as_str());
                states.push(row.state.as_slice());
            }
            let assigned = self
                .client
                .query(&insert, &[&ids, &versions, &topics, &states])?;
            black_box(assigned);
        }
        Ok(())
    }

    fn replay(&mut self, id: &str) -> Result<usize> {
        let select = self.client.prepare(&format!(
            "SELECT originator_id, originator_version, topic, state FROM {} \
             WHERE originator_id = $1 ORDER BY originator_version",
            self.table
        ))?;
        let id = Uuid::parse_str(id)?;
        let mut rows = self.client.query_raw(&select, [&id])?;
        let mut count = 0;
        while let Some(row) = postgres::fallible_iterator::FallibleIterator::next(&mut rows)? {
            black_box((
                row.try_get::<_, Uuid>(0)?,
                row.try_get::<_, i64>(1)?,
                row.try_get::<_, &str>(2)?,
                row.try_get::<_, &[u8]>(3)?,
            ));
            count += 1;
        }
        Ok(count)
    }

    fn read_log(&mut self, page: usize) -> Result<usize> {
        let select = self.client.prepare(&format!(
            "SELECT notification_id, originator_id, originator_version, topic, state \
             FROM {} WHERE notification_id >= $1 ORDER BY notification_id LIMIT $2",
            self.table
        ))?;
        let limit = i64::try_from(page)?;
        let mut start = 1_i64;
        let mut count = 0;
        loop {
            let params: [&(dyn postgres::types::ToSql + Sync); 2] = [&start, &limit];
            let mut rows = self.client.query_raw(&select, params)?;
            let mut in_page = 0;
            while let Some(row) = postgres::fallible_iterator::FallibleIterator::next(&mut rows)? {
                let id = row.try_get::<_, i64>(0)?;
                black_box((
                    row.try_get::<_, Uuid>(1)?,
                    row.try_get::<_, i64>(2)?,
                    row.try_get::<_, &str>(3)?,
                    row.try_get::<_, &[u8]>(4)?,
                ));
                start = id + 1;
                in_page += 1;
            }
            count += in_page;
            if in_page < page {
                return Ok(count);
            }
        }
    }
}

// ---------------------------------------------------------------- workloads

/// Prints one figure.
fn line(name: &str, value: impl std::fmt::Display) {
    println!("{name}: {value}");
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
    let count = count as f64;
    count / elapsed.as_secs_f64().max(1e-9)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, Duration)> {
    let start = Instant::now();
    let value = f()?;
    Ok((value, start.elapsed()))
}

/// Every stored row of an application, in notification order.
fn stored_rows(app: &Application) -> Result<Vec<RawRow>> {
    let recorder = app.event_store().recorder();
    let mut rows = Vec::new();
    let mut start = 1;
    loop {
        let page = recorder.select_notifications(start, 10_000, &[])?;
        let Some(last) = page.last() else {
            return Ok(rows);
        };
        start = last.id + 1;
        for n in &page {
            rows.push(RawRow::from_notification(n)?);
        }
    }
}

/// W1, the framework: every aggregate opened and saved, then each given
/// one deposit and saved, round after round: one event per save.
fn w1_ours(app: &Application, aggregates: usize, events: usize) -> Result<()> {
    let mut accounts = Vec::with_capacity(aggregates);
    for i in 0..aggregates {
        let mut account = Account::open(format!("owner {i}"));
        app.save(&mut account)?;
        accounts.push(account);
    }
    for round in 1..events {
        for account in &mut accounts {
            account.deposit(i64::try_from(round)?, NOTE.to_owned());
            app.save(account)?;
        }
    }
    Ok(())
}

/// W2, the framework: one aggregate, `events` events saved `batch` at a time.
fn w2_append(app: &Application, events: usize, batch: usize) -> Result<Uuid> {
    let mut account = Account::open("owner".to_owned());
    for i in 1..events {
        account.deposit(i64::try_from(i)?, NOTE.to_owned());
        if account.pending_events().len() == batch {
            app.save(&mut account)?;
        }
    }
    app.save(&mut account)?;
    Ok(account.id())
}

/// W2's replay, the framework: the aggregate rebuilt from all its events.
fn w2_replay(app: &Application, id: Uuid, events: usize) -> Result<()> {
    let account: Account = app.repository().get(id)?;
    if usize::try_from(account.version())? != events {
        return Err(format!("replayed {} events, not {events}", account.version()).into());
    }
    black_box(&account);
    Ok(())
}

/// W3, the framework: the whole notification log, page by page, each
/// notification decoded (decrypted, decompressed) and its hash checked.
fn w3_ours(app: &Application, page: usize) -> Result<usize> {
    let log = app.notification_log();
    let mut start = 1;
    let mut count = 0;
    loop {
        let batch = log.select(start, page, &[])?;
        let len = batch.len();
        if let Some(last) = batch.last() {
            start = last.id + 1;
        }
        for notification in batch {
            black_box(log.decode(notification)?);
        }
        count += len;
        if len < page {
            return Ok(count);
        }
    }
}

/// The figures of one workload for one configuration.
struct Pair {
    ours: Vec<Duration>,
    raw: Vec<Duration>,
}

impl Pair {
    fn new() -> Pair {
        Pair {
            ours: Vec::new(),
            raw: Vec::new(),
        }
    }

    /// Prints `<ours>`, `<raw>` and `<ratio>` (ours / raw as rates, higher
    /// is better), each from the median time.
    fn print(self, count: usize, ours: &str, raw: &str, ratio: &str) {
        if std::env::var_os("BENCH_SAMPLES").is_some() {
            let us = |v: &[Duration]| {
                v.iter()
                    .map(|d| d.as_micros().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            println!(
                "# {ours} samples (us): ours {} / raw {}",
                us(&self.ours),
                us(&self.raw)
            );
        }
        let (o, r) = (median(self.ours), median(self.raw));
        let (ours_rate, raw_rate) = (per_second(count, o), per_second(count, r));
        line(ours, format_args!("{ours_rate:.0}"));
        line(raw, format_args!("{raw_rate:.0}"));
        line(ratio, format_args!("{:.3}", ours_rate / raw_rate));
    }
}

/// The two databases of one measurement: the framework's and the raw one.
type Databases = (Application, Box<dyn Raw>);

/// W1 at one durability, for every codec: the codecs take turns within
/// each repetition (in rotated order), so that a change in the machine's
/// load hits them alike. Prints every W1 line of that durability and the cipher costs
/// (the median over repetitions of time with the codec / time plain, both
/// of the same repetition); returns the last repetition's databases, one
/// pair per codec (for W3).
fn w1(
    target: &mut dyn Target,
    plan: &Plan,
    durability: Durability,
) -> Result<Vec<Option<Databases>>> {
    let (aggregates, reps) = if target.synced(durability) {
        (plan.w1_synced_aggregates, plan.synced_reps)
    } else {
        (plan.w1_aggregates, plan.reps)
    };
    let mut pairs: Vec<Pair> = Codec::ALL.iter().map(|_| Pair::new()).collect();
    let mut last: Vec<Option<Databases>> = Codec::ALL.iter().map(|_| None).collect();
    for rep in 0..reps {
        // Close the previous repetition's databases before deleting them.
        for databases in &mut last {
            drop(databases.take());
        }
        target.clear()?;
        // Each repetition starts with another codec, so that none always
        // runs first (or last) after the files of the previous one are gone.
        for turn in 0..Codec::ALL.len() {
            let i = (rep + turn) % Codec::ALL.len();
            let (Some(&codec), Some(pair), Some(last)) =
                (Codec::ALL.get(i), pairs.get_mut(i), last.get_mut(i))
            else {
                continue;
            };
            let app = target.app(codec, durability)?;
            let ((), t) = timed(|| w1_ours(&app, aggregates, plan.w1_events))?;
            pair.ours.push(t);
            let rows = stored_rows(&app)?;
            if rows.len() != aggregates * plan.w1_events {
                return Err(format!("W1 stored {} rows", rows.len()).into());
            }
            let mut raw = target.raw(durability)?;
            let ((), t) = timed(|| raw.insert(&rows, 1))?;
            pair.raw.push(t);
            *last = Some((app, raw));
        }
    }
    let cost = |codec: usize| {
        let ratios = pairs[codec].ours.iter().zip(&pairs[0].ours);
        let mut ratios: Vec<f64> = ratios
            .map(|(with, plain)| with.as_secs_f64() / plain.as_secs_f64().max(1e-9))
            .collect();
        ratios.sort_by(f64::total_cmp);
        ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let costs = [cost(1), cost(2)];
    for (codec, pair) in Codec::ALL.into_iter().zip(pairs) {
        let s = format!("{}{}", durability.suffix(), codec.suffix());
        pair.print(
            aggregates * plan.w1_events,
            &format!("w1_saves_per_s{s}"),
            &format!("w1_raw_saves_per_s{s}"),
            &format!("w1_vs_raw{s}"),
        );
    }
    let d = durability.suffix();
    line(
        &format!("w1_cipher_cost{d}"),
        format_args!("{:.3}", costs[0]),
    );
    line(
        &format!("w1_cipher_zlib_cost{d}"),
        format_args!("{:.3}", costs[1]),
    );
    Ok(last)
}

/// W3 on the databases W1 left.
fn w3(
    plan: &Plan,
    codec: Codec,
    expected: usize,
    app: &Application,
    raw: &mut dyn Raw,
) -> Result<()> {
    // The plan's page size, and for plain records also the default
    // section size of a notification log (10), to show the cost per query.
    let pages: &[(usize, &str)] = if codec == Codec::Plain {
        &[(plan.w3_page, ""), (DEFAULT_SECTION, "_page10")]
    } else {
        &[(plan.w3_page, "")]
    };
    for &(page, page_suffix) in pages {
        let mut pair = Pair::new();
        for _ in 0..plan.read_reps {
            let (count, t) = timed(|| w3_ours(app, page))?;
            if count != expected {
                return Err(format!("W3 read {count} notifications, not {expected}").into());
            }
            pair.ours.push(t);
            let (count, t) = timed(|| raw.read_log(page))?;
            if count != expected {
                return Err(format!("W3 raw read {count} rows, not {expected}").into());
            }
            pair.raw.push(t);
        }
        let s = format!("{}{page_suffix}", codec.suffix());
        pair.print(
            expected,
            &format!("w3_notifications_per_s{s}"),
            &format!("w3_raw_notifications_per_s{s}"),
            &format!("w3_vs_raw{s}"),
        );
    }
    Ok(())
}

/// The notification log's default section size.
const DEFAULT_SECTION: usize = 10;

/// W2 for one codec: append, then replay.
fn w2(target: &mut dyn Target, plan: &Plan, codec: Codec) -> Result<()> {
    let mut append = Pair::new();
    let mut replay = Pair::new();
    for _ in 0..plan.reps {
        target.clear()?;
        let app = target.app(codec, Durability::Normal)?;
        let (id, t) = timed(|| w2_append(&app, plan.w2_events, plan.w2_batch))?;
        append.ours.push(t);
        let rows = stored_rows(&app)?;
        let mut raw = target.raw(Durability::Normal)?;
        let ((), t) = timed(|| raw.insert(&rows, plan.w2_batch))?;
        append.raw.push(t);

        let raw_id = id.hyphenated().to_string();
        for _ in 0..plan.read_reps {
            let ((), t) = timed(|| w2_replay(&app, id, plan.w2_events))?;
            replay.ours.push(t);
            let (count, t) = timed(|| raw.replay(&raw_id))?;
            if count != plan.w2_events {
                return Err(format!("W2 raw replay read {count} rows").into());
            }
            replay.raw.push(t);
        }
    }
    let s = codec.suffix();
    append.print(
        plan.w2_events,
        &format!("w2_append_events_per_s{s}"),
        &format!("w2_raw_append_events_per_s{s}"),
        &format!("w2_append_vs_raw{s}"),
    );
    replay.print(
        plan.w2_events,
        &format!("w2_replay_events_per_s{s}"),
        &format!("w2_raw_replay_events_per_s{s}"),
        &format!("w2_replay_vs_raw{s}"),
    );
    Ok(())
}

fn run(target: &mut dyn Target, plan: &Plan) -> Result<()> {
    line("db", target.name());
    line("plan", plan.name);
    line(
        "sizes",
        format_args!(
            "w1 {}x{} (synced commits: {}x{}), w2 {} in batches of {}, w3 pages of {}, \
             median of {} writes / {} reads / {} synced writes",
            plan.w1_aggregates,
            plan.w1_events,
            plan.w1_synced_aggregates,
            plan.w1_events,
            plan.w2_events,
            plan.w2_batch,
            plan.w3_page,
            plan.reps,
            plan.read_reps,
            plan.synced_reps,
        ),
    );
    let started = Instant::now();
    let last = w1(target, plan, Durability::Normal)?;
    for (codec, databases) in Codec::ALL.into_iter().zip(last) {
        if let Some((app, mut raw)) = databases {
            let rows = app.notification_log().max_id()?;
            w3(plan, codec, usize::try_from(rows)?, &app, &mut *raw)?;
        }
    }
    for codec in Codec::ALL {
        w2(target, plan, codec)?;
    }
    if target.durabilities().contains(&Durability::Full) {
        drop(w1(target, plan, Durability::Full)?);
    }
    target.clear()?;
    if target.name() == "sqlite" {
        followers::run(plan)?;
    }
    line(
        "elapsed_s",
        format_args!("{:.1}", started.elapsed().as_secs_f64()),
    );
    Ok(())
}

// ---------------------------------------------------------------- memory

/// The aggregate of the memory measurement.
const MILLION_ID: Uuid = Uuid::from_u128(0x6d69_6c6c_696f_6e00_0000_0000_0000_0001);
/// A one-event aggregate in the same database, for the baseline.
const ONE_ID: Uuid = Uuid::from_u128(0x6d69_6c6c_696f_6e00_0000_0000_0000_0002);
const MILLION: usize = 1_000_000;

/// The process's peak resident set size, from `/proc/self/status`.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn million(phase: &str, path: &Path) -> Result<()> {
    let app = Application::builder()
        .recorder(Arc::new(SqliteRecorder::open(SqliteOptions::file(path))?))
        .build()?;
    match phase {
        "build" => {
            let start = Instant::now();
            let mut account = Account::open_with_id(MILLION_ID, "million".to_owned());
            for i in 1..MILLION {
                account.deposit(i64::try_from(i)?, NOTE.to_owned());
                if account.pending_events().len() == 10_000 {
                    app.save(&mut account)?;
                }
            }
            app.save(&mut account)?;
            app.save(&mut Account::open_with_id(ONE_ID, "one".to_owned()))?;
            line(
                "million_build_s",
                format_args!("{:.1}", start.elapsed().as_secs_f64()),
            );
        }
        "load" | "load-one" => {
            let (id, expected) = if phase == "load" {
                (MILLION_ID, MILLION)
            } else {
                (ONE_ID, 1)
            };
            let (account, t) = timed(|| Ok(app.repository().get::<Account>(id)?))?;
            if usize::try_from(account.version())? != expected {
                return Err(format!("loaded version {}", account.version()).into());
            }
            line("million_loaded_events", expected);
            line(
                "million_replay_events_per_s",
                format_args!("{:.0}", per_second(expected, t)),
            );
            line("million_balance", account.balance);
        }
        other => {
            return Err(
                format!("unknown phase `{other}`; expected build, load or load-one").into(),
            );
        }
    }
    if let Some(kib) = peak_rss_kib() {
        line("peak_rss_kib", kib);
    }
    Ok(())
}

// ---------------------------------------------------------------- main

const USAGE: &str = "usage: bench [--quick | --smoke | --full] [--db sqlite|postgres] [--followers]
       bench --replay-million build|load|load-one PATH
       bench --profile w1|w2-append|w2-replay|w3 [plain|cipher|cipher-zlib]";

/// Runs one workload of the framework alone, for a profiler: SQLite,
/// `synchronous=NORMAL`, the full plan's sizes.
fn profile(workload: &str, codec: &str) -> Result<()> {
    let codec = match codec {
        "plain" => Codec::Plain,
        "cipher" => Codec::Cipher,
        "cipher-zlib" => Codec::CipherZlib,
        other => return Err(format!("unknown codec `{other}`\n{USAGE}").into()),
    };
    let plan = FULL_PLAN;
    let mut target = SqliteTarget::new()?;
    let app = target.app(codec, Durability::Normal)?;
    let start = Instant::now();
    match workload {
        "w1" => profiled_w1(&app, &plan)?,
        "w2-append" => {
            for _ in 0..5 {
                profiled_w2_append(&app, &plan)?;
            }
        }
        "w2-replay" => {
            let id = w2_append(&app, plan.w2_events, plan.w2_batch)?;
            let mut times = Vec::new();
            for _ in 0..50 {
                let ((), t) = timed(|| profiled_w2_replay(&app, id, &plan))?;
                times.push(t);
            }
            let best = times.iter().min().copied().unwrap_or_default();
            line(
                "replay_median_events_per_s",
                format_args!("{:.0}", per_second(plan.w2_events, median(times))),
            );
            line(
                "replay_best_events_per_s",
                format_args!("{:.0}", per_second(plan.w2_events, best)),
            );
        }
        "w3" => {
            w1_ours(&app, plan.w1_aggregates, plan.w1_events)?;
            let mut times = Vec::new();
            for _ in 0..30 {
                let ((), t) = timed(|| profiled_w3(&app, plan.w3_page))?;
                times.push(t);
            }
            let count = plan.w1_aggregates * plan.w1_events;
            let best = times.iter().min().copied().unwrap_or_default();
            line(
                "w3_median_per_s",
                format_args!("{:.0}", per_second(count, median(times))),
            );
            line(
                "w3_best_per_s",
                format_args!("{:.0}", per_second(count, best)),
            );
        }
        other => return Err(format!("unknown workload `{other}`\n{USAGE}").into()),
    }
    line(
        "elapsed_s",
        format_args!("{:.2}", start.elapsed().as_secs_f64()),
    );
    Ok(())
}

// Separate, never-inlined functions, so that a profiler can collect
// exactly these (valgrind `--toggle-collect=bench::profiled_*`).

#[inline(never)]
fn profiled_w1(app: &Application, plan: &Plan) -> Result<()> {
    w1_ours(app, plan.w1_aggregates, plan.w1_events)
}

#[inline(never)]
fn profiled_w2_append(app: &Application, plan: &Plan) -> Result<()> {
    w2_append(app, plan.w2_events, plan.w2_batch).map(drop)
}

#[inline(never)]
fn profiled_w2_replay(app: &Application, id: Uuid, plan: &Plan) -> Result<()> {
    w2_replay(app, id, plan.w2_events)
}

#[inline(never)]
fn profiled_w3(app: &Application, page: usize) -> Result<()> {
    w3_ours(app, page).map(drop)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // A debug build has no meaningful figures: without arguments it only
    // checks that every workload runs (CI runs every example this way).
    let mut plan = if cfg!(debug_assertions) {
        SMOKE_PLAN
    } else {
        FULL_PLAN
    };
    let mut db = "sqlite".to_owned();
    let mut only_followers = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => plan = QUICK_PLAN,
            "--followers" => only_followers = true,
            "--smoke" => plan = SMOKE_PLAN,
            "--full" => plan = FULL_PLAN,
            "--db" => db.clone_from(args.next().ok_or(USAGE)?),
            "--replay-million" => {
                let phase = args.next().ok_or(USAGE)?;
                let path = args.next().ok_or(USAGE)?;
                return million(phase, Path::new(path));
            }
            "--profile" => {
                let workload = args.next().ok_or(USAGE)?;
                let codec = args.next().map_or("plain", String::as_str);
                return profile(workload, codec);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument `{other}`\n{USAGE}").into()),
        }
    }
    if cfg!(debug_assertions) {
        line(
            "note",
            "debug build: the figures below are not meaningful, use --release",
        );
    }
    if only_followers {
        return followers::run(&plan);
    }
    match db.as_str() {
        "sqlite" => run(&mut SqliteTarget::new()?, &plan),
        "postgres" => run(&mut PostgresTarget::new()?, &plan),
        other => Err(format!("unknown database `{other}`; expected sqlite or postgres").into()),
    }
}
