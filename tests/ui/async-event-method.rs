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
    async fn deposit(&mut self, amount: u64) {
        self.balance += amount;
    }
}

fn main() {
    let mut account = Account::open();
    let _ = account.deposit(5);
}
