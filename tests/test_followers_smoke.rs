//! Smoke test of the follower runtime with hand-written policies.

use eventsourcing::follower::{Envelope, Follower, HandleError, Policy, Processing};
use eventsourcing::prelude::*;
use support::account::{Account, AccountEvent};

#[aggregate]
#[derive(Debug, Default)]
struct Entry {
    upstream_id: u64,
    amount: i64,
}

#[aggregate]
impl Entry {
    #[created(Made)]
    fn make(&mut self, upstream_id: u64, amount: i64) {
        self.upstream_id = upstream_id;
        self.amount = amount;
    }
}

struct Ledger;

impl Policy<Processing> for Ledger {
    const NAME: &'static str = "Ledger";
    fn topics() -> Option<Vec<&'static str>> {
        eventsourcing::follower::variant_topics::<AccountEvent>("Deposited")
    }
    fn handle(&mut self, cx: &mut Processing, envelope: &Envelope) -> Result<bool, HandleError> {
        match envelope.decode::<AccountEvent>()? {
            Some(AccountEvent::Deposited { amount, .. }) => {
                if amount < 0 {
                    return Err(HandleError::Handler("negative".into()));
                }
                cx.collect(Entry::make(envelope.notification_id(), amount))
                    .map_err(|e| HandleError::Handler(e.into()))?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[derive(Default)]
struct Totals {
    sum: i64,
    count: u64,
}

struct Summer;

impl Policy<Totals> for Summer {
    const NAME: &'static str = "Summer";
    fn topics() -> Option<Vec<&'static str>> {
        None
    }
    fn handle(&mut self, cx: &mut Totals, envelope: &Envelope) -> Result<bool, HandleError> {
        if let Some(AccountEvent::Deposited { amount, .. }) = envelope.decode::<AccountEvent>()? {
            cx.sum += amount;
            cx.count += 1;
            return Ok(true);
        }
        Ok(false)
    }
}

#[test]
fn process_application_records_one_entry_per_deposit() -> eventsourcing::Result<()> {
    let bank = Application::builder().name("Bank").build()?;
    let ledger = Application::builder().name("Ledger").build()?;
    let mut account = Account::open("a".into());
    for i in 0..25 {
        account.deposit(i, "n".into());
    }
    bank.save(&mut account)?;
    let mut follower = Follower::process(Ledger, &ledger)
        .follow(&bank)
        .batch_size(7)
        .start()?;
    let progress = follower.run_until_caught_up()?;
    assert_eq!(progress.events, 25);
    assert_eq!(follower.position("Bank"), Some(26));
    assert_eq!(ledger.notification_log().max_id()?, 25);
    // Running again does nothing.
    assert_eq!(follower.run_until_caught_up()?.events, 0);

    // A second worker takes over; the first is fenced.
    let mut second = Follower::process(Ledger, &ledger).follow(&bank).start()?;
    account.deposit(100, "x".into());
    bank.save(&mut account)?;
    let fenced = follower.run_until_caught_up();
    assert!(
        matches!(fenced, Err(Error::TrackingConflict { .. })),
        "{fenced:?}"
    );
    assert_eq!(second.run_until_caught_up()?.events, 1);
    assert_eq!(ledger.notification_log().max_id()?, 26);

    // A failing handler stops before its event.
    account.deposit(5, "ok".into());
    account.deposit(-1, "bad".into());
    account.deposit(6, "after".into());
    bank.save(&mut account)?;
    let stopped = second.run_until_caught_up();
    match stopped {
        Err(Error::Handler {
            notification_id, ..
        }) => assert_eq!(notification_id, 29),
        other => panic!("{other:?}"),
    }
    assert_eq!(second.position("Bank"), Some(28));
    assert_eq!(ledger.notification_log().max_id()?, 27);
    Ok(())
}

#[test]
fn parked_failures_let_the_others_through() -> eventsourcing::Result<()> {
    let bank = Application::builder()
        .name("Bank")
        .db_uri("memory://")
        .build()?;
    let ledger = Application::builder()
        .name("Ledger")
        .db_uri("memory://")
        .build()?;
    let mut a = Account::open("a".into());
    let mut b = Account::open("b".into());
    a.deposit(1, String::new());
    a.deposit(-1, String::new());
    b.deposit(2, String::new());
    a.deposit(3, String::new());
    b.deposit(4, String::new());
    bank.save((&mut a, &mut b))?;
    let mut follower = Follower::process(Ledger, &ledger)
        .follow(&bank)
        .park_failures(true)
        .start()?;
    follower.run_until_caught_up()?;
    let parked = follower.parked()?;
    assert_eq!(parked.len(), 2, "{parked:?}");
    assert_eq!(ledger.notification_log().max_id()?, 3);
    let dropped = follower.drop_parked("Bank", a.id())?;
    assert_eq!(dropped, 2);
    assert!(follower.parked()?.is_empty());
    a.deposit(9, String::new());
    bank.save(&mut a)?;
    follower.run_until_caught_up()?;
    assert_eq!(ledger.notification_log().max_id()?, 4);
    Ok(())
}

#[test]
fn in_memory_projection_and_spawned_follower() -> eventsourcing::Result<()> {
    let bank = Application::builder().name("Bank").build()?;
    let follower = Follower::in_memory(Summer, Totals::default())
        .follow(&bank)
        .start()?;
    let state = follower.state();
    let running = follower.spawn();
    let mut account = Account::open("a".into());
    account.deposit(5, String::new());
    account.deposit(7, String::new());
    let ids = bank.save(&mut account)?;
    assert!(running.wait_for(
        "Bank",
        *ids.last().unwrap(),
        std::time::Duration::from_secs(10)
    )?);
    {
        let totals = state.lock().unwrap();
        assert_eq!((totals.sum, totals.count), (12, 2));
    }
    let follower = running.stop()?;
    assert_eq!(follower.position("Bank"), Some(3));
    Ok(())
}
