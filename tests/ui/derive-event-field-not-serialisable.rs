use eventsourcing::prelude::*;

pub struct Money(u64);

#[derive(Event)]
pub enum AccountEvent {
    Deposited { amount: Money },
}

fn main() {}
