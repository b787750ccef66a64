//! Given/when/then tests of aggregates.
//!
//! A [`Scenario`] states what already happened to an aggregate (*given*),
//! runs one command on it (*when*) and checks what the command did (*then*):
//! the events it recorded, the value or error it returned, the state it left
//! behind, and that the history still forms an unbroken hash chain that
//! replays to the same aggregate. A failed expectation panics with a message
//! that shows what was expected next to what happened, which is what a test
//! wants.
//!
//! # Commands that can fail
//!
//! An event method is a fact being applied: its body must not fail, and it
//! cannot return anything. A command that can be refused is therefore a
//! plain method that checks first and records afterwards, by calling an
//! event method once the checks pass. Its `Result` is what the scenario's
//! `then_error` methods look at, and a refused command records nothing.
//!
//! ```
//! use eventsourcing::prelude::*;
//! use eventsourcing::testing::Scenario;
//!
//! /// Why the bank said no.
//! #[derive(Debug, PartialEq)]
//! pub enum BankError {
//!     /// The account holds less than the amount asked for.
//!     InsufficientFunds { balance: u64, wanted: u64 },
//! }
//!
//! #[aggregate]
//! #[derive(Debug, Default, PartialEq)]
//! pub struct Account {
//!     owner: String,
//!     balance: u64,
//! }
//!
//! #[aggregate]
//! impl Account {
//!     #[created(Opened)]
//!     pub fn open(&mut self, owner: String) {
//!         self.owner = owner;
//!     }
//!
//!     #[event(Deposited)]
//!     pub fn deposit(&mut self, amount: u64) {
//!         self.balance = self.balance.saturating_add(amount);
//!     }
//!
//!     /// The event: applies a withdrawal that was already checked.
//!     #[event(Withdrawn)]
//!     fn withdrawn(&mut self, amount: u64) {
//!         self.balance -= amount;
//!     }
//!
//!     /// The command: checks, then records. Returns the new balance.
//!     pub fn withdraw(&mut self, amount: u64) -> Result<u64, BankError> {
//!         if amount > self.balance {
//!             return Err(BankError::InsufficientFunds { balance: self.balance, wanted: amount });
//!         }
//!         self.withdrawn(amount);
//!         Ok(self.balance)
//!     }
//! }
//!
//! // A command that succeeds records its event.
//! Scenario::<Account>::given([
//!     AccountEvent::Opened { owner: "Alice".into() },
//!     AccountEvent::Deposited { amount: 100 },
//! ])
//! .when(|account| account.withdraw(30))
//! .then_ok(|balance| assert_eq!(*balance, 70))
//! .then_events([AccountEvent::Withdrawn { amount: 30 }])
//! .then_replay_matches();
//!
//! // A command that fails records nothing.
//! Scenario::<Account>::given([AccountEvent::Opened { owner: "Bob".into() }])
//!     .when(|account| account.withdraw(1))
//!     .then_error_is(BankError::InsufficientFunds { balance: 0, wanted: 1 })
//!     .then_no_events();
//!
//! // A creation command starts from nothing.
//! Scenario::<Account>::given_nothing()
//!     .when_created(|| Account::open("Carol".into()))
//!     .then_events([AccountEvent::Opened { owner: "Carol".into() }])
//!     .then_state(|account| assert_eq!(account.version(), 1));
//! ```
//!
//! `then_` methods take the scenario by value and hand it back, so several
//! expectations chain on one command; the result of the last one is simply
//! dropped.

use std::convert::Infallible;
use std::fmt::{self, Debug, Write as _};

use uuid::Uuid;

use crate::domain::{Aggregate, AggregateExt, Chain, Event, RecordedEvent, Root};
use crate::error::{Error, Result};

