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

#[policy]
impl Statistics {
    #[on(AccountEvent::Credited)]
    fn credited(self, totals: &mut Totals, amount: u64) {
        totals.credited += amount;
    }
}
fn main() {
    // The policy is still usable: the mistake is reported once, above.
    let _ = <Statistics as eventsourcing::follower::Policy<Totals>>::NAME;
}
