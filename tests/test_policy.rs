//! `#[policy]`: handlers dispatched by upstream event across event enums,
//! the parameters a handler may take, what `topics()`, `NAME` and
//! `VERSION` say, and `setup` and `reset` through the `Policy` trait.
//! Every envelope here carries an event an aggregate recorded; the last
//! tests run generated policies in a `Follower`, as a projection and as a
//! process application.

use std::fmt;
use std::sync::Arc;

use eventsourcing::RecordedEvent;
use eventsourcing::follower::{BoxError, Envelope, Follower, HandleError, Policy, Processing};
use eventsourcing::prelude::*;
use eventsourcing::recorder::MemoryRecorder;

/// The first upstream: bank accounts.
mod bank {
    use eventsourcing::prelude::*;

    #[aggregate]
    #[derive(Debug, Default)]
    pub(crate) struct Account {
        balance: u64,
    }

    #[aggregate]
    impl Account {
        #[created(Opened)]
        pub(crate) fn open(&mut self, owner: String) {
            let _ = owner;
        }

        #[event(Credited)]
        pub(crate) fn credit(&mut self, amount: u64) {
            self.balance += amount;
        }

        #[event(Debited)]
        pub(crate) fn debit(&mut self, amount: u64, memo: Option<String>) {
            let _ = memo;
            self.balance = self.balance.saturating_sub(amount);
        }

        /// No fields: a unit variant of the event enum.
        #[event(Frozen)]
        pub(crate) fn freeze(&mut self) {}
    }
}

/// The second upstream, as older code wrote it: weights in grams.
mod parcels_v1 {
    use eventsourcing::prelude::*;

    #[aggregate]
    #[derive(Debug, Default)]
    pub(crate) struct Parcel {
        grams: u32,
    }

    #[aggregate]
    impl Parcel {
        #[created(Registered)]
        pub(crate) fn register(&mut self) {}

        #[event(Weighed)]
        pub(crate) fn weigh(&mut self, grams: u32) {
            self.grams = grams;
        }
    }
}

/// The second upstream today: `Weighed` is at schema version 2, in
/// kilograms.
mod parcels {
    use eventsourcing::prelude::*;

    #[aggregate]
    #[derive(Debug, Default)]
    pub(crate) struct Parcel {
        kilograms: f64,
    }

    #[aggregate]
    impl Parcel {
        #[created(Registered)]
        pub(crate) fn register(&mut self) {}

        #[event(Weighed, version = 2)]
        pub(crate) fn weigh(&mut self, kilograms: f64) {
            self.kilograms = kilograms;
        }

        #[event(Lost)]
        pub(crate) fn lose(&mut self) {}

        #[upcast(Weighed, from = 1)]
        fn grams_to_kilograms(data: &mut JsonObject) {
            let grams = data.remove("grams").and_then(|g| g.as_f64()).unwrap_or(0.0);
            data.insert("kilograms".into(), (grams / 1000.0).into());
        }
    }
}

/// An upstream no policy here handles.
mod kennel {
    use eventsourcing::prelude::*;

    #[aggregate]
    #[derive(Debug, Default)]
    pub(crate) struct Dog {}

    #[aggregate]
    impl Dog {
        #[created(Born)]
        pub(crate) fn born(&mut self) {}
    }
}

use bank::{Account, AccountEvent};

/// The context of `Statement`: what its handlers make, in memory.
#[derive(Debug, Default)]
struct Ledger {
    lines: Vec<String>,
    credited: u64,
}

/// Why `Statement` refuses a debit.
#[derive(Debug, PartialEq)]
struct Overdrawn {
    amount: u64,
    available: u64,
}

impl fmt::Display for Overdrawn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} debited, {} available", self.amount, self.available)
    }
}

impl std::error::Error for Overdrawn {}

/// A policy over both upstreams, with state of its own.
#[derive(Default)]
struct Statement {
    debits: Vec<(u64, Option<String>)>,
    setups: u32,
    resets: u32,
}

