use eventsourcing::prelude::*;

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Money(u64);

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
    fn deposit(&mut self, amount: Money) {
        self.balance += amount.0;
    }
}

fn main() {
    let mut account = Account::open();
    account.deposit(Money(5));
}
