use eventsourcing::prelude::*;

#[derive(Event)]
pub enum AccountEvent {
    Opened,
    Deposited(u64),
}

#[aggregate]
#[derive(Debug, Default)]
pub struct Account {
    balance: u64,
}

impl Aggregate for Account {
    type Event = AccountEvent;

    fn apply(&mut self, event: AccountEvent) {
        match event {
            AccountEvent::Opened => {}
            AccountEvent::Deposited(amount) => self.balance += amount,
        }
    }
}

fn main() {
    let mut account = Account::start(AccountEvent::Opened);
    account.trigger(AccountEvent::Deposited(5));
}