/// What a command closure passed to [`Scenario::when`] may return: nothing,
/// or a `Result`.
///
/// A command that returns `()` cannot fail; its error type is
/// [`Infallible`]. A command that returns `Result<T, E>` succeeded with `T`
/// or was refused with `E`.
///
/// ```
/// use eventsourcing::testing::CommandOutcome;
///
/// assert_eq!(().into_result(), Ok(()));
/// assert_eq!(Ok::<u8, String>(3).into_result(), Ok(3));
/// assert_eq!(Err::<u8, &str>("no").into_result(), Err("no"));
/// ```
pub trait CommandOutcome {
    /// What the command returns when it succeeds.
    type Value;
    /// What the command returns when it refuses.
    type Error;

    /// The outcome as a `Result`.
    ///
    /// ```
    /// use eventsourcing::testing::CommandOutcome;
    ///
    /// let outcome: Result<(), std::convert::Infallible> = ().into_result();
    /// assert!(outcome.is_ok());
    /// ```
    fn into_result(self) -> Result<Self::Value, Self::Error>;
}

impl CommandOutcome for () {
    type Value = ();
    type Error = Infallible;

    fn into_result(self) -> Result<(), Infallible> {
        Ok(())
    }
}

impl<T, E> CommandOutcome for Result<T, E> {
    type Value = T;
    type Error = E;

    fn into_result(self) -> Result<T, E> {
        self
    }
}

/// What a creation closure passed to [`Scenario::when_created`] may return:
/// the new aggregate, or a `Result` holding it.
///
/// ```
/// use eventsourcing::prelude::*;
/// use eventsourcing::testing::CreationOutcome;
///
/// #[aggregate]
/// #[derive(Debug, Default)]
/// pub struct Account {
///     owner: String,
/// }
///
/// #[aggregate]
/// impl Account {
///     #[created(Opened)]
///     pub fn open(&mut self, owner: String) {
///         self.owner = owner;
///     }
/// }
///
/// let created: Result<Account, _> = Account::open("Alice".into()).into_created();
/// assert_eq!(created.map(|account| account.version()), Ok(1));
///
/// let refused: Result<Account, &str> = Err::<Account, _>("no name").into_created();
/// assert!(refused.is_err());
/// ```
pub trait CreationOutcome<A> {
    /// What the creation command returns when it refuses.
    type Error;

    /// The outcome as a `Result`.
    ///
    /// ```
    /// use eventsourcing::prelude::*;
    /// use eventsourcing::testing::CreationOutcome;
    ///
    /// #[aggregate]
    /// #[derive(Debug, Default)]
    /// pub struct Counter {}
    ///
    /// #[aggregate]
    /// impl Counter {
    ///     #[created(Started)]
    ///     pub fn start(&mut self) {}
    /// }
    ///
    /// assert!(Counter::start().into_created().is_ok());
    /// ```
    fn into_created(self) -> Result<A, Self::Error>;
}

impl<A: Aggregate> CreationOutcome<A> for A {
    type Error = Infallible;

    fn into_created(self) -> Result<A, Infallible> {
        Ok(self)
    }
}

impl<A: Aggregate, E> CreationOutcome<A> for Result<A, E> {
    type Error = E;

    fn into_created(self) -> Result<A, E> {
        self
    }
}

/// The *given* part of a test: an aggregate and the events that made it.
///
/// Build one with [`Scenario::given`], [`Scenario::given_nothing`] or
/// [`Scenario::given_aggregate`], then run a command with
/// [`Scenario::when`] or [`Scenario::when_created`].
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
///     .when(|account| account.deposit(5))
///     .then_events([AccountEvent::Deposited { amount: 5 }]);
/// ```
pub struct Scenario<A> {
    aggregate: A,
    /// Every event of the aggregate so far, from version 1.
    history: Vec<RecordedEvent>,
}

