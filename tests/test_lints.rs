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

use std::sync::Arc;

use eventsourcing::follower::{Envelope, Policy};
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

/// What [`Statistics`] counts.
#[derive(Debug, Default)]
pub struct Totals {
    owners: Vec<String>,
    counted: u64,
    ready: bool,
}

/// A policy over both aggregates' events.
#[derive(Debug, Default)]
pub struct Statistics;

#[policy(name = "Stats", version = 2)]
impl Statistics {
    /// Prepares the totals.
    #[setup]
    fn prepare(&self, totals: &mut Totals) {
        totals.ready = true;
    }

    /// Clears the totals.
    ///
    /// # Errors
    ///
    /// When the totals were never set up.
    #[reset]
    fn clear(&mut self, totals: &mut Totals) -> Result<(), String> {
        if !totals.ready {
            return Err("not set up".to_owned());
        }
        *totals = Totals::default();
        Ok(())
    }

    /// One variant of the account's events: the generated `match` has a
    /// `_` arm for the others.
    #[on(AccountEvent::Opened)]
    fn opened(&self, totals: &mut Totals, owner: &str, envelope: &Envelope) {
        totals
            .owners
            .push(format!("{owner}@{}", envelope.upstream()));
    }

    /// With `incremented`, every variant of the counter's events: the
    /// generated `_` arm is unreachable.
    #[on(CounterEvent::Started)]
    fn started(&self, totals: &mut Totals) {
        totals.counted += 1;
    }

    /// Fails on a zero increment.
    ///
    /// # Errors
    ///
    /// When `by` is zero.
    #[on(CounterEvent::Incremented)]
    fn incremented(&mut self, totals: &mut Totals, by: u64) -> Result<(), String> {
        if by == 0 {
            return Err("zero".to_owned());
        }
        totals.counted += by;
        Ok(())
    }
}

/// A context that borrows: the handlers leave its lifetime to elision.
#[derive(Debug)]
pub struct Journal<'a> {
    lines: &'a mut Vec<String>,
}

/// A policy whose context has a lifetime.
#[derive(Debug)]
pub struct Scribe;

#[policy]
impl Scribe {
    /// Writes down each deposit.
    #[on(AccountEvent::Deposited)]
    fn deposited(&self, journal: &mut Journal<'_>, amount: u64) {
        journal.lines.push(format!("deposited {amount}"));
    }
}

#[test]
fn lint_clean_policies_work() {
    let mut account = Account::open("ada".to_owned());
    account.deposit(10);
    let mut counter = Counter::start();
    counter.increment(3);
    let mut totals = Totals::default();
    let mut lines = Vec::new();
    let mut statistics = Statistics;
    Policy::setup(&mut statistics, &mut totals).expect("set up");

    for (id, event) in (1..).zip(
        account
            .pending_events()
            .iter()
            .chain(counter.pending_events()),
    ) {
        let envelope = Envelope::new(Arc::from("app"), id, event.clone());
        statistics.handle(&mut totals, &envelope).expect("handled");
        let mut journal = Journal { lines: &mut lines };
        Scribe.handle(&mut journal, &envelope).expect("handled");
    }

    assert_eq!(totals.owners, ["ada@app"]);
    assert_eq!((totals.counted, totals.ready), (4, true));
    assert_eq!(lines, ["deposited 10"]);
    assert_eq!(<Statistics as Policy<Totals>>::NAME, "Stats");
    Policy::reset(&mut statistics, &mut totals).expect("reset");
    assert!(totals.owners.is_empty());
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
