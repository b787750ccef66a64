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
    pub fn deposit(&mut self, amount: u64) {
        apply! {
            self.balance += amount;
        }
    }
}

fn main() {}
