use eventsourcing::prelude::*;

#[aggregate]
#[derive(Debug, Default)]
pub struct Account<T> {
    balance: T,
}

#[aggregate]
impl<T> Account<T> {
    #[created(Opened)]
    fn open(&mut self) {}
}

fn main() {}
