use eventsourcing::prelude::*;

#[derive(Debug)]
pub struct Overdrawn;

#[aggregate]
#[derive(Debug, Default)]
pub struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    #[created(Opened)]
    fn open(&mut self) {}

    #[event(Withdrawn)]
    pub fn withdraw(&mut self, amount: u64) -> Result<u64, Overdrawn> {
        if amount > self.balance {
            return Err(Overdrawn);
        }
        apply! {
            self.balance -= amount;
        }
    }
}

fn main() {}
