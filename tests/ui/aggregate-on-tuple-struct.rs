use eventsourcing::prelude::*;

#[aggregate]
#[derive(Debug, Default)]
pub struct Account(u64);

fn main() {}
