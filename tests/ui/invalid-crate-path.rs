use eventsourcing::prelude::*;

#[aggregate(crate = "not a path")]
#[derive(Debug, Default)]
pub struct Account {
    balance: u64,
}

fn main() {}
