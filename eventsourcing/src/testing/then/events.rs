//! Expectations on the events the command recorded.

use std::fmt::{self, Debug, Write as _};

use super::{Then, count};
use crate::domain::{Aggregate, Event};

#[allow(
    clippy::return_self_not_must_use,
    reason = "checks are chained, and the result of the last one is dropped"
)]
impl<A: Aggregate, T, E> Then<A, T, E> {
    /// Checks that the command succeeded and recorded exactly `expected`,
    /// in order (compared after decoding what was recorded).
    ///
    /// # Panics
    ///
    /// If the command failed, if it triggered an event that was dropped, or
    /// if the recorded events differ from `expected`; the message lists
    /// both and marks the first difference.
    ///
    /// ```
    /// # use eventsourcing::prelude::*;
    /// # use eventsourcing::testing::Scenario;
    /// # #[aggregate]
    /// # #[derive(Debug, Default, PartialEq)]
    /// # pub struct Account { owner: String, balance: u64 }
    /// # #[aggregate]
    /// # impl Account {
    /// #     #[created(Opened)]
    /// #     pub fn open(&mut self, owner: String) { self.owner = owner; }
    /// #     #[event(Deposited)]
    /// #     pub fn deposit(&mut self, amount: u64) { self.balance += amount; }
    /// # }
    /// Scenario::<Account>::given([AccountEvent::Opened { owner: "Alice".into() }])
    ///     .when(|account| {
    ///         account.deposit(1);
    ///         account.deposit(2);
    ///     })
    ///     .then_events([
    ///         AccountEvent::Deposited { amount: 1 },
    ///         AccountEvent::Deposited { amount: 2 },
    ///     ]);
    /// ```
    ///
    /// A wrong expectation panics:
    ///
    /// ```should_panic
    /// # use eventsourcing::prelude::*;
    /// # use eventsourcing::testing::Scenario;
    /// # #[aggregate]
    /// # #[derive(Debug, Default, PartialEq)]
    /// # pub struct Account { owner: String, balance: u64 }
    /// # #[aggregate]
    /// # impl Account {
    /// #     #[created(Opened)]
    /// #     pub fn open(&mut self, owner: String) { self.owner = owner; }
    /// #     #[event(Deposited)]
    /// #     pub fn deposit(&mut self, amount: u64) { self.balance += amount; }
    /// # }
    /// Scenario::<Account>::given([AccountEvent::Opened { owner: "Alice".into() }])
    ///     .when(|account| account.deposit(1))
    ///     .then_events([AccountEvent::Deposited { amount: 2 }]);
    /// ```
    #[track_caller]
    pub fn then_events(self, expected: impl IntoIterator<Item = A::Event>) -> Self
    where
        A::Event: Debug + PartialEq,
        E: Debug,
    {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        if let Err(error) = &self.outcome {
            panic!(
                "{}: expected the command to record {}, but it failed with {error:?}",
                A::NAME,
                count(expected.len(), "event"),
            );
        }
        self.assert_no_fault("then_events");
        let actual = self.shown();
        let first_difference = (0..expected.len().max(actual.len())).find(|&i| {
            !matches!(
                (expected.get(i), actual.get(i)),
                (Some(want), Some(Shown::Event(got))) if want == got
            )
        });
        if let Some(index) = first_difference {
            let mut message = format!(
                "{}: the command recorded other events than expected (first difference at index {index})\n",
                A::NAME
            );
            write_list(&mut message, "expected", &expected, index);
            write_list(&mut message, "recorded", &actual, index);
            panic!("{message}");
        }
        self
    }