impl<A: Aggregate> Scenario<A> {
    /// An aggregate built from `events`: the first starts it with a random
    /// id (it should be the creation event), the others are triggered in
    /// order. The events count as already saved, so the command's events
    /// are the only ones checked afterwards.
    ///
    /// # Panics
    ///
    /// If `events` is empty (use [`Scenario::given_nothing`] for that), or
    /// if one of them cannot be recorded.
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
    /// let given = Scenario::<Account>::given([
    ///     AccountEvent::Opened { owner: "Alice".into() },
    ///     AccountEvent::Deposited { amount: 10 },
    /// ]);
    /// assert_eq!(given.aggregate().balance, 10);
    /// assert_eq!(given.aggregate().version(), 2);
    /// ```
    #[must_use]
    #[track_caller]
    pub fn given(events: impl IntoIterator<Item = A::Event>) -> Self {
        Self::given_with_id(Uuid::new_v4(), events)
    }

    /// Like [`Scenario::given`], with the aggregate id chosen by the test.
    ///
    /// # Panics
    ///
    /// As [`Scenario::given`].
    ///
    /// ```
    /// # use eventsourcing::prelude::*;
    /// # use eventsourcing::testing::Scenario;
    /// # #[aggregate]
    /// # #[derive(Debug, Default, PartialEq)]
    /// # pub struct Account { owner: String }
    /// # #[aggregate]
    /// # impl Account {
    /// #     #[created(Opened)]
    /// #     pub fn open(&mut self, owner: String) { self.owner = owner; }
    /// # }
    /// let id = Uuid::from_u128(7);
    /// let given = Scenario::<Account>::given_with_id(id, [AccountEvent::Opened { owner: "Alice".into() }]);
    /// assert_eq!(given.aggregate().id(), id);
    /// ```
    #[must_use]
    #[track_caller]
    pub fn given_with_id(id: Uuid, events: impl IntoIterator<Item = A::Event>) -> Self {
        let mut events = events.into_iter();
        let Some(first) = events.next() else {
            panic!(
                "{}: `given` needs at least the creation event; use `given_nothing()` to test a creation command",
                A::NAME
            );
        };
        let mut aggregate = A::start_with_id(id, first);
        for event in events {
            aggregate.trigger(event);
        }
        Self::given_aggregate(aggregate)
    }

    /// No aggregate yet: the never-created `A::default()`. Use it with
    /// [`Scenario::when_created`] to test a creation command, or with
    /// [`Scenario::when`] to check what happens to commands on an aggregate
    /// that does not exist.
    ///
    /// ```
    /// # use eventsourcing::prelude::*;
    /// # use eventsourcing::testing::Scenario;
    /// # #[aggregate]
    /// # #[derive(Debug, Default, PartialEq)]
    /// # pub struct Account { owner: String }
    /// # #[aggregate]
    /// # impl Account {
    /// #     #[created(Opened)]
    /// #     pub fn open(&mut self, owner: String) { self.owner = owner; }
    /// # }
    /// Scenario::<Account>::given_nothing()
    ///     .when_created(|| Account::open("Alice".into()))
    ///     .then_events([AccountEvent::Opened { owner: "Alice".into() }]);
    /// ```
    #[must_use]
    pub fn given_nothing() -> Self {
        Scenario {
            aggregate: A::default(),
            history: Vec::new(),
        }
    }

    /// An aggregate built by calling its own commands. Its pending events
    /// become the given history, so they must be all of its events, from the
    /// creation event on (an aggregate loaded from a repository, whose
    /// events were already taken, does not qualify).
    ///
    /// # Panics
    ///
    /// If an event of the aggregate was refused or could not be encoded, or
    /// if its pending events do not cover its whole history.
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
    /// let mut account = Account::open("Alice".into());
    /// account.deposit(3);
    /// Scenario::given_aggregate(account)
    ///     .when(|account| account.deposit(4))
    ///     .then_state(|account| assert_eq!(account.balance, 7))
    ///     .then_chain_intact();
    /// ```
    #[must_use]
    #[track_caller]
    pub fn given_aggregate(mut aggregate: A) -> Self {
        let history = match aggregate.take_pending_events() {
            Ok(history) => history,
            Err(error) => panic!("{}: a given event was not recorded: {error}", A::NAME),
        };
        let covered = u64::try_from(history.len()).is_ok_and(|n| n == aggregate.version());
        assert!(
            covered && history.first().is_none_or(|e| e.originator_version == 1),
            "{}: the given aggregate is at version {} but holds {} pending events; \
             a scenario needs every event from version 1 on",
            A::NAME,
            aggregate.version(),
            history.len(),
        );
        Scenario { aggregate, history }
    }

