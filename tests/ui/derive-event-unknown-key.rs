use eventsourcing::prelude::*;

#[derive(Event)]
#[es(prefx = "Account")]
pub enum AccountEvent {
    Opened,
    Deposited { amount: u64 },
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
            AccountEvent::Deposited { amount } => self.balance += amount,
        }
    }
}

fn main() {
    let mut account = Account::start(AccountEvent::Opened);
    account.trigger(AccountEvent::Deposited { amount: 5 });
}
