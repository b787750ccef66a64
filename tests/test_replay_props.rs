//! Laws of the domain layer, for all inputs: replaying what an aggregate
//! recorded rebuilds it exactly, and any change to a recorded event (one
//! flipped byte, another timestamp or version, a dropped or reordered
//! event) is detected on replay as an error, never a panic and never a
//! silent success. Then the fixed facts: refusals, versions, ids, heads,
//! topics, and the explicit style.

use std::collections::{BTreeMap, HashMap};

use eventsourcing::prelude::*;
use eventsourcing::testing::Scenario;
use eventsourcing::{IntegrityFault, RecordedEvent};
use proptest::prelude::*;
use proptest::sample::Index;
use serde::{Deserialize, Serialize};

// ---- an aggregate with many kinds of event field ----------------------------

/// A nested serde struct inside an event. It is `pub` because the event
/// enum `#[aggregate]` generates is `pub` whatever the aggregate's
/// visibility, and a private field type would warn (`private_interfaces`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Address {
    street: String,
    number: u32,
    lines: Vec<String>,
    postcode: Option<String>,
}

/// The fields of one `Measured` event, as the dossier keeps them.
type Measurement = (u64, i8, bool, char, String, BTreeMap<String, u8>);

#[derive(Debug, PartialEq)]
enum DossierError {
    BadTitle,
    Overflow,
    NoItems,
    NoStreet,
    LabelTaken(String),
    Archived,
}

#[aggregate]
#[derive(Clone, Debug, Default, PartialEq)]
struct Dossier {
    title: String,
    total: i64,
    note: Option<String>,
    items: Vec<u32>,
    address: Option<Address>,
    labels: BTreeMap<String, u64>,
    measurements: Vec<Measurement>,
    archived: bool,
}

#[aggregate]
impl Dossier {
    #[created(Opened)]
    fn opened(&mut self, title: String, labels: BTreeMap<String, u64>) {
        self.title = title;
        self.labels = labels;
    }

    #[event(Retitled)]
    fn retitled(&mut self, title: String) {
        self.title = title;
    }

    #[event(Adjusted)]
    fn adjusted(&mut self, by: i64, reason: Option<String>) {
        self.total = self.total.saturating_add(by);
        if reason.is_some() {
            self.note = reason;
        }
    }

    #[event(ItemsAdded)]
    fn items_added(&mut self, items: Vec<u32>) {
        self.items.extend(items);
    }

    #[event(NoteSet)]
    fn note_set(&mut self, note: Option<String>) {
        self.note = note;
    }

    #[event(Moved)]
    fn moved(&mut self, address: Address) {
        self.address = Some(address);
    }

    #[event(Labelled)]
    fn labelled(&mut self, labels: BTreeMap<String, u64>) {
        self.labels.extend(labels);
    }

