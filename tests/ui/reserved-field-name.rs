use eventsourcing::prelude::*;

#[aggregate]
#[derive(Debug, Default)]
pub struct Account {
    balance: u64,
    __es_meta: u64,
}

fn main() {
    let account = Account::default();
    let _ = account.version();
}
