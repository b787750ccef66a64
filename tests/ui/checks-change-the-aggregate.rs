use eventsourcing::prelude::*;

#[derive(Debug)]
pub struct Overdrawn;

#[aggregate]
#[derive(Debug, Default)]
pub struct Account {
    balance: u64,
    attempts: u32,
}

#[aggregate]
impl Account {
    #[created(Opened)]
    fn open(&mut self) {}

    #[event(Withdrawn)]
    pub fn withdraw(&mut self, amount: u64) -> Result<(), Overdrawn> {
        // The checks see the aggregate read-only: a failed check must leave
        // it as it was.
        self.attempts += 1;
        if amount > self.balance {
            return Err(Overdrawn);
        }
        apply! {
            self.balance -= amount;
        }
    }
}

fn main() {}
