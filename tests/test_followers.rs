//! Followers on every backend: process applications and in-memory
//! projections, their positions, batches, topics, several upstreams,
//! fencing, failing handlers (stopping and parking), concurrency retries,
//! names, bad upstream records, waiting and lag. The SQL projections have
//! their own suite (`test_projections.rs`); the kill tests are in
//! `test_exactly_once.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use eventsourcing::follower::{
    Envelope, Follower, HandleError, Policy, Processing, variant_topics,
};
use eventsourcing::prelude::*;
use eventsourcing::recorder::{Parked, TrackingKey};
use support::account::{Account, AccountEvent};
use support::conformance;
use support::recorders::Backend;

/// One effect per deposit: names the deposit's notification id.
#[aggregate]
#[derive(Debug, Default)]
struct Effect {
    upstream: String,
    upstream_id: u64,
}

#[aggregate]
impl Effect {
    #[created(Made)]
    fn make(&mut self, upstream: String, upstream_id: u64) {
        self.upstream = upstream;
        self.upstream_id = upstream_id;
    }
}

/// A per-account counter, changed by every deposit: for conflicts.
#[aggregate]
#[derive(Debug, Default)]
struct Tally {
    count: u64,
}

#[aggregate]
impl Tally {
    #[created(Started, id = tally_id(account))]
    fn start(&mut self, account: Uuid) {
        let _ = account;
    }

    #[event(Counted)]
    fn count(&mut self) {
        self.count += 1;
    }
}

fn tally_id(account: Uuid) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_OID, account.as_bytes())
}

/// Makes an `Effect` per deposit; fails on negative amounts while `fail`
/// is set; counts its calls.
#[derive(Clone, Default)]
struct Effects {
    calls: Arc<AtomicUsize>,
    fail: Arc<AtomicBool>,
}

impl Effects {
    fn failing() -> Self {
        let effects = Effects::default();
        effects.fail.store(true, Ordering::SeqCst);
        effects
    }
}

impl Policy<Processing> for Effects {
    const NAME: &'static str = "Effects";

    fn topics() -> Option<Vec<&'static str>> {
        variant_topics::<AccountEvent>("Deposited")
    }

    fn handle(&mut self, cx: &mut Processing, envelope: &Envelope) -> Result<bool, HandleError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let Some(AccountEvent::Deposited { amount, .. }) = envelope.decode::<AccountEvent>()?
        else {
            return Ok(false);
        };
        if amount < 0 && self.fail.load(Ordering::SeqCst) {
            return Err(HandleError::Handler(
                format!("negative amount {amount}").into(),
            ));
        }
        let effect = Effect::make(envelope.upstream().to_owned(), envelope.notification_id());
        cx.collect(effect)
            .map_err(|e| HandleError::Handler(e.into()))?;
        Ok(true)
    }
}

/// Another policy under the name `Effects`.
struct Impostor;

impl Policy<Processing> for Impostor {
    const NAME: &'static str = "Effects";

    fn topics() -> Option<Vec<&'static str>> {
        None
    }

    fn handle(&mut self, _: &mut Processing, _: &Envelope) -> Result<bool, HandleError> {
        Ok(false)
    }
}

/// Counts deposits per account in a `Tally`; the first `conflicts` calls
/// also save a change to the same tally behind its back.
struct Tallies {
    app: Application,
    conflicts: Arc<AtomicUsize>,
}

impl Policy<Processing> for Tallies {
    const NAME: &'static str = "Tallies";

    fn topics() -> Option<Vec<&'static str>> {
        variant_topics::<AccountEvent>("Deposited")
    }

    fn handle(&mut self, cx: &mut Processing, envelope: &Envelope) -> Result<bool, HandleError> {
        let err = |e: Error| HandleError::Handler(e.into());
        let id = tally_id(envelope.originator_id());
        match cx.find::<Tally>(id).map_err(err)? {
            Some(tally) => tally.count(),
            None => cx
                .collect(Tally::start(envelope.originator_id()))
                .map_err(err)?
                .count(),
        }
        let left = self.conflicts.load(Ordering::SeqCst);
        if left > 0 {
            self.conflicts.store(left - 1, Ordering::SeqCst);
            // Another writer changes the same tally first.
            let mut theirs = match self.app.repository().find::<Tally>(id).map_err(err)? {
                Some(tally) => tally,
                None => Tally::start(envelope.originator_id()),
            };
            theirs.count();
            self.app.save(&mut theirs).map_err(err)?;
        }
        Ok(true)
    }
}

