use eventsourcing::prelude::*;

#[aggregate]
#[derive(Debug, Default)]
pub struct Account {
    cents: u64,
}

#[aggregate]
impl Account {
    #[created(Opened)]
    fn open(&mut self) {}

    #[upcast(state, from = 1)]
    fn state_v1(state: &mut JsonObject) {
        state.insert("cents".into(), 0.into());
    }
}

fn main() {
    let account = Account::open();
    let _ = account.cents;
}
