//! The *given* and the *when* of a test: [`Scenario`].

use uuid::Uuid;

use super::{CommandOutcome, CreationOutcome, Then};
use crate::domain::AggregateId as _;
use crate::domain::{Aggregate, AggregateExt, RecordedEvent, Root};

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
    pub(super) aggregate: A,
    /// Every event of the aggregate so far, from version 1.
    pub(super) history: Vec<RecordedEvent>,
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
        Self::given_with_id(A::Id::from_uuid(Uuid::new_v4()), events)
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
    pub fn given_with_id(id: A::Id, events: impl IntoIterator<Item = A::Event>) -> Self {
        let mut events = events.into_iter();
        let Some(first) = events.next() else {
            panic!(
                "{}: `given` needs at least the creation event; use `given_nothing()` to test a creation command",
                A::NAME
            );
        };
        let mut aggregate = match crate::domain::replay::start::<A>(id.to_uuid(), first) {
            Ok(aggregate) => aggregate,
            Err(error) => panic!(
                "{}: the creation event cannot start the aggregate: {error}",
                A::NAME
            ),
        };
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
    ///
    /// # Panics
    ///
    /// If `A` has no `Default` (its creation method returns `Self`): there
    /// is no never-created aggregate to stand for nothing. Test its creation
    /// with [`Scenario::given_aggregate`] of the created aggregate.
    #[must_use]
    #[track_caller]
    pub fn given_nothing() -> Self {
        let Some(aggregate) = <A as crate::domain::Bookkeeping>::blank() else {
            panic!(
                "{}: `given_nothing` stands for the never-created `Default::default()`, which this aggregate does not have; start from `given_aggregate` of a created one",
                A::NAME
            );
        };
        Scenario {
            aggregate,
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