/// The total of deposits, in memory.
#[derive(Debug, Default)]
struct Totals {
    sum: i64,
    deposits: u64,
}

struct Summer;

impl Policy<Totals> for Summer {
    const NAME: &'static str = "Summer";

    fn topics() -> Option<Vec<&'static str>> {
        variant_topics::<AccountEvent>("Deposited")
    }

    fn handle(&mut self, cx: &mut Totals, envelope: &Envelope) -> Result<bool, HandleError> {
        if let Some(AccountEvent::Deposited { amount, .. }) = envelope.decode::<AccountEvent>()? {
            cx.sum += amount;
            cx.deposits += 1;
            return Ok(true);
        }
        Ok(false)
    }
}

/// The upstream `Bank` and the process application `Ledger` of a backend,
/// each with tables of its own.
fn apps(backend: &Backend) -> (Application, Application) {
    let bank = Application::builder()
        .name("Bank")
        .recorder(Arc::clone(&backend.recorder))
        .build()
        .unwrap();
    let ledger = Application::builder()
        .name("Ledger")
        .recorder(backend.another("ledger_"))
        .build()
        .unwrap();
    (bank, ledger)
}

/// Opens an account with `amounts` deposited, in one save.
fn account(bank: &Application, amounts: &[i64]) -> Account {
    let mut account = Account::open("owner".into());
    for &amount in amounts {
        account.deposit(amount, "n".into());
    }
    bank.save(&mut account).unwrap();
    account
}

/// The upstream notification ids named by the ledger's effects, in the
/// ledger's order.
fn effects(ledger: &Application) -> Vec<(String, u64)> {
    let log = ledger.notification_log();
    log.reader()
        .read()
        .unwrap()
        .into_iter()
        .map(|n| {
            let event = log
                .decode(n)
                .unwrap()
                .decode::<EffectEvent>()
                .unwrap()
                .event;
            let EffectEvent::Made {
                upstream,
                upstream_id,
            } = event;
            (upstream, upstream_id)
        })
        .collect()
}

/// The ids of `bank`'s deposits, in order.
fn deposits(bank: &Application) -> Vec<u64> {
    let log = bank.notification_log();
    log.reader()
        .read()
        .unwrap()
        .into_iter()
        .filter(|n| n.topic == "Account.Deposited")
        .map(|n| n.id)
        .collect()
}

fn one_effect_per_event_in_batches(backend: &Backend) {
    let (bank, ledger) = apps(backend);
    for n in 0..7 {
        account(&bank, &[1; 4][..n % 4]);
    }
    let policy = Effects::default();
    let mut follower = Follower::process(policy.clone(), &ledger)
        .follow(&bank)
        .batch_size(3)
        .start()
        .unwrap();
    let progress = follower.run_until_caught_up().unwrap();
    let wanted = deposits(&bank);
    let made: Vec<u64> = effects(&ledger).into_iter().map(|(_, id)| id).collect();
    assert_eq!(made, wanted, "{}", backend.name());
    assert_eq!(progress.events, wanted.len() as u64);
    assert!(progress.batches >= (wanted.len() as u64).div_ceil(3));
    // Openings were never read: the topic filter kept them out.
    assert_eq!(policy.calls.load(Ordering::SeqCst), wanted.len());
    // The position is the head, openings after the last deposit included.
    account(&bank, &[]);
    follower.run_until_caught_up().unwrap();
    let head = bank.notification_log().max_id().unwrap();
    assert_eq!(follower.position("Bank"), Some(head));
    let row = ledger
        .event_store()
        .recorder()
        .select_tracking(&TrackingKey::new("Effects", "Bank"))
        .unwrap()
        .unwrap();
    assert_eq!(row.notification_id, head);
    // Nothing more to do.
    assert_eq!(follower.run_until_caught_up().unwrap().events, 0);
    // A new worker starts where the last one stopped.
    drop(follower);
    account(&bank, &[5]);
    let mut again = Follower::process(Effects::default(), &ledger)
        .follow(&bank)
        .start()
        .unwrap();
    assert_eq!(again.run_until_caught_up().unwrap().events, 1);
    assert_eq!(effects(&ledger).len(), wanted.len() + 1);
}

