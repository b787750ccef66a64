use eventsourcing::prelude::*;

#[derive(Debug, Default)]
pub struct Ledger;

#[aggregate]
#[derive(Debug, Default)]
pub struct Account {
    balance: u64,
    ledger: Ledger,
}

#[aggregate]
impl Account {
    #[created(Opened)]
    fn open(&mut self) {}
}

fn main() {
    let account = Account::open();
    let _ = account.balance;
}
