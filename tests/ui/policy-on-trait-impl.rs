use eventsourcing::prelude::*;

#[aggregate]
#[derive(Debug, Default)]
pub struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    #[created(Opened)]
    fn open(&mut self, owner: String) {
        let _ = owner;
    }

    #[event(Credited)]
    fn credit(&mut self, amount: u64) {
        self.balance += amount;
    }
}

#[derive(Default)]
struct Totals {
    credited: u64,
}

struct Statistics;

trait Named {
    fn name(&self) -> &str;
}

#[policy]
impl Named for Statistics {
    fn name(&self) -> &str {
        "statistics"
    }
}
fn main() {}
