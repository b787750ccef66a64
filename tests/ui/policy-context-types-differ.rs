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
    #[on(AccountEvent::Opened)]
    fn opened(&self, totals: &mut Totals) {
        let _ = totals;
    }

    #[on(AccountEvent::Credited)]
    fn credited(&self, totals: &mut Vec<u64>, amount: u64) {
        totals.push(amount);
    }
}
fn main() {
    // The policy is still usable: the mistake is reported once, above.
    let _ = <Statistics as eventsourcing::follower::Policy<Totals>>::NAME;
}
