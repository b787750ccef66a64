use eventsourcing::prelude::*;

#[derive(Event)]
#[es(topic = "Account.Deposited")]
pub enum AccountEvent {
    Deposited { amount: u64 },
}

fn main() {}
