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
    fn deposit(&mut self, amount: u64)
    where
        u64: Copy,
    {
        self.balance += amount;
    }
}

fn main() {
    let mut account = Account::open();
    account.deposit(5);
}
