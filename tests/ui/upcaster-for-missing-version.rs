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
    fn deposit(&mut self, cents: u64) {
        self.balance += cents;
    }

    #[upcast(Deposited, from = 1)]
    fn deposited_v1(data: &mut JsonObject) {
        data.insert("cents".into(), 0.into());
    }
}

fn main() {
    let mut account = Account::open();
    account.deposit(1);
}
