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
    fn deposit(&mut self, amount: impl Into<u64>) {
        self.balance += amount.into();
    }
}

fn main() {
    let mut account = Account::open();
    account.deposit(5_u32);
}