    /// The given aggregate, then discarded (the discard counts as given).
    ///
    /// # Panics
    ///
    /// If the discard event cannot be recorded (the aggregate was never
    /// created, or was already discarded).
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
    ///     .and_discarded()
    ///     .when(|account| account.deposit(1))
    ///     .then_refused();
    /// ```
    #[must_use]
    #[track_caller]
    pub fn and_discarded(mut self) -> Self {
        Root::discard(&mut self.aggregate);
        match self.aggregate.take_pending_events() {
            Ok(events) => self.history.extend(events),
            Err(error) => panic!(
                "{}: the given aggregate cannot be discarded: {error}",
                A::NAME
            ),
        }
        self
    }

    /// The aggregate as the command will find it.
    ///
    /// ```
    /// # use eventsourcing::prelude::*;
    /// # use eventsourcing::testing::Scenario;
    /// # #[aggregate]
    /// # #[derive(Debug, Default, PartialEq)]
    /// # pub struct Account { owner: String }
    /// # #[aggregate]
    /// # impl Account {
    /// #     #[created(Opened)]
    /// #     pub fn open(&mut self, owner: String) { self.owner = owner; }
    /// # }
    /// let given = Scenario::<Account>::given([AccountEvent::Opened { owner: "Alice".into() }]);
    /// assert_eq!(given.aggregate().owner, "Alice");
    /// ```
    #[must_use]
    pub fn aggregate(&self) -> &A {
        &self.aggregate
    }

    /// The given events, as recorded.
    ///
    /// ```
    /// # use eventsourcing::prelude::*;
    /// # use eventsourcing::testing::Scenario;
    /// # #[aggregate]
    /// # #[derive(Debug, Default, PartialEq)]
    /// # pub struct Account { owner: String }
    /// # #[aggregate]
    /// # impl Account {
    /// #     #[created(Opened)]
    /// #     pub fn open(&mut self, owner: String) { self.owner = owner; }
    /// # }
    /// let given = Scenario::<Account>::given([AccountEvent::Opened { owner: "Alice".into() }]);
    /// assert_eq!(given.history()[0].topic, "Account.Opened");
    /// ```
    #[must_use]
    pub fn history(&self) -> &[RecordedEvent] {
        &self.history
    }

    /// Runs a command on the aggregate. The command may return `()` or a
    /// `Result` (see [`CommandOutcome`]).
    ///
    /// ```
    /// # use eventsourcing::prelude::*;
    /// # use eventsourcing::testing::Scenario;
    /// # #[derive(Debug, PartialEq)]
    /// # pub struct Overdrawn;
    /// # #[aggregate]
    /// # #[derive(Debug, Default, PartialEq)]
    /// # pub struct Account { owner: String, balance: u64 }
    /// # #[aggregate]
    /// # impl Account {
    /// #     #[created(Opened)]
    /// #     pub fn open(&mut self, owner: String) { self.owner = owner; }
    /// #     #[event(Deposited)]
    /// #     pub fn deposit(&mut self, amount: u64) { self.balance += amount; }
    /// #     #[event(Withdrawn)]
    /// #     fn withdrawn(&mut self, amount: u64) { self.balance -= amount; }
    /// #     pub fn withdraw(&mut self, amount: u64) -> Result<(), Overdrawn> {
    /// #         if amount > self.balance { return Err(Overdrawn); }
    /// #         self.withdrawn(amount);
    /// #         Ok(())
    /// #     }
    /// # }
    /// let given = || Scenario::<Account>::given([AccountEvent::Opened { owner: "Alice".into() }]);
    /// given()
    ///     .when(|account| account.deposit(2))
    ///     .then_events([AccountEvent::Deposited { amount: 2 }]);
    /// given()
    ///     .when(|account| account.withdraw(2))
    ///     .then_error_is(Overdrawn);
    /// ```
    #[must_use = "a scenario checks nothing until a `then_` method is called"]
    pub fn when<R, F>(mut self, command: F) -> Then<A, R::Value, R::Error>
    where
        R: CommandOutcome,
        F: FnOnce(&mut A) -> R,
    {
        let outcome = command(&mut self.aggregate).into_result();
        Then::new(self.aggregate, self.history, outcome)
    }

