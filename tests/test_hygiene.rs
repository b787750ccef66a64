//! Generated code must not depend on the names in scope where the macros
//! are used. The module below shadows the prelude's `Result`, `Option`,
//! `Some`, `None`, `Ok`, `Err`, `Vec`, `String`, `Box` and `Default` with
//! types of its own, then defines one aggregate with `#[aggregate]` and one
//! with a derived event enum. It also gives an aggregate inherent methods
//! named `apply` and `trigger`, which generated code must not call.

mod shadowed {
    #![allow(dead_code, clippy::struct_field_names)]

    use eventsourcing::{Aggregate, AggregateExt, Event, aggregate};

    // Unit structs take both the type and the value namespace, so `Some`,
    // `None`, `Ok` and `Err` here are neither the enum variants nor
    // constructors of them.
    pub(crate) struct Result;
    pub(crate) struct Option;
    pub(crate) struct Some;
    pub(crate) struct None;
    pub(crate) struct Ok;
    pub(crate) struct Err;
    pub(crate) struct Vec;
    pub(crate) struct String;
    pub(crate) struct Box;
    pub(crate) struct Default;

    type StdString = std::string::String;
    type StdVec<T> = std::vec::Vec<T>;
    type StdOption<T> = core::option::Option<T>;

    /// An aggregate written with both macros, with fields of std types
    /// spelled out because the short names are taken.
    #[aggregate]
    #[derive(Debug, Default, PartialEq)]
    pub(crate) struct Ledger {
        pub(crate) owner: StdString,
        pub(crate) entries: StdVec<(StdString, u64)>,
        pub(crate) note: StdOption<StdString>,
        pub(crate) boxed: StdOption<std::boxed::Box<u64>>,
        /// How often the user's own `apply` or `trigger` ran.
        pub(crate) user_calls: u32,
    }

    #[aggregate]
    impl Ledger {
        #[created(Opened)]
        pub(crate) fn open(&mut self, owner: StdString) {
            self.owner = owner;
        }

        #[event(Recorded)]
        pub(crate) fn record(&mut self, entry: StdString, amount: u64, note: StdOption<StdString>) {
            self.entries.push((entry, amount));
            self.note = note;
        }

        #[event(Boxed)]
        pub(crate) fn store_boxed(&mut self, value: std::boxed::Box<u64>) {
            self.boxed = core::option::Option::Some(value);
        }

        #[event(Cleared)]
        pub(crate) fn clear(&mut self) {
            self.entries.clear();
        }

        /// Same name and shape as `Aggregate::apply`: if generated code
        /// called `self.apply(..)`, this would run instead of the event body.
        pub(crate) fn apply(&mut self, _event: LedgerEvent) {
            self.user_calls += 1;
        }
    }

    impl Ledger {
        /// Same name and shape as `Aggregate::trigger`.
        pub(crate) fn trigger(&mut self, _event: LedgerEvent) {
            self.user_calls += 1;
        }
    }

    /// An aggregate in the explicit style: a derived event enum and a
    /// hand-written `apply`.
    #[aggregate]
    #[derive(Debug, Default, PartialEq)]
    pub(crate) struct Counter {
        pub(crate) count: u64,
        pub(crate) labels: StdVec<StdString>,
    }

    #[derive(Debug, Clone, PartialEq, Event)]
    #[es(prefix = "Counter")]
    pub(crate) enum CounterEvent {
        Started {},
        Incremented {
            by: u64,
            label: StdOption<StdString>,
        },
        #[es(topic = "Counter.ResetToZero")]
        Reset,
    }

    impl Aggregate for Counter {
        type Event = CounterEvent;

        fn apply(&mut self, event: CounterEvent) {
            match event {
                CounterEvent::Started {} => {}
                CounterEvent::Incremented { by, label } => {
                    self.count += by;
                    self.labels.extend(label);
                }
                CounterEvent::Reset => self.count = 0,
            }
        }
    }

    impl Counter {
        pub(crate) fn start() -> Self {
            <Self as AggregateExt>::start(CounterEvent::Started {})
        }

        pub(crate) fn increment(&mut self, by: u64, label: StdOption<StdString>) {
            <Self as AggregateExt>::trigger(self, CounterEvent::Incremented { by, label });
        }

        pub(crate) fn reset(&mut self) {
            <Self as AggregateExt>::trigger(self, CounterEvent::Reset);
        }
    }

