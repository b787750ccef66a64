use eventsourcing::prelude::*;

#[aggregate]
#[derive(Debug, Default)]
pub struct Account;

fn main() {}
