//! Causal dependencies across partitions: a scenario that gives a wrong
//! result unless partitioned followers wait for what the events they
//! handle depend on. Alone in its binary: it switches the check off for a
//! while, which would disturb other tests.
//!
//! `Relay` (two partitions) follows `Feed`; `Mirror` (two partitions)
//! follows `Relay`. Two triggers saved together make `Relay` record thing
//! `a` in one partition and then, in the other, thing `b` after reading
//! `a`. `Mirror` echoes each thing, and notes for `b` whether it had
//! echoed `a` already. `a` and `b` fall in different partitions of
//! `Mirror`, and the single-thread runner runs `b`'s partition first: only
//! the dependency that `b` carries on `a` makes it wait.

use eventsourcing::follower::{Dependency, Envelope, Partition, Processing};
use eventsourcing::prelude::*;
use eventsourcing::system::{App, Runner, System};

#[aggregate]
#[derive(Debug, Default)]
struct Trigger {}

#[aggregate]
impl Trigger {
    #[created(Fired, id = id)]
    fn fire(&mut self, id: Uuid, a: Uuid, b: Option<Uuid>) {
        let _ = (id, a, b);
    }
}

#[aggregate]
#[derive(Debug, Default)]
struct Thing {
    after: Option<Uuid>,
}

#[aggregate]
impl Thing {
    #[created(Made, id = id)]
    fn make(&mut self, id: Uuid, after: Option<Uuid>) {
        let _ = id;
        self.after = after;
    }
}

#[aggregate]
#[derive(Debug, Default)]
struct Echo {
    found: bool,
}

#[aggregate]
impl Echo {
    #[created(Echoed, id = id)]
    fn record(&mut self, id: Uuid, found: bool) {
        let _ = id;
        self.found = found;
    }
}

#[derive(Clone)]
struct Feed;

eventsourcing::source_app!(Feed: Trigger);

#[derive(Clone)]
struct Relay;

#[policy]
impl Relay {
    /// Without `b`: makes `a`. With `b`: reads `a`, then makes `b`.
    #[on(TriggerEvent::Fired)]
    fn fired(&self, cx: &mut Processing, a: Uuid, b: Option<Uuid>) -> Result<()> {
        match b {
            None => {
                cx.collect(Thing::make(a, None))?;
            }
            Some(b) => {
                cx.get::<Thing>(a)?;
                cx.collect(Thing::make(b, Some(a)))?;
            }
        }
        Ok(())
    }
}

impl App for Relay {
    type Aggregates = (Thing,);
}

#[derive(Clone)]
struct Mirror;

#[policy]
impl Mirror {
    #[on(ThingEvent::Made)]
    fn made(&self, cx: &mut Processing, envelope: &Envelope, after: Option<Uuid>) -> Result<()> {
        let found = match after {
            Some(a) => cx.find::<Echo>(a)?.is_some(),
            None => true,
        };
        cx.collect(Echo::record(envelope.originator_id(), found))?;
        Ok(())
    }
}

impl App for Mirror {
    type Aggregates = (Echo,);
}

/// A fresh id in partition `p` of 2.
fn id_in(p: u32) -> Uuid {
    loop {
        let id = Uuid::new_v4();
        if Partition::of(id, 2) == p {
            return id;
        }
    }
}

/// Runs the scenario with applications in memory, or on a SQLite file
/// (where the single runner drains in one transaction); whether `Mirror`
/// had echoed `a` when it echoed `b`.
fn b_found_a(file: Option<&support::sqlite::FileDb>) -> bool {
    let system = System::builder()
        .app(Feed)
        .app(Relay)
        .app(Mirror)
        .pipe::<(Feed, Relay, Mirror)>()
        .partitions::<Relay>(2)
        .partitions::<Mirror>(2)
        .build()
        .unwrap();
    let uri = file.map(support::sqlite::FileDb::uri);
    let running = system
        .start_with(Runner::SingleThread, move |name| {
            let builder = Application::builder().name(name);
            match &uri {
                Some(uri) => builder
                    .db_uri(uri.clone())
                    .table_prefix(format!("{}_", name.to_lowercase()))
                    .build(),
                None => builder.build(),
            }
        })
        .unwrap();
    // `a` is echoed by Mirror's partition 1, `b` by its partition 0, which
    // runs first; `a` is made by Relay's partition 0, `b` by its
    // partition 1 (after reading `a`, which came through the other one).
    let (a, b, c) = (id_in(1), id_in(0), Uuid::new_v4());
    let mut first = Trigger::fire(id_in(0), a, None);
    let mut second = Trigger::fire(id_in(1), a, Some(b));
    // Handled in the same batch as the second, reading nothing.
    let mut third = Trigger::fire(id_in(1), c, None);
    running
        .app::<Feed>()
        .save((&mut first, &mut second, &mut third))
        .unwrap();
    let relay = running.app::<Relay>();
    let b_events = relay.event_store().recorded_events(b).unwrap();
    let meta = b_events[0].metadata().unwrap();
    let dependencies = Dependency::read(&meta);
    assert_eq!(dependencies.len(), 1, "{meta:?}");
    assert_eq!(dependencies[0].upstream, "Relay");
    assert_eq!(dependencies[0].partition, 0, "a came through partition 0");
    // Dependencies are per handler: `c`, made in the same batch without
    // reading anything, depends on nothing.
    let c_events = relay.event_store().recorded_events(c).unwrap();
    assert!(Dependency::read(&c_events[0].metadata().unwrap()).is_empty());
    let echo: Echo = running.app::<Mirror>().repository().get(b).unwrap();
    running.stop().unwrap();
    echo.found
}

#[test]
fn a_partitioned_follower_waits_for_what_an_event_depends_on() {
    let files = [
        support::sqlite::FileDb::new(),
        support::sqlite::FileDb::new(),
    ];
    assert!(b_found_a(None), "with the check, b waits for a");
    assert!(b_found_a(Some(&files[0])), "on a SQLite file too");
    eventsourcing::__private::set_dependency_check(false);
    let without = b_found_a(None);
    let without_on_file = b_found_a(Some(&files[1]));
    eventsourcing::__private::set_dependency_check(true);
    assert!(
        !without,
        "without the check, b is echoed before a: the scenario shows the fault"
    );
    assert!(!without_on_file, "on a SQLite file too");
}
