use eventsourcing::prelude::*;

// `Root` (identity, version, head, pending events) comes from
// `#[aggregate]` on the struct, which adds the hidden bookkeeping.
#[derive(Debug, Default)]
pub struct Counter {
    total: u32,
}

impl Root for Counter {
    type Id = Uuid;
    const NAME: &'static str = "Counter";
    const DISCARDED_TOPIC: &'static str = "Counter.Discarded";
    const FORGOTTEN_TOPIC: &'static str = "Counter.Forgotten";
}

fn main() {}
