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
    fn deposit(&mut self, (amount, fee): (u64, u64)) {
        self.balance += amount - fee;
    }
}

fn main() {
    let mut account = Account::open();
    account.deposit((5, 1));
}
