use eventsourcing::prelude::*;

#[aggregate]
#[derive(Debug, Default)]
pub struct Account {
    balance: u64,
}

impl Account {
    #[created(Opened)]
    fn open(&mut self) {}
}

fn main() {}
