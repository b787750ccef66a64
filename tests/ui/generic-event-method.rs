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

    #[event(Deposited)]
    fn deposit<T: Into<u64>>(&mut self, amount: T) {
        self.balance += amount.into();
    }
}

fn main() {
    let mut account = Account::open();
    account.deposit(5_u32);
}