    /// A policy over both enums, with a handler named like `Policy::reset`
    /// and an inherent `handle` that generated code must not call.
    #[derive(Debug, Default)]
    pub(crate) struct Audit {
        pub(crate) seen: StdVec<StdString>,
        pub(crate) user_calls: u32,
    }

    #[eventsourcing::policy]
    impl Audit {
        #[on(LedgerEvent::Recorded)]
        fn recorded(
            &mut self,
            _cx: &mut u32,
            entry: &str,
            amount: u64,
        ) -> core::result::Result<(), std::fmt::Error> {
            if entry.is_empty() {
                return core::result::Result::Err(std::fmt::Error);
            }
            self.seen.push(std::format!("{entry} {amount}"));
            core::result::Result::Ok(())
        }

        /// Named like `Policy::reset`: a handler all the same.
        #[on(CounterEvent::Reset)]
        fn reset(&mut self, resets: &mut u32) {
            *resets += 1;
        }

        /// Same name as `Policy::handle`.
        pub(crate) fn handle(&mut self) {
            self.user_calls += 1;
        }
    }

    /// The topics, checked from outside the shadowing module too.
    pub(crate) fn counter_topics() -> &'static [&'static str] {
        <CounterEvent as Event>::TOPICS
    }
}

/// A field type that a `macro_rules!` names through `$crate`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Coins(u64);

/// Defines an aggregate from inside a declarative macro, whose field type is
/// written `$crate::Coins`.
macro_rules! define_wallet {
    () => {
        #[eventsourcing::aggregate]
        #[derive(Debug, Default, PartialEq)]
        pub(crate) struct Wallet {
            coins: u64,
        }

        #[eventsourcing::aggregate]
        impl Wallet {
            #[created(Opened)]
            pub(crate) fn open(&mut self) {}

            #[event(Added)]
            pub(crate) fn add(&mut self, coins: $crate::Coins) {
                self.coins += coins.0;
            }
        }
    };
}

define_wallet!();

/// Defines a policy from inside a declarative macro, whose parameter type
/// is written `$crate::Coins`.
macro_rules! define_tally {
    () => {
        #[derive(Debug, Default)]
        pub(crate) struct Tally {
            coins: u64,
        }

        #[eventsourcing::policy]
        impl Tally {
            #[on(WalletEvent::Added)]
            fn added(
                &mut self,
                events: &mut u64,
                coins: $crate::Coins,
            ) -> Result<(), std::fmt::Error> {
                self.coins += coins.0;
                *events += 1;
                Ok(())
            }
        }
    };
}

define_tally!();

use eventsourcing::follower::{Envelope, Policy};
use eventsourcing::{Aggregate, AggregateExt, Event, RecordedEvent, Root};
use shadowed::{Audit, Counter, CounterEvent, Ledger, LedgerEvent};

/// The events an aggregate has recorded so far, in envelopes.
fn envelopes<A: Aggregate>(aggregate: &A) -> Vec<Envelope> {
    (1..)
        .zip(aggregate.pending_events())
        .map(|(id, event)| Envelope::new(std::sync::Arc::from("up"), id, event.clone()))
        .collect()
}

/// Rebuilds an aggregate from the events it has recorded so far.
fn replay<A: Aggregate>(aggregate: &A) -> A {
    let events: Vec<RecordedEvent> = aggregate.pending_events().to_vec();
    A::replay(aggregate.id(), events.into_iter().map(Ok))
        .expect("replay")
        .expect("events")
}

#[test]
fn generated_aggregate_works_where_the_prelude_is_shadowed() {
    let mut ledger = Ledger::open("ada".to_owned());
    ledger.record("rent".to_owned(), 700, Some("march".to_owned()));
    ledger.record("food".to_owned(), 120, None);
    ledger.store_boxed(Box::new(7));
    ledger.clear();
    ledger.record("books".to_owned(), 40, None);

    assert_eq!(ledger.owner, "ada");
    assert_eq!(ledger.entries, [("books".to_owned(), 40)]);
    assert_eq!(ledger.note, None);
    assert_eq!(ledger.boxed.as_deref(), Some(&7));
    assert_eq!(ledger.version(), 6);
    assert_eq!(ledger.pending_events().len(), 6);

    let replayed = replay(&ledger);
    assert_eq!(replayed, ledger);
    assert_eq!(replayed.head(), ledger.head());
}

