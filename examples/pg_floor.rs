//! The floor under the peer workload on PostgreSQL (`../shared/peers/run.sh`):
//! the same commands and the same large load through this library, and
//! through the `postgres` crate alone doing the least the work needs, on
//! the same table shape, the same bytes and the same server, in turns.
//!
//! ```text
//! cargo build --release --example pg_floor
//! EVENTSOURCING_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/<db> target/release/examples/pg_floor
//! ```
//!
//! - Commands (`N_AGGS` aggregates × `EVENTS_PER_AGG` commands, in blocks
//!   of `BLOCK` aggregates, ours then raw, block after block): ours is
//!   `repository().get` + one event + `save`, as the peers' program; raw
//!   reads the aggregate's rows (prepared `SELECT` of the four columns,
//!   binary, each column read without a copy) and inserts the row ours
//!   stored for that command (prepared single-row `INSERT`, autocommit, so
//!   one transaction committed with the server's `synchronous_commit`);
//!   `raw_commit` inserts the same rows without the read. The first command
//!   of an aggregate creates it, with no read on either side.
//! - The large load (one aggregate of `BIG_EVENTS` events, saved by ours in
//!   batches of 1,000, loaded `LOAD_RUNS` times in turns): ours is
//!   `repository().get`; `raw_fetch` selects the four columns of the same
//!   rows of ours' own table in version order, row by row (`query_raw`: the
//!   `postgres` crate waits once per row); `raw_fetch_collected` the same
//!   in one `query` (one wait for all the rows); `raw_fetch_pages_of_1000`
//!   the same in pages of 1,000 by version, as ours reads since
//!   2026-11-30; `raw_union_query` ours' earlier single statement (the
//!   newest snapshot, then every event, in one `UNION ALL`) row by row.
//!   The loads are also functions of their own, for `valgrind
//!   --tool=callgrind --toggle-collect=pg_floor::profiled_load_ours` (or
//!   `_raw`, `_vec`, `_pages`).
//!
//! Lines `floor.postgres.<measure>: value unit`. Everything lives in a
//! schema of its own, dropped at the end. Without a server the program
//! says so and exits (fails with `EVENTSOURCING_REQUIRE_POSTGRES=1`); a
//! debug build runs tiny sizes.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventsourcing::Repository;
use eventsourcing::prelude::*;
use eventsourcing::recorder::{PostgresOptions, PostgresRecorder};
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

/// The peers' aggregate, as `ours-bench` declares it.
#[aggregate]
#[derive(Debug, Default)]
pub struct Account {
    opened: bool,
    balance: i64,
    deposits: u64,
}

#[aggregate]
impl Account {
    /// Opens an account.
    #[created(Opened)]
    pub fn open(&mut self, owner: String) {
        let _ = owner;
        self.opened = true;
    }

    /// Deposits `amount`.
    #[event(Deposited)]
    pub fn deposit(&mut self, amount: i64) {
        self.balance += amount;
        self.deposits += 1;
    }
}

fn size(key: &str, release: usize, debug: usize) -> usize {
    let default = if cfg!(debug_assertions) {
        debug
    } else {
        release
    };
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn report(name: &str, value: f64, unit: &str) {
    println!("floor.postgres.{name}: {value:.3} {unit}");
}

#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "sample counts are small"
)]
fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples
        .get(((samples.len().saturating_sub(1)) as f64 * p).round() as usize)
        .copied()
        .unwrap_or_default()
}

/// Reads the four event columns of each row without copying them.
fn drain(rows: postgres::RowIter<'_>, first: usize) -> Result<usize> {
    let mut rows = rows;
    let mut count = 0;
    while let Some(row) = rows.next()? {
        black_box((
            row.try_get::<_, Uuid>(first)?,
            row.try_get::<_, i64>(first + 1)?,
            row.try_get::<_, &str>(first + 2)?,
            row.try_get::<_, &[u8]>(first + 3)?,
        ));
        count += 1;
    }
    Ok(count)
}

