use eventsourcing::prelude::*;

#[derive(Event)]
pub enum AccountEvent {
    Opened {},
    Discarded {},
}

fn main() {}
