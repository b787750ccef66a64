//! The synopsis: a `World` aggregate saved, replayed, discarded, read back
//! at an earlier version, protected by optimistic concurrency, checked by
//! its hash chain, encrypted, and published through the notification log.
//!
//! Configured from the environment like any application:
//!
//! ```text
//! cargo run --example world
//! DB_URI=sqlite:////tmp/world.db CIPHER_KEY=$(...) cargo run --example world
//! ```
//!
//! Without `CIPHER_KEY` the example generates a key itself, so that the
//! encryption assertions always run.

use eventsourcing::prelude::*;
use eventsourcing::recorder::EventQuery;
use eventsourcing::{Application, generate_cipher_key};

/// The aggregate: a world with a history of things that happened.
#[aggregate]
#[derive(Debug, Default)]
pub struct World {
    history: Vec<String>,
}

#[aggregate]
impl World {
    /// Starts a new world.
    #[created(Created)]
    pub fn create(&mut self) {}

    /// Records that something happened.
    #[event(SomethingHappened)]
    pub fn make_it_so(&mut self, what: String) {
        self.history.push(what);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Keep this safe: without the key the stored events cannot be read.
    let app = if std::env::var_os("CIPHER_KEY").is_some() {
        Application::from_env()?
    } else {
        let key = generate_cipher_key()?;
        println!("world: no CIPHER_KEY set, using a fresh one: {key}");
        Application::builder().env()?.cipher_key(key).build()?
    };
    run(&app)
}

fn run(app: &Application) -> Result<(), Box<dyn std::error::Error>> {
    let repository = app.repository();
    // A database file may hold earlier runs: count notifications from here.
    let start = app.notification_log().max_id()?;

    // Create a new aggregate: it is not in the repository yet.
    let mut world = World::create();
    assert!(!repository.contains(world.id())?);

    // Execute commands.
    world.make_it_so("dinosaurs".into());
    world.make_it_so("trucks".into());
    assert_eq!(world.history[0], "dinosaurs");
    assert_eq!(world.history[1], "trucks");

    // Note the version at this stage, then execute another command.
    let version = world.version();
    world.make_it_so("internet".into());

    // Store the pending events: now the repository has the aggregate.
    app.save(&mut world)?;
    assert!(repository.contains(world.id())?);

    // Replay the stored events.
    let copy: World = repository.get(world.id())?;
    assert_eq!(copy.history, ["dinosaurs", "trucks", "internet"]);

    // The copy's head is the live aggregate's head: the same hash chain.
    assert_eq!(copy.head(), world.head());

    // Discard the aggregate: it is no longer found.
    world.discard();
    app.save(&mut world)?;
    assert!(!repository.contains(world.id())?);
    match repository.get::<World>(world.id()) {
        Err(Error::NotFound { id }) => assert_eq!(id, world.id()),
        other => return Err(format!("expected NotFound, got {other:?}").into()),
    }

    // Time travel: the aggregate as it was at the noted version.
    let mut old: World = repository.get_at(world.id(), version)?;
    assert_eq!(old.history.last().map(String::as_str), Some("trucks"));
    assert_eq!(old.history.len(), 2);

    // Optimistic concurrency control: no branches.
    old.make_it_so("future".into());
    match app.save(&mut old) {
        Err(Error::Concurrency { id, .. }) => assert_eq!(id, world.id()),
        other => return Err(format!("expected a concurrency error, got {other:?}").into()),
    }

    // Check each stored event's hash and the links between them; the
    // chain ends at the aggregate's head.
    assert_eq!(app.event_store().verify(world.id())?, world.head());

    // The records are encrypted: the values are not visible in the database.
    let rows = app
        .event_store()
        .recorder()
        .events(&EventQuery::new(world.id()))?;
    assert_eq!(rows.len(), 5);
    for row in &rows {
        assert_eq!(row.originator_id, world.id());
        for what in ["dinosaurs", "trucks", "internet"] {
            let found = row
                .state
                .windows(what.len())
                .any(|window| window == what.as_bytes());
            assert!(!found, "`{what}` is visible in a stored state");
        }
    }

    // Project the application's event notifications.
    let mut reader = app.notification_log().reader();
    reader.seek(start + 1);
    let ids: Vec<u64> = reader.read()?.iter().map(|n| n.id - start).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5]);

    // Create two more aggregates ...
    app.save(&mut World::create())?;
    app.save(&mut World::create())?;

    // ... and the reader returns only the new notifications.
    let ids: Vec<u64> = reader.read()?.iter().map(|n| n.id - start).collect();
    assert_eq!(ids, [6, 7]);

    println!("world: all assertions hold (head {})", world.head());
    Ok(())
}

#[cfg(test)]
mod tests {
    use eventsourcing::schema::Schemas;

    /// The stored schema of `World` changes only with a version bump;
    /// `UPDATE_SCHEMAS=1 cargo test` updates the file after one.
    #[test]
    fn schemas_match_the_committed_file() {
        Schemas::new()
            .aggregate::<super::World>()
            .assert_file(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/examples/schemas/world.txt"
            ));
    }
}
