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

    #[created(OpenedWithBalance)]
    fn open_with_balance(&mut self, balance: u64) {
        self.balance = balance;
    }
}

fn main() {
    let account = Account::open_with_balance(5);
    let _ = Account::open_with_id(account.id());
}
