use eventsourcing::prelude::*;

#[aggregate]
fn open_account() {}

fn main() {}