/// One stored row: id, version, topic, state.
type Stored = (Uuid, i64, String, Vec<u8>);

/// The raw side: the `postgres` crate, prepared statements, a table of
/// ours' shape (without the recorder's `transaction_id`).
struct Raw {
    client: postgres::Client,
    select: postgres::Statement,
    insert: postgres::Statement,
}

impl Raw {
    fn open(url: &str, schema: &str) -> Result<Raw> {
        let mut client = support::pg::connect(url)?;
        let table = format!("\"{schema}\".raw_events");
        client.batch_execute(&format!(
            "CREATE TABLE {table} (
                 notification_id BIGSERIAL PRIMARY KEY,
                 originator_id UUID NOT NULL,
                 originator_version BIGINT NOT NULL,
                 topic TEXT NOT NULL,
                 state BYTEA NOT NULL,
                 UNIQUE (originator_id, originator_version))"
        ))?;
        let select = client.prepare(&format!(
            "SELECT originator_id, originator_version, topic, state FROM {table} \
             WHERE originator_id = $1 ORDER BY originator_version"
        ))?;
        let insert = client.prepare(&format!(
            "INSERT INTO {table} (originator_id, originator_version, topic, state) \
             VALUES ($1, $2, $3, $4)"
        ))?;
        Ok(Raw {
            client,
            select,
            insert,
        })
    }

    /// One command: the aggregate's rows (unless it is new), then the row.
    fn command(&mut self, row: &Stored, read: bool) -> Result<()> {
        if read {
            let params: [&(dyn ToSql + Sync); 1] = [&row.0];
            let rows = self.client.query_raw(&self.select, params)?;
            drain(rows, 0)?;
        }
        self.client
            .execute(&self.insert, &[&row.0, &row.1, &row.2, &row.3])?;
        Ok(())
    }
}

#[derive(Default)]
struct Side {
    latencies: Vec<Duration>,
    total: Duration,
}

impl Side {
    fn time(&mut self, step: impl FnOnce() -> Result<()>) -> Result<()> {
        let t = Instant::now();
        step()?;
        let elapsed = t.elapsed();
        self.latencies.push(elapsed);
        self.total += elapsed;
        Ok(())
    }

    #[allow(clippy::cast_precision_loss, reason = "counts are small")]
    fn report(&mut self, name: &str) {
        let n = self.latencies.len() as f64;
        report(
            &format!("{name}.throughput"),
            n / self.total.as_secs_f64(),
            "cmd/s",
        );
        let p50 = percentile(&mut self.latencies, 0.5);
        let p99 = percentile(&mut self.latencies, 0.99);
        report(&format!("{name}.p50"), p50.as_secs_f64() * 1e6, "us");
        report(&format!("{name}.p99"), p99.as_secs_f64() * 1e6, "us");
    }
}

/// Ours' load of the large aggregate (its own function, for
/// `valgrind --tool=callgrind --toggle-collect=pg_floor::profiled_load_ours`).
#[inline(never)]
fn profiled_load_ours(repo: Repository<'_>, id: Uuid) -> Result<usize> {
    let loaded: Account = repo.get(id)?;
    Ok(usize::try_from(loaded.deposits)?)
}

/// The raw fetch of the same rows (`--toggle-collect=pg_floor::profiled_load_raw`).
#[inline(never)]
fn profiled_load_raw(
    reader: &mut postgres::Client,
    fetch: &postgres::Statement,
    id: Uuid,
) -> Result<usize> {
    let params: [&(dyn ToSql + Sync); 1] = [&id];
    drain(reader.query_raw(fetch, params)?, 0)
}

/// The same rows read in one call (`Client::query`: one `block_on` for
/// the whole result rather than one per row), then their columns.
#[inline(never)]
fn profiled_load_vec(
    reader: &mut postgres::Client,
    fetch: &postgres::Statement,
    id: Uuid,
) -> Result<usize> {
    let rows = reader.query(fetch, &[&id])?;
    for row in &rows {
        black_box((
            row.try_get::<_, Uuid>(0)?,
            row.try_get::<_, i64>(1)?,
            row.try_get::<_, &str>(2)?,
            row.try_get::<_, &[u8]>(3)?,
        ));
    }
    Ok(rows.len())
}

