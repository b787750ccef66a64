//! Snapshots, time travel and schema evolution: a thermostat that older
//! code installed and set in Fahrenheit, carried on by today's code in
//! Celsius for a few hundred readings, snapshotted automatically, and read
//! back at several versions and as of a moment.
//!
//! Configured from the environment like any application (`DB_URI`,
//! `CIPHER_KEY`, `COMPRESS`, `SNAPSHOT_INTERVAL`); without
//! `SNAPSHOT_INTERVAL` it snapshots every 100 events:
//!
//! ```text
//! cargo run --example snapshotting
//! DB_URI=sqlite:////tmp/thermostat.db SNAPSHOT_INTERVAL=50 cargo run --example snapshotting
//! ```

use eventsourcing::prelude::*;
use eventsourcing::{Application, RecordedEvent};

/// The thermostat as last year's code wrote it: temperatures in Fahrenheit.
mod last_year {
    use eventsourcing::prelude::*;

    #[aggregate]
    #[derive(Debug, Default)]
    pub(crate) struct Thermostat {
        room: String,
        fahrenheit: f64,
    }

    #[aggregate]
    impl Thermostat {
        /// Installs a thermostat in a room.
        #[created(Installed)]
        pub fn install(&mut self, room: String) {
            self.room = room;
        }

        /// Sets the temperature.
        #[event(TemperatureSet)]
        pub fn set_temperature(&mut self, fahrenheit: f64) {
            self.fahrenheit = fahrenheit;
        }
    }
}

/// Today's thermostat: Celsius. Its `TemperatureSet` event is at schema
/// version 2 and its state at version 2; the upcasters read what last
/// year's code stored.
#[aggregate(version = 2)]
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Thermostat {
    room: String,
    celsius: f64,
}

#[aggregate]
impl Thermostat {
    /// Installs a thermostat in a room.
    #[created(Installed)]
    pub fn install(&mut self, room: String) {
        self.room = room;
    }

    /// Sets the temperature.
    #[event(TemperatureSet, version = 2)]
    pub fn set_temperature(&mut self, celsius: f64) {
        self.celsius = celsius;
    }

    /// Version 1 of `TemperatureSet` held `fahrenheit`.
    #[upcast(TemperatureSet, from = 1)]
    fn temperature_set_in_celsius(data: &mut JsonObject) {
        let fahrenheit = data.remove("fahrenheit").and_then(|f| f.as_f64());
        data.insert(
            "celsius".into(),
            fahrenheit.map_or(0.0, fahrenheit_to_celsius).into(),
        );
    }

    /// Version 1 of the state (in a snapshot) held `fahrenheit` too.
    #[upcast(state, from = 1)]
    fn state_in_celsius(state: &mut JsonObject) {
        Thermostat::temperature_set_in_celsius(state);
    }
}

fn fahrenheit_to_celsius(fahrenheit: f64) -> f64 {
    (fahrenheit - 32.0) * 5.0 / 9.0
}

/// The temperature of the `i`th reading: a daily cycle of eight steps.
fn reading(i: u64) -> f64 {
    18.0 + f64::from(u8::try_from(i % 8).unwrap_or(0)) * 0.5
}

/// How many readings today's code records.
const READINGS: u64 = 400;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Every 100 events unless SNAPSHOT_INTERVAL says otherwise.
    let app = Application::builder()
        .default_snapshot_interval(100)
        .env()?
        .build()?;
    let interval = app.snapshot_interval::<Thermostat>();
    match interval {
        Some(n) => println!("snapshotting: a snapshot every {n} events"),
        None => println!("snapshotting: no automatic snapshots"),
    }
    let repository = app.repository();

    // Last year: installed, and set twice, in Fahrenheit.
    let mut old = last_year::Thermostat::install("hall".into());
    old.set_temperature(68.0);
    old.set_temperature(77.0);
    app.save(&mut old)?;
    let id = old.id();
    let stored = app.event_store().recorded_events(id)?;
    assert_eq!(stored[1].topic, "Thermostat.TemperatureSet");
    assert_eq!(stored[1].data, br#"{"fahrenheit":68.0}"#);

    // Today: the old events are upcast as they are read.
    let mut thermostat: Thermostat = repository.get(id)?;
    assert_eq!(thermostat.version(), 3);
    assert!((thermostat.celsius - 25.0).abs() < f64::EPSILON);
    let first: Thermostat = repository.get_at(id, 2)?;
    assert!((first.celsius - 20.0).abs() < f64::EPSILON);
    println!(
        "snapshotting: last year's {:?} (68 F, 77 F) read today as {} C at version 2, {} C at version 3",
        stored[1].topic, first.celsius, thermostat.celsius
    );

    // A few hundred readings, each saved as it comes.
    for i in 0..READINGS {
        thermostat.set_temperature(reading(i));
        app.save(&mut thermostat)?;
    }
    let last = thermostat.version();
    assert_eq!(last, 3 + READINGS);
    if let Some(error) = app.take_snapshot_error() {
        return Err(format!("an automatic snapshot failed: {error}").into());
    }
    // The new events are stored at version 2 of their schema.
    let events = app.event_store().recorded_events(id)?;
    assert_eq!(events[3].topic, "Thermostat.TemperatureSet@2");

    let snapshots = show_snapshots(&app, id, &events)?;
    load_at_versions(&app, id, &events, &snapshots)?;
    let now: Thermostat = repository.get(id)?;
    assert_eq!(now, thermostat);

    // Time travel by the clock: as of the moment of version 250.
    let moment = events[index(250)?].timestamp;
    let then: Thermostat = repository.get_as_of(id, moment)?;
    // Events recorded in the same microsecond as 250 count too.
    let expected = events.iter().take_while(|e| e.timestamp <= moment).count();
    assert_eq!(then.version(), u64::try_from(expected)?);
    assert!(then.version() >= 250);
    println!(
        "snapshotting: as of {moment} us: version {}, {} C",
        then.version(),
        then.celsius
    );

    // A snapshot on demand, at the current version.
    assert_eq!(app.save_snapshot::<Thermostat>(id)?, last);
    assert_eq!(snapshot_versions(&app, id)?.last(), Some(&last));
    println!("snapshotting: took a snapshot at {last} on demand; all assertions hold");
    Ok(())
}