#[policy]
impl Statement {
    /// Named like the trait's method: the generated `Policy::setup` calls
    /// this one.
    #[setup]
    fn setup(&mut self, ledger: &mut Ledger) {
        self.setups += 1;
        ledger.lines.push("set up".to_owned());
    }

    // Fallible, to check that its `Ok` reaches the trait.
    #[allow(clippy::unnecessary_wraps)]
    #[reset]
    fn clear(&mut self, ledger: &mut Ledger) -> Result<(), Overdrawn> {
        self.resets += 1;
        ledger.lines.clear();
        ledger.credited = 0;
        Ok(())
    }

    /// The envelope, before a field taken by reference as `&str`.
    #[on(AccountEvent::Opened)]
    fn opened(&self, ledger: &mut Ledger, envelope: &Envelope, owner: &str) {
        ledger.lines.push(format!(
            "opened by {owner} (#{} of {})",
            envelope.notification_id(),
            envelope.upstream()
        ));
    }

    /// A field by `&T`, and `&self`.
    #[allow(clippy::trivially_copy_pass_by_ref)] // the reference is the point
    #[on(AccountEvent::Credited)]
    fn credited(&self, ledger: &mut Ledger, amount: &u64) {
        ledger.credited += amount;
        ledger.lines.push(format!("credited {amount}"));
    }

    /// Fields in another order than the event's, the context by `&`, and
    /// an error of its own.
    #[on(AccountEvent::Debited)]
    fn debited(
        &mut self,
        ledger: &Ledger,
        memo: Option<String>,
        amount: u64,
    ) -> Result<(), Overdrawn> {
        if amount > ledger.credited {
            return Err(Overdrawn {
                amount,
                available: ledger.credited,
            });
        }
        self.debits.push((amount, memo));
        Ok(())
    }

    /// One handler for two unit variants of two enums.
    #[on(AccountEvent::Frozen)]
    #[on(parcels::ParcelEvent::Lost)]
    fn stopped(&self, ledger: &mut Ledger, envelope: &Envelope) {
        ledger.lines.push(format!("stopped: {}", envelope.topic()));
    }

    #[on(parcels::ParcelEvent::Weighed)]
    fn weighed(&self, ledger: &mut Ledger, kilograms: f64) {
        ledger.lines.push(format!("weighed {kilograms} kg"));
    }

    /// Not a handler: left alone.
    fn debited_total(&self) -> u64 {
        self.debits.iter().map(|(amount, _)| amount).sum()
    }
}

/// The events in envelopes from `upstream`, numbered from `first`.
fn envelopes(upstream: &str, first: u64, events: &[RecordedEvent]) -> Vec<Envelope> {
    (first..)
        .zip(events)
        .map(|(id, event)| Envelope::new(Arc::from(upstream), id, event.clone()))
        .collect()
}

/// Handles every envelope, expecting each to reach a handler.
fn handle_all<C, P: Policy<C>>(policy: &mut P, cx: &mut C, envelopes: &[Envelope]) {
    for envelope in envelopes {
        let handled = policy.handle(cx, envelope).expect("handled");
        assert!(handled, "no handler took {}", envelope.topic());
    }
}

#[test]
fn handlers_receive_fields_by_name_and_reference_and_the_envelope() {
    let mut account = Account::open("ada".to_owned());
    account.credit(50);
    account.debit(20, Some("rent".to_owned()));
    account.debit(5, None);
    let mut statement = Statement::default();
    let mut ledger = Ledger::default();

    handle_all(
        &mut statement,
        &mut ledger,
        &envelopes("bank", 7, account.pending_events()),
    );

    assert_eq!(ledger.lines, ["opened by ada (#7 of bank)", "credited 50"]);
    assert_eq!(ledger.credited, 50);
    assert_eq!(statement.debits, [(20, Some("rent".to_owned())), (5, None)]);
    assert_eq!(statement.debited_total(), 25);
}

