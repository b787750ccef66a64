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
    fn deposit(&mut self, __es_amount: u64) {
        self.balance += __es_amount;
    }
}

fn main() {
    let mut account = Account::open();
    account.deposit(5);
}