#[test]
fn user_methods_named_apply_and_trigger_are_not_called_by_generated_code() {
    let mut ledger = Ledger::open("ada".to_owned());
    ledger.record("rent".to_owned(), 700, None);
    assert_eq!(ledger.user_calls, 0);
    assert_eq!(ledger.version(), 2);
    assert_eq!(replay(&ledger).user_calls, 0);

    // The user's methods are still there, and are what plain method calls
    // reach.
    let event = LedgerEvent::Cleared {};
    ledger.apply(event.clone());
    ledger.trigger(event);
    assert_eq!(ledger.user_calls, 2);
    assert_eq!(ledger.entries.len(), 1);
    assert_eq!(ledger.version(), 2);
}

#[test]
fn generated_event_enum_encodes_fields_as_a_json_object() {
    let event = LedgerEvent::Recorded {
        entry: "rent".to_owned(),
        amount: 700,
        note: None,
    };
    assert_eq!(event.topic(), "Ledger.Recorded");
    let mut data = Vec::new();
    event.encode(&mut data).expect("encode");
    assert_eq!(data, br#"{"entry":"rent","amount":700,"note":null}"#);
    let decoded = LedgerEvent::decode("Ledger.Recorded", &data).expect("decode");
    assert_eq!(decoded, Some(event));
    // A missing optional field decodes as `None`, as serde's derive does.
    let decoded = LedgerEvent::decode("Ledger.Recorded", br#"{"entry":"x","amount":1}"#);
    assert!(matches!(
        decoded,
        Ok(Some(LedgerEvent::Recorded { note: None, .. }))
    ));
    assert_eq!(
        LedgerEvent::decode("Ledger.Unknown", b"{}").expect("decode"),
        None
    );
}

#[test]
fn generated_event_enum_is_clone_debug_and_partial_eq() {
    fn derives<T: Clone + std::fmt::Debug + PartialEq>() {}
    derives::<LedgerEvent>();
    let event = LedgerEvent::Recorded {
        entry: "x".to_owned(),
        amount: 1,
        note: None,
    };
    assert_eq!(event.clone(), event);
}

#[test]
fn derived_event_enum_works_where_the_prelude_is_shadowed() {
    let mut counter = Counter::start();
    counter.increment(2, Some("a".to_owned()));
    counter.increment(3, None);
    counter.reset();
    counter.increment(5, Some("b".to_owned()));

    assert_eq!(counter.count, 5);
    assert_eq!(counter.labels, ["a", "b"]);
    assert_eq!(counter.version(), 5);
    assert_eq!(
        shadowed::counter_topics(),
        [
            "Counter.Started",
            "Counter.Incremented",
            "Counter.ResetToZero"
        ]
    );
    assert_eq!(CounterEvent::Reset.topic(), "Counter.ResetToZero");

    let replayed = replay(&counter);
    assert_eq!(replayed, counter);
    assert_eq!(replayed.head(), counter.head());
}

#[test]
fn aggregate_defined_by_a_declarative_macro_with_crate_paths() {
    let mut wallet = Wallet::open();
    wallet.add(Coins(3));
    wallet.add(Coins(4));
    assert_eq!(wallet.coins, 7);
    assert_eq!(replay(&wallet), wallet);
}

#[test]
fn generated_policy_works_where_the_prelude_is_shadowed() {
    let mut ledger = Ledger::open("ada".to_owned());
    ledger.record("rent".to_owned(), 700, None);
    let mut counter = Counter::start();
    counter.reset();
    let mut audit = Audit::default();
    let mut resets = 0;

    let handled: Vec<bool> = envelopes(&ledger)
        .iter()
        .chain(&envelopes(&counter))
        .map(|envelope| Policy::handle(&mut audit, &mut resets, envelope).expect("handled"))
        .collect();

    assert_eq!(handled, [false, true, false, true]);
    assert_eq!(audit.seen, ["rent 700"]);
    assert_eq!(resets, 1);
    // The user's `handle` is still there, and is what a plain call reaches.
    audit.handle();
    assert_eq!(audit.user_calls, 1);
}

#[test]
fn policy_defined_by_a_declarative_macro_with_crate_paths() {
    let mut wallet = Wallet::open();
    wallet.add(Coins(3));
    wallet.add(Coins(4));
    let mut tally = Tally::default();
    let mut events = 0;

    for envelope in envelopes(&wallet) {
        tally.handle(&mut events, &envelope).expect("handled");
    }

    assert_eq!((tally.coins, events), (7, 2));
}