#[test]
fn handlers_dispatch_by_variant_across_two_upstream_enums() {
    let mut account = Account::open("bob".to_owned());
    account.freeze();
    let mut parcel = parcels::Parcel::register();
    parcel.weigh(1.25);
    parcel.lose();
    let mut statement = Statement::default();
    let mut ledger = Ledger::default();

    let parcel_events = envelopes("post", 1, parcel.pending_events());
    // `Registered` has no handler.
    assert!(!statement.handle(&mut ledger, &parcel_events[0]).unwrap());
    handle_all(&mut statement, &mut ledger, &parcel_events[1..]);
    handle_all(
        &mut statement,
        &mut ledger,
        &envelopes("bank", 1, account.pending_events()),
    );

    assert_eq!(
        ledger.lines,
        [
            "weighed 1.25 kg",
            "stopped: Parcel.Lost",
            "opened by bob (#1 of bank)",
            "stopped: Account.Frozen",
        ]
    );
}

#[test]
fn a_failing_handler_returns_its_error_as_a_handler_error() {
    let mut account = Account::open("cy".to_owned());
    account.credit(10);
    account.debit(15, None);
    let mut statement = Statement::default();
    let mut ledger = Ledger::default();
    let events = envelopes("bank", 1, account.pending_events());
    handle_all(&mut statement, &mut ledger, &events[..2]);

    let error = statement.handle(&mut ledger, &events[2]).unwrap_err();

    let HandleError::Handler(error) = error else {
        panic!("expected the handler's error, got {error:?}");
    };
    let overdrawn = error.downcast::<Overdrawn>().expect("the handler's type");
    assert_eq!(
        *overdrawn,
        Overdrawn {
            amount: 15,
            available: 10
        }
    );
    assert!(statement.debits.is_empty());
}

#[test]
fn an_event_of_an_enum_without_handlers_is_not_handled() {
    let dog = kennel::Dog::born();
    let mut statement = Statement::default();
    let mut ledger = Ledger::default();

    let envelope = &envelopes("kennel", 1, dog.pending_events())[0];

    assert!(!statement.handle(&mut ledger, envelope).unwrap());
    assert!(ledger.lines.is_empty());
}

#[test]
fn an_event_whose_data_does_not_decode_is_an_event_error() {
    let account = Account::open("di".to_owned());
    let mut event = account.pending_events()[0].clone();
    event.data = br#"{"owner": 7}"#.to_vec();
    let mut ledger = Ledger::default();

    let error = Statement::default()
        .handle(&mut ledger, &Envelope::new(Arc::from("bank"), 1, event))
        .unwrap_err();

    assert!(
        matches!(error, HandleError::Event(Error::Decode { .. })),
        "{error:?}"
    );
    assert!(ledger.lines.is_empty());
}

#[test]
fn events_stored_at_an_older_schema_version_reach_the_handler_upcast() {
    let mut old = parcels_v1::Parcel::register();
    old.weigh(2500);
    let events = envelopes("post", 1, old.pending_events());
    assert_eq!(events[1].topic(), "Parcel.Weighed");
    let mut ledger = Ledger::default();

    assert!(
        Statement::default()
            .handle(&mut ledger, &events[1])
            .unwrap()
    );

    assert_eq!(ledger.lines, ["weighed 2.5 kg"]);
}

#[test]
fn topics_are_every_handled_variant_at_every_schema_version() {
    let topics = <Statement as Policy<Ledger>>::topics().expect("generated enums say");

    assert_eq!(
        topics,
        [
            "Account.Opened",
            "Account.Credited",
            "Account.Debited",
            "Account.Frozen",
            "Parcel.Lost",
            "Parcel.Weighed",
            "Parcel.Weighed@2",
        ]
    );
}

/// An event enum with a hand-written `impl Event`, which describes no
/// variants (`SCHEMA` is empty).
#[derive(Debug, Clone, PartialEq)]
enum PingEvent {
    Pinged {},
}

impl Event for PingEvent {
    const TOPICS: &'static [&'static str] = &["Ping.Pinged"];

    fn topic(&self) -> &'static str {
        "Ping.Pinged"
    }

    fn encode(&self, out: &mut Vec<u8>) -> std::result::Result<(), serde_json::Error> {
        out.extend_from_slice(b"{}");
        Ok(())
    }

    fn decode(topic: &str, _: &[u8]) -> std::result::Result<Option<Self>, serde_json::Error> {
        Ok((topic == "Ping.Pinged").then_some(PingEvent::Pinged {}))
    }
}