fn several_upstreams_each_with_a_position(backend: &Backend) {
    let (bank, ledger) = apps(backend);
    let shop = Application::builder()
        .name("Shop")
        .recorder(backend.another("shop_"))
        .build()
        .unwrap();
    account(&bank, &[1, 2]);
    account(&shop, &[3]);
    let mut follower = Follower::process(Effects::default(), &ledger)
        .follow(&bank)
        .follow(&shop)
        .start()
        .unwrap();
    follower.run_until_caught_up().unwrap();
    let mut made = effects(&ledger);
    made.sort();
    assert_eq!(
        made,
        [("Bank".into(), 2), ("Bank".into(), 3), ("Shop".into(), 2)]
    );
    assert_eq!(follower.position("Bank"), Some(3));
    assert_eq!(follower.position("Shop"), Some(2));
    // Two upstreams under one name are refused, as is none at all.
    let twice = Follower::process(Effects::default(), &ledger)
        .follow(&bank)
        .follow_as("Bank", &shop)
        .start();
    assert!(matches!(
        twice,
        Err(Error::InvalidArgument {
            name: "upstreams",
            ..
        })
    ));
    let none = Follower::process(Effects::default(), &ledger).start();
    assert!(matches!(
        none,
        Err(Error::InvalidArgument {
            name: "upstreams",
            ..
        })
    ));
}

fn an_older_worker_is_fenced(backend: &Backend) {
    let (bank, ledger) = apps(backend);
    account(&bank, &[1]);
    let mut first = Follower::process(Effects::default(), &ledger)
        .follow(&bank)
        .start()
        .unwrap();
    first.run_until_caught_up().unwrap();
    let mut second = Follower::process(Effects::default(), &ledger)
        .follow(&bank)
        .start()
        .unwrap();
    account(&bank, &[2, 3]);
    let before = effects(&ledger).len();
    let fenced = first.run_until_caught_up();
    assert!(
        matches!(fenced, Err(Error::TrackingConflict { ref follower, .. }) if follower == "Effects"),
        "{fenced:?}"
    );
    assert_eq!(effects(&ledger).len(), before, "the fenced worker wrote");
    assert_eq!(second.run_until_caught_up().unwrap().events, 2);
    assert_eq!(effects(&ledger).len(), before + 2);
}

fn a_failing_handler_stops_before_its_event(backend: &Backend) {
    let (bank, ledger) = apps(backend);
    let bad = account(&bank, &[1, 2, -3, 4]);
    let policy = Effects::failing();
    let mut follower = Follower::process(policy.clone(), &ledger)
        .follow(&bank)
        .start()
        .unwrap();
    let error = follower.run_until_caught_up().unwrap_err();
    let Error::Handler {
        follower: name,
        upstream,
        notification_id,
        topic,
        originator_id,
        originator_version,
        source,
    } = error
    else {
        panic!("{error:?}")
    };
    assert_eq!((name.as_str(), upstream.as_str()), ("Effects", "Bank"));
    assert_eq!((notification_id, topic.as_str()), (4, "Account.Deposited"));
    assert_eq!((originator_id, originator_version), (bad.id(), 4));
    assert_eq!(source.to_string(), "negative amount -3");
    // What came before it is recorded; nothing of it.
    assert_eq!(effects(&ledger), [("Bank".into(), 2), ("Bank".into(), 3)]);
    assert_eq!(follower.position("Bank"), Some(3));
    // It stops there again, however often it runs.
    assert!(matches!(
        follower.run_until_caught_up(),
        Err(Error::Handler {
            notification_id: 4,
            ..
        })
    ));
    assert_eq!(effects(&ledger).len(), 2);
    // Fixed, it goes on from there.
    policy.fail.store(false, Ordering::SeqCst);
    follower.run_until_caught_up().unwrap();
    assert_eq!(effects(&ledger).len(), 4);
}

