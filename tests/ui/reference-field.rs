use eventsourcing::prelude::*;

#[aggregate]
#[derive(Debug, Default)]
pub struct Account {
    owner: String,
}

#[aggregate]
impl Account {
    #[created(Opened)]
    fn open(&mut self) {}

    #[event(Renamed)]
    fn rename(&mut self, owner: &str) {
        self.owner = owner.to_owned();
    }
}

fn main() {
    let mut account = Account::open();
    account.rename("ada");
}