    /// Runs a creation command, which makes the aggregate rather than
    /// changing one. It may return the aggregate or a `Result` holding it
    /// (see [`CreationOutcome`]); if it fails, the scenario goes on with
    /// the never-created aggregate.
    ///
    /// # Panics
    ///
    /// If the scenario did not start from [`Scenario::given_nothing`].
    ///
    /// ```
    /// # use eventsourcing::prelude::*;
    /// # use eventsourcing::testing::Scenario;
    /// # #[derive(Debug, PartialEq)]
    /// # pub struct NoName;
    /// # #[aggregate]
    /// # #[derive(Debug, Default, PartialEq)]
    /// # pub struct Account { owner: String }
    /// # #[aggregate]
    /// # impl Account {
    /// #     #[created(Opened)]
    /// #     fn opened(&mut self, owner: String) { self.owner = owner; }
    /// #     pub fn open(owner: &str) -> Result<Self, NoName> {
    /// #         if owner.is_empty() { return Err(NoName); }
    /// #         Ok(Self::opened(owner.to_owned()))
    /// #     }
    /// # }
    /// Scenario::<Account>::given_nothing()
    ///     .when_created(|| Account::open("Alice"))
    ///     .then_events([AccountEvent::Opened { owner: "Alice".into() }]);
    /// Scenario::<Account>::given_nothing()
    ///     .when_created(|| Account::open(""))
    ///     .then_error_is(NoName)
    ///     .then_no_events();
    /// ```
    #[must_use = "a scenario checks nothing until a `then_` method is called"]
    #[track_caller]
    pub fn when_created<R, F>(self, create: F) -> Then<A, (), R::Error>
    where
        R: CreationOutcome<A>,
        F: FnOnce() -> R,
    {
        assert!(
            self.history.is_empty() && self.aggregate.version() == 0,
            "{}: `when_created` makes a new aggregate, but this scenario already has {} given events; \
             start it with `given_nothing()`",
            A::NAME,
            self.history.len(),
        );
        match create().into_created() {
            Ok(aggregate) => Then::new(aggregate, self.history, Ok(())),
            Err(error) => Then::new(self.aggregate, self.history, Err(error)),
        }
    }
}

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

