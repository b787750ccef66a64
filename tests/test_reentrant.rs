//! An event body that triggers another event (directly, through a helper,
//! or `trigger` inside a hand-written `apply`) used to record the inner
//! event inside the outer one's version, so that every later load failed
//! with a version gap. Now the inner event is refused when it is triggered:
//! nothing of it is recorded or applied, and the save fails with a typed
//! error, so nothing of the command is stored.

use eventsourcing::prelude::*;
use eventsourcing::{AggregateExt, RecordedEvent};

#[aggregate]
#[derive(Debug, Default, Clone, PartialEq)]
struct Order {
    lines: Vec<(String, u32)>,
    shipped: bool,
}

#[aggregate]
impl Order {
    #[created(Placed)]
    fn place(&mut self) {}

    #[event(LineAdded)]
    fn add_line(&mut self, item: String, quantity: u32) {
        self.lines.push((item, quantity));
    }

    /// The mistake: an event body that records another event, through a
    /// helper the macro cannot see into.
    #[event(Shipped)]
    fn ship(&mut self) {
        self.shipped = true;
        self.charge_shipping();
    }

    fn charge_shipping(&mut self) {
        self.add_line("shipping".into(), 1);
    }
}

#[test]
fn an_event_method_called_from_an_event_body_is_refused_and_fails_the_save() {
    let app = Application::builder().build().unwrap();
    let mut order = Order::place();
    order.add_line("book".into(), 2);
    app.save(&mut order).unwrap();

    order.ship();
    // The inner event was neither recorded nor applied ...
    let topics: Vec<&str> = order
        .pending_events()
        .iter()
        .map(|e| e.topic.as_ref())
        .collect();
    assert_eq!(topics, ["Order.Shipped"]);
    assert_eq!(order.lines, [("book".to_owned(), 2)]);
    assert_eq!(order.version(), 3);

    // ... and the save says why, and stores nothing.
    match app.save(&mut order) {
        Err(Error::Reentrant { topic, during, id }) => {
            assert_eq!(
                (topic, during, id),
                ("Order.LineAdded", "Order.Shipped", order.id())
            );
        }
        other => panic!("expected a re-entrant trigger error, got {other:?}"),
    }
    let stored: Order = app.repository().get(order.id()).unwrap();
    assert_eq!(stored.version(), 2);
    assert!(!stored.shipped);
    assert_eq!(app.event_store().verify(order.id()).unwrap(), stored.head());
}

#[test]
fn discarding_from_an_event_body_is_refused_too() {
    #[aggregate]
    #[derive(Debug, Default)]
    struct Ticket {}

    #[aggregate]
    impl Ticket {
        #[created(Opened)]
        fn open(&mut self) {}

        #[event(Closed)]
        fn close(&mut self) {
            self.end();
        }

        fn end(&mut self) {
            self.discard();
        }
    }

    let mut ticket = Ticket::open();
    ticket.close();
    assert!(!ticket.is_discarded());
    assert!(matches!(
        ticket.take_pending_events(),
        Err(Error::Reentrant {
            topic: "Ticket.Discarded",
            during: "Ticket.Closed",
            ..
        })
    ));
}

#[derive(Event, Debug, Clone, PartialEq)]
enum MeterEvent {
    Installed,
    Read { value: u64 },
    Alarm,
}

#[aggregate]
#[derive(Debug, Default, Clone, PartialEq)]
struct Meter {
    total: u64,
    alarms: u32,
}

impl Aggregate for Meter {
    type Event = MeterEvent;

    fn apply(&mut self, event: MeterEvent) {
        match event {
            MeterEvent::Installed => {}
            MeterEvent::Read { value } => {
                self.total += value;
                // The same mistake in the explicit style.
                if self.total > 100 {
                    self.trigger(MeterEvent::Alarm);
                }
            }
            MeterEvent::Alarm => self.alarms += 1,
        }
    }
}

#[test]
fn trigger_inside_a_hand_written_apply_is_refused() {
    let app = Application::builder().build().unwrap();
    let mut meter = Meter::start(MeterEvent::Installed);
    meter.trigger(MeterEvent::Read { value: 50 });
    app.save(&mut meter).unwrap();

    meter.trigger(MeterEvent::Read { value: 60 });
    assert_eq!((meter.total, meter.alarms, meter.version()), (110, 0, 3));
    assert!(matches!(
        app.save(&mut meter),
        Err(Error::Reentrant {
            topic: "Meter.Alarm",
            during: "Meter.Read",
            ..
        })
    ));
    assert_eq!(
        app.repository().get::<Meter>(meter.id()).unwrap().version(),
        2
    );
}

/// A history stored before the rule, with the inner event recorded as an
/// event of its own right after the outer one, still replays: the inner
/// trigger is passed over while the outer body replays, and the stored
/// inner event applies in its turn.
#[test]
fn a_history_recorded_before_the_rule_still_replays() {
    let id = Uuid::new_v4();
    let mut events = Vec::new();
    let mut head = Hash::ZERO;
    for (version, (topic, data)) in [
        ("Order.Placed", "{}"),
        ("Order.LineAdded", r#"{"item":"book","quantity":2}"#),
        ("Order.Shipped", "{}"),
        ("Order.LineAdded", r#"{"item":"shipping","quantity":1}"#),
    ]
    .into_iter()
    .enumerate()
    {
        let version = u64::try_from(version).unwrap() + 1;
        let event = RecordedEvent::new(id, version, topic.into(), 0, head, data.into());
        head = event.event_hash;
        events.push(event);
    }
    let order = Order::replay(id, events.into_iter().map(Ok))
        .unwrap()
        .unwrap();
    assert!(order.shipped);
    assert_eq!(
        order.lines,
        [("book".to_owned(), 2), ("shipping".to_owned(), 1)]
    );
    assert_eq!((order.version(), order.head()), (4, head));
    // Nothing was left pending by the replay, and nothing is at fault.
    let mut order = order;
    assert!(order.take_pending_events().unwrap().is_empty());
}

/// A key type that serde writes as a struct: the macros cannot see that a
/// map of them has no JSON form, so it fails when the event is encoded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
struct Cell {
    row: u8,
    column: u8,
}

#[aggregate]
#[derive(Debug, Default)]
struct Board {
    marks: u32,
}

#[aggregate]
impl Board {
    #[created(Started)]
    fn start(&mut self) {}

    #[event(Marked)]
    fn mark(&mut self, cells: std::collections::BTreeMap<Cell, char>) {
        self.marks += u32::try_from(cells.len()).unwrap_or(u32::MAX);
    }

    #[event(Noted)]
    fn note(&mut self, text: String) {
        let _ = text;
        self.marks += 1000;
    }
}

#[test]
fn an_event_that_cannot_be_encoded_stops_the_aggregate_and_fails_the_save() {
    let app = Application::builder().build().unwrap();
    let mut board = Board::start();
    // Empty, the map encodes; with a key, it cannot.
    board.mark(std::collections::BTreeMap::new());
    board.mark([(Cell { row: 1, column: 2 }, 'x')].into());
    // Nothing more is recorded on top of the dropped event.
    board.note("later".into());
    assert_eq!((board.marks, board.version()), (0, 2));
    match app.save(&mut board) {
        Err(Error::Encode { topic, id, source }) => {
            assert_eq!((topic, id), ("Board.Marked", board.id()));
            assert!(
                source.to_string().contains("key must be a string"),
                "{source}"
            );
        }
        other => panic!("expected an encoding error, got {other:?}"),
    }
    assert!(!app.repository().contains(board.id()).unwrap());
}
