use eventsourcing::prelude::*;

#[derive(Debug, Default)]
#[aggregate]
pub struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    #[created(Opened)]
    fn open(&mut self) {}
}

fn main() {}
