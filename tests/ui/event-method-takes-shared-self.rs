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
    fn deposit(&self, amount: u64) {
        println!("{} + {amount}", self.balance);
    }
}

fn main() {
    let mut account = Account::open();
    account.deposit(5);
}
