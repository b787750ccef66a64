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

mod outcome;
mod scenario;
mod then;

pub use outcome::{CommandOutcome, CreationOutcome};
pub use scenario::Scenario;
pub use then::Then;
