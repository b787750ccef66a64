use eventsourcing::prelude::*;

#[derive(Event)]
pub enum AccountEvent {
    #[es(prefix = "Bank")]
    Deposited { amount: u64 },
}

fn main() {}