    /// Checks that the command recorded nothing, whether it succeeded or
    /// failed, and triggered nothing that was dropped.
    ///
    /// # Panics
    ///
    /// If an event was recorded, or an event was triggered and dropped
    /// (refused or not encodable; [`Then::then_refused`] expects that).
    ///
    /// ```
    /// # use eventsourcing::prelude::*;
    /// # use eventsourcing::testing::Scenario;
    /// # #[aggregate]
    /// # #[derive(Debug, Default, PartialEq)]
    /// # pub struct Account { owner: String, balance: u64 }
    /// # #[aggregate]
    /// # impl Account {
    /// #     #[created(Opened)]
    /// #     pub fn open(&mut self, owner: String) { self.owner = owner; }
    /// #     #[event(Deposited)]
    /// #     pub fn deposit(&mut self, amount: u64) { self.balance += amount; }
    /// # }
    /// Scenario::<Account>::given([AccountEvent::Opened { owner: "Alice".into() }])
    ///     .when(|account| {
    ///         if account.balance > 0 {
    ///             account.deposit(account.balance);
    ///         }
    ///     })
    ///     .then_no_events();
    /// ```
    #[track_caller]
    pub fn then_no_events(self) -> Self {
        self.assert_no_fault("then_no_events");
        if !self.recorded.is_empty() {
            let mut message = format!(
                "{}: expected the command to record no events, but it recorded {}:\n",
                A::NAME,
                count(self.recorded.len(), "event"),
            );
            for event in &self.recorded {
                let _ = writeln!(
                    message,
                    "    version {}: {}",
                    event.originator_version, event.topic
                );
            }
            panic!("{message}");
        }
        self
    }

    /// Checks the topics of the recorded events, including the discard
    /// event, which [`Then::then_events`] cannot name.
    ///
    /// # Panics
    ///
    /// If the topics differ from `expected`.
    ///
    /// ```
    /// # use eventsourcing::prelude::*;
    /// # use eventsourcing::testing::Scenario;
    /// # #[aggregate]
    /// # #[derive(Debug, Default, PartialEq)]
    /// # pub struct Account { owner: String, balance: u64 }
    /// # #[aggregate]
    /// # impl Account {
    /// #     #[created(Opened)]
    /// #     pub fn open(&mut self, owner: String) { self.owner = owner; }
    /// #     #[event(Deposited)]
    /// #     pub fn deposit(&mut self, amount: u64) { self.balance += amount; }
    /// # }
    /// Scenario::<Account>::given([AccountEvent::Opened { owner: "Alice".into() }])
    ///     .when(|account| {
    ///         account.deposit(1);
    ///         account.discard();
    ///     })
    ///     .then_topics(&["Account.Deposited", "Account.Discarded"]);
    /// ```
    #[track_caller]
    pub fn then_topics(self, expected: &[&str]) -> Self {
        let actual: Vec<&str> = self.recorded.iter().map(|e| &*e.topic).collect();
        assert!(
            actual == expected,
            "{}: the command recorded other topics than expected\n    expected: {expected:?}\n    recorded: {actual:?}",
            A::NAME,
        );
        self
    }

    /// Decodes the recorded events for comparison and display.
    #[track_caller]
    fn shown(&self) -> Vec<Shown<A::Event>> {
        // A loop rather than a closure, so that `#[track_caller]` reaches the panic.
        let mut shown = Vec::with_capacity(self.recorded.len());
        for recorded in &self.recorded {
            shown.push(if recorded.topic == A::DISCARDED_TOPIC {
                Shown::Discarded
            } else {
                match A::Event::decode(&recorded.topic, &recorded.data) {
                    Ok(Some(event)) => Shown::Event(event),
                    Ok(None) => Shown::UnknownTopic(recorded.topic.to_string()),
                    Err(error) => panic!(
                        "{}: recorded event {} (`{}`) does not decode: {error}; its data is {}",
                        A::NAME,
                        recorded.originator_version,
                        recorded.topic,
                        String::from_utf8_lossy(&recorded.data),
                    ),
                }
            });
        }
        shown
    }
}

/// How a recorded event is shown in a failure message.
enum Shown<E> {
    Event(E),
    Discarded,
    UnknownTopic(String),
}

impl<E: Debug> Debug for Shown<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shown::Event(event) => event.fmt(f),
            Shown::Discarded => f.write_str("<discarded>"),
            Shown::UnknownTopic(topic) => write!(f, "<unknown topic `{topic}`>"),
        }
    }
}

/// Appends a numbered list, marking the row at `mark`.
fn write_list<T: Debug>(out: &mut String, label: &str, items: &[T], mark: usize) {
    let _ = writeln!(out, "{label} ({}):", items.len());
    if items.is_empty() {
        let _ = writeln!(out, "       (none)");
    }
    for (i, item) in items.iter().enumerate() {
        let marker = if i == mark { '>' } else { ' ' };
        let _ = writeln!(out, "  {marker} {i:>2}: {item:?}");
    }
}