/// A policy whose handlers read an enum that cannot list its topics.
#[derive(Default)]
struct Pings {
    count: u32,
}

#[policy(name = "Pings counted", version = 3)]
impl Pings {
    #[on(PingEvent::Pinged)]
    fn pinged(&mut self, _cx: &mut ()) {
        self.count += 1;
    }

    #[on(AccountEvent::Opened)]
    fn opened(&mut self, _cx: &mut ()) {}
}

#[test]
fn topics_are_none_when_an_enum_cannot_list_its_variants() {
    assert_eq!(<Pings as Policy<()>>::topics(), None);
}

#[test]
fn name_and_version_default_to_the_type_and_one() {
    assert_eq!(<Statement as Policy<Ledger>>::NAME, "Statement");
    assert_eq!(<Statement as Policy<Ledger>>::VERSION, 1);
}

#[test]
fn name_and_version_are_set_by_the_policy_attribute() {
    assert_eq!(<Pings as Policy<()>>::NAME, "Pings counted");
    assert_eq!(<Pings as Policy<()>>::VERSION, 3);
}

#[test]
fn setup_and_reset_run_through_the_trait() {
    let mut statement = Statement::default();
    let mut ledger = Ledger::default();

    Policy::setup(&mut statement, &mut ledger).unwrap();
    let account = Account::open("ed".to_owned());
    handle_all(
        &mut statement,
        &mut ledger,
        &envelopes("bank", 1, account.pending_events()),
    );
    assert_eq!(ledger.lines, ["set up", "opened by ed (#1 of bank)"]);
    Policy::reset(&mut statement, &mut ledger).unwrap();

    assert!(ledger.lines.is_empty());
    assert_eq!((statement.setups, statement.resets), (1, 1));
}

#[test]
fn setup_and_reset_default_to_nothing() {
    let mut pings = Pings::default();

    Policy::setup(&mut pings, &mut ()).unwrap();
    Policy::reset(&mut pings, &mut ()).unwrap();

    assert_eq!(pings.count, 0);
}

/// A projection into SQL tables: the context is a transaction, whose
/// lifetime the handlers leave to elision.
struct Balances;

#[policy]
impl Balances {
    #[setup]
    fn create_table(&self, tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch("CREATE TABLE IF NOT EXISTS credits (id TEXT, amount INTEGER)")
    }

    #[reset]
    fn drop_table(&self, tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch("DROP TABLE credits")
    }

    #[on(AccountEvent::Credited)]
    fn credited(
        &self,
        tx: &rusqlite::Transaction<'_>,
        envelope: &Envelope,
        amount: u64,
    ) -> rusqlite::Result<()> {
        tx.execute(
            "INSERT INTO credits VALUES (?1, ?2)",
            (envelope.originator_id().to_string(), amount),
        )?;
        Ok(())
    }
}

/// The sum of the `credits` table.
fn credited(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<u64> {
    tx.query_row("SELECT COALESCE(SUM(amount), 0) FROM credits", (), |row| {
        row.get(0)
    })
}

#[test]
fn a_projection_into_sql_tables_takes_a_transaction() {
    let mut connection = rusqlite::Connection::open_in_memory().unwrap();
    let mut tx = connection.transaction().unwrap();
    let mut balances = Balances;
    let mut account = Account::open("flo".to_owned());
    account.credit(30);
    account.credit(12);
    let events = envelopes("bank", 1, account.pending_events());

    balances.setup(&mut tx).unwrap();
    assert!(!balances.handle(&mut tx, &events[0]).unwrap());
    handle_all(&mut balances, &mut tx, &events[1..]);
    assert_eq!(credited(&tx).unwrap(), 42);
    balances.reset(&mut tx).unwrap();

    assert!(credited(&tx).is_err(), "the table is gone");
    let error: BoxError = balances.reset(&mut tx).unwrap_err();
    assert!(error.to_string().contains("no such table"), "{error}");
}

/// A generic policy: the impl block's parameters carry over to
/// `impl Policy`.
struct Collect<T> {
    amounts: Vec<T>,
}

#[policy]
impl<T: From<u64> + Send + 'static> Collect<T> {
    #[on(AccountEvent::Credited)]
    fn credited(&mut self, _cx: &mut (), amount: u64) {
        self.amounts.push(T::from(amount));
    }
}