fn parked_aggregates_let_the_others_through(backend: &Backend) {
    let (bank, ledger) = apps(backend);
    let mut bad = account(&bank, &[1, -2]);
    let good = account(&bank, &[3]);
    bad.deposit(4, "after".into());
    bank.save(&mut bad).unwrap();
    let policy = Effects::failing();
    let mut follower = Follower::process(policy.clone(), &ledger)
        .follow(&bank)
        .park_failures(true)
        .start()
        .unwrap();
    follower.run_until_caught_up().unwrap();
    let parked = follower.parked().unwrap();
    let summary: Vec<(u64, Uuid, &str)> = parked
        .iter()
        .map(|p| (p.notification_id, p.originator_id, p.reason.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (3, bad.id(), "negative amount -2"),
            (6, bad.id(), "an earlier event of its aggregate is parked"),
        ],
        "{}",
        backend.name()
    );
    assert!(
        parked
            .iter()
            .all(|p| p.follower == "Effects" && p.upstream == "Bank")
    );
    let made: Vec<u64> = effects(&ledger).into_iter().map(|(_, id)| id).collect();
    assert_eq!(made, [2, 5]);
    assert_eq!(follower.position("Bank"), Some(6));
    let _ = good;

    // A new worker knows what is parked: the aggregate's next event waits too.
    drop(follower);
    bad.deposit(7, "later".into());
    bank.save(&mut bad).unwrap();
    let mut follower = Follower::process(policy.clone(), &ledger)
        .follow(&bank)
        .park_failures(true)
        .start()
        .unwrap();
    follower.run_until_caught_up().unwrap();
    assert_eq!(follower.parked().unwrap().len(), 3);
    assert_eq!(effects(&ledger).len(), 2);

    // Retrying while the handler still fails changes nothing.
    let again = follower.retry_parked("Bank", bad.id());
    assert!(
        matches!(
            again,
            Err(Error::Handler {
                notification_id: 3,
                ..
            })
        ),
        "{again:?}"
    );
    assert_eq!(follower.parked().unwrap().len(), 3);
    // Fixed, a retry handles them in order and releases them.
    policy.fail.store(false, Ordering::SeqCst);
    assert_eq!(follower.retry_parked("Bank", bad.id()).unwrap(), 3);
    assert!(follower.parked().unwrap().is_empty());
    let made: Vec<u64> = effects(&ledger).into_iter().map(|(_, id)| id).collect();
    assert_eq!(made, [2, 5, 3, 6, 7]);
    // And the aggregate's new events flow again.
    bad.deposit(8, "flowing".into());
    bank.save(&mut bad).unwrap();
    follower.run_until_caught_up().unwrap();
    assert_eq!(effects(&ledger).len(), 6);
}

fn dropped_parked_events_have_no_effect(backend: &Backend) {
    let (bank, ledger) = apps(backend);
    let bad = account(&bank, &[-1, 2]);
    let mut follower = Follower::process(Effects::failing(), &ledger)
        .follow(&bank)
        .park_failures(true)
        .start()
        .unwrap();
    follower.run_until_caught_up().unwrap();
    let parked: Vec<Parked> = follower.parked().unwrap();
    assert_eq!(parked.len(), 2);
    assert_eq!(follower.drop_parked("Bank", bad.id()).unwrap(), 2);
    assert!(follower.parked().unwrap().is_empty());
    assert!(effects(&ledger).is_empty());
    assert_eq!(follower.drop_parked("Bank", bad.id()).unwrap(), 0);
}

