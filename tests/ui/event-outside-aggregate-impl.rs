use eventsourcing::prelude::*;

#[aggregate]
#[derive(Debug, Default)]
pub struct Account {
    balance: u64,
}

impl Account {
    #[event(Deposited)]
    fn deposit(&mut self, amount: u64) {
        self.balance += amount;
    }
}

fn main() {}
