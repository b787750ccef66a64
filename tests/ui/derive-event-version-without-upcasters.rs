use eventsourcing::prelude::*;

#[derive(Event, Debug, Clone, PartialEq)]
pub enum AccountEvent {
    Opened,
    #[es(version = 3, upcasters = [deposited_v1])]
    Deposited { cents: u64 },
}

fn deposited_v1(data: &mut JsonObject) {
    data.insert("cents".into(), 0.into());
}

fn main() {}