/// Lists the aggregate's snapshots, checks that they are where the
/// interval puts them, and shows the newest.
fn show_snapshots(
    app: &Application,
    id: Uuid,
    events: &[RecordedEvent],
) -> Result<Vec<u64>, Box<dyn std::error::Error>> {
    let last = u64::try_from(events.len())?;
    // The snapshots: one at every multiple of the interval, since each save
    // added one event (and one at 3 if last year's save of versions 1 to 3
    // passed a multiple: that one holds last year's state, which today's
    // code upcasts when it reads it).
    let snapshots = snapshot_versions(app, id)?;
    let shown = match snapshots.as_slice() {
        [first, second, .., before_last, last] if snapshots.len() > 6 => {
            format!("[{first}, {second}, ..., {before_last}, {last}]")
        }
        all => format!("{all:?}"),
    };
    println!(
        "snapshotting: {last} events, {} snapshots at versions {shown}",
        snapshots.len()
    );
    let expected: Vec<u64> = match app.snapshot_interval::<Thermostat>() {
        Some(n) => {
            let first_save = (n <= 3).then_some(3);
            first_save
                .into_iter()
                .chain((4..=last).filter(|v| v % n == 0))
                .collect()
        }
        None => Vec::new(),
    };
    assert_eq!(snapshots, expected);
    if let Some(&newest) = snapshots.last() {
        let snapshot = app
            .event_store()
            .latest_snapshot(id, None)?
            .ok_or("no snapshot")?;
        assert_eq!(snapshot.topic, "Thermostat@2");
        assert_eq!(snapshot.head, events[index(newest)?].event_hash);
        println!(
            "snapshotting: the snapshot at {newest} holds {}",
            String::from_utf8_lossy(&snapshot.data)
        );
    }

    Ok(snapshots)
}

/// Loads the aggregate at several versions; each equals the full replay of
/// its events up to that version.
fn load_at_versions(
    app: &Application,
    id: Uuid,
    events: &[RecordedEvent],
    snapshots: &[u64],
) -> Result<(), Box<dyn std::error::Error>> {
    let last = u64::try_from(events.len())?;
    for version in [1, 2, 3, 99, 100, 101, 250, 300, last] {
        let loaded: Thermostat = app.repository().get_at(id, version)?;
        let replayed = full_replay(id, &events[..=index(version)?])?;
        assert_eq!(loaded, replayed);
        assert_eq!(loaded.head(), events[index(version)?].event_hash);
        let from = snapshots.iter().rev().find(|&&s| s <= version);
        let how = match from {
            Some(s) => match version - s {
                0 => format!("from the snapshot at {s}"),
                1 => format!("from the snapshot at {s} and 1 event"),
                n => format!("from the snapshot at {s} and {n} events"),
            },
            None => "replayed from the first event".to_owned(),
        };
        println!(
            "snapshotting: get_at({version}) = {} C, {} ({how})",
            loaded.celsius, loaded.room
        );
    }
    Ok(())
}

/// The index of `version` in the list of an aggregate's events.
fn index(version: u64) -> Result<usize, Box<dyn std::error::Error>> {
    Ok(usize::try_from(version)? - 1)
}

/// The aggregate rebuilt from the given events, without snapshots.
fn full_replay(
    id: Uuid,
    events: &[RecordedEvent],
) -> Result<Thermostat, Box<dyn std::error::Error>> {
    Thermostat::replay(id, events.iter().cloned().map(Ok))?.ok_or_else(|| "no events".into())
}

/// The versions of the aggregate's snapshots, oldest first.
fn snapshot_versions(app: &Application, id: Uuid) -> Result<Vec<u64>, Error> {
    let mut versions = Vec::new();
    let mut below = None;
    while let Some(snapshot) = app.event_store().latest_snapshot(id, below)? {
        versions.push(snapshot.originator_version);
        match snapshot.originator_version.checked_sub(1) {
            Some(version) => below = Some(version),
            None => break,
        }
    }
    versions.reverse();
    Ok(versions)
}
