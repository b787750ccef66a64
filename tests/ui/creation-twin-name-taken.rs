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

    pub fn open_with_id(balance: u64) -> Self {
        let mut account = Self::open();
        account.balance = balance;
        account
    }
}

fn main() {
    let account = Account::open_with_id(5);
    assert_eq!(account.version(), 1);
}
