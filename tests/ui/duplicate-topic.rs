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

    #[event(Deposited)]
    fn deposit(&mut self, amount: u64) {
        self.balance += amount;
    }

    #[event(Credited, topic = "Account.Deposited")]
    fn credit(&mut self, amount: u64) {
        self.balance += amount;
    }
}

fn main() {
    let mut account = Account::open();
    account.deposit(5);
    account.credit(5);
}