fn a_concurrency_conflict_is_retried_never_skipped(backend: &Backend) {
    let (bank, ledger) = apps(backend);
    let account = account(&bank, &[1, 2, 3]);
    let conflicts = Arc::new(AtomicUsize::new(2));
    let policy = Tallies {
        app: ledger.clone(),
        conflicts: Arc::clone(&conflicts),
    };
    let mut follower = Follower::process(policy, &ledger)
        .follow(&bank)
        .cache_aggregates(100)
        .start()
        .unwrap();
    follower.run_until_caught_up().unwrap();
    assert_eq!(conflicts.load(Ordering::SeqCst), 0);
    // Three deposits counted by the follower, two by the other writer.
    let tally: Tally = ledger.repository().get(tally_id(account.id())).unwrap();
    assert_eq!(tally.count, 5, "{}", backend.name());

    // Bounded: a conflict on every attempt stops it, having written nothing.
    let mut account = account;
    account.deposit(4, "n".into());
    bank.save(&mut account).unwrap();
    conflicts.store(100, Ordering::SeqCst);
    let position = follower.position("Bank");
    let error = follower.run_until_caught_up().unwrap_err();
    assert!(
        matches!(error, Error::Contended { attempts: 5, ref source, .. } if matches!(**source, Error::Concurrency { .. })),
        "{error:?}"
    );
    assert_eq!(follower.position("Bank"), position);
    let tally: Tally = ledger.repository().get(tally_id(account.id())).unwrap();
    assert_eq!(tally.count, 5 + 5, "only the other writer's five saves");
}

fn a_name_held_by_another_kind_is_refused(backend: &Backend) {
    let (bank, ledger) = apps(backend);
    let follower = Follower::process(Effects::default(), &ledger)
        .follow(&bank)
        .start()
        .unwrap();
    drop(follower);
    let taken = Follower::process(Impostor, &ledger).follow(&bank).start();
    match taken {
        Err(Error::NameTaken {
            follower,
            kind,
            held_by,
        }) => {
            assert_eq!(follower, "Effects");
            assert!(kind.ends_with("Impostor"), "{kind}");
            assert!(held_by.ends_with("Effects"), "{held_by}");
        }
        other => panic!("{other:?}"),
    }
    // Under a name of its own it runs; claimed, the name is its.
    Follower::process(Impostor, &ledger)
        .name("Impostor")
        .follow(&bank)
        .start()
        .unwrap();
    Follower::process(Impostor, &ledger)
        .follow(&bank)
        .claim_name()
        .start()
        .unwrap();
    let refused = Follower::process(Effects::default(), &ledger)
        .follow(&bank)
        .start();
    assert!(
        matches!(refused, Err(Error::NameTaken { .. })),
        "{refused:?}"
    );
}

fn in_memory_projection_waits_and_lags(backend: &Backend) {
    let (bank, _) = apps(backend);
    account(&bank, &[1, 2]);
    let follower = Follower::in_memory(Summer, Totals::default())
        .follow(&bank)
        .start()
        .unwrap();
    let state = follower.state();
    let lag = follower.lag().unwrap();
    assert_eq!(lag.len(), 1);
    assert_eq!((lag[0].upstream.as_str(), lag[0].events), ("Bank", 3));
    assert!(lag[0].seconds >= 0.0);
    let running = follower.spawn();
    let mut more = account(&bank, &[3]);
    more.deposit(4, "n".into());
    let ids = bank.save(&mut more).unwrap();
    assert!(
        running
            .wait_for("Bank", ids[0], Duration::from_secs(30))
            .unwrap()
    );
    let watch = running.watch();
    assert!(watch.position("Bank").unwrap() >= ids[0]);
    assert!(matches!(
        watch.wait_for("Elsewhere", 1, Duration::ZERO),
        Err(Error::InvalidArgument { .. })
    ));
    let follower = running.stop().unwrap();
    // Stopped after the batch in progress; whatever was left is read now.
    let mut follower = follower;
    follower.run_until_caught_up().unwrap();
    {
        let totals = state.lock().unwrap();
        assert_eq!((totals.sum, totals.deposits), (10, 4));
    }
    let lag = follower.lag().unwrap();
    assert_eq!((lag[0].events, lag[0].seconds), (0, 0.0));
    // A stopped follower's watch says so.
    let error = watch
        .wait_for("Bank", 1000, Duration::from_secs(5))
        .unwrap_err();
    assert!(matches!(error, Error::Stopped { .. }), "{error:?}");
}

conformance!(
    one_effect_per_event_in_batches,
    several_upstreams_each_with_a_position,
    an_older_worker_is_fenced,
    a_failing_handler_stops_before_its_event,
    parked_aggregates_let_the_others_through,
    dropped_parked_events_have_no_effect,
    a_concurrency_conflict_is_retried_never_skipped,
    a_name_held_by_another_kind_is_refused,
    in_memory_projection_waits_and_lags,
);
