use eventsourcing::prelude::*;

#[aggregate(version = 2)]
#[derive(Debug, Default)]
pub struct Account {
    cents: u64,
}

#[aggregate]
impl Account {
    #[created(Opened)]
    fn open(&mut self) {}
}

fn main() {
    let account = Account::open();
    let _ = account.cents;
}