#[allow(
    clippy::return_self_not_must_use,
    reason = "checks are chained, and the result of the last one is dropped"
)]
impl<A: Aggregate, T, E> Then<A, T, E> {
    fn new(mut aggregate: A, history: Vec<RecordedEvent>, outcome: Result<T, E>) -> Self {
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

    /// Checks that the command succeeded, and hands its value to `check`.
    ///
    /// # Panics
    ///
    /// If the command failed; or whatever `check` panics with.
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
    /// #     fn deposited(&mut self, amount: u64) { self.balance += amount; }
    /// #     pub fn deposit(&mut self, amount: u64) -> Result<u64, String> {
    /// #         if amount == 0 { return Err("nothing to deposit".into()); }
    /// #         self.deposited(amount);
    /// #         Ok(self.balance)
    /// #     }
    /// # }
    /// Scenario::<Account>::given([AccountEvent::Opened { owner: "Alice".into() }])
    ///     .when(|account| account.deposit(8))
    ///     .then_ok(|balance| assert_eq!(*balance, 8));
    /// ```
    #[track_caller]
    pub fn then_ok(self, check: impl FnOnce(&T)) -> Self
    where
        E: Debug,
    {
        match &self.outcome {
            Ok(value) => check(value),
            Err(error) => panic!(
                "{}: expected the command to succeed, but it failed with {error:?}",
                A::NAME
            ),
        }
        self
    }

    /// Checks that the command failed, and hands its error to `check`.
    ///
    /// # Panics
    ///
    /// If the command succeeded; or whatever `check` panics with.
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
    /// #     fn deposited(&mut self, amount: u64) { self.balance += amount; }
    /// #     pub fn deposit(&mut self, amount: u64) -> Result<u64, String> {
    /// #         if amount == 0 { return Err("nothing to deposit".into()); }
    /// #         self.deposited(amount);
    /// #         Ok(self.balance)
    /// #     }
    /// # }
    /// Scenario::<Account>::given([AccountEvent::Opened { owner: "Alice".into() }])
    ///     .when(|account| account.deposit(0))
    ///     .then_error(|error| assert!(error.contains("nothing")));
    /// ```
    #[track_caller]
    pub fn then_error(self, check: impl FnOnce(&E)) -> Self
    where
        T: Debug,
    {
        match &self.outcome {
            Err(error) => check(error),
            Ok(value) => panic!(
                "{}: expected the command to fail, but it succeeded with {value:?} and recorded {}",
                A::NAME,
                self.recorded_summary(),
            ),
        }
        self
    }

    /// Checks that the command failed with exactly `expected`.
    ///
    /// # Panics
    ///
    /// If the command succeeded, or failed with another error; the message
    /// shows both errors.
    ///
    /// ```
    /// # use eventsourcing::prelude::*;
    /// # use eventsourcing::testing::Scenario;
    /// # #[derive(Debug, PartialEq)]
    /// # pub enum BankError { ZeroAmount }
    /// # #[aggregate]
    /// # #[derive(Debug, Default, PartialEq)]
    /// # pub struct Account { owner: String, balance: u64 }
    /// # #[aggregate]
    /// # impl Account {
    /// #     #[created(Opened)]
    /// #     pub fn open(&mut self, owner: String) { self.owner = owner; }
    /// #     #[event(Deposited)]
    /// #     fn deposited(&mut self, amount: u64) { self.balance += amount; }
    /// #     pub fn deposit(&mut self, amount: u64) -> Result<(), BankError> {
    /// #         if amount == 0 { return Err(BankError::ZeroAmount); }
    /// #         self.deposited(amount);
    /// #         Ok(())
    /// #     }
    /// # }
    /// Scenario::<Account>::given([AccountEvent::Opened { owner: "Alice".into() }])
    ///     .when(|account| account.deposit(0))
    ///     .then_error_is(BankError::ZeroAmount);
    /// ```
    #[track_caller]
    #[allow(
        clippy::needless_pass_by_value,
        reason = "the expected error is written inline at the call site, so taking it by value reads best"
    )]
    pub fn then_error_is(self, expected: E) -> Self
    where
        T: Debug,
        E: Debug + PartialEq,
    {
        match &self.outcome {
            Err(error) => assert!(
                *error == expected,
                "{}: the command failed with another error than expected\n    expected: {expected:?}\n      actual: {error:?}",
                A::NAME,
            ),
            Ok(value) => panic!(
                "{}: expected the command to fail with {expected:?}, but it succeeded with {value:?} and recorded {}",
                A::NAME,
                self.recorded_summary(),
            ),
        }
        self
    }

    /// Checks that the command failed with an error for which `predicate`
    /// holds; pairs well with `matches!`.
    ///
    /// # Panics
    ///
    /// If the command succeeded, or `predicate` is false for its error; the
    /// message shows the error.
    ///
    /// ```
    /// # use eventsourcing::prelude::*;
    /// # use eventsourcing::testing::Scenario;
    /// # #[derive(Debug, PartialEq)]
    /// # pub enum BankError { Insufficient { balance: u64, wanted: u64 } }
    /// # #[aggregate]
    /// # #[derive(Debug, Default, PartialEq)]
    /// # pub struct Account { owner: String, balance: u64 }
    /// # #[aggregate]
    /// # impl Account {
    /// #     #[created(Opened)]
    /// #     pub fn open(&mut self, owner: String) { self.owner = owner; }
    /// #     #[event(Withdrawn)]
    /// #     fn withdrawn(&mut self, amount: u64) { self.balance -= amount; }
    /// #     pub fn withdraw(&mut self, amount: u64) -> Result<(), BankError> {
    /// #         if amount > self.balance {
    /// #             return Err(BankError::Insufficient { balance: self.balance, wanted: amount });
    /// #         }
    /// #         self.withdrawn(amount);
    /// #         Ok(())
    /// #     }
    /// # }
    /// Scenario::<Account>::given([AccountEvent::Opened { owner: "Alice".into() }])
    ///     .when(|account| account.withdraw(9))
    ///     .then_error_matches(|error| matches!(error, BankError::Insufficient { wanted: 9, .. }));
    /// ```
    #[track_caller]
    pub fn then_error_matches(self, predicate: impl FnOnce(&E) -> bool) -> Self
    where
        T: Debug,
        E: Debug,
    {
        match &self.outcome {
            Err(error) => assert!(
                predicate(error),
                "{}: the command failed, but not with the expected kind of error: {error:?}",
                A::NAME,
            ),
            Ok(value) => panic!(
                "{}: expected the command to fail, but it succeeded with {value:?} and recorded {}",
                A::NAME,
                self.recorded_summary(),
            ),
        }
        self
    }

    /// Hands the aggregate, as the command left it, to `check`.
    ///
    /// # Panics
    ///
    /// Whatever `check` panics with.
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
    ///     .when(|account| account.deposit(4))
    ///     .then_state(|account| {
    ///         assert_eq!(account.balance, 4);
    ///         assert_eq!(account.version(), 2);
    ///     });
    /// ```
    #[track_caller]
    pub fn then_state(self, check: impl FnOnce(&A)) -> Self {
        check(&self.aggregate);
        self
    }

    /// Checks that the command triggered an event that was dropped, and
    /// hands the error that saving the aggregate would report to `check`.
    ///
    /// # Panics
    ///
    /// If no event was dropped; or whatever `check` panics with.
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
    ///     .when(|account| account.deposit(1))
    ///     .then_fault(|error| {
    ///         assert!(matches!(error, Error::Refused { state: "not created", .. }));
    ///     });
    /// ```
    #[track_caller]
    pub fn then_fault(self, check: impl FnOnce(&Error)) -> Self {
        match &self.fault {
            Some(fault) => check(fault),
            None => panic!(
                "{}: expected an event of the command to be dropped, but none was; the command recorded {}",
                A::NAME,
                self.recorded_summary(),
            ),
        }
        self
    }

    /// Checks that an event the command triggered was refused because the
    /// aggregate was discarded or never created.
    ///
    /// # Panics
    ///
    /// If no event was refused.
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
    ///     .and_discarded()
    ///     .when(|account| account.deposit(1))
    ///     .then_refused()
    ///     .then_state(|account| assert_eq!(account.balance, 0));
    /// ```
    #[track_caller]
    pub fn then_refused(self) -> Self {
        match &self.fault {
            Some(Error::Refused { .. }) => {}
            Some(other) => panic!(
                "{}: expected an event to be refused, but another fault occurred: {other}",
                A::NAME
            ),
            None => panic!(
                "{}: expected an event to be refused, but none was; the command recorded {}",
                A::NAME,
                self.recorded_summary(),
            ),
        }
        self
    }

    /// Checks that the command discarded the aggregate: it is marked
    /// discarded and the discard event is the last one recorded.
    ///
    /// # Panics
    ///
    /// If the aggregate is not discarded, or the command did not record
    /// the discard event last.
    ///
    /// ```
    /// # use eventsourcing::prelude::*;
    /// # use eventsourcing::testing::Scenario;
    /// # #[aggregate]
    /// # #[derive(Debug, Default, PartialEq)]
    /// # pub struct Account { owner: String }
    /// # #[aggregate]
    /// # impl Account {
    /// #     #[created(Opened)]
    /// #     pub fn open(&mut self, owner: String) { self.owner = owner; }
    /// # }
    /// Scenario::<Account>::given([AccountEvent::Opened { owner: "Alice".into() }])
    ///     .when(|account| account.discard())
    ///     .then_discarded();
    /// ```
    #[track_caller]
    pub fn then_discarded(self) -> Self {
        let last = self.recorded.last().map(|e| &*e.topic);
        assert!(
            self.aggregate.is_discarded() && last == Some(A::DISCARDED_TOPIC),
            "{}: expected the command to discard the aggregate, but it is {}discarded and the last recorded topic is {last:?}",
            A::NAME,
            if self.aggregate.is_discarded() {
                ""
            } else {
                "not "
            },
        );
        self
    }

    /// Checks the hash chain of every event, given and recorded: versions
    /// 1, 2, 3, ... of this aggregate, each hash matching its event, each
    /// `previous_hash` the hash before it, and the last hash equal to the
    /// aggregate's head.
    ///
    /// # Panics
    ///
    /// At the first event that does not check out, naming its version and
    /// what is wrong.
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
    ///     .when(|account| account.deposit(4))
    ///     .then_chain_intact();
    /// ```
    #[track_caller]
    pub fn then_chain_intact(self) -> Self {
        let mut chain = Chain::new(self.aggregate.id());
        for event in self.all_events() {
            if let Err(error) = chain.check_next(event) {
                panic!(
                    "{}: hash chain broken at event {} ({}): {error}",
                    A::NAME,
                    chain.version() + 1,
                    event.topic
                );
            }
        }
        assert!(
            chain.version() == self.aggregate.version(),
            "{}: the aggregate is at version {} but has {} events",
            A::NAME,
            self.aggregate.version(),
            chain.version()
        );
        assert!(
            chain.head() == self.aggregate.head(),
            "{}: the aggregate's head is {} but its last event's hash is {}",
            A::NAME,
            self.aggregate.head(),
            chain.head()
        );
        self
    }

    /// Checks the hash chain (as [`Then::then_chain_intact`]), then
    /// rebuilds the aggregate from every event, given and recorded, with
    /// [`AggregateExt::replay`], and checks that the rebuilt aggregate equals
    /// the live one.
    ///
    /// # Panics
    ///
    /// If the chain is broken, the replay fails, or the rebuilt aggregate
    /// differs; the message shows both aggregates.
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
    ///     .when(|account| account.deposit(4))
    ///     .then_replay_matches();
    /// ```
    #[track_caller]
    pub fn then_replay_matches(self) -> Self
    where
        A: PartialEq + Debug,
    {
        let this = self.then_chain_intact();
        let id = this.aggregate.id();
        let events = this.all_events().cloned().map(Ok);
        let replayed = match A::replay(id, events) {
            Ok(Some(replayed)) => replayed,
            Ok(None) => A::default(),
            Err(error) => panic!("{}: replaying the events failed: {error}", A::NAME),
        };
        assert!(
            replayed == this.aggregate,
            "{}: the aggregate rebuilt from its events differs from the live one\n\
             live:\n{:#?}\nreplayed:\n{replayed:#?}",
            A::NAME,
            this.aggregate,
        );
        this
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

    /// Given and recorded events, in order.
    fn all_events(&self) -> impl Iterator<Item = &RecordedEvent> {
        self.history.iter().chain(&self.recorded)
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
