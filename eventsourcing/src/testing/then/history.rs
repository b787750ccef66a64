//! Expectations on the whole history, given and recorded: an unbroken hash
//! chain that replays to the live aggregate.

use std::fmt::Debug;

use super::Then;
use crate::domain::{Aggregate, AggregateExt, Chain, RecordedEvent};

#[allow(
    clippy::return_self_not_must_use,
    reason = "checks are chained, and the result of the last one is dropped"
)]
impl<A: Aggregate, T, E> Then<A, T, E> {
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
        let mut chain = Chain::new(crate::domain::AggregateId::to_uuid(self.aggregate.id()));
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
            Ok(None) => {
                // No events: there is nothing to rebuild, and the live
                // aggregate must not have been created either.
                assert!(
                    this.aggregate.version() == 0,
                    "{}: the aggregate is at version {} but has no events",
                    A::NAME,
                    this.aggregate.version()
                );
                return this;
            }
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

    /// Given and recorded events, in order.
    fn all_events(&self) -> impl Iterator<Item = &RecordedEvent> {
        self.history.iter().chain(&self.recorded)
    }
}
