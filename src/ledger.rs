//! The remote follower's scenario: a process application, `Ledger`, that
//! follows an application of [`Account`]s and keeps one [`Tally`] per
//! account, listing every upstream notification it handled. The tallies
//! are the oracle: each upstream event handled once, none skipped, shows
//! as the account's notification ids, each once, in order.

use std::collections::BTreeMap;

use eventsourcing::follower::{Envelope, Processing};
use eventsourcing::prelude::*;

use crate::account::{Account, AccountEvent};

/// The tally of one account, kept by the process application.
#[aggregate]
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// The account.
    pub account: Uuid,
    /// The sum of its deposits.
    pub total: i64,
    /// The upstream notifications handled for it, in the order handled.
    pub seen: Vec<u64>,
}

/// The tally id of an account.
#[must_use]
pub fn tally_id(account: Uuid) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_OID, account.as_bytes())
}

#[aggregate]
impl Tally {
    /// Starts the tally of an account that was opened.
    #[created(Started, id = tally_id(account))]
    pub fn start(&mut self, account: Uuid, notification: u64) {
        self.account = account;
        self.seen.push(notification);
    }

    /// Counts a deposit.
    #[event(Counted)]
    pub fn count(&mut self, amount: i64, notification: u64) {
        self.total += amount;
        self.seen.push(notification);
    }
}

/// The process application's policy.
#[derive(Debug, Default)]
pub struct Ledger;

#[policy]
impl Ledger {
    #[on(AccountEvent::Opened)]
    fn opened(&self, cx: &mut Processing, envelope: &Envelope) -> Result<()> {
        cx.collect(Tally::start(
            envelope.originator_id(),
            envelope.notification_id(),
        ))?;
        Ok(())
    }

    #[on(AccountEvent::Deposited)]
    fn deposited(&self, cx: &mut Processing, envelope: &Envelope, amount: i64) -> Result<()> {
        let tally = cx.get::<Tally>(tally_id(envelope.originator_id()))?;
        tally.count(amount, envelope.notification_id());
        Ok(())
    }
}

/// Opens `accounts` accounts in `app` and makes `deposits` deposits into
/// each, one save per event (so that notifications of different accounts
/// interleave); returns each account's notification ids, in order.
///
/// # Panics
///
/// When a save fails.
#[must_use]
pub fn fill(app: &Application, accounts: usize, deposits: usize) -> BTreeMap<Uuid, Vec<u64>> {
    let mut opened: Vec<Account> = (0..accounts)
        .map(|i| Account::open(format!("owner {i}")))
        .collect();
    let mut ids: BTreeMap<Uuid, Vec<u64>> = BTreeMap::new();
    for account in &mut opened {
        let saved = app.save(&mut *account).expect("open");
        ids.entry(account.id()).or_default().extend(saved);
    }
    for round in 0..deposits {
        for account in &mut opened {
            let amount = i64::try_from(round).expect("small") + 1;
            account.deposit(amount, format!("secret note {round}"));
            let saved = app.save(&mut *account).expect("deposit");
            ids.entry(account.id()).or_default().extend(saved);
        }
    }
    ids
}

/// The tallies of the `accounts` in `app`, by account.
///
/// # Panics
///
/// When a tally cannot be loaded.
#[must_use]
pub fn tallies<'a>(
    app: &Application,
    accounts: impl IntoIterator<Item = &'a Uuid>,
) -> BTreeMap<Uuid, Tally> {
    accounts
        .into_iter()
        .map(|&account| {
            let tally: Tally = app
                .repository()
                .get(tally_id(account))
                .unwrap_or_else(|e| panic!("tally of {account}: {e}"));
            (account, tally)
        })
        .collect()
}