#[test]
fn a_generic_policy_handles_events_for_each_type_argument() {
    let mut account = Account::open("gus".to_owned());
    account.credit(3);
    account.credit(4);
    let events = envelopes("bank", 1, &account.pending_events()[1..]);
    let mut wide = Collect::<u128> {
        amounts: Vec::new(),
    };
    let mut signed = Collect::<i128> {
        amounts: Vec::new(),
    };

    handle_all(&mut wide, &mut (), &events);
    handle_all(&mut signed, &mut (), &events);

    assert_eq!(wide.amounts, [3, 4]);
    assert_eq!(signed.amounts, [3, 4]);
    assert_eq!(<Collect<u128> as Policy<()>>::NAME, "Collect");
}

/// An application of its own, in memory.
fn memory_app(name: &str) -> Application {
    Application::builder()
        .name(name)
        .recorder(Arc::new(MemoryRecorder::new()))
        .build()
        .unwrap()
}

#[test]
fn a_follower_runs_a_generated_policy_as_an_in_memory_projection() {
    let bank = memory_app("Bank");
    let mut account = Account::open("hal".to_owned());
    account.credit(40);
    account.debit(15, Some("books".to_owned()));
    account.freeze();
    bank.save(&mut account).unwrap();
    let mut follower = Follower::in_memory(Statement::default(), Ledger::default())
        .follow(&bank)
        .start()
        .unwrap();

    let progress = follower.run_until_caught_up().unwrap();

    assert_eq!(progress.events, 4);
    assert_eq!(follower.name(), "Statement");
    assert_eq!(
        follower.state().lock().unwrap().lines,
        [
            "set up",
            "opened by hal (#1 of Bank)",
            "credited 40",
            "stopped: Account.Frozen",
        ]
    );
    assert_eq!(follower.policy().debits, [(15, Some("books".to_owned()))]);
}

/// Downstream of the bank: one receipt per credit.
#[aggregate]
#[derive(Debug, Default)]
struct Receipt {
    account: Uuid,
    amount: u64,
}

#[aggregate]
impl Receipt {
    #[created(Issued)]
    fn issue(&mut self, account: Uuid, amount: u64) {
        self.account = account;
        self.amount = amount;
    }
}

/// A process application's policy: its context is `Processing`.
struct Receipts;

#[policy]
impl Receipts {
    #[on(AccountEvent::Credited)]
    fn credited(
        &self,
        processing: &mut Processing,
        envelope: &Envelope,
        amount: u64,
    ) -> eventsourcing::Result<()> {
        processing.collect(Receipt::issue(envelope.originator_id(), amount))?;
        Ok(())
    }
}

#[test]
fn a_follower_runs_a_generated_policy_as_a_process_application() {
    let bank = memory_app("Bank");
    let shop = memory_app("Shop");
    let mut account = Account::open("ida".to_owned());
    account.credit(5);
    account.credit(7);
    bank.save(&mut account).unwrap();
    let mut follower = Follower::process(Receipts, &shop)
        .follow(&bank)
        .start()
        .unwrap();

    follower.run_until_caught_up().unwrap();

    let log = shop.notification_log();
    let receipts: Vec<(Uuid, u64)> = log
        .reader()
        .read()
        .unwrap()
        .into_iter()
        .map(|notification| {
            let recorded = log.decode(notification).unwrap();
            let ReceiptEvent::Issued { account, amount } =
                recorded.decode::<ReceiptEvent>().unwrap().event;
            (account, amount)
        })
        .collect();
    assert_eq!(receipts, [(account.id(), 5), (account.id(), 7)]);
    assert_eq!(follower.position("Bank"), Some(3));
}
