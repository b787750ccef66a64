use eventsourcing::prelude::*;

#[aggregate]
#[derive(Debug, Default)]
pub struct Account {
    closed: bool,
}

#[aggregate]
impl Account {
    #[created(Opened)]
    fn open(&mut self) {}

    #[event(Discarded)]
    fn close(&mut self) {
        self.closed = true;
    }
}

fn main() {
    let mut account = Account::open();
    account.close();
}
