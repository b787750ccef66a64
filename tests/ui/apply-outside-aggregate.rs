use eventsourcing::prelude::*;

pub fn transfer(balance: &mut u64, amount: u64) {
    apply! {
        *balance -= amount;
    }
}

fn main() {}
