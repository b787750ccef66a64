use eventsourcing::prelude::*;

#[derive(Event)]
pub enum AccountEvent<T> {
    Deposited { amount: T },
}

fn main() {}
