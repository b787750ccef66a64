//! Expectations on the aggregate the command left behind.

use super::Then;
use crate::domain::Aggregate;

#[allow(
    clippy::return_self_not_must_use,
    reason = "checks are chained, and the result of the last one is dropped"
)]
impl<A: Aggregate, T, E> Then<A, T, E> {
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
}
