use eventsourcing::prelude::*;

#[derive(Event)]
pub struct Deposited {
    amount: u64,
}

fn main() {}