/// The same rows in pages of 1,000 (`LIMIT`, by version), each read in one
/// call as in [`profiled_load_vec`].
#[inline(never)]
fn profiled_load_pages(
    reader: &mut postgres::Client,
    page: &postgres::Statement,
    id: Uuid,
) -> Result<usize> {
    let mut after = 0_i64;
    let mut count = 0;
    loop {
        let rows = reader.query(page, &[&id, &after])?;
        for row in &rows {
            after = row.try_get::<_, i64>(1)?;
            black_box((
                row.try_get::<_, Uuid>(0)?,
                row.try_get::<_, &str>(2)?,
                row.try_get::<_, &[u8]>(3)?,
            ));
        }
        count += rows.len();
        if rows.len() < 1000 {
            return Ok(count);
        }
    }
}

fn main() -> Result<()> {
    let url = support::pg::url();
    match support::pg::decide(&url, support::pg::required()) {
        support::pg::Decision::Run => {}
        support::pg::Decision::Skip(reason) => {
            println!("pg_floor: {reason}");
            return Ok(());
        }
        support::pg::Decision::Fail(reason) => return Err(reason.into()),
    }
    let n_aggs = size("N_AGGS", 1000, 4);
    let per = size("EVENTS_PER_AGG", 10, 3).max(1);
    let block = size("BLOCK", 100, 2).max(1);
    let big_events = size("BIG_EVENTS", 10_000, 50).max(1);
    let load_runs = size("LOAD_RUNS", 11, 3).max(1);

    let options = PostgresOptions::new(url.as_str()).temporary_schema();
    let recorder = Arc::new(PostgresRecorder::open(options)?);
    let schema = recorder.schema().to_owned();
    let app = Application::builder().recorder(recorder).build()?;
    let repo = app.repository();
    let mut raw = Raw::open(&url, &schema)?;
    let mut reader = support::pg::connect(&url)?;
    let events = format!("\"{schema}\".stored_events");
    let read_back = reader.prepare(&format!(
        "SELECT originator_id, originator_version, topic, state FROM {events} \
         WHERE originator_id = ANY($1) ORDER BY originator_id, originator_version"
    ))?;
    let mut settings = Vec::new();
    for setting in ["synchronous_commit", "fsync", "server_version"] {
        let value: String = reader.query_one(&format!("SHOW {setting}"), &[])?.get(0);
        settings.push(format!("{setting}={value}"));
    }
    println!("# server: {}", settings.join(" "));

    // Commands, block after block: ours, then raw on the rows ours stored.
    let (mut ours, mut raw_cmd, mut raw_commit) =
        (Side::default(), Side::default(), Side::default());
    for first in (0..n_aggs).step_by(block) {
        let mut ids = Vec::new();
        for a in first..(first + block).min(n_aggs) {
            let mut acc = Account::open(format!("owner-{a}"));
            ours.time(|| Ok(app.save(&mut acc).map(drop)?))?;
            let id = acc.id();
            ids.push(id);
            for _ in 1..per {
                ours.time(|| {
                    let mut acc: Account = repo.get(id)?;
                    acc.deposit(1);
                    Ok(app.save(&mut acc).map(drop)?)
                })?;
            }
        }
        let rows: Vec<Stored> = reader
            .query(&read_back, &[&ids])?
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
            .collect();
        for row in &rows {
            raw_cmd.time(|| raw.command(row, row.1 > 1))?;
        }
        // The same rows again under ids of their own, without the read.
        for row in &rows {
            let mut fresh = row.clone();
            fresh.0 = Uuid::from_u128(row.0.as_u128() ^ 1);
            raw_commit.time(|| raw.command(&fresh, false))?;
        }
    }
    ours.report(&format!("ours.write_{n_aggs}x{per}"));
    raw_cmd.report(&format!("raw_command.write_{n_aggs}x{per}"));
    raw_commit.report(&format!("raw_commit.write_{n_aggs}x{per}"));
    large_load(&app, &mut reader, &schema, big_events, load_runs)
}

