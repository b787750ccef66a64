//! Expectations on events the command triggered that were dropped
//! (refused, or not encodable) instead of recorded.

use super::Then;
use crate::domain::Aggregate;
use crate::error::Error;

#[allow(
    clippy::return_self_not_must_use,
    reason = "checks are chained, and the result of the last one is dropped"
)]
impl<A: Aggregate, T, E> Then<A, T, E> {
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
}
