//! The *then* of a test: [`Then`], what one command did, and the
//! expectations on it, one file per kind:
//!
//! - `events`: the events the command recorded;
//! - `results`: the value or error the command returned;
//! - `faults`: events the command triggered that were dropped;
//! - `state`: the aggregate the command left behind;
//! - `history`: every event so far, as a hash chain that replays.

mod events;
mod faults;
mod history;
mod results;
mod state;

use super::Scenario;
use crate::domain::{Aggregate, RecordedEvent};
use crate::error::{Error, Result};

/// The *then* part of a test: what one command did, and the checks on it.
///
/// Every `then_` method panics with a readable message when its
/// expectation fails, and otherwise returns the scenario for the next check.
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
/// let then = Scenario::<Account>::given([AccountEvent::Opened { owner: "Alice".into() }])
///     .when(|account| account.deposit(5));
/// let account = then
///     .then_events([AccountEvent::Deposited { amount: 5 }])
///     .then_replay_matches()
///     .into_aggregate();
/// assert_eq!(account.balance, 5);
/// ```
pub struct Then<A, T, E> {
    aggregate: A,
    /// The events before the command, from version 1.
    history: Vec<RecordedEvent>,
    /// The events the command recorded.
    recorded: Vec<RecordedEvent>,
    /// Why an event the command triggered was dropped, if one was.
    fault: Option<Error>,
    outcome: Result<T, E>,
}

impl<A: Aggregate, T, E> Then<A, T, E> {
    pub(super) fn new(
        mut aggregate: A,
        history: Vec<RecordedEvent>,
        outcome: Result<T, E>,
    ) -> Self {
        let (recorded, fault) = match aggregate.take_pending_events() {
            Ok(recorded) => (recorded, None),
            Err(error) => (aggregate.pending_events().to_vec(), Some(error)),
        };
        Then {
            aggregate,
            history,
            recorded,
            fault,
            outcome,
        }
    }

    /// The aggregate as the command left it.
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
    /// let then = Scenario::<Account>::given([AccountEvent::Opened { owner: "Alice".into() }])
    ///     .when(|account| account.deposit(4));
    /// assert_eq!(then.aggregate().balance, 4);
    /// ```
    #[must_use]
    pub fn aggregate(&self) -> &A {
        &self.aggregate
    }

    /// The aggregate as the command left it, by value.
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
    /// let account = Scenario::<Account>::given([AccountEvent::Opened { owner: "Alice".into() }])
    ///     .when(|account| account.deposit(4))
    ///     .into_aggregate();
    /// assert_eq!(account.version(), 2);
    /// ```
    #[must_use]
    pub fn into_aggregate(self) -> A {
        self.aggregate
    }

    /// The events the command recorded, as they would be stored.
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
    /// let then = Scenario::<Account>::given([AccountEvent::Opened { owner: "Alice".into() }])
    ///     .when(|account| account.deposit(4));
    /// assert_eq!(then.recorded()[0].originator_version, 2);
    /// assert_eq!(then.recorded()[0].data, br#"{"amount":4}"#);
    /// ```
    #[must_use]
    pub fn recorded(&self) -> &[RecordedEvent] {
        &self.recorded
    }

    /// What the command returned.
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
    /// # }
    /// let then = Scenario::<Account>::given([AccountEvent::Opened { owner: "Alice".into() }])
    ///     .when(|account| if account.balance == 0 { Err("empty") } else { Ok(account.balance) });
    /// assert_eq!(then.outcome(), Err(&"empty"));
    /// ```
    pub fn outcome(&self) -> Result<&T, &E> {
        self.outcome.as_ref()
    }

    /// Goes on with another command: the aggregate as this one left it,
    /// and every event so far as the given history.
    ///
    /// # Panics
    ///
    /// If the command triggered an event that was dropped: the aggregate
    /// could not be saved, so there is nothing to go on from.
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
    /// Scenario::<Account>::given_nothing()
    ///     .when_created(|| Account::open("Alice".into()))
    ///     .into_given()
    ///     .when(|account| account.deposit(4))
    ///     .then_events([AccountEvent::Deposited { amount: 4 }])
    ///     .then_replay_matches();
    /// ```
    #[must_use]
    #[track_caller]
    pub fn into_given(self) -> Scenario<A> {
        self.assert_no_fault("into_given");
        let mut history = self.history;
        history.extend(self.recorded);
        Scenario {
            aggregate: self.aggregate,
            history,
        }
    }

    /// "2 events (`A.X`, `A.Y`)", or "no events".
    fn recorded_summary(&self) -> String {
        if self.recorded.is_empty() {
            return "no events".to_owned();
        }
        let topics: Vec<&str> = self.recorded.iter().map(|e| &*e.topic).collect();
        format!(
            "{} ({})",
            count(self.recorded.len(), "event"),
            topics.join(", ")
        )
    }

    #[track_caller]
    fn assert_no_fault(&self, check: &str) {
        if let Some(fault) = &self.fault {
            panic!(
                "{}: {check}: an event the command triggered was dropped: {fault}",
                A::NAME
            );
        }
    }
}

/// "1 event", "3 events".
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