/// The large aggregate, saved by ours in batches of 1,000, then loaded in
/// turns by ours and the raw reads.
fn large_load(
    app: &Application,
    reader: &mut postgres::Client,
    schema: &str,
    big_events: usize,
    load_runs: usize,
) -> Result<()> {
    let repo = app.repository();
    let events = format!("\"{schema}\".stored_events");
    let mut big = Account::open("big".into());
    app.save(&mut big)?;
    let mut remaining = big_events - 1;
    while remaining > 0 {
        let k = remaining.min(1000);
        for _ in 0..k {
            big.deposit(1);
        }
        app.save(&mut big)?;
        remaining -= k;
    }
    let id = big.id();
    reader.batch_execute(&format!("ANALYZE {events}"))?;
    let fetch = reader.prepare(&format!(
        "SELECT originator_id, originator_version, topic, state FROM {events} \
         WHERE originator_id = $1 ORDER BY originator_version"
    ))?;
    let snapshots = format!("\"{schema}\".snapshots");
    let cols = "originator_id, originator_version, topic, state";
    let our_query = reader.prepare(&format!(
        "(SELECT 0, {cols} FROM {snapshots} \
             WHERE originator_id = $1 AND originator_version <= $2 \
             ORDER BY originator_version DESC LIMIT 1) \
         UNION ALL \
         (SELECT 1, {cols} FROM {events} \
             WHERE originator_id = $1 AND originator_version <= $2 \
             AND originator_version >= coalesce((SELECT max(originator_version) \
                 FROM {snapshots} WHERE originator_id = $1 AND originator_version <= $2), 1) \
             ORDER BY originator_version)"
    ))?;
    let page = reader.prepare(&format!(
        "SELECT originator_id, originator_version, topic, state FROM {events} \
         WHERE originator_id = $1 AND originator_version > $2 ORDER BY originator_version LIMIT 1000"
    ))?;
    let mut loads: [Vec<Duration>; 5] = Default::default();
    for _ in 0..load_runs {
        let t = Instant::now();
        let deposits = profiled_load_ours(repo, id)?;
        loads[0].push(t.elapsed());
        assert_eq!(deposits, big_events - 1);

        let t = Instant::now();
        let count = profiled_load_raw(reader, &fetch, id)?;
        loads[1].push(t.elapsed());
        assert_eq!(count, big_events);

        let t = Instant::now();
        let count = profiled_load_vec(reader, &fetch, id)?;
        loads[3].push(t.elapsed());
        assert_eq!(count, big_events);

        let t = Instant::now();
        let count = profiled_load_pages(reader, &page, id)?;
        loads[4].push(t.elapsed());
        assert_eq!(count, big_events);

        let t = Instant::now();
        let params: [&(dyn ToSql + Sync); 2] = [&id, &i64::MAX];
        let count = drain(reader.query_raw(&our_query, params)?, 1)?;
        loads[2].push(t.elapsed());
        assert_eq!(count, big_events);
    }
    let names = [
        "ours",
        "raw_fetch",
        "raw_union_query",
        "raw_fetch_collected",
        "raw_fetch_pages_of_1000",
    ];
    for (name, samples) in names.iter().zip(&mut loads) {
        let min = percentile(samples, 0.0);
        let median = percentile(samples, 0.5);
        report(
            &format!("{name}.load_1x{big_events}.median"),
            median.as_secs_f64() * 1e3,
            "ms",
        );
        report(
            &format!("{name}.load_1x{big_events}.min"),
            min.as_secs_f64() * 1e3,
            "ms",
        );
    }
    Ok(())
}
