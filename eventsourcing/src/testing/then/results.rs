//! Expectations on what the command returned: its value or its error.

use std::fmt::Debug;

use super::Then;
use crate::domain::Aggregate;

#[allow(
    clippy::return_self_not_must_use,
    reason = "checks are chained, and the result of the last one is dropped"
)]
impl<A: Aggregate, T, E> Then<A, T, E> {
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
}
