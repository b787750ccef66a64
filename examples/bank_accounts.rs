//! Bank accounts: commands with checks (each one definition: checks, then
//! the event's body), and a transfer that saves two aggregates in one
//! atomic transaction.
//!
//! ```text
//! cargo run --example bank_accounts
//! ```

use std::fmt;

use eventsourcing::Application;
use eventsourcing::prelude::*;

/// Why a command was refused. Nothing is recorded when a command fails.
#[derive(Debug, PartialEq, Eq)]
pub enum AccountError {
    /// The account does not hold enough money.
    InsufficientFunds {
        /// The balance in cents.
        balance: u64,
        /// The amount asked for in cents.
        requested: u64,
    },
    /// Amounts are positive.
    ZeroAmount,
    /// The account is closed.
    Closed,
}

impl fmt::Display for AccountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InsufficientFunds { balance, requested } => write!(
                f,
                "insufficient funds: balance {balance}, requested {requested}"
            ),
            Self::ZeroAmount => f.write_str("amounts must be positive"),
            Self::Closed => f.write_str("the account is closed"),
        }
    }
}

impl std::error::Error for AccountError {}

/// A bank account; amounts are in cents.
#[aggregate]
#[derive(Debug, Default, Clone, PartialEq)]
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

    /// Adds money. A command with checks: the checks run when it is called
    /// and can refuse it (nothing is then recorded); the `apply!` block is
    /// the `Deposited` event's body, and the only part replay runs.
    #[event(Deposited)]
    pub fn deposit(&mut self, amount: u64) -> Result<(), AccountError> {
        self.check_open()?;
        if amount == 0 {
            return Err(AccountError::ZeroAmount);
        }
        apply! {
            self.balance += amount;
        }
    }

    /// Takes money out, if there is enough.
    #[event(Withdrawn)]
    pub fn withdraw(&mut self, amount: u64) -> Result<(), AccountError> {
        self.check_open()?;
        if amount == 0 {
            return Err(AccountError::ZeroAmount);
        }
        if amount > self.balance {
            return Err(AccountError::InsufficientFunds {
                balance: self.balance,
                requested: amount,
            });
        }
        apply! {
            self.balance -= amount;
        }
    }

    /// Closes the account; it takes no more deposits or withdrawals.
    #[event(Closed)]
    pub fn close(&mut self) -> Result<(), AccountError> {
        self.check_open()?;
        apply! {
            self.closed = true;
        }
    }

    /// The balance in cents.
    #[must_use]
    pub fn balance(&self) -> u64 {
        self.balance
    }

    fn check_open(&self) -> Result<(), AccountError> {
        if self.closed {
            Err(AccountError::Closed)
        } else {
            Ok(())
        }
    }
}

/// Moves money between two accounts and saves both in one transaction.
fn transfer(
    app: &Application,
    from: Uuid,
    to: Uuid,
    amount: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let repository = app.repository();
    let mut source: Account = repository.get(from)?;
    let mut target: Account = repository.get(to)?;
    source.withdraw(amount)?;
    target.deposit(amount)?;
    app.save((&mut source, &mut target))?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = Application::from_env()?;

    let mut alice = Account::open("Alice".into());
    alice.deposit(10_000)?;
    let mut bob = Account::open("Bob".into());
    app.save((&mut alice, &mut bob))?;

    // A command that fails records nothing.
    let version = alice.version();
    assert_eq!(
        alice.withdraw(50_000),
        Err(AccountError::InsufficientFunds {
            balance: 10_000,
            requested: 50_000
        })
    );
    assert_eq!(alice.version(), version);
    assert!(alice.pending_events().is_empty());

    // A transfer saves both accounts atomically.
    transfer(&app, alice.id(), bob.id(), 3_000)?;
    let repository = app.repository();
    assert_eq!(repository.get::<Account>(alice.id())?.balance(), 7_000);
    assert_eq!(repository.get::<Account>(bob.id())?.balance(), 3_000);

    // A transfer that cannot be made changes neither account.
    assert!(transfer(&app, bob.id(), alice.id(), 100_000).is_err());
    assert_eq!(repository.get::<Account>(alice.id())?.balance(), 7_000);
    assert_eq!(repository.get::<Account>(bob.id())?.balance(), 3_000);

    // If one side was changed concurrently, neither is written.
    let mut stale_alice: Account = repository.get(alice.id())?;
    transfer(&app, alice.id(), bob.id(), 1_000)?;
    let mut bob_now: Account = repository.get(bob.id())?;
    stale_alice.withdraw(500)?;
    bob_now.deposit(500)?;
    let conflict = app.save((&mut stale_alice, &mut bob_now));
    assert!(matches!(conflict, Err(Error::Concurrency { .. })));
    assert_eq!(repository.get::<Account>(alice.id())?.balance(), 6_000);
    assert_eq!(repository.get::<Account>(bob.id())?.balance(), 4_000);

    // Closed accounts refuse commands.
    let mut bob: Account = repository.get(bob.id())?;
    bob.close()?;
    app.save(&mut bob)?;
    assert_eq!(bob.deposit(1), Err(AccountError::Closed));

    println!(
        "bank_accounts: alice {} cents, bob {} cents, {} notifications",
        repository.get::<Account>(alice.id())?.balance(),
        bob.balance(),
        app.notification_log().max_id()?
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use eventsourcing::schema::Schemas;

    /// The stored schema of `Account` changes only with a version bump;
    /// `UPDATE_SCHEMAS=1 cargo test` updates the file after one.
    #[test]
    fn schemas_match_the_committed_file() {
        Schemas::new()
            .aggregate::<super::Account>()
            .assert_file(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/examples/schemas/bank_accounts.txt"
            ));
    }
}
