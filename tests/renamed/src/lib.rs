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

#[cfg(test)]
mod tests {
    use es::{Aggregate, AggregateExt, Event, RecordedEvent, Root};

    use super::{Account, AccountEvent, Counter, CounterEvent};

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
