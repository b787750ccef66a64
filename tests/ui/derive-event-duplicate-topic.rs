use eventsourcing::prelude::*;

#[derive(Event)]
pub enum AccountEvent {
    Deposited { amount: u64 },
    #[es(topic = "Account.Deposited")]
    Credited { amount: u64 },
}

fn main() {}
