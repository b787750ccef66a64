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

    #[event(Tagged)]
    fn tag(&mut self, tags: Vec<&str>) {
        self.balance += tags.len() as u64;
    }
}

fn main() {
    let mut account = Account::open();
    account.tag(vec!["a", "b"]);
}
