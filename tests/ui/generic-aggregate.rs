use eventsourcing::prelude::*;

#[aggregate]
#[derive(Debug, Default)]
pub struct Account<T> {
    balance: T,
}

fn main() {}
