use eventsourcing::prelude::*;

pub trait Ledger {}

#[aggregate]
impl dyn Ledger {
    #[created(Opened)]
    fn open(&mut self) {}
}

fn main() {}
