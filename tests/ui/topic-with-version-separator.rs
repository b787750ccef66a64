use eventsourcing::prelude::*;

#[aggregate]
#[derive(Debug, Default)]
pub struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    #[created(Opened)]
    fn open(&mut self) {}

    #[event(Deposited, topic = "Account.Deposited@2")]
    fn deposit(&mut self, cents: u64) {
        self.balance += cents;
    }
}

fn main() {
    let mut account = Account::open();
    account.deposit(1);
}
