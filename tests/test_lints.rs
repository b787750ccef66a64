//! Generated code compiles cleanly under the strict lints users turn on.
//!
//! This crate denies warnings, `missing_docs` and clippy's pedantic group,
//! and defines public items with both macros. Only the user's own items
//! carry docs here: everything public that the macros add (the event enum,
//! its variants and fields, `id()`, `open_with_id()`...) must bring its own.
//! `cargo clippy --workspace --all-targets -- -D warnings` checks the
//! clippy half.

#![deny(warnings, missing_docs, missing_debug_implementations)]
#![deny(unused_lifetimes, unused_qualifications, unreachable_pub)]
#![deny(clippy::pedantic)]

use eventsourcing::prelude::*;

/// A bank account, in the annotated style.
#[aggregate]
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Account {
    owner: String,
    balance: u64,
    closed: bool,
}

#[aggregate]
impl Account {
    /// Opens an account for `owner`.
    #[created(Opened)]
    pub fn open(&mut self, owner: String) {
        self.owner = owner;
    }

    /// Adds `amount` to the balance.
    #[event(Deposited)]
    pub fn deposit(&mut self, amount: u64) {
        self.balance += amount;
    }

    /// Takes `amount` from the balance.
    #[event(Withdrawn, topic = "Account.Withdrew")]
    pub fn withdraw(&mut self, amount: u64, reference: Option<String>) {
        let _ = reference;
        self.balance -= amount;
    }

    /// Marks the account closed. Private, with a private field type: the
    /// generated enum is public all the same.
    #[event(Closed)]
    fn close(&mut self, reason: Reason) {
        let Reason(_) = reason;
        self.closed = true;
    }

    /// The owner's name.
    #[must_use]
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The balance.
    #[must_use]
    pub fn balance(&self) -> u64 {
        self.balance
    }

    /// A command: checks, then records.
    ///
    /// # Errors
    ///
    /// When the balance is not zero.
    pub fn try_close(&mut self) -> Result<(), String> {
        if self.balance != 0 {
            return Err(format!("balance is {}", self.balance));
        }
        self.close(Reason("requested".to_owned()));
        Ok(())
    }
}

/// Why an account was closed; private to this crate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Reason(String);

/// A counter, in the explicit style.
#[aggregate]
#[derive(Debug, Default)]
pub struct Counter {
    count: u64,
}

/// The events of [`Counter`].
#[derive(Debug, Clone, PartialEq, Eq, Event)]
pub enum CounterEvent {
    /// The counter was started.
    Started,
    /// The counter went up.
    Incremented {
        /// By how much.
        by: u64,
    },
}

impl Aggregate for Counter {
    type Event = CounterEvent;

    fn apply(&mut self, event: CounterEvent) {
        match event {
            CounterEvent::Started => {}
            CounterEvent::Incremented { by } => self.count += by,
        }
    }
}

impl Counter {
    /// Starts a counter at zero.
    #[must_use]
    pub fn start() -> Self {
        <Self as AggregateExt>::start(CounterEvent::Started)
    }

    /// Adds `by`.
    pub fn increment(&mut self, by: u64) {
        self.trigger(CounterEvent::Incremented { by });
    }

    /// The count.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.count
    }
}

#[test]
fn lint_clean_aggregates_work() {
    let mut account = Account::open("ada".to_owned());
    account.deposit(10);
    account.withdraw(10, Some("rent".to_owned()));
    account.try_close().expect("balance is zero");
    assert_eq!(account.owner(), "ada");
    assert_eq!(account.balance(), 0);
    assert_eq!(account.version(), 4);
    let topics: Vec<&str> = account
        .pending_events()
        .iter()
        .map(|e| e.topic.as_ref())
        .collect();
    assert_eq!(
        topics,
        [
            "Account.Opened",
            "Account.Deposited",
            "Account.Withdrew",
            "Account.Closed"
        ]
    );
    let id = Uuid::new_v4();
    assert_eq!(Account::open_with_id(id, "bob".to_owned()).id(), id);

    let mut counter = Counter::start();
    counter.increment(3);
    assert_eq!(counter.count(), 3);
    assert_eq!(counter.version(), 2);
    assert_eq!(
        <CounterEvent as Event>::TOPICS,
        ["Counter.Started", "Counter.Incremented"]
    );
}
