use eventsourcing::prelude::*;

#[aggregate]
#[derive(Debug, Default)]
pub struct Account {
    balance: u64,
}

#[aggregate]
impl Clone for Account {
    #[event(Cloned)]
    fn clone(&self) -> Self {
        Account::default()
    }
}

fn main() {}
