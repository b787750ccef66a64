//! The given/when/then harness of `eventsourcing::testing`: what passes,
//! and that every kind of wrong expectation fails with a message that says
//! what was expected and what happened.

use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

use eventsourcing::prelude::*;
use eventsourcing::testing::Scenario;

#[derive(Debug, PartialEq)]
enum BankError {
    EmptyOwner,
    ZeroAmount,
    InsufficientFunds { balance: u64, wanted: u64 },
    Closed,
}

#[aggregate]
#[derive(Debug, Default, PartialEq)]
struct Account {
    owner: String,
    balance: u64,
    closed: bool,
}

#[aggregate]
impl Account {
    #[created(Opened)]
    fn opened(&mut self, owner: String) {
        self.owner = owner;
    }

    #[event(Deposited)]
    fn deposited(&mut self, amount: u64) {
        self.balance = self.balance.saturating_add(amount);
    }

    #[event(Withdrawn)]
    fn withdrawn(&mut self, amount: u64) {
        self.balance -= amount;
    }

    #[event(Closed)]
    fn closed(&mut self) {
        self.closed = true;
    }

    /// Creation command: validates, then records `Opened`.
    fn open(owner: &str) -> Result<Self, BankError> {
        if owner.is_empty() {
            return Err(BankError::EmptyOwner);
        }
        Ok(Self::opened(owner.to_owned()))
    }

    /// Returns the new balance.
    fn deposit(&mut self, amount: u64) -> Result<u64, BankError> {
        if self.closed {
            return Err(BankError::Closed);
        }
        if amount == 0 {
            return Err(BankError::ZeroAmount);
        }
        self.deposited(amount);
        Ok(self.balance)
    }

    fn withdraw(&mut self, amount: u64) -> Result<(), BankError> {
        if self.closed {
            return Err(BankError::Closed);
        }
        if amount > self.balance {
            return Err(BankError::InsufficientFunds {
                balance: self.balance,
                wanted: amount,
            });
        }
        self.withdrawn(amount);
        Ok(())
    }

    /// Infallible command: records nothing when already closed.
    fn close(&mut self) {
        if !self.closed {
            self.closed();
        }
    }
}

fn opened(owner: &str) -> AccountEvent {
    AccountEvent::Opened {
        owner: owner.into(),
    }
}

fn alice_with(balance: u64) -> Scenario<Account> {
    let mut events = vec![opened("alice")];
    if balance > 0 {
        events.push(AccountEvent::Deposited { amount: balance });
    }
    Scenario::given(events)
}

/// Runs `f`, which must panic, and returns its panic message.
fn panic_message(f: impl FnOnce()) -> String {
    let Err(payload) = catch_unwind(AssertUnwindSafe(f)) else {
        panic!("expected a panic, but the closure returned normally");
    };
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else {
        panic!("panic payload is neither String nor &str")
    }
}

