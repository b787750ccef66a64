//! Micro-benchmarks of the hot paths: trigger, encode, decode, save,
//! replay and notification read (`cargo bench --bench hot_paths`).
//!
//! Each measures one step in isolation, with the event shape of the bench
//! program (`examples/bench.rs`), which measures whole workloads against
//! raw SQLite; BENCHMARKS.md has both.

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use eventsourcing::format::event_hash;
use eventsourcing::prelude::*;
use eventsourcing::recorder::{SqliteOptions, SqliteRecorder};
use eventsourcing::{Cipher, Compression, Mapper, RecordedEvent};

/// The bench program's aggregate: events with a number and a short string.
#[aggregate]
#[derive(Debug, Default)]
pub struct Account {
    balance: i64,
    last_note: String,
}

#[aggregate]
impl Account {
    /// Opens the account.
    #[created(Opened)]
    pub fn open(&mut self) {}

    /// Records a deposit.
    #[event(Deposited)]
    pub fn deposit(&mut self, amount: i64, note: String) {
        self.balance += amount;
        self.last_note = note;
    }
}

const NOTE: &str = "monthly salary";
const LONG_NOTE: &str = "salary for the month, with the quarter's bonus; ";

fn mappers() -> [(&'static str, Mapper); 3] {
    let cipher = || Cipher::new([7; 32]);
    [
        ("plain", Mapper::new()),
        ("cipher", Mapper::new().with_cipher(cipher())),
        (
            "cipher_zlib",
            Mapper::new()
                .with_cipher(cipher())
                .with_compression(Compression::Zlib),
        ),
    ]
}

/// A recorded deposit event, as a trigger makes it.
fn deposit_event() -> RecordedEvent {
    let mut account = Account::open();
    account.deposit(1234, NOTE.to_owned());
    account.pending_events()[1].clone()
}

fn trigger(c: &mut Criterion) {
    let mut group = c.benchmark_group("trigger");
    group.throughput(Throughput::Elements(1));
    group.bench_function("deposit", |b| {
        let mut account = Account::open();
        b.iter(|| {
            account.deposit(black_box(1234), NOTE.to_owned());
            if account.pending_events().len() >= 1024 {
                // Forget the recorded events, as a save would.
                let _ = account.take_pending_events();
            }
        });
    });
    let event = deposit_event();
    group.bench_function("event_hash", |b| {
        b.iter(|| {
            event_hash(
                black_box(event.originator_id),
                event.originator_version,
                &event.topic,
                &event.previous_hash,
                event.timestamp,
                &event.data,
            )
        });
    });
    // The third fixed cost of replaying an event, beside reading its row
    // and hashing it: reading its JSON data into the event type.
    group.bench_function("event_data_decode", |b| {
        b.iter(|| AccountEvent::decode(black_box(&event.topic), black_box(&event.data)));
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    let event = deposit_event();
    for (name, mapper) in mappers() {
        group.bench_function(name, |b| b.iter(|| mapper.encode(black_box(&event))));
    }
    // A deposit with a note long enough (about 200 bytes of data) to be
    // compressed: the deposit above is under the mapper's 64-byte floor.
    let mut account = Account::open();
    account.deposit(1234, LONG_NOTE.repeat(5));
    let long = account.pending_events()[1].clone();
    let (_, zlib) = mappers().into_iter().nth(2).expect("three mappers");
    group.bench_function("cipher_zlib_200b", |b| {
        b.iter(|| zlib.encode(black_box(&long)));
    });
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_checked");
    group.throughput(Throughput::Elements(1));
    let event = deposit_event();
    for (name, mapper) in mappers() {
        let Ok(stored) = mapper.encode(&event) else {
            continue;
        };
        group.bench_function(name, |b| {
            b.iter_batched(
                || stored.clone(),
                |stored| mapper.decode_checked(stored),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

/// An application on a fresh SQLite file (WAL, `synchronous=NORMAL`).
fn sqlite_app(dir: &tempfile::TempDir, name: &str, section: usize) -> Result<Application> {
    let recorder = SqliteRecorder::open(SqliteOptions::file(dir.path().join(name)))?;
    Application::builder()
        .recorder(Arc::new(recorder))
        .section_size(section)
        .build()
}

fn storage(c: &mut Criterion) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;

    let mut group = c.benchmark_group("sqlite");
    group.throughput(Throughput::Elements(1));
    let app = sqlite_app(&dir, "save.db", 1000)?;
    let mut account = Account::open();
    app.save(&mut account)?;
    group.bench_function("save_one_event", |b| {
        b.iter(|| {
            account.deposit(1, NOTE.to_owned());
            app.save(&mut account)
        });
    });

    // A 1,000-event aggregate, and a log of 1,000 notifications.
    let app = sqlite_app(&dir, "read.db", 1000)?;
    let mut account = Account::open();
    for i in 1..1000 {
        account.deposit(i, NOTE.to_owned());
    }
    app.save(&mut account)?;
    let id = account.id();
    group.throughput(Throughput::Elements(1000));
    group.bench_function("replay_1000_events", |b| {
        b.iter(|| app.repository().get::<Account>(id));
    });
    let log = app.notification_log();
    group.bench_function("read_1000_notifications_decoded", |b| {
        b.iter(|| -> Result<usize> {
            let section = log.select(1, 1000, &[])?;
            let count = section.len();
            for notification in section {
                black_box(log.decode(notification)?);
            }
            Ok(count)
        });
    });
    group.finish();
    Ok(())
}

fn sqlite(c: &mut Criterion) {
    if let Err(error) = storage(c) {
        eprintln!("sqlite benchmarks failed: {error}");
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = trigger, encode, decode, sqlite
}
criterion_main!(benches);
