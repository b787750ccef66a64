//! Throughput of the PostgreSQL recorder: 1, 2, 4 and 8 writer threads,
//! each saving one event per transaction into an aggregate of its own, with
//! the default method ([`Sequencing::Concurrent`]), the classic
//! `LOCK TABLE ... IN EXCLUSIVE MODE` ([`Sequencing::TableLock`]), and the
//! default method without notifying listeners
//! ([`PostgresOptions::notify`]`(false)`), measured in the same run, round
//! after round, each in a fresh temporary schema.
//!
//! ```text
//! cargo run --release --example pg_writers -- --full   # the real figures
//! cargo run --example pg_writers                        # a quick pass (CI)
//! ```
//!
//! Prints one `name: value` line per figure: events per second for each
//! method and writer count (the median of the rounds), and ratios at 4 and
//! 8 writers (the median of each round's ratio: the methods run back to
//! back, as the disk's speed drifts over a run): the default method over
//! the table lock, and the default method with notifications over the
//! same without. `--seconds S` and `--rounds N` override the length of
//! each measurement and the number of rounds.
//!
//! The server is `EVENTSOURCING_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). Without a reachable server
//! the program says so and exits successfully, unless
//! `EVENTSOURCING_REQUIRE_POSTGRES=1`.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use eventsourcing::recorder::{PostgresOptions, PostgresRecorder, Recorder, Sequencing};
use eventsourcing::{StoredEvent, Uuid};

const WRITERS: [usize; 4] = [1, 2, 4, 8];

/// How the writers are set up: the sequencing, whether they notify
/// listeners, and the figures' name.
const METHODS: [(Sequencing, bool, &str); 3] = [
    (Sequencing::TableLock, true, "table_lock"),
    (Sequencing::Concurrent, true, "concurrent"),
    (Sequencing::Concurrent, false, "concurrent_without_notify"),
];

/// The ratios printed: `(name, numerator, denominator)`, indices into
/// [`METHODS`].
const RATIOS: [(&str, usize, usize); 2] = [
    ("concurrent_over_table_lock", 1, 0),
    ("notify_over_without", 1, 2),
];

struct Settings {
    url: String,
    rounds: usize,
    seconds: f64,
}

fn settings() -> Result<Settings, String> {
    let mut rounds = 1;
    let mut seconds: f64 = 0.25;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--full" => {
                rounds = 7;
                seconds = 2.0;
            }
            "--quick" => {}
            "--rounds" => {
                rounds = value("--rounds")?
                    .parse()
                    .map_err(|e| format!("--rounds: {e}"))?;
            }
            "--seconds" => {
                seconds = value("--seconds")?
                    .parse()
                    .map_err(|e| format!("--seconds: {e}"))?;
            }
            other => {
                return Err(format!(
                    "unknown argument `{other}`; expected --full, --quick, --rounds N, --seconds S"
                ));
            }
        }
    }
    if rounds == 0 || seconds.is_nan() || seconds <= 0.0 {
        return Err("--rounds and --seconds must be positive".to_owned());
    }
    let url = support::pg::url();
    Ok(Settings {
        url,
        rounds,
        seconds,
    })
}

/// A stored event of a typical size (a small encrypted record).
fn event(id: Uuid, version: u64) -> StoredEvent {
    StoredEvent {
        originator_id: id,
        originator_version: version,
        topic: "World.SomethingHappened".to_owned(),
        state: vec![0x5a; 120],
    }
}

/// Events per second with `writers` threads saving for `seconds`.
fn measure(
    settings: &Settings,
    (sequencing, notify, _): (Sequencing, bool, &str),
    writers: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    let options = PostgresOptions::new(settings.url.as_str())
        .temporary_schema()
        .sequencing(sequencing)
        .notify(notify)
        .pool_size(writers);
    let recorder = Arc::new(PostgresRecorder::open(options)?);
    let start = Arc::new(Barrier::new(writers + 1));
    let length = Duration::from_secs_f64(settings.seconds);
    let threads: Vec<_> = (0..writers)
        .map(|_| {
            let (recorder, start) = (Arc::clone(&recorder), Arc::clone(&start));
            thread::spawn(move || -> eventsourcing::Result<u64> {
                let id = Uuid::new_v4();
                // Warm up: open the connection and prepare the statement.
                recorder.insert_events(&[event(id, 1)])?;
                start.wait();
                let deadline = Instant::now() + length;
                let mut version = 1;
                while Instant::now() < deadline {
                    version += 1;
                    recorder.insert_events(&[event(id, version)])?;
                }
                Ok(version - 1)
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    let mut saved = 0;
    for thread in threads {
        saved += thread.join().map_err(|_| "a writer thread panicked")??;
    }
    let elapsed = began.elapsed().as_secs_f64();
    #[allow(
        clippy::cast_precision_loss,
        reason = "event counts are far below 2^52"
    )]
    Ok(saved as f64 / elapsed)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = settings()?;
    match support::pg::decide(&settings.url, support::pg::required()) {
        support::pg::Decision::Run => {}
        support::pg::Decision::Skip(reason) => {
            println!("pg_writers: {reason}");
            return Ok(());
        }
        support::pg::Decision::Fail(reason) => return Err(reason.into()),
    }

    // figures[method][writer count]: one rate per round. The methods run
    // back to back, in an order that rotates from round to round, so that
    // all see the same machine (the disk's flush latency drifts); each
    // ratio is taken per round, then its median.
    let mut figures = [(); METHODS.len()].map(|()| [(); WRITERS.len()].map(|()| Vec::new()));
    // ratios[ratio][0 for 4 writers, 1 for 8]
    let mut ratios = [(); RATIOS.len()].map(|()| [Vec::new(), Vec::new()]);
    for round in 0..settings.rounds {
        for (w, &writers) in WRITERS.iter().enumerate() {
            let mut rates = [0.0; METHODS.len()];
            for i in 0..METHODS.len() {
                let m = (i + round) % METHODS.len();
                rates[m] = measure(&settings, METHODS[m], writers)?;
                figures[m][w].push(rates[m]);
            }
            let at = match writers {
                4 => 0,
                8 => 1,
                _ => continue,
            };
            for (r, &(_, over, under)) in RATIOS.iter().enumerate() {
                if rates[under] > 0.0 {
                    ratios[r][at].push(rates[over] / rates[under]);
                }
            }
        }
    }
    for (m, &(_, _, name)) in METHODS.iter().enumerate() {
        for (w, &writers) in WRITERS.iter().enumerate() {
            let rate = median(figures[m][w].clone());
            println!("{name}_{writers}_writers_events_per_s: {rate:.0}");
        }
    }
    for (r, &(name, _, _)) in RATIOS.iter().enumerate() {
        for (at, writers) in [4, 8].into_iter().enumerate() {
            let ratio = median(ratios[r][at].clone());
            println!("{name}_at_{writers}_writers: {ratio:.2}");
        }
    }
    Ok(())
}
