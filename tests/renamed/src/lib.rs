//! Checks that the macros work when `eventsourcing` is a dependency under
//! another name.
//!
//! This crate depends on it as `es` (see `Cargo.toml`), so there is no
//! `::eventsourcing` path here: every macro is told where the runtime is
//! with `crate = "es"`, and generated code must reach serde, uuid and the
//! runtime's traits through that path alone. The crate has no serde or
//! uuid dependency of its own.

/// A bank account, in the annotated style.
#[es::aggregate(crate = "es")]
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Account {
    owner: String,
    balance: u64,
}

#[es::aggregate(crate = "es")]
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

    /// Takes `amount` from the balance; the topic is renamed, and the
    /// attribute is written with the crate's path.
    #[es::event(Withdrawn, topic = "Account.Withdrew")]
    pub fn withdraw(&mut self, amount: u64, memo: Option<String>) {
        let _ = memo;
        self.balance -= amount;
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
}

/// A counter, in the explicit style: a derived event enum and a
/// hand-written `apply`.
#[es::aggregate(crate = "es")]
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Counter {
    count: u64,
}

/// The events of [`Counter`].
#[derive(Debug, Clone, PartialEq, es::Event)]
#[es(crate = "es", prefix = "Tally")]
pub enum CounterEvent {
    /// The counter was started.
    Started {},
    /// The counter went up.
    Incremented {
        /// By how much.
        by: u64,
    },
}

impl es::Aggregate for Counter {
    type Event = CounterEvent;

    fn apply(&mut self, event: CounterEvent) {
        match event {
            CounterEvent::Started {} => {}
            CounterEvent::Incremented { by } => self.count += by,
        }
    }
}

impl Counter {
    /// Starts a counter at zero.
    #[must_use]
    pub fn start() -> Self {
        <Self as es::AggregateExt>::start(CounterEvent::Started {})
    }

    /// Adds `by`.
    pub fn increment(&mut self, by: u64) {
        <Self as es::AggregateExt>::trigger(self, CounterEvent::Incremented { by });
    }

    /// The count.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// The sums a [`Bookkeeper`] keeps.
#[derive(Debug, Default)]
pub struct Books {
    /// Deposits and increments, added up.
    pub total: u64,
}

/// A policy over both aggregates' events; its attributes are written with
/// the crate's path, or without.
#[derive(Debug, Default)]
pub struct Bookkeeper;

#[es::policy(crate = "es", version = 2)]
impl Bookkeeper {
    #[es::on(AccountEvent::Deposited)]
    fn deposited(&self, books: &mut Books, amount: u64) {
        books.total += amount;
    }

    #[on(CounterEvent::Incremented)]
    fn incremented(&self, books: &mut Books, by: u64) -> Result<(), String> {
        books.total = books.total.checked_add(by).ok_or("overflow")?;
        Ok(())
    }

    #[es::setup]
    fn open_books(&self, books: &mut Books) {
        books.total = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use es::follower::{Envelope, Policy};
    use es::{Aggregate, AggregateExt, Event, RecordedEvent, Root};

    use super::{Account, AccountEvent, Bookkeeper, Books, Counter, CounterEvent};

    #[test]
    fn policy_handles_events_of_both_styles() {
        let mut account = Account::open("ada".to_owned());
        account.deposit(100);
        let mut counter = Counter::start();
        counter.increment(5);
        let mut books = Books { total: 1 };
        let mut bookkeeper = Bookkeeper;
        bookkeeper.setup(&mut books).expect("set up");

        let events = account
            .pending_events()
            .iter()
            .chain(counter.pending_events());
        let handled: Vec<bool> = (1..)
            .zip(events)
            .map(|(id, event)| {
                let envelope = Envelope::new(Arc::from("app"), id, event.clone());
                bookkeeper.handle(&mut books, &envelope).expect("handled")
            })
            .collect();

        assert_eq!(handled, [false, true, false, true]);
        assert_eq!(books.total, 105);
        assert_eq!(<Bookkeeper as Policy<Books>>::VERSION, 2);
        assert_eq!(
            <Bookkeeper as Policy<Books>>::topics(),
            Some(vec!["Account.Deposited", "Tally.Incremented"])
        );
    }

    /// Rebuilds an aggregate from the events it has recorded so far.
    fn replay<A: Aggregate>(aggregate: &A) -> A {
        let events: Vec<RecordedEvent> = aggregate.pending_events().to_vec();
        A::replay(aggregate.id(), events.into_iter().map(Ok))
            .expect("replay")
            .expect("events")
    }

    #[test]
    fn annotated_aggregate_records_and_replays() {
        let mut account = Account::open("ada".to_owned());
        account.deposit(100);
        account.withdraw(30, Some("rent".to_owned()));
        assert_eq!(account.owner(), "ada");
        assert_eq!(account.balance(), 70);
        assert_eq!(account.version(), 3);

        let topics: Vec<&str> = account
            .pending_events()
            .iter()
            .map(|e| e.topic.as_ref())
            .collect();
        assert_eq!(
            topics,
            ["Account.Opened", "Account.Deposited", "Account.Withdrew"]
        );
        assert_eq!(
            <AccountEvent as Event>::TOPICS,
            ["Account.Opened", "Account.Deposited", "Account.Withdrew"]
        );

        let replayed = replay(&account);
        assert_eq!(replayed, account);
        assert_eq!(replayed.head(), account.head());
    }

    #[test]
    fn creation_with_a_given_id() {
        let id = es::Uuid::new_v4();
        let account = Account::open_with_id(id, "bob".to_owned());
        assert_eq!(account.id(), id);
        assert_eq!(replay(&account).id(), id);
    }

    #[test]
    fn derived_event_enum_records_and_replays() {
        let mut counter = Counter::start();
        counter.increment(2);
        counter.increment(5);
        assert_eq!(counter.count(), 7);
        assert_eq!(counter.version(), 3);
        assert_eq!(
            <CounterEvent as Event>::TOPICS,
            ["Tally.Started", "Tally.Incremented"]
        );

        let replayed = replay(&counter);
        assert_eq!(replayed, counter);
        assert_eq!(replayed.head(), counter.head());
    }

    #[test]
    fn discarded_aggregate_replays_as_discarded() {
        let mut account = Account::open("ada".to_owned());
        account.discard();
        let replayed = replay(&account);
        assert!(replayed.is_discarded());
        assert_eq!(replayed.version(), 2);
    }
}
