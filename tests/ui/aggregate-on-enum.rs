use eventsourcing::prelude::*;

#[aggregate]
#[derive(Debug, Default)]
pub enum Account {
    #[default]
    Open,
    Closed,
}

fn main() {}
