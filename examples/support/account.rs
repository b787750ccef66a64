//! The account aggregate of the benchmark examples (`bench`,
//! `snapshot_bench`): its events carry a number and a short string, a
//! typical shape for business events, and its state does not grow with its
//! events, as is typical of aggregates that live long enough to need
//! snapshots.

use eventsourcing::prelude::*;

/// A small bank account.
#[aggregate]
#[derive(Debug, Default)]
pub(crate) struct Account {
    pub(crate) owner: String,
    pub(crate) balance: i64,
    pub(crate) deposits: u64,
    pub(crate) last_note: String,
}

#[aggregate]
impl Account {
    /// Opens the account.
    #[created(Opened)]
    pub(crate) fn open(&mut self, owner: String) {
        self.owner = owner;
    }

    /// Records a deposit.
    #[event(Deposited)]
    pub(crate) fn deposit(&mut self, amount: i64, note: String) {
        self.balance += amount;
        self.deposits += 1;
        self.last_note = note;
    }
}
