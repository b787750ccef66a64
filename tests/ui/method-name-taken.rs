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

    pub fn version(&self) -> u64 {
        self.balance
    }
}

fn main() {
    let account = Account::open();
    assert_eq!(account.version(), 1);
}
