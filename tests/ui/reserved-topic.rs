use eventsourcing::prelude::*;

#[aggregate]
#[derive(Debug, Default)]
pub struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    #[created(Opened)]
    fn open(&mut self) {}

    #[event(Closed, topic = "Account.Discarded")]
    fn close(&mut self) {}
}

fn main() {
    let mut account = Account::open();
    account.close();
}