    /// A raw identifier and a map whose stored key order is not fixed.
    #[event(Measured)]
    fn measured(
        &mut self,
        big: u64,
        small: i8,
        flag: bool,
        ch: char,
        r#type: String,
        extras: HashMap<String, u8>,
    ) {
        let extras = extras.into_iter().collect();
        self.measurements
            .push((big, small, flag, ch, r#type, extras));
    }

    #[event(Archived)]
    fn archived(&mut self) {
        self.archived = true;
    }

    fn valid_title(title: &str) -> bool {
        !title.trim().is_empty() && title.chars().count() <= 40
    }

    fn open(title: String, labels: BTreeMap<String, u64>) -> Result<Self, DossierError> {
        if !Self::valid_title(&title) {
            return Err(DossierError::BadTitle);
        }
        Ok(Self::opened(title, labels))
    }

    fn check_open(&self) -> Result<(), DossierError> {
        if self.archived {
            Err(DossierError::Archived)
        } else {
            Ok(())
        }
    }

    /// Runs one command; `Err` means it was refused and recorded nothing.
    fn handle(&mut self, command: Command) -> Result<(), DossierError> {
        match command {
            Command::Retitle(title) => {
                self.check_open()?;
                if !Self::valid_title(&title) {
                    return Err(DossierError::BadTitle);
                }
                self.retitled(title);
            }
            Command::Adjust(by, reason) => {
                self.check_open()?;
                self.total.checked_add(by).ok_or(DossierError::Overflow)?;
                self.adjusted(by, reason);
            }
            Command::AddItems(items) => {
                self.check_open()?;
                if items.is_empty() {
                    return Err(DossierError::NoItems);
                }
                self.items_added(items);
            }
            Command::SetNote(note) => self.note_set(note),
            Command::MoveTo(address) => {
                self.check_open()?;
                if address.street.is_empty() {
                    return Err(DossierError::NoStreet);
                }
                self.moved(address);
            }
            Command::Label(labels) => {
                self.check_open()?;
                if let Some(key) = labels.keys().find(|k| self.labels.contains_key(*k)) {
                    return Err(DossierError::LabelTaken(key.clone()));
                }
                self.labelled(labels);
            }
            Command::Measure {
                big,
                small,
                flag,
                ch,
                kind,
                extras,
            } => {
                self.check_open()?;
                self.measured(big, small, flag, ch, kind, extras);
            }
            Command::Archive => {
                self.check_open()?;
                self.archived();
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
enum Command {
    Retitle(String),
    Adjust(i64, Option<String>),
    AddItems(Vec<u32>),
    SetNote(Option<String>),
    MoveTo(Address),
    Label(BTreeMap<String, u64>),
    Measure {
        big: u64,
        small: i8,
        flag: bool,
        ch: char,
        kind: String,
        extras: HashMap<String, u8>,
    },
    Archive,
}

// ---- strategies -------------------------------------------------------------

/// Text that JSON must escape, plus arbitrary Unicode.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        r#"[\x00-\x1f"\\{}:,\[\] a-zé€😀]{0,16}"#,
        any::<String>(),
        Just(String::new()),
    ]
}

fn address() -> impl Strategy<Value = Address> {
    (
        text(),
        any::<u32>(),
        prop::collection::vec(text(), 0..3),
        prop::option::of(text()),
    )
        .prop_map(|(street, number, lines, postcode)| Address {
            street,
            number,
            lines,
            postcode,
        })
}

fn labels() -> impl Strategy<Value = BTreeMap<String, u64>> {
    prop::collection::btree_map("[a-d]{1,2}", any::<u64>(), 0..3)
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        text().prop_map(Command::Retitle),
        (
            prop_oneof![any::<i64>(), -100i64..100],
            prop::option::of(text())
        )
            .prop_map(|(by, reason)| Command::Adjust(by, reason)),
        prop::collection::vec(any::<u32>(), 0..4).prop_map(Command::AddItems),
        prop::option::of(text()).prop_map(Command::SetNote),
        address().prop_map(Command::MoveTo),
        labels().prop_map(Command::Label),
        (
            any::<u64>(),
            any::<i8>(),
            any::<bool>(),
            any::<char>(),
            text(),
            prop::collection::hash_map(text(), any::<u8>(), 0..3),
        )
            .prop_map(|(big, small, flag, ch, kind, extras)| Command::Measure {
                big,
                small,
                flag,
                ch,
                kind,
                extras,
            }),
        Just(Command::Archive),
    ]
}

/// A creation command's arguments, then commands, then whether to discard.
fn history() -> impl Strategy<Value = (String, BTreeMap<String, u64>, Vec<Command>, bool)> {
    (
        "[A-Za-z][A-Za-z é]{0,20}",
        labels(),
        prop::collection::vec(command(), 0..12),
        any::<bool>(),
    )
}

/// Runs a history, checking on the way that a refused command changes
/// nothing. Returns the live aggregate and every event it recorded.
fn run(
    title: String,
    labels: BTreeMap<String, u64>,
    commands: Vec<Command>,
    discard: bool,
) -> (Dossier, Vec<RecordedEvent>) {
    let mut dossier = Dossier::open(title, labels).expect("the strategy makes valid titles");
    for command in commands {
        let before = dossier.clone();
        let pending = dossier.pending_events().len();
        if dossier.handle(command).is_err() {
            assert_eq!(dossier, before, "a refused command changed the state");
            assert_eq!(
                dossier.pending_events().len(),
                pending,
                "a refused command recorded an event"
            );
        }
    }
    if discard {
        dossier.discard();
    }
    let events = dossier
        .take_pending_events()
        .expect("no event of a live dossier is refused");
    (dossier, events)
}

fn replay(id: Uuid, events: &[RecordedEvent]) -> eventsourcing::Result<Option<Dossier>> {
    Dossier::replay(id, events.iter().cloned().map(Ok))
}

/// Which part of a recorded event to change.
#[derive(Clone, Copy, Debug)]
enum Part {
    Data,
    PreviousHash,
    EventHash,
    Topic,
    Timestamp,
    Version,
    OriginatorId,
}

fn part() -> impl Strategy<Value = Part> {
    prop_oneof![
        Just(Part::Data),
        Just(Part::PreviousHash),
        Just(Part::EventHash),
        Just(Part::Topic),
        Just(Part::Timestamp),
        Just(Part::Version),
        Just(Part::OriginatorId),
    ]
}

/// Changes one part of `event`: one byte XOR `mask` (never zero), or the
/// number plus `delta` (never zero). Returns the fault replay must report.
fn tamper(
    event: &mut RecordedEvent,
    part: Part,
    byte: Index,
    mask: u8,
    delta: u64,
) -> IntegrityFault {
    match part {
        Part::Data => {
            let i = byte.index(event.data.len());
            event.data[i] ^= mask;
            IntegrityFault::HashMismatch
        }
        Part::PreviousHash => {
            event.previous_hash.0[byte.index(32)] ^= mask;
            IntegrityFault::BrokenLink
        }
        Part::EventHash => {
            event.event_hash.0[byte.index(32)] ^= mask;
            IntegrityFault::HashMismatch
        }
        Part::Topic => {
            // Topics are ASCII; a 7-bit mask keeps them ASCII, so valid UTF-8.
            let mut bytes = event.topic.as_bytes().to_vec();
            let i = byte.index(bytes.len());
            bytes[i] ^= (mask % 0x7f) + 1;
            event.topic = String::from_utf8(bytes).expect("ASCII stays UTF-8").into();
            IntegrityFault::HashMismatch
        }
        Part::Timestamp => {
            event.timestamp = event.timestamp.wrapping_add_unsigned(delta);
            IntegrityFault::HashMismatch
        }
        Part::Version => {
            event.originator_version = event.originator_version.wrapping_add(delta);
            IntegrityFault::VersionGap
        }
        Part::OriginatorId => {
            let mut bytes = *event.originator_id.as_bytes();
            bytes[byte.index(16)] ^= mask;
            event.originator_id = Uuid::from_bytes(bytes);
            IntegrityFault::WrongOriginator
        }
    }
}

/// Asserts that replay failed with an integrity error of kind `fault`.
fn assert_integrity(
    result: &eventsourcing::Result<Option<Dossier>>,
    fault: IntegrityFault,
    version: u64,
) -> Result<(), TestCaseError> {
    match result {
        Err(Error::Integrity {
            fault: found,
            version: at,
            ..
        }) => {
            prop_assert_eq!(*found, fault);
            prop_assert_eq!(*at, version);
        }
        Err(other) => prop_assert!(
            false,
            "expected {fault:?} at version {version}, got {other}"
        ),
        Ok(_) => prop_assert!(
            false,
            "expected {fault:?} at version {version}, but replay succeeded"
        ),
    }
    Ok(())
}

// ---- laws ---------------------------------------------------------------------

proptest! {
    /// Replaying every recorded event rebuilds an equal aggregate: state,
    /// version and head; the head is the last event's hash.
    #[test]
    fn replay_rebuilds_the_live_aggregate((title, labels, commands, discard) in history()) {
        let (live, events) = run(title, labels, commands, discard);
        let replayed = replay(live.id(), &events).expect("an untouched chain replays").expect("there are events");
        prop_assert_eq!(&replayed, &live);
        prop_assert_eq!(replayed.version(), live.version());
        prop_assert_eq!(replayed.head(), live.head());
        prop_assert_eq!(replayed.is_discarded(), discard);
        prop_assert_eq!(live.version(), events.len() as u64);
        prop_assert_eq!(Some(live.head()), events.last().map(|e| e.event_hash));
        for (i, event) in events.iter().enumerate() {
            prop_assert_eq!(event.originator_version, i as u64 + 1);
            prop_assert!(event.check_hash().is_ok());
        }
    }

    /// Replaying in two steps (as after a snapshot) gives the same result.
    #[test]
    fn replay_can_resume_from_any_point((title, labels, commands, discard) in history(), split in any::<Index>()) {
        let (live, events) = run(title, labels, commands, discard);
        let (first, rest) = events.split_at(split.index(events.len()) + 1);
        let mut partial = replay(live.id(), first).expect("replays").expect("at least one event");
        for event in rest {
            partial.replay_next(event.clone()).expect("the next link fits");
        }
        prop_assert_eq!(partial, live);
    }

    /// One flipped byte or changed number anywhere in any event is found.
    #[test]
    fn any_single_change_is_detected(
        (title, labels, commands, discard) in history(),
        which in any::<Index>(),
        part in part(),
        byte in any::<Index>(),
        mask in 1u8..=255,
        delta in prop_oneof![1u64..1000, 1u64..=u64::MAX],
    ) {
        let (live, mut events) = run(title, labels, commands, discard);
        let i = which.index(events.len());
        let original = events[i].clone();
        let fault = tamper(&mut events[i], part, byte, mask, delta);
        prop_assert_ne!(&events[i], &original);
        let at = events[i].originator_version;
        let result = std::panic::catch_unwind(|| replay(live.id(), &events));
        let result = result.map_err(|_| TestCaseError::fail("replay panicked"))?;
        assert_integrity(&result, fault, at)?;
    }

    /// Changing an event and recomputing its hash (a forger's move) breaks
    /// the link to the next event; on the last event, the head gives it away.
    #[test]
    fn a_rehashed_change_breaks_the_link_or_the_head(
        (title, labels, commands, discard) in history(),
        which in any::<Index>(),
        delta in 1i64..1_000_000,
    ) {
        let (live, mut events) = run(title, labels, commands, discard);
        let i = which.index(events.len());
        let e = &events[i];
        events[i] = RecordedEvent::new(
            e.originator_id,
            e.originator_version,
            e.topic.clone(),
            e.timestamp.wrapping_add(delta),
            e.previous_hash,
            e.data.clone(),
        );
        let result = replay(live.id(), &events);
        if i + 1 < events.len() {
            assert_integrity(&result, IntegrityFault::BrokenLink, i as u64 + 2)?;
        } else {
            let replayed = result.expect("a consistent chain replays").expect("there are events");
            prop_assert_ne!(replayed.head(), live.head());
        }
    }

    /// Dropping an event breaks the chain; dropping the last one shortens
    /// it, which the head then shows.
    #[test]
    fn a_dropped_event_is_detected((title, labels, commands, discard) in history(), which in any::<Index>()) {
        let (live, mut events) = run(title, labels, commands, discard);
        let i = which.index(events.len());
        events.remove(i);
        let result = replay(live.id(), &events);
        if i < events.len() {
            assert_integrity(&result, IntegrityFault::VersionGap, i as u64 + 2)?;
        } else {
            let head = result.expect("a prefix replays").map(|d| d.head());
            prop_assert_ne!(head, Some(live.head()));
        }
    }

    /// Swapping two events, or repeating one, breaks the version sequence.
    #[test]
    fn reordered_or_repeated_events_are_detected(
        (title, labels, mut commands, discard) in history(),
        a in any::<Index>(),
        b in any::<Index>(),
        repeat in any::<bool>(),
    ) {
        // At least two events, so that there is something to reorder.
        commands.insert(0, Command::SetNote(None));
        let (live, mut events) = run(title, labels, commands, discard);
        let n = events.len();
        let i = a.index(n);
        if repeat {
            let copy = events[i].clone();
            events.insert(i + 1, copy);
            let result = replay(live.id(), &events);
            assert_integrity(&result, IntegrityFault::VersionGap, i as u64 + 1)?;
        } else {
            let j = (i + 1 + b.index(n - 1)) % n;
            events.swap(i, j);
            let result = replay(live.id(), &events);
            assert_integrity(&result, IntegrityFault::VersionGap, i.max(j) as u64 + 1)?;
        }
    }

    /// After a discard nothing more is recorded or applied, and taking the
    /// pending events reports the refusal.
    #[test]
    fn a_discarded_aggregate_refuses_every_event(
        (title, labels, commands, _) in history(),
        after in prop::collection::vec(command(), 0..6),
        note in prop::option::of(text()),
    ) {
        let (mut dossier, _) = run(title, labels, commands, false);
        dossier.discard();
        let at_discard = dossier.clone();
        let pending = dossier.pending_events().to_vec();
        prop_assert_eq!(pending.len(), 1);
        for command in after.into_iter().chain([Command::SetNote(note)]) {
            let _ = dossier.handle(command);
            prop_assert_eq!(&dossier, &at_discard);
            prop_assert_eq!(dossier.pending_events(), &pending[..]);
        }
        let refused = dossier.take_pending_events();
        prop_assert!(
            matches!(refused, Err(Error::Refused { state: "discarded", .. })),
            "expected a refusal, got {:?}", refused
        );
        prop_assert_eq!(dossier.pending_events(), &pending[..], "a failed take keeps the events");
    }
}

// ---- refusals -------------------------------------------------------------------

#[test]
fn an_aggregate_never_created_refuses_events() {
    let mut dossier = Dossier::default();
    dossier.note_set(Some("hello".into()));
    assert_eq!(dossier.note, None, "a refused event is not applied");
    assert_eq!(dossier.version(), 0);
    assert!(dossier.pending_events().is_empty());
    let refused = dossier.take_pending_events();
    assert!(
        matches!(
            refused,
            Err(Error::Refused {
                state: "not created",
                topic: "Dossier.NoteSet",
                ..
            })
        ),
        "expected a refusal, got {refused:?}"
    );
}

#[test]
fn discarding_an_aggregate_never_created_is_refused() {
    let mut dossier = Dossier::default();
    dossier.discard();
    assert!(!dossier.is_discarded());
    assert!(matches!(
        dossier.take_pending_events(),
        Err(Error::Refused {
            topic: "Dossier.Discarded",
            ..
        })
    ));
}

#[test]
fn the_first_refusal_is_the_one_reported() {
    let mut dossier = Dossier::open("t".into(), BTreeMap::new()).expect("valid");
    dossier.discard();
    dossier.retitled("x".into());
    dossier.archived();
    let refused = dossier.take_pending_events();
    assert!(
        matches!(
            refused,
            Err(Error::Refused {
                topic: "Dossier.Retitled",
                state: "discarded",
                ..
            })
        ),
        "got {refused:?}"
    );
    assert_eq!(dossier.title, "t");
    assert!(!dossier.archived);
}

#[test]
fn a_refused_event_is_reported_by_the_harness_too() {
    Scenario::<Dossier>::given([DossierEvent::Opened {
        title: "t".into(),
        labels: BTreeMap::new(),
    }])
    .and_discarded()
    .when(|dossier| dossier.handle(Command::SetNote(Some("n".into()))))
    .then_refused()
    .then_state(|dossier| assert_eq!(dossier.note, None))
    .then_replay_matches();
}

#[test]
fn replay_refuses_events_of_another_aggregate() {
    let (live, events) = run("t".into(), BTreeMap::new(), vec![Command::Archive], false);
    let result = replay(Uuid::new_v4(), &events);
    assert!(
        matches!(
            result,
            Err(Error::Integrity {
                fault: IntegrityFault::WrongOriginator,
                version: 1,
                ..
            })
        ),
        "got {result:?}"
    );
    let (_, other) = run("u".into(), BTreeMap::new(), vec![], false);
    let mut mixed = events.clone();
    mixed.extend(other);
    let result = replay(live.id(), &mixed);
    assert!(matches!(
        result,
        Err(Error::Integrity {
            fault: IntegrityFault::WrongOriginator,
            ..
        })
    ));
}

#[test]
fn replay_of_no_events_is_none() {
    assert!(matches!(replay(Uuid::new_v4(), &[]), Ok(None)));
}

#[test]
fn a_recorded_topic_of_another_type_is_an_unknown_topic() {
    let mut world = World::create();
    world.happen("x".into());
    let mut events = world.take_pending_events().expect("no fault");
    let id = world.id();
    // A well-formed, correctly hashed event whose topic Dossier does not know.
    let result = Dossier::replay(id, events.drain(..).map(Ok));
    assert!(
        matches!(result, Err(Error::UnknownTopic { aggregate: "Dossier", ref topic, version: 1, .. }) if topic == "World.Created"),
        "got {result:?}"
    );
}

// ---- versions, ids, heads ---------------------------------------------------------

#[test]
fn version_starts_at_one_and_counts_events() {
    let mut world = World::create();
    assert_eq!(world.version(), 1);
    assert_ne!(world.id(), Uuid::nil());
    world.happen("a".into());
    world.make_it_so("b".into());
    assert_eq!(world.version(), 3);
    let events = world.take_pending_events().expect("no fault");
    let versions: Vec<u64> = events.iter().map(|e| e.originator_version).collect();
    assert_eq!(versions, [1, 2, 3]);
    assert_eq!(events[0].previous_hash, eventsourcing::Hash::ZERO);
    assert!(world.pending_events().is_empty());
}

#[test]
fn create_with_id_uses_the_given_id() {
    let id = Uuid::from_u128(0x00c0_ffee);
    let world = World::create_with_id(id);
    assert_eq!(world.id(), id);
    assert_eq!(world.version(), 1);
    assert!(world.pending_events().iter().all(|e| e.originator_id == id));
    let other = World::create();
    assert_ne!(other.id(), id);
}

#[test]
fn the_head_is_64_hex_digits_and_the_last_event_hash() {
    let mut world = World::create();
    let first = world.head();
    world.happen("x".into());
    let hex = world.head().to_hex();
    assert_eq!(hex.len(), 64);
    assert!(
        hex.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert_eq!(world.head().to_string(), hex);
    assert_eq!(eventsourcing::Hash::from_hex(&hex), Some(world.head()));
    assert_eq!(world.head(), *hex.as_str());
    assert_ne!(world.head(), first);
    let last = world.pending_events().last().expect("events").event_hash;
    assert_eq!(world.head(), last);
    assert_eq!(world.pending_events()[1].previous_hash, first);
}

// ---- topics and names -------------------------------------------------------------

#[aggregate]
#[derive(Debug, Default, PartialEq)]
struct World {
    history: Vec<String>,
}

#[aggregate]
impl World {
    #[created(Created)]
    fn create(&mut self) {}

    #[event(SomethingHappened)]
    fn happen(&mut self, what: String) {
        self.history.push(what);
    }

    /// No name given: the event is named after the method.
    #[event]
    fn make_it_so(&mut self, what: String) {
        self.history.push(format!("made {what}"));
    }

    #[event(Renamed, topic = "world.renamed.v2")]
    fn rename(&mut self, name: String) {
        self.history.push(format!("renamed {name}"));
    }
}

/// Creation event without a name.
#[aggregate]
#[derive(Debug, Default, PartialEq)]
struct Plain {}

#[aggregate]
impl Plain {
    #[created]
    fn begin_now(&mut self) {}
}

#[test]
fn topics_are_aggregate_dot_event() {
    let mut world = World::create();
    world.happen("x".into());
    world.make_it_so("y".into());
    world.rename("z".into());
    world.discard();
    let topics: Vec<String> = world
        .pending_events()
        .iter()
        .map(|e| e.topic.to_string())
        .collect();
    assert_eq!(
        topics,
        [
            "World.Created",
            "World.SomethingHappened",
            "World.MakeItSo",
            "world.renamed.v2",
            "World.Discarded"
        ]
    );
    assert_eq!(
        <WorldEvent as Event>::TOPICS,
        [
            "World.Created",
            "World.SomethingHappened",
            "World.MakeItSo",
            "world.renamed.v2"
        ]
    );
    assert_eq!(<World as Root>::NAME, "World");
    assert_eq!(<World as Root>::DISCARDED_TOPIC, "World.Discarded");
}

#[test]
fn an_unnamed_event_is_named_after_its_method() {
    // `make_it_so` becomes the variant `MakeItSo` (this would not compile otherwise).
    let event = WorldEvent::MakeItSo { what: "x".into() };
    assert_eq!(event.topic(), "World.MakeItSo");
    let plain = Plain::begin_now();
    assert_eq!(plain.pending_events()[0].topic, "Plain.BeginNow");
    assert_eq!(PlainEvent::BeginNow {}.topic(), "Plain.BeginNow");
}

#[test]
fn renamed_topics_replay() {
    let mut world = World::create();
    world.rename("n".into());
    let events = world.take_pending_events().expect("no fault");
    assert_eq!(events[1].topic, "world.renamed.v2");
    let replayed = World::replay(world.id(), events.into_iter().map(Ok))
        .expect("replays")
        .expect("events");
    assert_eq!(replayed, world);
    assert_eq!(replayed.history, ["renamed n"]);
    assert_eq!(
        WorldEvent::decode("world.renamed.v2", br#"{"name":"n"}"#).expect("valid"),
        Some(WorldEvent::Renamed { name: "n".into() })
    );
    assert_eq!(
        WorldEvent::decode("World.Renamed", br#"{"name":"n"}"#).expect("valid"),
        None,
        "the default topic no longer names the renamed event"
    );
}

#[test]
fn raw_identifiers_are_stored_without_the_prefix() {
    let mut dossier = Dossier::open("t".into(), BTreeMap::new()).expect("valid");
    dossier.measured(1, -1, true, 'x', "kind".into(), HashMap::new());
    let data = &dossier.pending_events()[1].data;
    let json = std::str::from_utf8(data).expect("UTF-8");
    assert_eq!(
        json,
        r#"{"big":1,"small":-1,"flag":true,"ch":"x","type":"kind","extras":{}}"#
    );
}

// ---- the explicit style ---------------------------------------------------------

/// A hand-written event enum with a custom prefix, unit variants and one
/// renamed topic.
#[derive(Clone, Debug, PartialEq, Event)]
#[es(prefix = "Ledger")]
enum Entry {
    Opened {
        owner: String,
    },
    Credited {
        amount: u64,
        memo: Option<String>,
    },
    Frozen,
    #[es(topic = "ledger.thawed.v2")]
    Thawed,
}

/// The default prefix: the enum's name without `Event`.
#[derive(Clone, Debug, PartialEq, Event)]
enum CounterEvent {
    Incremented { by: u32 },
    Reset,
}

#[aggregate]
#[derive(Debug, Default, PartialEq)]
struct Ledger {
    owner: String,
    balance: u64,
    frozen: bool,
}

impl Aggregate for Ledger {
    type Event = Entry;

    fn apply(&mut self, event: Entry) {
        match event {
            Entry::Opened { owner } => self.owner = owner,
            Entry::Credited { amount, .. } => self.balance = self.balance.saturating_add(amount),
            Entry::Frozen => self.frozen = true,
            Entry::Thawed => self.frozen = false,
        }
    }
}

impl Ledger {
    fn open(owner: &str) -> Self {
        Self::start(Entry::Opened {
            owner: owner.into(),
        })
    }

    fn credit(&mut self, amount: u64, memo: Option<String>) -> Result<(), &'static str> {
        if self.frozen {
            return Err("frozen");
        }
        self.trigger(Entry::Credited { amount, memo });
        Ok(())
    }

    fn freeze(&mut self) {
        self.trigger(Entry::Frozen);
    }

    fn thaw(&mut self) {
        self.trigger(Entry::Thawed);
    }
}

#[test]
fn derived_topics_follow_prefix_and_renames() {
    assert_eq!(
        Entry::TOPICS,
        [
            "Ledger.Opened",
            "Ledger.Credited",
            "Ledger.Frozen",
            "ledger.thawed.v2"
        ]
    );
    assert_eq!(Entry::Frozen.topic(), "Ledger.Frozen");
    assert_eq!(Entry::Thawed.topic(), "ledger.thawed.v2");
    assert_eq!(CounterEvent::Reset.topic(), "Counter.Reset");
    assert_eq!(
        CounterEvent::Incremented { by: 2 }.topic(),
        "Counter.Incremented"
    );
}

#[test]
fn derived_events_encode_and_decode() {
    let mut out = Vec::new();
    Entry::Frozen.encode(&mut out).expect("encodes");
    assert_eq!(out, b"{}");
    out.clear();
    Entry::Credited {
        amount: 5,
        memo: None,
    }
    .encode(&mut out)
    .expect("encodes");
    assert_eq!(out, br#"{"amount":5,"memo":null}"#);
    assert_eq!(
        Entry::decode("Ledger.Credited", &out).expect("valid"),
        Some(Entry::Credited {
            amount: 5,
            memo: None
        })
    );
    assert_eq!(
        Entry::decode("ledger.thawed.v2", b"{}").expect("valid"),
        Some(Entry::Thawed)
    );
    assert_eq!(Entry::decode("Ledger.Thawed", b"{}").expect("valid"), None);
    assert!(Entry::decode("Ledger.Credited", b"{\"amount\":\"x\"}").is_err());
}

#[test]
fn the_explicit_style_records_and_replays_like_the_macro_style() {
    let id = Uuid::from_u128(42);
    let mut ledger = Ledger::start_with_id(
        id,
        Entry::Opened {
            owner: "ann".into(),
        },
    );
    assert_eq!(ledger.version(), 1);
    ledger.credit(10, Some("pay".into())).expect("not frozen");
    ledger.freeze();
    assert_eq!(ledger.credit(1, None), Err("frozen"));
    ledger.thaw();
    ledger.credit(2, None).expect("thawed");
    let events = ledger.take_pending_events().expect("no fault");
    let topics: Vec<&str> = events.iter().map(|e| &*e.topic).collect();
    assert_eq!(
        topics,
        [
            "Ledger.Opened",
            "Ledger.Credited",
            "Ledger.Frozen",
            "ledger.thawed.v2",
            "Ledger.Credited"
        ]
    );
    assert!(events.iter().all(|e| e.originator_id == id));
    assert_eq!(ledger.head(), events[4].event_hash);
    let replayed = Ledger::replay(id, events.into_iter().map(Ok))
        .expect("replays")
        .expect("events");
    assert_eq!(replayed, ledger);
    assert_eq!(replayed.balance, 12);
    assert!(!replayed.frozen);
}

#[test]
fn the_explicit_style_is_refused_after_discard_and_works_with_the_harness() {
    Scenario::<Ledger>::given([Entry::Opened { owner: "bo".into() }])
        .when(|ledger| ledger.credit(3, None))
        .then_events([Entry::Credited {
            amount: 3,
            memo: None,
        }])
        .into_given()
        .when(Ledger::freeze)
        .then_events([Entry::Frozen])
        .then_replay_matches()
        .into_given()
        .when(|ledger| ledger.credit(1, None))
        .then_error_is("frozen")
        .then_no_events();

    Scenario::<Ledger>::given([Entry::Opened { owner: "cy".into() }])
        .and_discarded()
        .when(Ledger::thaw)
        .then_refused();

    let mut never = Ledger::default();
    never.freeze();
    assert!(!never.frozen);
    assert!(matches!(
        never.take_pending_events(),
        Err(Error::Refused {
            state: "not created",
            topic: "Ledger.Frozen",
            ..
        })
    ));
    let fresh = Ledger::open("dee");
    assert_eq!(fresh.version(), 1);
}

proptest! {
    /// The explicit style obeys the replay law too.
    #[test]
    fn explicit_style_replay_rebuilds_the_live_aggregate(
        steps in prop::collection::vec((0u8..3, any::<u64>(), prop::option::of(text())), 0..12),
    ) {
        let mut ledger = Ledger::open("owner");
        for (kind, amount, memo) in steps {
            match kind {
                0 => { let _ = ledger.credit(amount, memo); }
                1 => ledger.freeze(),
                _ => ledger.thaw(),
            }
        }
        let events = ledger.take_pending_events().expect("no fault");
        let replayed = Ledger::replay(ledger.id(), events.into_iter().map(Ok))
            .expect("replays")
            .expect("events");
        prop_assert_eq!(replayed, ledger);
    }
}
