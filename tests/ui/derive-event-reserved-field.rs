use eventsourcing::prelude::*;

#[derive(Event)]
pub enum AccountEvent {
    Deposited { __es_amount: u64 },
}

fn main() {}
