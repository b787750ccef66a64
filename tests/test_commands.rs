//! Commands with checks: an `#[event]` method that returns `Result<(), E>`
//! and ends with `apply! { ... }`. The checks run when it is called and
//! never on replay; a failed check (or an early `Ok`) records nothing and
//! changes nothing; otherwise exactly its event is recorded.

use std::cell::Cell;

use eventsourcing::prelude::*;
use proptest::prelude::*;

thread_local! {
    /// How often the checks of `withdraw` ran on this thread.
    static CHECKS_RUN: Cell<usize> = const { Cell::new(0) };
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum BankError {
    Zero,
    Insufficient { balance: u64, wanted: u64 },
    Frozen,
}

#[aggregate]
#[derive(Debug, Default, Clone, PartialEq)]
struct Account {
    owner: String,
    balance: u64,
    frozen: bool,
}

#[aggregate]
impl Account {
    #[created(Opened)]
    fn open(&mut self, owner: String) {
        self.owner = owner;
    }

    #[event(Deposited)]
    fn deposit(&mut self, amount: u64) -> Result<(), BankError> {
        if amount == 0 {
            return Err(BankError::Zero);
        }
        if self.frozen {
            return Err(BankError::Frozen);
        }
        apply! {
            self.balance += amount;
        }
    }

    #[event(Withdrawn)]
    fn withdraw(&mut self, amount: u64) -> Result<(), BankError> {
        CHECKS_RUN.set(CHECKS_RUN.get() + 1);
        if amount == 0 {
            return Err(BankError::Zero);
        }
        if amount > self.balance {
            return Err(BankError::Insufficient {
                balance: self.balance,
                wanted: amount,
            });
        }
        apply! {
            self.balance -= amount;
        }
    }

    /// Freezing a frozen account is done already: `Ok`, and no event.
    #[event(Frozen)]
    fn freeze(&mut self) -> Result<(), BankError> {
        if self.frozen {
            return Ok(());
        }
        apply! {
            self.frozen = true;
        }
    }

    /// The checks may normalise a parameter: the event records the value
    /// the checks leave.
    #[event(Renamed)]
    fn rename(&mut self, owner: String) -> Result<(), BankError> {
        let owner = owner.trim().to_owned();
        if owner.is_empty() {
            return Err(BankError::Zero);
        }
        apply! {
            self.owner = owner;
        }
    }
}

/// What the aggregate is, byte for byte: its state as snapshots store it,
/// its version and head, and how many events wait to be saved.
fn fingerprint(account: &Account) -> (Vec<u8>, u64, Hash, usize) {
    (
        account.to_snapshot().unwrap().data,
        account.version(),
        account.head(),
        account.pending_events().len(),
    )
}

#[test]
fn a_failed_check_records_and_changes_nothing() {
    let mut account = Account::open("ann".into());
    account.deposit(10).unwrap();
    let before = fingerprint(&account);
    assert_eq!(
        account.withdraw(11),
        Err(BankError::Insufficient {
            balance: 10,
            wanted: 11
        })
    );
    assert_eq!(account.deposit(0), Err(BankError::Zero));
    assert_eq!(fingerprint(&account), before);
}

#[test]
fn a_passed_check_records_exactly_its_event() {
    let mut account = Account::open("ann".into());
    account.deposit(10).unwrap();
    account.withdraw(4).unwrap();
    let events: Vec<AccountEvent> = account
        .decode_pending()
        .unwrap()
        .into_iter()
        .map(|r| r.event)
        .collect();
    assert_eq!(
        events,
        [
            AccountEvent::Opened {
                owner: "ann".into()
            },
            AccountEvent::Deposited { amount: 10 },
            AccountEvent::Withdrawn { amount: 4 },
        ]
    );
    assert_eq!(account.balance, 6);
}

#[test]
fn an_early_ok_records_nothing() {
    let mut account = Account::open("ann".into());
    account.freeze().unwrap();
    let before = fingerprint(&account);
    account.freeze().unwrap();
    assert_eq!(fingerprint(&account), before);
    assert_eq!(account.deposit(1), Err(BankError::Frozen));
}

#[test]
fn the_event_records_the_parameters_as_the_checks_leave_them() {
    let mut account = Account::open("ann".into());
    account.rename("  bob  ".into()).unwrap();
    assert_eq!(account.owner, "bob");
    let last = account.decode_pending().unwrap().pop().unwrap();
    assert_eq!(
        last.event,
        AccountEvent::Renamed {
            owner: "bob".into()
        }
    );
    assert_eq!(account.rename("   ".into()), Err(BankError::Zero));
}

#[test]
fn replay_runs_the_body_and_never_the_checks() {
    let app = Application::builder().build().unwrap();
    let mut account = Account::open("ann".into());
    account.deposit(100).unwrap();
    for _ in 0..5 {
        account.withdraw(10).unwrap();
    }
    app.save(&mut account).unwrap();
    assert_eq!(CHECKS_RUN.get(), 5);
    let loaded: Account = app.repository().get(account.id()).unwrap();
    assert_eq!(loaded, account);
    assert_eq!(loaded.balance, 50);
    // Replaying the five withdrawals ran their bodies, not their checks.
    assert_eq!(CHECKS_RUN.get(), 5);
}

#[derive(Debug, Clone)]
enum Command {
    Deposit(u64),
    Withdraw(u64),
    Freeze,
    Rename(String),
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (0u64..50).prop_map(Command::Deposit),
        (0u64..80).prop_map(Command::Withdraw),
        Just(Command::Freeze),
        "[ a-c]{0,4}".prop_map(Command::Rename),
    ]
}

proptest! {
    /// Whatever the commands, each one either records exactly its event
    /// (one more version, one more pending event) or leaves the aggregate
    /// byte for byte as it was; and the history replays to the live one.
    #[test]
    fn each_command_records_its_event_or_changes_nothing(
        commands in prop::collection::vec(command(), 0..40)
    ) {
        let mut account = Account::open("ann".into());
        for command in commands {
            let before = fingerprint(&account);
            let result = match command {
                Command::Deposit(amount) => account.deposit(amount),
                Command::Withdraw(amount) => account.withdraw(amount),
                Command::Freeze => account.freeze(),
                Command::Rename(owner) => account.rename(owner),
            };
            let after = fingerprint(&account);
            if result.is_err() || after.1 == before.1 {
                prop_assert_eq!(after, before);
            } else {
                prop_assert_eq!(after.1, before.1 + 1);
                prop_assert_eq!(after.3, before.3 + 1);
            }
        }
        let events = account.pending_events().to_vec();
        let replayed = Account::replay(account.id(), events.into_iter().map(Ok))
            .unwrap()
            .unwrap();
        prop_assert_eq!(replayed, account);
    }
}
