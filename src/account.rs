//! The account aggregate of the benchmark programs (`bench`,
//! `snapshot_bench`): its events carry a number and a short string, a
//! typical shape for business events, and its state does not grow with its
//! events, as is typical of aggregates that live long enough to need
//! snapshots.

use eventsourcing::prelude::*;

/// A small bank account.
#[aggregate]
#[derive(Debug, Default)]
pub struct Account {
    /// Whose account it is.
    pub owner: String,
    /// The sum of the deposits.
    pub balance: i64,
    /// How many deposits were made.
    pub deposits: u64,
    /// The note of the last deposit.
    pub last_note: String,
}

#[aggregate]
impl Account {
    /// Opens the account.
    #[created(Opened)]
    pub fn open(&mut self, owner: String) {
        self.owner = owner;
    }

    /// Records a deposit.
    #[event(Deposited)]
    pub fn deposit(&mut self, amount: i64, note: String) {
        self.balance += amount;
        self.deposits += 1;
        self.last_note = note;
    }
}

/// [`Account`] with a data key of its own (`#[aggregate(key =
/// per_aggregate)]`): the same events and state, for measuring what
/// per-aggregate keys cost against the application key.
#[aggregate(key = per_aggregate)]
#[derive(Debug, Default)]
pub struct SecretAccount {
    /// Whose account it is.
    pub owner: String,
    /// The sum of the deposits.
    pub balance: i64,
    /// How many deposits were made.
    pub deposits: u64,
    /// The note of the last deposit.
    pub last_note: String,
}

#[aggregate]
impl SecretAccount {
    /// Opens the account.
    #[created(Opened)]
    pub fn open(&mut self, owner: String) {
        self.owner = owner;
    }

    /// Records a deposit.
    #[event(Deposited)]
    pub fn deposit(&mut self, amount: i64, note: String) {
        self.balance += amount;
        self.deposits += 1;
        self.last_note = note;
    }
}