thread_local! {
    /// Where the last panic on this thread happened, when this thread asked.
    static PANIC_FILE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f`, which must panic, and returns the file the panic points at.
/// The hook only records panics of threads that asked, and passes every
/// panic on to the previous hook, so other tests are not affected.
fn panic_file(f: impl FnOnce()) -> String {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANIC_FILE.with(|file| {
                let mut file = file.borrow_mut();
                if file.is_some() {
                    *file = Some(
                        info.location()
                            .map_or_else(String::new, |l| l.file().to_owned()),
                    );
                }
            });
            previous(info);
        }));
    });
    PANIC_FILE.with(|file| *file.borrow_mut() = Some(String::new()));
    let _ = panic_message(f);
    PANIC_FILE
        .with(|file| file.borrow_mut().take())
        .expect("the hook keeps the slot")
}

fn assert_contains(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(
            message.contains(part),
            "panic message lacks {part:?}; the message was:\n{message}"
        );
    }
}

// ---- passing scenarios ----------------------------------------------------

#[test]
fn a_successful_command_records_its_events_and_returns_its_value() {
    let account = alice_with(100)
        .when(|account| account.deposit(20))
        .then_ok(|balance| assert_eq!(*balance, 120))
        .then_events(vec![AccountEvent::Deposited { amount: 20 }])
        .then_state(|account| {
            assert_eq!(account.balance, 120);
            assert_eq!(account.version(), 3);
        })
        .then_chain_intact()
        .then_replay_matches()
        .into_aggregate();
    assert_eq!(account.owner, "alice");
}

#[test]
fn a_command_returning_unit_is_accepted() {
    alice_with(0)
        .when(Account::close)
        .then_events([AccountEvent::Closed {}])
        .then_state(|account| assert!(account.closed))
        .then_replay_matches();
}

#[test]
fn an_idempotent_command_records_nothing_the_second_time() {
    alice_with(0)
        .when(Account::close)
        .into_given()
        .when(Account::close)
        .then_no_events()
        .then_events([])
        .then_replay_matches();
}

#[test]
fn a_refused_command_returns_its_error_and_records_nothing() {
    alice_with(10)
        .when(|account| account.withdraw(11))
        .then_error_is(BankError::InsufficientFunds {
            balance: 10,
            wanted: 11,
        })
        .then_error_matches(|e| matches!(e, BankError::InsufficientFunds { wanted: 11, .. }))
        .then_error(|e| assert_ne!(*e, BankError::ZeroAmount))
        .then_no_events()
        .then_state(|account| assert_eq!(account.balance, 10))
        .then_replay_matches();
}

#[test]
fn outcome_and_recorded_expose_what_happened() {
    let then = alice_with(5).when(|account| account.withdraw(5));
    assert_eq!(then.outcome(), Ok(&()));
    assert_eq!(then.recorded().len(), 1);
    let event = &then.recorded()[0];
    assert_eq!(event.topic, "Account.Withdrawn");
    assert_eq!(event.originator_version, 3);
    assert_eq!(event.data, br#"{"amount":5}"#);
    assert_eq!(event.event_hash, then.aggregate().head());
}

#[test]
fn given_events_count_as_saved_history() {
    let given = alice_with(7);
    assert_eq!(given.history().len(), 2);
    assert_eq!(given.aggregate().balance, 7);
    assert!(given.aggregate().pending_events().is_empty());
    // Only the command's own events are compared.
    given
        .when(|account| account.deposit(1))
        .then_events([AccountEvent::Deposited { amount: 1 }]);
}

#[test]
fn given_with_id_uses_the_id() {
    let id = Uuid::from_u128(0x1234);
    Scenario::<Account>::given_with_id(id, [opened("bob")])
        .when(|account| account.deposit(3))
        .then_state(|account| assert_eq!(account.id(), id))
        .then_chain_intact();
}

#[test]
fn given_aggregate_takes_an_aggregate_built_by_its_commands() {
    let mut account = Account::open("carol").expect("valid owner");
    account.deposit(40).expect("positive amount");
    let given = Scenario::given_aggregate(account);
    assert_eq!(given.history().len(), 2);
    given
        .when(|account| account.withdraw(15))
        .then_events([AccountEvent::Withdrawn { amount: 15 }])
        .then_replay_matches();
}

#[test]
fn a_creation_command_starts_from_nothing() {
    Scenario::<Account>::given_nothing()
        .when_created(|| Account::open("dave"))
        .then_events([opened("dave")])
        .then_state(|account| {
            assert_eq!(account.version(), 1);
            assert_ne!(account.id(), Uuid::nil());
        })
        .then_replay_matches();
}

#[test]
fn a_creation_command_may_return_the_aggregate_itself() {
    Scenario::<Account>::given_nothing()
        .when_created(|| Account::opened("erin".into()))
        .then_events([opened("erin")]);
}

#[test]
fn a_refused_creation_command_leaves_nothing() {
    Scenario::<Account>::given_nothing()
        .when_created(|| Account::open(""))
        .then_error_is(BankError::EmptyOwner)
        .then_no_events()
        .then_state(|account| assert_eq!(account.version(), 0))
        .then_replay_matches();
}

#[test]
fn scenarios_continue_with_into_given() {
    Scenario::<Account>::given_nothing()
        .when_created(|| Account::open("frank"))
        .into_given()
        .when(|account| account.deposit(9))
        .into_given()
        .when(|account| account.withdraw(4))
        .then_events([AccountEvent::Withdrawn { amount: 4 }])
        .then_state(|account| {
            assert_eq!(account.balance, 5);
            assert_eq!(account.version(), 3);
        })
        .then_replay_matches();
}

#[test]
fn commands_on_a_discarded_aggregate_are_refused() {
    alice_with(10)
        .and_discarded()
        .when(|account| account.withdraw(5))
        .then_ok(|()| {})
        .then_refused()
        .then_fault(|e| {
            assert!(matches!(
                e,
                Error::Refused {
                    state: "discarded",
                    topic: "Account.Withdrawn",
                    ..
                }
            ));
        })
        .then_state(|account| {
            assert_eq!(account.balance, 10, "a refused event is not applied");
            assert_eq!(account.version(), 3);
        })
        .then_replay_matches();
}

#[test]
fn commands_on_a_never_created_aggregate_are_refused() {
    Scenario::<Account>::given_nothing()
        .when(|account| account.deposit(1))
        .then_refused()
        .then_fault(|e| {
            assert!(matches!(
                e,
                Error::Refused {
                    state: "not created",
                    ..
                }
            ));
        })
        .then_state(|account| {
            assert_eq!(account.balance, 0);
            assert_eq!(account.version(), 0);
        });
}

#[test]
fn discarding_is_visible_through_topics() {
    alice_with(1)
        .when(|account| {
            account.close();
            account.discard();
        })
        .then_topics(&["Account.Closed", "Account.Discarded"])
        .then_discarded()
        .then_chain_intact()
        .then_replay_matches();
}

// ---- wrong expectations panic with clear messages ------------------------

#[test]
fn wrong_events_show_expected_and_recorded_side_by_side() {
    let message = panic_message(|| {
        alice_with(0)
            .when(|account| account.deposit(2).map(drop))
            .then_events([
                AccountEvent::Deposited { amount: 3 },
                AccountEvent::Closed {},
            ]);
    });
    assert_contains(
        &message,
        &[
            "Account: the command recorded other events than expected (first difference at index 0)",
            "expected (2):",
            ">  0: Deposited { amount: 3 }",
            "    1: Closed",
            "recorded (1):",
            ">  0: Deposited { amount: 2 }",
        ],
    );
}

#[test]
fn missing_events_are_reported_at_their_index() {
    let message = panic_message(|| {
        alice_with(0)
            .when(|account| account.deposit(2))
            .then_events([
                AccountEvent::Deposited { amount: 2 },
                AccountEvent::Deposited { amount: 2 },
            ]);
    });
    assert_contains(&message, &["first difference at index 1", "recorded (1):"]);
}

#[test]
#[should_panic(expected = "expected the command to record 1 event, but it failed with ZeroAmount")]
fn expecting_events_from_a_failed_command_panics() {
    alice_with(0)
        .when(|account| account.deposit(0))
        .then_events([AccountEvent::Deposited { amount: 0 }]);
}

#[test]
#[should_panic(expected = "expected the command to record no events, but it recorded 1 event")]
fn unexpected_events_panic() {
    alice_with(0).when(Account::close).then_no_events();
}

#[test]
fn expecting_an_error_from_a_successful_command_panics() {
    let message = panic_message(|| {
        alice_with(3)
            .when(|account| account.withdraw(1))
            .then_error(|_| {});
    });
    assert_contains(
        &message,
        &[
            "expected the command to fail, but it succeeded with ()",
            "recorded 1 event (Account.Withdrawn)",
        ],
    );
}

#[test]
fn the_wrong_error_shows_both_errors() {
    let message = panic_message(|| {
        alice_with(3)
            .when(|account| account.withdraw(5))
            .then_error_is(BankError::Closed);
    });
    assert_contains(
        &message,
        &[
            "failed with another error than expected",
            "expected: Closed",
            "actual: InsufficientFunds { balance: 3, wanted: 5 }",
        ],
    );
}

#[test]
#[should_panic(expected = "not with the expected kind of error: ZeroAmount")]
fn an_error_that_does_not_match_panics() {
    alice_with(0)
        .when(|account| account.deposit(0))
        .then_error_matches(|e| matches!(e, BankError::Closed));
}

#[test]
#[should_panic(expected = "expected the command to succeed, but it failed with Closed")]
fn expecting_success_from_a_failed_command_panics() {
    alice_with(0)
        .when(|account| {
            account.close();
            account.deposit(1)
        })
        .then_ok(|_| {});
}

#[test]
#[should_panic(expected = "expected an event to be refused, but none was")]
fn expecting_a_refusal_that_did_not_happen_panics() {
    alice_with(0).when(Account::close).then_refused();
}

#[test]
#[should_panic(expected = "expected an event of the command to be dropped, but none was")]
fn expecting_a_fault_that_did_not_happen_panics() {
    alice_with(0).when(Account::close).then_fault(|_| {});
}

#[test]
#[should_panic(
    expected = "an event the command triggered was dropped: event `Account.Deposited` was refused"
)]
fn a_refused_event_fails_then_no_events() {
    alice_with(0)
        .and_discarded()
        .when(|account| account.deposit(1).map(drop))
        .then_no_events();
}

#[test]
#[should_panic(expected = "expected the command to discard the aggregate, but it is not discarded")]
fn expecting_a_discard_that_did_not_happen_panics() {
    alice_with(0).when(Account::close).then_discarded();
}

#[test]
fn wrong_topics_show_both_lists() {
    let message = panic_message(|| {
        alice_with(0)
            .when(Account::close)
            .then_topics(&["Account.Discarded"]);
    });
    assert_contains(
        &message,
        &[
            r#"expected: ["Account.Discarded"]"#,
            r#"recorded: ["Account.Closed"]"#,
        ],
    );
}

#[test]
#[should_panic(expected = "`given` needs at least the creation event")]
fn given_nothing_as_an_empty_list_panics() {
    let _ = Scenario::<Account>::given([]);
}

#[test]
#[should_panic(
    expected = "`when_created` makes a new aggregate, but this scenario already has 1 given events"
)]
fn a_creation_command_after_given_events_panics() {
    let _ = alice_with(0).when_created(|| Account::open("again"));
}

#[test]
#[should_panic(expected = "a scenario needs every event from version 1 on")]
fn an_aggregate_with_partial_history_is_not_a_valid_given() {
    let mut account = Account::opened("gina".into());
    account.take_pending_events().expect("no fault");
    account.close();
    let _ = Scenario::given_aggregate(account);
}

#[test]
#[should_panic(expected = "the given aggregate cannot be discarded")]
fn discarding_twice_in_the_given_panics() {
    let _ = alice_with(0).and_discarded().and_discarded();
}

#[test]
#[should_panic(expected = "cannot be discarded: event `Account.Discarded` was refused")]
fn discarding_nothing_panics() {
    let _ = Scenario::<Account>::given_nothing().and_discarded();
}

#[test]
fn failures_point_at_the_test_not_at_the_harness() {
    let checks: [(&str, fn()); 4] = [
        ("then_events", || {
            alice_with(0)
                .when(Account::close)
                .then_events([AccountEvent::Deposited { amount: 1 }]);
        }),
        ("then_no_events", || {
            alice_with(0).when(Account::close).then_no_events();
        }),
        ("then_error_is", || {
            alice_with(0)
                .when(|account| account.deposit(0))
                .then_error_is(BankError::Closed);
        }),
        ("given", || {
            let _ = Scenario::<Account>::given([]);
        }),
    ];
    for (name, check) in checks {
        let file = panic_file(check);
        assert!(
            file.ends_with("test_testing.rs"),
            "a failed `{name}` points at {file:?}, not at the test"
        );
    }
}

// ---- replay consistency -----------------------------------------------------

static TICKS: AtomicU64 = AtomicU64::new(1);

/// An aggregate whose event body reads a global counter: replaying it does
/// not reproduce the live state, which `then_replay_matches` must catch.
#[aggregate]
#[derive(Debug, Default, PartialEq)]
struct Flaky {
    tick: u64,
}

#[aggregate]
impl Flaky {
    #[created(Started)]
    fn start(&mut self) {}

    #[event(Ticked)]
    fn tick(&mut self) {
        self.tick = TICKS.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_replay_that_differs_from_the_live_aggregate_panics() {
    let message = panic_message(|| {
        Scenario::<Flaky>::given([FlakyEvent::Started {}])
            .when(Flaky::tick)
            .then_events([FlakyEvent::Ticked {}])
            .then_chain_intact()
            .then_replay_matches();
    });
    assert_contains(
        &message,
        &[
            "Flaky: the aggregate rebuilt from its events differs from the live one",
            "live:",
            "replayed:",
            "tick:",
        ],
    );
}

// ---- events that cannot be encoded ---------------------------------------

/// A map key that serde writes as a list: a map of them has no JSON form,
/// which the macros cannot see from the type's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
struct Cell(u8, u8);

/// An event field that JSON cannot hold: a map with non-string keys.
#[aggregate]
#[derive(Debug, Default, PartialEq)]
struct Grid {
    cells: usize,
}

#[aggregate]
impl Grid {
    #[created(Made)]
    fn make(&mut self) {}

    #[event(Painted)]
    fn paint(&mut self, cells: HashMap<Cell, u8>) {
        self.cells += cells.len();
    }
}

#[test]
fn an_event_that_cannot_be_encoded_is_a_fault() {
    let cells = HashMap::from([(Cell(1, 2), 3)]);
    Scenario::<Grid>::given([GridEvent::Made {}])
        .when(|grid| grid.paint(cells))
        .then_fault(|e| {
            assert!(matches!(
                e,
                Error::Encode {
                    topic: "Grid.Painted",
                    ..
                }
            ));
        })
        .then_state(|grid| assert_eq!(grid.cells, 0, "an unencodable event is not applied"));
}

#[test]
#[should_panic(
    expected = "then_events: an event the command triggered was dropped: cannot encode event `Grid.Painted`"
)]
fn an_unencodable_event_fails_then_events() {
    let cells = HashMap::from([(Cell(1, 2), 3)]);
    Scenario::<Grid>::given([GridEvent::Made {}])
        .when(|grid| grid.paint(cells.clone()))
        .then_events([GridEvent::Painted { cells }]);
}

#[test]
#[should_panic(expected = "into_given: an event the command triggered was dropped")]
fn a_dropped_event_cannot_be_continued_from() {
    let _ = Scenario::<Grid>::given([GridEvent::Made {}])
        .when(|grid| grid.paint(HashMap::from([(Cell(0, 0), 0)])))
        .into_given();
}
