//! Identity: a newtype id as the aggregate's id type, ids derived from
//! domain values (a UUID v5 from a slug, with no `uuid` feature of the
//! user's own), and loading-or-creating without matching on `NotFound`.

use eventsourcing::prelude::*;
use eventsourcing::testing::Scenario;

/// A cargo's tracking id: a UUID, but not any UUID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, AggregateId)]
struct TrackingId(Uuid);

#[aggregate(id = TrackingId)]
#[derive(Debug, Default, Clone, PartialEq)]
struct Cargo {
    destination: String,
}

#[aggregate]
impl Cargo {
    #[created(Booked)]
    fn book(&mut self, destination: String) {
        self.destination = destination;
    }
}

/// A page whose id is derived from its slug: the same slug is the same
/// page, in every process.
#[aggregate]
#[derive(Debug, Default, Clone, PartialEq)]
struct Page {
    slug: String,
    body: String,
}

#[aggregate]
impl Page {
    #[created(Created, id = Page::id_for(&slug))]
    fn create(&mut self, slug: String) {
        self.slug = slug;
    }

    #[event(Edited)]
    fn edit(&mut self, body: String) {
        self.body = body;
    }

    fn id_for(slug: &str) -> Uuid {
        Uuid::new_v5(&Uuid::NAMESPACE_URL, format!("/pages/{slug}").as_bytes())
    }
}

#[test]
fn a_newtype_id_is_the_aggregates_id_everywhere() {
    let app = Application::builder().build().unwrap();
    let mut cargo = Cargo::book("Stockholm".into());
    let id: TrackingId = cargo.id();
    app.save(&mut cargo).unwrap();
    let loaded: Cargo = app.repository().get(id).unwrap();
    assert_eq!(loaded, cargo);
    assert_eq!(app.repository().get_at::<Cargo>(id, 1).unwrap(), cargo);
    assert_eq!(app.repository().events::<Cargo>(id).unwrap().len(), 1);
    assert!(app.repository().contains(id).unwrap());
    assert_eq!(app.event_store().verify(id).unwrap(), cargo.head());
    assert_eq!(app.save_snapshot::<Cargo>(id).unwrap(), 1);

    let chosen = TrackingId(Uuid::from_u128(9));
    assert_eq!(Cargo::book_with_id(chosen, "Oslo".into()).id(), chosen);
    // Stored, it is the UUID it wraps.
    let events = app.event_store().recorded_events(id).unwrap();
    assert_eq!(events[0].originator_id, id.0);
}

#[test]
fn an_id_derived_from_a_slug_is_stable() {
    let first = Page::create("welcome".into());
    let again = Page::create("welcome".into());
    let other = Page::create("about".into());
    assert_eq!(first.id(), again.id());
    assert_ne!(first.id(), other.id());
    assert_eq!(first.id(), Page::id_for("welcome"));
    assert_eq!(first.id().get_version_num(), 5);
    // The twin that takes an id still does.
    assert_eq!(
        Page::create_with_id(Uuid::nil(), "x".into()).id(),
        Uuid::nil()
    );
}

#[test]
fn find_loads_or_says_none_for_load_or_create() {
    let app = Application::builder().build().unwrap();
    let id = Page::id_for("welcome");
    assert!(app.repository().find::<Page>(id).unwrap().is_none());
    let mut page = app
        .repository()
        .find::<Page>(id)
        .unwrap()
        .unwrap_or_else(|| Page::create("welcome".into()));
    page.edit("hello".into());
    app.save(&mut page).unwrap();
    let page = app
        .repository()
        .find::<Page>(id)
        .unwrap()
        .unwrap_or_else(|| Page::create("welcome".into()));
    assert_eq!((page.body.as_str(), page.version()), ("hello", 2));

    // Creating the same slug twice is a conflict, not a second page.
    let mut duplicate = Page::create("welcome".into());
    assert!(matches!(
        app.save(&mut duplicate),
        Err(Error::Concurrency { .. })
    ));
    // Other errors are not swallowed.
    let cargo_id = {
        let mut cargo = Cargo::book("Lima".into());
        app.save(&mut cargo).unwrap();
        cargo.id()
    };
    assert!(matches!(
        app.repository().find::<Page>(cargo_id.0),
        Err(Error::UnknownTopic { .. })
    ));
}

#[test]
fn the_test_harness_takes_a_newtype_id() {
    let id = TrackingId(Uuid::from_u128(3));
    let given = Scenario::<Cargo>::given_with_id(
        id,
        [CargoEvent::Booked {
            destination: "Rome".into(),
        }],
    );
    assert_eq!(given.aggregate().id(), id);
}
