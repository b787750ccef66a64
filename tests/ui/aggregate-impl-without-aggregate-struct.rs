use eventsourcing::prelude::*;

#[derive(Debug, Default)]
pub struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    #[created(Opened)]
    fn open(&mut self) {}

    #[event(Deposited)]
    fn deposit(&mut self, amount: u64) {
        self.balance += amount;
    }
}

fn main() {}
